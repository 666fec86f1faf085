"""Parse and validate the JSON bodies boto3's ``rds-data`` client sends.

Shapes follow botocore's ``rds-data`` 2018-08-01 model: ``/Execute`` (ExecuteStatement),
``/BatchExecute``, ``/BeginTransaction``, ``/CommitTransaction``, ``/RollbackTransaction``.
Anything malformed is a ``BadRequestException``; unknown members are refused rather than
ignored, so a field the gateway does not understand can never change what runs unnoticed.

**Target fields.** The connection, not the agent, holds the cluster ARN, secret ARN and
database. ``resourceArn`` and ``secretArn`` are required by the model (boto3 will not send a
request without them), so they are accepted as any string and never used. ``database``, when
sent, must equal the connection's database: an agent that believes it is talking to another
database is told so instead of silently reading this one. ``schema`` (unsupported by the real
service) must be absent or empty.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wardgate.dataapi.errors import bad_request
from wardgate.dataapi.fields import TYPE_HINTS, DecimalReturnType, LongReturnType, parameter_value

MAX_SQL_CHARS = 65536  # the model's SqlStatement max
MAX_ID_CHARS = 512  # the model says 192, but RdsDataBackend's ids carry an owner tag (botocore checks no max)
PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TARGET_MEMBERS = ("resourceArn", "secretArn", "database", "schema")


@dataclass(frozen=True)
class SqlParameter:
    """One named statement parameter, its value decoded from the Data API's typed field."""

    name: str
    value: Any  # None, bool, int, float, str, bytes, Decimal, date, time, datetime, UUID or JsonText
    type_hint: str | None = None


@dataclass(frozen=True)
class ResultSetOptions:
    """How the Data API renders decimals and longs in results."""

    decimal_return_type: DecimalReturnType = "STRING"
    long_return_type: LongReturnType = "LONG"


@dataclass(frozen=True)
class ExecuteStatementRequest:
    """An ``ExecuteStatement`` call: one SQL text, its parameters, an optional transaction."""

    sql: str
    parameters: tuple[SqlParameter, ...] = ()
    transaction_id: str | None = None
    include_result_metadata: bool = False
    continue_after_timeout: bool = False
    result_set_options: ResultSetOptions = field(default_factory=ResultSetOptions)
    format_records_as: str = "NONE"  # NONE | JSON


@dataclass(frozen=True)
class BatchExecuteStatementRequest:
    """A ``BatchExecuteStatement`` call: one SQL text run once per parameter set."""

    sql: str
    parameter_sets: tuple[tuple[SqlParameter, ...], ...] = ()
    transaction_id: str | None = None


@dataclass(frozen=True)
class BeginTransactionRequest:
    """A ``BeginTransaction`` call (the statement ``BEGIN``)."""


@dataclass(frozen=True)
class CommitTransactionRequest:
    """A ``CommitTransaction`` call (the statement ``COMMIT``) on a transaction id."""

    transaction_id: str


@dataclass(frozen=True)
class RollbackTransactionRequest:
    """A ``RollbackTransaction`` call (the statement ``ROLLBACK``) on a transaction id."""

    transaction_id: str


DataApiRequest = (
    ExecuteStatementRequest
    | BatchExecuteStatementRequest
    | BeginTransactionRequest
    | CommitTransactionRequest
    | RollbackTransactionRequest
)

# request path (after /sql/{connection}) -> the members its body may carry besides the target fields
OPERATIONS: dict[str, frozenset[str]] = {
    "Execute": frozenset(
        {
            "sql",
            "parameters",
            "transactionId",
            "includeResultMetadata",
            "continueAfterTimeout",
            "resultSetOptions",
            "formatRecordsAs",
        }
    ),
    "BatchExecute": frozenset({"sql", "parameterSets", "transactionId"}),
    "BeginTransaction": frozenset(),
    "CommitTransaction": frozenset({"transactionId"}),
    "RollbackTransaction": frozenset({"transactionId"}),
}


