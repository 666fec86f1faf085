"""What both benchmark scripts share: where results go and how a run identifies itself."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"


def code_version() -> str:
    """The commit measured, and whether the package, functions or template had uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "layers", "functions", "template.yaml"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "an unknown commit"
    return f"commit {commit}" + (" with uncommitted changes" if dirty else "")


def machine() -> str:
    """CPU count and model, OS, Python, and the load average (other work on the machine skews results)."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs{f' ({cpu})' if cpu else ''}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}"
    )


def write_section(markers: tuple[str, str], text: str) -> None:
    """Replace the part of docs/benchmarks.md between ``markers`` with ``text``."""
    start, end = markers
    doc = DOC.read_text()
    if start not in doc or end not in doc:
        raise SystemExit(f"{DOC} lacks the markers {start} ... {end}")
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    DOC.write_text(f"{head}{start}\n{text}\n{end}{tail}")
    print(f"updated {DOC.relative_to(ROOT)}", file=sys.stderr)
