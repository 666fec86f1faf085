"""Kubernetes Secret values and terminal output: the two places detectors alone are not enough."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from wardgate.masking import DEFAULT_PROFILE, MaskingProfile, MaskingRefused
from wardgate.masking.kubernetes import LAST_APPLIED, MASKED_DATA, mask_kubernetes_body
from wardgate.masking.terminal import TerminalStream, mask_terminal

JSON = "application/json"


def secret(name: str, **values: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "prod",
            "annotations": {
                LAST_APPLIED: json.dumps(
                    {"data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}
                )
            },
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
        "stringData": {"extra": "plain-password"},
        "type": "Opaque",
    }


def masked(document: Any, profile: MaskingProfile = DEFAULT_PROFILE) -> tuple[Any, dict[str, int]]:
    result = mask_kubernetes_body(json.dumps(document).encode(), JSON, profile)
    return json.loads(result.value), result.counts


def test_a_secret_keeps_its_keys_and_loses_every_value():
    document = {"kind": "Secret", "apiVersion": "v1", **secret("db", password="hunter2", user="app")}
    out, counts = masked(document)
    assert out["data"] == {"password": MASKED_DATA, "user": MASKED_DATA}
    assert base64.b64decode(out["data"]["password"]) == b"[masked]"  # still valid base64 for clients
    assert out["stringData"] == {"extra": "[masked]"}
    # The applied copy holds the data too: masked the same way, still the JSON kubectl apply reads.
    assert json.loads(out["metadata"]["annotations"][LAST_APPLIED]) == {
        "data": {"password": MASKED_DATA, "user": MASKED_DATA}
    }
    assert out["metadata"]["name"] == "db" and out["type"] == "Opaque"
    assert counts == {"kubernetes_secret": 4}


@pytest.mark.parametrize(
    "applied",
    [
        "not json",
        '["a", "list"]',
        '{"data": "not-an-object"}',
        '{"stringData": ["x"]}',
        "[" * 100_000,  # deeper than json can go: never raised, masked whole
    ],
)
def test_a_last_applied_copy_that_is_not_a_secret_document_is_masked_whole(applied: str) -> None:
    document = {"kind": "Secret", "metadata": {"name": "db", "annotations": {LAST_APPLIED: applied}}}
    out, counts = masked(document)
    assert out["metadata"]["annotations"][LAST_APPLIED] == "[masked]" and counts == {"kubernetes_secret": 1}


def test_the_masked_last_applied_copy_keeps_no_nested_copy_and_masks_string_data() -> None:
    applied = {
        "kind": "Secret",
        "metadata": {"name": "db", "annotations": {LAST_APPLIED: '{"data": {"k": "c2VjcmV0"}}', "team": "a"}},
        "stringData": {"token": "plain-secret"},
    }
    document = {
        "kind": "Secret",
        "metadata": {"name": "db", "annotations": {LAST_APPLIED: json.dumps(applied)}},
    }
    out, _ = masked(document)
    copy = json.loads(out["metadata"]["annotations"][LAST_APPLIED])
    assert copy["stringData"] == {"token": "[masked]"}
    assert copy["metadata"]["annotations"] == {"team": "a"}
    assert "c2VjcmV0" not in json.dumps(out) and "plain-secret" not in json.dumps(out)


def test_secret_lists_lists_tables_and_watch_events():
    secret_list = {
        "kind": "SecretList",
        "items": [secret("a", k="v1"), secret("b", k="v2")],
    }  # items carry no kind
    out, counts = masked(secret_list)
    assert [i["data"]["k"] for i in out["items"]] == [MASKED_DATA] * 2 and counts["kubernetes_secret"] == 6

    mixed = {
        "kind": "List",
        "items": [{"kind": "ConfigMap", "data": {"k": "visible"}}, {"kind": "Secret", **secret("c", k="v")}],
    }
    out, _ = masked(mixed)
    assert out["items"][0]["data"] == {"k": "visible"} and out["items"][1]["data"] == {"k": MASKED_DATA}

    table = {"kind": "Table", "rows": [{"cells": ["c"], "object": {"kind": "Secret", **secret("c", k="v")}}]}
    out, _ = masked(table)
    assert out["rows"][0]["object"]["data"] == {"k": MASKED_DATA}

    events = b"\n".join(
        json.dumps({"type": t, "object": {"kind": "Secret", **secret("w", k="v")}}).encode()
        for t in ("ADDED", "MODIFIED")
    )
    result = mask_kubernetes_body(events + b"\n", JSON, DEFAULT_PROFILE)
    lines = [json.loads(line) for line in result.value.splitlines()]
    assert [e["object"]["data"]["k"] for e in lines] == [MASKED_DATA] * 2


def test_detectors_still_run_on_everything_else_and_policy_can_reveal_secrets():
    document = {"kind": "Secret", **secret("db", password="x"), "note": "owner ada@example.com"}
    out, counts = masked(document)
    assert out["note"] == "owner [masked:email]" and counts["email"] == 1

    revealed, counts = masked(document, MaskingProfile(kubernetes_secrets=False))
    assert revealed["data"] == document["data"] and "kubernetes_secret" not in counts


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"kind": "Secret", "data": {"k": "v"', "mentions a Secret but is not valid JSON"),
        (b'{"kind": "Secret", "x": "\xff"}', "not valid UTF-8"),
        (b'{"kind": "Secret", "x": ' + b"[" * 200 + b"]" * 200 + b"}", "deeper than the masking limit"),
    ],
)
def test_what_cannot_be_read_as_kubernetes_json_is_refused(body, reason):
    with pytest.raises(MaskingRefused, match=reason):
        mask_kubernetes_body(body, JSON, DEFAULT_PROFILE)


def test_terminal_output_is_masked_through_colour_codes():
    text = "card: \x1b[1;31m4242 4242\x1b[0m 4242 4242, mail \x1b[4mada@example.com\x1b[0m\r\n"
    result = mask_terminal(text, DEFAULT_PROFILE)
    assert result.value == "card: \x1b[1;31m**** **** **** 4242\x1b[0m, mail \x1b[4m[masked:email]\x1b[0m\r\n"
    assert result.counts == {"card": 1, "email": 1}


def test_a_terminal_stream_never_releases_part_of_a_value():
    stream = TerminalStream(DEFAULT_PROFILE, overlap=32)
    text = "x" * 100 + " card 4242 4242 4242 4242 then ada@example.com\n" + "y" * 100 + "\n"
    released = [stream.feed(text[i : i + 7]) for i in range(0, len(text), 7)]
    released.append(stream.close())
    joined = "".join(released)
    assert joined == mask_terminal(text, DEFAULT_PROFILE).value
    assert not any("4242 4242" in part or "ada@" in part for part in released)
    assert stream.counts == {"card": 1, "email": 1}


def test_a_private_key_block_is_held_until_it_ends_then_masked():
    key = (
        "-----BEGIN RSA PRIVATE KEY-----\n"
        + ("MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7\n" * 30)
        + "-----END RSA PRIVATE KEY-----\n"
    )
    stream = TerminalStream(DEFAULT_PROFILE, overlap=64)
    released = [stream.feed(key[i : i + 100]) for i in range(0, len(key), 100)] + [stream.close()]
    assert "MIIEow" not in "".join(released)
    assert "[masked:pem_private_key]" in "".join(released)


def test_held_output_is_bounded_and_an_overlong_key_block_is_masked_whole():
    stream = TerminalStream(DEFAULT_PROFILE, overlap=16, max_held=256)
    assert stream.feed("z" * 300) == "z" * 300  # nothing to hold back for: released at the bound
    out = stream.feed("ok\n-----BEGIN PRIVATE KEY-----\n" + "A" * 400)
    assert out == "ok\n[masked:pem_private_key]"
    assert stream.feed("B" * 1000 + "\n-----END PRIV") == ""  # still inside the key
    assert stream.feed("ATE KEY-----\nafter the key\n") + stream.close() == "\nafter the key\n"
    assert stream.counts == {"pem_private_key": 1}
