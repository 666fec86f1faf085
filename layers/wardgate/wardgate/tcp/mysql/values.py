"""Masking of MySQL result rows as they are on the wire, in the text and the binary protocol.

A :class:`ResultMasker` is built once per result (its column definitions, and whether its rows are
text-protocol rows (COM_QUERY) or binary-protocol rows (prepared statements)) and masks its rows
with wardgate's masking engine, so that the agent gets the masks it gets through the Data API
(``mask_rows``) and the PostgreSQL listener (``tcp.postgres.values``): column rules mask a value
whole, detectors scan the rest, each value by its type's family, alike in both protocols.

Families (column type -> what is done)
--------------------------------------
* strings (CHAR, VARCHAR, the TEXT/BLOB types, ENUM, SET) in a text character set: the string is
  scanned as ``mask_rows`` scans a string (one ``mask_rows`` call for every string of a batch of
  rows); a masked value is sent back in the column's character set. The character sets read are
  the UTF-8 family (utf8mb3, utf8mb4, every collation of them, MariaDB's NO PAD and UCA 14.0 ones)
  and latin1 and ascii (read as ISO 8859-1, which gives back every byte as it was); a value in
  any other character set is refused, since it cannot be read to be scanned. A masked value that
  cannot be written in its column's character set (a truncation marker in latin1) is refused.
* binary strings (character set 63: BINARY, VARBINARY, BLOB), as the PostgreSQL listener treats
  bytea: bytes that are UTF-8 are scanned as text and a masked value is sent as UTF-8; bytes that
  are not UTF-8 are refused, or pass with ``profile.allow_binary``.
* JSON (MySQL's JSON type; MariaDB's JSON is a LONGTEXT and is a string here): masked as JSON
  (``mask_json``: a card number that is a bare JSON number becomes ``0``, field rules apply), so the
  value stays valid JSON; a value that would have to be truncated is refused.
* integers (TINYINT, SMALLINT, MEDIUMINT, INT, BIGINT) and DECIMAL: the number is scanned as
  ``mask_rows`` scans an int (a card number kept in a BIGINT); a DECIMAL only when it is a whole
  number. Masked: ``0`` (the binary zero of the column's width in binary rows), so the row stays
  a valid row of its type. Columns too narrow for any active number detector (everything but
  BIGINT and DECIMAL with the built-in detectors: a card has 12 digits or more) are not looked at.
* FLOAT, DOUBLE, DATE, TIME, DATETIME, TIMESTAMP, YEAR, BIT, GEOMETRY, VECTOR and NULL pass
  untouched: they cannot carry the text or the digits the detectors look for (BIT holds at most
  8 bytes, GEOMETRY and VECTOR coordinates as doubles).
* a type this module does not know: in text rows its value is a string like any other and is
  scanned as UTF-8 text; in binary rows its encoding is unknown, so no row of the result can even
  be split into values: every row is refused.

Column rules (``profile.columns``) match the result column's name or its original name (an alias
does not hide a column) and mask every non-NULL value whole, counted as ``FIELD`` per value like
``mask_rows``: strings and binary strings become ``[masked]``, integers, DECIMAL, FLOAT and DOUBLE
zero, JSON keeps its shape with every value inside masked, every other type becomes NULL.

A row with nothing to mask comes back as the very same ``bytes`` object (no copy: the common case,
on the hot path); a result none of whose values can ever be masked is :attr:`ResultMasker.inert`
and its rows are not even parsed. Malformed rows (values that do not add up to their columns,
bad lengths, text that is not in its character set) raise ``MaskingRefused``; nothing else is ever
raised for any bytes.
"""

from __future__ import annotations

import datetime
import json
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import replace
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
    mask_text,
)
from wardgate.tcp.mysql import codec
from wardgate.tcp.mysql.codec import ColumnDefinition, LongData, Parameter, ProtocolViolation, Value

__all__ = ["ResultMasker", "column_encoding", "parameter_text", "shown_parameter"]

