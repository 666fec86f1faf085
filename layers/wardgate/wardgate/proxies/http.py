"""The HTTP proxy: pins every request to its connection's upstream and forwards it with httpcore.

Target pinning is structural, not a filter: the upstream URL is assembled from the
connection's scheme, host and port, plus a path rebuilt from decoded, checked segments. No
agent-supplied header, path trick or redirect can change the host we connect to.

The forwarder talks to httpcore's connection pool (httpx's own transport layer) directly rather
than through an ``httpx.Client``: the client adds nothing a proxy wants (no redirects are
followed, no auth, no proxies from the environment) and costs about a third of the forward on a
warm container, and its cookie jar would keep one upstream's ``Set-Cookie`` and send it with the
next agent's request to that upstream. Response bodies are decoded (gzip, deflate) here, bounded
by the response limit as they are inflated.
"""

from __future__ import annotations

import functools
import re
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote_to_bytes, urlsplit

from wardgate.apigw import check_request_body as check_request_body  # re-exported
from wardgate.credentials import Credential
from wardgate.errors import BadGateway, BadRequest, GatewayTimeout, ServiceUnavailable

if TYPE_CHECKING:
    import httpcore

# RFC 9110 7.6.1 hop-by-hop headers, plus what the gateway itself sets or must not pass on.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
DROPPED_REQUEST_HEADERS = HOP_BY_HOP | {
    "authorization",
    "host",
    "content-length",
    "expect",
    "forwarded",
    "x-real-ip",
}  # and every x-forwarded-* header: forwarded_headers drops the whole family by prefix
METHOD_OVERRIDE_HEADERS = frozenset({"x-http-method-override", "x-http-method", "x-method-override"})
ACCEPTED_ENCODINGS = "gzip, deflate"
DECODED_ENCODINGS = frozenset(("gzip", "x-gzip", "deflate"))
DROPPED_RESPONSE_HEADERS = HOP_BY_HOP | {"content-length", "content-encoding", "set-cookie"}
SEGMENT_SAFE = "!$&'()*+,;=:@-._~"
QUERY_FORBIDDEN = frozenset(chr(c) for c in range(0x21)) | {"#", "\x7f"}
DEFAULT_PORTS = {"http": 80, "https": 443}
DOUBLE_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")


def normalise_path(raw_path: str) -> str:
    """Decode an agent's path once, refuse anything that could escape, and re-encode it canonically.

    The result is what policy sees and exactly what is forwarded (under the upstream's base path).
    """
    if not raw_path:
        return "/"
    if not raw_path.startswith("/"):
        raw_path = "/" + raw_path
    segments = raw_path.split("/")[1:]
    out: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "":
            if last:  # a trailing slash is meaningful to many APIs
                out.append("")
                continue
            raise BadRequest("empty path segment ('//') is not allowed", code="bad_path")
        if "%" in segment and not _valid_percent_encoding(segment):
            raise BadRequest("invalid percent-encoding in path", code="bad_path")
        try:
            text = unquote_to_bytes(segment).decode("utf-8")
        except UnicodeError:  # not UTF-8 once decoded, or a lone surrogate ("\udce7" in an event's JSON)
            raise BadRequest("path is not valid UTF-8", code="bad_path") from None
        if text.split(";", 1)[0] in (".", ".."):  # "..;" is ".." to Tomcat-style servers
            raise BadRequest("dot segments ('.' or '..') are not allowed in the path", code="bad_path")
        if DOUBLE_ENCODED.search(text):
            # "%2561dmin" decodes to "%61dmin": a server that decodes twice sees "admin", policy would not
            raise BadRequest("double percent-encoding is not allowed in the path", code="bad_path")
        if any(c in text for c in "/\\") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
            raise BadRequest(
                "encoded slashes, backslashes and control characters are not allowed", code="bad_path"
            )
        out.append(quote(text, safe=SEGMENT_SAFE))
    return "/" + "/".join(out)


def _valid_percent_encoding(text: str) -> bool:
    hexdigits = "0123456789abcdefABCDEF"
    i = 0
    while (i := text.find("%", i)) != -1:
        if i + 3 > len(text) or text[i + 1] not in hexdigits or text[i + 2] not in hexdigits:
            return False
        i += 3
    return True


