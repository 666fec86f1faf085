"""Tamper-evident recordings (issue 14): hash chains, signed manifests and ``wardgate recordings verify``.

One stack (moto in-process, as in ``wardgate dev``) records real traffic into moto's S3 through the
real Firehose adapter: HTTP requests through the gateway (allowed, denied, held for approval), admin
events from the CLI, a PostgreSQL session through the TCP gateway, a session whose two events share
one object (group commit), a session still open, a write that failed and was declared lost, and an
object of events written before hash chains existed. The local signer signs each object from the
bucket's notifications. Each test then restores that bucket, makes one tamper with boto3, and checks
that ``verify`` names exactly that problem, and where.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import importlib.util
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import psycopg
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from moto import mock_aws

from tests.helpers import register_agent
from wardgate import aws, cli
from wardgate.auditing import integrity
from wardgate.auditing.chain import LOST_EVENT, EventWriter, RecordChain
from wardgate.auditing.signing import KEY_SETTING, SigningKeyError, signed_message, verifier_for
from wardgate.dev.server import LambdaContext
from wardgate.dev.stack import SFN_INTERPRETER, DevStack, pg_conninfo
from wardgate.errors import ServiceUnavailable
from wardgate.recording import FirehoseStream, MemoryIndex, MemoryStream, Recorder, Recording, json_line
from wardgate.tcp.recorder import GroupCommit, SessionRecord, SessionRecorder

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------- the writer side


def test_each_event_names_its_writer_sequence_and_the_hash_of_its_records_previous_line():
    stream = MemoryStream()
    recorder = Recorder(stream, MemoryIndex())
    first, second = (Recording("req", "demo", {"method": "GET", "path": "/"}) for _ in range(2))
    recorder.record_request(first)
    recorder.record_request(second)
    recorder.record_outcome(first, "response")
    lines = stream.lines
    chains = [json.loads(line)["chain"] for line in lines]
    assert [c["writer"] for c in chains] == [recorder.writer.id] * 3
    assert [c["seq"] for c in chains] == [1, 2, 3]  # one sequence over every record the writer writes
    assert chains[0]["prev"] == chains[1]["prev"] == ""  # each record's first event
    assert chains[2]["prev"] == hashlib.sha256(lines[0]).hexdigest()  # the line exactly as written


def test_a_session_keeps_its_own_chain_through_group_commit():
    stream = MemoryStream()

    async def main() -> SessionRecord:
        recorder = SessionRecorder(GroupCommit(stream), MemoryIndex())
        record = SessionRecord("postgres", "db", "127.0.0.1:1")
        await recorder.write(record, "session_start")
        recorder.write_later(record, "result", lambda _: None)
        await recorder.write(record, "statement")
        await recorder.write(record, "session_end")
        return record

    record = asyncio.run(main())
    events = [json.loads(line) for line in stream.lines]
    assert [e["event"] for e in events] == ["session_start", "result", "statement", "session_end"]
    for before, after, event in zip(stream.lines, stream.lines[1:], events[1:], strict=False):
        assert event["chain"]["prev"] == hashlib.sha256(before).hexdigest()
    assert record.chain.last == hashlib.sha256(stream.lines[-1]).hexdigest()
    assert [e["seq"] for e in events] == [1, 2, 3, 4]  # the session's own order is still there


def test_a_failed_write_is_declared_before_the_writers_next_event():
    class Flaky(MemoryStream):
        down = True

        def put(self, line: bytes) -> None:
            if self.down:
                raise ConnectionError("down")
            super().put(line)

    stream = Flaky()
    recorder = Recorder(stream, MemoryIndex())
    recording = Recording("req", "demo", {"method": "GET", "path": "/"})
    with pytest.raises(ServiceUnavailable):
        recorder.record_request(recording)
    stream.down = False
    recorder.record_outcome(recording, "refused")
    declared, refused = (json.loads(line) for line in stream.lines)
    assert declared["event"] == LOST_EVENT and declared["record_id"] == ""
    ((lost,),) = [declared["lost"]]
    assert lost["seq"] == 1 and lost["record_id"] == recording.record_id
    assert refused["chain"]["prev"] == lost["hash"]  # the chain goes through the event that may be lost


# ------------------------------------------------------------------- the recorded stack and verify


@dataclass
class Recorded:
    stack: DevStack
    bucket: str
    snapshot: dict[str, bytes]
    allowed: str  # an HTTP request forwarded: request + response
    denied: str  # refused by policy: one refused event
    held: str  # held for approval: open
    session: str  # a PostgreSQL session through the TCP gateway
    batched: str  # a session whose result and statement share one object
    open_session: str
    legacy: str  # events written before hash chains
    admin: list[str]


def _objects(snapshot: dict[str, bytes]) -> dict[str, list[bytes]]:
    """Each recording object's lines (newlines kept), by key."""
    return {
        key: data.splitlines(keepends=True) for key, data in snapshot.items() if key.startswith("recordings/")
    }


