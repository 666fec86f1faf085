"""The logical tables auditors query, defined once for both engines (docs/recording-format.md#querying).

Recordings are JSON lines in S3 (one event per line, ``wardgate.recording/v1``). Both engines read
each line as one string column, ``line``, and derive the same typed columns from it:

* **Athena** (AWS): a Glue table, ``recordings_raw``, over ``recordings/`` with one ``line`` column
  (plain text, gzip by extension) and the partition ``arrival_hour`` projected from the key
  (``yyyy/MM/dd/HH``, Firehose's UTC arrival hour): no crawler. The columns come from
  ``json_extract_scalar`` in a common table expression the CLI and the named queries put in front
  of the question (``athena_prelude``).
* **DuckDB** (local): the same objects, synced into a cache, converted once to Parquet with the
  same columns already extracted (``duckdb_extract``), then read by views with the same names.

One string column rather than a JSON SerDe with a typed schema: one odd event (a key that differs
only in case, a field whose type changed across versions) would make the JSON SerDes fail whole
queries over a year of recordings, the OpenX SerDe's results can be non-deterministic (Athena's
documentation says so), and the raw event must stay available (``raw``). Bytes scanned, and so
Athena's bill, are the same either way: the objects are gzip-compressed text.

Three relations:

* ``event_rows``: one row per event, the columns below, read from the event alone.
* ``events``: ``event_rows`` plus what needs another event: a TCP session's statements carry no
  identity, so ``subject``, ``issuer``, ``owner`` and ``groups`` come from the session's
  ``session_start``; ``protocol`` of admin events; ``outcome``, the normalised verdict.
* ``records``: one row per record (a request, a session, an admin action), its most serious outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

RAW_TABLE = "recordings_raw"
PARTITION = "arrival_hour"  # yyyy/MM/dd/HH, the UTC hour Firehose filed the object under
# A session's events can come hours after its session_start (the TCP gateway ends sessions after
# WARDGATE_TCP_MAX_SESSION_S, 8 h by default); a window reads this much earlier so their identity is found.
SESSION_LOOKBACK_HOURS = 9
TCP_PROTOCOLS = ("postgres", "mysql", "ssh")

TYPES = {  # logical type -> (DuckDB, Athena)
    "text": ("VARCHAR", "varchar"),
    "int": ("BIGINT", "bigint"),
    "float": ("DOUBLE", "double"),
    "time": ("TIMESTAMPTZ", "timestamp(3) with time zone"),
    "list": ("VARCHAR[]", "array(varchar)"),
}


@dataclass(frozen=True)
class Column:
    """One column of ``event_rows``: scalar JSON paths (the first present wins), or an expression
    per engine for what paths cannot say (lists, joined texts): on Athena over ``line``, on DuckDB
    over values extracted with the others (``bases``), so each line is parsed once."""

    name: str
    type: str
    doc: str
    paths: tuple[str, ...] = ()
    bases: tuple[str, ...] = ()  # DuckDB: the JSON values ``duckdb`` formats in as {0}, {1}...
    duckdb: str = ""
    athena: str = ""


def _statements_athena(body: str) -> str:
    """An Athena expression over each recorded statement ``s`` of the operation."""
    return f"transform(TRY_CAST(json_extract(line, '$.operation.statements') AS array(json)), s -> {body})"


def _athena_list(path: str) -> str:
    return (
        f"coalesce(TRY_CAST(json_extract(line, '{path}') AS array(varchar)), CAST(ARRAY[] AS array(varchar)))"
    )


_EMPTY_ATHENA = "CAST(ARRAY[] AS array(varchar))"
_STATEMENTS = "$.operation.statements"

COLUMNS: tuple[Column, ...] = (
    Column("ts", "time", "when the event was written (`time`)", ("$.time",)),
    Column("started_at", "time", "when the request or session began", ("$.started_at",)),
    Column("record_id", "text", "the record (request, session or admin action)", ("$.record_id",)),
    Column("kind", "text", "the event: request, response, refused, held, approval, admin, session_start, "
           "statement, result, statement_refused, session_end, terminal_output...", ("$.event",)),
    Column("seq", "int", "the event's place in a TCP session", ("$.seq",)),
    Column("request_id", "text", "API Gateway's request id (approval events: the approval request)",
           ("$.request_id",)),
    Column("connection", "text", "the connection (`_admin` for admin events)", ("$.connection",)),
    Column("protocol", "text", "http, k8s, sql (Data API), shell, postgres, mysql, ssh; admin",
           ("$.protocol", "$.operation.protocol")),
    Column("subject", "text", "the token's subject (the agent)", ("$.identity.subject",)),
    Column("issuer", "text", "the token's issuer", ("$.identity.issuer",)),
    Column("owner", "text", "the agent's human owner", ("$.identity.owner",)),
    Column("groups", "list", "the token's groups",
           bases=("$.identity.groups",), duckdb="json_extract_string({0}, '$[*]')",
           athena=_athena_list("$.identity.groups")),
    Column("method", "text", "the HTTP method", ("$.request.method",)),
    Column("path", "text", "the HTTP path, relative to the connection (masked)", ("$.request.path",)),
    Column("query", "text", "the HTTP query string (masked)", ("$.request.query",)),
    Column("sql", "text", "the statements' texts, values masked, joined by '; '",
           bases=(_STATEMENTS,),
           duckdb="NULLIF(array_to_string(json_extract_string({0}, '$[*].text'), '; '), '')",
           athena="NULLIF(array_join(" + _statements_athena("json_extract_scalar(s, '$.text')")
           + ", '; '), '')"),
    Column("sql_kinds", "list", "the statements' kinds (select, insert, ddl...)",
           bases=(_STATEMENTS,), duckdb="json_extract_string({0}, '$[*].kind')",
           athena="coalesce(" + _statements_athena("json_extract_scalar(s, '$.kind')")
           + f", {_EMPTY_ATHENA})"),
    Column("tables", "list", "tables read or written, lower case, schema-qualified as written",
           bases=(_STATEMENTS,),
           duckdb="list_sort(list_distinct(list_concat(json_extract_string({0}, '$[*].tables_read[*]'), "
           "json_extract_string({0}, '$[*].tables_written[*]'))))",
           athena="coalesce(array_sort(array_distinct(flatten(" + _statements_athena(
               "concat(coalesce(TRY_CAST(json_extract(s, '$.tables_read') AS array(varchar)), "
               f"{_EMPTY_ATHENA}), coalesce(TRY_CAST(json_extract(s, '$.tables_written') AS "
               f"array(varchar)), {_EMPTY_ATHENA}))") + f"))), {_EMPTY_ATHENA})"),
    Column("tables_written", "list", "tables written (including writes inside CTEs)",
           bases=(_STATEMENTS,),
           duckdb="list_sort(list_distinct(json_extract_string({0}, '$[*].tables_written[*]')))",
           athena="coalesce(array_sort(array_distinct(flatten(" + _statements_athena(
               f"coalesce(TRY_CAST(json_extract(s, '$.tables_written') AS array(varchar)), {_EMPTY_ATHENA})"
           ) + f"))), {_EMPTY_ATHENA})"),
    Column("command", "text", "a shell command (SSH exec) or a Kubernetes exec's argv, joined by spaces",
           bases=("$.command", "$.operation.text", "$.operation.exec_command"),
           duckdb="coalesce({0} ->> '$', {1} ->> '$', "
           "NULLIF(array_to_string(json_extract_string({2}, '$[*]'), ' '), ''))",
           athena="coalesce(json_extract_scalar(line, '$.command'), "
           "json_extract_scalar(line, '$.operation.text'), NULLIF(array_join("
           "TRY_CAST(json_extract(line, '$.operation.exec_command') AS array(varchar)), ' '), ''))"),
    Column("verb", "text", "Kubernetes: the RBAC verb", ("$.operation.verb",)),
    Column("resource", "text", "Kubernetes: the resource", ("$.operation.resource",)),
    Column("namespace", "text", "Kubernetes: the namespace", ("$.operation.namespace",)),
    Column("decision", "text", "policy's outcome: allow, deny, require_approval", ("$.decision.outcome",)),
    Column("rule", "text", "the rule that decided", ("$.decision.rule",)),
    Column("reason", "text", "why (the rule's message, a revocation's or a session end's reason)",
           ("$.decision.reason", "$.reason")),
    Column("policy_version", "text", "the applied policy set that decided", ("$.decision.policy_version",)),
    Column("approval_id", "text", "the approval request", (
        "$.approval.approval_id", "$.response.approval.request_id", "$.decision.approval",
        "$.decision.pending")),
    Column("approval_step", "text", "approval events: requested, notified, approved, decided_approved...",
           ("$.approval.step",)),
    Column("actor", "text", "who acted: an admin action's operator, an approver", (
        "$.actor.subject", "$.approval.by")),
    Column("status", "int", "the status the agent got (HTTP), an admin action's status",
           ("$.response.status", "$.status")),
    Column("error_code", "text", "what the agent was told, as a code", ("$.error.code",)),
    Column("error_message", "text", "... and as a message", ("$.error.message",)),
    Column("rows", "int", "rows the agent got", ("$.rows", "$.response.result.rows")),
    Column("duration_ms", "float", "the request's or the statement's or the session's duration",
           ("$.duration_ms", "$.timings_ms.total")),
    Column("action", "text", "admin events: register_agent, revoke_owner, ...", ("$.action",)),
    Column("target_subject", "text", "admin events: the agent acted on", ("$.target.subject",)),
    Column("target_owner", "text", "admin events: the owner acted on", ("$.target.owner",)),
    Column("target", "text", "admin events: the target as JSON",
           bases=("$.target",), duckdb="CAST({0} AS VARCHAR)",
           athena="json_format(json_extract(line, '$.target'))"),
)  # fmt: skip

DERIVED: tuple[tuple[str, str, str], ...] = (  # events' columns that need more than the event
    ("outcome", "text", "allowed, denied, approval, error (operations), admin; null for other events"),
)
COLUMN_NAMES = tuple(c.name for c in COLUMNS)
EVENT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    (PARTITION, "text", "the UTC hour the object was filed under (yyyy/MM/dd/HH): prunes what is read"),
    *((c.name, c.type, c.doc) for c in COLUMNS),
    *DERIVED,
    ("raw", "text", "the event as recorded (JSON)"),
)
RECORD_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("record_id", "text", "the record"),
    ("started_at", "time", "when it began"),
    ("last_event", "time", "its last event"),
    ("connection", "text", "its connection"),
    ("protocol", "text", "its protocol"),
    ("subject", "text", "the agent"),
    ("owner", "text", "the agent's owner"),
    (
        "outcome",
        "text",
        "the most serious of its operations' outcomes: denied, approval, error, allowed, admin",
    ),
    ("status", "int", "the status the agent got"),
    ("error_code", "text", "an error code it ended with, if any"),
    ("summary", "text", "METHOD path, the admin action, or a session's statement counts"),
    ("events", "int", "how many events"),
    ("operations", "int", "how many of them are operations (requests, statements, commands)"),
)


def _scalar_duckdb(index: int) -> str:
    """The ``index``-th extracted value as text; null for objects and arrays (as Athena's
    ``json_extract_scalar`` has it)."""
    value = f"v[{index}]"
    return f"(CASE WHEN json_type({value}) IN ('OBJECT', 'ARRAY') THEN NULL ELSE {value} ->> '$' END)"


def _cast_duckdb(expression: str, kind: str) -> str:
    if kind == "list":  # [] when absent, as on Athena
        return f"coalesce({expression}, CAST([] AS VARCHAR[]))"
    return expression if kind == "text" else f"TRY_CAST({expression} AS {TYPES[kind][0]})"


def _cast_athena(expression: str, kind: str) -> str:
    if kind == "time":
        return f"try(from_iso8601_timestamp({expression}))"
    return expression if kind in ("text", "list") else f"TRY_CAST({expression} AS {TYPES[kind][1]})"


def duckdb_extract(source: str) -> str:
    """``event_rows`` from ``source`` (a relation with ``line`` and ``arrival_hour``): what the local
    cache writes to Parquet. Lines that are not recording events (not JSON, another format) are left out."""
    every = [path for column in COLUMNS for path in (*column.paths, *column.bases)]
    index = {path: i + 1 for i, path in enumerate(dict.fromkeys(every))}
    path_list = ", ".join(f"'{path}'" for path in index)
    selected = []
    for column in COLUMNS:
        if column.paths:
            values = [_scalar_duckdb(index[p]) for p in column.paths]
            expression = values[0] if len(values) == 1 else f"coalesce({', '.join(values)})"
        else:
            expression = column.duckdb.format(*(f"v[{index[b]}]" for b in column.bases))
        selected.append(f"{_cast_duckdb(expression, column.type)} AS {column.name}")
    # Every SQL text in this module is built from the constants above, never from input.
    return (
        f"SELECT {PARTITION}, {', '.join(selected)}, line AS raw FROM ("  # noqa: S608
        f"SELECT {PARTITION}, line, json_extract(line, [{path_list}]) AS v FROM {source} "
        "WHERE json_valid(line) "
        "AND starts_with(json_extract_string(line, '$.format'), 'wardgate.recording/'))"
    )


def athena_extract(where: str = "", separator: str = ", ") -> str:
    """``event_rows`` on Athena, from the Glue table (``where``: a filter on ``arrival_hour``;
    ``separator`` between columns: the named queries put each on its own line)."""
    selected = []
    for column in COLUMNS:
        if column.paths:
            values = [f"json_extract_scalar(line, '{p}')" for p in column.paths]
            expression = values[0] if len(values) == 1 else f"coalesce({', '.join(values)})"
        else:
            expression = column.athena
        selected.append(f"{_cast_athena(expression, column.type)} AS {column.name}")
    condition = "json_extract_scalar(line, '$.format') LIKE 'wardgate.recording/%'"
    if where:
        condition += f" AND ({where})"
    columns = separator.join([PARTITION, *selected, "line AS raw"])
    return f"SELECT {columns} FROM {RAW_TABLE} WHERE {condition}"  # noqa: S608  # noqa: S608


def _identity(name: str) -> str:
    return (
        f"CASE WHEN e.subject IS NULL AND s.record_id IS NOT NULL THEN s.{name} ELSE e.{name} END AS {name}"
    )


_IDENTITY = ("subject", "issuer", "owner", "groups")
OUTCOME = """CASE
    WHEN e.kind IN ('request', 'statement', 'session_start') THEN 'allowed'
    WHEN e.kind = 'held' THEN 'approval'
    WHEN e.kind IN ('refused', 'statement_refused', 'session_refused') THEN CASE
        WHEN e.decision = 'deny' THEN 'denied'
        WHEN e.decision = 'require_approval' OR e.error_code IN ('approval_pending', 'approval_required')
            THEN 'approval'
        WHEN e.decision = 'allow' OR e.error_code LIKE '%unavailable%' THEN 'error'
        WHEN e.kind = 'session_refused' OR e.status IN (401, 403, 404) THEN 'denied'
        ELSE 'error' END
    WHEN e.kind = 'admin' THEN CASE
        WHEN e.status IN (401, 403) THEN 'denied' WHEN e.status >= 400 THEN 'error' ELSE 'admin' END
    END"""


def events_sql(event_rows: str = "event_rows") -> str:
    """``events`` over ``event_rows`` (the same text for both engines)."""
    columns = []
    for name in (PARTITION, *COLUMN_NAMES):
        if name in _IDENTITY:
            columns.append(_identity(name))
        elif name == "protocol":
            columns.append("COALESCE(e.protocol, CASE WHEN e.kind = 'admin' THEN 'admin' END) AS protocol")
        else:
            columns.append(f"e.{name}")
    columns.append(f"{OUTCOME} AS outcome")
    columns.append("e.raw")
    sessions = (
        "SELECT record_id, MAX(subject) AS subject, MAX(issuer) AS issuer, MAX(owner) AS owner, "  # noqa: S608
        f"MAX(groups) AS groups FROM {event_rows} WHERE kind = 'session_start' GROUP BY record_id"
    )
    return (
        f"SELECT {', '.join(columns)} FROM {event_rows} AS e LEFT JOIN ({sessions}) AS s "  # noqa: S608
        "ON s.record_id = e.record_id"  # an equality alone: a hash join (with more, DuckDB loops)
    )


def _count(condition: str) -> str:
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


def records_sql(events: str = "events") -> str:
    """``records``: one row per record, over ``events`` (the same text for both engines)."""
    outcome = " ".join(
        "WHEN " + _count(f"outcome = '{o}'") + f" > 0 THEN '{o}'"
        for o in ("denied", "approval", "error", "allowed", "admin")
    )
    session = (
        "'session: ' || CAST("
        + _count("kind = 'statement'")
        + " AS VARCHAR) || ' statement(s) run, ' || CAST("
        + _count("kind = 'statement_refused'")
        + " AS VARCHAR) || ' refused'"
    )
    summary = (
        "COALESCE("
        "MAX(CASE WHEN kind = 'admin' THEN action || ' ' || COALESCE(target, '') END), "
        "MAX(CASE WHEN kind IN ('request', 'refused', 'held') THEN COALESCE(method, '') || ' ' || "
        "COALESCE(path, '') || COALESCE(': ' || sql, '') || COALESCE(': ' || command, '') END), "
        "CASE WHEN "
        + _count("kind IN ('session_start', 'session_refused', 'session_end')")
        + f" > 0 THEN {session} END)"
    )
    return (
        "SELECT record_id, MIN(started_at) AS started_at, MAX(ts) AS last_event, "  # noqa: S608
        "MAX(connection) AS connection, MAX(protocol) AS protocol, MAX(subject) AS subject, "
        f"MAX(owner) AS owner, CASE {outcome} END AS outcome, "
        "COALESCE(MAX(CASE WHEN kind IN ('response', 'refused', 'admin', 'session_refused') "
        "THEN status END), MAX(status)) AS status, MAX(error_code) AS error_code, "
        f"{summary} AS summary, COUNT(*) AS events, {_count('outcome IS NOT NULL')} AS operations "
        f"FROM {events} GROUP BY record_id"
    )


def athena_prelude(where: str = "", separator: str = ", ") -> dict[str, str]:
    """The common table expressions that make ``events`` and ``records`` on Athena."""
    return {
        "event_rows": athena_extract(where, separator),
        "events": events_sql("event_rows"),
        "records": records_sql("events"),
    }


def glue_columns() -> list[dict[str, str]]:
    """The Glue table's columns (template.yaml's RecordingsGlueTable)."""
    return [{"Name": "line", "Type": "string"}]
