"""Named questions auditors ask, as SQL for DuckDB (local) and Athena (AWS), and the time filters.

``wardgate recordings query --denials --owner alice@example.com --since 7d`` and the Athena named
queries in template.yaml (``athena_named_queries``; tests/test_template.py keeps them in step) come
from the same functions here: the filters differ only where the engines' SQL does (timestamps,
lambdas), and values are SQL string literals with quotes doubled, never pasted text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from wardgate.auditing import schema

QUESTIONS = ("operations", "denials", "approvals", "revocations")
OUTCOMES = ("allowed", "denied", "approval", "error")
PROTOCOLS = ("http", "k8s", "sql", "shell", "postgres", "mysql", "ssh", "admin")
_RELATIVE = re.compile(r"^(\d{1,6})(s|m|h|d|w)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
REVOCATION_ACTIONS = ("revoke_subject", "revoke_owner", "revoke_agent", "disable_agent", "scim_delete_user")
WHEN_HELP = "a duration back from now (15m, 24h, 7d, 2w) or an ISO time (2026-03-01, 2026-03-01T12:00:00Z)"


class FilterError(ValueError):
    """A filter the CLI cannot use (the message names the flag and what it accepts)."""


def parse_when(text: str, flag: str = "--since", now: datetime | None = None) -> datetime:
    """``15m``, ``7d`` ... back from now, or an ISO date/time (UTC when it names no zone)."""
    value = text.strip()
    relative = _RELATIVE.match(value)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: amount})
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise FilterError(f"{flag} {text!r} is not a time: use {WHEN_HELP}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    agent: str | None = None
    owner: str | None = None
    connection: str | None = None
    table: str | None = None
    protocol: str | None = None
    outcome: str | None = None

    def __post_init__(self) -> None:
        if self.since and self.until and self.since >= self.until:
            raise FilterError("--since must be before --until")
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise FilterError(f"--outcome {self.outcome!r}: one of {', '.join(OUTCOMES)}")
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise FilterError(f"--protocol {self.protocol!r}: one of {', '.join(PROTOCOLS)}")
        for name in ("agent", "owner", "connection", "table"):
            value = getattr(self, name)
            if value is not None and (not value.strip() or any(ord(c) < 32 for c in value)):
                raise FilterError(f"--{name} {value!r}: needs a value without control characters")


def literal(value: str) -> str:
    """A SQL string literal (standard SQL in both engines: quotes doubled, backslashes literal)."""
    return "'" + value.replace("'", "''") + "'"


def _time(value: datetime, dialect: str) -> str:
    stamp = value.astimezone(UTC)
    if dialect == "athena":
        return f"from_iso8601_timestamp({literal(stamp.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z')})"
    return f"TIMESTAMPTZ {literal(stamp.strftime('%Y-%m-%d %H:%M:%S.%f') + '+00')}"


def _touches(name: str, dialect: str) -> str:
    """``tables`` holds the table ``name`` (an SQL expression): as written, or as the last part of a
    qualified name (``billing`` matches ``public.billing``; ``public.billing`` only itself)."""
    if dialect == "athena":
        return (
            f"contains(concat(tables, transform(tables, t -> element_at(split(t, '.'), -1))), lower({name}))"
        )
    return (
        f"list_contains(list_concat(tables, list_transform(tables, lambda t: string_split(t, '.')[-1])), "
        f"lower({name}))"
    )


WHAT = "COALESCE(sql, command, method || ' ' || path, action)"
_SELECTS = {
    "operations": (
        "ts, record_id, connection, protocol, subject, owner, outcome, rule, "
        f"{WHAT} AS what, status, error_code"
    ),
    "approvals": (
        "ts, record_id, connection, subject, owner, approval_id, COALESCE(approval_step, kind) AS step, "
        f"actor, rule, {WHAT} AS what"
    ),
    "revocations": "ts, record_id, action, actor, target_subject, target_owner, reason, status, error_code",
}
_KIND = {
    "operations": "outcome IS NOT NULL AND kind <> 'admin'",
    "denials": "outcome = 'denied'",
    "approvals": (
        "(approval_step IS NOT NULL OR kind = 'held' "
        "OR (approval_id IS NOT NULL AND kind IN ('request', 'statement')))"
    ),
    "revocations": "kind = 'admin' AND action IN (" + ", ".join(literal(a) for a in REVOCATION_ACTIONS) + ")",
}


def conditions(question: str, filters: Filters, dialect: str, value: str | None = None) -> list[str]:
    """The WHERE clauses of ``question`` (``value``: what stands for a filter's value, e.g. ``?``)."""

    def text(given: str) -> str:
        return value if value is not None else literal(given)

    clauses = [_KIND[question]]
    if filters.since:
        clauses.append(f"ts >= {_time(filters.since, dialect)}")
    if filters.until:
        clauses.append(f"ts < {_time(filters.until, dialect)}")
    admin = question == "revocations"
    if filters.agent is not None:
        clauses.append(f"{'target_subject' if admin else 'subject'} = {text(filters.agent)}")
    if filters.owner is not None:
        clauses.append(f"{'target_owner' if admin else 'owner'} = {text(filters.owner)}")
    if filters.connection is not None:
        clauses.append(f"connection = {text(filters.connection)}")
    if filters.table is not None:
        clauses.append(_touches(text(filters.table), dialect))
    if filters.protocol is not None:
        clauses.append(f"protocol = {text(filters.protocol)}")
    if filters.outcome is not None:
        clauses.append(f"outcome = {text(filters.outcome)}")
    return clauses


def question_sql(question: str, filters: Filters, dialect: str, limit: int | None = None) -> str:
    if question not in QUESTIONS:
        raise FilterError(f"unknown question {question!r}: one of {', '.join(QUESTIONS)}")
    select = _SELECTS.get(question, _SELECTS["operations"])
    where = " AND ".join(conditions(question, filters, dialect))
    order = "ts, record_id" + (", seq" if question != "revocations" else "")
    tail = f" LIMIT {int(limit)}" if limit else ""
    return f"SELECT {select} FROM events WHERE {where} ORDER BY {order}{tail}"  # noqa: S608 (literals quoted)


def records_sql(filters: Filters, dialect: str, limit: int) -> str:
    """``wardgate recordings ls``: the newest records matching ``filters``."""
    clauses = []
    if filters.since:
        clauses.append(f"started_at >= {_time(filters.since, dialect)}")
    if filters.until:
        clauses.append(f"started_at < {_time(filters.until, dialect)}")
    for column, given in (
        ("subject", filters.agent),
        ("owner", filters.owner),
        ("connection", filters.connection),
        ("protocol", filters.protocol),
        ("outcome", filters.outcome),
    ):
        if given is not None:
            clauses.append(f"{column} = {literal(given)}")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    columns = (
        "record_id, started_at, subject, owner, connection, protocol, outcome, status, error_code, summary"
    )
    order = f"ORDER BY started_at DESC, record_id DESC LIMIT {int(limit)}"
    return f"SELECT {columns} FROM records{where} {order}"  # noqa: S608 (literals quoted)


# ---------------------------------------------------------------- Athena named queries (template.yaml)

NAMED_QUERY_DAYS = 7
_NAMED: tuple[tuple[str, str, str, Filters], ...] = (
    ("ByAgent", "operations", "Every operation of one agent (the token's subject) in the last 7 days.",
     Filters(agent="?")),
    ("ByOwner", "operations", "Every operation of the agents of one owner in the last 7 days.",
     Filters(owner="?")),
    ("ByConnection", "operations", "Every operation on one connection in the last 7 days.",
     Filters(connection="?")),
    ("Denials", "denials", "Everything wardgate denied in the last 7 days (policy and admission).",
     Filters()),
    ("Approvals", "approvals", "Held operations and every approval step in the last 7 days.", Filters()),
    ("TouchingTable", "operations",
     "Every SQL statement that read or wrote one table (name or schema.name) in the last 7 days.",
     Filters(table="?")),
    ("Revocations", "revocations", "Revocations and disabled agents (admin events) in the last 7 days.",
     Filters()),
)  # fmt: skip


def athena_named_queries() -> dict[str, tuple[str, str]]:
    """{logical id suffix: (description, query text)}: each self-contained (the prelude included),
    over the last ``NAMED_QUERY_DAYS`` days, with ``?`` for the value Athena's console asks for."""
    days = NAMED_QUERY_DAYS
    first_hour = (
        f"date_format(current_timestamp - INTERVAL '{days}' DAY "
        f"- INTERVAL '{schema.SESSION_LOOKBACK_HOURS}' HOUR, '%Y/%m/%d/%H')"
    )
    prelude = schema.athena_prelude(f"{schema.PARTITION} >= {first_hour}", separator=",\n    ")
    del prelude["records"]  # the questions ask events only
    ctes = ",\n".join(f"{name} AS (\n  {body}\n)" for name, body in prelude.items())
    named = {}
    for suffix, question, description, filters in _NAMED:
        clauses = conditions(question, filters, "athena", value="?")
        clauses.insert(1, f"ts >= current_timestamp - INTERVAL '{days}' DAY")
        select = _SELECTS.get(question, _SELECTS["operations"])
        order = "ts, record_id" + (", seq" if question != "revocations" else "")
        where = " AND ".join(clauses)
        text = f"WITH {ctes}\nSELECT {select}\nFROM events\nWHERE {where}\nORDER BY {order}"
        named[suffix] = (description, text)
    return named
