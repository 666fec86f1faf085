"""SSH certificate function: POST /ssh/certificate -> a token for a short-lived SSH user certificate."""

from typing import Any

from wardgate.observability import correlation_paths, logger, tracer
from wardgate.ssh_certificates import handle_ssh_certificate_event


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_ssh_certificate_event(event, context)
