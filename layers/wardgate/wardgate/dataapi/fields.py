"""Data API typed Fields <-> Python values, and the ``columnMetadata`` entries of a result.

A Field is a union with exactly one member: ``isNull``, ``booleanValue``, ``longValue``,
``doubleValue``, ``stringValue``, ``blobValue`` (base64 on the wire) or ``arrayValue``
(``longValues``, ``doubleValues``, ``booleanValues``, ``stringValues`` or nested
``arrayValues``). Parameters may add a ``typeHint`` (DATE, TIME, TIMESTAMP, DECIMAL, UUID,
JSON) that says how a ``stringValue`` is meant.

Results go the other way, as the real Data API renders them: integers as ``longValue``,
decimals as ``stringValue`` (``decimalReturnType`` STRING, the default) or long/double
(DOUBLE_OR_LONG), dates and times as strings (``YYYY-MM-DD HH:MM:SS[.ffffff]``, timestamps with
a time zone converted to UTC), UUIDs and JSON as strings, binary as ``blobValue``, PostgreSQL
arrays as ``arrayValue``. Rows between backend and response are plain Python values so the
masking engine can work on them.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from wardgate.dataapi.errors import bad_request

TYPE_HINTS = ("DATE", "TIME", "TIMESTAMP", "DECIMAL", "UUID", "JSON")
SCALAR_MEMBERS = ("isNull", "booleanValue", "longValue", "doubleValue", "stringValue", "blobValue")
ARRAY_MEMBERS = ("longValues", "doubleValues", "booleanValues", "stringValues", "arrayValues")
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

DecimalReturnType = Literal["STRING", "DOUBLE_OR_LONG"]
LongReturnType = Literal["LONG", "STRING"]

# java.sql.Types codes, which the Data API reports in columnMetadata.type (it runs on JDBC).
JDBC_BIT = -7
JDBC_TINYINT = -6
JDBC_SMALLINT = 5
JDBC_INTEGER = 4
JDBC_BIGINT = -5
JDBC_REAL = 7
JDBC_DOUBLE = 8
JDBC_NUMERIC = 2
JDBC_DECIMAL = 3
JDBC_CHAR = 1
JDBC_VARCHAR = 12
JDBC_LONGVARCHAR = -1
JDBC_DATE = 91
JDBC_TIME = 92
JDBC_TIMESTAMP = 93
JDBC_BINARY = -2
JDBC_VARBINARY = -3
JDBC_LONGVARBINARY = -4
JDBC_OTHER = 1111
JDBC_ARRAY = 2003


class JsonText(str):
    """A parameter sent with ``typeHint: JSON``: text the database should read as JSON."""


@dataclass(frozen=True)
class ColumnMetadata:
    """One ``columnMetadata`` entry; field names follow the wire (``nullable``: 0 no, 1 yes, 2 unknown)."""

    name: str
    label: str
    type_name: str
    type: int
    precision: int = 0
    scale: int = 0
    nullable: int = 2
    is_signed: bool = False
    is_auto_increment: bool = False
    is_case_sensitive: bool = False
    is_currency: bool = False
    array_base_column_type: int = 0
    schema_name: str = ""
    table_name: str = ""

    @property
    def is_array(self) -> bool:
        return self.type == JDBC_ARRAY

    @property
    def is_json(self) -> bool:
        return self.type_name.lower() in ("json", "jsonb")

    @property
    def is_binary(self) -> bool:
        return self.type in (JDBC_BINARY, JDBC_VARBINARY, JDBC_LONGVARBINARY)

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "typeName": self.type_name,
            "type": self.type,
            "precision": self.precision,
            "scale": self.scale,
            "nullable": self.nullable,
            "isSigned": self.is_signed,
            "isAutoIncrement": self.is_auto_increment,
            "isCaseSensitive": self.is_case_sensitive,
            "isCurrency": self.is_currency,
            "arrayBaseColumnType": self.array_base_column_type,
            "schemaName": self.schema_name,
            "tableName": self.table_name,
        }

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> ColumnMetadata:
        return cls(
            name=str(raw.get("name", "")),
            label=str(raw.get("label", raw.get("name", ""))),
            type_name=str(raw.get("typeName", "")),
            type=int(raw.get("type", JDBC_OTHER)),
            precision=int(raw.get("precision", 0)),
            scale=int(raw.get("scale", 0)),
            nullable=int(raw.get("nullable", 2)),
            is_signed=bool(raw.get("isSigned", False)),
            is_auto_increment=bool(raw.get("isAutoIncrement", False)),
            is_case_sensitive=bool(raw.get("isCaseSensitive", False)),
            is_currency=bool(raw.get("isCurrency", False)),
            array_base_column_type=int(raw.get("arrayBaseColumnType", 0)),
            schema_name=str(raw.get("schemaName", "")),
            table_name=str(raw.get("tableName", "")),
        )


# ---- requests: Field (+ typeHint) -> Python value -------------------------------------------


def parameter_value(field: Any, type_hint: str | None, where: str) -> Any:
    """The Python value a parameter's Field stands for; ``where`` names it in error messages."""
    if not isinstance(field, Mapping):
        raise bad_request(f"{where}: value must be an object with one Field member")
    members = [k for k in field if k in (*SCALAR_MEMBERS, "arrayValue")]
    unknown = sorted(set(field) - set(members))
    if unknown:
        raise bad_request(f"{where}: unknown Field member(s) {', '.join(unknown)}")
    if len(members) != 1:
        raise bad_request(f"{where}: value must have exactly one Field member, not {len(members)}")
    member = members[0]
    raw = field[member]
    if type_hint is not None and member not in ("stringValue", "isNull"):
        raise bad_request(f"{where}: typeHint {type_hint} applies to stringValue only")
    if member == "arrayValue":
        raise bad_request(f"{where}: array parameters are not supported")
    if member == "isNull":
        if raw is not True:
            raise bad_request(f"{where}: isNull must be true")
        return None
    if member == "booleanValue":
        if not isinstance(raw, bool):
            raise bad_request(f"{where}: booleanValue must be a boolean")
        return raw
    if member == "longValue":
        if isinstance(raw, bool) or not isinstance(raw, int) or not LONG_MIN <= raw <= LONG_MAX:
            raise bad_request(f"{where}: longValue must be a 64-bit integer")
        return raw
    if member == "doubleValue":
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise bad_request(f"{where}: doubleValue must be a finite number")
        return float(raw)
    if member == "blobValue":
        if not isinstance(raw, str):
            raise bad_request(f"{where}: blobValue must be base64 text")
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(f"{where}: blobValue is not valid base64") from None
    if not isinstance(raw, str):
        raise bad_request(f"{where}: stringValue must be a string")
    return _hinted(raw, type_hint, where)


