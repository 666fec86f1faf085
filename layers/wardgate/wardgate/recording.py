"""Session recordings: every request, allowed or refused, becomes a durable record for audit.

Cost shapes the design (docs/cost.md): one S3 PUT per request would cost $5 per million, so
records go to a Kinesis Data Firehose stream that batches them into S3 objects (JSON lines,
``wardgate.recording/v1``, docs/recording-format.md), plus one small DynamoDB index item per
record for listing. A forwarded request is recorded *before* it is forwarded (the ``request``
event) and its outcome after (the ``response`` event); if either write fails the agent gets
503 and, in the first case, nothing is forwarded.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson

from wardgate import aws
from wardgate.auditing.chain import EventWriter, Sealed
from wardgate.errors import ServiceUnavailable

FORMAT = "wardgate.recording/v1"
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-amz-security-token"}
)
REDACTED = "[redacted]"
INDEX_RETENTION = timedelta(days=90)
FIREHOSE_BATCH_RECORDS = 500  # PutRecordBatch's own limits: 500 records, 4 MiB a call
FIREHOSE_BATCH_BYTES = 4 * 1024 * 1024  # the index is for browsing; S3 keeps records longer (docs/cost.md)


def new_record_id(now: float | None = None) -> str:
    """Sortable by time (millisecond prefix), unguessable (random suffix)."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{millis:013x}{secrets.token_hex(8)}"


def recorded_headers(
    headers: Iterable[tuple[str, str]], extra_sensitive: Iterable[str] = ()
) -> dict[str, str]:
    hidden = SENSITIVE_HEADERS | {h.lower() for h in extra_sensitive}
    return {name: REDACTED if name.lower() in hidden else value for name, value in headers}


def recorded_body(body: bytes, cap: int) -> dict[str, Any]:
    """The body as recorded: text when it is UTF-8, base64 otherwise, cut at ``cap`` bytes."""
    kept = body[:cap]
    try:
        data, encoding = kept.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        data, encoding = base64.b64encode(kept).decode("ascii"), "base64"
    return {
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "truncated": len(body) > cap,
        "encoding": encoding,
        "data": data,
    }


@dataclass
class Recording:
    """What is known about one request; grows as the request moves through the gateway."""

    request_id: str
    connection: str
    request: dict[str, Any]
    started_at: float = field(default_factory=time.time)
    record_id: str = ""
    identity: dict[str, Any] | None = None
    operation: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.record_id = self.record_id or new_record_id(self.started_at)

    def event(self, kind: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "format": FORMAT,
            "event": kind,
            "record_id": self.record_id,
            "request_id": self.request_id,
            "time": datetime.fromtimestamp(time.time(), UTC).isoformat(),
            "started_at": datetime.fromtimestamp(self.started_at, UTC).isoformat(),
            "connection": self.connection,
            "identity": self.identity,
            "decision": self.decision,
        }
        if kind in ("request", "refused", "held"):
            body["request"] = self.request
            body["operation"] = self.operation
        if kind in ("response", "refused", "held"):
            body["response"] = self.response
            body["error"] = self.error
            body["timings_ms"] = self.timings_ms
        return body

    def index_entry(self) -> dict[str, Any]:
        return index_entry(
            self.connection,
            self.record_id,
            self.started_at,
            self.identity,
            method=self.request.get("method", ""),
            path=self.request.get("path", ""),
            status=int((self.response or {}).get("status") or 0),
            outcome=(self.decision or {}).get("outcome") or "refused",  # require_approval when held
            error=(self.error or {}).get("code") or "",
            duration_ms=self.timings_ms.get("total", 0.0),
        )


def index_entry(
    connection: str,
    record_id: str,
    started_at: float,
    identity: dict[str, Any] | None,
    **fields: Any,
) -> dict[str, Any]:
    """A record's item in the recordings index (``method``, ``path``, ``status``, ``outcome``,
    ``error``, ``duration_ms`` in ``fields``): one shape for requests and sessions alike."""
    started = datetime.fromtimestamp(started_at, UTC)
    return {
        "connection": connection,
        "sort_key": f"{started.isoformat()}#{record_id}",
        "record_id": record_id,
        "started_at": started.isoformat(),
        "subject": (identity or {}).get("subject") or "-",
        **fields,
        "duration_ms": round(fields["duration_ms"], 3),
        "expires_at": int((started + INDEX_RETENTION).timestamp()),
    }