def check_query(raw_query: str) -> str:
    if not raw_query.isascii() or any(c in QUERY_FORBIDDEN for c in raw_query):
        raise BadRequest("query string contains forbidden characters", code="bad_query")
    if "%" in raw_query and not _valid_percent_encoding(raw_query):
        raise BadRequest("invalid percent-encoding in query string", code="bad_query")
    return raw_query


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuse headers that would make the upstream do something other than what policy decided on:
    a method override (a GET executed as a DELETE) or Kubernetes impersonation (wardgate's own
    credential acting as another user or group)."""
    for name in headers:
        if name in METHOD_OVERRIDE_HEADERS or name.startswith("impersonate-"):
            raise BadRequest(
                f"the {name} header changes what the request does and is not accepted through wardgate",
                code="bad_header",
            )


@dataclass(frozen=True)
class UpstreamUrl:
    """Where one request goes: the connection's origin and a request target (path and query)."""

    scheme: str
    host: str  # as httpx parses it (IDNA-decoded, IPv6 without brackets)
    port: int | None  # None: the scheme's default port
    netloc: bytes  # the Host header: host[:port], IPv6 in brackets
    raw_host: bytes  # what is connected to (and verified by TLS)
    raw_path: bytes  # the request target: base path, path, ?query

    @property
    def userinfo(self) -> bytes:
        return b""  # never: the origin comes from a connection URL without credentials

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc.decode('ascii')}{self.raw_path.decode('ascii')}"


@functools.lru_cache(maxsize=256)  # one entry per connection URL (administrators choose them)
def _origin(base_url: str) -> tuple[str, str, int | None, bytes, bytes, bytes]:
    """``(scheme, host, port, netloc, raw_host, base path)`` of a connection URL, parsed once.

    As httpx would parse it (a default port dropped, an IDNA host encoded, the path's unsafe
    characters percent-encoded), without importing httpx on a cold start.
    """
    split = urlsplit(base_url)
    try:
        port = split.port
    except ValueError:
        port = -1
    host = split.hostname or ""
    if (
        split.scheme not in DEFAULT_PORTS
        or not host
        or port == -1
        or split.username is not None
        or split.password is not None
        or split.query
        or split.fragment
    ):
        raise BadRequest("the connection's upstream URL is not a plain http(s) origin", code="bad_path")
    if host.isascii():
        raw_host = host.encode("ascii")
    else:
        import idna  # what httpx uses for international domain names

        try:
            raw_host = idna.encode(host, uts46=True)
            host = idna.decode(raw_host)
        except idna.IDNAError:
            raise BadRequest("the connection's upstream host is not a valid name", code="bad_path") from None
    if _HOST.fullmatch(raw_host) is None:
        raise BadRequest("the connection's upstream host is not a valid name", code="bad_path")
    if port == DEFAULT_PORTS[split.scheme]:
        port = None
    netloc = (b"[" + raw_host + b"]" if b":" in raw_host else raw_host) + (b":%d" % port if port else b"")
    base_path = quote(split.path, safe="/%" + SEGMENT_SAFE).encode("ascii").rstrip(b"/")
    return split.scheme, host, port, netloc, raw_host, base_path


_HOST = re.compile(rb"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+")  # a name or an address (IPv6 in brackets)
_REQUEST_TARGET = re.compile(rb"/[!-\x22\x24-~]*")  # visible ASCII without '#', from '/'


def upstream_url(base_url: str, path: str, query: str) -> UpstreamUrl:
    """The only URL the request may go to: the connection's origin, its base path, then ``path``.

    ``path`` is normalised (``normalise_path``) and ``query`` checked (``check_query``); the host
    and port never come from them, and the target must stay one origin-form request target.
    """
    scheme, host, port, netloc, raw_host, base_path = _origin(base_url)
    try:
        target = base_path + path.encode("ascii") + (b"?" + query.encode("ascii") if query else b"")
    except UnicodeEncodeError:
        raise BadRequest("request path or query is not ASCII", code="bad_path") from None
    if not path.startswith("/") or _REQUEST_TARGET.fullmatch(target) is None:
        raise BadRequest("request would leave the connection's upstream", code="bad_path")
    return UpstreamUrl(scheme, host, port, netloc, raw_host, target)


