"""``wardgate recordings ls|show|query|replay|export`` on real recordings.

One module-wide local stack (moto, the gateway, the TCP gateway, the local PostgreSQL) records
known traffic of two owners' agents: HTTP allowed, denied and unauthenticated, a Kubernetes read,
an approval approved and run, another left pending, Data API statements, a PostgreSQL session
with an allowed and a refused statement, registrations and a revocation, and an SSH-like terminal
session written through the TCP gateway's recorder. Firehose (moto) delivers it to S3; the CLI
then syncs the bucket into a cache and answers from it, as ``wardgate dev`` users and auditors
run it. Each named question is checked against that traffic, each bad input against its message.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.approval_helpers import link_in, mail_to, press, wait_for_mail
from tests.conftest import ROOT
from wardgate import cli
from wardgate.dataapi.client import PLACEHOLDER_ARN, wardgate_rds_data_client
from wardgate.dev.stack import DEMO_APPROVERS, SFN_INTERPRETER, DevStack

ALICE, BOB = "alice@example.com", "bob@example.com"


@dataclass
class Traffic:
    """Record ids of what the fixture did, by name."""

    stack: DevStack
    ids: dict[str, str] = field(default_factory=dict)
    cache: Path = Path()


def _register(stack: DevStack, subject: str, owner: str, *connections: str) -> None:
    argv = [
        "agents",
        "register",
        "--subject",
        subject,
        "--owner",
        owner,
        "--purpose",
        "audit test",
        "--by",
        "root",
    ]
    for connection in connections:
        argv += ["--connection", connection]
    assert stack.issuer is not None
    assert cli.main([*argv, "--issuer", stack.issuer.issuer]) == 0


async def _terminal_session(stack: DevStack) -> str:
    """An SSH session as the SSH gateway records one (docs/recording-format.md#terminal-events),
    through the TCP gateway's real recorder into the Firehose stream."""
    from wardgate.recording import DynamoRecordIndex, FirehoseStream
    from wardgate.tcp.recorder import GroupCommit, SessionRecord, SessionRecorder

    recorder = SessionRecorder(
        GroupCommit(FirehoseStream(os.environ["RECORDINGS_STREAM"])),
        DynamoRecordIndex(os.environ["RECORDINGS_TABLE"]),
    )
    identity = {"subject": "alice-agent", "issuer": "dev", "groups": ["ci"], "owner": ALICE}
    record = SessionRecord("ssh", "demo-ssh", "127.0.0.1:50000", identity=identity)
    allow = {"outcome": "allow", "rule": "shells on demo-ssh", "reason": "allowed", "policy_version": "p-1"}
    await recorder.write(record, "session_start", identity=identity, client=record.client)
    await recorder.write(
        record,
        "terminal_start",
        channel=0,
        width=100,
        height=30,
        term="xterm-256color",
        command=None,
        decision=allow,
    )
    frames = [
        [0.25, "o", "$ "],
        [1.0, "i", "ls\r"],
        [1.05, "o", "ls\r\nnotes.txt\r\n"],
        [4.0, "o", "\x1b]0;owned title\x07\x1b[6n\x1b[1mbold\x1b[0m\r\n$ "],
        [4.5, "r", "120x40"],
    ]
    await recorder.write(record, "terminal_output", channel=0, frames=frames[:3])
    await recorder.write(record, "terminal_output", channel=0, frames=frames[3:])
    await recorder.write(record, "terminal_end", channel=0, exit_status=0)
    record.outcome = "closed"
    await recorder.write(record, "session_end", identity=identity, outcome="closed", reason="the client left",
                         statements=0, refused=0, duration_ms=4600.0)  # fmt: skip
    await recorder.index_session(record)
    return record.record_id


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    saved = dict(os.environ)
    state = tmp_path_factory.mktemp("recordings-cli")
    os.environ.update(
        {
            "WARDGATE_UPSTREAM_TIMEOUT_S": "2",
            "WARDGATE_HOME": str(state),  # no `wardgate dev` of this machine is targeted
            "WARDGATE_RECORDINGS_CACHE": str(state / "cache"),
        }
    )
    try:
        with mock_aws(config=SFN_INTERPRETER):
            stack = DevStack(root=ROOT, state_dir=state, port=0, upstream_port=0, pg_port=0).start()
            try:
                yield _make_traffic(stack, state / "cache")
            finally:
                stack.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _make_traffic(stack: DevStack, cache: Path) -> Traffic:
    assert stack.issuer is not None
    done = Traffic(stack, cache=cache)
    _register(stack, "alice-agent", ALICE, "demo", "demo-k8s", "demo-sql", "demo-pg")
    _register(stack, "bob-agent", BOB, "demo")
    alice = {"Authorization": f"Bearer {stack.issuer.mint('alice-agent', ['ci'])}"}
    bob = {"Authorization": f"Bearer {stack.issuer.mint('bob-agent', ['ci'])}"}

    def rid(response: httpx.Response) -> str:
        return response.headers["x-wardgate-record-id"]

    with httpx.Client(base_url=stack.url, timeout=20) as http:
        done.ids["alice_get"] = rid(http.get("/http/demo/v1/customers?page=1", headers=alice))
        done.ids["alice_delete"] = rid(http.delete("/http/demo/v1/users/7", headers=alice))
        done.ids["bob_get"] = rid(http.get("/http/demo/anything", headers=bob))
        done.ids["bob_delete"] = rid(http.delete("/http/demo/v1/users/8", headers=bob))
        done.ids["anonymous"] = rid(http.get("/http/demo/anything"))
        done.ids["alice_k8s"] = rid(http.get("/k8s/demo-k8s/api/v1/namespaces/prod/secrets", headers=alice))

        held = http.post("/http/demo/v1/refunds", headers=alice, json={"amount": 12})
        assert held.status_code == 202, held.text
        done.ids["approved"] = rid(held)
        link = link_in(mail_to(wait_for_mail(http, 2), DEMO_APPROVERS[0]), stack)
        assert press(http, link).status_code == 200
        ran = http.get(held.json()["poll_url"] + "?wait=20", headers=alice)
        assert ran.status_code == 200, ran.text
        pending = http.post("/http/demo/v1/refunds", headers=alice, json={"amount": 99})
        assert pending.status_code == 202
        done.ids["pending"] = rid(pending)

        sql = wardgate_rds_data_client(f"{stack.url}/sql/demo-sql", lambda: alice["Authorization"][7:])
        read = "SELECT relname FROM pg_catalog.pg_class WHERE relname = 'pg_type'"
        sql.execute_statement(resourceArn=PLACEHOLDER_ARN, secretArn=PLACEHOLDER_ARN, sql=read)
        with pytest.raises(ClientError):
            sql.execute_statement(
                resourceArn=PLACEHOLDER_ARN, secretArn=PLACEHOLDER_ARN, sql="DELETE FROM pg_class"
            )

    assert stack.certificates is not None
    dsn = (
        f"host=127.0.0.1 port={stack.pg_port_bound} dbname=demo-pg user=alice-agent sslmode=verify-full "
        f"sslrootcert={stack.certificates.ca_file} password={alice['Authorization'][7:]}"
    )
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("SELECT count(*) FROM pg_class").fetchall()
        with pytest.raises(psycopg.Error):
            db.execute("DELETE FROM pg_class")
    done.ids["terminal"] = asyncio.run(_terminal_session(stack))
    assert cli.main(["revoke", "--owner", ALICE, "--reason", "left the company", "--by", "auditor-test"]) == 0
    time.sleep(0.3)  # the revocation's listener cancels the pending approval
    return done


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["recordings", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rows(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    parsed: list[dict[str, Any]] = json.loads(out)
    return parsed


# ---------------------------------------------------------------- ls


def test_ls_lists_every_record_newest_first(traffic: Traffic, capsys):
    listed = rows(capsys, "ls", "--limit", "100")
    ids = [r["record_id"] for r in listed]
    assert set(traffic.ids.values()) <= set(ids)
    assert ids == sorted(ids, reverse=True)  # record ids sort by time
    by_id = {r["record_id"]: r for r in listed}
    assert by_id[traffic.ids["alice_delete"]] | {"started_at": None} == {
        "record_id": traffic.ids["alice_delete"],
        "started_at": None,
        "subject": "alice-agent",
        "owner": ALICE,
        "connection": "demo",
        "protocol": "http",
        "outcome": "denied",
        "status": 403,
        "error_code": "denied_by_policy",
        "summary": "DELETE /v1/users/7",
    }
    assert by_id[traffic.ids["approved"]]["outcome"] == "approval"
    assert by_id[traffic.ids["anonymous"]]["outcome"] == "denied"
    assert by_id[traffic.ids["anonymous"]]["subject"] is None
    terminal = by_id[traffic.ids["terminal"]]
    assert (terminal["protocol"], terminal["owner"], terminal["summary"]) == (
        "ssh",
        ALICE,
        "session: 0 statement(s) run, 0 refused",
    )

    code, out, _ = run(capsys, "ls")
    assert code == 0 and traffic.ids["alice_get"] in out and "DELETE /v1/users/7" in out
    assert out.splitlines()[0].split()[:3] == ["RECORD_ID", "STARTED_AT", "SUBJECT"]


@pytest.mark.parametrize(
    ("filters", "expected", "unexpected"),
    [
        (["--subject", "bob-agent"], {"bob_get", "bob_delete"}, {"alice_get", "anonymous"}),
        (["--owner", ALICE], {"alice_get", "alice_delete", "alice_k8s", "approved", "terminal"}, {"bob_get"}),
        (["--connection", "demo-k8s"], {"alice_k8s"}, {"alice_get"}),
        (["--outcome", "denied"], {"alice_delete", "bob_delete", "anonymous"}, {"alice_get", "approved"}),
        (["--outcome", "approval"], {"approved", "pending"}, {"alice_get"}),
        (["--outcome", "allowed"], {"alice_get", "bob_get", "alice_k8s"}, {"alice_delete"}),
        (["--protocol", "k8s"], {"alice_k8s"}, {"alice_get"}),
        (["--protocol", "ssh"], {"terminal"}, {"alice_get"}),
        (["--protocol", "http", "--owner", BOB], {"bob_get", "bob_delete"}, {"alice_get"}),
        (["--since", "2h", "--until", "2099-01-01"], {"alice_get", "terminal"}, set()),
        (["--since", "2099-01-01"], set(), {"alice_get"}),
        (["--since", "30d", "--until", "2000-01-02T00:00:00Z"], set(), {"alice_get"}),
    ],
)
def test_ls_filters(traffic: Traffic, capsys, filters, expected, unexpected):
    if filters[-1] == "2000-01-02T00:00:00Z":  # until before since is bad input, not an empty list
        code, _, err = run(capsys, "ls", *filters)
        assert code == 2 and "--since must be before --until" in err
        return
    listed = {r["record_id"] for r in rows(capsys, "ls", "--limit", "100", *filters)}
    assert {traffic.ids[name] for name in expected} <= listed
    assert not {traffic.ids[name] for name in unexpected} & listed


def test_ls_of_the_sql_paths(traffic: Traffic, capsys):
    sessions = rows(capsys, "ls", "--protocol", "postgres")
    assert len(sessions) == 1
    (session,) = sessions
    assert session["owner"] == ALICE and session["outcome"] == "denied"
    assert session["summary"] == "session: 1 statement(s) run, 1 refused"
    data_api = rows(capsys, "ls", "--protocol", "sql")
    assert sorted(r["outcome"] for r in data_api) == ["allowed", "denied"]
    assert all(r["summary"].startswith("POST /Execute: ") for r in data_api)
    admin = rows(capsys, "ls", "--connection", "_admin")
    assert sorted(r["summary"].split()[0] for r in admin) == [
        "register_agent",
        "register_agent",
        "revoke_owner",
    ]


def test_ls_index_reads_the_dynamodb_index_as_before(traffic: Traffic, capsys):
    code, out, _ = run(capsys, "ls", "--index", "--connection", "demo", "--json")
    assert code == 0
    entries = json.loads(out)
    assert traffic.ids["alice_delete"] in {e["record_id"] for e in entries}
    assert all(e["connection"] == "demo" for e in entries)
    code, _, err = run(capsys, "ls", "--index", "--owner", ALICE)
    assert code == 2 and "--owner need the query engine" in err


# ---------------------------------------------------------------- show


def test_show_http_record_as_a_timeline(traffic: Traffic, capsys):
    code, out, _ = run(capsys, "show", traffic.ids["alice_get"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(
        f"record {traffic.ids['alice_get']}  connection demo  http  alice-agent (owner {ALICE})"
    )
    request = next(line for line in lines if " request " in line)
    assert "ALLOWED by rule agents may call http connections  GET /v1/customers?page=1" in request
    response = next(line for line in lines if " response " in line)
    assert "200, " in response and "masked: " in response and "email" in response


def test_show_an_approved_request_tells_the_whole_story(traffic: Traffic, capsys):
    code, out, _ = run(capsys, "show", traffic.ids["approved"])
    assert code == 0
    steps = [line.split()[2] for line in out.splitlines()[3:]]
    assert steps[:2] == ["approval", "held"] or steps[:2] == ["held", "approval"]
    for step in ("requested", "notified", "approved", "decided_approved", "executing", "executed"):
        assert f"approval         {step} " in out, step
    executed = next(line for line in out.splitlines() if " request " in line)
    assert (
        "ALLOWED by rule refunds need a human (approval " in executed
        and " by oncall@example.com)" in executed
    )
    assert executed.endswith("POST /v1/refunds")


def test_show_a_postgres_session_statement_by_statement(traffic: Traffic, capsys):
    (session,) = rows(capsys, "ls", "--protocol", "postgres")
    code, out, _ = run(capsys, "show", session["record_id"])
    assert code == 0
    assert "session start    client 127.0.0.1:" in out
    assert "statement #2     ALLOWED by rule read-only-sql: reads  SELECT count(*) FROM pg_class" in out
    assert "result of #2     1 row(s), SELECT 1" in out
    assert (
        "refused          DENIED by rule read-only-sql: hidden writes  DELETE FROM pg_class  "
        "-> denied_by_policy" in out
    )
    assert "session end      closed: the client closed the session; 1 statement(s) run, 1 refused" in out


def test_show_json_prints_the_events_as_recorded(traffic: Traffic, capsys):
    code, out, _ = run(capsys, "show", traffic.ids["alice_delete"], "--json")
    assert code == 0
    (event,) = json.loads(out)
    assert event["event"] == "refused" and event["error"]["code"] == "denied_by_policy"
    assert event["request"]["headers"]["authorization"] == "[redacted]"


@pytest.mark.parametrize("record_id", ["0000000000000ffff", "not-hex", "F" * 29, "f" * 29, "0" * 29])
def test_show_unknown_or_malformed_record_ids(traffic: Traffic, capsys, record_id):
    code, out, err = run(capsys, "show", record_id)
    assert code == 1 and out == ""
    assert f"no recording {record_id!r}" in err


# ---------------------------------------------------------------- named questions


def _ids(result: list[dict[str, Any]]) -> list[str]:
    return [r["record_id"] for r in result]


def test_denials(traffic: Traffic, capsys):
    denied = rows(capsys, "query", "--denials")
    assert all(r["outcome"] == "denied" for r in denied)
    by_what = {(r["subject"], r["what"]) for r in denied}
    assert by_what == {
        ("alice-agent", "DELETE /v1/users/7"),
        ("bob-agent", "DELETE /v1/users/8"),
        (None, "GET /anything"),
        ("alice-agent", "DELETE FROM pg_class"),  # Data API
        ("alice-agent", "DELETE FROM pg_class"),  # the PostgreSQL session's statement
    }
    assert len(denied) == 5
    mine = rows(capsys, "query", "--denials", "--owner", ALICE)
    # The session's statement carries no identity: its session_start's is used.
    assert sorted(r["protocol"] for r in mine) == ["http", "postgres", "sql"]
    assert {r["rule"] for r in mine} == {"no deleting users on demo", "read-only-sql: hidden writes"}


def test_by_agent_owner_and_connection(traffic: Traffic, capsys):
    bob = rows(capsys, "query", "--agent", "bob-agent")
    assert [(r["what"], r["outcome"]) for r in bob] == [
        ("GET /anything", "allowed"),
        ("DELETE /v1/users/8", "denied"),
    ]
    alice = rows(capsys, "query", "--owner", ALICE)
    assert {r["subject"] for r in alice} == {"alice-agent"}
    assert {r["protocol"] for r in alice} == {"http", "k8s", "sql", "postgres", "ssh"}
    pg = rows(capsys, "query", "--connection", "demo-pg")
    assert [r["what"] for r in pg] == [None, "SELECT count(*) FROM pg_class", "DELETE FROM pg_class"]
    assert [r["outcome"] for r in pg] == ["allowed", "allowed", "denied"]


def test_everything_touching_a_table(traffic: Traffic, capsys):
    touched = rows(capsys, "query", "--table", "pg_class")
    assert sorted((r["protocol"], r["outcome"]) for r in touched) == [
        ("postgres", "allowed"),
        ("postgres", "denied"),
        ("sql", "allowed"),  # pg_catalog.pg_class: a qualified name matches its table's name
        ("sql", "denied"),
    ]
    assert (
        rows(capsys, "query", "--table", "pg_catalog.pg_class", "--protocol", "sql")[0]["outcome"]
        == "allowed"
    )
    assert rows(capsys, "query", "--table", "no_such_table") == []


def test_approvals(traffic: Traffic, capsys):
    steps = rows(capsys, "query", "--approvals")
    approved = [r["step"] for r in steps if r["record_id"] == traffic.ids["approved"]]
    for step in (
        "requested",
        "held",
        "notified",
        "viewed",
        "approved",
        "decided_approved",
        "executing",
        "request",
    ):
        assert step in approved, step
    assert "executed" in approved
    pending = [r["step"] for r in steps if r["record_id"] == traffic.ids["pending"]]
    assert pending[-1] == "cancelled" and "held" in pending
    assert {r["approval_id"] for r in steps if r["record_id"] == traffic.ids["approved"]} != {None}


def test_revocations(traffic: Traffic, capsys):
    (revoked,) = rows(capsys, "query", "--revocations")
    assert revoked["action"] == "revoke_owner" and revoked["target_owner"] == ALICE
    assert revoked["actor"] == "auditor-test" and revoked["reason"] == "left the company"
    assert rows(capsys, "query", "--revocations", "--owner", BOB) == []


def test_sql_csv_and_table_output(traffic: Traffic, capsys):
    code, out, _ = run(capsys, "query", "SELECT owner, count(*) AS n FROM events WHERE owner IS NOT NULL "
                       "GROUP BY owner ORDER BY owner", "--csv")  # fmt: skip
    assert code == 0
    parsed = list(csv.reader(io.StringIO(out)))
    assert parsed[0] == ["owner", "n"] and [r[0] for r in parsed[1:]] == [ALICE, BOB]
    code, out, _ = run(capsys, "query", "WITH d AS (SELECT * FROM records WHERE outcome = 'denied') "
                       "SELECT count(*) AS denied FROM d")  # fmt: skip
    assert code == 0 and out.split() == ["DENIED", "5"]
    code, out, _ = run(capsys, "query", "--schema")
    assert code == 0 and "owner" in out and "arrival_hour" in out and "summary" in out


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("DELETE FROM events", "DELETE statements are refused"),
        ("DROP TABLE events", "DROP statements are refused"),
        ("CREATE TABLE x AS SELECT * FROM events", "CREATE statements are refused"),
        ("INSERT INTO events SELECT * FROM events", "INSERT statements are refused"),
        ("PRAGMA database_list", "PRAGMA statements are refused"),
        ("ATTACH '/tmp/other.db' AS other", "ATTACH statements are refused"),
        ("COPY events TO '/tmp/out.csv'", "COPY statements are refused"),
        ("INSTALL httpfs", "INSTALL statements are refused"),
        ("LOAD httpfs", "LOAD statements are refused"),
        ("SET enable_external_access = true", "SET statements are refused"),
        ("SELECT 1; SELECT 2", "one statement at a time: the query has 2"),
        ("SELECT * FROM events; DROP TABLE events", "one statement at a time"),
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv() in FROM reaches outside the recordings"),
        ("SELECT * FROM read_text('/etc/passwd')", "read_text() in FROM reaches outside the recordings"),
        ("SELECT * FROM read_json('https://example.com/x.json')", "reaches outside the recordings"),
        ("SELECT * FROM glob('/**')", "glob() in FROM reaches outside the recordings"),
        ("SELECT * FROM '/etc/passwd'", "reads a file or URL"),
        ("SELECT * FROM 'https://example.com/data.parquet'", "reads a file or URL"),
        ("SELECT (SELECT content FROM read_text('/etc/hosts'))", "reaches outside the recordings"),
        ("SELECT getenv('HOME')", "getenv() reaches outside the recordings"),
        ("SELECT query('SELECT 1')", "query() reaches outside the recordings"),
        ("SELECT * FROM other.main.events", "other schemas and databases are out of reach"),
        ("SELECT * FROM information_schema.tables", "other schemas and databases are out of reach"),
        ("SELECT * FROM duckdb_settings()", "reaches outside the recordings"),
        ("SELECT * FROM secrets", "unknown table 'secrets'"),
        ("WITH events AS (SELECT 1) SELECT * FROM events", "'events' is a recordings table"),
        ("SELECT FROM WHERE", "could not be parsed"),
        ("", "the query is empty"),
    ],
)
def test_queries_that_are_not_read_only_or_reach_outside_are_refused(traffic: Traffic, capsys, sql, message):
    code, out, err = run(capsys, "query", sql)
    assert (code, out) == (2, ""), err
    assert message in err


def test_malformed_filters_are_clear_errors(traffic: Traffic, capsys):
    code, _, err = run(capsys, "query", "--denials", "--since", "yesterday-ish")
    assert code == 2
    assert "--since 'yesterday-ish' is not a time: use a duration back from now (15m, 24h, 7d, 2w)" in err
    code, _, err = run(capsys, "ls", "--until", "soon")
    assert code == 2 and "--until 'soon' is not a time" in err
    code, _, err = run(capsys, "query", "SELECT 1", "--owner", ALICE)
    assert code == 2 and "either SQL or a named question" in err
    code, _, err = run(capsys, "query")
    assert code == 2 and "give SQL over events/records, or a named question" in err
    code, _, err = run(capsys, "query", "--agent", "a\x1bb")
    assert code == 2 and "without control characters" in err
    code, _, err = run(capsys, "replay", traffic.ids["terminal"], "--speed", "0")
    assert code == 2 and "--speed 0.0: must be greater than 0" in err
    with pytest.raises(SystemExit) as exited:
        cli.main(["recordings", "ls", "--outcome", "maybe"])
    assert exited.value.code == 2
    assert "invalid choice: 'maybe'" in capsys.readouterr().err


def test_duckdb_is_locked_down_even_past_the_guard(traffic: Traffic, tmp_path):
    """The second wall: what the guard would refuse, the engine cannot do either."""
    import duckdb

    from wardgate import aws
    from wardgate.auditing.cache import HourWindow, RecordingsCache
    from wardgate.auditing.query import LocalEngine

    cache = RecordingsCache(traffic.cache, os.environ["RECORDINGS_BUCKET"], "recordings/", aws.client("s3"))
    con = LocalEngine(cache).connect(HourWindow())
    secret = tmp_path / "secret.txt"
    secret.write_text("not for auditors")
    try:
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] > 0
        for sql in (
            f"SELECT * FROM read_text('{secret}')",
            "SELECT * FROM read_csv('/etc/passwd')",
            f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
            f"ATTACH '{tmp_path / 'x.db'}'",
            "LOAD httpfs",
            "INSTALL httpfs",
        ):
            with pytest.raises(duckdb.Error, match=r"disabled|Permission"):
                con.execute(sql)
        with pytest.raises(duckdb.Error, match="locked"):
            con.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.Error, match="locked"):
            con.execute(f"SET allowed_directories = ['{tmp_path}']")
    finally:
        con.close()
    assert not (tmp_path / "out.csv").exists()


# ---------------------------------------------------------------- export and replay


def _check_har(har: dict[str, Any]) -> None:
    """HAR 1.2's required fields (http://www.softwareishard.com/blog/har-12-spec/)."""
    log = har["log"]
    assert log["version"] == "1.2" and {"name", "version"} <= set(log["creator"])
    for entry in log["entries"]:
        assert {"startedDateTime", "time", "request", "response", "cache", "timings"} <= set(entry)
        request, response = entry["request"], entry["response"]
        for key in (
            "method",
            "url",
            "httpVersion",
            "cookies",
            "headers",
            "queryString",
            "headersSize",
            "bodySize",
        ):
            assert key in request, key
        for key in ("status", "statusText", "httpVersion", "cookies", "headers", "content", "redirectURL",
                    "headersSize", "bodySize"):  # fmt: skip
            assert key in response, key
        assert {"size", "mimeType"} <= set(response["content"])
        assert {"send", "wait", "receive"} <= set(entry["timings"])
        assert abs(entry["time"] - sum(v for v in entry["timings"].values() if v >= 0)) < 0.01
        assert all({"name", "value"} == set(h) for h in request["headers"] + response["headers"])
        if "postData" in request:
            assert {"mimeType", "text"} <= set(request["postData"])
        assert all(k in {"log"} for k in har)


def test_export_har_of_http_requests(traffic: Traffic, capsys, tmp_path):
    out_file = tmp_path / "get.har"
    code, _, err = run(capsys, "export", traffic.ids["alice_get"], "--format", "har", "-o", str(out_file))
    assert code == 0 and "wrote" in err
    har = json.loads(out_file.read_text())
    _check_har(har)
    (entry,) = har["log"]["entries"]
    assert entry["request"]["method"] == "GET"
    assert entry["request"]["url"].endswith("/http/demo/v1/customers?page=1")
    assert entry["request"]["queryString"] == [{"name": "page", "value": "1"}]
    assert {"name": "authorization", "value": "[redacted]"} in entry["request"]["headers"]
    assert entry["response"]["status"] == 200 and entry["response"]["statusText"] == "OK"
    assert "[masked:email]" in entry["response"]["content"]["text"]
    assert entry["_wardgate"]["decision"]["outcome"] == "allow"

    code, out, _ = run(capsys, "export", traffic.ids["approved"], "--format", "har")
    har = json.loads(out)
    _check_har(har)
    assert [e["response"]["status"] for e in har["log"]["entries"]] == [202, 200]
    assert har["log"]["entries"][0]["request"]["postData"]["text"] == '{"amount":12}'

    code, out, _ = run(capsys, "export", traffic.ids["anonymous"], "--format", "har")
    (refused,) = json.loads(out)["log"]["entries"]
    assert refused["response"]["status"] == 401
    assert json.loads(refused["response"]["content"]["text"])["error"]["code"] == "missing_token"
    assert "nothing was forwarded" in refused["comment"]


def test_export_jsonl_and_asciicast(traffic: Traffic, capsys):
    code, out, _ = run(capsys, "export", traffic.ids["alice_get"], "--format", "jsonl")
    assert [json.loads(line)["event"] for line in out.splitlines()] == ["request", "response"]

    code, out, _ = run(capsys, "export", traffic.ids["terminal"], "--format", "asciicast")
    assert code == 0
    header, *frames = [json.loads(line) for line in out.splitlines()]
    assert header["version"] == 2 and (header["width"], header["height"]) == (100, 30)
    assert header["env"] == {"TERM": "xterm-256color"} and "timestamp" in header
    assert [f[:2] for f in frames] == [[0.25, "o"], [1.0, "i"], [1.05, "o"], [4.0, "o"], [4.5, "r"]]
    assert frames[3][2].startswith("\x1b]0;owned title")  # exported as recorded


@pytest.mark.parametrize(
    ("name", "fmt", "message"),
    [
        ("terminal", "har", "is a terminal record: HAR holds HTTP exchanges"),
        ("alice_get", "asciicast", "is a http record, not a terminal session"),
        ("postgres", "har", "is a postgres record: HAR holds HTTP exchanges"),
        ("postgres", "asciicast", "is a postgres record, not a terminal session"),
    ],
)
def test_export_says_when_the_format_does_not_fit(traffic: Traffic, capsys, name, fmt, message):
    record_id = traffic.ids.get(name) or rows(capsys, "ls", "--protocol", "postgres")[0]["record_id"]
    code, out, err = run(capsys, "export", record_id, "--format", fmt)
    assert (code, out) == (2, "")
    assert message in err


def test_replay_plays_the_output_without_dangerous_escapes(traffic: Traffic, capsys):
    code, out, err = run(capsys, "replay", traffic.ids["terminal"], "--no-wait")
    assert code == 0
    assert out == "$ ls\r\nnotes.txt\r\n\x1b[1mbold\x1b[0m\r\n$ "  # input and resize frames are not output
    assert "owned title" not in out and "\x1b[6n" not in out
    assert "end of terminal 0, exit status 0" in err
    code, _, err = run(capsys, "replay", traffic.ids["alice_get"], "--no-wait")
    assert code == 2 and "not a terminal session" in err


def test_replay_keeps_time_at_the_speed_asked(traffic: Traffic):
    from wardgate.auditing.export import Terminal
    from wardgate.auditing.replay import play

    terminal = Terminal(
        0, 80, 24, None, None, None, [(0.5, "o", "a"), (1.0, "i", "x"), (2.5, "o", "b"), (10.0, "o", "c")]
    )
    slept: list[float] = []
    out = io.StringIO()
    assert play(terminal, out, speed=2.0, sleep=slept.append) == 10.0
    assert out.getvalue() == "abc" and slept == [0.25, 1.0, 3.75]
    slept.clear()
    play(terminal, io.StringIO(), speed=1.0, idle_limit=1.0, sleep=slept.append)
    assert slept == [0.5, 1.0, 1.0]
    slept.clear()
    play(terminal, io.StringIO(), speed=float("inf"), sleep=slept.append)
    assert slept == []


# ---------------------------------------------------------------- Athena (superficial)


def _stubbed_athena(results: list[list[str]]) -> tuple[Any, Any, list[dict[str, Any]]]:
    """A real botocore Athena client whose answers are stubbed (botocore's Stubber checks each call
    against the API model). moto 5.2.5 cannot serve it: this botocore speaks Athena's rest-json."""
    import boto3
    from botocore.stub import ANY, Stubber

    client = boto3.client("athena", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    sent: list[dict[str, Any]] = []
    client.meta.events.register(
        "provide-client-params.athena.StartQueryExecution", lambda params, **_: sent.append(dict(params))
    )
    stub = Stubber(client)
    expected = {
        "QueryString": ANY,
        "WorkGroup": "wardgate-audit",
        "QueryExecutionContext": {"Database": "wardgate_rec"},
    }
    stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"}, expected)
    stub.add_response(
        "get_query_execution",
        {"QueryExecution": {"Status": {"State": "RUNNING"}}},
        {"QueryExecutionId": "q-1"},
    )
    done = {
        "QueryExecution": {"Status": {"State": "SUCCEEDED"}, "Statistics": {"DataScannedInBytes": 123456}}
    }
    stub.add_response("get_query_execution", done, {"QueryExecutionId": "q-1"})
    stub.add_response(
        "get_query_results",
        {
            "ResultSet": {
                "Rows": [{"Data": [{"VarCharValue": v} for v in row]} for row in results],
                "ResultSetMetadata": {"ColumnInfo": [{"Name": n, "Type": "varchar"} for n in results[0]]},
            }
        },
        {"QueryExecutionId": "q-1"},
    )
    return client, stub, sent


def test_query_on_athena_sends_the_checked_question_with_the_prelude(traffic: Traffic, capsys, monkeypatch):
    """What is sent (workgroup, database, the prelude, the checked question) and how results come
    back; the SQL itself runs on AWS only (docs/recording-format.md says so)."""
    from wardgate import cli_recordings
    from wardgate.auditing.query import AthenaEngine

    client, stub, sent = _stubbed_athena([["owner", "n"], [ALICE, "3"]])
    monkeypatch.setattr(
        cli_recordings,
        "athena_engine",
        lambda: AthenaEngine(client, "wardgate-audit", "wardgate_rec", poll_s=0),
    )
    with stub:
        code, out, err = run(
            capsys, "query", "--athena", "--denials", "--owner", ALICE, "--since", "7d", "--json"
        )
    assert code == 0, err
    assert json.loads(out) == [{"owner": ALICE, "n": "3"}]
    assert "Athena scanned 123,456 bytes" in err
    (params,) = sent
    query = params["QueryString"]
    assert query.startswith("WITH event_rows AS (SELECT arrival_hour, ")
    assert (
        "FROM recordings_raw WHERE json_extract_scalar(line, '$.format') LIKE 'wardgate.recording/%' "
        "AND (arrival_hour >= '" in query
    )
    assert (
        f"owner = '{ALICE}'" in query and "outcome = 'denied'" in query and "from_iso8601_timestamp(" in query
    )

    client, stub, sent = _stubbed_athena([["n"], ["5"]])
    monkeypatch.setattr(
        cli_recordings,
        "athena_engine",
        lambda: AthenaEngine(client, "wardgate-audit", "wardgate_rec", poll_s=0),
    )
    with stub:
        code, out, err = run(
            capsys,
            "query",
            "--athena",
            "WITH d AS (SELECT record_id FROM records) SELECT count(*) AS n FROM d",
        )
    assert code == 0, err
    assert out.split() == ["N", "5"]
    assert sent[0]["QueryString"].startswith("WITH event_rows AS (")
    assert sent[0]["QueryString"].endswith(
        ", d AS (SELECT record_id FROM records) SELECT COUNT(*) AS n FROM d"
    )

    client, stub, sent = _stubbed_athena([["n"]])
    monkeypatch.setattr(
        cli_recordings,
        "athena_engine",
        lambda: AthenaEngine(client, "wardgate-audit", "wardgate_rec", poll_s=0),
    )
    code, out, err = run(capsys, "query", "--athena", "SELECT * FROM read_csv('s3://other/x.csv')")
    assert code == 2 and "reaches outside the recordings" in err
    assert sent == []  # nothing refused reaches Athena


def test_query_on_athena_needs_the_stacks_names(traffic: Traffic, capsys):
    code, _, err = run(capsys, "query", "--athena", "--denials")
    assert code == 2 and "--athena needs the stack's audit workgroup and database" in err