class EventStream(Protocol):
    def put(self, line: bytes) -> None: ...

    def put_batch(self, lines: list[bytes]) -> None:
        """All of ``lines``, durably, or raise: the TCP gateway's group commit (tcp/recorder.py)."""
        ...


class RecordIndex(Protocol):
    def put(self, entry: dict[str, Any]) -> None: ...


class FirehoseStream:
    def __init__(self, stream_name: str) -> None:
        self.stream_name = stream_name

    def put(self, line: bytes) -> None:
        aws.client("firehose").put_record(DeliveryStreamName=self.stream_name, Record={"Data": line})

    def put_batch(self, lines: list[bytes]) -> None:
        """PutRecordBatch takes 500 records (4 MiB) a call and may fail some of them: those are
        sent again once; any still failing raise, so their statements never run."""
        firehose = aws.client("firehose")
        for batch in _firehose_batches(lines):
            pending = batch
            for _attempt in range(2):
                answer = firehose.put_record_batch(
                    DeliveryStreamName=self.stream_name, Records=[{"Data": line} for line in pending]
                )
                if not answer.get("FailedPutCount"):
                    break
                pending = [
                    line
                    for line, result in zip(pending, answer["RequestResponses"], strict=True)
                    if result.get("ErrorCode")
                ]
            else:
                raise RuntimeError(f"Firehose refused {len(pending)} record(s)")


def _firehose_batches(lines: list[bytes]) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    size = 0
    for line in lines:
        if batch and (len(batch) == FIREHOSE_BATCH_RECORDS or size + len(line) > FIREHOSE_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += len(line)
    if batch:
        yield batch


class DynamoRecordIndex:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def put(self, entry: dict[str, Any]) -> None:
        from boto3.dynamodb.types import TypeSerializer

        serializer = TypeSerializer()
        item = {k: serializer.serialize(str(v) if isinstance(v, float) else v) for k, v in entry.items()}
        aws.client("dynamodb").put_item(TableName=self.table_name, Item=item)


@functools.cache
def _background() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="wardgate-recording")


class Recorder:
    def __init__(self, stream: EventStream, index: RecordIndex) -> None:
        self.stream = stream
        self.index = index
        self.writer = EventWriter()  # hash chains and sequence numbers (auditing/chain.py)

    def record_request(self, recording: Recording) -> None:
        """Durably record a request that is about to be forwarded; raise if we cannot."""
        self._put(recording.event("request"))

    def record_outcome(self, recording: Recording, kind: str) -> None:
        """``kind`` is ``response`` for a forwarded request, ``refused`` for one the gateway refused.

        The event and the index entry are independent writes, so they go out together: the agent
        waits for one AWS round trip instead of two. The event is serialised and hashed first and
        only then is the index write handed to a worker, so that the worker does not take the GIL
        from the hashing (hashlib lets it go on long lines) and the two writes, not the CPU work,
        overlap. When the event is written before a worker has taken the index entry up (a fast
        stream, or no CPU for the worker yet), the entry is written here instead: waiting for a
        thread to wake would only add its switch.
        """
        entry = recording.index_entry()
        sealed = self._seal(recording.event(kind))
        index_write = _background().submit(self.index.put, entry)
        try:
            self._send(*sealed)
        finally:
            try:
                if index_write.cancel():  # not started: no worker will run it now
                    self.index.put(entry)
                else:
                    index_write.result()
            except Exception as exc:
                raise ServiceUnavailable(
                    f"recording index unavailable ({type(exc).__name__})", code="recording_unavailable"
                ) from None

    def append(self, event: dict[str, Any]) -> None:
        """Append an event to an existing record (the approval flow's steps); raise if we cannot."""
        self._put(event)

    def _put(self, event: dict[str, Any]) -> None:
        self._send(*self._seal(event))

    def _seal(self, event: dict[str, Any]) -> tuple[Sealed, list[Sealed]]:
        """The event's line, and before it the writer_lost events naming what a failed write may
        not have delivered (none, nearly always)."""
        sealed = self.writer.seal(event, json_line)
        return sealed, self.writer.declarations(json_line)

    def _send(self, sealed: Sealed, declarations: list[Sealed]) -> None:
        try:
            if declarations:
                self.stream.put_batch([*(d.line for d in declarations), sealed.line])
            else:
                self.stream.put(sealed.line)
        except Exception as exc:
            self.writer.lost([*declarations, sealed])
            raise ServiceUnavailable(
                f"recording stream unavailable ({type(exc).__name__})", code="recording_unavailable"
            ) from None


