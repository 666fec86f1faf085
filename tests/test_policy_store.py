"""Applied policies in DynamoDB, the `wardgate policy` commands, and the live path deciding with them."""

from __future__ import annotations

import json
import os
import textwrap

import boto3
import pytest
import yaml

from tests.helpers import recorded_events
from wardgate import cli
from wardgate.config import Settings
from wardgate.dev.stack import DEV_POLICY
from wardgate.errors import ServiceUnavailable
from wardgate.policy.document import version_of
from wardgate.policy.store import ApplyConflict, PolicyStore


def store() -> PolicyStore:
    settings = Settings.from_env()
    return PolicyStore(settings.policies_table, settings.connections_table)


def test_local_mode_applies_its_policy_and_the_live_path_uses_it(stack, client, auth):
    assert store().current_version() == version_of(DEV_POLICY)
    response = client.delete("/http/demo/v1/users/7", headers=auth)
    assert response.status_code == 403
    error = response.json()["error"]
    assert (
        error["code"] == "denied_by_policy"
        and error["message"] == "deleting users is not allowed through wardgate"
    )
    [event] = [e for e in recorded_events() if e["record_id"] == response.headers["x-wardgate-record-id"]]
    assert event["decision"]["rule"] == "no deleting users on demo"
    assert event["decision"]["policy_version"] == version_of(DEV_POLICY)
    allowed = client.get("/http/demo/v1/users/7", headers=auth)
    events = [e for e in recorded_events() if e["record_id"] == allowed.headers["x-wardgate-record-id"]]
    assert [e["decision"]["policy_version"] for e in events] == [version_of(DEV_POLICY)] * 2


def test_apply_is_versioned_and_guarded_against_concurrent_applies(stack):
    policies = store()
    before = policies.current_version()
    stricter = {**DEV_POLICY, "rules": DEV_POLICY["rules"][1:]}
    version = policies.apply(stricter, "alice", expected_version=before)
    assert policies.current_version() == version != before
    assert policies.document(version) == stricter
    assert policies.document(before) == DEV_POLICY  # old versions stay readable
    with pytest.raises(ApplyConflict):
        policies.apply(DEV_POLICY, "bob", expected_version=before)
    assert policies.current_version() == version


def test_new_policy_takes_effect_on_the_live_path(stack, client, auth):
    assert client.get("/http/demo/x", headers=auth).status_code == 200
    policies = store()
    policies.apply({**DEV_POLICY, "rules": DEV_POLICY["rules"][1:]}, "alice", policies.current_version())
    from wardgate import runtime

    runtime.http_gateway().policies._cached = None  # what the 5 s cache expiry does
    response = client.get("/http/demo/x", headers=auth)
    assert response.status_code == 403 and "no rule allows GET /x" in response.json()["error"]["message"]


def test_unreadable_policy_table_denies_with_503(stack, client, auth):
    boto3.client("dynamodb").delete_table(TableName=os.environ["POLICIES_TABLE"])
    before = len(stack.upstream.requests)
    response = client.get("/http/demo/x", headers=auth)
    assert response.status_code == 503 and response.json()["error"]["code"] == "policy_unavailable"
    assert len(stack.upstream.requests) == before
    with pytest.raises(ServiceUnavailable):
        store().current()


POLICY_FILE = """\
connections:
  - name: demo
    kind: http
    upstream_url: {upstream}
    credential_secret: wardgate/demo
    allowed_groups: [ci]
  - name: billing
    kind: http
    upstream_url: https://billing.example.com
    credential_secret: wardgate/billing
    allowed_groups: [ci]
rules:
  - name: read only
    effect: allow
    connections: [demo]
    match:
      http: {{methods: [GET]}}
packs: []
"""


