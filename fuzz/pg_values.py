"""Fuzz the PostgreSQL result masker, ``wardgate.tcp.postgres.values.ResultMasker``, with any bytes.

Input (see :func:`encode`): a profile choice, the columns of a RowDescription (name, type oid,
format), then DataRow values, each a 2-byte big-endian length (``0xFFFF``: NULL) and its bytes,
filling rows column by column. Type oids are drawn from every type the module knows (scalars
and arrays) or taken as they are (unknown types); formats are 0 (text), 1 (binary) or 2 (binary
too: any format but 0 is). Profiles: the default, a column rule, ``allow_binary``, tiny string
limits (truncate and refuse), a detector that makes int2/int4 worth scanning, JSON field rules
with exemptions, and a tiny JSON depth.

A crash is any exception but ``MaskingRefused`` out of ``mask`` (the module's promise: "nothing
else is ever raised for any bytes"), any exception out of the constructor (columns come from
the database) or out of ``displayed`` (what the recording shows), a masked batch whose rows
are not of the result's width or hold something else than bytes or None, or a hang.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import atheris
from _harness import Finding, Known, fuzz, known

with atheris.instrument_imports(include=["wardgate"]):
    from wardgate.masking import BUILTIN_DETECTORS, Detector, MaskingProfile, MaskingRefused
    from wardgate.tcp.postgres import values
    from wardgate.tcp.postgres.values import ARRAY_ELEMENT, ResultMasker

PROFILES = (
    MaskingProfile(),
    MaskingProfile(columns=frozenset({"secret"})),
    MaskingProfile(allow_binary=True),
    MaskingProfile(max_string=8, on_limit="truncate"),
    MaskingProfile(max_string=8),
    MaskingProfile(detectors=(*BUILTIN_DETECTORS, Detector.from_regex("digits", r"[0-9]{3}"))),
    MaskingProfile(fields=("$.user.email", "$.items[*].card", "$..token"), exempt=frozenset({"phone", "ip"})),
    MaskingProfile(max_depth=2, max_bytes=64),
)
KNOWN: tuple[Known, ...] = ()  # nothing reported and unfixed
NAMES = ("v", "secret", "SECRET", "email", "card", "user")
OIDS = tuple(
    sorted(
        {
            value
            for name, value in vars(values).items()
            if name.isupper() and not name.startswith("_") and isinstance(value, int)
        }
        | set(values._REG_TYPES)
        | set(ARRAY_ELEMENT)
        | {0, 16384, 99999}
    )
)
NULL = 0xFFFF
MAX_ROWS = 64


def encode(
    profile: int, columns: Sequence[tuple[int, int, int]], row_values: Sequence[bytes | None]
) -> bytes:
    """An input for this harness: ``columns`` as (name index, oid, format), values row after row."""
    out = bytearray((profile, len(columns) - 1))
    for name, oid, fmt in columns:
        index = OIDS.index(oid) if oid in OIDS else oid
        out += struct.pack(">BHB", name, index, fmt)
    for value in row_values:
        out += struct.pack(">H", NULL if value is None else len(value)) + (value or b"")
    return bytes(out)


def decode(data: bytes) -> tuple[MaskingProfile, list[tuple[str, int, int]], list[list[bytes | None]]]:
    profile = PROFILES[data[0] % len(PROFILES)]
    width = data[1] % 4 + 1
    pos = 2
    columns = []
    for _ in range(width):
        if pos + 4 > len(data):
            break
        name, oid, fmt = struct.unpack_from(">BHB", data, pos)
        pos += 4
        columns.append((NAMES[name % len(NAMES)], OIDS[oid] if oid < len(OIDS) else oid, fmt % 3))
    cells: list[bytes | None] = []
    while pos + 2 <= len(data) and len(cells) < MAX_ROWS * max(len(columns), 1):
        (length,) = struct.unpack_from(">H", data, pos)
        pos += 2
        if length == NULL:
            cells.append(None)
        else:
            cells.append(data[pos : pos + length])
            pos += length
    rows = [cells[i : i + len(columns)] for i in range(0, len(cells), len(columns))] if columns else []
    if rows and len(rows[-1]) < len(columns):
        rows[-1] += [None] * (len(columns) - len(rows[-1]))
    return profile, columns, rows


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    profile, columns, rows = decode(data)
    if not columns:
        return
    masker = ResultMasker(columns, profile)
    try:
        out, counts = masker.mask(rows)
    except MaskingRefused as refused:
        if not refused.reason:
            raise Finding("MaskingRefused without a reason") from None
        out, counts = None, {}
    except Exception as exc:
        if not known(exc, KNOWN):
            raise
        return
    if out is not None:
        if len(out) != len(rows):
            raise Finding(f"{len(rows)} rows in, {len(out)} out")
        for row in out:
            if len(row) != len(columns) or not all(v is None or isinstance(v, bytes) for v in row):
                raise Finding(f"masked row {row!r} does not fit {len(columns)} columns")
    if not all(isinstance(n, int) and n > 0 for n in counts.values()):
        raise Finding(f"counts {counts!r}")
    for row in out or rows:
        shown = masker.displayed(row)
        if not all(v is None or isinstance(v, str) for v in shown):
            raise Finding(f"displayed {shown!r}")


if __name__ == "__main__":
    fuzz("pg_values", test_one_input, max_len=8192)
