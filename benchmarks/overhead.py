"""The time wardgate itself adds to one request on a warm container, against calling the upstream directly.

Both paths talk to the same real HTTP server on loopback (a separate process that answers every
request with a fixed 1 KB JSON body), over kept-alive httpx connections:

- baseline: ``httpx.Client.get`` straight to the upstream, with the backend credential;
- guarded: what a warm Lambda invocation runs, in-process: the API Gateway payload 2.0 event
  (built outside the timed region, as API Gateway builds it) goes through
  ``HttpRequest.from_apigw_v2`` -> ``HttpGateway.handle`` -> ``HttpResponse.to_apigw_v2`` (the body
  of ``wardgate.runtime.handle_http_event``). The token is validated as on a warm container: verified
  (RS256, keys from a cached JWKS) the first time, then remembered (``identity.VerifiedTokens``: until
  its expiry, at most 60 s), while the agent registry is asked on every request; the connection
  and the credential come from the stores' own caches (their AWS loads are stubbed out and happen
  only on cache expiry); recordings are serialised in full and handed to in-memory sinks;
  Powertools log lines and EMF metrics are formatted and written as on Lambda (log level INFO),
  to /dev/null.

Samples are taken in alternating blocks so that a noisy machine hurts both paths alike.

    .venv/bin/python benchmarks/overhead.py            # print the table
    .venv/bin/python benchmarks/overhead.py --write    # and update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import summary
from common import DOC, ROOT, code_version, machine, write_section

sys.path.insert(0, str(ROOT / "layers" / "wardgate"))

MARKERS = ("<!-- overhead:start -->", "<!-- overhead:end -->")
BODY_BYTES = 1024
UPSTREAM_TOKEN = "bench-upstream-token"  # the backend credential the gateway injects
CONNECTION = "bench"
SECRET = "wardgate/bench"
PATH = "/v1/items/42"
TARGET_P50_MS = 1.0
TARGET_P99_MS = 3.0
TARGET_P50_RATIO = 1.8  # issue 16: guarded p50 at most 1.8x direct
TARGET_TAIL = 2.0  # issue 16: added p99 at most 2x added p50


# ------------------------------------------------------------------------------------------ upstream
def fixed_body(size: int = BODY_BYTES) -> bytes:
    """A JSON document of exactly ``size`` bytes."""
    doc: dict[str, Any] = {
        "id": 42,
        "items": [{"sku": f"SKU-{i:04d}", "qty": i, "price": 9.99 + i} for i in range(8)],
        "pad": "",
    }
    doc["pad"] = "x" * (size - len(json.dumps(doc).encode()))
    body = json.dumps(doc).encode()
    assert len(body) == size, len(body)
    return body


def serve_upstream() -> None:
    """Child process: a keep-alive HTTP/1.1 server that answers every request with the fixed body."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = fixed_body()
    head = (
        "HTTP/1.1 {status}\r\nserver: bench-upstream\r\ndate: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
        "content-type: application/json\r\ncache-control: no-store\r\ncontent-length: {length}\r\n\r\n"
    )
    ok = head.format(status="200 OK", length=len(body)).encode() + body
    denied_body = b'{"error":"wrong or missing credential"}'
    denied = head.format(status="401 Unauthorized", length=len(denied_body)).encode() + denied_body
    expected = f"Bearer {UPSTREAM_TOKEN}"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            # One write per response: headers and body leave in the same segment.
            self.wfile.write(ok if self.headers.get("authorization") == expected else denied)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


@contextlib.contextmanager
def upstream_process() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve-upstream"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


