"""What the hot paths keep between requests (issue 16), and what they must never get wrong for it.

Each cache is bounded, keyed so that it can only repeat an answer it fully checked itself, and
never outlives what it is allowed to: a remembered token verification ends at the token's expiry,
after a short maximum age and when the issuer's keys are reloaded; the agent registry (the kill
switch) is still asked on every request; parsed SQL is only the parse, the policy still decides
every statement. The forwarder keeps no cookie jar, and inflates bodies within the response limit.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import gzip
import io
import json
import os
import threading
import time
import tracemalloc
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wardgate.dev.oidc import ISSUER_PATH, DevIssuer
from wardgate.dev.upstream import EchoUpstream
from wardgate.errors import BadGateway, Unauthorized
from wardgate.identity import Identity, IssuerConfig, TokenValidator, VerifiedTokens
from wardgate.proxies.http import HttpForwarder, upstream_url

# ------------------------------------------------------------------------------------------ tokens


class Issuer:
    """The development issuer's keys behind an in-memory discovery document and JWKS."""

    def __init__(self, key_file: Path) -> None:
        self.dev = DevIssuer(f"http://127.0.0.1:9{ISSUER_PATH}", key_file)
        self.jwks: dict[str, Any] = self.dev.jwks()
        self.fetches = 0

    def fetch_json(self, url: str) -> dict[str, Any]:
        self.fetches += 1
        if url.endswith("/.well-known/openid-configuration"):
            return self.dev.discovery()
        return self.jwks

    def validator(self, verified: VerifiedTokens | None = None, **kwargs: Any) -> TokenValidator:
        config = IssuerConfig.from_dict(self.dev.issuer_config())
        return TokenValidator([config], fetch_json=self.fetch_json, verified=verified, **kwargs)


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("perf-caches")


@pytest.fixture
def issuer(key_dir: Path) -> Issuer:
    return Issuer(key_dir / "issuer.pem")


def counting_verifications(validator: TokenValidator) -> list[int]:
    """Counts full verifications (signature and claims) from now on."""
    calls = [0]
    verify = validator._verify

    def counted(*args: Any) -> dict[str, Any]:
        calls[0] += 1
        return verify(*args)

    validator._verify = counted  # type: ignore[method-assign,assignment]
    return calls


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_token_is_verified_once_and_its_identity_remembered(issuer: Issuer) -> None:
    validator = issuer.validator()
    calls = counting_verifications(validator)
    token = issuer.dev.mint("agent-1", ["ci"])
    first = validator.authenticate(f"Bearer {token}")
    again = [validator.authenticate(f"Bearer {token}") for _ in range(5)]
    assert calls[0] == 1
    assert all(identity is first for identity in again)
    assert first.subject == "agent-1" and first.groups == ("ci",)


def test_entries_are_keyed_by_the_tokens_sha256_never_the_token(issuer: Issuer) -> None:
    validator = issuer.validator()
    token = issuer.dev.mint("agent-1", ["ci"])
    validator.authenticate(f"Bearer {token}")
    keys = list(validator.verified._entries)
    assert keys == [VerifiedTokens.key(token)] and len(keys[0]) == 32
    assert token not in repr(validator.verified._entries)
    assert token.split(".")[2] not in repr(validator.verified._entries)


def test_a_forged_variant_of_a_remembered_token_is_still_refused(issuer: Issuer) -> None:
    validator = issuer.validator()
    token = issuer.dev.mint("agent-1", ["ci"])
    validator.authenticate(f"Bearer {token}")
    header, payload, signature = token.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    for forged in (f"{header}.{payload}.{flipped}", f"{header}.{payload}.", f"{header}.{payload}"):
        with pytest.raises(Unauthorized) as refused:
            validator.authenticate(f"Bearer {forged}")
        assert refused.value.code in ("bad_signature", "malformed_token")
    assert validator.authenticate(f"Bearer {token}").subject == "agent-1"  # the real one still works


def test_refusals_are_never_remembered(issuer: Issuer) -> None:
    validator = issuer.validator()
    calls = counting_verifications(validator)
    refused = {
        "wrong_audience": issuer.dev.mint("agent-1", ["ci"], audience="someone-else"),
        "token_expired": issuer.dev.mint("agent-1", ["ci"], claims={"exp": int(time.time()) - 3600}),
        "token_too_long_lived": issuer.dev.mint("agent-1", ["ci"], ttl=30 * 24 * 3600),
    }
    for _ in range(3):
        for code, token in refused.items():
            with pytest.raises(Unauthorized) as caught:
                validator.authenticate(f"Bearer {token}")
            assert caught.value.code == code
    assert len(validator.verified) == 0
    assert calls[0] == 3 * len(refused)  # checked in full every time