def _find(snapshot: dict[str, bytes], record_id: str, event: str) -> tuple[str, int]:
    """The object and 0-based line of a record's event."""
    for key, lines in _objects(snapshot).items():
        for number, line in enumerate(lines):
            doc = json.loads(line)
            if doc.get("record_id") == record_id and doc.get("event") == event:
                return key, number
    raise AssertionError(f"no {event} event of {record_id}")


def _session_events(stack: DevStack) -> None:
    """One real PostgreSQL session through the TCP gateway on demo-pg (the local PostgreSQL)."""
    assert stack.issuer is not None
    password = stack.issuer.mint("agent-1", ["ci"])
    with psycopg.connect(pg_conninfo(stack), password=password, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SELECT 2").fetchone() == (2,)
    # The gateway records session_end once it has seen the client leave: wait for it, or on a busy
    # machine it lands after the signer's last drain and the bucket holds an unsigned object.
    bucket, deadline = os.environ["RECORDINGS_BUCKET"], time.monotonic() + 15
    while not any(
        b'"event":"session_end"' in line for lines in _objects(_snapshot(bucket)).values() for line in lines
    ):
        assert time.monotonic() < deadline, "the PostgreSQL session's end was never recorded"
        time.sleep(0.05)


def _synthetic_sessions(stream_name: str) -> tuple[str, str]:
    """A session whose result and next statement go out in one batch (queued in the same tick, as
    under load), so one object holds two events of one record; and a session left open."""

    async def main() -> tuple[str, str]:
        recorder = SessionRecorder(GroupCommit(FirehoseStream(stream_name)), MemoryIndex())
        batched = SessionRecord("postgres", "demo-pg", "127.0.0.1:5")
        await recorder.write(batched, "session_start")
        recorder.write_later(batched, "result", lambda _: None, rows=1)
        await recorder.write(batched, "statement", call="query")
        await recorder.write(batched, "session_end", outcome="closed")
        still_open = SessionRecord("postgres", "demo-pg", "127.0.0.1:6")
        await recorder.write(still_open, "session_start")
        return batched.record_id, still_open.record_id

    return asyncio.run(main())


def _declared_loss(stream_name: str) -> None:
    """A writer whose second write fails (a stream that does not exist), then recovers: the refused
    event that follows chains through the lost one, which the writer declares."""
    recorder = Recorder(FirehoseStream(stream_name), MemoryIndex())
    recorder.record_outcome(Recording("req-ok", "demo", {"method": "GET", "path": "/ok"}), "refused")
    failed = Recording("req-lost", "demo", {"method": "GET", "path": "/lost"})
    recorder.stream = FirehoseStream("no-such-stream")
    with pytest.raises(ServiceUnavailable):
        recorder.record_request(failed)
    recorder.stream = FirehoseStream(stream_name)
    recorder.record_outcome(failed, "refused")


def _legacy_object(bucket: str) -> str:
    """An object of wardgate.recording/v1 events from before hash chains (no chain field)."""
    record_id = "0" * 13 + "1" * 16
    events = [
        {"format": "wardgate.recording/v1", "event": kind, "record_id": record_id, "connection": "demo"}
        for kind in ("request", "response")
    ]
    key = f"recordings/{_hour_path()}legacy-object"
    body = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    return record_id


def _hour_path() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y/%m/%d/%H/")


def _snapshot(bucket: str) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    ]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    saved = dict(os.environ)
    state = tmp_path_factory.mktemp("integrity-state")
    os.environ["WARDGATE_HOME"] = str(state)  # the CLI must not find a developer's running wardgate dev
    try:
        with mock_aws(config=SFN_INTERPRETER):
            yield from _record(state)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        aws.reset_clients()


