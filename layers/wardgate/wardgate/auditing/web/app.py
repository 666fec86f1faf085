"""The auditors' replay page (API Gateway payload 2.0 in, an ``HttpResponse`` out):

- ``GET /audit``: search the records (time range, subject, owner, connection, outcome, protocol).
- ``GET /audit/records/{record_id}``: one record: its integrity, its terminals replayed, its timeline.
- ``GET /audit/signin[?next=/audit...]``: sign in with the identity provider (any page does, unsigned).
- ``GET /audit/callback``: the provider's answer: a session cookie, then back to ``next``.
- ``POST /audit/signout``: the page's sign-out button.
- ``GET /audit/static/{asset}``: the page's script and stylesheet, and asciinema-player.

Who sees what: a valid session of a member of ``AUDITOR_GROUP`` (the ID token's groups when they
signed in) sees everything; anyone else signed in gets 403 with a page that says why and shows no
data; nobody else gets past the sign-in. The session is a sealed cookie (``sealing.py``: AES-GCM,
key from Secrets Manager), HttpOnly, SameSite=Lax, Secure (and ``__Secure-``) whenever the page is
served over https, scoped to ``/audit``, valid ``SESSION_SECONDS``. Reads are GETs; the one
state-changing form (sign-out) carries a token bound to the session and its ``Origin`` must be the
page's own. Every HTML answer is ``no-store``, framed by nobody, and runs scripts and styles from
the page's origin only (plus WebAssembly compilation, which the player's terminal emulator needs).
See docs/auditors.md and docs/security.md.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from wardgate.apigw import HttpResponse
from wardgate.auditing import questions
from wardgate.auditing.web import records, views
from wardgate.auditing.web.records import Engine, IntegrityChecker, IntegrityStatus
from wardgate.auditing.web.sealing import Sealer, SealError
from wardgate.auditing.web.signin import LoginState, OidcClient, SignInError
from wardgate.identity import IssuerConfig, is_loopback_url
from wardgate.observability import logger

SESSION_SECONDS = 30 * 60
LOGIN_SECONDS = 10 * 60
CLOCK_SKEW_SECONDS = 60
DEFAULT_SINCE = "24h"
MAX_FILTER_CHARS = 200
MAX_FORM_BYTES = 4 * 1024
ATHENA_TIMEOUT_S = 20.0  # inside API Gateway's 30 s, with time left for the integrity check
FILTER_FIELDS = ("since", "until", "subject", "owner", "connection", "outcome", "protocol")
STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSETS = {
    "audit.js": "application/javascript; charset=utf-8",
    "audit.css": "text/css; charset=utf-8",
    "asciinema-player.min.js": "application/javascript; charset=utf-8",
    "asciinema-player.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HTML_HEADERS = {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    "pragma": "no-cache",
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-robots-tag": "noindex",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
# A page of ours: no scheme or host, no backslash (browsers read it as "/"), printable ASCII only.
_SAFE_NEXT = re.compile(r"/audit(?:[/?][\x21-\x5b\x5d-\x7e]*)?")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?")


class NotConfigured(Exception):
    """The page's settings are missing or wrong: it answers 503 and says which."""


