"""Load on local mode: many concurrent agents through ``wardgate dev``, and every request recorded once.

Starts ``wardgate dev`` as a subprocess of its own (free loopback ports, its own ``WARDGATE_HOME``
in a temporary folder, so a developer's dev server is left alone), mints development tokens from
its issuer, and sends a fixed, shuffled mix of requests from ``--concurrency`` httpx clients:

- ``allowed``: ``GET /http/demo/anything`` (200, the echo upstream saw the injected credential);
- ``masked``: ``GET /http/demo/v1/customers`` (200 with ``x-wardgate-masked``);
- ``denied``: ``DELETE /http/demo/v1/users/1`` (403 ``denied_by_policy``);
- ``held``: ``POST /http/demo/v1/refunds`` (202 with a ``poll_url``; never approved, so each one
  starts a workflow and mails the local outbox: kept to 2%);
- ``sql``: ``POST /sql/demo-sql/Execute`` ``SELECT 1`` (200; the local PostgreSQL);
- ``sql_denied``: a ``DELETE`` on ``demo-sql`` (403 ``ForbiddenException``, ``denied_by_policy``).

Afterwards it reads every recording back from the dev server's moto (the S3 objects Firehose wrote
and a scan of the DynamoDB index) and checks that each request, by its ``x-wardgate-record-id``,
is in the index exactly once and in the stream with exactly its events (``request`` + ``response``
when forwarded, ``refused``, or ``held`` + the approval's ``requested`` step), none twice.

Bounded: ``--requests`` in all, ``--time-limit`` seconds for the load (what was sent by then is
reported) and ``--verify-limit`` for reading the recordings back; loopback only.

    .venv/bin/python benchmarks/load.py                           # 20,000 requests, 100 clients
    .venv/bin/python benchmarks/load.py --requests 1000 --concurrency 20
    .venv/bin/python benchmarks/load.py --write                   # and update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
MARKERS = ("<!-- load:start -->", "<!-- load:end -->")
SUMMARY_MARKERS = ("<!-- loadsummary:start -->", "<!-- loadsummary:end -->")
PLACEHOLDER_ARN = "arn:aws:rds:us-east-1:000000000000:cluster:wardgate"  # never used by wardgate
MASKED_CARD = "4242 4242 4242 4242"  # in the demo upstream's customers; must never come back
AGENTS = 10  # distinct token subjects; client i uses agent i % AGENTS
DISCOVERY_PATH = "/_dev/oidc/.well-known/openid-configuration"


DESCRIPTION = """\
Many agents at once through local mode (`benchmarks/load.py`): `wardgate dev` started as a
subprocess of its own (free loopback ports, a temporary `WARDGATE_HOME`), development tokens of 10
agents in group `ci`, and a fixed, shuffled mix of requests from concurrent httpx clients sharing
keep-alive connections: allowed (`GET /http/demo/anything`), masked (`GET /http/demo/v1/customers`),
denied by policy, held for approval (`POST /http/demo/v1/refunds`, never approved: each starts a
workflow and mails the outbox, hence 2%), and Data API calls to `demo-sql` (a `SELECT`, a refused
`DELETE`). The clients' connections are opened four at a time before the warm-up and kept: the
dev server listens with socketserver's default backlog of 5, and when 100 connections arrive at
once while it is busy, the kernel resets some of them (`ConnectionResetError`, seen as httpx
`ReadError`s) and delays others by SYN retransmissions (1 s, 3 s, ...).

