"""The one-screen summary at the top of docs/benchmarks.md: every target, its latest figure, met or not.

Read from the sections the benchmark scripts wrote (their ``--write``): ``overhead.py``,
``sql_overhead.py`` and ``cold_start.py`` leave their figures in a ``<!-- figures {...} -->``
comment; the others' are read from their text. Targets that have a summary block of their own
(``<!-- NAMEsummary:start -->``: the TCP gateways, Kubernetes, the load test, the recordings...)
stay in it, and are named under this one. Nothing is measured here.

    .venv/bin/python benchmarks/summary.py            # print the summary
    .venv/bin/python benchmarks/summary.py --write    # and replace it in docs/benchmarks.md

The three scripts above rewrite the summary themselves after ``--write``; ``make bench`` runs this
last, after every section is fresh.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from typing import Any

from common import DOC, write_section

MARKERS = ("<!-- summary:start -->", "<!-- summary:end -->")
FIGURES = re.compile(r"<!-- figures (\{.*?\}) -->")
RUN_DATE = re.compile(r"Run (\d{4}-\d{2}-\d{2})")
OWN_BLOCK = re.compile(r"<!-- (\w+summary):start -->")  # pgsummary, loadsummary...: blocks of their own

Row = tuple[str, str, str, str]  # target, latest figure, verdict, command


def section(doc: str, name: str) -> str | None:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in doc or end not in doc:
        return None
    return doc.split(start, 1)[1].split(end, 1)[0]


def figures(text: str | None) -> dict[str, Any] | None:
    found = FIGURES.search(text or "")
    return json.loads(found.group(1)) if found else None


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def dated(text: str | None, figure: str) -> str:
    when = RUN_DATE.search(text or "")
    return f"{figure} ({when.group(1)})" if when else figure


def overhead_rows(text: str | None) -> list[Row]:
    command = "`.venv/bin/python benchmarks/overhead.py --write`"
    f = figures(text)
    if f is None:
        return [
            ("HTTP overhead (issue 16: p50 ≤ 1.8x direct, added p99 ≤ 2x added p50)", "not run", "-", command)
        ]
    ratio, added50, added99 = f["guarded_p50"] / f["direct_p50"], f["added_p50"], f["added_p99"]
    return [
        (
            "HTTP, 1 KB JSON, warm: guarded p50 ≤ 1.8x direct (issue 16)",
            dated(text, f"{ratio:.2f}x ({f['guarded_p50']:.3f} vs {f['direct_p50']:.3f} ms)"),
            verdict(ratio <= 1.8),
            command,
        ),
        (
            "HTTP: added p99 ≤ 2x added p50 (issue 16)",
            f"{added99:.3f} ms vs 2 x {added50:.3f} ms ({added99 / added50:.1f}x)",
            verdict(added99 <= 2 * added50),
            command,
        ),
        (
            "HTTP: added p50 < 1 ms, added p99 < 3 ms",
            f"{added50:.3f} / {added99:.3f} ms",
            verdict(added50 < 1 and added99 < 3),
            command,
        ),
    ]


def sql_rows(text: str | None) -> list[Row]:
    command = "`.venv/bin/python benchmarks/sql_overhead.py --write`"
    f = figures(text)
    if f is None:
        return [("Data API overhead (issue 16: added p50 ≤ 0.3x direct)", "not run", "-", command)]
    added, direct = f["added_p50"], f["direct_p50"]
    return [
        (
            "Data API, 100 rows x 8 columns masked: added p50 ≤ 0.3x the direct statement's p50 (issue 16)",
            dated(text, f"{added / direct:.2f}x ({added:.3f} of {direct:.3f} ms)"),
            verdict(added <= 0.3 * direct),
            command,
        ),
        ("Data API: added p50 < 2 ms (issue 7)", f"{added:.3f} ms", verdict(added < 2), command),
    ]


def cold_rows(text: str | None) -> list[Row]:
    command = "`.venv/bin/python benchmarks/cold_start.py --write`"
    f = figures(text)
    if f is None:
        return [("Cold start ≤ 1.3x its floor", "not run", "-", command)]
    return [
        (
            f"Cold start of {name} ≤ 1.3x its floor (issue 16)",
            dated(
                text, f"{entry['ratio']:.2f}x (+{entry['added_ms']:.0f} ms over {entry['floor_ms']:.0f} ms)"
            ),
            verdict(entry["ratio"] <= 1.3),
            command,
        )
        for name, entry in f["functions"].items()
    ]


def table_verdicts(text: str | None, pattern: str) -> list[tuple[str, ...]]:
    return re.findall(pattern, text or "")


def policy_rows(text: str | None) -> list[Row]:
    command = "`.venv/bin/python benchmarks/policy_decisions.py --write`"
    found = dict(
        (q, (v, t, m))
        for q, v, t, m in table_verdicts(text, r"\| (p50|p99) \| ([\d.]+) \| (< \d+ µs): (\w+) \|")
    )
    if set(found) != {"p50", "p99"}:
        return [("Policy decision, 1,000 rules", "see its section", "-", command)]
    figure = f"p50 {found['p50'][0]} µs, p99 {found['p99'][0]} µs"
    met = all(found[q][2] == "met" for q in found)
    return [
        (
            "Policy decision, 1,000 rules: p50 < 100 µs, p99 < 500 µs",
            dated(text, figure),
            verdict(met),
            command,
        )
    ]


def sqlclass_rows(text: str | None) -> list[Row]:
    command = "`.venv/bin/python benchmarks/sql_classification.py --write`"
    found = table_verdicts(text, r"\| both dialects \| \d+ \| \*\*([\d,]+)\*\* \|.*?: (\w+) \|")
    if not found:
        return [("SQL classification ≥ 5,000 statements/s", "see its section", "-", command)]
    rate, met = found[0]
    return [
        ("SQL classification ≥ 5,000 statements/s", dated(text, f"{rate}/s"), verdict(met == "met"), command)
    ]


def masking_rows(text: str | None) -> list[Row]:
    command = "`.venv/bin/python benchmarks/masking.py --write`"
    line = next((x for x in (text or "").splitlines() if x.startswith("Targets:")), "")
    parts = [p.strip() for p in line[len("Targets:") :].rstrip(".").split(";") if p.strip()]
    rows: list[Row] = []
    for part in parts:
        found = re.match(r"(.+?): (.+), (met|missed)\b", part)
        if found:
            target, figure, met = found.groups()
            rows.append((f"Masking: {target}", dated(text, figure), verdict(met == "met"), command))
    return rows or [("Masking throughput", "see its section", "-", command)]


def revocation_rows(text: str | None) -> list[Row]:
    command = "`.venv/bin/python benchmarks/revocation.py --write`"
    check = re.search(r"\*\*added by the check\*\*.*?\| \*\*([\d.]+)\*\* \|", text or "")
    check_met = re.search(r"Target < 200 µs p50: (\w+)", text or "")
    spread = re.search(r"\| median \| (\d+) \|\n\| worst of \d+ \| (\d+) \|", text or "")
    spread_met = re.search(r"Target < 1000 ms locally: (\w+)", text or "")
    rows: list[Row] = []
    if check and check_met:
        rows.append(
            (
                "Revocation check per request < 200 µs p50",
                dated(text, f"{check.group(1)} µs"),
                verdict(check_met.group(1) == "met"),
                command,
            )
        )
    if spread and spread_met:
        figure = f"median {spread.group(1)} ms, worst {spread.group(2)} ms"
        rows.append(
            ("Revocation propagation < 1 s locally", figure, verdict(spread_met.group(1) == "met"), command)
        )
    return rows or [("Revocation", "see its section", "-", command)]


def approval_rows(text: str | None) -> list[Row]:
    command = "`.venv/bin/python benchmarks/approval_latency.py --write`"
    median = re.search(r"\| median \| \*\*(\d+)\*\* \|", text or "")
    met = re.search(r"Target < 1000 ms locally: (\w+)", text or "")
    if not (median and met):
        return [("Approval click to result < 1 s locally", "see its section", "-", command)]
    return [
        (
            "Approval click to the agent's result < 1 s locally",
            dated(text, f"median {median.group(1)} ms"),
            verdict(met.group(1) == "met"),
            command,
        )
    ]


SECTIONS: list[tuple[str, Callable[[str | None], list[Row]]]] = [
    ("overhead", overhead_rows),
    ("sqloverhead", sql_rows),
    ("coldstart", cold_rows),
    ("policy", policy_rows),
    ("sqlclass", sqlclass_rows),
    ("masking", masking_rows),
    ("revocation", revocation_rows),
    ("approval", approval_rows),
]


def summary(doc: str) -> str:
    rows = [row for name, make in SECTIONS for row in make(section(doc, name))]
    others = [name for name in OWN_BLOCK.findall(doc) if name != "summary"]
    lines = [
        "**Every target, latest figures** (`.venv/bin/python benchmarks/summary.py --write` gathers them "
        "from the sections below; each figure is from one run against its same-run baseline; the TCP "
        "gateways, Kubernetes, the load test, the recordings and others have their own blocks after "
        "this one):",
        "",
        "| target | latest | | command |",
        "|---|---|---|---|",
        *[f"| {target} | {figure} | {met} | {command} |" for target, figure, met, command in rows],
    ]
    if others:
        lines += ["", f"Also below: {', '.join(others)}."]
    return "\n".join(lines)


def ensure_markers(doc: str) -> str:
    """The summary block goes first, before the other summary blocks (once)."""
    if MARKERS[0] in doc:
        return doc
    first = OWN_BLOCK.search(doc)
    anchor = first.group(0) if first else "## How"
    head, tail = doc.split(anchor, 1)
    return f"{head}{MARKERS[0]}\n{MARKERS[1]}\n\n{anchor}{tail}"


def update() -> None:
    """Rewrite the summary block from the document as it is now."""
    doc = ensure_markers(DOC.read_text())
    DOC.write_text(doc)
    write_section(MARKERS, summary(doc))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help=f"replace the summary in {DOC.name}")
    args = parser.parse_args()
    if args.write:
        update()
    print(summary(DOC.read_text()))


if __name__ == "__main__":
    main()
