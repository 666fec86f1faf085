"""What every writer of recording events adds so that tampering shows: hash chains and sequence numbers.

Each event line carries ``chain`` (docs/recording-format.md#integrity):

- ``writer``: the id of the writer that wrote it, random when the writer is made (one per
  ``Recorder``, ``GroupCommit`` or ``AuditLog``: a few per Lambda execution environment, one
  ``GroupCommit`` per TCP task);
- ``seq``: the writer's sequence number, 1, 2, 3... over every event it writes, whatever the
  record, so a deleted event leaves a gap;
- ``prev``: the SHA-256 (hex) of the previous event line of the same record exactly as written
  (the JSON and its newline), "" for a record's first event in this process, so a modified,
  removed, inserted or reordered event breaks the chain of its record.

A write that fails may or may not have reached the stream: its sequence number would look like a
deleted event. The writer remembers such events and, before its next event, writes a
``writer_lost`` event naming them (sequence number, record, hash), so that ``verify`` tells a
failed write from a deletion.

This module is on every request's path: it only hashes the bytes the caller serialised anyway.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple

LOST_EVENT = "writer_lost"
RECORD_CHAINS = 4096  # records whose last hash this process remembers (an HTTP record lasts a request)
LOST_PER_EVENT = 200  # entries per writer_lost event, so that one stays well under Firehose's 1000 KiB

Dumps = Callable[[dict[str, Any]], bytes]  # an event -> its JSON line, newline included


class RecordChain:
    """The hash of a record's last event line: kept by records that live long (TCP sessions)."""

    __slots__ = ("last",)

    def __init__(self, last: str = "") -> None:
        self.last = last


class Sealed(NamedTuple):  # a tuple: made for every event, on the hot path
    """An event line as it goes to the stream, and what a ``writer_lost`` event would say of it."""

    line: bytes
    seq: int
    record_id: str
    digest: str
    declared: tuple[dict[str, Any], ...] = ()  # a writer_lost event's own entries


class _ProcessChains:
    """Last hashes of recent records, shared by every writer of the process: a held request's
    ``approval`` events (the approval desk's recorder) follow its ``held`` event (the gateway's)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._last: OrderedDict[str, str] = OrderedDict()

    def get(self, record_id: str) -> str:
        return self._last.get(record_id, "")

    def put(self, record_id: str, digest: str) -> None:
        self._last[record_id] = digest
        self._last.move_to_end(record_id)
        if len(self._last) > self.capacity:
            self._last.popitem(last=False)


# One lock for sequence numbers and chains: a record written from two threads at once (two
# approvers' clicks in local mode) must not fork. Uncontended on Lambda and on the TCP task's loop.
_LOCK = threading.Lock()
_CHAINS = _ProcessChains(RECORD_CHAINS)


class EventWriter:
    """One writer's id, sequence and the events it could not confirm."""

    def __init__(self) -> None:
        self.id = secrets.token_hex(8)
        self._seq = 0
        self._lost: list[dict[str, Any]] = []

    def seal(self, event: dict[str, Any], dumps: Dumps, chain: RecordChain | None = None) -> Sealed:
        """Stamp ``event`` with its ``chain`` field, serialise and hash it.

        ``chain`` is the record's own (TCP sessions); None: the process's table, by ``record_id``.
        """
        record_id = str(event.get("record_id") or "")
        with _LOCK:
            prev = chain.last if chain is not None else _CHAINS.get(record_id)
            self._seq += 1
            event["chain"] = {"writer": self.id, "seq": self._seq, "prev": prev}
            line = dumps(event)
            digest = hashlib.sha256(line).hexdigest()
            if chain is not None:
                chain.last = digest
            elif record_id:
                _CHAINS.put(record_id, digest)
            return Sealed(line, self._seq, record_id, digest)

    def lost(self, sealed: Iterable[Sealed]) -> None:
        """These lines may not have reached the stream: declare them before the next event."""
        with _LOCK:
            for item in sealed:
                self._lost.extend(item.declared)
                self._lost.append({"seq": item.seq, "record_id": item.record_id, "hash": item.digest})

    def declarations(self, dumps: Dumps) -> list[Sealed]:
        """``writer_lost`` events for what is pending (none, nearly always); pending is cleared:
        if these fail too, ``lost`` puts their entries back."""
        with _LOCK:
            if not self._lost:
                return []
            pending, self._lost = self._lost, []
        out = []
        for start in range(0, len(pending), LOST_PER_EVENT):
            entries = tuple(pending[start : start + LOST_PER_EVENT])
            event = {
                "format": "wardgate.recording/v1",
                "event": LOST_EVENT,
                "record_id": "",
                "time": datetime.fromtimestamp(time.time(), UTC).isoformat(),
                "lost": list(entries),
            }
            sealed = self.seal(event, dumps, RecordChain())
            out.append(Sealed(sealed.line, sealed.seq, "", sealed.digest, entries))
        return out