# --- character sets ------------------------------------------------------------------------------

_UTF8_COLLATIONS = frozenset(
    {33, 45, 46, 76, 83, 223}
    | set(range(192, 216))  # utf8mb3 UCA collations
    | set(range(224, 248))  # utf8mb4 UCA collations
    | set(range(255, 324))  # MySQL 8's utf8mb4 0900 collations
    | set(range(2048, 2560))  # MariaDB's UCA 14.0 collations of utf8mb3 and utf8mb4
)
_LATIN1_COLLATIONS = frozenset({5, 8, 15, 31, 47, 48, 49, 94})
_ASCII_COLLATIONS = frozenset({11, 65})
_NOPAD = 1024  # MariaDB: a NO PAD collation is its PAD SPACE sibling's id + 1024


def column_encoding(charset: int) -> str | None:
    """The Python codec reading values of a column in collation ``charset``: ``"utf-8"``,
    ``"latin-1"`` (latin1 and ascii: every byte comes back as it was), ``"binary"`` (63), or None
    for a character set this module does not read."""
    if charset == codec.BINARY_CHARSET:
        return "binary"
    if _NOPAD <= charset < 2048:
        charset -= _NOPAD
    if charset in _UTF8_COLLATIONS:
        return "utf-8"
    if charset in _LATIN1_COLLATIONS or charset in _ASCII_COLLATIONS:
        return "latin-1"
    return None


# --- column types --------------------------------------------------------------------------------

_STRING_TYPES = frozenset(
    {
        codec.MYSQL_TYPE_VARCHAR,
        codec.MYSQL_TYPE_VAR_STRING,
        codec.MYSQL_TYPE_STRING,
        codec.MYSQL_TYPE_TINY_BLOB,
        codec.MYSQL_TYPE_MEDIUM_BLOB,
        codec.MYSQL_TYPE_LONG_BLOB,
        codec.MYSQL_TYPE_BLOB,
        codec.MYSQL_TYPE_ENUM,
        codec.MYSQL_TYPE_SET,
    }
)
_INT_WIDTH = {
    codec.MYSQL_TYPE_TINY: 1,
    codec.MYSQL_TYPE_SHORT: 2,
    codec.MYSQL_TYPE_INT24: 4,
    codec.MYSQL_TYPE_LONG: 4,
    codec.MYSQL_TYPE_LONGLONG: 8,
}
_INT_TEXT_MAX = {  # the longest text of each ("-128", "-32768", ...)
    codec.MYSQL_TYPE_TINY: 4,
    codec.MYSQL_TYPE_SHORT: 6,
    codec.MYSQL_TYPE_INT24: 8,
    codec.MYSQL_TYPE_LONG: 11,
    codec.MYSQL_TYPE_LONGLONG: 20,
}
_DECIMAL_TYPES = frozenset({codec.MYSQL_TYPE_DECIMAL, codec.MYSQL_TYPE_NEWDECIMAL})
_FLOAT_ZERO = {codec.MYSQL_TYPE_FLOAT: b"\x00" * 4, codec.MYSQL_TYPE_DOUBLE: b"\x00" * 8}
_PASS_TYPES = frozenset(
    {
        codec.MYSQL_TYPE_FLOAT,
        codec.MYSQL_TYPE_DOUBLE,
        codec.MYSQL_TYPE_NULL,
        codec.MYSQL_TYPE_TIMESTAMP,
        codec.MYSQL_TYPE_DATE,
        codec.MYSQL_TYPE_TIME,
        codec.MYSQL_TYPE_DATETIME,
        codec.MYSQL_TYPE_YEAR,
        codec.MYSQL_TYPE_NEWDATE,
        codec.MYSQL_TYPE_BIT,
        codec.MYSQL_TYPE_GEOMETRY,
        codec.MYSQL_TYPE_VECTOR,
    }
)
_KNOWN_BINARY = codec.binary_value_types()