def forwarded_headers(
    headers: Mapping[str, str], cookies: Iterable[str], credential: Credential | None, request_id: str
) -> dict[str, str]:
    connection_tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    out = {
        name: value
        for name, value in headers.items()
        if name not in DROPPED_REQUEST_HEADERS
        and name not in connection_tokens
        and not name.startswith(("x-amzn-", "x-amz-apigw", "x-forwarded-"))
        and (credential is None or name != credential.header_name)
    }
    cookie_list = list(cookies)
    if cookie_list:
        out["cookie"] = "; ".join(cookie_list)
    out["x-wardgate-request-id"] = request_id
    # Only codings we can decode: a response must be decoded to be masked, never passed unscanned.
    out["accept-encoding"] = ACCEPTED_ENCODINGS
    if credential is not None:
        out[credential.header_name] = credential.header_value
    return out


@dataclass
class UpstreamResponse:
    """The upstream's answer: status, headers as received, its ``Set-Cookie`` values, the body."""

    status: int
    headers: list[tuple[str, str]]
    cookies: list[str]
    body: bytes


class _Inflater:
    """One ``Content-Encoding`` layer undone incrementally, never more than ``limit`` bytes at a time."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        # gzip: the gzip wrapper; deflate: zlib-wrapped as specified, or raw as some servers send
        self._engine = zlib.decompressobj(31 if coding != "deflate" else 15)
        self._first = True

    def feed(self, data: bytes, limit: int) -> bytes:
        try:
            out = self._engine.decompress(data, limit + 1)
        except zlib.error:
            if not (self._first and self.coding == "deflate"):
                raise
            self._engine = zlib.decompressobj(-15)
            out = self._engine.decompress(data, limit + 1)
        self._first = False
        return out

    def flush(self) -> bytes:
        return self._engine.flush()


def _codings(headers: list[tuple[bytes, bytes]]) -> list[str]:
    """The response's content codings, outermost last (``identity`` dropped)."""
    listed = b",".join(v for k, v in headers if k.lower() == b"content-encoding").decode("latin-1")
    return [c for c in (part.strip().lower() for part in listed.split(",")) if c and c != "identity"]


def _text(value: bytes) -> str:
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        return value.decode("utf-8") if _is_utf8(value) else value.decode("latin-1")


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_NO_BODY_METHODS = frozenset(("GET", "HEAD", "DELETE", "OPTIONS", "TRACE", "CONNECT"))