@dataclass(frozen=True)
class PageSettings:
    public_url: str  # empty: https:// and the domain API Gateway received the request on
    issuer: IssuerConfig
    client_id: str
    auditor_group: str
    session_key_secret: str
    engine: str  # "athena" on AWS, "local" (DuckDB on a cache of the bucket) in wardgate dev
    workgroup: str
    database: str
    cache_dir: str
    recordings_bucket: str
    recordings_prefix: str
    manifest_key: str
    session_seconds: int = SESSION_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PageSettings:
        from wardgate.auditing.signing import KEY_SETTING
        from wardgate.config import Settings
        from wardgate.errors import GatewayError

        env = dict(os.environ if env is None else env)
        try:
            settings = Settings.from_env(env)
        except GatewayError as exc:
            raise NotConfigured(exc.message) from None
        public_url = settings.public_url.rstrip("/")
        scheme = urlsplit(public_url).scheme
        if public_url and not (scheme == "https" or (scheme == "http" and is_loopback_url(public_url))):
            raise NotConfigured("WARDGATE_PUBLIC_URL must be the page's https URL (http only on loopback)")
        wanted = env.get("AUDIT_ISSUER", "")
        issuer = next((i for i in settings.issuers if not wanted or i.issuer == wanted), None)
        if issuer is None:
            raise NotConfigured(
                f"AUDIT_ISSUER {wanted!r} is not one of the trusted issuers"
                if wanted
                else "WARDGATE_ISSUERS trusts no issuer to sign auditors in"
            )
        required = {
            "AUDIT_CLIENT_ID": "the page's OIDC client id at the identity provider",
            "AUDIT_SESSION_KEY_SECRET": "the secret that seals the page's cookies",
            "AUDITOR_GROUP": "the group whose members may read the recordings",
        }
        defaults = {"AUDITOR_GROUP": "auditors"}
        values = {name: env.get(name, defaults.get(name, "")).strip() for name in required}
        for name, what in required.items():
            if not values[name]:
                raise NotConfigured(f"{name} ({what}) is not set")
        engine = env.get("AUDIT_ENGINE", "athena")
        if engine == "athena" and not (env.get("AUDIT_WORKGROUP") and env.get("AUDIT_DATABASE")):
            raise NotConfigured("AUDIT_ENGINE athena needs AUDIT_WORKGROUP and AUDIT_DATABASE")
        if engine == "local" and not env.get("AUDIT_CACHE_DIR"):
            raise NotConfigured("AUDIT_ENGINE local needs AUDIT_CACHE_DIR")
        if engine not in ("athena", "local"):
            raise NotConfigured(f"AUDIT_ENGINE {engine!r}: athena or local")
        return cls(
            public_url=public_url,
            issuer=issuer,
            client_id=values["AUDIT_CLIENT_ID"],
            auditor_group=values["AUDITOR_GROUP"],
            session_key_secret=values["AUDIT_SESSION_KEY_SECRET"],
            engine=engine,
            workgroup=env.get("AUDIT_WORKGROUP", ""),
            database=env.get("AUDIT_DATABASE", ""),
            cache_dir=env.get("AUDIT_CACHE_DIR", ""),
            recordings_bucket=settings.recordings_bucket,
            recordings_prefix=settings.recordings_prefix,
            manifest_key=env.get(KEY_SETTING, ""),
        )

    @property
    def secure(self) -> bool:
        return not self.public_url.startswith("http://")

    @property
    def session_cookie(self) -> str:
        return ("__Secure-" if self.secure else "") + "wardgate-audit"

    @property
    def login_cookie(self) -> str:
        return ("__Secure-" if self.secure else "") + "wardgate-audit-login"


@dataclass(frozen=True)
class Session:
    subject: str
    auditor: bool
    token: str  # the sign-out form's anti-forgery token (random, per session)


@dataclass(frozen=True)
class Request:
    method: str
    route: str  # the API Gateway route key, e.g. "GET /audit/records/{record_id}"
    params: dict[str, str]
    query: dict[str, str]
    raw_query: str
    path: str
    cookies: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    domain: str  # requestContext.domainName: the domain API Gateway received the request on

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Request:
        context = event.get("requestContext") or {}
        method = str((context.get("http") or {}).get("method", "GET")).upper()
        raw_query = str(event.get("rawQueryString") or "")
        query = {name: values[0] for name, values in parse_qs(raw_query, keep_blank_values=True).items()}
        cookies: dict[str, list[str]] = {}
        for cookie in event.get("cookies") or []:
            name, _, value = str(cookie).strip().partition("=")
            cookies.setdefault(name.strip(), []).append(value.strip())
        raw = event.get("body") or ""
        try:
            body = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else str(raw).encode()
        except binascii.Error:
            body = b""
        return cls(
            method=method,
            route=str(event.get("routeKey", "")),
            params={k: str(v) for k, v in (event.get("pathParameters") or {}).items()},
            query=query,
            raw_query=raw_query,
            path=str(event.get("rawPath") or views.PAGE),
            cookies=cookies,
            headers={str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()},
            body=body,
            domain=str(context.get("domainName") or ""),
        )


def _html(status: int, page: str, cookies: list[str] | None = None, secure: bool = False) -> HttpResponse:
    headers = dict(HTML_HEADERS)
    if secure:
        headers["strict-transport-security"] = "max-age=31536000"
    return HttpResponse(status, headers, page.encode(), list(cookies or []))


