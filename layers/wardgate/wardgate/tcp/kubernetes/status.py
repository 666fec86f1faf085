"""Kubernetes ``Status`` objects: how every refusal of the listener reaches kubectl.

kubectl and client-go read an error body as a ``meta/v1`` Status (Kubernetes API reference,
"Status v1 meta": ``kind``, ``apiVersion``, ``metadata``, ``status`` "Failure", ``message``,
``reason``, ``details``, ``code``) and print ``Error from server (<reason>): <message>``; any
other body is shown as an unknown error with the raw text.
"""

from __future__ import annotations

import json
from typing import Any

from wardgate.apigw import HttpResponse
from wardgate.errors import GatewayError

# HTTP status -> the StatusReason the API server gives it (k8s.io/apimachinery metav1.StatusReason).
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    408: "Timeout",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    502: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
JSON_HEADERS = {"content-type": "application/json", "cache-control": "no-store"}


def status_object(
    code: int, message: str, *, wardgate_code: str = "", request_id: str = ""
) -> dict[str, Any]:
    """A Failure Status; wardgate's own error code and the request id ride in ``details``."""
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": REASONS.get(code, "InternalError" if code >= 500 else "BadRequest"),
        "code": code,
    }
    causes = [{"reason": "wardgate", "field": "code", "message": wardgate_code}] if wardgate_code else []
    if request_id:
        causes.append({"reason": "wardgate", "field": "record_id", "message": request_id})
    if causes:
        status["details"] = {"causes": causes}
    return status


def status_body(code: int, message: str, *, wardgate_code: str = "", request_id: str = "") -> bytes:
    return json.dumps(
        status_object(code, message, wardgate_code=wardgate_code, request_id=request_id)
    ).encode()


def status_response(code: int, message: str, wardgate_code: str, request_id: str = "") -> HttpResponse:
    headers = dict(JSON_HEADERS)
    if code == 401:
        headers["www-authenticate"] = f'Bearer error="invalid_token", error_description="{wardgate_code}"'
    body = status_body(code, message, wardgate_code=wardgate_code, request_id=request_id)
    return HttpResponse(code, headers, body)


def error_status(error: GatewayError, request_id: str = "") -> HttpResponse:
    """A wardgate refusal as the API server would answer it."""
    return status_response(error.status, error.message, error.code, request_id)


def as_status(response: HttpResponse) -> HttpResponse:
    """``response`` with wardgate's JSON error body (``{"error": {...}}``) turned into a Status;
    a Status, an upstream's own body or a success is left as it is."""
    if response.status < 400 or "json" not in response.headers.get("content-type", ""):
        return response
    try:
        document = json.loads(response.body)
    except ValueError:
        return response
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict) or document.get("kind") == "Status":
        return response
    body = status_body(
        response.status,
        str(error.get("message", "")),
        wardgate_code=str(error.get("code", "")),
        request_id=str(error.get("request_id", "")),
    )
    return HttpResponse(response.status, {**response.headers, "content-type": "application/json"}, body)