Every response must have the status and body its kind expects. Then the recordings are read back
from the dev server's moto, the DynamoDB index (a scan) and the S3 objects Firehose wrote, and
matched by each response's `x-wardgate-record-id`: each id once in the index with the status the
agent got, and in the stream with exactly its events, none twice (`request` + `response` when
forwarded, `refused`, or `held` + the approval's `requested` step). Latency is
measured at the client, from sending the request to reading the whole response, so with 100
clients it is mostly time queued in the dev server (about clients / throughput). Resident memory
and threads are read from `/proc/<pid>/status` of the dev server after a warm-up and right after
the load; `tests/test_load_local.py` checks the same on 1,000 requests against the in-process
stack.

Read it as a check of correctness under concurrency, not of Lambda's speed: the dev server is one
Python process (one core, its GIL) serving the gateway, the demo upstream, PostgreSQL sessions and
moto together, and moto's Firehose writes one S3 object per record, synchronously, so each
forwarded request costs two S3 writes and a DynamoDB write over loopback HTTP into the same
process. Its memory grows with what moto stores: every S3 object, index item and Step Functions
execution stays in memory, and each held request's execution keeps three threads waiting for its
task token until the approval times out (15 minutes). A run of 1,000 requests against the
in-process stack under `tracemalloc` (2026-12-05) found 17.6 MB of new Python allocations after
the load: 14 MB in moto and the temporary files backing its S3 objects, 0.8 MB in the demo
upstream's log of the requests it received (`EchoUpstream.requests`), and 7 KB in wardgate's own
modules."""


# --------------------------------------------------------------------------------------- the mix
@dataclass(frozen=True)
class Kind:
    name: str
    share: float
    method: str
    path: str
    status: int
    events: frozenset[str]  # what its recording must hold, each exactly once
    body: Callable[[int], bytes | None] = lambda _: None
    check: Callable[[httpx.Response], str | None] = lambda _: None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_code(response: httpx.Response) -> str | None:
    doc = _json(response)
    if not isinstance(doc, dict):
        return None
    code = doc.get("code") or (doc.get("error") or {}).get("code")
    return str(code) if code else None


def _check_allowed(response: httpx.Response) -> str | None:
    doc = _json(response)
    credential = doc.get("credential") if isinstance(doc, dict) else None
    return None if credential == "accepted" else f"the upstream saw credential {credential!r}"


def _check_masked(response: httpx.Response) -> str | None:
    if not response.headers.get("x-wardgate-masked"):
        return "no x-wardgate-masked header"
    return "an unmasked card number came back" if MASKED_CARD in response.text else None


def _check_denied(response: httpx.Response) -> str | None:
    code = _error_code(response)
    return None if code == "denied_by_policy" else f"error code {code!r}"


def _check_held(response: httpx.Response) -> str | None:
    doc = _json(response)
    if not isinstance(doc, dict) or not doc.get("poll_url") or doc.get("status") != "pending":
        return f"not a pending hold: {response.text[:200]}"
    return None


def _check_sql(response: httpx.Response) -> str | None:
    doc = _json(response)
    records = doc.get("records") if isinstance(doc, dict) else None
    return None if records == [[{"longValue": 1}]] else f"records {records!r}"


def _sql_body(sql: str) -> Callable[[int], bytes]:
    doc = {"resourceArn": PLACEHOLDER_ARN, "secretArn": PLACEHOLDER_ARN, "sql": sql}
    data = json.dumps(doc).encode()
    return lambda _: data


FORWARDED = frozenset({"request", "response"})
KINDS = (
    Kind("allowed", 0.60, "GET", "/http/demo/anything", 200, FORWARDED, check=_check_allowed),
    Kind("masked", 0.20, "GET", "/http/demo/v1/customers", 200, FORWARDED, check=_check_masked),
    Kind("denied", 0.15, "DELETE", "/http/demo/v1/users/1", 403, frozenset({"refused"}), check=_check_denied),
    Kind(
        "held",
        0.02,
        "POST",
        "/http/demo/v1/refunds",
        202,
        frozenset({"held", "approval:requested"}),
        body=lambda i: json.dumps({"amount": 900, "order": f"load-{i}"}).encode(),
        check=_check_held,
    ),
    Kind(
        "sql",
        0.02,
        "POST",
        "/sql/demo-sql/Execute",
        200,
        FORWARDED,
        body=_sql_body("SELECT 1 AS one"),
        check=_check_sql,
    ),
    Kind(
        "sql_denied",
        0.01,
        "POST",
        "/sql/demo-sql/Execute",
        403,
        frozenset({"refused"}),
        body=_sql_body("DELETE FROM wardgate_load_nothing"),
        check=_check_denied,
    ),
)
KIND = {k.name: k for k in KINDS}
# Which recording events a kind's record may hold besides its own: a held request's later approval
# steps (the notifier's "notified"); anything else (a refused forwarded request...) is wrong.
OPTIONAL_EVENTS = {"held": ("approval:",)}


def plan(total: int, seed: int = 15) -> list[str]:
    """``total`` kind names in the mix's proportions (at least one of each when total allows), shuffled."""
    counts = {k.name: round(total * k.share) for k in KINDS}
    if total >= len(KINDS):
        counts = {name: max(1, n) for name, n in counts.items()}
    counts["allowed"] += total - sum(counts.values())
    names = [name for name, n in counts.items() for _ in range(n)]
    random.Random(seed).shuffle(names)
    return names


# --------------------------------------------------------------------------------------- sending
@dataclass
class Result:
    kind: str
    status: int | None  # None: no response (transport error)
    ms: float
    record_id: str | None
    problem: str | None  # why this response is not what its kind expects; None when it is
    sent_at: float = 0.0  # time.monotonic() when it was sent


@dataclass
class Run:
    results: list[Result] = field(default_factory=list)
    elapsed_s: float = 0.0
    stopped_by_time: bool = False


async def drive(
    base_url: str,
    tokens: Sequence[str],
    kinds: Sequence[str],
    concurrency: int,
    deadline: float,
    offset: int = 0,
    run: Run | None = None,
    shared: httpx.AsyncClient | None = None,
) -> Run:
    """Send ``kinds`` from ``concurrency`` clients sharing keep-alive connections; stop at ``deadline``.

    The connections are opened first, a few at a time (``open_connections``), unless ``shared``
    already has them. No request is started after ``deadline``; those in flight then finish (each
    bounded by the client's timeout), so every request sent has a known outcome.
    """
    run = run if run is not None else Run()
    order = iter(enumerate(kinds, start=offset))

    async def client(number: int, http: httpx.AsyncClient) -> None:
        auth = {"authorization": f"Bearer {tokens[number % len(tokens)]}"}
        for index, name in order:  # one shared iterator: each request is sent by exactly one client
            if time.monotonic() >= deadline:
                run.stopped_by_time = True
                return
            kind = KIND[name]
            body = kind.body(index)
            headers = {**auth, "content-type": "application/json"} if body is not None else auth
            sent_at, started = time.monotonic(), time.perf_counter()
            try:
                response = await http.request(kind.method, kind.path, headers=headers, content=body)
            except httpx.HTTPError as exc:
                ms = (time.perf_counter() - started) * 1000
                run.results.append(Result(name, None, ms, None, f"{type(exc).__name__}: {exc}", sent_at))
                continue
            ms = (time.perf_counter() - started) * 1000
            record_id = response.headers.get("x-wardgate-record-id")
            problem = None
            if response.status_code != kind.status:
                problem = f"status {response.status_code}: {response.text[:200]}"
            elif not record_id:
                problem = "no x-wardgate-record-id header"
            else:
                problem = kind.check(response)
            run.results.append(Result(name, response.status_code, ms, record_id, problem, sent_at))

    if shared is not None:  # the caller's client, its connections already open
        started = time.monotonic()
        await asyncio.gather(*(client(n, shared) for n in range(concurrency)))
    else:
        async with async_client(base_url, concurrency) as http:
            await open_connections(http, concurrency)
            started = time.monotonic()
            await asyncio.gather(*(client(n, http) for n in range(concurrency)))
    run.elapsed_s = time.monotonic() - started
    return run


def async_client(base_url: str, concurrency: int) -> httpx.AsyncClient:
    """One pool of ``concurrency`` keep-alive connections, kept however long they idle."""
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=None
    )
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=httpx.Timeout(60.0, connect=10.0))


