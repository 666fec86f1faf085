"""What every TCP session shares: the core (the gate's admission and decisions, credentials,
approvals), the session recorder, the table of live sessions, and a cache of parsed SQL.

Built once per task by ``tcp.server``; sessions of every protocol take it as their one dependency.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from wardgate.connections import Connection
from wardgate.credentials import CredentialStore
from wardgate.gate import Gate, decide_on, sql_operation_record
from wardgate.identity import Identity
from wardgate.operations import UnparseableOperation
from wardgate.operations.sql import Dialect, SqlOperation, parse_sql
from wardgate.policy.engine import Decision, PolicySet
from wardgate.tcp.config import SessionLimits
from wardgate.tcp.recorder import SessionRecorder
from wardgate.tcp.sessions import SessionTable

PARSE_CACHE_ENTRIES = 4096
SESSION_DECISIONS = 256
Parsed = tuple[SqlOperation | UnparseableOperation, dict[str, Any]]
PARSE_CACHE_TEXT = 8 * 1024  # longer statements are parsed every time (they are rarely repeated)


class ParseCache:
    """Parsed SQL by (dialect, exact text), least recently used first out.

    Parsing is a pure function of the text, so a cached parse is the parse: the decision is still
    made on every statement by the policy in force (a cache of decisions could not see a rule's
    time window open or close). Drivers repeat statement texts (prepared statements, ORMs), and
    parsing is most of a decision's cost.
    """

    def __init__(self, entries: int = PARSE_CACHE_ENTRIES) -> None:
        self.entries = entries
        self._cache: OrderedDict[tuple[str, str], Parsed] = OrderedDict()

    def parse(self, text: str, dialect: Dialect) -> Parsed:
        """The operation and its recorded form (texts masked: also a pure function of the text)."""
        key = (dialect, text)
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found
        try:
            operation: SqlOperation | UnparseableOperation = parse_sql(text, dialect)
        except UnparseableOperation as unparseable:
            operation = unparseable  # policy decides (settings.unparseable); never run unchecked
        parsed = (operation, sql_operation_record(operation, dialect))
        if len(text) <= PARSE_CACHE_TEXT:
            self._cache[key] = parsed
            if len(self._cache) > self.entries:
                self._cache.popitem(last=False)
        return parsed


class SessionDecisions:
    """One session's decisions by (policy version, statement text).

    The identity and the connection are the session's own and never change, so with the same
    policy version and text the engine can only answer the same, unless a rule has a time window
    (then nothing is kept: its answer depends on the clock). Approval grants are looked up after
    the decision, never cached here. ``tests/test_tcp_core.py`` checks it agrees with the
    uncached path on the policy corpora.
    """

    def __init__(
        self,
        identity: Identity,
        connection: Connection,
        parses: ParseCache,
        dialect: Dialect,
        entries: int = SESSION_DECISIONS,
    ) -> None:
        self.identity = identity
        self.connection = connection
        self.parses = parses
        self.dialect = dialect
        self.entries = entries
        self._cache: OrderedDict[tuple[str, str], tuple[Decision, dict[str, Any]]] = OrderedDict()

    def decide(self, policy_set: PolicySet, text: str) -> tuple[Decision, dict[str, Any]]:
        """The decision on ``text`` and its operation as recorded."""
        key = (policy_set.version, text)
        found = self._cache.get(key)
        if found is not None:
            return found
        operation, recorded = self.parses.parse(text, self.dialect)
        answer = (decide_on(policy_set, self.identity, self.connection, operation), recorded)
        if policy_set.timeless and len(text) <= PARSE_CACHE_TEXT:
            self._cache[key] = answer
            if len(self._cache) > self.entries:
                self._cache.popitem(last=False)
        return answer


@dataclass
class TcpServices:
    gate: Gate
    credentials: CredentialStore
    recorder: SessionRecorder
    sessions: SessionTable
    limits: SessionLimits
    tls: ssl.SSLContext | None  # None: no certificate, so every client is refused (TLS is required)
    parses: ParseCache = field(default_factory=ParseCache)
    cancel_targets: dict[int, Any] = field(default_factory=dict)  # gateway process id -> its session
    # The MySQL greeting speaks before the client names its connection: it shows the configured
    # version (WARDGATE_TCP_MYSQL_SERVER_VERSION), else that of the last database a session logged
    # in to (one fleet of servers behind a task is the common case).
    mysql_server_version: str = ""
    mysql_learned_version: str = ""
    mysql_sessions: dict[int, Any] = field(default_factory=dict)  # greeting's connection id -> session

    async def policy_set(self) -> PolicySet:
        """The policy in force; reads DynamoDB (in a worker thread) only when the cache is stale."""
        fresh = self.gate.policies.fresh()
        return fresh if fresh is not None else await asyncio.to_thread(self.gate.policies.current)
