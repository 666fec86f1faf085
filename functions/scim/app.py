"""SCIM function: ANY /scim/v2/{proxy+} -> provisioning and deprovisioning from the identity provider."""

from typing import Any

from wardgate.observability import correlation_paths, logger, tracer
from wardgate.scim import handle_scim_event


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_scim_event(event, context)