def test_a_remembered_token_is_not_accepted_after_it_expires(issuer: Issuer) -> None:
    validator = issuer.validator(leeway_seconds=0)
    exp = int(time.time()) + 1
    token = issuer.dev.mint("agent-1", ["ci"], claims={"exp": exp})
    validator.authenticate(f"Bearer {token}")
    assert len(validator.verified) == 1
    time.sleep(max(0.0, exp - time.time()) + 0.05)
    with pytest.raises(Unauthorized) as caught:
        validator.authenticate(f"Bearer {token}")
    assert caught.value.code == "token_expired"


def test_an_entry_ends_at_exp_even_when_the_validator_would_allow_leeway(issuer: Issuer) -> None:
    wall = Clock(time.time())
    validator = issuer.validator(VerifiedTokens(wall=wall))
    calls = counting_verifications(validator)
    exp = int(wall.now) + 600
    token = issuer.dev.mint("agent-1", ["ci"], claims={"exp": exp})
    validator.authenticate(f"Bearer {token}")
    wall.now = exp - 0.001
    validator.authenticate(f"Bearer {token}")
    assert calls[0] == 1
    wall.now = exp  # from here only a full check (with its leeway) can accept the token
    validator.authenticate(f"Bearer {token}")
    assert calls[0] == 2


def test_a_token_accepted_only_within_the_leeway_is_not_remembered(issuer: Issuer) -> None:
    validator = issuer.validator()
    calls = counting_verifications(validator)
    token = issuer.dev.mint("agent-1", ["ci"], claims={"exp": int(time.time()) - 5})  # leeway is 60 s
    validator.authenticate(f"Bearer {token}")
    validator.authenticate(f"Bearer {token}")
    assert calls[0] == 2 and len(validator.verified) == 0


def test_a_remembered_verification_is_redone_after_the_maximum_age(issuer: Issuer) -> None:
    monotonic = Clock(1000.0)
    validator = issuer.validator(VerifiedTokens(max_age_seconds=60, monotonic=monotonic))
    calls = counting_verifications(validator)
    token = issuer.dev.mint("agent-1", ["ci"])
    validator.authenticate(f"Bearer {token}")
    monotonic.now += 59.9
    validator.authenticate(f"Bearer {token}")
    assert calls[0] == 1
    monotonic.now += 0.2
    validator.authenticate(f"Bearer {token}")
    assert calls[0] == 2


def test_reloading_the_issuers_keys_forgets_what_older_keys_verified(issuer: Issuer, key_dir: Path) -> None:
    validator = issuer.validator(min_refresh_interval=0)
    token = issuer.dev.mint("agent-1", ["ci"])
    validator.authenticate(f"Bearer {token}")
    # The issuer rotates: its JWKS now holds only a new key, and a token signed with it arrives.
    rotated = DevIssuer(issuer.dev.issuer, key_dir / "rotated.pem")
    assert rotated.kid != issuer.dev.kid
    issuer.jwks = rotated.jwks()
    assert validator.authenticate(f"Bearer {rotated.mint('agent-2', ['ci'])}").subject == "agent-2"
    # The key that signed the first token is gone: the remembered verification goes with it.
    with pytest.raises(Unauthorized) as caught:
        validator.authenticate(f"Bearer {token}")
    assert caught.value.code == "unknown_key"


def test_the_cache_is_bounded_oldest_out_first(issuer: Issuer) -> None:
    validator = issuer.validator(VerifiedTokens(max_entries=3))
    calls = counting_verifications(validator)
    tokens = [issuer.dev.mint(f"agent-{i}", ["ci"]) for i in range(5)]
    for token in tokens:
        validator.authenticate(f"Bearer {token}")
    assert len(validator.verified) == 3 and calls[0] == 5
    for token in tokens[2:]:  # the three newest are remembered
        validator.authenticate(f"Bearer {token}")
    assert calls[0] == 5
    validator.authenticate(f"Bearer {tokens[0]}")  # the oldest was dropped: checked again
    assert calls[0] == 6 and len(validator.verified) == 3


def test_a_cache_of_size_zero_remembers_nothing(issuer: Issuer) -> None:
    validator = issuer.validator(VerifiedTokens(max_entries=0))
    calls = counting_verifications(validator)
    token = issuer.dev.mint("agent-1", ["ci"])
    for _ in range(3):
        validator.authenticate(f"Bearer {token}")
    assert calls[0] == 3 and len(validator.verified) == 0