# ------------------------------------------------------------------------------------------ helpers
def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@contextlib.contextmanager
def stdout_to_devnull() -> Iterator[None]:
    """Send fd 1 to /dev/null, one write per line (Lambda's stdout is unbuffered): logs and EMF still cost."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    line_buffering = sys.stdout.line_buffering
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
        sys.stdout.reconfigure(line_buffering=line_buffering)  # type: ignore[union-attr]


def median_us(fn: Callable[[], Any], n: int) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ the bench
class Bench:
    def __init__(self, upstream: str, workdir: Path) -> None:
        import httpx

        from wardgate.agents import AgentRegistry, AgentTable, agent_key
        from wardgate.apigw import HttpRequest
        from wardgate.config import Limits
        from wardgate.connections import Connection, ConnectionStore
        from wardgate.credentials import Credential, CredentialStore
        from wardgate.dev.oidc import ISSUER_PATH, DevIssuer
        from wardgate.dev.server import LambdaContext, api_gateway_event
        from wardgate.dev.stack import DEV_POLICY
        from wardgate.dev.template import Template
        from wardgate.gateway import HttpGateway
        from wardgate.identity import IssuerConfig, TokenValidator
        from wardgate.policy.document import version_of
        from wardgate.policy.store import PolicyStore
        from wardgate.proxies.http import HttpForwarder
        from wardgate.recording import MemoryIndex, MemoryStream, Recorder
        from wardgate.runtime import deadline_for

        self.upstream = upstream
        self.issuer = DevIssuer(f"http://127.0.0.1:9{ISSUER_PATH}", workdir / "issuer.pem")
        documents = {
            self.issuer.issuer + "/.well-known/openid-configuration": self.issuer.discovery(),
            self.issuer.issuer + "/jwks": self.issuer.jwks(),
        }
        self.jwks_fetches = 0

        def fetch_json(url: str) -> dict[str, Any]:
            self.jwks_fetches += 1
            return documents[url]

        connection = Connection(
            name=CONNECTION,
            kind="http",
            upstream_url=upstream,
            credential_secret=SECRET,
            allowed_groups=("ci",),
        )
        secret = json.dumps({"type": "bearer", "token": UPSTREAM_TOKEN})
        self.loads: dict[str, int] = {"connection": 0, "credential": 0, "policy": 0, "agent": 0}
        loads = self.loads

        class CachedConnections(ConnectionStore):
            """The real store and cache; only the DynamoDB read behind a cache miss is replaced."""

            def _load(self, name: str) -> Connection | None:
                loads["connection"] += 1
                return connection if name == connection.name else None

        class CachedCredentials(CredentialStore):
            """The real store and cache; only the Secrets Manager read behind a cache miss is replaced."""

            @staticmethod
            def _load(secret_id: str) -> Credential:
                loads["credential"] += 1
                return Credential.from_secret(secret)

        class CachedPolicies(PolicyStore):
            """The real store and cache; only the DynamoDB reads behind a cache miss are replaced."""

            def current_version(self, consistent: bool = True) -> str:
                return version_of(DEV_POLICY)

            def document(self, version: str | None = None) -> dict[str, Any] | None:
                loads["policy"] += 1
                return DEV_POLICY

        class CachedAgents(AgentTable):
            """The real registry and cache; only the DynamoDB reads and writes behind it are replaced."""

            def get(self, pk: str) -> dict[str, Any] | None:
                loads["agent"] += 1
                return bench_agent if pk == agent_key(bench_agent["issuer"], bench_agent["subject"]) else None

            def touch(self, pk: str, when: int) -> None:
                pass

        bench_agent = {
            "issuer": self.issuer.issuer,
            "subject": "bench-agent",
            "owner": "owner@example.com",
            "purpose": "benchmark",
            "connections": [CONNECTION],
        }
        limits = Limits()
        self.validator = TokenValidator(
            [IssuerConfig.from_dict(self.issuer.issuer_config())], fetch_json=fetch_json
        )
        self.stream, self.index = MemoryStream(), MemoryIndex()
        self.recorder = Recorder(self.stream, self.index)
        self.gateway = HttpGateway(
            validator=self.validator,
            connections=CachedConnections("wardgate-connections"),
            credentials=CachedCredentials(),
            recorder=self.recorder,
            forwarder=HttpForwarder(limits.connect_timeout, limits.max_response_body),
            policies=CachedPolicies("wardgate-policies", "wardgate-connections", ttl_seconds=5.0),
            limits=limits,
            agents=AgentRegistry(CachedAgents("wardgate-agents")),
        )
        self.token = self.issuer.mint("bench-agent", groups=["ci"], ttl=6 * 3600)
        self.authorization = f"Bearer {self.token}"
        routes = Template(ROOT / "template.yaml").routes()
        self.raw_path = f"/http/{CONNECTION}{PATH}"
        self.route = next(r for r in routes if r.match("GET", self.raw_path) is not None)
        self._api_gateway_event = api_gateway_event
        self._context = LambdaContext
        self._from_apigw_v2 = HttpRequest.from_apigw_v2
        self._deadline_for = deadline_for

        self.client = httpx.Client(trust_env=False)
        self.direct_url = upstream + PATH
        self.direct_headers = {"authorization": f"Bearer {UPSTREAM_TOKEN}", "accept": "application/json"}

    def event(self) -> dict[str, Any]:
        headers = {
            "accept": "application/json",
            "accept-encoding": "gzip, deflate",
            "authorization": self.authorization,
            "content-length": "0",
            "host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "user-agent": "python-httpx/0.28.1",
            "x-amzn-trace-id": "Root=1-65a1b2c3-0123456789abcdef01234567",
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        }
        return self._api_gateway_event(self.route, "GET", self.raw_path, "", headers, b"", "203.0.113.7")

    # The two timed paths --------------------------------------------------------------------------
    def direct(self) -> bytes:
        response = self.client.get(self.direct_url, headers=self.direct_headers)
        if response.status_code != 200:
            raise RuntimeError(f"upstream answered {response.status_code}")
        return response.content

    def guarded(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        # wardgate.runtime.handle_http_event, with this bench's gateway in place of runtime.http_gateway()
        request = self._from_apigw_v2(event)
        response = self.gateway.handle(
            request, self._deadline_for(context, self.gateway.limits.upstream_timeout)
        )
        return response.to_apigw_v2()

    # ---------------------------------------------------------------------------------------------
    def check(self) -> None:
        body = self.direct()
        result = self.guarded(self.event(), self._context("HttpProxyFunction"))
        if result["statusCode"] != 200:
            raise RuntimeError(f"guarded request failed: {result['statusCode']} {result.get('body')}")
        if result["body"].encode() != body or len(body) != BODY_BYTES:
            raise RuntimeError("guarded response body differs from the upstream's")

    def run(self, blocks: int, block_size: int, warmup: int) -> dict[str, list[float]]:
        """Per-request times (ms) of both paths, plus the gateway's own ``timings_ms`` of each guarded one."""
        samples: dict[str, list[float]] = {
            "direct": [],
            "guarded": [],
            "guard": [],
            "upstream": [],
            "handle": [],
        }
        perf = time.perf_counter_ns
        with stdout_to_devnull():
            for _ in range(warmup):
                self.direct()
                self.guarded(self.event(), self._context("HttpProxyFunction"))
            self.stream.lines.clear()
            self.index.entries.clear()
            for block in range(blocks):
                # Alternate which path goes first, so neither always follows the other.
                order = ("direct", "guarded") if block % 2 == 0 else ("guarded", "direct")
                for name in order:
                    out = samples[name]
                    if name == "direct":
                        for _ in range(block_size):
                            start = perf()
                            self.direct()
                            out.append((perf() - start) / 1e6)
                    else:
                        for _ in range(block_size):
                            event, context = self.event(), self._context("HttpProxyFunction")
                            start = perf()
                            result = self.guarded(event, context)
                            out.append((perf() - start) / 1e6)
                            if result["statusCode"] != 200:
                                raise RuntimeError(f"guarded request failed: {result['statusCode']}")
                for line in self.stream.lines:  # the gateway times its own phases into each recording
                    recorded = json.loads(line)
                    if recorded["event"] == "response":
                        timings = recorded["timings_ms"]
                        samples["guard"].append(timings["guard"])
                        samples["upstream"].append(timings["upstream"])
                        samples["handle"].append(timings["total"])
                self.stream.lines.clear()
                self.index.entries.clear()
        return samples

    def breakdown(self, n: int) -> dict[str, float]:
        """Medians (microseconds) of parts of the guarded path, each timed on its own."""
        from wardgate.apigw import HttpResponse
        from wardgate.gateway import HttpGateway
        from wardgate.identity import IssuerConfig, TokenValidator, VerifiedTokens
        from wardgate.recording import Recording, recorded_body, recorded_headers

        authenticate = self.validator.authenticate
        forgetful = TokenValidator(  # remembers no token: every call verifies in full
            [IssuerConfig.from_dict(self.issuer.issuer_config())],
            fetch_json=lambda url: {
                self.issuer.issuer + "/.well-known/openid-configuration": self.issuer.discovery(),
                self.issuer.issuer + "/jwks": self.issuer.jwks(),
            }[url],
            verified=VerifiedTokens(max_entries=0),
        )
        authorization = self.authorization
        event = self.event()
        request = self._from_apigw_v2(event)
        body = fixed_body()
        identity = authenticate(authorization)

        def recording() -> Recording:
            rec = self.gateway.start_recording(request)
            rec.identity = identity.to_record()
            rec.operation = {"protocol": "http", "method": "GET", "path": PATH, "query": ""}
            rec.decision = {
                "outcome": "allow",
                "reason": "member of 'ci'",
                "rule": "connection.allowed_groups",
            }
            rec.timings_ms.update(guard=0.1, upstream=0.5, total=0.7)
            rec.response = {
                "status": 200,
                "headers": recorded_headers([("content-type", "application/json"), ("server", "x")]),
                "cookies": 0,
                "body": recorded_body(body, self.gateway.limits.recorded_body_bytes),
            }
            return rec

        prepared = recording()

        def record() -> None:
            self.recorder.record_request(prepared)
            self.recorder.record_outcome(prepared, "response")

        response = HttpResponse(200, {"content-type": "application/json", "server": "x"}, body)
        connections, credentials = self.gateway.connections, self.gateway.credentials

        def observe() -> None:
            HttpGateway._observe(prepared, response, CONNECTION)

        with stdout_to_devnull():
            parts = {
                "token validation, a token seen before (`TokenValidator.authenticate`)": median_us(
                    lambda: authenticate(authorization), n
                ),
                "token validation, a token not seen before (signature and claims verified)": median_us(
                    lambda: forgetful.authenticate(authorization), n
                ),
                "recording serialisation (`record_request` + `record_outcome`, memory sinks)": median_us(
                    record, n
                ),
                "recording preparation (`Recording` with redacted headers, 2 x 1 KB body digest)": median_us(
                    recording, n
                ),
                "logs + metrics (`HttpGateway._observe`, to /dev/null)": median_us(observe, n),
                "event in / response out (`from_apigw_v2` + `to_apigw_v2`)": median_us(
                    lambda: self._from_apigw_v2(event) and response.to_apigw_v2(), n
                ),
                "connection + credential (cache hits)": median_us(
                    lambda: credentials.get(SECRET) and connections.get(CONNECTION), n
                ),
            }
            self.stream.lines.clear()
            self.index.entries.clear()
        return parts


