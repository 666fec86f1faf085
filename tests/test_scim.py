"""SCIM 2.0 /scim/v2/Users over loopback, as Okta and Entra ID call it, including every bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import recorded_events
from wardgate.agents import Agent, AgentRegistry, AgentTable
from wardgate.config import Settings
from wardgate.scim import ERROR_SCHEMA, LIST_SCHEMA

ALICE = "Alice@Example.com"


@pytest.fixture
def scim(stack) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {stack.scim_token()}", "Content-Type": "application/scim+json"}
    with httpx.Client(base_url=f"{stack.url}/scim/v2", headers=headers, timeout=10) as http:
        yield http


@pytest.fixture
def registry(stack) -> AgentRegistry:
    return AgentRegistry(AgentTable(Settings.from_env().agents_table))


def create(scim: httpx.Client, user_name: str = ALICE, **extra: Any) -> dict[str, Any]:
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Alice", "familyName": "Doe"},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "active": True,
        **extra,
    }
    response = scim.post("/Users", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def register(registry: AgentRegistry, stack, subject: str, owner: str = ALICE) -> None:
    issuer = stack.issuer.issuer
    registry.register(Agent(issuer, subject, owner, "CI", ("demo",)), by="admin")


def scim_error(response: httpx.Response, status: int, scim_type: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/scim+json"
    body = dict(response.json())
    assert body["schemas"] == [ERROR_SCHEMA] and body["status"] == str(status)
    assert body.get("scimType") == scim_type
    assert body["detail"]
    return body


def admin_events(action: str) -> list[dict[str, Any]]:
    return [e for e in recorded_events() if e["event"] == "admin" and e["action"] == action]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Basic dXNlcjpwYXNz", "Bearer", "Token abc"],
)
def test_requests_without_the_right_bearer_token_are_refused(stack, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(f"{stack.url}/scim/v2/Users", headers=headers)
    scim_error(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert stack.scim_token() not in response.text


def test_create_get_and_filter_users(scim):
    user = create(scim, externalId="00u1abc")
    assert user["userName"] == ALICE and user["active"] is True and user["meta"]["resourceType"] == "User"
    assert user["meta"]["location"].endswith(f"/Users/{user['id']}")
    assert scim.get(f"/Users/{user['id']}").json() == user

    found = scim.get(
        "/Users", params={"filter": 'userName eq "alice@example.com"'}
    ).json()  # case-insensitive
    assert found["schemas"] == [LIST_SCHEMA]
    assert (found["totalResults"], found["itemsPerPage"], found["startIndex"]) == (1, 1, 1)
    assert found["Resources"][0]["id"] == user["id"]
    by_external = scim.get("/Users", params={"filter": 'externalId eq "00u1abc"'}).json()
    assert [u["id"] for u in by_external["Resources"]] == [user["id"]]
    # Entra's connection test: a filter on a user that does not exist is an empty list, not a 404.
    empty = scim.get("/Users", params={"filter": 'userName eq "0e6f2b8c-nobody"'}).json()
    assert (empty["totalResults"], empty["Resources"]) == (0, [])
    # Okta's connection test: paging without a filter.
    page = scim.get("/Users", params={"startIndex": "1", "count": "1"}).json()
    assert page["totalResults"] == 1 and len(page["Resources"]) == 1


@pytest.mark.parametrize(
    "filter_text",
    [
        'userName co "alice"',
        "userName eq alice@example.com",
        'emails eq "alice@example.com"',
        'userName eq "alice@example.com" and active eq true',
        'userName eq "unterminated',
        "",
        "((((",
    ],
)
def test_malformed_or_unsupported_filters_are_invalid_filter(scim, filter_text):
    scim_error(scim.get("/Users", params={"filter": filter_text}), 400, "invalidFilter")


def test_bad_paging_and_bodies_are_clear_errors(scim):
    scim_error(scim.get("/Users", params={"startIndex": "one"}), 400, "invalidValue")
    scim_error(scim.post("/Users", content=b"{not json"), 400, "invalidSyntax")
    scim_error(scim.post("/Users", json=["a list"]), 400, "invalidSyntax")
    scim_error(scim.post("/Users", json={"name": {"givenName": "x"}}), 400, "invalidValue")
    scim_error(scim.post("/Users", json={"userName": ALICE, "active": "perhaps"}), 400, "invalidValue")
    create(scim)
    scim_error(scim.post("/Users", json={"userName": "ALICE@example.com"}), 409, "uniqueness")
    scim_error(scim.get("/Groups"), 404)


def test_unknown_users_are_404_for_every_method(scim):
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        body = {"Operations": [{"op": "replace", "value": {"active": False}}], "userName": "x"}
        scim_error(scim.request(method, "/Users/does-not-exist", json=body), 404)


@pytest.mark.parametrize(
    "operations",
    [
        [{"op": "replace", "value": {"active": False}}],  # Okta
        [{"op": "Replace", "path": "active", "value": "False"}],  # Entra ID
    ],
    ids=["okta", "entra"],
)
def test_deactivation_revokes_the_owner_and_every_agent_once(scim, stack, registry, operations):
    user = create(scim)
    register(registry, stack, "ci-bot")
    register(registry, stack, "nightly")
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations}
    response = scim.patch(f"/Users/{user['id']}", json=patch)
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    assert {a.status for a in registry.agents("alice@example.com")} == {"revoked"}
    state = registry.owner("alice@example.com")
    assert state is not None and state.revoked and state.by == "scim"

    replay = scim.patch(f"/Users/{user['id']}", json=patch)  # IdPs retry: no second revocation
    assert replay.status_code == 200 and replay.json()["active"] is False
    revocations = admin_events("revoke_owner")
    assert len(revocations) == 1
    assert revocations[0]["actor"]["subject"] == "scim"
    assert sorted(a["subject"] for a in revocations[0]["result"]["agents"]) == ["ci-bot", "nightly"]
    assert "deprovisioned by the identity provider" in revocations[0]["reason"]


def test_bad_patch_operations_change_nothing(scim, registry, stack):
    user = create(scim)
    register(registry, stack, "ci-bot")
    url = f"/Users/{user['id']}"
    scim_error(scim.patch(url, json={"Operations": []}), 400, "invalidSyntax")
    scim_error(scim.patch(url, json={"Operations": [{"op": "move", "path": "active"}]}), 400, "invalidSyntax")
    bad_value = {"Operations": [{"op": "replace", "path": "active", "value": "nope"}]}
    scim_error(scim.patch(url, json=bad_value), 400, "invalidValue")
    scim_error(scim.patch(url, json={"Operations": [{"op": "remove", "path": "active"}]}), 400, "mutability")
    scim_error(scim.patch(url, json={"Operations": [{"op": "replace", "value": "x"}]}), 400, "invalidSyntax")
    assert {a.status for a in registry.agents()} == {"active"}
    assert scim.get(url).json()["active"] is True


def test_attribute_patches_are_kept_and_unknown_paths_ignored(scim):
    user = create(scim)
    operations = [
        {"op": "replace", "path": "displayName", "value": "Alice D."},
        {"op": "replace", "path": "name.familyName", "value": "Dupont"},
        {"op": "add", "path": 'emails[type eq "work"].value', "value": "a@example.com"},
        {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"},
    ]
    response = scim.patch(f"/Users/{user['id']}", json={"Operations": operations})
    assert response.status_code == 200, response.text
    assert response.json()["displayName"] == "Alice D."
    assert response.json()["name"] == {"givenName": "Alice", "familyName": "Dupont"}
    assert response.json()["active"] is True


def test_put_with_active_false_revokes(scim, registry, stack):
    user = create(scim)
    register(registry, stack, "ci-bot")
    response = scim.put(f"/Users/{user['id']}", json={"userName": ALICE, "active": False})
    assert response.status_code == 200 and response.json()["active"] is False
    assert [a.status for a in registry.agents()] == ["revoked"]
    scim_error(scim.put(f"/Users/{user['id']}", json={"active": True}), 400, "invalidValue")


def test_delete_revokes_and_a_second_delete_is_404(scim, registry, stack):
    user = create(scim)
    register(registry, stack, "ci-bot")
    response = scim.delete(f"/Users/{user['id']}")
    assert response.status_code == 204 and response.content == b""
    assert [a.status for a in registry.agents()] == ["revoked"]
    scim_error(scim.delete(f"/Users/{user['id']}"), 404)
    assert scim.get("/Users", params={"filter": f'userName eq "{ALICE}"'}).json()["totalResults"] == 0
    assert len(admin_events("revoke_owner")) == 1
    assert len(admin_events("scim_delete_user")) == 1


def test_reactivation_lets_the_owner_register_again_but_revoked_agents_stay_revoked(scim, registry, stack):
    user = create(scim)
    register(registry, stack, "ci-bot")
    url = f"/Users/{user['id']}"
    scim.patch(url, json={"Operations": [{"op": "replace", "value": {"active": False}}]})
    response = scim.patch(url, json={"Operations": [{"op": "Replace", "path": "active", "value": "True"}]})
    assert response.status_code == 200 and response.json()["active"] is True
    register(registry, stack, "new-bot")
    assert {a.subject: a.status for a in registry.agents()} == {"ci-bot": "revoked", "new-bot": "active"}
    events = admin_events("reinstate_owner")
    assert len(events) == 1 and events[0]["result"] == {"reinstated": True}


def test_scim_token_never_reaches_the_recordings(scim, stack):
    create(scim)
    raw = json.dumps(recorded_events())
    assert stack.scim_token() not in raw


def test_provisioning_a_deleted_user_again_reinstates_the_owner_not_the_agents(scim, registry, stack):
    user = create(scim)
    register(registry, stack, "ci-bot")
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    again = create(scim)
    assert again["id"] != user["id"] and again["active"] is True
    state = registry.owner("alice@example.com")
    assert state is not None and not state.revoked
    assert [a.status for a in registry.agents()] == ["revoked"]
    assert [e["result"] for e in admin_events("reinstate_owner")] == [{"reinstated": True}]
