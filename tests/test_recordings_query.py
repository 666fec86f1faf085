"""The query engine's parts: the read-only guard, the cache of the bucket (moto S3), the columns both
engines derive, time filters, and what timelines, replays and exports do with hostile recorded text.

The CLI on real recordings is tests/test_recordings_cli.py.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlglot
from moto import mock_aws

from wardgate.auditing import schema
from wardgate.auditing.cache import CacheError, HourWindow, RecordingsCache
from wardgate.auditing.export import ExportError, to_asciicast, to_har
from wardgate.auditing.query import LocalEngine, QueryRefused, check_query
from wardgate.auditing.questions import FilterError, Filters, athena_named_queries, parse_when, question_sql
from wardgate.auditing.replay import defang
from wardgate.auditing.timeline import inert
from wardgate.recording import FORMAT, new_record_id

BUCKET = "audit-test-recordings"
NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)


def event(kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
    started = at.timestamp()
    return {
        "format": FORMAT,
        "event": kind,
        "record_id": fields.pop("record_id", new_record_id(started)),
        "request_id": "r",
        "time": at.isoformat(),
        "started_at": at.isoformat(),
        "connection": "demo",
        "identity": {"subject": "agent-1", "owner": "alice@example.com", "groups": ["ci"]},
        "decision": {"outcome": "allow", "rule": "r1"},
        **fields,
    }


def lines(*events: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def key(at: datetime, name: str) -> str:
    return f"recordings/{at:%Y/%m/%d/%H}/{name}"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def engine(s3: Any, tmp_path: Path) -> LocalEngine:
    return LocalEngine(RecordingsCache(tmp_path / "cache", BUCKET, "recordings/", s3))


def count(engine: LocalEngine, window: HourWindow | None = None, where: str = "true") -> int:
    result = engine.run(f"SELECT count(*) FROM events WHERE {where}", window or HourWindow())
    return int(result.rows[0][0])


# ---------------------------------------------------------------- the guard


@pytest.mark.parametrize(
    ("sql", "rendered"),
    [
        ("select * from events", "SELECT * FROM events"),
        ("FROM records", "SELECT * FROM records"),
        (
            "SELECT kind, count(*) FROM event_rows GROUP BY ALL",
            "SELECT kind, COUNT(*) FROM event_rows GROUP BY ALL",
        ),
        (
            "WITH d AS (SELECT * FROM events) SELECT * FROM d -- ; DROP TABLE x",
            "WITH d AS (SELECT * FROM events) SELECT * FROM d",
        ),
        ("SELECT 1 UNION ALL SELECT 2", "SELECT 1 UNION ALL SELECT 2"),
        (
            "SELECT * FROM events e JOIN records r USING (record_id)",
            "SELECT * FROM events AS e JOIN records AS r USING (record_id)",
        ),
        ("SELECT * FROM (SELECT unnest(tables) AS t FROM events) WHERE t LIKE 'bill%'", None),
    ],
)
def test_read_only_questions_are_accepted_and_run_as_checked(sql, rendered):
    checked = check_query(sql, "duckdb").sql(dialect="duckdb", comments=False)
    if rendered is not None:
        assert checked == rendered
    assert "DROP" not in checked


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM events; ATTACH 'x.db'",
        "CHECKPOINT",
        "VACUUM",
        "CALL pragma_version()",
        "SELECT * FROM events INTO x",
        "SELECT * FROM sqlite_scan('x.db', 't')",
        "SELECT * FROM postgres_scan('host=x', 'public', 't')",
        "SELECT * FROM parquet_metadata('x.parquet')",
        "SELECT * FROM events WHERE raw = (SELECT content FROM read_blob('/etc/shadow'))",
        "SELECT * FROM range(3)",
        'SELECT * FROM "../../etc/passwd"',
        "SELECT * FROM memory.main.events",
        "SELECT * FROM pg_catalog.pg_tables",
        "SELECT current_setting('allowed_directories')",
        "SELECT " + "(" * 5000 + "1" + ")" * 5000,
        "SELECT 1\x00",
    ],
)
def test_everything_else_is_refused(sql):
    with pytest.raises(QueryRefused):
        check_query(sql, "duckdb")


def test_athena_queries_are_checked_in_athenas_dialect():
    check_query("SELECT any_match(tables, t -> t = 'x') FROM events", "athena")
    with pytest.raises(QueryRefused, match="DROP statements are refused"):
        check_query("DROP TABLE recordings_raw", "athena")
    with pytest.raises(QueryRefused, match="unknown table 'recordings_raw'"):
        check_query("SELECT * FROM recordings_raw", "athena")  # the raw table only through events


# ---------------------------------------------------------------- the cache


def test_sync_converts_each_object_once_and_reads_gzip_plain_and_concatenated_members(engine, s3):
    a = event("request", NOW - timedelta(minutes=20))
    b = event("refused", NOW - timedelta(minutes=10), decision={"outcome": "deny", "rule": "no"})
    c = event("admin", NOW - timedelta(minutes=5), connection="_admin", action="revoke_owner", identity=None)
    s3.put_object(
        Bucket=BUCKET, Key=key(NOW, "one.gz"), Body=gzip.compress(lines(a)) + gzip.compress(lines(b))
    )
    s3.put_object(Bucket=BUCKET, Key=key(NOW, "two"), Body=lines(c) + b'not json\n{"format": "other/v1"}\n')
    s3.put_object(Bucket=BUCKET, Key="recordings/manifest.json", Body=b"{}")  # not in the hour layout
    assert count(engine) == 3
    report = engine.last_sync
    assert report is not None
    assert (report.listed, report.fetched, report.events, report.skipped_lines) == (2, 2, 3, 2)
    assert report.skipped_objects == ["recordings/manifest.json"]
    assert count(engine, where="outcome = 'denied'") == 1
    assert engine.last_sync is not None and engine.last_sync.fetched == 0  # warm: nothing fetched again

    later = event("request", NOW - timedelta(minutes=1))
    s3.put_object(Bucket=BUCKET, Key=key(NOW, "three.gz"), Body=gzip.compress(lines(later)))
    assert count(engine) == 4
    assert engine.last_sync is not None and engine.last_sync.fetched == 1  # only the new object


def test_what_leaves_the_bucket_leaves_the_cache(engine, s3):
    old_day = NOW - timedelta(days=2)
    s3.put_object(Bucket=BUCKET, Key=key(NOW, "a"), Body=lines(event("request", NOW)))
    s3.put_object(Bucket=BUCKET, Key=key(NOW, "b"), Body=lines(event("request", NOW)))
    s3.put_object(Bucket=BUCKET, Key=key(old_day, "c"), Body=lines(event("request", old_day)))
    assert count(engine) == 3
    s3.delete_object(Bucket=BUCKET, Key=key(NOW, "b"))  # expired
    assert count(engine) == 2
    assert engine.last_sync is not None and NOW.strftime("%Y/%m/%d") in engine.last_sync.rebuilt_days
    s3.delete_object(Bucket=BUCKET, Key=key(old_day, "c"))
    week = HourWindow.around(NOW - timedelta(days=7), None)
    assert count(engine, week) == 2  # a closed day is not listed again by a bounded window ...
    engine.refresh = True
    assert count(engine, week) == 1  # ... unless asked to (--refresh)
    assert engine.last_sync is not None and old_day.strftime("%Y/%m/%d") in engine.last_sync.rebuilt_days
    engine.refresh = False
    s3.put_object(Bucket=BUCKET, Key=key(old_day, "d"), Body=lines(event("request", old_day)))
    assert count(engine) == 2  # everything (no window): the whole prefix is listed


def test_a_window_reads_and_fetches_only_its_days(engine, s3):
    old = NOW - timedelta(days=20)
    s3.put_object(Bucket=BUCKET, Key=key(NOW, "new"), Body=lines(event("request", NOW)))
    s3.put_object(Bucket=BUCKET, Key=key(old, "old"), Body=lines(event("request", old)))
    week = HourWindow.around(NOW - timedelta(days=7), None)
    assert count(engine, week) == 1
    assert engine.last_sync is not None and engine.last_sync.fetched == 1
    assert count(engine) == 2  # everything: the old day too


def test_closed_days_are_listed_once(engine, s3):
    old = NOW - timedelta(days=3)
    s3.put_object(Bucket=BUCKET, Key=key(old, "a"), Body=lines(event("request", old)))
    week = HourWindow.around(NOW - timedelta(days=7), None)
    assert count(engine, week) == 1
    assert engine.last_sync is not None and engine.last_sync.listed == 1
    assert count(engine, week) == 1
    assert engine.last_sync is not None and engine.last_sync.listed == 0  # only today and yesterday listed


def test_many_syncs_of_one_day_are_compacted(engine, s3, monkeypatch):
    from wardgate.auditing import cache

    monkeypatch.setattr(cache, "MAX_PARTS_PER_DAY", 2)
    for n in range(4):
        s3.put_object(Bucket=BUCKET, Key=key(NOW, f"o{n}"), Body=lines(event("request", NOW)))
        assert count(engine) == n + 1
        assert len(engine.cache.parts(HourWindow())) <= 2
    assert len(list(engine.cache.days_dir.rglob("*.parquet"))) == len(engine.cache.parts(HourWindow()))


def test_a_corrupt_object_is_a_clear_error(engine, s3):
    s3.put_object(Bucket=BUCKET, Key=key(NOW, "bad.gz"), Body=gzip.compress(b"x" * 1000)[:-12])
    with pytest.raises(CacheError, match=r"bad\.gz: truncated gzip data"):
        engine.sync(HourWindow())


# ---------------------------------------------------------------- the columns


def test_events_has_the_documented_columns_and_athenas_prelude_parses(engine, s3):
    s3.put_object(Bucket=BUCKET, Key=key(NOW, "a"), Body=lines(event("request", NOW)))
    engine.sync(HourWindow())
    con = engine.connect(HourWindow())
    try:
        events = [row[0] for row in con.execute("DESCRIBE events").fetchall()]
        records = [row[0] for row in con.execute("DESCRIBE records").fetchall()]
    finally:
        con.close()
    assert events == [name for name, _, _ in schema.EVENT_COLUMNS]
    assert records == [name for name, _, _ in schema.RECORD_COLUMNS]
    for name, body in schema.athena_prelude("arrival_hour >= '2026/01/01/00'").items():
        assert sqlglot.parse_one(body, read="athena") is not None, name
    asks = {name: sqlglot.parse_one(text, read="athena").find(sqlglot.exp.Placeholder) is not None
            for name, (_, text) in athena_named_queries().items()}  # fmt: skip
    assert asks == {"ByAgent": True, "ByOwner": True, "ByConnection": True, "Denials": False,
                    "Approvals": False, "TouchingTable": True, "Revocations": False}  # fmt: skip


def test_columns_follow_json_scalar_semantics_on_both_engines(engine, s3):
    """An object where a scalar is expected is null (Athena's json_extract_scalar), not its JSON text."""
    shapes = [
        event("request", NOW, decision={"outcome": "allow", "approval": "req-1", "approved_by": ["a@x"]}),
        event("request", NOW, decision={"outcome": "require_approval", "approval": {"mode": "one-time"}}),
        event("response", NOW, response={"status": "201", "result": {"rows": 7}}),
        event(
            "statement",
            NOW,
            identity=None,
            seq=2,
            operation={
                "protocol": "sql",
                "statements": [
                    {
                        "text": "SELECT 1 FROM public.billing",
                        "kind": "select",
                        "tables_read": ["public.billing"],
                        "tables_written": [],
                    },
                    {
                        "text": "UPDATE audit SET x = 1",
                        "kind": "update",
                        "tables_read": [],
                        "tables_written": ["audit"],
                    },
                ],
            },
        ),
        event("terminal_start", NOW, command="rm -rf /tmp/x", channel=0),
    ]
    s3.put_object(Bucket=BUCKET, Key=key(NOW, "a"), Body=lines(*shapes))
    result = engine.run(
        "SELECT approval_id, status, rows, sql, sql_kinds, tables, tables_written, command FROM event_rows",
        HourWindow(),
    )
    assert result.rows == [
        ("req-1", None, None, None, [], [], [], None),
        (None, None, None, None, [], [], [], None),
        (None, 201, 7, None, [], [], [], None),
        (None, None, None, "SELECT 1 FROM public.billing; UPDATE audit SET x = 1", ["select", "update"],
         ["audit", "public.billing"], ["audit"], None),
        (None, None, None, None, [], [], [], "rm -rf /tmp/x"),
    ]  # fmt: skip
    touching = engine.run(
        question_sql("operations", Filters(table="billing"), "duckdb"), HourWindow(), trusted=True
    )
    assert len(touching.rows) == 1


# ---------------------------------------------------------------- filters


def test_when_accepts_durations_and_iso_times():
    now = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    assert parse_when("15m", now=now) == now - timedelta(minutes=15)
    assert parse_when("7d", now=now) == now - timedelta(days=7)
    assert parse_when("2w", now=now) == now - timedelta(weeks=2)
    assert parse_when("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_when("2026-03-01T12:00:00Z") == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert parse_when("2026-03-01T14:00:00+02:00") == datetime(2026, 3, 1, 12, tzinfo=UTC)
    for bad in ("yesterday-ish", "7 days", "-3d", "1y", "", "2026-13-01", "99999999d"):
        with pytest.raises(FilterError, match="is not a time"):
            parse_when(bad)
    with pytest.raises(FilterError, match="--outcome 'maybe'"):
        Filters(outcome="maybe")


def test_filter_values_are_quoted_not_pasted(engine, s3):
    s3.put_object(Bucket=BUCKET, Key=key(NOW, "a"), Body=lines(event("request", NOW)))
    hostile = "x' OR '1'='1"
    sql = question_sql("operations", Filters(agent=hostile), "duckdb")
    assert "'x'' OR ''1''=''1'" in sql
    assert engine.run(sql, HourWindow(), trusted=True).rows == []


# ---------------------------------------------------------------- hostile recorded text


def test_timeline_text_cannot_drive_the_terminal():
    assert inert("a\x1b[2Jb\x07c\r\nd") == "a\\x1b[2Jb\\x07c\\x0d\\x0ad"
    assert inert("user\u202egnp.exe") == "user\\u202egnp.exe"  # a bidi override shown, not obeyed
    assert inert("x" * 3000, 10) == "x" * 10 + "... (2990 more characters)"


@pytest.mark.parametrize(
    ("recorded", "played"),
    [
        ("\x1b]0;title\x07ok", "ok"),
        ("\x1b]52;c;ZXZpbA==\x1b\\ok", "ok"),  # clipboard write, ST-terminated
        ('\x1bP$q"p\x1b\\ok', "ok"),  # DCS request
        ("a\x1b[6nb\x1b[cc\x1b[18t", "abc"),  # device status, attributes, window report
        ("\x1b[1;31mred\x1b[0m\x1b[2J\x1b[H", "\x1b[1;31mred\x1b[0m\x1b[2J\x1b[H"),  # drawing stays
        ("\x1b]8;;http://evil\x07link", "link"),
        ("unterminated \x1b]0;title", "unterminated "),
    ],
)
def test_replay_drops_escape_sequences_that_talk_back_or_leave_the_screen(recorded, played):
    assert defang(recorded) == played


def test_har_of_truncated_and_binary_bodies_says_so():
    at = NOW
    record_id = new_record_id(at.timestamp())
    body = {"size": 100000, "sha256": "0" * 64, "truncated": True, "encoding": "base64", "data": "AAEC"}
    asked = {"method": "GET", "path": "/api/v1/pods", "query": "", "headers": {"Host": "gw"}}
    request = event("request", at, record_id=record_id, operation={"protocol": "k8s"}, request=asked)
    answer = {"status": 200, "headers": {"content-type": "application/octet-stream"}, "body": body}
    timings = {"guard": 1.0, "upstream": 5.0, "masking": 0.5, "total": 7.0}
    later = at + timedelta(milliseconds=7)
    response = event("response", later, record_id=record_id, response=answer, timings_ms=timings)
    (entry,) = to_har([response, request])["log"]["entries"]
    assert entry["request"]["url"] == "https://gw/k8s/demo/api/v1/pods"
    assert entry["response"]["content"] == {"size": 100000, "mimeType": "application/octet-stream",
                                            "text": "AAEC", "encoding": "base64"}  # fmt: skip
    assert "response body recorded truncated: 4 of 100000 bytes" in entry["comment"]
    assert entry["timings"] == {"send": 1.0, "wait": 5.0, "receive": 0.5} and entry["time"] == 6.5


def test_asciicast_of_a_missing_channel_names_the_ones_there():
    start = event("terminal_start", NOW, channel=3, width=80, height=24, seq=1)
    with pytest.raises(ExportError, match="no terminal channel '9' in this record: it has 3"):
        to_asciicast([start], "9")
    header = json.loads(to_asciicast([start]).splitlines()[0])
    assert header["version"] == 2 and header["width"] == 80
