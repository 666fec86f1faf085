"""The TCP gateway's protocol-free parts: the parse cache, group commit, the session table and its
sweep, settings, the health endpoint."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.sql_bypass_corpus import BYPASS_CORPUS
from tests.test_guardrail_bypasses import AGENT, POLICY
from wardgate.connections import Connection
from wardgate.errors import Forbidden, NotFound, ServiceUnavailable
from wardgate.gate import decide_on, sql_operation_record
from wardgate.identity import Identity
from wardgate.operations import UnparseableOperation
from wardgate.operations.sql import parse_sql
from wardgate.policy.document import build
from wardgate.recording import MemoryStream
from wardgate.tcp.config import Listener, SessionLimits, TcpSettings
from wardgate.tcp.recorder import GroupCommit, utc_now_iso
from wardgate.tcp.services import ParseCache, SessionDecisions
from wardgate.tcp.sessions import SessionTable, TooManySessions

PG = Connection("pg", "sql", "postgres://db", allowed_groups=("ci",))
MY = Connection("my", "sql", "mysql://db", allowed_groups=("ci",))


def _uncached(text: str, dialect: str) -> object:
    try:
        return parse_sql(text, dialect)  # type: ignore[arg-type]
    except UnparseableOperation as unparseable:
        return unparseable


@pytest.mark.parametrize(("dialect", "sql", "expectation"), BYPASS_CORPUS)
def test_cached_and_uncached_decisions_agree_on_the_bypass_corpus(dialect, sql, expectation):
    cache = ParseCache()
    connection = PG if dialect == "postgres" else MY
    uncached = _uncached(sql, dialect)
    expected = decide_on(POLICY, AGENT, connection, uncached)
    for _ in range(2):  # the miss, then the hit
        operation, recorded = cache.parse(sql, dialect)
        assert decide_on(POLICY, AGENT, connection, operation) == expected
        assert recorded == sql_operation_record(uncached, dialect)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["postgres", "mysql"]))
def test_cached_and_uncached_decisions_agree_on_any_text(text, dialect):
    cache = ParseCache(entries=8)
    connection = PG if dialect == "postgres" else MY
    expected = decide_on(POLICY, AGENT, connection, _uncached(text, dialect))
    assert decide_on(POLICY, AGENT, connection, cache.parse(text, dialect)[0]) == expected
    assert decide_on(POLICY, AGENT, connection, cache.parse(text, dialect)[0]) == expected


@pytest.mark.parametrize(("dialect", "sql", "expectation"), BYPASS_CORPUS)
def test_a_sessions_cached_decisions_agree_with_uncached_ones(dialect, sql, expectation):
    connection = PG if dialect == "postgres" else MY
    decisions = SessionDecisions(AGENT, connection, ParseCache(), dialect)
    expected = decide_on(POLICY, AGENT, connection, _uncached(sql, dialect))
    assert decisions.decide(POLICY, sql)[0] == expected  # computed
    assert decisions.decide(POLICY, sql)[0] == expected  # kept


def test_decisions_under_time_windows_are_never_kept():
    windowed = build(
        {
            "connections": [{"name": "pg", "kind": "sql", "upstream_url": "postgres://db"}],
            "rules": [
                {
                    "name": "office hours",
                    "effect": "allow",
                    "connections": ["pg"],
                    "time": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"},
                    "match": {"sql": {"kinds": ["select"]}},
                }
            ],
        }
    )
    assert not windowed.timeless and POLICY.timeless
    decisions = SessionDecisions(AGENT, PG, ParseCache(), "postgres")
    decisions.decide(windowed, "SELECT 1")
    assert not decisions._cache  # the clock decides: asked anew every time
    decisions.decide(POLICY, "SELECT 1")
    assert len(decisions._cache) == 1


def test_the_parse_cache_is_bounded():
    cache = ParseCache(entries=3)
    for i in range(10):
        cache.parse(f"SELECT {i}", "postgres")
    assert len(cache._cache) == 3
    cache.parse("SELECT " + "1," * 10_000 + "1", "postgres")  # long texts are parsed, not kept
    assert len(cache._cache) == 3


class FlakyStream:
    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.calls = 0
        self.down = False

    def put(self, line: bytes) -> None:
        self.put_batch([line])

    def put_batch(self, lines: list[bytes]) -> None:
        self.calls += 1
        if self.down:
            raise ConnectionError("down")
        self.lines.extend(lines)


def test_group_commit_batches_concurrent_writers_and_fails_them_all_closed():
    stream = FlakyStream()

    async def main() -> None:
        commit = GroupCommit(stream)
        await asyncio.gather(*(commit.write({"n": i}) for i in range(200)))
        assert len(stream.lines) == 200 and stream.calls < 20  # batched while one is in flight
        assert sorted(json.loads(line)["n"] for line in stream.lines) == list(range(200))
        stream.down = True
        results = await asyncio.gather(*(commit.write({"n": i}) for i in range(5)), return_exceptions=True)
        assert all(isinstance(r, ServiceUnavailable) and r.code == "recording_unavailable" for r in results)
        stream.down = False
        await commit.write({"n": "after"})
        declared, after = (json.loads(line) for line in stream.lines[-2:])
        assert declared["event"] == "writer_lost" and len(declared["lost"]) == 5  # what may not have arrived
        assert {k: v for k, v in after.items() if k != "chain"} == {"n": "after"}

    asyncio.run(main())


def test_group_commit_in_line_writes_to_an_in_memory_sink():
    stream = MemoryStream()

    async def main() -> None:
        commit = GroupCommit(stream, inline=True)
        await asyncio.gather(*(commit.write({"n": i}) for i in range(10)))

    asyncio.run(main())
    assert len(stream.lines) == 10


@pytest.mark.parametrize("inline", [True, False])
def test_queued_events_report_only_failures_to_their_session(inline):
    stream = FlakyStream()
    failures: list[BaseException] = []

    async def main() -> None:
        commit = GroupCommit(stream, inline=inline)
        for i in range(3):
            commit.enqueue_later({"n": i}, None, failures.append)
        await asyncio.sleep(0.05)
        assert not failures and len(stream.lines) == 3
        stream.down = True
        commit.enqueue_later({"n": "lost"}, None, failures.append)
        await asyncio.sleep(0.05)
        assert len(failures) == 1 and isinstance(failures[0], ServiceUnavailable)
        assert failures[0].code == "recording_unavailable"
        with pytest.raises(ServiceUnavailable):
            await commit.write({"n": "refused"})

    asyncio.run(main())


def test_event_times_are_isoformat_in_utc():
    before = datetime.now(UTC)
    stamped = utc_now_iso()
    after = datetime.now(UTC)
    parsed = datetime.fromisoformat(stamped)
    assert before <= parsed <= after and stamped == parsed.isoformat()


@dataclass(eq=False)
class FakeSession:
    identity: Identity
    connection: Connection = PG
    opened_at: float = 0.0
    verified_at: float = 0.0
    ended: list[tuple[str, str]] = field(default_factory=list)

    def terminate(self, reason: str, code: str) -> None:
        self.ended.append((reason, code))


class Connections:
    def __init__(self) -> None:
        self.current: dict[str, Connection] = {"pg": PG}

    def get(self, name: str) -> Connection:
        if name not in self.current:
            raise NotFound(f"no connection named {name!r}", code="unknown_connection")
        return self.current[name]


class Registry:
    def __init__(self) -> None:
        self.error: Exception | None = None

    def check(self, identity: Identity, connection: str | None = None) -> Identity:
        if self.error is not None:
            raise self.error
        return identity


def test_the_session_table_limits_sessions_per_identity():
    table = SessionTable(SessionLimits(max_sessions_per_identity=2))
    a, b, c = (FakeSession(AGENT) for _ in range(3))
    table.add(a)
    table.add(b)
    with pytest.raises(TooManySessions):
        table.add(c)
    table.add(FakeSession(Identity("agent-2", AGENT.issuer, ("ci",))))  # another identity
    table.discard(a)
    table.add(c)
    assert len(table) == 3


def test_the_sweep_ends_revoked_expired_and_unverifiable_sessions():
    now = {"wall": 1000.0, "clock": 50.0}
    limits = SessionLimits(token_grace_s=60, max_session_s=3600, unverified_grace_s=10)
    table = SessionTable(limits, wall=lambda: now["wall"], clock=lambda: now["clock"])
    fresh = FakeSession(Identity("a", AGENT.issuer, ("ci",), expires_at=2000), opened_at=50, verified_at=50)
    expiring = FakeSession(Identity("b", AGENT.issuer, ("ci",), expires_at=900), opened_at=50, verified_at=50)
    old = FakeSession(Identity("c", AGENT.issuer, ("ci",), expires_at=9999), opened_at=-4000, verified_at=50)
    for session in (fresh, expiring, old):
        table.add(session)
    registry, connections = Registry(), Connections()
    asyncio.run(table.sweep(registry, connections))  # type: ignore[arg-type]
    assert fresh.ended == [] and expiring.ended[0][1] == "token_expired"
    assert old.ended[0][1] == "session_too_long"

    registry.error = ServiceUnavailable("registry down", code="registry_unavailable")
    now["clock"] = 55.0
    asyncio.run(table.sweep(registry, connections))  # type: ignore[arg-type]
    assert fresh.ended == []  # a blip ends nothing...
    now["clock"] = 70.0
    asyncio.run(table.sweep(registry, connections))  # type: ignore[arg-type]
    assert fresh.ended[-1][1] == "registry_unavailable"  # ...a registry gone for long ends sessions

    revoked = FakeSession(Identity("d", AGENT.issuer, ("ci",)), opened_at=70, verified_at=70)
    table.add(revoked)
    registry.error = Forbidden("agent 'd' has been revoked", code="agent_revoked")
    asyncio.run(table.sweep(registry, connections))  # type: ignore[arg-type]
    assert revoked.ended == [("agent 'd' has been revoked", "agent_revoked")]

    registry.error = None
    narrowed, removed = (
        FakeSession(Identity(s, AGENT.issuer, ("ci",)), opened_at=70, verified_at=70) for s in "ef"
    )
    removed.connection = MY
    table.add(narrowed)
    table.add(removed)
    connections.current["pg"] = Connection("pg", "sql", "postgres://db", allowed_groups=("admins",))
    asyncio.run(table.sweep(registry, connections))  # type: ignore[arg-type]
    assert narrowed.ended[-1][1] == "connection_changed"
    assert removed.ended[-1][1] == "connection_removed"


def test_settings_come_from_the_environment():
    tcp = TcpSettings.from_env(
        {
            "WARDGATE_TCP_LISTENERS": '[{"protocol": "postgres", "port": 6432}]',
            "WARDGATE_TCP_TOKEN_GRACE_S": "5",
            "WARDGATE_TCP_HEALTH_PORT": "9000",
        }
    )
    assert tcp.listeners == (Listener("postgres", 6432),)
    assert tcp.limits.token_grace_s == 5 and tcp.health_port == 9000
    with pytest.raises(ValueError, match="not one of"):
        TcpSettings.from_env({"WARDGATE_TCP_LISTENERS": '[{"protocol": "gopher", "port": 70}]'})


def test_the_health_endpoint_answers_while_listening(stack):
    from wardgate.config import Settings
    from wardgate.tcp.server import GatewayThread, build_services

    tcp = TcpSettings(listeners=(Listener("postgres", 0, "127.0.0.1"),), health_port=0)
    thread = GatewayThread(lambda: build_services(Settings.from_env(), tcp), tcp).start()
    try:
        assert thread.gateway is not None and thread.gateway.health_port
        url = f"http://127.0.0.1:{thread.gateway.health_port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as answer:
            assert answer.status == 200 and json.loads(answer.read())["status"] == "ok"
    finally:
        thread.stop()
