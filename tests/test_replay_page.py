"""The auditors' replay page (issue 14, part 4): sign-in, who may see what, headers, search, timelines,
terminal replay in the browser, and the integrity status of what is shown.

One module-wide local stack (moto in-process, manifests signed as on AWS) records known traffic: an
agent's allowed and denied HTTP requests and an SSH-like terminal session written through the TCP
gateway's recorder. Humans sign in through the development issuer's authorization code flow with
PKCE, by HTTP (httpx, redirects followed by hand, so each step is checked) and in headless Chromium
(Debian's, driven by Playwright, as tests/test_approval_browser.py does).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import html
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from moto import mock_aws

from tests.conftest import ROOT
from tests.helpers import register_agent
from wardgate import aws
from wardgate.auditing.integrity import sign_object
from wardgate.auditing.signing import FileSigner, ManifestVerifier, make_local_key
from wardgate.auditing.web import app as page_app
from wardgate.auditing.web.records import IntegrityChecker, RecordEvents, record_events
from wardgate.auditing.web.sealing import Sealer, SealError
from wardgate.auditing.web.signin import pkce_challenge
from wardgate.dev.oidc import ISSUER_PATH
from wardgate.dev.stack import DEV_AUDIT_CLIENT, SFN_INTERPRETER, DevStack

CHROMIUM = "/usr/bin/chromium"
ALICE = "alice@example.com"
CSP = (
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
FRAMES = [
    [0.25, "o", "$ "],
    [0.5, "i", "ls\r"],
    [0.55, "o", "ls\r\nnotes.txt\r\n"],
    [1.0, "o", "\x1b]0;owned title\x07\x1b]52;c;b3duZWQ=\x07\x1b[6n\x1b[1mbold\x1b[0m\r\n$ "],
]


@dataclass
class Site:
    stack: DevStack
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.stack.url

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20, follow_redirects=False)


async def _terminal_session() -> str:
    """An SSH session as the SSH gateway records one, through the TCP gateway's recorder and Firehose."""
    from wardgate.recording import DynamoRecordIndex, FirehoseStream
    from wardgate.tcp.recorder import GroupCommit, SessionRecord, SessionRecorder

    recorder = SessionRecorder(
        GroupCommit(FirehoseStream(os.environ["RECORDINGS_STREAM"])),
        DynamoRecordIndex(os.environ["RECORDINGS_TABLE"]),
    )
    identity = {"subject": "alice-agent", "issuer": "dev", "groups": ["ci"], "owner": ALICE}
    record = SessionRecord("ssh", "demo-ssh", "127.0.0.1:50000", identity=identity)
    allow = {"outcome": "allow", "rule": "shells on demo-ssh", "reason": "allowed", "policy_version": "p-1"}
    await recorder.write(record, "session_start", identity=identity, client=record.client)
    await recorder.write(
        record, "terminal_start", channel=0, width=80, height=12, term="xterm", command=None, decision=allow
    )
    await recorder.write(record, "terminal_output", channel=0, frames=FRAMES)
    await recorder.write(record, "terminal_end", channel=0, exit_status=0)
    record.outcome = "closed"
    await recorder.write(record, "session_end", identity=identity, outcome="closed", reason="the client left",
                         statements=0, refused=0, duration_ms=1200.0)  # fmt: skip
    await recorder.index_session(record)
    return record.record_id


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    saved = dict(os.environ)
    state = tmp_path_factory.mktemp("replay-page")
    os.environ.update({"WARDGATE_UPSTREAM_TIMEOUT_S": "2", "WARDGATE_HOME": str(state)})
    try:
        with mock_aws(config=SFN_INTERPRETER):
            stack = DevStack(root=ROOT, state_dir=state, port=0, upstream_port=0, pg_port=0, mysql_port=0)
            stack.start()
            try:
                yield _traffic(Site(stack))
            finally:
                stack.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _traffic(site: Site) -> Site:
    assert site.stack.issuer is not None
    register_agent(site.stack, "alice-agent", ALICE)
    alice = {"Authorization": f"Bearer {site.stack.issuer.mint('alice-agent', ['ci'])}"}
    with site.client() as http:
        for name, method, path in (
            ("allowed", "GET", "/http/demo/anything"),
            ("denied", "DELETE", "/http/demo/v1/users/7"),
            ("tampered", "GET", "/http/demo/v1/customers"),
        ):
            site.ids[name] = http.request(method, path, headers=alice).headers["x-wardgate-record-id"]
    site.ids["terminal"] = asyncio.run(_terminal_session())
    site.stack.manifests.drain()  # every object signed, as RecordingManifestFunction would by now
    return site


