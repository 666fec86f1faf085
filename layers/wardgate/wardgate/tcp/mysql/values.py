"""Masking of MySQL result rows as they are on the wire, in the text and the binary protocol.

A :class:`ResultMasker` is built once per result (its column definitions) and masks each row
with wardgate's masking engine, so the agent gets the masks it gets through the Data API and
the PostgreSQL listener: column rules mask a value whole, detectors scan the rest, each value by
its type's family, alike in both protocols.

Families (MySQL column type -> what is done)
* strings (CHAR, VARCHAR, TEXT and BLOB types, ENUM, SET) of a text character set: scanned as
  text; the masked string is sent in the column's character set (UTF-8 family, or latin1/ascii
  when every character fits, else refused). Binary strings (charset 63: BINARY, VARBINARY,
  BLOB): scanned when their bytes are UTF-8; other bytes are refused, or pass with
  ``profile.allow_binary`` (as bytea does on the PostgreSQL listener).
* JSON: masked as JSON (``mask_json``): the value stays valid JSON.
* integers (TINYINT..BIGINT, YEAR) and DECIMAL: scanned as a number when wide enough to hold one
  a detector finds (a card number kept in a BIGINT); DECIMALs only when whole. Masked: 0.
* FLOAT, DOUBLE, dates and times, BIT, GEOMETRY, NULL: cannot carry what the detectors find;
  passed unscanned.
Column rules (``profile.columns``) mask a non-NULL value whole: strings become ``[masked]``,
numbers 0, other types NULL.

A row with nothing to mask comes back as the very same bytes object (the common case). Malformed
rows raise ``MaskingRefused``; nothing else is raised for any bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from wardgate.masking.engine import MaskingProfile, MaskingRefused, mask_json, mask_text
from wardgate.tcp.mysql import codec
from wardgate.tcp.mysql.codec import ColumnDefinition

MASKED = "[masked]"
_INTEGERS = {
    codec.MYSQL_TYPE_TINY: 1,
    codec.MYSQL_TYPE_SHORT: 2,
    codec.MYSQL_TYPE_YEAR: 2,
    codec.MYSQL_TYPE_INT24: 4,
    codec.MYSQL_TYPE_LONG: 4,
    codec.MYSQL_TYPE_LONGLONG: 8,
}
_DECIMALS = {codec.MYSQL_TYPE_DECIMAL, codec.MYSQL_TYPE_NEWDECIMAL}
_STRINGS = {
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
# Fixed widths in binary rows (the rest: a length byte (temporal types) or a lenenc string).
_FIXED = {**_INTEGERS, codec.MYSQL_TYPE_FLOAT: 4, codec.MYSQL_TYPE_DOUBLE: 8, codec.MYSQL_TYPE_NULL: 0}
_TEMPORAL = {
    codec.MYSQL_TYPE_DATE,
    codec.MYSQL_TYPE_DATETIME,
    codec.MYSQL_TYPE_TIMESTAMP,
    codec.MYSQL_TYPE_TIME,
    codec.MYSQL_TYPE_NEWDATE,
}
_LATIN = {8: "latin1", 11: "ascii", 47: "latin1", 48: "latin1", 49: "latin1", 65: "ascii", 94: "latin1"}
_FEWEST_DIGITS = 12  # the shortest number a built-in detector masks (a card number)

# What is done with a column's values (_Column.family).
PASS, STRING, BINARY_STRING, JSON, INTEGER, DECIMAL, WHOLE = range(7)


class _Column:
    __slots__ = ("encoding", "family", "name", "type", "unsigned", "whole")

    def __init__(self, column: ColumnDefinition, profile: MaskingProfile) -> None:
        self.type = column.type
        self.unsigned = column.unsigned
        self.name = column.name_text
        self.whole = self.name.lower() in profile.columns
        self.encoding = _LATIN.get(column.charset, "utf-8")
        kind = column.type
        if kind in _STRINGS:
            self.family = BINARY_STRING if column.charset == codec.BINARY_CHARSET else STRING
        elif kind == codec.MYSQL_TYPE_JSON:
            self.family = JSON
        elif kind in _INTEGERS:
            # Too narrow for any number a detector masks: never looked at (TINYINT..INT).
            self.family = INTEGER if _INTEGERS[kind] == 8 or self.whole else PASS
        elif kind in _DECIMALS:
            self.family = DECIMAL
        else:
            self.family = PASS
        if self.whole and self.family == PASS:
            self.family = WHOLE  # a column rule on a date, a float...: NULL

    def mask(self, raw: bytes, profile: MaskingProfile, counts: dict[str, int], binary: bool) -> bytes | None:
        """The masked value as the row carries it, or None when it stays as it is."""
        family = self.family
        if family in (STRING, BINARY_STRING):
            if self.whole:
                _count(counts, "FIELD")
                return MASKED.encode(self.encoding)
            try:
                text = raw.decode("utf-8" if family == BINARY_STRING else self.encoding)
            except UnicodeDecodeError:
                if profile.allow_binary:
                    return None
                raise MaskingRefused(f"column {self.name!r} holds bytes that are not text") from None
            result = mask_text(text, profile)
            if not result.counts:
                return None
            _merge(counts, result.counts)
            try:
                return result.value.encode("utf-8" if family == BINARY_STRING else self.encoding)
            except UnicodeEncodeError:
                raise MaskingRefused(
                    f"the masked value of {self.name!r} does not fit its character set"
                ) from None
        if family == JSON:
            if self.whole:
                _count(counts, "FIELD")
                return b"null"
            masked = mask_json(raw, profile)
            if not masked.counts:
                return None
            _merge(counts, masked.counts)
            return bytes(masked.value)
        if family in (INTEGER, DECIMAL):
            if self.whole:
                _count(counts, "FIELD")
                return _zero(self, binary)
            digits = _digits(self, raw, binary)
            if digits is None or len(digits.lstrip("-")) < _FEWEST_DIGITS:
                return None
            result = mask_text(digits, profile)
            if not result.counts:
                return None
            _merge(counts, result.counts)
            return _zero(self, binary)
        return None


class ResultMasker:
    """Masks the rows of one result. ``binary``: rows of the binary protocol (prepared statements)."""

    def __init__(self, columns: Sequence[ColumnDefinition], profile: MaskingProfile, *, binary: bool) -> None:
        self.columns = [_Column(c, profile) for c in columns]
        self.profile = profile
        self.binary = binary
        self.inert = all(c.family == PASS for c in self.columns)

    def mask_row(self, payload: bytes) -> tuple[bytes, dict[str, int]]:
        """The row the client gets and what was masked in it (by detector name)."""
        if self.inert:
            return payload, {}
        cells = self._cells(payload)
        counts: dict[str, int] = {}
        replaced: list[tuple[int, bytes | None]] = []
        for i, (column, cell) in enumerate(zip(self.columns, cells, strict=True)):
            if cell is None or column.family == PASS:
                continue
            start, end = cell
            if column.family == WHOLE:
                _count(counts, "FIELD")
                replaced.append((i, None))
                continue
            masked = column.mask(payload[start:end], self.profile, counts, self.binary)
            if masked is not None:
                replaced.append((i, masked))
        if not replaced:
            return payload, counts
        return self._rebuild(payload, cells, dict(replaced)), counts

    def displayed(self, payload: bytes) -> list[str | None]:
        """The row's values as text, for the recording (the row as the client got it)."""
        shown: list[str | None] = []
        for column, cell in zip(self.columns, self._cells(payload), strict=True):
            if cell is None:
                shown.append(None)
            else:
                shown.append(_text(column, payload[cell[0] : cell[1]], self.binary))
        return shown

    # ------------------------------------------------------------------ the wire format
    def _cells(self, payload: bytes) -> list[tuple[int, int] | None]:
        """Where each value's bytes are (without their length prefix), None for NULL."""
        cells: list[tuple[int, int] | None] = []
        try:
            if not self.binary:
                pos = 0
                for _ in self.columns:
                    if payload[pos] == 0xFB:
                        cells.append(None)
                        pos += 1
                        continue
                    length, pos = codec.read_lenenc_int(payload, pos)
                    cells.append((pos, pos + length))
                    pos += length
            else:
                if payload[0] != 0:
                    raise MaskingRefused("a binary row without its 0x00 header")
                n = len(self.columns)
                bitmap = payload[1 : 1 + (n + 9) // 8]
                pos = 1 + len(bitmap)
                for i, column in enumerate(self.columns):
                    bit = i + 2
                    if bitmap[bit // 8] & (1 << (bit % 8)):
                        cells.append(None)
                        continue
                    width = _FIXED.get(column.type)
                    if width is not None:
                        cells.append((pos, pos + width))
                        pos += width
                    elif column.type in _TEMPORAL:
                        length = payload[pos]
                        cells.append((pos + 1, pos + 1 + length))
                        pos += 1 + length
                    else:
                        length, pos = codec.read_lenenc_int(payload, pos)
                        cells.append((pos, pos + length))
                        pos += length
        except (IndexError, codec.ProtocolViolation) as exc:
            raise MaskingRefused(f"a result row that does not match its columns ({exc})") from None
        if pos != len(payload):
            raise MaskingRefused("a result row longer than its columns")
        return cells

    def _rebuild(
        self, payload: bytes, cells: list[tuple[int, int] | None], new: dict[int, bytes | None]
    ) -> bytes:
        out: list[bytes] = []
        if self.binary:
            n = len(self.columns)
            bitmap = bytearray(payload[1 : 1 + (n + 9) // 8])
            for i, value in new.items():
                if value is None:
                    bit = i + 2
                    bitmap[bit // 8] |= 1 << (bit % 8)
            out.append(b"\x00" + bytes(bitmap))
        for i, (column, cell) in enumerate(zip(self.columns, cells, strict=True)):
            if cell is None:
                if not self.binary:
                    out.append(b"\xfb")
                continue
            start, end = cell
            value = new.get(i, payload[start:end])
            if value is None:  # masked whole to NULL (the binary row's bitmap already says so)
                if not self.binary:
                    out.append(b"\xfb")
                continue
            if self.binary and (column.type in _FIXED or column.type in _TEMPORAL):
                out.append(bytes((len(value),)) + value if column.type in _TEMPORAL else value)
            else:
                out.append(codec.lenenc_bytes(value))
        return b"".join(out)


def _digits(column: _Column, raw: bytes, binary: bool) -> str | None:
    if binary and column.type in _INTEGERS:
        return str(int.from_bytes(raw, "little", signed=not column.unsigned))
    text = raw.decode("latin-1")
    if column.family == DECIMAL:
        whole, _, fraction = text.partition(".")
        if fraction.strip("0"):
            return None  # not a whole number: not an identifier kept as a number
        text = whole
    if not text.lstrip("-").isdigit():
        raise MaskingRefused(f"column {column.name!r} holds a value that is not a number")
    return text


def _zero(column: _Column, binary: bool) -> bytes:
    if binary and column.type in _INTEGERS:
        return bytes(_INTEGERS[column.type])
    return b"0"


def _text(column: _Column, raw: bytes, binary: bool) -> str:
    kind = column.type
    if binary:
        if kind in _INTEGERS:
            return str(int.from_bytes(raw, "little", signed=not column.unsigned))
        if kind == codec.MYSQL_TYPE_FLOAT:
            return repr(struct.unpack("<f", raw)[0])
        if kind == codec.MYSQL_TYPE_DOUBLE:
            return repr(struct.unpack("<d", raw)[0])
        if kind in _TEMPORAL:
            return _temporal_text(kind, raw)
    if column.family == BINARY_STRING or kind in (codec.MYSQL_TYPE_BIT, codec.MYSQL_TYPE_GEOMETRY):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + raw.hex()
    return raw.decode(column.encoding, "replace")


def _temporal_text(kind: int, raw: bytes) -> str:
    """The binary protocol's DATE/DATETIME/TIMESTAMP/TIME as MySQL writes them in text."""
    if kind == codec.MYSQL_TYPE_TIME:
        if not raw:
            return "00:00:00"
        negative, days, h, m, s = raw[0], int.from_bytes(raw[1:5], "little"), raw[5], raw[6], raw[7]
        micro = f".{int.from_bytes(raw[8:12], 'little'):06d}" if len(raw) > 8 else ""
        return f"{'-' if negative else ''}{days * 24 + h:02d}:{m:02d}:{s:02d}{micro}"
    if not raw:
        return "0000-00-00" if kind == codec.MYSQL_TYPE_DATE else "0000-00-00 00:00:00"
    date = f"{int.from_bytes(raw[0:2], 'little'):04d}-{raw[2]:02d}-{raw[3]:02d}"
    if kind == codec.MYSQL_TYPE_DATE:
        return date
    clock = f"{raw[4]:02d}:{raw[5]:02d}:{raw[6]:02d}" if len(raw) >= 7 else "00:00:00"
    micro = f".{int.from_bytes(raw[7:11], 'little'):06d}" if len(raw) > 7 else ""
    return f"{date} {clock}{micro}"


def _count(counts: dict[str, int], name: str, n: int = 1) -> None:
    counts[name] = counts.get(name, 0) + n


def _merge(counts: dict[str, int], more: dict[str, int]) -> None:
    for name, n in more.items():
        counts[name] = counts.get(name, 0) + n


def parameter_text(value: Any) -> str:
    """A decoded COM_STMT_EXECUTE parameter as text (recorded and shown to approvers, masked)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + value.hex()
    return str(value)
