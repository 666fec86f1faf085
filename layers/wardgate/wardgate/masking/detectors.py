"""Detectors: the kinds of sensitive value the masking engine finds, each with its own check.

A ``Detector`` is a name, one or more compiled candidate patterns and, where the kind has one, a
validity check that turns a candidate into a span or rejects it, so that look-alikes are left
alone: a 16-digit order id that fails Luhn is not a card, ``999.1.1.1`` is not an address, an
IBAN whose mod-97 is not 1 is not an IBAN, ``pk_live_`` keys are publishable, a 40-character git
SHA is not an AWS secret.

Built-in detectors (``BUILTIN_DETECTORS``, in this order):

========================= ==================================================================
``card``                  13-19 digits, unseparated or grouped as cards are printed (4-4-4-4,
                          4-4-4-4-3, ..., 4-6-5, 4-6-4) with single spaces or single dashes;
                          Luhn; a known IIN range with a length it issues (Visa 4; Mastercard
                          51-55, 2221-2720; Amex 34, 37; Discover 6011, 644-649, 65; JCB
                          3528-3589; Diners 300-305, 36, 38; UnionPay 62; Maestro 50, 56-69).
``email``                 ``local@domain.tld``; a domain whose last label is a file extension
                          (``icon@2x.png``) is not an address.
``phone``                 E.164 (``+`` and 8-15 digits, or the count its country's numbers
                          have, optional single separators and parenthesised groups) and
                          North-American ``(555) 123-4567``, ``555-123-4567``,
                          ``555.123.4567``, ``555 123 4567`` (area code 2-9). Plain digit
                          runs, dates, versions and addresses are not phones.
``us_ssn``                ``AAA-GG-SSSS`` or ``AAA GG SSSS``; area 000, 666, 900-999, group 00
                          and serial 0000 are never issued, so never matched.
``iban``                  country code, check digits, BBAN with the country's length (about 70
                          countries), compact or in groups of four; mod-97 must be 1.
``aws_access_key_id``     ``AKIA``/``ASIA``/``AGPA``/``AIDA``/``AROA``/``ANPA``/``ANVA``/``AIPA``
                          and 16 base32 capitals.
``aws_secret_access_key`` 40 base64 characters with both cases, only within 64 characters
                          after (or 32 before) ``aws``, ``secret`` or ``key`` (any case) on
                          the same line (``"aws_secret_access_key": "..."`` included).
``jwt``                   three (or, JWE, five) base64url parts whose header decodes to a JSON
                          object with ``alg``.
``pem_private_key``       ``-----BEGIN ... PRIVATE KEY-----`` to the matching ``-----END``, or
                          to the end of the base64 body when the END line is missing.
``api_token``             GitHub ``ghp_ gho_ ghu_ ghs_ ghr_ github_pat_``, Slack ``xoxb- xoxp-
                          xoxa- xoxr- xoxs-``, Stripe ``sk_live_ sk_test_ rk_live_ rk_test_``
                          (never ``pk_``: publishable keys are public).
``ipv4``                  four decimal octets 0-255 without leading zeros, not part of a longer
                          dotted number (``1.2.3.4.5``) nor after the word ``version``;
                          loopback (``127.x.x.x``) and ``0.0.0.0`` are left alone.
``ipv6``                  validated with ``ipaddress``; compressed forms need two groups, so
                          ``::1`` and ``::`` (loopback, unspecified), ``[::2]`` slices and
                          ``std::x`` are left alone.
========================= ==================================================================

Policy-defined detectors: ``Detector.from_regex(name, pattern)`` and
``Detector.from_words(name, words)``.

Values among other numbers
--------------------------
A value may sit in a run of numbers separated by spaces (``ref 12345 4242 4242 4242 4242``,
``+1 212-555-9479 2026-01-05T10:44:00Z``, ``+44 20 7946 5167 978-2-294-30623-0``). The run is
read as words, a chain of numbers joined by ``-``, ``.`` or ``:`` (a date, a time, a version, an
ISBN) being one word. A card grouped by spaces, a spaced SSN and an E.164 number start and end
where words do, never inside a chain. A card grouped by spaces may start at any group of four in
the run (each is tried, with as many groups as stay valid), but not after a code with letters
(the groups of an IBAN); where two cards overlap, either may be the card, so both are masked as
one, unless the first is grouped as cards are printed and the second is not
(``4242 4242 4242 4242 2 times``: one card). An E.164 number ends after the last word that gives
it as many digits as its country's numbers have (``+1``: 11), or 8 to 15 where the country does
not fix them. The rest of the run is left as it is: a year, a timestamp or an ISBN next to a
value is not masked with it.

How detectors are written for speed and for JSON text
-----------------------------------------------------
Patterns run in C (``re``) over a whole document; Python only sees candidates. Every built-in
pattern starts with a literal (``eyJ``, ``@``, ``-----BEGIN``, ...) so ``re`` can skip to it
instead of trying every position, and puts its "not preceded by" check *after* that literal.
Digit-shaped detectors (``on_shape=True``) run over ``shape(text)``: the text with ASCII digits
turned into ``0`` and ASCII capitals into ``A`` (same length, same indices), so that a card
pattern can start with the literal ``0000000000000`` and an IBAN with ``AA00``; the validity
check then reads the real characters.

The engine also runs the built-ins over the *encoded* text of JSON documents (not each decoded
string), so the patterns accept what a JSON encoder produces: a value may follow an escape
(``\\n4111...``, ``\\u00a0john@...``), an AWS secret or a PEM body may contain ``\\/`` and
``\\n``, and no match starts inside an escape sequence or contains a quote. Detectors that cannot
promise this (``from_regex``) are flagged ``raw_json_safe=False`` and the engine runs them on
decoded string values instead.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import ipaddress
import json
import re
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from typing import Any

Span = tuple[int, int]
Validator = Callable[[str, int, int], Span | None]
"""``(text, start, end) -> span or None``: the real span of a valid value, or None."""

_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}\Z")

_SHAPE_SRC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SHAPE_DST = "0" * 10 + "A" * 26
_SHAPE_TABLE = str.maketrans(_SHAPE_SRC, _SHAPE_DST)
_SHAPE_BYTES = bytes.maketrans(_SHAPE_SRC.encode(), _SHAPE_DST.encode())


def shape(text: str) -> str:
    """``text`` with ASCII digits as ``0`` and ASCII capitals as ``A``: same length and indices.

    Non-ASCII characters become ``?`` (``str.translate`` is fast only on ASCII text; going
    through ``encode("ascii", "replace")`` keeps one character per code point).
    """
    if text.isascii() and len(text) > 8192:
        return text.translate(_SHAPE_TABLE)
    # short texts: str.translate has a fixed cost per call that bytes.translate has not
    return text.encode("ascii", "replace").translate(_SHAPE_BYTES).decode("ascii")


def _anchored(
    prefix: str, rest: str, before: str, *, escaped: bool = True, not_after: Sequence[str] = ()
) -> re.Pattern[str]:
    """``prefix`` (a literal, so ``re`` searches for it), then a check on the character before it.

    The match may start at the beginning of the text, after a character not in ``before``, or
    (``escaped``) right after a JSON escape such as ``\\n`` or ``\\u00a0``.
    """
    lit = re.escape(prefix)
    checks = [f"(?<!{before}{lit})"]
    if escaped:
        checks += [f"(?<=\\\\[nrtbf]{lit})", f"(?<=\\\\u[0-9A-Fa-f]{{4}}{lit})"]
    exclusions = "".join(f"(?<!{n}{lit})" for n in not_after)
    return re.compile(f"{lit}(?:{'|'.join(checks)}){exclusions}{rest}")


def _after_escape(text: str, i: int) -> bool:
    """Whether position ``i`` directly follows a JSON escape sequence (``\\n``, ``\\u00a0``)."""
    return (i > 1 and text[i - 2] == "\\") or (i > 5 and text[i - 6 : i - 4] == "\\u")


def _unescape_start(text: str, start: int, end: int) -> int:
    """Move ``start`` past a JSON escape sequence it sits inside (``\\n``, ``\\u00e9``)."""
    if start > 0 and text[start - 1] == "\\":
        if text[start] == "u" and start + 5 <= end:
            return start + 5
        return start + 1
    return start


class Detector:
    """A kind of sensitive value: candidate patterns, a validity check, a mask."""

    __slots__ = ("_rules", "description", "fixed_mask", "name", "on_shape", "raw_json_safe")

    def __init__(
        self,
        name: str,
        patterns: Sequence[re.Pattern[str] | tuple[re.Pattern[str], Validator | None]],
        *,
        validate: Validator | None = None,
        on_shape: bool = False,
        raw_json_safe: bool = True,
        description: str = "",
    ) -> None:
        if not _NAME.match(name):
            raise ValueError(f"detector name {name!r}: lower-case letters, digits, '_', '.', '-'")
        if not patterns:
            raise ValueError(f"detector {name!r} has no pattern")
        rules: list[tuple[re.Pattern[str], Validator | None, int | str, int | str]] = []
        for item in patterns:
            pattern, check = item if isinstance(item, tuple) else (item, validate)
            if "tail" in pattern.groupindex:  # the match, then the rest of the value (a lookahead)
                rules.append((pattern, check, 0, "tail"))
            else:
                group = pattern.groupindex.get("value", 0)
                rules.append((pattern, check, group, group))
        self.name = name
        self.fixed_mask: str | None = f"[masked:{name}]"
        """The mask when it does not depend on the value (None: call ``mask``)."""
        self._rules = tuple(rules)
        self.on_shape = on_shape
        self.raw_json_safe = raw_json_safe
        self.description = description

    def __repr__(self) -> str:
        return f"Detector({self.name!r})"

    @property
    def patterns(self) -> tuple[re.Pattern[str], ...]:
        """The candidate patterns (over ``shape(text)`` when ``on_shape``)."""
        return tuple(rule[0] for rule in self._rules)

    def find(
        self, text: str, shaped: str | None = None, known: Mapping[re.Pattern[str], int] | None = None
    ) -> list[Span]:
        """Spans of valid values in ``text`` (per pattern in order; the engine sorts and merges).

        ``shaped`` is ``shape(text)`` when the caller has it already (detectors share it).
        ``known``: what the engine's prefilter (``masking.prefilter``) found out about the
        patterns on this detector's subject: ``-1``, a pattern matches nowhere; ``i``, not before ``i``.
        """
        subject = text
        if self.on_shape:
            subject = shaped if shaped is not None else shape(text)
        out: list[Span] = []
        for pattern, validate, group, tail in self._rules:
            at = 0
            if known:
                at = known.get(pattern, 0)
                if at < 0:
                    continue
            # most patterns find nothing in a given text: one search (no iterator, no list) says
            # so; otherwise iterate from that first match (lookbehinds still see what precedes it)
            first = pattern.search(subject, at)
            if first is None:
                continue
            if group != tail:  # the match is a value's first group: every group is tried
                starts = [(m.start(), m.end(tail)) for m in pattern.finditer(subject, first.start())]
                out += self._overlapping(text, starts, validate)
                continue
            spans = [m.span(group) for m in pattern.finditer(subject, first.start())]
            if validate is None:
                out += [span for span in spans if span[0] < span[1]]
            else:
                out += [v for a, b in spans if a < b and (v := validate(text, a, b)) is not None]
        return out

    def _overlapping(self, text: str, candidates: list[Span], validate: Validator | None) -> list[Span]:
        """Values of a rule whose candidates may overlap (a value may start at any group of a
        run): every candidate is tried; the engine merges overlapping values into one."""
        if validate is None:
            return [span for span in candidates if span[0] < span[1]]
        return [v for a, b in candidates if a < b and (v := validate(text, a, b)) is not None]

    def matches(self, value: str) -> bool:
        """Whether the whole of ``value`` is one value of this kind."""
        return any(span == (0, len(value)) for span in self.find(value))

    def mask(self, value: str) -> str:
        """What replaces ``value`` in text and JSON strings (never a quote or a backslash)."""
        return f"[masked:{self.name}]"

    @classmethod
    def from_regex(
        cls, name: str, pattern: str | re.Pattern[str], *, flags: int = 0, description: str = ""
    ) -> Detector:
        """A policy-defined detector: every match of ``pattern`` (or of its group ``value``).

        Such patterns run on decoded text (JSON string values one by one), never on encoded JSON.
        """
        compiled = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, flags)
        if compiled.match(""):
            raise ValueError(f"detector {name!r}: the pattern matches the empty string")
        return cls(name, [compiled], raw_json_safe=False, description=description)

    @classmethod
    def from_words(
        cls, name: str, words: Iterable[str], *, case_insensitive: bool = True, description: str = ""
    ) -> Detector:
        """A policy-defined detector: any of ``words`` as a whole word (or phrase)."""
        items = sorted({w for w in words if w}, key=lambda w: (-len(w), w))
        if not items:
            raise ValueError(f"detector {name!r} has no words")
        if any('"' in w or "\\" in w for w in items):
            raise ValueError(f"detector {name!r}: words cannot contain quotes or backslashes")
        alternation = "|".join(re.escape(w) for w in items)
        pattern = re.compile(
            rf"(?:(?<![\w\\])|(?<=\\[nrtbf])|(?<=\\u[0-9A-Fa-f]{{4}}))(?:{alternation})(?!\w)",
            re.IGNORECASE if case_insensitive else 0,
        )
        return cls(name, [pattern], description=description)


# --- card ----------------------------------------------------------------------------------------

_DOUBLED = str.maketrans("0123456789", "0246813579")


def luhn(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits."""
    doubled = digits[-2::-2].translate(_DOUBLED)  # each digit as the digit sum of its double
    return (sum((digits[-1::-2] + doubled).encode()) - 48 * len(digits)) % 10 == 0