# ------------------------------------------------------------------------------------- signing in


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def start(http: httpx.Client, path: str = "/audit") -> dict[str, str]:
    """Open a page without a session: the page sends the browser to the issuer; its parameters."""
    answer = http.get(path)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(f"{http.base_url}{ISSUER_PATH}/authorize?".replace("//_dev", "/_dev"))
    return _query(location)


def authorize(http: httpx.Client, params: dict[str, str], subject: str, groups: str) -> str:
    """The human signs in on the issuer's form; the callback URL it redirects to."""
    answer = http.post(f"{ISSUER_PATH}/authorize", data={**params, "subject": subject, "groups": groups})
    assert answer.status_code == 302, answer.text
    return str(answer.headers["location"])


@contextlib.contextmanager
def sign_in(site: Site, subject: str, groups: str, path: str = "/audit") -> Iterator[httpx.Client]:
    """A client signed in to the page as ``subject`` with ``groups``, through the whole flow."""
    with site.client() as http:
        callback = authorize(http, start(http, path), subject, groups)
        answer = http.get(callback)
        assert answer.status_code == 303, answer.text
        yield http


def test_an_auditor_signs_in_with_pkce_and_gets_a_short_sealed_session(site: Site):
    with site.client() as http:
        params = start(http, "/audit?protocol=ssh")
        assert params["response_type"] == "code" and params["client_id"] == DEV_AUDIT_CLIENT
        assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
        assert params["redirect_uri"] == f"{site.url}/audit/callback" and "openid" in params["scope"]
        assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32
        login = next(c for c in http.cookies.jar if c.name == "wardgate-audit-login")
        assert login.path == "/audit/callback" and not login.secure
        assert params["state"] not in login.value and params["nonce"] not in login.value  # sealed, not signed

        # "@" and "." are outside base64url: the subject cannot turn up in the sealed value by chance
        callback = authorize(http, params, "ada@example.org", "auditors ci")
        assert _query(callback)["state"] == params["state"]
        answer = http.get(callback)
        assert answer.status_code == 303 and answer.headers["location"] == "/audit?protocol=ssh"
        cookies = answer.headers.get_list("set-cookie")
        (session,) = [c for c in cookies if c.startswith("wardgate-audit=")]
        attributes = {part.strip().lower() for part in session.split(";")[1:]}
        assert {"path=/audit", "max-age=1800", "httponly", "samesite=lax"} <= attributes
        assert "secure" not in attributes  # http on loopback (wardgate dev); __Secure- and Secure on https
        assert "ada@example.org" not in session and "auditors" not in session
        assert any(c.startswith("wardgate-audit-login=;") and "Max-Age=0" in c for c in cookies)
        page = http.get("/audit?protocol=ssh")
        assert page.status_code == 200 and 'id="who">ada@example.org<' in page.text
        assert site.ids["terminal"] in page.text and site.ids["allowed"] not in page.text


def test_a_non_auditor_is_told_why_and_sees_no_data(site: Site):
    with sign_in(site, "mallory", "ci developers") as http:
        for path in ("/audit", f"/audit/records/{site.ids['terminal']}", "/audit?owner=" + ALICE):
            answer = http.get(path)
            assert answer.status_code == 403, path
            assert 'data-code="not_an_auditor"' in answer.text and "<code>auditors</code>" in answer.text
            assert answer.headers["cache-control"] == "no-store"
            for record_id in site.ids.values():
                assert record_id not in answer.text
            assert "alice" not in answer.text and "notes.txt" not in answer.text


def _assert_page_headers(answer: httpx.Response) -> None:
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-security-policy"] == CSP
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-content-type-options"] == "nosniff"
    for inline in ("<script>", " style=", " onclick="):  # scripts and styles come from files only
        assert inline not in answer.text


