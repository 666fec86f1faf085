"""Approval notifier (SQS): keeps the workflow's task token and mails each approver a signed link."""

from typing import Any

from wardgate.observability import logger, tracer
from wardgate.runtime import handle_notifier_event


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_notifier_event(event, context)