def _hinted(text: str, type_hint: str | None, where: str) -> Any:
    try:
        if type_hint is None:
            return text
        if type_hint == "DATE":
            return date.fromisoformat(_exact(text, 10))
        if type_hint == "TIME":
            return time.fromisoformat(text)
        if type_hint == "TIMESTAMP":
            if "T" in text or "+" in text or text.endswith("Z"):
                raise ValueError("expected YYYY-MM-DD HH:MM:SS[.FFF]")
            return datetime.fromisoformat(text)
        if type_hint == "DECIMAL":
            value = Decimal(text)
            if not value.is_finite():
                raise ValueError("not a finite decimal")
            return value
        if type_hint == "UUID":
            return uuid.UUID(text)
        if type_hint == "JSON":
            json.loads(text)
            return JsonText(text)
    except (ValueError, InvalidOperation, RecursionError) as exc:  # RecursionError: JSON nested too deeply
        raise bad_request(f"{where}: {text[:64]!r} is not a valid {type_hint} ({exc})") from None
    raise bad_request(f"{where}: unknown typeHint {type_hint!r}; expected one of {', '.join(TYPE_HINTS)}")


def _exact(text: str, length: int) -> str:
    if len(text) != length:
        raise ValueError("expected YYYY-MM-DD")
    return text


def field_to_python(field: Mapping[str, Any]) -> Any:
    """A result Field (as botocore parses it, blobs as bytes) as a plain Python value, losslessly.

    Used on the real Data API's answers so rows can be masked and re-encoded: strings stay
    strings (a decimal or a timestamp comes back as the same text), arrays become lists.
    """
    if field.get("isNull"):
        return None
    for member in ("booleanValue", "longValue", "doubleValue", "stringValue"):
        if member in field:
            return field[member]
    if "blobValue" in field:
        raw = field["blobValue"]
        return base64.b64decode(raw) if isinstance(raw, str) else bytes(raw)
    if "arrayValue" in field:
        return _array_to_python(field["arrayValue"])
    return None


