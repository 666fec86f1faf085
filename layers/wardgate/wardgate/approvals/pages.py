"""The approver's pages: a confirmation page (GET) whose buttons POST the decision, and the answers.

Mobile first (one column, large buttons, no scripts); every value is HTML-escaped; responses are
``no-store`` and ``noindex`` and forbid framing.
"""

from __future__ import annotations

from html import escape

from wardgate.apigw import HttpResponse
from wardgate.approvals.email import details, operation_text
from wardgate.approvals.model import ApprovalRequest

HEADERS = {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    "x-robots-tag": "noindex",
    "x-frame-options": "DENY",
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
    "referrer-policy": "no-referrer",
}
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0;padding:16px;max-width:40rem;font-size:17px;line-height:1.4}"
    "dt{font-weight:600;margin-top:10px}dd{margin:0;word-break:break-word}"
    "pre{background:#f4f4f4;padding:8px;white-space:pre-wrap;word-break:break-all;font-size:14px}"
    "button{width:100%;padding:16px;margin:8px 0;font-size:18px;border:0;border-radius:8px;color:#fff}"
    ".approve{background:#1d7a36}.deny{background:#b3261e}.note{color:#555}"
)


def _page(status: int, title: str, body: str) -> HttpResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HttpResponse(status, dict(HEADERS), html.encode())


def _facts(request: ApprovalRequest) -> str:
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in details(request))
    operation = escape(operation_text(request))
    return f"<dl>{items}</dl><details><summary>Exact operation</summary><pre>{operation}</pre></details>"


def confirmation(request: ApprovalRequest, approver: str, link_token: str, page_token: str) -> HttpResponse:
    hidden = (
        f'<input type="hidden" name="t" value="{escape(link_token)}">'
        f'<input type="hidden" name="page" value="{escape(page_token)}">'
    )
    votes = len(request.approvals())
    body = (
        f'<p class="note">Signed in by link as <b>{escape(approver)}</b>. '
        f"{votes} of {request.quorum} approvals so far.</p>"
        f"{_facts(request)}"
        f'<form method="post">{hidden}<input type="hidden" name="decision" value="approve">'
        '<button class="approve" type="submit" id="approve">Approve</button></form>'
        f'<form method="post">{hidden}<input type="hidden" name="decision" value="deny">'
        '<button class="deny" type="submit" id="deny">Deny</button></form>'
        '<p class="note">This link works once. The agent waits for your decision.</p>'
    )
    return _page(200, "Approve this operation?", body)


def decided(request: ApprovalRequest, approver: str, decision: str, outcome: str) -> HttpResponse:
    verb = "approved" if decision == "approve" else "denied"
    if outcome == "approved":
        what = (
            "The request is approved; the agent gets its result."
            if request.mode == "one-time"
            else ("The request is approved; the agent's window is open.")
        )
    elif outcome == "denied":
        what = "The request is denied; the agent is told so."
    else:
        what = f"Waiting for more approvals ({len(request.approvals())} of {request.quorum})."
    body = (
        f'<p id="outcome">You ({escape(approver)}) {verb} this request. {escape(what)}</p>{_facts(request)}'
    )
    return _page(200, f"You {verb} it", body)


def refused(status: int, code: str, message: str, request: ApprovalRequest | None = None) -> HttpResponse:
    state = ""
    if request is not None:
        state = f'<p>Current state: <b id="state">{escape(request.effective_status())}</b></p>'
    body = f'<p id="error" data-code="{escape(code)}">{escape(message)}</p>{state}'
    return _page(status, "Nothing was decided", body)
