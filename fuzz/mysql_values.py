"""Fuzz the MySQL result masker, ``wardgate.tcp.mysql.values.ResultMasker``, with any rows.

Input (see :func:`encode`): a profile choice, a flags byte (bit 0: binary-protocol rows; bit 1:
the rows are taken as they are, unframed garbage included, instead of being built from values),
the columns (name, type, character set, unsigned), then values, each a 2-byte big-endian length
(``0xFFFF``: NULL) and its bytes, filling rows column by column. Built binary rows fit each
value to its type's width (fixed-width types) or to a valid temporal length, so most rows are
valid rows and the masking itself is what gets exercised; types are drawn from every type the
codec knows, plus unknown ones; character sets from UTF-8, latin1, ascii, binary and one the
masker does not read.

A crash is any exception but ``MaskingRefused`` out of ``mask_rows``/``mask_row``, any exception
out of the constructor (columns come from the database) or out of ``displayed`` (it never raises),
a masked row that does not parse as a row of the result's types (binary values that do not
decode as their type included), a changed row without counts, or a hang.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import atheris
from _harness import Finding, fuzz

with atheris.instrument_imports(include=["wardgate"]):
    from wardgate.masking import BUILTIN_DETECTORS, Detector, MaskingProfile, MaskingRefused
    from wardgate.tcp.mysql import codec
    from wardgate.tcp.mysql.values import ResultMasker

PROFILES = (
    MaskingProfile(),
    MaskingProfile(columns=frozenset({"secret"})),
    MaskingProfile(allow_binary=True),
    MaskingProfile(max_string=8, on_limit="truncate"),
    MaskingProfile(max_string=8),
    MaskingProfile(detectors=(*BUILTIN_DETECTORS, Detector.from_regex("digits", r"[0-9]{3}"))),
    MaskingProfile(fields=("$.user.email", "$..token"), exempt=frozenset({"phone"})),
    MaskingProfile(max_depth=2, max_bytes=64),
    MaskingProfile(detectors=(), columns=frozenset({"secret", "email"})),
)
NAMES = ("v", "secret", "SECRET", "email", "card", "note")
TYPES = tuple(sorted(codec.binary_value_types() | {codec.MYSQL_TYPE_JSON, 99, 200}))
CHARSETS = (45, 255, 33, 8, 11, 63, 28, 1069)
NULL = 0xFFFF
MAX_ROWS = 32
_TEMPORAL_FIT = {0: 0, 1: 4, 2: 4, 3: 4, 4: 4, 5: 7, 6: 7, 7: 7, 8: 11, 9: 11, 10: 11, 11: 11}
_TIME_FIT = {0: 0, 1: 8, 2: 8, 3: 8, 4: 8, 5: 8, 6: 8, 7: 8, 8: 12, 9: 12, 10: 12, 11: 12}


def encode(
    profile: int,
    flags: int,
    columns: Sequence[tuple[int, int, int, bool]],
    row_values: Sequence[bytes | None],
) -> bytes:
    """An input for this harness: ``columns`` as (name index, type, charset index, unsigned)."""
    out = bytearray((profile, flags, len(columns) - 1))
    for name, field_type, charset, unsigned in columns:
        index = TYPES.index(field_type) if field_type in TYPES else field_type
        out += struct.pack(">BBBB", name, index, charset, 1 if unsigned else 0)
    for value in row_values:
        out += struct.pack(">H", NULL if value is None else len(value)) + (value or b"")
    return bytes(out)


def _fit(field_type: int, raw: bytes) -> bytes:
    """``raw`` made a valid binary value of ``field_type`` (its width, or a temporal length)."""
    width = {1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 8: 8, 9: 4, 13: 2, 6: 0}.get(field_type)
    if width is not None:
        return (raw + bytes(width))[:width]
    if field_type == codec.MYSQL_TYPE_TIME:  # a sign byte, then days as MySQL's range has them
        fitted = (raw + bytes(12))[: _TIME_FIT[min(len(raw), 11)]]
        return bytes((fitted[0] & 1, fitted[1] % 35, 0, 0, 0)) + fitted[5:] if fitted else fitted
    if field_type in codec.TEMPORAL_LENGTHS:
        return (raw + bytes(11))[: _TEMPORAL_FIT[min(len(raw), 11)]]
    return raw


def decode(data: bytes) -> tuple[MaskingProfile, bool, bool, list[codec.ColumnDefinition], list[bytes]]:
    profile = PROFILES[data[0] % len(PROFILES)]
    binary, raw_rows = bool(data[1] & 1), bool(data[1] & 2)
    width = data[2] % 6 + 1
    pos = 3
    columns = []
    for _ in range(width):
        if pos + 4 > len(data):
            break
        name, kind, charset, unsigned = struct.unpack_from(">BBBB", data, pos)
        pos += 4
        field_type = TYPES[kind] if kind < len(TYPES) else kind
        columns.append(
            codec.column(
                NAMES[name % len(NAMES)],
                field_type,
                charset=CHARSETS[charset % len(CHARSETS)],
                flags=codec.UNSIGNED_FLAG if unsigned & 1 else 0,
            )
        )
    cells: list[bytes | None] = []
    while pos + 2 <= len(data) and len(cells) < MAX_ROWS * max(len(columns), 1):
        (length,) = struct.unpack_from(">H", data, pos)
        pos += 2
        if length == NULL:
            cells.append(None)
        else:
            cells.append(data[pos : pos + length])
            pos += length
    rows: list[bytes] = []
    if not columns:
        return profile, binary, raw_rows, columns, rows
    if raw_rows:
        return profile, binary, raw_rows, columns, [c or b"" for c in cells]
    types = [c.type for c in columns]
    for start in range(0, len(cells), len(columns)):
        values = cells[start : start + len(columns)]
        values += [None] * (len(columns) - len(values))
        if binary:
            if not all(t in codec.binary_value_types() for t in types):
                continue
            rows.append(
                codec.build_binary_row(
                    [None if v is None else _fit(t, v) for v, t in zip(values, types, strict=True)], types
                )
            )
        else:
            rows.append(codec.build_text_row(values))
    return profile, binary, raw_rows, columns, rows


def test_one_input(data: bytes) -> None:
    if len(data) < 3:
        return
    profile, binary, _, columns, rows = decode(data)
    if not columns:
        return
    masker = ResultMasker(columns, profile, binary=binary)
    try:
        out, counts = masker.mask_rows(rows)
        if rows:
            masker.mask_row(rows[0])
    except MaskingRefused as refused:
        if not refused.reason:
            raise Finding("MaskingRefused without a reason") from None
        out, counts = rows, {}
    if len(out) != len(rows):
        raise Finding(f"{len(rows)} rows in, {len(out)} out")
    if not all(isinstance(n, int) and n > 0 for n in counts.values()):
        raise Finding(f"counts {counts!r}")
    types = [c.type for c in columns]
    for before, after in zip(rows, out, strict=True):
        if not isinstance(after, bytes):
            raise Finding(f"a masked row is {type(after).__name__}")
        if after is not before:
            if not counts and profile.on_limit != "truncate":  # a truncated value is not counted
                raise Finding("a row changed and nothing was counted")
            try:  # a masked row is a row of the result's types, each masked value one of its type
                cells = (
                    codec.parse_binary_row(after, types)
                    if binary
                    else codec.parse_text_row(after, len(types))
                )
                if binary:
                    old = codec.parse_binary_row(before, types)
                    for raw, was, column in zip(cells, old, columns, strict=True):
                        if raw is not None and raw != was:
                            codec.decode_binary_value(column.type, column.unsigned, raw)
            except codec.ProtocolViolation as violation:
                raise Finding(f"masked row {after!r} is not a row of {types}: {violation}") from None
        shown = masker.displayed(after)
        if not all(v is None or isinstance(v, str) for v in shown):
            raise Finding(f"displayed {shown!r}")


def seeds() -> list[bytes]:
    """Seed inputs: a column of each family, in both protocols (fuzz/make_corpus.py writes them)."""
    card, email = b"4111111111111111", b"ada@example.com"
    text = [
        (0, codec.MYSQL_TYPE_VAR_STRING, 0, False),
        (4, codec.MYSQL_TYPE_LONGLONG, 5, False),
        (0, codec.MYSQL_TYPE_NEWDECIMAL, 5, False),
        (0, codec.MYSQL_TYPE_JSON, 5, False),
        (1, codec.MYSQL_TYPE_BLOB, 5, False),
        (5, codec.MYSQL_TYPE_VAR_STRING, 3, False),
    ]
    values = [
        b"mail " + email,
        card,
        card + b".00",
        b'{"card": ' + card + b"}",
        b"\x89PNG",
        b"Zo\xeb " + email,
    ]
    binary_values = [
        b"mail " + email,
        int(card).to_bytes(8, "little"),
        card + b".00",
        b'{"card": ' + card + b"}",
        email,
        b"Zo\xeb " + email,
    ]
    temporal = [
        (0, codec.MYSQL_TYPE_DATE, 5, False),
        (0, codec.MYSQL_TYPE_TIME, 5, False),
        (0, codec.MYSQL_TYPE_DOUBLE, 5, False),
        (3, codec.MYSQL_TYPE_VAR_STRING, 6, False),
    ]
    out = [encode(profile, 0, text, values + [None] * len(values)) for profile in range(len(PROFILES))]
    out += [encode(profile, 1, text, binary_values) for profile in (0, 1, 2, 5)]
    out.append(
        encode(0, 1, temporal, [b"\xe8\x07\x02\x1d", b"\x01\x01\x00\x00\x00\x02\x03\x04", bytes(8), b"x"])
    )
    out.append(encode(0, 2, text, [codec.build_text_row(values)]))
    out.append(encode(1, 1, [(1, 99, 0, False)], [b"x"]))
    return out


if __name__ == "__main__":
    fuzz("mysql_values", test_one_input, max_len=8192)
