"""Driving the approval flow over loopback: the agent's request, the outbox, the approver's page."""

from __future__ import annotations

import re
import time
from html import unescape
from typing import Any

import httpx

from wardgate.dev.stack import DevStack


def outbox(client: httpx.Client) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = client.get("/_dev/outbox.json").json()["messages"]
    return messages


def wait_for_mail(client: httpx.Client, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = outbox(client)
        if len(messages) >= count:
            return messages
        time.sleep(0.05)
    raise AssertionError(f"expected {count} mail(s), the outbox has {len(outbox(client))}")


def link_in(message: dict[str, Any], stack: DevStack) -> str:
    match = re.search(re.escape(stack.url) + r"/approvals/[^\s\"<]+", str(message["text"]))
    assert match, message["text"]
    return match.group(0)


def mail_to(messages: list[dict[str, Any]], approver: str) -> dict[str, Any]:
    return next(m for m in messages if m["to"] == [approver])


def form_of(page: str) -> dict[str, str]:
    """The approve form's fields as the confirmation page renders them."""
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page)[:3])
    return {k: unescape(v) for k, v in fields.items()}


def press(client: httpx.Client, link: str, decision: str = "approve") -> httpx.Response:
    page = client.get(link)
    assert page.status_code == 200, page.text
    fields = form_of(page.text)
    fields["decision"] = decision
    return client.post(link.split("?")[0], data=fields)


def wait_status(
    client: httpx.Client, poll_url: str, auth: dict[str, str], status: str, timeout: float = 10.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(poll_url, headers=auth).json()
        if body.get("status") == status:
            return body
        time.sleep(0.05)
    raise AssertionError(f"status {status!r} not reached: {body}")
