"""The approval flow's AWS adapters against moto: SES mail, the notifier's SQS batch contract."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from wardgate.approvals.mail import Message, SesMailer
from wardgate.approvals.notifier import handle_sqs_event
from wardgate.dev.stack import FAKE_AWS_ENV

MESSAGE = Message(("oncall@example.com",), "[wardgate] approve?", "text", "<p>html</p>")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield boto3.client("ses")


def test_ses_sends_text_and_html_from_the_verified_sender(aws):
    aws.verify_email_identity(EmailAddress="wardgate@example.com")
    SesMailer("wardgate@example.com").send(MESSAGE)
    assert aws.get_send_quota()["SentLast24Hours"] == 1


def test_an_unverified_sender_is_an_error_not_a_silent_success(aws):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as refused:
        SesMailer("nobody@example.com").send(MESSAGE)
    assert refused.value.response["Error"]["Code"] == "MessageRejected"


class Desk:
    def __init__(self, fail: set[str]) -> None:
        self.fail = fail
        self.notified: list[tuple[str, str]] = []
        self.expired: list[str] = []

    def notify(self, request_id: str, task_token: str, mailer: Any) -> bool:
        if request_id in self.fail:
            raise ConnectionError("SES is down")
        self.notified.append((request_id, task_token))
        return True

    def record_expiry(self, request_id: str) -> bool:
        self.expired.append(request_id)
        return True


def test_failed_messages_are_reported_for_retry_and_the_rest_are_done(caplog):
    desk = Desk(fail={"b"})
    event = {
        "Records": [
            {"messageId": "m1", "body": json.dumps({"request_id": "a", "task_token": "tok-a"})},
            {"messageId": "m2", "body": json.dumps({"request_id": "b", "task_token": "tok-b"})},
            {"messageId": "m3", "body": json.dumps({"request_id": "c", "event": "expired"})},
            {"messageId": "m4", "body": "not json"},
        ]
    }
    result = handle_sqs_event(desk, None, event)  # type: ignore[arg-type]
    assert result == {"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m4"}]}
    assert desk.notified == [("a", "tok-a")] and desk.expired == ["c"]
    assert "tok-b" not in caplog.text  # the task token is never logged
