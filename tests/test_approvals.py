"""The approval flow end to end over loopback: agent, gateway, moto's Step Functions, notifier, outbox,
approver pages. Every bad input gets a clear page or JSON error and approves nothing."""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import time
from typing import Any

import httpx
import pytest

from tests.approval_helpers import form_of, link_in, mail_to, press, wait_for_mail, wait_status
from tests.helpers import apply_policy_now, index_entries, raw_recordings, recorded_events, register_agent
from wardgate import cli
from wardgate.dev.kube.catalog import resource
from wardgate.dev.stack import DEV_POLICY, DevStack

REFUND = {"amount": 900, "order": "o-17"}


def hold(client: httpx.Client, auth: dict[str, str], body: dict[str, Any] = REFUND) -> dict[str, Any]:
    response = client.post("/http/demo/v1/refunds", headers=auth, json=body)
    assert response.status_code == 202, response.text
    held: dict[str, Any] = response.json()
    return held


def upstream_calls(stack: DevStack, path: str = "/v1/refunds") -> int:
    assert stack.upstream is not None
    return sum(1 for r in stack.upstream.requests if r["path"] == path)


def policy_with(rule_changes: dict[str, Any], approval: dict[str, Any] | None = None) -> dict[str, Any]:
    document = copy.deepcopy(DEV_POLICY)
    rule = next(r for r in document["rules"] if r["name"] == "refunds need a human")
    rule.update(rule_changes)
    if approval:
        document["settings"]["approval"].update(approval)
    return document


def desk() -> Any:
    from wardgate import runtime

    return runtime.approval_desk()


def test_an_operation_needing_approval_is_held_with_202(client, auth, stack):
    held = hold(client, auth)
    assert set(held) >= {"request_id", "poll_url", "reason", "expires_at", "status"}
    assert held["poll_url"] == f"{stack.url}/requests/{held['request_id']}"
    assert "refunds are paid out for real" in held["reason"] and "demo-approvers" in held["reason"]
    assert held["status"] == "pending" and held["mode"] == "one-time"
    assert upstream_calls(stack) == 0  # nothing forwarded
    state = client.get(held["poll_url"], headers=auth).json()
    assert state["status"] == "pending" and state["operation"] == "POST /v1/refunds"
    assert state["rule"] == "refunds need a human" and state["quorum"] == 1
    record_id = client.post("/http/demo/v1/refunds", headers=auth, json=REFUND).headers[
        "x-wardgate-record-id"
    ]
    events = [e for e in recorded_events() if e["record_id"] == record_id]
    held_event = next(e for e in events if e["event"] == "held")
    assert held_event["response"]["status"] == 202 and held_event["decision"]["outcome"] == "require_approval"
    assert held_event["response"]["approval"]["mode"] == "one-time"
    assert next(e["approval"]["step"] for e in events if e["event"] == "approval") == "requested"


def test_only_the_requester_may_poll(client, auth, stack):
    held = hold(client, auth)
    other = {"Authorization": f"Bearer {stack.issuer.mint('agent-2', ['ci'])}"}
    refused = client.get(held["poll_url"], headers=other)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "unknown_request"
    assert client.get(held["poll_url"]).status_code == 401
    assert client.get("/requests/nope", headers=auth).json()["error"]["code"] == "unknown_request"
    assert client.get(held["poll_url"] + "?wait=soon", headers=auth).json()["error"]["code"] == "bad_query"


