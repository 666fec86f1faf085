"""Tamper evidence for recordings: a signed manifest for every object the stream writes, and ``verify``.

Three layers, each catching what the others cannot (docs/recording-format.md#integrity):

1. **Hash chains** (``auditing/chain.py``, at write time): each event names the hash of its record's
   previous event and carries its writer's sequence number.
2. **Manifests** (here, right after delivery): for each object under ``recordings/``, a manifest
   under ``manifests/`` with the object's size and SHA-256, per record and per writer what it
   holds, and each line's writer, sequence number and hash prefix, signed with the manifest key
   (``auditing/signing.py``). On AWS the ``RecordingManifestFunction`` runs it on the bucket's
   "Object Created" events; ``wardgate dev`` runs it from a queue the bucket notifies
   (``dev/manifests.py``).
3. **S3 Object Lock** on the bucket (template.yaml): objects and manifests cannot be overwritten
   or deleted during the retention period (COMPLIANCE), or only with a special permission
   (GOVERNANCE).

``verify`` reads objects and manifests, checks every signature and object hash, every chain and
every writer's sequence, and names what is wrong and where. The checking itself is sans-I/O
(``Verification``: bytes in, a ``Report`` out); ``S3Recordings`` fetches.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import itertools
import json
import re
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

from wardgate.auditing.chain import LOST_EVENT
from wardgate.auditing.signing import ALGORITHM, ManifestSigner, ManifestVerifier, signed_message

_loads: Callable[[bytes], Any]
try:  # the CLI and the TCP image have orjson; the Lambda layer does not (stdlib json: slower, same result)
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - exercised in the Lambda runtime
    _loads = json.loads

MANIFEST_FORMAT = "wardgate.recording-manifest/v1"
SIGNATURE_FORMAT = "wardgate.recording-manifest-signature/v1"
MANIFEST_PREFIX = "manifests/"
MANIFEST_SUFFIX = ".manifest.jsonl.gz"
LINE_HASH_CHARS = 16  # per-line hash prefixes in a manifest: where a change is; the object hash says whether

# A record is complete once it holds one of these (docs/recording-format.md: the final event).
FINAL_EVENTS = frozenset({"response", "refused", "admin", "session_end", "session_refused"})
# ... or, for a request held for approval, one of these approval steps (window mode: decided_approved).
FINAL_APPROVAL_STEPS = frozenset({"executed", "decided_denied", "expired", "cancelled", "refused"})

PROBLEMS = {  # kind -> what it means, for --help and the docs
    "modified_event": "an event's content differs from what its object's signed manifest lists",
    "deleted_event": "an event is missing: from its object, or a gap in its writer's sequence",
    "reordered_events": "events are in a different order, or moved to another object",
    "truncated_record": "a record's last events are gone: it no longer ends with its final event",
    "inserted_event": "an event no manifest lists, a second event with a writer's sequence number, or a fork",
    "modified_object": "an object's bytes differ from its signed manifest, every event still in place",
    "missing_object": "a manifest's object is gone",
    "unsigned_object": "an object has no manifest",
    "bad_signature": "a manifest's signature does not verify with the manifest key",
    "tampered_manifest": "a manifest was changed after it was signed, or is unreadable",
}
RECORD_ID = re.compile(r"[0-9a-f]{29}")
_HOUR_PATH = re.compile(r"(\d{4})/(\d{2})/(\d{2})/(\d{2})/")


class IntegrityError(Exception):
    """Bad input to verify (malformed window, unknown record): a clear message, exit status 2."""


# ---------------------------------------------------------------------------------------- lines


class Event:
    """One line of an object, as far as integrity is concerned."""

    __slots__ = (
        "digest",
        "kind",
        "line",
        "lost",
        "mode",
        "obj",
        "prev",
        "record_id",
        "seq",
        "step",
        "writer",
    )

    def __init__(
        self,
        obj: str,
        line: int,
        digest: str,
        record_id: str = "",
        kind: str = "",
        writer: str = "",
        seq: int = 0,
        prev: str = "",
        step: str = "",
        mode: str = "",
        lost: list[dict[str, Any]] | None = None,
    ) -> None:
        self.obj = obj
        self.line = line  # 1-based
        self.digest = digest
        self.record_id = record_id
        self.kind = kind
        self.writer = writer  # "" for unchained (older) events and unreadable lines
        self.seq = seq
        self.prev = prev
        self.step = step  # approval.step of approval events
        self.mode = mode  # approval.mode of the requested step
        self.lost = lost or []

    @property
    def key(self) -> tuple[str, int | str]:
        """What identifies the line in a manifest: (writer, seq), or the hash for unchained lines."""
        return (self.writer, self.seq) if self.writer else ("", self.digest[:LINE_HASH_CHARS])

    def where(self) -> str:
        seq = f", writer {self.writer} seq {self.seq}" if self.writer else ""
        record = f"record {self.record_id}" if self.record_id else (self.kind or "an unreadable line")
        return f"{self.obj} line {self.line} ({record}{seq})"


def decompressed(stored: bytes) -> bytes:
    """Firehose writes GZIP (``.gz``); moto and tests write plain JSON lines."""
    if stored[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(stored)
        except (OSError, EOFError, zlib.error):
            return b""  # a corrupt gzip stream: no readable lines (its hash will not match)
    return stored


def parse_lines(key: str, data: bytes) -> list[Event]:
    """Every line of an object, hashed as written (its JSON and newline) and read. The hot loop of
    ``verify`` and of the manifest function: exact types, no more lookups than needed."""
    events: list[Event] = []
    append = events.append
    sha256, loads = hashlib.sha256, _loads
    parts = data.split(b"\n")
    final = len(parts)
    for number, raw in enumerate(parts, start=1):
        if number == final:
            if not raw:
                break  # the newline that ends the last line
            line = raw  # a last line without its newline: hashed as it is (so it will not match)
        else:
            line = raw + b"\n"
        digest = sha256(line).hexdigest()
        try:
            doc = loads(raw)
        except ValueError:
            append(Event(key, number, digest))
            continue
        if type(doc) is not dict:
            append(Event(key, number, digest))
            continue
        record_id, kind, chain = doc.get("record_id"), doc.get("event"), doc.get("chain")
        record_id = record_id if type(record_id) is str else ""
        kind = kind if type(kind) is str else ""
        writer, seq, prev, step, mode, lost = "", 0, "", "", "", None
        if type(chain) is dict:
            claimed, number_in = chain.get("writer"), chain.get("seq")
            if type(claimed) is str and claimed and type(number_in) is int:
                writer, seq = claimed, number_in
                prev = chain.get("prev") or ""
                prev = prev if type(prev) is str else ""
        if kind == "approval":
            approval = doc.get("approval")
            if type(approval) is dict:
                step, mode = str(approval.get("step") or ""), str(approval.get("mode") or "")
        elif kind == LOST_EVENT and type(doc.get("lost")) is list:
            lost = [item for item in doc["lost"] if type(item) is dict]
        append(Event(key, number, digest, record_id, kind, writer, seq, prev, step, mode, lost))
    return events


# ------------------------------------------------------------------------------------ manifests


def manifest_key(object_key: str) -> str:
    return MANIFEST_PREFIX + object_key + MANIFEST_SUFFIX


def object_key_of(key: str) -> str | None:
    """The object a manifest key is for; None for keys that are not manifests."""
    if key.startswith(MANIFEST_PREFIX) and key.endswith(MANIFEST_SUFFIX):
        return key[len(MANIFEST_PREFIX) : -len(MANIFEST_SUFFIX)]
    return None


def manifest_body(
    bucket: str, key: str, stored: bytes, version_id: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """What one object holds (docs/recording-format.md#integrity-hash-chains-signed-manifests-verify)."""
    events = parse_lines(key, decompressed(stored))
    records: dict[str, dict[str, Any]] = {}
    writers: dict[str, dict[str, int]] = {}
    for event in events:
        if event.record_id:
            entry = records.setdefault(event.record_id, {"events": 0})
            entry["events"] += 1
            entry["last_hash"] = event.digest
            if event.writer:
                entry.setdefault("first", [event.writer, event.seq])
                entry["last"] = [event.writer, event.seq]
        if event.writer:
            span = writers.setdefault(event.writer, {"first": event.seq, "last": event.seq, "events": 0})
            span["first"] = min(span["first"], event.seq)
            span["last"] = max(span["last"], event.seq)
            span["events"] += 1
    # Lines name their record and writer by position in the sorted keys of records and writers.
    record_index = {record_id: i for i, record_id in enumerate(sorted(records))}
    writer_index = {writer: i for i, writer in enumerate(sorted(writers))}
    lines = [
        [
            record_index.get(event.record_id, -1),
            writer_index.get(event.writer, -1),
            event.seq,
            event.digest[:LINE_HASH_CHARS],
        ]
        for event in events
    ]
    return {
        "format": MANIFEST_FORMAT,
        "bucket": bucket,
        "key": key,
        "version_id": version_id,
        "size": len(stored),
        "sha256": hashlib.sha256(stored).hexdigest(),
        "created_at": (now or datetime.now(UTC)).isoformat(),
        "events": len(events),
        "unchained": sum(1 for event in events if not event.writer),
        "records": records,
        "writers": writers,
        "lines": lines,
    }


def manifest_document(body: dict[str, Any], signer: ManifestSigner) -> bytes:
    """Two JSON lines, GZIP-compressed: the manifest, then its signature (of ``signed_message`` of
    the first line's SHA-256, the line and its newline exactly as written)."""
    first = json.dumps(body, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    digest = hashlib.sha256(first).hexdigest()
    signature = signer.sign(signed_message(digest))
    second = {
        "format": SIGNATURE_FORMAT,
        "digest": digest,
        "algorithm": ALGORITHM,
        "key": signer.key_id,
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    text = first + json.dumps(second, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    return gzip.compress(text, compresslevel=6, mtime=0)


def sign_object(
    bucket: str, key: str, signer: ManifestSigner, version_id: str | None = None, s3: Any = None
) -> str | None:
    """Write the manifest of one delivered object; None when it already has one (notifications come
    at least once: the first manifest stands, a conditional write keeps a second from replacing it).

    "Has one" counts every version: a delete marker over a manifest (allowed under Object Lock,
    which keeps the version it hides) must not let a rewritten object be signed anew."""
    from botocore.exceptions import ClientError

    from wardgate import aws

    s3 = s3 or aws.client("s3")
    target = manifest_key(key)
    listed = s3.list_object_versions(Bucket=bucket, Prefix=target, MaxKeys=1)
    if any(v.get("Key") == target for v in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]):
        return None
    # The version that was delivered, not whatever a later PUT made current.
    extra = {"VersionId": version_id} if version_id else {}
    answer = s3.get_object(Bucket=bucket, Key=key, **extra)
    stored = answer["Body"].read()
    body = manifest_body(bucket, key, stored, version_id or answer.get("VersionId"))
    try:
        s3.put_object(
            Bucket=bucket,
            Key=target,
            Body=manifest_document(body, signer),
            ContentType="application/gzip",
            IfNoneMatch="*",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
            return None
        raise
    return target


def delivered_objects(event: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(bucket, key, version) of each object an S3 notification or an EventBridge "Object Created"
    event announces (S3 notifications URL-encode keys; EventBridge does not)."""
    found: list[tuple[str, str, str | None]] = []
    for record in event.get("Records") or []:
        s3 = record.get("s3") if isinstance(record, dict) else None
        if isinstance(s3, dict) and str(record.get("eventName", "")).startswith("ObjectCreated"):
            obj = s3.get("object") or {}
            found.append((s3["bucket"]["name"], unquote_plus(obj["key"]), obj.get("versionId")))
    if event.get("detail-type") == "Object Created" and isinstance(event.get("detail"), dict):
        detail = event["detail"]
        found.append((detail["bucket"]["name"], detail["object"]["key"], detail["object"].get("version-id")))
    return found


def sign_delivered(event: dict[str, Any], signer: ManifestSigner, prefix: str) -> dict[str, list[str]]:
    """The manifest function: sign every announced object under the recordings prefix."""
    signed: list[str] = []
    skipped: list[str] = []
    for bucket, key, version in delivered_objects(event):
        if not key.startswith(prefix) or object_key_of(key) is not None:
            skipped.append(key)
            continue
        target = sign_object(bucket, key, signer, version)
        (signed if target else skipped).append(key)
    return {"signed": signed, "skipped": skipped}


@functools.cache
def _configured_signer() -> ManifestSigner:
    import os

    from wardgate.auditing.signing import KEY_SETTING, signer_for

    return signer_for(os.environ.get(KEY_SETTING, ""))


def handle_manifest_event(event: dict[str, Any]) -> dict[str, list[str]]:
    """``RecordingManifestFunction``: an EventBridge "Object Created" event (or S3 notification
    records) in; the objects' manifests written. Failures raise: EventBridge retries, then the
    dead-letter queue keeps the event (and ``verify`` reports the object as unsigned)."""
    from wardgate.config import Settings

    return sign_delivered(event, _configured_signer(), Settings.from_env().recordings_prefix)


# ---------------------------------------------------------------------------------- verification


@dataclass
class Finding:
    kind: str
    message: str
    object: str = ""
    line: int = 0
    record_id: str = ""
    writer: str = ""
    seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in ("", 0) or k in ("kind", "message")}


@dataclass
class Report:
    key_id: str
    objects: int = 0
    manifests: int = 0
    records: int = 0
    events: int = 0
    open_records: list[str] = field(default_factory=list)
    unchained: int = 0
    declared_lost: int = 0
    duplicates: int = 0  # the same event delivered twice, both copies signed (Firehose is at least once)
    findings: list[Finding] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
    record_id: str = ""

    @property
    def intact(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "key": self.key_id,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "record_id": self.record_id or None,
            "objects": self.objects,
            "manifests": self.manifests,
            "records": self.records,
            "events": self.events,
            "open_records": self.open_records,
            "unchained_events": self.unchained,
            "declared_lost": self.declared_lost,
            "duplicate_deliveries": self.duplicates,
            "problems": [f.to_dict() for f in self.findings],
        }

    def render(self) -> str:
        counts = f"{self.objects} objects, {self.records} records, {self.events} events"
        lines = [
            f"intact: {counts}" if self.intact else f"NOT INTACT: {len(self.findings)} problem(s) in {counts}"
        ]
        for finding in self.findings:
            lines.append(f"  {finding.kind}: {finding.message}")
        if self.open_records:
            shown = ", ".join(self.open_records[:5]) + (" ..." if len(self.open_records) > 5 else "")
            lines.append(
                f"  open: {len(self.open_records)} record(s) without their final event yet "
                f"(live sessions, pending approvals, or a request whose writer stopped): {shown}"
            )
        if self.unchained:
            lines.append(
                f"  unchained: {self.unchained} event(s) written before hash chains: only their "
                "objects' manifests vouch for them"
            )
        if self.declared_lost:
            lines.append(f"  declared lost: {self.declared_lost} event(s) whose writes failed (writer_lost)")
        if self.duplicates:
            lines.append(f"  duplicate deliveries: {self.duplicates} event(s) delivered twice, both signed")
        lines.append(f"  manifests checked with key {self.key_id}")
        return "\n".join(lines)


@dataclass
class _Object:
    key: str
    size: int
    sha256: str
    events: list[Event]
    state: str = "unsigned"  # verified | tampered | unsigned | bad_manifest
    manifest: dict[str, Any] | None = None


class Verification:
    """Objects and manifests in, a ``Report`` out; no I/O (``S3Recordings`` feeds it).

    ``window_start``: records that began before it may continue from events outside the window,
    so a chain that points before it is not a break.
    """

    def __init__(self, verifier: ManifestVerifier, window_start: datetime | None = None) -> None:
        self.verifier = verifier
        self.window_start = window_start
        self.objects: dict[str, _Object] = {}
        self.manifests: dict[str, bytes] = {}
        self.findings: list[Finding] = []
        self._flagged: set[int] = set()  # id() of events reported as inserted: they count for nothing
        self._moved: set[int] = set()  # ... reported as moved to another object: genuine, elsewhere
        self._explained_seqs: set[tuple[str, int]] = set()  # missing (writer, seq) already reported
        self._explained_prev: set[str] = set()  # hash prefixes of reported missing or modified lines
        self._truncated: set[str] = set()
        self._missing: list[dict[str, Any]] = []  # valid manifests whose object is gone
        self._signed_at: dict[tuple[str, int | str], str] = {}  # line key -> object whose manifest lists it
        self._gap_findings: list[Finding] = []
        self._modified: list[tuple[Finding, Event]] = []
        self._inserted: dict[str, Finding] = {}  # an inserted event's hash -> its finding
        self._index = _Index(())

    # -------------------------------------------------------------------- input
    def add_object(self, key: str, stored: bytes) -> None:
        events = parse_lines(key, decompressed(stored))
        self.objects[key] = _Object(key, len(stored), hashlib.sha256(stored).hexdigest(), events)

    def add_manifest(self, object_key: str, document: bytes) -> None:
        self.manifests[object_key] = document

    # -------------------------------------------------------------------- the checks
    def run(self) -> Report:
        self._check_manifests()
        events = [event for obj in self.objects.values() for event in obj.events]
        index = self._index = _Index(events)
        for obj in self.objects.values():
            if obj.state == "tampered":
                self._diagnose(obj, index)
        self._fold_recomputed_chains()
        self._check_sequences(index)
        self._check_chains(index)
        report = Report(self.verifier.key_id, findings=self.findings)
        report.objects = len(self.objects)
        report.manifests = len(self.manifests)
        report.events = len(events)
        report.records = len(index.records)
        report.unchained = sum(1 for e in events if not e.writer)
        report.declared_lost = len(index.lost_seqs)
        report.duplicates = index.duplicate_deliveries(self.objects)
        report.open_records = sorted(
            rid
            for rid, record_events in index.records.items()
            if rid not in self._truncated
            and any(e.writer for e in record_events)
            and not _is_final(record_events)
        )
        return report

    def only(self, report: Report, record_id: str, since: datetime, until: datetime) -> Report:
        """``report`` narrowed to one record: its events, the objects that hold (or held) them, and
        gaps of its writers within its span."""
        events = self._index.records.get(record_id, [])
        listed = {
            body["key"]
            for body in [*self._missing, *(o.manifest for o in self.objects.values() if o.manifest)]
            if record_id in (body.get("records") or {})
        }
        if not events and not listed:
            raise IntegrityError(
                f"no recording {record_id} filed between {since:%Y-%m-%d %H:00} and "
                f"{until:%Y-%m-%d %H:00} UTC (check the id; a recent one may still be in Firehose's "
                "buffer; --until widens the window)"
            )
        objects = {e.obj for e in events} | listed
        spans: dict[str, tuple[int, int]] = {}
        for event in events:
            if event.writer:
                low, high = spans.get(event.writer, (event.seq, event.seq))
                spans[event.writer] = (min(low, event.seq), max(high, event.seq))

        def concerns(finding: Finding) -> bool:
            if finding.record_id == record_id or (finding.object and finding.object in objects):
                return True
            span = spans.get(finding.writer)
            return not finding.object and span is not None and span[0] <= finding.seq <= span[1]

        narrowed = Report(report.key_id, findings=[f for f in report.findings if concerns(f)])
        narrowed.since, narrowed.until, narrowed.record_id = since, until, record_id
        narrowed.objects = len(objects)
        narrowed.manifests = sum(1 for key in objects if key in self.manifests)
        narrowed.records = 1
        narrowed.events = len(events)
        narrowed.open_records = [r for r in report.open_records if r == record_id]
        narrowed.unchained = sum(1 for e in events if not e.writer)
        return narrowed

    def _check_manifests(self) -> None:
        for object_key, document in sorted(self.manifests.items()):
            body = self._read_manifest(object_key, document)
            obj = self.objects.get(object_key)
            if body is None:
                if obj is not None:
                    obj.state = "bad_manifest"
                continue
            if obj is None:
                self._missing.append(body)
                for item in self._signed_lines(body):  # what the gone object held explains gaps and breaks
                    self._explained_prev.add(item.hash)
                    if item.writer:
                        self._explained_seqs.add((item.writer, item.seq))
                self.findings.append(
                    Finding(
                        "missing_object",
                        f"{object_key} is gone; its signed manifest lists {body.get('events', 0)} event(s) "
                        f"of {len(body.get('records') or {})} record(s)"
                        + _records_note(list((body.get("records") or {}).keys())),
                        object=object_key,
                    )
                )
                continue
            obj.manifest = body
            obj.state = "verified" if (obj.size, obj.sha256) == (body["size"], body["sha256"]) else "tampered"
        for obj in self.objects.values():
            if obj.state == "unsigned":
                records = sorted({e.record_id for e in obj.events if e.record_id})
                self.findings.append(
                    Finding(
                        "unsigned_object",
                        f"{obj.key} has no manifest ({len(obj.events)} event(s) nothing vouches for"
                        f"{_records_note(records)}; an object delivered seconds ago may not be signed yet)",
                        object=obj.key,
                    )
                )

    def _read_manifest(self, object_key: str, document: bytes) -> dict[str, Any] | None:
        """The manifest's body when its signature verifies, else None (and a finding)."""
        where = manifest_key(object_key)
        document = decompressed(document)
        first, _, rest = document.partition(b"\n")
        first += b"\n"
        second = rest.split(b"\n", 1)[0]
        try:
            signature = _loads(second)
            if not isinstance(signature, dict):
                raise ValueError("not an object")
            recorded_digest = str(signature["digest"])
            raw_signature = base64.b64decode(str(signature["signature"]), validate=True)
        except (ValueError, KeyError, TypeError) as exc:
            self.findings.append(
                Finding(
                    "tampered_manifest",
                    f"{where}: its signature line is unreadable ({exc})",
                    object=object_key,
                )
            )
            return None
        digest = hashlib.sha256(first).hexdigest()
        if digest != recorded_digest:
            self.findings.append(
                Finding(
                    "tampered_manifest",
                    f"{where} was changed after it was signed: its SHA-256 is {digest[:16]}..., "
                    f"the signature is over {recorded_digest[:16]}...",
                    object=object_key,
                )
            )
            return None
        if not self.verifier.verify(signed_message(digest), raw_signature):
            signer = signature.get("key")
            self.findings.append(
                Finding(
                    "bad_signature",
                    f"{where}: the signature does not verify with {self.verifier.key_id}"
                    + (f" (it names key {signer})" if signer and signer != self.verifier.key_id else ""),
                    object=object_key,
                )
            )
            return None
        try:
            body = _loads(first)
            problem = _manifest_problem(body, object_key)
        except ValueError as exc:
            problem = f"its manifest line is not JSON ({exc})"
        if problem:
            # Signed, yet wrong: made by a signer that misbehaved, or another object's manifest copied here.
            self.findings.append(Finding("tampered_manifest", f"{where}: {problem}", object=object_key))
            return None
        result: dict[str, Any] = body
        return result

    def _signed_lines(self, body: dict[str, Any]) -> list[_SignedLine]:
        """``_manifest_lines``, a malformed entry reported as a tampered manifest (signed, yet wrong)."""
        try:
            return _manifest_lines(body)
        except ValueError as exc:
            key = str(body.get("key"))
            self.findings.append(Finding("tampered_manifest", f"{manifest_key(key)}: {exc}", object=key))
            body["_decoded"] = []
            return []

    def _signed_elsewhere(self, key: tuple[str, int | str]) -> str | None:
        """The object whose signed manifest lists a line (decoded on first need: diagnoses only)."""
        if not self._signed_at:
            bodies = [o.manifest for o in self.objects.values() if o.manifest is not None] + self._missing
            for body in bodies:
                for item in self._signed_lines(body):
                    self._signed_at.setdefault(item.key, str(body["key"]))
        return self._signed_at.get(key)

    def _diagnose(self, obj: _Object, index: _Index) -> None:
        """What changed in an object whose bytes differ from its signed manifest."""
        assert obj.manifest is not None
        signed = self._signed_lines(obj.manifest)
        if not signed and obj.manifest.get("lines"):
            return  # its manifest is malformed: reported as such
        position = {item.key: i for i, item in enumerate(signed)}
        matched: dict[int, Event] = {}
        found: list[Finding] = []
        inserted: list[Event] = []
        for event in obj.events:
            i = position.get(event.key)
            if i is None:
                elsewhere = self._signed_elsewhere(event.key)
                if elsewhere is not None and elsewhere != obj.key:
                    self._moved.add(id(event))
                    found.append(
                        Finding(
                            "reordered_events",
                            f"{event.where()} was moved here: the signed manifest of {elsewhere} lists it",
                            obj.key,
                            event.line,
                            event.record_id,
                            event.writer,
                            event.seq,
                        )
                    )
                    continue
                inserted.append(event)
            elif i in matched:
                inserted.append(event)
            else:
                matched[i] = event
                if signed[i].hash != event.digest[:LINE_HASH_CHARS]:
                    finding = Finding(
                        "modified_event",
                        f"{event.where()} differs from the event its signed manifest lists there",
                        obj.key,
                        event.line,
                        event.record_id,
                        event.writer,
                        event.seq,
                    )
                    found.append(finding)
                    self._modified.append((finding, event))
                    self._explained_prev.add(signed[i].hash)
        for event in inserted:
            self._flagged.add(id(event))
            why = (
                f"writer {event.writer} seq {event.seq} is not among what the signed manifest lists"
                if event.writer
                else "the signed manifest does not list it"
            )
            if event.writer and event.key in position:
                why = f"a second event with writer {event.writer} seq {event.seq}"
            finding = Finding(
                "inserted_event",
                f"{event.where()}: {why}",
                obj.key,
                event.line,
                event.record_id,
                event.writer,
                event.seq,
            )
            found.append(finding)
            self._inserted[event.digest] = finding
        found += self._missing_lines(obj, signed, matched, index)
        order = sorted(matched)
        if any(matched[a].line > matched[b].line for a, b in itertools.pairwise(order)):
            moved = _out_of_order(order, matched)
            found.append(
                Finding(
                    "reordered_events",
                    f"{obj.key}: events are no longer in their signed order: " + "; ".join(moved),
                    obj.key,
                )
            )
        if not found:
            found.append(
                Finding(
                    "modified_object",
                    f"{obj.key}: its bytes differ from its signed manifest (size {obj.size} vs "
                    f"{obj.manifest['size']}, SHA-256 {obj.sha256[:16]}... vs "
                    f"{obj.manifest['sha256'][:16]}...) although every event is in its place "
                    "(re-encoded or recompressed?)",
                    obj.key,
                )
            )
        self.findings.extend(found)

    def _fold_recomputed_chains(self) -> None:
        """An event inserted into a chain makes the forger rewrite the ``prev`` of the event after
        it: that rewrite is part of the insertion, reported with it, not as a modification."""
        for finding, event in self._modified:
            inserted = self._inserted.get(event.prev)
            if inserted is None:
                continue
            self.findings.remove(finding)
            note = "the chain after it was recomputed: "
            if note not in inserted.message:
                inserted.message += f"; {note}{event.where()}"
            else:
                inserted.message += f", {event.where()}"

    def _missing_lines(
        self, obj: _Object, signed: list[_SignedLine], matched: dict[int, Event], index: _Index
    ) -> list[Finding]:
        """Signed lines that are no longer in the object: moved, deleted, or a record's end cut off."""
        assert obj.manifest is not None
        missing: dict[str, list[_SignedLine]] = defaultdict(list)
        for i, item in enumerate(signed):
            if i in matched:
                continue
            if item.writer and any(e.obj != obj.key for e in index.at(item.key)):
                continue  # moved to another object: reported there
            missing[item.record_id].append(item)
            self._explained_prev.add(item.hash)
            if item.writer:
                self._explained_seqs.add((item.writer, item.seq))
        found = []
        records = obj.manifest.get("records") or {}
        for record_id, items in missing.items():
            last_hash = str((records.get(record_id) or {}).get("last_hash", ""))[:LINE_HASH_CHARS]
            record_events = index.records.get(record_id, [])
            seqs = ", ".join(f"{i.writer} seq {i.seq}" if i.writer else f"hash {i.hash}" for i in items[:5])
            more = f" and {len(items) - 5} more" if len(items) > 5 else ""
            first = items[0]
            if record_id and any(i.hash == last_hash for i in items) and not _is_final(record_events):
                self._truncated.add(record_id)
                found.append(
                    Finding(
                        "truncated_record",
                        f"record {record_id} lost its last {len(items)} event(s) in {obj.key} "
                        f"({seqs}{more}): it no longer ends with its final event",
                        obj.key,
                        first.line,
                        record_id,
                        first.writer,
                        first.seq,
                    )
                )
            else:
                what = f"record {record_id}" if record_id else "an unreadable line"
                found.append(
                    Finding(
                        "deleted_event",
                        f"{len(items)} event(s) of {what} deleted from {obj.key}: signed line(s) "
                        + ", ".join(str(i.line) for i in items[:5])
                        + f"{more} ({seqs})",
                        obj.key,
                        first.line,
                        record_id,
                        first.writer,
                        first.seq,
                    )
                )
        return found

    def _check_sequences(self, index: _Index) -> None:
        """Gaps in each writer's sequence numbers: deleted events nothing else explains; and two
        different events claiming one sequence number."""
        for (writer, seq), events in index.dupes.items():
            if any(id(e) in self._flagged or id(e) in self._moved for e in events):
                continue  # already reported (inserted or moved)
            digests = {e.digest for e in events}
            suspects = [
                e for e in events if id(e) not in self._flagged and self.objects[e.obj].state != "verified"
            ]
            if len(digests) == 1 and not suspects:
                continue  # delivered twice, both copies signed
            for event in suspects or (events if len(digests) > 1 else []):
                self._flagged.add(id(event))
                self.findings.append(
                    Finding(
                        "inserted_event",
                        f"{event.where()}: another event claims writer {writer} seq {seq} ("
                        + ", ".join(e.where() for e in events if e is not event)
                        + ")",
                        event.obj,
                        event.line,
                        event.record_id,
                        writer,
                        event.seq,
                    )
                )
        covered = {item.key for body in self._missing for item in self._signed_lines(body)}
        for writer, seqs in index.writer_seqs(self._flagged).items():
            gap: list[int] = []
            for low, high in itertools.pairwise(seqs):
                for seq in range(low + 1, high):
                    key = (writer, seq)
                    if key in index.lost_seqs or key in self._explained_seqs or key in covered:
                        continue
                    gap.append(seq)
            for run in _runs(gap):
                self._report_gap(writer, run, index)

    def _report_gap(self, writer: str, run: list[int], index: _Index) -> None:
        before = index.at((writer, run[0] - 1))
        after = index.at((writer, run[-1] + 1))
        span = f"seq {run[0]}" if len(run) == 1 else f"seqs {run[0]}..{run[-1]}"
        around = []
        if before:
            around.append(f"after {before[0].where()}")
        if after:
            around.append(f"before {after[0].where()}")
        # The writer's event just before the gap ended a record that is no longer complete: its end is gone.
        previous = before[0] if before else None
        if previous is not None and previous.record_id:
            record_events = index.records.get(previous.record_id, [])
            tail = max((e for e in record_events if e.writer == writer), key=lambda e: e.seq, default=None)
            if tail is previous and not _is_final(record_events):
                self._truncated.add(previous.record_id)
                self.findings.append(
                    Finding(
                        "truncated_record",
                        f"record {previous.record_id} ends at {previous.where()} without its final "
                        f"event, and its writer's next {len(run)} event(s) are in no object read "
                        f"(writer {writer} {span})",
                        previous.obj,
                        previous.line,
                        previous.record_id,
                        writer,
                        run[0],
                    )
                )
                for seq in run:
                    self._explained_seqs.add((writer, seq))
                return
        for seq in run:
            self._explained_seqs.add((writer, seq))
        self._gap_findings.append(
            Finding(
                "deleted_event",
                f"writer {writer} {span} missing: {len(run)} event(s) in no object read "
                f"({', '.join(around) or 'a deleted object?'})",
                writer=writer,
                seq=run[0],
            )
        )
        self.findings.append(self._gap_findings[-1])

    def _check_chains(self, index: _Index) -> None:
        """Each record's links: a predecessor that is nowhere is a deleted event; two events after
        the same one are a fork (one inserted); a second start of a one-writer record, inserted."""
        gap_by_writer: dict[str, list[Finding]] = defaultdict(list)
        for finding in self._gap_findings:
            gap_by_writer[finding.writer].append(finding)
        start, by_digest, flagged = self.window_start, index.by_digest, self._flagged
        after: dict[str, Event] = {}  # prev -> the first event found that follows it
        forks: dict[str, list[Event]] = {}
        roots: dict[str, list[Event]] = {}
        for record_id, events in index.records.items():
            for event in events:
                prev = event.prev
                if not event.writer or id(event) in flagged:
                    continue
                if not prev:
                    roots.setdefault(record_id, []).append(event)
                    continue
                first = after.setdefault(prev, event)
                if first is not event:
                    forks.setdefault(prev, [first]).append(event)
                target = by_digest.get(prev)
                if target is not None and target.record_id == record_id:
                    continue
                if prev in index.lost_digests or prev[:LINE_HASH_CHARS] in self._explained_prev:
                    continue
                if record_id in self._truncated:
                    continue
                if start is not None and _record_start(record_id) < start:
                    continue  # it began before the window: its earlier events are outside it
                self._dangling(event, gap_by_writer)
        for events in forks.values():
            record_id = events[0].record_id
            suspects = [e for e in events if self.objects[e.obj].state != "verified"] or events[1:]
            for event in suspects:
                self._flagged.add(id(event))
                self.findings.append(
                    Finding(
                        "inserted_event",
                        f"{event.where()}: record {record_id} forks there: "
                        + ", ".join(e.where() for e in events if e is not event)
                        + " follows the same event",
                        event.obj,
                        event.line,
                        record_id,
                        event.writer,
                        event.seq,
                    )
                )
        for record_id, starts in roots.items():
            if len(starts) < 2 or any(e.kind in ("approval", "held") for e in index.records[record_id]):
                continue  # a held request's record is written by several writers, each from its start
            for event in starts:
                if self.objects[event.obj].state != "verified" and id(event) not in self._flagged:
                    self._flagged.add(id(event))
                    self.findings.append(
                        Finding(
                            "inserted_event",
                            f"{event.where()} starts record {record_id} a second time",
                            event.obj,
                            event.line,
                            record_id,
                            event.writer,
                            event.seq,
                        )
                    )

    def _dangling(self, event: Event, gap_by_writer: dict[str, list[Finding]]) -> None:
        """An event whose predecessor is in no object read: part of a gap already reported, or a
        deleted event of its own."""
        gaps = [g for g in gap_by_writer.get(event.writer, []) if g.seq < event.seq]
        if gaps:
            gap = max(gaps, key=lambda g: g.seq)
            if event.record_id not in gap.message:
                gap.message += f"; record {event.record_id}'s chain breaks at {event.where()}"
                gap.record_id = gap.record_id or event.record_id
            return
        self.findings.append(
            Finding(
                "deleted_event",
                f"{event.where()} follows an event (hash {event.prev[:16]}...) that is in no object read",
                event.obj,
                event.line,
                event.record_id,
                event.writer,
                event.seq,
            )
        )


# ------------------------------------------------------------------------------------- helpers


@dataclass(frozen=True, slots=True)
class _SignedLine:
    line: int  # 1-based, in the signed object
    record_id: str
    writer: str
    seq: int
    hash: str  # the line's SHA-256, first LINE_HASH_CHARS hex digits

    @property
    def key(self) -> tuple[str, int | str]:
        return (self.writer, self.seq) if self.writer else ("", self.hash)


def _manifest_lines(body: dict[str, Any]) -> list[_SignedLine]:
    """A manifest's per-line entries, decoded; ValueError when one is malformed. Needed only to
    say what changed in an object (its hash says whether), so decoded only then."""
    cached = body.get("_decoded")
    if cached is not None:
        return list(cached)
    record_ids, writer_ids = sorted(body["records"]), sorted(body["writers"])
    decoded = []
    for number, entry in enumerate(body["lines"], start=1):
        if not (
            isinstance(entry, list)
            and len(entry) == 4
            and all(isinstance(x, int) for x in entry[:3])
            and -1 <= entry[0] < len(record_ids)
            and -1 <= entry[1] < len(writer_ids)
            and isinstance(entry[3], str)
        ):
            raise ValueError(f"its line entry {number} is malformed: {str(entry)[:100]}")
        r, w, seq, digest = entry
        decoded.append(
            _SignedLine(number, record_ids[r] if r >= 0 else "", writer_ids[w] if w >= 0 else "", seq, digest)
        )
    body["_decoded"] = decoded
    return list(decoded)


def _manifest_problem(body: Any, object_key: str) -> str:
    """Why a manifest that verified cannot be used (a signer that misbehaved, or one copied over
    another object's), or ""."""
    if not isinstance(body, dict) or body.get("format") != MANIFEST_FORMAT:
        return f"not a {MANIFEST_FORMAT} manifest"
    if body.get("key") != object_key:
        return f"it is the manifest of {body.get('key')!r}, not of {object_key!r}"
    checks = (
        ("size", int),
        ("sha256", str),
        ("events", int),
        ("records", dict),
        ("writers", dict),
        ("lines", list),
    )
    for name, kind in checks:
        if not isinstance(body.get(name), kind):
            return f"its {name!r} is missing or not a {kind.__name__}"
    return ""  # the per-line entries are checked when they are needed (_manifest_lines)


def _records_note(records: list[str]) -> str:
    if not records:
        return ""
    return (
        "; records " + ", ".join(records[:5]) + (f" and {len(records) - 5} more" if len(records) > 5 else "")
    )


def _is_final(events: list[Event]) -> bool:
    """Whether a record holds its final event (a held request: a step that ends its approval)."""
    kinds = {e.kind for e in events}
    if "approval" not in kinds and "held" not in kinds:
        return not kinds.isdisjoint(FINAL_EVENTS)
    approval = [e for e in events if e.kind == "approval"]
    window = any(e.step == "requested" and e.mode == "window" for e in approval)
    return any(e.step in FINAL_APPROVAL_STEPS or (window and e.step == "decided_approved") for e in approval)


def _record_start(record_id: str) -> datetime:
    """The start time a record id carries (13 hex digits of milliseconds)."""
    try:
        return datetime.fromtimestamp(int(record_id[:13], 16) / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.max.replace(tzinfo=UTC)


def _runs(seqs: list[int]) -> Iterator[list[int]]:
    run: list[int] = []
    for seq in seqs:
        if run and seq != run[-1] + 1:
            yield run
            run = []
        run.append(seq)
    if run:
        yield run


def _out_of_order(order: list[int], matched: dict[int, Event]) -> list[str]:
    """Pairs of events whose lines are in the opposite order of their signed lines."""
    described = []
    for a, b in itertools.pairwise(order):
        first, second = matched[a], matched[b]
        if first.line > second.line:
            described.append(
                f"{second.where()} now comes before line {first.line} (signed as lines {b + 1} and {a + 1})"
            )
    return described[:5] + ([f"{len(described) - 5} more"] if len(described) > 5 else [])


class _Index:
    """Every event by record, by (writer, seq) and by hash, and what writers declared lost."""

    def __init__(self, events: Iterable[Event]) -> None:
        records: dict[str, list[Event]] = {}
        by_key: dict[tuple[str, int | str], Event] = {}
        by_digest: dict[str, Event] = {}
        self.dupes: dict[tuple[str, int | str], list[Event]] = {}  # keys more than one event claims
        self.lost_seqs: set[tuple[str, int | str]] = set()
        self.lost_digests: set[str] = set()
        for event in events:
            if event.record_id:
                same = records.get(event.record_id)
                if same is None:
                    records[event.record_id] = [event]
                else:
                    same.append(event)
            if not event.writer:
                continue
            key = (event.writer, event.seq)
            other = by_key.setdefault(key, event)
            if other is not event:
                self.dupes.setdefault(key, [other]).append(event)
            by_digest.setdefault(event.digest, event)
            for item in event.lost:
                seq, digest = item.get("seq"), item.get("hash")
                if isinstance(seq, int):
                    self.lost_seqs.add((event.writer, seq))
                if isinstance(digest, str):
                    self.lost_digests.add(digest)
        self.records, self.by_key, self.by_digest = records, by_key, by_digest

    def at(self, key: tuple[str, int | str]) -> list[Event]:
        """The events that claim one (writer, seq)."""
        if key in self.dupes:
            return self.dupes[key]
        event = self.by_key.get(key)
        return [event] if event is not None else []

    def writer_seqs(self, flagged: set[int]) -> dict[str, list[int]]:
        """Each writer's sequence numbers, sorted; events in ``flagged`` (inserted) do not count."""
        seqs: dict[str, list[int]] = defaultdict(list)
        for writer, seq in self.by_key:
            if not isinstance(seq, int):
                continue
            if flagged and all(id(e) in flagged for e in self.at((writer, seq))):
                continue
            seqs[writer].append(seq)
        for values in seqs.values():
            values.sort()
        return seqs

    def duplicate_deliveries(self, objects: dict[str, _Object]) -> int:
        return sum(
            len(events) - 1
            for events in self.dupes.values()
            if len({e.digest for e in events}) == 1
            and all(objects[e.obj].state == "verified" for e in events)
        )


# ---------------------------------------------------------------------------- S3 and the window


def parse_when(text: str, now: datetime, option: str = "--since") -> datetime:
    """``7d``, ``12h``, ``30m``, ``2w`` ago; a date (``2026-03-01``, midnight UTC); or an ISO
    time (``2026-03-01T10:00Z``; without an offset, UTC)."""
    relative = re.fullmatch(r"(\d{1,6})([mhdw])", text.strip())
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        minutes = {"m": 1, "h": 60, "d": 1440, "w": 10080}[unit]
        return now - timedelta(minutes=amount * minutes)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise IntegrityError(
            f"{option} takes 30m, 12h, 7d, 2w (ago), a date (2026-03-01) or an ISO time "
            f"(2026-03-01T10:00Z), not {text!r}"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _hour_of(key: str, prefix: str) -> datetime | None:
    """The UTC hour Firehose filed an object under (``<prefix>YYYY/MM/DD/HH/...``)."""
    found = _HOUR_PATH.match(key, len(prefix))
    if not found:
        return None
    year, month, day, hour = (int(g) for g in found.groups())
    try:
        return datetime(year, month, day, hour, tzinfo=UTC)
    except ValueError:
        return None


class S3Recordings:
    """The recordings bucket: objects under ``prefix`` and manifests under ``manifests/<prefix>``."""

    def __init__(self, bucket: str, prefix: str, s3: Any = None, workers: int = 8) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.s3 = s3
        self.workers = workers

    def _client(self) -> Any:
        from wardgate import aws

        return self.s3 or aws.client("s3")

    def keys(self, since: datetime | None, until: datetime | None) -> tuple[list[str], list[str]]:
        """Object keys and manifest keys filed in the hours from ``since`` to ``until``."""
        objects = self._list(self.prefix, since, until)
        manifests = [
            key
            for key in self._list(MANIFEST_PREFIX + self.prefix, since, until)
            if object_key_of(key) is not None
        ]
        return objects, manifests

    def _list(self, prefix: str, since: datetime | None, until: datetime | None) -> list[str]:
        first = since.replace(minute=0, second=0, microsecond=0) if since else None
        last = until.replace(minute=0, second=0, microsecond=0) if until else None
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if first is not None:
            params["StartAfter"] = prefix + first.strftime("%Y/%m/%d/%H/")[:-1]
        keys: list[str] = []
        for page in self._client().get_paginator("list_objects_v2").paginate(**params):
            for obj in page.get("Contents", []):
                hour = _hour_of(obj["Key"], prefix)
                if hour is None or (first is not None and hour < first):
                    continue
                if last is not None and hour > last:
                    return keys  # keys sort by hour: nothing later is in the window
                keys.append(obj["Key"])
        return keys

    def fetch(self, keys: list[str]) -> Iterator[tuple[str, bytes | None]]:
        """Each key's bytes (None when it vanished between listing and reading), fetched in parallel."""
        from botocore.exceptions import ClientError

        s3 = self._client()

        def get(key: str) -> tuple[str, bytes | None]:
            try:
                return key, s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return key, None
                raise

        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="wardgate-verify") as pool:
            yield from pool.map(get, keys)


def verify_recordings(
    source: S3Recordings,
    verifier: ManifestVerifier,
    since: datetime | None = None,
    until: datetime | None = None,
    record_id: str = "",
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Report:
    """Verify every object and manifest filed from ``since`` to ``until`` (all of them when both
    are None); with ``record_id``, what concerns that record (from its start, a day by default)."""
    if record_id:
        if not RECORD_ID.fullmatch(record_id):
            raise IntegrityError(f"{record_id!r} is not a record id (29 lowercase hex characters)")
        began = _record_start(record_id)
        since = since or began
        until = until or since + timedelta(days=1)
    if since is not None and until is not None and since > until:
        raise IntegrityError(f"--since ({since.isoformat()}) is after --until ({until.isoformat()})")
    object_keys, manifest_keys = source.keys(since, until)
    verification = Verification(verifier, since)
    for key, data in source.fetch(object_keys):
        if data is not None:
            verification.add_object(key, data)
    for key, data in source.fetch(manifest_keys):
        object_key = object_key_of(key)
        if data is not None and object_key is not None:
            verification.add_manifest(object_key, data)
    report = verification.run()
    report.since, report.until = since, until
    if record_id and since is not None and until is not None:
        report = verification.only(report, record_id, since, until)
    return report


# ------------------------------------------------------------------------ wardgate recordings verify


def add_verify_command(rsub: Any, with_stack: Callable[[Any], None]) -> None:
    """Register ``wardgate recordings verify`` under ``wardgate recordings``."""
    import argparse
    import textwrap

    verify = rsub.add_parser(
        "verify",
        help="prove the recordings intact (signed manifests, hash chains, sequences) or say what is wrong",
        description=textwrap.fill(
            "Reads the recording objects and their manifests filed in the window (all of them by "
            "default), checks each manifest's signature with the manifest key, each object's SHA-256, "
            "every record's hash chain and every writer's sequence numbers. Exit status: 0 intact, 1 "
            "something is wrong (each problem is named with its object, line and record), 2 bad input.",
            90,
        )
        + "\n\nproblems:\n"
        + "\n".join(f"  {kind:<18} {meaning}" for kind, meaning in PROBLEMS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    when = "30m, 12h, 7d, 2w (ago), a date (2026-03-01, UTC) or an ISO time (2026-03-01T10:00Z)"
    verify.add_argument("--since", help=f"from the hour of: {when} (default: the beginning)")
    verify.add_argument("--until", help="to the hour of: same forms as --since (default: now)")
    verify.add_argument(
        "--record", metavar="ID", help="only what concerns one record (from its start, a day unless --until)"
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument(
        "--public-key",
        metavar="PEM",
        help="check signatures with this public key (PEM) instead of the configured key's "
        "(kms:GetPublicKey on RECORDINGS_MANIFEST_KEY, the stack output RecordingManifestKeyArn)",
    )
    verify.set_defaults(func=cmd_recordings_verify)
    with_stack(verify)


def cmd_recordings_verify(args: Any) -> int:
    import os
    import sys

    from wardgate.auditing.signing import KEY_SETTING, SigningKeyError, verifier_for
    from wardgate.cli import target
    from wardgate.config import Settings

    now = datetime.now(UTC)
    try:
        since = parse_when(args.since, now, "--since") if args.since else None
        until = parse_when(args.until, now, "--until") if args.until else None
        if args.record and not RECORD_ID.fullmatch(args.record):
            raise IntegrityError(f"--record {args.record!r} is not a record id (29 lowercase hex characters)")
        target(args)
        settings = Settings.from_env()
        verifier = verifier_for(os.environ.get(KEY_SETTING, ""), args.public_key)
        source = S3Recordings(settings.recordings_bucket, settings.recordings_prefix)
        report = verify_recordings(
            source, verifier, since, until if until or args.record else now, args.record or ""
        )
    except (IntegrityError, SigningKeyError) as exc:
        print(f"wardgate: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        window = (
            f"{report.since:%Y-%m-%d %H:%M}" if report.since else "the beginning",
            f"{report.until:%Y-%m-%d %H:%M} UTC" if report.until else "now",
        )
        where = f"s3://{source.bucket}/{source.prefix}"
        print(f"{where}, objects filed from {window[0]} to {window[1]} (whole hours)")
        print(report.render())
    return 0 if report.intact else 1
