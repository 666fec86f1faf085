"""What the Kubernetes API path adds to plain HTTP proxying: JSON only, refusals as ``Status``."""

from __future__ import annotations

import json

from wardgate.apigw import HttpResponse
from wardgate.errors import GatewayError, Unauthorized

PROTOBUF = "application/vnd.kubernetes.protobuf"

# meta/v1 StatusReason for each status wardgate answers with, as the API server uses them
# (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/ and
# k8s.io/apimachinery/pkg/apis/meta/v1 types.go, "StatusReason"). 502 has no reason of its own:
# the API server answers an unreachable backend (an aggregated API) with InternalError.
STATUS_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
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


def is_schema_path(path: str) -> bool:
    """The API's own OpenAPI documents (``/openapi/v2``, ``/openapi/v3[/...]``).

    They describe types and hold no cluster data, so they are passed as the API server sends
    them: kubectl asks ``/openapi/v2`` only as protobuf (it validates ``kind: List`` manifests
    with it and fails on JSON), and masking could only corrupt a schema (its descriptions hold
    example addresses).
    """
    return path in ("/openapi/v2", "/openapi/v3") or path.startswith("/openapi/v3/")


def json_only(headers: dict[str, str]) -> dict[str, str]:
    """Ask the API server for JSON, never protobuf: only JSON can be masked (Secrets above all).

    client-go asks for ``application/vnd.kubernetes.protobuf,application/json``; kubectl asks for
    JSON Tables. Protobuf media ranges are dropped; what is left, or plain JSON, is asked for.
    """
    ranges = [r.strip() for r in headers.get("accept", "").split(",") if r.strip()]
    kept = [r for r in ranges if "protobuf" not in r.lower()]
    return {**headers, "accept": ", ".join(kept) or "application/json"}


def accepts_json(accept: str) -> bool:
    """Whether a client takes JSON: no Accept, ``*/*``, any JSON range, or anything but protobuf alone.

    A client that lists only protobuf media ranges (``application/vnd.kubernetes.protobuf``, also
    ``;stream=watch``) could not read a JSON answer, and wardgate never asks for protobuf (it could
    not mask it): such a client is refused with 406 instead of being sent what it cannot decode.
    """
    ranges = [r.split(";", 1)[0].strip().lower() for r in accept.split(",") if r.strip()]
    return not ranges or any(r != PROTOBUF for r in ranges)


def status_object(status: int, message: str, code: str, record_id: str = "") -> dict[str, object]:
    """A ``meta/v1 Status`` failure, the shape kubectl and client-go decode and print.

    kubectl prints ``Error from server (<reason>): <message>`` (401: ``You must be logged in to
    the server (<message>)``), so the message carries everything the agent needs, wardgate's
    record id included; ``details.causes`` keeps wardgate's stable error code for programs.
    """
    cause = {"reason": code, "message": f"wardgate record {record_id}" if record_id else "wardgate"}
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"{message} (wardgate record {record_id})" if record_id else message,
        "reason": STATUS_REASONS.get(status, "Unknown"),
        "details": {"causes": [cause]},
        "code": status,
    }


def status_response(error: GatewayError, request_id: str, record_id: str = "") -> HttpResponse:
    """Any refusal on a ``/k8s/`` route as the ``Status`` an API server would send."""
    body = status_object(error.status, error.message, error.code, record_id)
    headers = {"content-type": "application/json", "cache-control": "no-store"}
    if request_id:
        headers["x-wardgate-request-id"] = request_id
    if isinstance(error, Unauthorized):
        headers["www-authenticate"] = f'Bearer error="invalid_token", error_description="{error.code}"'
    return HttpResponse(error.status, headers, json.dumps(body).encode())
