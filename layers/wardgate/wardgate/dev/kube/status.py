"""meta/v1 Status answers: how the API server reports every failure (and some successes).

Shape: https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/ —
``{"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message", "reason",
"details", "code"}``; kubectl prints ``Error from server (<reason>): <message>``.
"""

from __future__ import annotations

import orjson

from wardgate.dev.kube.catalog import Answer
from wardgate.dev.kube.store import JSON, StoreError


def status_object(code: int, reason: str, message: str, details: JSON | None = None) -> JSON:
    body: JSON = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    if code < 400:
        del body["message"], body["reason"]
    return body


def json_answer(code: int, body: JSON, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    return Answer(code, "application/json", orjson.dumps(body) + b"\n", headers)


def status_answer(code: int, reason: str, message: str, details: JSON | None = None) -> Answer:
    return json_answer(code, status_object(code, reason, message, details))


def error_answer(error: StoreError) -> Answer:
    return status_answer(error.code, error.reason, error.message, error.details)


def internal_error(error: BaseException) -> Answer:
    """500 InternalError, naming only the kind of failure (its message could hold a request's values)."""
    return status_answer(500, "InternalError", f"Internal error occurred: {type(error).__name__}")
