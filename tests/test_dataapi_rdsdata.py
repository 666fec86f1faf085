"""``RdsDataBackend`` against botocore's Stubber: the calls it makes and what it makes of the answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from wardgate.dataapi.backends import Limits
from wardgate.dataapi.rdsdata import RdsDataBackend
from wardgate.dataapi.service import handle

CLUSTER = "arn:aws:rds:us-east-1:123456789012:cluster:prod"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:wardgate/prod-AbCdEf"
AWS_TX = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8w"
TARGET = {"resourceArn": CLUSTER, "secretArn": SECRET, "database": "app"}


@pytest.fixture
def stubbed() -> Iterator[tuple[RdsDataBackend, Stubber]]:
    client = boto3.client(
        "rds-data", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    backend = RdsDataBackend(
        connection="prod",
        resource_arn=CLUSTER,
        secret_arn=SECRET,
        database="app",
        binding_key=b"k" * 32,
        client=client,
        limits=Limits(max_rows=2),
    )
    with Stubber(client) as stubber:
        yield backend, stubber
        stubber.assert_no_pending_responses()


def call(backend: RdsDataBackend, operation: str, body: dict[str, Any], owner: str = "agent-1") -> Any:
    return handle(backend, operation, body, owner=owner, database="app")


def test_execute_uses_the_connections_target_and_converts_the_answer(stubbed: Any) -> None:
    backend, stubber = stubbed
    metadata = [
        {"name": "id", "label": "id", "typeName": "int8", "type": -5, "nullable": 0, "isSigned": True},
        {"name": "email", "label": "email", "typeName": "text", "type": 12, "nullable": 1},
        {"name": "total", "label": "total", "typeName": "numeric", "type": 2, "precision": 10, "scale": 2},
        {"name": "raw", "label": "raw", "typeName": "bytea", "type": -2},
    ]
    stubber.add_response(
        "execute_statement",
        {
            "records": [
                [
                    {"longValue": 1},
                    {"stringValue": "a@example.com"},
                    {"stringValue": "9.90"},
                    {"blobValue": b"\x01"},
                ],
                [{"longValue": 2}, {"isNull": True}, {"stringValue": "0.00"}, {"isNull": True}],
                [{"longValue": 3}, {"isNull": True}, {"stringValue": "1.00"}, {"isNull": True}],
            ],
            "columnMetadata": metadata,
            "numberOfRecordsUpdated": 0,
        },
        {
            **TARGET,
            "sql": "SELECT * FROM users WHERE id > :id",
            "parameters": [{"name": "id", "value": {"longValue": 0}}],
            "includeResultMetadata": True,  # always: masking needs the column names
            "continueAfterTimeout": False,
            "resultSetOptions": {"decimalReturnType": "STRING", "longReturnType": "LONG"},
        },
    )
    response = call(
        backend,
        "Execute",
        {
            "resourceArn": "arn:aws:rds:us-east-1:999999999999:cluster:agent-picked",  # ignored
            "secretArn": "arn:aws:secretsmanager:us-east-1:999999999999:secret:other",  # ignored
            "sql": "SELECT * FROM users WHERE id > :id",
            "parameters": [{"name": "id", "value": {"longValue": 0}}],
        },
    )
    assert response.status == 200
    assert response.body["records"] == [
        [{"longValue": 1}, {"stringValue": "a@example.com"}, {"stringValue": "9.90"}, {"blobValue": "AQ=="}],
        [{"longValue": 2}, {"isNull": True}, {"stringValue": "0.00"}, {"isNull": True}],
    ]
    assert response.body["truncated"] is True  # max_rows=2
    assert "columnMetadata" not in response.body  # the agent did not ask for it


def test_typed_parameters_are_sent_as_boto3_expects(stubbed: Any) -> None:
    backend, stubber = stubbed
    stubber.add_response(
        "execute_statement",
        {"numberOfRecordsUpdated": 1, "generatedFields": [{"longValue": 77}]},
        {
            **TARGET,
            "sql": "INSERT INTO t VALUES (:d, :ts, :n, :u, :j, :b, :x)",
            "parameters": [
                {"name": "d", "value": {"stringValue": "2024-02-29"}, "typeHint": "DATE"},
                {
                    "name": "ts",
                    "value": {"stringValue": "2024-05-06 07:08:09.123"},
                    "typeHint": "TIMESTAMP",
                },
                {"name": "n", "value": {"stringValue": "1.50"}, "typeHint": "DECIMAL"},
                {
                    "name": "u",
                    "value": {"stringValue": "00000000-0000-0000-0000-000000000001"},
                    "typeHint": "UUID",
                },
                {"name": "j", "value": {"stringValue": '{"a":1}'}, "typeHint": "JSON"},
                {"name": "b", "value": {"blobValue": b"\x00\xff"}},
                {"name": "x", "value": {"isNull": True}},
            ],
            "includeResultMetadata": True,
            "continueAfterTimeout": True,
            "resultSetOptions": {"decimalReturnType": "DOUBLE_OR_LONG", "longReturnType": "LONG"},
        },
    )
    params = [
        {"name": "d", "value": {"stringValue": "2024-02-29"}, "typeHint": "DATE"},
        {"name": "ts", "value": {"stringValue": "2024-05-06 07:08:09.123"}, "typeHint": "TIMESTAMP"},
        {"name": "n", "value": {"stringValue": "1.50"}, "typeHint": "DECIMAL"},
        {"name": "u", "value": {"stringValue": "00000000-0000-0000-0000-000000000001"}, "typeHint": "UUID"},
        {"name": "j", "value": {"stringValue": '{"a":1}'}, "typeHint": "JSON"},
        {"name": "b", "value": {"blobValue": "AP8="}},
        {"name": "x", "value": {"isNull": True}},
    ]
    response = call(
        backend,
        "Execute",
        {
            "sql": "INSERT INTO t VALUES (:d, :ts, :n, :u, :j, :b, :x)",
            "parameters": params,
            "continueAfterTimeout": True,
            "resultSetOptions": {"decimalReturnType": "DOUBLE_OR_LONG"},
        },
    )
    assert response.status == 200, response.body
    assert response.body == {"numberOfRecordsUpdated": 1, "generatedFields": [{"longValue": 77}]}


def test_transactions_are_bound_to_their_owner(stubbed: Any) -> None:
    backend, stubber = stubbed
    stubber.add_response("begin_transaction", {"transactionId": AWS_TX}, TARGET)
    begun = call(backend, "BeginTransaction", {})
    tx = begun.body["transactionId"]
    assert tx.startswith(AWS_TX + ".") and tx != AWS_TX

    # Another identity: refused before AWS is called (the stubber has nothing queued).
    for operation, body in [
        ("Execute", {"sql": "SELECT 1", "transactionId": tx}),
        ("CommitTransaction", {"transactionId": tx}),
        ("RollbackTransaction", {"transactionId": tx}),
    ]:
        other = call(backend, operation, body, owner="agent-2")
        assert (other.status, other.body["__type"]) == (404, "TransactionNotFoundException")
    # The bare AWS id (without the tag) is no good either.
    bare = call(backend, "CommitTransaction", {"transactionId": AWS_TX})
    assert bare.status == 404

    stubber.add_response(
        "batch_execute_statement",
        {"updateResults": [{"generatedFields": []}, {"generatedFields": [{"longValue": 5}]}]},
        {
            **TARGET,
            "sql": "INSERT INTO t VALUES (:v)",
            "parameterSets": [
                [{"name": "v", "value": {"longValue": 1}}],
                [{"name": "v", "value": {"longValue": 2}}],
            ],
            "transactionId": AWS_TX,
        },
    )
    sets = [[{"name": "v", "value": {"longValue": n}}] for n in (1, 2)]
    batch = call(
        backend,
        "BatchExecute",
        {"sql": "INSERT INTO t VALUES (:v)", "parameterSets": sets, "transactionId": tx},
    )
    assert batch.body == {"updateResults": [{"generatedFields": []}, {"generatedFields": [{"longValue": 5}]}]}

    stubber.add_response(
        "commit_transaction",
        {"transactionStatus": "Transaction Committed"},
        {"resourceArn": CLUSTER, "secretArn": SECRET, "transactionId": AWS_TX},
    )
    assert call(backend, "CommitTransaction", {"transactionId": tx}).body == {
        "transactionStatus": "Transaction Committed"
    }


def test_aws_errors_keep_their_data_api_type(stubbed: Any) -> None:
    backend, stubber = stubbed
    stubber.add_client_error(
        "execute_statement",
        service_error_code="DatabaseErrorException",
        service_message='ERROR: relation "nope" does not exist\n  Position: 15; SQLState: 42P01',
        http_status_code=400,
        expected_params={
            **TARGET,
            "sql": "SELECT * FROM nope",
            "parameters": [],
            "includeResultMetadata": True,
            "continueAfterTimeout": False,
            "resultSetOptions": ANY,
        },
    )
    response = call(backend, "Execute", {"sql": "SELECT * FROM nope"})
    assert (response.status, response.body["__type"]) == (400, "DatabaseErrorException")
    assert "relation" in response.body["message"]


def test_aws_trouble_and_expired_transactions(stubbed: Any) -> None:
    backend, stubber = stubbed
    stubber.add_client_error(
        "begin_transaction", service_error_code="AccessDeniedException", http_status_code=403
    )
    denied = call(backend, "BeginTransaction", {})
    # Our IAM role's problem, not the agent's: a short 503 without AWS's text.
    assert (denied.status, denied.body["__type"]) == (503, "ServiceUnavailableError")

    stubber.add_response("begin_transaction", {"transactionId": AWS_TX}, TARGET)
    tx = call(backend, "BeginTransaction", {}).body["transactionId"]
    stubber.add_client_error(
        "rollback_transaction",
        service_error_code="NotFoundException",
        service_message=f"Transaction {AWS_TX} is not found",
        http_status_code=404,
    )
    gone = call(backend, "RollbackTransaction", {"transactionId": tx})
    assert (gone.status, gone.body["__type"]) == (404, "TransactionNotFoundException")
    assert gone.body["message"] == f"Transaction {tx} is not found"  # the agent's id, as the agent knows it


def test_a_short_binding_key_is_refused() -> None:
    with pytest.raises(ValueError, match="binding_key"):
        RdsDataBackend(
            connection="c", resource_arn=CLUSTER, secret_arn=SECRET, database="d", binding_key=b"short"
        )


def test_the_agents_database_must_be_the_connections(stubbed: Any) -> None:
    backend, _ = stubbed  # nothing queued: a refused request never reaches AWS
    response = call(backend, "Execute", {"sql": "SELECT 1", "database": "payroll"})
    assert (response.status, response.body["__type"]) == (400, "BadRequestException")


def test_backends_from_connection_urls() -> None:
    from wardgate.dataapi.factory import backend_from_url
    from wardgate.dataapi.mysql import MySqlBackend
    from wardgate.dataapi.postgres import PostgresBackend

    pg = backend_from_url(
        "wh", "postgresql://wardgate@127.0.0.1:5432/wardgate_test", password="wardgate-test-pw"
    )
    my = backend_from_url("wh", "mariadb://wardgate@127.0.0.1/wardgate_test", password="wardgate-test-pw")
    rds = backend_from_url(
        "wh", f"rds-data:///app?resourceArn={CLUSTER}&secretArn={SECRET}", binding_key=b"k" * 32
    )
    assert isinstance(pg, PostgresBackend) and pg.database == "wardgate_test"
    assert isinstance(my, MySqlBackend) and my.database == "wardgate_test"
    assert isinstance(rds, RdsDataBackend)
    assert (rds.resource_arn, rds.secret_arn, rds.database) == (CLUSTER, SECRET, "app")
    try:
        for backend in (pg, my):  # the credential really is used: both answer
            response = handle(backend, "Execute", {"sql": "SELECT 1"}, owner="o", database="wardgate_test")
            assert response.body["records"] == [[{"longValue": 1}]]
    finally:
        pg.close()
        my.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://x/db", "must use one of"),
        ("postgresql://u:secret@h/db", "must not carry a password"),
        ("postgresql://u@h/", "one database"),
        ("postgresql://h/db", "user and a host"),
        ("rds-data:///app?resourceArn=arn:x", "resourceArn and secretArn"),
        (f"rds-data:///app?resourceArn={CLUSTER}&secretArn={SECRET}", "binding_key"),
    ],
)
def test_bad_connection_urls_are_refused(url: str, expected: str) -> None:
    from wardgate.dataapi.factory import backend_from_url

    with pytest.raises(ValueError, match=expected):
        backend_from_url("wh", url)
