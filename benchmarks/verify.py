"""Tamper evidence: what hash chains cost the writers, and how fast ``verify`` checks recordings.

Generates ``--events`` chained events (default 100,000) the way the gateways write them: HTTP
records of a ``request`` and a ``response`` (about 1 KiB each, like a small masked JSON exchange)
from ``--writers`` writers (Lambda execution environments) interleaved, sealed by
``auditing.chain.EventWriter`` exactly as ``Recorder`` does. They are cut into Firehose-sized
objects (``--per-object`` events, GZIP as Firehose delivers them), each signed into a manifest
with a local P-256 key as ``wardgate dev`` does. Then it times, on one core:

- **verify**: ``Verification`` over every object and manifest, from their bytes as S3 returns
  them (gunzip, each line hashed and read, every signature and object hash, every chain and
  writer sequence). S3 GETs are left out: they run in parallel threads and cost what S3 costs.
  Target (issue 14): at least 50,000 events/s.
- **sign**: building and signing the manifests (the manifest function's work per object).
- **seal**: what sealing adds per event on the write path (the chain field, the hash of the
  serialised line), for the Lambda functions' ``json`` and the TCP gateway's ``orjson``.

It also checks the generated set verifies intact, and that one modified event is found.

    .venv/bin/python benchmarks/verify.py            # print the table
    .venv/bin/python benchmarks/verify.py --write    # and update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from common import DOC, ROOT, code_version, machine, write_section

sys.path.insert(0, str(ROOT / "layers" / "wardgate"))

from wardgate.auditing.chain import EventWriter
from wardgate.auditing.integrity import Verification, manifest_body, manifest_document
from wardgate.auditing.signing import FileSigner, make_local_key, verifier_for
from wardgate.recording import json_line, new_record_id

MARKERS = ("<!-- verify:start -->", "<!-- verify:end -->")
SUMMARY_MARKERS = ("<!-- verifysummary:start -->", "<!-- verifysummary:end -->")
TARGET_EVENTS_PER_S = 50_000
BUCKET = "wardgate-recordings"
DESCRIPTION = """`benchmarks/verify.py`: chained events generated as the gateways write them (HTTP
records of a `request` and a `response`, about 1 KiB each, from interleaved writers), cut into
GZIP objects as Firehose delivers them and signed into manifests with a local P-256 key; then
`wardgate recordings verify`'s checking (`auditing.integrity.Verification`) over their bytes on
one core, S3 GETs left out (they run in parallel threads). Target (issue 14): at least 50,000
events/s. Also what sealing (chain field and hash) adds to each event on the write path, and
what signing costs per object."""


def event(kind: str, record_id: str, rng: random.Random) -> dict[str, object]:
    """A request or response event shaped like the HTTP gateway's, about 1 KiB serialised."""
    body = {"id": rng.randrange(10**6), "name": "[masked:email]", "items": list(range(rng.randint(20, 60)))}
    common: dict[str, object] = {
        "format": "wardgate.recording/v1",
        "event": kind,
        "record_id": record_id,
        "request_id": f"req-{rng.randrange(10**9):09d}",
        "time": datetime.now(UTC).isoformat(),
        "started_at": datetime.now(UTC).isoformat(),
        "connection": "billing",
        "identity": {"subject": "agent-7", "issuer": "https://idp.example.com", "groups": ["ci"]},
        "decision": {"outcome": "allow", "rule": "agents may read", "policy_version": "v12"},
    }
    if kind == "request":
        common["request"] = {"method": "GET", "path": f"/v1/orders/{rng.randrange(10**6)}", "headers": {}}
        common["operation"] = {"protocol": "http", "method": "GET", "path": "/v1/orders/x"}
    else:
        common["response"] = {"status": 200, "body": {"size": 512, "encoding": "utf-8", "data": str(body)}}
        common["timings_ms"] = {"guard": 0.41, "upstream": 12.5, "masking": 0.22, "total": 13.4}
    return common


