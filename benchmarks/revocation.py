"""The kill switch: what the per-request revocation check costs, and how fast a revocation bites.

* **Check cost**: ``AgentRegistry.check`` on a registered agent, warm (the registry's own
  0.5 s cache in front of DynamoDB; the DynamoDB read behind a cache miss is replaced by an
  in-memory item, and a miss happens once per TTL). Measured as the added time over a same-run
  baseline: token validation alone (``TokenValidator.authenticate``, the step the check follows)
  against token validation plus the check, alternating sample by sample.
* **Propagation, locally**: the real local stack (moto in-process, the development issuer, the
  gateway server on loopback). An agent works through ``/http/demo``, its owner is deactivated
  through SCIM (``PATCH active=false``), and the agent keeps sending requests with its still-valid
  token every 10 ms; propagation is the time from the SCIM response to the first refusal.

    .venv/bin/python benchmarks/revocation.py            # print the table
    .venv/bin/python benchmarks/revocation.py --write    # and update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import ROOT, code_version, machine, write_section

sys.path.insert(0, str(ROOT / "layers" / "wardgate"))

MARKERS = ("<!-- revocation:start -->", "<!-- revocation:end -->")
TARGET_CHECK_US = 200  # issue 6: under 0.2 ms p50 with caching
TARGET_LOCAL_PROPAGATION_MS = 1000


def check_cost(samples: int, workdir: Path) -> dict[str, float]:
    from wardgate.agents import AgentRegistry, AgentTable, agent_key
    from wardgate.dev.oidc import ISSUER_PATH, DevIssuer
    from wardgate.identity import IssuerConfig, TokenValidator

    issuer = DevIssuer(f"http://127.0.0.1:9{ISSUER_PATH}", workdir / "issuer.pem")
    documents = {
        issuer.issuer + "/.well-known/openid-configuration": issuer.discovery(),
        issuer.issuer + "/jwks": issuer.jwks(),
    }
    validator = TokenValidator(
        [IssuerConfig.from_dict(issuer.issuer_config())], fetch_json=documents.__getitem__
    )
    item = {
        "issuer": issuer.issuer,
        "subject": "bench-agent",
        "owner": "owner@example.com",
        "purpose": "bench",
    }
    item["connections"] = ["demo"]
    loads = {"reads": 0}

    class MemoryAgents(AgentTable):
        """The real registry and cache; only the DynamoDB calls behind them are replaced."""

        def get(self, pk: str) -> dict[str, Any] | None:
            loads["reads"] += 1
            return item if pk == agent_key(issuer.issuer, "bench-agent") else None

        def touch(self, pk: str, when: int) -> None:
            pass

    registry = AgentRegistry(MemoryAgents("wardgate-agents"))
    header = f"Bearer {issuer.mint('bench-agent', ['ci'], ttl=3600)}"
    for _ in range(2000):  # warm-up
        registry.check(validator.authenticate(header), "demo")
    baseline: list[float] = []
    guarded: list[float] = []
    check_only: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(samples):
        started = clock()
        identity = validator.authenticate(header)
        baseline.append((clock() - started) / 1000)
        started = clock()
        identity = validator.authenticate(header)
        checked_at = clock()
        registry.check(identity, "demo")
        ended = clock()
        guarded.append((ended - started) / 1000)
        check_only.append((ended - checked_at) / 1000)
    registry.flush()
    check_only.sort()
    return {
        "baseline": statistics.median(baseline),
        "with_check": statistics.median(guarded),
        "added": statistics.median(guarded) - statistics.median(baseline),
        "check_p50": statistics.median(check_only),
        "check_p99": check_only[int(len(check_only) * 0.99)],
        "reads": loads["reads"],
        "samples": samples,
    }


def propagation(rounds: int, workdir: Path) -> list[float]:
    import httpx
    from moto import mock_aws

    from wardgate.agents import Agent, AgentRegistry, AgentTable
    from wardgate.config import Settings
    from wardgate.dev.stack import DevStack

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    times: list[float] = []
    with mock_aws():
        stack = DevStack(root=ROOT, state_dir=workdir, port=0, upstream_port=0).start()
        try:
            assert stack.issuer is not None
            registry = AgentRegistry(AgentTable(Settings.from_env().agents_table))
            scim_headers = {"Authorization": f"Bearer {stack.scim_token()}"}
            with httpx.Client(base_url=stack.url, timeout=10) as client:
                for i in range(rounds):
                    owner = f"owner-{i}@example.com"
                    registry.register(
                        Agent(stack.issuer.issuer, f"agent-{i}", owner, "bench", ("demo",)), "bench"
                    )
                    user = client.post(
                        "/scim/v2/Users", json={"userName": owner}, headers=scim_headers
                    ).json()
                    auth = {"Authorization": f"Bearer {stack.issuer.mint(f'agent-{i}', ['ci'])}"}
                    if client.get("/http/demo/x", headers=auth).status_code != 200:
                        raise RuntimeError("the agent does not work before its owner is deactivated")
                    patch = {"Operations": [{"op": "replace", "value": {"active": False}}]}
                    if client.patch(
                        f"/scim/v2/Users/{user['id']}", json=patch, headers=scim_headers
                    ).is_error:
                        raise RuntimeError("SCIM deactivation failed")
                    done = time.perf_counter()
                    while client.get("/http/demo/x", headers=auth).status_code == 200:
                        if time.perf_counter() - done > 10:
                            raise RuntimeError("the revocation never took effect")
                        time.sleep(0.01)
                    times.append((time.perf_counter() - done) * 1000)
        finally:
            stack.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cost = check_cost(args.samples, Path(tmp))
        times = propagation(args.rounds, Path(tmp))
    p50, worst = statistics.median(times), max(times)
    check_ok = cost["check_p50"] < TARGET_CHECK_US and cost["added"] < TARGET_CHECK_US
    text = "\n".join(
        [
            f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC of {code_version()} on {machine()}; "
            f"{cost['samples']} alternating samples for the check, {len(times)} revocations for propagation.",
            "",
            "| per request (warm) | µs |",
            "|---|---:|",
            f"| baseline: token validation alone, median | {cost['baseline']:.1f} |",
            f"| token validation + `AgentRegistry.check`, median | {cost['with_check']:.1f} |",
            f"| **added by the check** (difference of the medians) | **{cost['added']:.1f}** |",
            f"| the check alone, p50 / p99 | {cost['check_p50']:.1f} / {cost['check_p99']:.1f} |",
            "",
            f"Target < {TARGET_CHECK_US} µs p50: {'met' if check_ok else 'missed'}. "
            f"Registry reads behind the cache in the whole run: {cost['reads']} "
            "(an agent and an owner read per identity per 0.5 s TTL per container; on AWS "
            "each is a strongly consistent DynamoDB GetItem, a few ms).",
            "",
            "| revocation propagation, local (SCIM deactivation → first refused request) | ms |",
            "|---|---:|",
            f"| median | {p50:.0f} |",
            f"| worst of {len(times)} | {worst:.0f} |",
            "",
            f"Target < {TARGET_LOCAL_PROPAGATION_MS} ms locally: "
            f"{'met' if worst < TARGET_LOCAL_PROPAGATION_MS else 'missed'}. The bound is the gateway's "
            "registry cache (0.5 s) plus one request; on AWS the same bound holds per container (every "
            "container's cache expires on its own), plus DynamoDB's write latency: well under 5 s by design.",
        ]
    )
    print(text)
    if args.write:
        write_section(MARKERS, text)


if __name__ == "__main__":
    main()