def test_cli_validate_diff_apply_export_round_trip(stack, client, auth, tmp_path, capsys):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY_FILE.format(upstream=stack.upstream.url))

    assert cli.main(["policy", "validate", str(path)]) == 0
    assert "2 connection(s), 1 rule(s)" in capsys.readouterr().out

    assert cli.main(["policy", "diff", str(path)]) == 0
    diff = capsys.readouterr().out
    assert "+ connection billing" in diff and "~ connection demo" in diff
    assert "+ rule read only" in diff and "- rule no deleting users on demo" in diff

    assert cli.main(["policy", "apply", str(path), "--by", "alice"]) == 0
    assert "applied p-" in capsys.readouterr().out
    names = {c["name"] for c in store().stored_connections()}
    assert names == {"demo", "billing"}
    from wardgate import runtime

    runtime.http_gateway().policies._cached = None
    assert client.get("/http/demo/x", headers=auth).status_code == 200
    assert client.post("/http/demo/x", headers=auth).status_code == 403

    assert cli.main(["policy", "diff", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "no changes"
    assert cli.main(["policy", "apply", str(path)]) == 0
    assert "no changes" in capsys.readouterr().out

    assert cli.main(["policy", "export"]) == 0
    exported = yaml.safe_load(capsys.readouterr().out)
    assert exported["rules"][0]["name"] == "read only"


def test_cli_apply_refuses_invalid_files_and_applies_nothing(stack, tmp_path, capsys):
    before = store().current_version()
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent("rules:\n  - name: x\n    effect: maybe\n"))
    assert cli.main(["policy", "apply", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:3: rules[0].effect:" in err and "nothing applied" in err
    assert store().current_version() == before


def test_cli_dry_run_explains_the_decision(stack, capsys):
    args = ["policy", "test", "--connection", "demo", "--identity", "agent-1", "--group", "ci"]
    assert cli.main([*args, "--http", "DELETE /v1/users/7", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["decision"]["outcome"] == "deny"
    assert result["decision"]["rule"] == "no deleting users on demo"
    assert result["operation"] == {"protocol": "http", "method": "DELETE", "path": "/v1/users/7", "query": ""}

    assert cli.main([*args, "--http", "GET /a/../b"]) == 0
    out = capsys.readouterr().out
    assert "decision:  deny" in out and "dot segments" in out

    assert cli.main([*args, "--sql", "select 1"]) == 2
    assert "is a http connection, not sql" in capsys.readouterr().err


def test_require_approval_holds_the_request_for_its_approvers(stack, client, auth):
    policies = store()
    refunds = {
        "name": "big refunds",
        "effect": "require_approval",
        "approvers": ["finance-leads"],
        "connections": ["demo"],
        "match": {"http": {"methods": ["POST"], "paths": ["/v1/payouts"], "body": {"amount": {"gt": 500}}}},
    }
    settings = {
        **DEV_POLICY["settings"],
        "approval": {
            "approvers": {
                **DEV_POLICY["settings"]["approval"]["approvers"],
                "finance-leads": ["dana@example.com"],
            }
        },
    }
    policies.apply(
        {**DEV_POLICY, "rules": [*DEV_POLICY["rules"], refunds], "settings": settings},
        "alice",
        policies.current_version(),
    )
    from wardgate import runtime

    runtime.http_gateway().policies._cached = None
    before = len(stack.upstream.requests)
    held = client.post("/http/demo/v1/payouts", headers=auth, json={"amount": 900})
    assert held.status_code == 202  # held for approval (tests/test_approvals.py has the flow)
    assert "finance-leads" in held.json()["reason"]
    assert len(stack.upstream.requests) == before
    assert client.post("/http/demo/v1/payouts", headers=auth, json={"amount": 90}).status_code == 200
    [event] = [
        e
        for e in recorded_events()
        if e["record_id"] == held.headers["x-wardgate-record-id"] and e["event"] == "held"
    ]
    assert event["decision"]["outcome"] == "require_approval" and event["decision"]["approvers"] == [
        "finance-leads"
    ]


def test_cli_reports_aws_failures_without_a_traceback(stack, capsys, monkeypatch):
    monkeypatch.setenv("POLICIES_TABLE", "no-such-table")
    assert cli.main(["policy", "export"]) == 1
    assert "AWS request failed" in capsys.readouterr().err
    args = ["policy", "test", "--connection", "demo", "--identity", "a", "--http", "GET /"]
    assert cli.main(args) == 1
    assert "policy store unavailable" in capsys.readouterr().err
