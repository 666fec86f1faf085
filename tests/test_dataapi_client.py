"""``wardgate_rds_data_client``: a real boto3 rds-data client, a real HTTP server on loopback.

The server checks the bearer header and the body shape boto3 sends, and answers through the
dataapi ``handle`` with a real database behind it, so boto3's own parser reads our responses
(typed fields, blobs, errors as ``client.exceptions.<Type>``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from wardgate.dataapi.client import PLACEHOLDER_ARN, wardgate_rds_data_client
from wardgate.dataapi.mysql import MySqlBackend
from wardgate.dataapi.postgres import PostgresBackend
from wardgate.dataapi.service import DataApiResponse, handle

TOKEN = "token-abc"
PASSWORD = "wardgate-test-pw"


@dataclass
class Seen:
    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(params=["postgres", "mysql"])
def gateway(request: pytest.FixtureRequest) -> Iterator[tuple[str, Seen]]:
    backend: Any
    if request.param == "postgres":
        backend = PostgresBackend(dbname="wardgate_test", user="wardgate", password=PASSWORD)
    else:
        backend = MySqlBackend(database="wardgate_test", user="wardgate", password=PASSWORD)
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", 0)))
            seen.paths.append(self.path)
            seen.headers.append({k.lower(): v for k, v in self.headers.items()})
            seen.bodies.append(json.loads(raw or b"{}"))
            prefix = "/sql/warehouse/"
            if self.headers.get("authorization") != f"Bearer {TOKEN}" or not self.path.startswith(prefix):
                response = DataApiResponse(403, {"message": "no"}, {"x-amzn-ErrorType": "ForbiddenException"})
            else:
                operation = self.path[len(prefix) :]
                response = handle(backend, operation, raw, owner="agent-1", database="wardgate_test")
            payload = response.body_bytes()
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/sql/warehouse", seen
    finally:
        server.shutdown()
        server.server_close()
        backend.close()


ARNS = {"resourceArn": PLACEHOLDER_ARN, "secretArn": PLACEHOLDER_ARN}


def test_boto3_calls_carry_the_bearer_token_and_the_data_api_body(gateway: tuple[str, Seen]) -> None:
    url, seen = gateway
    tokens = iter(["old-token", TOKEN])
    client = wardgate_rds_data_client(url, token_provider=lambda: next(tokens))
    with pytest.raises(client.exceptions.ForbiddenException):
        client.execute_statement(**ARNS, sql="SELECT 1")  # a stale token is refused...
    response = client.execute_statement(  # ...and the provider is asked again on the next call
        **ARNS,
        database="wardgate_test",
        sql="SELECT :n AS n, :b AS b",
        parameters=[
            {"name": "n", "value": {"longValue": 5}},
            {"name": "b", "value": {"blobValue": b"\x00\xff"}},
        ],
        includeResultMetadata=True,
    )
    assert seen.paths[-1] == "/sql/warehouse/Execute"
    headers = seen.headers[-1]
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert "x-amz-date" not in headers and "AWS4-HMAC-SHA256" not in headers["authorization"]  # unsigned
    assert seen.bodies[-1] == {
        **ARNS,
        "database": "wardgate_test",
        "sql": "SELECT :n AS n, :b AS b",
        "parameters": [
            {"name": "n", "value": {"longValue": 5}},
            {"name": "b", "value": {"blobValue": "AP8="}},
        ],
        "includeResultMetadata": True,
    }
    assert response["records"] == [[{"longValue": 5}, {"blobValue": b"\x00\xff"}]]
    assert [c["label"] for c in response["columnMetadata"]] == ["n", "b"]


def test_errors_become_boto3_exceptions(gateway: tuple[str, Seen]) -> None:
    url, _ = gateway
    client = wardgate_rds_data_client(url, token_provider=lambda: TOKEN)
    with pytest.raises(client.exceptions.DatabaseErrorException) as database_error:
        client.execute_statement(**ARNS, sql="SELECT * FROM no_such_table_y")
    assert "no_such_table_y" in database_error.value.response["Error"]["Message"]
    with pytest.raises(client.exceptions.BadRequestException):
        client.execute_statement(**ARNS, sql="SELECT :missing")
    with pytest.raises(client.exceptions.TransactionNotFoundException):
        client.commit_transaction(**ARNS, transactionId="nope")


def test_transactions_and_batches_through_boto3(gateway: tuple[str, Seen]) -> None:
    url, seen = gateway
    client = wardgate_rds_data_client(url, token_provider=lambda: TOKEN)
    table = "wg_client_" + url.rsplit(":", 1)[1].split("/")[0]
    client.execute_statement(**ARNS, sql=f"CREATE TABLE {table} (v int)")
    try:
        tx = client.begin_transaction(**ARNS, database="wardgate_test")["transactionId"]
        assert seen.bodies[-1] == {**ARNS, "database": "wardgate_test"}
        sets = [[{"name": "v", "value": {"longValue": n}}] for n in (1, 2, 3)]
        batch = client.batch_execute_statement(
            **ARNS, sql=f"INSERT INTO {table} VALUES (:v)", parameterSets=sets, transactionId=tx
        )
        assert len(batch["updateResults"]) == 3
        assert (
            client.commit_transaction(**ARNS, transactionId=tx)["transactionStatus"]
            == "Transaction Committed"
        )
        rows = client.execute_statement(
            **ARNS, sql=f"SELECT v FROM {table} ORDER BY v", formatRecordsAs="JSON"
        )
        assert json.loads(rows["formattedRecords"]) == [{"v": 1}, {"v": 2}, {"v": 3}]
    finally:
        client.execute_statement(**ARNS, sql=f"DROP TABLE {table}")