def test_every_page_is_no_store_framed_by_nobody_and_runs_only_its_own_scripts(site: Site):
    with sign_in(site, "ada", "auditors") as http:
        pages = [
            http.get("/audit"),
            http.get(f"/audit/records/{site.ids['terminal']}"),
            http.get("/audit?since=yesterday-ish"),  # 400
            http.get("/audit/records/0000000000000000000000000000f"),  # 404
        ]
        assert [p.status_code for p in pages] == [200, 200, 400, 404]
    with sign_in(site, "mallory", "ci") as http:
        pages.append(http.get("/audit"))  # 403
    with site.client() as http:
        pages.append(http.get("/audit/callback?state=x&code=y"))  # 400: no sign-in in progress
    for answer in pages:
        _assert_page_headers(answer)
    with site.client() as http:
        script = http.get("/audit/static/asciinema-player.min.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("application/javascript")
        assert script.headers["x-content-type-options"] == "nosniff"
        assert http.get("/audit/static/..%2Fapp.py").status_code == 404
        assert http.get("/audit/static/VENDORED.json").status_code == 404  # only the listed assets


def test_an_answer_with_another_state_is_refused(site: Site):
    with site.client() as http:
        params = start(http)
        callback = authorize(http, {**params, "state": "x" * 32}, "ada", "auditors")
        answer = http.get(callback)
        assert answer.status_code == 400 and 'data-code="bad_state"' in answer.text
        assert not any(c.startswith("wardgate-audit=") for c in answer.headers.get_list("set-cookie"))
        assert http.get("/audit").status_code == 302  # still not signed in


def test_a_code_bound_to_another_verifier_is_refused_by_pkce(site: Site):
    """Code injection: a code the attacker obtained with their own challenge, replayed into the
    victim's sign-in (right state), cannot be exchanged with the victim's verifier."""
    with site.client() as victim, site.client() as attacker:
        params = start(victim)
        forged = {**params, "code_challenge": pkce_challenge("attacker-verifier-" + "a" * 40)}
        callback = authorize(attacker, forged, "mallory", "auditors")
        answer = victim.get(callback)
        assert answer.status_code == 401 and 'data-code="token_refused"' in answer.text
        assert "PKCE verification failed" in answer.text
        assert not any(c.startswith("wardgate-audit=") for c in answer.headers.get_list("set-cookie"))


def test_an_id_token_issued_for_another_sign_in_is_refused_by_its_nonce(site: Site):
    with site.client() as http:
        params = start(http)
        callback = authorize(http, {**params, "nonce": "n" * 32}, "ada", "auditors")
        answer = http.get(callback)
        assert answer.status_code == 401 and 'data-code="nonce_mismatch"' in answer.text


def test_the_development_issuer_enforces_the_flow(site: Site):
    verifier = "v" * 50
    with site.client() as http:
        params = start(http)
        base = {**params, "code_challenge": pkce_challenge(verifier)}
        for changed, error in (
            ({"code_challenge_method": "plain"}, "invalid_request"),
            ({"response_type": "token"}, "unsupported_response_type"),
            ({"scope": "profile"}, "invalid_scope"),
        ):
            back = _query(authorize(http, {**base, **changed}, "ada", "auditors"))
            assert back["error"] == error and back["state"] == params["state"] and "code" not in back
        elsewhere = {**base, "redirect_uri": "http://evil.example/cb", "subject": "ada"}
        unknown = http.post(f"{ISSUER_PATH}/authorize", data=elsewhere)
        assert unknown.status_code == 400 and "location" not in unknown.headers  # never redirected there
        form = http.get(f"{ISSUER_PATH}/authorize?{urlencode(base)}")
        assert form.status_code == 200 and 'name="subject"' in form.text

        code = _query(authorize(http, base, "ada", "auditors"))["code"]
        exchange = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": DEV_AUDIT_CLIENT,
            "redirect_uri": params["redirect_uri"],
        }
        wrong = http.post(f"{ISSUER_PATH}/token", data={**exchange, "code_verifier": "w" * 50})
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
        again = http.post(f"{ISSUER_PATH}/token", data={**exchange, "code_verifier": verifier})
        assert again.json()["error"] == "invalid_grant"  # a code is used once, even by a failed exchange

        code = _query(authorize(http, base, "ada", "auditors"))["code"]
        good = http.post(f"{ISSUER_PATH}/token", data={**exchange, "code": code, "code_verifier": verifier})
        assert good.status_code == 200 and good.headers["cache-control"] == "no-store"
        discovery = http.get(f"{ISSUER_PATH}/.well-known/openid-configuration").json()
        assert discovery["code_challenge_methods_supported"] == ["S256"]
        assert discovery["token_endpoint"] == f"{site.url}{ISSUER_PATH}/token"