def test_one_time_approval_runs_the_operation_exactly_once(client, auth, token, stack):
    held = hold(client, auth)
    mails = wait_for_mail(client, 2)
    assert sorted(m["to"][0] for m in mails) == ["lead@example.com", "oncall@example.com"]
    mail = mail_to(mails, "oncall@example.com")
    for fact in (
        "agent-1",
        "demo (http)",
        "POST /v1/refunds",
        "refunds need a human",
        "Expires",
        '\\"amount\\":900',
    ):
        assert fact in mail["text"], fact
    assert "Review and decide" in mail["html"]
    decided = press(client, link_in(mail, stack))
    assert decided.status_code == 200 and "You approved it" in decided.text

    result = client.get(held["poll_url"] + "?wait=10", headers=auth).json()
    assert result["status"] == "executed", result
    assert result["decided_by"] == "oncall@example.com" and result["decided_at"]
    assert result["result"]["status"] == 200
    seen = json.loads(result["result"]["body"])
    assert seen["credential"] == "accepted" and json.loads(seen["body"]) == REFUND
    # Retries and double polls read the same result; the upstream saw the refund once.
    for _ in range(3):
        assert client.get(held["poll_url"], headers=auth).json()["result"] == result["result"]
    assert upstream_calls(stack) == 1

    events = [e for e in recorded_events() if e["record_id"] == result_record(held, client, auth)]
    kinds = [e["event"] if e["event"] != "approval" else e["approval"]["step"] for e in events]
    for step in (
        "held",
        "requested",
        "notified",
        "viewed",
        "approved",
        "decided_approved",
        "executing",
        "request",
        "response",
        "executed",
    ):
        assert step in kinds, (step, kinds)
    assert kinds.index("decided_approved") < kinds.index("request") < kinds.index("executed")
    approved = next(e for e in events if e["event"] == "approval" and e["approval"]["step"] == "approved")
    assert approved["approval"]["by"] == "oncall@example.com"
    forwarded = next(e for e in events if e["event"] == "request")
    assert forwarded["decision"]["approved_by"] == ["oncall@example.com"]
    [entry] = [e for e in index_entries() if e["record_id"] == forwarded["record_id"]]
    assert entry["status"] == "200"  # the index entry ends with the executed outcome
    # The task token is nowhere: not in the recordings, the mails, nor the agent's answers.
    tokens = desk().store.task_token(held["request_id"])
    assert tokens and tokens.encode() not in raw_recordings()
    assert tokens not in json.dumps(wait_for_mail(client, 2)) and tokens not in json.dumps(result)
    assert token.encode() not in raw_recordings()


def result_record(held: dict[str, Any], client: httpx.Client, auth: dict[str, str]) -> str:
    approval = desk().store.get(held["request_id"])
    assert approval is not None
    return str(approval.record_id)


def test_denied_says_who_and_when_and_runs_nothing(client, auth, stack):
    held = hold(client, auth)
    link = link_in(mail_to(wait_for_mail(client, 2), "lead@example.com"), stack)
    denied = press(client, link, "deny")
    assert "You denied it" in denied.text
    state = wait_status(client, held["poll_url"], auth, "denied")
    assert state["decided_by"] == "lead@example.com" and state["decided_at"]
    # The other approver's link now shows that nothing is left to decide.
    late = client.get(link_in(mail_to(wait_for_mail(client, 2), "oncall@example.com"), stack))
    assert late.status_code == 409 and "denied" in late.text
    assert upstream_calls(stack) == 0


def test_window_approval_lets_the_agent_retry(client, auth, stack):
    apply_policy_now(
        stack, policy_with({"approval": {"mode": "window", "minutes": 600}}, {"max_window_minutes": 30})
    )
    held = hold(client, auth)
    assert held["mode"] == "window"
    press(client, link_in(mail_to(wait_for_mail(client, 2), "oncall@example.com"), stack))
    state = wait_status(client, held["poll_url"], auth, "approved")
    assert "result" not in state and upstream_calls(stack) == 0  # window mode runs nothing by itself
    granted_for = time.mktime(
        time.strptime(state["grant_expires_at"][:19], "%Y-%m-%dT%H:%M:%S")
    ) - time.mktime(time.strptime(state["decided_at"][:19], "%Y-%m-%dT%H:%M:%S"))
    # capped by settings.approval.max_window_minutes (the two times are taken in whole seconds, apart)
    assert 30 * 60 <= granted_for <= 30 * 60 + 1
    retried = client.post("/http/demo/v1/refunds", headers=auth, json=REFUND)
    assert retried.status_code == 200 and retried.json()["credential"] == "accepted"
    again = client.post("/http/demo/v1/refunds", headers=auth, json={"amount": 10})
    assert again.status_code == 200
    record = next(e for e in recorded_events() if e["record_id"] == retried.headers["x-wardgate-record-id"])
    assert record["decision"]["approval_grant"] == held["request_id"]
    # The grant is this identity's: another agent is still held.
    other = {"Authorization": f"Bearer {stack.issuer.mint('agent-2', ['ci'])}"}
    assert client.post("/http/demo/v1/refunds", headers=other, json=REFUND).status_code == 202


