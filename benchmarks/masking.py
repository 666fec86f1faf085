"""Throughput of response masking (``wardgate.masking.mask_json``), against Presidio's analyzer.

Documents are JSON arrays of realistic rows, built with a seeded RNG, at about 1 KB, 10 KB and
1 MB:

* **sparse**: order rows (ids, timestamps, amounts, SKUs, versions, notes, order ids) where about
  one row in 25 carries one sensitive value (an email, a phone, a card or an address);
* **dense**: customer rows, each with an email, a phone, a card number and an SSN among ordinary
  fields (about 13,000 values per MB);
* **dense-max**: every field but the id is sensitive (about 30,000 values per MB), a worst case.

wardgate is timed end to end on the UTF-8 bytes: decode, find, mask, encode (every built-in
detector on). Presidio's ``AnalyzerEngine`` is timed on the same text (1 MB documents in 10 KB
pieces: one long text is much slower for it), detection only (no anonymisation), with a blank
spaCy pipeline (``spacy.blank("en")``: tokenizer only, no model, no NER) and only the pattern and
rule recognizers for the entity types both find (credit card, email, phone, US SSN, IBAN, IP
address). Both run in this process, one core, one after the
other per document; each figure is the median of several runs.

    .venv/bin/python benchmarks/masking.py            # print the table
    .venv/bin/python benchmarks/masking.py --write    # and update docs/benchmarks.md

Presidio is not a dependency of wardgate. Without it the Presidio columns say so; to include
them: ``.venv/bin/pip install presidio-analyzer`` (brings spaCy; no model download is needed).
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import random
import statistics
import string
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from common import ROOT, code_version, machine, write_section

sys.path.insert(0, str(ROOT / "layers" / "wardgate"))

from wardgate.masking import luhn, mask_json

MARKERS = ("<!-- masking:start -->", "<!-- masking:end -->")
SIZES = {"1 KB": 1_000, "10 KB": 10_000, "1 MB": 1_000_000}
TARGET_SPARSE_MB_S = 50
TARGET_DENSE_MS = 50
TARGET_RATIO = 20
PRESIDIO_CHUNK = 10_000  # Presidio is superlinear on one long text: 1 MB goes in 10 KB pieces
PRESIDIO_ENTITIES = ["CREDIT_CARD", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "IBAN_CODE", "IP_ADDRESS"]
WORDS = ["order", "shipped", "pending", "refund", "customer", "note", "please", "update", "invoice"]


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("37", 15), ("6011", 16)])
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        if luhn(body + check):
            return body + check
    raise AssertionError


def _sensitive(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return f"user{rng.randrange(10**6)}@example.com"
    if kind == 1:
        return f"+1 415 555 {rng.randrange(10**4):04d}"
    if kind == 2:
        return _card(rng)
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def sparse_row(rng: random.Random, i: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": rng.randrange(10**9),
        "order_id": f"ORD-{rng.randrange(10**8):08d}",
        "status": rng.choice(["new", "paid", "shipped", "refunded"]),
        "created_at": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:15Z",
        "updated_ms": 1_716_000_000_000 + rng.randrange(10**9),
        "amount": round(rng.random() * 1000, 2),
        "currency": "EUR",
        "sku": f"SKU-{rng.randrange(10**6):06d}",
        "qty": rng.randint(1, 9),
        "client_version": f"{rng.randint(1, 5)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        "note": " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))),
    }
    if i % 25 == 0:
        row["contact"] = _sensitive(rng)
    return row


def dense_row(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "id": rng.randrange(10**9),
        "name": rng.choice(["Ana Lima", "Bo Chen", "Carla Diaz", "Eve Adams"]),
        "email": f"user{rng.randrange(10**6)}@example.com",
        "phone": f"+1 415 555 {rng.randrange(10**4):04d}",
        "card": _card(rng),
        "ssn": f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        "status": rng.choice(["active", "closed"]),
        "created_at": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:15:00Z",
        "balance": round(rng.random() * 10000, 2),
        "plan": rng.choice(["free", "pro", "team"]),
        "note": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))),
    }


def dense_max_row(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "id": i,
        "email": f"user{rng.randrange(10**6)}@example.com",
        "phone": f"+1 415 555 {rng.randrange(10**4):04d}",
        "card": _card(rng),
        "ssn": f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
    }


def document(make_row: Callable[[random.Random, int], dict[str, Any]], size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    length = 2
    while length < size or not rows:
        rows.append(make_row(rng, len(rows)))
        length += len(json.dumps(rows[-1])) + 2
    return json.dumps(rows).encode()


def presidio_analyzer() -> tuple[Any, str]:
    """Presidio's AnalyzerEngine with a blank spaCy pipeline, or None and why not."""
    # Presidio's email recognizer uses tldextract, which downloads the public suffix list on
    # first use; an empty URL list makes it use the snapshot it ships (no network)
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    try:
        import spacy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
    except ImportError as exc:
        return (
            None,
            f"presidio-analyzer is not installed ({exc.name}): `.venv/bin/pip install presidio-analyzer`",
        )

    class BlankSpacyNlpEngine(SpacyNlpEngine):  # type: ignore[misc]
        """spaCy's tokenizer only: no model to download, no NER."""

        def load(self) -> None:
            nlp = spacy.blank("en")
            nlp.max_length = 50_000_000
            self.nlp = {"en": nlp}

    engine = BlankSpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank"}])
    engine.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=engine)
    registry.recognizers = [
        r
        for r in registry.recognizers
        if set(r.supported_entities) & set(PRESIDIO_ENTITIES) and "Spacy" not in type(r).__name__
    ]
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])
    names = ", ".join(sorted(type(r).__name__ for r in registry.recognizers))
    presidio_version = importlib.metadata.version("presidio-analyzer")
    return (
        analyzer,
        f"presidio-analyzer {presidio_version}, spaCy {spacy.__version__} blank pipeline; {names}",
    )


