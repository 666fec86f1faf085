"""Unit tests of the HTTP proxy's pure functions and of the API Gateway event adapter.

These are the pieces that pin a request to its connection's upstream: path and query checks,
URL assembly, header filtering, redirect rewriting. No network, no AWS.
"""

from __future__ import annotations

import base64
import json

import pytest

from wardgate.apigw import HttpRequest, HttpResponse, error_response
from wardgate.credentials import Credential
from wardgate.errors import (
    BadRequest,
    Forbidden,
    GatewayError,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
)
from wardgate.proxies.http import (
    check_query,
    check_request_body,
    forwarded_headers,
    normalise_path,
    rewrite_location,
    upstream_url,
)


def refused(call, *args) -> GatewayError:
    with pytest.raises(BadRequest) as caught:
        call(*args)
    return caught.value


# ---------------------------------------------------------------- normalise_path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", "/"),
        ("/", "/"),
        ("a/b", "/a/b"),  # a missing leading slash is added
        ("/v1/items", "/v1/items"),
        ("/v1/items/", "/v1/items/"),  # trailing slash kept
        ("/a b", "/a%20b"),
        ("/a%20b", "/a%20b"),
        ("/%41%62c", "/Abc"),  # unreserved characters are decoded
        ("/%7euser", "/~user"),
        ("/a%3Ab/x@y", "/a:b/x@y"),  # sub-delims and ':' '@' are legal in a segment
        ("/a%3fb", "/a%3Fb"),  # '?' must stay encoded, or it would start a query upstream
        ("/a%23b", "/a%23b"),  # '#' likewise
        ("/a%25b", "/a%25b"),  # a literal '%' stays a single, encoded '%'
        ("/caf%c3%a9", "/caf%C3%A9"),  # escapes re-encoded in canonical upper case
        ("/café", "/caf%C3%A9"),  # raw unicode re-encoded as UTF-8 escapes
        ("/%E2%82%AC/€", "/%E2%82%AC/%E2%82%AC"),
        ("/.well-known/x", "/.well-known/x"),  # dots inside a segment are fine
        ("/a/.../b", "/a/.../b"),
        ("/@evil.example.com/x", "/@evil.example.com/x"),
    ],
)
def test_normalise_path_re_encodes_canonically(raw, expected):
    assert normalise_path(raw) == expected
    assert normalise_path(expected) == expected  # canonical form is a fixed point


@pytest.mark.parametrize(
    "raw",
    [
        # dot segments, in every spelling
        "/..",
        "/.",
        "/a/../b",
        "/a/./b",
        "/a/..",
        "/a/../",
        "/%2e",
        "/%2e%2e",
        "/%2E%2E",
        "/%2e%2E/x",
        "/.%2e/x",
        "/%2e./x",
        # encoded separators and backslashes
        "/a%2fb",
        "/a%2Fb",
        "/a%2f..%2fadmin",
        "/a%5cb",
        "/a%5C..%5Cadmin",
        "/a\\b",
        "/..\\admin",
        # control characters, raw or encoded
        "/a\x00b",
        "/a%00b",
        "/a%0ab",
        "/a%0D%0Ab",
        "/a\tb",
        "/a\nb",
        "/a%7fb",
        "/a%1Bb",
        # invalid or truncated escapes
        "/%",
        "/a%",
        "/a%4",
        "/%4/b",
        "/%zz",
        "/%g0",
        "/%0g",
        # not UTF-8 once decoded
        "/%ff",
        "/a%c3",  # truncated multi-byte sequence
        "/%c0%ae%c0%ae",  # overlong encoding of '..'
        # empty segments
        "//",
        "//evil.example.com/x",
        "/a//b",
        "/a///",
    ],
)
def test_normalise_path_refuses_escapes(raw):
    assert refused(normalise_path, raw).code == "bad_path"


# ---------------------------------------------------------------- check_query


