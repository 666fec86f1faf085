"""Scheduled agent check (EventBridge): disable expired agents, flag agents whose owner is gone."""

from typing import Any

from wardgate.admin import handle_scheduled_check
from wardgate.observability import logger, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_scheduled_check(event, context)
