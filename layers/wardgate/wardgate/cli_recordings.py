"""``wardgate recordings ls|show|query|replay|export``: what auditors run over the recordings.

Every command but ``ls --index`` reads the recordings in S3 through the query engine
(wardgate/auditing/): a local cache of the bucket (moto's in ``wardgate dev``, the stack's with
``--stack``) queried with DuckDB, or Athena with ``query --athena``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from wardgate.auditing import questions
from wardgate.auditing.questions import FilterError, Filters

RECORD_ID = re.compile(r"^[0-9a-f]{29}$")
LS_DEFAULT_SINCE = "7d"
SHOW_WINDOW = timedelta(hours=25)  # a record's events: a session (8 h at most) or an approval (24 h)
CELL = 80  # characters of one cell in table output (--json and --csv are never cut)
AUDIT_WORKGROUP = "WARDGATE_AUDIT_WORKGROUP"
AUDIT_DATABASE = "WARDGATE_AUDIT_DATABASE"


class UsageError(ValueError):
    """Bad input on the command line: printed as ``wardgate: <message>``, exit status 2."""


class RecordNotFound(LookupError):
    """No such record (or not a record id): exit status 1, as ``show`` always had."""


def _settings() -> Any:
    from wardgate.config import Settings

    return Settings.from_env()


def cache_root(args: argparse.Namespace) -> Path:
    """``--cache``, else $WARDGATE_RECORDINGS_CACHE, else .wardgate/recordings-cache in the project
    (local mode's state folder), else ~/.cache/wardgate/recordings-cache."""
    from wardgate.dev.stack import find_project_root, state_dir

    if getattr(args, "cache", None):
        return Path(args.cache)
    if os.environ.get("WARDGATE_RECORDINGS_CACHE"):
        return Path(os.environ["WARDGATE_RECORDINGS_CACHE"])
    try:
        return state_dir(find_project_root()) / "recordings-cache"
    except FileNotFoundError:
        return Path.home() / ".cache" / "wardgate" / "recordings-cache"


def local_engine(args: argparse.Namespace) -> Any:
    from wardgate import aws
    from wardgate.auditing.cache import RecordingsCache
    from wardgate.auditing.query import LocalEngine

    settings = _settings()
    cache = RecordingsCache(
        cache_root(args), settings.recordings_bucket, settings.recordings_prefix, aws.client("s3")
    )
    return LocalEngine(cache, refresh=bool(getattr(args, "refresh", False)))


def athena_engine() -> Any:
    from wardgate import aws
    from wardgate.auditing.query import AthenaEngine

    workgroup, database = os.environ.get(AUDIT_WORKGROUP), os.environ.get(AUDIT_DATABASE)
    if not workgroup or not database:
        raise UsageError(
            "--athena needs the stack's audit workgroup and database: pass --stack NAME, "
            f"or set {AUDIT_WORKGROUP} and {AUDIT_DATABASE}"
        )
    return AthenaEngine(aws.client("athena"), workgroup, database)


def _filters(args: argparse.Namespace, default_since: str | None = None) -> Filters:
    since_text = args.since or default_since
    since = questions.parse_when(since_text, "--since") if since_text else None
    until = questions.parse_when(args.until, "--until") if args.until else None
    return Filters(
        since=since,
        until=until,
        agent=getattr(args, "agent", None),
        owner=getattr(args, "owner", None),
        connection=getattr(args, "connection", None),
        table=getattr(args, "table", None),
        protocol=getattr(args, "protocol", None),
        outcome=getattr(args, "outcome", None),
    )


def _report_sync(engine: Any) -> None:
    report = getattr(engine, "last_sync", None)
    if report is None:
        return
    if report.fetched:
        print(
            f"(synced {report.fetched} new recording object(s), {report.events} event(s), "
            f"into {engine.cache.directory})",
            file=sys.stderr,
        )
    if report.skipped_lines:
        print(
            f"warning: {report.skipped_lines} line(s) in the new objects are not recording events and were "
            "left out (wardgate recordings verify checks the bucket)",
            file=sys.stderr,
        )
    if report.skipped_objects:
        print(
            f"warning: {len(report.skipped_objects)} object(s) under the prefix are not in the "
            f"yyyy/MM/dd/HH/ layout and were left out, e.g. {report.skipped_objects[0]}",
            file=sys.stderr,
        )


# ---------------------------------------------------------------- output


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _cell(value: Any) -> str:
    from wardgate.auditing.timeline import inert

    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, list | tuple):
        return inert(",".join(str(v) for v in value), CELL)
    return inert(str(value), CELL)


