"""The HTTP path end to end: a real client, the local gateway server, moto, a real upstream."""

from __future__ import annotations

import http.client
import json
import socket

import boto3
import httpx
import pytest

from tests.helpers import apply_policy_now, index_entries, raw_recordings, recorded_events
from wardgate.connections import Connection, ConnectionStore
from wardgate.dev.stack import DEMO_SECRET, DEV_POLICY, DevStack


def put_connection(**fields: object) -> Connection:
    import os

    values: dict[str, object] = {"kind": "http", "allowed_groups": ("ci",), **fields}
    connection = Connection(**values)  # type: ignore[arg-type]
    ConnectionStore(os.environ["CONNECTIONS_TABLE"]).put(connection)
    return connection


def upstream_calls(stack: DevStack) -> int:
    assert stack.upstream is not None
    return len(stack.upstream.requests)


def test_allowed_request_is_forwarded_with_the_backend_credential(client, auth, token, stack):
    response = client.post(
        "/http/demo/v1/items?limit=5&q=a%20b", headers={**auth, "X-Trace": "t1"}, json={"name": "widget"}
    )

    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["credential"] == "accepted"  # the upstream got the connection's secret, not the agent's token
    assert seen["method"] == "POST"
    assert seen["path"] == "/v1/items"
    assert seen["query"] == "limit=5&q=a%20b"
    assert json.loads(seen["body"]) == {"name": "widget"}
    assert seen["headers"]["x-trace"] == "t1"
    assert seen["host"] == stack.upstream.url.removeprefix("http://")
    assert token not in json.dumps(seen)
    assert response.headers["x-wardgate-record-id"]


def test_every_forwarded_request_is_recorded_before_and_after(client, auth, token, stack):
    response = client.put("/http/demo/orders/7", headers=auth, content=b"qty=2")
    record_id = response.headers["x-wardgate-record-id"]

    events = [e for e in recorded_events() if e["record_id"] == record_id]
    assert [e["event"] for e in events] == ["request", "response"]
    request, outcome = events
    assert request["format"] == "wardgate.recording/v1"
    assert request["identity"]["subject"] == "agent-1"
    assert request["identity"]["groups"] == ["ci"]
    assert request["decision"]["outcome"] == "allow"
    assert request["request"]["method"] == "PUT"
    assert request["request"]["path"] == "/orders/7"
    assert request["request"]["body"]["data"] == "qty=2"
    assert request["request"]["headers"]["authorization"] == "[redacted]"
    assert outcome["response"]["status"] == 200
    assert outcome["timings_ms"]["total"] > 0
    [entry] = [e for e in index_entries() if e["record_id"] == record_id]
    assert entry["connection"] == "demo" and entry["subject"] == "agent-1" and entry["status"] == "200"
    # Neither the agent's token nor the injected backend credential is ever recorded.
    secret = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=DEMO_SECRET)["SecretString"])
    recorded = raw_recordings()
    assert token.encode() not in recorded
    assert secret["token"].encode() not in recorded


def test_connection_root_route_is_served(client, auth):
    response = client.get("/http/demo", headers=auth)
    assert response.status_code == 200
    assert response.json()["path"] == "/"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/http/demo/a/../../admin", "bad_path"),
        ("/http/demo/a/%2e%2e/admin", "bad_path"),
        ("/http/demo/a/%2E%2e/admin", "bad_path"),
        ("/http/demo/a/..;/admin", "bad_path"),
        ("/http/demo/%2561dmin/keys", "bad_path"),
        ("/http/demo/a%2f..%2fadmin", "bad_path"),
        ("/http/demo/a%5c..%5cadmin", "bad_path"),
        ("/http/demo//evil.example.com/x", "bad_path"),
        ("/http/demo/a/%00/b", "bad_path"),
        ("/http/demo/a/%zz", "bad_path"),
        ("/http/demo/a?x=%zz", "bad_query"),
    ],
)
def test_path_tricks_are_refused_and_never_forwarded(client, auth, stack, path, code):
    before = upstream_calls(stack)
    # httpx would normalise dot segments itself; send the raw target as an attacker would.
    connection = http.client.HTTPConnection(stack.url.removeprefix("http://"), timeout=10)
    connection.request("GET", path, headers=auth)
    response = connection.getresponse()
    assert response.status == 400
    assert json.loads(response.read())["error"]["code"] == code
    assert upstream_calls(stack) == before


def test_headers_cannot_change_the_target(client, auth, stack):
    response = client.get(
        "/http/demo/@evil.example.com/x",
        headers={
            **auth,
            "Host": "evil.example.com",
            "X-Forwarded-Host": "evil.example.com",
            "Forwarded": "host=evil.example.com",
        },
    )
    assert response.status_code == 200
    seen = response.json()
    assert seen["host"] == stack.upstream.url.removeprefix("http://")
    assert seen["path"] == "/@evil.example.com/x"
    assert "x-forwarded-host" not in seen["headers"] and "forwarded" not in seen["headers"]


def test_absolute_form_request_target_is_refused(stack):
    host, port = stack.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"GET http://evil.example.com/http/demo/x HTTP/1.1\r\nHost: evil.example.com\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")


