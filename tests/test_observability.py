"""wardgate's structured logs: one JSON object a line, with the keys Powertools' Logger wrote, the
Lambda context and the correlation id on every line of an invocation; the functions' handlers
load without importing Powertools (issue 16: its Logger was a cold-start cost)."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wardgate import observability
from wardgate.observability import StructuredLogger, correlation_paths

ROOT = Path(__file__).resolve().parents[1]


class Context:
    function_name = "wardgate-HttpProxyFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:wardgate-HttpProxyFunction"

    def __init__(self, request_id: str) -> None:
        self.aws_request_id = request_id


@pytest.fixture
def lines() -> Iterator[tuple[StructuredLogger, io.StringIO]]:
    logger = StructuredLogger("wardgate")
    sink = io.StringIO()
    logger.handlers[0].setStream(sink)  # type: ignore[attr-defined]
    logger.setLevel("INFO")
    yield logger, sink


def parsed(sink: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in sink.getvalue().splitlines()]


def test_each_line_is_json_with_powertools_keys_the_context_and_the_correlation_id(
    lines: tuple[StructuredLogger, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, sink = lines
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-65a1b2c3-0123456789abcdef01234567;Parent=53995c3f42cd8ad8")

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
    def handler(event: dict[str, Any], context: Any) -> str:
        logger.info("request finished", extra={"status": 200, "connection": "demo"})
        return "done"

    assert handler({"requestContext": {"requestId": "req-1"}}, Context("aws-1")) == "done"
    assert handler({"requestContext": {"requestId": "req-2"}}, Context("aws-2")) == "done"
    first, second = parsed(sink)
    assert first["level"] == "INFO" and first["message"] == "request finished"
    assert first["location"].startswith("handler:")
    assert first["service"] == "wardgate"
    assert first["status"] == 200 and first["connection"] == "demo"
    assert first["function_name"] == Context.function_name
    assert first["function_arn"] == Context.invoked_function_arn
    assert first["function_memory_size"] == 512
    assert first["xray_trace_id"] == "1-65a1b2c3-0123456789abcdef01234567"
    assert (first["correlation_id"], first["function_request_id"], first["cold_start"]) == (
        "req-1",
        "aws-1",
        True,
    )
    assert (second["correlation_id"], second["function_request_id"], second["cold_start"]) == (
        "req-2",
        "aws-2",
        False,
    )
    assert first["timestamp"].endswith("+0000") and "," in first["timestamp"]


def test_a_handler_without_a_correlation_path_and_an_event_without_the_id(
    lines: tuple[StructuredLogger, io.StringIO],
) -> None:
    logger, sink = lines

    @logger.inject_lambda_context
    def scheduled(event: dict[str, Any], context: Any) -> None:
        logger.warning("checked")

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
    def http(event: Any, context: Any) -> None:
        logger.warning("odd event")

    scheduled({}, Context("aws-1"))
    http({"requestContext": "not a mapping"}, Context("aws-2"))
    first, second = parsed(sink)
    assert "correlation_id" not in first and first["function_request_id"] == "aws-1"
    assert second["correlation_id"] is None


def test_exceptions_are_logged_with_their_name_and_levels_filter(
    lines: tuple[StructuredLogger, io.StringIO],
) -> None:
    logger, sink = lines
    logger.debug("not at INFO")
    try:
        raise ValueError("broken")
    except ValueError:
        logger.exception("failed", extra={"record_id": "r1"})
    (line,) = parsed(sink)
    assert line["level"] == "ERROR" and line["record_id"] == "r1"
    assert line["exception_name"] == "ValueError" and "ValueError: broken" in line["exception"]


@pytest.mark.parametrize(
    "lambda_level, powertools_level, expected",
    [("WARN", "DEBUG", "WARNING"), ("", "DEBUG", "DEBUG"), ("", "", "INFO"), ("FATAL", "", "CRITICAL")],
)
def test_lambda_log_level_wins_over_powertools_level(
    monkeypatch: pytest.MonkeyPatch, lambda_level: str, powertools_level: str, expected: str
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", lambda_level)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", powertools_level)
    assert observability.log_level() == expected
    assert logging.getLevelName(StructuredLogger("x").level) == expected


@pytest.mark.parametrize(
    "disabled, dev, expected",
    [
        (None, None, False),
        ("true", None, True),
        ("false", "true", False),
        (None, "true", True),
        ("1", None, True),
    ],
)
def test_metrics_are_disabled_as_powertools_decides(
    monkeypatch: pytest.MonkeyPatch, disabled: str | None, dev: str | None, expected: bool
) -> None:
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    for name, value in (("POWERTOOLS_METRICS_DISABLED", disabled), ("POWERTOOLS_DEV", dev)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert observability._metrics_disabled() is expected
    assert is_metrics_disabled() is expected  # the same rule Powertools applies


@pytest.mark.parametrize("function", ["http_proxy", "sql_proxy", "admin", "scim", "approvals"])
def test_handlers_load_without_powertools(function: str) -> None:
    """Powertools' package imports its Logger with it: no handler module may import it (the Tracer
    does, but only under TracingMode=Active)."""
    app = ROOT / "functions" / function / "app.py"
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('app', {str(app)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print(sorted(m for m in sys.modules if m.startswith('aws_lambda_powertools')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "wardgate")}
    env.pop("AWS_LAMBDA_FUNCTION_NAME", None)  # no init-phase prefetch here
    env.pop("WARDGATE_TRACING", None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
    assert importlib.util.find_spec("aws_lambda_powertools") is not None  # still installed, for the Tracer


def test_a_level_change_applies_at_once(lines: tuple[StructuredLogger, io.StringIO]) -> None:
    logger, sink = lines
    logger.setLevel("WARNING")
    logger.info("dropped")  # remembered as disabled for INFO
    logger.setLevel("DEBUG")
    logger.info("kept")
    assert [line["message"] for line in parsed(sink)] == ["kept"]
