"""Patterns that cannot match a text, told apart before they scan it.

Every candidate pattern of every detector would otherwise scan the whole text, and on most texts
(a Kubernetes pod list, an API's JSON) most of them find nothing: a pattern that finds nothing
costs a full pass over the text all the same. Two checks prove, more cheaply than that pass, that
a pattern has no match anywhere in a text, or where its first match cannot be before; the
patterns then search only what is left. Both are exact: a pattern skipped here would have found
nothing, and one told to start at a position has no match before it (``re`` searches from a
position with lookbehinds still seeing the text before it).

* **Required characters.** From a pattern's parse tree: the literal characters that every match
  holds, or that a positive lookaround of every match must see (never under IGNORECASE, never in
  an optional part, and of a branch only what all its alternatives require). A text without one
  of them cannot hold a match, and ``c in text`` answers at ``memchr`` speed: JSON without spaces
  skips every pattern of numbers grouped by spaces, without ``+`` the E.164 one, without ``J``
  the JWT one, without a space the PEM one (``-----BEGIN ``).
* **Shared literal prefixes.** Patterns on the same text whose matches all start with the same
  literal character (the digit patterns of card, phone and SSN start with ``000`` on the shaped
  text, GitHub's two token patterns with ``g``, IPv6's two with ``:``) are searched once together,
  as one alternation: ``re`` factors the common prefix out and looks for it as it does for one
  pattern's, so the joint search costs about one pass. No match of the alternation: none of them
  matches. A match at ``i``: none of them matches before ``i``, so each searches from ``i``.
  Only patterns without groups (and with the same flags, without IGNORECASE) are joined.

``KnownMatches`` holds the result per pattern for one text: ``-1`` (no match) or the position a
search may start from; ``Detector.find`` reads it. ``tests/test_masking_prefilter.py`` compares
every detector with and without these checks on generated texts, the masking corpus and a pod
list. The engine uses them on texts of ``engine.PREFILTER_FROM`` characters and more.
"""

from __future__ import annotations

import re
import re._constants as _sre  # the parse tree's opcodes (as masking/digits.py reads them)
import re._parser as _re_parser
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wardgate.masking.detectors import Detector

KnownMatches = dict[re.Pattern[str], int]
"""Per pattern: ``-1`` when it matches nowhere in the text, else a position no match is before."""

SHARED_PREFIX = 1
"""Literal characters that patterns must share at the start of their matches to be searched together."""

_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT)


@dataclass(frozen=True)
class PatternFacts:
    """What a pattern needs of a text to match at all, read from its parse tree."""

    required: str
    """Characters that any match needs in the text (itself or what its lookarounds see)."""
    prefix: str
    """The literal characters every match starts with."""
    joinable: bool
    """Whether it may be searched in an alternation with others (no groups, no IGNORECASE)."""


@lru_cache(maxsize=1024)
def pattern_facts(pattern: re.Pattern[str]) -> PatternFacts:
    """What ``pattern`` needs of a text (see the module's docstring); nothing when not known."""
    if not isinstance(pattern.pattern, str):
        return PatternFacts("", "", False)
    try:
        parsed = _re_parser.parse(pattern.pattern, pattern.flags)
    except Exception:  # never for a compiled pattern: then nothing is known
        return PatternFacts("", "", False)
    flags = int(parsed.state.flags)
    if flags & re.IGNORECASE:
        return PatternFacts("", "", False)
    required = "".join(sorted(_required(list(parsed), flags)))
    prefix = ""
    for op, av in parsed:
        if op != _sre.LITERAL:
            break
        prefix += chr(av)
    joinable = pattern.groups == 0 and not (flags & re.LOCALE)
    return PatternFacts(required, prefix, joinable)