def test_the_quick_start_names_the_page(site: Site):
    from wardgate.dev.stack import quick_start

    assert f"Replay page: {site.url}/audit" in quick_start(site.stack)


# ------------------------------------------------------------------------------------ the cookies


def _page() -> page_app.AuditPage:
    return page_app.page_for(page_app.PageSettings.from_env())


def _session_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "v": 1,
        "sub": "ada",
        "iss": _page().settings.issuer.issuer,
        "group": "auditors",
        "auditor": True,
        "iat": now,
        "exp": now + 600,
        "csrf": "t" * 32,
    }
    return {**claims, **changes}


def test_only_an_unaltered_unexpired_session_of_this_page_opens(site: Site):
    page = _page()
    valid = page.sealer.seal("session", _session_claims())
    with site.client() as http:
        http.cookies.set("wardgate-audit", valid, path="/audit")
        assert http.get("/audit").status_code == 200
    now = int(time.time())
    refused = {
        "forged": "A" * 120,
        "altered": valid[:-3] + ("AAA" if not valid.endswith("AAA") else "BBB"),
        "expired": page.sealer.seal("session", _session_claims(iat=now - 1900, exp=now - 100)),
        "too long-lived": page.sealer.seal("session", _session_claims(exp=now + 24 * 3600)),
        "issued in the future": page.sealer.seal("session", _session_claims(iat=now + 600, exp=now + 900)),
        "another auditor group": page.sealer.seal("session", _session_claims(group="everyone")),
        "sealed as a sign-in": page.sealer.seal("login", _session_claims()),
        "another key": Sealer(lambda: b"k" * 48).seal("session", _session_claims()),
    }
    for why, value in refused.items():
        with site.client() as http:
            http.cookies.set("wardgate-audit", value, path="/audit")
            answer = http.get("/audit")
            assert answer.status_code == 302, why  # back to the identity provider, nothing shown
            assert answer.headers["location"].startswith(f"{site.url}{ISSUER_PATH}/authorize?"), why


def test_on_https_the_cookies_are_secure_and_the_redirect_uri_is_the_apis_own(site: Site):
    """On AWS without a custom domain the page is https://<the domain API Gateway was reached on>."""
    import dataclasses

    settings = dataclasses.replace(page_app.PageSettings.from_env(), public_url="")
    page = page_app.page_for(settings)
    event = {
        "routeKey": "GET /audit",
        "rawPath": "/audit",
        "requestContext": {
            "http": {"method": "GET"},
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
        },
    }
    answer = page.handle(event)
    assert answer.status == 302
    params = _query(answer.headers["location"])
    assert params["redirect_uri"] == "https://abc123.execute-api.us-east-1.amazonaws.com/audit/callback"
    (cookie,) = answer.cookies
    assert cookie.startswith("__Secure-wardgate-audit-login=") and cookie.endswith("; Secure")
    sealed = page.sealer.seal("session", _session_claims())
    signed_in = {**event, "cookies": [f"__Secure-wardgate-audit={sealed}"]}
    shown = page.handle(signed_in)
    assert shown.status == 200 and shown.headers["strict-transport-security"].startswith("max-age=")
    plain = page.handle({**event, "cookies": [f"wardgate-audit={sealed}"]})
    assert plain.status == 302  # on https only the __Secure- cookie counts
    odd = {**event, "requestContext": {"http": {"method": "GET"}, "domainName": "evil.example/x?"}}
    assert page.handle(odd).status == 503


def test_sealing_binds_the_purpose_and_rejects_garbage():
    sealer = Sealer(lambda: b"s" * 48)
    sealed = sealer.seal("session", {"a": 1})
    assert sealer.open("session", sealed) == {"a": 1}
    for purpose, value in (("login", sealed), ("session", ""), ("session", "!!"), ("session", sealed[:20])):
        with pytest.raises(SealError):
            sealer.open(purpose, value)
    with pytest.raises(ValueError, match="shorter than 32 bytes"):
        Sealer(lambda: b"short").seal("session", {})


