"""Local mode as a user meets it: template routes, sample events, the CLI and `wardgate dev` itself."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from wardgate import cli
from wardgate.dev.template import Template


def test_every_function_has_a_sample_event_that_its_handler_serves(stack, token):
    template = Template(ROOT / "template.yaml")
    functions = {route.function: route for route in template.routes()}
    assert functions, "template.yaml declares no HttpApi routes"
    credentials = {
        "http_proxy": token,
        "sql_proxy": token,
        "admin": stack.issuer.mint("admin-1", ["wardgate-admins"]),
        "scim": stack.scim_token(),
        "ssh_certificate": token,
    }
    for route in functions.values():
        name = route.code_dir.name
        event = json.loads((ROOT / "events" / f"{name}.json").read_text())
        handler = stack.gateway.handler_for(route)
        if name == "approvals":  # an approver's link: an HTML page; an unknown request decides nothing
            page = handler(event, _context())
            assert page["statusCode"] == 404 and "Nothing was decided" in page["body"], page
            continue
        if name == "audit_page":  # an auditor's browser without a session: off to the identity provider
            page = handler(event, _context())
            assert page["statusCode"] == 302 and "/authorize?" in page["headers"]["location"], page
            assert "next" not in page["headers"]["location"] and page["cookies"], page
            continue
        event["headers"]["authorization"] = f"Bearer {credentials[name]}"
        result = handler(event, _context())
        assert result["statusCode"] == 200, result
        body = json.loads(result["body"])
        if name == "http_proxy":
            assert body["credential"] == "accepted"
        elif name == "sql_proxy":
            assert body["records"] == [[{"longValue": 1}]]
        elif name == "admin":
            assert body == {"agents": []}
        elif name == "ssh_certificate":
            assert body["certificate"].startswith("ssh-ed25519-cert-v01@openssh.com ")
        else:
            assert body["totalResults"] == 0 and body["Resources"] == []
        event["headers"]["authorization"] = "Bearer REPLACE_WITH_A_TOKEN"
        refused = handler(event, _context())
        assert refused["statusCode"] == 401
        if name == "sql_proxy":  # the Data API's error shape, which boto3 reads
            assert refused["headers"]["x-amzn-errortype"] == "AccessDeniedException"
            assert json.loads(refused["body"])["code"] == "malformed_token"
        elif name != "scim":
            assert json.loads(refused["body"])["error"]["code"] == "malformed_token"
    # The scheduled function has no route: its sample event is an EventBridge scheduled event.
    scheduled = importlib.util.spec_from_file_location(
        "agent_check_app", ROOT / "functions/agent_check/app.py"
    )
    assert scheduled is not None and scheduled.loader is not None
    module = importlib.util.module_from_spec(scheduled)
    scheduled.loader.exec_module(module)
    event = json.loads((ROOT / "events" / "agent_check.json").read_text())
    assert module.handler(event, _context()) == {"actions": []}
    # The approval notifier is fed by SQS: a message for a request that is not pending sends nothing.
    notifier = importlib.util.spec_from_file_location(
        "approval_notifier_app", ROOT / "functions/approval_notifier/app.py"
    )
    assert notifier is not None and notifier.loader is not None
    module = importlib.util.module_from_spec(notifier)
    notifier.loader.exec_module(module)
    event = json.loads((ROOT / "events" / "approval_notifier.json").read_text())
    assert module.handler(event, _context()) == {"batchItemFailures": []}


def _context():
    from wardgate.dev.server import LambdaContext

    return LambdaContext("test")


def test_the_template_reads_the_same_with_libyaml_as_with_pure_python_yaml():
    """Template loads with libyaml's parser, once per process (every DevStack reads template.yaml);
    PyYAML's own parser, with the same intrinsic-function constructors, reads exactly the same document."""
    import yaml

    from wardgate.dev import template

    assert issubclass(template._CfnLoader, yaml.CSafeLoader), "libyaml is not in use"

    class PurePython(yaml.SafeLoader):
        pass

    PurePython.add_multi_constructor("!", template._intrinsic)
    text = (ROOT / "template.yaml").read_text()
    doc = Template(ROOT / "template.yaml").doc
    assert doc == yaml.load(text, Loader=PurePython)
    assert doc["Resources"] and any("Fn::Sub" in json.dumps(v) for v in doc["Resources"].values())
    doc["Resources"].clear()  # parsed once per process, but each Template has its own copy
    assert Template(ROOT / "template.yaml").doc == yaml.load(text, Loader=PurePython)