_MASK_BYTES = FIELD_MASK.encode()
_ZERO_TEXT = b"0"
_INT_TEXT = re.compile(rb"-?[0-9]+")
_DECIMAL_TEXT = re.compile(r"(-?[0-9]+)(?:\.([0-9]*))?")

Row: TypeAlias = list[bytes | None]
Encoder: TypeAlias = Callable[[str], bytes]
_DATA_ERRORS = (ValueError, IndexError, KeyError, OverflowError, RecursionError, struct.error)


def _count(counts: dict[str, int], name: str, n: int = 1) -> None:
    counts[name] = counts.get(name, 0) + n


def _encoder(encoding: str, name: str) -> Encoder:
    def encode(text: str) -> bytes:
        try:
            return text.encode(encoding)
        except UnicodeEncodeError:
            raise MaskingRefused(
                f"the masked value of column {name!r} cannot be written in its character set"
            ) from None

    return encode


def _json_bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: keep it escaped
        return json.dumps(json.loads(text), ensure_ascii=True).encode("ascii")


# --- what is done with one column ----------------------------------------------------------------


class _Context:
    """What every column of one result needs from the profile."""

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


Probe: TypeAlias = bytes | tuple[str, Encoder] | None
"""A value's first look: None (unchanged), its replacement, or a string to scan and its encoder."""


class _Unit:
    """How the values of one column are masked by content."""

    __slots__ = ("ctx", "name")

    def __init__(self, ctx: _Context, name: str) -> None:
        self.ctx = ctx
        self.name = name

    def probe(self, raw: bytes, counts: dict[str, int]) -> Probe:
        raise NotImplementedError


class _Text(_Unit):
    __slots__ = ("encode", "encoding")

    def __init__(self, ctx: _Context, name: str, encoding: str) -> None:
        super().__init__(ctx, name)
        self.encoding = encoding
        self.encode = _encoder(encoding, name)

    def probe(self, raw: bytes, counts: dict[str, int]) -> Probe:
        try:
            return raw.decode(self.encoding), self.encode
        except UnicodeDecodeError:
            raise MaskingRefused(f"a value of column {self.name!r} is not valid {self.encoding}") from None


class _Bytes(_Unit):
    """A binary string: scanned when it is UTF-8 (bytea's rule on the PostgreSQL listener)."""

    __slots__ = ("encode",)

    def __init__(self, ctx: _Context, name: str) -> None:
        super().__init__(ctx, name)
        self.encode = _encoder("utf-8", name)

    def probe(self, raw: bytes, counts: dict[str, int]) -> Probe:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            if self.ctx.allow_binary:
                return None
            raise MaskingRefused(f"a binary value of column {self.name!r} cannot be masked") from None
        return (text, self.encode) if self.ctx.scan else None


class _Json(_Unit):
    __slots__ = ()

    def probe(self, raw: bytes, counts: dict[str, int]) -> Probe:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MaskingRefused(f"a JSON value of column {self.name!r} is not valid UTF-8") from None
        result = mask_json(text, self.ctx.profile)
        if result.truncated:
            raise MaskingRefused(f"a JSON value of column {self.name!r} is larger than the masking limit")
        for name, n in result.counts.items():
            _count(counts, name, n)
        if result.value == text:
            return None
        return _json_bytes(result.value)


class _Integer(_Unit):
    __slots__ = ("fewest", "signed", "width", "zero")

    def __init__(self, ctx: _Context, name: str, field_type: int, unsigned: bool, binary: bool) -> None:
        super().__init__(ctx, name)
        assert ctx.fewest is not None
        self.fewest = ctx.fewest
        self.width = _INT_WIDTH[field_type] if binary else 0
        self.signed = not unsigned
        self.zero = bytes(self.width) if binary else _ZERO_TEXT

    def probe(self, raw: bytes, counts: dict[str, int]) -> Probe:
        if self.width:
            digits = str(int.from_bytes(raw, "little", signed=self.signed))
            if len(digits) < self.fewest:
                return None
        else:
            if len(raw) < self.fewest:
                return None
            if _INT_TEXT.fullmatch(raw) is None:
                raise MaskingRefused(f"a value of integer column {self.name!r} is not a number")
            digits = raw.decode("ascii")
        return self.zero if _masked_number(digits, self.ctx.active, counts) else None


