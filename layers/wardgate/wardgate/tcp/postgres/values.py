"""Masking of PostgreSQL result values as they are on the wire (DataRow), in text and binary format.

A :class:`ResultMasker` is built once per result (RowDescription, with the result formats the client
asked for in Bind) and masks its rows batch by batch with wardgate's masking engine, so that the
agent gets the same masks as through the Data API (``mask_rows``): column rules mask a value whole,
detectors scan the rest, each value by its type's family, the same way in both formats.

Families (type oid -> what is done; ``T`` text format, ``B`` binary format)
--------------------------------------------------------------------------
* text-like: text, varchar, bpchar, name, unknown, xml, and in ``T`` any type not listed here
  (enums, composites, ranges, hstore, citext...): the string is scanned like ``mask_rows`` scans a
  string (one ``mask_rows`` call for every string of the batch); a masked value is sent as the
  masked string (``B``: its UTF-8 bytes, which is also the binary format of these types).
* json, jsonb (``B`` jsonb: version byte 1, then the text): masked as JSON (``mask_json``), as
  ``mask_rows`` masks a JSON column (a card number that is a bare JSON number becomes ``0``, field
  rules apply), so the value stays valid JSON; a value that would have to be truncated is refused.
* int2, int4, int8, numeric: the number is scanned as ``mask_rows`` scans an int (a card number
  stored as a bigint); a numeric is scanned when it is a whole number (``4242424242424242.00``
  too); NaN and infinities pass. Masked: ``0`` (``T``) or the binary zero of the type. Columns
  whose type cannot hold enough digits for any active number detector (int2 and int4 with the
  built-in detectors: a card has 12 digits or more) are not looked at.
* inet, cidr: the address, in its text form, is scanned; masked: ``0.0.0.0``/``::`` (cidr:
  ``0.0.0.0/32``/``::/128``), same family (``B`` too). The engine's IP detectors leave loopback
  and unspecified addresses alone.
* bytea: ``T`` is hex (``\\x...``) or the legacy escape format; the bytes, when they are UTF-8,
  are scanned as text and a masked value is re-encoded (same text format; ``B`` raw bytes);
  bytes that are not UTF-8 are refused, or pass with ``profile.allow_binary``.
* arrays of the types of these families (``B``: ndim, has-null flag, element oid, dimensions,
  lower bounds, elements; ``T``: ``{...}`` with quoting, and ``[l:u]=`` when a lower bound is not
  1): each element is masked by its element type's family and the array is re-encoded (in
  ``T`` only the masked elements are rewritten, quoted as PostgreSQL quotes them). A ``T`` array
  that cannot be parsed is scanned as text.
* types that cannot carry a sensitive value pass untouched and unscanned in both formats: bool,
  float4, float8, date, time, timetz, timestamp, timestamptz, interval, uuid, oid, xid, xid8,
  cid, tid, pg_lsn, the reg* types, int2vector, oidvector, macaddr, macaddr8, "char" (one byte)
  and money (an amount grouped by the server's locale: no detector can match an intact
  identifier in ``$4,242,424,242,424,242.00``, and scanning it could only break the value), and
  arrays of them.
* any other type in ``B`` (composites, ranges, hstore, geometry, enums, user types) is refused
  when a row has a value for it: it cannot be decoded to be scanned, and is never passed unmasked.

Column rules (``profile.columns``) mask a non-NULL value whole, counted as ``FIELD`` per value like
``mask_rows``: text-like types and bytea become ``[masked]``; int2/int4/int8/numeric/float4/float8
and oid become zero, bool false (the engine's masks: a number 0, a boolean false); json and jsonb
keep their shape with every value inside masked (as ``mask_rows`` masks a parsed JSON column);
arrays of known element types keep their dimensions with each element masked so; every other
type becomes NULL.

Malformed values (lengths that do not add up, bad headers, text that is not UTF-8) raise
``MaskingRefused``; nothing else is ever raised for any bytes.
"""

from __future__ import annotations

import ipaddress
import json
import re
import struct
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeAlias

from wardgate.masking.engine import (
    FIELD,
    FIELD_MASK,
    MaskingProfile,
    MaskingRefused,
    _masked_number,
    _number_detectors,
    mask_json,
    mask_rows,
)

__all__ = ["ResultMasker"]

# --- type oids -----------------------------------------------------------------------------------

BOOL = 16
BYTEA = 17
CHAR = 18  # "char": one byte
NAME = 19
INT8 = 20
INT2 = 21
INT2VECTOR = 22
INT4 = 23
REGPROC = 24
TEXT = 25
OID = 26
TID = 27
XID = 28
CID = 29
OIDVECTOR = 30
JSON = 114
XML = 142
CIDR = 650
FLOAT4 = 700
FLOAT8 = 701
UNKNOWN = 705
MACADDR8 = 774
MONEY = 790
MACADDR = 829
INET = 869
BPCHAR = 1042
VARCHAR = 1043
DATE = 1082
TIME = 1083
TIMESTAMP = 1114
TIMESTAMPTZ = 1184
INTERVAL = 1186
TIMETZ = 1266
NUMERIC = 1700
VOID = 2278
UUID = 2950
PG_LSN = 3220
JSONB = 3802
XID8 = 5069
_REG_TYPES = (REGPROC, 2202, 2203, 2204, 2205, 2206, 3734, 3769, 4089, 4096, 4191)

