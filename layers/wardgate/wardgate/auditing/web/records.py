"""What the replay page reads: records through the query engine, and the integrity of what it shows.

Search and a record's events go through the auditors' query engine (``auditing/query.py``): DuckDB on
the local cache in ``wardgate dev``, Athena on AWS, with the same SQL (``questions.records_sql``,
``event_rows``), trusted because it is ours and every value in it is a quoted literal.

Integrity is checked against the bucket itself, not the engine's copy: ``verify_recordings`` over
the hours that hold the record (signed manifests, object hashes, chains, writer sequences, narrowed
to what concerns the record), and then every event the page shows must be a line of the record in
those objects, byte for byte. A page has a Lambda's time and memory, so the check reads at most
``MAX_OBJECTS`` objects and ``MAX_BYTES`` bytes; beyond that it says so and names the command that
checks any amount (``wardgate recordings verify --record``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from wardgate.auditing import questions
from wardgate.auditing.cache import HourWindow, hour_of
from wardgate.auditing.integrity import (
    MANIFEST_PREFIX,
    PROBLEMS,
    RECORD_ID,
    IntegrityError,
    S3Recordings,
    decompressed,
    verify_recordings,
)
from wardgate.auditing.query import QueryResult
from wardgate.auditing.signing import ManifestVerifier, SigningKeyError
from wardgate.auditing.timeline import ordered

RECORD_WINDOW = timedelta(hours=25)  # a record's events: a session (8 h at most) or an approval (24 h)
SEARCH_ROWS = 100
MAX_EVENTS = 20_000  # events of one record shown on a page
MAX_OBJECTS = 200  # objects one integrity check reads
MAX_BYTES = 64 * 1024 * 1024  # ... and bytes, as stored
PENDING_SECONDS = 600  # an object younger than this may still be waiting for its manifest
ARRIVAL_SLACK = timedelta(hours=1)  # Firehose files an event under the hour it arrived (buffer: 300 s)


class Engine(Protocol):
    dialect: str

    def run(
        self, sql: str, window: HourWindow, *, trusted: bool = False, max_rows: int = ...
    ) -> QueryResult: ...


def record_start(record_id: str) -> datetime | None:
    """When a record began: its id's first 13 hex digits are milliseconds since 1970."""
    if not RECORD_ID.fullmatch(record_id):
        return None
    try:
        return datetime.fromtimestamp(int(record_id[:13], 16) / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def search(engine: Engine, filters: questions.Filters, limit: int = SEARCH_ROWS) -> QueryResult:
    """The newest records matching ``filters`` (``wardgate recordings ls``)."""
    return engine.run(
        questions.records_sql(filters, engine.dialect, limit),
        HourWindow.around(filters.since, filters.until),
        trusted=True,
        max_rows=limit,
    )


@dataclass
class RecordEvents:
    lines: list[str]  # each event's line as the engine returned it (the recorded JSON)
    events: list[dict[str, Any]]  # parsed, in the order they happened
    duplicates: int = 0  # lines delivered twice (Firehose delivers at least once): shown once
    truncated: bool = False


def record_events(engine: Engine, record_id: str) -> RecordEvents | None:
    """Every event of ``record_id``, or None when the recordings hold none."""
    started = record_start(record_id)
    if started is None:
        return None
    window = HourWindow(hour_of(started - timedelta(hours=1)), hour_of(started + RECORD_WINDOW))
    result = engine.run(
        f"SELECT raw FROM event_rows WHERE record_id = {questions.literal(record_id)}",  # noqa: S608
        window,
        trusted=True,
        max_rows=MAX_EVENTS,
    )
    lines: list[str] = []
    for (raw,) in result.rows:
        if isinstance(raw, str) and raw not in lines:
            lines.append(raw)
    if not lines:
        return None
    parsed = [json.loads(line) for line in lines]
    by_identity = {id(event): line for event, line in zip(parsed, lines, strict=True)}
    events = ordered(parsed)
    return RecordEvents(
        [by_identity[id(e)] for e in events],
        events,
        duplicates=len(result.rows) - len(lines),
        truncated=result.truncated,
    )


# ------------------------------------------------------------------------------------- integrity


@dataclass
class IntegrityStatus:
    """What the page says about the integrity of one record as shown."""

    state: str  # intact | tampered | unsigned | pending | unchecked
    summary: str
    problems: list[tuple[str, str]] = field(default_factory=list)  # (kind, what and where)
    notes: list[str] = field(default_factory=list)
    key_id: str = ""


class TooMuchToCheck(Exception):
    """The record's hours hold more than a page may read."""


def _line_digest(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


class _BoundedRecordings(S3Recordings):
    """The bucket, read within the page's limits, keeping the digests of one record's lines."""

    def __init__(self, bucket: str, prefix: str, s3: Any, record_id: str, max_objects: int, max_bytes: int):
        super().__init__(bucket, prefix, s3)
        self.record_id = record_id
        self.max_objects = max_objects
        self.max_bytes = max_bytes
        self.read_bytes = 0
        self.record_lines: set[str] = set()

    def keys(self, since: datetime | None, until: datetime | None) -> tuple[list[str], list[str]]:
        objects, manifests = super().keys(since, until)
        if len(objects) > self.max_objects:
            raise TooMuchToCheck(
                f"the record's hours hold {len(objects)} objects (a page reads {self.max_objects})"
            )
        return objects, manifests

    def fetch(self, keys: list[str]) -> Iterator[tuple[str, bytes | None]]:
        marker = self.record_id.encode()
        for key, data in super().fetch(keys):
            if data is not None:
                self.read_bytes += len(data)
                if self.read_bytes > self.max_bytes:
                    raise TooMuchToCheck(f"the record's hours hold more than {self.max_bytes // 2**20} MiB")
                if not key.startswith(MANIFEST_PREFIX):
                    for line in decompressed(data).split(b"\n"):
                        if marker in line and _record_of(line) == self.record_id:
                            self.record_lines.add(_line_digest(line))
            yield key, data


def _record_of(line: bytes) -> str:
    try:
        document = json.loads(line)
    except ValueError:
        return ""
    return str(document.get("record_id") or "") if isinstance(document, dict) else ""


def _when(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class IntegrityChecker:
    def __init__(
        self,
        bucket: str,
        prefix: str,
        verifier: Callable[[], ManifestVerifier],
        s3: Any = None,
        max_objects: int = MAX_OBJECTS,
        max_bytes: int = MAX_BYTES,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.verifier = verifier
        self.s3 = s3
        self.max_objects = max_objects
        self.max_bytes = max_bytes
        self.now = now

    def check(self, record_id: str, shown: RecordEvents) -> IntegrityStatus:
        cli = f"wardgate recordings verify --record {record_id}"
        times = [t for t in (_when(e.get("time")) for e in shown.events) if t is not None]
        started = record_start(record_id)
        if started is None or not times:
            return IntegrityStatus("unchecked", "the record's events carry no times to find their objects by")
        since = min([started, *times])
        until = max(times) + ARRIVAL_SLACK
        try:
            verifier = self.verifier()
        except SigningKeyError as exc:
            return IntegrityStatus("unchecked", f"not checked: {exc}")
        source = _BoundedRecordings(
            self.bucket, self.prefix, self.s3, record_id, self.max_objects, self.max_bytes
        )
        try:
            report = verify_recordings(source, verifier, since, until, record_id)
        except TooMuchToCheck as exc:
            return IntegrityStatus("unchecked", f"not checked on this page: {exc}; run `{cli}`")
        except IntegrityError:
            return IntegrityStatus(
                "tampered",
                "the bucket holds none of this record's events: what is shown has no object behind it",
                [("missing_object", f"no object filed from {since:%Y-%m-%d %H:00} to "
                  f"{until:%Y-%m-%d %H:00} UTC holds record {record_id}")],
                key_id=verifier.key_id,
            )  # fmt: skip
        problems = [(f.kind, f.message) for f in report.findings]
        not_in_bucket = [
            line for line in shown.lines if _line_digest(line.encode()) not in source.record_lines
        ]
        if not_in_bucket:
            problems.append(
                (
                    "modified_event",
                    f"{len(not_in_bucket)} of the {len(shown.lines)} event(s) shown here are not in the "
                    "bucket as shown (the query engine's copy differs from the objects)",
                )
            )
        notes: list[str] = []
        if report.open_records:
            notes.append("open: the record has no final event yet (a live session or a pending approval)")
        if report.unchained:
            notes.append(
                f"{report.unchained} event(s) predate hash chains: "
                "only their objects' manifests vouch for them"
            )
        hidden = len(source.record_lines) - (len(shown.lines) - len(not_in_bucket))
        if hidden > 0:
            notes.append(f"{hidden} event(s) of this record in the bucket are not shown (not queried yet)")
        status = IntegrityStatus("intact", "", problems, notes, verifier.key_id)
        kinds = {kind for kind, _ in problems}
        if not problems:
            status.summary = (
                f"intact: {report.events} event(s) in {report.objects} object(s), each object's signed "
                "manifest verified, the record's hash chain and its writers' sequences whole"
            )
        elif kinds == {"unsigned_object"} and report.unchained == report.events:
            status.state = "unsigned"
            status.summary = (
                "unsigned and unchained: recorded before wardgate signed and chained recordings; "
                "nothing vouches for these events"
            )
        elif kinds == {"unsigned_object"} and (self.now() - max(times)).total_seconds() < PENDING_SECONDS:
            status.state = "pending"
            status.summary = (
                "not signed yet: the newest object waits for its manifest (written within seconds of "
                "delivery); reload in a minute"
            )
        else:
            status.state = "tampered"
            status.summary = "NOT INTACT: " + "; ".join(
                sorted(f"{PROBLEMS.get(kind, kind)}" for kind in kinds)
            )
        return status