class _Decimal(_Unit):
    """DECIMAL: its text in both protocols; scanned when it is a whole number."""

    __slots__ = ("fewest",)

    def __init__(self, ctx: _Context, name: str) -> None:
        super().__init__(ctx, name)
        assert ctx.fewest is not None
        self.fewest = ctx.fewest

    def probe(self, raw: bytes, counts: dict[str, int]) -> Probe:
        if len(raw) < self.fewest:
            return None
        m = _DECIMAL_TEXT.fullmatch(raw.decode("latin-1"))
        if m is None:
            raise MaskingRefused(f"a value of DECIMAL column {self.name!r} is not a number")
        integer, fraction = m.group(1), m.group(2) or ""
        if fraction.strip("0"):
            return None  # not a whole number: not an identifier kept as a number
        if len(integer) < self.fewest or not _masked_number(integer, self.ctx.active, counts):
            return None
        return _ZERO_TEXT


class _Rule:
    """A column rule: every non-NULL value masked whole (a constant, or JSON with its shape kept)."""

    __slots__ = ("constant", "json", "name", "profile")

    def __init__(self, column: ColumnDefinition, encoding: str | None, binary: bool, ctx: _Context) -> None:
        self.name = column.name_text
        self.profile = ctx.rule_profile
        self.json = column.type == codec.MYSQL_TYPE_JSON
        kind = column.type
        self.constant: bytes | None = None
        if kind in _STRING_TYPES:
            # "[masked]" is ASCII: the same bytes in every character set read here; NULL in others
            self.constant = _MASK_BYTES if encoding is not None else None
        elif kind in _INT_WIDTH:
            self.constant = bytes(_INT_WIDTH[kind]) if binary else _ZERO_TEXT
        elif kind in _DECIMAL_TYPES:
            self.constant = _ZERO_TEXT
        elif kind in _FLOAT_ZERO:
            self.constant = _FLOAT_ZERO[kind] if binary else _ZERO_TEXT
        elif kind not in _PASS_TYPES and kind not in _KNOWN_BINARY and not binary:
            self.constant = _MASK_BYTES  # a type not known here, in text: a string

    def apply(self, raw: bytes) -> bytes | None:
        if not self.json:
            return self.constant
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MaskingRefused(f"a JSON value of column {self.name!r} is not valid UTF-8") from None
        return _json_bytes(mask_json(text, self.profile).value)


# --- the result masker ---------------------------------------------------------------------------