def test_an_entry_is_only_found_by_its_exact_token() -> None:
    cache = VerifiedTokens()
    identity = Identity(subject="agent-1", issuer="https://idp.example.com")
    cache.put(VerifiedTokens.key("token-a"), identity, time.time() + 600, generation=1)
    assert cache.get(VerifiedTokens.key("token-a"), lambda issuer: 1) is identity
    assert cache.get(VerifiedTokens.key("token-b"), lambda issuer: 1) is None
    assert cache.get(VerifiedTokens.key("token-a "), lambda issuer: 1) is None
    assert cache.get(VerifiedTokens.key("token-a"), lambda issuer: 2) is None  # keys reloaded
    assert len(cache) == 0  # and the stale entry is gone


def test_the_registry_is_still_asked_on_every_request_despite_the_token_cache(
    stack: Any, client: Any
) -> None:
    """The kill switch: a revoked agent with a remembered, still valid token is refused within the
    registry cache's bound (0.5 s), as before the token cache."""
    from tests.helpers import register_agent
    from wardgate import cli, runtime

    register_agent(stack, "cached-bot", "alice@example.com")
    headers = {"Authorization": f"Bearer {stack.issuer.mint('cached-bot', ['ci'])}"}
    for _ in range(3):
        assert client.get("/http/demo/v1/items", headers=headers).status_code == 200
    token = headers["Authorization"].split()[1]
    validator = runtime.http_gateway().validator
    assert validator.verified.get(VerifiedTokens.key(token), validator._generation_of) is not None

    assert cli.main(["revoke", "--subject", "cached-bot", "--reason", "test", "--by", "root"]) == 0
    revoked_at = time.monotonic()
    while (response := client.get("/http/demo/v1/items", headers=headers)).status_code == 200:
        assert time.monotonic() - revoked_at < 2.0, "the revocation did not bite"
        time.sleep(0.02)
    assert response.status_code == 403 and response.json()["error"]["code"] == "agent_revoked"
    assert time.monotonic() - revoked_at < 1.0
    assert validator.verified.get(VerifiedTokens.key(token), validator._generation_of) is not None


# ------------------------------------------------------------------------------------------ forwarder


@pytest.fixture
def upstream() -> Iterator[EchoUpstream]:
    echo = EchoUpstream(None).start()
    try:
        yield echo
    finally:
        echo.stop()


def forward(
    forwarder: HttpForwarder, upstream: EchoUpstream, path: str, query: str = "", body: bytes = b""
) -> Any:
    method = "POST" if body else "GET"
    url = upstream_url(upstream.url, path, query)
    return forwarder.forward(method, url, {"accept": "*/*"}, body, time.monotonic() + 5)


def test_an_upstreams_cookie_is_never_sent_with_another_request(upstream: EchoUpstream) -> None:
    """The forwarder is shared by every agent of a container: it must not keep a cookie jar."""
    forwarder = HttpForwarder(2.0, 1_000_000)
    first = forward(forwarder, upstream, "/anything")
    assert first.cookies == ["demo=1; Path=/"]  # handed to the agent that got it, as it was
    forward(forwarder, upstream, "/anything")
    assert "cookie" not in upstream.requests[-1]["headers"]


def test_bodies_are_decoded_gzip_deflate_and_both_kinds_of_deflate(upstream: EchoUpstream) -> None:
    forwarder = HttpForwarder(2.0, 1_000_000)
    document = json.dumps({"note": "x" * 5000}).encode()
    raw_deflate = zlib.compressobj(wbits=-15)
    bodies = {
        "gzip": gzip.compress(document),
        "deflate": zlib.compress(document),
        "x-gzip": gzip.compress(document),
    }
    raw = raw_deflate.compress(document) + raw_deflate.flush()
    for encoding, body in [*bodies.items(), ("deflate", raw), ("gzip, gzip", gzip.compress(bodies["gzip"]))]:
        got = forward(forwarder, upstream, "/respond", f"encoding={encoding.replace(' ', '')}", body)
        assert got.status == 200 and got.body == document, encoding
        assert all(name != "content-encoding" for name, _ in got.headers)


def test_an_unknown_coding_or_a_broken_body_is_refused(upstream: EchoUpstream) -> None:
    forwarder = HttpForwarder(2.0, 1_000_000)
    with pytest.raises(BadGateway) as unknown:
        forward(forwarder, upstream, "/respond", "encoding=br", b"\x8b\x00")
    assert unknown.value.code == "upstream_bad_response"
    with pytest.raises(BadGateway) as broken:
        forward(forwarder, upstream, "/respond", "encoding=gzip", b"not gzip at all")
    assert broken.value.code == "upstream_bad_response"