def split(text: str, size: int) -> list[str]:
    """``text`` in pieces of about ``size`` characters, cut after a comma."""
    pieces, start = [], 0
    while start < len(text):
        end = text.find(",", start + size)
        end = len(text) if end == -1 else end + 1
        pieces.append(text[start:end])
        start = end
    return pieces


def median_seconds(run: Callable[[], object], runs: int, warm: bool = True) -> float:
    if warm:
        run()
    samples = []
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15, help="timed runs per document (wardgate)")
    parser.add_argument("--presidio-runs", type=int, default=3, help="timed runs per document (Presidio)")
    parser.add_argument("--no-presidio", action="store_true")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()

    analyzer, presidio_note = (None, "skipped (--no-presidio)") if args.no_presidio else presidio_analyzer()
    kinds = {"sparse": sparse_row, "dense": dense_row, "dense-max": dense_max_row}
    rows = []
    figures: dict[tuple[str, str], dict[str, float]] = {}
    for kind, make_row in kinds.items():
        for label, size in SIZES.items():
            if kind == "dense-max" and label != "1 MB":
                continue
            body = document(make_row, size, seed=size)
            masked = mask_json(body)
            values = masked.total
            runs = args.runs
            repeat = max(1, 200_000 // len(body))  # small documents: time a batch

            def ours(body: bytes = body, repeat: int = repeat) -> None:
                for _ in range(repeat):
                    mask_json(body)

            ours_s = median_seconds(ours, runs) / repeat
            mb = len(body) / 1e6
            entry = {"bytes": len(body), "values": values, "ours_ms": ours_s * 1000, "ours_mbs": mb / ours_s}
            if analyzer is not None:
                chunks = split(body.decode(), PRESIDIO_CHUNK)
                p_repeat = max(1, 20_000 // len(body))

                def theirs(chunks: list[str] = chunks, p_repeat: int = p_repeat) -> None:
                    for _ in range(p_repeat):
                        for chunk in chunks:
                            analyzer.analyze(text=chunk, language="en", entities=PRESIDIO_ENTITIES)

                p_runs = args.presidio_runs if size < 1_000_000 else 1
                theirs_s = median_seconds(theirs, p_runs, warm=size < 1_000_000) / p_repeat
                entry.update(theirs_mbs=mb / theirs_s, theirs_ms=theirs_s * 1000)
            figures[(kind, label)] = entry
            print(f"{kind:9} {label:6} {entry}", file=sys.stderr)

    header = "| document | size | values masked | wardgate ms | wardgate MB/s |"
    align = "|---|---:|---:|---:|---:|"
    if analyzer is not None:
        header += " Presidio ms | Presidio MB/s | ratio |"
        align += "---:|---:|---:|"
    for (kind, label), e in figures.items():
        line = (
            f"| {kind} | {label} ({e['bytes']:,} B) | {e['values']:,.0f} | {e['ours_ms']:.3f} | "
            f"**{e['ours_mbs']:.1f}** |"
        )
        if analyzer is not None:
            ratio = e["ours_mbs"] / e["theirs_mbs"]
            line += f" {e['theirs_ms']:.1f} | {e['theirs_mbs']:.2f} | **{ratio:.0f}x** |"
        rows.append(line)

    sparse, dense = figures[("sparse", "1 MB")], figures[("dense", "1 MB")]
    verdicts = [
        f"sparse 1 MB at >= {TARGET_SPARSE_MB_S} MB/s: {sparse['ours_mbs']:.0f} MB/s, "
        f"{'met' if sparse['ours_mbs'] >= TARGET_SPARSE_MB_S else 'missed'}",
        f"dense 1 MB in < {TARGET_DENSE_MS} ms: {dense['ours_ms']:.0f} ms, "
        f"{'met' if dense['ours_ms'] < TARGET_DENSE_MS else 'missed'} "
        f"(dense-max, a worst case: {figures[('dense-max', '1 MB')]['ours_ms']:.0f} ms)",
    ]
    if analyzer is not None:
        worst = min(e["ours_mbs"] / e["theirs_mbs"] for e in figures.values())
        verdicts.append(
            f">= {TARGET_RATIO}x Presidio's throughput on every document: lowest {worst:.0f}x, "
            f"{'met' if worst >= TARGET_RATIO else 'missed'}"
        )
    else:
        verdicts.append(f"Presidio comparison not run: {presidio_note}")
    text = "\n".join(
        [
            f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC of {code_version()} on {machine()}; "
            f"median of {args.runs} runs for wardgate and "
            f"{args.presidio_runs} for Presidio (1 MB: one run, in {PRESIDIO_CHUNK // 1000} KB pieces, "
            "which is faster for it than one long text), one process (one core). "
            f"Presidio: {presidio_note}.",
            "",
            header,
            align,
            *rows,
            "",
            "Targets: " + "; ".join(verdicts) + ".",
        ]
    )
    print(text)
    if args.write:
        write_section(MARKERS, text)


if __name__ == "__main__":
    main()