@pytest.mark.parametrize(
    "query",
    ["", "a=1", "limit=5&q=a%20b", "a=1&b", "q=%C3%A9", "x=a+b&y=%2F%3F", "list=1,2;3&k=v:w@x/y?z"],
)
def test_check_query_leaves_normal_queries_untouched(query):
    assert check_query(query) == query


@pytest.mark.parametrize(
    "query",
    ["a=1 2", "a=1#frag", "#", "a=\x00", "a=\tb", "a=\r\nb", "a=\x7f", "a=%zz", "a=%", "a=%4", "a=1%"],
)
def test_check_query_refuses_forbidden_characters_and_bad_escapes(query):
    assert refused(check_query, query).code == "bad_query"


def test_check_query_refuses_non_ascii_that_the_upstream_url_cannot_carry():
    # BUG: check_query accepts raw non-ASCII, and upstream_url() then raises UnicodeEncodeError:
    # the handler crashes (500) and the request is never recorded.
    error = refused(check_query, "q=café")
    assert error.code == "bad_query"


# ---------------------------------------------------------------- upstream_url


def test_upstream_url_joins_the_base_path():
    url = upstream_url("http://up.example:8080/base/", "/a/b", "x=1")
    assert str(url) == "http://up.example:8080/base/a/b?x=1"
    assert url.raw_path == b"/base/a/b?x=1"


def test_upstream_url_without_base_path_or_query():
    url = upstream_url("https://api.example.com", "/v1/items", "")
    assert str(url) == "https://api.example.com/v1/items"


def test_upstream_url_keeps_the_canonical_escapes_verbatim():
    url = upstream_url("http://up.example:8080/api", normalise_path("/a b/caf%c3%a9"), "q=a%20b")
    assert url.raw_path == b"/api/a%20b/caf%C3%A9?q=a%20b"


@pytest.mark.parametrize(
    "path",
    [
        "/@evil.example.com",
        "/@evil.example.com/x",
        "/:80@evil.example.com/",
        "/user:pass@evil.example.com/",
        "//evil.example.com/x",  # not normalised: even then the host is structural
        "/http://evil.example.com/",
    ],
)
@pytest.mark.parametrize("base", ["http://up.example:8080", "https://up.example/prefix"])
def test_hostile_paths_cannot_change_the_host(base, path):
    url = upstream_url(base, path, "next=@evil.example.com:81")
    assert url.host == "up.example"
    assert url.scheme == base.split(":")[0]
    assert url.port == (8080 if ":8080" in base else None)
    assert url.userinfo == b""
    base_path = "/prefix" if base.endswith("/prefix") else ""
    assert url.raw_path == f"{base_path}{path}?next=@evil.example.com:81".encode()


def test_hostile_normalised_paths_cannot_change_the_host():
    for raw in ("/@evil.example.com/x", "/:80@evil.example.com/"):
        url = upstream_url("http://up.example:8080", normalise_path(raw), "")
        assert (url.scheme, url.host, url.port) == ("http", "up.example", 8080)


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://api.example.com:443/v1", "https://api.example.com/v1/x"),
        ("http://api.example.com:80", "http://api.example.com/x"),
    ],
)
def test_upstream_url_accepts_an_explicit_default_port(base, expected):
    # BUG: httpx drops the default port (url.port is None) while urlsplit keeps 443/80, so the
    # defence-in-depth origin check refuses every request to such a connection with 400 bad_path.
    assert str(upstream_url(base, "/x", "")) == expected


# ---------------------------------------------------------------- forwarded_headers