def test_dev_server_serves_exactly_the_template_routes():
    routes = {r.route_key for r in Template(ROOT / "template.yaml").routes()}
    assert routes == {
        "ANY /http/{connection}/{proxy+}",
        "ANY /http/{connection}",
        "ANY /k8s/{connection}/{proxy+}",
        "POST /sql/{connection}/{operation}",
        "ANY /admin/{proxy+}",
        "ANY /scim/v2/{proxy+}",
        "GET /requests/{request_id}",
        "DELETE /requests/{request_id}",
        "GET /approvals/{request_id}",
        "POST /approvals/{request_id}",
        "GET /audit",
        "GET /audit/records/{record_id}",
        "GET /audit/signin",
        "GET /audit/callback",
        "POST /audit/signout",
        "GET /audit/static/{asset}",
        "POST /ssh/certificate",
    }


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/http/demo/a/b", {"connection": "demo", "proxy": "a/b"}),
        ("DELETE", "/http/demo", {"connection": "demo"}),
        ("GET", "/http/demo/", {"connection": "demo"}),
        ("GET", "/http", None),
        ("GET", "/other/demo/x", None),
    ],
)
def test_route_matching_follows_api_gateway(method, path, expected):
    routes = Template(ROOT / "template.yaml").routes()
    match = next((m for r in routes if (m := r.match(method, path)) is not None), None)
    assert match == expected


def test_the_dev_issuer_loads_each_key_file_as_it_is_now(tmp_path: Path):
    """The issuer's key is loaded once per process and key (every DevStack makes an issuer), by the
    file's content: a replaced key file is read anew, never answered from what was loaded before."""
    import jwt

    from wardgate.dev.oidc import DevIssuer

    key_file = tmp_path / "dev-issuer-key.pem"
    first = DevIssuer("http://127.0.0.1:1/_dev/oidc", key_file)  # creates the key
    again = DevIssuer("http://127.0.0.1:1/_dev/oidc", key_file)
    assert again.kid == first.kid
    token = again.mint("agent-1", ["ci"])
    (public,) = first.jwks()["keys"]
    key = jwt.PyJWK(public).key
    assert jwt.decode(token, key, algorithms=["RS256"], audience="wardgate")["sub"] == "agent-1"
    key_file.unlink()
    renewed = DevIssuer("http://127.0.0.1:1/_dev/oidc", key_file)  # a new key in the same place
    assert renewed.kid != first.kid
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(renewed.mint("agent-1", ["ci"]), key, algorithms=["RS256"], audience="wardgate")


@pytest.mark.parametrize("tls", [False, True])
def test_a_loopback_server_stops_at_once_not_at_its_next_poll(tmp_path: Path, tls: bool):
    """shutdown_promptly wakes serve_forever: stopping does not wait out its poll interval (a
    minute here), and the server stops serving (a connection made meanwhile is handled quietly)."""
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler

    from wardgate.dev.certs import make_dev_certificates
    from wardgate.dev.server import LoopbackServer, TlsLoopbackServer, server_tls_context, shutdown_promptly

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(204)
            self.end_headers()

    if tls:
        server: LoopbackServer = TlsLoopbackServer(
            ("127.0.0.1", 0), Ok, server_tls_context(make_dev_certificates(tmp_path))
        )
    else:
        server = LoopbackServer(("127.0.0.1", 0), Ok)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 60}, daemon=True)
    serving.start()
    started = time.monotonic()
    shutdown_promptly(server)
    serving.join(timeout=5)
    assert not serving.is_alive() and time.monotonic() - started < 5
    server.server_close()
    with pytest.raises(OSError):
        socket.create_connection(server.server_address[:2], timeout=2).close()