_TEXT_LIKE = frozenset((TEXT, VARCHAR, BPCHAR, NAME, UNKNOWN, XML))
_JSON_TYPES = frozenset((JSON, JSONB))
_INT_WIDTH = {INT2: 2, INT4: 4, INT8: 8}
_INT_TEXT_MAX = {INT2: 6, INT4: 11, INT8: 20}  # the longest text of each ("-32768", ...)
_INET_TYPES = frozenset((INET, CIDR))
_PASS = frozenset(
    {BOOL, FLOAT4, FLOAT8, DATE, TIME, TIMETZ, TIMESTAMP, TIMESTAMPTZ, INTERVAL, UUID, OID, XID, XID8, CID}
    | {TID, PG_LSN, INT2VECTOR, OIDVECTOR, MACADDR, MACADDR8, CHAR, MONEY, VOID, *_REG_TYPES}
)
ARRAY_ELEMENT: dict[int, int] = {
    1009: TEXT,
    1015: VARCHAR,
    1014: BPCHAR,
    1003: NAME,
    143: XML,
    199: JSON,
    3807: JSONB,
    1005: INT2,
    1007: INT4,
    1016: INT8,
    1231: NUMERIC,
    1041: INET,
    651: CIDR,
    1001: BYTEA,
    1028: OID,
    1000: BOOL,
    1002: CHAR,
    1021: FLOAT4,
    1022: FLOAT8,
    1182: DATE,
    1183: TIME,
    1270: TIMETZ,
    1115: TIMESTAMP,
    1185: TIMESTAMPTZ,
    1187: INTERVAL,
    2951: UUID,
    791: MONEY,
    1040: MACADDR,
    775: MACADDR8,
    1010: TID,
    1011: XID,
    1012: CID,
    3221: PG_LSN,
    1008: REGPROC,
    2210: 2205,
    2211: 2206,
}
"""Array type oid -> element type oid, for the arrays this module decodes."""

# --- binary formats ------------------------------------------------------------------------------

_NUMERIC_HEAD = struct.Struct(">hhHH")  # ndigits, weight, sign, dscale
_NUMERIC_POS, _NUMERIC_NEG, _NUMERIC_NAN, _NUMERIC_PINF, _NUMERIC_NINF = (
    0x0000,
    0x4000,
    0xC000,
    0xD000,
    0xF000,
)
_NUMERIC_ZERO = _NUMERIC_HEAD.pack(0, 0, 0, 0)
_ARRAY_HEAD = struct.Struct(">iiI")  # ndim, has-null flag, element oid
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_MAX_DIMS = 6
_AF_INET, _AF_INET6 = 2, 3  # PGSQL_AF_INET, PGSQL_AF_INET6

_ZERO_TEXT = b"0"
_ZERO_BINARY = {
    INT2: b"\x00" * 2,
    INT4: b"\x00" * 4,
    INT8: b"\x00" * 8,
    OID: b"\x00" * 4,
    FLOAT4: b"\x00" * 4,  # +0.0
    FLOAT8: b"\x00" * 8,
    NUMERIC: _NUMERIC_ZERO,
}
_MASK_BYTES = FIELD_MASK.encode()
_NULL = "NULL"

_INT_TEXT = re.compile(r"-?[0-9]+")
_NUMERIC_TEXT = re.compile(r"(-?[0-9]+)(?:\.([0-9]+))?")
_NUMERIC_SPECIAL = frozenset(("NaN", "Infinity", "-Infinity"))
_BYTEA_ESCAPED = re.compile(rb"(?:[^\\]|\\\\|\\[0-3][0-7][0-7])*")
_BYTEA_ESCAPE = re.compile(rb"\\(\\|[0-3][0-7][0-7])")

