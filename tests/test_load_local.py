"""A small load on the local stack: every response is what its kind expects, every request recorded once.

The same mix and the same checks as ``benchmarks/load.py`` (which runs 20,000 requests through
``wardgate dev`` in a subprocess), here 1,000 requests from 20 concurrent clients against the
in-process stack (moto mocked in-process); the recordings are read back from its S3 bucket and
index table and matched by each response's ``x-wardgate-record-id``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator

import boto3
import pytest
from benchmarks.load import AGENTS, audit, drive, plan

from wardgate import runtime
from wardgate.dev.stack import DevStack

REQUESTS = 1000
CONCURRENCY = 20
TIME_LIMIT_S = 80.0  # the load takes about 30 s on 2 CPUs (41 s at a load average of 10); pytest: 120 s


@pytest.fixture
def patient_upstream(stack: DevStack) -> Iterator[None]:
    """The upstream timeout the deployed gateway has (25 s), not the stack fixture's 2 s (for the
    timeout tests): the echo upstream shares this process, and its GIL, with the whole stack."""
    os.environ["WARDGATE_UPSTREAM_TIMEOUT_S"] = "25"  # restored by the stack fixture's restore_env
    runtime.http_gateway.cache_clear()
    yield
    runtime.http_gateway.cache_clear()


def test_a_thousand_concurrent_requests_each_answered_as_expected_and_recorded_exactly_once(
    stack: DevStack, patient_upstream: None
) -> None:
    assert stack.issuer is not None
    tokens = [stack.issuer.mint(f"load-agent-{i}", ["ci"]) for i in range(AGENTS)]
    kinds = plan(REQUESTS)
    assert Counter(kinds)["held"] == REQUESTS * 2 // 100  # each starts a workflow: a small share

    run = asyncio.run(drive(stack.url, tokens, kinds, CONCURRENCY, time.monotonic() + TIME_LIMIT_S))

    assert not run.stopped_by_time and len(run.results) == REQUESTS
    unexpected = [(r.kind, r.status, r.problem) for r in run.results if r.problem]
    assert unexpected == []
    assert Counter(r.kind for r in run.results) == Counter(kinds)
    ids = [r.record_id for r in run.results]
    assert len(set(ids)) == REQUESTS  # one record id per request

    report = audit(
        run.results,
        boto3.client("s3"),
        boto3.client("dynamodb"),
        os.environ["RECORDINGS_BUCKET"],
        os.environ["RECORDINGS_PREFIX"],
        os.environ["RECORDINGS_TABLE"],
        deadline=time.monotonic() + 30,
    )
    assert report.problems() == []
    assert report.index_items == report.index_ours == REQUESTS  # each id once in the index, none else
    assert report.stream_ours == REQUESTS and report.ok