def test_quorum_needs_distinct_approvers(client, auth, stack):
    apply_policy_now(
        stack,
        policy_with({"approvers": ["demo-approvers", "third@example.com"]}, {"quorum": 2}),
    )
    held = hold(client, auth)
    mails = wait_for_mail(client, 3)
    press(client, link_in(mail_to(mails, "oncall@example.com"), stack))
    assert client.get(held["poll_url"], headers=auth).json()["status"] == "pending"
    page = press(client, link_in(mail_to(mails, "third@example.com"), stack))
    assert "You approved it" in page.text
    assert client.get(held["poll_url"] + "?wait=10", headers=auth).json()["status"] == "executed"
    assert upstream_calls(stack) == 1


def test_requester_and_owner_never_approve_their_own_request(client, stack):
    owner_policy = policy_with({"approvers": ["alice@example.com", "agent-9@example.com"]})
    apply_policy_now(stack, owner_policy)
    register_agent(stack, "agent-9@example.com", "alice@example.com")
    auth9 = {"Authorization": f"Bearer {stack.issuer.mint('agent-9@example.com', ['ci'])}"}
    refused = client.post("/http/demo/v1/refunds", headers=auth9, json=REFUND)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "approval_impossible"
    assert "requester and its owner" in refused.json()["error"]["message"]
    # With another approver, the owner gets no mail and no link.
    apply_policy_now(stack, policy_with({"approvers": ["alice@example.com", "bob@example.com"]}))
    hold(client, auth9)
    assert [m["to"] for m in wait_for_mail(client, 1)] == [["bob@example.com"]]


# ---------------------------------------------------------------------------- bad input


@pytest.fixture
def held_with_link(client, auth, stack) -> tuple[dict[str, Any], str]:
    held = hold(client, auth)
    return held, link_in(mail_to(wait_for_mail(client, 2), "oncall@example.com"), stack)


def refusal(response: httpx.Response) -> str:
    assert "Nothing was decided" in response.text, response.text
    code = response.text.split('data-code="')[1].split('"')[0]
    return code


def test_forged_and_altered_links(client, held_with_link):
    _, link = held_with_link
    base, token = link.split("?t=")
    claims, signature = token.split(".")
    forged = client.get(f"{base}?t={claims}.{'0' * 64}")
    assert forged.status_code == 403 and refusal(forged) == "bad_signature"
    altered = client.get(f"{base}?t={claims[:-2]}AA.{signature}")
    assert altered.status_code == 403 and refusal(altered) in ("bad_signature", "bad_link")
    assert refusal(client.get(base)) == "bad_link"
    assert client.get(f"{base}?t={token}").status_code == 200  # the untouched link still works


def test_cross_request_link(client, auth, stack, held_with_link):
    _, link = held_with_link
    second = hold(client, auth)
    token = link.split("?t=")[1]
    crossed = client.get(f"{stack.url}/approvals/{second['request_id']}?t={token}")
    assert crossed.status_code == 403 and refusal(crossed) == "bad_signature"
    unknown = client.get(f"{stack.url}/approvals/{'f' * 32}?t={token}")
    assert unknown.status_code == 404 and refusal(unknown) == "unknown_request"


def test_a_post_without_the_page_token_decides_nothing(client, auth, stack, held_with_link):
    held, link = held_with_link
    base, token = link.split("?t=")
    bare = client.post(base, data={"t": token.replace("%3D", "="), "decision": "approve"})
    assert bare.status_code == 403 and refusal(bare) == "missing_page_token"
    forged = client.post(base, data={"t": token, "decision": "approve", "page": "1.abc"})
    assert refusal(forged) in ("bad_page_token", "missing_page_token")
    as_json = client.post(base, json={"t": token, "decision": "approve"})
    assert as_json.status_code == 415
    assert client.get(held["poll_url"], headers=auth).json()["status"] == "pending"
    assert upstream_calls(stack) == 0


