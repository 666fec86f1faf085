"""statemachines/approval.asl.json executed by moto's Step Functions interpreter (not a re-implementation).

The definition is loaded through the same template reader local mode uses, with its
``DefinitionSubstitutions`` applied; its DynamoDB and SQS service integrations run against moto.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from wardgate.approvals.model import grant_key
from wardgate.dev.stack import FAKE_AWS_ENV, SFN_INTERPRETER
from wardgate.dev.template import Template

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def aws(restore_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for key, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(key, value)
    with mock_aws(config=SFN_INTERPRETER):
        template = Template(ROOT / "template.yaml")
        template.provision()
        table = str(template.resolve({"Ref": "ApprovalsTable"}, {}))
        yield {
            "table": table,
            "queue": str(template.resolve({"Ref": "ApprovalNotifyQueue"}, {})),
            "machine": str(template.resolve({"Ref": "ApprovalStateMachine"}, {})),
            "definition": template.state_machine_definition("ApprovalStateMachine"),
            "ddb": boto3.client("dynamodb"),
            "sqs": boto3.client("sqs"),
            "sfn": boto3.client("stepfunctions"),
        }


def start(
    aws: dict[str, Any], request_id: str, timeout: int = 30, mode: str = "one-time", decided: str = ""
) -> str:
    aws["ddb"].put_item(
        TableName=aws["table"],
        Item={
            "pk": {"S": f"req#{request_id}"},
            "kind": {"S": "request"},
            "status": {"S": "pending"},
            "decided": {"S": decided},
        },
    )
    execution_input = {
        "pk": f"req#{request_id}",
        "request_id": request_id,
        "timeout_seconds": timeout,
        "mode": mode,
        "grant_pk": grant_key("iss", "agent-1", "demo", "rule"),
        "issuer": "iss",
        "subject": "agent-1",
        "connection": "demo",
        "rule": "rule",
    }
    return str(
        aws["sfn"].start_execution(
            stateMachineArn=aws["machine"], name=f"approval-{request_id}", input=json.dumps(execution_input)
        )["executionArn"]
    )


def message_for(aws: dict[str, Any], request_id: str, key: str) -> dict[str, Any]:
    """The next message of the notifier's queue about ``request_id`` that has ``key``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for message in (
            aws["sqs"].receive_message(QueueUrl=aws["queue"], MaxNumberOfMessages=10).get("Messages", [])
        ):
            body: dict[str, Any] = json.loads(message["Body"])
            aws["sqs"].delete_message(QueueUrl=aws["queue"], ReceiptHandle=message["ReceiptHandle"])
            if body["request_id"] == request_id and key in body:
                return body
        time.sleep(0.05)
    raise AssertionError(f"the workflow sent no message with {key!r}")


def task_token(aws: dict[str, Any], request_id: str) -> str:
    return str(message_for(aws, request_id, "task_token")["task_token"])


def finished(aws: dict[str, Any], execution: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described: dict[str, Any] = aws["sfn"].describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.05)
    raise AssertionError("the execution did not finish")


def item(aws: dict[str, Any], key: str) -> dict[str, str]:
    found = aws["ddb"].get_item(TableName=aws["table"], Key={"pk": {"S": key}}).get("Item") or {}
    return {k: next(iter(v.values())) for k, v in found.items()}


def test_the_definition_is_the_templates_with_substitutions(aws):
    definition = json.loads(aws["definition"])
    assert "${" not in aws["definition"]
    notify = definition["States"]["NotifyAndWait"]
    assert notify["Resource"] == "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
    assert notify["Parameters"]["QueueUrl"] == aws["queue"]
    assert notify["TimeoutSecondsPath"] == "$.timeout_seconds"
    assert "task_token.$" in notify["Parameters"]["MessageBody"]


def test_pending_then_approved(aws):
    execution = start(aws, "r1", decided="approved")
    token = task_token(aws, "r1")
    waiting = item(aws, "req#r1")
    assert waiting["status"] == "pending" and waiting["workflow"] == "waiting"
    assert waiting["execution_id"] == execution
    aws["sfn"].send_task_success(
        taskToken=token, output=json.dumps({"outcome": "approved", "grant_expires_at": "0"})
    )
    assert finished(aws, execution)["status"] == "SUCCEEDED"
    done = item(aws, "req#r1")
    assert done["status"] == "approved" and done["workflow"] == "ended" and done["ended_at"]
    assert item(aws, grant_key("iss", "agent-1", "demo", "rule")) == {}  # one-time: no grant


def test_window_approval_writes_the_grant(aws):
    execution = start(aws, "r2", mode="window", decided="approved")
    token = task_token(aws, "r2")
    aws["sfn"].send_task_success(
        taskToken=token, output=json.dumps({"outcome": "approved", "grant_expires_at": "1999999999"})
    )
    assert finished(aws, execution)["status"] == "SUCCEEDED"
    grant = item(aws, grant_key("iss", "agent-1", "demo", "rule"))
    assert grant["status"] == "active" and grant["expires_at"] == "1999999999" and grant["request_id"] == "r2"
    assert item(aws, "req#r2")["status"] == "approved"


def test_an_approval_the_votes_did_not_decide_is_not_recorded(aws):
    """Fail closed: the workflow marks approved only what the decision endpoint recorded as decided."""
    execution = start(aws, "r3", decided="")
    aws["sfn"].send_task_success(
        taskToken=task_token(aws, "r3"), output=json.dumps({"outcome": "approved", "grant_expires_at": "0"})
    )
    finished(aws, execution)
    assert item(aws, "req#r3")["status"] == "pending"


@pytest.mark.parametrize("outcome", ["denied", "cancelled"])
def test_denied_and_cancelled(aws, outcome):
    execution = start(aws, f"r-{outcome}")
    aws["sfn"].send_task_success(
        taskToken=task_token(aws, f"r-{outcome}"),
        output=json.dumps({"outcome": outcome, "grant_expires_at": "0"}),
    )
    assert finished(aws, execution)["status"] == "SUCCEEDED"
    assert item(aws, f"req#r-{outcome}")["status"] == outcome


def test_an_unknown_outcome_fails_the_workflow_and_approves_nothing(aws):
    execution = start(aws, "r4", decided="approved")
    aws["sfn"].send_task_success(
        taskToken=task_token(aws, "r4"), output=json.dumps({"outcome": "maybe", "grant_expires_at": "0"})
    )
    assert finished(aws, execution)["status"] == "FAILED"
    state = item(aws, "req#r4")
    assert state["status"] == "pending" and state["workflow"] == "failed"


def test_the_timeout_expires_the_request(aws):
    execution = start(aws, "r5", timeout=1)
    task_token(aws, "r5")  # notified, nobody answers
    assert finished(aws, execution)["status"] == "SUCCEEDED"
    assert item(aws, "req#r5")["status"] == "expired"
    assert message_for(aws, "r5", "event") == {"request_id": "r5", "event": "expired"}  # for the recording


def test_a_request_decided_meanwhile_is_left_alone(aws):
    """The request was cancelled (revocation) while the workflow waited: the timeout does not undo it."""
    execution = start(aws, "r6", timeout=1)
    task_token(aws, "r6")
    aws["ddb"].update_item(
        TableName=aws["table"],
        Key={"pk": {"S": "req#r6"}},
        UpdateExpression="SET #s = :c",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":c": {"S": "cancelled"}},
    )
    assert finished(aws, execution)["status"] == "SUCCEEDED"
    assert item(aws, "req#r6")["status"] == "cancelled"
