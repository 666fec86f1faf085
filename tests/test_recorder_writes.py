"""The outcome's two writes (the event to the stream, the entry to the index): concurrent when the
stream is slow (one AWS round trip, not two), written by the caller when no worker has taken the
entry up yet, exactly once either way, and a failure of either is a refusal to answer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from wardgate.errors import ServiceUnavailable
from wardgate.recording import MemoryIndex, MemoryStream, Recorder, Recording, _background

WAIT_S = 5.0


def recording() -> Recording:
    recording = Recording(request_id="req", connection="demo", request={"method": "GET", "path": "/x"})
    recording.decision = {"outcome": "allow"}
    recording.response = {"status": 200}
    return recording


class ThreadIndex(MemoryIndex):
    """Remembers which thread wrote each entry; optionally fails."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.threads: list[threading.Thread] = []
        self.started = threading.Event()
        self.fail = fail

    def put(self, entry: dict[str, Any]) -> None:
        self.started.set()
        self.threads.append(threading.current_thread())
        if self.fail:
            raise RuntimeError("index down")
        super().put(entry)


class StreamWaitingForTheIndex(MemoryStream):
    """A slow stream: its write returns only once the index write has begun elsewhere."""

    def __init__(self, index: ThreadIndex) -> None:
        super().__init__()
        self.index = index
        self.overlapped = False

    def put(self, line: bytes) -> None:
        self.overlapped = self.index.started.wait(WAIT_S)
        super().put(line)


@pytest.fixture
def busy_workers() -> Iterator[None]:
    """Every worker of the recording pool held, so a new index write waits in the queue."""
    release = threading.Event()
    pool = _background()
    held = [pool.submit(release.wait, WAIT_S) for _ in range(pool._max_workers)]
    try:
        yield
    finally:
        release.set()
        for future in held:
            future.result(WAIT_S)


def test_a_slow_stream_and_the_index_are_written_concurrently() -> None:
    index = ThreadIndex()
    stream = StreamWaitingForTheIndex(index)
    Recorder(stream, index).record_outcome(recording(), "response")
    assert stream.overlapped  # the index write began while the stream write was still waiting
    assert len(index.entries) == 1 and len(stream.lines) == 1
    assert index.threads[0] is not threading.current_thread()


def test_an_entry_no_worker_took_up_is_written_by_the_caller_once(busy_workers: None) -> None:
    index, stream = ThreadIndex(), MemoryStream()
    Recorder(stream, index).record_outcome(recording(), "response")
    assert index.threads == [threading.current_thread()]
    assert len(index.entries) == 1 and len(stream.lines) == 1


def test_an_index_failure_written_by_the_caller_is_still_a_refusal(busy_workers: None) -> None:
    index, stream = ThreadIndex(fail=True), MemoryStream()
    with pytest.raises(ServiceUnavailable) as refused:
        Recorder(stream, index).record_outcome(recording(), "response")
    assert refused.value.code == "recording_unavailable"
    assert index.threads == [threading.current_thread()]


def test_an_index_failure_in_a_worker_is_a_refusal() -> None:
    index = ThreadIndex(fail=True)
    with pytest.raises(ServiceUnavailable) as refused:
        Recorder(StreamWaitingForTheIndex(index), index).record_outcome(recording(), "response")
    assert refused.value.code == "recording_unavailable"
    assert index.threads[0] is not threading.current_thread()


def test_the_outcome_is_recorded_as_append_writes_the_same_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sealing before the index write starts changes no byte: the outcome's line is the event's
    JSON line with its chain, as any other event's, and the index gets the recording's entry."""
    import json
    import time

    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.25)  # both events carry the same time
    made = recording()
    made.timings_ms.update(guard=0.5, total=1.25)
    made.response = {"status": 200, "body": {"size": 2, "data": '{"a":"\\u00e9 \\"x\\""}'}}
    index, stream = MemoryIndex(), MemoryStream()
    outcome = Recorder(stream, index)
    outcome.record_outcome(made, "response")
    plain_stream = MemoryStream()
    Recorder(plain_stream, MemoryIndex()).append(made.event("response"))

    def without_writer(line: bytes) -> dict[str, Any]:
        event = json.loads(line)
        assert event["chain"]["writer"]
        event["chain"].pop("writer")
        return dict(event)

    assert len(stream.lines) == 1 and stream.lines[0].endswith(b"\n")
    first = without_writer(stream.lines[0])
    assert first["chain"] == {"seq": 1, "prev": ""}
    second = without_writer(plain_stream.lines[0])
    assert second["chain"]["prev"] and second["chain"]["seq"] == 1  # the same record's next event
    first.pop("chain"), second.pop("chain")
    assert first == second == {**made.event("response")}
    assert index.entries == [made.index_entry()]
