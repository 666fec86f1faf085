"""What a candidate policy would have decided on the recorded operations (``wardgate policy replay``).

Every operation the gateway decided left one event that carries the decision: ``request`` (it was
forwarded), ``refused`` or ``held`` (HTTP, Kubernetes API, Data API), ``statement`` or
``statement_refused`` (TCP sessions), ``terminal_start`` (terminal sessions). One query through the
auditors' engine (auditing/query.py) fetches those events of the window, with only what a decision
needs: the recorded operation, the identity (a session's statements take their session's), the
recorded decision, the request body and its type (HTTP body rules). Each operation is rebuilt as the
gateway built it, decided with the candidate policy by ``gate.decide_on`` (the gateway's own
decision, connection groups included) at the recorded time (rules with time windows), and compared
with the recorded decision. Nothing is written anywhere but the local cache of the bucket that
every ``wardgate recordings`` command keeps.

Not replayed, and counted as such rather than guessed:

* an event without an operation (a terminal session's start: the recording holds no command);
* an HTTP request whose recorded path, query or body differs from what was decided (masked values,
  a body cut at the recording limit or withheld) when a rule of the candidate policy that could
  decide it reads that part (a rule on paths, query or body fields); when no such rule exists,
  that part cannot change the decision and the operation is replayed;
* Data API statements parsed in another SQL dialect than the candidate connection's;
* a malformed recorded operation or identity.

Not counted at all: the execution of an operation held for approval (its ``held`` event is the
decision), the executions of SQL cursors (decided when declared), and refusals before policy ran
(no token, a revoked agent: the candidate policy changes nothing there).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import orjson

from wardgate.auditing.questions import literal
from wardgate.auditing.timeline import inert
from wardgate.connections import Connection
from wardgate.gate import decide_on
from wardgate.identity import Identity
from wardgate.operations import UnparseableOperation
from wardgate.operations.http import HttpOperation
from wardgate.operations.k8s import K8sOperation
from wardgate.operations.shell import ShellCommand, ShellOperation
from wardgate.operations.sql import SqlOperation, SqlStatement
from wardgate.policy.engine import PolicySet
from wardgate.policy.rules import TimeWindow

DECIDED_KINDS = ("request", "refused", "held", "statement", "statement_refused", "terminal_start")
SESSION_KINDS = frozenset({"statement", "statement_refused", "terminal_start"})
APPROVED_KEYS = ("approval", "approval_grant", "approved_by")  # an allow that policy sent to approval
MASKED = "[masked:"  # what the recording's masking leaves in a value (masking/engine.py)
BATCH_ROWS = 5000
CACHE_ENTRIES = 65536  # decisions remembered per (connection, identity, operation) when rules have no clock

CHANGES: dict[str, str] = {
    "allowed_to_denied": "allowed → denied",
    "denied_to_allowed": "denied → allowed",
    "allowed_to_approval": "allowed → approval",
    "denied_to_approval": "denied → approval",
    "approval_to_allowed": "approval → allowed",
    "approval_to_denied": "approval → denied",
    "other_rule": "same outcome, another rule",
    "unchanged": "unchanged",
    "cannot_replay": "cannot replay",
}
_WORD = {"allow": "allowed", "deny": "denied", "require_approval": "approval"}
_OUTCOMES = frozenset(_WORD)


class CannotReplay(ValueError):
    """The recording does not hold the operation as it was decided; ``reason`` says what is missing."""


@dataclass(frozen=True)
class Verdict:
    """A decision as the report shows it: the recorded one, or the candidate policy's."""

    outcome: str  # allow, deny, require_approval
    rule: str
    reason: str = ""
    note: str = ""  # recorded: "approved by ..." or "window grant" (policy had asked for approval)

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"outcome": self.outcome, "rule": self.rule, "reason": self.reason}
        if self.note:
            shown["note"] = self.note
        return shown


