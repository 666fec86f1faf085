"""Approval pages: GET /approvals/{request_id}?t=... shows a confirmation page; the POST from it decides."""

from typing import Any

from wardgate.observability import correlation_paths, logger, tracer
from wardgate.runtime import handle_approver_event


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_approver_event(event, context)
