"""The listener's refusals as Kubernetes ``Status`` objects, rendered by the Lambda path's own
renderer (``proxies/kubernetes.py``): both doors answer kubectl alike, which prints
``Error from server (<reason>): <message>``."""

from __future__ import annotations

from typing import Any

from wardgate.apigw import HttpResponse
from wardgate.errors import GatewayError
from wardgate.proxies import kubernetes


def error_status(error: GatewayError, record_id: str = "") -> HttpResponse:
    return kubernetes.status_response(error, "", record_id)


def status_response(code: int, message: str, wardgate_code: str, record_id: str = "") -> HttpResponse:
    """A refusal of the listener's own (its HTTP status is ``code``)."""
    error = GatewayError(message, code=wardgate_code)
    error.status = code
    return error_status(error, record_id)


def status_object(code: int, message: str, wardgate_code: str, record_id: str = "") -> dict[str, Any]:
    return kubernetes.status_object(code, message, wardgate_code, record_id)
