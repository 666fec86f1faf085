"""Crashes the fuzz harnesses (fuzz/) and schemathesis (tests/test_openapi.py) found, replayed.

Every fuzzer input here is also a seed of its harness (fuzz/corpus/<target>/), so CI's fuzz runs
replay it too; fuzz/README.md lists them with their fixes.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import httpx
import pytest

from tests.test_approval_signing import request, signer
from wardgate.admin import _body, agent_from_request
from wardgate.approvals.signing import LinkError
from wardgate.dataapi.errors import DataApiError
from wardgate.dataapi.requests import parse_request
from wardgate.errors import BadRequest
from wardgate.operations import UnparseableOperation
from wardgate.operations.http import UNREADABLE, HttpOperation
from wardgate.operations.k8s import parse_k8s_request
from wardgate.policy.files import PolicyFileError, load
from wardgate.proxies.http import normalise_path
from wardgate.scim import ScimService

# ---------------------------------------------------------------- fuzz/http_path.py, k8s_request.py


@pytest.mark.parametrize("raw", ["/\udce7", "/a/\udc99b", "/%41\ud800"])
def test_a_lone_surrogate_in_the_path_is_bad_path_not_a_crash(raw: str) -> None:
    # A JSON event can carry "\udce7"; it cannot be encoded, so unquote_to_bytes raised
    # UnicodeEncodeError out of normalise_path (a 500 on /http/ and /k8s/).
    with pytest.raises(BadRequest) as refused:
        normalise_path(raw)
    assert refused.value.code == "bad_path"
    with pytest.raises(UnparseableOperation):
        parse_k8s_request("GET", raw)


# ---------------------------------------------------------------- fuzz/policy_yaml.py


def refused_policy(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyFileError) as refused:
        load([str(path)])
    return refused.value.messages


DEEP = "p.yaml:1: nested over 64 levels (a recursive alias?)"
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)  # 10 ** 9 values once expanded


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: &x [*x]\n", DEEP),
        ("settings: {masking: &m {connections: *m}}\n", DEEP),
        ("rules: " + "[" * 2000 + "]" * 2000 + "\n", "p.yaml: invalid YAML: nested too deeply"),
        ("rules: " + "[" * 70 + "]" * 70 + "\n", DEEP),
        (LAUGHS, "p.yaml: more than 200000 values once its aliases are expanded"),
    ],
    ids=["recursive-alias", "recursive-mapping", "deep-yaml", "deep", "billion-laughs"],
)
def test_recursive_deep_or_exploding_policy_files_are_refused_not_a_crash(
    tmp_path: Path, text: str, message: str
) -> None:
    # Each was a RecursionError out of files.parse (the line positions walk the node graph), or a
    # walk of 10**9 values that never ends, instead of a PolicyFileError.
    started = time.monotonic()
    messages = refused_policy(tmp_path, text)
    assert [m.replace(str(tmp_path / "p.yaml"), "p.yaml") for m in messages] == [message]
    assert time.monotonic() - started < 10


def test_aliases_within_the_limits_still_load(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "rules:\n"
        "  - {name: a, effect: allow, identity: {groups: &ci [ci, dev]}, match: {http: {methods: [GET]}}}\n"
        "  - {name: b, effect: deny, identity: {groups: *ci}, match: {http: {methods: [DELETE]}}}\n"
    )
    _, policy_set = load([str(path)])
    assert [rule.name for rule in policy_set.rules] == ["a", "b"]


@pytest.mark.parametrize(
    "text", [".:\n-5:\n", "true: 1\nx: 2\n", "rules:\n  - {name: a, effect: allow, 1: x, b: y}\n"]
)
def test_unknown_keys_that_are_not_strings_are_reported_not_a_crash(tmp_path: Path, text: str) -> None:
    # YAML reads `-5:` as the int -5 and `true:` as a bool: sorting them with the string keys for
    # the "unknown field" messages raised TypeError out of check_schema.
    messages = refused_policy(tmp_path, text)
    assert messages and all("unknown field" in m for m in messages)


# ---------------------------------------------------------------- fuzz/scim_filter.py


def test_a_scim_filter_value_that_is_not_a_json_string_is_invalid_filter(stack) -> None:
    # The filter regex accepts any backslash escape and raw control characters between the quotes;
    # json.loads of them raised JSONDecodeError: 500 instead of SCIM's 400 invalidFilter.
    headers = {"Authorization": f"Bearer {stack.scim_token()}"}
    for value in ['"\\q"', '"a\tb"', '"\\u12"', '"e\x00x"']:
        response = httpx.get(
            f"{stack.url}/scim/v2/Users", params={"filter": f"userName eq {value}"}, headers=headers
        )
        assert response.status_code == 400, (value, response.text)
        assert response.json()["scimType"] == "invalidFilter"


def test_a_scim_user_name_that_cannot_be_an_owner_is_invalid_value_not_a_crash(stack) -> None:
    # userName is the owner agents are registered with; one with spaces (or over 256 characters)
    # made normalise_owner raise ValueError after the user was stored: a 500 (found by schemathesis).
    with httpx.Client(
        base_url=f"{stack.url}/scim/v2", headers={"Authorization": f"Bearer {stack.scim_token()}"}, timeout=10
    ) as scim:
        for body in ({"userName": "John Doe"}, {"userName": "x" * 300}, {"userName": "a b", "active": False}):
            response = scim.post("/Users", json=body)
            assert response.status_code == 400, response.text
            assert response.json()["scimType"] == "invalidValue"
        assert scim.get("/Users").json()["totalResults"] == 0  # nothing half-created
        user = scim.post("/Users", json={"userName": "jane@example.com"}).json()
        for patch in (
            {"Operations": [{"op": "replace", "path": "userName", "value": "Jane Doe"}]},
            {"Operations": [{"op": "replace", "value": {"userName": "Jane Doe", "active": False}}]},
        ):
            response = scim.patch(f"/Users/{user['id']}", json=patch)
            assert response.status_code == 400, response.text
        response = scim.put(f"/Users/{user['id']}", json={"userName": "Jane Doe"})
        assert response.status_code == 400, response.text
        assert scim.get(f"/Users/{user['id']}").json()["userName"] == "jane@example.com"


def test_a_scim_name_sub_attribute_patched_onto_a_name_that_is_not_an_object(stack) -> None:
    # PATCH name.givenName after "name" was set to a string (by an earlier operation, PUT or POST):
    # dict("Al") raised ValueError, a 500 on every later PATCH of the user's name.
    with httpx.Client(
        base_url=f"{stack.url}/scim/v2", headers={"Authorization": f"Bearer {stack.scim_token()}"}, timeout=10
    ) as scim:
        user = scim.post("/Users", json={"userName": "ann@example.com", "name": "Ann"}).json()
        operations = [
            {"op": "add", "path": "name.givenName", "value": "Ann"},
            {"op": "replace", "path": "name", "value": 7},
            {"op": "add", "path": "name.familyName", "value": "Lee"},
        ]
        response = scim.patch(f"/Users/{user['id']}", json={"Operations": operations})
        assert response.status_code == 200, response.text
        assert response.json()["name"] == {"familyName": "Lee"}


# ---------------------------------------------------------------- schemathesis (tests/test_openapi.py)


def test_a_head_request_does_not_break_the_next_request_to_the_demo_upstream(stack, auth) -> None:
    # The demo upstream wrote a body after its HEAD answers; httpx read those bytes as the start of
    # the next response on the kept-alive connection: the next request through wardgate was a 502.
    with httpx.Client(base_url=stack.url, headers=auth, timeout=10) as client:
        assert client.head("/http/demo/v1/items").status_code == 200
        for _ in range(3):
            response = client.get("/http/demo/v1/items")
            assert response.status_code == 200, response.text
            assert client.head("/http/demo/anything").status_code == 200


AGENT = {
    "issuer": "https://issuer.example",
    "subject": "a",
    "owner": "o@example.com",
    "purpose": "p",
    "connections": ["*"],
}


@pytest.mark.parametrize(
    "expiry",
    [
        {"expires_in_days": 1.2e307},
        {"expires_at": float("inf")},
        {"expires_at": 10**40},
        {"expires_in_days": 10**9},
    ],
)
def test_an_expiry_too_far_in_the_future_is_an_invalid_agent_not_a_crash(expiry: dict[str, float]) -> None:
    # POST /admin/agents with expires_in_days 1.2e307 (or JSON's Infinity as expires_at): int() of a
    # float infinity raised OverflowError, a 500 from the admin API instead of 400 invalid_agent.
    with pytest.raises(ValueError, match="before the year 10000"):
        agent_from_request({**AGENT, **expiry})
    assert agent_from_request({**AGENT, "expires_in_days": 30}, now=1000).expires_at == 1000 + 30 * 86400


def test_an_owner_that_is_not_an_owner_name_is_a_bad_admin_request_not_a_crash(stack) -> None:
    # GET /admin/agents?owner=<control characters or spaces> and POST /admin/revocations with such an
    # owner (or a number) made normalise_owner raise ValueError/AttributeError: a 500.
    token = stack.issuer.mint("admin-1", [os.environ["ADMIN_GROUP"]])
    with httpx.Client(base_url=f"{stack.url}/admin", headers={"Authorization": f"Bearer {token}"}) as admin:
        for owner in ("\x00\x1d2", "John Doe", "x" * 300):
            response = admin.get("/agents", params={"owner": owner})
            assert response.status_code == 400, response.text
            assert response.json()["error"]["code"] == "invalid_request"
        for owner in ("John Doe", 5, ["a"]):
            response = admin.post("/revocations", json={"owner": owner, "reason": "offboarded"})
            assert response.status_code == 400, response.text
        assert admin.get("/agents", params={"owner": "Alice@Example.com"}).json() == {"agents": []}


# ---------------------------------------------------------------- JSON nested deeper than json.loads goes
# json.loads raises RecursionError (not ValueError) past ~1,000 levels: "[" * 3000 is 3 KB of body.
DEEP = "[" * 3000 + "]" * 3000


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        json.dumps(
            {
                "sql": "SELECT :a",
                "parameters": [{"name": "a", "typeHint": "JSON", "value": {"stringValue": "[" * 3000}}],
            }
        ),
    ],
    ids=["body", "json-parameter"],
)
def test_a_data_api_body_nested_too_deeply_is_a_bad_request(body: str) -> None:
    with pytest.raises(DataApiError) as refused:
        parse_request("Execute", body.encode(), database=None)
    assert refused.value.error_type == "BadRequestException"


def test_a_scim_body_nested_too_deeply_is_invalid_syntax() -> None:
    service = ScimService(None, None, lambda: "t")  # type: ignore[arg-type]  # the body fails first
    status, body, _ = service.handle("POST", "/Users", {}, {"authorization": "Bearer t"}, DEEP.encode())
    assert (status, body and body["scimType"]) == (400, "invalidSyntax")


def test_an_http_body_nested_too_deeply_is_unreadable_to_body_rules() -> None:
    # A rule on a body field (e.g. amount > 500) parsed the agent's JSON body; RecursionError was a
    # 500 on any POST to a connection with such a rule.
    operation = HttpOperation("POST", "/v1/refunds", "", DEEP.encode(), "application/json")
    assert operation.body_field("amount") is UNREADABLE


@pytest.mark.parametrize(
    "claims", [DEEP.encode(), b'{"r": "x", "a": "b", "e": 1e999, "n": "n"}'], ids=["deep", "e-inf"]
)
def test_a_malformed_approval_link_is_bad_link_not_a_crash(claims: bytes) -> None:
    # GET /approvals/{id}?t=... : the link's claims are base64 JSON; nested too deeply (RecursionError)
    # or with an expiry of 1e999 (int(inf): OverflowError) they made a 500 page, not "malformed".
    token = base64.urlsafe_b64encode(claims).decode().rstrip("=") + ".signature"
    with pytest.raises(LinkError) as refused:
        signer().verify_link(request(), token)
    assert refused.value.code == "bad_link"


def test_an_admin_body_nested_too_deeply_is_invalid_request() -> None:
    with pytest.raises(BadRequest) as refused:
        _body({"body": DEEP})
    assert refused.value.code == "invalid_request"