def test_double_click_and_replayed_link(client, auth, stack, held_with_link):
    held, link = held_with_link
    page = client.get(link)
    fields = {**form_of(page.text), "decision": "approve"}
    first = client.post(link.split("?")[0], data=fields)
    second = client.post(link.split("?")[0], data=fields)  # the double click
    assert first.status_code == 200 and "You approved it" in first.text
    assert second.status_code == 409 and refusal(second) == "link_used"
    replay = client.get(link)  # the link opened again later
    assert replay.status_code == 409 and refusal(replay) in ("not_pending", "already_voted")
    assert client.get(held["poll_url"] + "?wait=10", headers=auth).json()["status"] == "executed"
    assert upstream_calls(stack) == 1


def test_a_scanner_that_only_follows_links_approves_nothing(client, auth, stack, held_with_link):
    held, link = held_with_link
    for _ in range(3):
        assert client.get(link).status_code == 200  # a mail scanner prefetching the link
    assert client.get(held["poll_url"], headers=auth).json()["status"] == "pending"


def test_approval_after_expiry(client, auth, stack, held_with_link):
    held, link = held_with_link
    page = client.get(link)
    approval = desk()
    later = time.time() + 3600
    approval.clock = lambda: later
    assert approval.signer is not None
    approval.signer.clock = lambda: later
    try:
        expired = client.get(link)
        assert expired.status_code == 410 and refusal(expired) == "link_expired"
        posted = client.post(link.split("?")[0], data={**form_of(page.text), "decision": "approve"})
        assert posted.status_code == 410 and refusal(posted) == "link_expired"
        state = client.get(held["poll_url"], headers=auth).json()
        assert state["status"] == "expired" and state["decided_by"] == "timeout"
    finally:
        approval.clock = time.time
        approval.signer.clock = time.time
    assert upstream_calls(stack) == 0


def test_approval_after_the_workflow_ended(client, auth, stack, held_with_link):
    held, link = held_with_link
    other = link_in(mail_to(wait_for_mail(client, 2), "lead@example.com"), stack)
    page = client.get(other)  # the second approver opened the page...
    press(client, link)  # ...then the first approved, and the workflow ended
    # Wait for the workflow's end before the late vote: moto undoes a failed transaction by restoring
    # the table as it was before it, so a vote refused while the workflow (on moto's own threads)
    # marks the request approved would erase that mark, which DynamoDB never does.
    from wardgate.approvals.store import ApprovalStore

    store, deadline = ApprovalStore(os.environ["APPROVALS_TABLE"]), time.monotonic() + 10
    while (approval := store.get(held["request_id"])) is None or approval.workflow != "ended":
        assert time.monotonic() < deadline, "the approval workflow never ended"
        time.sleep(0.02)
    late = client.post(other.split("?")[0], data={**form_of(page.text), "decision": "deny"})
    assert late.status_code == 409 and refusal(late) == "not_pending"
    assert client.get(held["poll_url"] + "?wait=10", headers=auth).json()["status"] == "executed"


def test_notifier_failure_leaves_the_request_pending_and_visible(client, auth, stack, caplog):
    from wardgate import runtime

    class BrokenSes:
        def send(self, message: Any) -> None:
            raise ConnectionError("SES is down")

    from wardgate.observability import logger

    original = runtime.mailer
    runtime.mailer = lambda: BrokenSes()  # type: ignore[assignment]
    logger.addHandler(caplog.handler)  # wardgate's logger does not propagate (Lambda would print twice)
    try:
        with caplog.at_level(logging.ERROR):
            held = hold(client, auth)
            deadline = time.monotonic() + 10
            state: dict[str, Any] = {}
            while time.monotonic() < deadline and "notification" not in state:
                state = client.get(held["poll_url"], headers=auth).json()
                time.sleep(0.05)
    finally:
        runtime.mailer = original  # type: ignore[assignment]
        logger.removeHandler(caplog.handler)
    assert state["status"] == "pending" and "failed: ConnectionError" in state["notification"]
    assert any("approval notification failed" in r.getMessage() for r in caplog.records)
    steps = [e["approval"]["step"] for e in recorded_events() if e["event"] == "approval"]
    assert "notify_failed" in steps
    assert upstream_calls(stack) == 0