def _record(state: Path) -> Iterator[Recorded]:
    """The traffic, signed, and the bucket's snapshot."""
    stack = DevStack(root=ROOT, state_dir=state, port=0, upstream_port=0, pg_port=0, mysql_port=0).start()
    try:
        assert stack.issuer is not None and stack.manifests is not None
        bucket, stream = os.environ["RECORDINGS_BUCKET"], os.environ["RECORDINGS_STREAM"]
        auth = {"Authorization": f"Bearer {stack.issuer.mint('agent-1', ['ci'])}"}
        with httpx.Client(base_url=stack.url, timeout=10, headers=auth) as http:
            allowed = [http.get(f"/http/demo/anything/{i}") for i in range(3)]
            denied = http.delete("/http/demo/v1/users/1")
            held = http.post("/http/demo/v1/refunds", json={"amount": 900})
        assert [r.status_code for r in (*allowed, denied, held)] == [200, 200, 200, 403, 202]
        register_agent(stack, "bot-1", "alice@example.com")
        assert cli.main(["revoke", "--subject", "bot-1", "--reason", "test", "--by", "root"]) == 0
        _session_events(stack)
        batched, open_session = _synthetic_sessions(stream)
        _declared_loss(stream)
        legacy = _legacy_object(bucket)
        stack.manifests.drain()
        stack.manifests.stop()  # from here on, nothing signs: tampered and new objects stay as made
        boto3.client("s3").put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
        snapshot = _snapshot(bucket)
        events = [json.loads(line) for lines in _objects(snapshot).values() for line in lines]
        session = next(
            e["record_id"]
            for e in events
            if e["event"] == "session_start" and e["record_id"] not in (batched, open_session)
        )
        yield Recorded(
            stack=stack,
            bucket=bucket,
            snapshot=snapshot,
            allowed=allowed[1].headers["x-wardgate-record-id"],
            denied=denied.headers["x-wardgate-record-id"],
            held=held.headers["x-wardgate-record-id"],
            session=session,
            batched=batched,
            open_session=open_session,
            legacy=legacy,
            admin=[e["record_id"] for e in events if e["event"] == "admin"],
        )
    finally:
        stack.stop()


class Bucket:
    """The recorded bucket, restored to its snapshot; tampers go through S3 like an attacker's."""

    def __init__(self, recorded: Recorded) -> None:
        self.recorded = recorded
        self.name = recorded.bucket
        self.s3 = boto3.client("s3")
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.name)
        etags = {o["Key"]: o["ETag"].strip('"') for page in pages for o in page.get("Contents", [])}
        for key in set(etags) - set(recorded.snapshot):
            self.s3.delete_object(Bucket=self.name, Key=key)
        for key, data in recorded.snapshot.items():
            if etags.get(key) != hashlib.md5(data).hexdigest():  # what the last test changed
                self.s3.put_object(Bucket=self.name, Key=key, Body=data)

    def lines(self, key: str) -> list[bytes]:
        return self.recorded.snapshot[key].splitlines(keepends=True)

    def put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.name, Key=key, Body=data)

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.name, Key=key)

    def find(self, record_id: str, event: str) -> tuple[str, int]:
        return _find(self.recorded.snapshot, record_id, event)


@pytest.fixture
def bucket(recorded: Recorded) -> Bucket:
    return Bucket(recorded)


def verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """``wardgate recordings verify --json ...``: its exit status and report."""
    capsys.readouterr()
    status = cli.main(["recordings", "verify", "--json", *args])
    out = capsys.readouterr().out
    return status, (json.loads(out) if out.strip() else {})


def kinds(report: dict[str, Any]) -> list[str]:
    return sorted({p["kind"] for p in report["problems"]})


def test_the_recordings_as_written_are_intact(bucket: Bucket, recorded: Recorded, capsys):
    status, report = verify(capsys)
    assert status == 0 and report["intact"] is True, report["problems"]
    events = [json.loads(line) for lines in _objects(recorded.snapshot).values() for line in lines]
    records = {e["record_id"] for e in events if e["record_id"]}
    objects = _objects(recorded.snapshot)
    assert (report["objects"], report["records"], report["events"]) == (
        len(objects),
        len(records),
        len(events),
    )
    assert report["manifests"] == len(objects)  # every object signed
    assert sorted(report["open_records"]) == sorted([recorded.held, recorded.open_session])
    assert report["unchained_events"] == 2 and report["declared_lost"] == 1
    assert len(recorded.admin) >= 2 and {e["event"] for e in events} >= {
        "request",
        "response",
        "refused",
        "held",
        "approval",
        "admin",
        "session_start",
        "statement",
        "result",
        "session_end",
        LOST_EVENT,
    }
    capsys.readouterr()
    assert cli.main(["recordings", "verify"]) == 0
    text = capsys.readouterr().out
    assert f"intact: {len(objects)} objects, {len(records)} records, {len(events)} events" in text
    assert "open: 2 record(s)" in text and "unchained: 2 event(s)" in text