def test_hop_by_hop_and_agent_credentials_are_stripped(client, auth, stack):
    response = client.get(
        "/http/demo/h",
        headers={
            **auth,
            "Connection": "keep-alive, X-Drop-Me",
            "X-Drop-Me": "1",
            "Proxy-Authorization": "Basic Zm9vOmJhcg==",
            "TE": "trailers",
            "Upgrade": "websocket",
            "Cookie": "session=abc",
        },
    )
    headers = response.json()["headers"]
    for name in ("x-drop-me", "proxy-authorization", "te", "upgrade"):
        assert name not in headers
    assert headers["cookie"] == "session=abc"
    assert response.cookies.get("demo") == "1"  # upstream Set-Cookie comes back


def test_redirects_are_not_followed_and_same_origin_ones_point_back_at_the_gateway(client, auth, stack):
    before = upstream_calls(stack)
    away = client.get("/http/demo/redirect", params={"to": "https://evil.example.com/x"}, headers=auth)
    assert away.status_code == 302
    assert away.headers["location"] == "https://evil.example.com/x"
    assert upstream_calls(stack) == before + 1

    back = client.get("/http/demo/redirect", params={"to": f"{stack.upstream.url}/next?a=1"}, headers=auth)
    assert back.headers["location"] == "/http/demo/next?a=1"


def test_compressed_upstream_bodies_arrive_decoded(client, auth):
    response = client.get("/http/demo/gzip", headers=auth)
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.json() == {"gzipped": True}


def test_repeated_upstream_headers_are_all_returned(client, auth):
    response = client.get("/http/demo/links", headers=auth)
    assert response.headers["link"] == '</items?page=2>; rel="next", </items?page=2>; rel="last"'


def test_binary_bodies_round_trip_where_masking_lets_them_pass(client, auth, stack):
    apply_policy_now(stack, {**DEV_POLICY, "settings": {"masking": {"default": {"binary": "pass"}}}})
    payload = bytes(range(256)) * 4
    response = client.post("/http/demo/upload", headers=auth, content=payload)
    assert response.status_code == 200
    assert stack.upstream.requests[-1]["body"] == payload.decode("utf-8", "replace")
    assert len(client.get("/http/demo/bytes/5000", headers=auth).content) == 5000


# ---------------------------------------------------------------- refusals: status, JSON body, recorded


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"] and error["request_id"]
    return error


def test_missing_token_is_401_and_recorded(client, stack):
    before = upstream_calls(stack)
    response = client.get("/http/demo/x")
    assert_error(response, 401, "missing_token")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert upstream_calls(stack) == before
    [event] = [e for e in recorded_events() if e["record_id"] == response.headers["x-wardgate-record-id"]]
    assert event["event"] == "refused" and event["identity"] is None
    assert event["error"]["code"] == "missing_token"


def test_expired_token_is_401(client, stack):
    token = stack.issuer.mint("agent-1", ["ci"], claims={"exp": 1_000_000, "iat": 999_000})
    assert_error(
        client.get("/http/demo/x", headers={"Authorization": f"Bearer {token}"}), 401, "token_expired"
    )


def test_token_for_another_audience_is_401(client, stack):
    token = stack.issuer.mint("agent-1", ["ci"], audience="someone-else")
    response = client.get("/http/demo/x", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "wrong_audience")


def test_unknown_connection_is_404(client, auth, stack):
    assert_error(client.get("/http/nope/x", headers=auth), 404, "unknown_connection")
    assert_error(client.get("/http/NOT..valid/x", headers=auth), 404, "unknown_connection")


def test_caller_outside_the_allowed_groups_is_403_with_the_reason(client, stack):
    token = stack.issuer.mint("intruder", ["marketing"])
    response = client.get("/http/demo/x", headers={"Authorization": f"Bearer {token}"})
    error = assert_error(response, 403, "denied_by_policy")
    assert "intruder" in error["message"] and "demo" in error["message"]
    [event] = [e for e in recorded_events() if e["record_id"] == response.headers["x-wardgate-record-id"]]
    assert event["decision"]["outcome"] == "deny"


def test_connection_with_no_groups_denies_everyone(client, auth, stack):
    put_connection(name="closed", upstream_url=stack.upstream.url, allowed_groups=())
    assert_error(client.get("/http/closed/x", headers=auth), 403, "denied_by_policy")


def test_connection_of_another_kind_is_refused(client, auth, stack):
    put_connection(name="db", kind="sql", upstream_url="postgres://db")
    assert_error(client.get("/http/db/x", headers=auth), 403, "forbidden")


def test_request_body_over_the_limit_is_413_and_not_forwarded(client, auth, stack):
    before = upstream_calls(stack)
    response = client.post("/http/demo/upload", headers=auth, content=b"x" * (256 * 1024 + 1))
    assert_error(response, 413, "payload_too_large")
    assert upstream_calls(stack) == before