async def open_connections(http: httpx.AsyncClient, count: int, batch: int = 4) -> None:
    """Open ``count`` connections, ``batch`` at a time, and leave them idle in the pool.

    The dev server listens with socketserver's backlog of 5: a burst of new connections while it
    is busy overflows it, and the kernel resets some of them (``ConnectionResetError``) or makes
    them wait for SYN retransmissions (1 s, 3 s, ...). Each connection is held by an unread response
    (the issuer's discovery document: not a gateway route, nothing recorded) until all are open.
    """
    async with contextlib.AsyncExitStack() as held:
        responses: list[httpx.Response] = []
        for start in range(0, count, batch):
            responses += await asyncio.gather(
                *(
                    held.enter_async_context(http.stream("GET", DISCOVERY_PATH))
                    for _ in range(min(batch, count - start))
                )
            )
        for response in responses:
            if response.status_code != 200:
                raise SystemExit(f"the dev server's issuer answered {response.status_code}")
            await response.aread()  # read to the end: the connection goes back to the pool


# ------------------------------------------------------------------------------ reading it back
@dataclass
class Audit:
    """What the recordings say about the requests that got a response."""

    expected: int = 0  # responses carrying a record id
    index_items: int = 0  # all items in the index table
    index_ours: int = 0  # distinct record ids of ours found in the index
    index_twice: list[str] = field(default_factory=list)
    index_missing: list[str] = field(default_factory=list)
    index_status_mismatch: list[str] = field(default_factory=list)
    index_foreign: int = 0  # items whose record id no response carried
    objects: int = 0
    object_bytes: int = 0
    events: int = 0
    stream_ours: int = 0
    stream_missing: list[str] = field(default_factory=list)
    stream_twice: list[str] = field(default_factory=list)  # an event of a record written twice
    stream_incomplete: list[str] = field(default_factory=list)  # a required event missing, or a wrong one
    stream_foreign: int = 0
    once: int = 0  # record ids once in the index and in the stream with exactly their events
    notified: int = 0  # held requests whose approvers' mail was sent (an asynchronous step)
    unread: int = 0  # S3 objects not read before the verification's deadline
    unlisted: bool = False  # the listing of S3 objects was cut short by the deadline

    @property
    def ok(self) -> bool:
        return (
            self.expected > 0
            and self.index_ours == self.expected
            and self.stream_ours == self.expected
            and not (self.unread or self.unlisted)
            and not (self.index_twice or self.index_missing or self.index_status_mismatch)
            and not (self.stream_missing or self.stream_twice or self.stream_incomplete)
            and not (self.index_foreign or self.stream_foreign)
        )

    def problems(self) -> list[str]:
        found = []
        for label, ids in (
            ("in the index twice", self.index_twice),
            ("missing from the index", self.index_missing),
            ("with another status in the index", self.index_status_mismatch),
            ("missing from the stream", self.stream_missing),
            ("with an event recorded twice", self.stream_twice),
            ("with incomplete or wrong events", self.stream_incomplete),
        ):
            if ids:
                found.append(f"{len(ids)} record(s) {label}: {', '.join(ids[:5])}")
        if self.index_foreign or self.stream_foreign:
            found.append(
                f"records nobody was answered for: {self.index_foreign} in the index, "
                f"{self.stream_foreign} in the stream"
            )
        if self.unread or self.unlisted:
            found.append(
                f"the stream was not read completely before the time limit ({self.unread} object(s) "
                f"unread{', the listing cut short' if self.unlisted else ''})"
            )
        return found


