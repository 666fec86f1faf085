"""The approval email: who asks, where, exactly what, which rule, until when; one signed link per approver."""

from __future__ import annotations

import json
from html import escape

from wardgate.approvals.mail import Message
from wardgate.approvals.model import ApprovalRequest, iso


def details(request: ApprovalRequest) -> list[tuple[str, str]]:
    """The facts shown to approvers, in the order they read them (email and confirmation page)."""
    mode = (
        "run this operation once"
        if request.mode == "one-time"
        else f"allow operations of this rule on {request.connection} "
        f"for {request.window_seconds // 60} minutes"
    )
    return [
        ("Agent", f"{request.subject} (issuer {request.issuer})"),
        ("Owner", request.owner or "(no registered owner)"),
        ("Connection", f"{request.connection} ({request.kind})"),
        ("Operation", request.summary),
        ("Rule", request.rule),
        ("Why", request.reason),
        ("Approving will", mode),
        ("Approvals needed", f"{request.quorum} of {len(request.approvers)}"),
        ("Expires", iso(request.expires_at).replace("+00:00", " UTC")),
    ]


def operation_text(request: ApprovalRequest) -> str:
    return json.dumps(request.operation, indent=2, sort_keys=True, default=str)


def approval_email(request: ApprovalRequest, approver: str, link: str) -> Message:
    facts = details(request)
    subject = f"[wardgate] approve {request.summary} on {request.connection} for {request.subject}?"
    width = max(len(k) for k, _ in facts)
    text = "\n".join(
        [
            f"An agent asks for your approval (request {request.request_id}).",
            "",
            *(f"{k.ljust(width)}  {v}" for k, v in facts),
            "",
            "The exact operation, as wardgate normalised it:",
            operation_text(request),
            "",
            "Review and decide (the link opens a confirmation page;"
            " nothing is decided until you press a button):",
            link,
            "",
            f"This link is yours ({approver}), works once and expires with the request.",
            "Did not expect this? Deny it, or ignore this mail: the request expires on its own.",
        ]
    )
    rows = "".join(
        f'<tr><th style="text-align:left;padding:4px 12px 4px 0;vertical-align:top">{escape(k)}</th>'
        f'<td style="padding:4px 0">{escape(v)}</td></tr>'
        for k, v in facts
    )
    html = (
        '<!doctype html><html><body style="font-family:system-ui,sans-serif;font-size:16px;line-height:1.4">'
        f"<p>An agent asks for your approval (request <code>{escape(request.request_id)}</code>).</p>"
        f"<table>{rows}</table>"
        "<p>The exact operation, as wardgate normalised it:</p>"
        '<pre style="background:#f4f4f4;padding:8px;white-space:pre-wrap">'
        f"{escape(operation_text(request))}</pre>"
        f'<p><a href="{escape(link)}" style="display:inline-block;padding:12px 20px;background:#1f4e99;'
        'color:#fff;text-decoration:none;border-radius:6px">Review and decide</a></p>'
        f"<p>This link is yours ({escape(approver)}), works once and expires with the request. "
        "Opening it only shows a confirmation page.</p></body></html>"
    )
    return Message((approver,), subject, text, html)
