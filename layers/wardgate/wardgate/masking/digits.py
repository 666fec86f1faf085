"""Texts that differ only in their ASCII digits: masked with one scan when nothing can be found.

A statement written with its values (``... WHERE aid = 48213``, then ``... WHERE aid = 9170``)
or a bound parameter (``48213``) is masked for the recording on every statement, though most of
them hold nothing a detector masks: every detector's patterns scan every text to say so.

**Digit-blind detectors.** A detector is *digit-blind* when whether its patterns match anywhere in
a text cannot depend on which ASCII digits the text holds: it finds values with ``Detector.find``
(every pattern is searched first; validity checks read the text only for a pattern's match), and
either it runs on ``shape(text)`` (every ASCII digit is ``0`` there), or every item of every
pattern treats the ten ASCII digits alike (``digit_blind_pattern``, from the compiled pattern's
parse tree: no digit literal, every character class holds all ten digits or none, no group
reference, no locale flag). A regular expression whose every test on a character gives the same
answer for each digit matches a text exactly where it matches the text with its digits replaced
by ``0``.

**The memo.** ``QuietTexts`` keeps, per text with its digits zeroed (its *digit form*), whether no
pattern of any digit-blind detector of the profile matches in it ("quiet"). For a quiet digit
form, those detectors find nothing in any text of that form; the other detectors (e.g. one whose
pattern reads ``[2-7]``, or with a ``find`` of its own) run on the text itself, as ``mask_text``
runs them (not on a text shorter than their shortest match). If none of them
finds anything either, ``mask_text`` would return the text unchanged, and so does
``QuietTexts.masked``; in every other case it calls ``mask_text``. ``tests/test_masking_digits.py``
compares it with ``mask_text`` on values of every built-in detector and generated texts.
"""

from __future__ import annotations

import re
import re._constants as _sre  # the parse tree's opcodes (engine.py reads widths from it too)
import re._parser as _re_parser
from typing import Any, Final

from wardgate.masking.detectors import Detector, shape
from wardgate.masking.engine import MaskingProfile, _widths, mask_text

_DIGITS: Final = range(0x30, 0x3A)
_ZERO_DIGITS: Final = bytes.maketrans(b"0123456789", b"0000000000")
_ALL_DIGITS: Final = frozenset(_DIGITS)
# Character categories by the ASCII digits they hold (all ten, or none); others are not known here.
_CATEGORY_DIGITS: Final = {
    _sre.CATEGORY_DIGIT: True,
    _sre.CATEGORY_NOT_DIGIT: False,
    _sre.CATEGORY_WORD: True,
    _sre.CATEGORY_NOT_WORD: False,
    _sre.CATEGORY_SPACE: False,
    _sre.CATEGORY_NOT_SPACE: True,
    _sre.CATEGORY_LINEBREAK: False,
    _sre.CATEGORY_NOT_LINEBREAK: True,
}
_ANCHORS: Final = frozenset(
    {
        _sre.AT_BEGINNING,
        _sre.AT_BEGINNING_LINE,
        _sre.AT_BEGINNING_STRING,
        _sre.AT_END,
        _sre.AT_END_LINE,
        _sre.AT_END_STRING,
        _sre.AT_BOUNDARY,  # every digit is a word character
        _sre.AT_NON_BOUNDARY,
    }
)
QUIET_TEXTS = 4096
QUIET_TEXT_BYTES = 1024  # longer texts go to mask_text (statements this long rarely repeat)


def digit_blind_pattern(pattern: re.Pattern[str]) -> bool:
    """Whether every test ``pattern`` makes on a character answers alike for the ten ASCII digits
    (so it matches a text exactly where it matches that text with its digits zeroed)."""
    if pattern.flags & re.LOCALE or not isinstance(pattern.pattern, str):
        return False
    try:
        parsed = _re_parser.parse(pattern.pattern, pattern.flags)
    except Exception:  # never for a compiled pattern; not known, so not blind
        return False
    return _blind(parsed)


