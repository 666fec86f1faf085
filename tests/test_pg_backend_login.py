"""The TCP gateway logs in to PostgreSQL as the connection says, never as the agent: SCRAM-SHA-256,
md5, TLS verified against the connection's CA. The local server's password and TLS logins are set up
by scripts/pg-test-auth (run by `make test`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
import pytest

from tests.helpers import apply_policy_now
from tests.test_pg_gateway import PG_POLICY, PgGateway
from wardgate import aws
from wardgate.connections import Connection, ConnectionStore
from wardgate.dev.stack import DevStack

PASSWORD = "wardgate-login-pw"
TEST_CA = Path("/etc/postgresql/wardgate-test-tls/ca.pem")


def _connection(name: str, url: str, password: str, ca_pem: str | None = None) -> None:
    secret: dict[str, str] = {"type": "basic", "username": "ignored", "password": password}
    if ca_pem:
        secret["ca_pem"] = ca_pem
    aws.client("secretsmanager").create_secret(Name=f"wardgate/{name}", SecretString=json.dumps(secret))
    ConnectionStore(os.environ["CONNECTIONS_TABLE"]).put(
        Connection(name, "sql", url, f"wardgate/{name}", allowed_groups=("ci",))
    )


@pytest.fixture
def gateway(stack: DevStack, token: str) -> PgGateway:
    rules = [
        {**rule, "connections": ["*"]} if rule["name"].startswith("agents may use") else rule
        for rule in PG_POLICY["rules"]
    ]
    apply_policy_now(stack, {**PG_POLICY, "rules": rules})
    return PgGateway(stack, token)


def _whoami(gateway: PgGateway, connection: str) -> tuple[str, bool]:
    with psycopg.connect(gateway.dsn(dbname=connection), autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone()
        assert row is not None
        return str(row[0]), bool(row[1])


def test_scram_and_md5_logins_use_the_connections_password(gateway: PgGateway):
    _connection("pg-scram", "postgresql://wardgate_scram@127.0.0.1:5432/wardgate_test", PASSWORD)
    _connection("pg-md5", "postgresql://wardgate_md5@127.0.0.1:5432/wardgate_test", PASSWORD)
    assert _whoami(gateway, "pg-scram") == ("wardgate_scram", False)
    assert _whoami(gateway, "pg-md5") == ("wardgate_md5", False)


def test_a_wrong_database_password_is_a_clear_fatal_not_the_agents_fault(gateway: PgGateway):
    _connection("pg-wrong", "postgresql://wardgate_scram@127.0.0.1:5432/wardgate_test", "not-it")
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(gateway.dsn(dbname="pg-wrong"))
    message = str(refused.value)
    assert (
        "the database refused the gateway's login" in message and "password authentication failed" in message
    )
    assert "not-it" not in message


def test_the_databases_certificate_is_verified_against_the_connections_ca(gateway: PgGateway):
    ca = TEST_CA.read_text()
    tls = "postgresql://wardgate_tls@127.0.0.1:5432/wardgate_test"
    _connection("pg-tls", f"{tls}?sslmode=verify-full", PASSWORD, ca)
    assert _whoami(gateway, "pg-tls") == ("wardgate_tls", True)

    assert gateway.stack.certificates is not None
    other_ca = gateway.stack.certificates.ca_file.read_text()  # not the database's CA
    _connection("pg-tls-other-ca", f"{tls}?sslmode=verify-full", PASSWORD, other_ca)
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(gateway.dsn(dbname="pg-tls-other-ca"))
    assert "TLS with the database at 127.0.0.1:5432 failed" in str(refused.value)

    _connection("pg-tls-require", f"{tls}?sslmode=require", PASSWORD)  # encrypted, not verified
    assert _whoami(gateway, "pg-tls-require") == ("wardgate_tls", True)


def test_rds_iam_tokens_are_made_by_the_tasks_role_for_the_connections_user(monkeypatch):
    from wardgate.tcp.postgres.backend import PgTarget, rds_iam_token

    for key, value in {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(key, value)
    aws.reset_clients()
    url = (
        "postgresql://app@db.example.internal:5432/billing?auth=rds-iam&sslmode=verify-full&region=eu-west-1"
    )
    target = PgTarget.from_url(url)
    token = rds_iam_token(target)
    assert token.startswith("db.example.internal:5432/?Action=connect&DBUser=app&")
    assert "X-Amz-Signature=" in token and "eu-west-1" in token
    with pytest.raises(ValueError, match="needs sslmode=verify-full"):
        PgTarget.from_url("postgresql://app@db.example.internal/billing?auth=rds-iam&sslmode=require")
    aws.reset_clients()