class HttpForwarder:
    """One httpcore connection pool per trust anchor per container: keeps upstream connections
    alive across invocations. Upstreams with a public certificate share ``pool``; one behind a
    private CA (``ca_pem`` with its credential) gets a pool trusting that CA alone."""

    def __init__(self, connect_timeout: float, max_response_body: int, transport: Any = None) -> None:
        """``transport``: an object with httpcore's ``handle_request``, used for every upstream."""
        self.connect_timeout = connect_timeout
        self.max_response_body = max_response_body
        self._transport = transport
        self._pools: dict[str | None, Any] = {}

    @property
    def pool(self) -> Any:
        """The pool for upstreams with a public certificate (an ``httpcore.ConnectionPool``)."""
        return self.pool_for(None)

    def pool_for(self, ca_pem: str | None) -> Any:
        pool = self._pools.get(ca_pem)
        if pool is None:
            import httpcore

            from wardgate.tls import private_ca_context, tls_context

            try:
                verify = tls_context() if ca_pem is None else private_ca_context(ca_pem)
            except ValueError as exc:
                raise ServiceUnavailable(
                    f"the connection's CA bundle is unusable: {exc}", code="credential_unavailable"
                ) from None
            pool = self._pools[ca_pem] = self._transport or httpcore.ConnectionPool(
                ssl_context=verify, max_connections=100, max_keepalive_connections=20, keepalive_expiry=30
            )
        return pool

    def forward(
        self,
        method: str,
        url: UpstreamUrl,
        headers: dict[str, str],
        body: bytes,
        deadline: float,
        ca_pem: str | None = None,
    ) -> UpstreamResponse:
        import httpcore

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GatewayTimeout("no time left to call the upstream", code="upstream_timeout")
        timeouts = {"connect": min(self.connect_timeout, remaining), "read": remaining}
        timeouts.update(write=remaining, pool=remaining)
        head = [(b"host", url.netloc)]
        if body or method not in _NO_BODY_METHODS:  # as httpx: POST, PUT, PATCH say 0 when empty
            head.append((b"content-length", str(len(body)).encode("ascii")))
        try:
            head += [(k.encode("ascii"), v.encode("ascii")) for k, v in headers.items()]
        except UnicodeEncodeError:
            raise BadRequest("a header name or value is not ASCII", code="bad_header") from None
        request = httpcore.Request(
            method.encode("ascii"),
            httpcore.URL(scheme=url.scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=head,
            content=body or None,
            extensions={"timeout": timeouts},
        )
        try:
            resp = self.pool_for(ca_pem).handle_request(request)
            try:
                return self._read(resp, deadline)
            finally:
                resp.close()
        except httpcore.TimeoutException as exc:
            if isinstance(exc, httpcore.ConnectTimeout):
                raise GatewayTimeout("upstream did not accept the connection in time") from None
            raise GatewayTimeout("upstream did not answer in time") from None
        except zlib.error:
            raise BadGateway(
                "upstream sent a body that cannot be decoded", code="upstream_bad_response"
            ) from None
        except (
            httpcore.NetworkError,
            httpcore.ProtocolError,
            httpcore.UnsupportedProtocol,
            httpcore.ProxyError,
        ) as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise BadGateway(
                    "the upstream's TLS certificate could not be verified (a private CA goes in the "
                    "connection's credential as ca_pem)",
                    code="upstream_tls_error",
                ) from None
            raise BadGateway(f"upstream unreachable ({type(exc).__name__})") from None

    def _read(self, resp: httpcore.Response, deadline: float) -> UpstreamResponse:
        """The whole response, decoded: gzip bombs count at their real size as they inflate."""
        codings = _codings(resp.headers)
        unknown = [c for c in codings if c not in DECODED_ENCODINGS]
        if unknown:
            # That body could be neither masked nor read by the agent (Content-Encoding is dropped).
            raise BadGateway(
                f"upstream sent Content-Encoding {', '.join(codings)!r}, which wardgate cannot decode "
                f"(it asks for {ACCEPTED_ENCODINGS})",
                code="upstream_bad_response",
            )
        inflaters = [_Inflater(c) for c in reversed(codings)]  # the last coding applied comes off first
        limit = self.max_response_body
        chunks: list[bytes] = []
        size = 0
        for raw in resp.iter_stream():
            chunk = raw
            for inflater in inflaters:
                chunk = inflater.feed(chunk, limit - size)
            size += len(chunk)
            if size > limit:
                raise BadGateway(
                    f"upstream response exceeds the {limit}-byte limit", code="upstream_response_too_large"
                )
            if time.monotonic() > deadline:
                raise GatewayTimeout("upstream did not finish its response in time")
            chunks.append(chunk)
        tail = b""
        for inflater in inflaters:  # what each layer still holds, through the layers after it
            tail = (inflater.feed(tail, limit - size) if tail else b"") + inflater.flush()
        if tail:
            size += len(tail)
            if size > limit:
                raise BadGateway(
                    f"upstream response exceeds the {limit}-byte limit", code="upstream_response_too_large"
                )
            chunks.append(tail)
        headers: list[tuple[str, str]] = []
        cookies: list[str] = []
        for raw_name, raw_value in resp.headers:
            name = raw_name.decode("latin-1").lower()
            if name == "set-cookie":
                cookies.append(_text(raw_value))
            elif name not in DROPPED_RESPONSE_HEADERS:
                headers.append((name, _text(raw_value)))
        return UpstreamResponse(status=resp.status, headers=headers, cookies=cookies, body=b"".join(chunks))


def rewrite_location(location: str, base_url: str, gateway_prefix: str) -> str:
    """Point a same-origin redirect back at the gateway, so agents follow it through wardgate."""
    target, base = urlsplit(location), urlsplit(base_url)
    if (target.scheme or target.netloc) and (target.scheme or base.scheme, target.netloc) != (
        base.scheme,
        base.netloc,
    ):
        return location  # another origin: the agent reaches it without our credential
    base_path = base.path.rstrip("/")
    if target.path.startswith(base_path + "/") or target.path == base_path:
        rest = target.path[len(base_path) :] or "/"
        return gateway_prefix + rest + (f"?{target.query}" if target.query else "")
    return location
