"""PostgreSQL through the TCP gateway, with real clients (psql, psycopg 3, asyncpg, pgbench) against
the local PostgreSQL: admission, decisions, masking, recording, approvals, the kill switch, lifetimes
and bad input. The gateway runs as in ``wardgate dev`` (tcp.server.GatewayThread) over moto."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.helpers import apply_policy_now, raw_recordings, recorded_events, register_agent
from tests.test_sql_gateway import SQL_POLICY
from wardgate import aws
from wardgate.connections import Connection, ConnectionStore
from wardgate.dev.stack import DEV_POLICY, DevStack

CONNECTION = "pg-test"
TABLE = "pg_gateway_people"
PG_POLICY: dict[str, Any] = {  # the Data API tests' policy (its guardrails), with this connection's kinds
    **SQL_POLICY,
    "rules": [
        *SQL_POLICY["rules"],
        {
            "name": "agents may use the test database",
            "effect": "allow",
            "connections": [CONNECTION],
            "identity": {"groups": ["ci"]},
            "match": {
                "sql": {
                    "kinds": ["select", "insert", "update", "delete", "transaction", "ddl", "copy", "set"]
                }
            },
        },
    ],
    "settings": {**DEV_POLICY["settings"], **SQL_POLICY["settings"]},
}


def _admin(sql: str) -> None:
    with psycopg.connect(
        "host=127.0.0.1 port=5432 dbname=wardgate_test user=wardgate", autocommit=True
    ) as db:
        db.execute(sql)


@pytest.fixture
def pg(stack: DevStack, token: str) -> Iterator[PgGateway]:
    aws.client("secretsmanager").create_secret(
        Name=f"wardgate/{CONNECTION}",
        SecretString=json.dumps({"type": "basic", "username": "wardgate", "password": "wardgate-test-pw"}),
    )
    store = ConnectionStore(os.environ["CONNECTIONS_TABLE"])
    store.put(
        Connection(
            CONNECTION,
            "sql",
            "postgresql://wardgate@127.0.0.1:5432/wardgate_test",
            f"wardgate/{CONNECTION}",
            allowed_groups=("ci",),
        )
    )
    apply_policy_now(stack, PG_POLICY)
    _admin(f"DROP TABLE IF EXISTS {TABLE}")
    _admin(
        f"CREATE TABLE {TABLE} (id int PRIMARY KEY, name text, email text, ssn text, card bigint);"
        f"INSERT INTO {TABLE} VALUES (1, 'Ada', 'ada@example.com', '078-05-1120', 4242424242424242),"
        "(2, 'Bob', 'nobody', '219-09-9999', 7)"
    )
    yield PgGateway(stack, token)
    _admin(f"DROP TABLE IF EXISTS {TABLE}")


@dataclasses.dataclass
class PgGateway:
    stack: DevStack
    token: str

    @property
    def port(self) -> int:
        return self.stack.pg_port_bound

    def dsn(self, token: str | None = None, dbname: str = CONNECTION, sslmode: str = "verify-full") -> str:
        assert self.stack.certificates is not None
        return (
            f"host=127.0.0.1 port={self.port} dbname={dbname} user=agent-1 sslmode={sslmode} "
            f"sslrootcert={self.stack.certificates.ca_file} password={token or self.token}"
        )

    def connect(self, autocommit: bool = True, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn(), autocommit=autocommit, **kwargs)

    def psql(
        self, *args: str, token: str | None = None, sslmode: str = "verify-full"
    ) -> subprocess.CompletedProcess[str]:
        assert self.stack.certificates is not None
        conninfo = (
            f"host=127.0.0.1 port={self.port} dbname={CONNECTION} user=agent-1 sslmode={sslmode} "
            f"sslrootcert={self.stack.certificates.ca_file}"
        )
        env = {**os.environ, "PGPASSWORD": token or self.token, "PGCONNECT_TIMEOUT": "10"}
        return subprocess.run(
            ["psql", conninfo, "-X", "-v", "ON_ERROR_STOP=1", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def services(self) -> Any:
        assert self.stack.tcp is not None
        return self.stack.tcp.services

    def set_limits(self, **changes: Any) -> None:
        services = self.services()
        services.limits = dataclasses.replace(services.limits, **changes)
        services.sessions.limits = services.limits


def _events(kind: str | None = None) -> list[dict[str, Any]]:
    events = [e for e in recorded_events() if e.get("protocol") == "postgres"]
    return [e for e in events if kind is None or e["event"] == kind]


# ---------------------------------------------------------------------------------------------------
# unchanged clients


def test_psql_runs_statements_and_refusals_keep_the_session(pg: PgGateway):
    result = pg.psql("-c", f"SELECT id, name FROM {TABLE} ORDER BY id", "-c", "SELECT 2 AS two")
    assert result.returncode == 0, result.stderr
    assert "Ada" in result.stdout and "two" in result.stdout

    script = f"SELECT 1 AS before; DROP TABLE {TABLE};"
    refused = pg.psql("-c", script)
    assert refused.returncode != 0
    assert "dropping tables needs a migration, not an agent" in refused.stderr
    assert "record " in refused.stderr  # the record id, to find it in the recordings
    # One Query: the allowed SELECT did not run either, and the table is still there.
    assert "before" not in refused.stdout
    assert pg.psql("-c", f"SELECT count(*) FROM {TABLE}").returncode == 0

    # The session goes on after a refusal (psql without ON_ERROR_STOP).
    session = subprocess.run(
        ["psql", pg.dsn(), "-X", "-c", f"DROP TABLE {TABLE}", "-c", "SELECT 'still here' AS s"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "still here" in session.stdout and "42501" not in session.stdout


def test_tls_is_required_and_the_certificate_verifies(pg: PgGateway):
    plain = pg.psql("-c", "SELECT 1", sslmode="disable")
    assert plain.returncode != 0 and "wardgate requires TLS" in plain.stderr
    with pg.connect() as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_psycopg_simple_extended_binary_and_pipeline(pg: PgGateway):
    with pg.connect() as conn:
        assert conn.execute(f"SELECT name FROM {TABLE} WHERE id = %s", (2,)).fetchone() == ("Bob",)
        with conn.cursor(binary=True) as cur:
            cur.execute(f"SELECT id, name, card FROM {TABLE} WHERE id = %s", (2,))
            assert cur.fetchone() == (2, "Bob", 7)
        conn.execute(f"INSERT INTO {TABLE} (id, name) VALUES (%s, %s)", (3, "Cy"))
        with conn.pipeline():
            first = conn.execute(f"SELECT name FROM {TABLE} WHERE id = %s", (1,))
            second = conn.execute(f"UPDATE {TABLE} SET name = %s WHERE id = %s", ("Cyd", 3))
            third = conn.execute(f"SELECT name FROM {TABLE} WHERE id = %s", (3,))
        assert first.fetchone() == ("Ada",)
        assert second.rowcount == 1
        assert third.fetchone() == ("Cyd",)


def test_a_refusal_inside_a_pipeline_lands_in_its_place(pg: PgGateway):
    with pg.connect() as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused, conn.pipeline():
            ok = conn.execute(f"SELECT name FROM {TABLE} WHERE id = %s", (1,))
            conn.execute(f"UPDATE {TABLE} SET name = %s", ("everyone",))  # no WHERE: refused
        assert "an UPDATE without WHERE changes every row" in str(refused.value)
        assert ok.fetchone() == ("Ada",)
        assert conn.execute(f"SELECT count(*) FROM {TABLE} WHERE name = 'everyone'").fetchone() == (0,)


def test_a_refusal_aborts_the_transaction_as_postgresql_would(pg: PgGateway):
    with pg.connect() as conn:
        conn.autocommit = False
        conn.execute(f"INSERT INTO {TABLE} (id, name) VALUES (10, 'Dee')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"DROP TABLE {TABLE}")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute(f"SELECT count(*) FROM {TABLE} WHERE id = 10").fetchone() == (0,)


def test_copy_in_and_out_stream_and_are_masked(pg: PgGateway):
    with pg.connect() as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported) as refused:  # rows of unknown columns
            conn.execute(f"COPY {TABLE} TO STDOUT").fetchall()
        assert "COPY output cannot be masked by column rules" in str(refused.value)
    without_column_rules = {**PG_POLICY["settings"], "masking": {}}
    apply_policy_now(pg.stack, {**PG_POLICY, "settings": without_column_rules})
    with pg.connect() as conn:
        with conn.cursor().copy(f"COPY {TABLE} (id, name, email) FROM STDIN") as copy:
            for i in range(100, 150):
                copy.write_row((i, f"n{i}", f"user{i}@example.com"))
        assert conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone() == (52,)
        out = b""
        with conn.cursor().copy(f"COPY (SELECT id, email FROM {TABLE} WHERE id >= 100) TO STDOUT") as copy:
            for chunk in copy:
                out += bytes(chunk)
        assert out.count(b"\n") == 50
        assert b"@example.com" not in out and b"[masked:email]" in out


def test_cancel_reaches_the_right_backend(pg: PgGateway):
    with pg.connect() as conn:
        timer = threading.Timer(0.5, conn.cancel_safe)
        timer.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(20)")
        assert time.monotonic() - started < 10
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_asyncpg_works_unchanged(pg: PgGateway):
    import asyncpg

    async def main() -> None:
        assert pg.stack.certificates is not None
        context = ssl.create_default_context(cafile=str(pg.stack.certificates.ca_file))
        conn = await asyncpg.connect(
            host="127.0.0.1",
            port=pg.port,
            user="agent-1",
            database=CONNECTION,
            password=pg.token,
            ssl=context,
        )
        try:
            rows = await conn.fetch(f"SELECT id, name, email, card FROM {TABLE} ORDER BY id")
            assert [r["name"] for r in rows] == ["Ada", "Bob"]
            assert rows[0]["email"] == "[masked:email]"  # binary text values are masked too
            assert rows[0]["card"] == 0  # a card number stored as bigint is zeroed
            assert await conn.fetchval(f"SELECT name FROM {TABLE} WHERE id = $1", 2) == "Bob"
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f"DROP TABLE {TABLE}")
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()

    asyncio.run(main())


def test_pgbench_select_only_and_tpcb_like(pg: PgGateway):
    env = {**os.environ, "PGPASSWORD": pg.token, "PGSSLMODE": "require"}
    base = ["-h", "127.0.0.1", "-p", str(pg.port), "-U", "agent-1"]
    for table in ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"):
        _admin(f"DROP TABLE IF EXISTS {table}")
    try:
        _admin(
            "CREATE TABLE pgbench_branches (bid int primary key, bbalance int, filler char(88));"
            "CREATE TABLE pgbench_tellers (tid int primary key, bid int, tbalance int, filler char(84));"
            "CREATE TABLE pgbench_accounts (aid int primary key, bid int, abalance int, filler char(84));"
            "CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, "
            "filler char(22));"
            "INSERT INTO pgbench_branches SELECT 1, 0; "
            "INSERT INTO pgbench_tellers SELECT g, 1, 0 FROM generate_series(1, 10) g;"
            "INSERT INTO pgbench_accounts SELECT g, 1, 0 FROM generate_series(1, 100000) g"
        )
        for mode in ("simple", "extended", "prepared"):
            for script in ("-S", "-N"):
                run = subprocess.run(
                    ["pgbench", *base, "-n", script, "-M", mode, "-c", "2", "-t", "20", CONNECTION],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert run.returncode == 0, (mode, script, run.stdout, run.stderr)
                assert "number of failed transactions: 0" in run.stdout, run.stdout
    finally:
        for table in ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"):
            _admin(f"DROP TABLE IF EXISTS {table}")


# ---------------------------------------------------------------------------------------------------
# masking and recording


def test_rows_are_masked_by_content_and_column_in_text_and_binary(pg: PgGateway):
    with pg.connect() as conn:
        for binary in (False, True):
            with conn.cursor(binary=binary) as cur:
                cur.execute(f"SELECT name, email, ssn, card FROM {TABLE} WHERE id = %s", (1,))
                name, email, ssn, card = cur.fetchone()  # type: ignore[misc]
                assert name == "Ada"
                assert email == "[masked:email]"
                assert ssn != "078-05-1120" and "078-05-1120" not in str(ssn)
                assert "4242424242424242" not in str(card)
        notice = conn.execute("SELECT 'call +1 212-555-9479' AS note").fetchone()
        assert notice is not None and "212-555-9479" not in notice[0]


def test_a_session_is_recorded_statement_by_statement(pg: PgGateway):
    with pg.connect() as conn:
        conn.execute(f"SELECT email FROM {TABLE} WHERE name = %s", ("Ada",)).fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"DROP TABLE {TABLE}")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not _events("session_end"):
        time.sleep(0.05)
    events = _events()
    kinds = [e["event"] for e in events]
    assert kinds[0] == "session_start" and kinds[-1] == "session_end", kinds
    assert {"statement", "result", "statement_refused"} <= set(kinds)
    start = events[0]
    assert start["identity"]["subject"] == "agent-1" and start["connection"] == CONNECTION
    assert len({e["record_id"] for e in events}) == 1
    assert [e["seq"] for e in sorted(events, key=lambda e: e["seq"])] == list(range(1, len(events) + 1))
    statement = next(
        e for e in events if e["event"] == "statement" and "email" in e["operation"]["statements"][0]["text"]
    )
    assert statement["parameters"] == ["Ada"]
    assert statement["decision"]["outcome"] == "allow" and statement["decision"]["policy_version"]
    result = next(e for e in events if e["event"] == "result" and e["statement_seq"] == statement["seq"])
    assert result["rows"] == 1 and result["first_rows"] == [["[masked:email]"]]
    assert result["masked"] == {"email": 1}
    refused = next(e for e in events if e["event"] == "statement_refused")
    assert refused["decision"]["outcome"] == "deny" and refused["operation"]["statements"][0]["kind"] == "ddl"
    end = events[-1]
    assert end["statements"] >= 1 and end["refused"] == 1
    assert b"ada@example.com" not in raw_recordings() and pg.token.encode() not in raw_recordings()

    from wardgate import cli

    assert cli.main(["recordings", "show", start["record_id"]]) == 0


# ---------------------------------------------------------------------------------------------------
# approvals, the kill switch and lifetimes


def test_a_statement_needing_approval_runs_once_after_it_is_approved(pg: PgGateway, client):
    from tests.approval_helpers import link_in, mail_to, press, wait_for_mail, wait_status

    rule = {
        "name": "deletes need a human",
        "effect": "require_approval",
        "connections": [CONNECTION],
        "approvers": ["demo-approvers"],
        "message": "deleting rows needs an on-call engineer",
        "match": {"sql": {"kinds": ["delete"]}},
    }
    apply_policy_now(pg.stack, {**PG_POLICY, "rules": [*PG_POLICY["rules"], rule]})
    delete = f"DELETE FROM {TABLE} WHERE id = 2"
    with pg.connect() as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as held:
            conn.execute(delete)
        message = str(held.value)
        assert "needs approval: request" in message and "/requests/" in message
        request_id = message.split("request ")[1].split(" ")[0]
        poll_url = message.split("(")[1].split(")")[0]
        mail = mail_to(wait_for_mail(client, 2), "oncall@example.com")
        assert request_id in mail["text"] and "DELETE FROM" in mail["text"]
        assert press(client, link_in(mail, pg.stack)).status_code == 200
        wait_status(client, poll_url, {"Authorization": f"Bearer {pg.token}"}, "approved")

        assert conn.execute(delete).rowcount == 1  # the identical statement runs, once
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as again:
            conn.execute(delete)
        assert request_id not in str(again.value)  # spent: a new request
        conn.autocommit = False
        conn.execute("SELECT 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as inside:
            conn.execute(delete)
        assert "inside a transaction" in str(inside.value)


def test_revoking_the_agent_ends_its_idle_session_within_a_second(pg: PgGateway):
    register_agent(pg.stack, "agent-1", "alice@example.com", CONNECTION)
    with pg.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        from wardgate import cli

        assert (
            cli.main(["revoke", "--owner", "alice@example.com", "--reason", "offboarded", "--by", "root"])
            == 0
        )
        revoked_at = time.monotonic()
        deadline = revoked_at + 3
        while time.monotonic() < deadline and len(pg.services().sessions):
            time.sleep(0.02)
        assert len(pg.services().sessions) == 0
        assert time.monotonic() - revoked_at < 1.0
        with pytest.raises(psycopg.OperationalError) as ended:
            conn.execute("SELECT 1")
        assert "revoked" in str(ended.value)
    with pytest.raises(psycopg.OperationalError) as refused:
        pg.connect()
    assert "revoked" in str(refused.value)


def test_a_session_ends_when_its_token_has_expired_past_the_grace(pg: PgGateway):
    assert pg.stack.issuer is not None
    short = pg.stack.issuer.mint("agent-1", ["ci"], ttl=2)
    pg.set_limits(token_grace_s=0.5)
    with psycopg.connect(pg.dsn(short), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        time.sleep(3.5)
        with pytest.raises(psycopg.OperationalError) as ended:
            conn.execute("SELECT 1")
        assert "token expired" in str(ended.value)


def test_sessions_per_identity_are_limited(pg: PgGateway):
    pg.set_limits(max_sessions_per_identity=2)
    with pg.connect(), pg.connect():
        with pytest.raises(psycopg.OperationalError) as refused:
            pg.connect()
        assert "already has 2 open sessions" in str(refused.value)


# ---------------------------------------------------------------------------------------------------
# bad input: a clear error, and everyone else is still served


def test_bad_tokens_and_unknown_connections_are_fatal_with_a_reason(pg: PgGateway):
    assert pg.stack.issuer is not None
    expired = pg.stack.issuer.mint("agent-1", ["ci"], claims={"exp": 1000, "iat": 900, "nbf": 900})
    for token, state, text in (
        ("not-a-token", "28P01", "not a well-formed JWT"),
        (expired, "28P01", "expired"),
    ):
        with pytest.raises(psycopg.OperationalError) as refused:
            psycopg.connect(pg.dsn(token))
        assert text in str(refused.value), str(refused.value)
    with pytest.raises(psycopg.OperationalError) as unknown:
        psycopg.connect(pg.dsn(dbname="no-such-connection"))
    assert "no connection named 'no-such-connection'" in str(unknown.value)
    outsider = pg.stack.issuer.mint("agent-9", ["contractors"])
    with pytest.raises(psycopg.OperationalError) as not_allowed:
        psycopg.connect(pg.dsn(outsider))
    assert "in none of the groups allowed on connection 'pg-test'" in str(not_allowed.value)
    with pg.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_database_that_is_down_is_a_clear_fatal(pg: PgGateway):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    ConnectionStore(os.environ["CONNECTIONS_TABLE"]).put(
        Connection(
            "pg-down", "sql", f"postgresql://wardgate@127.0.0.1:{port}/x", None, allowed_groups=("ci",)
        )
    )
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError) as down:
        psycopg.connect(pg.dsn(dbname="pg-down"))
    assert "unreachable" in str(down.value) and time.monotonic() - started < 5


def _raw(pg: PgGateway) -> socket.socket:
    return socket.create_connection(("127.0.0.1", pg.port), timeout=5)


def _read_all(sock: socket.socket) -> bytes:
    """Everything the gateway sends until it closes the connection."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionError, TimeoutError):
        pass
    return data


