"""Real SQL through the local Data API backends, on PostgreSQL and on MariaDB.

The databases are provided by ``scripts/services``, which ``make test`` runs (role/user ``wardgate``,
database ``wardgate_test`` in both). Each test works in a table of its own and drops it afterwards.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from wardgate.dataapi.backends import Limits, ResultSet
from wardgate.dataapi.local import DbApiBackend
from wardgate.dataapi.mysql import MySqlBackend
from wardgate.dataapi.postgres import PostgresBackend
from wardgate.dataapi.service import DataApiResponse, handle
from wardgate.masking import mask_rows

DATABASE = "wardgate_test"
PASSWORD = "wardgate-test-pw"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_backend(
    kind: str, limits: Limits | None = None, clock: Clock | None = None, port: int | None = None
) -> Any:
    extra: dict[str, Any] = {"limits": limits}
    if clock is not None:
        extra["clock"] = clock
    if kind == "postgres":
        return PostgresBackend(
            port=port or 5432, dbname=DATABASE, user="wardgate", password=PASSWORD, **extra
        )
    return MySqlBackend(port=port or 3306, database=DATABASE, user="wardgate", password=PASSWORD, **extra)


@dataclass
class Db:
    kind: str
    backend: DbApiBackend[Any]
    table: str
    clock: Clock

    def call(
        self, operation: str, body: dict[str, Any], owner: str = "agent-1", **kw: Any
    ) -> DataApiResponse:
        return handle(self.backend, operation, body, owner=owner, database=DATABASE, **kw)

    def ok(self, operation: str, body: dict[str, Any], owner: str = "agent-1", **kw: Any) -> dict[str, Any]:
        response = self.call(operation, body, owner, **kw)
        assert response.status == 200, response.body
        return response.body

    def sql(self, sql: str, **params: Any) -> dict[str, Any]:
        parameters = [{"name": k, "value": v} for k, v in params.items()]
        return self.ok("Execute", {"sql": sql, "parameters": parameters, "includeResultMetadata": True})

    def count(self) -> int:
        return int(self.sql(f"SELECT COUNT(*) AS n FROM {self.table}")["records"][0][0]["longValue"])


@pytest.fixture(params=["postgres", "mysql"])
def db(request: pytest.FixtureRequest) -> Iterator[Db]:
    clock = Clock()
    backend = make_backend(request.param, Limits(statement_timeout_s=2.0), clock)
    table = f"wg_{uuid.uuid4().hex[:12]}"
    setup = Db(request.param, backend, table, clock)
    yield setup
    setup.call("Execute", {"sql": f"DROP TABLE IF EXISTS {table}"})
    backend.close()


def error_of(response: DataApiResponse, error_type: str, status: int) -> str:
    assert response.status == status, response.body
    assert response.body["__type"] == error_type
    assert response.headers["x-amzn-ErrorType"] == error_type
    message = str(response.body["message"])
    for leak in ("Traceback", PASSWORD, "127.0.0.1", "5432", "3306", "psycopg", "pymysql"):
        assert leak not in message
    return message


def create_typed_table(db: Db) -> None:
    if db.kind == "postgres":
        columns = (
            "id serial PRIMARY KEY, i int, b bigint, n numeric(12,3), f double precision, ok boolean, "
            "tx text, vc varchar(20) NOT NULL DEFAULT '', d date, tm time, ts timestamp, tz timestamptz, "
            "u uuid, j jsonb, bl bytea"
        )
    else:
        columns = (
            "id int AUTO_INCREMENT PRIMARY KEY, i int, b bigint, n decimal(12,3), f double, ok boolean, "
            "tx text, vc varchar(20) NOT NULL DEFAULT '', d date, tm time(3), ts datetime(3), "
            "tz timestamp(3) NULL, u char(36), j json, bl blob"
        )
    db.sql(f"CREATE TABLE {db.table} ({columns})")


TYPED_PARAMS: list[dict[str, Any]] = [
    {"name": "i", "value": {"longValue": 42}},
    {"name": "b", "value": {"longValue": 2**40}},
    {"name": "n", "value": {"stringValue": "12345.678"}, "typeHint": "DECIMAL"},
    {"name": "f", "value": {"doubleValue": 1.25}},
    {"name": "ok", "value": {"booleanValue": True}},
    {"name": "tx", "value": {"stringValue": "it's 100% :text"}},
    {"name": "vc", "value": {"stringValue": "abc"}},
    {"name": "d", "value": {"stringValue": "2024-02-29"}, "typeHint": "DATE"},
    {"name": "tm", "value": {"stringValue": "12:34:56.5"}, "typeHint": "TIME"},
    {"name": "ts", "value": {"stringValue": "2024-05-06 07:08:09.123"}, "typeHint": "TIMESTAMP"},
    {"name": "tz", "value": {"stringValue": "2024-05-06 07:08:09"}, "typeHint": "TIMESTAMP"},
    {"name": "u", "value": {"stringValue": "6f1c4f8e-4b8b-4e55-9a55-2f9c3a2b1d00"}, "typeHint": "UUID"},
    {"name": "j", "value": {"stringValue": '{"a": [1, 2]}'}, "typeHint": "JSON"},
    {"name": "bl", "value": {"blobValue": base64.b64encode(b"\x00\x01\xff").decode()}},
]
NAMES = [p["name"] for p in TYPED_PARAMS]


def insert_typed(db: Db, params: list[dict[str, Any]]) -> dict[str, Any]:
    sql = f"INSERT INTO {db.table} ({', '.join(NAMES)}) VALUES ({', '.join(':' + n for n in NAMES)})"
    return db.ok("Execute", {"sql": sql, "parameters": params})


def test_types_round_trip(db: Db) -> None:
    create_typed_table(db)
    inserted = insert_typed(db, TYPED_PARAMS)
    assert inserted["numberOfRecordsUpdated"] == 1
    nulls = [{"name": n, "value": {"isNull": True}} for n in NAMES if n != "vc"]
    insert_typed(db, [*nulls, {"name": "vc", "value": {"stringValue": ""}}])

    body = db.sql(f"SELECT {', '.join(NAMES)} FROM {db.table} ORDER BY id")
    full, empty = body["records"]
    assert dict(zip(NAMES, full, strict=True)) == {
        "i": {"longValue": 42},
        "b": {"longValue": 2**40},
        "n": {"stringValue": "12345.678"},
        "f": {"doubleValue": 1.25},
        "ok": {"booleanValue": True},
        "tx": {"stringValue": "it's 100% :text"},
        "vc": {"stringValue": "abc"},
        "d": {"stringValue": "2024-02-29"},
        "tm": {"stringValue": "12:34:56.5"},
        "ts": {"stringValue": "2024-05-06 07:08:09.123"},
        "tz": {"stringValue": "2024-05-06 07:08:09"},
        "u": {"stringValue": "6f1c4f8e-4b8b-4e55-9a55-2f9c3a2b1d00"},
        "j": {"stringValue": '{"a": [1, 2]}'},
        "bl": {"blobValue": base64.b64encode(b"\x00\x01\xff").decode()},
    }
    assert [f for n, f in zip(NAMES, empty, strict=True) if n != "vc"] == [{"isNull": True}] * (
        len(NAMES) - 1
    )


def test_postgres_arrays() -> None:
    backend = make_backend("postgres")
    try:
        body = handle(
            backend,
            "Execute",
            {
                "sql": "SELECT ARRAY[1, NULL, 3] AS ints, ARRAY['a', 'b'] AS texts, "
                "ARRAY[[1.5, 2.5], [3.5, 4.5]]::float8[] AS grid, ARRAY[true] AS flags",
                "includeResultMetadata": True,
            },
            owner="agent-1",
            database=DATABASE,
        ).body
    finally:
        backend.close()
    assert body["records"] == [
        [
            {"arrayValue": {"longValues": [1, None, 3]}},
            {"arrayValue": {"stringValues": ["a", "b"]}},
            {"arrayValue": {"arrayValues": [{"doubleValues": [1.5, 2.5]}, {"doubleValues": [3.5, 4.5]}]}},
            {"arrayValue": {"booleanValues": [True]}},
        ]
    ]
    metadata = body["columnMetadata"]
    assert [(c["typeName"], c["type"], c["arrayBaseColumnType"]) for c in metadata] == [
        ("_int4", 2003, 4),
        ("_text", 2003, 12),
        ("_float8", 2003, 8),
        ("_bool", 2003, -7),
    ]


def test_column_metadata(db: Db) -> None:
    create_typed_table(db)
    body = db.sql(f"SELECT id, i AS renamed, n, vc, tx, d, ts FROM {db.table}")
    assert body["records"] == []
    meta = {c["label"]: c for c in body["columnMetadata"]}
    assert list(meta) == ["id", "renamed", "n", "vc", "tx", "d", "ts"]
    assert meta["renamed"]["name"] == ("i" if db.kind == "mysql" else "renamed")
    for column in meta.values():
        assert column["tableName"] == db.table
        assert column["schemaName"] == ("public" if db.kind == "postgres" else DATABASE)
    assert meta["id"]["nullable"] == 0 and meta["renamed"]["nullable"] == 1 and meta["vc"]["nullable"] == 0
    assert (meta["n"]["precision"], meta["n"]["scale"]) == (12, 3)
    assert meta["vc"]["precision"] == 20
    assert meta["renamed"]["isSigned"] is True and meta["vc"]["isSigned"] is False
    expected_types = {"renamed": 4, "n": 2 if db.kind == "postgres" else 3, "vc": 12, "d": 91, "ts": 93}
    assert {k: meta[k]["type"] for k in expected_types} == expected_types
    if db.kind == "postgres":
        assert [meta[k]["typeName"] for k in ("id", "renamed", "n", "vc", "tx")] == [
            "int4",
            "int4",
            "numeric",
            "varchar",
            "text",
        ]
    else:
        assert [meta[k]["typeName"] for k in ("id", "renamed", "n", "vc", "tx")] == [
            "INT",
            "INT",
            "DECIMAL",
            "VARCHAR",
            "TEXT",
        ]
        assert meta["id"]["isAutoIncrement"] is True


def test_result_metadata_only_when_asked(db: Db) -> None:
    body = db.ok("Execute", {"sql": "SELECT 1 AS one"})
    assert body["records"] == [[{"longValue": 1}]]
    assert "columnMetadata" not in body


def test_format_records_as_json(db: Db) -> None:
    create_typed_table(db)
    insert_typed(db, TYPED_PARAMS)
    body = db.ok(
        "Execute",
        {
            "sql": f'SELECT i AS "count", n, ok, d, bl, tx FROM {db.table}'.replace(
                '"', "`" if db.kind == "mysql" else '"'
            ),
            "formatRecordsAs": "JSON",
            "includeResultMetadata": True,
        },
    )
    assert "records" not in body and "columnMetadata" not in body
    assert json.loads(body["formattedRecords"]) == [
        {"count": 42, "n": "12345.678", "ok": True, "d": "2024-02-29", "bl": "AAH/", "tx": "it's 100% :text"}
    ]


def test_result_set_options(db: Db) -> None:
    body = db.ok(
        "Execute",
        {
            "sql": "SELECT CAST(2.50 AS DECIMAL(5,2)) AS d, CAST(7 AS DECIMAL(5,0)) AS w, 9 AS l",
            "resultSetOptions": {"decimalReturnType": "DOUBLE_OR_LONG", "longReturnType": "STRING"},
        },
    )
    assert body["records"] == [[{"doubleValue": 2.5}, {"longValue": 7}, {"stringValue": "9"}]]


def test_batch_with_parameter_sets(db: Db) -> None:
    db.sql(
        f"CREATE TABLE {db.table} (id {'serial' if db.kind == 'postgres' else 'int AUTO_INCREMENT'} "
        "PRIMARY KEY, name varchar(20) NOT NULL)"
    )
    sets = [[{"name": "name", "value": {"stringValue": n}}] for n in ("a", "b", "c")]
    body = db.ok(
        "BatchExecute", {"sql": f"INSERT INTO {db.table} (name) VALUES (:name)", "parameterSets": sets}
    )
    assert len(body["updateResults"]) == 3
    if db.kind == "mysql":  # auto-increment ids; Aurora PostgreSQL returns none (use RETURNING)
        assert [r["generatedFields"] for r in body["updateResults"]] == [
            [{"longValue": 1}],
            [{"longValue": 2}],
            [{"longValue": 3}],
        ]
    else:
        assert all(r["generatedFields"] == [] for r in body["updateResults"])
    updated = db.sql(
        f"UPDATE {db.table} SET name = :n WHERE id > :id", n={"stringValue": "z"}, id={"longValue": 1}
    )
    assert updated["numberOfRecordsUpdated"] == 2
    assert db.count() == 3


def test_a_failing_batch_applies_nothing(db: Db) -> None:
    db.sql(f"CREATE TABLE {db.table} (name varchar(20) NOT NULL)")
    sets = [[{"name": "name", "value": v}] for v in ({"stringValue": "a"}, {"isNull": True})]
    response = db.call(
        "BatchExecute", {"sql": f"INSERT INTO {db.table} (name) VALUES (:name)", "parameterSets": sets}
    )
    error_of(response, "DatabaseErrorException", 400)
    assert db.count() == 0


def test_insert_returning_rows_and_count_on_postgres() -> None:
    backend = make_backend("postgres")
    table = f"wg_{uuid.uuid4().hex[:12]}"
    try:
        for sql in (f"CREATE TABLE {table} (id serial PRIMARY KEY, v text)",):
            handle(backend, "Execute", {"sql": sql}, owner="o", database=DATABASE)
        body = handle(
            backend,
            "Execute",
            {"sql": f"INSERT INTO {table} (v) VALUES ('x'), ('y') RETURNING id"},
            owner="o",
            database=DATABASE,
        ).body
        assert body["records"] == [[{"longValue": 1}], [{"longValue": 2}]]
        assert body["numberOfRecordsUpdated"] == 2
    finally:
        handle(backend, "Execute", {"sql": f"DROP TABLE {table}"}, owner="o", database=DATABASE)
        backend.close()


def test_transactions_commit_and_rollback(db: Db) -> None:
    db.sql(f"CREATE TABLE {db.table} (v int)")
    tx = db.ok("BeginTransaction", {})["transactionId"]
    assert len(tx) >= 40
    db.ok("Execute", {"sql": f"INSERT INTO {db.table} VALUES (1)", "transactionId": tx})
    inside = db.ok("Execute", {"sql": f"SELECT COUNT(*) FROM {db.table}", "transactionId": tx})
    assert inside["records"] == [[{"longValue": 1}]]
    assert db.count() == 0  # not visible outside before commit
    assert db.ok("CommitTransaction", {"transactionId": tx}) == {"transactionStatus": "Transaction Committed"}
    assert db.count() == 1

    tx2 = db.ok("BeginTransaction", {})["transactionId"]
    sets = [[{"name": "v", "value": {"longValue": n}}] for n in (2, 3)]
    db.ok(
        "BatchExecute",
        {"sql": f"INSERT INTO {db.table} VALUES (:v)", "parameterSets": sets, "transactionId": tx2},
    )
    assert db.ok("RollbackTransaction", {"transactionId": tx2}) == {"transactionStatus": "Rollback Complete"}
    assert db.count() == 1
    # A finished transaction is gone.
    error_of(db.call("CommitTransaction", {"transactionId": tx2}), "TransactionNotFoundException", 404)


def test_a_failed_statement_is_never_reported_as_committed(db: Db) -> None:
    db.sql(f"CREATE TABLE {db.table} (v int NOT NULL)")
    tx = db.ok("BeginTransaction", {})["transactionId"]
    db.ok("Execute", {"sql": f"INSERT INTO {db.table} VALUES (1)", "transactionId": tx})
    failed = db.call("Execute", {"sql": f"INSERT INTO {db.table} VALUES (NULL)", "transactionId": tx})
    error_of(failed, "DatabaseErrorException", 400)
    commit = db.call("CommitTransaction", {"transactionId": tx})
    if db.kind == "postgres":  # the failure aborted the transaction: the commit says so
        assert error_of(commit, "DatabaseErrorException", 400) == (
            "The transaction was rolled back: a statement in it failed"
        )
        assert db.count() == 0
    else:  # MySQL keeps the transaction: what succeeded is committed
        assert commit.body == {"transactionStatus": "Transaction Committed"}
        assert db.count() == 1
    error_of(db.call("RollbackTransaction", {"transactionId": tx}), "TransactionNotFoundException", 404)


def test_unknown_transaction_ids(db: Db) -> None:
    for operation, body in [
        ("Execute", {"sql": "SELECT 1", "transactionId": "made-up"}),
        ("BatchExecute", {"sql": "SELECT 1", "transactionId": "made-up"}),
        ("CommitTransaction", {"transactionId": "made-up"}),
        ("RollbackTransaction", {"transactionId": "made-up"}),
    ]:
        message = error_of(db.call(operation, body), "TransactionNotFoundException", 404)
        assert message == "Transaction made-up is not found"


def test_another_owners_transaction_is_not_found(db: Db) -> None:
    db.sql(f"CREATE TABLE {db.table} (v int)")
    tx = db.ok("BeginTransaction", {}, owner="agent-1")["transactionId"]
    insert = {"sql": f"INSERT INTO {db.table} VALUES (1)", "transactionId": tx}
    error_of(db.call("Execute", insert, owner="agent-2"), "TransactionNotFoundException", 404)
    error_of(
        db.call("CommitTransaction", {"transactionId": tx}, owner="agent-2"),
        "TransactionNotFoundException",
        404,
    )
    # Still the owner's, untouched by the attempts.
    db.ok("Execute", insert, owner="agent-1")
    db.ok("CommitTransaction", {"transactionId": tx}, owner="agent-1")
    assert db.count() == 1


def test_idle_transactions_expire_and_are_rolled_back(db: Db) -> None:
    db.sql(f"CREATE TABLE {db.table} (v int)")
    tx = db.ok("BeginTransaction", {})["transactionId"]
    db.ok("Execute", {"sql": f"INSERT INTO {db.table} VALUES (1)", "transactionId": tx})
    db.clock.now += 179  # still alive just under 3 minutes idle, and the call refreshes it
    db.ok("Execute", {"sql": f"INSERT INTO {db.table} VALUES (2)", "transactionId": tx})
    db.clock.now += 181
    assert db.count() == 0  # any call reaps: the expired transaction was rolled back
    assert len(db.backend.transactions) == 0
    error_of(db.call("CommitTransaction", {"transactionId": tx}), "TransactionNotFoundException", 404)
    assert db.count() == 0


def test_transactions_end_at_their_maximum_lifetime(db: Db) -> None:
    backend = make_backend(db.kind, Limits(max_transaction_s=60), db.clock)
    try:
        tx = handle(backend, "BeginTransaction", {}, owner="o", database=DATABASE).body["transactionId"]
        for _ in range(3):  # kept busy, never idle for long...
            db.clock.now += 25
            handle(backend, "Execute", {"sql": "SELECT 1", "transactionId": tx}, owner="o", database=DATABASE)
        response = handle(
            backend, "Execute", {"sql": "SELECT 1", "transactionId": tx}, owner="o", database=DATABASE
        )
        error_of(response, "TransactionNotFoundException", 404)  # ...but 75 s > 60 s
    finally:
        backend.close()


def test_syntax_and_database_errors_in_the_data_api_shape(db: Db) -> None:
    syntax = error_of(db.call("Execute", {"sql": "SELEC 1"}), "DatabaseErrorException", 400)
    assert "syntax" in syntax.lower()
    missing = error_of(
        db.call("Execute", {"sql": "SELECT * FROM no_such_table_x"}), "DatabaseErrorException", 400
    )
    assert "no_such_table_x" in missing
    if db.kind == "postgres":
        assert "SQLState: 42P01" in missing
    else:
        assert "Error code: 1146" in missing
    # The pooled connection is still usable afterwards.
    assert db.ok("Execute", {"sql": "SELECT 1"})["records"] == [[{"longValue": 1}]]


def test_one_statement_per_call(db: Db) -> None:
    # Stacked statements are refused: one call, one statement, one result.
    message = error_of(db.call("Execute", {"sql": "SELECT 1; SELECT 2"}), "BadRequestException", 400)
    assert "one SQL statement per call" in message
    assert db.ok("Execute", {"sql": "SELECT 1; -- done\n"})["records"] == [[{"longValue": 1}]]


def test_a_transaction_whose_connection_died_is_gone(db: Db) -> None:
    tx = db.ok("BeginTransaction", {})["transactionId"]
    pid_sql = "SELECT pg_backend_pid()" if db.kind == "postgres" else "SELECT CONNECTION_ID()"
    pid = db.ok("Execute", {"sql": pid_sql, "transactionId": tx})["records"][0][0]["longValue"]
    kill = f"SELECT pg_terminate_backend({pid})" if db.kind == "postgres" else f"KILL {pid}"
    db.ok("Execute", {"sql": kill})
    lost = db.call("Execute", {"sql": "SELECT 1", "transactionId": tx})
    assert (
        error_of(lost, "ServiceUnavailableError", 503)
        == "The database is not available: the connection was lost"
    )
    error_of(
        db.call("Execute", {"sql": "SELECT 1", "transactionId": tx}), "TransactionNotFoundException", 404
    )


def test_bad_parameters_are_bad_requests(db: Db) -> None:
    message = error_of(db.call("Execute", {"sql": "SELECT :a, :b"}), "BadRequestException", 400)
    assert "a, b" in message
    wrong_db = db.call("Execute", {"sql": "SELECT 1", "database": "other"})
    error_of(wrong_db, "BadRequestException", 400)


def test_statement_timeout_is_applied_by_the_server(db: Db) -> None:
    backend = make_backend(db.kind, Limits(statement_timeout_s=0.3))
    try:
        sleep = "SELECT pg_sleep(5)" if db.kind == "postgres" else "SELECT SLEEP(5)"
        response = handle(backend, "Execute", {"sql": sleep}, owner="o", database=DATABASE)
        error_of(response, "StatementTimeoutException", 400)
        ok = handle(backend, "Execute", {"sql": "SELECT 1"}, owner="o", database=DATABASE)
        assert ok.status == 200
    finally:
        backend.close()


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_a_database_that_is_down_is_a_clear_503(kind: str) -> None:
    backend = make_backend(kind, Limits(connect_timeout_s=1), port=1)  # nothing listens on port 1
    try:
        for operation, body in [("Execute", {"sql": "SELECT 1"}), ("BeginTransaction", {})]:
            response = handle(backend, operation, body, owner="o", database=DATABASE)
            message = error_of(response, "ServiceUnavailableError", 503)
            assert message == "The database is not available: could not connect"
    finally:
        backend.close()


def test_dead_pooled_connections_are_replaced(db: Db) -> None:
    pid_sql = "SELECT pg_backend_pid()" if db.kind == "postgres" else "SELECT CONNECTION_ID()"
    first = db.ok("Execute", {"sql": pid_sql})["records"][0][0]["longValue"]
    killer = make_backend(db.kind)
    try:
        kill = f"SELECT pg_terminate_backend({first})" if db.kind == "postgres" else f"KILL {first}"
        handle(killer, "Execute", {"sql": kill}, owner="o", database=DATABASE)
    finally:
        killer.close()
    db.clock.now += 30  # idle long enough to be checked before reuse
    second = db.ok("Execute", {"sql": pid_sql})["records"][0][0]["longValue"]
    assert second != first


def test_row_cap_truncates(db: Db) -> None:
    backend = make_backend(db.kind, Limits(max_rows=10))
    series = (
        "SELECT g FROM generate_series(1, 50) AS g"
        if db.kind == "postgres"
        else "SELECT seq AS g FROM seq_1_to_50"  # MariaDB's sequence engine
    )
    try:
        body = handle(backend, "Execute", {"sql": series}, owner="o", database=DATABASE).body
        assert [r[0]["longValue"] for r in body["records"]] == list(range(1, 11))
        assert body["truncated"] is True
        small = handle(backend, "Execute", {"sql": "SELECT 1"}, owner="o", database=DATABASE).body
        assert "truncated" not in small
    finally:
        backend.close()


def test_byte_cap_truncates(db: Db) -> None:
    backend = make_backend(db.kind, Limits(max_bytes=3000))
    wide = (
        "SELECT repeat('x', 500) AS w FROM generate_series(1, 20)"
        if db.kind == "postgres"
        else "SELECT repeat('x', 500) AS w FROM seq_1_to_20"
    )
    try:
        body = handle(backend, "Execute", {"sql": wide}, owner="o", database=DATABASE).body
        assert 1 <= len(body["records"]) < 20
        assert len(json.dumps(body["records"])) <= 3000
        assert body["truncated"] is True
    finally:
        backend.close()


def test_rows_can_be_masked_between_backend_and_response(db: Db) -> None:
    def mask(result: ResultSet) -> ResultSet:
        return result.with_rows(mask_rows(result.column_names, result.rows).value)

    body = db.ok(
        "Execute",
        {"sql": "SELECT 'jane.doe@example.com' AS email, '4111 1111 1111 1111' AS card, 7 AS n"},
        on_result=mask,
    )
    email, card, n = body["records"][0]
    assert "jane.doe@example.com" not in email["stringValue"]
    assert "4111 1111 1111 1111" not in card["stringValue"]
    assert n == {"longValue": 7}