# text-format arrays (array_out): an optional dimension decoration, then braces, commas and
# elements, quoted ("..." with \" and \\) or not (never containing whitespace, braces, commas,
# quotes or backslashes); an unquoted NULL (any case) is SQL NULL
_ARRAY_DIMS = re.compile(r"(?:\[-?[0-9]+:-?[0-9]+\])+=")
_ARRAY_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|([^{},"\\ \t\n\r\v\f]+)|([{},])', re.DOTALL)
_ARRAY_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)
_ARRAY_QUOTE_NEEDED = re.compile(r'[{},"\\ \t\n\r\v\f]')


def _count(counts: dict[str, int], name: str, n: int = 1) -> None:
    counts[name] = counts.get(name, 0) + n


# --- numeric -------------------------------------------------------------------------------------


def _numeric_parts(raw: bytes) -> tuple[str, str, str] | str:
    """A binary numeric as ``(sign, integer digits, fraction digits to dscale)``, or its special text."""
    if len(raw) < 8:
        raise MaskingRefused("a binary numeric value is truncated")
    ndigits, weight, sign, dscale = _NUMERIC_HEAD.unpack_from(raw)
    if ndigits < 0 or len(raw) != 8 + 2 * ndigits:
        raise MaskingRefused("a binary numeric value has a wrong length")
    if sign == _NUMERIC_NAN:
        return "NaN"
    if sign == _NUMERIC_PINF:
        return "Infinity"
    if sign == _NUMERIC_NINF:
        return "-Infinity"
    if sign not in (_NUMERIC_POS, _NUMERIC_NEG) or dscale > 0x3FFF:
        raise MaskingRefused("a binary numeric value has an invalid sign or scale")
    digits = struct.unpack_from(f">{ndigits}H", raw, 8)
    if ndigits and max(digits) > 9999:
        raise MaskingRefused("a binary numeric value has an invalid digit")
    if weight >= 0:
        groups = [digits[i] if i < ndigits else 0 for i in range(weight + 1)]
        integer = (str(groups[0]) + "".join(f"{d:04d}" for d in groups[1:])).lstrip("0") or "0"
    else:
        integer = "0"
    fraction = ""
    if dscale:
        lead = "0000" * max(0, -weight - 1)
        fraction = (lead[:dscale] + "".join(f"{d:04d}" for d in digits[max(0, weight + 1) :]))[:dscale]
        fraction = fraction.ljust(dscale, "0")
    negative = sign == _NUMERIC_NEG and any(digits)
    return ("-" if negative else ""), integer, fraction


def _numeric_text(raw: bytes) -> str:
    parts = _numeric_parts(raw)
    if isinstance(parts, str):
        return parts
    sign, integer, fraction = parts
    return f"{sign}{integer}.{fraction}" if fraction else f"{sign}{integer}"


# --- inet ----------------------------------------------------------------------------------------


def _inet_parts(raw: bytes) -> tuple[int, int, int, bytes]:
    """``(family, bits, is_cidr flag, address)`` of a binary inet/cidr value, checked."""
    if len(raw) < 4:
        raise MaskingRefused("a binary inet value is truncated")
    family, bits, is_cidr, size = raw[0], raw[1], raw[2], raw[3]
    if family == _AF_INET:
        expected, max_bits = 4, 32
    elif family == _AF_INET6:
        expected, max_bits = 16, 128
    else:
        raise MaskingRefused(f"a binary inet value has an unknown address family {family}")
    if size != expected or len(raw) != 4 + size or bits > max_bits or is_cidr > 1:
        raise MaskingRefused("a binary inet value has a wrong length or prefix")
    return family, bits, is_cidr, raw[4:]


def _inet_text(raw: bytes, cidr: bool) -> str:
    """The text PostgreSQL shows for a binary inet/cidr value."""
    family, bits, _, address = _inet_parts(raw)
    if family == _AF_INET:
        text = str(ipaddress.IPv4Address(address))
        full = 32
    else:
        words = struct.unpack(">8H", address)
        tail = str(ipaddress.IPv4Address(address[12:]))
        if not any(words[:6]) and words[6]:
            text = f"::{tail}"  # IPv4-compatible, as PostgreSQL prints it
        elif not any(words[:5]) and words[5] == 0xFFFF:
            text = f"::ffff:{tail}"  # IPv4-mapped
        else:
            text = ipaddress.IPv6Address(address).compressed
        full = 128
    return f"{text}/{bits}" if cidr or bits != full else text


def _inet_zero_binary(raw: bytes) -> bytes:
    family, _, is_cidr, _ = _inet_parts(raw)
    if family == _AF_INET:
        return bytes((_AF_INET, 32, is_cidr, 4)) + b"\x00" * 4
    return bytes((_AF_INET6, 128, is_cidr, 16)) + b"\x00" * 16


# --- bytea ---------------------------------------------------------------------------------------


def _bytea_from_text(raw: bytes) -> tuple[bytes, bool]:
    """The bytes of a text-format bytea and whether it was hex (else the escape format)."""
    if raw.startswith(b"\\x"):
        try:
            return bytes.fromhex(raw[2:].decode("ascii")), True
        except ValueError:
            raise MaskingRefused("a bytea value is not valid hex") from None
    if _BYTEA_ESCAPED.fullmatch(raw) is None:
        raise MaskingRefused("a bytea value is neither hex nor escape format")
    return _BYTEA_ESCAPE.sub(_unescape_octet, raw), False


def _unescape_octet(m: re.Match[bytes]) -> bytes:
    group = m.group(1)
    return b"\\" if group == b"\\" else bytes((int(group, 8),))


def _bytea_hex(text: str) -> bytes:
    return b"\\x" + text.encode("utf-8").hex().encode("ascii")


def _bytea_escape(text: str) -> bytes:
    out = bytearray()
    for byte in text.encode("utf-8"):
        if byte == 0x5C:
            out += b"\\\\"
        elif 0x20 <= byte < 0x7F:
            out.append(byte)
        else:
            out += b"\\%03o" % byte
    return bytes(out)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


# --- arrays --------------------------------------------------------------------------------------


def _parse_binary_array(raw: bytes, element: int) -> tuple[int, tuple[int, ...], list[bytes | None]]:
    """``(ndim, dims and lower bounds, elements)`` of a binary array of ``element`` values."""
    size = len(raw)
    if size < 12:
        raise MaskingRefused("a binary array value is truncated")
    ndim, flags, oid = _ARRAY_HEAD.unpack_from(raw)
    if not 0 <= ndim <= _MAX_DIMS or flags not in (0, 1):
        raise MaskingRefused("a binary array value has an invalid header")
    if oid != element:
        raise MaskingRefused(f"a binary array value has elements of type oid {oid}, not {element}")
    pos = 12 + 8 * ndim
    if size < pos:
        raise MaskingRefused("a binary array value is truncated")
    bounds = struct.unpack_from(f">{2 * ndim}i", raw, 12)
    count = 1 if ndim else 0
    for dim in bounds[0::2]:
        if dim < 0:
            raise MaskingRefused("a binary array value has a negative dimension")
        count *= dim
        if count > size // 4:
            raise MaskingRefused("a binary array value has more elements than bytes")
    elements: list[bytes | None] = []
    append = elements.append
    unpack = _I32.unpack_from
    for _ in range(count):
        if pos + 4 > size:
            raise MaskingRefused("a binary array value is truncated")
        (length,) = unpack(raw, pos)
        pos += 4
        if length == -1:
            append(None)
            continue
        if length < 0 or pos + length > size:
            raise MaskingRefused("a binary array element has a wrong length")
        append(raw[pos : pos + length])
        pos += length
    if pos != size:
        raise MaskingRefused("a binary array value has bytes after its last element")
    return ndim, bounds, elements


def _binary_array(ndim: int, bounds: tuple[int, ...], element: int, elements: list[bytes | None]) -> bytes:
    has_null = any(e is None for e in elements)
    parts = [_ARRAY_HEAD.pack(ndim, 1 if has_null else 0, element), struct.pack(f">{2 * ndim}i", *bounds)]
    for e in elements:
        if e is None:
            parts.append(b"\xff\xff\xff\xff")
        else:
            parts.append(_I32.pack(len(e)))
            parts.append(e)
    return b"".join(parts)


Span = tuple[int, int, str | None]  # start, end, element text (None: NULL)


def _parse_text_array(text: str) -> list[Span] | None:
    """The elements of a text-format array, or None when ``text`` is not one as PostgreSQL writes it."""
    pos = 0
    dims = _ARRAY_DIMS.match(text)
    if dims is not None:
        pos = dims.end()
    if not text.startswith("{", pos) or not text.endswith("}"):
        return None
    depth = 0
    spans: list[Span] = []
    end = len(text)
    while pos < end:
        m = _ARRAY_TOKEN.match(text, pos)
        if m is None:
            return None
        pos = m.end()
        punct = m.group(3)
        if punct is not None:
            if punct == "{":
                depth += 1
            elif punct == "}":
                depth -= 1
                if depth == 0 and pos != end:
                    return None
            elif depth == 0:
                return None
            continue
        if depth == 0:
            return None
        quoted = m.group(1)
        if quoted is not None:
            spans.append((m.start(), pos, _ARRAY_UNESCAPE.sub(r"\1", quoted)))
        else:
            bare = m.group(2)
            spans.append((m.start(), pos, None if bare.upper() == _NULL else bare))
    return spans if depth == 0 else None


def _quote_element(value: str | None) -> str:
    """An array element as ``array_out`` writes it."""
    if value is None:
        return _NULL
    if value == "" or value.upper() == _NULL or _ARRAY_QUOTE_NEEDED.search(value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


# --- content masking of one value ----------------------------------------------------------------

Encoder: TypeAlias = bytes | Callable[[str], bytes]
"""What replaces a scanned string that was masked: fixed bytes, or a function of the masked string."""
Probe: TypeAlias = bytes | tuple[str, Encoder] | None
"""A value's first look: None (unchanged), its replacement, or a string to scan and its encoder."""


class _Context:
    """What every unit of one result needs from the profile."""

    def __init__(self, profile: MaskingProfile) -> None:
        self.profile = replace(profile, columns=frozenset()) if profile.columns else profile
        self.active = self.profile.active
        self.scan = bool(self.active)
        self.json = self.scan or bool(profile.paths)
        fewest = [n for _, n in _number_detectors(tuple(self.active))]
        self.fewest: int | None = min(fewest) if fewest else None
        self.allow_binary = profile.allow_binary
        self.rule_profile = MaskingProfile(
            detectors=(),
            fields=("$",),
            max_bytes=profile.max_bytes,
            max_depth=profile.max_depth,
            max_string=profile.max_string,
        )


class _Unit:
    """How a value of one type in one format (a column's, or an array's element) is masked."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx

    def probe(self, raw: bytes, counts: dict[str, int]) -> Probe:
        raise NotImplementedError


class _Text(_Unit):
    __slots__ = ()

    def probe(self, raw: bytes, counts: dict[str, int]) -> Probe:
        try:
            return raw.decode("utf-8"), _utf8
        except UnicodeDecodeError:
            raise MaskingRefused("a text value is not valid UTF-8") from None


class _Json(_Unit):
    __slots__ = ("prefix",)

    def __init__(self, ctx: _Context, jsonb_binary: bool) -> None:
        super().__init__(ctx)
        self.prefix = b"\x01" if jsonb_binary else b""

    def probe(self, raw: bytes, counts: dict[str, int]) -> Probe:
        text = _json_text(raw, self.prefix)
        result = mask_json(text, self.ctx.profile)
        if result.truncated:
            raise MaskingRefused("a JSON value is larger than the masking limit")
        for name, n in result.counts.items():
            _count(counts, name, n)
        if result.value == text:
            return None
        return self.prefix + _json_bytes(result.value)


def _json_text(raw: bytes, prefix: bytes) -> str:
    if prefix:
        if raw[:1] != prefix:
            raise MaskingRefused("a binary jsonb value has an unknown version")
        raw = raw[1:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MaskingRefused("a JSON value is not valid UTF-8") from None


def _json_bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: keep it escaped
        return json.dumps(json.loads(text), ensure_ascii=True).encode("ascii")


class _Integer(_Unit):
    __slots__ = ("fewest", "width", "zero")

    def __init__(self, ctx: _Context, oid: int, binary: bool) -> None:
        super().__init__(ctx)
        assert ctx.fewest is not None
        self.fewest = ctx.fewest
        self.width = _INT_WIDTH[oid] if binary else 0
        self.zero = _ZERO_BINARY[oid] if binary else _ZERO_TEXT

    def probe(self, raw: bytes, counts: dict[str, int]) -> Probe:
        if self.width:
            if len(raw) != self.width:
                raise MaskingRefused(f"a binary integer value has {len(raw)} bytes, not {self.width}")
            digits = str(int.from_bytes(raw, "big", signed=True))
            if len(digits) < self.fewest:
                return None
        else:
            if len(raw) < self.fewest:
                return None
            digits = raw.decode("latin-1")
            if _INT_TEXT.fullmatch(digits) is None:
                raise MaskingRefused("an integer value is not a number")
        return self.zero if _masked_number(digits, self.ctx.active, counts) else None


class _Numeric(_Unit):
    __slots__ = ("binary", "fewest")

    def __init__(self, ctx: _Context, binary: bool) -> None:
        super().__init__(ctx)
        assert ctx.fewest is not None
        self.fewest = ctx.fewest
        self.binary = binary

    def probe(self, raw: bytes, counts: dict[str, int]) -> Probe:
        if self.binary:
            parts = _numeric_parts(raw)
            if isinstance(parts, str):
                return None
            sign, integer, fraction = parts
        else:
            if len(raw) < self.fewest:
                return None
            text = raw.decode("latin-1")
            if text in _NUMERIC_SPECIAL:
                return None
            m = _NUMERIC_TEXT.fullmatch(text)
            if m is None:
                raise MaskingRefused("a numeric value is not a number")
            sign, integer, fraction = "", m.group(1), m.group(2) or ""
        if fraction.strip("0"):
            return None  # not a whole number: not an identifier stored as a number
        digits = sign + integer
        if len(digits) < self.fewest or not _masked_number(digits, self.ctx.active, counts):
            return None
        return _NUMERIC_ZERO if self.binary else _ZERO_TEXT


class _Inet(_Unit):
    __slots__ = ("binary", "cidr")

    def __init__(self, ctx: _Context, oid: int, binary: bool) -> None:
        super().__init__(ctx)
        self.binary = binary
        self.cidr = oid == CIDR

    def probe(self, raw: bytes, counts: dict[str, int]) -> Probe:
        if self.binary:
            return _inet_text(raw, self.cidr), _inet_zero_binary(raw)
        text = raw.decode("latin-1")
        v6 = ":" in text
        if self.cidr:
            return text, b"::/128" if v6 else b"0.0.0.0/32"
        return text, b"::" if v6 else b"0.0.0.0"


class _Bytea(_Unit):
    __slots__ = ("binary",)

    def __init__(self, ctx: _Context, binary: bool) -> None:
        super().__init__(ctx)
        self.binary = binary

    def probe(self, raw: bytes, counts: dict[str, int]) -> Probe:
        encoder: Encoder
        if self.binary:
            data, encoder = raw, _utf8
        else:
            data, hexed = _bytea_from_text(raw)
            encoder = _bytea_hex if hexed else _bytea_escape
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            if self.ctx.allow_binary:
                return None
            raise MaskingRefused("a binary (bytea) value cannot be masked") from None
        return (text, encoder) if self.ctx.scan else None


def _content_unit(oid: int, binary: bool, ctx: _Context) -> _Unit | None:
    """The unit masking values of ``oid`` by content; None when they pass (or are not known)."""
    if oid in _TEXT_LIKE:
        return _Text(ctx) if ctx.scan else None
    if oid in _JSON_TYPES:
        return _Json(ctx, binary and oid == JSONB) if ctx.json else None
    if oid in _INT_WIDTH:
        if ctx.fewest is None or ctx.fewest > _INT_TEXT_MAX[oid]:
            return None
        return _Integer(ctx, oid, binary)
    if oid == NUMERIC:
        return _Numeric(ctx, binary) if ctx.fewest is not None else None
    if oid in _INET_TYPES:
        return _Inet(ctx, oid, binary) if ctx.scan else None
    if oid == BYTEA:
        return None if ctx.allow_binary and not ctx.scan else _Bytea(ctx, binary)
    if oid in _PASS or binary or oid in ARRAY_ELEMENT:
        return None
    return _Text(ctx) if ctx.scan else None  # text format of a type not known here: scanned as text


def _known(oid: int) -> bool:
    return (
        oid in _TEXT_LIKE
        or oid in _JSON_TYPES
        or oid in _INT_WIDTH
        or oid in (NUMERIC, BYTEA)
        or oid in _INET_TYPES
        or oid in _PASS
    )


# --- column rules --------------------------------------------------------------------------------


def _rule_constant(oid: int, binary: bool) -> bytes | None:
    """A column rule's value for a scalar of ``oid`` (None: NULL); json is not handled here."""
    if oid in _TEXT_LIKE:
        return _MASK_BYTES
    if oid in _ZERO_BINARY:
        return _ZERO_BINARY[oid] if binary else _ZERO_TEXT
    if oid == BOOL:
        return b"\x00" if binary else b"f"
    if oid == BYTEA:
        return _MASK_BYTES if binary else _bytea_hex(FIELD_MASK)
    return None


class _Rule:
    """A column rule: every non-NULL value of the column masked whole."""

    __slots__ = ("array", "binary", "constant", "element", "json_prefix", "profile")

    def __init__(self, oid: int, binary: bool, ctx: _Context) -> None:
        self.binary = binary
        self.profile = ctx.rule_profile
        self.array = oid in ARRAY_ELEMENT
        self.element = ARRAY_ELEMENT.get(oid, oid)
        self.json_prefix: bytes | None = None
        if self.element in _JSON_TYPES:
            self.json_prefix = b"\x01" if binary and self.element == JSONB else b""
        self.constant = _rule_constant(self.element, binary)

    def scalar(self, raw: bytes) -> bytes | None:
        if self.json_prefix is None:
            return self.constant
        text = _json_text(raw, self.json_prefix)
        return self.json_prefix + _json_bytes(mask_json(text, self.profile).value)

    def apply(self, raw: bytes) -> bytes | None:
        if not self.array:
            return self.scalar(raw)
        if self.binary:
            ndim, bounds, elements = _parse_binary_array(raw, self.element)
            masked = [None if e is None else self.scalar(e) for e in elements]
            return _binary_array(ndim, bounds, self.element, masked)
        text = _decode(raw)
        spans = _parse_text_array(text)
        if spans is None:
            return None
        replacements: dict[int, bytes | None] = {}
        for k, (_, _, value) in enumerate(spans):
            if value is not None:
                replacements[k] = self.scalar(value.encode("utf-8"))
        return _splice_text_array(text, spans, replacements)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MaskingRefused("a text value is not valid UTF-8") from None


def _splice_text_array(text: str, spans: list[Span], replacements: dict[int, bytes | None]) -> bytes:
    parts: list[str] = []
    prev = 0
    for k in sorted(replacements):
        start, end, _ = spans[k]
        value = replacements[k]
        parts.append(text[prev:start])
        parts.append(_quote_element(None if value is None else value.decode("utf-8")))
        prev = end
    parts.append(text[prev:])
    return "".join(parts).encode("utf-8")


# --- arrays being masked -------------------------------------------------------------------------


class _ArrayJob:
    """An array value whose elements are being masked; re-encoded once they all are."""

    __slots__ = ("bounds", "element", "elements", "i", "ndim", "r", "replacements", "spans", "text")

    def __init__(self, r: int, i: int) -> None:
        self.r = r
        self.i = i
        self.replacements: dict[int, bytes | None] = {}
        self.ndim = 0
        self.bounds: tuple[int, ...] = ()
        self.element = 0
        self.elements: list[bytes | None] = []
        self.text = ""
        self.spans: list[Span] = []

    def encode(self) -> bytes:
        if self.spans:
            return _splice_text_array(self.text, self.spans, self.replacements)
        elements = self.elements
        for k, value in self.replacements.items():
            elements[k] = value
        return _binary_array(self.ndim, self.bounds, self.element, elements)


# --- displaying binary values --------------------------------------------------------------------

_EPOCH = datetime(2000, 1, 1)
_INT64_MAX, _INT64_MIN = 2**63 - 1, -(2**63)
_INT32_MAX, _INT32_MIN = 2**31 - 1, -(2**31)


def _float4_text(raw: bytes) -> str:
    (value,) = struct.unpack(">f", raw)
    if value != value or value in (float("inf"), float("-inf")):
        return _float_special(value)
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if struct.unpack(">f", struct.pack(">f", float(text)))[0] == value:
            return _float_clean(text)
    return _float_clean(repr(value))


def _float8_text(raw: bytes) -> str:
    (value,) = struct.unpack(">d", raw)
    if value != value or value in (float("inf"), float("-inf")):
        return _float_special(value)
    return _float_clean(repr(value))


def _float_special(value: float) -> str:
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _float_clean(text: str) -> str:
    return text[:-2] if text.endswith(".0") else text


def _micros_text(micros: int) -> str:
    seconds, fraction = divmod(micros, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    text = f"{hour:02d}:{minute:02d}:{second:02d}"
    return f"{text}.{fraction:06d}".rstrip("0") if fraction else text


def _date_text(raw: bytes) -> str:
    (days,) = _I32.unpack(raw)
    if days in (_INT32_MAX, _INT32_MIN):
        return "infinity" if days > 0 else "-infinity"
    return (_EPOCH + timedelta(days=days)).date().isoformat()


def _timestamp_text(raw: bytes, zone: str = "") -> str:
    (micros,) = _I64.unpack(raw)
    if micros in (_INT64_MAX, _INT64_MIN):
        return "infinity" if micros > 0 else "-infinity"
    moment = _EPOCH + timedelta(microseconds=micros)
    day_micros = (moment.hour * 3600 + moment.minute * 60 + moment.second) * 1_000_000 + moment.microsecond
    return f"{moment.date().isoformat()} {_micros_text(day_micros)}{zone}"


def _time_text(raw: bytes) -> str:
    (micros,) = _I64.unpack(raw)
    if not 0 <= micros <= 86_400_000_000:
        raise ValueError("time out of range")
    return _micros_text(micros)


def _checked(size: int, render: Callable[[bytes], str]) -> Callable[[bytes], str]:
    def checked(raw: bytes) -> str:
        if len(raw) != size:
            raise ValueError("wrong size")
        return render(raw)

    return checked


def _char_text(raw: bytes) -> str:
    if len(raw) > 1:
        raise ValueError("wrong size")
    if not raw:
        return ""
    return chr(raw[0]) if raw[0] < 0x80 else f"\\{raw[0]:03o}"


def _jsonb_text(raw: bytes) -> str:
    if raw[:1] != b"\x01":
        raise ValueError("unknown jsonb version")
    return raw[1:].decode("utf-8", "replace")


def _text_of(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


_RENDER: dict[int, Callable[[bytes], str]] = {
    BOOL: _checked(1, lambda raw: "t" if raw[0] else "f"),
    INT2: _checked(2, lambda raw: str(int.from_bytes(raw, "big", signed=True))),
    INT4: _checked(4, lambda raw: str(int.from_bytes(raw, "big", signed=True))),
    INT8: _checked(8, lambda raw: str(int.from_bytes(raw, "big", signed=True))),
    FLOAT4: _checked(4, _float4_text),
    FLOAT8: _checked(8, _float8_text),
    NUMERIC: _numeric_text,
    BYTEA: lambda raw: "\\x" + raw.hex(),
    CHAR: _char_text,
    JSON: _text_of,
    JSONB: _jsonb_text,
    INET: lambda raw: _inet_text(raw, False),
    CIDR: lambda raw: _inet_text(raw, True),
    UUID: _checked(16, lambda raw: str(uuid.UUID(bytes=raw))),
    DATE: _checked(4, _date_text),
    TIMESTAMP: _checked(8, _timestamp_text),
    TIMESTAMPTZ: _checked(8, lambda raw: _timestamp_text(raw, "+00")),
    TIME: _checked(8, _time_text),
    **{oid: _text_of for oid in _TEXT_LIKE},
    **{oid: _checked(4, lambda raw: str(int.from_bytes(raw, "big"))) for oid in (OID, XID, CID, *_REG_TYPES)},
    XID8: _checked(8, lambda raw: str(int.from_bytes(raw, "big"))),
}


def _render_array(raw: bytes, element: int) -> str:
    render = _RENDER[element]
    _, bounds, elements = _parse_binary_array(raw, element)
    items = [_quote_element(None if e is None else render(e)) for e in elements]
    if not items:
        return "{}"
    dims = bounds[0::2]
    for dim in reversed(dims[1:]):
        items = ["{" + ",".join(items[k : k + dim]) + "}" for k in range(0, len(items), dim)]
    text = "{" + ",".join(items) + "}"
    lowers = bounds[1::2]
    if any(lower != 1 for lower in lowers):
        text = "".join(f"[{lo}:{lo + dim - 1}]" for lo, dim in zip(lowers, dims, strict=True)) + "=" + text
    return text


def render_binary(oid: int, raw: bytes) -> str:
    """A binary-format value as text (PostgreSQL's text form where decoded, else ``<binary N bytes>``)."""
    try:
        render = _RENDER.get(oid)
        if render is not None:
            return render(raw)
        element = ARRAY_ELEMENT.get(oid)
        if element is not None and element in _RENDER:
            return _render_array(raw, element)
    except (ValueError, IndexError, OverflowError, struct.error, MaskingRefused):
        pass
    return f"<binary {len(raw)} bytes>"


# --- the result masker ---------------------------------------------------------------------------

_DATA_ERRORS = (ValueError, IndexError, KeyError, OverflowError, RecursionError, struct.error)
Row: TypeAlias = list[bytes | None]
Deferred: TypeAlias = tuple[int, int, int, Encoder, _ArrayJob | None, int]  # batch index, row, column, ...


class ResultMasker:
    """Masks the DataRow values of one result.

    Built once per RowDescription (and the result formats the client asked for in Bind): the plan of
    each column is made here, so that :meth:`mask` only touches the columns that need work.
    ``columns`` are ``(name, type_oid, format)`` with format 0 = text, 1 = binary, as they appear in
    the DataRows.
    """

    def __init__(self, columns: Sequence[tuple[str, int, int]], profile: MaskingProfile) -> None:
        ctx = _Context(profile)
        self._ctx = ctx
        self._names = [name for name, _, _ in columns]
        self._oids = [oid for _, oid, _ in columns]
        self._binary = [fmt != 0 for _, _, fmt in columns]
        self._width = len(columns)
        self._rules: list[tuple[int, _Rule]] = []
        self._text: list[int] = []  # text-like scalars: the hot path
        self._units: list[tuple[int, _Unit]] = []
        self._arrays: list[tuple[int, int, _Unit]] = []  # (column, element oid, element unit)
        self._refused: list[tuple[int, str]] = []
        for i, (name, oid, fmt) in enumerate(columns):
            binary = fmt != 0
            if name.lower() in profile.columns:
                self._rules.append((i, _Rule(oid, binary, ctx)))
                continue
            element = ARRAY_ELEMENT.get(oid)
            if element is not None:
                unit = _content_unit(element, binary, ctx)
                if unit is not None:
                    self._arrays.append((i, element, unit))
                continue
            if binary and not _known(oid):
                self._refused.append(
                    (
                        i,
                        f"binary-format values of type oid {oid} (column {name!r}) cannot be masked: "
                        "ask for text results",
                    )
                )
                continue
            unit = _content_unit(oid, binary, ctx)
            if isinstance(unit, _Text):
                self._text.append(i)
            elif unit is not None:
                self._units.append((i, unit))
        self._inert = not (self._rules or self._text or self._units or self._arrays or self._refused)

    @property
    def inert(self) -> bool:
        """True when no value of this result can ever be masked: rows may be forwarded untouched."""
        return self._inert

    def mask(self, rows: list[Row]) -> tuple[list[Row] | None, dict[str, int]]:
        """Mask a batch of rows (values as on the wire, None = NULL).

        Returns ``(None, counts)`` when no value changed, else ``(rows with masked values, counts)``;
        counts maps detector names (and ``FIELD`` for column rules) to the number of values masked.
        Raises ``MaskingRefused`` for a value that cannot be masked safely, and nothing else.
        """
        counts: dict[str, int] = {}
        if self._inert or not rows:
            return None, counts
        if set(map(len, rows)) != {self._width}:
            raise MaskingRefused(f"a row does not have {self._width} values")
        changed: dict[int, Row] = {}
        try:
            self._mask(rows, counts, changed)
        except MaskingRefused:
            raise
        except _DATA_ERRORS as exc:
            raise MaskingRefused(
                f"a value could not be decoded to be masked ({type(exc).__name__})"
            ) from None
        if not changed:
            return None, counts
        out = list(rows)
        for r, row in changed.items():
            out[r] = row
        return out, counts

    def _mask(self, rows: list[Row], counts: dict[str, int], changed: dict[int, Row]) -> None:
        def put(r: int, i: int, value: bytes | None) -> None:
            row = changed.get(r)
            if row is None:
                row = changed[r] = list(rows[r])
            row[i] = value

        for i, reason in self._refused:
            if any(row[i] is not None for row in rows):
                raise MaskingRefused(reason)
        for i, rule in self._rules:
            for r, row in enumerate(rows):
                raw = row[i]
                if raw is not None:
                    put(r, i, rule.apply(raw))
                    _count(counts, FIELD)

        batch: list[str] = []
        texts: list[tuple[int, list[int], int, list[str]]] = []
        for i in self._text:
            values = [row[i] for row in rows]
            present = [r for r, raw in enumerate(values) if raw is not None]
            try:
                strings = [raw.decode("utf-8") for raw in values if raw is not None]
            except UnicodeDecodeError:
                raise MaskingRefused(f"a value of column {self._names[i]!r} is not valid UTF-8") from None
            texts.append((i, present, len(batch), strings))
            batch += strings

        deferred: list[Deferred] = []
        jobs: list[_ArrayJob] = []
        for i, unit in self._units:
            probe = unit.probe
            for r, row in enumerate(rows):
                raw = row[i]
                if raw is None:
                    continue
                found = probe(raw, counts)
                if found is None:
                    continue
                if isinstance(found, bytes):
                    put(r, i, found)
                else:
                    deferred.append((len(batch), r, i, found[1], None, 0))
                    batch.append(found[0])
        for i, element, unit in self._arrays:
            binary = self._binary[i]
            for r, row in enumerate(rows):
                raw = row[i]
                if raw is not None:
                    self._array(r, i, raw, binary, element, unit, counts, batch, deferred, jobs, put)

        if not batch:
            self._finish(jobs, put)
            return
        masked = mask_rows([""] * len(batch), [batch], self._ctx.profile)
        masked_row = masked.value[0]
        for name, n in masked.counts.items():
            _count(counts, name, n)
        if masked.counts or max(map(len, batch)) > self._ctx.profile.max_string:
            for i, present, offset, strings in texts:
                for k, old in enumerate(strings):
                    new = masked_row[offset + k]
                    if new != old:
                        put(present[k], i, new.encode("utf-8"))
            for index, r, i, encoder, job, k in deferred:
                new = masked_row[index]
                if new == batch[index]:
                    continue
                value = encoder if isinstance(encoder, bytes) else encoder(new)
                if job is None:
                    put(r, i, value)
                else:
                    job.replacements[k] = value
        self._finish(jobs, put)

    @staticmethod
    def _finish(jobs: list[_ArrayJob], put: Callable[[int, int, bytes | None], None]) -> None:
        for job in jobs:
            if job.replacements:
                put(job.r, job.i, job.encode())

    def _array(
        self,
        r: int,
        i: int,
        raw: bytes,
        binary: bool,
        element: int,
        unit: _Unit,
        counts: dict[str, int],
        batch: list[str],
        deferred: list[Deferred],
        jobs: list[_ArrayJob],
        put: Callable[[int, int, bytes | None], None],
    ) -> None:
        job = _ArrayJob(r, i)
        values: list[bytes | None]
        if binary:
            job.ndim, job.bounds, job.elements = _parse_binary_array(raw, element)
            job.element = element
            values = job.elements
        else:
            text = _decode(raw)
            spans = _parse_text_array(text)
            if spans is None:  # not an array as PostgreSQL writes them: scanned as text
                deferred.append((len(batch), r, i, _utf8, None, 0))
                batch.append(text)
                return
            if not spans:
                return
            job.text, job.spans = text, spans
            values = [None if v is None else v.encode("utf-8") for _, _, v in spans]
        probe = unit.probe
        for k, value in enumerate(values):
            if value is None:
                continue
            found = probe(value, counts)
            if found is None:
                continue
            if isinstance(found, bytes):
                job.replacements[k] = found
            else:
                deferred.append((len(batch), r, i, found[1], job, k))
                batch.append(found[0])
        jobs.append(job)

    def displayed(self, row: list[bytes | None]) -> list[str | None]:
        """A (masked) row as text for the recording.

        Text-format values are decoded; binary ones are shown in their text form where this module
        decodes their type, else as ``<binary N bytes>``.
        """
        out: list[str | None] = []
        for value, oid, binary in zip(row, self._oids, self._binary, strict=False):
            if value is None:
                out.append(None)
            elif binary:
                out.append(render_binary(oid, value))
            else:
                out.append(value.decode("utf-8", "replace"))
        return out