def print_result(columns: list[str], rows: list[tuple[Any, ...]], output: str) -> None:
    if output == "json":
        print(
            json.dumps(
                [dict(zip(columns, map(_plain, row), strict=True)) for row in rows], indent=2, default=str
            )
        )
        return
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([json.dumps(_plain(v)) if isinstance(v, list | dict) else _plain(v) for v in row])
        sys.stdout.write(buffer.getvalue())
        return
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for line in cells:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def _output(args: argparse.Namespace) -> str:
    return "json" if getattr(args, "json", False) else "csv" if getattr(args, "csv", False) else "table"


# ---------------------------------------------------------------- commands


def cmd_ls(args: argparse.Namespace) -> int:
    from wardgate.cli import target

    target(args)
    if args.index:
        return _ls_index(args)
    from wardgate.auditing.cache import HourWindow

    filters = _filters(args, LS_DEFAULT_SINCE)
    engine = local_engine(args)
    result = engine.run(
        questions.records_sql(filters, "duckdb", args.limit),
        HourWindow.around(filters.since, filters.until),
        trusted=True,
    )
    _report_sync(engine)
    output = _output(args)
    print_result(result.columns, result.rows, output)
    if output == "table" and not result.rows:
        print(f"(no recordings since {_cell(filters.since)})", file=sys.stderr)
    return 0


def _ls_index(args: argparse.Namespace) -> int:
    """The DynamoDB index: fresh (no wait for Firehose's buffer), live sessions, the last 90 days."""
    unsupported = [f"--{n}" for n in ("owner", "protocol", "outcome", "since", "until") if getattr(args, n)]
    if unsupported:
        raise UsageError(
            f"--index lists by --connection and --subject only; {', '.join(unsupported)} "
            "need the query engine"
        )
    from wardgate.recording import RecordingReader

    settings = _settings()
    reader = RecordingReader(
        settings.recordings_table, settings.recordings_bucket, settings.recordings_prefix
    )
    entries = reader.recent(connection=args.connection, subject=args.agent, limit=args.limit)
    if args.json:
        print(json.dumps(entries, indent=2, default=str))
        return 0
    print(f"{'RECORD':<29} {'STARTED':<26} {'SUBJECT':<16} {'CONNECTION':<12} {'OUTCOME':<8} STATUS REQUEST")
    for e in entries:
        print(
            f"{e['record_id']:<29} {str(e['started_at'])[:26]:<26} {_cell(e['subject'])[:16]:<16} "
            f"{_cell(e['connection'])[:12]:<12} {_cell(e['outcome']):<8} {int(e['status']):<6} "
            f"{_cell(e['method'])} {_cell(e['path'])}"
            + (f"  [{_cell(e['error'])}]" if e.get("error") else "")
        )
    return 0