def test_a_compressed_body_is_bounded_as_it_inflates(upstream: EchoUpstream) -> None:
    forwarder = HttpForwarder(2.0, 1_000_000)
    bomb = gzip.compress(b"a" * 60_000_000)  # 60 MB in about 60 KB
    tracemalloc.start()
    try:
        with pytest.raises(BadGateway) as caught:
            forward(forwarder, upstream, "/respond", "encoding=gzip&type=text/plain", bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.code == "upstream_response_too_large"
    assert peak < 8_000_000, f"inflating the bomb took {peak} bytes"
    exact = forward(forwarder, upstream, "/respond", "encoding=gzip", gzip.compress(b"b" * 1_000_000))
    assert len(exact.body) == 1_000_000  # the limit itself is allowed


def test_repeated_headers_and_set_cookies_are_kept(upstream: EchoUpstream) -> None:
    forwarder = HttpForwarder(2.0, 1_000_000)
    got = forward(forwarder, upstream, "/links")
    assert [value for name, value in got.headers if name == "link"] == [
        '</items?page=2>; rel="next"',
        '</items?page=2>; rel="last"',
    ]
    assert upstream.requests[-1]["host"] == upstream.url.split("//", 1)[1]


# ------------------------------------------------------------------------------------------ metrics


def test_the_metric_line_is_the_one_powertools_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    from wardgate.observability import NAMESPACE, count

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    for service in (None, "wardgate"):
        if service:
            monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", service)
        else:
            monkeypatch.delenv("POWERTOOLS_SERVICE_NAME", raising=False)
        theirs, ours = io.StringIO(), io.StringIO()
        metric = single_metric(name="Requests", unit=MetricUnit.Count, value=1, namespace=NAMESPACE)
        with contextlib.redirect_stdout(theirs), metric as m:
            m.add_dimension(name="connection", value="demo")
            m.add_dimension(name="outcome", value="allow")
        with contextlib.redirect_stdout(ours):
            count("Requests", connection="demo", outcome="allow")
        expected, got = json.loads(theirs.getvalue()), json.loads(ours.getvalue())
        assert abs(expected["_aws"].pop("Timestamp") - got["_aws"].pop("Timestamp")) < 5000
        assert got == expected
        assert ours.getvalue().count("\n") == 1


def test_no_metric_line_when_metrics_are_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    from wardgate.observability import count

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        count("Requests", connection="demo", outcome="allow")
    assert out.getvalue() == ""
    assert os.environ["POWERTOOLS_METRICS_DISABLED"] == "true"


# ------------------------------------------------------------------------------------------ SQL rows

CELLS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([4242424242424242, -4242424242424242, 9_999_999_999, 10**10, 123, -45, 0]),
    st.text(max_size=30),
    st.sampled_from(["ada@example.com", "card 4111 1111 1111 1111", "555-867-5309", "", "plain"]),
    st.floats(allow_nan=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.datetimes(),
    st.dates(),
    st.uuids(),
    st.sampled_from([b"ada@example.com", b"ok", {"mail": "ada@example.com"}, ["4242424242424242"]]),
)


def cell_by_cell(
    columns: list[str], rows: list[tuple[Any, ...]], profile: Any
) -> tuple[list[Any], dict[str, int]]:
    """What mask_rows promises, one cell at a time: the reference its fast paths must equal."""
    from wardgate.masking.engine import FIELD, _mask_cell, _mask_whole

    counts: dict[str, int] = {}
    out = []
    for row in rows:
        cells = []
        for name, value in zip(columns, row, strict=True):
            if name.lower() in profile.columns and value is not None:
                cells.append(_mask_whole(value, profile.max_depth))
                counts[FIELD] = counts.get(FIELD, 0) + 1
            else:
                cells.append(_mask_cell(value, profile, counts))
        out.append(tuple(cells))
    return out, counts


def profiles() -> list[Any]:
    from wardgate.masking import BUILTIN_DETECTORS
    from wardgate.masking.detectors import Detector
    from wardgate.masking.engine import MaskingProfile

    return [
        MaskingProfile(),
        MaskingProfile(columns=frozenset({"B"})),  # a rule, named in another case
        MaskingProfile(detectors=(*BUILTIN_DETECTORS, Detector.from_regex("digits", r"[0-9]{2}"))),
        MaskingProfile(exempt=frozenset({"card"})),  # no detector matches bare numbers
        MaskingProfile(max_string=8, on_limit="truncate"),
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 4).flatmap(
        lambda width: st.lists(st.tuples(*[CELLS] * width), min_size=1, max_size=6).map(
            lambda rows: (["a", "b", "c", "d"][:width], rows)
        )
    ),
    st.booleans(),
)
def test_mask_rows_column_by_column_equals_cell_by_cell(table: Any, same_types: bool) -> None:
    from wardgate.masking.engine import mask_rows

    columns, rows = table
    if same_types:  # whole columns of one type take the column-wide paths
        rows = [
            tuple(row[i] if type(row[i]) is type(rows[0][i]) else rows[0][i] for i in range(len(row)))
            for row in rows
        ]
    for profile in profiles():
        expected, counts = cell_by_cell(columns, rows, profile)
        result = mask_rows(columns, rows, profile)
        assert result.value == expected
        assert result.counts == counts


