"""``wardgate policy replay``: a candidate policy over real recordings of the local stack.

One module-wide local stack (moto, the gateway, the TCP gateway, the local PostgreSQL) records known
traffic under local mode's policy: HTTP requests allowed, denied (by a rule, and by the
connection's groups) and held for approval, one with an email in its path (recorded masked), a
Kubernetes read, Data API statements and a PostgreSQL session's statements; and two requests of
three days ago written through the real recorder, to show that rules with time windows are read at
the recorded time. Firehose (moto) delivers them to S3; replay reads them through the query engine.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import psycopg
import pytest
import yaml
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.approval_helpers import link_in, mail_to, press, wait_for_mail
from tests.conftest import ROOT
from wardgate import cli
from wardgate.dataapi.client import PLACEHOLDER_ARN, wardgate_rds_data_client
from wardgate.dev.stack import DEMO_APPROVERS, DEV_POLICY, SFN_INTERPRETER, DevStack
from wardgate.policy.store import PolicyStore

ALICE = "alice@example.com"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Traffic:
    stack: DevStack
    state: Path
    ids: dict[str, str] = field(default_factory=dict)
    connections: list[dict[str, Any]] = field(default_factory=list)  # the stack's, as stored
    old_evening: datetime = datetime(2000, 1, 1, tzinfo=UTC)  # set by the fixture


def _old_request(identity: dict[str, Any], at: datetime, path: str) -> str:
    """A GET on demo recorded at ``at`` (days ago), through the real recorder and Firehose."""
    from wardgate.recording import DynamoRecordIndex, FirehoseStream, Recorder, Recording, recorded_body

    recorder = Recorder(
        FirehoseStream(os.environ["RECORDINGS_STREAM"]), DynamoRecordIndex(os.environ["RECORDINGS_TABLE"])
    )
    recording = Recording(
        request_id=uuid.uuid4().hex[:16],
        connection="demo",
        request={
            "method": "GET",
            "path": path,
            "query": "",
            "source_ip": "127.0.0.1",
            "headers": {"accept": "application/json"},
            "body": {**recorded_body(b"", 65536), "masked": {}},
        },
        started_at=at.timestamp(),
        identity=identity,
        operation={"protocol": "http", "method": "GET", "path": path, "query": ""},
        decision={
            "outcome": "allow",
            "reason": "allowed by rule 'agents may call http connections'",
            "rule": "agents may call http connections",
            "policy_version": "p-older",
        },
    )
    event = recording.event("request") | {"time": (at + timedelta(milliseconds=3)).isoformat()}
    recorder.append(event)
    return recording.record_id


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    saved = dict(os.environ)
    state = tmp_path_factory.mktemp("policy-replay")
    os.environ.update(
        {
            "WARDGATE_UPSTREAM_TIMEOUT_S": "2",
            "WARDGATE_HOME": str(state),  # no `wardgate dev` of this machine is targeted
            "WARDGATE_RECORDINGS_CACHE": str(state / "cache"),
        }
    )
    try:
        with mock_aws(config=SFN_INTERPRETER):
            stack = DevStack(
                root=ROOT,
                state_dir=state,
                port=0,
                upstream_port=0,
                pg_port=0,
                mysql_port=0,
                sign_manifests=False,
            ).start()
            try:
                yield _make_traffic(stack, state)
            finally:
                stack.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _make_traffic(stack: DevStack, state: Path) -> Traffic:
    assert stack.issuer is not None
    done = Traffic(stack, state)
    argv = ["agents", "register", "--subject", "alice-agent", "--owner", ALICE, "--purpose", "replay test"]
    argv += ["--by", "root", "--issuer", stack.issuer.issuer]
    for connection in ("demo", "demo-k8s", "demo-sql", "demo-pg"):
        argv += ["--connection", connection]
    assert cli.main(argv) == 0
    token = stack.issuer.mint("alice-agent", ["ci"])
    alice = {"Authorization": f"Bearer {token}"}
    outsider = {"Authorization": f"Bearer {stack.issuer.mint('visitor-agent', ['outsiders'])}"}

    def rid(response: httpx.Response, status: int) -> str:
        assert response.status_code == status, response.text
        return response.headers["x-wardgate-record-id"]

    with httpx.Client(base_url=stack.url, timeout=20) as http:
        done.ids["customers"] = rid(http.get("/http/demo/v1/customers?page=1", headers=alice), 200)
        done.ids["customer"] = rid(http.get("/http/demo/v1/customers/42", headers=alice), 200)
        done.ids["delete"] = rid(http.delete("/http/demo/v1/users/7", headers=alice), 403)
        held = http.post("/http/demo/v1/refunds", headers=alice, json={"amount": 12})
        done.ids["refund"] = rid(held, 202)
        # Approved and run: its execution (a `request` event of the same record) is not a second decision.
        link = link_in(mail_to(wait_for_mail(http, 2), DEMO_APPROVERS[0]), stack)
        assert press(http, link).status_code == 200
        ran = http.get(held.json()["poll_url"] + "?wait=20", headers=alice)
        assert ran.status_code == 200, ran.text
        done.ids["by_email"] = rid(http.get("/http/demo/v1/users/ada@example.com", headers=alice), 200)
        done.ids["outsider"] = rid(http.get("/http/demo/v1/customers", headers=outsider), 403)
        done.ids["k8s"] = rid(http.get("/k8s/demo-k8s/api/v1/namespaces/prod/pods", headers=alice), 200)
        sql = wardgate_rds_data_client(f"{stack.url}/sql/demo-sql", lambda: token)
        read = "SELECT relname FROM pg_catalog.pg_class WHERE relname = 'pg_type'"
        sql.execute_statement(resourceArn=PLACEHOLDER_ARN, secretArn=PLACEHOLDER_ARN, sql=read)
        with pytest.raises(ClientError):
            sql.execute_statement(
                resourceArn=PLACEHOLDER_ARN, secretArn=PLACEHOLDER_ARN, sql="DELETE FROM pg_class"
            )

    assert stack.certificates is not None
    dsn = (
        f"host=127.0.0.1 port={stack.pg_port_bound} dbname=demo-pg user=alice-agent sslmode=verify-full "
        f"sslrootcert={stack.certificates.ca_file} password={token}"
    )
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("SELECT count(*) FROM pg_class").fetchall()
        with pytest.raises(psycopg.Error):
            db.execute("DELETE FROM pg_class")

    identity = {"subject": "alice-agent", "issuer": stack.issuer.issuer, "groups": ["ci"], "owner": ALICE}
    three_days_ago = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=3)
    done.old_evening = three_days_ago.replace(hour=22, minute=30)
    done.ids["old_morning"] = _old_request(
        identity, three_days_ago.replace(hour=10, minute=30), "/v1/reports"
    )
    done.ids["old_evening"] = _old_request(identity, done.old_evening, "/v1/reports")
    done.connections = PolicyStore(
        os.environ["POLICIES_TABLE"], os.environ["CONNECTIONS_TABLE"]
    ).stored_connections()
    return done


# ---------------------------------------------------------------- helpers


def _connection(stored: dict[str, Any], **changes: Any) -> dict[str, Any]:
    declared = {k: v for k, v in stored.items() if k in ("name", "kind", "upstream_url", "allowed_groups")}
    if stored.get("credential_secret"):
        declared["credential_secret"] = stored["credential_secret"]
    return {**declared, **changes}


def _local_policy(traffic: Traffic) -> dict[str, Any]:
    """Local mode's policy as files declare it (with the stack's connections)."""
    document = copy.deepcopy(DEV_POLICY)
    document["connections"] = [_connection(c) for c in sorted(traffic.connections, key=lambda c: c["name"])]
    return document


def _write(folder: Path, document: dict[str, Any]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "policy.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return str(folder)


def replay(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["policy", "replay", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def replay_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = replay(capsys, *argv, "--json")
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


def _examples(report: dict[str, Any], change: str) -> dict[str, dict[str, Any]]:
    """The examples of one change, by record id (sessions: record id and seq)."""
    shown = {}
    for example in report["examples"].get(change, []):
        key = (
            example["record_id"]
            if example["event"] in ("request", "refused", "held")
            else (f"{example['record_id']}#{example['seq']}")
        )
        shown[key] = example
    return shown


def _state(traffic: Traffic) -> dict[str, Any]:
    """What replay must leave as it was: every table's items and the recordings bucket."""
    ddb, s3 = boto3.client("dynamodb"), boto3.client("s3")
    tables = {}
    for name in ("POLICIES_TABLE", "CONNECTIONS_TABLE", "RECORDINGS_TABLE"):
        items = ddb.scan(TableName=os.environ[name])["Items"]
        tables[name] = sorted(json.dumps(item, sort_keys=True, default=str) for item in items)
    bucket = os.environ["RECORDINGS_BUCKET"]
    objects = sorted(
        (o["Key"], o["ETag"], o["Size"]) for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    )
    return {"tables": tables, "objects": objects}