def _blind(items: Any) -> bool:
    for op, av in items:
        if op in (_sre.LITERAL, _sre.NOT_LITERAL):
            if av in _ALL_DIGITS:
                return False
        elif op == _sre.IN:
            if not _class_blind(av):
                return False
        elif op == _sre.ANY or (op == _sre.AT and av in _ANCHORS):
            continue
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
            if not _blind(av[2]):
                return False
        elif op == _sre.SUBPATTERN:
            if av[1] & re.LOCALE or not _blind(av[3]):
                return False
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT):
            if not _blind(av[1]):
                return False
        elif op == _sre.ATOMIC_GROUP:
            if not _blind(av):
                return False
        elif op == _sre.BRANCH:
            if not all(_blind(branch) for branch in av[1]):
                return False
        else:  # a group reference, a conditional, anything not known here
            return False
    return True


def _class_blind(items: Any) -> bool:
    """A character class holds all ten ASCII digits or none of them."""
    held: set[int] = set()
    for op, av in items:
        if op == _sre.NEGATE:
            continue  # the complement of all or none is none or all
        if op == _sre.LITERAL:
            if av in _ALL_DIGITS:
                held.add(av)
        elif op == _sre.RANGE:
            held.update(d for d in _DIGITS if av[0] <= d <= av[1])
        elif op == _sre.CATEGORY:
            holds = _CATEGORY_DIGITS.get(av)
            if holds is None:
                return False
            if holds:
                held.update(_DIGITS)
        else:
            return False
    return not held or held == _ALL_DIGITS


def digit_blind(detector: Detector) -> bool:
    """Whether ``detector`` can find a value in a text only where one of its patterns matches the
    text's digit form (see the module's docstring)."""
    if type(detector).find is not Detector.find:
        return False  # a find of its own: what it reads is not known here
    return detector.on_shape or all(digit_blind_pattern(p) for p in detector.patterns)


class QuietTexts:
    """``mask_text(text, profile).value``, scanning only the detectors that are not digit-blind
    when the text's digit form is known to be quiet (see the module's docstring). One per profile;
    not thread-safe (one event loop uses it)."""

    def __init__(self, profile: MaskingProfile, entries: int = QUIET_TEXTS) -> None:
        self.profile = profile
        self.entries = entries
        active = profile.active
        self._blind_raw = tuple(p for d in active if digit_blind(d) and not d.on_shape for p in d.patterns)
        self._blind_shaped = tuple(p for d in active if digit_blind(d) and d.on_shape for p in d.patterns)
        widths = dict(zip(active, _widths(active)[0], strict=True))
        # with the shortest match of each, below which mask_text does not run it either
        self._others = tuple((d, widths[d]) for d in active if not digit_blind(d))
        self._quiet: dict[bytes, bool] = {}

    def masked(self, text: str) -> str:
        """Exactly ``mask_text(text, self.profile).value``."""
        raw = text.encode("utf-8", "surrogatepass")
        if len(raw) > QUIET_TEXT_BYTES or len(raw) > self.profile.max_bytes:
            return mask_text(text, self.profile).value
        form = raw.translate(_ZERO_DIGITS)  # UTF-8 bytes 0x30-0x39 are only ever ASCII digits
        quiet = self._quiet.get(form)
        if quiet is None:
            quiet = self._scan(text)
            if len(self._quiet) >= self.entries:
                self._quiet.clear()
            self._quiet[form] = quiet
        if not quiet:
            return mask_text(text, self.profile).value
        shaped: str | None = None
        size = len(text)
        for detector, width in self._others:
            if size < width:
                continue
            if detector.on_shape and shaped is None:
                shaped = shape(text)
            if detector.find(text, shaped):
                return mask_text(text, self.profile).value
        return text  # nothing found: mask_text returns the text as it is

    def _scan(self, text: str) -> bool:
        """No pattern of a digit-blind detector matches in ``text`` (hence in its digit form)."""
        if any(p.search(text) is not None for p in self._blind_raw):
            return False
        shaped = shape(text)
        return all(p.search(shaped) is None for p in self._blind_shaped)
