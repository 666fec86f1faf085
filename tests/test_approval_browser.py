"""The whole approval loop with a real browser: an agent's refund is held, the approver reads the mail in
the local outbox, opens the link in headless Chromium on a phone-sized screen, presses Approve, and the
agent's long-poll returns the executed (masked) result.

Chromium is Debian's (`scripts/services chromium` installs it; `make test` runs that), driven by
Playwright without its own browser download.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.approval_helpers import wait_for_mail

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: install it with `bash scripts/services chromium`"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def test_approve_from_the_outbox_in_a_browser(browser, client, auth, stack):
    held = client.post(
        "/http/demo/v1/refunds", headers=auth, json={"amount": 900, "email": "ada@example.com"}
    )
    assert held.status_code == 202, held.text
    poll_url = held.json()["poll_url"]
    wait_for_mail(client, 2)

    # The agent long-polls while the human decides.
    answer: dict[str, Any] = {}
    agent = threading.Thread(
        target=lambda: answer.update(
            client.get(poll_url, params={"wait": 25}, headers=auth, timeout=30).json()
        )
    )
    agent.start()

    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page.goto(f"{stack.url}/_dev/outbox")
    mail = page.locator("article", has_text="to oncall@example.com")
    assert "POST /v1/refunds" in mail.inner_text() and "refunds need a human" in mail.inner_text()
    mail.get_by_role("link", name="Review and decide").click()

    page.wait_for_selector("#approve")
    assert page.title() == "Approve this operation?"
    text = page.inner_text("body")
    for fact in ("agent-1", "demo (http)", "POST /v1/refunds", "refunds need a human", "oncall@example.com"):
        assert fact in text, fact
    box = page.locator("#approve").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] >= 44  # a thumb-sized button
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling

    page.click("#approve")
    page.wait_for_selector("#outcome")
    assert "approved" in page.inner_text("#outcome")

    agent.join(timeout=30)
    assert answer.get("status") == "executed", answer
    assert answer["decided_by"] == "oncall@example.com"
    result = json.loads(answer["result"]["body"])
    assert result["credential"] == "accepted" and json.loads(result["body"])["amount"] == 900
    assert "ada@example.com" not in answer["result"]["body"]  # the result is masked like any response

    # The same link, opened again (a second tap, a prefetch), decides nothing more.
    page.go_back()
    page.reload()
    assert page.locator("#error").get_attribute("data-code") in ("not_pending", "already_voted")
    page.close()