def audit(
    results: Sequence[Result],
    s3: Any,
    dynamodb: Any,
    bucket: str,
    prefix: str,
    table: str,
    deadline: float,
    workers: int = 16,
) -> Audit:
    """Match the responses' record ids against the index table and the stream's S3 objects."""
    report = Audit()
    ours = {r.record_id: r for r in results if r.record_id}
    report.expected = len(ours)

    index: Counter[str] = Counter()
    statuses: dict[str, int] = {}
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table, ProjectionExpression="record_id, #s", ExpressionAttributeNames={"#s": "status"}
    ):
        for item in page["Items"]:
            record_id = item["record_id"]["S"]
            index[record_id] += 1
            statuses[record_id] = int(item["status"]["N"])
    report.index_items = sum(index.values())
    report.index_ours = sum(1 for rid in ours if rid in index)
    report.index_twice = sorted(rid for rid, n in index.items() if n > 1)
    report.index_missing = sorted(rid for rid in ours if rid not in index)
    report.index_status_mismatch = sorted(
        rid for rid, r in ours.items() if rid in statuses and statuses[rid] != r.status
    )
    report.index_foreign = sum(1 for rid in index if rid not in ours)

    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            keys.append(obj["Key"])
            report.object_bytes += obj["Size"]
        if time.monotonic() >= deadline and page.get("IsTruncated"):
            report.unlisted = True
            break
    report.objects = len(keys)

    def read(key: str) -> list[tuple[str, str]]:
        if time.monotonic() >= deadline:
            raise TimeoutError(key)
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        if data[:2] == b"\x1f\x8b":
            import gzip

            data = gzip.decompress(data)
        seen = []
        for line in data.splitlines():
            event = json.loads(line)
            name = event["event"]
            if name == "approval":
                name = f"approval:{(event.get('approval') or {}).get('step')}"
            seen.append((event["record_id"], name))
        return seen

    events: dict[str, Counter[str]] = defaultdict(Counter)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(read, key) for key in keys]
        for future in futures:
            try:
                pairs = future.result()
            except TimeoutError:
                report.unread += 1
                continue
            for record_id, name in pairs:
                events[record_id][name] += 1
                report.events += 1

    for record_id, result in ours.items():
        seen = events.get(record_id)
        if not seen:
            report.stream_missing.append(record_id)
            continue
        report.stream_ours += 1
        if any(n > 1 for n in seen.values()):
            report.stream_twice.append(record_id)
        required = KIND[result.kind].events
        optional = OPTIONAL_EVENTS.get(result.kind, ())
        extra = [e for e in seen if e not in required and not e.startswith(optional or ("\0",))]
        if any(e not in seen for e in required) or extra:
            report.stream_incomplete.append(record_id)
        if seen.get("approval:notified"):
            report.notified += 1
    report.stream_foreign = sum(1 for rid in events if rid not in ours)
    flawed = {
        *report.index_twice,
        *report.index_missing,
        *report.index_status_mismatch,
        *report.stream_missing,
        *report.stream_twice,
        *report.stream_incomplete,
    }
    report.once = sum(1 for rid in ours if rid not in flawed)
    return report


