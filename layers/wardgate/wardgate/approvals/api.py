"""The approval flow's HTTP routes (API Gateway payload 2.0):

- ``GET /requests/{request_id}[?wait=S]``: the requesting agent's poll (its own token; JSON).
- ``DELETE /requests/{request_id}``: the requesting agent withdraws a pending request.
- ``GET /approvals/{request_id}?t=...``: an approver's link: a confirmation page, nothing decided.
- ``POST /approvals/{request_id}``: the decision, from that page's form (link token + page token).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from wardgate.agents import AgentRegistry
from wardgate.apigw import HttpResponse, error_response
from wardgate.approvals import pages
from wardgate.approvals.service import ApprovalDesk, Executor
from wardgate.errors import BadRequest, GatewayError
from wardgate.identity import TokenValidator
from wardgate.observability import logger

MAX_FORM_BYTES = 8 * 1024


def _parts(event: dict[str, Any]) -> tuple[str, str, dict[str, str], dict[str, str], bytes]:
    ctx = event.get("requestContext") or {}
    method = str((ctx.get("http") or {}).get("method", "GET")).upper()
    request_id = str((event.get("pathParameters") or {}).get("request_id", ""))
    query = {k: v[0] for k, v in parse_qs(event.get("rawQueryString") or "").items()}
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    raw = event.get("body") or ""
    try:
        body = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else raw.encode()
    except binascii.Error:
        body = b""
    return method, request_id, query, headers, body


def handle_poll(
    event: dict[str, Any],
    validator: TokenValidator,
    agents: AgentRegistry,
    desk: ApprovalDesk,
    execute: Executor,
    deadline: float,
) -> HttpResponse:
    method, request_id, query, headers, _ = _parts(event)
    api_request_id = str((event.get("requestContext") or {}).get("requestId", ""))
    try:
        identity = validator.authenticate(headers.get("authorization"))
        identity = agents.check(identity)  # a revoked agent gets nothing, not even its result
        if method == "DELETE":
            return desk.withdraw(request_id, identity)
        try:
            wait = float(query.get("wait", "0") or 0)
        except ValueError:
            raise BadRequest("wait must be a number of seconds (at most 25)", code="bad_query") from None
        return desk.poll(request_id, identity, wait, deadline, execute)
    except GatewayError as error:
        return error_response(error, api_request_id)
    except Exception:
        logger.exception("unexpected error in the approval poll")
        return error_response(GatewayError("internal error"), api_request_id)


def handle_approver(event: dict[str, Any], desk: Callable[[], ApprovalDesk]) -> HttpResponse:
    method, request_id, query, headers, body = _parts(event)
    try:
        if method == "GET":
            return desk().view(request_id, query.get("t", ""))
        if method == "POST":
            if len(body) > MAX_FORM_BYTES:
                return pages.refused(413, "payload_too_large", "this form is too large")
            if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                return pages.refused(415, "bad_form", "decisions are made from the confirmation page's form")
            return desk().decide(request_id, body)
        return pages.refused(405, "method_not_allowed", "open the link in your browser")
    except GatewayError as error:
        logger.warning("approval page failed", extra={"code": error.code})
        return pages.refused(error.status, error.code, error.message)
    except Exception:
        logger.exception("unexpected error on the approval page")
        return pages.refused(500, "internal_error", "wardgate failed; nothing was decided")