def test_revocation_cancels_pending_requests(client, stack):
    register_agent(stack, "ci-bot", "alice@example.com")
    bot = {"Authorization": f"Bearer {stack.issuer.mint('ci-bot', ['ci'])}"}
    held = hold(client, bot)
    link = link_in(mail_to(wait_for_mail(client, 2), "oncall@example.com"), stack)
    page = client.get(link)
    assert cli.main(["revoke", "--owner", "alice@example.com", "--reason", "offboarded", "--by", "root"]) == 0
    approval = desk().store.get(held["request_id"])
    assert approval is not None and approval.status == "cancelled"
    assert "offboarded" in approval.ended_by
    late = client.post(link.split("?")[0], data={**form_of(page.text), "decision": "approve"})
    assert late.status_code == 409 and refusal(late) == "not_pending"
    time.sleep(0.6)  # each container caches the registry's answer for 0.5 s
    assert client.get(held["poll_url"], headers=bot).json()["error"]["code"] in (
        "owner_revoked",
        "agent_revoked",
    )
    steps = [e["approval"]["step"] for e in recorded_events() if e["event"] == "approval"]
    assert "cancelled" in steps
    assert upstream_calls(stack) == 0


def test_the_requester_can_withdraw_its_pending_request(client, auth, stack):
    held = hold(client, auth)
    link = link_in(mail_to(wait_for_mail(client, 2), "oncall@example.com"), stack)
    page = client.get(link)
    other = {"Authorization": f"Bearer {stack.issuer.mint('agent-2', ['ci'])}"}
    assert client.delete(held["poll_url"], headers=other).status_code == 404  # not theirs to withdraw

    withdrawn = client.delete(held["poll_url"], headers=auth)

    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "cancelled"
    assert "the requester" in desk().store.get(held["request_id"]).ended_by
    again = client.delete(held["poll_url"], headers=auth)
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_pending"
    late = client.post(link.split("?")[0], data={**form_of(page.text), "decision": "approve"})
    assert late.status_code == 409 and refusal(late) == "not_pending"
    assert client.get(held["poll_url"], headers=auth).json()["status"] == "cancelled"
    steps = [e["approval"]["step"] for e in recorded_events() if e["event"] == "approval"]
    assert "cancelled" in steps
    assert upstream_calls(stack) == 0


def test_a_tampered_held_operation_is_never_run(client, auth, stack, held_with_link):
    """Fail closed: a held request changed in the table after approval no longer matches its binding."""
    import boto3

    from wardgate.approvals.model import request_key

    held, link = held_with_link
    press(client, link)
    deadline = time.monotonic() + 10
    while desk().store.get(held["request_id"]).status != "approved" and time.monotonic() < deadline:
        time.sleep(0.05)
    table = desk().store.table_name
    item = boto3.client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": request_key(held["request_id"])}}
    )
    doc = json.loads(item["Item"]["doc"]["S"])
    doc["held"]["path"] = "/v1/refunds/everything"
    boto3.client("dynamodb").update_item(
        TableName=table,
        Key={"pk": {"S": request_key(held["request_id"])}},
        UpdateExpression="SET doc = :d",
        ExpressionAttributeValues={":d": {"S": json.dumps(doc)}},
    )
    refused = client.get(held["poll_url"] + "?wait=10", headers=auth)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "approval_invalid"
    assert upstream_calls(stack) == 0 and upstream_calls(stack, "/v1/refunds/everything") == 0