def test_sign_out_needs_the_pages_own_form(site: Site):
    with sign_in(site, "ada", "auditors") as http:
        page = http.get("/audit")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        form = {"content-type": "application/x-www-form-urlencoded"}
        forged = http.post("/audit/signout", content=b"csrf=guess", headers=form)
        assert forged.status_code == 403 and 'data-code="bad_csrf"' in forged.text
        elsewhere = http.post(
            "/audit/signout", data={"csrf": token.group(1)}, headers={"origin": "https://evil.example"}
        )
        assert elsewhere.status_code == 403 and 'data-code="bad_origin"' in elsewhere.text
        assert http.get("/audit").status_code == 200  # still signed in
        out = http.post("/audit/signout", data={"csrf": token.group(1)}, headers={"origin": site.url})
        assert out.status_code == 200 and 'data-code="signed_out"' in out.text
        cleared = [c for c in out.headers.get_list("set-cookie") if c.startswith("wardgate-audit=;")]
        assert cleared and "Max-Age=0" in cleared[0]
        assert http.get("/audit").status_code == 302


def test_sign_in_never_redirects_off_the_page(site: Site):
    for next_path in ("https://evil.example/", "//evil.example/audit", "/auditx", "/audit/\\evil"):
        with site.client() as http:
            params = _query(http.get("/audit/signin", params={"next": next_path}).headers["location"])
            answer = http.get(authorize(http, params, "ada", "auditors"))
            assert answer.status_code == 303 and answer.headers["location"] == "/audit", next_path


# ------------------------------------------------------------------------------ search and records


def test_bad_filters_and_unknown_records_are_clear_errors(site: Site):
    with sign_in(site, "ada", "auditors") as http:
        cases = {
            "/audit?since=yesterday-ish": "since 'yesterday-ish' is not a time",
            "/audit?outcome=maybe": "outcome 'maybe': one of allowed, denied, approval, error",
            "/audit?protocol=gopher": "protocol 'gopher'",
            "/audit?since=2026-03-02&until=2026-03-01": "since must be before until",
            "/audit?subject=" + "x" * 300: "subject: at most 200 characters",
        }
        for path, message in cases.items():
            answer = http.get(path)
            assert answer.status_code == 400 and message in html.unescape(answer.text), path
            assert 'id="filters"' in answer.text  # the form stays, to correct it
        missing = http.get("/audit/records/" + "0" * 29)
        assert missing.status_code == 404 and 'data-code="not_found"' in missing.text
        malformed = http.get("/audit/records/not-a-record")
        assert malformed.status_code == 404 and 'data-code="bad_record_id"' in malformed.text


def test_filters_narrow_the_search(site: Site):
    with sign_in(site, "ada", "auditors") as http:

        def found(query: str) -> set[str]:
            answer = http.get("/audit?" + query)
            assert answer.status_code == 200, answer.text
            return set(re.findall(r'href="/audit/records/([0-9a-f]{29})"', answer.text))

        everything = found("")
        assert set(site.ids.values()) <= everything
        assert found("outcome=denied") & set(site.ids.values()) == {site.ids["denied"]}
        assert found(f"owner={ALICE}&protocol=ssh") == {site.ids["terminal"]}
        assert found("connection=demo-ssh&subject=alice-agent") == {site.ids["terminal"]}
        assert found("subject=nobody") == set()
        future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
        assert found(f"since={future}") == set()


def test_a_record_shows_its_timeline_and_integrity(site: Site):
    with sign_in(site, "ada", "auditors") as http:
        page = http.get(f"/audit/records/{site.ids['denied']}").text
        assert 'data-state="intact"' in page and "Manifests checked with key local:" in page
        assert 'data-event="refused"' in page and "DENIED by rule no deleting users on demo" in page
        terminal = http.get(f"/audit/records/{site.ids['terminal']}").text
        player = re.search(r'data-asciicast="([^"]+)"', terminal)
        assert player is not None
        cast = [json.loads(line) for line in player.group(1).replace("&quot;", '"').splitlines()]
        assert cast[0]["width"] == 80 and cast[0]["height"] == 12
        output = "".join(frame[2] for frame in cast[1:])
        assert "notes.txt" in output and "\x1b[1mbold" in output  # what draws the screen stays
        assert "owned title" not in output and "\x1b]52" not in output and "\x1b[6n" not in output
        assert all(frame[1] != "i" for frame in cast[1:])  # keystrokes: in the timeline, not replayed