@dataclass(frozen=True)
class Replayed:
    """One recorded operation, its recorded decision and the candidate's. The identity and the
    operation stay as recorded (JSON) until an example is shown: most rows are only counted."""

    record_id: str
    seq: int | None
    at_us: int  # the event's time, microseconds since the epoch
    kind: str
    connection: str
    protocol: str
    identity_text: str | None
    operation_text: str | None
    recorded: Verdict
    candidate: Verdict | None
    change: str
    why: str = ""  # cannot_replay: what is missing

    @property
    def at(self) -> datetime:
        return utc(self.at_us)

    def sort_key(self) -> tuple[int, str, int]:
        return (self.at_us, self.record_id, self.seq or 0)

    def identity(self) -> dict[str, Any]:
        """``subject``, ``owner`` and ``groups`` as recorded (absent ones None or empty)."""
        parsed = _loads(self.identity_text)
        parsed = parsed if isinstance(parsed, dict) else {}
        groups = parsed.get("groups")
        return {
            "subject": parsed.get("subject") if isinstance(parsed.get("subject"), str) else None,
            "owner": parsed.get("owner") if isinstance(parsed.get("owner"), str) else None,
            "groups": [str(g) for g in groups] if isinstance(groups, list) else [],
        }

    def operation(self) -> str:
        return summary(_loads(self.operation_text))

    def to_json(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "seq": self.seq,
            "time": self.at.astimezone(UTC).isoformat(),
            "event": self.kind,
            "connection": self.connection,
            "protocol": self.protocol,
            "identity": self.identity(),
            "operation": self.operation(),
            "recorded": self.recorded.to_json(),
            "candidate": self.candidate.to_json() if self.candidate else None,
            "change": self.change,
            **({"why": self.why} if self.why else {}),
        }


def utc(microseconds: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=microseconds)


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


@dataclass
class Report:
    """Counts of every change, by connection and by rule, and the first examples of each."""

    policy_version: str
    since: datetime
    until: datetime | None
    connection: str | None
    examples_per_change: int
    # (change, connection, recorded rule, candidate rule, why, recorded policy version) -> operations:
    # one count per operation while replaying; the views below are made from it by finish().
    tally: Counter[tuple[str, str, str, str, str, str]] = field(default_factory=Counter)
    examples: dict[str, list[Replayed]] = field(default_factory=dict)  # the earliest, by time
    operations: int = 0
    changes: Counter[str] = field(default_factory=Counter)
    by_connection: dict[str, Counter[str]] = field(default_factory=dict)
    by_rule: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (change, recorded, candidate)
    cannot_replay: Counter[str] = field(default_factory=Counter)  # why -> operations
    recorded_versions: Counter[str] = field(default_factory=Counter)

    def wants(self, change: str, key: tuple[int, str, int]) -> bool:
        """Whether an operation of ``change`` at ``key`` (``Replayed.sort_key``) is an example."""
        kept = self.examples.get(change)
        if kept is None or len(kept) < self.examples_per_change:
            return self.examples_per_change > 0
        return key < kept[-1].sort_key()

    def keep(self, replayed: Replayed) -> None:
        kept = self.examples.setdefault(replayed.change, [])
        bisect.insort(kept, replayed, key=Replayed.sort_key)
        del kept[self.examples_per_change :]

    def add(self, replayed: Replayed, recorded_version: str) -> None:
        candidate = replayed.candidate.rule if replayed.candidate else ""
        key = (replayed.change, replayed.connection, replayed.recorded.rule, candidate, replayed.why)
        self.tally[(*key, recorded_version)] += 1
        if self.wants(replayed.change, replayed.sort_key()):
            self.keep(replayed)

    def finish(self) -> None:
        """The counts by change, connection, rule, reason and recorded version, from the tally."""
        self.operations = 0
        self.changes, self.by_connection, self.by_rule = Counter(), {}, Counter()
        self.cannot_replay, self.recorded_versions = Counter(), Counter()
        for (change, connection, old, new, why, version), n in self.tally.items():
            self.operations += n
            self.changes[change] += n
            self.by_connection.setdefault(connection, Counter())[change] += n
            self.recorded_versions[version] += n
            if change == "cannot_replay":
                self.cannot_replay[why] += n
            else:
                self.by_rule[(change, old, new)] += n

    @property
    def changed(self) -> int:
        return sum(
            n for c, n in self.changes.items() if c not in ("unchanged", "other_rule", "cannot_replay")
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "candidate_policy": self.policy_version,
            "since": self.since.astimezone(UTC).isoformat(),
            "until": self.until.astimezone(UTC).isoformat() if self.until else None,
            "connection": self.connection,
            "operations": self.operations,
            "changed": self.changed,
            "changes": {change: self.changes.get(change, 0) for change in CHANGES},
            "by_connection": {
                name: {c: n for c, n in counts.items()} for name, counts in sorted(self.by_connection.items())
            },
            "by_rule": [
                {"change": change, "recorded_rule": old, "candidate_rule": new, "operations": n}
                for (change, old, new), n in sorted(
                    self.by_rule.items(), key=lambda item: (-item[1], item[0])
                )
            ],
            "cannot_replay": dict(self.cannot_replay.most_common()),
            "recorded_policy_versions": dict(self.recorded_versions.most_common()),
            "examples": {
                change: [r.to_json() for r in self.examples[change]]
                for change in CHANGES
                if change in self.examples
            },
        }