def _redirect(location: str, cookies: list[str], status: int = 302) -> HttpResponse:
    headers = {"location": location, "cache-control": "no-store", "referrer-policy": "no-referrer"}
    return HttpResponse(status, headers, b"", cookies)


@functools.cache
def _asset(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()


class AuditPage:
    def __init__(
        self,
        settings: PageSettings,
        sealer: Sealer,
        oidc: OidcClient,
        engine: Callable[[], Engine],
        integrity: IntegrityChecker,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sealer = sealer
        self.oidc = oidc
        self.engine = engine
        self.integrity = integrity
        self.clock = clock

    # ------------------------------------------------------------------ cookies

    def _cookie(self, name: str, value: str, path: str, max_age: int) -> str:
        secure = "; Secure" if self.settings.secure else ""
        return f"{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"

    def _session_cookie(self, value: str, max_age: int) -> str:
        return self._cookie(self.settings.session_cookie, value, views.PAGE, max_age)

    def _login_cookie(self, value: str, max_age: int) -> str:
        return self._cookie(self.settings.login_cookie, value, f"{views.PAGE}/callback", max_age)

    def session(self, request: Request) -> Session | None:
        """The request's valid session, if it has one (several cookies of the name: the first valid)."""
        now = self.clock()
        for sealed in request.cookies.get(self.settings.session_cookie, []):
            try:
                claims = self.sealer.open("session", sealed)
            except SealError:
                continue
            try:
                issued, expires = int(claims["iat"]), int(claims["exp"])
                subject, token = str(claims["sub"]), str(claims["csrf"])
                fits = (
                    claims.get("v") == 1
                    and claims.get("iss") == self.settings.issuer.issuer
                    and claims.get("group") == self.settings.auditor_group
                    and issued <= now + CLOCK_SKEW_SECONDS
                    and now < expires <= issued + self.settings.session_seconds
                )
            except (KeyError, TypeError, ValueError):
                continue
            if fits:
                return Session(subject, claims.get("auditor") is True, token)
        return None

    # ------------------------------------------------------------------ routing

    def base_url(self, request: Request) -> str:
        """The page's origin: the configured public URL, else the domain API Gateway was reached on
        (it routes only its own and mapped custom domains to this API, so a client cannot pick it)."""
        if self.settings.public_url:
            return self.settings.public_url
        if not _DOMAIN.fullmatch(request.domain):
            raise SignInError(
                "no_public_url", "the page cannot tell its own URL: set WARDGATE_PUBLIC_URL", 503
            )
        return f"https://{request.domain}"

    def handle(self, event: Mapping[str, Any]) -> HttpResponse:
        request = Request.from_event(event)
        route = request.route
        try:
            if route == "GET /audit/static/{asset}":
                return self.static(request.params.get("asset", ""))
            if route == "GET /audit/signin":
                return self.start_sign_in(request, request.query.get("next", views.PAGE))
            if route == "GET /audit/callback":
                return self.callback(request)
            if route == "POST /audit/signout":
                return self.sign_out(request)
            session = self.session(request)
            if session is None:
                if request.method != "GET":
                    return self._message(401, "Not signed in", "sign in first", "not_signed_in")
                here = request.path + (f"?{request.raw_query}" if request.raw_query else "")
                return self.start_sign_in(request, here)
            if not session.auditor:
                logger.info("replay page refused", extra={"subject": session.subject, "route": route})
                page = views.not_an_auditor(session.subject, self.settings.auditor_group, session.token)
                return _html(403, page, secure=self.settings.secure)
            if route == "GET /audit":
                return self.search(request, session)
            if route == "GET /audit/records/{record_id}":
                return self.record(request.params.get("record_id", ""), session)
            return self._message(404, "Not found", "there is no such page", "not_found")
        except SignInError as exc:
            logger.warning("replay page sign-in failed", extra={"code": exc.code})
            clear = [self._login_cookie("", 0)]
            link = f"{views.PAGE}/signin"
            return _html(
                exc.status,
                views.message("Sign-in failed", exc.message, exc.code, link=link),
                clear,
                self.settings.secure,
            )
        except Exception:
            logger.exception("replay page failed")
            return self._message(
                500, "Something failed", "wardgate failed to answer: try again", "internal_error"
            )

    def _message(self, status: int, title: str, text: str, code: str, who: str | None = None) -> HttpResponse:
        return _html(status, views.message(title, text, code, who), secure=self.settings.secure)

    def static(self, name: str) -> HttpResponse:
        content_type = ASSETS.get(name)
        if content_type is None:  # a fixed list: no path ever reaches the file system
            return HttpResponse(
                404, {"content-type": "text/plain", "cache-control": "no-store"}, b"not found"
            )
        headers = {
            "content-type": content_type,
            "cache-control": "public, max-age=3600",
            "x-content-type-options": "nosniff",
            "cross-origin-resource-policy": "same-origin",
        }
        return HttpResponse(200, headers, _asset(name))

    # ------------------------------------------------------------------ signing in and out

    def start_sign_in(self, request: Request, next_path: str) -> HttpResponse:
        if not _SAFE_NEXT.fullmatch(next_path) or len(next_path) > 1000:
            next_path = views.PAGE  # never an open redirect
        redirect_uri = f"{self.base_url(request)}{views.PAGE}/callback"
        location, login = self.oidc.start(next_path, int(self.clock()), redirect_uri)
        sealed = self.sealer.seal("login", login.to_claims())
        return _redirect(location, [self._login_cookie(sealed, LOGIN_SECONDS)])

    def callback(self, request: Request) -> HttpResponse:
        sealed = request.cookies.get(self.settings.login_cookie, [])
        if not sealed:
            raise SignInError(
                "no_sign_in",
                "this browser has no sign-in in progress: it took longer than 10 minutes, cookies are "
                "blocked, or the answer was meant for another browser",
                400,
            )
        try:
            login = LoginState.from_claims(self.sealer.open("login", sealed[0]))
        except SealError:
            raise SignInError("bad_state", "this sign-in's cookie was not made by the page", 400) from None
        if not 0 <= self.clock() - login.issued_at <= LOGIN_SECONDS:
            raise SignInError("sign_in_expired", "this sign-in took longer than 10 minutes", 400)
        identity = self.oidc.finish(login, request.query, f"{self.base_url(request)}{views.PAGE}/callback")
        now = int(self.clock())
        auditor = self.settings.auditor_group in identity.groups
        claims = {
            "v": 1,
            "sub": identity.subject,
            "iss": identity.issuer,
            "group": self.settings.auditor_group,
            "auditor": auditor,
            "iat": now,
            "exp": now + self.settings.session_seconds,
            "csrf": secrets.token_urlsafe(24),
        }
        logger.info("replay page sign-in", extra={"subject": identity.subject, "auditor": auditor})
        cookies = [
            self._session_cookie(self.sealer.seal("session", claims), self.settings.session_seconds),
            self._login_cookie("", 0),
        ]
        return _redirect(login.next, cookies, 303)

    def sign_out(self, request: Request) -> HttpResponse:
        origin = request.headers.get("origin")
        if origin is not None and origin != _origin(self.base_url(request)):
            return self._message(403, "Not signed out", "sign out from the page's own button", "bad_origin")
        if len(request.body) > MAX_FORM_BYTES:
            return self._message(413, "Not signed out", "this form is too large", "payload_too_large")
        session = self.session(request)
        if session is not None:
            form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
            if not hmac.compare_digest(form.get("csrf", "").encode(), session.token.encode()):
                return self._message(
                    403, "Not signed out", "sign out from the page's own button", "bad_csrf", session.subject
                )
        page = views.message(
            "Signed out", "Your session on this page has ended.", "signed_out", link=f"{views.PAGE}/signin"
        )
        return _html(200, page, [self._session_cookie("", 0)], self.settings.secure)

    # ------------------------------------------------------------------ the pages

    def search(self, request: Request, session: Session) -> HttpResponse:
        from wardgate.auditing.cache import CacheError
        from wardgate.auditing.query import QueryFailed

        values = {name: request.query.get(name, "").strip() for name in FILTER_FIELDS}
        try:
            filters = _filters(values)
        except questions.FilterError as exc:
            page = views.search_page(
                values, None, session.subject, session.token, records.SEARCH_ROWS, str(exc)
            )
            return _html(400, page, secure=self.settings.secure)
        logger.info("replay page search", extra={"subject": session.subject, "filters": values})
        try:
            result = records.search(self.engine(), filters)
        except (QueryFailed, CacheError) as exc:
            return self._message(502, "The search failed", f"the query engine failed: {exc}", "query_failed")
        since = values["since"] or DEFAULT_SINCE
        page = views.search_page(
            values, result, session.subject, session.token, records.SEARCH_ROWS, since_shown=since
        )
        return _html(200, page, secure=self.settings.secure)

    def record(self, record_id: str, session: Session) -> HttpResponse:
        from wardgate.auditing.cache import CacheError
        from wardgate.auditing.query import QueryFailed

        if records.record_start(record_id) is None:
            return self._message(
                404,
                "No such record",
                "a record id is 29 lowercase hex characters",
                "bad_record_id",
                session.subject,
            )
        logger.info("replay page record", extra={"subject": session.subject, "record_id": record_id})
        try:
            shown = records.record_events(self.engine(), record_id)
        except (QueryFailed, CacheError) as exc:
            return self._message(
                502, "The record could not be read", f"the query engine failed: {exc}", "query_failed"
            )
        if shown is None:
            return self._message(
                404,
                "No such record",
                f"the recordings hold no record {record_id} (an event can wait up to 5 minutes in "
                "Firehose's buffer)",
                "not_found",
                session.subject,
            )
        try:
            status = self.integrity.check(record_id, shown)
        except Exception as exc:  # the page still shows the record, marked unchecked: never "intact"
            logger.exception("replay page integrity check failed")
            status = IntegrityStatus(
                "unchecked", f"not checked: the bucket could not be read ({type(exc).__name__})"
            )
        page = views.record_page(record_id, shown, status, session.subject, session.token)
        return _html(200, page, secure=self.settings.secure)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _filters(values: dict[str, str]) -> questions.Filters:
    for name, value in values.items():
        if len(value) > MAX_FILTER_CHARS:
            raise questions.FilterError(f"{name}: at most {MAX_FILTER_CHARS} characters")
    since = questions.parse_when(values["since"] or DEFAULT_SINCE, "since")
    until = questions.parse_when(values["until"], "until") if values["until"] else None
    try:
        return questions.Filters(
            since=since,
            until=until,
            agent=values["subject"] or None,
            owner=values["owner"] or None,
            connection=values["connection"] or None,
            protocol=values["protocol"] or None,
            outcome=values["outcome"] or None,
        )
    except questions.FilterError as exc:  # its messages name the CLI's flags
        raise questions.FilterError(str(exc).replace("--agent", "subject").replace("--", "")) from None


# ---------------------------------------------------------------------------------- the function


def _engine(settings: PageSettings) -> Engine:
    from wardgate import aws
    from wardgate.auditing.query import AthenaEngine, LocalEngine

    if settings.engine == "athena":
        return AthenaEngine(
            aws.client("athena"), settings.workgroup, settings.database, timeout_s=ATHENA_TIMEOUT_S
        )
    from wardgate.auditing.cache import RecordingsCache

    cache = RecordingsCache(
        Path(settings.cache_dir), settings.recordings_bucket, settings.recordings_prefix, aws.client("s3")
    )
    return LocalEngine(cache)


@functools.cache
def _manifest_verifier(setting: str) -> Any:
    """The manifests' public key, fetched once per container (kms:GetPublicKey or the local key)."""
    from wardgate.auditing.signing import verifier_for

    return verifier_for(setting)


@functools.lru_cache(maxsize=4)  # keyed by settings: local mode's tests start stacks with new ones
def page_for(settings: PageSettings) -> AuditPage:
    from wardgate.runtime import secret_string

    @functools.cache  # a failure is not cached: the next request reads the key again
    def key() -> bytes:
        return secret_string(settings.session_key_secret, "the replay page's session key").encode()

    return AuditPage(
        settings,
        Sealer(key),
        OidcClient(settings.issuer, settings.client_id),
        lambda: _engine(settings),
        IntegrityChecker(
            settings.recordings_bucket,
            settings.recordings_prefix,
            lambda: _manifest_verifier(settings.manifest_key),
        ),
    )


def handle_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``AuditPageFunction``'s entry point (and ``wardgate dev``'s, for the same routes)."""
    try:
        settings = PageSettings.from_env()
    except NotConfigured as exc:
        page = views.message("The replay page is not configured", str(exc), "not_configured")
        return _html(503, page).to_apigw_v2()
    return page_for(settings).handle(event).to_apigw_v2()
