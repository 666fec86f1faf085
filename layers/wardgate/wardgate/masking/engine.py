"""The masking engine: finds sensitive values in responses and replaces them, in-process and fast.

Entry points (all return a ``MaskResult`` whose ``counts`` maps a detector name, or ``field``
for field and column rules, to the number of values masked):

* ``mask_text(text, profile)`` for plain text;
* ``mask_json(document, profile)`` for a JSON document given as ``bytes``, ``str`` or a parsed
  Python value (the result has the same type);
* ``mask_rows(columns, rows, profile)`` for SQL result rows;
* ``mask_body(body, content_type, content_encoding, profile)`` for an HTTP body: decodes
  ``gzip``/``deflate``/``br``, then masks JSON (``application/json``, ``*+json``) as JSON and
  other UTF-8 text as text; binary bodies are refused unless ``profile.allow_binary``.

Anything the engine will not mask raises ``MaskingRefused(reason)``: callers must then not pass
the body on.

Mask formats
------------
* ``card``: every digit but the last four becomes ``*``, separators and length are kept
  (``4242 4242 4242 4242`` → ``**** **** **** 4242``, ``4242424242424242`` →
  ``************4242``).
* Every other detector, built-in or policy-defined: ``[masked:<detector>]``, for example
  ``[masked:email]``, ``[masked:us_ssn]``, ``[masked:aws_secret_access_key]``. Nothing of the
  value is kept (not even an email's domain).
* A JSON *number* that is a sensitive value (a card number sent as a number) becomes the number
  ``0``: numbers stay where a number was, so the document keeps its schema.
* Field rules (JSON paths) and column rules (SQL) mask a whole value by type: a string becomes
  ``"[masked]"``, a number ``0``, a boolean ``false``, ``null`` stays ``null``, and an object or
  array keeps its keys and length with every value inside masked the same way.

Masks contain no quote, backslash or control character, so masked JSON is still valid JSON.

JSON
----
Only values are masked; keys are never changed (renaming two keys to the same mask would lose
data). A map keyed by email addresses therefore keeps its keys: use a field rule such as
``$.by_email`` to mask that map's values, and know that its keys pass.

For speed the built-in detectors run over the encoded JSON text, not over each decoded string:
the patterns run in C over the whole document, and Python only looks at candidates. Each
candidate is then placed: inside a string value (masked), inside a key (left alone, see above)
or a bare number (becomes ``0``), by counting unescaped quotes before it. The document is
parsed (``json.loads``) only when it must be:

* a field rule may apply (the document contains one of the keys the rules end with): the rules
  are applied on the parsed value, which is then serialised again (whitespace is normalised);
* the document escapes a printable ASCII character as ``\\u00XX`` (``\\u0040`` for ``@``),
  which could hide a value from the patterns: it is decoded and serialised again first;
* the profile has ``Detector.from_regex`` detectors: they run on each decoded string value.

A document that is not valid JSON is still masked as encoded text (every candidate in it is
masked); if a field rule might apply to it, it is refused, since the rule cannot be applied.

Limits (``MaskingProfile``) and what happens beyond them
--------------------------------------------------------
* ``max_bytes`` (4 MiB): the size of a body (after decompression) or text. Over it,
  ``on_limit="refuse"`` (the default) raises ``MaskingRefused``; ``"truncate"`` keeps the first
  ``max_bytes`` bytes, masked (a value cut by the limit is still recognised and masked whole),
  and appends ``…[wardgate: truncated at N bytes]``. A truncated JSON document is no longer
  JSON: it is returned as that text and ``MaskResult.content_type`` says ``text/plain``.
* ``max_string`` (1 MiB): one JSON string value or SQL cell, in characters as encoded. Over it:
  refused, or cut inside the string with ``…[wardgate: truncated at N characters]`` (the JSON
  stays valid).
* ``max_depth`` (64): JSON nesting. Deeper documents are always refused (nothing sensible can
  be cut), whatever ``on_limit`` says. Nothing in the engine recurses, so depth cannot crash it.
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import json
import re
import re._parser as _re_parser  # minimum match widths (see _widths)
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache, wraps
from itertools import accumulate, chain, repeat
from operator import lt
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar, overload
from uuid import UUID

from wardgate.masking.detectors import BUILTIN_DETECTORS, Detector, shape

if TYPE_CHECKING:  # the prefilter itself is imported by the first long text (off the cold start)
    from wardgate.masking.prefilter import KnownMatches

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")
OnLimit = Literal["truncate", "refuse"]

FIELD = "field"
"""The ``counts`` key of values masked by a field (JSON path) or column rule."""
FIELD_MASK = "[masked]"
MARKER = "…[wardgate: truncated at {limit} {unit}]"
_SCAN_MARGIN = 64 * 1024  # characters scanned past a truncation point, so a cut value is masked whole
PREFILTER_FROM = 4096
"""Texts from this length on are prefiltered (``masking.prefilter``): on shorter ones its checks
cost about what the searches they spare would."""


def _without_gc(func: Callable[P, R]) -> Callable[P, R]:
    """Pause the cyclic garbage collector during one masking call.

    A dense document makes tens of thousands of small, acyclic objects (spans, matches,
    slices); collection passes triggered by them find nothing and cost up to a third of the
    time. The collector's previous state is restored on return, whatever happens.
    """

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not gc.isenabled():
            return func(*args, **kwargs)
        gc.disable()
        try:
            return func(*args, **kwargs)
        finally:
            gc.enable()

    return wrapper


class MaskingRefused(Exception):
    """The engine will not mask this input; ``reason`` says why (for the agent and the record)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MaskResult(Generic[T]):
    """A masked value, how many values each detector masked, and whether it was truncated."""

    value: T
    counts: dict[str, int]
    truncated: bool = False
    content_type: str | None = None
    """``mask_body`` only: the content type of ``value`` (changes when JSON was truncated)."""
    content_encoding: str | None = None
    """``mask_body`` only: the encoding of ``value``; None (identity) once the body was decoded."""

    @property
    def total(self) -> int:
        """How many values were masked in all."""
        return sum(self.counts.values())


# --- profiles and field rules --------------------------------------------------------------------

_PATH_STEP = re.compile(r"\.\.([^.\[\]]+)|\.([^.\[\]]+)|\[\*\]")
Step = tuple[str, str]  # ("child", key) | ("descend", key) | ("any", "")