_13_TO_19 = range(13, 20)
_14_TO_19 = range(14, 20)
_16_TO_19 = range(16, 20)


def _card_network(digits: str) -> tuple[str, Container[int]] | None:
    """The card network whose IIN range ``digits`` starts in (four digits tell), and the lengths
    it issues; None: no network."""
    d1 = digits[0]  # prefixes are compared as strings of equal length
    if d1 == "4":
        return "visa", (13, 16, 19)
    p2 = digits[:2]
    if d1 == "3":
        if p2 in ("34", "37"):
            return "amex", (15,)
        if "3528" <= digits[:4] <= "3589":
            return "jcb", _16_TO_19
        if "300" <= digits[:3] <= "305" or p2 in ("36", "38"):
            return "diners", _14_TO_19
        return None
    if d1 == "2":
        return ("mastercard", (16,)) if "2221" <= digits[:4] <= "2720" else None
    if d1 == "5":
        if "51" <= p2 <= "55":
            return "mastercard", (16,)
        return ("maestro", _13_TO_19) if p2 == "50" or p2 >= "56" else None
    if d1 == "6":
        if digits.startswith("6011") or p2 == "65" or "644" <= digits[:3] <= "649":
            return "discover", _16_TO_19
        if p2 == "62":
            return "unionpay", _16_TO_19
        return "maestro", _13_TO_19
    return None


