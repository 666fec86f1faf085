"""Recordings: body and header capture, record ids, events, index entries, fail-closed writes, reading back.

The reader tests run against the real local stack's moto (Firehose delivering to S3, DynamoDB).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from wardgate.errors import ServiceUnavailable
from wardgate.recording import (
    FORMAT,
    DynamoRecordIndex,
    FirehoseStream,
    MemoryIndex,
    MemoryStream,
    Recorder,
    Recording,
    RecordingReader,
    new_record_id,
    recorded_body,
    recorded_headers,
)

# ---------------------------------------------------------------- recorded_body


def test_utf8_body_is_recorded_as_text():
    body = "héllo wörld".encode()
    assert recorded_body(body, 1024) == {
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "truncated": False,
        "encoding": "utf-8",
        "data": "héllo wörld",
    }


def test_binary_body_is_recorded_as_base64():
    body = bytes(range(256))
    recorded = recorded_body(body, 1024)
    assert recorded["encoding"] == "base64"
    assert base64.b64decode(recorded["data"]) == body
    assert recorded["truncated"] is False


def test_empty_body():
    recorded = recorded_body(b"", 10)
    assert recorded["size"] == 0 and recorded["data"] == "" and recorded["truncated"] is False
    assert recorded["sha256"] == hashlib.sha256(b"").hexdigest()


def test_body_exactly_at_the_cap_is_not_truncated():
    recorded = recorded_body(b"x" * 8, 8)
    assert recorded["truncated"] is False and recorded["data"] == "x" * 8


def test_body_over_the_cap_is_cut_but_size_and_hash_cover_the_full_body():
    body = b"a" * 8 + b"TAIL"
    recorded = recorded_body(body, 8)
    assert recorded["truncated"] is True
    assert recorded["data"] == "a" * 8
    assert recorded["size"] == 12
    assert recorded["sha256"] == hashlib.sha256(body).hexdigest()
    assert recorded["sha256"] != hashlib.sha256(b"a" * 8).hexdigest()


def test_binary_body_over_the_cap_keeps_the_first_bytes_as_base64():
    body = b"\xff" * 20
    recorded = recorded_body(body, 5)
    assert recorded["truncated"] is True
    assert base64.b64decode(recorded["data"]) == b"\xff" * 5
    assert recorded["size"] == 20


# ---------------------------------------------------------------- recorded_headers


def test_sensitive_headers_are_redacted_case_insensitively():
    headers = [
        ("Authorization", "Bearer agent-token"),
        ("cookie", "session=abc"),
        ("Set-Cookie", "demo=1"),
        ("X-API-KEY", "k"),
        ("proxy-authorization", "Basic x"),
        ("X-Amz-Security-Token", "t"),
        ("content-type", "application/json"),
        ("x-trace", "t1"),
    ]
    recorded = recorded_headers(headers)
    assert recorded == {
        "Authorization": "[redacted]",
        "cookie": "[redacted]",
        "Set-Cookie": "[redacted]",
        "X-API-KEY": "[redacted]",
        "proxy-authorization": "[redacted]",
        "X-Amz-Security-Token": "[redacted]",
        "content-type": "application/json",
        "x-trace": "t1",
    }


def test_extra_sensitive_names_are_redacted_too():
    recorded = recorded_headers(
        [("X-Custom-Key", "secret"), ("x-other", "visible")], extra_sensitive=["x-CUSTOM-key"]
    )
    assert recorded == {"X-Custom-Key": "[redacted]", "x-other": "visible"}


# ---------------------------------------------------------------- new_record_id


def test_record_id_is_29_lowercase_hex_characters_carrying_the_time():
    now = 1_700_000_000.123
    record_id = new_record_id(now)
    assert len(record_id) == 29
    assert all(c in "0123456789abcdef" for c in record_id)
    assert int(record_id[:13], 16) == int(now * 1000)
    assert len(new_record_id()) == 29


def test_record_ids_sort_by_time():
    times = [1_600_000_000.0, 1_600_000_000.002, 1_650_000_000.5, 1_700_000_000.25, 4_000_000_000.0]
    ids = [new_record_id(t) for t in times]
    assert sorted(ids) == ids
    assert sorted(reversed(ids)) == ids


def test_record_ids_are_unique_within_one_millisecond():
    ids = {new_record_id(1_700_000_000.0) for _ in range(2000)}
    assert len(ids) == 2000


# ---------------------------------------------------------------- Recording.event / index_entry

COMMON = {
    "format",
    "event",
    "record_id",
    "request_id",
    "time",
    "started_at",
    "connection",
    "identity",
    "decision",
}


def make_recording(**fields) -> Recording:
    values = {
        "request_id": "req-1",
        "connection": "demo",
        "request": {
            "method": "GET",
            "path": "/x",
            "query": "",
            "headers": {},
            "body": recorded_body(b"", 10),
        },
        "started_at": 1_700_000_000.5,
    }
    values.update(fields)
    return Recording(**values)


def test_record_id_follows_started_at():
    recording = make_recording()
    assert int(recording.record_id[:13], 16) == 1_700_000_000_500
    assert make_recording(record_id="given").record_id == "given"


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("request", {"request", "operation"}),
        ("response", {"response", "error", "timings_ms"}),
        ("refused", {"request", "operation", "response", "error", "timings_ms"}),
    ],
)
def test_event_keys_by_kind(kind, extra):
    recording = make_recording(
        identity={"subject": "agent-1"},
        operation={"protocol": "http", "method": "GET", "path": "/x", "query": ""},
        decision={"outcome": "allow"},
        response={"status": 200},
        timings_ms={"total": 1.5},
    )
    event = recording.event(kind)
    assert set(event) == COMMON | extra
    assert event["format"] == FORMAT == "wardgate.recording/v1"
    assert event["event"] == kind
    assert event["record_id"] == recording.record_id
    assert event["request_id"] == "req-1"
    assert event["connection"] == "demo"
    assert event["started_at"] == "2023-11-14T22:13:20.500000+00:00"
    assert datetime.fromisoformat(event["time"]).tzinfo is not None
    assert abs(datetime.fromisoformat(event["time"]).timestamp() - time.time()) < 5
    json.dumps(event)  # serialisable as is


def test_refused_event_of_an_unauthenticated_request():
    recording = make_recording(error={"status": 401, "code": "missing_token", "message": "m"})
    event = recording.event("refused")
    assert event["identity"] is None and event["decision"] is None and event["operation"] is None
    assert event["error"]["code"] == "missing_token"


def test_index_entry_of_an_allowed_request():
    recording = make_recording(
        identity={"subject": "agent-1"},
        decision={"outcome": "allow"},
        response={"status": "201"},
        timings_ms={"guard": 0.5, "total": 12.34567},
    )
    entry = recording.index_entry()
    started = datetime.fromtimestamp(1_700_000_000.5, UTC)
    assert entry == {
        "connection": "demo",
        "sort_key": f"{started.isoformat()}#{recording.record_id}",
        "record_id": recording.record_id,
        "started_at": started.isoformat(),
        "subject": "agent-1",
        "method": "GET",
        "path": "/x",
        "status": 201,
        "outcome": "allow",
        "error": "",
        "duration_ms": 12.346,
        # docs/recording-format.md: index items expire after 90 days (S3 keeps records longer)
        "expires_at": int((started + timedelta(days=90)).timestamp()),
    }
    assert isinstance(entry["status"], int)


def test_index_entry_of_a_refused_request():
    recording = make_recording(
        response={"status": 401}, error={"status": 401, "code": "missing_token", "message": "m"}
    )
    entry = recording.index_entry()
    assert entry["outcome"] == "refused"  # no decision was taken
    assert entry["subject"] == "-"
    assert entry["status"] == 401
    assert entry["error"] == "missing_token"
    assert entry["duration_ms"] == 0.0


def test_index_entry_of_a_denied_request_keeps_the_decision():
    recording = make_recording(
        identity={"subject": "intruder"},
        decision={"outcome": "deny"},
        response={"status": 403},
        error={"code": "denied_by_policy"},
    )
    assert recording.index_entry()["outcome"] == "deny"


def test_index_entry_without_a_response_has_status_zero():
    assert make_recording().index_entry()["status"] == 0


# ------------------------------------------------ Recorder: one JSON line per event, fail closed


class BrokenSink:
    def put(self, _item) -> None:
        raise RuntimeError("sink down: s3cr3t-detail")


def test_recorder_writes_one_json_line_per_event_and_indexes_outcomes():
    stream, index = MemoryStream(), MemoryIndex()
    recorder = Recorder(stream, index)
    recording = make_recording(decision={"outcome": "allow"}, response={"status": 200})
    recorder.record_request(recording)
    assert index.entries == []  # the index is written once, with the outcome
    recorder.record_outcome(recording, "response")
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in stream.lines)
    events = [json.loads(line) for line in stream.lines]
    assert [e["event"] for e in events] == ["request", "response"]
    assert {e["record_id"] for e in events} == {recording.record_id}
    assert index.entries == [recording.index_entry()]


def test_recording_stream_failure_on_request_is_503():
    recorder = Recorder(BrokenSink(), MemoryIndex())
    with pytest.raises(ServiceUnavailable) as caught:
        recorder.record_request(make_recording())
    assert (caught.value.status, caught.value.code) == (503, "recording_unavailable")
    assert "s3cr3t" not in caught.value.message


@pytest.mark.parametrize("kind", ["response", "refused"])
def test_recording_stream_failure_on_outcome_is_503(kind):
    index = MemoryIndex()
    with pytest.raises(ServiceUnavailable) as caught:
        Recorder(BrokenSink(), index).record_outcome(make_recording(), kind)
    assert caught.value.code == "recording_unavailable"


def test_recording_index_failure_is_503():
    stream = MemoryStream()
    with pytest.raises(ServiceUnavailable) as caught:
        Recorder(stream, BrokenSink()).record_outcome(make_recording(), "refused")
    assert (caught.value.status, caught.value.code) == (503, "recording_unavailable")
    assert "s3cr3t" not in caught.value.message
    assert len(stream.lines) == 1  # the event itself was written before the index failed


# ---------------------------------------------------------------- against the stack's moto


def real_recorder() -> Recorder:
    return Recorder(
        FirehoseStream(os.environ["RECORDINGS_STREAM"]), DynamoRecordIndex(os.environ["RECORDINGS_TABLE"])
    )


def reader() -> RecordingReader:
    return RecordingReader(
        os.environ["RECORDINGS_TABLE"], os.environ["RECORDINGS_BUCKET"], os.environ["RECORDINGS_PREFIX"]
    )


def record(connection: str, subject: str, started_at: float, status: int = 200) -> Recording:
    recording = make_recording(
        connection=connection,
        started_at=started_at,
        identity={"subject": subject},
        decision={"outcome": "allow"},
        response={"status": status},
        timings_ms={"total": 1.25},
    )
    recorder = real_recorder()
    recorder.record_request(recording)
    recorder.record_outcome(recording, "response")
    return recording


def test_reader_lists_recent_records_by_connection_and_subject(stack):
    base = time.time() - 3600
    a1 = record("alpha", "agent-1", base + 1)
    a2 = record("alpha", "agent-2", base + 2)
    a3 = record("alpha", "agent-1", base + 3, status=404)
    b1 = record("beta", "agent-1", base + 4)

    alpha = reader().recent(connection="alpha")
    assert [e["record_id"] for e in alpha] == [a3.record_id, a2.record_id, a1.record_id]
    assert alpha[0]["status"] == 404 and alpha[0]["subject"] == "agent-1"

    mine = reader().recent(subject="agent-1")
    assert [e["record_id"] for e in mine] == [b1.record_id, a3.record_id, a1.record_id]
    assert all(e["subject"] == "agent-1" for e in mine)

    both = reader().recent(connection="alpha", subject="agent-1")
    assert [e["record_id"] for e in both] == [a3.record_id, a1.record_id]

    assert [e["record_id"] for e in reader().recent(connection="alpha", limit=2)] == [
        a3.record_id,
        a2.record_id,
    ]
    assert reader().recent(connection="nobody") == []


def test_reader_finds_the_events_firehose_delivered(stack):
    recording = record("alpha", "agent-1", time.time())
    events = reader().events(recording.record_id)
    assert [e["event"] for e in events] == ["request", "response"]
    assert all(e["record_id"] == recording.record_id for e in events)
    assert events[1]["response"] == {"status": 200}


def test_reader_finds_events_filed_under_the_next_hour_and_gzipped(stack):
    # Started one second before midnight UTC on New Year's Eve: the next hour is another day,
    # month and year, and Firehose filed the events there, GZIP-compressed.
    started = datetime(2023, 12, 31, 23, 59, 59, 500000, tzinfo=UTC).timestamp()
    recording = make_recording(started_at=started, response={"status": 200})
    other = make_recording(started_at=started)  # same hour, another record
    request = recording.event("request") | {"time": "2024-01-01T00:00:00.100000+00:00"}
    response = recording.event("response") | {"time": "2024-01-01T00:00:00.200000+00:00"}
    lines = [response, other.event("request"), request]  # out of order, as batches may be
    body = gzip.compress(b"".join(json.dumps(e).encode() + b"\n" for e in lines))
    prefix = os.environ["RECORDINGS_PREFIX"]
    s3 = boto3.client("s3")
    s3.put_object(
        Bucket=os.environ["RECORDINGS_BUCKET"],
        Key=f"{prefix}2024/01/01/00/wardgate-recordings-1-2024-01-01-00-00-05-abc.gz",
        Body=body,
    )
    # Two hours later is outside the window the reader looks at.
    late = recording.event("response") | {"event": "late", "time": "2024-01-01T01:00:00+00:00"}
    s3.put_object(
        Bucket=os.environ["RECORDINGS_BUCKET"],
        Key=f"{prefix}2024/01/01/01/wardgate-recordings-1-2024-01-01-01-00-05-def.gz",
        Body=gzip.compress(json.dumps(late).encode() + b"\n"),
    )

    events = reader().events(recording.record_id)
    assert [e["event"] for e in events] == ["request", "response"]
    assert all(e["record_id"] == recording.record_id for e in events)
    assert [e["record_id"] for e in reader().events(other.record_id)] == [other.record_id]


def test_reader_returns_nothing_for_unknown_or_malformed_ids(stack):
    assert reader().events("not-hex") == []
    assert reader().events("") == []
    assert reader().events("f" * 29) == []  # a time far beyond what datetime can hold
    assert reader().events(new_record_id(time.time())) == []
