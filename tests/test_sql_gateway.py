"""SQL through /sql/{connection}: a real boto3 rds-data client, the gateway, real PostgreSQL and MariaDB.

Agents change only the endpoint (and put their wardgate token on the requests with
``wardgate_rds_data_client``); everything else is the Data API as boto3 knows it.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.helpers import apply_policy_now, raw_recordings, recorded_events, register_agent
from wardgate.connections import Connection, ConnectionStore
from wardgate.dataapi.client import PLACEHOLDER_ARN, wardgate_rds_data_client
from wardgate.dev.stack import DEV_POLICY, DevStack

PASSWORD = "wardgate-test-pw"
URLS = {
    "postgres": "postgresql://wardgate@127.0.0.1:5432/wardgate_test",
    "mariadb": "mysql://wardgate@127.0.0.1:3306/wardgate_test",
}
SQL_POLICY: dict[str, Any] = {
    **DEV_POLICY,
    "rules": [
        *DEV_POLICY["rules"],
        {
            "name": "agents may read and write rows",
            "effect": "allow",
            "identity": {"groups": ["ci"]},
            "match": {"sql": {"kinds": ["select", "insert", "update", "transaction", "ddl"]}},
        },
        {
            "name": "nobody drops tables through wardgate",
            "effect": "deny",
            "message": "dropping tables needs a migration, not an agent",
            "match": {"sql": {"kinds": ["ddl"], "ddl_actions": ["drop"]}},
        },
        {
            "name": "updates need a where clause",
            "effect": "deny",
            "message": "an UPDATE without WHERE changes every row",
            "match": {"sql": {"kinds": ["update"], "where_missing": True}},
        },
    ],
    "settings": {"masking": {"default": {"columns": ["ssn"]}}},
}


class Sql:
    """A boto3 rds-data client on one wardgate connection, plus the table it works in."""

    def __init__(self, stack: DevStack, connection: str, token: str) -> None:
        self.client = wardgate_rds_data_client(f"{stack.url}/sql/{connection}", lambda: token)
        self.table = f"t_{secrets.token_hex(4)}"

    def execute(self, sql: str, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = self.client.execute_statement(
            resourceArn=PLACEHOLDER_ARN, secretArn=PLACEHOLDER_ARN, sql=sql.format(t=self.table), **kwargs
        )
        return response


@pytest.fixture(params=["postgres", "mariadb"])
def sql(request: pytest.FixtureRequest, stack: DevStack, token: str) -> Iterator[Sql]:
    engine = request.param
    boto3.client("secretsmanager").create_secret(
        Name=f"wardgate/{engine}",
        SecretString=json.dumps({"type": "basic", "username": "wardgate", "password": PASSWORD}),
    )
    ConnectionStore(stack.function_env()["CONNECTIONS_TABLE"]).put(
        Connection(engine, "sql", URLS[engine], f"wardgate/{engine}", allowed_groups=("ci",))
    )
    apply_policy_now(stack, SQL_POLICY)
    session = Sql(stack, engine, token)
    session.execute(
        "CREATE TABLE {t} (id INT PRIMARY KEY, name VARCHAR(40), email VARCHAR(80), card VARCHAR(30), "
        "ssn VARCHAR(11))"
    )
    session.execute(
        "INSERT INTO {t} VALUES (1, 'Ada', 'ada@example.com', '4242 4242 4242 4242', '078-05-1120'), "
        "(2, 'Grace', 'grace@example.org', '5555555555554444', '219-09-9999')"
    )
    yield session
    _drop(engine, session.table)


def _drop(engine: str, table: str) -> None:
    """Clean up directly, not through wardgate (whose policy forbids DROP)."""
    if engine == "postgres":
        import psycopg

        with psycopg.connect(
            "host=127.0.0.1 dbname=wardgate_test user=wardgate password=" + PASSWORD
        ) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    else:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", user="wardgate", password=PASSWORD, database="wardgate_test")
        with conn.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        conn.commit()
        conn.close()


def test_rows_come_back_typed_and_masked(sql: Sql):
    response = sql.execute(
        "SELECT id, name, email, card, ssn FROM {t} WHERE id > :min ORDER BY id",
        parameters=[{"name": "min", "value": {"longValue": 0}}],
        includeResultMetadata=True,
    )

    assert [c["name"] for c in response["columnMetadata"]] == ["id", "name", "email", "card", "ssn"]
    first, second = response["records"]
    assert first == [
        {"longValue": 1},
        {"stringValue": "Ada"},
        {"stringValue": "[masked:email]"},
        {"stringValue": "**** **** **** 4242"},
        {"stringValue": "[masked]"},  # a column rule: masked whole, whatever it holds
    ]
    assert second[3] == {"stringValue": "************4444"}


def test_json_records_and_the_recording_hold_only_masked_values(sql: Sql):
    response = sql.execute("SELECT email, card FROM {t} WHERE id = 1", formatRecordsAs="JSON")
    assert json.loads(response["formattedRecords"]) == [
        {"email": "[masked:email]", "card": "**** **** **** 4242"}
    ]

    record_id = response["ResponseMetadata"]["HTTPHeaders"]["x-wardgate-record-id"]
    request, event = [e for e in recorded_events() if e["record_id"] == record_id]
    assert request["operation"]["protocol"] == "sql"
    assert request["operation"]["call"] == "ExecuteStatementRequest"
    assert request["operation"]["statements"][0]["kind"] == "select"
    assert request["decision"]["outcome"] == "allow"
    assert event["response"]["result"] == {"columns": ["email", "card"], "rows": 1, "truncated": False}
    assert event["response"]["masking"]["counts"] == {"card": 1, "email": 1}
    assert "backend" in event["timings_ms"]
    recorded = raw_recordings()
    assert b"ada@example.com" not in recorded and b"4242 4242 4242 4242" not in recorded


def test_a_denied_statement_is_a_forbidden_exception_with_the_policy_message(sql: Sql):
    with pytest.raises(sql.client.exceptions.ForbiddenException) as error:
        sql.execute("DROP TABLE {t}")
    assert "dropping tables needs a migration" in error.value.response["Error"]["Message"]
    assert sql.execute("SELECT count(*) AS n FROM {t}")["records"] == [[{"longValue": 2}]]  # still there


def test_stacked_statements_are_decided_one_by_one(sql: Sql):
    with pytest.raises(sql.client.exceptions.ForbiddenException):
        sql.execute("SELECT 1; DROP TABLE {t}")


def test_a_refusal_inside_a_transaction_rolls_it_back_and_says_so(sql: Sql):
    transaction = sql.client.begin_transaction(resourceArn=PLACEHOLDER_ARN, secretArn=PLACEHOLDER_ARN)[
        "transactionId"
    ]
    sql.execute("UPDATE {t} SET name = 'Changed' WHERE id = 1", transactionId=transaction)
    with pytest.raises(sql.client.exceptions.ForbiddenException) as error:
        sql.execute("UPDATE {t} SET name = 'Everyone'", transactionId=transaction)
    assert "the transaction was rolled back" in error.value.response["Error"]["Message"]
    assert sql.execute("SELECT name FROM {t} WHERE id = 1")["records"] == [[{"stringValue": "Ada"}]]
    with pytest.raises(sql.client.exceptions.TransactionNotFoundException):
        sql.client.commit_transaction(
            resourceArn=PLACEHOLDER_ARN, secretArn=PLACEHOLDER_ARN, transactionId=transaction
        )


def test_transactions_commit_through_the_gateway(sql: Sql):
    transaction = sql.client.begin_transaction(resourceArn=PLACEHOLDER_ARN, secretArn=PLACEHOLDER_ARN)[
        "transactionId"
    ]
    sql.execute("INSERT INTO {t} (id, name) VALUES (3, 'Linus')", transactionId=transaction)
    status = sql.client.commit_transaction(
        resourceArn=PLACEHOLDER_ARN, secretArn=PLACEHOLDER_ARN, transactionId=transaction
    )
    assert status["transactionStatus"] == "Transaction Committed"
    assert sql.execute("SELECT count(*) AS n FROM {t}")["records"] == [[{"longValue": 3}]]


def test_another_agent_cannot_use_a_transaction_id(sql: Sql, stack: DevStack):
    transaction = sql.client.begin_transaction(resourceArn=PLACEHOLDER_ARN, secretArn=PLACEHOLDER_ARN)[
        "transactionId"
    ]
    other = Sql(stack, sql.client.meta.endpoint_url.rsplit("/", 1)[1], stack.issuer.mint("agent-2", ["ci"]))
    other.table = sql.table
    with pytest.raises(other.client.exceptions.TransactionNotFoundException):
        other.execute("UPDATE {t} SET name = 'x' WHERE id = 1", transactionId=transaction)


def test_database_errors_come_back_in_the_data_api_shape(sql: Sql):
    with pytest.raises(sql.client.exceptions.DatabaseErrorException) as error:
        sql.execute("SELECT nope FROM {t}")
    message = error.value.response["Error"]["Message"]
    assert "nope" in message and "127.0.0.1" not in message and PASSWORD not in message


def test_unparseable_sql_never_runs(sql: Sql):
    with pytest.raises(sql.client.exceptions.ForbiddenException) as error:
        sql.execute("SELEC * FROM {t}")
    assert "(wardgate: denied_by_policy)" in error.value.response["Error"]["Message"]


def test_the_agents_database_is_not_the_connections(sql: Sql):
    with pytest.raises(sql.client.exceptions.BadRequestException):
        sql.execute("SELECT 1", database="postgres_prod")


def test_no_token_is_access_denied(stack: DevStack, sql: Sql):
    anonymous = wardgate_rds_data_client(sql.client.meta.endpoint_url, lambda: "not-a-token")
    with pytest.raises(anonymous.exceptions.AccessDeniedException):
        anonymous.execute_statement(resourceArn=PLACEHOLDER_ARN, secretArn=PLACEHOLDER_ARN, sql="SELECT 1")


def test_a_database_that_is_down_is_a_clear_error(stack: DevStack, token: str):
    ConnectionStore(stack.function_env()["CONNECTIONS_TABLE"]).put(
        Connection("down", "sql", "postgresql://wardgate@127.0.0.1:1/wardgate_test", allowed_groups=("ci",))
    )
    apply_policy_now(stack, SQL_POLICY)
    client = wardgate_rds_data_client(f"{stack.url}/sql/down", lambda: token)
    with pytest.raises(client.exceptions.ServiceUnavailableError) as error:
        client.execute_statement(resourceArn=PLACEHOLDER_ARN, secretArn=PLACEHOLDER_ARN, sql="SELECT 1")
    assert "127.0.0.1" not in error.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "https://db.example.com/app",
            "must start with one of postgresql, postgres, mysql, mariadb, rds-data",
        ),
        ("postgresql://app:hunter2@db.example.com/app", "must not carry a password"),
    ],
)
def test_sql_connections_are_checked_when_written(url: str, message: str):
    with pytest.raises(ValueError, match=message):
        Connection("db", "sql", url)


def test_a_connection_caps_its_results_and_says_so(sql: Sql, stack: DevStack):
    engine = sql.client.meta.endpoint_url.rsplit("/", 1)[1]
    connections = ConnectionStore(stack.function_env()["CONNECTIONS_TABLE"])
    capped = Connection(
        f"{engine}-capped", "sql", URLS[engine] + "?max_rows=1", f"wardgate/{engine}", ("ci",)
    )
    connections.put(capped)
    apply_policy_now(stack, SQL_POLICY)
    client = Sql(stack, capped.name, stack.issuer.mint("agent-1", ["ci"]))
    client.table = sql.table
    response = client.execute("SELECT id FROM {t} ORDER BY id")
    assert response["records"] == [[{"longValue": 1}]]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    record_id = response["ResponseMetadata"]["HTTPHeaders"]["x-wardgate-record-id"]
    event = next(e for e in recorded_events() if e["record_id"] == record_id and e["event"] == "response")
    assert json.loads(event["response"]["body"]["data"])["truncated"] is True  # what the agent got
    assert event["response"]["result"] == {"columns": ["id"], "rows": 1, "truncated": True}


def test_a_revoked_owners_agent_is_refused_on_the_sql_path_too(sql: Sql, stack: DevStack):
    from wardgate import cli

    register_agent(stack, "etl-bot", "dana@example.com", connection="*")
    bot = Sql(stack, sql.client.meta.endpoint_url.rsplit("/", 1)[1], stack.issuer.mint("etl-bot", ["ci"]))
    bot.table = sql.table
    assert bot.execute("SELECT count(*) AS n FROM {t}")["records"] == [[{"longValue": 2}]]

    assert cli.main(["revoke", "--owner", "dana@example.com", "--reason", "offboarded", "--by", "carol"]) == 0
    time.sleep(0.6)  # the registry's cache lives 0.5 s
    with pytest.raises(bot.client.exceptions.ForbiddenException) as error:
        bot.execute("SELECT 1")
    assert error.value.response["Error"]["Code"] == "ForbiddenException"
    assert "has been revoked (wardgate: agent_revoked)" in error.value.response["Error"]["Message"]


def test_a_statement_needing_approval_is_held_then_its_retry_runs_it_once(
    sql: Sql, stack: DevStack, client, token
):
    """boto3 cannot take a 202: a held call is ApprovalPendingException; after approval the identical
    call runs once, and the next identical call needs a new approval."""
    from tests.approval_helpers import link_in, mail_to, press, wait_for_mail, wait_status

    engine = sql.client.meta.endpoint_url.rsplit("/", 1)[1]
    deletes_need_a_human = {
        "name": "deletes need a human",
        "effect": "require_approval",
        "connections": [engine],
        "approvers": ["demo-approvers"],
        "message": "deleting rows needs an on-call engineer",
        "match": {"sql": {"kinds": ["delete"]}},
    }
    settings = {**SQL_POLICY["settings"], "approval": DEV_POLICY["settings"]["approval"]}
    rules = [*SQL_POLICY["rules"], deletes_need_a_human]
    apply_policy_now(stack, {**SQL_POLICY, "rules": rules, "settings": settings})
    delete = "DELETE FROM {t} WHERE id = :id"
    params = [{"name": "id", "value": {"longValue": 2}}]

    with pytest.raises(ClientError) as held:
        sql.execute(delete, parameters=params)
    error = held.value.response["Error"]
    assert error["Code"] == "ApprovalPendingException", error
    request_id = error["Message"].split("request ")[1].split(" ")[0]
    with pytest.raises(ClientError):  # asking again while pending: the same request, no new mail
        sql.execute(delete, parameters=params)
    mail = mail_to(wait_for_mail(client, 2), "oncall@example.com")
    assert request_id in mail["text"] and "DELETE FROM" in mail["text"]
    assert len(wait_for_mail(client, 2)) == 2  # one mail per approver, for the one request

    assert press(client, link_in(mail, stack)).status_code == 200
    poll_url = error["Message"].split("(")[1].split(")")[0]
    approved = wait_status(client, poll_url, {"Authorization": f"Bearer {token}"}, "approved")
    assert "result" not in approved  # a held SQL call runs on the agent's retry, not on the poll
    assert approved["next"] == "send the identical Data API call again: it runs once"
    assert sql.execute(delete, parameters=params)["numberOfRecordsUpdated"] == 1  # the retry runs it
    assert sql.execute("SELECT count(*) AS n FROM {t}")["records"] == [[{"longValue": 1}]]

    with pytest.raises(ClientError) as again:  # spent: the same call needs a new approval
        sql.execute(delete, parameters=params)
    assert again.value.response["Error"]["Code"] == "ApprovalPendingException"
    assert request_id not in again.value.response["Error"]["Message"]

    transaction = sql.client.begin_transaction(resourceArn=PLACEHOLDER_ARN, secretArn=PLACEHOLDER_ARN)
    with pytest.raises(sql.client.exceptions.ForbiddenException) as inside:
        sql.execute(delete, parameters=params, transactionId=transaction["transactionId"])
    assert "the transaction was rolled back" in inside.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://wardgate@127.0.0.1:5432/wardgate_test",
        "postgresql://wardgate@127.0.0.1:5432/",
        "mysql://root@127.0.0.1/shop%20db",
        "mariadb://root@127.0.0.1/shop",
        "rds-data:///orders?resourceArn=arn:x&secretArn=arn:y",
        "rds-data:///orders?resourceArn=arn:x&secretArn=arn:y&dialect=mysql",
        "rds-data:///orders?dialect=postgres&dialect=mysql",
    ],
)
def test_a_connections_database_and_dialect_are_read_once_per_url_as_on_every_call(url: str) -> None:
    """The URL's database and dialect, parsed once per URL, are what parsing it each call gave."""
    from urllib.parse import unquote, urlsplit

    from wardgate.sql_gateway import _url_facts, dialect_of

    expected = (unquote(urlsplit(url).path.lstrip("/")) or None, dialect_of(url))
    assert _url_facts(url) == expected
    assert _url_facts(url) == expected  # remembered: the same answer