class ResultMasker:
    """Masks the rows of one result.

    ``columns`` are the result's column definitions; ``binary``: its rows are binary-protocol rows
    (COM_STMT_EXECUTE and COM_STMT_FETCH), else text-protocol rows (COM_QUERY).
    """

    def __init__(self, columns: Sequence[ColumnDefinition], profile: MaskingProfile, *, binary: bool) -> None:
        ctx = _Context(profile)
        self._ctx = ctx
        self.binary = binary
        self._columns = tuple(columns)
        self._names = [c.name_text for c in columns]
        self._types = [c.type for c in columns]
        self._encodings = [column_encoding(c.charset) for c in columns]
        self._width = len(columns)
        self._rules: list[tuple[int, _Rule]] = []
        self._units: list[tuple[int, _Unit]] = []
        self._refusal: str | None = None  # every row is refused (binary rows of an unknown type)
        self._refused: list[tuple[int, str]] = []  # a value of the column is refused
        for i, column in enumerate(columns):
            name = self._names[i]
            encoding = self._encodings[i]
            if binary and column.type not in _KNOWN_BINARY:
                self._refusal = (
                    f"binary rows with a value of type {column.type} (column {name!r}) cannot be read to be "
                    "masked"
                )
                continue
            if (
                name.lower() in profile.columns
                or column.org_name.decode("utf-8", "replace").lower() in profile.columns
            ):
                self._rules.append((i, _Rule(column, encoding, binary, ctx)))
                continue
            unit = self._unit(column, name, encoding, binary, ctx, i)
            if unit is not None:
                self._units.append((i, unit))
        self._inert = not (self._rules or self._units or self._refused or self._refusal)

    def _unit(
        self, column: ColumnDefinition, name: str, encoding: str | None, binary: bool, ctx: _Context, i: int
    ) -> _Unit | None:
        kind = column.type
        if kind == codec.MYSQL_TYPE_JSON:
            return _Json(ctx, name) if ctx.json else None
        if kind in _INT_WIDTH:
            if ctx.fewest is None or ctx.fewest > _INT_TEXT_MAX[kind]:
                return None
            return _Integer(ctx, name, kind, column.unsigned, binary)
        if kind in _DECIMAL_TYPES:
            return _Decimal(ctx, name) if ctx.fewest is not None else None
        if kind in _PASS_TYPES:
            return None
        if kind in _STRING_TYPES or not binary:  # a type not known here, in text: its value is a string
            if encoding == "binary":
                if kind not in _STRING_TYPES:
                    encoding = "utf-8"  # text of a type not known here, sent as bytes: read as UTF-8
                elif ctx.allow_binary and not ctx.scan:
                    return None
                else:
                    return _Bytes(ctx, name)
            if not ctx.scan:
                return None
            if encoding is None:
                self._refused.append(
                    (
                        i,
                        f"column {name!r} is in a character set (collation {column.charset}) wardgate cannot "
                        "read to mask",
                    )
                )
                return None
            return _Text(ctx, name, encoding)
        return None

    @property
    def inert(self) -> bool:
        """True when no value of this result can ever be masked: rows may be forwarded untouched."""
        return self._inert

    @property
    def columns(self) -> tuple[ColumnDefinition, ...]:
        return self._columns

    def _parse(self, payload: bytes) -> Row:
        try:
            if self.binary:
                return codec.parse_binary_row(payload, self._types)
            return codec.parse_text_row(payload, self._width)
        except ProtocolViolation as violation:
            raise MaskingRefused(f"a row does not match its result's columns: {violation.message}") from None

    def _build(self, row: Row) -> bytes:
        if self.binary:
            return codec.build_binary_row(row, self._types)
        return codec.build_text_row(row)

    def mask_row(self, payload: bytes) -> tuple[bytes, dict[str, int]]:
        """One row as the client gets it (the same object when nothing changed) and what was masked
        in it (detector names, and ``FIELD`` for column rules, to the number of values)."""
        if self._inert:
            return payload, {}
        rows, counts = self.mask_rows((payload,))
        return rows[0], counts

    def mask_rows(self, payloads: Sequence[bytes]) -> tuple[list[bytes], dict[str, int]]:
        """A batch of rows (one scan of all their strings: cheaper than row by row), as
        :meth:`mask_row`: each row that did not change is the same object in the list returned.

        Raises ``MaskingRefused`` for a value that cannot be masked safely, and nothing else.
        """
        counts: dict[str, int] = {}
        if self._inert or not payloads:
            return list(payloads), counts
        if self._refusal is not None:
            raise MaskingRefused(self._refusal)
        rows = [self._parse(payload) for payload in payloads]
        changed: dict[int, Row] = {}
        try:
            self._mask(rows, counts, changed)
            out = list(payloads)
            for r, row in changed.items():
                out[r] = self._build(row)
        except MaskingRefused:
            raise
        except _DATA_ERRORS as exc:
            raise MaskingRefused(
                f"a value could not be decoded to be masked ({type(exc).__name__})"
            ) from None
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
        deferred: list[tuple[int, int, Encoder]] = []  # row, column, encoder of batch[k]
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
                    deferred.append((r, i, found[1]))
                    batch.append(found[0])
        if not batch:
            return
        masked = mask_rows([""] * len(batch), [batch], self._ctx.profile)
        for name, n in masked.counts.items():
            _count(counts, name, n)
        if masked.counts or max(map(len, batch)) > self._ctx.profile.max_string:
            new_values = masked.value[0]
            for k, (r, i, encode) in enumerate(deferred):
                new = new_values[k]
                if new != batch[k]:
                    put(r, i, encode(new))

    def displayed(self, payload: bytes) -> list[str | None]:
        """A (masked) row as text for the recording: MySQL's text form of each value; binary
        strings that are not UTF-8 as ``0x`` and their hex digits. Never raises."""
        try:
            row = self._parse(payload) if self._refusal is None else []
        except MaskingRefused:
            row = []
        if len(row) != self._width:
            return [f"<a row of {len(payload)} bytes that does not match its columns>"]
        out: list[str | None] = []
        for raw, column, encoding in zip(row, self._columns, self._encodings, strict=True):
            if raw is None:
                out.append(None)
            elif self.binary and column.type not in codec.LENENC_TYPES:
                out.append(_binary_text(column, raw))
            else:
                out.append(_bytes_text(raw, encoding))
        return out