def test_garbage_oversized_and_stalled_clients_get_an_error_and_others_are_served(pg: PgGateway):
    pg.set_limits(startup_timeout_s=1.0)
    with _raw(pg) as garbage:
        garbage.sendall(b"\x00\x00\x00\x08garbage!" * 4)
        reply = _read_all(garbage)
        assert b"SFATAL" in reply and b"protocol" in reply
    with _raw(pg) as huge:
        huge.sendall((2**30).to_bytes(4, "big") + b"\x00\x03\x00\x00")
        assert b"08P01" in _read_all(huge)
    with _raw(pg) as plain:  # a plain StartupMessage without TLS
        params = b"user\x00a\x00database\x00pg-test\x00\x00"
        plain.sendall((len(params) + 8).to_bytes(4, "big") + (196608).to_bytes(4, "big") + params)
        reply = _read_all(plain)
        assert b"28000" in reply and b"requires TLS" in reply
    with _raw(pg) as stalled:
        started = time.monotonic()
        stalled.sendall(b"\x00\x00")  # half a length word, then nothing
        reply = _read_all(stalled)
        assert b"did not start within" in reply and time.monotonic() - started < 4
    with pg.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_client_message_over_the_limit_ends_only_that_session(pg: PgGateway):
    pg.set_limits(max_message_bytes=64 * 1024)
    with pg.connect() as other, pg.connect() as conn:
        with pytest.raises(psycopg.OperationalError) as ended:
            conn.execute("SELECT %s::text", ("x" * 100_000,))
        assert "exceeds the limit" in str(ended.value)
        assert other.execute("SELECT 1").fetchone() == (1,)


