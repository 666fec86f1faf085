"""The local cache the DuckDB engine reads: the bucket's recording objects, as Parquet, fetched once.

Layout (under ``WARDGATE_RECORDINGS_CACHE``, default ``.wardgate/recordings-cache/``, one folder
per bucket and prefix)::

    <bucket>/<prefix>/days/YYYY/MM/DD/part-<digest>.parquet   event_rows (schema.py) of the day's objects
    <bucket>/<prefix>/days/YYYY/MM/DD/synced.json             the objects (key -> ETag) each part holds

A sync lists the days a question needs (one ``ListObjectsV2`` per day, or the whole prefix for
long windows), fetches only objects it has not converted, decompresses them, and has DuckDB
extract the columns once into one Parquet part per day and sync (one DuckDB session for the
whole sync); a day with many parts is compacted into one. The objects are immutable (Firehose
writes each key once; Object Lock keeps it), so a key seen once never needs reading again, and
a warm question reads Parquet only. What the bucket no longer holds (expired, or deleted) the
cache drops too: a day whose objects changed is converted again. The cache trusts what it
fetched: ``wardgate recordings verify`` proves the bucket intact. One sync (and the query after
it) at a time per cache: a lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from wardgate.auditing import schema

_HOUR_KEY = re.compile(r"^(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")
MAX_PARTS_PER_DAY = 8  # then the day is compacted into one part
MAX_LINE_BYTES = 32 * 1024 * 1024  # an event larger than this cannot be read (bodies are cut at 64 KiB)
MAX_OBJECT_BYTES = 256 * 1024 * 1024  # decompressed; Firehose buffers 64 MiB before compressing
FETCH_THREADS = 8
CLOSED_AFTER = timedelta(hours=25)  # after this, a day's prefix gets no new objects
FULL_LISTING_DAYS = 62  # a longer window lists the whole prefix once rather than day by day


class CacheError(RuntimeError):
    """The cache could not be brought up to date (a clear message, no traceback)."""


@dataclass(frozen=True)
class HourWindow:
    """Arrival hours ``first``..``last`` (inclusive, ``yyyy/MM/dd/HH``); None: unbounded."""

    first: str | None = None
    last: str | None = None

    @classmethod
    def around(cls, since: datetime | None, until: datetime | None) -> HourWindow:
        """The hours whose objects can hold events of [since, until]: Firehose files an event under
        its arrival hour (up to an hour later), and a session's statements need its session_start."""
        first = since - timedelta(hours=schema.SESSION_LOOKBACK_HOURS) if since else None
        last = until + timedelta(hours=1) if until else None
        return cls(hour_of(first) if first else None, hour_of(last) if last else None)

    def holds(self, hour: str) -> bool:
        return (self.first is None or hour >= self.first) and (self.last is None or hour <= self.last)

    def holds_day(self, day: str) -> bool:
        """``day`` (yyyy/MM/dd) has hours in the window."""
        return (self.first is None or day >= self.first[:10]) and (self.last is None or day <= self.last[:10])

    def days(self) -> list[str] | None:
        """The day prefixes to list (yyyy/MM/dd), or None for the whole prefix."""
        if self.first is None:
            return None
        start = datetime.strptime(self.first[:10], "%Y/%m/%d").replace(tzinfo=UTC)
        end = datetime.strptime(self.last[:10], "%Y/%m/%d").replace(tzinfo=UTC) if self.last else None
        end = end or datetime.now(UTC) + timedelta(days=1)
        if (end - start).days > FULL_LISTING_DAYS:
            return None
        return [(start + timedelta(days=n)).strftime("%Y/%m/%d") for n in range((end - start).days + 1)]