def generate(events: int, writers: int, rng: random.Random) -> list[bytes]:
    """Sealed lines in delivery order: writers interleave, each writes a record's two events in turn."""
    pool = [EventWriter() for _ in range(writers)]
    open_records: dict[int, str] = {}
    lines: list[bytes] = []
    while len(lines) < events:
        w = rng.randrange(writers)
        record_id = open_records.pop(w, "")
        if record_id:
            lines.append(pool[w].seal(event("response", record_id, rng), json_line).line)
        else:
            record_id = new_record_id()
            open_records[w] = record_id
            lines.append(pool[w].seal(event("request", record_id, rng), json_line).line)
    for w, record_id in open_records.items():  # close every record: the set is complete
        lines.append(pool[w].seal(event("response", record_id, rng), json_line).line)
    return lines


def seal_cost(rng: random.Random, rounds: int = 5000, repeats: int = 7) -> tuple[float, float]:
    """µs a seal adds per event over serialising alone, for the Lambda functions' serialiser
    (``recording.json_line``) and the TCP task's (orjson): the best of ``repeats`` interleaved runs,
    so that other work on the machine counts as little as it can."""
    samples = [event("response", new_record_id(), rng) for _ in range(200)]
    writer = EventWriter()
    option = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS

    def orjson_line(doc: dict[str, object]) -> bytes:
        return orjson.dumps(doc, default=str, option=option)

    added = []
    for dumps in (json_line, orjson_line):
        plain, sealed = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            for i in range(rounds):
                dumps(dict(samples[i % 200]))
            plain.append(time.perf_counter() - started)
            started = time.perf_counter()
            for i in range(rounds):
                writer.seal(dict(samples[i % 200]), dumps)
            sealed.append(time.perf_counter() - started)
        added.append((min(sealed) - min(plain)) / rounds * 1e6)
    return added[0], added[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="events to generate (default 100000)")
    parser.add_argument("--writers", type=int, default=20, help="interleaved writers (default 20)")
    parser.add_argument("--per-object", type=int, default=5000, help="events per object (default 5000)")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    if args.events < 2 or args.writers < 1 or args.per_object < 1:
        parser.error("--events must be at least 2, --writers and --per-object positive")
    rng = random.Random(14)
    version = code_version()
    lines = generate(args.events, args.writers, rng)
    hour = datetime.now(UTC).strftime("%Y/%m/%d/%H")
    objects = {
        f"recordings/{hour}/wardgate-recordings-1-{i // args.per_object:06d}.gz": gzip.compress(
            b"".join(lines[i : i + args.per_object]), compresslevel=6
        )
        for i in range(0, len(lines), args.per_object)
    }
    with tempfile.TemporaryDirectory() as folder:
        key = make_local_key(Path(folder))
        signer = FileSigner(key)
        started = time.process_time()
        manifests = {
            k: manifest_document(manifest_body(BUCKET, k, data), signer) for k, data in objects.items()
        }
        sign_s = time.process_time() - started
        verifier = verifier_for(f"file:{key}")

    def verify(stored: dict[str, bytes]) -> tuple[float, float, object]:
        verification = Verification(verifier)
        wall, cpu = time.perf_counter(), time.process_time()
        for k, data in stored.items():
            verification.add_object(k, data)
        for k, document in manifests.items():
            verification.add_manifest(k, document)
        report = verification.run()
        return time.perf_counter() - wall, time.process_time() - cpu, report

    verify(dict(list(objects.items())[:1]))  # warm-up (imports, first allocations)
    runs = [verify(objects) for _ in range(3)]  # the best of three: other work on the machine skews
    wall_s, cpu_s, report = min(runs, key=lambda run: run[1])
    intact = getattr(report, "intact", False) and getattr(report, "events", 0) == len(lines)
    # One modified event must be found (the check is real, not a pass-through).
    first = next(iter(objects))
    plain = gzip.decompress(objects[first])
    tampered = {**objects, first: gzip.compress(plain.replace(b'"status":200', b'"status":201', 1))}
    _, _, caught = verify(tampered)
    found = sorted({f.kind for f in getattr(caught, "findings", [])})
    json_us, orjson_us = seal_cost(rng)
    rate = len(lines) / cpu_s
    met = rate >= TARGET_EVENTS_PER_S and intact and found == ["modified_event"]
    size = sum(len(d) for d in objects.values())
    manifest_size = sum(len(d) for d in manifests.values())
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    text = "\n".join(
        [
            f"Run {when} of {version} on {machine()}; {len(lines):,} events in "
            f"{len(objects)} GZIP objects ({size / 2**20:.1f} MiB stored, "
            f"{sum(len(gzip.decompress(d)) for d in objects.values()) / 2**20:.1f} MiB of JSON lines), "
            f"{args.writers} writers, {len(lines) // 2:,} records; manifests "
            f"{manifest_size / 2**20:.1f} MiB.",
            "",
            "| | measured | target |",
            "|---|---:|---|",
            f"| verify, one core (CPU time, best of 3) | {cpu_s:.2f} s: **{rate:,.0f} events/s** "
            f"({wall_s:.2f} s wall) | >= {TARGET_EVENTS_PER_S:,} events/s: "
            f"{'met' if rate >= TARGET_EVENTS_PER_S else 'missed'} |",
            f"| the generated set | {'intact' if intact else 'NOT intact: ' + str(report)} | intact |",
            f"| one modified event | {', '.join(found) or 'not found'} | modified_event |",
            f"| sign (manifest function) | {sign_s:.2f} s: {len(lines) / sign_s:,.0f} events/s, "
            f"{sign_s / len(objects) * 1000:.0f} ms per {args.per_object:,}-event object | |",
            f"| seal, added per event on the write path | {json_us:.1f} µs (`recording.json_line`, the "
            f"functions), {orjson_us:.1f} µs (orjson, the TCP task) | |",
        ]
    )
    summary = "\n".join(
        [
            "**Tamper evidence** (issue 14; `.venv/bin/python benchmarks/verify.py --write`, "
            f"{when}, {version}; details in [its section](#tamper-evidence-verify)):",
            "",
            "| target | measured | |",
            "|---|---|---|",
            f"| `verify` over {len(lines):,} chained events >= {TARGET_EVENTS_PER_S:,} events/s on "
            f"one core | {rate:,.0f} events/s ({cpu_s:.2f} s); sealing adds {json_us:.1f} µs per event "
            f"(Lambda), {orjson_us:.1f} µs (TCP task) | **{'met' if met else 'missed'}** |",
        ]
    )
    print(text)
    print("\nsummary line:\n" + summary)
    if args.write:
        write(text, summary)
    sys.exit(0 if met else 1)


def write(text: str, summary: str) -> None:
    """This run's section, and its summary at the top (markers added the first time, as load.py does)."""
    doc = DOC.read_text()
    if MARKERS[0] not in doc:
        DOC.write_text(f"{doc.rstrip()}\n\n## Tamper evidence (verify)\n\n{MARKERS[0]}\n{MARKERS[1]}\n")
    write_section(MARKERS, f"{DESCRIPTION}\n\n{text}")
    doc = DOC.read_text()
    if SUMMARY_MARKERS[0] not in doc:
        head, how, tail = doc.partition("\n## How to run")
        if not how:
            raise SystemExit(f"{DOC} has no '## How to run' heading to put the summary before")
        DOC.write_text(f"{head.rstrip()}\n\n{SUMMARY_MARKERS[0]}\n{SUMMARY_MARKERS[1]}\n{how}{tail}")
    write_section(SUMMARY_MARKERS, summary)


if __name__ == "__main__":
    main()