def test_a_changed_object_is_shown_as_tampered(site: Site):
    record_id = site.ids["tampered"]
    s3 = aws.client("s3")
    bucket = os.environ["RECORDINGS_BUCKET"]
    for listed in s3.list_objects_v2(Bucket=bucket, Prefix="recordings/")["Contents"]:
        data = s3.get_object(Bucket=bucket, Key=listed["Key"])["Body"].read()
        plain = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        if record_id.encode() in plain and b'"response"' in plain:
            changed = plain.replace(b'"status":200', b'"status":201')
            s3.put_object(Bucket=bucket, Key=listed["Key"], Body=changed)
            break
    else:
        pytest.fail("the record's response object was not found")
    with sign_in(site, "ada", "auditors") as http:
        page = http.get(f"/audit/records/{record_id}").text
    assert 'data-state="tampered"' in page and "NOT INTACT" in page
    assert 'data-kind="modified_object"' in page or 'data-kind="modified_event"' in page


# ------------------------------------------------------------------------- integrity, case by case


def _line(record_id: str, event: str, when: datetime, chain: dict[str, Any] | None = None) -> bytes:
    doc: dict[str, Any] = {
        "format": "wardgate.recording/v1",
        "event": event,
        "record_id": record_id,
        "time": when.isoformat(),
        "started_at": when.isoformat(),
        "connection": "_admin",
    }
    if chain is not None:
        doc["chain"] = chain
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def _shown(*lines: bytes) -> RecordEvents:
    texts = [line.rstrip(b"\n").decode() for line in lines]
    return RecordEvents(texts, [json.loads(t) for t in texts])


def _record_id(when: datetime) -> str:
    return f"{int(when.timestamp() * 1000):013x}" + "ab" * 8


@pytest.fixture
def loose_bucket(site: Site, tmp_path: Path) -> Iterator[tuple[str, Any, FileSigner, ManifestVerifier]]:
    """A bucket the local signer does not watch: objects go in signed or not, as each case needs."""
    s3 = aws.client("s3")
    bucket = f"integrity-{tmp_path.name[-20:].lower().replace('_', '-')}"
    s3.create_bucket(Bucket=bucket)
    signer = FileSigner(make_local_key(tmp_path))
    public = signer.private_key.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    yield bucket, s3, signer, ManifestVerifier(public, signer.key_id)


def _put(s3: Any, bucket: str, when: datetime, body: bytes) -> str:
    key = f"recordings/{when:%Y/%m/%d/%H}/object-{hashlib.sha256(body).hexdigest()[:12]}"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return key


def test_integrity_states_for_old_unsigned_pending_and_copied_events(loose_bucket):
    bucket, s3, signer, verifier = loose_bucket
    checker = IntegrityChecker(bucket, "recordings/", lambda: verifier, s3=s3)
    old = datetime.now(UTC) - timedelta(days=3)

    legacy = _record_id(old)
    line = _line(legacy, "admin", old)
    _put(s3, bucket, old, line)
    status = checker.check(legacy, _shown(line))
    assert status.state == "unsigned" and "nothing vouches" in status.summary

    signed = _record_id(old + timedelta(minutes=1))
    line = _line(signed, "admin", old + timedelta(minutes=1))
    sign_object(bucket, _put(s3, bucket, old, line), signer, s3=s3)
    status = checker.check(signed, _shown(line))
    assert status.state == "intact" and any("predate hash chains" in n for n in status.notes)
    copied = _shown(line.replace(b'"_admin"', b'"billing"'))  # what the engine returned differs
    status = checker.check(signed, copied)
    assert status.state == "tampered" and [k for k, _ in status.problems] == ["modified_event"]

    now = datetime.now(UTC)
    fresh = _record_id(now)
    line = _line(fresh, "admin", now, {"writer": "w-page-test", "seq": 1, "prev": ""})
    _put(s3, bucket, now, line)
    assert checker.check(fresh, _shown(line)).state == "pending"  # its manifest is seconds away
    later = now + timedelta(hours=1)
    late = IntegrityChecker(bucket, "recordings/", lambda: verifier, s3=s3, now=lambda: later)
    status = late.check(fresh, _shown(line))
    assert status.state == "tampered" and [k for k, _ in status.problems] == ["unsigned_object"]

    small = IntegrityChecker(bucket, "recordings/", lambda: verifier, s3=s3, max_objects=0)
    status = small.check(fresh, _shown(line))
    assert status.state == "unchecked" and f"wardgate recordings verify --record {fresh}" in status.summary
    gone = _record_id(old + timedelta(minutes=2))
    status = checker.check(gone, _shown(_line(gone, "admin", old + timedelta(minutes=2))))
    assert status.state == "tampered" and status.problems[0][0] == "missing_object"


