"""SQL over every recording: DuckDB on a local cache of the bucket, or Athena on AWS.

An auditor's query is a guest: it may read the recordings and nothing else. Two walls:

1. ``check_query`` parses it with sqlglot and accepts exactly one SELECT (or WITH ... SELECT, or a
   set operation of them) over ``events``, ``records``, ``event_rows`` and its own CTEs: no other
   table, schema or database, no table function (``read_csv``, ``glob``, ``query_table`` ...), no
   function that reads files, the environment or other SQL. What runs is sqlglot's rendering of
   the checked tree, never the text as typed, so the engine executes what was checked.
2. DuckDB itself is locked down after the views exist: no extension installed or loaded,
   ``allowed_directories`` = the cache, ``enable_external_access = false``,
   ``lock_configuration = true``. On Athena, the workgroup (template.yaml) enforces its result
   location and a bytes-scanned limit per query; the Glue database holds only the recordings.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlglot import exp, parse
from sqlglot.errors import ParseError, SqlglotError

from wardgate.auditing import schema
from wardgate.auditing.cache import HourWindow, RecordingsCache, SyncReport

RELATIONS = ("events", "records", "event_rows")
DENIED_FUNCTIONS = frozenset(
    {
        "glob",
        "getenv",
        "query",
        "query_table",
        "json_execute_serialized_sql",
        "current_setting",
        "load",
        "install",
    }
)
DENIED_PREFIXES = ("read_", "parquet_", "sniff_", "duckdb_", "pragma_", "sqlite_", "postgres_", "mysql_")
DEFAULT_MAX_ROWS = 10_000
DEFAULT_TIMEOUT_S = 300.0


class QueryRefused(ValueError):
    """The query is not a read-only question over the recordings (the message says why)."""


class QueryFailed(RuntimeError):
    """The engine could not answer (its message, without a traceback)."""


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return str(node.sql_name()).lower()


def _looks_like_a_location(name: str) -> bool:
    return "/" in name or "\\" in name or ":" in name or "." in name


def check_query(sql: str, dialect: str) -> exp.Query:
    """The parsed query, if it is one read-only SELECT over the recordings; else ``QueryRefused``."""
    if not sql.strip():
        raise QueryRefused("the query is empty")
    if "\x00" in sql:
        raise QueryRefused("the query contains a NUL character")
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its "falling back to Command" warnings
    try:
        statements = [s for s in parse(sql, read=dialect) if s is not None]
    except (ParseError, SqlglotError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise QueryRefused(f"the query could not be parsed: {first}") from None
    except RecursionError:
        raise QueryRefused("the query is nested too deeply to be checked") from None
    if len(statements) != 1:
        raise QueryRefused(f"one statement at a time: the query has {len(statements)}")
    (statement,) = statements
    if not isinstance(statement, exp.Query):
        kind = str(statement.this).split()[0] if isinstance(statement, exp.Command) else statement.key
        raise QueryRefused(
            f"only SELECT (or WITH ... SELECT) reads the recordings: {kind.upper()} statements are refused"
        )
    ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
    taken = ctes & set(RELATIONS)
    if taken:
        raise QueryRefused(f"{sorted(taken)[0]!r} is a recordings table: give your CTE another name")
    for node in statement.walk():
        if isinstance(node, exp.Into):
            raise QueryRefused("SELECT ... INTO writes a table: refused")
        if isinstance(node, exp.Table):
            _check_table(node, ctes)
        elif isinstance(node, exp.Func):
            name = _function_name(node)
            if name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES):
                raise QueryRefused(f"{name}() reaches outside the recordings: refused")
    return statement


def _check_table(table: exp.Table, ctes: set[str]) -> None:
    target = table.this
    if isinstance(target, exp.Func):
        raise QueryRefused(
            f"table function {_function_name(target)}() in FROM reaches outside the recordings: "
            f"query {', '.join(RELATIONS)} only"
        )
    if not isinstance(target, exp.Identifier):
        raise QueryRefused(f"FROM {table.sql()} is not a recordings table: query {', '.join(RELATIONS)} only")
    name = str(target.this)
    if table.args.get("db") is not None or table.args.get("catalog") is not None:
        raise QueryRefused(
            f"{table.sql()}: other schemas and databases are out of reach: query {', '.join(RELATIONS)} only"
        )
    if name.lower() in RELATIONS or name.lower() in ctes:
        return
    if target.args.get("quoted") and _looks_like_a_location(name):
        raise QueryRefused(f"FROM {name!r} reads a file or URL: refused (query {', '.join(RELATIONS)} only)")
    raise QueryRefused(f"unknown table {name!r}: query {', '.join(RELATIONS)} (or your own CTEs)")


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False
    engine: str = "duckdb"
    notes: list[str] = field(default_factory=list)


def _empty_event_rows() -> str:
    columns = [f"CAST(NULL AS VARCHAR) AS {schema.PARTITION}"]
    columns += [f"CAST(NULL AS {schema.TYPES[c.type][0]}) AS {c.name}" for c in schema.COLUMNS]
    columns.append("CAST(NULL AS VARCHAR) AS raw")
    return f"SELECT {', '.join(columns)} WHERE false"


class LocalEngine:
    """DuckDB over the cache, which is synced first with the hours a question needs."""

    dialect = "duckdb"

    def __init__(
        self, cache: RecordingsCache, timeout_s: float = DEFAULT_TIMEOUT_S, refresh: bool = False
    ) -> None:
        self.cache = cache
        self.timeout_s = timeout_s
        self.refresh = refresh  # list closed days again (what left the bucket leaves the cache)
        self.last_sync: SyncReport | None = None

    def sync(self, window: HourWindow) -> SyncReport:
        with self.cache.locked():
            self.last_sync = self.cache.sync(window, self.refresh)
        return self.last_sync

    def connect(self, window: HourWindow) -> Any:
        """A DuckDB connection with the three views over ``window``'s cached hours, locked down."""
        import duckdb

        con = duckdb.connect(
            config={
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "allow_community_extensions": False,
            }
        )
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET python_enable_replacements = false")  # FROM <a Python variable>: no
            parts = self.cache.parts(window)
            if parts:
                files = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in parts) + "]"
                con.execute(f"CREATE VIEW event_rows AS SELECT * FROM read_parquet({files})")  # noqa: S608
            else:
                con.execute(f"CREATE VIEW event_rows AS {_empty_event_rows()}")
            con.execute(f"CREATE VIEW events AS {schema.events_sql('event_rows')}")
            con.execute(f"CREATE VIEW records AS {schema.records_sql('events')}")
            directory = str(self.cache.directory.resolve()) + "/"
            con.execute("SET allowed_directories = [" + "'" + directory.replace("'", "''") + "']")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        except Exception:
            con.close()
            raise
        return con

    def run(
        self, sql: str, window: HourWindow, *, trusted: bool = False, max_rows: int = DEFAULT_MAX_ROWS
    ) -> QueryResult:
        """Sync ``window``, then answer ``sql`` (checked unless it is one of our own questions)."""
        text = sql if trusted else check_query(sql, self.dialect).sql(dialect=self.dialect, comments=False)
        with self.cache.locked():  # another sync must not drop the parts this query reads
            self.last_sync = self.cache.sync(window, self.refresh)
            con = self.connect(window)
            timer = threading.Timer(self.timeout_s, con.interrupt)
            timer.start()
            try:
                cursor = con.execute(text)
                columns = [d[0] for d in cursor.description or []]
                rows = cursor.fetchmany(max_rows + 1)
            except Exception as exc:
                if not timer.is_alive():
                    stopped = f"the query ran longer than {self.timeout_s:.0f} s and was stopped"
                    raise QueryFailed(stopped) from None
                raise QueryFailed(_first_line(exc)) from None
            finally:
                timer.cancel()
                con.close()
        return QueryResult(columns, [tuple(r) for r in rows[:max_rows]], len(rows) > max_rows)


