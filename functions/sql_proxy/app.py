"""SQL proxy function: POST /sql/{connection}/{Execute|BatchExecute|...} -> the Data API, guarded."""

from typing import Any

from wardgate.observability import correlation_paths, logger, tracer
from wardgate.runtime import handle_sql_event, prepare


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_sql_event(event, context)


prepare("sql")  # init phase: clients, imports, keys and policy before the first event (runtime.prepare)