# ------------------------------------------------------------------------------------------ report


def report(samples: dict[str, list[float]], parts: dict[str, float], block_size: int, blocks: int) -> str:
    direct, guarded = sorted(samples["direct"]), sorted(samples["guarded"])
    rows = []
    added = {}
    for q in (50, 99):
        added[q] = percentile(guarded, q) - percentile(direct, q)
    ratio50 = percentile(guarded, 50) / percentile(direct, 50)
    tail = added[99] / added[50] if added[50] > 0 else float("inf")

    def verdict(met: bool) -> str:
        return "met" if met else "**missed**"

    for q, target in ((50, TARGET_P50_MS), (99, TARGET_P99_MS)):
        d, g = percentile(direct, q), percentile(guarded, q)
        targets = f"< {target:g} ms: {verdict(g - d < target)}"
        if q == 50:
            targets += f"; ≤ {TARGET_P50_RATIO:g}x direct: {verdict(g / d <= TARGET_P50_RATIO)}"
        else:
            targets += f"; ≤ {TARGET_TAIL:g}x added p50: {verdict(added[99] <= TARGET_TAIL * added[50])}"
        rows.append(f"| p{q} | {d:.3f} | {g:.3f} | **{g - d:.3f}** | {g / d:.2f}x | {targets} |")

    def med(values: list[float]) -> float:
        return statistics.median(values) * 1000

    handle, guard, upstream = samples["handle"], samples["guard"], samples["upstream"]
    in_path = [
        ("whole guarded request", med(samples["guarded"])),
        ("… `HttpGateway.handle` until it records the outcome (`timings_ms.total`)", med(handle)),
        ("… … guard: token, registry, connection, policy, masking profile (`timings_ms.guard`)", med(guard)),
        ("… … upstream call through `HttpForwarder` (`timings_ms.upstream`)", med(upstream)),
        (
            "… … credential, headers, `record_request`, masking the response (total - guard - upstream)",
            med([t - a - b for t, a, b in zip(handle, guard, upstream, strict=True)]),
        ),
        (
            "… the rest: event in, `record_outcome`, logs + metrics, response out",
            med([g - t for g, t in zip(samples["guarded"], handle, strict=True)]),
        ),
        ("direct request, for comparison with the upstream call", med(samples["direct"])),
    ]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Run {when} of {code_version()} on {machine()}; {len(direct)} requests per path after warm-up, in "
        f"{blocks} alternating blocks of {block_size}; the upstream answers a {BODY_BYTES}-byte JSON body.",
        "",
        "| percentile | direct (ms) | through wardgate (ms) | added (ms) | ratio | targets |",
        "|---|---:|---:|---:|---:|---|",
        *rows,
        "",
        f"Targets: added p50 < {TARGET_P50_MS:g} ms and p99 < {TARGET_P99_MS:g} ms; issue 16: the guarded "
        f"p50 at most {TARGET_P50_RATIO:g}x the direct p50 (here {ratio50:.2f}x) and the added p99 at most "
        f"{TARGET_TAIL:g}x the added p50 (here {tail:.1f}x).",
        "",
        "Where the time goes, measured inside the guarded requests above (medians, µs; the gateway's own "
        "`timings_ms` from each recording):",
        "",
        "| phase | median (µs) |",
        "|---|---:|",
        *[f"| {name} | {value:.0f} |" for name, value in in_path],
        "",
        "Parts of the guarded path timed alone in a tight loop (medians, µs; hot caches, so lower than "
        "in the path):",
        "",
        "| part | median (µs) |",
        "|---|---:|",
        *[f"| {name} | {value:.1f} |" for name, value in parts.items()],
        "",
        "<!-- figures "
        + json.dumps(
            {
                "direct_p50": round(percentile(direct, 50), 4),
                "guarded_p50": round(percentile(guarded, 50), 4),
                "added_p50": round(added[50], 4),
                "added_p99": round(added[99], 4),
            }
        )
        + " -->",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help=f"update the overhead section of {DOC.name}")
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per path (default 2000)")
    parser.add_argument("--block", type=int, default=20, help="requests per alternating block (default 20)")
    parser.add_argument(
        "--warmup", type=int, default=200, help="untimed requests per path first (default 200)"
    )
    parser.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        return serve_upstream()

    # As on Lambda: logs at INFO, metrics on (both go to /dev/null while timing).
    for key in ("POWERTOOLS_LOG_LEVEL", "POWERTOOLS_METRICS_DISABLED", "POWERTOOLS_DEV"):
        os.environ.pop(key, None)
    os.environ.setdefault("AWS_LAMBDA_LOG_LEVEL", "INFO")

    blocks = max(1, args.requests // args.block)
    with upstream_process() as upstream, tempfile.TemporaryDirectory() as tmp:
        bench = Bench(upstream, Path(tmp))
        with stdout_to_devnull():
            bench.check()
        log(f"upstream {upstream}; {blocks} blocks of {args.block} per path ...")
        samples = bench.run(blocks, args.block, args.warmup)
        log("breakdown ...")
        parts = bench.breakdown(max(500, args.requests // 2))
        log(f"JWKS fetches: {bench.jwks_fetches}; cache misses: {bench.loads}")
    text = report(samples, parts, args.block, blocks)
    print(text)
    if args.write:
        write_section(MARKERS, text)
        summary.update()


if __name__ == "__main__":
    main()
