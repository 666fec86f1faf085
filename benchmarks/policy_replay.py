"""``wardgate policy replay`` over 100,000 recorded operations (issue 14). Target: < 10 s end to end.

The recordings come from ``recordings_query.py``'s generator (the event shapes ``Recording`` and
``SessionRecord`` write: HTTP and Kubernetes requests, Data API calls, PostgreSQL sessions statement
by statement, some denied, by 60 agents of 20 owners over two weeks), put as gzip objects into S3
(moto, in-process). The candidate policy declares the generator's connections, denies deletes on two
HTTP services, holds refunds for approval, keeps the databases read-only (the pack) and lets the
cluster be read only in working hours (a rule with a time window: each operation is decided at its
recorded time). Then ``wardgate policy replay --file DIR
--since 15d --json`` runs as an operator runs it (``cli.main``): cold (an empty cache: every object
fetched and converted once) and warm (the cache up to date), each checked against the other.

    .venv/bin/python benchmarks/policy_replay.py [--operations 100000] [--write]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import code_version, machine, write_section
from recordings_query import HTTP, generate

MARKERS = ("<!-- policyreplay:start -->", "<!-- policyreplay:end -->")
SUMMARY = ("<!-- policyreplaysummary:start -->", "<!-- policyreplaysummary:end -->")
TARGET_S = 10.0
BUCKET = "wardgate-recordings-bench"
WARM_RUNS = 3


def candidate() -> dict[str, Any]:
    """A stricter policy than the one the generator records under."""
    connections: list[dict[str, Any]] = [
        {"name": name, "kind": "http", "upstream_url": f"https://{name}.internal.example.com",
         "allowed_groups": ["ci"]}
        for name in HTTP
    ]  # fmt: skip
    connections += [
        {"name": "prod-k8s", "kind": "k8s", "upstream_url": "https://k8s.internal.example.com",
         "allowed_groups": ["agents"]},
        *({"name": name, "kind": "sql", "upstream_url": f"postgres://{name}.internal.example.com/{name}",
           "allowed_groups": ["agents"]} for name in ("orders-db", "warehouse", "analytics")),
    ]  # fmt: skip
    rules = [
        {"name": "agents may call http connections", "effect": "allow", "identity": {"groups": ["ci"]},
         "match": {"http": {"methods": ["*"]}}},
        {"name": "no deletes on money", "effect": "deny", "connections": ["payments", "billing-api"],
         "match": {"http": {"methods": ["DELETE"]}}},
        {"name": "refunds need a human", "effect": "require_approval", "approvers": ["finance@example.com"],
         "connections": ["billing-api", "payments"], "match": {"http": {"methods": ["POST"],
                                                                        "paths": ["/v1/refunds"]}}},
        {"name": "cluster reads in working hours", "effect": "allow", "connections": ["prod-k8s"],
         "time": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "07:00", "end": "19:00"},
         "match": {"k8s": {"verbs": ["get", "list"]}}},
        {"name": "no audit log reads", "effect": "deny", "connections": ["warehouse", "analytics"],
         "match": {"sql": {"tables": ["audit_log"]}}},
    ]  # fmt: skip
    packs = [{"name": "read-only-sql", "connections": ["orders-db", "warehouse", "analytics"]}]
    return {"version": 1, "connections": connections, "rules": rules, "packs": packs}


def _same(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "since"}  # "15d" moves with the clock


def replay_once(folder: str) -> tuple[float, dict[str, Any]]:
    from wardgate import cli

    out, err = io.StringIO(), io.StringIO()
    began = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["policy", "replay", "--file", folder, "--since", "15d", "--json"])
    elapsed = time.perf_counter() - began
    if code != 0:
        raise SystemExit(f"policy replay failed ({code}): {err.getvalue()}")
    report: dict[str, Any] = json.loads(out.getvalue())
    return elapsed, report


def run(operations: int) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    began = time.perf_counter()
    objects, events = generate(operations, end)
    generated_s = time.perf_counter() - began
    print(f"generated {operations:,} operations as {events:,} events in {len(objects):,} objects "
          f"({generated_s:.1f} s)", file=sys.stderr)  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch, mock_aws():
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_DEFAULT_REGION": "us-east-1",
                "RECORDINGS_BUCKET": BUCKET,
                "RECORDINGS_PREFIX": "recordings/",
                "WARDGATE_HOME": str(Path(scratch) / "home"),  # no `wardgate dev` of this machine
                "WARDGATE_RECORDINGS_CACHE": str(Path(scratch) / "cache"),
            }
        )
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        gz_bytes = 0
        for key, lines in objects.items():
            packed = zlib.compressobj(6, zlib.DEFLATED, 31)
            body = packed.compress(b"".join(lines)) + packed.flush()
            gz_bytes += len(body)
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        count = len(objects)
        del objects
        folder = Path(scratch) / "policies"
        folder.mkdir()
        (folder / "candidate.yaml").write_text(yaml.safe_dump(candidate(), sort_keys=False))
        cold_s, cold = replay_once(str(folder))
        warm_runs = []
        for _ in range(WARM_RUNS):
            elapsed, warm = replay_once(str(folder))
            warm_runs.append(elapsed)
            if _same(warm) != _same(cold):
                raise SystemExit("a warm replay disagrees with the cold one")
        from wardgate.auditing import whatif

        remembered, whatif.CACHE_ENTRIES = whatif.CACHE_ENTRIES, 0  # every operation decided afresh
        try:
            afresh_s, afresh = replay_once(str(folder))
        finally:
            whatif.CACHE_ENTRIES = remembered
        if _same(afresh) != _same(cold):
            raise SystemExit("deciding every operation afresh disagrees with remembered verdicts")
    return {
        "operations": operations,
        "replayed": cold["operations"],
        "events": events,
        "objects": count,
        "gz_bytes": gz_bytes,
        "changes": cold["changes"],
        "cannot_replay": cold["cannot_replay"],
        "cold_s": cold_s,
        "warm_s": statistics.median(warm_runs),
        "warm_max_s": max(warm_runs),
        "afresh_s": afresh_s,
        "generated_s": generated_s,
    }


def tables(r: dict[str, Any], command: str) -> tuple[str, str]:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    met = "**met**" if r["warm_s"] < TARGET_S else "**missed**"
    summary = (
        f"**Policy replay** (issue 14; `{command}`, {when}, {code_version()}; details in "
        "[its section](#policy-replay)):\n\n| target | measured | |\n|---|---|---|\n"
        f"| `wardgate policy replay` over {r['replayed']:,} recorded operations: < {TARGET_S:.0f} s end to "
        f"end | {r['warm_s']:.1f} s warm ({r['replayed'] / r['warm_s']:,.0f} operations/s); "
        f"{r['cold_s']:.1f} s cold | {met} |"
    )
    changes = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in r["changes"].items() if v)
    detail = "\n".join(
        [
            f"Measured {when} on {code_version()}; {machine()}.",
            "",
            f"`{command}`: {r['operations']:,} operations over 14 days ({r['events']:,} events from "
            "`recordings_query.py`'s generator: HTTP, Kubernetes and Data API requests, PostgreSQL "
            f"sessions statement by statement) in {r['objects']:,} gzip objects "
            f"({r['gz_bytes'] / 1e6:.0f} MB) in moto's S3 (in-process). The candidate policy declares "
            "the generator's 8 connections, denies deletes on two HTTP services, holds refunds for "
            "approval, keeps the databases read-only and allows cluster reads in working hours only: "
            "a rule with a time window, read at each operation's recorded time (a verdict is "
            "remembered per operation, caller and which windows hold then). "
            "`wardgate policy replay --file DIR --since 15d --json`, run "
            "through `cli.main` as an operator runs it.",
            "",
            "| | time | what it does |",
            "|---|---|---|",
            f"| cold (empty cache) | {r['cold_s']:.1f} s | list the bucket's days, fetch and decompress "
            "every object, DuckDB extracts the columns once into Parquet, then the replay |",
            f"| warm (cache up to date), median of {WARM_RUNS} | {r['warm_s']:.1f} s "
            f"(max {r['warm_max_s']:.1f} s) | list the days (nothing new), one query (the decided "
            "events, with the operation, identity and decision extracted, the sessions' identities "
            "joined), each operation rebuilt and decided by `gate.decide_on`, the report |",
            f"| warm, nothing remembered | {r['afresh_s']:.1f} s | the same with every verdict decided "
            "afresh (as if no two operations were alike: the worst case) |",
            "",
            f"Replayed {r['replayed']:,} operations: {changes}."
            + (
                " Cannot replay: "
                + "; ".join(f"{n:,}: {why}" for why, n in r["cannot_replay"].items())
                + " (the generator writes Kubernetes operations without `is_resource_request`, which "
                "the gateway records: replay counts them rather than guess)."
                if r["cannot_replay"]
                else ""
            ),
        ]
    )
    return summary, detail


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--operations", type=int, default=100_000)
    parser.add_argument("--write", action="store_true", help="replace the section in docs/benchmarks.md")
    args = parser.parse_args()
    command = (
        ".venv/bin/python benchmarks/policy_replay.py"
        + (f" --operations {args.operations}" if args.operations != 100_000 else "")
        + (" --write" if args.write else "")
    )
    result = run(args.operations)
    summary, detail = tables(result, command)
    print(summary + "\n\n" + detail)
    if args.write:
        write_section(SUMMARY, summary)
        write_section(MARKERS, detail)


if __name__ == "__main__":
    main()
