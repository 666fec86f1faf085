"""Request bodies as boto3's rds-data client sends them, and the typed Fields in both directions."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from wardgate.dataapi.errors import DataApiError
from wardgate.dataapi.fields import (
    JDBC_ARRAY,
    JDBC_INTEGER,
    JDBC_OTHER,
    ColumnMetadata,
    JsonText,
    field_to_python,
    format_records,
    to_field,
)
from wardgate.dataapi.requests import (
    BatchExecuteStatementRequest,
    BeginTransactionRequest,
    CommitTransactionRequest,
    ExecuteStatementRequest,
    ResultSetOptions,
    RollbackTransactionRequest,
    parse_request,
)

TARGET = {
    "resourceArn": "arn:aws:rds:us-east-1:1:cluster:agent-guess",
    "secretArn": "arn:aws:secretsmanager:x",
}


def bad(operation: str, body: Any, database: str | None = "app") -> str:
    with pytest.raises(DataApiError) as caught:
        parse_request(operation, body, database=database)
    assert caught.value.error_type == "BadRequestException"
    assert caught.value.status == 400
    return caught.value.message


def test_execute_statement_with_every_option() -> None:
    body = {
        **TARGET,
        "database": "app",
        "sql": "SELECT :a",
        "parameters": [
            {"name": "a", "value": {"longValue": 7}},
            {"name": "d", "value": {"stringValue": "2024-02-29"}, "typeHint": "DATE"},
        ],
        "transactionId": "tx-1",
        "includeResultMetadata": True,
        "continueAfterTimeout": True,
        "resultSetOptions": {"decimalReturnType": "DOUBLE_OR_LONG", "longReturnType": "STRING"},
        "formatRecordsAs": "JSON",
    }
    request = parse_request("Execute", json.dumps(body).encode(), database="app")
    assert isinstance(request, ExecuteStatementRequest)
    assert request.sql == "SELECT :a"
    assert [(p.name, p.value, p.type_hint) for p in request.parameters] == [
        ("a", 7, None),
        ("d", date(2024, 2, 29), "DATE"),
    ]
    assert request.transaction_id == "tx-1"
    assert request.include_result_metadata and request.continue_after_timeout
    assert request.result_set_options == ResultSetOptions("DOUBLE_OR_LONG", "STRING")
    assert request.format_records_as == "JSON"


def test_defaults_match_the_data_api() -> None:
    request = parse_request("Execute", {**TARGET, "sql": "SELECT 1"}, database="app")
    assert request == ExecuteStatementRequest("SELECT 1")


def test_batch_and_transaction_operations() -> None:
    batch = parse_request(
        "BatchExecute",
        {
            **TARGET,
            "sql": "INSERT INTO t VALUES (:v)",
            "parameterSets": [[{"name": "v", "value": {"isNull": True}}]],
        },
        database="app",
    )
    assert isinstance(batch, BatchExecuteStatementRequest)
    assert batch.parameter_sets[0][0].value is None
    assert parse_request("BeginTransaction", b"", database="app") == BeginTransactionRequest()
    assert parse_request("CommitTransaction", {**TARGET, "transactionId": "x"}, database="app") == (
        CommitTransactionRequest("x")
    )
    assert parse_request("RollbackTransaction", {"transactionId": "y"}, database=None) == (
        RollbackTransactionRequest("y")
    )


def test_agent_sent_arns_are_accepted_but_a_different_database_is_refused() -> None:
    # resourceArn/secretArn: any string, never used (the connection has its own).
    parse_request("Execute", {**TARGET, "sql": "SELECT 1"}, database="app")
    parse_request("Execute", {**TARGET, "sql": "SELECT 1", "database": "app"}, database="app")
    message = bad("Execute", {**TARGET, "sql": "SELECT 1", "database": "payroll"})
    assert "payroll" in message and "not this connection's database" in message
    assert "not supported" in bad("Execute", {**TARGET, "sql": "SELECT 1", "schema": "other"})
    assert "resourceArn" in bad("Execute", {"resourceArn": 5, "sql": "SELECT 1"})


@pytest.mark.parametrize(
    ("operation", "body", "expected"),
    [
        ("Execute", b"{not json", "not valid JSON"),
        ("Execute", b"[1]", "JSON object"),
        ("Execute", {"sql": ""}, "sql is required"),
        ("Execute", {"sql": "x" * 65537}, "limit is 65536"),
        ("Execute", {"sql": "SELECT 1", "surprise": 1}, "surprise"),
        ("Execute", {"sql": "SELECT 1", "includeResultMetadata": "yes"}, "includeResultMetadata"),
        ("Execute", {"sql": "SELECT 1", "formatRecordsAs": "XML"}, "formatRecordsAs"),
        (
            "Execute",
            {"sql": "SELECT 1", "resultSetOptions": {"decimalReturnType": "FLOAT"}},
            "decimalReturnType",
        ),
        ("Execute", {"sql": "SELECT 1", "parameters": {"a": 1}}, "must be a list"),
        (
            "Execute",
            {"sql": "SELECT 1", "parameters": [{"name": "1a", "value": {"longValue": 1}}]},
            "identifier",
        ),
        ("Execute", {"sql": "SELECT :a", "parameters": [{"name": "a"}]}, "value is required"),
        (
            "Execute",
            {"sql": "SELECT :a", "parameters": [{"name": "a", "value": {"longValue": 1}}] * 2},
            "given twice",
        ),
        ("Execute", {"sql": "SELECT :a", "parameters": [{"name": "a", "value": {}}]}, "exactly one"),
        (
            "Execute",
            {
                "sql": "SELECT :a",
                "parameters": [{"name": "a", "value": {"longValue": 1, "stringValue": "1"}}],
            },
            "exactly one",
        ),
        (
            "Execute",
            {"sql": "SELECT :a", "parameters": [{"name": "a", "value": {"intValue": 1}}]},
            "intValue",
        ),
        (
            "Execute",
            {"sql": "SELECT :a", "parameters": [{"name": "a", "value": {"longValue": 2**63}}]},
            "64-bit",
        ),
        (
            "Execute",
            {"sql": "SELECT :a", "parameters": [{"name": "a", "value": {"longValue": True}}]},
            "64-bit",
        ),
        (
            "Execute",
            {"sql": "SELECT :a", "parameters": [{"name": "a", "value": {"blobValue": "!!"}}]},
            "base64",
        ),
        (
            "Execute",
            {"sql": "SELECT :a", "parameters": [{"name": "a", "value": {"isNull": False}}]},
            "isNull",
        ),
        (
            "Execute",
            {"sql": "SELECT :a", "parameters": [{"name": "a", "value": {"arrayValue": {"longValues": [1]}}}]},
            "array parameters",
        ),
        (
            "Execute",
            {
                "sql": "SELECT :a",
                "parameters": [{"name": "a", "value": {"longValue": 1}, "typeHint": "DATE"}],
            },
            "stringValue only",
        ),
        (
            "Execute",
            {
                "sql": "SELECT :a",
                "parameters": [{"name": "a", "value": {"stringValue": "x"}, "typeHint": "BLOB"}],
            },
            "typeHint must be",
        ),
        ("BatchExecute", {"sql": "SELECT 1", "parameterSets": {"a": 1}}, "parameterSets"),
        ("CommitTransaction", {}, "transactionId is required"),
        ("RollbackTransaction", {"transactionId": "x" * 513}, "transactionId"),
        ("CommitTransaction", {"transactionId": "x", "database": "app"}, "database"),
        ("ExecuteSql", {"sql": "SELECT 1"}, "unknown operation"),
    ],
)
def test_malformed_requests_are_bad_requests(operation: str, body: Any, expected: str) -> None:
    assert expected in bad(operation, body)


@pytest.mark.parametrize(
    ("hint", "text", "expected"),
    [
        ("DATE", "2024-02-29", date(2024, 2, 29)),
        ("TIME", "12:34:56.789", time(12, 34, 56, 789000)),
        ("TIMESTAMP", "2024-05-06 07:08:09.123", datetime(2024, 5, 6, 7, 8, 9, 123000)),
        ("DECIMAL", "12345.678", Decimal("12345.678")),
        ("UUID", "6f1c4f8e-4b8b-4e55-9a55-2f9c3a2b1d00", uuid.UUID("6f1c4f8e-4b8b-4e55-9a55-2f9c3a2b1d00")),
        ("JSON", '{"a": [1, 2]}', JsonText('{"a": [1, 2]}')),
    ],
)
def test_type_hints_give_typed_values(hint: str, text: str, expected: Any) -> None:
    request = parse_request(
        "Execute",
        {"sql": "SELECT :v", "parameters": [{"name": "v", "value": {"stringValue": text}, "typeHint": hint}]},
        database=None,
    )
    assert isinstance(request, ExecuteStatementRequest)
    value = request.parameters[0].value
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("hint", "text"),
    [
        ("DATE", "2024-02-30"),
        ("DATE", "20240229"),
        ("TIME", "25:00:00"),
        ("TIMESTAMP", "2024-05-06T07:08:09"),
        ("DECIMAL", "1e"),
        ("DECIMAL", "NaN"),
        ("UUID", "not-a-uuid"),
        ("JSON", "{unquoted: 1}"),
    ],
)
def test_invalid_hinted_strings_are_bad_requests(hint: str, text: str) -> None:
    body = {
        "sql": "SELECT :v",
        "parameters": [{"name": "v", "value": {"stringValue": text}, "typeHint": hint}],
    }
    assert f"not a valid {hint}" in bad("Execute", body)


def test_scalar_parameter_members() -> None:
    params = [
        {"name": "n", "value": {"isNull": True}},
        {"name": "b", "value": {"booleanValue": False}},
        {"name": "l", "value": {"longValue": -(2**63)}},
        {"name": "d", "value": {"doubleValue": 3}},
        {"name": "s", "value": {"stringValue": "x"}},
        {"name": "blob", "value": {"blobValue": base64.b64encode(b"\x00\xff").decode()}},
    ]
    request = parse_request("Execute", {"sql": "SELECT 1", "parameters": params}, database=None)
    assert isinstance(request, ExecuteStatementRequest)
    values = [p.value for p in request.parameters]
    assert values == [None, False, -(2**63), 3.0, "x", b"\x00\xff"]
    assert isinstance(values[3], float)


INT_COLUMN = ColumnMetadata("i", "i", "int4", JDBC_INTEGER)
ARRAY_COLUMN = ColumnMetadata("a", "a", "_int4", JDBC_ARRAY, array_base_column_type=JDBC_INTEGER)
JSON_COLUMN = ColumnMetadata("j", "j", "jsonb", JDBC_OTHER)


@pytest.mark.parametrize(
    ("value", "column", "expected"),
    [
        (None, None, {"isNull": True}),
        (True, None, {"booleanValue": True}),
        (2**40, INT_COLUMN, {"longValue": 2**40}),
        (1.5, None, {"doubleValue": 1.5}),
        (Decimal("1.50"), None, {"stringValue": "1.50"}),
        ("text", None, {"stringValue": "text"}),
        (b"\x00\xff", None, {"blobValue": "AP8="}),
        (date(2024, 2, 29), None, {"stringValue": "2024-02-29"}),
        (time(7, 8, 9, 123000), None, {"stringValue": "07:08:09.123"}),
        (datetime(2024, 5, 6, 7, 8, 9), None, {"stringValue": "2024-05-06 07:08:09"}),
        (
            datetime(2024, 5, 6, 9, 8, 9, 500000, tzinfo=timezone(timedelta(hours=2))),
            None,
            {"stringValue": "2024-05-06 07:08:09.5"},
        ),
        (timedelta(hours=-30, minutes=-1), None, {"stringValue": "-30:01:00"}),
        (uuid.UUID(int=1), None, {"stringValue": "00000000-0000-0000-0000-000000000001"}),
        ([1, None, 3], ARRAY_COLUMN, {"arrayValue": {"longValues": [1, None, 3]}}),
        (
            [[1.5], [2.5]],
            ARRAY_COLUMN,
            {"arrayValue": {"arrayValues": [{"doubleValues": [1.5]}, {"doubleValues": [2.5]}]}},
        ),
        (["a", None], ARRAY_COLUMN, {"arrayValue": {"stringValues": ["a", None]}}),
        ([True], ARRAY_COLUMN, {"arrayValue": {"booleanValues": [True]}}),
        ({"k": [1, "x"]}, JSON_COLUMN, {"stringValue": '{"k": [1, "x"]}'}),
        ("bare", JSON_COLUMN, {"stringValue": '"bare"'}),
        ([1, 2], JSON_COLUMN, {"stringValue": "[1, 2]"}),
    ],
)
def test_python_values_become_data_api_fields(
    value: Any, column: ColumnMetadata | None, expected: Any
) -> None:
    assert to_field(value, column) == expected


def test_result_set_options_change_numbers() -> None:
    assert to_field(Decimal("2.50"), None, "DOUBLE_OR_LONG") == {"doubleValue": 2.5}
    scale0 = ColumnMetadata("n", "n", "numeric", 2, precision=10, scale=0)
    assert to_field(Decimal("12"), scale0, "DOUBLE_OR_LONG") == {"longValue": 12}
    assert to_field(7, INT_COLUMN, long_return_type="STRING") == {"stringValue": "7"}


def test_result_fields_become_python_losslessly() -> None:
    fields: list[dict[str, Any]] = [
        {"isNull": True},
        {"booleanValue": False},
        {"longValue": 3},
        {"doubleValue": 2.5},
        {"stringValue": "12.30"},
        {"blobValue": b"\x01"},
        {"arrayValue": {"arrayValues": [{"longValues": [1]}, {"stringValues": ["a"]}]}},
    ]
    values = [field_to_python(f) for f in fields]
    assert values == [None, False, 3, 2.5, "12.30", b"\x01", [[1], ["a"]]]
    again = [to_field(v, ARRAY_COLUMN if isinstance(v, list) else None) for v in values]
    assert again[4] == {"stringValue": "12.30"}  # a decimal's text survives unchanged
    assert again[5] == {"blobValue": "AQ=="}


def test_formatted_records_are_objects_keyed_by_label() -> None:
    columns = [
        ColumnMetadata("id", "id", "int4", JDBC_INTEGER),
        ColumnMetadata("amount", "total", "numeric", 2, scale=2),
        ColumnMetadata("raw", "raw", "bytea", -2),
        ColumnMetadata("at", "at", "timestamptz", 93),
        JSON_COLUMN,
        ARRAY_COLUMN,
    ]
    rows = [[1, Decimal("9.90"), b"\xff", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), {"k": 1}, [1, 2]]]
    assert json.loads(format_records(columns, rows)) == [
        {"id": 1, "total": "9.90", "raw": "/w==", "at": "2024-01-02 03:04:05", "j": '{"k": 1}', "a": [1, 2]}
    ]
    assert json.loads(format_records(columns[:2], [[None, Decimal("9.90")]], "DOUBLE_OR_LONG")) == [
        {"id": None, "total": 9.9}
    ]
