"""Masking on the live path: what agents get back through /http/{connection}, and what is recorded.

The demo upstream serves made-up customers (/v1/customers) and echoes any body under any
Content-Type and Content-Encoding (/respond), so each case is a real HTTP round trip.
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import httpx
import pytest

from tests.helpers import apply_policy_now, raw_recordings, recorded_events
from wardgate.dev.stack import DEV_POLICY, DevStack

CARD = "4242 4242 4242 4242"
SECRET_VALUES = ("ada@example.com", CARD, "078-05-1120", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "203.0.113.7")


def with_masking(stack: DevStack, masking: dict[str, Any]) -> None:
    apply_policy_now(stack, {**DEV_POLICY, "settings": {"masking": masking}})


def response_event(record_id: str) -> dict[str, Any]:
    return next(e for e in recorded_events() if e["record_id"] == record_id and e["event"] == "response")


def respond(
    client: httpx.Client, auth: dict[str, str], body: bytes, type_: str, encoding: str = ""
) -> httpx.Response:
    query = f"?type={type_}" + (f"&encoding={encoding}" if encoding else "")
    return client.post(f"/http/demo/respond{query}", headers=auth, content=body)


def test_json_responses_are_masked_by_default_keeping_their_structure(client, auth):
    response = client.get("/http/demo/v1/customers", headers=auth)

    assert response.status_code == 200
    ada, grace = response.json()["customers"]  # still valid JSON, same keys, same ids
    assert ada["id"] == 1 and ada["name"] == "Ada Example"
    assert ada["card"] == "**** **** **** 4242"  # a card keeps its last four digits
    assert grace["card"] == "****-****-****-4444"
    assert ada["email"] == "[masked:email]" and ada["ssn"] == "[masked:us_ssn]"
    assert ada["last_login_ip"] == "[masked:ipv4]" and grace["last_login_ip"] == "[masked:ipv6]"
    assert grace["iban"] == "[masked:iban]"
    assert "[masked:api_token]" in ada["notes"] and ada["notes"].startswith("prefers email; api key ")
    assert response.headers["x-wardgate-masked"] == (
        "api_token=1, card=2, email=2, iban=1, ipv4=1, ipv6=1, phone=2, us_ssn=1"
    )
    assert not any(value in response.text for value in SECRET_VALUES)


def test_recordings_hold_what_the_agent_saw_and_counts_by_detector(client, auth):
    response = client.get("/http/demo/v1/customers", headers=auth)

    event = response_event(response.headers["x-wardgate-record-id"])
    assert json.loads(event["response"]["body"]["data"]) == response.json()
    assert event["response"]["masking"] == {
        "profile": "default",
        "counts": {
            "api_token": 1,
            "card": 2,
            "email": 2,
            "iban": 1,
            "ipv4": 1,
            "ipv6": 1,
            "phone": 2,
            "us_ssn": 1,
        },
        "truncated": False,
    }
    assert "masking" in event["timings_ms"]
    recorded = raw_recordings()
    assert not any(value.encode() in recorded for value in SECRET_VALUES)


def test_request_bodies_are_forwarded_as_sent_but_recorded_masked(client, auth, stack):
    response = client.post("/http/demo/v1/payments", headers=auth, json={"card": CARD, "amount": 12})

    assert response.status_code == 200
    assert json.loads(stack.upstream.requests[-1]["body"]) == {"card": CARD, "amount": 12}
    request_event = next(
        e for e in recorded_events() if e["record_id"] == response.headers["x-wardgate-record-id"]
    )
    assert json.loads(request_event["request"]["body"]["data"]) == {
        "card": "**** **** **** 4242",
        "amount": 12,
    }
    assert request_event["request"]["body"]["masked"] == {"card": 1}
    assert CARD.encode() not in raw_recordings()


def test_a_group_exemption_reveals_only_what_it_names(stack, client, auth):
    with_masking(stack, {"exemptions": [{"groups": ["pii-readers"], "reveal": ["email", "phone"]}]})
    reader = {"Authorization": "Bearer " + stack.issuer.mint("analyst-1", ["ci", "pii-readers"])}

    ada_for_reader = client.get("/http/demo/v1/customers", headers=reader).json()["customers"][0]
    ada_for_agent = client.get("/http/demo/v1/customers", headers=auth).json()["customers"][0]

    assert ada_for_reader["email"] == "ada@example.com" and ada_for_reader["phone"] == "+1 415 555 0100"
    assert ada_for_reader["card"] == "**** **** **** 4242"  # not revealed to anyone
    assert ada_for_agent["email"] == "[masked:email]"
    events = [e for e in recorded_events() if e["event"] == "response"]
    assert events[-2]["response"]["masking"]["revealed"] == ["email", "phone"]


def test_connection_profiles_field_rules_and_custom_detectors(stack, client, auth):
    with_masking(
        stack,
        {
            "default": {"detectors": ["card"]},
            "connections": {
                "demo": {
                    "fields": ["$.customers[*].name"],
                    "custom": [
                        {"name": "vip_flag", "words": ["VIP"]},
                        {"name": "rotation_note", "regex": "was rotated"},
                    ],
                }
            },
        },
    )
    response = client.get("/http/demo/v1/customers", headers=auth)
    ada, grace = response.json()["customers"]

    assert ada["name"] == grace["name"] == "[masked]"  # field rule: masked whole
    assert grace["notes"] == "[masked:vip_flag]"
    assert ada["notes"].endswith("[masked:rotation_note]")
    assert (
        ada["email"] == "ada@example.com"
    )  # the connection profile keeps the default's detectors: card only
    assert ada["card"] == "**** **** **** 4242"
    assert response.headers["x-wardgate-masked"] == "card=2, field=2, rotation_note=1, vip_flag=1"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_responses_are_decoded_then_masked(client, auth, encoding):
    body = json.dumps({"email": "ada@example.com"}).encode()
    compressed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)

    response = respond(client, auth, compressed, "application/json", encoding)

    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.json() == {"email": "[masked:email]"}


def test_an_encoding_wardgate_cannot_decode_is_refused_not_passed(client, auth, stack):
    agent = {**auth, "Accept-Encoding": "br, zstd"}  # the agent's wish is not passed on
    response = respond(client, agent, b"\x0b\x02\x80not-really-brotli", "application/json", "br")

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_bad_response"
    assert "cannot decode" in response.json()["error"]["message"]
    assert stack.upstream.requests[-1]["headers"]["accept-encoding"] == "gzip, deflate"


def test_text_responses_are_masked_as_text(client, auth):
    response = respond(client, auth, b"user ada@example.com paid with 4242424242424242\n", "text/plain")
    assert response.text == "user [masked:email] paid with ************4242\n"


@pytest.mark.parametrize(
    ("body", "type_", "reason"),
    [
        (
            bytes(range(256)),
            "application/octet-stream",
            "a binary body (application/octet-stream) cannot be masked",
        ),
        (b'{"email": "ada@example.com", "x": "\xff"}', "application/json", "not valid UTF-8"),
        (b"[" * 100 + b"]" * 100, "application/json", "JSON nesting is deeper than the masking limit of 64"),
        (b"\x00\x01binary\x02", "application/x-custom", "is binary"),
    ],
    ids=["binary", "invalid-utf8", "too-deep", "untyped-binary"],
)
def test_what_cannot_be_scanned_is_withheld_and_recorded_without_its_body(client, auth, body, type_, reason):
    response = respond(client, auth, body, type_)

    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "masking_refused" and reason in error["message"]
    event = response_event(response.headers["x-wardgate-record-id"])
    assert event["response"]["status"] == 502
    assert event["response"]["upstream"]["status"] == 200
    assert event["response"]["upstream"]["body"] == {
        "size": len(body),
        "withheld": error["message"].split(": ", 1)[1],
    }
    assert event["error"]["code"] == "masking_refused"


def test_binary_passes_only_where_policy_says_so(stack, client, auth):
    with_masking(stack, {"default": {"binary": "pass"}})
    response = respond(client, auth, bytes(range(256)), "application/octet-stream")
    assert response.status_code == 200 and response.content == bytes(range(256))


def test_over_the_limit_responses_are_refused_or_cut_as_policy_says(stack, client, auth):
    big = json.dumps({"rows": [{"email": f"user{i}@example.com"} for i in range(100)]}).encode()

    with_masking(stack, {"default": {"max_bytes": 1000}})
    refused = respond(client, auth, big, "application/json")
    assert refused.status_code == 502 and "larger than the masking limit of 1000 bytes" in refused.text

    with_masking(stack, {"default": {"max_bytes": 1000, "on_limit": "truncate"}})
    cut = respond(client, auth, big, "application/json")
    assert cut.status_code == 200
    assert cut.headers["x-wardgate-truncated"] == "true"
    assert cut.headers["content-type"].startswith("text/plain")  # cut JSON is no longer JSON
    assert cut.text.endswith("…[wardgate: truncated at 1000 bytes]")
    assert "@example.com" not in cut.text
    event = response_event(cut.headers["x-wardgate-record-id"])
    assert event["response"]["masking"]["truncated"] is True


def test_a_huge_single_string_is_masked_whole_or_cut_inside_as_policy_says(stack, client, auth):
    body = json.dumps({"blob": "a" * 200_000 + " ada@example.com", "id": 7}).encode()
    response = respond(client, auth, body, "application/json")
    assert response.status_code == 200
    assert response.json()["blob"].endswith(" [masked:email]")

    with_masking(stack, {"default": {"max_string": 100_000, "on_limit": "truncate"}})
    cut = respond(client, auth, body, "application/json").json()  # still JSON: cut inside the string
    assert cut["id"] == 7
    assert cut["blob"] == "a" * 100_000 + "…[wardgate: truncated at 100000 characters]"


def test_masking_can_be_narrowed_to_nothing_by_policy(stack, client, auth):
    with_masking(stack, {"default": {"detectors": []}})
    response = client.get("/http/demo/v1/customers", headers=auth)
    assert response.json()["customers"][0]["email"] == "ada@example.com"
    assert "x-wardgate-masked" not in response.headers


def test_values_in_paths_and_queries_are_masked_in_recordings(client, auth, stack):
    response = client.get(
        "/http/demo/v1/users/ada@example.com", params={"card": "4242424242424242"}, headers=auth
    )

    assert stack.upstream.requests[-1]["path"] == "/v1/users/ada@example.com"  # forwarded as asked
    assert stack.upstream.requests[-1]["query"] == "card=4242424242424242"
    event = next(e for e in recorded_events() if e["record_id"] == response.headers["x-wardgate-record-id"])
    assert event["request"]["path"] == event["operation"]["path"] == "/v1/users/%5Bmasked%3Aemail%5D"
    assert (
        event["request"]["query"]
        == event["operation"]["query"]
        == "card=%2A%2A%2A%2A%2A%2A%2A%2A%2A%2A%2A%2A4242"
    )
    recorded = raw_recordings()
    assert b"ada@example.com" not in recorded and b"ada%40example.com" not in recorded
    assert b"4242424242424242" not in recorded
