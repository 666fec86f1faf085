"""Recording manifests (EventBridge "Object Created" on the recordings bucket): signs each new object."""

from typing import Any

from wardgate.auditing.integrity import handle_manifest_event
from wardgate.observability import logger, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, list[str]]:
    return handle_manifest_event(event)
