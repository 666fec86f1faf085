"""The fuzz harnesses (fuzz/) run for a few seconds each in CI: any crash or hang fails the suite.

Each harness runs in a subprocess of its own (libFuzzer owns the process), as many at a time as
there are CPUs, for ``FUZZ_CI_SECONDS`` (default 5) from its seed corpus (crashes fixed earlier
are seeds: they are replayed first). New corpus entries and findings go to a temporary folder,
never into fuzz/corpus. On a crash the test prints libFuzzer's report and the input. ``make fuzz``
runs them for minutes (fuzz/README.md).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
TARGETS = (
    "http_path",
    "sql_parser",
    "k8s_request",
    "shell_parser",
    "dataapi_request",
    "scim_filter",
    "policy_yaml",
    "pg_codec",
    "pg_values",
    "mysql_codec",
    "mysql_values",
)
SECONDS = int(os.environ.get("FUZZ_CI_SECONDS", "5"))
HANG_SECONDS = 10  # one input running longer than this is a hang (libFuzzer's -timeout)


@dataclass(frozen=True)
class Run:
    target: str
    returncode: int
    output: str
    artifacts: tuple[Path, ...]

    def report(self) -> str:
        """What failed, and the input that made it fail."""
        lines = self.output.splitlines()
        start = next(
            (
                i
                for i, line in enumerate(lines)
                if "Uncaught Python exception" in line or "ERROR: libFuzzer" in line
            ),
            max(0, len(lines) - 60),
        )
        parts = [
            f"fuzz/{self.target}.py exited with {self.returncode}",
            *lines[max(0, start - 5) : start + 60],
        ]
        for artifact in self.artifacts:
            data = artifact.read_bytes()
            parts += [
                f"input ({artifact.name}, {len(data)} bytes): {data[:2000]!r}",
                f"base64: {base64.b64encode(data[:6000]).decode()}",
                f"replay: save it to a file and run: python fuzz/{self.target}.py <file>",
            ]
        return "\n".join(parts)


def fuzz(target: str, work: Path) -> Run:
    corpus, artifacts = work / target / "corpus", work / target / "artifacts"
    corpus.mkdir(parents=True)
    artifacts.mkdir()
    command = [
        sys.executable,
        str(FUZZ / f"{target}.py"),
        f"-max_total_time={SECONDS}",
        f"-timeout={HANG_SECONDS}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
        str(corpus),  # new inputs go here: the seeds in fuzz/corpus stay as they are
        str(FUZZ / "corpus" / target),
    ]
    env = {k: v for k, v in os.environ.items() if k != "FUZZ_STRICT"}
    try:
        done = subprocess.run(
            command,
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=SECONDS + 120,
        )
        returncode, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        partial = [
            o.decode(errors="replace") if isinstance(o, bytes) else o or ""
            for o in (expired.stdout, expired.stderr)
        ]
        returncode, output = -1, f"no answer after {SECONDS + 120} s\n" + "".join(partial)
    return Run(target, returncode, output, tuple(sorted(artifacts.iterdir())))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    work = tmp_path_factory.mktemp("fuzz")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = dict(zip(TARGETS, pool.map(lambda target: fuzz(target, work), TARGETS), strict=True))
    yield results


def test_every_harness_in_fuzz_is_run_here() -> None:
    harnesses = {p.stem for p in FUZZ.glob("*.py") if not p.stem.startswith("_") and p.stem != "make_corpus"}
    assert harnesses == set(TARGETS)
    for target in TARGETS:
        assert any((FUZZ / "corpus" / target).iterdir()), f"fuzz/corpus/{target} has no seeds"


@pytest.mark.parametrize("target", TARGETS)
def test_no_crash_or_hang(runs: dict[str, Run], target: str) -> None:
    run = runs[target]
    assert run.returncode == 0 and not run.artifacts, run.report()
    assert "Done" in run.output and "stat::number_of_executed_units" in run.output, run.report()