def test_record_events_are_read_once_and_in_order(site: Site):
    engine = page_app._engine(page_app.PageSettings.from_env())
    shown = record_events(engine, site.ids["terminal"])
    assert shown is not None
    kinds = [e["event"] for e in shown.events]
    assert kinds == ["session_start", "terminal_start", "terminal_output", "terminal_end", "session_end"]
    assert record_events(engine, "f" * 29) is None


def _athena(*results: list[list[str]]) -> tuple[Any, Any, list[str]]:
    """A real botocore Athena client with stubbed answers (botocore checks each call against the API
    model; moto cannot serve this botocore's Athena), one query per result set given."""
    import boto3
    from botocore.stub import ANY, Stubber

    client = boto3.client("athena", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    sent: list[str] = []
    client.meta.events.register(
        "provide-client-params.athena.StartQueryExecution",
        lambda params, **_: sent.append(params["QueryString"]),
    )
    stub = Stubber(client)
    for number, rows in enumerate(results):
        execution = {"QueryExecutionId": f"q-{number}"}
        expected = {"QueryString": ANY, "WorkGroup": "audit", "QueryExecutionContext": {"Database": "rec"}}
        stub.add_response("start_query_execution", execution, expected)
        done = {"QueryExecution": {"Status": {"State": "SUCCEEDED"}}}
        stub.add_response("get_query_execution", done, execution)
        result_set = {
            "Rows": [{"Data": [{"VarCharValue": v} for v in row]} for row in rows],
            "ResultSetMetadata": {"ColumnInfo": [{"Name": n, "Type": "varchar"} for n in rows[0]]},
        }
        stub.add_response("get_query_results", {"ResultSet": result_set}, execution)
    return client, stub, sent


def test_on_aws_the_page_asks_athena_the_same_questions(site: Site):
    from wardgate.auditing import questions
    from wardgate.auditing.query import AthenaEngine
    from wardgate.auditing.web import views
    from wardgate.auditing.web.records import search

    record_id = site.ids["denied"]
    line = json.dumps({"format": "wardgate.recording/v1", "event": "refused", "record_id": record_id,
                       "time": "2026-03-01T10:00:00+00:00", "connection": "demo"})  # fmt: skip
    columns = ["record_id", "started_at", "subject", "owner", "connection", "protocol", "outcome"]
    found = [record_id, "2026-03-01 10:00:00.000 UTC", "it's-me", ALICE, "demo", "http", "denied"]
    client, stub, sent = _athena([columns, found], [["raw"], [line]])
    engine = AthenaEngine(client, "audit", "rec", poll_s=0)
    with stub:
        filters = questions.Filters(since=datetime(2026, 3, 1, tzinfo=UTC), agent="it's-me", outcome="denied")
        result = search(engine, filters)
        shown = record_events(engine, record_id)
    assert sent[0].startswith("WITH event_rows AS (") and "FROM records WHERE" in sent[0]
    assert "subject = 'it''s-me'" in sent[0] and "outcome = 'denied'" in sent[0]  # literals, quotes doubled
    assert "arrival_hour >= '2026/02/28/" in sent[0]  # only the hours the question needs are scanned
    assert f"record_id = '{record_id}'" in sent[1]
    page = views.search_page({}, result, "ada", "t", 100)
    assert f'href="/audit/records/{record_id}"' in page and "it&#x27;s-me" in page
    assert shown is not None and shown.events[0]["event"] == "refused"


# ---------------------------------------------------------------------------------- the page unconfigured


def test_a_page_without_its_settings_answers_503_and_says_which(monkeypatch):
    monkeypatch.setenv("WARDGATE_ISSUERS", json.dumps([{"issuer": "https://idp.example", "audience": "w"}]))
    monkeypatch.setenv("WARDGATE_PUBLIC_URL", "https://wardgate.example")
    monkeypatch.delenv("AUDIT_CLIENT_ID", raising=False)
    answer = page_app.handle_event({"routeKey": "GET /audit", "rawPath": "/audit"}, None)
    assert answer["statusCode"] == 503 and "AUDIT_CLIENT_ID" in answer["body"]
    monkeypatch.setenv("AUDIT_CLIENT_ID", "page")
    monkeypatch.setenv("AUDIT_SESSION_KEY_SECRET", "secret")
    monkeypatch.setenv("WARDGATE_PUBLIC_URL", "http://wardgate.example")
    answer = page_app.handle_event({"routeKey": "GET /audit", "rawPath": "/audit"}, None)
    assert answer["statusCode"] == 503 and "https" in answer["body"]
    monkeypatch.setenv("WARDGATE_PUBLIC_URL", "")
    monkeypatch.setenv("AUDIT_ENGINE", "athena")
    monkeypatch.delenv("AUDIT_WORKGROUP", raising=False)
    answer = page_app.handle_event({"routeKey": "GET /audit", "rawPath": "/audit"}, None)
    assert answer["statusCode"] == 503 and "AUDIT_WORKGROUP" in answer["body"]


def test_the_vendored_player_is_the_pinned_release():
    static = ROOT / "layers/wardgate/wardgate/auditing/web/static"
    vendored = json.loads((static / "VENDORED.json").read_text())["asciinema-player"]
    assert vendored["license"] == "Apache-2.0" and re.fullmatch(r"\d+\.\d+\.\d+", vendored["version"])
    script = (ROOT / "scripts/vendor-asciinema-player").read_text()
    assert f"VERSION={vendored['version']}\n" in script and vendored["integrity"] in script
    for name, digest in vendored["files"].items():
        assert hashlib.sha256((static / name).read_bytes()).hexdigest() == digest, name
    assert "Apache License" in (static / "asciinema-player.LICENSE").read_text()


# ------------------------------------------------------------------------------- in a real browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: install it with `bash scripts/services chromium`"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


CSP_WATCH = """
window.__csp = [];
document.addEventListener(
  "securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI)
);
"""


def test_an_auditor_signs_in_filters_opens_a_session_and_replays_it_in_a_browser(site: Site, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(CSP_WATCH)
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{site.url}/audit")
    page.wait_for_selector("#subject")  # the development issuer's sign-in form
    assert page.url.startswith(f"{site.url}{ISSUER_PATH}/authorize?")
    page.fill("#subject", "ada")
    page.fill("#groups", "auditors")
    page.click("#sign-in")
    page.wait_for_selector("#filters")
    assert page.url == f"{site.url}/audit" and page.inner_text("#who") == "ada"

    page.select_option("#f-protocol", "ssh")
    page.fill("#f-owner", ALICE)
    page.click("#search")
    page.wait_for_selector("#records")
    links = page.locator("#records a.record")
    assert links.count() == 1 and links.first.inner_text() == site.ids["terminal"]
    links.first.click()

    page.wait_for_selector("#integrity")
    assert page.get_attribute("#integrity", "data-state") == "intact"
    assert "Integrity: intact" in page.inner_text("#integrity")
    events = page.locator("#timeline tr.event")
    assert events.count() == 5 and "session end" in events.last.inner_text()

    page.wait_for_selector(".player .ap-player")
    page.locator(".player .ap-player").click()  # play
    # A locator, not wait_for_function: that evaluates a string, which the page's CSP forbids.
    page.locator(".player .ap-term", has_text="notes.txt").wait_for(timeout=10_000)
    screen = page.inner_text(".player .ap-term")
    assert "$ ls" in screen and "owned title" not in screen
    assert page.evaluate("window.__csp") == [] and errors == []  # the player runs under the strict CSP
    with contextlib.suppress(Exception):  # an injected inline script is refused (and reported)
        page.add_script_tag(content="window.__injected = 1")
    assert page.evaluate("window.__injected") is None
    assert any(v.startswith("script-src") for v in page.evaluate("window.__csp"))
    context.close()


def test_a_non_auditor_gets_403_in_a_browser(site: Site, browser):
    context = browser.new_context()
    page = context.new_page()
    response = None
    page.goto(f"{site.url}/audit/records/{site.ids['terminal']}")
    page.fill("#subject", "mallory")
    page.fill("#groups", "ci")
    with page.expect_response(lambda r: "/audit/records/" in r.url) as answer:
        page.click("#sign-in")
    response = answer.value
    assert response.status == 403
    assert page.get_attribute("#error", "data-code") == "not_an_auditor"
    assert site.ids["terminal"] not in page.inner_text("main") and page.locator(".player").count() == 0
    context.close()
