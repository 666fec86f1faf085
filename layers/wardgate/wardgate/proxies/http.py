"""The HTTP proxy: pins every request to its connection's upstream and forwards it with httpx.

Target pinning is structural, not a filter: the upstream URL is assembled from the
connection's scheme, host and port, plus a path rebuilt from decoded, checked segments. No
agent-supplied header, path trick or redirect can change the host we connect to.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote_to_bytes, urlsplit

from wardgate.credentials import Credential
from wardgate.errors import BadGateway, BadRequest, GatewayTimeout, PayloadTooLarge, ServiceUnavailable

if TYPE_CHECKING:
    import httpx

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
DECODED_ENCODINGS = frozenset(("gzip", "x-gzip", "deflate", "identity"))
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


def upstream_url(base_url: str, path: str, query: str) -> httpx.URL:
    """The only URL the request may go to: the connection's origin, its base path, then ``path``."""
    import httpx

    base = urlsplit(base_url)
    base_path = base.path.rstrip("/")
    raw = (base_path + path).encode("ascii") + (b"?" + query.encode("ascii") if query else b"")
    url = httpx.URL(scheme=base.scheme, host=base.hostname or "", port=base.port, raw_path=raw)
    # Defence in depth: the assembled URL must still point at the connection's origin.
    default = DEFAULT_PORTS.get(base.scheme)  # httpx drops an explicit default port; urlsplit keeps it
    if (url.scheme, url.host, url.port or default) != (base.scheme, base.hostname, base.port or default):
        raise BadRequest("request would leave the connection's upstream", code="bad_path")
    return url


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
    status: int
    headers: list[tuple[str, str]]
    cookies: list[str]
    body: bytes


class HttpForwarder:
    """One httpx client per trust anchor per container: keeps upstream connections alive across
    invocations. Upstreams with a public certificate share ``client``; one behind a private CA
    (``ca_pem`` with its credential) gets a client trusting that CA alone."""

    def __init__(self, connect_timeout: float, max_response_body: int, transport: Any = None) -> None:
        self.connect_timeout = connect_timeout
        self.max_response_body = max_response_body
        self._transport = transport
        self._clients: dict[str | None, httpx.Client] = {}

    @property
    def client(self) -> httpx.Client:
        return self.client_for(None)

    def client_for(self, ca_pem: str | None) -> httpx.Client:
        client = self._clients.get(ca_pem)
        if client is None:
            import httpx

            from wardgate.tls import private_ca_context, tls_context

            try:
                verify = tls_context() if ca_pem is None else private_ca_context(ca_pem)
            except ValueError as exc:
                raise ServiceUnavailable(
                    f"the connection's CA bundle is unusable: {exc}", code="credential_unavailable"
                ) from None
            client = self._clients[ca_pem] = httpx.Client(
                verify=verify,
                follow_redirects=False,
                trust_env=False,  # HTTP(S)_PROXY or NO_PROXY in the environment must not reroute us
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30),
                transport=self._transport,
            )
        return client

    def forward(
        self,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        body: bytes,
        deadline: float,
        ca_pem: str | None = None,
    ) -> UpstreamResponse:
        import httpx

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GatewayTimeout("no time left to call the upstream", code="upstream_timeout")
        timeout = httpx.Timeout(remaining, connect=min(self.connect_timeout, remaining))
        try:
            client = self.client_for(ca_pem)
            request = client.build_request(method, url, headers=headers, content=body, timeout=timeout)
            resp = client.send(request, stream=True)
            try:
                codings = {c.strip().lower() for c in resp.headers.get("content-encoding", "").split(",")}
                if not codings <= DECODED_ENCODINGS | {""}:
                    # httpx passes codings it cannot decode through as they are: that body could
                    # be neither masked nor read by the agent (we drop Content-Encoding).
                    raise BadGateway(
                        f"upstream sent Content-Encoding {resp.headers['content-encoding']!r}, which "
                        f"wardgate cannot decode (it asks for {ACCEPTED_ENCODINGS})",
                        code="upstream_bad_response",
                    )
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_bytes():  # decoded: gzip bombs count at their real size
                    size += len(chunk)
                    if size > self.max_response_body:
                        raise BadGateway(
                            f"upstream response exceeds the {self.max_response_body}-byte limit",
                            code="upstream_response_too_large",
                        )
                    if time.monotonic() > deadline:
                        raise GatewayTimeout("upstream did not finish its response in time")
                    chunks.append(chunk)
                return UpstreamResponse(
                    status=resp.status_code,
                    headers=[
                        (k, v) for k, v in resp.headers.multi_items() if k not in DROPPED_RESPONSE_HEADERS
                    ],
                    cookies=resp.headers.get_list("set-cookie"),
                    body=b"".join(chunks),
                )
            finally:
                resp.close()
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise GatewayTimeout("upstream did not accept the connection in time") from None
            raise GatewayTimeout("upstream did not answer in time") from None
        except httpx.DecodingError:
            raise BadGateway(
                "upstream sent a body that cannot be decoded", code="upstream_bad_response"
            ) from None
        except httpx.TransportError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise BadGateway(
                    "the upstream's TLS certificate could not be verified (a private CA goes in the "
                    "connection's credential as ca_pem)",
                    code="upstream_tls_error",
                ) from None
            raise BadGateway(f"upstream unreachable ({type(exc).__name__})") from None


def check_request_body(body: bytes, limit: int) -> bytes:
    if len(body) > limit:
        raise PayloadTooLarge(f"request body of {len(body)} bytes exceeds the {limit}-byte limit")
    return body


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
