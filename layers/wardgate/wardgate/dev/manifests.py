"""``wardgate dev``: recording manifests signed as on AWS, from the bucket's own notifications.

On AWS the bucket sends "Object Created" events to EventBridge, whose rule runs
``RecordingManifestFunction``. moto cannot run a Lambda function, but it does deliver a bucket's
notifications to an SQS queue, synchronously, as Firehose's delivery writes each object. So local
mode points the bucket's ``ObjectCreated`` notifications for the recordings prefix at a queue and
a thread hands each message to the very function the Lambda runs (``integrity.sign_delivered``),
signing with the local key (``.wardgate/recording-manifest-key.pem``, made at first start). The
hook is the narrowest there is: nothing in the recording path knows manifests exist.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from wardgate import aws
from wardgate.auditing.integrity import sign_delivered
from wardgate.auditing.signing import ManifestSigner
from wardgate.observability import logger

QUEUE_NAME = "wardgate-recording-manifests"


class LocalManifestSigner:
    def __init__(self, bucket: str, prefix: str, signer: ManifestSigner, interval: float = 0.2) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.signer = signer
        self.interval = interval
        self.queue_url = ""
        self._stop = threading.Event()
        self._busy = threading.Lock()  # held while a batch is signed: drain() waits for it
        self.thread = threading.Thread(target=self._run, name="wardgate-manifests", daemon=True)

    def start(self) -> LocalManifestSigner:
        sqs = aws.client("sqs")
        self.queue_url = sqs.create_queue(QueueName=QUEUE_NAME)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        aws.client("s3").put_bucket_notification_configuration(
            Bucket=self.bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "Id": "recording-manifests",
                        "QueueArn": arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": self.prefix}]}},
                    }
                ]
            },
        )
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)

    def drain(self, timeout: float = 10.0) -> None:
        """Sign everything delivered so far, now (tests, and ``verify`` right after traffic)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._busy:
                if not self._sign_batch():
                    return
        raise TimeoutError("recording manifests were still being signed after the timeout")

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._busy:
                try:
                    signed = self._sign_batch()
                except Exception as exc:  # the loop outlives one bad message, as the Lambda's retries would
                    logger.warning("manifest signing failed", extra={"error": type(exc).__name__})
                    signed = False
            if not signed:
                self._stop.wait(self.interval)

    def _sign_batch(self) -> bool:
        """One receive from the queue; whether there was anything. A message is deleted only once
        its objects are signed (else it comes back, like a failed Lambda invocation)."""
        sqs = aws.client("sqs")
        messages = sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30
        ).get("Messages", [])
        for message in messages:
            event: dict[str, Any] = json.loads(message["Body"])
            sign_delivered(event, self.signer, self.prefix)
            sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return bool(messages)