def hour_of(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y/%m/%d/%H")


@dataclass
class SyncReport:
    listed: int = 0
    fetched: int = 0
    fetched_bytes: int = 0
    events: int = 0
    skipped_lines: int = 0  # lines that are not recording events (not JSON, another format)
    skipped_objects: list[str] = field(default_factory=list)  # keys outside the yyyy/MM/dd/HH/ layout
    rebuilt_days: list[str] = field(default_factory=list)


class RecordingsCache:
    def __init__(self, root: Path, bucket: str, prefix: str, s3: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.s3 = s3
        self.directory = root / _safe(bucket) / (_safe(prefix.strip("/")) or "_")
        self.days_dir = self.directory / "days"

    # ------------------------------------------------------------------ reading

    def parts(self, window: HourWindow) -> list[Path]:
        """The Parquet parts of the days in ``window`` (only parts their manifest names)."""
        found: list[Path] = []
        for day, folder in self._cached_days():
            if window.holds_day(day):
                found.extend(folder / name for name in sorted(_read_manifest(folder / "synced.json")))
        return found

    def _cached_days(self) -> list[tuple[str, Path]]:
        if not self.days_dir.is_dir():
            return []
        return [
            (manifest.parent.relative_to(self.days_dir).as_posix(), manifest.parent)
            for manifest in sorted(self.days_dir.glob("*/*/*/synced.json"))
        ]

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One sync-and-query at a time per cache: a sync may drop parts another query reads."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ syncing

    def sync(self, window: HourWindow, refresh: bool = False) -> SyncReport:
        """Bring the window's days up to date with the bucket (call it holding ``locked()``).

        A day listed once it was closed (``CLOSED_AFTER`` past its end: Firehose retries a failed
        delivery for up to 24 hours, under the hour the record arrived) gets no new objects, so it
        is not listed again unless ``refresh``: a warm question lists today and yesterday only.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        report = SyncReport()
        closed_file = self.directory / "closed-days.json"
        closed = set() if refresh else set(_read_list(closed_file))
        days = window.days()
        if days is not None:
            days = [day for day in days if day not in closed]
        listed = self._list(days, report)
        scope = set(days) if days is not None else None
        for day, folder in self._cached_days():  # gone from the bucket: gone from the cache
            if day not in listed and window.holds_day(day) and (scope is None or day in scope):
                shutil.rmtree(folder, ignore_errors=True)
                report.rebuilt_days.append(day)
        pending: dict[str, dict[str, str]] = {}
        for day in sorted(listed):
            new = self._prepare_day(day, listed[day], report)
            if new:
                pending[day] = new
        if pending:
            con = _duckdb()
            try:
                for day, objects in pending.items():
                    self._convert(con, day, objects, report)
            finally:
                con.close()
        now = datetime.now(UTC)
        for day in days if days is not None else sorted(listed):
            end = datetime.strptime(day, "%Y/%m/%d").replace(tzinfo=UTC) + timedelta(days=1)
            if now > end + CLOSED_AFTER:
                closed.add(day)
        _write_list(closed_file, sorted(closed))
        return report

    def _list(self, days: list[str] | None, report: SyncReport) -> dict[str, dict[str, str]]:
        """{day: {key: etag}} of the objects under ``days`` (every day when None)."""
        prefixes = [f"{self.prefix}{day}/" for day in days] if days is not None else [self.prefix]
        listed: dict[str, dict[str, str]] = {}
        paginator = self.s3.get_paginator("list_objects_v2")
        for prefix in prefixes:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    key = str(obj["Key"])
                    match = _HOUR_KEY.match(key[len(self.prefix) :])
                    if match is None:
                        report.skipped_objects.append(key)
                        continue
                    day = "/".join(match.groups()[:3])
                    listed.setdefault(day, {})[key] = str(obj.get("ETag", "")).strip('"')
                    report.listed += 1
        return listed

    def _prepare_day(self, day: str, objects: dict[str, str], report: SyncReport) -> dict[str, str]:
        """Drop what changed; return the day's objects still to convert."""
        folder = self.days_dir / day
        manifest = _read_manifest(folder / "synced.json")
        held = {key: etag for part in manifest.values() for key, etag in part.items()}
        if any(objects.get(key) != etag for key, etag in held.items()):
            # An object vanished (expired) or changed: convert the day again from what is there now.
            shutil.rmtree(folder, ignore_errors=True)
            manifest, held = {}, {}
            report.rebuilt_days.append(day)
        folder.mkdir(parents=True, exist_ok=True)
        for stray in folder.glob("*.parquet"):  # left by a sync that stopped before its manifest
            if stray.name not in manifest:
                stray.unlink()
        return {key: etag for key, etag in objects.items() if key not in held}

    def _convert(self, con: Any, day: str, objects: dict[str, str], report: SyncReport) -> None:
        """Fetch ``objects`` and write them as one Parquet part of ``day``, then record it."""
        folder = self.days_dir / day
        with tempfile.TemporaryDirectory(dir=self.directory, prefix=".sync-") as scratch:
            lines_file = Path(scratch) / "lines"
            lines = 0
            with open(lines_file, "wb") as out, ThreadPoolExecutor(FETCH_THREADS) as pool:
                for key, data in zip(objects, pool.map(self._fetch, objects), strict=True):
                    report.fetched += 1
                    report.fetched_bytes += len(data)
                    if not data:
                        continue
                    if not data.endswith(b"\n"):
                        data += b"\n"
                    # Each line gets its object's hour in front (U+0001 never occurs in JSON text).
                    hour = key[len(self.prefix) : len(self.prefix) + 13].encode() + b"\x01"
                    lines += data.count(b"\n")
                    out.write(hour + data[:-1].replace(b"\n", b"\n" + hour) + b"\n")
            digest = hashlib.sha256("\n".join(sorted(objects)).encode()).hexdigest()[:24]
            name = f"part-{digest}.parquet"
            converted = _extract(con, lines_file, folder / name, Path(scratch))
        report.events += converted
        report.skipped_lines += lines - converted
        manifest = _read_manifest(folder / "synced.json")
        manifest[name] = objects
        if len(manifest) > MAX_PARTS_PER_DAY:
            manifest = _compact(con, folder, manifest)
        _write_manifest(folder / "synced.json", manifest)

    def _fetch(self, key: str) -> bytes:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as exc:
            raise CacheError(f"could not read s3://{self.bucket}/{key}: {type(exc).__name__}") from None
        if body[:2] == b"\x1f\x8b":
            try:
                return _gunzip(body, MAX_OBJECT_BYTES)
            except (ValueError, zlib.error) as exc:
                raise CacheError(f"s3://{self.bucket}/{key}: {exc}") from None
        return bytes(body)


def _compact(con: Any, folder: Path, manifest: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The day's parts as one (written before the manifest names it; the old ones removed after)."""
    merged: dict[str, str] = {key: etag for part in manifest.values() for key, etag in part.items()}
    digest = hashlib.sha256("\n".join(sorted(merged)).encode()).hexdigest()[:24]
    name = f"part-{digest}.parquet"
    sources = _sql_list([str(folder / part) for part in sorted(manifest)])
    temporary = folder / f".{name}.tmp"
    con.execute(
        f"COPY (SELECT * FROM read_parquet({sources})) "  # noqa: S608 (quoted paths)
        f"TO {_sql_text(str(temporary))} (FORMAT parquet, COMPRESSION zstd)"
    )
    os.replace(temporary, folder / name)
    _write_manifest(folder / "synced.json", {name: merged})
    for part in manifest:
        if part != name:
            (folder / part).unlink(missing_ok=True)
    return {name: merged}


def _extract(con: Any, lines_file: Path, target: Path, scratch: Path) -> int:
    """DuckDB reads each line as (hour, line) and writes the event_rows columns to ``target``."""
    source = (
        f"(SELECT {schema.PARTITION}, line "  # noqa: S608 (a quoted path)
        f"FROM read_csv({_sql_text(str(lines_file))}, columns={{'{schema.PARTITION}': 'VARCHAR', "
        "'line': 'VARCHAR'}, delim=chr(1), quote='', escape='', header=false, auto_detect=false, "
        f"new_line='\\n', ignore_errors=true, max_line_size={MAX_LINE_BYTES}, "
        f"buffer_size={2 * MAX_LINE_BYTES}))"
    )
    temporary = scratch / "part.parquet"
    try:
        con.execute(
            f"COPY ({schema.duckdb_extract(source)}) "
            f"TO {_sql_text(str(temporary))} (FORMAT parquet, COMPRESSION zstd)"
        )
        counted = f"SELECT count(*) FROM read_parquet({_sql_text(str(temporary))})"  # noqa: S608 (a quoted path)
        row = con.execute(counted).fetchone()
    except Exception as exc:  # duckdb.Error, without importing duckdb at module level
        raise CacheError(f"could not convert the recordings of {target.parent.name}: {exc}") from None
    os.replace(temporary, target)
    return int(row[0]) if row else 0


def _gunzip(body: bytes, limit: int) -> bytes:
    """Every gzip member of ``body`` (Firehose may concatenate them), at most ``limit`` bytes."""
    out = bytearray()
    rest = body
    while rest:
        member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out += member.decompress(rest, limit - len(out) + 1)
        if len(out) > limit or member.unconsumed_tail:
            raise ValueError(f"larger than {limit} bytes once decompressed")
        if not member.eof:
            raise ValueError("truncated gzip data")
        rest = member.unused_data
    return bytes(out)


def _duckdb() -> Any:
    """A DuckDB connection for conversion: no extension is installed or loaded behind our back."""
    import duckdb

    return duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
        }
    )


def _read_manifest(path: Path) -> dict[str, dict[str, str]]:
    try:
        parsed = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _read_list(path: Path) -> list[str]:
    try:
        parsed = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [str(item) for item in parsed] if isinstance(parsed, list) else []


def _write_list(path: Path, items: list[str]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(items))
    os.replace(temporary, path)


def _write_manifest(path: Path, manifest: dict[str, dict[str, str]]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(temporary, path)


def _safe(name: str) -> str:
    """A path component from a bucket name or prefix (no separators, no dot segments)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip(".")
    return cleaned or "_"


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join(_sql_text(v) for v in values) + "]"
