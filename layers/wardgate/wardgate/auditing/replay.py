"""``wardgate recordings replay``: a terminal session played back in the auditor's terminal.

The output was written by a program the agent ran, so it may carry escape sequences aimed at
whoever watches it later: set the window title and report it back as input, write the clipboard
(OSC 52), ask the terminal to answer queries. Replay keeps what draws the screen (text, colours,
cursor movement, erasing) and drops the rest: every OSC, DCS, SOS, PM and APC string, and CSI
sequences that make a terminal reply or act on its window (device status and attributes, window
operations). ``export --format asciicast`` keeps the frames as recorded, for players that
sandbox them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TextIO

from wardgate.auditing.export import Terminal

# Strings introduced by ESC ] (OSC), ESC P (DCS), ESC X (SOS), ESC ^ (PM), ESC _ (APC) or their
# C1 forms, up to BEL or ST (ESC \ or U+009C); an unterminated one runs to the end of the frame.
_STRINGS = re.compile(r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|$)", re.DOTALL)
_CSI = re.compile(r"(?:\x1b\[|\x9b)([0-?]*)([ -/]*)([@-~])")
_REPLYING = frozenset("nct")  # DSR, DA, window operations (some report back, some resize or move)


def _csi(match: re.Match[str]) -> str:
    final = match.group(3)
    if final in _REPLYING or (final == "q" and match.group(2)):  # DECRQSS-like requests
        return ""
    return match.group(0)


def defang(text: str) -> str:
    """``text`` without the escape sequences a recording must not send to a live terminal."""
    return _CSI.sub(_csi, _STRINGS.sub("", text))


def play(
    terminal: Terminal,
    out: TextIO,
    speed: float = 1.0,
    idle_limit: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Write the output frames to ``out`` at ``speed`` (inf: no waiting), gaps capped at
    ``idle_limit`` seconds of recording; returns the seconds of recording played."""
    if speed <= 0:
        raise ValueError("speed must be greater than 0")
    previous = 0.0
    for at, code, data in terminal.frames:
        if code != "o":
            continue
        gap = max(at - previous, 0.0)
        if idle_limit is not None:
            gap = min(gap, idle_limit)
        previous = at
        if gap and speed != float("inf"):
            out.flush()
            sleep(gap / speed)
        out.write(defang(data))
    out.flush()
    return previous