def test_mask_rows_refuses_rows_of_the_wrong_width_and_takes_no_columns() -> None:
    from wardgate.masking.engine import mask_rows

    with pytest.raises(ValueError, match="a row has 1 values for 2 columns"):
        mask_rows(["a", "b"], [(1, 2), (1,)])
    assert mask_rows([], [(), ()]).value == [(), ()]
    assert mask_rows(["a"], iter([("ada@example.com",)])).value == [("[masked:email]",)]


# ------------------------------------------------------------------------------------------ parsed SQL


def test_parsed_statements_are_bounded_least_recently_used_out_first() -> None:
    from wardgate.sql_gateway import ParsedStatements

    parses = ParsedStatements(entries=2)
    parses.parse("SELECT 1", "postgres")
    parses.parse("SELECT 2", "postgres")
    parses.parse("SELECT 1", "postgres")  # used again: now the most recent
    parses.parse("SELECT 3", "postgres")
    assert len(parses) == 2
    assert list(parses._parsed) == [("postgres", "SELECT 1"), ("postgres", "SELECT 3")]


def test_a_parse_is_kept_per_dialect_and_exact_text() -> None:
    from wardgate.operations.sql import SqlOperation, parse_sql
    from wardgate.sql_gateway import ParsedStatements

    parses = ParsedStatements()
    text = 'SELECT "a" FROM t'  # an identifier in PostgreSQL, a string in MySQL
    for dialect in ("postgres", "mysql", "postgres", "mysql"):
        operation, record = parses.parse(text, dialect)  # type: ignore[arg-type]
        assert operation == parse_sql(text, dialect)  # type: ignore[arg-type]
        assert record["dialect"] == dialect
    assert len(parses) == 2
    spaced = parses.parse(text + " ", "postgres")[0]
    assert isinstance(spaced, SqlOperation) and spaced.statements[0].text == 'SELECT "a" FROM t'
    assert len(parses) == 3


def test_unparseable_and_long_statements_are_not_kept() -> None:
    from wardgate.operations import UnparseableOperation
    from wardgate.operations.sql import SqlOperation
    from wardgate.sql_gateway import PARSED_TEXT_MAX, ParsedStatements

    parses = ParsedStatements()
    operation, record = parses.parse("SELEC oops (", "postgres")
    assert isinstance(operation, UnparseableOperation) and "unparseable" in record
    long_text = "SELECT 1 AS " + "a" * PARSED_TEXT_MAX
    long_operation = parses.parse(long_text, "postgres")[0]
    assert isinstance(long_operation, SqlOperation) and long_operation.statements[0].kind == "select"
    assert len(parses) == 0


def test_each_caller_gets_its_own_copy_of_the_recorded_form() -> None:
    from wardgate.sql_gateway import ParsedStatements

    parses = ParsedStatements()
    _, first = parses.parse("SELECT * FROM users WHERE email = 'ada@example.com'", "postgres")
    assert first["statements"][0]["text"] == "SELECT * FROM users WHERE email = '[masked:email]'"
    first["statements"][0]["text"] = "changed"
    first["call"] = "changed"
    _, second = parses.parse("SELECT * FROM users WHERE email = 'ada@example.com'", "postgres")
    assert second["statements"][0]["text"] == "SELECT * FROM users WHERE email = '[masked:email]'"
    assert "call" not in second