def _array_to_python(array: Mapping[str, Any]) -> list[Any]:
    if "arrayValues" in array:
        return [_array_to_python(inner) for inner in array["arrayValues"]]
    for member in ("longValues", "doubleValues", "booleanValues", "stringValues"):
        if member in array:
            return list(array[member])
    return []


# ---- responses: Python value -> Field ------------------------------------------------------


def to_field(
    value: Any,
    column: ColumnMetadata | None = None,
    decimal_return_type: DecimalReturnType = "STRING",
    long_return_type: LongReturnType = "LONG",
) -> dict[str, Any]:
    """The wire Field for ``value`` (blobs base64-encoded: this is the JSON body, not botocore's view)."""
    if value is None:
        return {"isNull": True}
    if column is not None and column.is_json:
        # The JSON text, whatever the driver parsed it into (a dict, or a bare string).
        return {"stringValue": json.dumps(value, ensure_ascii=False, default=to_text)}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"stringValue": str(value)} if long_return_type == "STRING" else {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, Decimal):
        if decimal_return_type == "DOUBLE_OR_LONG":
            if (column is not None and column.scale == 0) or value == value.to_integral_value():
                return {"longValue": int(value)}
            return {"doubleValue": float(value)}
        return {"stringValue": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"blobValue": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, list | tuple) and (column is None or column.is_array):
        return {"arrayValue": _array_field(list(value))}
    return {"stringValue": to_text(value)}


def to_text(value: Any) -> str:
    """How the Data API writes a non-numeric value as a string."""
    if isinstance(value, datetime):
        moment: datetime = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value
        return _trim_fraction(moment.isoformat(sep=" "))
    if isinstance(value, time):
        return _trim_fraction(value.replace(tzinfo=None).isoformat())
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=to_text)
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def _trim_fraction(text: str) -> str:
    # The Data API writes "07:08:09.123", not Python's "07:08:09.123000".
    return text.rstrip("0").rstrip(".") if "." in text else text


def _duration(value: timedelta) -> str:
    # MySQL TIME is a duration that may exceed a day or be negative: "-838:59:59".
    sign = "-" if value < timedelta(0) else ""
    seconds = abs(value)
    hours, rest = divmod(seconds.days * 86400 + seconds.seconds, 3600)
    minutes, secs = divmod(rest, 60)
    frac = f".{seconds.microseconds:06d}" if seconds.microseconds else ""
    return f"{sign}{hours:02d}:{minutes:02d}:{secs:02d}{frac}"


def _array_field(values: list[Any]) -> dict[str, Any]:
    present = [v for v in values if v is not None]
    if any(isinstance(v, list | tuple) for v in present):
        return {"arrayValues": [_array_field(list(v)) if v is not None else {} for v in values]}
    if present and all(isinstance(v, bool) for v in present):
        return {"booleanValues": values}
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return {"longValues": values}
    if present and all(isinstance(v, float) for v in present):
        return {"doubleValues": values}
    return {"stringValues": [None if v is None else to_text(v) for v in values]}


def json_value(
    value: Any,
    column: ColumnMetadata | None = None,
    decimal_return_type: DecimalReturnType = "STRING",
    long_return_type: LongReturnType = "LONG",
) -> Any:
    """A value as it appears in ``formattedRecords`` (``formatRecordsAs: JSON``)."""
    if value is None or isinstance(value, bool | float):
        return value
    if column is not None and column.is_json:
        return json.dumps(value, ensure_ascii=False, default=to_text)
    if isinstance(value, int):
        return str(value) if long_return_type == "STRING" else value
    if isinstance(value, Decimal):
        (member,) = to_field(value, column, decimal_return_type, long_return_type).values()
        return member
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, list | tuple) and (column is None or column.is_array):
        return [json_value(v, None, decimal_return_type, long_return_type) for v in value]
    return to_text(value)


def format_records(
    columns: Sequence[ColumnMetadata],
    rows: Sequence[Sequence[Any]],
    decimal_return_type: DecimalReturnType = "STRING",
    long_return_type: LongReturnType = "LONG",
) -> str:
    """``formattedRecords``: a JSON array of objects keyed by column label."""
    labels = [c.label or c.name for c in columns]
    objects = [
        {
            label: json_value(value, column, decimal_return_type, long_return_type)
            for label, column, value in zip(labels, columns, row, strict=True)
        }
        for row in rows
    ]
    return json.dumps(objects, separators=(",", ":"), ensure_ascii=False)