def test_hop_by_hop_and_connection_named_headers_are_dropped():
    agent = {
        "connection": "keep-alive, X-Drop-Me ,x-also",
        "keep-alive": "timeout=5",
        "proxy-authorization": "Basic Zm9vOmJhcg==",
        "proxy-connection": "keep-alive",
        "proxy-authenticate": "Basic",
        "te": "trailers",
        "trailer": "x-t",
        "transfer-encoding": "chunked",
        "upgrade": "websocket",
        "x-drop-me": "1",
        "x-also": "2",
        "content-length": "12",
        "expect": "100-continue",
        "content-type": "application/json",
        "accept": "*/*",
        "x-trace": "t1",
    }
    out = forwarded_headers(agent, [], None, "req-1")
    assert out == {
        "content-type": "application/json",
        "accept": "*/*",
        "x-trace": "t1",
        "x-wardgate-request-id": "req-1",
        "accept-encoding": "gzip, deflate",  # only codings wardgate can decode, so it can mask
    }


@pytest.mark.parametrize(
    "name",
    [
        "authorization",
        "host",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-proto",
        "x-real-ip",
        "x-amzn-trace-id",
        "x-amzn-oidc-data",
        "x-amz-apigw-id",
    ],
)
def test_agent_identity_and_routing_headers_are_dropped(name):
    out = forwarded_headers({name: "spoofed", "x-keep": "1"}, [], None, "req-1")
    assert name not in out
    assert "spoofed" not in out.values()
    assert out["x-keep"] == "1"


@pytest.mark.parametrize("name", ["x-forwarded-prefix", "x-forwarded-server", "x-forwarded-uri"])
def test_every_x_forwarded_header_is_dropped(name):
    # BUG: only x-forwarded-{for,host,port,proto} are dropped; the rest of the family (used by
    # Spring, Traefik and others to build URLs or make auth decisions) reaches the upstream.
    assert name not in forwarded_headers({name: "/admin"}, [], None, "req-1")


def test_bearer_credential_replaces_the_agents_authorization():
    credential = Credential.from_secret('{"type": "bearer", "token": "backend-secret"}')
    out = forwarded_headers({"authorization": "Bearer agent-token"}, [], credential, "req-1")
    assert out["authorization"] == "Bearer backend-secret"
    assert "Bearer agent-token" not in out.values()


def test_agent_header_named_like_the_api_key_credential_is_replaced():
    credential = Credential.from_secret('{"type": "api_key", "header": "X-Api-Key", "value": "real-key"}')
    out = forwarded_headers(
        {"x-api-key": "forged", "authorization": "Bearer agent-token"}, [], credential, "req-1"
    )
    assert out["x-api-key"] == "real-key"
    assert "authorization" not in out  # the agent's own token never goes upstream
    assert "forged" not in out.values()


def test_no_credential_means_no_authorization_at_all():
    out = forwarded_headers({"authorization": "Bearer agent-token"}, [], None, "req-1")
    assert "authorization" not in out


def test_cookies_are_joined_and_the_request_id_cannot_be_spoofed():
    out = forwarded_headers(
        {"x-wardgate-request-id": "spoofed"}, ["session=abc", "theme=dark"], None, "req-42"
    )
    assert out["cookie"] == "session=abc; theme=dark"
    assert out["x-wardgate-request-id"] == "req-42"


def test_no_cookie_header_without_cookies():
    assert "cookie" not in forwarded_headers({}, [], None, "req-1")


# ---------------------------------------------------------------- rewrite_location

BASE = "http://up.example:8080/api"
PREFIX = "/http/demo"


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://up.example:8080/api/next?a=1&b=2", "/http/demo/next?a=1&b=2"),
        ("http://up.example:8080/api/next", "/http/demo/next"),
        ("http://up.example:8080/api", "/http/demo/"),
        ("http://up.example:8080/api/", "/http/demo/"),
        ("/api/next?a=1", "/http/demo/next?a=1"),  # relative, same origin
    ],
)
def test_same_origin_redirects_under_the_base_path_point_back_at_the_gateway(location, expected):
    assert rewrite_location(location, BASE, PREFIX) == expected


