"""The local cache the DuckDB engine reads: the bucket's recording objects, as Parquet, fetched once.

Layout (under ``WARDGATE_RECORDINGS_CACHE``, default ``.wardgate/recordings-cache/``, one folder
per bucket and prefix)::

    <bucket>/<prefix>/hours/YYYY/MM/DD/HH/part-<digest>.parquet   event_rows (schema.py), several objects each
    <bucket>/<prefix>/hours/YYYY/MM/DD/HH/synced.json             which objects (key -> ETag) each part holds

A sync lists the hours a question needs (one ``ListObjectsV2`` per day), fetches only objects it
has not converted (or whose ETag changed, or that vanished: that hour is rebuilt), decompresses
them, and has DuckDB extract the columns once into one Parquet part per hour and sync; an hour
with many parts is compacted into one. The objects are immutable (Firehose writes each key once;
Object Lock keeps it), so a key seen once never needs reading again: a warm question reads Parquet
only. The cache trusts what it fetched: ``wardgate recordings verify`` proves the bucket intact.
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
MAX_PARTS_PER_HOUR = 8  # then the hour is compacted into one part
MAX_LINE_BYTES = 32 * 1024 * 1024  # an event larger than this cannot be read (bodies are cut at 64 KiB)
MAX_OBJECT_BYTES = 256 * 1024 * 1024  # decompressed; Firehose buffers 64 MiB before compressing
FETCH_THREADS = 8
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

    def days(self) -> list[str] | None:
        """The day prefixes to list, or None for the whole prefix."""
        if self.first is None:
            return None
        start = datetime.strptime(self.first[:10], "%Y/%m/%d").replace(tzinfo=UTC)
        end = datetime.strptime(self.last[:10], "%Y/%m/%d").replace(tzinfo=UTC) if self.last else None
        end = end or datetime.now(UTC) + timedelta(days=1)
        if (end - start).days > FULL_LISTING_DAYS:
            return None
        return [(start + timedelta(days=n)).strftime("%Y/%m/%d/") for n in range((end - start).days + 1)]


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
    rebuilt_hours: list[str] = field(default_factory=list)


class RecordingsCache:
    def __init__(self, root: Path, bucket: str, prefix: str, s3: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.s3 = s3
        self.directory = root / _safe(bucket) / (_safe(prefix.strip("/")) or "_")
        self.hours_dir = self.directory / "hours"

    # ------------------------------------------------------------------ reading

    def parts(self, window: HourWindow) -> list[Path]:
        """The Parquet parts of the hours in ``window`` (only parts their manifest names)."""
        found: list[Path] = []
        if not self.hours_dir.is_dir():
            return found
        for manifest in sorted(self.hours_dir.glob("*/*/*/*/synced.json")):
            hour = manifest.parent.relative_to(self.hours_dir).as_posix()
            if window.holds(hour):
                found.extend(manifest.parent / name for name in sorted(_read_manifest(manifest)))
        return found

    # ------------------------------------------------------------------ syncing

    def sync(self, window: HourWindow) -> SyncReport:
        self.directory.mkdir(parents=True, exist_ok=True)
        report = SyncReport()
        with self._locked():
            listed = self._list(window, report)
            for hour in sorted(listed):
                self._sync_hour(hour, listed[hour], report)
        return report

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One sync at a time per cache (two would convert the same objects twice)."""
        with open(self.directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _list(self, window: HourWindow, report: SyncReport) -> dict[str, dict[str, str]]:
        """{hour: {key: etag}} of the objects in ``window``."""
        days = window.days()
        prefixes = [self.prefix + day for day in days] if days is not None else [self.prefix]
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
                    hour = "/".join(match.groups())
                    if window.holds(hour):
                        listed.setdefault(hour, {})[key] = str(obj.get("ETag", "")).strip('"')
                        report.listed += 1
        return listed

    def _sync_hour(self, hour: str, objects: dict[str, str], report: SyncReport) -> None:
        folder = self.hours_dir / hour
        manifest_path = folder / "synced.json"
        manifest = _read_manifest(manifest_path) if manifest_path.exists() else {}
        held = {key: etag for part in manifest.values() for key, etag in part.items()}
        if any(objects.get(key) != etag for key, etag in held.items()):
            # An object vanished (expired) or changed: convert the hour again from what is there now.
            shutil.rmtree(folder, ignore_errors=True)
            manifest, held = {}, {}
            report.rebuilt_hours.append(hour)
        folder.mkdir(parents=True, exist_ok=True)
        for stray in folder.glob("*.parquet"):  # left by a sync that stopped before its manifest
            if stray.name not in manifest:
                stray.unlink()
        new = {key: etag for key, etag in objects.items() if key not in held}
        if new:
            part = self._convert(hour, folder, new, report)
            if part is not None:
                manifest[part] = new
                _write_manifest(manifest_path, manifest)
        if len(manifest) > MAX_PARTS_PER_HOUR:
            self._compact(hour, folder, manifest)

    def _convert(self, hour: str, folder: Path, objects: dict[str, str], report: SyncReport) -> str | None:
        """Fetch ``objects`` and write them as one Parquet part; returns its file name."""
        with tempfile.TemporaryDirectory(dir=self.directory, prefix=".sync-") as scratch:
            lines_file = Path(scratch) / "lines.jsonl"
            lines = 0
            with open(lines_file, "wb") as out, ThreadPoolExecutor(FETCH_THREADS) as pool:
                for data in pool.map(self._fetch, objects):
                    report.fetched += 1
                    report.fetched_bytes += len(data)
                    if data and not data.endswith(b"\n"):
                        data += b"\n"
                    lines += data.count(b"\n")
                    out.write(data)
            digest = hashlib.sha256("\n".join(sorted(objects)).encode()).hexdigest()[:24]
            name = f"part-{digest}.parquet"
            converted = _extract(lines_file, hour, folder / name, Path(scratch))
        report.events += converted
        report.skipped_lines += lines - converted
        return name

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

    def _compact(self, hour: str, folder: Path, manifest: dict[str, dict[str, str]]) -> None:
        merged: dict[str, str] = {key: etag for part in manifest.values() for key, etag in part.items()}
        digest = hashlib.sha256("\n".join(sorted(merged)).encode()).hexdigest()[:24]
        name = f"part-{digest}.parquet"
        sources = [str(folder / part) for part in sorted(manifest)]
        con = _duckdb()
        try:
            con.execute(
                f"COPY (SELECT * FROM read_parquet({_sql_list(sources)})) "  # noqa: S608 (quoted paths)
                f"TO {_sql_text(str(folder / name))} (FORMAT parquet, COMPRESSION zstd)"
            )
        finally:
            con.close()
        _write_manifest(folder / "synced.json", {name: merged})
        for part in manifest:
            if part != name:
                (folder / part).unlink(missing_ok=True)


def _extract(lines_file: Path, hour: str, target: Path, scratch: Path) -> int:
    """DuckDB reads each line as one string column and writes the event_rows columns to ``target``."""
    source = (
        f"(SELECT {_sql_text(hour)} AS {schema.PARTITION}, line "  # noqa: S608 (quoted hour and path)
        f"FROM read_csv({_sql_text(str(lines_file))}, columns={{'line': 'VARCHAR'}}, delim=chr(1), quote='', "
        "escape='', header=false, auto_detect=false, new_line='\\n', "
        f"max_line_size={MAX_LINE_BYTES}, buffer_size={2 * MAX_LINE_BYTES}))"
    )
    temporary = scratch / "part.parquet"
    con = _duckdb()
    try:
        con.execute(
            f"COPY ({schema.duckdb_extract(source)}) "
            f"TO {_sql_text(str(temporary))} (FORMAT parquet, COMPRESSION zstd)"
        )
        counted = f"SELECT count(*) FROM read_parquet({_sql_text(str(temporary))})"  # noqa: S608 (a quoted path)
        row = con.execute(counted).fetchone()
    except Exception as exc:  # duckdb.Error, without importing duckdb at module level
        raise CacheError(f"could not convert the recordings of {hour}: {exc}") from None
    finally:
        con.close()
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
