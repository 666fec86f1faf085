"""Sending mail: SES on AWS, a local outbox folder in ``wardgate dev`` (shown at /_dev/outbox)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wardgate import aws


@dataclass(frozen=True)
class Message:
    to: tuple[str, ...]
    subject: str
    text: str
    html: str


class Mailer(Protocol):
    def send(self, message: Message) -> None: ...


class SesMailer:
    def __init__(self, sender: str) -> None:
        self.sender = sender

    def send(self, message: Message) -> None:
        aws.client("ses").send_email(
            Source=self.sender,
            Destination={"ToAddresses": list(message.to)},
            Message={
                "Subject": {"Data": message.subject, "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": message.text, "Charset": "UTF-8"},
                    "Html": {"Data": message.html, "Charset": "UTF-8"},
                },
            },
        )


class OutboxMailer:
    """One JSON file per message; ``wardgate dev`` lists them at /_dev/outbox and prints the text."""

    def __init__(self, folder: Path, echo: bool = True) -> None:
        self.folder = folder
        self.echo = echo

    def send(self, message: Message) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        doc = {"to": list(message.to), "subject": message.subject, "text": message.text, "html": message.html}
        tmp = self.folder / (name + ".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.rename(self.folder / name)
        if self.echo:
            print(
                f"\n--- mail to {', '.join(message.to)}: {message.subject}\n{message.text}\n---", flush=True
            )

    def messages(self) -> list[dict[str, object]]:
        if not self.folder.exists():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.folder.glob("*.json"))]
