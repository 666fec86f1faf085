"""MySQL through the TCP gateway, with real clients (the ``mariadb`` command line, PyMySQL,
mysql-connector in its pure and C modes) against the local MariaDB: admission, decisions, masking
in text and binary rows, prepared statements, multi-statements, recording, approvals, the kill
switch and bad input. The gateway runs as in ``wardgate dev`` (tcp.server.GatewayThread) over moto."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from tests.helpers import apply_policy_now, recorded_events, register_agent
from tests.test_sql_gateway import SQL_POLICY
from wardgate import aws
from wardgate.connections import Connection, ConnectionStore
from wardgate.dev.stack import DEV_POLICY, DevStack

CONNECTION = "my-test"
TABLE = "mysql_gateway_people"
MY_POLICY: dict[str, Any] = {  # the Data API tests' policy (its guardrails), with this connection's kinds
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
                    "kinds": ["select", "insert", "update", "delete", "transaction", "ddl", "set", "show"]
                }
            },
        },
        {
            "name": "deleting people needs a human",
            "effect": "require_approval",
            "connections": [CONNECTION],
            "message": "deleting people is for a human to approve",
            "approvers": ["demo-approvers"],
            "match": {"sql": {"kinds": ["delete"], "tables": [TABLE]}},
        },
    ],
    "settings": {**DEV_POLICY["settings"], **SQL_POLICY["settings"]},
}
LOGIN_PASSWORD = "wardgate-login-pw"  # scripts/mysql-test-auth's users


def _admin(sql: str) -> None:
    subprocess.run(
        ["mariadb", "-uroot", "wardgate_test", "-e", sql], check=True, capture_output=True, timeout=30
    )


@dataclasses.dataclass
class MyGateway:
    stack: DevStack
    token: str

    tcp: Any = None

    @property
    def port(self) -> int:
        return int(self.tcp.port("mysql"))

    @property
    def ca_file(self) -> str:
        assert self.stack.certificates is not None
        return str(self.stack.certificates.ca_file)

    def connect(self, token: str | None = None, database: str = CONNECTION, **kwargs: Any) -> Any:
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": "agent-1",
            "password": token or self.token,
            "database": database,
            "ssl": {"ca": self.ca_file, "check_hostname": True},
            "connect_timeout": 10,
            "read_timeout": 30,
        }
        options.update(kwargs)
        return pymysql.connect(**options)

    def cli(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "mariadb",
                "--no-defaults",
                "-h127.0.0.1",
                f"-P{self.port}",
                "-uagent-1",
                f"--ssl-ca={self.ca_file}",
                "--ssl-verify-server-cert",
                "--batch",
                CONNECTION,
                *args,
            ],
            env={**os.environ, "MYSQL_PWD": token or self.token},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def services(self) -> Any:
        return self.tcp.services

    def set_limits(self, **changes: Any) -> None:
        services = self.services()
        services.limits = dataclasses.replace(services.limits, **changes)
        services.sessions.limits = services.limits


@pytest.fixture
def my(stack: DevStack, token: str) -> Iterator[MyGateway]:
    aws.client("secretsmanager").create_secret(
        Name=f"wardgate/{CONNECTION}",
        SecretString=json.dumps({"type": "basic", "username": "wardgate_native", "password": LOGIN_PASSWORD}),
    )
    ConnectionStore(os.environ["CONNECTIONS_TABLE"]).put(
        Connection(
            CONNECTION,
            "sql",
            "mysql://wardgate_native@127.0.0.1:3306/wardgate_test",
            f"wardgate/{CONNECTION}",
            allowed_groups=("ci",),
        )
    )
    apply_policy_now(stack, MY_POLICY)
    _admin(f"DROP TABLE IF EXISTS {TABLE}")
    _admin(
        f"CREATE TABLE {TABLE} (id INT PRIMARY KEY, name VARCHAR(40), email VARCHAR(80), ssn VARCHAR(11), "
        "card BIGINT, born DATE, balance DECIMAL(10,2), score DOUBLE, photo BLOB);"
        f"INSERT INTO {TABLE} VALUES (1, 'Ada', 'ada@example.com', '078-05-1120', 4242424242424242, "
        "'1815-12-10', 12.50, 0.5, x'414243'), (2, 'Bob', 'nobody', '219-09-9999', 7, NULL, -3.25, 2, NULL)"
    )
    from wardgate.config import Settings
    from wardgate.tcp.config import Listener, TcpSettings
    from wardgate.tcp.server import GatewayThread, build_services

    assert stack.certificates is not None
    settings = TcpSettings(
        listeners=(Listener("mysql", 0, "127.0.0.1"),),
        tls_cert_file=str(stack.certificates.cert_file),
        tls_key_file=str(stack.certificates.key_file),
        health_port=None,
    )
    tcp = GatewayThread(lambda: build_services(Settings.from_env(), settings), settings).start()
    yield MyGateway(stack, token, tcp)
    tcp.stop()
    _admin(f"DROP TABLE IF EXISTS {TABLE}")


def _events(kind: str | None = None) -> list[dict[str, Any]]:
    events = [e for e in recorded_events() if e.get("protocol") == "mysql"]
    return [e for e in events if kind is None or e["event"] == kind]


# ---------------------------------------------------------------------------------------------------
# unchanged clients


def test_pymysql_reads_rows_masked_and_a_refusal_keeps_the_session(my: MyGateway):
    with my.connect() as db, db.cursor() as cur:
        cur.execute(f"SELECT id, name, email, ssn, card, born, balance FROM {TABLE} ORDER BY id")
        rows = cur.fetchall()
        assert [r[:2] for r in rows] == [(1, "Ada"), (2, "Bob")]
        assert "ada@example.com" not in repr(rows) and "078-05-1120" not in repr(rows)
        assert rows[1][2] == "nobody"  # nothing to mask: as stored
        with pytest.raises(pymysql.err.OperationalError) as refused:
            cur.execute(f"UPDATE {TABLE} SET name = 'x'")
        code, message = refused.value.args
        assert code == 1227
        assert "an UPDATE without WHERE changes every row" in message and "record " in message
        cur.execute("SELECT 1 + 1")  # the session goes on
        assert cur.fetchone() == (2,)
    statements = _events("statement")
    assert any(TABLE in e["operation"]["statements"][0]["text"] for e in statements)
    refused_events = _events("statement_refused")
    assert refused_events and refused_events[-1]["error"]["code"] == "denied_by_policy"
    results = _events("result")
    assert any(r["rows"] == 2 and r.get("masked") for r in results)
    starts, ends = _events("session_start"), _events("session_end")
    assert (
        starts and starts[0]["database"] == "wardgate_test" and starts[0]["identity"]["subject"] == "agent-1"
    )
    assert ends and ends[-1]["outcome"] == "closed" and ends[-1]["refused"] == 1


def test_the_mariadb_command_line_works_unchanged(my: MyGateway):
    result = my.cli("-e", f"SELECT id, name FROM {TABLE} ORDER BY id; SELECT 'two' AS two")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["id\tname", "1\tAda", "2\tBob", "two", "two"]
    refused = my.cli("-e", f"DROP TABLE {TABLE}")
    assert refused.returncode == 1
    assert "ERROR 1227 (42000)" in refused.stderr and "dropping tables needs a migration" in refused.stderr


@pytest.mark.parametrize("use_pure", [True, False], ids=["pure", "c-extension"])
def test_mysql_connector_prepared_statements_with_every_common_type(my: MyGateway, use_pure: bool):
    import mysql.connector

    db = mysql.connector.connect(
        host="127.0.0.1",
        port=my.port,
        user="agent-1",
        password=my.token,
        database=CONNECTION,
        ssl_ca=my.ca_file,
        ssl_verify_cert=True,
        use_pure=use_pure,
        auth_plugin="caching_sha2_password",
    )
    try:
        cur = db.cursor(prepared=True)
        cur.execute(
            f"SELECT id, name, email, card, born, balance, score, photo FROM {TABLE} "
            "WHERE id >= ? AND name <> ?",
            (1, "nobody"),
        )
        rows = cur.fetchall()
        assert len(rows) == 2
        first = rows[0]
        assert first[0] == 1 and first[1] == "Ada"
        assert first[2] != "ada@example.com"  # masked in a binary row
        assert str(first[4]) == "1815-12-10" and str(first[5]) == "12.50" and first[6] == 0.5
        cur.execute(
            f"INSERT INTO {TABLE} (id, name, born, balance, score) VALUES (?, ?, ?, ?, ?)",
            (3, "Cy", "2000-01-02", "1.25", 1.5),
        )
        db.commit()
        cur.execute(f"SELECT name, born FROM {TABLE} WHERE id = ?", (3,))
        assert [tuple(str(v) for v in r) for r in cur.fetchall()] == [("Cy", "2000-01-02")]
        with pytest.raises(mysql.connector.Error) as refused:
            cur.execute(f"UPDATE {TABLE} SET name = ?", ("x",))
        assert refused.value.errno == 1227
    finally:
        db.close()
    executes = [e for e in _events("statement") if e["call"] == "execute"]
    assert any(e.get("parameters") == ["1", "nobody"] for e in executes)


def test_multi_statements_are_decided_together(my: MyGateway):
    with my.connect(client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS) as db, db.cursor() as cur:
        cur.execute("SELECT 1; SELECT 2")
        assert cur.fetchall() == ((1,),)
        assert cur.nextset() and cur.fetchall() == ((2,),)
        with pytest.raises(pymysql.err.OperationalError) as refused:
            cur.execute(f"UPDATE {TABLE} SET name = 'ok' WHERE id = 1; DROP TABLE {TABLE}")
        assert refused.value.args[0] == 1227
        cur.execute(f"SELECT name FROM {TABLE} WHERE id = 1")
        assert cur.fetchone() == ("Ada",)  # none of them ran


def test_transactions_and_statement_settings(my: MyGateway):
    with my.connect() as db, db.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(f"UPDATE {TABLE} SET name = 'Ada L' WHERE id = 1")
        cur.execute("ROLLBACK")
        cur.execute(f"SELECT name FROM {TABLE} WHERE id = 1")
        assert cur.fetchone() == ("Ada",)
        cur.execute("SET NAMES utf8mb4")
        cur.execute("SET sql_mode = 'STRICT_TRANS_TABLES'")
        for pinned in (
            "SET NAMES latin1",
            "SET sql_mode = 'ANSI_QUOTES'",
            "SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'",
        ):
            with pytest.raises(pymysql.err.OperationalError) as refused:
                cur.execute(pinned)
            assert refused.value.args[0] == 1227, pinned
        cur.execute("SELECT @@sql_mode")
        assert cur.fetchone() == ("STRICT_TRANS_TABLES",)


def test_init_db_change_user_and_local_infile_are_confined(my: MyGateway, tmp_path: Any):
    with my.connect(local_infile=True) as db:
        db.select_db("wardgate_test")  # the connection's own database: fine
        with pytest.raises(pymysql.err.OperationalError) as other:
            db.select_db("mysql")
        assert (
            other.value.args[0] == 1044 and "serves only the database 'wardgate_test'" in other.value.args[1]
        )
        secret = tmp_path / "rows.csv"
        secret.write_text("9,Eve\n")
        with db.cursor() as cur, pytest.raises(pymysql.err.OperationalError) as load:
            cur.execute(f"LOAD DATA LOCAL INFILE '{secret}' INTO TABLE {TABLE} FIELDS TERMINATED BY ','")
        assert load.value.args[0] == 1227
        with db.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {TABLE}")
            assert cur.fetchone() == (2,)


# ---------------------------------------------------------------------------------------------------
# admission and lifetime


def test_tls_and_a_valid_token_are_required(my: MyGateway, stack: DevStack):
    with pytest.raises(pymysql.err.OperationalError) as plain:
        my.connect(ssl=None, ssl_disabled=True)
    assert plain.value.args[0] == 3159 and "requires TLS" in plain.value.args[1]
    with pytest.raises(pymysql.err.OperationalError) as bad:
        my.connect(token="not-a-token")
    assert bad.value.args[0] == 1045
    with pytest.raises(pymysql.err.OperationalError) as unknown:
        my.connect(database="no-such-connection")
    assert unknown.value.args[0] in (1044, 1049)
    assert stack.issuer is not None
    outsider = stack.issuer.mint("agent-9", ["elsewhere"])
    with pytest.raises(pymysql.err.OperationalError) as denied:
        my.connect(token=outsider)
    assert denied.value.args[0] == 1044 and "none of the groups" in denied.value.args[1]
    assert any(e["error"]["code"] for e in _events("session_refused"))


def test_revoking_the_agent_ends_its_idle_session(my: MyGateway):
    register_agent(my.stack, "agent-1", "alice@example.com", CONNECTION)
    db = my.connect()
    with db.cursor() as cur:
        cur.execute("SELECT 1")
    from wardgate import cli

    assert cli.main(["revoke", "--owner", "alice@example.com", "--reason", "offboarded", "--by", "root"]) == 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and len(my.services().sessions):
        time.sleep(0.02)
    assert len(my.services().sessions) == 0
    with pytest.raises(pymysql.err.MySQLError) as ended, db.cursor() as cur:
        cur.execute("SELECT 1")
    assert "revoked" in str(ended.value)
    assert _events("session_end")[-1]["outcome"] == "ended"
    with pytest.raises(pymysql.err.OperationalError) as refused:
        my.connect()
    assert "revoked" in str(refused.value)


def test_a_statement_needing_approval_runs_once_after_it_is_approved(my: MyGateway, client: Any):
    from tests.approval_helpers import link_in, mail_to, press, wait_for_mail, wait_status

    delete = f"DELETE FROM {TABLE} WHERE id = 2"
    with my.connect() as db, db.cursor() as cur:
        with pytest.raises(pymysql.err.OperationalError) as held:
            cur.execute(delete)
        code, message = held.value.args
        assert code == 1227 and "needs approval: request" in message
        request_id = message.split("request ")[1].split(" ")[0]
        poll_url = message.split("(")[1].split(")")[0]
        mail = mail_to(wait_for_mail(client, 2), "oncall@example.com")
        assert request_id in mail["text"] and "DELETE FROM" in mail["text"]
        assert press(client, link_in(mail, my.stack)).status_code == 200
        wait_status(client, poll_url, {"Authorization": f"Bearer {my.token}"}, "approved")
        cur.execute(delete)  # the identical statement runs, once
        assert cur.rowcount == 1
        with pytest.raises(pymysql.err.OperationalError) as again:
            cur.execute(delete)
        assert request_id not in again.value.args[1]  # spent: a new request


# ---------------------------------------------------------------------------------------------------
# bad input


def _raw(my: MyGateway) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", my.port), timeout=10)
    greeting = sock.recv(4096)
    assert greeting[4] == 10  # protocol version 10
    return sock


def test_garbage_and_oversized_packets_get_a_clear_error(my: MyGateway):
    sock = _raw(my)
    sock.sendall(b"\x05\x00\x00\x01garbage")
    reply = sock.recv(4096)
    assert reply[4] == 0xFF and b"protocol" in reply
    sock.close()
    sock = _raw(my)
    sock.sendall((0xFFFFFE).to_bytes(3, "little") + b"\x01")
    reply = sock.recv(4096)
    assert reply[4] == 0xFF
    sock.close()
    with my.connect() as db, db.cursor() as cur:  # other sessions are undisturbed
        cur.execute("SELECT 1")


def test_a_handshake_that_never_finishes_is_closed(my: MyGateway):
    my.set_limits(startup_timeout_s=0.5)
    sock = _raw(my)
    reply = sock.recv(4096)
    assert reply[4] == 0xFF and b"did not start" in reply
    sock.close()


def test_an_unreachable_database_is_a_clear_error(my: MyGateway):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    ConnectionStore(os.environ["CONNECTIONS_TABLE"]).put(
        Connection(
            CONNECTION,
            "sql",
            f"mysql://wardgate_native@127.0.0.1:{port}/wardgate_test",
            f"wardgate/{CONNECTION}",
            allowed_groups=("ci",),
        )
    )
    time.sleep(0.05)
    with pytest.raises(pymysql.err.OperationalError) as down:
        my.connect()
    assert down.value.args[0] in (2003, 2013, 1105) or "127.0.0.1" in str(down.value)


def test_a_server_certificate_is_verified_by_the_client(my: MyGateway):
    context = ssl.create_default_context(cafile=my.ca_file)
    assert context.check_hostname  # what --ssl-verify-server-cert checks, against the dev CA


def test_a_client_hello_sent_with_the_ssl_request_reaches_tls(my: MyGateway):
    """Clients start TLS right after the SSLRequest, without waiting: both can arrive in one read."""
    from wardgate.tcp.mysql import codec

    sock = _raw(my)
    context = ssl.create_default_context(cafile=my.ca_file)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    request = codec.build_ssl_request(
        codec.SSLRequest(codec.CLIENT_PROTOCOL_41 | codec.CLIENT_SSL | codec.CLIENT_PLUGIN_AUTH, 1 << 24, 45)
    )
    sock.sendall(codec.frame(request, 1) + outgoing.read())  # one write: the hello right behind
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            if outgoing.pending:
                sock.sendall(outgoing.read())
            data = sock.recv(65536)
            assert data, "the gateway closed the connection during the TLS handshake"
            incoming.write(data)
    assert tls.version() in ("TLSv1.2", "TLSv1.3")
    sock.close()


def test_kill_query_from_another_connection_stops_the_statement(my: MyGateway, stack: DevStack):
    """What the mariadb client's Ctrl-C does: KILL QUERY <the id of wardgate's greeting> on a new
    connection. wardgate serves it for the same identity; any other id is unknown."""
    import threading

    busy = my.connect()
    outcome: dict[str, Any] = {}

    def sleep() -> None:
        started = time.monotonic()
        try:
            with busy.cursor() as cur:
                cur.execute("SELECT SLEEP(20)")
                outcome["rows"] = cur.fetchall()
        except pymysql.err.MySQLError as exc:
            outcome["error"] = exc.args
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=sleep)
    thread.start()
    time.sleep(0.5)
    assert stack.issuer is not None
    with my.connect(token=stack.issuer.mint("agent-2", ["ci"])) as stranger, stranger.cursor() as cur:
        with pytest.raises(pymysql.err.OperationalError) as unknown:
            cur.execute(f"KILL QUERY {busy.thread_id()}")
        assert unknown.value.args[0] == 1094
    with my.connect() as same, same.cursor() as cur:
        cur.execute(f"KILL QUERY {busy.thread_id()}")
    thread.join(10)
    assert outcome["seconds"] < 10
    # MariaDB ends SLEEP() early with 1 (or ERROR 1317, by version): either way it stopped.
    assert outcome.get("rows") == ((1,),) or outcome.get("error", (0,))[0] == 1317
    with busy.cursor() as cur:  # the session goes on
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
    kills = _events("kill")
    assert [k["served"] for k in kills] == [False, True]
    busy.close()


def test_the_greeting_shows_the_version_of_the_database_behind_once_known(my: MyGateway):
    with my.connect() as first:
        assert first.get_server_info() == "5.7.44-wardgate"  # nothing known yet: what every client accepts
    with my.connect() as second:
        assert "MariaDB" in second.get_server_info()  # the local MariaDB's own, since the first login


def test_load_data_local_runs_when_policy_allows_it(my: MyGateway, tmp_path: Any):
    rule = {
        "name": "imports from the agent's files",
        "effect": "allow",
        "connections": [CONNECTION],
        "identity": {"groups": ["ci"]},
        "match": {"sql": {"kinds": ["copy"], "features": ["load_data_local"]}},
    }
    apply_policy_now(my.stack, {**MY_POLICY, "rules": [*MY_POLICY["rules"], rule]})
    rows = tmp_path / "rows.csv"
    rows.write_text("9,Eve\n10,Fay\n")
    with my.connect(local_infile=True) as db, db.cursor() as cur:
        cur.execute(f"LOAD DATA LOCAL INFILE '{rows}' INTO TABLE {TABLE} FIELDS TERMINATED BY ',' (id, name)")
        assert cur.rowcount == 2
        cur.execute(f"SELECT name FROM {TABLE} WHERE id >= 9 ORDER BY id")
        assert cur.fetchall() == (("Eve",), ("Fay",))


def test_a_command_with_a_wrong_sequence_id_ends_only_that_session(my: MyGateway):
    with my.connect() as db:
        db._write_bytes(b"\x09\x00\x00\x05\x03SELECT 1")  # COM_QUERY with sequence id 5, not 0
        with pytest.raises(pymysql.err.MySQLError) as error:
            db._read_packet()
        assert "sequence id 5" in str(error.value) or "1156" in str(error.value)
    with my.connect() as other, other.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def test_an_execute_of_the_statement_prepared_last_is_decided_on_that_statement(my: MyGateway):
    """MariaDB's statement id -1 ("the one prepared last"), pipelined right behind its prepare:
    it is decided on the statement being prepared, not on one prepared before."""
    from wardgate.tcp.mysql import codec

    delete = f"DELETE FROM {TABLE} WHERE id = 2".encode()
    with my.connect() as db:
        with db.cursor() as cur:
            cur.execute("SELECT 1")
        db._write_bytes(codec.frame(bytes((codec.COM_STMT_PREPARE,)) + b"SELECT 1", 0))
        db._next_seq_id = 1  # PyMySQL's own count of sequence ids: each answer starts at 1
        db._read_packet()  # its PrepareOk: an allowed statement is "the one prepared last" now
        db._read_packet()  # its column definition
        if not db.client_flag & codec.CLIENT_DEPRECATE_EOF:  # PyMySQL does not ask for it
            db._read_packet()
        execute = (
            bytes((codec.COM_STMT_EXECUTE,)) + (0xFFFFFFFF).to_bytes(4, "little") + b"\x00\x01\x00\x00\x00"
        )
        db._write_bytes(codec.frame(bytes((codec.COM_STMT_PREPARE,)) + delete, 0) + codec.frame(execute, 0))
        db._next_seq_id = 1
        prepared = db._read_packet()  # the DELETE's PrepareOk (no parameters, no columns)
        assert prepared.read_uint8() == 0
        db._next_seq_id = 1
        with pytest.raises(pymysql.err.OperationalError) as held:
            db._read_packet()
        assert held.value.args[0] == 1227 and "needs approval" in held.value.args[1]
    with my.connect() as check, check.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE id = 2")
        assert cur.fetchone() == (1,)  # the DELETE did not run
