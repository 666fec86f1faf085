"""The connection read while the agent registry is asked (issue 16: one DynamoDB round trip less on
a cold cache): the read is used only as ``get``'s own would be, failures included, never older than
the cache allows, and a refusal by the registry still comes first."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import httpx
import pytest

from tests.helpers import register_agent
from wardgate import connections as connections_module
from wardgate.connections import Connection, ConnectionStore
from wardgate.errors import NotFound, ServiceUnavailable

DEMO = Connection("ahead-demo", "http", "https://api.example.com", None, ("ci",), "")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SlowStore(ConnectionStore):
    """The real store on the real table; each read waits ``delay`` first and is counted."""

    delay = 0.0
    fail = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads: list[str] = []

    def _load(self, name: str) -> Connection | None:
        self.reads.append(name)
        time.sleep(self.delay)
        if self.fail:
            raise ServiceUnavailable("connection store unavailable (test)", code="store_unavailable")
        return super()._load(name)


@pytest.fixture
def table(stack: Any) -> str:
    name = os.environ["CONNECTIONS_TABLE"]
    ConnectionStore(name).put(DEMO)
    return name


def test_a_read_ahead_overlaps_and_get_uses_it(table: str) -> None:
    store = SlowStore(table)
    store.delay = 0.3
    started = time.monotonic()
    store.read_ahead("ahead-demo")
    assert time.monotonic() - started < 0.1  # it returns at once
    time.sleep(0.3)  # the caller's other work (the registry's check)
    assert store.get("ahead-demo") == DEMO
    assert time.monotonic() - started < 0.55  # overlapped: not 0.3 + 0.3
    assert store.reads == ["ahead-demo"]  # one read, not two
    store.read_ahead("ahead-demo")  # cached now: nothing read
    assert store.get("ahead-demo") == DEMO and store.reads == ["ahead-demo"]


def test_a_failed_read_ahead_fails_get_and_is_not_remembered(table: str) -> None:
    store = SlowStore(table)
    store.fail = True
    store.read_ahead("ahead-demo")
    with pytest.raises(ServiceUnavailable) as unavailable:
        store.get("ahead-demo")
    assert unavailable.value.code == "store_unavailable"
    store.fail = False
    assert store.get("ahead-demo") == DEMO  # read again
    assert store.reads == ["ahead-demo", "ahead-demo"]


def test_unknown_and_invalid_names(table: str) -> None:
    store = SlowStore(table)
    store.read_ahead("ahead-missing")
    with pytest.raises(NotFound):
        store.get("ahead-missing")
    with pytest.raises(NotFound):
        store.get("ahead-missing")  # unknown names are cached too
    store.read_ahead("../bad name")  # never read
    with pytest.raises(NotFound):
        store.get("../bad name")
    assert store.reads == ["ahead-missing"]


def test_a_read_begun_longer_ago_than_the_cache_allows_is_not_used(table: str) -> None:
    """A container frozen mid-read thaws with an old read: get reads anew."""
    clock = Clock()
    store = SlowStore(table, ttl_seconds=10.0, clock=clock)
    store.delay = 0.3
    store.read_ahead("ahead-demo")
    clock.now += 11  # the read began 11 s ago and is still running
    assert store.get("ahead-demo") == DEMO
    assert store.reads == ["ahead-demo", "ahead-demo"]


def test_a_read_ahead_queued_behind_a_busy_pool_is_dropped(table: str) -> None:
    release = threading.Event()
    pool = connections_module._reads_ahead()
    busy = [pool.submit(release.wait, 10) for _ in range(pool._max_workers)]
    try:
        store = SlowStore(table)
        store.read_ahead("ahead-demo")  # queued: every worker is busy
        started = time.monotonic()
        assert store.get("ahead-demo") == DEMO  # read here instead of waiting for the pool
        assert time.monotonic() - started < 5
        assert store.reads == ["ahead-demo"]
    finally:
        release.set()
        for future in busy:
            future.result()
    store.read_ahead("ahead-demo")  # the dropped read left nothing behind: cached, nothing read
    assert store.reads == ["ahead-demo"]


def test_a_revoked_agent_is_refused_by_the_registry_even_with_the_store_down(
    stack: Any, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read runs next to the registry's check; the registry's refusal is the answer."""
    from wardgate import cli, runtime

    register_agent(stack, "agent-1", "alice@example.com")
    assert cli.main(["revoke", "--subject", "agent-1", "--reason", "test", "--by", "root"]) == 0
    gateway = runtime.http_gateway()
    gateway.connections._cache.clear()  # the connection is read again, next to the registry

    def down(name: str) -> Connection | None:
        raise ServiceUnavailable("connection store unavailable (test)", code="store_unavailable")

    monkeypatch.setattr(gateway.connections, "_load", down)
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        response = client.get("/http/demo/anything", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "agent_revoked"