def test_the_policy_in_force_decides_a_remembered_statement(stack: Any, token: str) -> None:
    """A parse is remembered, a decision is not: a rule applied later refuses the same text."""
    import boto3
    from botocore.exceptions import ClientError

    from tests.helpers import apply_policy_now
    from wardgate import runtime
    from wardgate.connections import Connection, ConnectionStore
    from wardgate.dataapi.client import PLACEHOLDER_ARN, wardgate_rds_data_client
    from wardgate.dev.stack import DEV_POLICY

    boto3.client("secretsmanager").create_secret(
        Name="wardgate/perf-pg",
        SecretString=json.dumps({"type": "basic", "username": "wardgate", "password": "wardgate-test-pw"}),
    )
    url = "postgresql://wardgate@127.0.0.1:5432/wardgate_test"
    ConnectionStore(stack.function_env()["CONNECTIONS_TABLE"]).put(
        Connection("perf-pg", "sql", url, "wardgate/perf-pg", allowed_groups=("ci",))
    )
    allow = {
        "name": "agents may read",
        "effect": "allow",
        "identity": {"groups": ["ci"]},
        "match": {"sql": {"kinds": ["select"]}},
    }
    deny = {**allow, "name": "no reading today", "effect": "deny", "message": "reads are paused"}
    apply_policy_now(stack, {**DEV_POLICY, "rules": [*DEV_POLICY["rules"], allow]})
    client = wardgate_rds_data_client(f"{stack.url}/sql/perf-pg", lambda: token)
    statement = {
        "resourceArn": PLACEHOLDER_ARN,
        "secretArn": PLACEHOLDER_ARN,
        "sql": "SELECT 41 + 1 AS answer",
    }
    for _ in range(2):
        assert client.execute_statement(**statement)["records"] == [[{"longValue": 42}]]
    assert ("postgres", "SELECT 41 + 1 AS answer") in runtime.sql_gateway().parses._parsed

    apply_policy_now(stack, {**DEV_POLICY, "rules": [*DEV_POLICY["rules"], allow, deny]})
    with pytest.raises(ClientError) as refused:
        client.execute_statement(**statement)
    assert refused.value.response["Error"]["Code"] == "ForbiddenException"
    assert "reads are paused" in refused.value.response["Error"]["Message"]


# ------------------------------------------------------------------------------------------ IdP fetch


class IdpServer:
    """A loopback server answering every GET with one canned status, headers and body (HTTP or HTTPS)."""

    def __init__(self, tls: Any = None) -> None:
        import ssl
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.status, self.headers, self.body = 200, {"content-type": "application/json"}, b'{"keys": []}'
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(server.status)
                for name, value in server.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert_file, tls.key_file)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def idp_server() -> Iterator[IdpServer]:
    server = IdpServer()
    try:
        yield server
    finally:
        server.stop()


def test_the_idp_fetch_reads_one_json_object(idp_server: IdpServer) -> None:
    from wardgate.identity import fetch_json_over_https

    assert fetch_json_over_https(idp_server.url + "/jwks?x=1") == {"keys": []}


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (302, {"location": "https://evil.example/jwks"}, b'{"keys": []}'),  # not followed
        (404, {}, b'{"keys": []}'),
        (500, {}, b"{}"),
        (200, {}, b"[1, 2]"),  # not an object
        (200, {}, b"not json"),
        (200, {}, b" " * (1024 * 1024) + b"{}"),  # over the size limit
    ],
    ids=["redirect", "404", "500", "a list", "not JSON", "too large"],
)
def test_the_idp_fetch_refuses_anything_but_a_small_json_object(
    idp_server: IdpServer, status: int, headers: dict[str, str], body: bytes
) -> None:
    from wardgate.identity import fetch_json_over_https

    idp_server.status, idp_server.headers, idp_server.body = status, headers, body
    with pytest.raises(ValueError):
        fetch_json_over_https(idp_server.url + "/jwks")


def test_the_idp_fetch_needs_https_off_loopback_and_a_trusted_certificate(tmp_path: Path) -> None:
    from wardgate.dev.certs import make_dev_certificates
    from wardgate.identity import fetch_json_over_https

    with pytest.raises(ValueError, match="not an https URL"):
        fetch_json_over_https("http://idp.example.com/jwks")
    with pytest.raises(ValueError, match="not an https URL"):
        fetch_json_over_https("ftp://127.0.0.1/jwks")
    server = IdpServer(tls=make_dev_certificates(tmp_path))  # a CA no trust store knows
    try:
        import ssl

        with pytest.raises(ssl.SSLCertVerificationError):
            fetch_json_over_https(server.url + "/jwks")
    finally:
        server.stop()


@pytest.mark.parametrize(
    "base",
    [
        "http://up.example:8080/base/",
        "https://api.example.com:443/v1",
        "http://api.example.com:80",
        "http://[::1]:8080/x",
        "https://Bücher.example/a b",
        "http://UP.example",
        "https://h.example/p%20q/",
        "https://127.0.0.1:8443",
    ],
)
def test_connection_urls_are_parsed_as_httpx_parses_them(base: str) -> None:
    import httpx

    url = upstream_url(base, "/a", "b=1")
    expected = httpx.URL(base)
    assert (url.scheme, url.host, url.port, url.netloc, url.raw_host) == (
        expected.scheme,
        expected.host,
        expected.port,
        expected.netloc,
        expected.raw_host,
    )
    assert url.raw_path == expected.raw_path.rstrip(b"/") + b"/a?b=1"
    assert str(url) == str(expected.copy_with(raw_path=url.raw_path))