def compile_path(path: str) -> tuple[Step, ...]:
    """Parse a JSON path of the supported subset: ``$``, ``.key``, ``[*]``, ``..key``."""
    if not path.startswith("$"):
        raise ValueError(f"JSON path {path!r} must start with '$'")
    steps: list[Step] = []
    pos = 1
    while pos < len(path):
        m = _PATH_STEP.match(path, pos)
        if m is None:
            raise ValueError(f"JSON path {path!r}: only $, .key, [*] and ..key are supported (at {pos})")
        if m.group(1) is not None:
            steps.append(("descend", m.group(1)))
        elif m.group(2) is not None:
            steps.append(("child", m.group(2)))
        else:
            steps.append(("any", ""))
        pos = m.end()
    return tuple(steps)


@dataclass(frozen=True)
class MaskingProfile:
    """What to mask, and the limits.

    ``detectors`` are built-in names or ``Detector`` objects (default: every built-in);
    ``exempt`` names detectors this caller may see (a ``pii-readers`` group might be exempt
    from ``email`` and ``phone``). ``fields`` are JSON paths whose values are always masked
    whole; ``columns`` are SQL column names (any case) always masked whole by ``mask_rows``.
    Profiles usually come from policy (``masking.policy``).
    """

    detectors: tuple[Detector | str, ...] = tuple(BUILTIN_DETECTORS)
    exempt: frozenset[str] = frozenset()
    fields: tuple[str, ...] = ()
    columns: frozenset[str] = frozenset()
    max_bytes: int = 4 * 1024 * 1024
    max_depth: int = 64
    max_string: int = 1024 * 1024
    on_limit: OnLimit = "refuse"
    allow_binary: bool = False
    kubernetes_secrets: bool = True
    """Mask every value of Kubernetes Secrets (``masking.kubernetes``) whatever the detectors say."""
    active: tuple[Detector, ...] = field(init=False, repr=False, compare=False)
    """The detectors that run: ``detectors`` without the ``exempt`` ones."""
    paths: tuple[tuple[Step, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        resolved: list[Detector] = []
        for item in self.detectors:
            if isinstance(item, str):
                if item not in BUILTIN_DETECTORS:
                    raise ValueError(f"unknown detector {item!r}; built-in: {', '.join(BUILTIN_DETECTORS)}")
                item = BUILTIN_DETECTORS[item]
            resolved.append(item)
        if len({d.name for d in resolved}) != len(resolved):
            raise ValueError("two detectors have the same name")
        if self.on_limit not in ("truncate", "refuse"):
            raise ValueError(f"on_limit must be 'truncate' or 'refuse', not {self.on_limit!r}")
        if min(self.max_bytes, self.max_depth, self.max_string) < 1:
            raise ValueError("limits must be positive")
        object.__setattr__(self, "active", tuple(d for d in resolved if d.name not in self.exempt))
        object.__setattr__(self, "paths", tuple(compile_path(p) for p in self.fields))
        object.__setattr__(self, "columns", frozenset(c.lower() for c in self.columns))
        object.__setattr__(self, "exempt", frozenset(self.exempt))

    @property
    def _raw_safe(self) -> tuple[Detector, ...]:
        return _by_json_safety(self.active)[0]

    @property
    def _decoded_only(self) -> tuple[Detector, ...]:
        return _by_json_safety(self.active)[1]

    def _field_keys(self) -> set[str] | None:
        """The keys field rules end with, or None when a rule could match anything (``[*]``)."""
        keys: set[str] = set()
        for steps in self.paths:
            if not steps or steps[-1][0] == "any":
                return None
            keys.add(steps[-1][1])
        return keys


@lru_cache(maxsize=256)
def _by_json_safety(active: tuple[Detector, ...]) -> tuple[tuple[Detector, ...], tuple[Detector, ...]]:
    """``active`` split into raw-JSON-safe detectors and the others.

    Cached per detector set: on small documents rebuilding both tuples on every call shows.
    """
    return tuple(d for d in active if d.raw_json_safe), tuple(d for d in active if not d.raw_json_safe)


DEFAULT_PROFILE = MaskingProfile()


# --- finding values ------------------------------------------------------------------------------

Finding = tuple[int, int, Detector, bool]  # start, end, detector, merged with an overlapping one


def find_values(text: str, detectors: Sequence[Detector]) -> list[Finding]:
    """Every valid value of ``detectors`` in ``text``, sorted, overlaps resolved.

    Of overlapping findings the one starting first (then the longest) wins; a partial overlap
    is merged into one span (masked with the generic mask of the first detector).
    """
    return [(s, e, detectors[i], m) for s, e, i, m in _resolve(_candidates(text, detectors))]


def _candidates(
    text: str, detectors: Sequence[Detector], prefilter: bool = True
) -> list[tuple[int, int, int]]:
    """``(start, -end, detector index)`` of every valid value, sorted: first, then longest first.

    ``prefilter``: first tell apart the patterns that cannot match (``masking.prefilter``; exact,
    worth it on long texts); False: every pattern searches the whole text (the plain path)."""
    if not isinstance(detectors, tuple):
        detectors = tuple(detectors)
    widths, shortest = _widths(detectors)
    size = len(text)
    if size < shortest:  # short values (a statement's parameters, most cells): nothing can match
        return []
    shaped: str | None = None
    raw_known: KnownMatches | None = None
    shaped_known: KnownMatches | None = None
    if prefilter and size >= PREFILTER_FROM:
        from wardgate.masking.prefilter import known_matches, scan_plan

        if any(det.on_shape for det in detectors):
            shaped = shape(text)
        raw_known, shaped_known = known_matches(scan_plan(detectors), text, shaped)
    found: list[tuple[int, int, int]] = []
    for i, det in enumerate(detectors):
        if size < widths[i]:
            continue
        if det.on_shape and shaped is None:
            shaped = shape(text)
        spans = det.find(text, shaped, shaped_known if det.on_shape else raw_known)
        if spans:
            found += [(s, -e, i) for s, e in spans]
    found.sort()
    return found


@lru_cache(maxsize=256)
def _widths(detectors: tuple[Detector, ...]) -> tuple[tuple[int, ...], int]:
    """Each detector's shortest possible match, and the shortest of all: a text shorter than a
    detector's cannot hold one of its values (its patterns' minimum widths, as ``re`` computes
    them to fail early itself; ``on_shape`` text has the same length; checks only reject)."""
    widths = tuple(_shortest_match(det) for det in detectors)
    return widths, min(widths, default=0)


def _shortest_match(det: Detector) -> int:
    try:
        return min(_pattern_width(p) for p in det.patterns)
    except Exception:  # a pattern re cannot analyse (never for re's own syntax): assume any length
        return 0


# The built-in patterns' minimum widths, by ``_width_key``: what ``_parsed_width`` gives for them
# (tests/test_masking_engine.py checks every entry against it and that every built-in pattern has
# one). A pattern changed since, or a policy's own, has no entry and is parsed on first use. Parsing
# the built-ins again was ~1.4 ms of CPU in a cold start's first masked text.
_KNOWN_WIDTHS: dict[str, int] = {
    "a2596ffed390458792f4": 13,  # card
    "e4be9b14e376ad7871d3": 5,
    "42d2fefd38518fdc849c": 16,
    "f3e457ad9e030d52569c": 5,  # email
    "db9da93c26ba939acdcc": 2,  # phone
    "c9c3fa5287d534d3eb49": 12,
    "077910d2c0177b802a31": 12,
    "fa8edcad683bacb46342": 12,
    "604b901ed592abbafb99": 13,
    "34c20d6662f3a2d2d5f2": 11,  # us_ssn
    "aa30d0ee059778d3b35c": 11,
    "9c98609ad710d6b1e2a9": 12,  # iban
    "cb10c8de8735e0d8c6b9": 20,  # aws_access_key_id
    "c8cb1bf6671837cb67ae": 40,  # aws_secret_access_key
    "5025a7ddbcc4550039a9": 8,  # jwt
    "8756761e88c6926e570f": 27,  # pem_private_key
    "0f5141c7b591153663be": 34,  # api_token
    "156851afcece8aef86e3": 33,
    "709d7050f34d3b99a47a": 8,
    "1949beb23b13d3fc1212": 23,
    "9f72a9ed2a9a7486ecae": 6,  # ipv4
    "ac99f0ab3cd6d0713bdf": 2,  # ipv6
    "bb808527815d00707532": 14,
}


def _width_key(pattern: re.Pattern[str]) -> str:
    """The pattern's text and flags, digested: any change to either is another key."""
    return hashlib.sha256(f"{pattern.flags}:{pattern.pattern}".encode()).hexdigest()[:20]


def _pattern_width(pattern: re.Pattern[str]) -> int:
    known = _KNOWN_WIDTHS.get(_width_key(pattern))
    return known if known is not None else _parsed_width(pattern)


def _parsed_width(pattern: re.Pattern[str]) -> int:
    """The shortest text ``pattern`` can match, as ``re`` computes it to fail early itself."""
    return int(_re_parser.parse(pattern.pattern, pattern.flags).getwidth()[0])


def _resolve(found: list[tuple[int, int, int]]) -> list[tuple[int, int, int, bool]]:
    """Sorted candidates without overlaps: ``(start, end, detector index, merged)``."""
    out: list[tuple[int, int, int, bool]] = []
    last_end = -1
    for s, neg_e, i in found:
        e = -neg_e
        if s >= last_end:
            out.append((s, e, i, False))
            last_end = e
        elif e > last_end:
            ps, _, pi, _ = out[-1]
            out[-1] = (ps, e, pi, True)
            last_end = e
    return out


def _mask_for(det: Detector, value: str, merged: bool) -> str:
    if merged:
        return f"[masked:{det.name}]"
    return det.fixed_mask or det.mask(value)


def _count(counts: dict[str, int], name: str, n: int = 1) -> None:
    counts[name] = counts.get(name, 0) + n


def _splice(text: str, replacements: Sequence[tuple[int, int, str]], stop: int | None = None) -> str:
    """``text`` with sorted, non-overlapping ``(start, end, replacement)`` applied, cut at ``stop``."""
    parts: list[str] = []
    add = parts.append
    prev = 0
    for start, end, mask in replacements:  # a plain loop beats zip/map/chain here (fewer objects)
        add(text[prev:start])
        add(mask)
        prev = end
    add(text[prev:stop] if stop is None or stop > prev else "")
    return "".join(parts)


# --- text ----------------------------------------------------------------------------------------


def _utf8_length_over(text: str, limit: int) -> bool:
    if len(text) > limit:
        return True
    if len(text) * 4 <= limit or text.isascii():
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


def _char_index_of_byte(text: str, limit: int) -> int:
    """The number of whole characters of ``text`` that fit in ``limit`` UTF-8 bytes."""
    if text.isascii():
        return min(len(text), limit)
    return len(text.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", "ignore"))


def _mask_text_core(
    text: str, detectors: Sequence[Detector], counts: dict[str, int], cut: int | None = None
) -> str:
    """Mask ``text``; with ``cut``, keep only what starts before it (values across it stay whole)."""
    subject = text if cut is None else text[: cut + _SCAN_MARGIN]
    findings = find_values(subject, detectors)
    if cut is not None:
        findings = [f for f in findings if f[0] < cut]
        if findings and findings[-1][1] > cut:
            cut = findings[-1][1]
    for f in findings:
        _count(counts, f[2].name)
    return _splice(subject, [(s, e, _mask_for(d, subject[s:e], m)) for s, e, d, m in findings], cut)


@_without_gc
def mask_text(text: str, profile: MaskingProfile = DEFAULT_PROFILE) -> MaskResult[str]:
    """Mask every value of the profile's detectors in ``text``."""
    counts: dict[str, int] = {}
    if not _utf8_length_over(text, profile.max_bytes):
        return MaskResult(_mask_text_core(text, profile.active, counts), counts)
    if profile.on_limit == "refuse":
        raise MaskingRefused(f"text is larger than the masking limit of {profile.max_bytes} bytes")
    cut = _char_index_of_byte(text, profile.max_bytes)
    masked = _mask_text_core(text, profile.active, counts, cut)
    return MaskResult(masked + MARKER.format(limit=profile.max_bytes, unit="bytes"), counts, truncated=True)


# --- JSON: structure helpers ---------------------------------------------------------------------

_BRACKETS = re.compile(r"[\[\]{}]")
_DEPTH_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}
_ESCAPED_QUOTE_RUNS = re.compile(r'\\+"')
_AFTER_STRING = re.compile(r"[ \t\r\n]*:")
_NUMBER_BEFORE = frozenset("[,: \t\r\n-")
_JSON_SPACE = frozenset((" ", "\t", "\r", "\n"))
_SUSPICIOUS_ESCAPE = re.compile(r"\\u00([2-7][0-9A-Fa-f])")
_HARMLESS_ESCAPED = frozenset(("22", "26", "27", "3c", "3e", "5c", "7f"))


def _escaped_quotes(s: str) -> list[int]:
    """Positions of ``"`` characters that are escaped (inside strings), ascending."""
    if "\\" not in s or '\\"' not in s:  # the first test is a fast memchr
        return []
    return [m.end() - 1 for m in _ESCAPED_QUOTE_RUNS.finditer(s) if (m.end() - m.start() - 1) % 2 == 1]


class _Quotes:
    """Answers "is position p inside a JSON string?" for ascending positions, by quote parity."""

    def __init__(self, s: str) -> None:
        self.s = s
        self.escaped = _escaped_quotes(s)
        self.pos = 0
        self.count = 0

    def unescaped_between(self, a: int, b: int) -> int:
        n = self.s.count('"', a, b)
        if self.escaped:
            n -= bisect.bisect_left(self.escaped, b) - bisect.bisect_left(self.escaped, a)
        return n

    def inside(self, p: int) -> bool:
        """Whether ``p`` (not before the previous question's position) is inside a string."""
        self.count += self.unescaped_between(self.pos, p)
        self.pos = p
        return self.count % 2 == 1

    def closing(self, p: int) -> int:
        """The position of the quote that closes the string containing ``p`` (or len)."""
        s = self.s
        j = s.find('"', p)
        while j != -1 and self.escaped and _in_sorted(self.escaped, j):
            j = s.find('"', j + 1)
        return len(s) if j == -1 else j


def _in_sorted(items: list[int], x: int) -> bool:
    i = bisect.bisect_left(items, x)
    return i < len(items) and items[i] == x


def _json_depth(s: str, limit: int) -> int:
    """Maximum nesting of ``[`` and ``{`` outside strings (without parsing).

    Counts every bracket first (in C); only when that exceeds ``limit`` are brackets inside
    strings told apart, one by one.
    """
    brackets = _BRACKETS.findall(s)
    if not brackets:
        return 0
    rough = max(accumulate(map(_DEPTH_DELTA.__getitem__, brackets)))
    if rough <= limit:
        return rough
    quotes = _Quotes(s)
    depth = best = 0
    for m in _BRACKETS.finditer(s):
        if quotes.inside(m.start()):
            continue
        depth += _DEPTH_DELTA[m.group()]
        best = max(best, depth)
    return best


_NOT_BRACKETS = bytes(c for c in range(256) if chr(c) not in "[]{}")


def _check_depth(s: str, limit: int) -> None:
    """Refuse JSON nested deeper than ``limit``; cheap for ordinary documents.

    The brackets alone (in C), then innermost ``[]``/``{}`` pairs removed once per level: a
    balanced document of depth d is empty after d rounds. Only a document still not empty after
    ``limit`` rounds (deep, or with brackets inside strings) is measured exactly.
    """
    brackets = s.encode("ascii", "replace").translate(None, _NOT_BRACKETS)
    if len(brackets) <= limit:
        return
    for _ in range(limit):
        reduced = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if not reduced:
            return
        if len(reduced) == len(brackets):
            break
        brackets = reduced
    if _json_depth(s, limit) > limit:
        raise MaskingRefused(f"JSON nesting is deeper than the masking limit of {limit}")


def _mask_whole(value: Any, max_depth: int) -> Any:
    """A value masked whole by type (field and column rules), keeping containers' shape."""
    if isinstance(value, dict | list):
        root: Any = {k: v for k, v in value.items()} if isinstance(value, dict) else list(value)
        stack: list[tuple[Any, int]] = [(root, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > max_depth:
                raise MaskingRefused(f"JSON nesting is deeper than the masking limit of {max_depth}")
            keys = list(node.keys()) if isinstance(node, dict) else range(len(node))
            for k in keys:
                child = node[k]
                if isinstance(child, dict):
                    node[k] = dict(child)
                    stack.append((node[k], depth + 1))
                elif isinstance(child, list):
                    node[k] = list(child)
                    stack.append((node[k], depth + 1))
                else:
                    node[k] = _mask_scalar(child)
        return root
    return _mask_scalar(value)


def _mask_scalar(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0
    if isinstance(value, float):
        return 0.0
    if isinstance(value, Decimal):
        return Decimal(0)
    if isinstance(value, bytes | bytearray | memoryview):
        return FIELD_MASK.encode()
    return FIELD_MASK


def _apply_fields(root: Any, profile: MaskingProfile, counts: dict[str, int]) -> Any:
    """Apply the profile's JSON-path rules to a parsed document; returns the (new) root."""
    holder = [root]  # so that "$" itself is a (container, key) location
    for steps in profile.paths:
        locations: list[tuple[Any, Any]] = [(holder, 0)]
        for kind, key in steps:
            nxt: list[tuple[Any, Any]] = []
            for container, k in locations:
                node = container[k]
                if kind == "child":
                    if isinstance(node, dict) and key in node:
                        nxt.append((node, key))
                elif kind == "any":
                    if isinstance(node, dict):
                        nxt.extend((node, kk) for kk in node)
                    elif isinstance(node, list):
                        nxt.extend((node, i) for i in range(len(node)))
                else:
                    nxt.extend(_descend(node, key))
            locations = nxt
        seen: set[tuple[int, Any]] = set()
        for container, k in locations:
            if (id(container), k) in seen:
                continue
            seen.add((id(container), k))
            container[k] = _mask_whole(container[k], profile.max_depth)
            _count(counts, FIELD)
    return holder[0]


def _descend(node: Any, key: str) -> Iterator[tuple[Any, Any]]:
    """Every ``(object, key)`` under ``node`` (itself included) whose object has ``key``."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if key in current:
                yield current, key
            stack.extend(v for v in current.values() if isinstance(v, dict | list))
        elif isinstance(current, list):
            stack.extend(v for v in current if isinstance(v, dict | list))


def _loads(s: str) -> Any:
    try:
        return json.loads(s)
    except RecursionError:
        raise MaskingRefused("JSON nesting is too deep to parse") from None


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=True)
    except RecursionError:
        raise MaskingRefused("JSON nesting is too deep to serialise") from None
    except (TypeError, ValueError) as exc:
        raise MaskingRefused(f"the document is not JSON-serialisable: {exc}") from None


def _needs_decoding(s: str) -> bool:
    """Whether ``s`` escapes a printable ASCII character (which could hide a value)."""
    if "\\" not in s or "\\u00" not in s:
        return False
    return any(m.group(1).lower() not in _HARMLESS_ESCAPED for m in _SUSPICIOUS_ESCAPE.finditer(s))


def _long_string_limit_pattern(limit: int) -> re.Pattern[str]:
    return re.compile(rf'"(?:[^"\\]|\\.){{{limit + 1},}}"')


def _long_strings(s: str, quotes: _Quotes, limit: int) -> list[tuple[int, int]]:
    """``(content_start, closing_quote)`` of every string value longer than ``limit``."""
    out = []
    for m in _long_string_limit_pattern(limit).finditer(s):
        start = m.start()
        if quotes.unescaped_between(0, start) % 2 == 0:  # an opening quote, not a closing one
            out.append((start + 1, m.end() - 1))
    return out


def _safe_cut(s: str, start: int, cut: int) -> int:
    """``cut`` moved back so that it does not split an escape sequence."""
    back = s.rfind("\\", max(start, cut - 6), cut)
    while back != -1:
        run = back
        while run > start and s[run - 1] == "\\":
            run -= 1
        if (back - run) % 2 == 0:  # this backslash starts an escape
            length = 6 if back + 1 < len(s) and s[back + 1] == "u" else 2
            return back if back + length > cut else cut
        back = s.rfind("\\", max(start, cut - 6), back)
    return cut


# --- JSON: masking -------------------------------------------------------------------------------


def _mask_json_encoded(
    s: str, detectors: Sequence[Detector], profile: MaskingProfile, counts: dict[str, int]
) -> str:
    """Mask JSON text as encoded: values in strings, sensitive bare numbers → 0, keys untouched."""
    quotes = _Quotes(s)
    truncations: list[tuple[int, int]] = []
    if len(s) > profile.max_string:
        longs = _long_strings(s, quotes, profile.max_string)
        if longs and profile.on_limit == "refuse":
            raise MaskingRefused(f"a JSON string is longer than the masking limit of {profile.max_string}")
        truncations = [(_safe_cut(s, a, a + profile.max_string), b) for a, b in longs]
    found = _candidates(s, detectors)
    if not found and not truncations:
        return s
    starts = [c[0] for c in found]
    ends = [-c[1] for c in found]
    which = [c[2] for c in found]
    merged: Iterable[bool] = repeat(False)
    if any(map(lt, starts[1:], ends)):  # a value starts before the previous one ends
        # rare (a look-alike inside a longer value): resolve overlaps in Python only then
        resolved = _resolve(found)
        starts = [f[0] for f in resolved]
        ends = [f[1] for f in resolved]
        which = [f[2] for f in resolved]
        merged = [f[3] for f in resolved]
    # quote parity before each finding (odd: inside a string), counted in C; built-in patterns
    # never match a quote, so a finding is wholly inside one string or wholly outside
    parity = list(accumulate(map(s.count, repeat('"'), [0, *starts[:-1]], starts)))
    escaped = quotes.escaped
    if escaped:
        parity = [q - bisect.bisect_left(escaped, p) for q, p in zip(parity, starts, strict=True)]
    fixed = [d.fixed_mask or None for d in detectors]  # None: the mask depends on the value
    replacements: list[tuple[int, int, str]] = []
    masked_by: list[int] = []  # detector indices, counted once at the end
    add = replacements.append
    note = masked_by.append
    after_match = _AFTER_STRING.match
    space = _JSON_SPACE
    for start, end, i, m, q in zip(starts, ends, which, merged, parity, strict=False):  # merged may repeat
        if q & 1:
            if s[end : end + 1] == '"':  # the value ends the string: a key if a colon follows
                c = s[end + 1 : end + 2]
                if c == ":" or (c in space and after_match(s, end + 1)):
                    continue
            elif after_match(s, quotes.closing(end) + 1):
                continue  # inside a key: keys are left as they are
            mask = fixed[i]
            if mask is None or m:
                mask = _mask_for(detectors[i], s[start:end], m)
        elif (start == 0 or s[start - 1] in _NUMBER_BEFORE) and s[start:end].isdigit():
            mask = "0"  # a bare JSON number
        else:  # not valid JSON around here: mask as text
            mask = _mask_for(detectors[i], s[start:end], m)
        add((start, end, mask))
        note(i)
    if truncations:
        replacements, masked_by = _apply_truncations(replacements, masked_by, truncations, profile.max_string)
    for i in dict.fromkeys(masked_by):  # list.count per detector (in C): cheaper than a Counter
        _count(counts, detectors[i].name, masked_by.count(i))
    return _splice(s, replacements)


def _apply_truncations(
    replacements: list[tuple[int, int, str]],
    pending: list[T],
    truncations: list[tuple[int, int]],
    limit: int,
) -> tuple[list[tuple[int, int, str]], list[T]]:
    """Merge string truncations into the replacements: values inside a cut part are dropped."""
    marker = MARKER.format(limit=limit, unit="characters")
    merged: list[tuple[int, int, str]] = []
    kept: list[T] = []
    ti = 0
    for (s, e, r), p in zip(replacements, pending, strict=True):
        while ti < len(truncations) and truncations[ti][1] <= s:
            merged.append((truncations[ti][0], truncations[ti][1], marker))
            ti += 1
        if ti < len(truncations):
            cut, close = truncations[ti]
            if cut <= s:
                continue  # in the part cut off
            if s < cut < e:  # a value across the cut: keep it whole, cut after it
                truncations[ti] = (e, close)
        merged.append((s, e, r))
        kept.append(p)
    merged.extend((cut, close, marker) for cut, close in truncations[ti:])
    merged.sort(key=lambda x: x[0])
    return merged, kept


def _mask_decoded_strings(root: Any, detectors: Sequence[Detector], counts: dict[str, int]) -> Any:
    """Run ``detectors`` on every string value of a parsed document (iteratively)."""
    if isinstance(root, str):
        return _mask_text_core(root, detectors, counts)
    if not isinstance(root, dict | list):  # a document that is one number, true, null...
        masked = _mask_decoded_strings([root], detectors, counts)
        return masked[0]
    stack = [root]
    while stack:
        node = stack.pop()
        keys = list(node.keys()) if isinstance(node, dict) else range(len(node))
        for k in keys:
            child = node[k]
            if isinstance(child, str):
                node[k] = _mask_text_core(child, detectors, counts)
            elif isinstance(child, dict | list):
                stack.append(child)
            elif (
                isinstance(child, int)
                and not isinstance(child, bool)
                and _masked_number(str(child), detectors, counts)
            ):
                node[k] = 0
    return root


NUMBER_DETECTORS = {"card": 12}
"""The built-in detectors that can match a bare number, and from how many digits: a result's
ids and counts skip the others (tests/test_masking_engine.py checks this table)."""


@lru_cache(maxsize=64)
def _number_detectors(detectors: tuple[Detector, ...]) -> tuple[tuple[Detector, int], ...]:
    """The detectors that may match a bare number, with the fewest digits they need."""
    return tuple(
        (det, NUMBER_DETECTORS[det.name] if BUILTIN_DETECTORS.get(det.name) is det else 1)
        for det in detectors
        if BUILTIN_DETECTORS.get(det.name) is not det or det.name in NUMBER_DETECTORS
    )


def _masked_number(digits: str, detectors: Sequence[Detector], counts: dict[str, int]) -> bool:
    for det, fewest in _number_detectors(tuple(detectors)):
        if len(digits) < fewest:
            continue
        if det.matches(digits):
            _count(counts, det.name)
            return True
    return False


def _mask_json_str(s: str, profile: MaskingProfile, counts: dict[str, int]) -> str:
    _check_depth(s, profile.max_depth)
    field_keys = profile._field_keys() if profile.paths else set()
    fields_may_apply = field_keys is None or any(f'"{k}"' in s for k in field_keys or ())
    decoded_only = profile._decoded_only
    if fields_may_apply or _needs_decoding(s):
        try:
            root = _loads(s)
        except ValueError:
            if fields_may_apply:
                raise MaskingRefused("the body is not valid JSON, so its field rules cannot apply") from None
            root = None
            decoded_only = ()  # not JSON: the encoded pass below is all that can be done
        else:
            if fields_may_apply:
                root = _apply_fields(root, profile, counts)
            s = _dumps(root)
    masked = _mask_json_encoded(s, profile._raw_safe, profile, counts)
    if decoded_only:
        masked = _dumps(_mask_decoded_strings(_loads(masked), decoded_only, counts))
    return masked


@overload
def mask_json(document: bytes, profile: MaskingProfile = ...) -> MaskResult[bytes]: ...
@overload
def mask_json(document: str, profile: MaskingProfile = ...) -> MaskResult[str]: ...
@overload
def mask_json(document: Any, profile: MaskingProfile = ...) -> MaskResult[Any]: ...
@_without_gc
def mask_json(document: Any, profile: MaskingProfile = DEFAULT_PROFILE) -> MaskResult[Any]:
    """Mask a JSON document: ``bytes`` (UTF-8) → ``bytes``, ``str`` → ``str``, parsed → parsed.

    Over ``max_bytes`` with ``on_limit="truncate"``, ``bytes`` and ``str`` come back as masked,
    truncated *text* (``truncated=True``); a parsed document over the limit is refused.
    """
    counts: dict[str, int] = {}
    if isinstance(document, bytes | bytearray | memoryview):
        raw = bytes(document)
        if len(raw) > profile.max_bytes:
            text, truncated = _truncated_text(raw, profile, counts)
            return MaskResult(text.encode("utf-8"), counts, truncated)
        try:
            s = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MaskingRefused(f"the JSON body is not valid UTF-8 (byte {exc.start})") from None
        return MaskResult(_encode(_mask_json_str(s, profile, counts)), counts)
    if isinstance(document, str):
        if _utf8_length_over(document, profile.max_bytes):
            text, truncated = _truncated_text(document, profile, counts)
            return MaskResult(text, counts, truncated)
        return MaskResult(_mask_json_str(document, profile, counts), counts)
    s = _dumps(document)
    if _utf8_length_over(s, profile.max_bytes):
        raise MaskingRefused(f"the document is larger than the masking limit of {profile.max_bytes} bytes")
    return MaskResult(_loads(_mask_json_str(s, profile, counts)), counts)


def _encode(s: str) -> bytes:
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: keep it escaped
        return json.dumps(json.loads(s), ensure_ascii=True).encode("ascii")


def _truncated_text(data: bytes | str, profile: MaskingProfile, counts: dict[str, int]) -> tuple[str, bool]:
    """Over-limit input as masked text cut at ``max_bytes`` (or ``MaskingRefused``)."""
    if profile.on_limit == "refuse":
        raise MaskingRefused(f"the body is larger than the masking limit of {profile.max_bytes} bytes")
    if isinstance(data, str):
        cut = _char_index_of_byte(data, profile.max_bytes)
        text = data[: cut + _SCAN_MARGIN]
    else:
        text = _decode_prefix(data[: profile.max_bytes + 4 * _SCAN_MARGIN])
        cut = _char_index_of_byte(text, profile.max_bytes)
    masked = _mask_text_core(text, profile.active, counts, cut)
    return masked + MARKER.format(limit=profile.max_bytes, unit="bytes"), True


def _decode_prefix(data: bytes) -> str:
    """UTF-8 text of a prefix of a body (a character cut at the end is dropped)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3 and exc.reason in (
            "unexpected end of data",
            "invalid continuation byte",
        ):
            try:
                return data[: exc.start].decode("utf-8")
            except UnicodeDecodeError:
                pass
        raise MaskingRefused(f"the text body is not valid UTF-8 (byte {exc.start})") from None


# --- SQL rows ------------------------------------------------------------------------------------


@_without_gc
def mask_rows(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], profile: MaskingProfile = DEFAULT_PROFILE
) -> MaskResult[list[tuple[Any, ...]]]:
    """Mask SQL result rows: ``columns`` rules mask a cell whole, detectors scan the rest.

    Strings are scanned as text, integers that are sensitive values (a card number stored as a
    number) become 0, JSON columns (dicts and lists) are masked as JSON, ``bytes`` are scanned
    when they are UTF-8 text and refused otherwise unless ``allow_binary``; dates, times,
    floats, decimals, UUIDs and booleans pass as they are. Rows come back as tuples.
    """
    counts: dict[str, int] = {}
    width = len(columns)
    table = rows if isinstance(rows, list) else list(rows)
    wrong = next((n for n in map(len, table) if n != width), None)
    if wrong is not None:
        raise ValueError(f"a row has {wrong} values for {width} columns")
    if not width:
        return MaskResult([() for _ in table], counts)
    # Column by column: one set of types per column (in C) says which checks its cells need, so
    # the common columns (numbers, dates, short texts) cost no Python work per cell.
    masked_columns: list[Sequence[Any]] = []
    text_columns: list[int] = []  # columns of strings (and NULLs): each text masked once, put back in C
    mixed: dict[int, list[Any]] = {}  # any other column with strings, by index
    scan: list[tuple[int, int]] = []  # (column, row) of the short string cells of mixed columns
    texts: list[str] = []
    for i, column in enumerate(zip(*table, strict=True)):
        kinds = set(map(type, column))
        if columns[i].lower() in profile.columns:
            masked_columns.append(_mask_rule_column(column, kinds, profile, counts))
        elif kinds <= _PASSING_TYPES or (
            kinds <= _NUMBER_COLUMN_TYPES and _short_numbers(column, kinds, profile)
        ):
            masked_columns.append(column)
        elif kinds <= _TEXT_COLUMN_TYPES:
            text_columns.append(i)
            masked_columns.append(column)
        else:
            masked_columns.append(
                mixed.setdefault(i, _mask_mixed_column(i, column, profile, counts, scan, texts))
            )
    if text_columns or texts:
        # Columns repeat their values (statuses, cities, names): each distinct text is masked once,
        # the short ones together in one pass; what a text masked is counted once per cell holding
        # it, and only the texts that changed are put back (a column holding none is kept as is).
        cells = [masked_columns[i] for i in text_columns]
        occurrences = Counter(chain(texts, *cells))
        occurrences.pop(None, None)
        short = [text for text in occurrences if len(text) <= profile.max_string]
        masked = _mask_many(short, profile.active, counts, [occurrences[text] for text in short])
        changed = {text: new for text, new in zip(short, masked, strict=True) if new != text}
        if len(short) < len(occurrences):  # too long to scan with the rest: alone, maybe cut or refused
            for text, times in occurrences.items():
                if len(text) > profile.max_string:
                    found: dict[str, int] = {}
                    changed[text] = _mask_string_cell(text, profile, found)
                    for name, n in found.items():
                        _count(counts, name, n * times)
        if changed:
            for i, values in zip(text_columns, cells, strict=True):
                masked_columns[i] = list(map(changed.get, values, values))  # get(text, text)
            for (c, r), text in zip(scan, texts, strict=True):
                mixed[c][r] = changed.get(text, text)
    return MaskResult(list(zip(*masked_columns, strict=True)), counts)


def _mask_rule_column(
    column: Sequence[Any], kinds: set[type], profile: MaskingProfile, counts: dict[str, int]
) -> list[Any]:
    """A column a rule masks whole: every value but NULL, by type."""
    if kinds <= _TEXT_COLUMN_TYPES:
        masked = [None if value is None else FIELD_MASK for value in column]
    else:
        masked = [None if value is None else _mask_whole(value, profile.max_depth) for value in column]
    found = len(column) - column.count(None)
    if found:
        _count(counts, FIELD, found)
    return masked


def _short_numbers(column: Sequence[Any], kinds: set[type], profile: MaskingProfile) -> bool:
    """Whether the integers of a column are all too short for any detector that matches numbers."""
    fewest = min((n for _, n in _number_detectors(profile.active)), default=None)
    if fewest is None:
        return True
    if fewest < 2:
        return False
    numbers = [value for value in column if type(value) is int] if len(kinds) > 1 else column
    bound = 10 ** (fewest - 2)  # fewer digits than ``fewest``, a minus sign included
    return not numbers or (-bound < min(numbers) and max(numbers) < bound)


def _mask_mixed_column(
    index: int,
    column: Sequence[Any],
    profile: MaskingProfile,
    counts: dict[str, int],
    scan: list[tuple[int, int]],
    texts: list[str],
) -> list[Any]:
    """Any other column, cell by cell: short strings join the scan, the rest ``_mask_cell``."""
    masked = list(column)
    for r, value in enumerate(column):
        if type(value) in _PASSING_TYPES:
            continue
        if isinstance(value, str) and len(value) <= profile.max_string:
            scan.append((index, r))
            texts.append(value)
        else:
            masked[r] = _mask_cell(value, profile, counts)
    return masked


_PASSING_TYPES = frozenset((type(None), bool, float, Decimal, datetime, date, time, UUID, timedelta))
"""Cell types that ``_mask_cell`` returns as they are (no detector can find anything in them)."""
_NUMBER_COLUMN_TYPES = _PASSING_TYPES | {int}
_TEXT_COLUMN_TYPES = frozenset((str, type(None)))
_CELL_SEPARATOR = "\n\x00\n"  # no detector's value contains it: a line break around a NUL


def _mask_many(
    texts: list[str],
    detectors: Sequence[Detector],
    counts: dict[str, int],
    weights: Sequence[int] | None = None,
) -> list[str]:
    """``_mask_text_core`` on each of ``texts``, with the patterns run once over all of them;
    ``weights[i]``: how many times what ``texts[i]`` masked is counted (the cells holding it).

    A result of 100 rows has hundreds of short cells; scanning each alone costs every pattern
    once per cell. Their candidates are found in the joined text and given back to their cells;
    a candidate that reaches into a separator (it could not exist in the cell alone) sends the
    cells it touches to be scanned alone, so the result is the same as cell by cell.
    """
    joined = _CELL_SEPARATOR.join(texts)
    starts = list(accumulate(map(len(_CELL_SEPARATOR).__add__, map(len, texts[:-1])), initial=0))
    per_cell: dict[int, list[tuple[int, int, int]]] = {}
    alone: set[int] = set()
    for s, neg_e, i in _candidates(joined, detectors):
        cell = bisect.bisect_right(starts, s) - 1
        base = starts[cell]
        if -neg_e > base + len(texts[cell]) or s >= base + len(texts[cell]):
            alone.update(range(cell, bisect.bisect_right(starts, -neg_e - 1)))
        else:
            per_cell.setdefault(cell, []).append((s - base, neg_e + base, i))
    out = list(texts)
    for cell, found in per_cell.items():
        if cell in alone:
            continue
        text = texts[cell]
        weight = 1 if weights is None else weights[cell]
        replacements = []
        for s, e, i, merged in _resolve(found):
            _count(counts, detectors[i].name, weight)
            replacements.append((s, e, _mask_for(detectors[i], text[s:e], merged)))
        out[cell] = _splice(text, replacements)
    for cell in alone:
        found_alone: dict[str, int] = {}
        out[cell] = _mask_text_core(texts[cell], detectors, found_alone)
        for name, n in found_alone.items():
            _count(counts, name, n * (1 if weights is None else weights[cell]))
    return out


def _mask_cell(value: Any, profile: MaskingProfile, counts: dict[str, int]) -> Any:
    if value is None or isinstance(value, bool | float | Decimal | datetime | date | time):
        return value
    if isinstance(value, str):
        return _mask_string_cell(value, profile, counts)
    if isinstance(value, int):
        return 0 if _masked_number(str(value), profile.active, counts) else value
    if isinstance(value, dict | list):
        result = mask_json(value, profile)
        for name, n in result.counts.items():
            _count(counts, name, n)
        return result.value
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            if profile.allow_binary:
                return value
            raise MaskingRefused("a binary column value cannot be masked") from None
        return _mask_string_cell(text, profile, counts).encode("utf-8")
    return value


def _mask_string_cell(value: str, profile: MaskingProfile, counts: dict[str, int]) -> str:
    if len(value) <= profile.max_string:
        return _mask_text_core(value, profile.active, counts)
    if profile.on_limit == "refuse":
        raise MaskingRefused(f"a column value is longer than the masking limit of {profile.max_string}")
    masked = _mask_text_core(value, profile.active, counts, profile.max_string)
    return masked + MARKER.format(limit=profile.max_string, unit="characters")


# --- HTTP bodies ---------------------------------------------------------------------------------

_BINARY_TYPES = ("image/", "audio/", "video/", "font/", "model/")
_BINARY_EXACT = frozenset(
    (
        "application/octet-stream",
        "application/pdf",
        "application/zip",
        "application/gzip",
        "application/x-gzip",
        "application/x-tar",
        "application/protobuf",
        "application/x-protobuf",
        "application/grpc",
        "application/msgpack",
        "application/x-msgpack",
        "application/cbor",
        "application/wasm",
    )
)
_TEXT_EXACT = frozenset(
    (
        "application/xml",
        "application/javascript",
        "application/ecmascript",
        "application/x-www-form-urlencoded",
        "application/yaml",
        "application/x-yaml",
        "application/graphql",
        "application/x-ndjson",
        "application/jsonl",
        "application/sql",
        "application/csv",
    )
)


def _media_type(content_type: str) -> tuple[str, str]:
    """``(type/subtype, charset)`` of a Content-Type header value, lower-cased."""
    media, _, params = content_type.partition(";")
    charset = "utf-8"
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"').lower()
    return media.strip().lower(), charset


def _kind(media: str) -> str:
    if media == "application/json" or media.endswith("+json"):
        return "json"
    if media.startswith("text/") or media in _TEXT_EXACT or media.endswith("+xml"):
        return "text"
    if media.startswith(_BINARY_TYPES) or media in _BINARY_EXACT:
        return "binary"
    return "unknown"


def _decompress(body: bytes, encoding: str | None, limit: int) -> tuple[bytes, bool]:
    """Decode ``Content-Encoding`` layers; ``(data, complete)``, at most ``limit`` bytes kept."""
    layers = [e.strip().lower() for e in (encoding or "").split(",") if e.strip()]
    data = body
    complete = True
    for layer in reversed(layers):
        if layer == "identity":
            continue
        if layer in ("gzip", "x-gzip", "deflate"):
            data, done = _inflate(data, layer, limit)
        elif layer == "br":
            data, done = _unbrotli(data, limit)
        else:
            raise MaskingRefused(f"cannot decode Content-Encoding {layer!r} to mask the body")
        complete = complete and done
    return data, complete


def _inflate(data: bytes, layer: str, limit: int) -> tuple[bytes, bool]:
    attempts = [31] if layer != "deflate" else [15, -15]  # deflate: zlib-wrapped, or raw as some send
    for wbits in attempts:
        try:
            out = bytearray()
            rest = data
            while rest:
                engine = zlib.decompressobj(wbits)
                out += engine.decompress(rest, limit + 1 - len(out))
                if len(out) > limit:
                    return bytes(out[:limit]), False
                if not engine.eof:
                    if engine.unconsumed_tail:
                        return bytes(out[:limit]), False
                    raise MaskingRefused(f"the {layer} body is truncated")
                rest = engine.unused_data if wbits == 31 else b""  # gzip may have several members
            return bytes(out), True
        except zlib.error:
            continue
    raise MaskingRefused(f"the body is not valid {layer} data")


def _unbrotli(data: bytes, limit: int) -> tuple[bytes, bool]:
    try:
        import brotli  # optional: br bodies are refused without it
    except ImportError:
        raise MaskingRefused("cannot decode a br (brotli) body: the brotli module is not installed") from None
    try:
        out: bytes = brotli.decompress(data)
    except Exception as exc:  # brotli raises its own error type
        raise MaskingRefused(f"the body is not valid br data: {exc}") from None
    return (out[:limit], False) if len(out) > limit else (out, True)


def _looks_textual(text: str) -> bool:
    return not any(c in text for c in "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f\x10\x7f")


@_without_gc
def mask_body(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None = None,
    profile: MaskingProfile = DEFAULT_PROFILE,
) -> MaskResult[bytes]:
    """Mask an HTTP body by its Content-Type, after decoding its Content-Encoding.

    The result's body is decoded (``content_encoding`` None): callers drop the
    Content-Encoding header and set Content-Length from the result. JSON is masked as JSON;
    ``text/*`` and other textual types, and bodies of unknown type that are UTF-8 text, as text
    (in their declared charset). Binary bodies are refused, or passed unchanged (still encoded)
    with ``allow_binary``.
    """
    media, charset = _media_type(content_type or "")
    kind = _kind(media)
    counts: dict[str, int] = {}
    if not body:
        return MaskResult(body, counts, content_type=content_type, content_encoding=content_encoding)
    if kind == "binary":
        if profile.allow_binary:
            return MaskResult(body, counts, content_type=content_type, content_encoding=content_encoding)
        raise MaskingRefused(f"a binary body ({media}) cannot be masked")
    data, complete = _decompress(body, content_encoding, profile.max_bytes + 4 * _SCAN_MARGIN)
    over = not complete or len(data) > profile.max_bytes
    if over and profile.on_limit == "refuse":
        raise MaskingRefused(f"the body is larger than the masking limit of {profile.max_bytes} bytes")
    try:
        codec = "utf-8" if charset in ("utf-8", "utf8", "us-ascii", "ascii") else charset
        "".encode(codec)
    except LookupError:
        raise MaskingRefused(f"unknown charset {charset!r}") from None
    if codec == "utf-8":
        try:
            text = (
                data.decode("utf-8")
                if not over
                else _decode_prefix(data[: profile.max_bytes + 4 * _SCAN_MARGIN])
            )
        except (UnicodeDecodeError, MaskingRefused):
            if kind == "unknown" and profile.allow_binary:
                return MaskResult(body, counts, content_type=content_type, content_encoding=content_encoding)
            reason = "binary" if kind == "unknown" else "not valid UTF-8"
            raise MaskingRefused(f"the body ({media or 'no content type'}) is {reason}") from None
    else:
        text = data.decode(codec, "replace")
    if kind == "unknown" and not _looks_textual(text):
        if profile.allow_binary:
            return MaskResult(body, counts, content_type=content_type, content_encoding=content_encoding)
        raise MaskingRefused(f"the body ({media or 'no content type'}) is binary")
    if over:
        cut = _char_index_of_byte(text, profile.max_bytes)
        masked = _mask_text_core(text, profile.active, counts, cut)
        masked += MARKER.format(limit=profile.max_bytes, unit="bytes")
        out_type = "text/plain; charset=utf-8" if kind == "json" or codec == "utf-8" else content_type
        return MaskResult(masked.encode(codec, "replace"), counts, True, out_type, None)
    if kind == "json":
        masked = _mask_json_str(text, profile, counts)
        out = _encode(masked) if codec == "utf-8" else masked.encode(codec, "replace")
    else:
        out = _mask_text_core(text, profile.active, counts).encode(codec, "replace")
    return MaskResult(out, counts, False, content_type, None)