def test_upstream_response_over_the_limit_is_502(client, auth, stack, monkeypatch):
    monkeypatch.setenv("WARDGATE_MAX_RESPONSE_BYTES", "1000")
    from wardgate import runtime

    runtime.http_gateway.cache_clear()
    assert_error(client.get("/http/demo/bytes/1001", headers=auth), 502, "upstream_response_too_large")
    assert client.get("/http/demo/bytes/1000?type=text/plain", headers=auth).status_code == 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_upstream_down_is_502(client, auth, stack):
    put_connection(name="down", upstream_url=f"http://127.0.0.1:{free_port()}")
    assert_error(client.get("/http/down/x", headers=auth), 502, "upstream_unavailable")


def test_slow_upstream_is_504(client, auth):
    assert_error(client.get("/http/demo/delay/3", headers=auth), 504, "upstream_timeout")


def test_upstream_errors_pass_through_unchanged(client, auth):
    response = client.get("/http/demo/status/418", headers=auth)
    assert response.status_code == 418 and response.json() == {"status": 418}


# ---------------------------------------------------------------- AWS failures: 503, nothing forwarded


def test_connection_store_down_is_503_and_nothing_forwarded(client, auth, stack):
    import os

    boto3.client("dynamodb").delete_table(TableName=os.environ["CONNECTIONS_TABLE"])
    before = upstream_calls(stack)
    assert_error(client.get("/http/demo/x", headers=auth), 503, "store_unavailable")
    assert upstream_calls(stack) == before


def test_secret_unavailable_is_503_and_nothing_forwarded(client, auth, stack):
    boto3.client("secretsmanager").delete_secret(SecretId=DEMO_SECRET, ForceDeleteWithoutRecovery=True)
    before = upstream_calls(stack)
    assert_error(client.get("/http/demo/x", headers=auth), 503, "credential_unavailable")
    assert upstream_calls(stack) == before


def test_malformed_secret_is_503_without_echoing_it(client, auth, stack):
    boto3.client("secretsmanager").put_secret_value(
        SecretId=DEMO_SECRET, SecretString='{"type":"magic","k":"s3cr3t"}'
    )
    response = client.get("/http/demo/x", headers=auth)
    assert_error(response, 503, "credential_unavailable")
    assert "s3cr3t" not in response.text


def test_recording_stream_down_is_503_and_nothing_forwarded(client, auth, stack):
    import os

    boto3.client("firehose").delete_delivery_stream(DeliveryStreamName=os.environ["RECORDINGS_STREAM"])
    before = upstream_calls(stack)
    assert_error(client.get("/http/demo/x", headers=auth), 503, "recording_unavailable")
    assert upstream_calls(stack) == before


def test_recording_index_down_withholds_the_upstream_answer(client, auth, stack):
    import os

    boto3.client("dynamodb").delete_table(TableName=os.environ["RECORDINGS_TABLE"])
    response = client.get("/http/demo/x", headers=auth)
    assert_error(response, 503, "recording_unavailable")
    assert "credential" not in response.text  # the upstream's answer is not handed over unrecorded


def test_invalid_issuer_configuration_fails_closed(client, auth, stack, monkeypatch):
    from wardgate import runtime

    monkeypatch.setenv("WARDGATE_ISSUERS", '[{"issuer": "http://evil.example.com", "audience": "x"}]')
    runtime.http_gateway.cache_clear()
    before = upstream_calls(stack)
    assert_error(client.get("/http/demo/x", headers=auth), 503, "service_unavailable")
    assert upstream_calls(stack) == before


def test_unroutable_paths_get_api_gateway_404(client):
    assert client.get("/nothing/here").status_code == 404


def test_an_unexpected_failure_is_a_recorded_500_not_a_crash(client, auth, stack, monkeypatch):
    from wardgate.proxies.http import HttpForwarder

    def broken_forward(*args, **kwargs):
        raise RuntimeError("a bug")  # stands in for any defect after the request was recorded

    monkeypatch.setattr(HttpForwarder, "forward", broken_forward)
    response = client.get("/http/demo/x", headers=auth)
    assert_error(response, 500, "internal_error")
    assert "a bug" not in response.text
    events = [e for e in recorded_events() if e["record_id"] == response.headers["x-wardgate-record-id"]]
    assert [e["event"] for e in events] == ["request", "response"]
    assert events[1]["error"]["code"] == "internal_error"


def test_tokens_and_credentials_never_reach_the_logs(client, token, stack):
    import io
    import logging

    from wardgate.observability import logger

    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logger.registered_formatter)  # the JSON lines Lambda would ship
    logger.addHandler(handler)
    logger.setLevel("DEBUG")
    try:
        client.get("/http/demo/x", headers={"Authorization": f"Bearer {token}"})
        client.get("/http/demo/x", headers={"Authorization": f"Bearer {token}x"})  # refused: malformed
        client.get("/http/nope/x", headers={"Authorization": f"Bearer {token}"})
    finally:
        logger.setLevel("WARNING")
        logger.removeHandler(handler)
    logged = sink.getvalue()
    assert logged.count("request finished") == 3  # the lines were written, so the check means something
    secret = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=DEMO_SECRET)["SecretString"])
    assert token not in logged and token.split(".")[2] not in logged
    assert secret["token"] not in logged
