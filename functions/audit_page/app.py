"""The auditors' replay page: GET /audit (search), /audit/records/{record_id}, sign-in and static assets."""

from typing import Any

from wardgate.auditing.web.app import handle_event
from wardgate.observability import correlation_paths, logger, tracer


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_event(event, context)
