"""Decision latency of the policy engine with 1,000 rules loaded.

Builds a policy of 1,000 rules over 50 HTTP connections (method and path conditions, identity
conditions, some deny and approval rules, some rules for every connection) and times
``PolicySet.decide`` on random requests, one decision at a time. Parsing is not included: the
operation is built beforehand, as the proxy has it when it asks.

    .venv/bin/python benchmarks/policy_decisions.py            # print the table
    .venv/bin/python benchmarks/policy_decisions.py --write    # and update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime

from common import ROOT, code_version, machine, write_section

sys.path.insert(0, str(ROOT / "layers" / "wardgate"))

from wardgate.identity import Identity
from wardgate.operations.http import HttpOperation
from wardgate.policy.document import build

MARKERS = ("<!-- policy:start -->", "<!-- policy:end -->")
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
RESOURCES = ["users", "orders", "items", "admin"]
TARGET_P50_US, TARGET_P99_US = 100, 500


def document(rules: int, connections: int, rng: random.Random) -> dict:
    names = [f"svc-{i:02d}" for i in range(connections)]
    out = []
    for i in range(rules):
        effect = rng.choices(["allow", "deny", "require_approval"], [6, 3, 1])[0]
        rule: dict = {"name": f"rule-{i}", "effect": effect, "connections": [rng.choice(names)]}
        if i % 50 == 0:
            rule["connections"] = ["*"]
        if effect == "require_approval":
            rule["approvers"] = ["leads"]
        rule["match"] = {
            "http": {
                "methods": rng.sample(METHODS, rng.randint(1, 2)),
                "paths": [f"/v{rng.randint(1, 3)}/{rng.choice(RESOURCES)}/*"],
            }
        }
        if rng.random() < 0.3:
            rule["identity"] = {"groups": [rng.choice(["ci", "ops", "billing"])]}
        out.append(rule)
    connections_doc = [
        {"name": name, "kind": "http", "upstream_url": f"https://{name}.example.com"} for name in names
    ]
    return {"connections": connections_doc, "rules": out, "packs": [], "settings": {}}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=20000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    rng = random.Random(7)
    policy_set = build(document(args.rules, 50, rng))
    identity = Identity("agent-1", "https://idp.example.com", ("ci",))
    now = datetime.now(UTC)
    requests = [
        (
            f"svc-{rng.randrange(50):02d}",
            HttpOperation(
                rng.choice(METHODS),
                f"/v{rng.randint(1, 3)}/{rng.choice(RESOURCES)}/{rng.randint(1, 99)}",
                "",
            ),
        )
        for _ in range(args.decisions)
    ]
    outcomes: dict[str, int] = {}
    for connection, operation in requests[:1000]:  # warm-up
        policy_set.decide(identity, connection, "http", operation, now)
    samples = []
    for connection, operation in requests:
        started = time.perf_counter_ns()
        decision = policy_set.decide(identity, connection, "http", operation, now)
        samples.append((time.perf_counter_ns() - started) / 1000)
        outcomes[decision.outcome] = outcomes.get(decision.outcome, 0) + 1
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[int(len(samples) * 0.99)]
    text = "\n".join(
        [
            f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC of {code_version()} on {machine()}; "
            f"{len(policy_set.rules)} rules over 50 connections, {args.decisions} decisions "
            f"({', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))}).",
            "",
            "| decision latency | µs | target |",
            "|---|---:|---|",
            f"| p50 | {p50:.1f} | < {TARGET_P50_US} µs: {'met' if p50 < TARGET_P50_US else 'missed'} |",
            f"| p99 | {p99:.1f} | < {TARGET_P99_US} µs: {'met' if p99 < TARGET_P99_US else 'missed'} |",
        ]
    )
    print(text)
    if args.write:
        write_section(MARKERS, text)


if __name__ == "__main__":
    main()
