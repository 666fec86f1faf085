"""The kill switch end to end in local mode: CLI, admin API, SCIM offboarding, the gateway refusing."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.helpers import index_entries, recorded_events
from wardgate import cli
from wardgate.dev.stack import DEV_POLICY


def agent_token(stack, subject: str = "ci-bot", **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.issuer.mint(subject, ['ci'], claims=claims)}"}


def cli_register(subject: str, owner: str, *extra: str) -> None:
    argv = ["agents", "register", "--subject", subject, "--owner", owner, "--purpose", "CI", "--by", "root"]
    assert cli.main([*argv, *extra]) == 0


def test_offboarding_through_scim_stops_the_agent_with_a_still_valid_token(stack, client, capsys):
    cli_register("ci-bot", "alice@example.com", "--connection", "demo", "--issuer", stack.issuer.issuer)
    capsys.readouterr()
    scim = httpx.Client(
        base_url=f"{stack.url}/scim/v2", headers={"Authorization": f"Bearer {stack.scim_token()}"}, timeout=10
    )
    user = scim.post("/Users", json={"userName": "alice@example.com", "active": True}).json()
    headers = agent_token(stack, owner="someone-else@example.com")  # valid for 15 minutes
    works = client.get("/http/demo/v1/items", headers=headers)
    assert works.status_code == 200, works.text

    deactivate = {"Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
    response = scim.patch(f"/Users/{user['id']}", json=deactivate)
    assert response.status_code == 200
    revoked_at = time.monotonic()
    statuses = []
    while True:  # the gateway container's cache decides how long the old answer lives
        refused = client.get("/http/demo/v1/items", headers=headers)
        statuses.append(refused.status_code)
        if refused.status_code != 200 or time.monotonic() - revoked_at > 5:
            break
        time.sleep(0.01)
    propagation = time.monotonic() - revoked_at
    print(f"revocation propagation: {propagation * 1000:.0f} ms over {len(statuses)} requests")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] in ("owner_revoked", "agent_revoked")
    assert propagation < 1.0  # local target; on AWS the cache TTL (0.5 s) bounds it the same way

    # The refusal is recorded with the identity the registry established, the revocation with who and why.
    refusals = [e for e in recorded_events() if e["event"] == "refused"]
    assert refusals[-1]["identity"]["subject"] == "ci-bot"
    assert "alice@example.com" in refusals[-1]["error"]["message"]
    assert refusals[-1]["error"]["code"] in ("owner_revoked", "agent_revoked")
    revocation = next(e for e in recorded_events() if e["event"] == "admin" and e["action"] == "revoke_owner")
    assert revocation["actor"] == {"subject": "scim", "kind": "scim"}
    assert revocation["target"] == {"owner": "alice@example.com"}
    assert [e for e in index_entries() if e["connection"] == "_admin" and e["method"] == "revoke_owner"]

    assert cli.main(["agents", "scim-token"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == stack.scim_token()
    assert cli.main(["agents", "ls"]) == 0
    listing = capsys.readouterr().out
    row = next(line for line in listing.splitlines() if line.startswith("ci-bot"))
    assert "alice@example.com" in row and "revoked" in row
    assert time.strftime("%Y-%m-%d", time.gmtime()) in row  # last use: the request that worked


def test_registration_required_refuses_unregistered_agents_and_limits_connections(stack, client):
    stack.apply_policy({**DEV_POLICY, "settings": {"agents": {"registration": "required"}}})
    time.sleep(0)  # the gateway's policy cache is per container; a new stack starts cold
    refused = client.get("/http/demo/x", headers=agent_token(stack, "stranger"))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "agent_not_registered"
    assert "not a registered agent" in refused.json()["error"]["message"]

    cli_register("elsewhere", "bob@example.com", "--connection", "billing", "--issuer", stack.issuer.issuer)
    wrong = client.get("/http/demo/x", headers=agent_token(stack, "elsewhere"))
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "agent_connection_not_allowed"


def test_an_unreadable_registry_refuses_with_503(stack, client):
    import boto3

    boto3.client("dynamodb").delete_table(TableName=stack.template.local_name("AgentsTable"))
    response = client.get("/http/demo/x", headers=agent_token(stack))
    assert response.status_code == 503 and response.json()["error"]["code"] == "registry_unavailable"
    assert not any(e["event"] == "request" for e in recorded_events())  # nothing was forwarded


def test_cli_revoke_disable_and_their_errors(stack, client, capsys):
    issuer = ["--issuer", stack.issuer.issuer]
    cli_register("ci-bot", "alice@example.com", "--connection", "*", *issuer)
    cli_register("nightly", "alice@example.com", "--connection", "demo", *issuer, "--expires-in-days", "30")
    cli_register("bobs", "bob@example.com", "--connection", "demo", *issuer)
    capsys.readouterr()

    assert cli.main(["revoke", "--subject", "ghost", "--reason", "x"]) == 1
    assert "no agent registered as 'ghost'" in capsys.readouterr().err
    assert cli.main(["agents", "disable", "--subject", "bobs", "--reason", "holiday", "--by", "carol"]) == 0
    assert json.loads(capsys.readouterr().out)["agents"] == [
        {"issuer": stack.issuer.issuer, "subject": "bobs"}
    ]
    assert (
        client.get("/http/demo/x", headers=agent_token(stack, "bobs")).json()["error"]["code"]
        == "agent_revoked"
    )

    assert (
        cli.main(["revoke", "--owner", "ALICE@example.com", "--reason", "offboarded", "--by", "carol"]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert sorted(a["subject"] for a in result["agents"]) == ["ci-bot", "nightly"]
    for subject in ("ci-bot", "nightly"):
        response = client.get("/http/demo/x", headers=agent_token(stack, subject))
        assert response.status_code == 403

    assert cli.main(["revoke", "--owner", "nobody@example.com", "--reason", "precaution"]) == 0
    assert "owns no registered agent" in capsys.readouterr().err
    nobody = ["--subject", "x", "--owner", "nobody@example.com", "--purpose", "p", "--connection", "demo"]
    assert cli.main(["agents", "register", *nobody, *issuer]) == 1
    assert "has been revoked" in capsys.readouterr().err

    assert cli.main(["agents", "ls", "--json"]) == 0
    agents = {a["subject"]: a for a in json.loads(capsys.readouterr().out)}
    assert agents["bobs"]["status"] == "disabled" and agents["bobs"]["status_by"] == "carol"
    assert agents["ci-bot"]["status"] == "revoked" and agents["ci-bot"]["owner_revoked"] is True
    assert agents["nightly"]["expires_at"] > time.time() + 29 * 86400

    audit = [e for e in recorded_events() if e["event"] == "admin"]
    assert [e["action"] for e in audit] == [
        "register_agent",
        "register_agent",
        "register_agent",
        "revoke_subject",  # the unknown one: refused, and recorded as such
        "disable_agent",
        "revoke_owner",
        "revoke_owner",
        "register_agent",  # refused: the owner is revoked
    ]
    assert audit[3]["error"]["code"] == "unknown_agent" and audit[3]["status"] == 404
    assert audit[5]["actor"] == {"subject": "carol", "kind": "cli"} and audit[5]["reason"] == "offboarded"
    assert audit[7]["error"]["code"] == "owner_revoked"


@pytest.fixture
def admin_api(stack):
    headers = {"Authorization": f"Bearer {stack.issuer.mint('secops-1', ['wardgate-admins'])}"}
    with httpx.Client(base_url=f"{stack.url}/admin", headers=headers, timeout=10) as http:
        yield http


def test_admin_api_is_for_the_admin_group_only(stack, client):
    response = client.get("/admin/agents", headers=agent_token(stack, "ci-bot"))
    assert response.status_code == 403 and response.json()["error"]["code"] == "not_an_admin"
    assert client.get("/admin/agents").status_code == 401
    refusals = [e for e in recorded_events() if e["event"] == "admin"]
    assert [(e["status"], e["error"]["code"]) for e in refusals] == [
        (403, "not_an_admin"),
        (401, "missing_token"),
    ]


def test_admin_api_registers_lists_disables_and_revokes(stack, admin_api, client):
    agent = {
        "issuer": stack.issuer.issuer,
        "subject": "ci-bot",
        "owner": "alice@example.com",
        "purpose": "nightly reports",
        "connections": ["demo"],
        "owner_groups": ["platform"],
        "expires_in_days": 7,
    }
    created = admin_api.post("/agents", json=agent)
    assert created.status_code == 201, created.text
    assert created.json()["agent"]["created_by"] == "secops-1"
    assert admin_api.post("/agents", json=agent).json()["error"]["code"] == "agent_exists"
    assert admin_api.post("/agents", json={**agent, "connections": "demo"}).status_code == 400
    assert admin_api.post("/agents", content=b"[").json()["error"]["code"] == "invalid_request"
    listed = admin_api.get("/agents", params={"owner": "alice@example.com"}).json()["agents"]
    assert [a["subject"] for a in listed] == ["ci-bot"]
    assert client.get("/http/demo/x", headers=agent_token(stack)).status_code == 200

    missing_reason = admin_api.post("/revocations", json={"owner": "alice@example.com"})
    assert missing_reason.status_code == 400 and missing_reason.json()["error"]["code"] == "reason_required"
    both = admin_api.post("/revocations", json={"owner": "a@example.com", "subject": "s", "reason": "r"})
    assert both.status_code == 400
    unknown = admin_api.post("/revocations", json={"subject": "ghost", "reason": "r"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_agent"
    assert admin_api.post("/nowhere", json={}).status_code == 404

    revoked = admin_api.post("/revocations", json={"subject": "ci-bot", "reason": "leaked token"})
    assert revoked.status_code == 200
    assert revoked.json()["revocation"]["by"] == "secops-1"
    time.sleep(0.6)  # the gateway's cache TTL
    refused = client.get("/http/demo/x", headers=agent_token(stack))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "agent_revoked"

    # A revoked admin is refused on the admin API too.
    admin_api.post("/revocations", json={"owner": "secops-1", "reason": "left"})
    token = stack.issuer.mint("secops-2", ["wardgate-admins"], claims={"owner": "secops-1"})
    response = client.get("/admin/agents", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "owner_revoked"


def test_a_revoked_agent_is_refused_on_the_kubernetes_route_too(stack, client):
    cli_register("k8s-bot", "dana@example.com", "--connection", "*", "--issuer", stack.issuer.issuer)
    assert cli.main(["revoke", "--subject", "k8s-bot", "--reason", "compromised"]) == 0
    response = client.get(
        "/k8s/cluster/api/v1/namespaces/default/pods", headers=agent_token(stack, "k8s-bot")
    )
    assert response.status_code == 403 and response.json()["reason"] == "Forbidden"  # a meta/v1 Status
    assert response.json()["details"]["causes"][0]["reason"] == "agent_revoked"
