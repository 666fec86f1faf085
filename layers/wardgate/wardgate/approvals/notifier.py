"""The notifier: consumes the workflow's SQS messages (``sqs:sendMessage.waitForTaskToken``).

On AWS an SQS event source mapping invokes ``handle_sqs_event``; in ``wardgate dev`` a thread
polls the queue the same way (``LocalNotifier``). A message whose mail cannot be sent is reported
as a batch item failure, so SQS retries it (then its dead-letter queue); the request stays pending
and says so at its poll URL, and expires at its deadline if nobody could be told.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from wardgate import aws
from wardgate.approvals.mail import Mailer
from wardgate.approvals.service import ApprovalDesk
from wardgate.observability import logger


def handle_message(desk: ApprovalDesk, mailer: Mailer, body: str) -> None:
    message = json.loads(body)
    if message.get("event") == "expired":  # the workflow's timeout ended it: append that to the recording
        desk.record_expiry(str(message["request_id"]))
        return
    desk.notify(str(message["request_id"]), str(message["task_token"]), mailer)


def handle_sqs_event(desk: ApprovalDesk, mailer: Mailer, event: dict[str, Any]) -> dict[str, Any]:
    failures = []
    for record in event.get("Records") or []:
        try:
            handle_message(desk, mailer, record["body"])
        except Exception as exc:  # logged without the body: it holds the task token
            logger.error(
                "notification failed",
                extra={"message_id": record.get("messageId"), "error": type(exc).__name__},
            )
            failures.append({"itemIdentifier": record.get("messageId", "")})
    return {"batchItemFailures": failures}


class LocalNotifier:
    """``wardgate dev``: what the SQS event source mapping does on AWS, in a thread."""

    def __init__(
        self, queue_url: str, desk: Callable[[], ApprovalDesk], mailer: Callable[[], Mailer]
    ) -> None:
        self.queue_url = queue_url
        self.desk = desk
        self.mailer = mailer
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="wardgate-notifier", daemon=True)

    def start(self) -> LocalNotifier:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = (
                    aws.client("sqs")
                    .receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
                    .get("Messages", [])
                )
            except Exception as exc:
                logger.warning("notifier cannot read its queue", extra={"error": type(exc).__name__})
                messages = []
            for message in messages:
                event = {"Records": [{"messageId": message["MessageId"], "body": message["Body"]}]}
                result = handle_sqs_event(self.desk(), self.mailer(), event)
                if not result["batchItemFailures"]:
                    aws.client("sqs").delete_message(
                        QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                    )
            if not messages:
                self._stop.wait(0.05)
