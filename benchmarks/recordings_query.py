"""A named question over 1,000,000 recorded operations, locally (issue 14). Target: < 2 s warm.

Generates two weeks of recordings as Firehose writes them (gzip JSON lines, one object per
5-minute buffer under recordings/yyyy/MM/dd/HH/) with the real event shapes (``Recording`` and
``SessionRecord`` make them): HTTP and Kubernetes requests, Data API calls, PostgreSQL sessions
statement by statement, some of each denied, by 60 agents of 20 owners. They go into S3 (moto,
in-process), then ``wardgate recordings query --denials --owner X --since 7d`` runs as the CLI runs
it (LocalEngine: sync the cache, then DuckDB): cold (an empty cache: every object fetched and
converted once) and warm (the cache up to date: a listing of the window's days, then the query).
Also prints what Athena would scan for the same question (the window's gzip bytes) and its cost.

    .venv/bin/python benchmarks/recordings_query.py [--operations 1000000] [--write]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
import zlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import code_version, machine, write_section
from wardgate.recording import Recording, recorded_body
from wardgate.tcp.recorder import SessionRecord

MARKERS = ("<!-- auditquery:start -->", "<!-- auditquery:end -->")
SUMMARY = ("<!-- auditsummary:start -->", "<!-- auditsummary:end -->")
TARGET_S = 2.0
DAYS = 14
BUFFER_S = 300  # Firehose's buffer interval: one object per 5 minutes
ATHENA_PER_TB = 5.0
OWNERS = [f"owner-{i}@example.com" for i in range(20)]
AGENTS = [(f"agent-{i}-{j}", OWNERS[i]) for i in range(20) for j in range(3)]
HTTP = ["billing-api", "crm", "payments", "internal-tools"]
PATHS = ["/v1/customers", "/v1/invoices/{}", "/v1/refunds", "/v1/users/{}", "/v2/orders?page={}"]
TABLES = ["orders", "customers", "invoices", "public.payments", "line_items", "audit_log"]


def _identity(subject: str, owner: str) -> dict[str, Any]:
    return {
        "subject": subject,
        "issuer": "https://login.example.com",
        "groups": ["ci", "agents"],
        "client_id": subject,
        "token_id": uuid.uuid4().hex,
        "owner": owner,
        "registered": True,
        "owner_groups": ["engineering"],
    }


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def _headers() -> dict[str, str]:
    return {
        "host": "abc123.execute-api.us-east-1.amazonaws.com",
        "user-agent": "python-httpx/0.28.1",
        "accept": "application/json",
        "authorization": "[redacted]",
        "x-forwarded-proto": "https",
    }


def _decision(outcome: str, rule: str, reason: str) -> dict[str, Any]:
    return {"outcome": outcome, "reason": reason, "rule": rule, "policy_version": "p-3f2a9c1b7d4e"}


def http_events(rng: random.Random, at: float, kind: str) -> list[dict[str, Any]]:
    subject, owner = rng.choice(AGENTS)
    denied = rng.random() < 0.15
    if kind == "k8s":
        method, path, connection = "GET", "/api/v1/namespaces/prod/pods", "prod-k8s"
        operation = {
            "protocol": "k8s",
            "method": "GET",
            "path": path,
            "verb": "list",
            "api_group": "",
            "api_version": "v1",
            "namespace": "prod",
            "resource": "pods",
            "subresource": None,
            "name": None,
            "exec_command": [],
            "authorized_verbs": ["list"],
        }
    elif kind == "sql":
        table = rng.choice(TABLES)
        write = rng.random() < 0.1
        text = f"DELETE FROM {table} WHERE id = 42" if write else f"SELECT * FROM {table} WHERE id = 42"
        method, path, connection = "POST", "/Execute", "orders-db"
        statement = {
            "text": text,
            "kind": "delete" if write else "select",
            "tables_read": [] if write else [table],
            "tables_written": [table] if write else [],
            "has_where": True,
            "functions": [],
            "features": [],
        }
        operation = {"protocol": "sql", "call": "ExecuteStatementRequest", "dialect": "postgres"}
        operation["statements"] = [statement]
        denied = write
    else:
        method = rng.choice(["GET", "GET", "GET", "POST", "DELETE"])
        path = rng.choice(PATHS).format(rng.randint(1, 99999))
        path, _, query = path.partition("?")
        connection = rng.choice(HTTP)
        operation = {"protocol": "http", "method": method, "path": path, "query": query}
        denied = denied or (method == "DELETE" and rng.random() < 0.7)
    body = recorded_body(b'{"amount": 1200, "currency": "EUR"}' if method == "POST" else b"", 65536)
    recording = Recording(
        request_id=uuid.uuid4().hex[:16].upper(),
        connection=connection,
        request={
            "method": method,
            "path": path,
            "query": operation.get("query", ""),
            "source_ip": "10.0.3.17",
            "headers": _headers(),
            "body": {**body, "masked": {}},
        },
        started_at=at,
        identity=_identity(subject, owner),
        operation=operation,
    )
    if denied:
        recording.decision = _decision("deny", "no writes by agents", "agents may not change data here")
        recording.response = {"status": 403}
        recording.error = {
            "status": 403,
            "code": "denied_by_policy",
            "message": "agents may not change data here",
        }
        recording.timings_ms = {"total": round(rng.uniform(0.4, 2.0), 3)}
        return [recording.event("refused") | {"time": _stamp(at + 0.001)}]
    recording.decision = _decision("allow", "agents may call http connections", "allowed")
    answer = b'{"customers": [{"id": 1, "email": "[masked:email]", "card": "**** **** **** 4242"}]}'
    recording.response = {
        "status": 200,
        "headers": {"content-type": "application/json", "date": "Sat, 05 Dec 2026 04:32:17 GMT"},
        "cookies": 0,
        "body": recorded_body(answer, 65536),
        "masking": {"profile": "default", "counts": {"email": 1, "card": 1}, "truncated": False},
    }
    if kind == "sql":
        recording.response["result"] = {"columns": ["id", "email"], "rows": 1, "truncated": False}
    recording.timings_ms = {
        "guard": 0.8,
        "upstream": round(rng.uniform(5, 80), 3),
        "masking": 0.3,
        "total": 40.0,
    }
    return [
        recording.event("request") | {"time": _stamp(at + 0.001)},
        recording.event("response") | {"time": _stamp(at + 0.05)},
    ]


def session_events(rng: random.Random, at: float, statements: int) -> list[dict[str, Any]]:
    subject, owner = rng.choice(AGENTS)
    record = SessionRecord(
        "postgres", rng.choice(["warehouse", "analytics"]), "10.0.4.9:51234", started_at=at
    )
    identity = _identity(subject, owner)
    events = [record.event("session_start", identity=identity, client=record.client, database="warehouse")]
    refused = 0
    for n in range(statements):
        table = rng.choice(TABLES)
        write = rng.random() < 0.08
        text = (
            f"UPDATE {table} SET status = 'x' WHERE id = {n}"
            if write
            else f"SELECT id, total FROM {table} LIMIT 50"
        )
        attributes = {
            "text": text,
            "kind": "update" if write else "select",
            "ddl_action": None,
            "object_type": None,
            "tables_read": [] if write else [table],
            "tables_written": [table] if write else [],
            "has_where": True,
            "functions": [],
            "features": [],
        }
        operation = {"protocol": "sql", "dialect": "postgres", "statements": [attributes]}
        if write:
            refused += 1
            decision = _decision("deny", "read-only-sql: hidden writes", "this connection is read-only")
            error = {"code": "denied_by_policy", "message": "read-only"}
            events.append(
                record.event("statement_refused", operation=operation, decision=decision, error=error)
            )
            continue
        statement = record.event(
            "statement",
            call="query",
            operation=operation,
            decision=_decision("allow", "read-only-sql: reads", "allowed"),
        )
        events.append(statement)
        events.append(
            record.event(
                "result",
                statement_seq=statement["seq"],
                rows=50,
                tags=["SELECT 50"],
                duration_ms=1.7,
                first_rows=[["1", "120.00"]],
                masked={},
            )
        )
    end = {"outcome": "closed", "reason": "the client closed the session", "duration_ms": 60000.0}
    counts = {"statements": statements - refused, "refused": refused}
    events.append(record.event("session_end", identity=identity, **counts, **end))
    for i, event in enumerate(events):  # spread over the session's minute
        event["time"] = _stamp(at + i * 60.0 / len(events))
    return events


def generate(operations: int, end: datetime, seed: int = 14) -> tuple[dict[str, list[bytes]], int]:
    """{S3 key: lines} as Firehose would file them, and the number of events."""
    rng = random.Random(seed)
    start = end.timestamp() - DAYS * 86400
    by_buffer: dict[int, list[bytes]] = defaultdict(list)
    made = events = 0
    while made < operations:
        at = rng.uniform(start, end.timestamp() - 120)
        roll = rng.random()
        if roll < 0.40:
            batch = session_events(rng, at, min(100, operations - made))
            made += sum(1 for e in batch if e["event"] in ("statement", "statement_refused"))
        else:
            kind = "sql" if roll < 0.50 else "k8s" if roll < 0.55 else "http"
            batch = http_events(rng, at, kind)
            made += 1
        for event in batch:
            arrival = datetime.fromisoformat(event["time"]).timestamp() + 1.0
            by_buffer[int(arrival // BUFFER_S)].append(orjson.dumps(event) + b"\n")
            events += 1
    objects = {}
    for buffer, lines in sorted(by_buffer.items()):
        flushed = datetime.fromtimestamp((buffer + 1) * BUFFER_S, UTC)
        name = f"wardgate-recordings-1-{flushed:%Y-%m-%d-%H-%M-%S}-{uuid.UUID(int=rng.getrandbits(128))}.gz"
        objects[f"recordings/{flushed:%Y/%m/%d/%H}/{name}"] = lines
    return objects, events


def run(operations: int) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from wardgate.auditing.cache import HourWindow, RecordingsCache
    from wardgate.auditing.query import LocalEngine
    from wardgate.auditing.questions import Filters, question_sql

    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    began = time.perf_counter()
    objects, events = generate(operations, end)
    generated_s = time.perf_counter() - began
    made = f"{operations:,} operations as {events:,} events in {len(objects):,} objects"
    print(f"generated {made} ({generated_s:.1f} s)", file=sys.stderr)
    since = end - timedelta(days=7)
    window = HourWindow.around(since, None)
    owner = OWNERS[3]
    filters = Filters(owner=owner, since=since)
    sql = question_sql("denials", filters, "duckdb")
    with mock_aws(), tempfile.TemporaryDirectory() as scratch:
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="wardgate-recordings-bench")
        raw_bytes = gz_bytes = window_gz = 0
        for key, lines in objects.items():
            data = b"".join(lines)
            packed = zlib.compressobj(6, zlib.DEFLATED, 31)
            body = packed.compress(data) + packed.flush()
            raw_bytes += len(data)
            gz_bytes += len(body)
            if window.holds(key[len("recordings/") : len("recordings/") + 13]):
                window_gz += len(body)
            s3.put_object(Bucket="wardgate-recordings-bench", Key=key, Body=body)
        total_objects = len(objects)
        del objects
        engine = LocalEngine(RecordingsCache(Path(scratch), "wardgate-recordings-bench", "recordings/", s3))
        began = time.perf_counter()
        cold = engine.run(sql, window, trusted=True)
        cold_s = time.perf_counter() - began
        report = engine.last_sync
        assert report is not None
        warm_runs, query_runs = [], []
        for _ in range(5):
            began = time.perf_counter()
            warm = engine.run(sql, window, trusted=True)
            warm_runs.append(time.perf_counter() - began)
            assert warm.rows == cold.rows
            con = engine.connect(window)
            began = time.perf_counter()
            con.execute(sql).fetchall()
            query_runs.append(time.perf_counter() - began)
            con.close()
        cache_bytes = sum(p.stat().st_size for p in Path(scratch).rglob("*.parquet"))
    return {
        "operations": operations,
        "events": events,
        "objects": total_objects,
        "window_objects": report.fetched,
        "raw_bytes": raw_bytes,
        "gz_bytes": gz_bytes,
        "window_gz": window_gz,
        "cache_bytes": cache_bytes,
        "rows": len(cold.rows),
        "owner": owner,
        "cold_s": cold_s,
        "warm_s": statistics.median(warm_runs),
        "warm_max_s": max(warm_runs),
        "query_s": statistics.median(query_runs),
        "generated_s": generated_s,
    }


def tables(r: dict[str, Any], command: str) -> tuple[str, str]:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    met = "**met**" if r["warm_s"] < TARGET_S else "**missed**"
    per_tb = r["window_gz"] / 1e12 * ATHENA_PER_TB
    per_million_gz = r["gz_bytes"] / r["operations"] * 1e6
    summary = (
        f"**Querying the recordings** (issue 14; `{command}`, {when}, {code_version()}; details in "
        "[its section](#querying-the-recordings)):\n\n| target | measured | |\n|---|---|---|\n"
        f"| a named question over {r['operations']:,} recorded operations, locally: < {TARGET_S:.0f} s "
        f"(warm cache) | {r['warm_s']:.2f} s warm (query alone {r['query_s']:.2f} s); "
        f"{r['cold_s']:.1f} s cold | {met} |"
    )
    what = "HTTP, Kubernetes and Data API requests and PostgreSQL sessions statement by statement"
    cold = (
        f"list 8 days, fetch and decompress {r['window_objects']:,} objects, DuckDB extracts the columns "
        "once into Parquet (one part per day), then the query"
    )
    warm = (
        "list the days not yet closed (today, yesterday: nothing new), open DuckDB on the window's parts, "
        "the query"
    )
    detail = "\n".join(
        [
            f"Measured {when} on {code_version()}; {machine()}.",
            "",
            f"`{command}`: {r['operations']:,} operations over {DAYS} days ({r['events']:,} events: {what}, "
            f"in the shapes `Recording` and `SessionRecord` write) in {r['objects']:,} gzip objects, one per "
            f"5-minute Firehose buffer: {r['raw_bytes'] / 1e9:.2f} GB of JSON lines, "
            f"{r['gz_bytes'] / 1e6:.0f} MB compressed, in moto's S3 (in-process). The question: "
            f"`wardgate recordings query --denials --owner {r['owner']} --since 7d` ({r['rows']:,} rows).",
            "",
            "| | time | what it does |",
            "|---|---|---|",
            f"| cold (empty cache) | {r['cold_s']:.1f} s | {cold} |",
            f"| warm (cache up to date), median of 5 | {r['warm_s']:.2f} s (max {r['warm_max_s']:.2f} s) "
            f"| {warm} |",
            f"| the query alone | {r['query_s']:.3f} s | DuckDB over the Parquet parts, the session identity "
            "join included |",
            "",
            f"The cache holds {r['cache_bytes'] / 1e6:.0f} MB of Parquet for the window's "
            f"{r['window_gz'] / 1e6:.0f} MB of gzip objects. On Athena the same question scans the "
            f"window's objects whole (gzip is not splittable and text has no columns to skip): "
            f"{r['window_gz'] / 1e6:.0f} MB, ${per_tb:.4f} at ${ATHENA_PER_TB:.0f} per TB; a million "
            f"recorded operations is about {per_million_gz / 1e6:.0f} MB compressed (docs/cost.md).",
        ]
    )
    return summary, detail


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--operations", type=int, default=1_000_000)
    parser.add_argument("--write", action="store_true", help="replace the section in docs/benchmarks.md")
    args = parser.parse_args()
    command = (
        ".venv/bin/python benchmarks/recordings_query.py"
        + (f" --operations {args.operations}" if args.operations != 1_000_000 else "")
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