def card_brand(digits: str) -> str | None:
    """The card network whose IIN range and lengths ``digits`` fits, or None."""
    network = _card_network(digits)
    return network[0] if network is not None and len(digits) in network[1] else None


def _in_code(text: str, start: int) -> bool:
    """Whether the numbers before ``start`` (``start - 1`` is a space) follow letters in one word,
    as the groups of an IBAN do (``ES79 3585 5532 ...``): they are part of that code."""
    lo = max(0, start - 64)
    head = text[lo : start - 1].rstrip("0123456789 ")  # what precedes the run of numbers
    k = lo + len(head)  # where the run starts
    return (
        bool(head) and k < start - 1 and text[k] != " " and head[-1].isalpha() and not _after_escape(text, k)
    )


def _valid_card(text: str, start: int, end: int) -> Span | None:
    if text[start] not in "23456":  # cheap reject of epoch-ms timestamps and 1xxx ids
        return None
    value = text[start:end]
    if value.isdigit():
        return (start, end) if 13 <= len(value) <= 19 and card_brand(value) and luhn(value) else None
    # grouped, maybe followed by other numbers ("... 4242 2 times"): the longest valid prefix
    network = _card_network(value[:4])
    if network is None:
        return None
    lengths = network[1]
    sep = value[4]
    digits = value.replace(sep, "")
    count = len(digits)
    cut = len(value)
    while count >= 13:
        if count in lengths and luhn(digits[:count]):
            if sep == " " and start > 1 and text[start - 1] == " " and _in_code(text, start):
                return None
            return start, start + cut
        group = value.rfind(sep, 0, cut)  # drop the last group
        count -= cut - group - 1
        cut = group
    return None