def test_cli_lists_and_shows_recordings(client, auth, capsys):
    record_id = client.get("/http/demo/cli-check", headers=auth).headers["x-wardgate-record-id"]
    client.get("/http/nope/x", headers=auth)

    assert cli.main(["recordings", "ls"]) == 0
    listing = capsys.readouterr().out
    assert record_id in listing and "/cli-check" in listing and "unknown_connection" in listing

    assert cli.main(["recordings", "ls", "--connection", "demo", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["record_id"] for e in entries] == [record_id]

    assert cli.main(["recordings", "show", record_id, "--json"]) == 0
    events = json.loads(capsys.readouterr().out)
    assert [e["event"] for e in events] == ["request", "response"]

    assert cli.main(["recordings", "show", "0000000000000ffff"]) == 1
    assert "no recording" in capsys.readouterr().err


def test_cli_manages_connections(client, auth, stack, capsys):
    args = ["connections", "put", "--name", "echo2", "--upstream", stack.upstream.url, "--group", "ci"]
    assert cli.main([*args, "--secret", "wardgate/demo"]) == 0
    capsys.readouterr()
    assert client.get("/http/echo2/x", headers=auth).json()["credential"] == "accepted"
    assert cli.main(["connections", "ls"]) == 0
    assert "echo2" in capsys.readouterr().out
    assert cli.main(["connections", "put", "--name", "Bad Name", "--upstream", "ftp://x"]) == 2
    assert "must match" in capsys.readouterr().err
    assert cli.main(["connections", "rm", "echo2"]) == 0


def test_cli_token_claims_override_anything(stack, client, capsys, monkeypatch):
    monkeypatch.setenv("WARDGATE_HOME", str(stack.state_dir))
    assert cli.main(["token", "--sub", "agent-9", "--group", "ci", "--issuer-url", stack.url]) == 0
    good = capsys.readouterr().out.strip()
    assert client.get("/http/demo/x", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    expired_args = [
        "token",
        "--sub",
        "agent-9",
        "--group",
        "ci",
        "--issuer-url",
        stack.url,
        "--claim",
        "exp=1000",
    ]
    assert cli.main(expired_args) == 0
    expired = capsys.readouterr().out.strip()
    response = client.get("/http/demo/x", headers={"Authorization": f"Bearer {expired}"})
    assert response.json()["error"]["code"] == "token_expired"


def _free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_wardgate_dev_end_to_end_as_a_user_runs_it(tmp_path: Path):
    """`wardgate dev`, `wardgate token`, an HTTP client, `wardgate recordings ls`: separate processes."""
    port, upstream_port, aws_port, pg_port, mysql_port, *more = _free_ports(9)
    ssh_port, kube_port, https_port, kube_listener_port = more  # no default port: make dev may be up
    bin_dir = Path(sys.executable).parent
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "WARDGATE_", "CONNECTIONS_", "RECORDINGS_"))
    }
    dev = subprocess.Popen(
        [str(bin_dir / "wardgate"), "dev", "--port", str(port), "--upstream-port", str(upstream_port),
         "--aws-port", str(aws_port), "--pg-port", str(pg_port), "--mysql-port", str(mysql_port),
         "--ssh-port", str(ssh_port), "--kube-port", str(kube_port), "--https-port", str(https_port),
         "--kube-listener-port", str(kube_listener_port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        banner = ""
        deadline = time.monotonic() + 60
        while "wardgate dev is running" not in banner and time.monotonic() < deadline:
            line = dev.stdout.readline()
            assert line or dev.poll() is None, f"wardgate dev exited: {banner}"
            banner += line
        for _ in range(12):  # the rest of the quick start
            banner += dev.stdout.readline()
        assert f"http://127.0.0.1:{port}" in banner and "wardgate token" in banner

        def wardgate(*args: str) -> str:
            done = subprocess.run(
                [str(bin_dir / "wardgate"), *args],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            return done.stdout

        token = wardgate("token", "--sub", "agent-1", "--group", "ci").strip()
        response = httpx.get(
            f"http://127.0.0.1:{port}/http/demo/anything", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["credential"] == "accepted"
        listing = wardgate("recordings", "ls")
        assert response.headers["x-wardgate-record-id"] in listing
        assert "agent-1" in listing
        shown = json.loads(wardgate("recordings", "show", response.headers["x-wardgate-record-id"], "--json"))
        assert shown[0]["identity"]["subject"] == "agent-1"
        dry_run = json.loads(
            wardgate(
                "policy", "test", "--connection", "demo", "--identity", "agent-1", "--group", "ci",
                "--http", "DELETE /v1/users/7", "--json",
            )
        )  # fmt: skip
        assert dry_run["decision"]["rule"] == "no deleting users on demo"
        assert "no deleting users on demo" in wardgate("policy", "export")
    finally:
        dev.terminate()
        try:
            dev.wait(timeout=20)
        except subprocess.TimeoutExpired:
            dev.kill()  # never left running: later tests' CLI calls would find it as "the local stack"
            dev.wait()
            raise
    assert not (ROOT / ".wardgate" / "dev.json").exists()


def test_connections_refuse_secrets_outside_the_readable_prefix(stack, capsys):
    args = [
        "connections",
        "put",
        "--name",
        "x",
        "--upstream",
        "https://api.example.com",
        "--secret",
        "prod/db",
    ]
    assert cli.main(args) == 2
    assert "wardgate/" in capsys.readouterr().err
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:wardgate/x-AbCdEf"
    assert cli.main([*args[:-1], arn]) == 0


def test_the_owner_claim_reaches_the_recording(stack, client):
    token = stack.issuer.mint("agent-3", ["ci"], claims={"owner": "alice@example.com"})
    response = client.get("/http/demo/x", headers={"Authorization": f"Bearer {token}"})
    from tests.helpers import recorded_events

    [first, _] = [e for e in recorded_events() if e["record_id"] == response.headers["x-wardgate-record-id"]]
    assert first["identity"]["owner"] == "alice@example.com"


def _policy_test(
    connection: str, dialect: str, sql: str, capsys: pytest.CaptureFixture[str]
) -> tuple[str, str]:
    args = ["policy", "test", "--connection", connection, "--identity", "agent-1", "--group", "ci"]
    assert cli.main([*args, "--dialect", dialect, "--sql", sql, "--json"]) == 0
    decision = json.loads(capsys.readouterr().out)["decision"]
    return decision["outcome"], decision["rule"]


def test_demo_mysql_is_the_local_mariadb_read_only_like_demo_pg(stack, capsys):
    from wardgate import aws
    from wardgate.config import Settings
    from wardgate.connections import ConnectionStore
    from wardgate.tcp.mysql.backend import MySqlTarget

    store = ConnectionStore(Settings.from_env().connections_table)
    mysql, pg = store.get("demo-mysql"), store.get("demo-pg")
    assert (mysql.kind, mysql.upstream_url) == ("sql", "mysql://wardgate_native@127.0.0.1:3306/wardgate_test")
    assert mysql.allowed_groups == pg.allowed_groups == ("ci", "developers")
    # The login scripts/mysql-test-auth (make dev) creates, from Secrets Manager as on AWS.
    assert mysql.credential_secret is not None
    secret = aws.client("secretsmanager").get_secret_value(SecretId=mysql.credential_secret)
    assert json.loads(secret["SecretString"]) == {
        "type": "basic",
        "username": "wardgate_native",
        "password": "wardgate-login-pw",
    }
    target = MySqlTarget.from_url(mysql.upstream_url)
    assert (target.user, target.database, target.ssl_mode) == ("wardgate_native", "wardgate_test", "disabled")

    # The same read-only pack as demo-pg: reads pass, writes and row locks do not...
    for connection, dialect in (("demo-mysql", "mysql"), ("demo-pg", "postgres")):
        assert _policy_test(connection, dialect, "SELECT 1", capsys) == ("allow", "read-only-sql: reads")
        assert _policy_test(connection, dialect, "INSERT INTO t VALUES (1)", capsys)[0] == "deny"
        assert _policy_test(connection, dialect, "DROP TABLE t", capsys)[0] == "deny"
        assert _policy_test(connection, dialect, "SELECT * FROM t FOR UPDATE", capsys) == (
            "deny",
            "read-only-sql: row locks",
        )
    # ...and the session set-up MySQL drivers send at connect, while the pack still refuses the rest.
    for setup in ("SET NAMES utf8mb4", "SET @@session.autocommit = OFF"):
        assert _policy_test("demo-mysql", "mysql", setup, capsys)[0] == "allow", setup
    for dangerous in ("SET GLOBAL max_connections = 1", "SET ROLE admin"):
        assert _policy_test("demo-mysql", "mysql", dangerous, capsys)[0] == "deny", dangerous
    assert _policy_test("demo-pg", "postgres", "SET search_path = x", capsys)[0] == "deny"


def test_the_quick_start_prints_the_mariadb_and_pymysql_commands_for_demo_mysql(stack):
    from wardgate.dev.stack import quick_start

    assert stack.mysql_port_bound not in (0, 13306, stack.pg_port_bound)  # port 0 in tests: bound anew
    text = quick_start(stack)
    assert "export MYSQL_PWD=$(wardgate token --sub agent-1 --group ci)" in text
    (mariadb,) = [shlex.split(line) for line in text.splitlines() if line.strip().startswith("mariadb ")]
    assert mariadb[0] == "mariadb" and mariadb[-1] == "demo-mysql"  # the connection is the database
    options = mariadb[1:-1]
    assert options[options.index("-h") + 1] == "127.0.0.1"
    assert options[options.index("-P") + 1] == str(stack.mysql_port_bound)
    assert f"--ssl-ca={stack.certificates.ca_file}" in options and "--ssl-verify-server-cert" in options
    assert not [o for o in options if o.startswith(("-p", "--password"))], "the token goes in MYSQL_PWD"

    (python,) = [shlex.split(line) for line in text.splitlines() if line.strip().startswith("python -c ")]
    assert python[:2] == ["python", "-c"] and len(python) == 3
    source = python[2]
    compile(source, "<quick start>", "exec")
    for part in (
        f"port={stack.mysql_port_bound}",
        'database="demo-mysql"',
        f"ssl_ca={json.dumps(str(stack.certificates.ca_file))}",
        "ssl_verify_identity=True",
        'os.environ["MYSQL_PWD"]',
    ):
        assert part in source, part


def test_the_quick_starts_mariadb_and_pymysql_commands_work_on_demo_mysql(stack, token, tmp_path: Path):
    """The printed lines as a user runs them, the token in MYSQL_PWD, the local MariaDB behind."""
    from wardgate.dev.stack import quick_start

    lines = [line.strip() for line in quick_start(stack).splitlines()]
    mariadb = shlex.split(next(line for line in lines if line.startswith("mariadb ")))
    env = {**os.environ, "MYSQL_PWD": token}

    def run(*extra: str, password: str = token) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*mariadb, "-N", "-B", *extra],
            env={**env, "MYSQL_PWD": password},
            capture_output=True,
            text=True,
            timeout=30,
        )

    shown = run("-e", "SELECT CURRENT_USER(), DATABASE()")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["wardgate_native@%", "wardgate_test"]  # the connection's own login
    refused = run("-e", "CREATE TABLE quick_start_write (i int)")
    assert refused.returncode == 1 and "ERROR 1227 (42000)" in refused.stderr, refused.stderr
    assert "this connection is read-only" in refused.stderr  # demo-mysql: the read-only-sql pack
    stranger = run("-e", "SELECT 1", password="not-a-token")
    assert stranger.returncode == 1 and "ERROR 1045 (28000)" in stranger.stderr, stranger.stderr

    python = shlex.split(next(line for line in lines if line.startswith("python -c ")))
    driven = subprocess.run(
        [sys.executable, *python[1:]], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert driven.returncode == 0, driven.stderr
    assert driven.stdout.strip() == "(('wardgate_native@%',),)"
