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
from wardgate.gate import RECORDED_REQUEST_MASKING, Gate, decide_on, sql_operation_record
from wardgate.identity import Identity
from wardgate.masking.digits import QuietTexts
from wardgate.operations import UnparseableOperation
from wardgate.operations.sql import Dialect, SqlOperation, parse_sql
from wardgate.operations.sql_shapes import Template, admit, instantiate, shape_of
from wardgate.policy.engine import Decision, PolicySet
from wardgate.tcp.config import SessionLimits
from wardgate.tcp.recorder import SessionRecorder
from wardgate.tcp.sessions import SessionTable

PARSE_CACHE_ENTRIES = 4096
SHAPE_ENTRIES = 4096
SESSION_DECISIONS = 256
Parsed = tuple[SqlOperation | UnparseableOperation, dict[str, Any]]
ParseKey = tuple[str, str]
"""What a parse is the parse of: ``("text", text)``, or ``("shape", key)`` for every text of an
admitted shape (operations/sql_shapes.py): the analysis, hence the decision, is the same for all."""
PARSE_CACHE_TEXT = 8 * 1024  # longer statements are parsed every time (they are rarely repeated)
RECORDED_TEXTS = QuietTexts(RECORDED_REQUEST_MASKING)
"""What the agent sent (statement texts, bound values), masked for the recording: exactly
``mask_text(text, RECORDED_REQUEST_MASKING).value``, one scan per form of texts that differ only in
their digits (masking/digits.py). Used on the event loop only."""
_SEEN_ONCE = "seen once"  # a shape's state before its second text: admitted then, or refused
_REFUSED = "refused"


class ParseCache:
    """Parsed SQL by (dialect, exact text), least recently used first out; and by shape.

    Parsing is a pure function of the text, so a cached parse is the parse: the decision is still
    made on every statement by the policy in force (a cache of decisions could not see a rule's
    time window open or close). Drivers repeat statement texts (prepared statements, ORMs), and
    parsing is most of a decision's cost. Texts written with their values (the simple and text
    protocols) rarely repeat: those whose shape (``sql_shapes``) is admitted take its analysis
    with their own text, which is what ``parse_sql`` would give them, and are not kept by text.
    A shape is tried on its second text, so one-off statements cost no more than the scan.
    """

    def __init__(self, entries: int = PARSE_CACHE_ENTRIES, shapes: int = SHAPE_ENTRIES) -> None:
        self.entries = entries
        self.shape_entries = shapes
        self._cache: OrderedDict[tuple[str, str], Parsed] = OrderedDict()
        self._shapes: OrderedDict[tuple[str, str], Template | str] = OrderedDict()

    def parse(self, text: str, dialect: Dialect) -> Parsed:
        """The operation and its recorded form (texts masked: also a pure function of the text)."""
        return self.lookup(text, dialect)[1]

    def lookup(self, text: str, dialect: Dialect) -> tuple[ParseKey, Parsed]:
        """Like ``parse``, and the key whose texts all have this analysis."""
        key = (dialect, text)
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return ("text", text), found
        shape = shape_of(text) if len(text) <= PARSE_CACHE_TEXT else None
        state: Template | str | None = None
        if shape is not None:
            state = self._shapes.get((dialect, shape.key))
            if isinstance(state, Template):
                operation = instantiate(state, text, shape)
                if operation is not None:
                    self._shapes.move_to_end((dialect, shape.key))
                    return ("shape", shape.key), (operation, _shaped_record(state, operation))
        try:
            parsed_operation: SqlOperation | UnparseableOperation = parse_sql(text, dialect)
        except UnparseableOperation as unparseable:
            parsed_operation = unparseable  # policy decides (settings.unparseable); never run unchecked
        parsed = (parsed_operation, sql_operation_record(parsed_operation, dialect))
        if len(text) <= PARSE_CACHE_TEXT:
            self._cache[key] = parsed
            if len(self._cache) > self.entries:
                self._cache.popitem(last=False)
        if shape is not None and state in (None, _SEEN_ONCE) and isinstance(parsed_operation, SqlOperation):
            self._shapes[(dialect, shape.key)] = (
                _SEEN_ONCE if state is None else admit(text, shape, parsed_operation, dialect) or _REFUSED
            )
            if len(self._shapes) > self.shape_entries:
                self._shapes.popitem(last=False)
        return ("text", text), parsed


def _shaped_record(template: Template, operation: SqlOperation) -> dict[str, Any]:
    """``sql_operation_record(operation)`` for a text of ``template``'s shape: only the text is its own."""
    text = RECORDED_TEXTS.masked(operation.statements[0].text)
    return {
        "protocol": "sql",
        "dialect": template.dialect,
        "statements": [{"text": text, **template.recorded}],
    }


class SessionDecisions:
    """One session's decisions by (policy version, statement text or shape).

    The identity and the connection are the session's own and never change, so with the same
    policy version and the same analysis (one text, or one admitted shape: ``ParseCache``) the
    engine can only answer the same, unless a rule has a time window (then nothing is kept: its
    answer depends on the clock). Approval grants are looked up after the decision, never cached
    here. ``tests/test_tcp_core.py`` checks it agrees with the uncached path on the policy corpora.
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
        # (policy version, parse key) -> the decision, and the recorded form for a text key
        self._cache: OrderedDict[tuple[str, ParseKey], tuple[Decision, dict[str, Any] | None]] = OrderedDict()

    def decide(self, policy_set: PolicySet, text: str) -> tuple[Decision, dict[str, Any]]:
        """The decision on ``text`` and its operation as recorded."""
        version = policy_set.version
        found = self._cache.get((version, ("text", text)))
        if found is not None and found[1] is not None:
            return found[0], found[1]
        key, (operation, recorded) = self.parses.lookup(text, self.dialect)
        if key[0] == "shape":
            kept = self._cache.get((version, key))
            if kept is not None:
                return kept[0], recorded
        decision = decide_on(policy_set, self.identity, self.connection, operation)
        if policy_set.timeless and len(text) <= PARSE_CACHE_TEXT:
            self._cache[(version, key)] = (decision, recorded if key[0] == "text" else None)
            if len(self._cache) > self.entries:
                self._cache.popitem(last=False)
        return decision, recorded


@dataclass
class TcpServices:
    gate: Gate
    credentials: CredentialStore
    recorder: SessionRecorder
    sessions: SessionTable
    limits: SessionLimits
    tls: ssl.SSLContext | None  # None: no certificate, so every client is refused (TLS is required)
    # The same certificate for HTTPS (the Kubernetes listener): ALPN http/1.1 only; None: no listener.
    http_tls: ssl.SSLContext | None = None
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