def test_a_modified_event_is_named(bucket: Bucket, recorded: Recorded, capsys):
    key, number = bucket.find(recorded.denied, "refused")
    lines = bucket.lines(key)
    assert b'"/v1/users/1"' in lines[number]
    lines[number] = lines[number].replace(b'"/v1/users/1"', b'"/v1/users/2"')
    bucket.put(key, b"".join(lines))
    status, report = verify(capsys)
    assert status == 1 and kinds(report) == ["modified_event"]
    (problem,) = report["problems"]
    assert (problem["object"], problem["line"], problem["record_id"]) == (key, number + 1, recorded.denied)


def test_a_deleted_event_is_named(bucket: Bucket, recorded: Recorded, capsys):
    key, number = bucket.find(recorded.allowed, "request")
    lines = bucket.lines(key)
    del lines[number]
    bucket.put(key, b"".join(lines))
    status, report = verify(capsys)
    assert status == 1 and kinds(report) == ["deleted_event"]
    (problem,) = report["problems"]
    assert (problem["object"], problem["record_id"]) == (key, recorded.allowed)


def test_an_object_deleted_with_its_manifest_leaves_a_gap_in_its_writers_sequence(
    bucket: Bucket, recorded: Recorded, capsys
):
    key, _ = bucket.find(recorded.allowed, "request")
    bucket.delete(key)
    bucket.delete(integrity.manifest_key(key))  # what a GOVERNANCE bypass could do
    status, report = verify(capsys)
    assert status == 1 and kinds(report) == ["deleted_event"]
    (problem,) = report["problems"]
    assert "missing" in problem["message"] and recorded.allowed in problem["message"]


def test_reordered_events_are_named(bucket: Bucket, recorded: Recorded, capsys):
    key, number = bucket.find(recorded.batched, "result")
    lines = bucket.lines(key)
    assert len(lines) == 2 and json.loads(lines[1 - number])["event"] == "statement"  # one batch
    bucket.put(key, b"".join(reversed(lines)))
    status, report = verify(capsys)
    assert status == 1 and kinds(report) == ["reordered_events"]
    (problem,) = report["problems"]
    assert problem["object"] == key and "signed order" in problem["message"]


def test_events_moved_between_objects_are_reordered(bucket: Bucket, recorded: Recorded, capsys):
    request_key, _ = bucket.find(recorded.allowed, "request")
    response_key, _ = bucket.find(recorded.allowed, "response")
    bucket.put(request_key, recorded.snapshot[response_key])
    bucket.put(response_key, recorded.snapshot[request_key])
    status, report = verify(capsys)
    assert status == 1 and kinds(report) == ["reordered_events"], json.dumps(report["problems"], indent=1)
    assert {p["object"] for p in report["problems"]} == {request_key, response_key}


def test_a_truncated_record_is_named(bucket: Bucket, recorded: Recorded, capsys):
    key, number = bucket.find(recorded.session, "session_end")
    lines = bucket.lines(key)
    bucket.put(key, b"".join(lines[:number]))
    status, report = verify(capsys)
    assert status == 1 and kinds(report) == ["truncated_record"]
    assert {p["record_id"] for p in report["problems"]} == {recorded.session}
    assert recorded.session not in report["open_records"]  # truncated, not merely open


def test_a_record_whose_last_object_is_gone_with_its_manifest_is_truncated(
    bucket: Bucket, recorded: Recorded, capsys
):
    key, _ = bucket.find(recorded.allowed, "response")
    bucket.delete(key)
    bucket.delete(integrity.manifest_key(key))
    status, report = verify(capsys)
    assert status == 1 and kinds(report) == ["truncated_record"]
    (problem,) = report["problems"]
    assert problem["record_id"] == recorded.allowed


def _forged_after(line: bytes, **changes: Any) -> bytes:
    """An event like ``line``'s, chained after it, with the writer's next free sequence number."""
    event = json.loads(line)
    event.update(changes)
    event["chain"] = {**event["chain"], "prev": hashlib.sha256(line).hexdigest()}
    return json_line(event)