# ---------------------------------------------------------------- the query

# What each row needs from its event, extracted in one pass over the line (indexes are 1-based).
_EXTRACTED = (
    "$.operation",
    "$.decision",
    "$.identity",
    "$.request.body",
    '$.request.headers."content-type"',
    "$.request.approval",  # set on the execution of an operation held earlier: not a decision
)


def _timestamp(value: datetime) -> str:
    return f"TIMESTAMPTZ {literal(value.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f') + '+00')}"


def replay_sql(since: datetime, until: datetime | None, connection: str | None) -> str:
    """The recorded decisions in [since, until) (DuckDB, over ``event_rows``): one row each, with
    the session's identity for a TCP session's statements. Built from constants and literals."""
    kinds = ", ".join(literal(k) for k in DECIDED_KINDS)
    where = [
        f"kind IN ({kinds})",
        "decision IS NOT NULL",
        "rule IS NOT NULL",
        f"ts >= {_timestamp(since)}",
    ]
    if until is not None:
        where.append(f"ts < {_timestamp(until)}")
    if connection is not None:
        where.append(f"connection = {literal(connection)}")
    paths = ", ".join(literal(p) for p in _EXTRACTED)
    sessions = (
        "SELECT record_id, ANY_VALUE(json_extract(raw, '$.identity')) AS identity FROM event_rows "
        "WHERE kind = 'session_start' GROUP BY record_id"
    )
    return (
        # Times as microseconds (Python makes datetimes of the few it needs); bodies of HTTP only.
        "SELECT o.record_id, o.seq, o.kind, epoch_us(o.ts), epoch_us(o.started_at), o.connection, "  # noqa: S608
        "o.protocol, o.policy_version, CAST(o.j[1] AS VARCHAR), CAST(o.j[2] AS VARCHAR), "
        "CAST(COALESCE(o.j[3], s.identity) AS VARCHAR), "
        "CASE WHEN o.protocol = 'http' THEN CAST(o.j[4] AS VARCHAR) END, o.j[5] ->> '$' "
        f"FROM (SELECT *, json_extract(raw, [{paths}]) AS j FROM event_rows "
        f"WHERE {' AND '.join(where)}) AS o "
        f"LEFT JOIN ({sessions}) AS s ON s.record_id = o.record_id "
        "WHERE o.j[6] IS NULL"
    )


def fetch(
    engine: Any, since: datetime, until: datetime | None, connection: str | None
) -> Iterator[tuple[Any, ...]]:
    """The rows of ``replay_sql``, in batches, through the local engine: its cache synced first and
    locked until the last row is read (as ``LocalEngine.run``: a sync elsewhere must not drop the
    parts being read)."""
    from wardgate.auditing.cache import HourWindow
    from wardgate.auditing.query import QueryFailed

    window = HourWindow.around(since, until)
    with engine.cache.locked():
        engine.last_sync = engine.cache.sync(window, engine.refresh)
        con = engine.connect(window)
        try:
            cursor = con.execute(replay_sql(since, until, connection))
            while batch := cursor.fetchmany(BATCH_ROWS):
                yield from batch
        except Exception as exc:  # DuckDB's errors: one line, no traceback (exit status 1)
            raise QueryFailed((str(exc).strip() or type(exc).__name__).splitlines()[0]) from None
        finally:
            con.close()