_ORJSON_OPTIONS = (
    orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)  # dates and dataclasses through default=str, as json.dumps did


def json_line(event: dict[str, Any]) -> bytes:
    """One event as a compact JSON line, newline included (what the chain's hashes cover).

    orjson, as the TCP recorder: a Data API event carries the response body as one long string,
    which json.dumps escapes several times slower. What orjson refuses (an integer beyond 64
    bits, a lone surrogate, a key that is not a string) goes through json.dumps as before.
    """
    try:
        return orjson.dumps(event, default=str, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError included
        return json.dumps(event, separators=(",", ":"), default=str).encode() + b"\n"


class MemoryStream:
    """In-process sinks for benchmarks and unit tests of callers (the real ones are tested against moto)."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def put(self, line: bytes) -> None:
        self.lines.append(line)

    def put_batch(self, lines: list[bytes]) -> None:
        self.lines.extend(lines)


class MemoryIndex:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def put(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)


class RecordingReader:
    """What auditors and ``wardgate recordings`` read: the index for listing, S3 for full records."""

    def __init__(self, table_name: str, bucket: str, prefix: str) -> None:
        self.table_name = table_name
        self.bucket = bucket
        self.prefix = prefix

    def recent(
        self, connection: str | None = None, subject: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer

        ddb = aws.client("dynamodb")
        if connection:
            pages = ddb.get_paginator("query").paginate(
                TableName=self.table_name,
                KeyConditionExpression="#c = :c",
                ExpressionAttributeNames={"#c": "connection"},
                ExpressionAttributeValues={":c": {"S": connection}},
                ScanIndexForward=False,
            )
        else:
            pages = ddb.get_paginator("scan").paginate(TableName=self.table_name)
        deserializer = TypeDeserializer()
        entries = [
            {k: deserializer.deserialize(v) for k, v in item.items()}
            for page in pages
            for item in page["Items"]
        ]
        if subject:
            entries = [e for e in entries if e.get("subject") == subject]
        entries.sort(key=lambda e: str(e["started_at"]), reverse=True)
        return entries[:limit]

    def events(self, record_id: str) -> list[dict[str, Any]]:
        """Every event of one record, in order; [] when none is found."""
        try:
            hour = datetime.fromtimestamp(int(record_id[:13], 16) / 1000, UTC).replace(minute=0, second=0)
        except (ValueError, OverflowError, OSError):
            return []
        events: list[dict[str, Any]] = []
        # Firehose files a record under its arrival hour, which may be the next one.
        for when in (hour, hour + timedelta(hours=1)):
            for line in self._lines(when.strftime("%Y/%m/%d/%H/")):
                if record_id.encode() in line:
                    event = json.loads(line)
                    if event.get("record_id") == record_id:
                        events.append(event)
        return sorted(events, key=lambda e: str(e["time"]))

    def _lines(self, hour_prefix: str) -> Iterator[bytes]:
        s3 = aws.client("s3")
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + hour_prefix
        )
        for page in pages:
            for obj in page.get("Contents", []):
                data = s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                if data[:2] == b"\x1f\x8b":
                    data = gzip.decompress(data)
                yield from data.splitlines()