def _next_seq(snapshot: dict[str, bytes], writer: str) -> int:
    seqs = [
        json.loads(line)["chain"]["seq"]
        for lines in _objects(snapshot).values()
        for line in lines
        if json.loads(line).get("chain", {}).get("writer") == writer
    ]
    return max(seqs) + 1


def test_an_inserted_event_with_a_recomputed_chain_is_named(bucket: Bucket, recorded: Recorded, capsys):
    request_key, request_line = bucket.find(recorded.allowed, "request")
    response_key, response_line = bucket.find(recorded.allowed, "response")
    request = bucket.lines(request_key)[request_line]
    writer = json.loads(request)["chain"]["writer"]
    forged = json.loads(_forged_after(request, event="request"))
    forged["request"] = {"method": "DELETE", "path": "/v1/users/1"}  # the story the forger wants told
    forged["chain"]["seq"] = _next_seq(recorded.snapshot, writer)  # no gap: but no manifest lists it
    forged_line = json_line(forged)
    lines = bucket.lines(request_key)
    lines.insert(request_line + 1, forged_line)
    bucket.put(request_key, b"".join(lines))
    # ... and the chain recomputed after it: the response now follows the forged event.
    response = json.loads(bucket.lines(response_key)[response_line])
    response["chain"]["prev"] = hashlib.sha256(forged_line).hexdigest()
    lines = bucket.lines(response_key)
    lines[response_line] = json_line(response)
    bucket.put(response_key, b"".join(lines))
    status, report = verify(capsys)
    assert status == 1 and kinds(report) == ["inserted_event"]
    (problem,) = report["problems"]
    assert (problem["object"], problem["line"], problem["record_id"]) == (
        request_key,
        request_line + 2,
        recorded.allowed,
    )
    assert "recomputed" in problem["message"] and response_key in problem["message"]


def test_an_event_forged_onto_the_end_of_a_record_is_inserted(bucket: Bucket, recorded: Recorded, capsys):
    key, number = bucket.find(recorded.denied, "refused")
    lines = bucket.lines(key)
    writer = json.loads(lines[number])["chain"]["writer"]
    forged = json.loads(_forged_after(lines[number], event="response"))
    forged["chain"]["seq"] = _next_seq(recorded.snapshot, writer)
    bucket.put(key, b"".join([*lines, json_line(forged)]))
    status, report = verify(capsys)
    assert status == 1 and kinds(report) == ["inserted_event"]


def test_a_missing_object_is_named(bucket: Bucket, recorded: Recorded, capsys):
    key, _ = bucket.find(recorded.session, "statement")
    bucket.delete(key)
    status, report = verify(capsys)
    assert status == 1 and kinds(report) == ["missing_object"]
    (problem,) = report["problems"]
    assert problem["object"] == key and recorded.session in problem["message"]


def _manifest(bucket: Bucket, record_id: str, event: str) -> tuple[str, list[bytes]]:
    """The manifest's key and its two lines (manifests are stored GZIP-compressed)."""
    key, _ = bucket.find(record_id, event)
    target = integrity.manifest_key(key)
    return target, gzip.decompress(bucket.recorded.snapshot[target]).splitlines(keepends=True)


def test_a_bad_signature_is_named(bucket: Bucket, recorded: Recorded, capsys):
    target, (body, signature_line) = _manifest(bucket, recorded.denied, "refused")
    signature = json.loads(signature_line)
    raw = bytearray(base64.b64decode(signature["signature"]))
    raw[-1] ^= 1
    signature["signature"] = base64.b64encode(bytes(raw)).decode()
    bucket.put(target, gzip.compress(body + json.dumps(signature).encode() + b"\n"))
    status, report = verify(capsys)
    assert status == 1 and kinds(report) == ["bad_signature"]
    assert report["problems"][0]["object"] == integrity.object_key_of(target)


def test_a_tampered_manifest_is_named(bucket: Bucket, recorded: Recorded, capsys):
    target, (body, signature_line) = _manifest(bucket, recorded.denied, "refused")
    edited = body.replace(b'"events":1,', b'"events":2,')
    assert edited != body
    bucket.put(target, gzip.compress(edited + signature_line))
    status, report = verify(capsys)
    assert status == 1 and kinds(report) == ["tampered_manifest"]
    assert "changed after it was signed" in report["problems"][0]["message"]