def test_statements_are_refused_while_they_cannot_be_recorded(pg: PgGateway):
    """Fail closed: with the recording stream down a statement does not run, the session is told
    why and goes on; once the stream is back, statements run again."""

    class Down:
        def put_batch(self, lines: list[bytes]) -> None:
            raise ConnectionError("firehose is down")

    commit = pg.services().recorder.commit
    with pg.connect() as conn:
        working, commit.stream = commit.stream, Down()
        try:
            with pytest.raises(psycopg.errors.SystemError) as refused:
                conn.execute(f"UPDATE {TABLE} SET name = 'Zed' WHERE id = 1")
            assert "cannot be recorded now" in str(refused.value)
            with pytest.raises(psycopg.errors.SystemError):
                conn.execute(f"SELECT name FROM {TABLE} WHERE id = %s", (1,))
        finally:
            commit.stream = working
        assert conn.execute(f"SELECT name FROM {TABLE} WHERE id = %s", (1,)).fetchone() == ("Ada",)


def test_the_quick_starts_psql_command_works_on_demo_pg(stack: DevStack, token: str):
    from wardgate.dev.stack import quick_start

    line = next(line for line in quick_start(stack).splitlines() if line.strip().startswith("psql "))
    conninfo = line.strip().removeprefix("psql ").strip('"')
    env = {**os.environ, "PGPASSWORD": token}
    shown = subprocess.run(
        ["psql", conninfo, "-X", "-At", "-c", "SELECT 'via wardgate'"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert shown.stdout.strip() == "via wardgate", shown.stderr
    refused = subprocess.run(
        ["psql", conninfo, "-X", "-c", "CREATE TABLE t (i int)"], env=env, capture_output=True, text=True
    )
    assert "this connection is read-only" in refused.stderr  # demo-pg: the read-only-sql pack


def test_stopping_the_gateway_ends_sessions_with_a_reason_and_records_their_end(pg: PgGateway):
    with pg.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert pg.stack.tcp is not None
        pg.stack.tcp.stop()  # what SIGTERM does on the task (without the grace period)
        with pytest.raises(psycopg.OperationalError) as ended:
            conn.execute("SELECT 1")
        assert "shutting down" in str(ended.value)
    end = _events("session_end")
    assert end and end[-1]["reason"].startswith("shutdown:") and end[-1]["outcome"] == "ended"


# ---------------------------------------------------------------------------------------------------
# protocol invariants and decisions that follow the policy in force


def test_client_encoding_cannot_be_changed_under_the_gateway(pg: PgGateway):
    """wardgate parses statements as UTF-8; if the database read them in another encoding, a quote
    hidden in a multi-byte character could end a string that wardgate saw continue."""
    with pg.connect() as conn:
        for statement in ("SET client_encoding TO 'SJIS'", "SET NAMES 'SJIS'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
                conn.execute(statement)
            assert "change client_encoding" in str(refused.value)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT set_config('client_encoding', %s, false)", ("SJIS",))
        assert conn.execute("SELECT current_setting('client_encoding')").fetchone() == ("UTF8",)
    _admin(
        "CREATE OR REPLACE FUNCTION wardgate_test_sjis() RETURNS int LANGUAGE plpgsql AS $$ "
        "BEGIN EXECUTE 'SELECT set_' || 'config(''client_encoding'', ''SJIS'', false)'; RETURN 1; END $$"
    )
    try:
        with pg.connect() as conn:
            with pytest.raises(psycopg.Error) as ended:  # however it changes: the session ends
                conn.execute("SELECT wardgate_test_sjis()").fetchall()
            assert "client_encoding became 'SJIS'" in str(ended.value)
            assert conn.closed
    finally:
        _admin("DROP FUNCTION wardgate_test_sjis()")


def test_a_prepared_statement_is_decided_again_at_each_execution(pg: PgGateway):
    query = f"SELECT name FROM {TABLE} WHERE id = %s"
    with pg.connect() as conn:
        assert conn.execute(query, (1,), prepare=True).fetchone() == ("Ada",)
        assert conn.execute(query, (2,), prepare=True).fetchone() == ("Bob",)  # Bind/Execute only now
        reads_denied = {
            "name": "no reading people",
            "effect": "deny",
            "connections": [CONNECTION],
            "message": "people are off limits now",
            "match": {"sql": {"tables": [TABLE]}},
        }
        apply_policy_now(pg.stack, {**PG_POLICY, "rules": [*PG_POLICY["rules"], reads_denied]})
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute(query, (1,), prepare=True)
        assert "people are off limits now" in str(refused.value)
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_an_approval_is_for_the_statement_with_its_parameters(pg: PgGateway, client):
    from tests.approval_helpers import link_in, mail_to, press, wait_for_mail, wait_status

    rule = {
        "name": "deletes need a human",
        "effect": "require_approval",
        "connections": [CONNECTION],
        "approvers": ["demo-approvers"],
        "match": {"sql": {"kinds": ["delete"]}},
    }
    apply_policy_now(pg.stack, {**PG_POLICY, "rules": [*PG_POLICY["rules"], rule]})
    delete = f"DELETE FROM {TABLE} WHERE id = %s"
    with pg.connect() as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as held:
            conn.execute(delete, (2,))
        message = str(held.value)
        mail = mail_to(wait_for_mail(client, 2), "oncall@example.com")
        assert "$1 = '2'" in mail["text"]  # approvers see the values (psycopg sends ints in binary)
        assert press(client, link_in(mail, pg.stack)).status_code == 200
        wait_status(
            client, message.split("(")[1].split(")")[0], {"Authorization": f"Bearer {pg.token}"}, "approved"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as other:  # other values: not approved
            conn.execute(delete, (1,))
        assert "needs approval" in str(other.value)
        assert conn.execute(delete, (2,)).rowcount == 1  # the approved values run, once
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(delete, (2,))
        assert conn.execute(f"SELECT count(*) FROM {TABLE} WHERE id = 1").fetchone() == (1,)


def test_notifications_are_masked(pg: PgGateway):
    listening = {
        "name": "agents may listen",
        "effect": "allow",
        "connections": [CONNECTION],
        "match": {"sql": {"kinds": ["other"]}},
    }
    apply_policy_now(pg.stack, {**PG_POLICY, "rules": [*PG_POLICY["rules"], listening]})
    with pg.connect() as conn:
        conn.execute("LISTEN wardgate_events")
        _admin("NOTIFY wardgate_events, 'refund for ada@example.com'")
        notice = next(conn.notifies(timeout=5))
        assert notice.channel == "wardgate_events"
        assert notice.payload == "refund for [masked:email]"