_CARD_BEFORE = r"[\w.+\-]"
_PRINTED = frozenset(((4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4)))


def _printed(text: str, start: int, end: int) -> bool:
    """Whether the grouped card at ``text[start:end]`` is grouped as cards are printed."""
    value = text[start:end]
    return tuple(map(len, value.split(value[4]))) in _PRINTED


# a grouped card: a group of four, then groups of four and a last one of one to four (4-4-4-4,
# 4-4-4-4-3, 4-4-4-1, ...) or 4-6-4 / 4-6-5 (Diners, Amex); this is what follows the first group
_CARD_GROUPS = "(?:(?:0000{0}){{2,4}}0{{1,4}}|000000{0}0{{4,5}})"
# a number does not end inside a chain (2026-01-05, 1.2.3, 10:44, 12/26): that is a neighbour
_NOT_IN_CHAIN = r"(?!\w|[\-.:/]0)"
_STARS = str.maketrans("0123456789", "**********")


class _CardDetector(Detector):
    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fixed_mask = None

    def _overlapping(self, text: str, candidates: list[Span], validate: Validator | None) -> list[Span]:
        """Cards in a run of groups; of two that overlap, both are kept (the engine masks them as
        one: either may be the card, nothing of it may show) unless the first is grouped as cards
        are printed and the second is not: ``4242 4242 4242 4242 2`` is one card and a number."""
        out: list[Span] = []
        for span in super()._overlapping(text, candidates, validate):
            if out and span[0] < out[-1][1]:  # starts inside the previous card
                last = out[-1]
                if span[1] <= last[1] or (_printed(text, *last) and not _printed(text, *span)):
                    continue
            out.append(span)
        return out

    def mask(self, value: str) -> str:
        """Every digit but the last four becomes ``*``; separators and length are kept."""
        if value.isdigit():  # the usual case, without a loop in Python
            return value[:-4].translate(_STARS) + value[-4:]
        seen = 0
        cut = len(value)
        while cut > 0 and seen < 4:
            cut -= 1
            if value[cut].isdigit():
                seen += 1
        return value[:cut].translate(_STARS) + value[cut:]