def record_events(args: argparse.Namespace, record_id: str) -> list[dict[str, Any]]:
    """Every event of ``record_id`` from the recordings (through the cache), or UsageError."""
    from wardgate.auditing.cache import HourWindow, hour_of

    if not RECORD_ID.match(record_id):
        raise RecordNotFound(
            f"no recording {record_id!r}: a record id is 29 lowercase hex characters "
            "(wardgate recordings ls lists them; agents get it in x-wardgate-record-id)"
        )
    try:
        started = datetime.fromtimestamp(int(record_id[:13], 16) / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise RecordNotFound(f"no recording {record_id!r}: its time prefix is not a time") from None
    window = HourWindow(hour_of(started - timedelta(hours=1)), hour_of(started + SHOW_WINDOW))
    engine = local_engine(args)
    result = engine.run(
        f"SELECT raw FROM event_rows WHERE record_id = {questions.literal(record_id)}",  # noqa: S608
        window,
        trusted=True,
    )
    _report_sync(engine)
    if not result.rows:
        raise RecordNotFound(
            f"no recording {record_id!r} in the bucket "
            "(an event can wait up to 5 minutes in Firehose's buffer)"
        )
    events: list[dict[str, Any]] = [json.loads(row[0]) for row in result.rows]
    return events


def cmd_show(args: argparse.Namespace) -> int:
    from wardgate.auditing.timeline import ordered, render
    from wardgate.cli import target

    target(args)
    events = ordered(record_events(args, args.record_id))
    if args.json:
        print(json.dumps(events, indent=2))
    else:
        print(render(events))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from wardgate.auditing.cache import HourWindow
    from wardgate.cli import target

    if args.schema:
        return _print_schema()
    named = [q for q in ("denials", "approvals", "revocations") if getattr(args, q)]
    filtering = any(
        getattr(args, n) for n in ("agent", "owner", "connection", "table", "protocol", "outcome")
    )
    if args.sql is not None and (named or filtering):
        raise UsageError("give either SQL or a named question (--denials, --agent ...), not both")
    if args.sql is None and not named and not filtering:
        raise UsageError(
            "give SQL over events/records, or a named question: --denials, --approvals, --revocations, "
            "--agent SUB, --owner OWNER, --connection NAME, --table NAME (see --schema for the columns)"
        )
    target(args)
    engine = athena_engine() if args.athena else local_engine(args)
    dialect = engine.dialect
    if args.sql is not None:
        filters = _filters(args)
        sql, trusted = args.sql, False
    else:
        question = named[0] if named else "operations"
        filters = _filters(args, "7d")
        sql, trusted = questions.question_sql(question, filters, dialect), True
    result = engine.run(
        sql, HourWindow.around(filters.since, filters.until), trusted=trusted, max_rows=args.max_rows
    )
    _report_sync(engine)
    print_result(result.columns, result.rows, _output(args))
    for note in result.notes:
        print(f"({note})", file=sys.stderr)
    if result.truncated:
        print(
            f"(first {args.max_rows} rows only: add LIMIT, narrow the filters or raise --max-rows)",
            file=sys.stderr,
        )
    return 0


def _print_schema() -> int:
    from wardgate.auditing import schema

    for name, columns in (("events", schema.EVENT_COLUMNS), ("records", schema.RECORD_COLUMNS)):
        print(f"{name}:")
        for column, kind, doc in columns:
            print(f"  {column:<16} {schema.TYPES[kind][0]:<12} {doc}")
        print()
    print("event_rows: the columns of events, as each event alone has them (TCP statements without identity)")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from wardgate.auditing.export import pick_terminal
    from wardgate.auditing.replay import play
    from wardgate.cli import target

    if args.speed <= 0:
        raise UsageError(f"--speed {args.speed}: must be greater than 0 (inf: as fast as possible)")
    target(args)
    terminal = pick_terminal(record_events(args, args.record_id), args.channel)
    speed = float("inf") if args.no_wait else args.speed
    play(terminal, sys.stdout, speed=speed, idle_limit=args.idle_limit)
    print(f"\n(end of terminal {terminal.channel}, exit status {terminal.exit_status})", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from wardgate.auditing.export import export
    from wardgate.cli import target

    target(args)
    text = export(record_events(args, args.record_id), args.format, args.channel)
    if args.output and args.output != "-":
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"(wrote {args.output})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def run(command: Any, args: argparse.Namespace) -> int:
    """Auditing errors as one line each: 2 for bad input, 1 for what could not be done."""
    from wardgate.auditing.cache import CacheError
    from wardgate.auditing.export import ExportError
    from wardgate.auditing.query import QueryFailed, QueryRefused

    try:
        return int(command(args))
    except (UsageError, FilterError, QueryRefused, ExportError) as exc:
        print(f"wardgate: {exc}", file=sys.stderr)
        return 2
    except (QueryFailed, CacheError, RecordNotFound) as exc:
        print(f"wardgate: {exc}", file=sys.stderr)
        return 1


def _wrapped(command: Any) -> Any:
    return lambda args: run(command, args)


def add_commands(sub: Any, with_stack: Any) -> Any:
    """``wardgate recordings ...``; returns its subcommands, so others (verify) can join them."""
    recordings = sub.add_parser("recordings", help="list, read, query, replay and export session recordings")
    rsub = recordings.add_subparsers(dest="action", required=True)

    def common(command: argparse.ArgumentParser) -> None:
        with_stack(command)
        command.add_argument("--cache", help="the local cache folder (default: .wardgate/recordings-cache)")
        command.add_argument(
            "--refresh",
            action="store_true",
            help="list days older than a day again (expired objects leave the cache)",
        )

    def time_range(command: argparse.ArgumentParser, default: str | None) -> None:
        suffix = f" (default: {default})" if default else " (default: all)"
        command.add_argument("--since", help=f"from: {questions.WHEN_HELP}{suffix}")
        command.add_argument("--until", help="to (excluded): same forms as --since")

    ls = rsub.add_parser("ls", help="list recordings, newest first, with filters")
    time_range(ls, LS_DEFAULT_SINCE)
    ls.add_argument("--subject", "--agent", dest="agent", help="the agent (token subject)")
    ls.add_argument("--owner", help="the agent's human owner")
    ls.add_argument("--connection")
    ls.add_argument("--outcome", choices=questions.OUTCOMES, help="the record's most serious outcome")
    ls.add_argument("--protocol", choices=questions.PROTOCOLS)
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--csv", action="store_true")
    ls.add_argument(
        "--index",
        action="store_true",
        help="read the DynamoDB index instead: no Firehose delay, last 90 days",
    )
    ls.set_defaults(func=_wrapped(cmd_ls))
    common(ls)

    show = rsub.add_parser("show", help="one recording as a timeline (--json: its events)")
    show.add_argument("record_id")
    show.add_argument("--json", action="store_true", help="print the events as recorded (a JSON list)")
    show.set_defaults(func=_wrapped(cmd_show))
    common(show)

    query = rsub.add_parser(
        "query",
        help="SQL over all recordings (events, records), or a named question",
        description="SQL (one read-only SELECT over events, records, event_rows; --schema lists their "
        "columns) or a named question. Named questions default to --since 7d. Locally DuckDB's SQL; "
        "with --athena, Athena's (Trino).",
    )
    query.add_argument("sql", nargs="?", help='e.g. "SELECT owner, count(*) FROM events GROUP BY owner"')
    asked = query.add_mutually_exclusive_group()
    asked.add_argument("--denials", action="store_true", help="everything denied (policy and admission)")
    asked.add_argument("--approvals", action="store_true", help="held operations and every approval step")
    asked.add_argument("--revocations", action="store_true", help="revocations and disabled agents")
    query.add_argument("--agent", "--subject", dest="agent", help="operations of this agent")
    query.add_argument("--owner", help="operations of this owner's agents (revocations: of this owner)")
    query.add_argument("--connection")
    query.add_argument("--table", help="SQL statements that read or wrote this table")
    query.add_argument("--protocol", choices=questions.PROTOCOLS)
    query.add_argument("--outcome", choices=questions.OUTCOMES)
    time_range(query, None)
    query.add_argument("--athena", action="store_true", help="run on Athena (AWS) instead of the local cache")
    query.add_argument("--json", action="store_true")
    query.add_argument("--csv", action="store_true")
    query.add_argument("--max-rows", type=int, default=10_000)
    query.add_argument("--schema", action="store_true", help="print the tables' columns and exit")
    query.set_defaults(func=_wrapped(cmd_query))
    common(query)

    replay = rsub.add_parser("replay", help="play a terminal session (SSH, exec) in this terminal")
    replay.add_argument("record_id")
    replay.add_argument("--speed", type=float, default=1.0, help="2: twice as fast; inf: no waiting")
    replay.add_argument("--no-wait", action="store_true", help="print everything at once")
    replay.add_argument("--idle-limit", type=float, help="cap pauses at this many seconds")
    replay.add_argument("--channel", help="which terminal of the session (default: the first)")
    replay.set_defaults(func=_wrapped(cmd_replay))
    common(replay)

    export = rsub.add_parser("export", help="one recording as JSON lines, HAR (HTTP) or asciicast (terminal)")
    export.add_argument("record_id")
    export.add_argument("--format", required=True, choices=("jsonl", "har", "asciicast"))
    export.add_argument("--output", "-o", help="a file (default: standard output)")
    export.add_argument("--channel", help="asciicast: which terminal of the session (default: the first)")
    export.set_defaults(func=_wrapped(cmd_export))
    common(export)
    return rsub
