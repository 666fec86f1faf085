"""Shared fixtures: the real local stack (moto in-process, dev issuer, echo upstream, gateway server).

Tests drive it with real clients (httpx, boto3) over loopback; nothing of wardgate is mocked.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _mysql_connector  # noqa: F401  (first: see below)
import httpx
import pytest
from moto import mock_aws

from wardgate.dev.stack import SFN_INTERPRETER, DevStack

ROOT = Path(__file__).resolve().parent.parent
# mysql-connector's C extension (a test client) is imported before anything loads duckdb: once
# duckdb's libstdc++ has taken glibc's spare static TLS, loading the extension fails ("cannot
# allocate memory in static TLS block") and mysql.connector silently falls back to pure Python.


def _serialise_moto_dynamodb_writes() -> None:
    """moto undoes a failed transaction by restoring the tables as they were when it began, so a
    write made meanwhile on another thread (the approval workflow's, on moto's Step Functions
    threads) is lost: DynamoDB never does that. Writes are serialised, as DynamoDB's are per item."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("transact_write_items", "update_item", "put_item", "delete_item", "batch_write_item"):
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, locked)


_serialise_moto_dynamodb_writes()


def _validate_each_state_machine_definition_once() -> None:
    """moto validates a state machine's definition by parsing it with its ANTLR grammar (~50 ms),
    and every DevStack creates the same approval workflow: a definition that parsed once is valid
    (the parse depends on its text alone), so it is not parsed again. Executions still parse it."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    validate = StepFunctionsParserBackend._validate_definition
    valid: set[str] = set()

    def validate_once(definition: str) -> None:
        if definition not in valid:
            validate(definition)  # raises InvalidDefinition: not remembered
            valid.add(definition)

    StepFunctionsParserBackend._validate_definition = staticmethod(validate_once)  # type: ignore[method-assign]


_validate_each_state_machine_definition_once()


_modules_frozen_after_first_test: set[str] = set()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Full collections walk every object alive, and a test run keeps hundreds of thousands alive
    for good (modules, botocore's service models, moto's backends, loaded on first use): they were
    a fifth of the integration tests' time. After the first test of each module (what its tests
    share is loaded by then) and after its last (its module fixtures are gone), collect and freeze
    what is left (``gc.freeze``, as wardgate does on Lambda: runtime.end_gc_pause), so that later
    collections skip it. What tests create afterwards is collected as before; reference counting
    still frees frozen objects, only a cycle among them that becomes garbage later stays."""
    result = yield
    module = item.nodeid.split("::", 1)[0]
    last = nextitem is None or nextitem.nodeid.split("::", 1)[0] != module
    if last or module not in _modules_frozen_after_first_test:
        _modules_frozen_after_first_test.add(module)
        gc.collect()
        gc.freeze()
    return result


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wardgate-state")  # one dev key for the whole session


@pytest.fixture
def restore_env() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def stack(state_dir: Path, restore_env: None) -> Iterator[DevStack]:
    os.environ.update({"WARDGATE_UPSTREAM_TIMEOUT_S": "2", "WARDGATE_MAX_REQUEST_BYTES": str(256 * 1024)})
    with mock_aws(config=SFN_INTERPRETER):  # moto runs the approval workflow's definition
        # Manifests unsigned (a few ms of moto per object): test_recording_integrity.py has its own stack.
        running = DevStack(
            root=ROOT,
            state_dir=state_dir,
            port=0,
            upstream_port=0,
            pg_port=0,
            mysql_port=0,
            ssh_port=0,
            sign_manifests=False,
        ).start()
        try:
            yield running
        finally:
            running.stop()


@pytest.fixture
def client(stack: DevStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        yield http


@pytest.fixture
def token(stack: DevStack) -> str:
    assert stack.issuer is not None
    return stack.issuer.mint("agent-1", ["ci"])


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