def test_a_kubernetes_delete_in_production_is_held_and_run_once(client, auth, stack):
    document = copy.deepcopy(DEV_POLICY)
    document["rules"].append(
        {
            "name": "deletes in prod need on-call",
            "effect": "require_approval",
            "connections": ["demo-k8s"],
            "approvers": ["oncall@example.com"],
            "message": "deleting in production pages a human first",
            "match": {"k8s": {"verbs": ["delete"], "namespaces": ["prod"]}},
        }
    )
    apply_policy_now(stack, document)
    held = client.delete(
        "/k8s/demo-k8s/api/v1/namespaces/prod/configmaps/web-config",
        headers={**auth, "accept": "application/vnd.kubernetes.protobuf,application/json"},
    )
    # kubectl cannot take a 202 (it would print "deleted"): a Status naming the request and its poll URL
    assert held.status_code == 403, held.text
    status = held.json()
    assert status["kind"] == "Status" and status["details"]["causes"][0]["reason"] == "approval_pending"
    poll_url = re.search(r"\((https?://\S+/requests/\w+)\)", held.json()["message"])
    assert poll_url, held.json()["message"]
    configmaps = resource("", "v1", "configmaps")
    assert configmaps is not None and stack.kube.store.find(configmaps, "prod", "web-config") is not None
    [mail] = wait_for_mail(client, 1)
    assert "kubectl delete configmaps web-config in namespace prod" in mail["text"]
    assert '"verb": "delete"' in mail["text"] and "demo-k8s (k8s)" in mail["text"]
    press(client, link_in(mail, stack))
    result = client.get(poll_url.group(1) + "?wait=10", headers=auth).json()
    assert result["status"] == "executed" and result["result"]["status"] == 200
    assert result["result"]["headers"]["content-type"].startswith("application/json")  # JSON only
    assert stack.kube.store.find(configmaps, "prod", "web-config") is None  # deleted, once


def test_revoking_an_agent_withdraws_its_window_grant(client, stack):
    apply_policy_now(stack, policy_with({"approval": {"mode": "window", "minutes": 10}}))
    register_agent(stack, "win-bot", "bob@example.com")
    bot = {"Authorization": f"Bearer {stack.issuer.mint('win-bot', ['ci'])}"}
    held = hold(client, bot)
    press(client, link_in(mail_to(wait_for_mail(client, 2), "oncall@example.com"), stack))
    wait_status(client, held["poll_url"], bot, "approved")
    assert client.post("/http/demo/v1/refunds", headers=bot, json=REFUND).status_code == 200
    from wardgate.approvals.model import grant_key

    assert cli.main(["revoke", "--subject", "win-bot", "--reason", "token leaked", "--by", "root"]) == 0
    key = grant_key(stack.issuer.issuer, "win-bot", "demo", "refunds need a human")
    assert (
        desk().store.active_grant(stack.issuer.issuer, "win-bot", "demo", "refunds need a human", 0) is None
    )
    import boto3

    item = boto3.client("dynamodb").get_item(TableName=desk().store.table_name, Key={"pk": {"S": key}})[
        "Item"
    ]
    assert item["status"]["S"] == "withdrawn" and "token leaked" in item["withdrawn_by"]["S"]


def test_the_workflow_timeout_expires_the_request_and_records_it(client, auth, stack):
    """The real definition's timeout, shortened to one second for the test (the policy's minimum is 1 min)."""
    from wardgate.approvals.workflow import Workflow

    class QuickTimeout(Workflow):
        @staticmethod
        def input_of(request: Any) -> dict[str, object]:
            return {**Workflow.input_of(request), "timeout_seconds": 1}

    approvals = desk()
    original = approvals.workflow
    assert original is not None
    approvals.workflow = QuickTimeout(original.state_machine_arn)
    try:
        held = hold(client, auth)
        link = link_in(mail_to(wait_for_mail(client, 2), "oncall@example.com"), stack)
        state = wait_status(client, held["poll_url"], auth, "expired")
    finally:
        approvals.workflow = original
    assert state["decided_by"] == "timeout"
    late = client.get(link)
    assert late.status_code == 409 and refusal(late) == "not_pending" and "expired" in late.text
    deadline = time.monotonic() + 10
    steps: list[str] = []
    while "expired" not in steps and time.monotonic() < deadline:
        steps = [
            e["approval"]["step"] for e in recorded_events() if e.get("request_id") == held["request_id"]
        ]
        time.sleep(0.05)
    assert steps.count("expired") == 1 and steps[0] == "requested"
    assert upstream_calls(stack) == 0