def _required(items: Sequence[tuple[Any, Any]], flags: int) -> set[str]:
    """The characters every match of ``items`` holds (or asserts) under ``flags``."""
    found: set[str] = set()
    for op, av in items:
        if op == _sre.LITERAL:
            if not flags & re.IGNORECASE:
                found.add(chr(av))
        elif op == _sre.IN:
            if len(av) == 1 and av[0][0] == _sre.LITERAL and not flags & re.IGNORECASE:
                found.add(chr(av[0][1]))  # a class of one character: [-]
        elif op in _REPEATS:
            if av[0] >= 1:
                found |= _required(av[2], flags)
        elif op == _sre.SUBPATTERN:
            inner = (flags | av[1]) & ~av[2]
            found |= _required(av[3], inner)
        elif op == _sre.ATOMIC_GROUP:
            found |= _required(av, flags)
        elif op == _sre.ASSERT:  # a lookahead or lookbehind that must hold sees these in the text
            found |= _required(av[1], flags)
        elif op == _sre.BRANCH:
            alternatives = [_required(branch, flags) for branch in av[1]]
            found |= set.intersection(*alternatives) if alternatives else set()
        # anything else (ASSERT_NOT, classes, categories, anchors, group references,
        # conditionals) requires nothing known here
    return found


@dataclass(frozen=True)
class ScanPlan:
    """For one tuple of detectors: each pattern's required characters and the groups searched together."""

    checks: tuple[tuple[bool, re.Pattern[str], str], ...]
    """``(on_shape, pattern, required characters)`` of every pattern that requires some."""
    groups: tuple[tuple[bool, tuple[re.Pattern[str], ...]], ...]
    """``(on_shape, patterns)`` sharing a literal prefix of ``SHARED_PREFIX`` characters."""


@lru_cache(maxsize=256)
def scan_plan(detectors: tuple[Detector, ...]) -> ScanPlan:
    from wardgate.masking.detectors import Detector

    checks: list[tuple[bool, re.Pattern[str], str]] = []
    by_prefix: dict[tuple[bool, str, int], list[re.Pattern[str]]] = {}
    seen: set[tuple[bool, re.Pattern[str]]] = set()
    for det in detectors:
        if type(det).find is not Detector.find:
            continue  # a find of its own may not search its patterns (the AWS secret's windows)
        for pattern in det.patterns:
            if (det.on_shape, pattern) in seen:
                continue
            seen.add((det.on_shape, pattern))
            facts = pattern_facts(pattern)
            if facts.required:
                checks.append((det.on_shape, pattern, facts.required))
            if facts.joinable and len(facts.prefix) >= SHARED_PREFIX:
                key = (det.on_shape, facts.prefix[:SHARED_PREFIX], pattern.flags)
                by_prefix.setdefault(key, []).append(pattern)
    groups = tuple((key[0], tuple(ps)) for key, ps in by_prefix.items() if len(ps) > 1)
    return ScanPlan(tuple(checks), groups)


@lru_cache(maxsize=256)
def _joined(patterns: tuple[re.Pattern[str], ...]) -> re.Pattern[str] | None:
    """One alternation of ``patterns`` (same flags, no groups), or None if it cannot be compiled."""
    try:
        return re.compile("|".join(f"(?:{p.pattern})" for p in patterns), patterns[0].flags)
    except (re.error, RecursionError, OverflowError):
        return None


def known_matches(plan: ScanPlan, text: str, shaped: str | None) -> tuple[KnownMatches, KnownMatches]:
    """What the plan's checks say of ``text`` and of ``shaped`` (``shape(text)``, None when no
    detector runs on it): ``(raw, shaped)``, each for ``Detector.find``."""
    raw_known: KnownMatches = {}
    shaped_known: KnownMatches = {}
    for on_shape, pattern, required in plan.checks:
        subject = shaped if on_shape else text
        if subject is None:
            continue
        for c in required:
            if c not in subject:
                (shaped_known if on_shape else raw_known)[pattern] = -1
                break
    for on_shape, patterns in plan.groups:
        subject = shaped if on_shape else text
        if subject is None:
            continue
        known = shaped_known if on_shape else raw_known
        live = tuple(p for p in patterns if p not in known)
        if len(live) < 2:
            continue
        joined = _joined(live)
        if joined is None:
            continue
        first = joined.search(subject)
        at = -1 if first is None else first.start()
        for pattern in live:
            known[pattern] = at
    return raw_known, shaped_known