@pytest.mark.parametrize(
    "location",
    [
        "https://evil.example.com/api/x",
        "http://evil.example.com:8080/api/x",
        "http://up.example:9090/api/x",  # another port is another origin
        "https://up.example:8080/api/x",  # another scheme too
        "http://up.example:8080/other",  # same origin, outside the base path
        "http://up.example:8080/apiary",  # a prefix of the base path is not under it
        "/other/x",
        "/apiary",
        "next",  # relative to the current path: already resolves through the gateway
    ],
)
def test_other_redirects_are_left_untouched(location):
    assert rewrite_location(location, BASE, PREFIX) == location


def test_redirect_at_the_origin_root_when_the_base_has_no_path():
    assert rewrite_location("http://up.example:8080/x?y=1", "http://up.example:8080", PREFIX) == (
        "/http/demo/x?y=1"
    )
    assert rewrite_location("/x", "http://up.example:8080", PREFIX) == "/http/demo/x"


def test_scheme_relative_redirect_to_another_host_is_left_untouched():
    # BUG: "//evil.example.com/x" has no scheme, so the origin check is skipped and it becomes
    # "/http/demo/x": a redirect to another host is silently turned into one to the upstream.
    location = "//evil.example.com/x"
    assert rewrite_location(location, "http://up.example:8080", PREFIX) == location


# ---------------------------------------------------------------- check_request_body


def test_request_body_limit():
    assert check_request_body(b"x" * 10, 10) == b"x" * 10
    assert check_request_body(b"", 0) == b""
    with pytest.raises(PayloadTooLarge) as caught:
        check_request_body(b"x" * 11, 10)
    assert (caught.value.status, caught.value.code) == (413, "payload_too_large")


# ---------------------------------------------------------------- HttpRequest.from_apigw_v2


def apigw_event(**overrides) -> dict:
    event = {
        "version": "2.0",
        "rawPath": "/http/demo/v1/items",
        "rawQueryString": "a=1",
        "cookies": ["s=1", "t=2"],
        "headers": {"Content-Type": "application/json", "X-Trace": "t1"},
        "pathParameters": {"connection": "demo", "proxy": "v1/items"},
        "requestContext": {
            "requestId": "req-1",
            "stage": "$default",
            "http": {"method": "post", "sourceIp": "203.0.113.9"},
        },
        "body": base64.b64encode(b'{"k": 1}').decode(),
        "isBase64Encoded": True,
    }
    event.update(overrides)
    return event


def test_from_apigw_v2_default_stage():
    request = HttpRequest.from_apigw_v2(apigw_event())
    assert request.request_id == "req-1"
    assert request.method == "POST"
    assert request.connection == "demo"
    assert request.proxy_path == "/v1/items"
    assert request.raw_query == "a=1"
    assert request.headers == {"content-type": "application/json", "x-trace": "t1"}
    assert request.cookies == ["s=1", "t=2"]
    assert request.body == b'{"k": 1}'
    assert request.source_ip == "203.0.113.9"
    assert request.gateway_prefix == "/http/demo"


def test_from_apigw_v2_strips_a_named_stage_and_keeps_it_in_the_prefix():
    event = apigw_event(rawPath="/prod/http/demo/v1/items/")
    event["requestContext"]["stage"] = "prod"
    request = HttpRequest.from_apigw_v2(event)
    assert request.proxy_path == "/v1/items/"
    assert request.gateway_prefix == "/prod/http/demo"


def test_from_apigw_v2_keeps_the_proxy_path_encoded():
    request = HttpRequest.from_apigw_v2(apigw_event(rawPath="/http/demo/a%2Fb/%2e%2e/c"))
    assert request.proxy_path == "/a%2Fb/%2e%2e/c"  # checked later by normalise_path, not here


@pytest.mark.parametrize("raw_path", ["/http/demo", "/http/demo/"])
def test_from_apigw_v2_connection_root(raw_path):
    assert HttpRequest.from_apigw_v2(apigw_event(rawPath=raw_path)).proxy_path == "/"