# ------------------------------------------------------------------------------------ the figures
def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolated between the closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_rows(results: Sequence[Result]) -> list[tuple[str, int, int, float, float, float]]:
    """Per kind, then overall: requests, unexpected, p50, p99, max (ms)."""
    by_kind: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by_kind[r.kind].append(r)
    rows = []
    for name in [k.name for k in KINDS if k.name in by_kind] + ["all"]:
        chosen = list(results) if name == "all" else by_kind[name]
        ms = [r.ms for r in chosen]
        unexpected = sum(1 for r in chosen if r.problem)
        rows.append((name, len(chosen), unexpected, percentile(ms, 50), percentile(ms, 99), max(ms)))
    return rows


# ------------------------------------------------------------------------------ the dev server
def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _die_with_parent() -> None:
    """In the child: SIGTERM when this script dies, so no dev server outlives a killed run (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class DevServer:
    """``wardgate dev`` in a subprocess with its own WARDGATE_HOME, stopped by its pid."""

    home: Path
    port: int
    upstream_port: int
    aws_port: int
    pg_port: int
    process: subprocess.Popen[bytes] | None = None
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.home / "dev.log"

    def start(self, timeout: float = 120.0) -> DevServer:
        env = {**os.environ, "WARDGATE_HOME": str(self.home)}
        env.pop("AWS_ENDPOINT_URL", None)
        command = [
            str(BIN / "wardgate"),
            "dev",
            *("--port", str(self.port), "--upstream-port", str(self.upstream_port)),
            *("--aws-port", str(self.aws_port), "--pg-port", str(self.pg_port)),
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
            )
        until = time.monotonic() + timeout
        state_file = self.home / "dev.json"
        while time.monotonic() < until:
            if self.process.poll() is not None:
                raise SystemExit(f"wardgate dev exited ({self.process.returncode}):\n{self.tail()}")
            if state_file.exists():
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    answer = httpx.get(f"{self.url}{DISCOVERY_PATH}", timeout=2)
                    if answer.status_code == 200:
                        self.state = json.loads(state_file.read_text())
                        return self
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"wardgate dev did not answer within {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def tracebacks(self) -> list[str]:
        """Each traceback in the dev server's output so far, whole (the log goes with WARDGATE_HOME)."""
        found: list[str] = []
        current: list[str] = []
        with contextlib.suppress(OSError):
            for line in self.log.read_text(errors="replace").splitlines():
                if line.startswith("Traceback (most recent call last)") or (current and line[:1] in " \t"):
                    current.append(line)
                    continue
                if current:  # the exception's own line ends it
                    found.append("\n".join([*current, line]))
                    current = []
        return found

    def proc_status(self) -> dict[str, str]:
        assert self.process is not None
        with contextlib.suppress(OSError):
            text = Path(f"/proc/{self.process.pid}/status").read_text()
            return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
        return {}

    def rss_mb(self) -> float:
        return int(self.proc_status().get("VmRSS", "0 kB").split()[0]) / 1024

    def threads(self) -> int:
        return int(self.proc_status().get("Threads", "0"))

    def cpu_s(self) -> float:
        """User + system CPU time of the dev server so far."""
        assert self.process is not None
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return float("nan")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # wardgate dev stops its stack on SIGTERM
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def aws(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.state["aws_endpoint"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # moto's
            config=Config(max_pool_connections=32, retries={"max_attempts": 2}),
        )

    def mint_tokens(self, count: int, ttl: int) -> list[str]:
        """Tokens of ``count`` agents in group ci, minted with the dev issuer's key (``wardgate token``)."""
        sys.path.insert(0, str(ROOT / "layers" / "wardgate"))
        from wardgate.dev.oidc import ISSUER_PATH, DevIssuer

        issuer = DevIssuer(self.url + ISSUER_PATH, self.home / "dev-issuer-key.pem")
        return [issuer.mint(f"load-agent-{i}", ["ci"], ttl=ttl) for i in range(count)]


# ----------------------------------------------------------------------------------- the run
@dataclass
class Measured:
    args: argparse.Namespace
    warmup: Run
    load: Run
    audit: Audit
    before: Snapshot  # the dev server after the warm-up
    after: Snapshot  # and right after the load
    rss_peak_mb: float
    rss_samples: list[tuple[float, int, float]]  # (seconds into the load, responses so far, MB)
    verify_s: float
    planned: int
    tracebacks: list[str]  # in the dev server's output (each one's last line is the exception)


async def _phases(
    server: DevServer, tokens: list[str], warm_kinds: list[str], kinds: list[str], args: Any
) -> Any:
    """Warm-up, then the load, through one client (the load starts on the warm-up's connections)."""
    async with async_client(server.url, args.concurrency) as http:
        log(f"opening {args.concurrency} connections, 4 at a time ...")
        await open_connections(http, args.concurrency)
        log(f"warm-up: {len(warm_kinds)} requests at {args.concurrency} clients ...")
        warmup = await drive(
            server.url,
            tokens,
            warm_kinds,
            args.concurrency,
            time.monotonic() + 180,
            shared=http,
        )
        await asyncio.sleep(1.0)
        before = Snapshot.of(server)
        log(f"dev server: {before.rss_mb:.1f} MB resident, {before.threads} threads")
        log(f"load: {len(kinds)} requests at {args.concurrency} clients (limit {args.time_limit:.0f} s) ...")
        samples: list[tuple[float, int, float]] = []
        run = Run()
        deadline = time.monotonic() + args.time_limit
        task = asyncio.ensure_future(
            drive(server.url, tokens, kinds, args.concurrency, deadline, len(warm_kinds), run, shared=http)
        )
        started = time.monotonic()
        while not task.done():
            await asyncio.wait({task}, timeout=1.0)
            samples.append((time.monotonic() - started, len(run.results), server.rss_mb()))
            if len(samples) % 30 == 0:
                seconds, done, mb = samples[-1]
                log(f"  {seconds:.0f} s: {done} responses ({done / seconds:.0f}/s), dev server {mb:.0f} MB")
        task.result()
        after = Snapshot.of(server)
    return warmup, run, samples, before, after


@dataclass(frozen=True)
class Snapshot:
    rss_mb: float
    threads: int
    cpu_s: float
    listen_overflows: int  # the kernel's count, all processes (TcpExtListenOverflows)

    @classmethod
    def of(cls, server: DevServer) -> Snapshot:
        return cls(server.rss_mb(), server.threads(), server.cpu_s(), listen_overflows())


def listen_overflows() -> int:
    """Connections the kernel could not queue for accept() because a listen backlog was full."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        lines = Path("/proc/net/netstat").read_text().splitlines()
        for names, values in zip(lines[::2], lines[1::2], strict=False):
            if names.startswith("TcpExt:"):
                return int(values.split()[names.split().index("ListenOverflows")])
    return -1


def measure(args: argparse.Namespace) -> Measured:
    with tempfile.TemporaryDirectory(prefix="wardgate-load-") as home:
        port, upstream_port, aws_port, pg_port = free_ports(4)
        server = DevServer(Path(home), port, upstream_port, aws_port, pg_port)
        log(f"starting wardgate dev on {server.url} (moto on :{aws_port}, WARDGATE_HOME {home}) ...")
        server.start()
        try:
            return _measure(server, args)
        except BaseException:
            log(f"wardgate dev's last lines:\n{server.tail()}")
            raise
        finally:
            server.stop()


def _measure(server: DevServer, args: argparse.Namespace) -> Measured:
    tokens = server.mint_tokens(AGENTS, ttl=int(args.time_limit + args.verify_limit + 600))
    warm_kinds = plan(args.warmup, seed=1) if args.warmup else []
    kinds = plan(args.requests)
    loop = _event_loop()
    try:
        warmup, run, samples, before, after = loop.run_until_complete(
            _phases(server, tokens, warm_kinds, kinds, args)
        )
    finally:
        loop.close()
    log(
        f"load done: {len(run.results)} in {run.elapsed_s:.1f} s; dev server {after.rss_mb:.1f} MB, "
        f"{after.threads} threads"
    )

    log("reading the recordings back (index scan, stream objects) ...")
    started = time.monotonic()
    env = server.state["env"]
    report = audit(
        warmup.results + run.results,
        server.aws("s3"),
        server.aws("dynamodb"),
        env["RECORDINGS_BUCKET"],
        env["RECORDINGS_PREFIX"],
        env["RECORDINGS_TABLE"],
        deadline=started + args.verify_limit,
    )
    tracebacks = server.tracebacks()
    for text in tracebacks[:3]:
        log(f"a traceback in wardgate dev's output:\n{text}")
    return Measured(
        tracebacks=tracebacks,
        args=args,
        warmup=warmup,
        load=run,
        audit=report,
        before=before,
        after=after,
        rss_peak_mb=max([after.rss_mb, before.rss_mb, *[mb for _, _, mb in samples]]),
        rss_samples=samples,
        verify_s=time.monotonic() - started,
        planned=len(kinds),
    )


def _event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- the report
def fmt(n: float) -> str:
    return f"{n:,.0f}"


def tail_times(results: Sequence[Result]) -> str:
    """When the slowest 1% of the requests were sent: spread over the run, or bunched in a stall."""
    if not results:
        return "-"
    first = min(r.sent_at for r in results)
    slowest = sorted(results, key=lambda r: r.ms)[-max(1, len(results) // 100) :]
    offsets = [r.sent_at - first for r in slowest]
    return " / ".join(f"{percentile(offsets, q):.0f}" for q in (10, 50, 90)) + f" (of {len(slowest)})"


def checkpoints(m: Measured) -> str:
    """VmRSS (MB) from the first sample taken once a quarter, a half... of the responses were in."""
    sent = len(m.load.results)
    marks = []
    for quarter in (1, 2, 3):
        mb = next((mb for _, done, mb in m.rss_samples if done >= sent * quarter / 4), None)
        marks.append("-" if mb is None else f"{mb:.0f}")
    return " / ".join([*marks, f"{m.after.rss_mb:.0f} MB"])


def report(m: Measured, command: str, version: str) -> tuple[str, str]:
    """The section's text, and its summary; ``version`` is the code the dev server was started on."""
    from common import machine

    results = m.load.results
    sent = len(results)
    unexpected = [r for r in m.warmup.results + results if r.problem]
    throughput = sent / m.load.elapsed_s if m.load.elapsed_s else 0.0
    a = m.audit
    recorded_once = a.ok
    total = len(m.warmup.results) + sent
    met = not unexpected and recorded_once and sent == m.planned
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    shares = ", ".join(f"{k.name} {k.share:.0%}" for k in KINDS)
    lines = [
        f"Run {when} of {version} on {machine()}; `{command}`: {fmt(sent)} of {fmt(m.planned)} "
        f"requests sent at {m.args.concurrency} concurrent clients (on one pool of as many keep-alive "
        f"connections, opened 4 at a time beforehand) in {m.load.elapsed_s:.1f} s "
        f"({'stopped by the time limit' if m.load.stopped_by_time else 'all of them'}), after a warm-up "
        f"of {fmt(len(m.warmup.results))} (also checked below, not timed). Mix: {shares}.",
        "",
        "| kind | request | expected | requests | unexpected | p50 (ms) | p99 (ms) | max (ms) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, count, bad, p50, p99, worst in latency_rows(results):
        if name == "all":
            lines.append(
                f"| **all** | | | **{fmt(count)}** | **{bad}** | **{p50:.0f}** | **{p99:.0f}** "
                f"| {worst:.0f} |"
            )
            continue
        k = KIND[name]
        lines.append(
            f"| {name} | `{k.method} {k.path}` | {k.status} | {fmt(count)} | {bad} | {p50:.0f} | {p99:.0f} "
            f"| {worst:.0f} |"
        )
    per_k = (m.after.rss_mb - m.before.rss_mb) / sent * 1000 if sent else 0.0
    cpu_ms = (m.after.cpu_s - m.before.cpu_s) / sent * 1000 if sent else 0.0
    lines += [
        "",
        "| | |",
        "|---|---:|",
        f"| throughput | **{throughput:.0f} requests/s** |",
        f"| dev server CPU (user + system) per request | {cpu_ms:.1f} ms |",
        f"| dev server resident memory (VmRSS) before / after the load | {m.before.rss_mb:.0f} MB / "
        f"{m.after.rss_mb:.0f} MB (peak {m.rss_peak_mb:.0f} MB) |",
        f"| when the slowest 1% were sent (10th / 50th / 90th percentile, seconds into the load) "
        f"| {tail_times(results)} |",
        f"| growth per 1,000 requests | {per_k:.1f} MB |",
        f"| resident memory at 25% / 50% / 75% / 100% of the responses | {checkpoints(m)} |",
        f"| dev server threads before / after | {m.before.threads} / {m.after.threads} |",
        f"| listen queue overflows during the load (the kernel's `TcpExtListenOverflows`, all processes) "
        f"| {fmt(m.after.listen_overflows - m.before.listen_overflows)} |",
        "",
        f"Recordings read back in {m.verify_s:.0f} s from the dev server's moto ({fmt(a.objects)} S3 "
        f"objects, "
        f"{a.object_bytes / 1e6:.1f} MB, {fmt(a.events)} events; {fmt(a.index_items)} index items), "
        f"matched by each response's `x-wardgate-record-id` ({fmt(a.expected)} responses, warm-up included):",
        "",
        "| check | result |",
        "|---|---|",
        f"| responses with the status and body their kind expects | {fmt(total - len(unexpected))} of "
        f"{fmt(total)} |",
        f"| record ids in the index (DynamoDB scan) | {fmt(a.index_ours)} of {fmt(a.expected)}; "
        f"{len(a.index_twice)} twice, {len(a.index_missing)} missing, {a.index_foreign} not ours, "
        f"{len(a.index_status_mismatch)} with another status |",
        f"| record ids in the stream (Firehose's S3 objects) | {fmt(a.stream_ours)} of {fmt(a.expected)}; "
        f"{len(a.stream_twice)} with an event twice, {len(a.stream_incomplete)} incomplete or wrong, "
        f"{len(a.stream_missing)} missing, {a.stream_foreign} not ours |",
        f"| held requests whose approvers were mailed by the end (asynchronous) | {a.notified} |",
        "",
        f"Targets (issue 15): 0 unexpected errors: **{'met' if not unexpected else 'missed'}** "
        f"({len(unexpected)}); every request recorded exactly once, in the stream and the index: "
        f"**{'met' if recorded_once else 'missed'}**.",
    ]
    if unexpected:
        lines += ["", "Unexpected responses (first 5):", ""]
        lines += [f"- {r.kind}: {r.problem}" for r in unexpected[:5]]
    if m.tracebacks:
        last = Counter(t.splitlines()[-1] for t in m.tracebacks)
        lines += ["", f"Tracebacks in the dev server's output: {len(m.tracebacks)}:", ""]
        lines += [f"- {n} x `{line}`" for line, n in last.most_common(5)]
    if a.problems():
        lines += ["", "Recording problems:", ""] + [f"- {p}" for p in a.problems()]
    verdict = "**met**" if met else "**missed**"
    summary = "\n".join(
        [
            f"**Load on local mode** (issue 15; `{command}`, {when}, {version}; details in "
            "[its section](#load-on-local-mode)):",
            "",
            "| target | measured | |",
            "|---|---|---|",
            f"| {fmt(m.planned)} requests at {m.args.concurrency} clients through `wardgate dev`: "
            "0 unexpected errors, every request recorded exactly once (stream and index) | "
            f"{len(unexpected)} unexpected, "
            f"{fmt(a.once)} of {fmt(a.expected)} recorded exactly once ({fmt(sent)} sent); "
            f"{throughput:.0f} requests/s, p99 {latency_rows(results)[-1][4]:,.0f} ms | {verdict} |",
        ]
    )
    return "\n".join(lines), summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20000, help="requests in the load (default 20000)")
    parser.add_argument("--concurrency", type=int, default=100, help="concurrent clients (default 100)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests first (default 200)")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=1200,
        help="seconds after which no request starts (default 1200: the dev server serves 20-30 requests/s)",
    )
    parser.add_argument(
        "--verify-limit", type=float, default=600, help="seconds for reading recordings back (default 600)"
    )
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be positive")

    # The hard stop: whatever hangs, the run ends (and stops its dev server) by itself.
    hard_limit = int(args.time_limit + args.verify_limit + 300)

    def hard_stop(signum: int, _: Any) -> None:
        if signum == signal.SIGALRM:
            raise SystemExit(f"load.py: hard time limit of {hard_limit} s reached")
        raise SystemExit(f"load.py: stopped by signal {signum}")

    signal.signal(signal.SIGALRM, hard_stop)
    signal.alarm(hard_limit)
    signal.signal(signal.SIGTERM, hard_stop)

    from common import code_version

    version = code_version()  # the code the dev server imports now (the tree may change meanwhile)
    measured = measure(args)
    signal.alarm(0)
    command = " ".join(["benchmarks/load.py", *sys.argv[1:]])
    text, summary = report(measured, f".venv/bin/python {command}", version)
    print(text)
    print("\nsummary line:\n" + summary)
    if args.write:
        write(text, summary)
    ok = not any(r.problem for r in measured.warmup.results + measured.load.results) and measured.audit.ok
    sys.exit(0 if ok else 1)


def write(text: str, summary: str) -> None:
    """This run's section, and its line in a summary table of its own at the top of the document.

    The markers are added the first time (the section at the end, the summary after the other
    summaries at the top); after that only what is between them changes. The document is read
    right before each change: other benchmarks write their own sections of it.
    """
    from common import DOC, write_section

    doc = DOC.read_text()
    if MARKERS[0] not in doc:
        DOC.write_text(f"{doc.rstrip()}\n\n## Load on local mode\n\n{MARKERS[0]}\n{MARKERS[1]}\n")
    write_section(MARKERS, f"{DESCRIPTION}\n\n{text}")
    doc = DOC.read_text()
    if SUMMARY_MARKERS[0] not in doc:
        head, how, tail = doc.partition("\n## How to run")
        if not how:
            raise SystemExit(f"{DOC} has no '## How to run' heading to put the summary before")
        DOC.write_text(f"{head.rstrip()}\n\n{SUMMARY_MARKERS[0]}\n{SUMMARY_MARKERS[1]}\n{how}{tail}")
    write_section(SUMMARY_MARKERS, summary)


if __name__ == "__main__":
    main()
