"""What every harness in fuzz/ shares: libFuzzer's defaults, bytes as text, and the run itself.

A harness is ``fuzz/<target>.py``: it imports the code under test inside
``atheris.instrument_imports`` (so coverage guides the fuzzer), defines ``test_one_input(data)``
and calls :func:`fuzz`. *A crash* is any exception escaping ``test_one_input``: the harness
catches exactly the refusals its target documents, and raises :class:`Finding` when an
invariant of the result does not hold. *A hang* is one input running longer than ``-timeout``
seconds (libFuzzer reports it as a timeout). libFuzzer writes the input to
``<artifact_prefix>crash-<sha1>`` (or ``timeout-``, ``oom-``), and ``python fuzz/<target>.py
<that file>`` replays it.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
ROOT = FUZZ_DIR.parent
WORK = FUZZ_DIR / ".work"  # working corpora and findings of plain runs (git-ignored)

if str(ROOT / "layers" / "wardgate") not in sys.path:  # also without `pip install -e .`
    sys.path.insert(1, str(ROOT / "layers" / "wardgate"))


class Finding(Exception):
    """The target returned, but what it returned breaks one of its invariants."""


@dataclass(frozen=True)
class Known:
    """A crash found, reported to the code's owners and not fixed yet: tolerated so that the fuzzer
    can look for others, unless ``FUZZ_STRICT=1``. Matched by exception type and the innermost
    frame (file suffix and function) it was raised in; listed in fuzz/README.md."""

    exception: type[BaseException]
    file: str  # e.g. "wardgate/masking/engine.py"
    function: str
    what: str

    def matches(self, exc: BaseException) -> bool:
        frames = traceback.extract_tb(exc.__traceback__)
        if not frames or not isinstance(exc, self.exception):
            return False
        innermost = frames[-1]
        return innermost.filename.endswith(self.file) and innermost.name == self.function


def known(exc: BaseException, crashes: Sequence[Known]) -> bool:
    """True when ``exc`` is one of the reported ``crashes`` (and FUZZ_STRICT is not set)."""
    return os.environ.get("FUZZ_STRICT") != "1" and any(crash.matches(exc) for crash in crashes)


def text(data: bytes) -> str:
    """The input as text: UTF-8 when it is, else with each bad byte as a lone surrogate.

    Lone surrogates are what a JSON body (``"\\ud800"``) or a mis-decoded header can put in a
    ``str``, so the parsers must refuse them rather than crash on them.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "surrogateescape")


def libfuzzer_args(target: str, argv: Sequence[str], *, max_len: int, timeout: int) -> list[str]:
    """``argv`` with this target's defaults added where the caller did not set them.

    Without positional arguments (corpus directories or inputs to replay) the run grows
    ``fuzz/.work/<target>/`` from the seeds in ``fuzz/corpus/<target>/`` and writes findings to
    ``fuzz/.work/artifacts/``, so a plain ``python fuzz/<target>.py`` never touches the seeds.
    """
    args = list(argv)
    flags = {arg.split("=", 1)[0] for arg in args[1:] if arg.startswith("-")}
    positional = [arg for arg in args[1:] if not arg.startswith("-")]
    if "-timeout" not in flags:
        args.append(f"-timeout={timeout}")
    if "-max_len" not in flags:
        args.append(f"-max_len={max_len}")
    dictionary = FUZZ_DIR / "dicts" / f"{target}.dict"
    if "-dict" not in flags and dictionary.exists():
        args.append(f"-dict={dictionary}")
    if not positional:
        work = WORK / target
        artifacts = WORK / "artifacts"
        work.mkdir(parents=True, exist_ok=True)
        artifacts.mkdir(parents=True, exist_ok=True)
        if "-artifact_prefix" not in flags:
            args.append(f"-artifact_prefix={artifacts}/{target}-")
        args += [str(work), str(FUZZ_DIR / "corpus" / target)]
    return args


def fuzz(
    target: str, test_one_input: Callable[[bytes], None], *, max_len: int = 4096, timeout: int = 5
) -> None:
    """Run libFuzzer on ``test_one_input`` with ``sys.argv`` (libFuzzer's flags) and the defaults."""
    import atheris

    atheris.Setup(libfuzzer_args(target, sys.argv, max_len=max_len, timeout=timeout), test_one_input)
    atheris.Fuzz()
