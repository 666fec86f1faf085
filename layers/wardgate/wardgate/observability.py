"""Powertools Logger, Tracer and metrics, configured once for every function.

Never pass tokens, credentials or bodies to the logger: log codes, ids and sizes.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

NAMESPACE = "wardgate"

logger = Logger(service="wardgate")
tracer = Tracer(service="wardgate")


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
