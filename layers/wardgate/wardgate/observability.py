"""Powertools Logger, Tracer and metric counts, configured once for every function.

Never pass tokens, credentials or bodies to the logger: log codes, ids and sizes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
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
    dimensions such as the connection differ between the requests a process serves.
    """
    if is_metrics_disabled():  # single_metric does not check this itself (local mode, tests)
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)