def test_a_manifest_copied_over_another_objects_is_named(bucket: Bucket, recorded: Recorded, capsys):
    target, _ = _manifest(bucket, recorded.denied, "refused")
    other, _ = _manifest(bucket, recorded.allowed, "request")
    bucket.put(target, recorded.snapshot[other])
    status, report = verify(capsys)
    assert status == 1 and kinds(report) == ["tampered_manifest"]
    assert "is the manifest of" in report["problems"][0]["message"]


def test_an_unsigned_object_is_named(bucket: Bucket, recorded: Recorded, capsys):
    forged = EventWriter().seal(
        {"format": "wardgate.recording/v1", "event": "admin", "record_id": "f" * 29}, json_line, RecordChain()
    )
    key = f"recordings/{_hour_path()}forged-object"
    bucket.put(key, forged.line)
    status, report = verify(capsys)
    assert status == 1 and kinds(report) == ["unsigned_object"]
    assert report["problems"][0]["object"] == key


def test_manifests_signed_by_another_key_do_not_verify(bucket: Bucket, recorded: Recorded, capsys, tmp_path):
    other = tmp_path / "other.pub.pem"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    status, report = verify(capsys, "--public-key", str(other))
    assert status == 1 and kinds(report) == ["bad_signature"]
    assert len(report["problems"]) == len(_objects(recorded.snapshot))
    public = Path(os.environ[KEY_SETTING].removeprefix("file:")).with_suffix(".pub.pem")
    assert verify(capsys, "--public-key", str(public))[0] == 0  # the published half of the right key


def test_one_record_is_verified_on_its_own(bucket: Bucket, recorded: Recorded, capsys):
    status, report = verify(capsys, "--record", recorded.allowed)
    assert status == 0 and (report["records"], report["events"], report["objects"]) == (1, 2, 2)
    key, _ = bucket.find(recorded.denied, "refused")
    bucket.put(key, b"")  # another record's problem ...
    assert verify(capsys, "--record", recorded.allowed)[0] == 0  # ... is not this one's
    status, report = verify(capsys, "--record", recorded.denied)
    assert status == 1 and kinds(report) == ["truncated_record"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since takes 30m, 12h, 7d, 2w"),
        (["--until", "2026-13-01"], "--until takes"),
        (["--since", "1h", "--until", "2d"], "is after --until"),
        (["--record", "not-a-record"], "is not a record id"),
        (["--record", "0" * 28 + "g"], "is not a record id"),
        (["--record", "0123456789abc" + "0" * 16], "no recording 0123456789abc"),
        (["--public-key", "/nonexistent/key.pem"], "no public key at /nonexistent/key.pem"),
    ],
)
def test_bad_input_is_a_clear_error(bucket: Bucket, capsys, args: list[str], message: str):
    capsys.readouterr()
    assert cli.main(["recordings", "verify", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_the_manifest_verifies_by_hand_with_openssl(bucket: Bucket, recorded: Recorded, tmp_path):
    """docs/recording-format.md's procedure, step by step."""
    key, _ = bucket.find(recorded.session, "session_end")
    manifest = gzip.decompress(recorded.snapshot[integrity.manifest_key(key)])
    first = manifest.splitlines(keepends=True)[0]
    signature = json.loads(manifest.splitlines()[1])
    digest = hashlib.sha256(first).hexdigest()
    assert signature["digest"] == digest
    (tmp_path / "signed.txt").write_bytes(signed_message(digest))
    (tmp_path / "sig.der").write_bytes(base64.b64decode(signature["signature"]))
    public = Path(os.environ[KEY_SETTING].removeprefix("file:")).with_suffix(".pub.pem")
    run = ["openssl", "dgst", "-sha256", "-verify", str(public), "-signature", "sig.der", "signed.txt"]
    checked = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True)
    assert checked.stdout.strip() == "Verified OK", checked.stderr
    assert json.loads(first)["sha256"] == hashlib.sha256(recorded.snapshot[key]).hexdigest()
    (tmp_path / "signed.txt").write_bytes(signed_message("0" * 64))
    refused = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True)
    assert refused.returncode != 0 and "Verification failure" in refused.stdout


