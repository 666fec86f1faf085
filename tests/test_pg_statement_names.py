"""Prepared statement and portal names through the PostgreSQL gateway, on the wire: an execution is
decided on exactly what the database runs, whatever the client does with names (a statement
parsed again under a bound portal, a name parsed twice, a name SQL PREPARE took, messages the
database skips after an error), and executions of a prepared statement are masked without a
Describe of their own. A raw protocol client, because drivers never send these sequences."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from tests.helpers import apply_policy_now
from tests.test_pg_gateway import CONNECTION, PG_POLICY, TABLE, PgGateway, pg  # noqa: F401 (fixture)
from wardgate.tcp.postgres import codec
from wardgate.tcp.postgres.session import PgSession

DELETE_NEEDS_APPROVAL = {
    "name": "deletes need a human",
    "effect": "require_approval",
    "connections": [CONNECTION],
    "approvers": ["demo-approvers"],
    "match": {"sql": {"kinds": ["delete"]}},
}
PREPARE_ALLOWED = {
    "name": "agents may prepare",
    "effect": "allow",
    "connections": [CONNECTION],
    "identity": {"groups": ["ci"]},
    "match": {"sql": {"kinds": ["prepare"]}},
}
DELETE = f"DELETE FROM {TABLE} WHERE id = 1"
Messages = list[tuple[int, bytes]]


def _rows_left() -> list[int]:
    with psycopg.connect("host=127.0.0.1 port=5432 dbname=wardgate_test user=wardgate") as db:
        return [row[0] for row in db.execute(f"SELECT id FROM {TABLE} ORDER BY id")]


class RawClient:
    """The frontend side of the protocol over TLS: send frames, read messages up to ReadyForQuery."""

    def __init__(self, gateway: PgGateway) -> None:
        assert gateway.stack.certificates is not None
        plain = socket.create_connection(("127.0.0.1", gateway.port), timeout=15)
        plain.sendall(codec.ssl_request())
        assert plain.recv(1) == b"S"
        context = ssl.create_default_context(cafile=str(gateway.stack.certificates.ca_file))
        self.sock = context.wrap_socket(plain, server_hostname="127.0.0.1")
        self.reader = codec.MessageReader()
        self.sock.sendall(codec.startup_message({"user": "agent-1", "database": CONNECTION}))
        self.until_ready(1, first=codec.AUTHENTICATION)
        self.sock.sendall(codec.password_message(gateway.token.encode() + b"\0"))
        self.until_ready()

    def until_ready(self, count: int = 1, first: int = codec.READY_FOR_QUERY) -> Messages:
        """Messages up to the ``count``-th ReadyForQuery (or the first message of type ``first``)."""
        out: Messages = []
        while True:
            message = self.reader.next()
            if message is None:
                data = self.sock.recv(65536)
                assert data, f"the gateway closed the connection after {out}"
                self.reader.feed(data)
                continue
            out.append(message)
            if message[0] == first:
                count -= 1
                if not count:
                    return out

    def run(self, *frames: bytes, syncs: int = 1) -> Messages:
        self.sock.sendall(b"".join(frames))
        return self.until_ready(syncs)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(pg: PgGateway) -> Iterator[Callable[..., RawClient]]:  # noqa: F811
    clients: list[RawClient] = []

    def connect(*rules: dict[str, Any]) -> RawClient:
        apply_policy_now(pg.stack, {**PG_POLICY, "rules": [*PG_POLICY["rules"], *rules]})
        client = RawClient(pg)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


def errors(messages: Messages) -> list[dict[str, str]]:
    return [codec.parse_error_fields(body) for kind, body in messages if kind == codec.ERROR_RESPONSE]


def tags(messages: Messages) -> list[str]:
    return [codec.parse_command_complete(body) for kind, body in messages if kind == codec.COMMAND_COMPLETE]


def test_a_portal_runs_and_is_decided_as_the_statement_it_was_bound_to(raw):
    """Parse a statement needing approval, bind it, parse another under the same (unnamed) name
    and execute the portal: the database runs the first, so the gateway decides on the first."""
    client = raw(DELETE_NEEDS_APPROVAL)
    answer = client.run(
        codec.parse("", DELETE),
        codec.bind("", ""),
        codec.parse("", "SELECT 1"),
        codec.execute(""),
        codec.sync(),
    )
    assert [e["C"] for e in errors(answer)] == ["42501"] and "needs approval" in errors(answer)[0]["M"]
    assert "DELETE 1" not in tags(answer) and _rows_left() == [1, 2]


def test_a_name_parsed_again_holds_the_new_statement(raw):
    """PostgreSQL would keep the first statement and refuse the second Parse; the gateway closes
    the name first, so the name holds what the gateway decides on."""
    client = raw(DELETE_NEEDS_APPROVAL)
    assert not errors(client.run(codec.parse("s1", DELETE), codec.sync()))
    assert not errors(client.run(codec.parse("s1", "SELECT 1"), codec.sync()))
    answer = client.run(codec.bind("", "s1"), codec.execute(""), codec.sync())
    assert tags(answer) == ["SELECT 1"] and not errors(answer) and _rows_left() == [1, 2]


def test_a_name_sql_prepare_took_holds_the_statement_the_gateway_parsed(raw):
    client = raw(DELETE_NEEDS_APPROVAL, PREPARE_ALLOWED)
    assert not errors(client.run(codec.query(f"PREPARE s2 AS {DELETE}")))
    assert not errors(client.run(codec.parse("s2", "SELECT 2"), codec.sync()))
    answer = client.run(codec.bind("", "s2"), codec.execute(""), codec.sync())
    assert tags(answer) == ["SELECT 1"] and not errors(answer) and _rows_left() == [1, 2]


def test_a_parse_the_database_skips_after_an_error_leaves_the_name_as_it_was(raw):
    """In one write: a message that fails, a Parse the database therefore skips, Sync, then an
    execution of that name: the database runs the statement the name had before, so the gateway
    decides on that one (it waits for the Sync's answer before it reads the name again)."""
    client = raw(DELETE_NEEDS_APPROVAL)
    assert not errors(client.run(codec.parse("", DELETE), codec.sync()))
    answer = client.run(
        codec.bind("", "no_such_statement"),
        codec.parse("", "SELECT 1"),
        codec.sync(),
        codec.bind("", ""),
        codec.execute(""),
        codec.sync(),
        syncs=2,
    )
    assert [e["C"] for e in errors(answer)] == ["26000", "42501"]
    assert "needs approval" in errors(answer)[1]["M"] and _rows_left() == [1, 2]


def test_a_failed_parse_frees_its_name(raw):
    """Refused by the gateway (its placeholder fails in the database) or failed by the database
    itself: the name is free again, and executing it is refused as never prepared."""
    client = raw()
    for failing, code in (("SELEC 1", "42501"), ("SELECT * FROM no_such_table_here", "42P01")):
        answer = client.run(
            codec.parse("s3", failing),
            codec.sync(),
            codec.bind("", "s3"),
            codec.execute(""),
            codec.sync(),
            syncs=2,
        )
        assert [e["C"] for e in errors(answer)] == [code, "26000"]
        assert not errors(client.run(codec.parse("s3", "SELECT 3"), codec.sync()))
        assert tags(client.run(codec.bind("", "s3"), codec.execute(""), codec.sync())) == ["SELECT 1"]
        assert not errors(client.run(codec.close("S", "s3"), codec.sync()))


def _session(pg: PgGateway) -> PgSession:  # noqa: F811
    sessions = [s for s in pg.services().cancel_targets.values() if isinstance(s, PgSession)]
    assert len(sessions) == 1
    return sessions[0]


def test_executions_of_a_prepared_statement_are_masked_without_a_describe_each(raw, pg):  # noqa: F811
    client = raw()
    query = f"SELECT email, card FROM {TABLE} WHERE id = $1"
    assert not errors(client.run(codec.parse("s5", query), codec.sync()))
    prepared = _session(pg).prepared["s5"]
    assert prepared.columns is None
    for _ in range(3):
        answer = client.run(codec.bind("", "s5", [b"1"]), codec.execute(""), codec.sync())
        rows = [codec.parse_data_row(body) for kind, body in answer if kind == codec.DATA_ROW]
        assert rows == [[b"[masked:email]", b"0"]]  # a card number in a number column: 0
        assert not any(kind == codec.ROW_DESCRIPTION for kind, _ in answer)  # the gateway's, kept
        assert prepared.columns is not None and [c.name for c in prepared.columns] == ["email", "card"]


def test_results_are_masked_by_their_own_statement_when_the_name_is_parsed_again_in_a_pipeline(raw):
    client = raw()
    answer = client.run(
        codec.parse("", f"SELECT email FROM {TABLE} WHERE id = 1"),
        codec.bind("", ""),
        codec.execute(""),
        codec.parse("", f"SELECT id, name FROM {TABLE} WHERE id = 1"),
        codec.bind("", ""),
        codec.execute(""),
        codec.sync(),
    )
    rows = [codec.parse_data_row(body) for kind, body in answer if kind == codec.DATA_ROW]
    assert rows == [[b"[masked:email]"], [b"1", b"Ada"]] and not errors(answer)