# ---------------------------------------------------------------- (a) the same policy


def test_the_policy_in_force_changes_nothing(
    traffic: Traffic, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = _write(tmp_path / "same", _local_policy(traffic))
    before = _state(traffic)
    report = replay_json(capsys, "--file", folder, "--examples", "20")
    assert _state(traffic) == before  # no table, no object, no policy version written
    assert report["operations"] == 13
    assert report["changed"] == 0
    assert report["changes"] == {
        "allowed_to_denied": 0,
        "denied_to_allowed": 0,
        "allowed_to_approval": 0,
        "denied_to_approval": 0,
        "approval_to_allowed": 0,
        "approval_to_denied": 0,
        "other_rule": 0,
        "unchanged": 13,
        "cannot_replay": 0,
    }
    assert report["connections"] == "declared in the files"
    assert report["by_connection"] == {
        "demo": {"unchanged": 8},
        "demo-k8s": {"unchanged": 1},
        "demo-pg": {"unchanged": 2},
        "demo-sql": {"unchanged": 2},
    }
    unchanged = _examples(report, "unchanged")
    refund = unchanged[traffic.ids["refund"]]
    assert refund["recorded"]["outcome"] == refund["candidate"]["outcome"] == "require_approval"
    assert refund["event"] == "held" and refund["operation"] == "POST /v1/refunds"
    assert "note" not in refund["recorded"]  # its held event, not the approved execution
    outsider = unchanged[traffic.ids["outsider"]]
    assert outsider["candidate"]["rule"] == "connection.allowed_groups"
    assert outsider["identity"] == {"subject": "visitor-agent", "owner": None, "groups": ["outsiders"]}
    sessions = [e for e in unchanged.values() if e["connection"] == "demo-pg"]
    assert {e["identity"]["subject"] for e in sessions} == {"alice-agent"}  # from the session's start
    assert {e["identity"]["owner"] for e in sessions} == {ALICE}
    assert sorted(e["candidate"]["rule"] for e in sessions) == [
        "read-only-sql: hidden writes",
        "read-only-sql: reads",
    ]

    code, out, _ = replay(capsys, "--file", folder)
    assert code == 0
    head = out.splitlines()
    assert head[0].startswith("Policy replay of candidate p-") and head[0].endswith(
        " on 13 recorded operation(s)"
    )
    assert head[1] == f"  policy files: {folder} (connections declared in the files)"
    assert head[2].startswith("  window: ") and head[2].endswith(" UTC to now")
    assert "  unchanged" in out and "Examples of" not in out


# ---------------------------------------------------------------- (b) a stricter policy


def _stricter(traffic: Traffic) -> dict[str, Any]:
    document = _local_policy(traffic)
    evening = DAYS[traffic.old_evening.weekday()]
    document["connections"] = [
        _connection(c, allowed_groups=["developers"]) if c["name"] == "demo-sql" else _connection(c)
        for c in sorted(traffic.connections, key=lambda c: c["name"])
        if c["name"] != "demo-pg"  # the candidate drops the TCP connection
    ]
    document["packs"] = [{"name": "read-only-sql", "connections": ["demo-sql", "demo-mysql"]}]
    document["rules"] += [
        {
            "name": "no customer listings",
            "effect": "deny",
            "connections": ["demo"],
            "match": {"http": {"methods": ["GET"], "paths": ["/v1/customers"]}},
        },
        {
            "name": "cluster reads need a human",
            "effect": "require_approval",
            "connections": ["demo-k8s"],
            "approvers": ["demo-approvers"],
            "match": {"k8s": {"verbs": ["list"]}},
        },
        {
            "name": "no reports in the evening",
            "effect": "deny",
            "connections": ["demo"],
            "time": {"days": [evening], "start": "22:00", "end": "23:00"},
            "match": {"http": {"methods": ["GET"], "paths": ["/v1/reports"]}},
        },
        {
            "name": "user lookups need a human",
            "effect": "require_approval",
            "connections": ["demo"],
            "approvers": ["demo-approvers"],
            "match": {"http": {"methods": ["GET"], "paths": ["/v1/users/*"]}},
        },
    ]
    return document


def test_a_stricter_policy_denies_and_holds_what_it_should(
    traffic: Traffic, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = _write(tmp_path / "stricter", _stricter(traffic))
    before = _state(traffic)
    report = replay_json(capsys, "--file", folder, "--examples", "10")
    assert _state(traffic) == before
    changes = report["changes"]
    assert report["operations"] == 13
    # customers?page=1 (a rule), the evening report (its window, three days ago), the Data API read
    # (demo-sql's groups), the session's read (demo-pg is gone)
    assert changes["allowed_to_denied"] == 4
    assert changes["allowed_to_approval"] == 1  # the cluster list
    # the Data API delete (groups before the pack now), the session's delete (connection gone)
    assert changes["other_rule"] == 2
    assert changes["cannot_replay"] == 1  # /v1/users/[masked:email]: a path rule reads it
    assert changes["unchanged"] == 5  # customers/42, the delete, the refund, the outsider, the morning
    assert report["changed"] == 5

    denied = _examples(report, "allowed_to_denied")
    customers = denied[traffic.ids["customers"]]
    assert customers["operation"] == "GET /v1/customers?page=1"
    assert customers["recorded"]["rule"] == "agents may call http connections"
    assert customers["candidate"] == {
        "outcome": "deny",
        "rule": "no customer listings",
        "reason": "GET /v1/customers is denied by rule 'no customer listings'",
    }
    assert customers["identity"]["owner"] == ALICE
    assert denied[traffic.ids["old_evening"]]["candidate"]["rule"] == "no reports in the evening"
    assert traffic.ids["old_morning"] not in denied  # outside the window at its own time
    rules = {(e["connection"], e["candidate"]["rule"]) for e in denied.values()}
    assert ("demo-sql", "connection.allowed_groups") in rules
    assert ("demo-pg", "connection.unknown") in rules

    held = _examples(report, "allowed_to_approval")
    (k8s,) = held.values()
    assert k8s["record_id"] == traffic.ids["k8s"] and k8s["candidate"]["rule"] == "cluster reads need a human"
    (cannot,) = _examples(report, "cannot_replay").values()
    assert cannot["record_id"] == traffic.ids["by_email"]
    assert cannot["why"] == (
        "the recorded path is not as sent (masked, cut or withheld) and rule 'no customer listings' "
        "(and 2 more rule(s)) reads it"
    )
    assert report["by_connection"]["demo"] == {"allowed_to_denied": 2, "unchanged": 5, "cannot_replay": 1}
    assert {"change": "allowed_to_denied", "recorded_rule": "agents may call http connections",
            "candidate_rule": "no customer listings", "operations": 1} in report["by_rule"]  # fmt: skip

    code, out, _ = replay(capsys, "--file", folder, "--connection", "demo-k8s")
    assert code == 0
    assert " on 1 recorded operation(s)\n" in out and " UTC to now, connection demo-k8s\n" in out
    assert "Examples of allowed → approval (first 1 of 1):" in out
    assert "candidate: require_approval, rule 'cluster reads need a human'" in out
    assert "By rule (recorded rule → candidate rule):" in out


# ---------------------------------------------------------------- (c) a looser policy


def test_a_looser_policy_allows_what_was_denied(
    traffic: Traffic, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    document = _local_policy(traffic)
    document["connections"] = [
        _connection(c, allowed_groups=["ci", "developers", "outsiders"])
        if c["name"] == "demo"
        else _connection(c)
        for c in sorted(traffic.connections, key=lambda c: c["name"])
    ]
    document["rules"] = [
        r for r in document["rules"] if r["name"] not in ("no deleting users on demo", "refunds need a human")
    ]
    document["rules"].append(
        {
            "name": "visitors may read demo",
            "effect": "allow",
            "connections": ["demo"],
            "identity": {"groups": ["outsiders"]},
            "match": {"http": {"methods": ["GET"]}},
        }
    )
    folder = _write(tmp_path / "looser", document)
    report = replay_json(capsys, "--file", folder, "--connection", "demo")
    assert report["operations"] == 8 and report["connection"] == "demo"
    assert report["changes"]["denied_to_allowed"] == 2
    assert report["changes"]["approval_to_allowed"] == 1
    assert report["changes"]["unchanged"] == 5
    allowed = _examples(report, "denied_to_allowed")
    assert set(allowed) == {traffic.ids["delete"], traffic.ids["outsider"]}
    assert allowed[traffic.ids["delete"]]["recorded"]["rule"] == "no deleting users on demo"
    assert allowed[traffic.ids["outsider"]]["candidate"]["rule"] == "visitors may read demo"
    (refund,) = _examples(report, "approval_to_allowed").values()
    assert refund["record_id"] == traffic.ids["refund"]
    assert refund["candidate"]["rule"] == "agents may call http connections"


def test_files_without_connections_use_the_connections_table(
    traffic: Traffic, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # As `policy export` prints a policy: rules naming connections that live in the table.
    rule = {"name": "reads anywhere", "effect": "allow", "connections": ["demo"]}
    document = {"version": 1, "rules": [{**rule, "match": {"http": {"methods": ["GET"]}}}]}
    folder = _write(tmp_path / "table", document)
    report = replay_json(capsys, "--file", folder, "--connection", "demo")
    assert report["connections"] == "from the connections table (the files declare none)"
    assert report["operations"] == 8
    # The outsider is still outside demo's groups; the delete and the refund fall to default-deny.
    assert report["changes"]["denied_to_allowed"] == 0
    assert report["changes"]["approval_to_denied"] == 1
    # The GETs, now by "reads anywhere" (the masked path too: no rule reads paths), and the delete.
    assert report["changes"]["other_rule"] == 6
    assert report["changes"]["unchanged"] == 1
    code, _, err = replay(capsys, "--file", folder, "--connection", "elsewhere")
    assert code == 2
    assert "--connection 'elsewhere': the candidate policy has no such connection" in err
    assert (
        "(its connections, from the connections table (the files declare none): "
        "demo, demo-k8s, demo-mysql, demo-pg, demo-sql)" in err
    )
    unknown = _write(tmp_path / "unknown", {"version": 1, "rules": [{**rule, "connections": ["nowhere"]}]})
    code, _, err = replay(capsys, "--file", unknown)
    assert code == 1
    assert "rule 'reads anywhere' names unknown connection 'nowhere'" in err
    assert "wardgate: 1 problem(s); nothing replayed" in err


# ---------------------------------------------------------------- bad input


def test_a_policy_that_does_not_load_is_reported_with_file_and_line(
    traffic: Traffic, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "rules.yaml").write_text(
        "version: 1\nrules:\n  - name: oops\n    effect: allow\n"
        "    colour: blue\n    match: {http: {methods: [GET]}}\n"
    )
    before = _state(traffic)
    code, out, err = replay(capsys, "--file", str(folder))
    assert code == 1 and out == ""
    assert f"{folder}/rules.yaml:5: rules[0].colour: unknown field" in err
    assert "wardgate: 1 problem(s); nothing replayed" in err
    assert _state(traffic) == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "yesterday"], "--since 'yesterday' is not a time: use a duration back from now"),
        (["--since", "7d", "--until", "30d"], "--since must be before --until"),
        (["--until", "2026-13-45"], "--until '2026-13-45' is not a time"),
        (["--connection", "nope"], "--connection 'nope': the candidate policy has no such connection "
         "(its connections, declared in the files: demo, demo-k8s, demo-mysql, demo-pg, demo-sql)"),
        (["--examples", "-1"], "--examples -1: between 0 and 100"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_with_a_clear_message(
    traffic: Traffic, capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    folder = _write(tmp_path / "policy", _local_policy(traffic))
    code, out, err = replay(capsys, "--file", folder, *argv)
    assert code == 2 and out == ""
    assert f"wardgate: {message}" in err


def test_an_empty_window_says_so(
    traffic: Traffic, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = _write(tmp_path / "policy", _local_policy(traffic))
    code, out, _ = replay(
        capsys, "--file", folder, "--since", "2001-01-01", "--until", "2001-01-02T12:00:00Z"
    )
    assert code == 0
    assert out.startswith(
        "no recorded operations between 2001-01-01 00:00:00 UTC and 2001-01-02 12:00:00 UTC (candidate p-"
    )
    code, out, err = replay(
        capsys, "--file", folder, "--since", "2001-01-01", "--until", "2001-01-02", "--json"
    )
    assert code == 0 and json.loads(out)["operations"] == 0
    assert "no recorded operations between" in err
    code, out, _ = replay(capsys, "--file", folder, "--connection", "demo-mysql")
    assert (
        code == 0 and out.startswith("no recorded operations between ") and " on connection demo-mysql" in out
    )


# ---------------------------------------------------------------- rebuilding operations (no stack)


def test_recorded_operations_rebuild_to_what_policy_decided() -> None:
    """What the gateway records of an operation rebuilds to what the engine decided on (its units),
    over the bypass corpora: every attribute a rule can read survives the recording."""
    from tests.k8s_bypass_corpus import K8S_BYPASS_CORPUS
    from tests.shell_bypass_corpus import SHELL_BYPASS_CORPUS
    from tests.sql_bypass_corpus import BYPASS_CORPUS
    from wardgate.auditing.whatif import operation_of
    from wardgate.gate import sql_operation_record
    from wardgate.operations import UnparseableOperation
    from wardgate.operations.http import HttpOperation
    from wardgate.operations.k8s import parse_k8s_request
    from wardgate.operations.shell import parse_shell
    from wardgate.operations.sql import parse_sql
    from wardgate.policy.engine import units_of
    from wardgate.recording import recorded_body

    def as_recorded(record: dict[str, Any]) -> Any:
        return json.loads(json.dumps(record))  # what the recording's JSON line gives back

    def check(original: Any, record: dict[str, Any], **http: Any) -> None:
        rebuilt, unknown = operation_of(as_recorded(record), **http)
        assert unknown == frozenset()
        assert type(rebuilt) is type(original)
        if isinstance(original, UnparseableOperation):
            assert rebuilt.reason == original.reason
        elif not isinstance(original, HttpOperation):
            assert units_of(rebuilt) == units_of(original)

    for dialect, text, _ in BYPASS_CORPUS:
        try:
            sql: Any = parse_sql(text, dialect)  # type: ignore[arg-type]
        except UnparseableOperation as unparseable:
            sql = unparseable
        check(sql, sql_operation_record(sql, dialect, call="ExecuteStatementRequest"))
    for method, path, query, _ in K8S_BYPASS_CORPUS:
        try:
            k8s: Any = parse_k8s_request(method, path, query)
        except UnparseableOperation as unparseable:
            k8s = unparseable
        record = (
            {"protocol": "k8s", "unparseable": k8s.reason}
            if isinstance(k8s, UnparseableOperation)
            else k8s.to_record()
        )
        check(k8s, record)
        if not isinstance(k8s, UnparseableOperation):
            assert operation_of(as_recorded(record))[0] == k8s
    for text, _ in SHELL_BYPASS_CORPUS:
        try:
            shell: Any = parse_shell(text)
        except UnparseableOperation:
            continue  # recorded as {"unparseable": ...}: covered above
        assert operation_of(as_recorded(shell.to_record()))[0] == shell
    sent = HttpOperation("POST", "/v1/refunds", "dry=1", b'{"amount": 900}', "application/json")
    body = {**recorded_body(sent.body, 65536), "masked": {}}
    rebuilt, unknown = operation_of(as_recorded(sent.to_record()), body, "application/json")
    assert rebuilt == sent and unknown == frozenset()
    assert rebuilt.body_field("amount") == 900


@pytest.mark.parametrize(
    ("recorded", "why"),
    [
        (None, "the recording holds no operation"),
        ({"protocol": "gopher"}, "the recorded operation's protocol 'gopher' is unknown"),
        ({"protocol": "sql", "dialect": "oracle", "statements": []},
         "the recorded SQL dialect 'oracle' is unknown"),
        ({"protocol": "sql", "dialect": "postgres"}, "the recorded SQL operation has no statements"),
        ({"protocol": "sql", "dialect": "postgres", "statements": [{"kind": 5}]},
         "statement kind in the recording: not text"),
        ({"protocol": "sql", "dialect": "mysql", "statements": [{"kind": "select", "tables_read": "orders"}]},
         "tables read in the recording: not a list of text"),
        ({"protocol": "sql", "dialect": "mysql", "statements": [{"kind": "delete", "has_where": "yes"}]},
         "a recorded SQL statement's has_where is not true, false or null"),
        ({"protocol": "sql", "cursor": "c1"},
         "an execution of a SQL cursor (its query was decided when declared)"),
        ({"protocol": "k8s", "verb": "get"}, "the recorded Kubernetes operation is malformed"),
        ({"protocol": "shell", "text": "ls", "commands": "ls"},
         "the recorded shell operation has no commands"),
        ({"protocol": "http", "path": "/x"}, "method in the recording: not text"),
    ],
)  # fmt: skip
def test_a_malformed_recording_cannot_be_replayed(recorded: Any, why: str) -> None:
    from wardgate.auditing.whatif import CannotReplay, operation_of

    with pytest.raises(CannotReplay) as raised:
        operation_of(recorded)
    assert str(raised.value) == why


def test_what_the_recording_holds_of_bodies_identities_and_decisions() -> None:
    from wardgate.auditing.whatif import CannotReplay, identity_of, recorded_body, recorded_verdict
    from wardgate.recording import recorded_body as record_body

    whole = {**record_body(b"\x00\xffbinary", 65536), "masked": {}}
    assert whole["encoding"] == "base64" and recorded_body(whole) == b"\x00\xffbinary"
    assert recorded_body({**record_body(b'{"card": "[masked:card]"}', 65536), "masked": {"card": 1}}) is None
    assert recorded_body({**record_body(b"x" * 100, 10), "masked": {}}) is None  # cut at the limit
    assert recorded_body({"size": 10, "withheld": "a binary body cannot be masked"}) is None
    assert recorded_body(record_body(b"{}", 65536)) is None  # no masking counts: not known to be as sent

    with pytest.raises(CannotReplay, match=r"^the recording holds no identity$"):
        identity_of(None)
    with pytest.raises(CannotReplay, match=r"^groups in the recording: not a list of text$"):
        identity_of({"subject": "a", "issuer": "i", "groups": "ci"})
    registered = identity_of({"subject": "a", "issuer": "i", "groups": ["ci"], "owner": "o@example.com",
                              "registered": True, "owner_groups": ["eng"]})  # fmt: skip
    assert (registered.owner_groups, registered.registered) == (("eng",), True)

    granted = recorded_verdict({"outcome": "allow", "rule": "r", "approval_grant": {"until": "later"}})
    assert (granted.outcome, granted.note) == ("require_approval", "allowed by an open window approval")
    approved = recorded_verdict(
        {"outcome": "allow", "rule": "r", "approval": "abc", "approved_by": ["oncall@example.com"]}
    )
    assert (approved.outcome, approved.note) == ("require_approval", "approved by oncall@example.com")
    with pytest.raises(CannotReplay):
        recorded_verdict({"outcome": "maybe", "rule": "r"})


def test_recorded_values_are_shown_inert() -> None:
    from wardgate.auditing.whatif import Replayed, Report, Verdict, render

    report = Report("p-new", datetime(2026, 1, 1, tzinfo=UTC), None, None, 3)
    hostile = json.dumps({"protocol": "http", "method": "GET", "path": "/x\x1b[2J\u202e", "query": ""})
    report.add(
        Replayed(
            "0" * 29, None, 1_767_312_000_000_000, "request", "demo", "http",
            json.dumps({"subject": "agent\x07", "owner": None}), hostile,
            Verdict("allow", "old\x1b]0;title\x07"), Verdict("deny", "new", "no\x1b[31m"),
            "allowed_to_denied",
        ),
        "p-old",
    )  # fmt: skip
    report.finish()
    text = render(report, "policies/")
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "GET /x\\x1b[2J\\u202e" in text and "agent\\x07" in text
    assert "Examples of allowed → denied (first 1 of 1):" in text
    assert "  2026-01-02 00:00:00.000  " + "0" * 29 + "  agent" in text


def test_remembered_verdicts_agree_with_deciding_afresh() -> None:
    """Replayer remembers verdicts by operation, caller (token id aside) and which time windows
    hold: over a week of times and callers, each verdict equals ``decide_on`` asked anew."""
    from wardgate.auditing.whatif import Replayer
    from wardgate.connections import Connection
    from wardgate.gate import decide_on
    from wardgate.identity import Identity
    from wardgate.operations.http import HttpOperation
    from wardgate.policy.document import build

    document = {
        "version": 1,
        "connections": [{"name": "billing", "kind": "http", "upstream_url": "https://billing.example.com",
                         "allowed_groups": ["ci", "night-shift"]}],
        "rules": [
            {"name": "reads", "effect": "allow", "match": {"http": {"methods": ["GET"]}}},
            {"name": "office writes", "effect": "allow", "identity": {"groups": ["ci"]},
             "time": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00",
                      "timezone": "Europe/Berlin"},
             "match": {"http": {"methods": ["POST"]}}},
            {"name": "night refunds held", "effect": "require_approval", "approvers": ["lead@example.com"],
             "time": {"start": "22:00", "end": "06:00"}, "match": {"http": {"paths": ["/v1/refunds"]}}},
            {"name": "no deletes by bob", "effect": "deny", "identity": {"subjects": ["bob"]},
             "match": {"http": {"methods": ["DELETE"]}}},
        ],
    }  # fmt: skip
    policy_set = build(document)
    billing = Connection.from_dict(document["connections"][0])
    replayer = Replayer(policy_set, {"billing": billing})
    operations = [
        HttpOperation("GET", "/v1/invoices", ""),
        HttpOperation("POST", "/v1/invoices", ""),
        HttpOperation("POST", "/v1/refunds", "dry=1"),
        HttpOperation("DELETE", "/v1/invoices/7", ""),
    ]
    callers = [
        Identity("alice", "https://idp.example.com", ("ci",), token_id="t-1"),
        Identity("alice", "https://idp.example.com", ("ci",), token_id="t-2"),
        Identity("bob", "https://idp.example.com", ("night-shift",), token_id="t-3"),
        Identity("eve", "https://idp.example.com", ("outsiders",), token_id="t-4"),
    ]
    body = json.dumps(
        {"size": 0, "sha256": "", "truncated": False, "encoding": "utf-8", "data": "", "masked": {}}
    )
    start = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
    checked = 0
    seen = set()
    for step in range(0, 8 * 24 * 60, 17):
        at = start + timedelta(minutes=step)
        for operation in operations:
            for caller in callers:
                verdict = replayer.decide(
                    "request", "billing", "http", json.dumps(operation.to_record()),
                    json.dumps(caller.to_record()), body, "", (at - EPOCH) // timedelta(microseconds=1),
                )  # fmt: skip
                fresh = decide_on(policy_set, caller, billing, operation, now=at)
                assert (verdict.outcome, verdict.rule, verdict.reason) == (
                    fresh.outcome,
                    fresh.rule,
                    fresh.reason,
                )
                seen.add((verdict.outcome, verdict.rule))
                checked += 1
    assert checked > 10_000 and len(seen) == 6  # every rule, default-deny and the groups' gate decided
    assert len(replayer._decided) < checked / 20  # and most were remembered
