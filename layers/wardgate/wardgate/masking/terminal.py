"""Terminal output (shell sessions, command output): masking that survives colours and chunking.

Two things make terminal output harder than a body:

* escape sequences: ``ls --color`` or a pager may put colour codes inside a value
  (``\\x1b[1m4242\\x1b[0m 4242 ...``). Values are found in the text without escape sequences and
  masked in the original; escape sequences inside a masked value are kept after its mask, so the
  terminal's state (colours, cursor) is what the program meant.
* chunks: output arrives in pieces and a value can straddle two. ``TerminalStream`` holds back
  the last ``overlap`` characters of what it has seen (and, while one is open, everything from a
  ``-----BEGIN ... PRIVATE KEY-----`` line on, up to ``max_held``) until more output or the end
  shows what they are. Held output beyond ``max_held`` is masked as it stands and released: a
  value longer than that may be cut (no built-in detector's values are, except PEM keys, which are
  bounded by ``max_held``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from wardgate.masking.detectors import Detector
from wardgate.masking.engine import MaskingProfile, MaskResult, find_values

_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_PEM_OPEN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_PEM_CLOSE = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")
_PEM = "pem_private_key"
_PEM_TAIL = 64


Span = tuple[int, int, Detector, bool, str]  # start and end in the original text, detector, merged, value


def _locate(text: str, detectors: Sequence[Detector]) -> tuple[list[Span], list[re.Match[str]]]:
    """The values in ``text`` as a terminal shows it (escapes removed), placed in ``text`` itself."""
    escapes = list(_ESCAPE.finditer(text)) if "\x1b" in text else []
    if not escapes:
        return [(s, e, d, m, text[s:e]) for s, e, d, m in find_values(text, detectors)], []
    plain_parts: list[str] = []
    origin: list[int] = []  # plain index -> index in text
    pos = 0
    for escape in [*escapes, None]:
        end = escape.start() if escape else len(text)
        plain_parts.append(text[pos:end])
        origin.extend(range(pos, end))
        pos = escape.end() if escape else pos
    plain = "".join(plain_parts)
    spans = [(origin[s], origin[e - 1] + 1, d, m, plain[s:e]) for s, e, d, m in find_values(plain, detectors)]
    return spans, escapes


def mask_terminal(text: str, profile: MaskingProfile) -> MaskResult[str]:
    """Mask a complete piece of terminal output, escape sequences and all."""
    counts: dict[str, int] = {}
    spans, escapes = _locate(text, profile.active)
    out: list[str] = []
    cursor = 0
    for first, last, detector, merged, value in spans:
        out.append(text[cursor:first])
        out.append(f"[masked:{detector.name}]" if merged else detector.fixed_mask or detector.mask(value))
        out.extend(m.group() for m in escapes if first <= m.start() < last)  # keep the terminal's state
        counts[detector.name] = counts.get(detector.name, 0) + 1
        cursor = last
    out.append(text[cursor:])
    return MaskResult("".join(out), counts)


class TerminalStream:
    """Masks output fed in chunks; what ``feed`` returns is safe to send on."""

    def __init__(self, profile: MaskingProfile, overlap: int = 1024, max_held: int = 64 * 1024) -> None:
        self.profile = profile
        self.overlap = overlap
        self.max_held = max_held
        self.counts: dict[str, int] = {}
        self._held = ""
        self._in_key = False

    def feed(self, chunk: str) -> str:
        self._held += chunk
        if self._in_key:  # inside a key block too long to hold: drop it up to its END line
            end = _PEM_CLOSE.search(self._held)
            if end is None:
                self._held = self._held[-_PEM_TAIL:]  # an END line may straddle chunks
                return ""
            self._held, self._in_key = self._held[end.end() :], False
        held = self._held
        release = max(0, len(held) - self.overlap)
        opened = _last_open_pem(held)
        if opened is not None:
            release = min(release, opened)
        if len(held) > self.max_held:
            if opened is not None:  # fail closed: the whole block is a key, even unseen parts of it
                self._held, self._in_key = "", True
                self.counts[_PEM] = self.counts.get(_PEM, 0) + 1
                return self._mask(held[:opened]) + f"[masked:{_PEM}]"
            release = len(held)  # nothing is held without bound: mask what is here
        else:
            release = self._boundary(held, release)
        if release == 0:
            return ""
        self._held = held[release:]
        return self._mask(held[:release])

    def close(self) -> str:
        """The rest, masked: call when the output ends."""
        rest, self._held = self._held, ""
        return self._mask(rest) if rest else ""

    def _boundary(self, held: str, release: int) -> int:
        """Move ``release`` back so it never cuts a value found in what is held, nor a line."""
        for start, end, *_ in _locate(held, self.profile.active)[0]:
            if start < release < end:
                release = start
        newline = held.rfind("\n", 0, release)
        return newline + 1 if newline >= 0 and release - newline < self.overlap else release

    def _mask(self, text: str) -> str:
        result = mask_terminal(text, self.profile)
        for name, n in result.counts.items():
            self.counts[name] = self.counts.get(name, 0) + n
        return result.value


def _last_open_pem(text: str) -> int | None:
    """Where the last private-key block without its END line starts, if any."""
    opened = None
    for m in _PEM_OPEN.finditer(text):
        opened = m.start()
    if opened is None or _PEM_CLOSE.search(text, opened):
        return None
    return opened