def test_from_apigw_v2_plain_text_body_and_no_body():
    text = HttpRequest.from_apigw_v2(apigw_event(body="héllo", isBase64Encoded=False))
    assert text.body == "héllo".encode()
    empty = HttpRequest.from_apigw_v2(apigw_event(body=None, isBase64Encoded=False, cookies=None))
    assert empty.body == b""
    assert empty.cookies == []


def test_from_apigw_v2_invalid_base64_body_is_bad_event():
    with pytest.raises(BadRequest) as caught:
        HttpRequest.from_apigw_v2(apigw_event(body="not base64!!", isBase64Encoded=True))
    assert caught.value.code == "bad_event"


@pytest.mark.parametrize("missing", ["requestContext", "rawPath", "pathParameters"])
def test_from_apigw_v2_missing_keys_are_bad_event(missing):
    event = apigw_event()
    del event[missing]
    with pytest.raises(BadRequest) as caught:
        HttpRequest.from_apigw_v2(event)
    assert caught.value.code == "bad_event"


def test_from_apigw_v2_missing_connection_parameter_is_bad_event():
    for params in ({}, None):
        with pytest.raises(BadRequest) as caught:
            HttpRequest.from_apigw_v2(apigw_event(pathParameters=params))
        assert caught.value.code == "bad_event"


# ---------------------------------------------------------------- HttpResponse.to_apigw_v2


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "text/html; charset=utf-8",
        "application/problem+json",
        "application/xml",
        "image/svg+xml",
    ],
)
def test_text_bodies_are_returned_as_text(content_type):
    body = '{"é": 1}'.encode()
    out = HttpResponse(200, {"content-type": content_type}, body).to_apigw_v2()
    assert out["isBase64Encoded"] is False
    assert out["body"] == body.decode()
    assert out["statusCode"] == 200


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/octet-stream", bytes(range(256))),
        ("image/png", b"\x89PNG\r\n\x1a\n"),
        ("", b"plain but untyped"),
        ("application/json", b'{"a": "\xff"}'),  # claims JSON, is not UTF-8
        ("text/plain", b"\xc3"),
    ],
)
def test_binary_and_invalid_utf8_bodies_are_base64(content_type, body):
    out = HttpResponse(200, {"content-type": content_type}, body).to_apigw_v2()
    assert out["isBase64Encoded"] is True
    assert base64.b64decode(out["body"]) == body


def test_cookies_are_a_list_only_when_present():
    with_cookies = HttpResponse(302, {"location": "/x"}, b"", ["a=1; Path=/", "b=2"]).to_apigw_v2()
    assert with_cookies["cookies"] == ["a=1; Path=/", "b=2"]
    assert with_cookies["headers"] == {"location": "/x"}
    assert with_cookies["statusCode"] == 302
    assert "cookies" not in HttpResponse(200).to_apigw_v2()


# ---------------------------------------------------------------- error_response


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (Unauthorized("token has expired", code="token_expired"), 401, "token_expired"),
        (Forbidden("no", code="denied_by_policy"), 403, "denied_by_policy"),
        (ServiceUnavailable("down", code="recording_unavailable"), 503, "recording_unavailable"),
        (BadRequest("bad path", code="bad_path"), 400, "bad_path"),
    ],
)
def test_error_response_shape(error, status, code):
    response = error_response(error, "req-9")
    assert response.status == status
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert json.loads(response.body) == {
        "error": {"code": code, "message": error.message, "request_id": "req-9"}
    }
    if status == 401:
        assert response.headers["www-authenticate"] == (
            f'Bearer error="invalid_token", error_description="{code}"'
        )
    else:
        assert "www-authenticate" not in response.headers
    out = response.to_apigw_v2()
    assert out["isBase64Encoded"] is False and json.loads(out["body"])["error"]["code"] == code