def test_the_manifest_function_signs_with_kms_once(recorded: Recorded, monkeypatch):
    """RecordingManifestFunction's path: an EventBridge "Object Created" event, an ECC_NIST_P256 KMS
    key (moto signs with it), verify with the key's public half from kms:GetPublicKey."""
    kms, s3 = boto3.client("kms"), boto3.client("s3")
    key_arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    monkeypatch.setenv(KEY_SETTING, key_arn)
    integrity._configured_signer.cache_clear()
    s3.create_bucket(Bucket="kms-signed-recordings")
    source_key, _ = _find(recorded.snapshot, recorded.denied, "refused")  # a whole record in one object
    s3.put_object(Bucket="kms-signed-recordings", Key=source_key, Body=recorded.snapshot[source_key])
    # The function's own handler, with its sample event pointed at that object.
    spec = importlib.util.spec_from_file_location(
        "manifest_app", ROOT / "functions/recording_manifest/app.py"
    )
    assert spec is not None and spec.loader is not None
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    event = json.loads((ROOT / "events" / "recording_manifest.json").read_text())
    event["detail"]["bucket"]["name"] = "kms-signed-recordings"
    event["detail"]["object"] = {"key": source_key}  # moto's bucket is not versioned
    try:
        assert app.handler(event, LambdaContext("manifest")) == {"signed": [source_key], "skipped": []}
        assert app.handler(event, LambdaContext("again")) == {"signed": [], "skipped": [source_key]}  # once
        event["detail"]["object"] = {"key": "manifests/x.manifest.jsonl.gz"}
        ignored = app.handler(event, LambdaContext("manifest"))
        assert ignored == {"signed": [], "skipped": ["manifests/x.manifest.jsonl.gz"]}
    finally:
        integrity._configured_signer.cache_clear()
    manifest = s3.get_object(Bucket="kms-signed-recordings", Key=integrity.manifest_key(source_key))
    assert json.loads(gzip.decompress(manifest["Body"].read()).splitlines()[1])["key"] == key_arn
    source = integrity.S3Recordings("kms-signed-recordings", "recordings/")
    report = integrity.verify_recordings(source, verifier_for(key_arn))
    assert (report.manifests, report.objects, report.records) == (1, 1, 1)
    assert report.intact, report.render()
    symmetric = kms.create_key()["KeyMetadata"]["Arn"]
    with pytest.raises(SigningKeyError, match="not an ECC_NIST_P256 signing key"):
        verifier_for(symmetric)
    # A key that cannot sign: the invocation fails (and is retried, then kept), nothing half-written.
    s3.put_object(Bucket="kms-signed-recordings", Key=source_key + "-2", Body=recorded.snapshot[source_key])
    monkeypatch.setenv(KEY_SETTING, symmetric)
    event["detail"]["object"] = {"key": source_key + "-2"}
    try:
        with pytest.raises(ClientError):
            app.handler(event, LambdaContext("manifest"))
    finally:
        integrity._configured_signer.cache_clear()
    listed = s3.list_objects_v2(Bucket="kms-signed-recordings", Prefix="manifests/")["Contents"]
    assert [o["Key"] for o in listed] == [integrity.manifest_key(source_key)]


def test_a_manifest_hidden_by_a_delete_marker_is_not_signed_again(recorded: Recorded, tmp_path):
    """Object Lock allows a delete marker over a locked manifest; a rewritten object must not then
    get a fresh manifest: it stays unsigned, and verify says so."""
    from wardgate.auditing.signing import FileSigner, make_local_key

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="versioned-recordings")
    s3.put_bucket_versioning(Bucket="versioned-recordings", VersioningConfiguration={"Status": "Enabled"})
    key, _ = _find(recorded.snapshot, recorded.denied, "refused")
    s3.put_object(Bucket="versioned-recordings", Key=key, Body=recorded.snapshot[key])
    key_file = make_local_key(tmp_path)
    signer = FileSigner(key_file)
    assert integrity.sign_object("versioned-recordings", key, signer) == integrity.manifest_key(key)
    s3.delete_object(Bucket="versioned-recordings", Key=integrity.manifest_key(key))  # a delete marker
    forged = recorded.snapshot[key].replace(b'"/v1/users/1"', b'"/v1/users/2"')
    version = s3.put_object(Bucket="versioned-recordings", Key=key, Body=forged)["VersionId"]
    assert integrity.sign_object("versioned-recordings", key, signer, version) is None
    source = integrity.S3Recordings("versioned-recordings", "recordings/")
    report = integrity.verify_recordings(source, verifier_for(f"file:{key_file}"))
    assert [f.kind for f in report.findings] == ["unsigned_object"]