CARD = _CardDetector(
    "card",
    [
        _anchored("0000000000000", r"0{0,6}(?!\w)", _CARD_BEFORE),
        # in a run of space-separated numbers ("ref 12345 4242 4242 4242 4242 2026") a card may
        # start at any group of four: the match is that group, the rest of the card a lookahead,
        # so that the next group is tried too when this one does not start a card
        _anchored("0000 ", f"(?=(?P<tail>{_CARD_GROUPS.format(' ')}{_NOT_IN_CHAIN}))", _CARD_BEFORE),
        # a dashed card is a whole chain of its own (not the end of 2026-4242-...)
        _anchored("0000-", _CARD_GROUPS.format("-") + r"(?!\w)", _CARD_BEFORE),
    ],
    validate=_valid_card,
    on_shape=True,
    description="payment card number (Luhn, IIN range and length)",
)


# --- US SSN --------------------------------------------------------------------------------------


def _valid_ssn(text: str, start: int, end: int) -> Span | None:
    value = text[start:end]
    area, group, serial = value[:3], value[4:6], value[7:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return None
    return start, end


US_SSN = Detector(
    "us_ssn",
    [
        _anchored("000-00-0000", r"(?!\w|-0)", r"[\w.+\-]"),
        _anchored("000 00 0000", _NOT_IN_CHAIN, r"[\w.+\-]"),
    ],
    validate=_valid_ssn,
    on_shape=True,
    description="US social security number outside the never-issued ranges",
)


# --- phone ---------------------------------------------------------------------------------------

_PHONE_END = r"(?!\w|[.\-]0)"
_E164_HEAD = (r"\+0[ .\-]", r"\+00[ .\-]", r"\+000[ .\-]")  # the E.164 pattern has these already


def _valid_nanp(text: str, start: int, end: int) -> Span | None:
    area = text[start + 1] if text[start] == "(" else text[start]
    return (start, end) if area in "23456789" else None


_E164_ANY = (8, 15)
_E164_LENGTHS: dict[str, tuple[int, int]] = {
    "1": (11, 11), "7": (11, 11), "27": (11, 11), "30": (12, 12), "31": (11, 11), "32": (10, 11),
    "33": (11, 11), "34": (11, 11), "41": (11, 11), "44": (11, 12), "45": (10, 10), "47": (10, 10),
    "48": (11, 11), "52": (12, 12), "55": (12, 13), "61": (11, 11), "65": (10, 10), "81": (11, 12),
    "86": (12, 13), "90": (12, 12), "91": (12, 12), "351": (12, 12),
}  # fmt: skip
"""Digits (country code included) of the numbers of countries whose numbering plan fixes them;
elsewhere an E.164 number has 8 to 15 digits. Country codes are prefix-free."""

_ENDS_NUMBER = frozenset(' "\\,;\n\t<)]}')  # after these, a number always ends (no need to look)


def _number_ends(text: str, end: int) -> bool:
    """Whether a number may end at ``end``: not inside a word nor inside a chain of numbers
    (``978-2-294``, ``1.2.3``, ``10:44``), which is a neighbour of its own."""
    if end >= len(text):
        return True
    c = text[end]
    if c in ".-:(":
        return end + 1 >= len(text) or text[end + 1] not in "0123456789("
    return not (c.isalnum() or c == "_")


def _e164_digits(value: str) -> int:
    """The digits of an E.164 candidate (``+`` first; the pattern only takes balanced
    parentheses, and ``(0)`` is a trunk prefix, not part of the number)."""
    digits = len(value) - value.count(" ") - value.count("-") - value.count(".") - 1
    if "(" in value:
        digits -= 2 * value.count("(") + value.count("(0)")
    return digits


def _valid_e164(text: str, start: int, end: int) -> Span | None:
    value = text[start:end]
    if value[1] == "0":
        return None
    digits = _e164_digits(value)
    if digits < 8:
        return None
    fewest, most = (
        _E164_LENGTHS.get(value[1])
        or _E164_LENGTHS.get(value[1:3])
        or _E164_LENGTHS.get(value[1:4])
        or _E164_ANY
    )
    if fewest <= digits <= most and (
        end == len(text) or text[end] in _ENDS_NUMBER or _number_ends(text, end)
    ):
        return start, end
    # a number next to others ("+44 20 7946 5167 978-2-294-30623-0", "+1 212 555 9479 2026"):
    # it ends where a space-separated word ends, with as many digits as its country's numbers
    # have (else, only if there is no such end, with 8 to 15)
    longest = -1
    at = end
    while digits >= 8:
        if digits <= 15 and _number_ends(text, at):
            if fewest <= digits <= most:
                return start, at
            if longest < 0:
                longest = at
        at = text.rfind(" ", start, at)
        if at < 0:
            break
        digits = _e164_digits(text[start:at])
    return (start, longest) if longest > 0 else None


PHONE = Detector(
    "phone",
    [
        (_anchored("+0", r"0*+(?:[ .\-]?(?:\(0++\)|0++)){0,7}+", r"[\w+]"), _valid_e164),
        (_anchored("000-000-0000", _PHONE_END, r"[\w.+]", not_after=_E164_HEAD), _valid_nanp),
        (_anchored("000.000.0000", _PHONE_END, r"[\w.+\-]", not_after=_E164_HEAD), _valid_nanp),
        (_anchored("000 000", r"[ \-]0000" + _PHONE_END, r"[\w.+\-]", not_after=_E164_HEAD), _valid_nanp),
        (_anchored("(000)", r" ?000[ .\-]0000" + _PHONE_END, r"\w", not_after=_E164_HEAD), _valid_nanp),
    ],
    on_shape=True,
    description="phone number: E.164 or North-American formats",
)


# --- IBAN ----------------------------------------------------------------------------------------

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
_IBAN_LETTERS = {chr(c): str(c - 55) for c in range(ord("A"), ord("Z") + 1)}


def iban_checksum_ok(compact: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN without spaces (upper case)."""
    moved = compact[4:] + compact[:4]
    numeric = "".join(_IBAN_LETTERS.get(ch, ch) for ch in moved)
    return numeric.isdigit() and int(numeric) % 97 == 1


def _valid_iban(text: str, start: int, end: int) -> Span | None:
    expected = IBAN_LENGTHS.get(text[start : start + 2])
    if expected is None:
        return None
    count = 0
    for i in range(start, end):  # where the country's length ends (spaces do not count)
        if text[i] != " ":
            count += 1
            if count == expected:
                if i + 1 < end and text[i + 1] != " ":
                    return None  # longer than the country's IBAN and not a separate group
                end = i + 1
                break
    else:
        return None
    compact = text[start:end].replace(" ", "")
    return (start, end) if iban_checksum_ok(compact) else None


IBAN = Detector(
    "iban",
    [_anchored("AA00", r"(?: ?[A0]{4}){2,7}(?: ?[A0]{1,3})?(?!\w)", r"\w")],
    validate=_valid_iban,
    on_shape=True,
    description="IBAN with the country's length and a valid mod-97 checksum",
)


# --- email ---------------------------------------------------------------------------------------

_EMAIL_DOMAIN = re.compile(
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,63}(?![A-Za-z0-9\-])"
)
_EMAIL_LOCAL_REVERSED = re.compile(r"[A-Za-z0-9._%+\-]{1,64}")
_EXTENSION_LIST = "png jpg jpeg gif svg webp bmp ico tif tiff css js mjs ts map json html htm xml txt pdf zip"
_FILE_EXTENSIONS = frozenset([*_EXTENSION_LIST.split(), "gz", "tar", "mp3", "mp4", "mov", "wav", "woff"])


def _valid_email(text: str, start: int, end: int) -> Span | None:
    if text[text.rindex(".", start, end) + 1 : end].lower() in _FILE_EXTENSIONS:
        return None
    local = _EMAIL_LOCAL_REVERSED.match(text[max(0, start - 70) : start][::-1])
    if local is None:
        return None
    local_start = start - local.end()
    if local_start and text[local_start - 1] == "\\":
        local_start = _unescape_start(text, local_start, start)
    while local_start < start and text[local_start] == ".":
        local_start += 1
    return (local_start, end) if local_start < start else None


EMAIL = Detector(
    "email",
    [_EMAIL_DOMAIN],
    validate=_valid_email,
    description="email address",
)


# --- IP addresses --------------------------------------------------------------------------------


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_VERSION_WORDS = ("version", "release", "build", "firmware")
_VERSION_SEPARATOR = r"[\s\"':=#v_-]"
# Not after a version word (any case) and at most four separators ("version 1.2.3.4",
# '"build": "10.0.0.1"'): re's lookbehinds have a fixed width, so one per word and count.
_NOT_AFTER_VERSION = "".join(
    f"(?<!{word}{_VERSION_SEPARATOR}{{{n}}})" for word in _VERSION_WORDS for n in range(5)
)


@functools.cache
def _ipv4_address() -> re.Pattern[str]:
    """The whole check of a candidate address, compiled by the first candidate: its twenty
    lookbehinds are a millisecond of every cold start otherwise. Loopback (127.x.x.x) and
    unspecified (0.0.0.0) addresses say nothing about a network."""
    return re.compile(
        rf"(?:(?<![\w.])|(?<=\\[nrtbf])|(?<=\\u[0-9A-Fa-f]{{4}}))(?=[0-9])(?i:{_NOT_AFTER_VERSION})"
        rf"(?!127\.|0\.0\.0\.0)(?:{_OCTET}\.){{3}}{_OCTET}\Z"
    )


def _valid_ipv4(text: str, start: int, end: int) -> Span | None:
    """The address whose first dot starts the candidate: its first octet is the 1-3 digits before.

    One search does every check (at most one position in the window can start an address: one
    after another digit is not at a boundary, nor after an escape, whose last character is not a
    digit or is part of ``\\uXXXX`` before it), so a refused address is not looked for again."""
    m = _ipv4_address().search(text, start - 3 if start > 3 else 0, end)
    if m is None:
        return None
    first = m.start()
    return (first, end) if first < start else None


IPV4 = Detector(
    "ipv4",
    [re.compile(r"\.0{1,3}\.0{1,3}\.0{1,3}(?!\w|\.0)")],
    validate=_valid_ipv4,
    on_shape=True,
    description="IPv4 address",
)

_HEX_COLON_REVERSED = re.compile(r"[0-9A-Fa-f:]{0,40}")
_HEX_COLON_DOT = re.compile(r"[0-9A-Fa-f:.]{0,45}")
_IPV6_BEFORE = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:.")


def _ipv6_span(text: str, start: int, end: int) -> Span | None:
    back = _HEX_COLON_REVERSED.match(text[max(0, start - 40) : start][::-1])
    first = _unescape_start(text, start - (back.end() if back else 0), end)
    forward = _HEX_COLON_DOT.match(text, end)
    last = forward.end() if forward else end
    while last > first and text[last - 1] in ".:" and text[last - 2 : last] != "::":
        last -= 1
    if first > 0 and text[first - 1] in _IPV6_BEFORE and not _after_escape(text, first):
        return None
    if last < len(text) and (text[last].isalnum() or text[last] in "_:"):
        return None
    candidate = text[first:last]
    groups = [g for g in candidate.split(":") if g]
    if len(groups) < 2:
        return None  # "::", "::1" (unspecified, loopback) and "a::" say nothing about a network
    try:
        address = ipaddress.IPv6Address(candidate)
    except ValueError:
        return None
    if address.is_loopback or address.is_unspecified:
        return None
    return first, last


IPV6 = Detector(
    "ipv6",
    [
        re.compile(r"::"),
        re.compile(r":(?<=[0-9A-Fa-f]:)(?:[0-9A-Fa-f]{1,4}:){6}[0-9A-Fa-f]{1,4}(?![0-9A-Za-z_:])"),
    ],
    validate=_ipv6_span,
    description="IPv6 address",
)


# --- cloud keys, tokens --------------------------------------------------------------------------

AWS_ACCESS_KEY_ID = Detector(
    "aws_access_key_id",
    [_anchored("A", r"(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)[A-Z2-7]{16}(?![A-Za-z0-9])", r"[A-Za-z0-9]")],
    description="AWS access key id",
)

_AWS_SECRET = re.compile(
    r"(?:(?<![A-Za-z0-9/+\\])|(?<=\\[nrtbf])|(?<=\\u[0-9A-Fa-f]{4}))"
    r"(?:[A-Za-z0-9+]|\\?/){40}(?![A-Za-z0-9/+=])"
)
_AWS_SECRET_RUN = re.compile(r"[A-Za-z0-9+/\\]{40}")  # what any candidate needs: 40 such characters
_AWS_CONTEXT_WORDS = tuple(re.compile(w) for w in ("aws", "secret", "key"))
_LINE_BREAK = re.compile(r'\n|\\n|\r|\\r|"\s*,')  # a line, or a JSON value, ends


class _AwsSecretDetector(Detector):
    """40 base64 characters, only near an AWS-key context on the same line."""

    __slots__ = ()

    def find(
        self, text: str, shaped: str | None = None, known: Mapping[re.Pattern[str], int] | None = None
    ) -> list[Span]:
        out: list[Span] = []
        lowered = text.lower() if text.isascii() else text.encode("ascii", "replace").decode().lower()
        hits = [m.start() for word in _AWS_CONTEXT_WORDS for m in word.finditer(lowered)]
        if not hits:
            return out
        hits.sort()
        windows: list[list[int]] = []
        for at in hits:  # candidates may start up to 64 + 50 characters after a context word
            lo, hi = max(0, at - 80), min(len(text), at + 160)
            if windows and lo <= windows[-1][1]:
                windows[-1][1] = hi
            else:
                windows.append([lo, hi])
        for lo, hi in windows:
            if _AWS_SECRET_RUN.search(text, lo, hi) is None:  # cheaper than the candidate pattern
                continue
            for m in _AWS_SECRET.finditer(text, lo, hi):
                start, end = m.span()
                if (
                    end < len(text)
                    and text[end] in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
                ):
                    continue
                value = text[start:end].replace("\\/", "/")
                if not (any(c.isupper() for c in value) and any(c.islower() for c in value)):
                    continue  # hex digests (git SHAs) are single-case
                near = hits[bisect.bisect_left(hits, start - 64) : bisect.bisect_left(hits, start)]
                near += hits[bisect.bisect_left(hits, end) : bisect.bisect_right(hits, end + 32)]
                if any(not _LINE_BREAK.search(text, min(at, start), max(at, end)) for at in near):
                    # the word is on the same line and, in JSON, in this value or its key
                    out.append((start, end))
        return out


AWS_SECRET_ACCESS_KEY = _AwsSecretDetector(
    "aws_secret_access_key",
    [_AWS_SECRET],
    description="AWS secret access key (40 base64 characters near aws/secret/key)",
)


def _jwt_header_ok(text: str, start: int, end: int) -> Span | None:
    header = text[start : text.index(".", start)]
    if len(header) > 4096:
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return None
    return (start, end) if isinstance(decoded, dict) and isinstance(decoded.get("alg"), str) else None


_B64URL = "[A-Za-z0-9_-]"
JWT = Detector(
    "jwt",
    [
        _anchored(
            "eyJ",
            rf"{_B64URL}{{2,}}+\.{_B64URL}++\.{_B64URL}*+(?:\.{_B64URL}*+\.{_B64URL}*+)?(?!{_B64URL})",
            r"[A-Za-z0-9_\-.]",
        )
    ],
    validate=_jwt_header_ok,
    description="JSON Web Token (header with alg)",
)

_PEM_LABEL = r"(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
PEM_PRIVATE_KEY = Detector(
    "pem_private_key",
    [
        re.compile(
            rf"-----BEGIN {_PEM_LABEL}"
            rf"(?:(?:[A-Za-z0-9+/=:,.()\- \t\r\n]|\\[nrt/]){{0,16384}}?-----END {_PEM_LABEL}"
            r"|(?:[A-Za-z0-9+/=\s]|\\[nrt/])*+)"
        )
    ],
    description="PEM private key block",
)


def _valid_slack(text: str, start: int, end: int) -> Span | None:
    return (start, end) if end - start >= 20 and any(c.isdigit() for c in text[start:end]) else None


def _valid_stripe(text: str, start: int, end: int) -> Span | None:
    start -= 1  # the pattern starts at "k_": the key starts at its "s" or "r"
    if start < 0 or text[start] not in "sr":
        return None
    if (
        start > 0
        and (text[start - 1].isalnum() or text[start - 1] in "_\\")
        and not _after_escape(text, start)
    ):
        return None
    return start, end


_TOKEN_END = r"(?![A-Za-z0-9_])"
API_TOKEN = Detector(
    "api_token",
    [
        _anchored("gh", r"[pousr]_[A-Za-z0-9]{30,251}" + _TOKEN_END, r"[A-Za-z0-9_\\]"),
        _anchored("github_pat_", r"[A-Za-z0-9_]{22,255}" + _TOKEN_END, r"[A-Za-z0-9_\\]"),
        (
            _anchored("xox", r"[abprs]-[A-Za-z0-9]++(?:-[A-Za-z0-9]++)++" + _TOKEN_END, r"[A-Za-z0-9_\\]"),
            _valid_slack,
        ),
        (re.compile(r"k_(?:live|test)_[A-Za-z0-9]{16,247}" + _TOKEN_END), _valid_stripe),
    ],
    description="GitHub, Slack and Stripe secret tokens",
)


BUILTIN_DETECTORS: dict[str, Detector] = {
    d.name: d
    for d in (
        CARD,
        EMAIL,
        PHONE,
        US_SSN,
        IBAN,
        AWS_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY,
        JWT,
        PEM_PRIVATE_KEY,
        API_TOKEN,
        IPV4,
        IPV6,
    )
}
"""The built-in detectors by name; a profile uses all of them unless told otherwise."""
