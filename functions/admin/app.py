"""Admin API function: ANY /admin/{proxy+} -> register, disable and revoke agents (admin group only)."""

from typing import Any

from wardgate.admin import handle_admin_event
from wardgate.observability import correlation_paths, logger, tracer


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_admin_event(event, context)
