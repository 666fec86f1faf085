"""HTTP proxy function: ANY /http/{connection}/{proxy+} -> the connection's upstream, guarded."""

import gc

gc.disable()  # no collections in the init phase: runtime.prepare ends it (freezes what it built)

from typing import Any  # noqa: E402

from wardgate.observability import correlation_paths, logger, tracer  # noqa: E402
from wardgate.runtime import handle_http_event, prepare  # noqa: E402


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_http_event(event, context)


prepare("http")  # init phase: clients, imports, keys and policy before the first event (runtime.prepare)