class AthenaEngine:
    """Athena in the stack's workgroup, over the Glue table; ``events`` and ``records`` are put in
    front of the question as common table expressions (schema.athena_prelude)."""

    dialect = "athena"

    def __init__(
        self,
        athena: Any,
        workgroup: str,
        database: str,
        poll_s: float = 0.5,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.athena = athena
        self.workgroup = workgroup
        self.database = database
        self.poll_s = poll_s
        self.timeout_s = timeout_s

    def statement(self, sql: str, window: HourWindow, *, trusted: bool = False) -> str:
        """The text Athena runs: the prelude's CTEs, then the (checked) question."""
        where = []
        if window.first:
            where.append(f"{schema.PARTITION} >= '{window.first}'")
        if window.last:
            where.append(f"{schema.PARTITION} <= '{window.last}'")
        prelude = schema.athena_prelude(" AND ".join(where))
        ours = ", ".join(f"{name} AS ({body})" for name, body in prelude.items())
        if trusted:
            return f"WITH {ours} {sql}"
        query = check_query(sql, self.dialect).copy()
        with_ = query.args.get("with_")
        if with_ is None:
            return f"WITH {ours} {query.sql(dialect=self.dialect, comments=False)}"
        recursive = "RECURSIVE " if with_.args.get("recursive") else ""
        theirs = ", ".join(cte.sql(dialect=self.dialect, comments=False) for cte in with_.expressions)
        query.set("with_", None)
        return f"WITH {recursive}{ours}, {theirs} {query.sql(dialect=self.dialect, comments=False)}"

    def run(
        self, sql: str, window: HourWindow, *, trusted: bool = False, max_rows: int = DEFAULT_MAX_ROWS
    ) -> QueryResult:
        text = self.statement(sql, window, trusted=trusted)
        started = self.athena.start_query_execution(
            QueryString=text,
            WorkGroup=self.workgroup,
            QueryExecutionContext={"Database": self.database},
        )
        execution_id = started["QueryExecutionId"]
        deadline = time.monotonic() + self.timeout_s
        while True:
            execution = self.athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
            status = execution.get("Status", {})
            state = status.get("State")
            if state == "SUCCEEDED":
                break
            if state in ("FAILED", "CANCELLED"):
                raise QueryFailed(
                    f"Athena: {state.lower()}: {status.get('StateChangeReason', 'no reason given')}"
                )
            if time.monotonic() > deadline:
                self.athena.stop_query_execution(QueryExecutionId=execution_id)
                raise QueryFailed(f"Athena: the query ran longer than {self.timeout_s:.0f} s and was stopped")
            time.sleep(self.poll_s)
        columns: list[str] = []
        rows: list[tuple[Any, ...]] = []
        truncated = False
        pages = self.athena.get_paginator("get_query_results").paginate(QueryExecutionId=execution_id)
        header_skipped = False
        for page in pages:
            result_set = page.get("ResultSet", {})
            if not columns:
                columns = [
                    c.get("Name", "") for c in result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                ]
            for row in result_set.get("Rows", []):
                values = tuple(d.get("VarCharValue") for d in row.get("Data", []))
                if not header_skipped and columns and list(values) == columns:
                    header_skipped = True  # Athena's first row of a SELECT repeats the column names
                    continue
                header_skipped = True
                if len(rows) == max_rows:
                    truncated = True
                    break
                rows.append(values)
            if truncated:
                break
        scanned = execution.get("Statistics", {}).get("DataScannedInBytes")
        notes = [f"Athena scanned {int(scanned):,} bytes"] if scanned is not None else []
        return QueryResult(columns, rows, truncated, engine="athena", notes=notes)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def default_cache_root(state_directory: Path) -> Path:
    return state_directory / "recordings-cache"
