"""Recording long-lived sessions: one record per session, one event per statement, group commit.

The contract is the HTTP path's: nothing reaches a backend unrecorded. A statement's event is
acknowledged by the durable stream (Firehose) *before* the statement is forwarded. Waiting for
one Firehose call per statement would cap a task at a few hundred statements a second, so
events from every session of the task share one writer: while a batch is in flight, new events
queue; when it lands, everything queued goes out in the next ``PutRecordBatch`` (group commit,
as databases do with their log). One session waits for at most two round trips; a thousand
sessions share them. Result events (rows, timings) are queued without waiting; if any write
fails, the session that queued it ends (``on_failure``), since it can no longer be recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from wardgate.auditing.chain import EventWriter, RecordChain, Sealed
from wardgate.errors import GatewayError, ServiceUnavailable
from wardgate.recording import FORMAT, EventStream, RecordIndex, index_entry, new_record_id

_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, as (seconds, "YYYY-MM-DDTHH:MM:SS")


def utc_now_iso() -> str:
    """``datetime.now(UTC).isoformat()``, formatting the date and time once a second (two events a
    statement are stamped on the hot path)."""
    global _second
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    second = _second  # one read: another thread may replace it meanwhile
    if seconds != second[0]:
        second = _second = (seconds, datetime.fromtimestamp(seconds, UTC).isoformat()[:19])
    if micros:
        return f"{second[1]}.{micros:06d}+00:00"
    return f"{second[1]}+00:00"


def _line(event: dict[str, Any]) -> bytes:
    """One JSON line (orjson: a statement's two events are serialised on the hot path)."""
    return orjson.dumps(event, default=str, option=_OPTIONS)


class GroupCommit:
    """One writer for every session of the task (see the module's docstring).

    ``inline`` calls the stream on the event loop (an in-memory sink for benchmarks); otherwise
    each batch is written from a worker thread, so the loop keeps serving other sessions. Events
    are sealed (hash chain, sequence number: auditing/chain.py) as they are queued, so a batch
    holds them in the order of their sequence numbers.
    """

    def __init__(self, stream: EventStream, *, inline: bool = False) -> None:
        self.stream = stream
        self.inline = inline
        self.writer = EventWriter()
        # (event, who waits for it): a future (the writer awaits durability) or the callback a
        # failure goes to (queued events: a statement's result)
        self._queue: list[tuple[Sealed, asyncio.Future[None] | Callable[[BaseException], None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # for the benchmark: events per batch = events / batches

    async def write(self, event: dict[str, Any], chain: RecordChain | None = None) -> None:
        """Durably write ``event``; raises ``ServiceUnavailable`` if the stream refused it."""
        if self.inline and self._writer is None:  # nothing to batch with: written now
            failure = self._send_now(event, chain)
            if failure is not None:
                raise failure
            return
        await self.enqueue(event, chain)

    def enqueue(self, event: dict[str, Any], chain: RecordChain | None = None) -> asyncio.Future[None]:
        """Queue ``event`` (of the record whose chain is ``chain``); the future completes once it is
        durable (or fails)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if self.inline and self._writer is None:
            failure = self._send_now(event, chain)
            if failure is None:
                future.set_result(None)
            else:
                future.set_exception(failure)
            return future
        self._queue.append((self.writer.seal(event, _line, chain), future))
        if self._writer is None:
            self._writer = loop.create_task(self._drain())
        return future

    def enqueue_later(
        self,
        event: dict[str, Any],
        chain: RecordChain | None,
        on_failure: Callable[[BaseException], None],
    ) -> None:
        """Queue ``event`` without waiting for it: if it cannot be written, ``on_failure`` is called
        (soon, from the event loop) with the error. No future: this is every statement's result."""
        if self.inline and self._writer is None:
            failure = self._send_now(event, chain)
            if failure is not None:
                asyncio.get_running_loop().call_soon(on_failure, failure)
            return
        self._queue.append((self.writer.seal(event, _line, chain), on_failure))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    def _send_now(self, event: dict[str, Any], chain: RecordChain | None) -> ServiceUnavailable | None:
        """In line, nothing queued: seal and write ``event`` at once; the error if it failed."""
        sealed = self.writer.seal(event, _line, chain)
        self.batches += 1
        failure = self._send([sealed])
        return None if failure is None else _unavailable(failure)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                lines = [sealed for sealed, _ in batch]
                failure = self._send(lines) if self.inline else await asyncio.to_thread(self._send, lines)
                self._settle(batch, failure)
        finally:
            self._writer = None

    def _send(self, batch: list[Sealed]) -> Exception | None:
        """Write one batch, after the writer_lost events of an earlier failure if any; returns the
        failure (runs in a worker thread: the futures are settled on the loop)."""
        declarations = self.writer.declarations(_line)
        try:
            if declarations:
                self.stream.put_batch([*(d.line for d in declarations), *(sealed.line for sealed in batch)])
            else:
                self.stream.put_batch([sealed.line for sealed in batch])
        except Exception as exc:
            self.writer.lost([*declarations, *batch])
            return exc
        return None

    def _settle(
        self,
        batch: list[tuple[Sealed, asyncio.Future[None] | Callable[[BaseException], None]]],
        failure: Exception | None,
    ) -> None:
        self.batches += 1
        error = _unavailable(failure) if failure is not None else None
        for _, waiter in batch:
            if isinstance(waiter, asyncio.Future):
                if waiter.done():
                    continue
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)
            elif error is not None:
                waiter(error)


def _unavailable(failure: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"recording stream unavailable ({type(failure).__name__})", code="recording_unavailable"
    )


@dataclass
class SessionRecord:
    """The record of one TCP session; its events carry a sequence number so order survives batching."""

    protocol: str
    connection: str
    client: str
    started_at: float = field(default_factory=time.time)
    record_id: str = ""
    identity: dict[str, Any] | None = None
    statements: int = 0
    refused: int = 0
    seq: int = 0
    outcome: str = "open"
    reason: str = ""
    chain: RecordChain = field(default_factory=RecordChain)  # the hash of its last event line
    _started: str = ""

    def __post_init__(self) -> None:
        self.record_id = self.record_id or new_record_id(self.started_at)
        self._started = datetime.fromtimestamp(self.started_at, UTC).isoformat()

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        self.seq += 1
        return {
            "format": FORMAT,
            "event": kind,
            "record_id": self.record_id,
            "seq": self.seq,
            "time": utc_now_iso(),
            "started_at": self._started,
            "connection": self.connection,
            "protocol": self.protocol,
            **fields,
        }

    def index_entry(self) -> dict[str, Any]:
        """The session in the recordings index, in the shape HTTP requests have there."""
        return index_entry(
            self.connection,
            self.record_id,
            self.started_at,
            self.identity,
            method=self.protocol,
            path=f"session: {self.statements} statement(s) run, {self.refused} refused",
            status=0,
            outcome=self.outcome,
            error=self.reason if self.outcome not in ("open", "closed") else "",
            duration_ms=(time.time() - self.started_at) * 1000,
        )


class SessionRecorder:
    """Session events through the group commit, and the session's entry in the recordings index."""

    def __init__(self, commit: GroupCommit, index: RecordIndex) -> None:
        self.commit = commit
        self.index = index

    async def index_session(self, record: SessionRecord) -> None:
        try:
            await asyncio.to_thread(self.index.put, record.index_entry())
        except Exception as exc:
            raise ServiceUnavailable(
                f"recording index unavailable ({type(exc).__name__})", code="recording_unavailable"
            ) from None

    async def end(self, record: SessionRecord, reason: str, opened_at: float, **fields: Any) -> None:
        """The session's last event and its index entry, for every protocol. A failure here is not
        raised: the session is over either way, and what it did was recorded as it went."""
        if record.outcome == "open":
            record.outcome = "closed"
        with contextlib.suppress(GatewayError):
            await self.write(
                record,
                "session_end",
                identity=record.identity,
                outcome=record.outcome,
                reason=reason,
                duration_ms=round((time.monotonic() - opened_at) * 1000, 3),
                **fields,
            )
            await self.index_session(record)

    async def write(self, record: SessionRecord, kind: str, **fields: Any) -> None:
        """Durable before the caller goes on (a statement about to run)."""
        await self.commit.write(record.event(kind, **fields), record.chain)

    def write_later(
        self, record: SessionRecord, kind: str, on_failure: Callable[[BaseException], None], **fields: Any
    ) -> None:
        """Queued (a statement's result): a failure ends the session through ``on_failure``."""
        self.commit.enqueue_later(record.event(kind, **fields), record.chain, on_failure)