def parse_request(
    operation: str, body: bytes | str | Mapping[str, Any], *, database: str | None
) -> DataApiRequest:
    """The validated request for ``operation`` (``Execute``, ``BatchExecute``, ...).

    ``database`` is the connection's database; a different ``database`` in the body is refused.
    """
    if operation not in OPERATIONS:
        raise bad_request(f"unknown operation {operation!r}; expected one of {', '.join(OPERATIONS)}")
    doc = _load(body)
    allowed = OPERATIONS[operation] | set(TARGET_MEMBERS)
    if operation in ("CommitTransaction", "RollbackTransaction"):
        allowed -= {"database", "schema"}
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise bad_request(f"unknown member(s) in the request: {', '.join(unknown)}")
    _check_target(doc, database)
    if operation == "Execute":
        return ExecuteStatementRequest(
            sql=_sql(doc),
            parameters=_parameters(doc.get("parameters"), "parameters"),
            transaction_id=_transaction_id(doc, required=False),
            include_result_metadata=_bool(doc, "includeResultMetadata"),
            continue_after_timeout=_bool(doc, "continueAfterTimeout"),
            result_set_options=_result_set_options(doc.get("resultSetOptions")),
            format_records_as=_enum(doc, "formatRecordsAs", ("NONE", "JSON"), "NONE"),
        )
    if operation == "BatchExecute":
        sets = doc.get("parameterSets")
        if sets is None:
            sets = []
        if not isinstance(sets, list):
            raise bad_request("parameterSets must be a list of parameter lists")
        return BatchExecuteStatementRequest(
            sql=_sql(doc),
            parameter_sets=tuple(_parameters(s, f"parameterSets[{i}]") for i, s in enumerate(sets)),
            transaction_id=_transaction_id(doc, required=False),
        )
    if operation == "BeginTransaction":
        return BeginTransactionRequest()
    transaction_id = _transaction_id(doc, required=True)
    assert transaction_id is not None
    if operation == "CommitTransaction":
        return CommitTransactionRequest(transaction_id)
    return RollbackTransactionRequest(transaction_id)


def _load(body: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(body, Mapping):
        return dict(body)
    if not body:
        return {}  # BeginTransaction without a body is how some clients send it
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("the request body is not valid JSON") from None
    except RecursionError:  # [[[[... deeper than the parser's recursion limit
        raise bad_request("the request body is nested too deeply") from None
    if not isinstance(doc, dict):
        raise bad_request("the request body must be a JSON object")
    return doc


def _check_target(doc: Mapping[str, Any], database: str | None) -> None:
    for name in ("resourceArn", "secretArn"):
        if name in doc and not isinstance(doc[name], str):
            raise bad_request(f"{name} must be a string")
    requested = doc.get("database")
    if requested is not None and requested != "":
        if not isinstance(requested, str):
            raise bad_request("database must be a string")
        if requested != database:
            raise bad_request(
                f"database {requested[:64]!r} is not this connection's database; omit it or send {database!r}"
            )
    schema = doc.get("schema")
    if schema is not None and schema != "":
        raise bad_request("the schema parameter is not supported; qualify names in the SQL instead")


def _sql(doc: Mapping[str, Any]) -> str:
    sql = doc.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise bad_request("sql is required and must be a non-empty string")
    if len(sql) > MAX_SQL_CHARS:
        raise bad_request(f"sql is {len(sql)} characters; the limit is {MAX_SQL_CHARS}")
    return sql


def _transaction_id(doc: Mapping[str, Any], *, required: bool) -> str | None:
    value = doc.get("transactionId")
    if value is None or (value == "" and not required):
        if required:
            raise bad_request("transactionId is required")
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise bad_request(f"transactionId must be a non-empty string of at most {MAX_ID_CHARS} characters")
    return value


def _bool(doc: Mapping[str, Any], name: str) -> bool:
    value = doc.get(name, False)
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be a boolean")
    return value


def _enum(doc: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = doc.get(name, default)
    if value not in allowed:
        raise bad_request(f"{name} must be one of {', '.join(allowed)}")
    return str(value)


def _result_set_options(raw: Any) -> ResultSetOptions:
    if raw is None:
        return ResultSetOptions()
    if not isinstance(raw, dict):
        raise bad_request("resultSetOptions must be an object")
    unknown = sorted(set(raw) - {"decimalReturnType", "longReturnType"})
    if unknown:
        raise bad_request(f"unknown member(s) in resultSetOptions: {', '.join(unknown)}")
    decimal = _enum(raw, "decimalReturnType", ("STRING", "DOUBLE_OR_LONG"), "STRING")
    long = _enum(raw, "longReturnType", ("LONG", "STRING"), "LONG")
    return ResultSetOptions(decimal, long)  # type: ignore[arg-type]  # checked by _enum


def _parameters(raw: Any, where: str) -> tuple[SqlParameter, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise bad_request(f"{where} must be a list")
    out: list[SqlParameter] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise bad_request(f"{at} must be an object with name and value")
        unknown = sorted(set(item) - {"name", "value", "typeHint"})
        if unknown:
            raise bad_request(f"{at}: unknown member(s) {', '.join(unknown)}")
        name = item.get("name")
        if not isinstance(name, str) or not PARAMETER_NAME.fullmatch(name):
            raise bad_request(f"{at}: name must be an identifier (letters, digits, underscore)")
        if name in seen:
            raise bad_request(f"{at}: parameter {name!r} is given twice")
        seen.add(name)
        hint = item.get("typeHint")
        if hint is not None and hint not in TYPE_HINTS:
            raise bad_request(f"{at}: typeHint must be one of {', '.join(TYPE_HINTS)}")
        if "value" not in item:
            raise bad_request(f"{at}: value is required")
        out.append(SqlParameter(name, parameter_value(item["value"], hint, f"{at} ({name})"), hint))
    return tuple(out)