# --- values as text ------------------------------------------------------------------------------


def _bytes_text(raw: bytes, encoding: str | None) -> str:
    if encoding == "latin-1":
        return raw.decode("latin-1")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + raw.hex()


def _float_text(value: float, single: bool) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return repr(value)
    text = repr(value)
    if single:  # the shortest text that reads back as the same 32-bit float
        for digits in range(1, 10):
            candidate = f"{value:.{digits}g}"
            if struct.unpack("<f", struct.pack("<f", float(candidate)))[0] == value:
                text = candidate
                break
    return text[:-2] if text.endswith(".0") else text


def _time_text(value: datetime.timedelta) -> str:
    sign = "-" if value < datetime.timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.days * 86400 + value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{text}.{value.microseconds:06d}" if value.microseconds else text


def value_text(value: Value | LongData) -> str | None:
    """A decoded binary-protocol value as MySQL writes it in text (None for NULL)."""
    if value is None:
        return None
    if isinstance(value, LongData):
        return "[long data]"
    if isinstance(value, bytes):
        return _bytes_text(value, None)
    if isinstance(value, datetime.datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        return f"{text}.{value.microsecond:06d}" if value.microsecond else text
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return _time_text(value)
    if isinstance(value, float):
        return _float_text(value, False)
    return str(value)


def _binary_text(column: ColumnDefinition, raw: bytes) -> str:
    try:
        value = codec.decode_binary_value(column.type, column.unsigned, raw)
    except ProtocolViolation:
        return f"<{len(raw)} bytes>"
    if isinstance(value, float):
        return _float_text(value, column.type == codec.MYSQL_TYPE_FLOAT)
    return value_text(value) or ""


def parameter_text(value: Value | LongData) -> str | None:
    """A COM_STMT_EXECUTE parameter's value as text, unmasked (None for NULL): what an approval is
    bound to. Show people :func:`shown_parameter` instead."""
    return value_text(value)


def shown_parameter(param: Parameter, profile: MaskingProfile) -> str | None:
    """A parameter as the recording and an approver see it: its text, masked with ``profile``.

    Strings and bytes are scanned as text; an integer, or a DECIMAL that is a whole number, that a
    number detector finds (a card number bound as a BIGINT) becomes ``0``; dates, times and floats
    are shown as they are. Column rules do not apply: a parameter has no column.
    """
    value = param.value
    text = value_text(value)
    if text is None or isinstance(value, LongData):
        return text
    if isinstance(value, str | bytes) and param.type not in _DECIMAL_TYPES:
        return mask_text(text, profile).value
    if isinstance(value, int) or param.type in _DECIMAL_TYPES:
        m = _DECIMAL_TEXT.fullmatch(text)
        if (
            m is not None
            and not (m.group(2) or "").strip("0")
            and _masked_number(m.group(1), profile.active, {})
        ):
            return "0"
    return text