# ---------------------------------------------------------------- rebuilding what was decided


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise CannotReplay(f"{what} in the recording: not text")
    return value


def _optional(value: Any, what: str) -> str | None:
    return None if value is None else _text(value, what)


def _texts(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CannotReplay(f"{what} in the recording: not a list of text")
    return tuple(value)


def identity_of(recorded: Any) -> Identity:
    """The caller as the gateway knew it when it decided (after the agent registry's check)."""
    if not isinstance(recorded, dict) or not isinstance(recorded.get("subject"), str):
        raise CannotReplay("the recording holds no identity")
    return Identity(
        subject=recorded["subject"],
        issuer=_text(recorded.get("issuer", ""), "issuer"),
        groups=_texts(recorded.get("groups"), "groups"),
        client_id=_optional(recorded.get("client_id"), "client id"),
        token_id=_optional(recorded.get("token_id"), "token id"),
        owner=_optional(recorded.get("owner"), "owner"),
        owner_groups=_texts(recorded.get("owner_groups"), "owner groups"),
        registered=recorded.get("registered") is True,
    )


def recorded_body(body: Any) -> bytes | None:
    """The request body exactly as the agent sent it, or None when the recording does not hold it
    (masked values, cut at the recording limit, withheld)."""
    if not isinstance(body, dict) or "withheld" in body or body.get("truncated") is not False:
        return None
    if body.get("masked") != {}:  # counts of masked values; absent: unknown
        return None
    data = body.get("data")
    if not isinstance(data, str):
        return None
    if body.get("encoding") == "utf-8":
        return data.encode("utf-8")
    if body.get("encoding") == "base64":
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def _sql(recorded: dict[str, Any]) -> SqlOperation:
    dialect = recorded.get("dialect")
    if dialect not in ("postgres", "mysql"):
        raise CannotReplay(f"the recorded SQL dialect {str(dialect)[:20]!r} is unknown")
    statements = recorded.get("statements")
    if not isinstance(statements, list):
        raise CannotReplay("the recorded SQL operation has no statements")
    built = []
    for raw in statements:
        if not isinstance(raw, dict):
            raise CannotReplay("a recorded SQL statement is malformed")
        has_where = raw.get("has_where")
        if has_where is not None and not isinstance(has_where, bool):
            raise CannotReplay("a recorded SQL statement's has_where is not true, false or null")
        built.append(
            SqlStatement(
                text=_text(raw.get("text", ""), "statement text"),  # masked; rules never read it
                kind=_text(raw.get("kind"), "statement kind"),
                ddl_action=_optional(raw.get("ddl_action"), "DDL action"),
                object_type=_optional(raw.get("object_type"), "object type"),
                tables_read=_texts(raw.get("tables_read"), "tables read"),
                tables_written=_texts(raw.get("tables_written"), "tables written"),
                has_where=has_where,
                functions=_texts(raw.get("functions"), "functions"),
                features=_texts(raw.get("features"), "features"),
            )
        )
    return SqlOperation(dialect=dialect, statements=tuple(built))


def _k8s(recorded: dict[str, Any]) -> K8sOperation:
    resource_request = recorded.get("is_resource_request")
    if not isinstance(resource_request, bool):
        raise CannotReplay("the recorded Kubernetes operation is malformed")
    return K8sOperation(
        method=_text(recorded.get("method"), "method"),
        path=_text(recorded.get("path"), "path"),
        is_resource_request=resource_request,
        verb=_text(recorded.get("verb"), "verb"),
        api_group=_text(recorded.get("api_group"), "API group"),
        api_version=_text(recorded.get("api_version"), "API version"),
        namespace=_optional(recorded.get("namespace"), "namespace"),
        resource=_optional(recorded.get("resource"), "resource"),
        subresource=_optional(recorded.get("subresource"), "subresource"),
        name=_optional(recorded.get("name"), "name"),
        exec_command=_texts(recorded.get("exec_command"), "exec command"),
        authorized_verbs=_texts(recorded.get("authorized_verbs"), "authorized verbs"),
    )


def _shell(recorded: dict[str, Any]) -> ShellOperation:
    commands = recorded.get("commands")
    if not isinstance(commands, list) or not all(isinstance(c, dict) for c in commands):
        raise CannotReplay("the recorded shell operation has no commands")
    return ShellOperation(
        text=_text(recorded.get("text", ""), "command text"),
        commands=tuple(
            ShellCommand(
                argv=_texts(c.get("argv"), "argv"),
                program=_text(c.get("program", ""), "program"),
                effective_programs=_texts(c.get("effective_programs"), "programs"),
                operator=_optional(c.get("operator"), "operator"),
                redirects=_texts(c.get("redirects"), "redirects"),
                assignments=_texts(c.get("assignments"), "assignments"),
                context=_text(c.get("context", "main"), "context"),
            )
            for c in commands
        ),
        features=_texts(recorded.get("features"), "features"),
    )


def operation_of(
    recorded: Any, body: Any = None, content_type: str | None = None
) -> tuple[Any, frozenset[str]]:
    """The operation the gateway decided on, and which HTTP parts of it the recording does not hold
    as decided (``paths``, ``query``, ``body``), or CannotReplay."""
    if not isinstance(recorded, dict):
        raise CannotReplay("the recording holds no operation")
    if "unparseable" in recorded:  # policy decided on "unparseable", whatever the reason
        return UnparseableOperation(str(recorded["unparseable"])), frozenset()
    protocol = recorded.get("protocol")
    if protocol == "http":
        path = _text(recorded.get("path"), "path")
        query = _text(recorded.get("query", ""), "query")
        unknown = set()
        if MASKED in unquote(path):
            unknown.add("paths")
        if MASKED in unquote(query):
            unknown.add("query")
        sent = recorded_body(body)
        if sent is None:
            unknown.add("body")
        method = _text(recorded.get("method"), "method")
        operation = HttpOperation(method, path, query, sent or b"", content_type or "")
        return operation, frozenset(unknown)
    if protocol == "sql":
        if "cursor" in recorded:
            raise CannotReplay("an execution of a SQL cursor (its query was decided when declared)")
        return _sql(recorded), frozenset()
    if protocol == "k8s":
        return _k8s(recorded), frozenset()
    if protocol == "shell":
        return _shell(recorded), frozenset()
    raise CannotReplay(f"the recorded operation's protocol {str(protocol)[:20]!r} is unknown")


def summary(recorded: Any, limit: int = 240) -> str:
    """One line for the report: what the operation was, as recorded (values masked)."""
    if not isinstance(recorded, dict):
        return "(no operation recorded)"
    if "unparseable" in recorded:
        text = f"(unparseable: {recorded['unparseable']})"
    elif recorded.get("protocol") == "http":
        query = recorded.get("query") or ""
        text = f"{recorded.get('method')} {recorded.get('path')}{'?' + str(query) if query else ''}"
    elif recorded.get("protocol") == "k8s":
        text = f"{recorded.get('verb')} {recorded.get('method')} {recorded.get('path')}"
    elif recorded.get("protocol") == "sql":
        statements = recorded.get("statements") or []
        text = "; ".join(str(s.get("text", "")) for s in statements if isinstance(s, dict))
        if "cursor" in recorded:
            text = f"(cursor {recorded['cursor']})"
    elif recorded.get("protocol") == "shell":
        text = str(recorded.get("text", ""))
    else:
        text = f"({recorded.get('protocol')})"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def recorded_verdict(decision: Any) -> Verdict:
    """The recorded decision, as policy gave it: an allow by an approval or a window grant was
    policy's require_approval."""
    if not isinstance(decision, dict) or decision.get("outcome") not in _OUTCOMES:
        raise CannotReplay("the recorded decision is malformed")
    outcome, note = str(decision["outcome"]), ""
    if outcome == "allow" and any(decision.get(key) for key in APPROVED_KEYS):
        outcome = "require_approval"
        if decision.get("approval_grant"):
            note = "allowed by an open window approval"
        else:
            by = decision.get("approved_by") or []
            note = "approved" + (f" by {', '.join(map(str, by))}" if isinstance(by, list) and by else "")
    return Verdict(outcome, str(decision.get("rule")), str(decision.get("reason", "")), note)


def change_of(recorded: Verdict, candidate: Verdict) -> str:
    if recorded.outcome == candidate.outcome:
        return "unchanged" if recorded.rule == candidate.rule else "other_rule"
    return f"{_WORD[recorded.outcome]}_to_{_WORD[candidate.outcome]}"


# ---------------------------------------------------------------- deciding


@dataclass
class Replayer:
    """Decides recorded operations with ``policy_set`` over ``connections`` (the candidate's).

    Verdicts are remembered by what the engine's answer depends on: the operation as recorded, the
    caller (without its token's id: rules never read it), the connection, and, when rules have time
    windows, which of those windows hold at the recorded time (the only way the clock reaches a
    decision: ``Rule.applies_to``). ``tests/test_policy_replay.py`` checks it against deciding
    every operation afresh."""

    policy_set: PolicySet
    connections: dict[str, Connection]
    _identities: dict[str, tuple[Identity, Identity]] = field(default_factory=dict, init=False)
    _decided: dict[tuple[Any, ...], Verdict | CannotReplay] = field(default_factory=dict, init=False)
    _windows: tuple[TimeWindow, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        windows = (rule.window for rule in self.policy_set.rules if rule.window is not None)
        self._windows = tuple(dict.fromkeys(windows))

    def identity(self, text: str | None) -> tuple[Identity, Identity]:
        """The caller as recorded, and as a decision can depend on it (for remembering verdicts)."""
        if text is None:
            raise CannotReplay("the recording holds no identity")
        found = self._identities.get(text)
        if found is None:
            identity = identity_of(_loads(text))
            found = (identity, replace(identity, client_id=None, token_id=None, expires_at=None))
            if len(self._identities) >= CACHE_ENTRIES:
                self._identities.clear()
            self._identities[text] = found
        return found

    def admission(
        self, connection: Connection | None, name: str, kind: str, protocol: str, route: str
    ) -> Verdict | None:
        """What the gateway refuses before policy, under the candidate's connections: an unknown
        connection, or one that is no longer of the kind (or database) the operation reached."""
        if connection is None:
            return Verdict(
                "deny",
                "connection.unknown",
                f"the candidate policy has no connection {name!r}: the gateway would refuse it as unknown",
            )
        if connection.kind != route:
            return Verdict(
                "deny",
                "connection.kind",
                f"connection {name!r} would be a {connection.kind} connection: a {route} operation "
                "is not served on it",
            )
        if kind in SESSION_KINDS and protocol in ("postgres", "mysql"):
            scheme = connection.upstream_url.split(":", 1)[0]
            if scheme not in _session_schemes(protocol):
                return Verdict(
                    "deny",
                    "connection.kind",
                    f"connection {name!r} would not be a {protocol} database: the session is refused",
                )
        return None

    def decide(
        self,
        kind: str,
        connection_name: str,
        protocol: str | None,
        operation_text: str | None,
        identity_text: str | None,
        body_text: str | None,
        content_type: str | None,
        decided_us: int,
    ) -> Verdict:
        """The candidate's verdict on one recorded operation decided at ``decided_us``
        (microseconds since the epoch), or CannotReplay."""
        identity, caller = self.identity(identity_text)
        decided_at = utc(decided_us) if self._windows else None
        clock = tuple(window.contains(decided_at) for window in self._windows) if decided_at else ()
        key = (kind, connection_name, protocol, operation_text, caller, body_text, content_type, clock)
        found = self._decided.get(key)
        if found is not None:
            if isinstance(found, CannotReplay):
                raise found
            return found
        try:
            verdict = self._decide(
                kind,
                connection_name,
                protocol,
                operation_text,
                identity,
                body_text,
                content_type,
                decided_at or utc(decided_us),
            )
        except CannotReplay as cannot:
            self._remember(key, cannot)
            raise
        self._remember(key, verdict)
        return verdict

    def _remember(self, key: tuple[Any, ...], answer: Verdict | CannotReplay) -> None:
        if CACHE_ENTRIES <= 0:  # the benchmark's "every operation decided afresh"
            return
        if len(self._decided) >= CACHE_ENTRIES:
            self._decided.clear()
        self._decided[key] = answer

    def _decide(
        self,
        kind: str,
        connection_name: str,
        protocol: str | None,
        operation_text: str | None,
        identity: Identity,
        body_text: str | None,
        content_type: str | None,
        decided_at: datetime,
    ) -> Verdict:
        if operation_text is None:
            raise CannotReplay(f"the recording holds no operation ({kind} event)")
        recorded = _loads(operation_text)
        if not isinstance(recorded, dict):
            raise CannotReplay("the recorded operation is malformed")
        connection = self.connections.get(connection_name)
        # The route the operation came in by: a database session's statements are SQL (another
        # session's, its protocol's); a request's operation carries its connection's kind then.
        if kind in SESSION_KINDS:
            route = "sql" if protocol in ("postgres", "mysql") else str(protocol)
        else:
            route = str(recorded.get("protocol"))
        refused = self.admission(connection, connection_name, kind, str(protocol), route)
        if refused is not None:
            return refused
        assert connection is not None
        body = _loads(body_text)
        operation, unknown = operation_of(recorded, body, content_type)
        if isinstance(operation, SqlOperation) and kind not in SESSION_KINDS:
            from wardgate.sql_gateway import dialect_of

            speaks = dialect_of(connection.upstream_url)
            if speaks != operation.dialect:
                raise CannotReplay(
                    f"its statements were parsed as {operation.dialect}; connection {connection_name!r} "
                    f"would speak {speaks}"
                )
        if unknown:
            self._check_unknown(operation, connection, unknown)
        decision = decide_on(self.policy_set, identity, connection, operation, now=decided_at)
        return Verdict(decision.outcome, decision.rule, decision.reason)

    def _check_unknown(
        self, operation: HttpOperation, connection: Connection, unknown: frozenset[str]
    ) -> None:
        """A part of the request the recording does not hold as sent matters only if a rule that
        could decide the request reads it (the engine's own candidates)."""
        unit = {**operation.attributes(), "operation": operation}
        missing: set[str] = set()
        readers: list[str] = []
        for rule in self.policy_set.candidates(connection.name, connection.kind, unit):
            reads = {key for key, _ in rule.attributes} | ({"body"} if rule.body else set())
            if reads & unknown:
                missing |= reads & unknown
                if rule.name not in readers:
                    readers.append(rule.name)
        if readers:
            parts = " and ".join(
                {"paths": "path", "query": "query", "body": "body"}[m] for m in sorted(missing)
            )
            more = f" (and {len(readers) - 1} more rule(s))" if len(readers) > 1 else ""
            raise CannotReplay(
                f"the recorded {parts} is not as sent (masked, cut or withheld) and rule "
                f"{readers[0]!r}{more} reads it"
            )


@functools.cache
def _session_schemes(protocol: str) -> tuple[str, ...]:
    if protocol == "mysql":
        from wardgate.tcp.mysql.session import MYSQL_SCHEMES

        return MYSQL_SCHEMES
    from wardgate.tcp.postgres.session import PG_SCHEMES

    return PG_SCHEMES


def replay(
    engine: Any,
    policy_set: PolicySet,
    connections: dict[str, Connection],
    since: datetime,
    until: datetime | None,
    connection: str | None = None,
    examples: int = 5,
) -> Report:
    """Every recorded decision in [since, until) decided again with ``policy_set``."""
    replayer = Replayer(policy_set, connections)
    report = Report(policy_set.version, since, until, connection, examples)
    verdicts: dict[str, Verdict] = {}  # recorded decisions repeat (same rule, same reason)
    tally = report.tally
    for row in fetch(engine, since, until, connection):
        (record_id, seq, kind, ts_us, started_us, name, protocol, version) = row[:8]
        operation_text, decision_text, identity_text, body_text, content_type = row[8:]
        recorded = verdicts.get(decision_text)
        if recorded is None:
            try:
                recorded = recorded_verdict(_loads(decision_text))
            except CannotReplay:
                continue  # the query asks for an outcome and a rule: not an operation policy decided
            if len(verdicts) < CACHE_ENTRIES:
                verdicts[decision_text] = recorded
        # Decided when the request came in (HTTP, Data API), or when the statement's event was written.
        decided_us = ts_us if kind in SESSION_KINDS or started_us is None else started_us
        candidate: Verdict | None = None
        why = ""
        try:
            candidate = replayer.decide(
                kind, name, protocol, operation_text, identity_text, body_text, content_type, decided_us
            )
            change = change_of(recorded, candidate)
        except CannotReplay as cannot:
            change, why = "cannot_replay", str(cannot)
        tally[(change, name, recorded.rule, candidate.rule if candidate else "", why, str(version))] += 1
        if report.wants(change, (ts_us, record_id, seq or 0)):
            report.keep(
                Replayed(
                    str(record_id),
                    seq,
                    ts_us,
                    kind,
                    name,
                    str(protocol),
                    identity_text,
                    operation_text,
                    recorded,
                    candidate,
                    change,
                    why,
                )
            )
    report.finish()
    return report


# ---------------------------------------------------------------- the report as text


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "now"


def _rule(name: str) -> str:
    return repr(inert(name, 120))


def _verdict(verdict: Verdict) -> str:
    text = f"{verdict.outcome}, rule {_rule(verdict.rule)}"
    if verdict.note:
        text += f" ({inert(verdict.note, 200)})"
    return text


def render(report: Report, source: str) -> str:
    """The report for a terminal; every recorded value shown inert (it came from agents)."""
    lines = [
        f"Policy replay of candidate {report.policy_version} on {report.operations:,} recorded operation(s)",
        f"  policy files: {inert(source, 400)}",
        f"  window: {when(report.since)} to {when(report.until)}"
        + (f", connection {inert(report.connection)}" if report.connection else ""),
        "",
    ]
    width = max(len(label) for label in CHANGES.values())
    lines += [f"  {label:<{width}}  {report.changes.get(change, 0):>9,}" for change, label in CHANGES.items()]
    lines += ["", "By connection:"]
    for name, counts in sorted(report.by_connection.items()):
        parts = [f"{counts[c]:,} {CHANGES[c]}" for c in CHANGES if counts.get(c)]
        lines.append(f"  {inert(name, 80)}: {', '.join(parts)}")
    moved = [(key, n) for key, n in report.by_rule.items() if key[0] != "unchanged"]
    if moved:
        lines += ["", "By rule (recorded rule → candidate rule):"]
        for (change, old, new), n in sorted(
            moved, key=lambda item: (list(CHANGES).index(item[0][0]), -item[1])
        ):
            lines.append(f"  {CHANGES[change]}: {n:,}  {_rule(old)} → {_rule(new)}")
    if report.cannot_replay:
        lines += ["", "Cannot replay (the recording does not hold the operation as it was decided):"]
        lines += [f"  {n:,}  {inert(why, 300)}" for why, n in report.cannot_replay.most_common()]
    versions = ", ".join(f"{inert(v, 40)} ({n:,})" for v, n in report.recorded_versions.most_common(5))
    if versions:
        more = len(report.recorded_versions) - 5
        lines += [
            "",
            f"Recorded under policy version(s): {versions}{f' and {more} more' if more > 0 else ''}",
        ]
    for change, label in CHANGES.items():
        kept = report.examples.get(change)
        if not kept or change == "unchanged":
            continue
        lines += ["", f"Examples of {label} (first {len(kept)} of {report.changes[change]:,}):"]
        for example in kept:
            who = example.identity()
            owner = f" (owner {inert(who['owner'], 120)})" if who["owner"] else ""
            seq = f" #{example.seq}" if example.seq is not None else ""
            lines.append(
                f"  {example.at.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}  "
                f"{inert(example.record_id, 40)}{seq}  {inert(who['subject'] or '-', 120)}{owner}  "
                f"{inert(example.connection, 80)}  {inert(example.kind, 20)}"
            )
            lines.append(f"      {inert(example.operation(), 300)}")
            lines.append(f"      recorded:  {_verdict(example.recorded)}")
            if example.candidate is not None:
                reason = inert(example.candidate.reason, 300)
                lines.append(f"      candidate: {_verdict(example.candidate)}: {reason}")
            else:
                lines.append(f"      cannot replay: {inert(example.why, 300)}")
    return "\n".join(lines)
