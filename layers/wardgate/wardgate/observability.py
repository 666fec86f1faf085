"""Powertools Logger, Metrics and Tracer, configured once for every function.

Never pass tokens, credentials or bodies to the logger: log codes, ids and sizes.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="wardgate")
metrics = Metrics(namespace="wardgate", service="wardgate")
tracer = Tracer(service="wardgate")
