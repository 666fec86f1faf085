"""Powertools Logger, Tracer and metric counts, configured once for every function.

Never pass tokens, credentials or bodies to the logger: log codes, ids and sizes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

NAMESPACE = "wardgate"
Handler = TypeVar("Handler", bound=Callable[..., Any])

logger = Logger(service="wardgate")


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


def count(name: str, **dimensions: str) -> None:
    """Emit one count with its own dimensions (as an EMF log line; CloudWatch turns it into a metric).

    A metric of its own per event, rather than dimensions on a shared Metrics object, because
    dimensions such as the connection differ between the requests a process serves. The line is
    the one Powertools' ``single_metric`` prints (the ``service`` dimension from
    ``POWERTOOLS_SERVICE_NAME`` included), written directly: building it through Powertools' metric
    objects cost more than the rest of a request's logging.
    """
    if is_metrics_disabled():  # local mode, tests
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
    print(json.dumps(line, separators=(",", ":")))