@pytest.mark.parametrize(
    "base",
    ["ftp://up.example", "http://user:pw@up.example", "http://up.example?q=1", "http://up.example:99999"],
)
def test_connection_urls_that_are_not_plain_origins_are_refused(base: str) -> None:
    from wardgate.errors import BadRequest

    with pytest.raises(BadRequest):
        upstream_url(base, "/a", "")


# ------------------------------------------------------------------------------------------ init phase


def test_prepare_loads_keys_policy_and_clients_before_the_first_event(
    stack: Any, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wardgate import aws, runtime

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "HttpProxyFunction")
    runtime.prepare("http")
    gateway = runtime.http_gateway()
    assert all(jwks._loaded_at is not None for jwks in gateway.validator._jwks.values())
    assert gateway.policies._cached is not None
    assert aws.client.cache_info().currsize >= 3  # dynamodb, firehose, secretsmanager
    assert not [t for t in threading.enumerate() if t.name.startswith("wardgate-prepare")]

    import httpx

    with httpx.Client(base_url=stack.url, timeout=10) as client:
        response = client.get("/http/demo/anything", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_prepare_is_only_for_lambda_and_never_raises(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from wardgate import runtime

    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    runtime.prepare("sql")
    assert runtime.sql_gateway.cache_info().currsize == 0  # local mode and tests build on first use

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "SqlProxyFunction")
    monkeypatch.setenv("WARDGATE_ISSUERS", "not json")  # a broken configuration: the request says so
    runtime.prepare("sql")
    assert runtime.sql_gateway.cache_info().currsize == 0


def test_prepare_reads_the_sql_functions_transaction_id_key_once(
    stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key that binds rds-data transaction ids is read in the init phase, once: a backend built
    later does not ask Secrets Manager. A failed read is not remembered: the next one asks again."""
    from wardgate import aws, runtime
    from wardgate.errors import ServiceUnavailable

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "SqlProxyFunction")
    runtime.prepare("sql")
    assert not [t for t in threading.enumerate() if t.name.startswith("wardgate-prepare")]
    binding_key = runtime.sql_gateway().backends.binding_key
    assert binding_key.cache_info().currsize == 1
    secrets = aws.client("secretsmanager")
    calls: list[dict[str, Any]] = []
    real = secrets.get_secret_value

    def counted(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(secrets, "get_secret_value", counted)
    assert len(binding_key()) >= 16 and calls == []

    runtime.sql_gateway.cache_clear()
    monkeypatch.setenv("TRANSACTION_KEY_SECRET", "wardgate/no-such-key")
    runtime.prepare("sql")  # the read fails, quietly
    binding_key = runtime.sql_gateway().backends.binding_key
    assert binding_key.cache_info().currsize == 0 and len(calls) == 1
    with pytest.raises(ServiceUnavailable):
        binding_key()
    assert len(calls) == 2
    runtime.sql_gateway.cache_clear()


def test_prepare_with_the_identity_provider_down_leaves_the_refusal_to_the_request(
    stack: Any, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wardgate import runtime
    from wardgate.errors import ServiceUnavailable

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "SqlProxyFunction")
    calls: list[str] = []

    def down(url: str) -> dict[str, Any]:
        calls.append(url)
        raise OSError("connection refused")

    gateway = runtime.sql_gateway()
    for jwks in gateway.validator._jwks.values():
        monkeypatch.setattr(jwks, "fetch_json", down)
    runtime.prepare("sql")  # tries, fails, says nothing
    assert calls and gateway.policies._cached is not None
    with pytest.raises(ServiceUnavailable) as unavailable:
        gateway.validator.authenticate(f"Bearer {token}")
    assert unavailable.value.code == "identity_provider_unavailable"
    assert len(calls) >= 2  # the request tried again itself


# ------------------------------------------------------------------------------------------ recordings


def old_json_line(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), default=str).encode() + b"\n"


@pytest.mark.parametrize(
    "event",
    [
        {"event": "response", "response": {"body": {"data": '{"records":[[{"stringValue":"a \\"b\\""}]]}'}}},
        {
            "text": "caf\u00e9 \u2013 \u6771\u4eac \u2028",
            "n": [1, 2.5, -3, True, None],
            "nested": {"a": {"b": []}},
        },
        {"when": datetime.datetime(2026, 1, 2, 3, 4, 5), "id": uuid.UUID(int=7)},
        {"big": 2**70, "small": -(2**63)},  # beyond 64 bits: json.dumps writes it as before
        {"lone": "\udce7"},  # a lone surrogate: json.dumps escapes it as before
        {1: "a key that is not a string"},
        {"decimal": decimal.Decimal("1.10"), "bytes": b"\x00"},
    ],
)
def test_recording_lines_mean_what_json_dumps_wrote(event: dict[str, Any]) -> None:
    from wardgate.recording import json_line

    line = json_line(event)
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    assert json.loads(line) == json.loads(old_json_line(event))
    if line != old_json_line(event):  # only how non-ASCII text is written may differ: UTF-8, not \\u
        assert not line.decode("utf-8").isascii()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.text(max_size=40), min_size=1, max_size=6),
    st.lists(st.integers(1, 4), min_size=6, max_size=6),
)
def test_repeated_texts_are_scanned_once_and_counted_per_cell(texts: list[str], repeats: list[int]) -> None:
    from wardgate.masking.engine import mask_rows

    rows = [
        (text, f"{text} and ada@example.com")
        for text, n in zip(texts, repeats, strict=False)
        for _ in range(n)
    ]
    expected, counts = cell_by_cell(["a", "b"], rows, profiles()[0])
    result = mask_rows(["a", "b"], rows)
    assert result.value == expected
    assert result.counts == counts


def test_the_same_value_in_many_rows_is_counted_in_each() -> None:
    from wardgate.masking.engine import mask_rows

    rows = [("ada@example.com", "paid"), ("4111 1111 1111 1111", "paid")] * 50
    result = mask_rows(["note", "status"], rows)
    assert result.counts == {"email": 50, "card": 50}
    assert result.value[:2] == [("[masked:email]", "paid"), ("**** **** **** 1111", "paid")]


def test_a_repeated_text_scanned_alone_is_counted_per_cell_too() -> None:
    """A candidate that reaches past a cell (here a private key block) sends the cell to be scanned
    alone; what it masks there counts once per cell that holds the text, like everywhere else."""
    from wardgate.masking.engine import mask_rows

    key_start = "ada@example.com -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA"
    rows = [(key_start,)] * 3 + [("qwerty\n-----END RSA PRIVATE KEY-----",)]
    expected, counts = cell_by_cell(["a"], rows, profiles()[0])
    result = mask_rows(["a"], rows)
    assert result.value == expected
    assert result.counts == counts == {"email": 3, "pem_private_key": 3}


# ------------------------------------------------------------------------------------------ fail closed


def test_a_remembered_token_and_parse_still_record_before_anything_runs(stack: Any, token: str) -> None:
    """The fast paths (a remembered token, a remembered statement) change nothing in the order:
    with the recording stream gone, the upstream is not called and the statement does not run."""
    import boto3
    import httpx
    from botocore.exceptions import ClientError

    from tests.helpers import apply_policy_now
    from wardgate.connections import Connection, ConnectionStore
    from wardgate.dataapi.client import PLACEHOLDER_ARN, wardgate_rds_data_client
    from wardgate.dev.stack import DEV_POLICY

    boto3.client("secretsmanager").create_secret(
        Name="wardgate/perf-pg-2",
        SecretString=json.dumps({"type": "basic", "username": "wardgate", "password": "wardgate-test-pw"}),
    )
    ConnectionStore(stack.function_env()["CONNECTIONS_TABLE"]).put(
        Connection(
            "perf-pg-2",
            "sql",
            "postgresql://wardgate@127.0.0.1:5432/wardgate_test",
            "wardgate/perf-pg-2",
            allowed_groups=("ci",),
        )
    )
    writes = {
        "name": "agents may write",
        "effect": "allow",
        "identity": {"groups": ["ci"]},
        "match": {"sql": {"kinds": ["select", "ddl", "insert"]}},
    }
    apply_policy_now(stack, {**DEV_POLICY, "rules": [*DEV_POLICY["rules"], writes]})
    table = f"perf_{os.urandom(4).hex()}"
    sql = wardgate_rds_data_client(f"{stack.url}/sql/perf-pg-2", lambda: token)
    arns = {"resourceArn": PLACEHOLDER_ARN, "secretArn": PLACEHOLDER_ARN}
    sql.execute_statement(**arns, sql=f"CREATE TABLE {table} (id int)")
    insert = f"INSERT INTO {table} VALUES (1)"
    sql.execute_statement(**arns, sql=insert)  # now the token and this statement are remembered
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        assert client.get("/http/demo/v1/items", headers=headers).status_code == 200
        boto3.client("firehose").delete_delivery_stream(DeliveryStreamName=os.environ["RECORDINGS_STREAM"])
        calls = len(stack.upstream.requests)
        refused = client.get("/http/demo/v1/items", headers=headers)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "recording_unavailable"
        assert len(stack.upstream.requests) == calls
    with pytest.raises(ClientError) as unavailable:
        sql.execute_statement(**arns, sql=insert)
    assert unavailable.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    import psycopg

    dsn = "host=127.0.0.1 dbname=wardgate_test user=wardgate password=wardgate-test-pw"
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,)  # the second never ran
        conn.execute(f"DROP TABLE {table}")
