"""Structured JSON logs, the Powertools Tracer and metric counts, configured once for every function.

Never pass tokens, credentials or bodies to the logger: log codes, ids and sizes.

The logger is the standard library's, writing one JSON object per line to stdout with the keys
Powertools' Logger wrote (``level``, ``location``, ``message``, ``timestamp``, ``service``, the
Lambda context's ``cold_start``, ``function_*`` and ``correlation_id``, ``xray_trace_id``, the
record's ``extra`` keys and, for an exception, ``exception`` and ``exception_name``), so log
queries keep working. Powertools' Logger is not imported on the functions' cold path: with
``typing_extensions`` and its JMESPath utilities (for correlation ids, a dotted path here) it cost
more of a cold start than anything it did for wardgate. Powertools stays a dependency: the Tracer
under ``TracingMode=Active``, and the metric lines are the ones it prints.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar, overload

import orjson

NAMESPACE = "wardgate"
SERVICE = "wardgate"
Handler = TypeVar("Handler", bound=Callable[..., Any])


class correlation_paths:  # named as the Powertools module the handlers imported it from
    """Where an event carries the id that ties its log lines together (a dotted path)."""

    API_GATEWAY_HTTP = "requestContext.requestId"  # HTTP API (payload 2.0)


# Lambda's advanced logging controls (AWS_LAMBDA_LOG_LEVEL, from the template's ApplicationLogLevel)
# win over POWERTOOLS_LOG_LEVEL, as they did with Powertools' Logger.
_LAMBDA_LEVELS = {"TRACE": "DEBUG", "DEBUG": "DEBUG", "INFO": "INFO", "WARN": "WARNING", "ERROR": "ERROR"}
_LAMBDA_LEVELS["FATAL"] = "CRITICAL"
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


def log_level() -> str:
    lambda_level = _LAMBDA_LEVELS.get(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper())
    return lambda_level or (os.environ.get("POWERTOOLS_LOG_LEVEL") or "INFO").upper()


class JsonFormatter(logging.Formatter):
    """One record as one JSON object: the keys Powertools' Logger wrote, then the record's extras."""

    def __init__(self, service: str, context: Mapping[str, Any]) -> None:
        super().__init__()
        self.service = service
        self.context = context  # the current invocation's keys (StructuredLogger.inject_lambda_context)

    def format(self, record: logging.LogRecord) -> str:
        created = time.gmtime(record.created)
        line: dict[str, Any] = {
            "level": record.levelname,
            "location": f"{record.funcName}:{record.lineno}",
            "message": record.getMessage(),
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%S", created) + f",{int(record.msecs):03d}+0000",
            "service": self.service,
            **self.context,
        }
        trace = os.environ.get("_X_AMZN_TRACE_ID")
        if trace:
            line["xray_trace_id"] = trace.split(";")[0].replace("Root=", "")
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES:
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = self.formatException(record.exc_info)
            line["exception_name"] = record.exc_info[0].__name__
        return json.dumps(line, default=str, separators=(",", ":"))


def _dotted(event: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(event, Mapping):
            return None
        event = event.get(part)
    return event


class StructuredLogger(logging.Logger):
    """wardgate's logger: JSON lines on stdout, and the Lambda context's keys on every line."""

    def __init__(self, service: str) -> None:
        super().__init__(service, log_level())
        self.propagate = False  # Lambda's own root handler would print every line a second time
        self.context: dict[str, Any] = {}
        self.registered_formatter = JsonFormatter(service, self.context)
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(self.registered_formatter)
        self.addHandler(handler)
        self.cold_start = True

    def setLevel(self, level: int | str) -> None:
        super().setLevel(level)
        # logging clears the enabled-for cache of the loggers it registered; this one is not.
        cache: dict[int, bool] = self.__dict__.get("_cache", {})
        cache.clear()

    @overload
    def inject_lambda_context(self, handler: Handler) -> Handler: ...

    @overload
    def inject_lambda_context(
        self, handler: None = None, correlation_id_path: str | None = None
    ) -> Callable[[Handler], Handler]: ...

    def inject_lambda_context(
        self, handler: Handler | None = None, correlation_id_path: str | None = None
    ) -> Handler | Callable[[Handler], Handler]:
        """Decorate a Lambda handler: each of its invocations logs with the context's keys."""
        if handler is None:
            return functools.partial(self.inject_lambda_context, correlation_id_path=correlation_id_path)  # type: ignore[return-value]
        inner = handler

        @functools.wraps(inner)
        def with_context(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            self.context.clear()
            self.context.update(
                cold_start=self.cold_start,
                function_name=getattr(context, "function_name", None),
                function_memory_size=getattr(context, "memory_limit_in_mb", None),
                function_arn=getattr(context, "invoked_function_arn", None),
                function_request_id=getattr(context, "aws_request_id", None),
            )
            self.cold_start = False
            if correlation_id_path:
                self.context["correlation_id"] = _dotted(event, correlation_id_path)
            return inner(event, context, *args, **kwargs)

        return with_context  # type: ignore[return-value]


logger = StructuredLogger(os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE)


class _TracingOff:
    """Stands in for Powertools' Tracer when X-Ray is off (template parameter ``TracingMode``).

    Creating a real Tracer imports the X-Ray SDK and patches libraries, a large share of a cold
    start, even when tracing is disabled; with PassThrough on an HTTP API nothing is ever sampled.
    """

    def capture_lambda_handler(self, handler: Handler) -> Handler:
        return handler

    def capture_method(self, method: Handler) -> Handler:
        return method


class TracerLike(Protocol):
    def capture_lambda_handler(self, handler: Handler) -> Handler: ...

    def capture_method(self, method: Handler) -> Handler: ...


def _tracer() -> Any:
    if os.environ.get("WARDGATE_TRACING") != "Active":
        return _TracingOff()
    from aws_lambda_powertools import Tracer

    return Tracer(service="wardgate")


tracer: TracerLike = _tracer()


def _metrics_disabled() -> bool:
    """As Powertools decides it: POWERTOOLS_METRICS_DISABLED wins; else off under POWERTOOLS_DEV."""
    disabled = os.environ.get("POWERTOOLS_METRICS_DISABLED")
    if disabled is not None:
        return disabled.strip().lower() in ("1", "y", "yes", "t", "true", "on")
    return os.environ.get("POWERTOOLS_DEV", "").strip().lower() in ("1", "y", "yes", "t", "true", "on")


def count(name: str, **dimensions: str) -> None:
    """Emit one count with its own dimensions (as an EMF log line; CloudWatch turns it into a metric).

    A metric of its own per event, rather than dimensions on a shared Metrics object, because
    dimensions such as the connection differ between the requests a process serves. The line is
    the one Powertools' ``single_metric`` prints (the ``service`` dimension from
    ``POWERTOOLS_SERVICE_NAME`` included), written directly: building it through Powertools' metric
    objects cost more than the rest of a request's logging.
    """
    if _metrics_disabled():  # local mode, tests
        return
    values = dict(dimensions)
    service = os.environ.get("POWERTOOLS_SERVICE_NAME")
    if service and "service" not in values:
        values["service"] = service
    line = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [list(values)],
                    "Metrics": [{"Name": name, "Unit": "Count"}],
                }
            ],
        },
        **values,
        name: [1.0],
    }
    sys.stdout.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE).decode())  # one write a line
