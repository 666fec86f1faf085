"""Cold start of each Lambda function in template.yaml, against a floor timed in the same run.

A cold start here is a fresh Python process that imports the function's handler module and
handles its first event, which has to succeed (status 200) against a local AWS: moto's server
with the template's tables, bucket and stream, a seeded connection and secret, the development
OIDC issuer (discovery + JWKS over loopback HTTP) and an echo upstream, all run by this script.
SqlProxyFunction's first event is a Data API ``Execute`` of a SELECT on an ``rds-data://``
connection, answered by moto's rds-data with canned rows (as deployed, the function reaches
databases through the Data API only: the layer has no database driver).

The floor is a fresh process running a bare handler that imports boto3 and creates the AWS
clients the functions need (dynamodb, firehose, secretsmanager... from one boto3 session, plus,
while the layer's requirements name pynamodb, the second dynamodb client it builds), and returns.

Both kinds of child run like a Lambda sandbox as far as possible:
- ``python -S`` with PYTHONPATH = function code, the layer's source (layers/wardgate) and a
  folder of links to exactly the distributions layers/wardgate/requirements.txt resolves to in
  .venv, so dev-only packages (awscrt, pyOpenSSL, rich, moto...) cannot change what boto3 or
  httpx import;
- the function's environment from the template, plus the variables Lambda sets (function name,
  memory, LAMBDA_TASK_ROOT, the X-Ray trace header and daemon address, log format/level), so
  the Powertools Tracer is created (and patches botocore/httpx) exactly when the template's
  TracingMode says Active, as on Lambda;
- changed for local runs only: AWS_ENDPOINT_URL (moto), fake credentials, TrustedIssuers (the
  dev issuer), AWS_XRAY_DAEMON_ADDRESS (a UDP sink in this script), HOME (an empty folder).

Runs alternate floor and function; the first of each is a discarded warm-up (bytecode and page
caches). A last, untimed function run with ``-X importtime`` gives the import breakdown.

    .venv/bin/python benchmarks/cold_start.py            # print the tables
    .venv/bin/python benchmarks/cold_start.py --write    # and update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import summary
from common import DOC, ROOT, code_version, machine, write_section

LAYER = ROOT / "layers" / "wardgate"  # --layer points the children (and this script) at another copy

MARKERS = ("<!-- coldstart:start -->", "<!-- coldstart:end -->")
TARGET_RATIO = 1.3
CONNECTION = "bench"
SECRET = "wardgate/bench"
SQL_CONNECTION = "bench-sql"
SQL_CLUSTER = "arn:aws:rds:us-east-1:123456789012:cluster:bench"
SQL_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench-db"
SQL_STATEMENT = "SELECT id, name, email, city FROM customers WHERE id <= :last ORDER BY id"
SQL_ROWS = 20
DEFAULT_FUNCTIONS = ("HttpProxyFunction", "SqlProxyFunction")  # the two on agents' request paths
RESULT_PREFIX = "COLDSTART-RESULT "
PHASE_MARKER = "--- wardgate bench phase:"

# The child: timed from its very first statement. Everything it needs arrives as one JSON argument.
RUNNER = r"""
import time
t0 = time.perf_counter()
import json, sys
cfg = json.loads(sys.argv[1])


class Context:
    function_name = cfg["function"]
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + cfg["function"]
    log_group_name = "/aws/lambda/" + cfg["function"]
    log_stream_name = "2024/01/01/[$LATEST]0123456789abcdef"

    def __init__(self, request_id):
        self.aws_request_id = request_id
        self._deadline = time.monotonic() + 29

    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)


module_name, _, attribute = cfg["handler"].rpartition(".")
print(cfg["marker"] + " import", file=sys.stderr, flush=True)
t1 = time.perf_counter()
__import__(module_name)  # an import statement, so that -X importtime shows the handler module's tree
handler = getattr(sys.modules[module_name], attribute)
t2 = time.perf_counter()
print(cfg["marker"] + " event", file=sys.stderr, flush=True)
if cfg.get("profile"):  # untimed diagnostic run only
    import cProfile
    profiler = cProfile.Profile()
    profiler.enable()
first = handler(cfg["event"], Context("00000000-0000-4000-8000-000000000001"))
t3 = time.perf_counter()
if cfg.get("profile"):
    profiler.disable()
    profiler.dump_stats(cfg["profile"])
cpu = time.process_time()  # user + system time of every thread since the process began
print(cfg["prefix"] + json.dumps({
    "import_ms": (t2 - t0) * 1000,
    "first_event_ms": (t3 - t2) * 1000,
    "cold_ms": (t3 - t0) * 1000,
    "cpu_ms": cpu * 1000,
    "status": first.get("statusCode"),
    "body": str(first.get("body"))[:300],
}), flush=True)
second = handler(cfg["event"], Context("00000000-0000-4000-8000-000000000002"))
t4 = time.perf_counter()
print(cfg["prefix"] + json.dumps({
    "second_event_ms": (t4 - t3) * 1000,
    "second_status": second.get("statusCode"),
}), flush=True)
"""

FLOOR_MODULE = '''"""Cold-start floor: import boto3, create the AWS clients the function uses, return."""

import boto3
from botocore.config import Config


clients = []


def handler(event, context):
    if not clients:  # once per container, like the gateway's own clients
        config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 2})
        session = boto3.session.Session()
        clients.extend(session.client(name, config=config) for name in event["services"])
        if event["pynamodb"]:  # pynamodb builds its own client (from the shared session: connections.py)
            clients.append(session.client("dynamodb", config=Config(parameter_validation=False)))
    return {"statusCode": 200, "body": str(len(clients))}
'''


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ layer
def layer_distributions() -> list[Any]:
    """The installed distributions layers/wardgate/requirements.txt resolves to (with extras)."""
    import importlib.metadata as metadata

    from packaging.requirements import Requirement

    wanted = []
    for line in (LAYER / "requirements.txt").read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec:
            wanted.append(Requirement(spec))
    found: dict[str, tuple[Any, set[str]]] = {}
    while wanted:
        requirement = wanted.pop()
        key = requirement.name.lower().replace("_", "-")
        dist = metadata.distribution(requirement.name)
        extras = set(requirement.extras)
        if key in found and extras <= found[key][1]:
            continue
        extras |= found.get(key, (dist, set()))[1]
        found[key] = (dist, extras)
        for raw in dist.requires or []:
            child = Requirement(raw)
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras | {""}):
                wanted.append(child)
    return [dist for dist, _ in found.values()]


def link_layer(target: Path) -> list[str]:
    """A folder of links to the layer's packages only, like the layer's python/ folder on Lambda."""
    target.mkdir(parents=True)
    names = []
    for dist in layer_distributions():
        names.append(f"{dist.metadata['Name']}=={dist.version}")
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (target / top).exists() and top != "__pycache__":
                (target / top).symlink_to(source)
    return sorted(names)


def without_bytecode(site: Path, layer: Path, layer_copy: Path) -> Path:
    """Replace the links in ``site`` by copies without ``__pycache__``, and copy ``layer`` likewise
    (its copy is returned): a layer as deployed without bytecode (Lambda cannot write to /opt)."""
    import shutil

    no_pycache = shutil.ignore_patterns("__pycache__")
    for entry in list(site.iterdir()):
        source = entry.resolve()
        entry.unlink()
        if source.is_dir():
            shutil.copytree(source, entry, ignore=no_pycache)
        else:
            shutil.copy2(source, entry)
    shutil.copytree(layer, layer_copy, ignore=no_pycache)
    return layer_copy


# ------------------------------------------------------------------------------------------ local AWS
class XRaySink:
    """Stands in for the X-Ray daemon: counts the UDP segments the tracer emits."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.received = 0
        threading.Thread(target=self._drain, daemon=True).start()

    @property
    def address(self) -> str:
        host, port = self.sock.getsockname()
        return f"{host}:{port}"

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while self.sock.recv(65536):
                self.received += 1


def sql_request_body() -> bytes:
    """SqlProxyFunction's first event: an ``Execute`` as boto3's rds-data client sends it."""
    return json.dumps(
        {
            "resourceArn": "arn:aws:rds:us-east-1:123456789012:cluster:placeholder",
            "secretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:placeholder",
            "sql": SQL_STATEMENT,
            "parameters": [{"name": "last", "value": {"longValue": SQL_ROWS}}],
            "includeResultMetadata": True,
        }
    ).encode()


def seed_sql_results(endpoint: str) -> None:
    """What moto's rds-data answers to the first event's statement: customers, emails masked."""
    import httpx

    cities = ("Lisbon", "Toronto", "Nairobi", "Osaka", "Berlin")
    columns = [
        {"name": name, "label": name, "typeName": type_name, "type": jdbc, "nullable": 1}
        for name, type_name, jdbc in (("id", "int4", 4), ("name", "varchar", 12), ("email", "varchar", 12))
    ] + [{"name": "city", "label": "city", "typeName": "varchar", "type": 12, "nullable": 1}]
    records = [
        [
            {"longValue": i},
            {"stringValue": f"Customer {i}"},
            {"stringValue": f"customer{i}@example.com"},
            {"stringValue": cities[i % len(cities)]},
        ]
        for i in range(1, SQL_ROWS + 1)
    ]
    result = {"records": records, "columnMetadata": columns, "numberOfRecordsUpdated": 0}
    answer = httpx.post(
        f"{endpoint}/moto-api/static/rds-data/statement-results",
        json={"account_id": "123456789012", "region": "us-east-1", "results": [result]},
    )
    answer.raise_for_status()


@dataclass
class Function:
    name: str
    handler: str
    code_dir: Path
    event: dict[str, Any] | None  # None: no HttpApi route to build a first event from
    env: dict[str, str]
    services: list[str]  # the AWS services its IAM policies allow: the clients its floor creates
    tracing: str  # Active or PassThrough, from the template (Tracing, with parameter defaults)


IAM_TO_BOTO3 = {"states": "stepfunctions"}  # IAM action prefixes that are not boto3 service names


def policy_services(resource: dict[str, Any]) -> list[str]:
    """boto3 names of the services a function's inline policies allow (dynamodb:GetItem -> dynamodb)."""
    services = set()
    for policy in resource.get("Properties", {}).get("Policies") or []:
        statements = policy.get("Statement", []) if isinstance(policy, dict) else []
        for statement in statements if isinstance(statements, list) else [statements]:
            if statement.get("Effect") != "Allow":
                continue
            actions = statement.get("Action", [])
            for action in [actions] if isinstance(actions, str) else actions:
                prefix = action.split(":", 1)[0]
                services.add(IAM_TO_BOTO3.get(prefix, prefix))
    return sorted(services)


def uses_pynamodb() -> bool:
    requirements = (LAYER / "requirements.txt").read_text().lower()
    return any(line.split("#")[0].strip().startswith("pynamodb") for line in requirements.splitlines())


@contextlib.contextmanager
def local_stack(workdir: Path, tracing: str | None = None) -> Iterator[tuple[list[Function], Any]]:
    """moto + the template's resources + dev issuer + echo upstream + a seeded connection."""
    import logging

    from moto.server import ThreadedMotoServer

    from wardgate.connections import Connection, ConnectionStore
    from wardgate.dev.oidc import ISSUER_PATH, DevIssuer
    from wardgate.dev.server import GatewayServer, api_gateway_event
    from wardgate.dev.stack import DEV_POLICY, FAKE_AWS_ENV
    from wardgate.dev.template import REGION, Template, issuers_parameter
    from wardgate.dev.upstream import EchoUpstream
    from wardgate.policy.store import NO_POLICY, PolicyStore

    os.environ.update(FAKE_AWS_ENV)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    moto = ThreadedMotoServer("127.0.0.1", 0, verbose=False)
    moto.start()
    stoppers: list[Any] = [moto.stop]
    try:
        host, port = moto.get_host_and_port()
        os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
        template = Template(ROOT / "template.yaml")
        template.provision()

        issuer_server = GatewayServer(template, None, "127.0.0.1", 0).start()  # serves /_dev/oidc/... only
        stoppers.append(issuer_server.stop)
        issuer = DevIssuer(issuer_server.url + ISSUER_PATH, workdir / "issuer.pem")
        issuer_server.issuer = issuer
        parameters = {"TrustedIssuers": issuers_parameter(issuer.issuer_config())}

        upstream_token = secrets.token_urlsafe(24)
        upstream = EchoUpstream(f"Bearer {upstream_token}", "127.0.0.1", 0).start()
        stoppers.append(upstream.stop)

        import boto3

        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=SECRET, SecretString=json.dumps({"type": "bearer", "token": upstream_token})
        )
        seed_sql_results(f"http://{host}:{port}")
        functions = []
        routes = template.routes()
        for logical_id, resource in template.resources.items():
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            env = template.function_environment(logical_id, parameters)
            if "CONNECTIONS_TABLE" in env:
                store = ConnectionStore(env["CONNECTIONS_TABLE"])
                store.put(
                    Connection(
                        name=CONNECTION,
                        kind="http",
                        upstream_url=upstream.url,
                        credential_secret=SECRET,
                        allowed_groups=("ci",),
                    )
                )
                sql_url = f"rds-data:///shop?resourceArn={SQL_CLUSTER}&secretArn={SQL_SECRET}"
                store.put(Connection(SQL_CONNECTION, "sql", sql_url, allowed_groups=("ci",)))
            if "POLICIES_TABLE" in env:  # every function reads the same table: apply it once
                policies = PolicyStore(env["POLICIES_TABLE"], env["CONNECTIONS_TABLE"])
                if policies.current_version() == NO_POLICY:
                    reads = {
                        "name": "agents may read the bench database",
                        "effect": "allow",
                        "connections": [SQL_CONNECTION],
                        "identity": {"groups": ["ci"]},
                        "match": {"sql": {"kinds": ["select"]}},
                    }
                    document = {**DEV_POLICY, "rules": [*DEV_POLICY["rules"][:1], reads], "packs": []}
                    policies.apply(document, "bench", NO_POLICY)
            own = [r for r in routes if r.function == logical_id]
            event = None
            if own:
                route = own[0]
                sql = route.path.startswith("/sql/")
                names = {"connection": SQL_CONNECTION if sql else CONNECTION, "operation": "Execute"}
                raw_path = "/" + "/".join(
                    ("anything" if p.endswith("+}") else names.get(p.strip("{}"), CONNECTION))
                    if p.startswith("{")
                    else p
                    for p in route.path.strip("/").split("/")
                )
                token = issuer.mint("bench-agent", groups=["ci"], ttl=3 * 3600)
                headers = {
                    "accept": "application/json",
                    "authorization": f"Bearer {token}",
                    "host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
                    "user-agent": "python-httpx/0.28.1",
                    "x-forwarded-for": "203.0.113.7",
                    "x-forwarded-proto": "https",
                }
                body = sql_request_body() if sql else b""
                if sql:
                    headers.update({"content-type": "application/json", "content-length": str(len(body))})
                method = "GET" if route.method == "ANY" else route.method
                event = api_gateway_event(route, method, raw_path, "", headers, body, "203.0.113.7")
            props = {**template.doc.get("Globals", {}).get("Function", {}), **resource.get("Properties", {})}
            mode = tracing or str(template.resolve(props.get("Tracing", "PassThrough"), parameters))
            functions.append(
                Function(
                    logical_id,
                    props["Handler"],
                    template.root / props["CodeUri"],
                    event,
                    env,
                    policy_services(resource),
                    mode,
                )
            )
        yield functions, upstream
    finally:
        for stop in reversed(stoppers):
            with contextlib.suppress(Exception):
                stop()


# ------------------------------------------------------------------------------------------ children
@dataclass
class Sandbox:
    workdir: Path
    site: Path
    xray: XRaySink
    bytecode: bool = True  # False: children neither find nor write .pyc files of the layer

    def env(
        self, function: str, code_dir: Path, extra: dict[str, str], with_layer: bool, tracing: str
    ) -> dict[str, str]:
        from wardgate.dev.stack import FAKE_AWS_ENV

        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        path = [str(code_dir), *([str(LAYER)] if with_layer else []), str(self.site)]
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PYTHONPATH": os.pathsep.join(path),
            **({} if self.bytecode else {"PYTHONDONTWRITEBYTECODE": "1"}),
            **FAKE_AWS_ENV,
            "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
            # What Lambda itself sets for a python3.11 function with Tracing: Active and JSON logs.
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
            "AWS_LAMBDA_FUNCTION_NAME": function,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "AWS_LAMBDA_LOG_LEVEL": "INFO",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]0123456789abcdef",
            "LAMBDA_TASK_ROOT": str(code_dir),
            "LAMBDA_RUNTIME_DIR": str(code_dir),
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "AWS_XRAY_DAEMON_ADDRESS": self.xray.address,
            "_AWS_XRAY_DAEMON_ADDRESS": self.xray.address.split(":")[0],
            "_AWS_XRAY_DAEMON_PORT": self.xray.address.split(":")[1],
            # Lambda samples under Tracing: Active; under PassThrough (no incoming trace) it does not.
            "_X_AMZN_TRACE_ID": "Root=1-65a1b2c3-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled="
            + ("1" if tracing == "Active" else "0"),
            **extra,
        }

    def run(self, config: dict[str, Any], env: dict[str, str], importtime: bool = False) -> dict[str, Any]:
        argv = [
            sys.executable,
            "-S",
            *(["-X", "importtime"] if importtime else []),
            "-c",
            RUNNER,
            json.dumps(config),
        ]
        with tempfile.TemporaryFile("w+") as stderr:
            spawned = time.perf_counter()
            proc = subprocess.Popen(
                argv, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=self.workdir
            )
            assert proc.stdout is not None
            result: dict[str, Any] | None = None
            for line in proc.stdout:
                if line.startswith(RESULT_PREFIX):
                    if result is None:  # the first event's result: the cold start is over
                        result = json.loads(line[len(RESULT_PREFIX) :])
                        result["wall_ms"] = (time.perf_counter() - spawned) * 1000
                    else:
                        result.update(json.loads(line[len(RESULT_PREFIX) :]))
            proc.wait(60)
            stderr.seek(0)
            errors = stderr.read()
        if result is None:
            raise RuntimeError(
                f"{config['function']}: the child failed (exit {proc.returncode}):\n"
                f"{errors[:1500]}\n...\n{errors[-1500:]}"
            )
        if result["status"] != 200 or result.get("second_status") != 200:
            raise RuntimeError(
                f"{config['function']}: events answered {result['status']}, "
                f"{result.get('second_status')}: {result['body']}\n{errors[-3000:]}"
            )
        result["stderr"] = errors
        # What the cold start costs on top of the same request served warm (AWS and upstream round trips).
        result["penalty_ms"] = result["cold_ms"] - result["second_event_ms"]
        return result


# ------------------------------------------------------------------------------------------ importtime
def parse_importtime(stderr: str) -> dict[str, list[tuple[str, str | None, int, int]]]:
    """(module, importing first-party module or None, self µs, cumulative µs) per phase."""
    phases: dict[str, list[tuple[str, str | None, int, int]]] = {"runner": [], "import": [], "event": []}
    phase = "runner"  # the runner's own few imports, the same for floor and function
    raw: dict[str, list[tuple[int, str, int, int]]] = {"runner": [], "import": [], "event": []}
    for line in stderr.splitlines():
        if line.startswith(PHASE_MARKER):
            phase = line[len(PHASE_MARKER) :].strip()
            continue
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, label = line[len("import time:") :].split("|", 2)
        depth = (len(label) - len(label.lstrip()) - 1) // 2  # " " + two spaces per level + name
        raw[phase].append((depth, label.strip(), int(self_us), int(cumulative_us)))
    for phase, entries in raw.items():
        # importtime prints children before their parent: walk backwards to know each one's parent.
        stack: list[tuple[int, str]] = []
        for depth, name, own, cumulative in reversed(entries):
            while stack and stack[-1][0] >= depth:
                stack.pop()
            parent = stack[-1][1] if stack else None
            phases[phase].append((name, parent, own, cumulative))
            stack.append((depth, name))
    return phases


def first_party(module: str | None) -> bool:
    return module is not None and (module == "app" or module.split(".")[0] == "wardgate")


def import_tables(stderr: str, top: int) -> list[str]:
    """The imports that wardgate code (or the handler module) asks for, and self time per package."""
    phases = parse_importtime(stderr)
    lines = []
    for phase, title in (
        ("import", "importing the handler module"),
        ("event", "during the first event (lazy imports)"),
    ):
        entries = phases[phase]
        total = sum(own for _, _, own, _ in entries) / 1000
        by_package: dict[str, int] = defaultdict(int)
        for name, _, own, _ in entries:
            by_package[name.split(".")[0]] += own
        lazy = "(a function, lazily)" if phase == "event" else "(top level)"
        edges = sorted(
            (
                (cum, parent or lazy, name)
                for name, parent, _, cum in entries
                if not first_party(name) and (first_party(parent) or parent is None)
            ),
            reverse=True,
        )[:top]
        packages = sorted(by_package.items(), key=lambda kv: kv[1], reverse=True)[:top]
        lines += [
            f"Imports {title}: {total:.0f} ms of import time in all.",
            "",
            "| imported by → third-party module | cumulative ms | | package | self ms, summed |",
            "|---|---:|---|---|---:|",
        ]
        for i in range(max(len(packages), len(edges))):
            edge = f"{edges[i][1]} → {edges[i][2]} | {edges[i][0] / 1000:.1f}" if i < len(edges) else " | "
            package = f"{packages[i][0]} | {packages[i][1] / 1000:.1f}" if i < len(packages) else " | "
            lines.append(f"| {edge} | | {package} |")
        lines.append("")
    return lines


def first_event_profile(path: Path, function: str) -> list[str]:
    """Where the function's first event goes, from a cProfile of one extra cold start."""
    import pstats

    from wardgate import agents, connections, credentials, gate, identity, recording, runtime, sql_gateway
    from wardgate.dataapi import rdsdata
    from wardgate.operations import sql as sql_operations
    from wardgate.policy import store
    from wardgate.proxies import http as http_proxy

    profile = pstats.Stats(str(path))
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = profile.stats  # type: ignore[attr-defined]
    by_code: dict[tuple[tuple[str, ...], int, str], float] = {
        (Path(f).parts[-2:], line, name): float(entry[3]) * 1000 for (f, line, name), entry in raw.items()
    }

    def cum(function: Any) -> float:
        code = getattr(
            getattr(function, "fget", function), "__wrapped__", getattr(function, "fget", function)
        ).__code__
        return by_code.get((Path(code.co_filename).parts[-2:], code.co_firstlineno, code.co_name), 0.0)

    total = profile.total_tt * 1000  # type: ignore[attr-defined]
    sql = function == "SqlProxyFunction"
    handle = cum(runtime.handle_sql_event if sql else runtime.handle_http_event)
    common = [
        ("JWKS discovery + fetch (`JwksCache._refresh`, 2 GETs)", cum(identity.JwksCache._refresh)),
        ("token signature and claims (`TokenValidator._verify`)", cum(identity.TokenValidator._verify)),
        ("agent registry (`AgentRegistry.check`: client, GetItem)", cum(agents.AgentRegistry.check)),
        (
            "connection from DynamoDB (`ConnectionStore.get`: waiting for the GetItem begun next to the "
            "registry's)",
            cum(connections.ConnectionStore.get),
        ),
        ("policy in force (`PolicyStore.current`: pointer and document)", cum(store.PolicyStore.current)),
    ]
    if sql:
        steps = [
            ("build the gateway (`runtime.sql_gateway`: Data API modules)", cum(runtime.sql_gateway)),
            *common,
            ("SQL classification (`parse_sql`: sqlglot's dialect)", cum(sql_operations.parse_sql)),
            (
                "backend (`BackendPool.get`; the transaction-id key is read in the init phase)",
                cum(sql_gateway.BackendPool.get),
            ),
            (
                "rds-data client + ExecuteStatement (`RdsDataBackend.execute`)",
                cum(rdsdata.RdsDataBackend.execute),
            ),
        ]
    else:
        pool = cum(http_proxy.HttpForwarder.pool_for)
        steps = [
            ("build the gateway (`runtime.http_gateway`)", cum(runtime.http_gateway)),
            *common,
            (
                "credential from Secrets Manager (`CredentialStore._load`: client, call)",
                cum(credentials.CredentialStore._load),
            ),
            ("upstream connection pool (`HttpForwarder.pool_for`)", pool),
            (
                "upstream call (`HttpForwarder.forward` without the pool)",
                cum(http_proxy.HttpForwarder.forward) - pool,
            ),
        ]
    steps += [
        ("Firehose client + 2 x PutRecord (`FirehoseStream.put`)", cum(recording.FirehoseStream.put)),
        ("DynamoDB client + PutItem (`DynamoRecordIndex.put`)", cum(recording.DynamoRecordIndex.put)),
        ("metrics (`Gate._observe`)", cum(gate.Gate._observe)),
    ]
    steps.append(
        (
            f"rest of `{'handle_sql_event' if sql else 'handle_http_event'}`",
            handle - sum(ms for _, ms in steps),
        )
    )
    steps.append(("decorators around the handler (log context, tracer)", total - handle))
    lines = [
        f"Where the first event of {function} goes (one extra run under cProfile, which inflates every "
        f"step; {total:.0f} ms profiled; the index write runs in a thread, outside the handler's time):",
        "",
        "| step | ms | share |",
        "|---|---:|---:|",
        *[f"| {name} | {ms:.1f} | {ms / total:.0%} |" for name, ms in steps],
        "",
    ]
    return lines


# ------------------------------------------------------------------------------------------ report


def med(results: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in results))


def report(
    results: dict[tuple[str, str], list[dict[str, Any]]],
    floor_event: dict[str, dict[str, Any]],
    importtime: dict[str, str],
    profiles: dict[str, Path],
    layer: list[str],
    skipped: list[str],
    tracing: dict[str, str],
    xray_per_start: float,
    runs: int,
) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    names = list(floor_event)
    header, align = [], []
    for n in names:
        event = floor_event[n]
        clients = ", ".join(event["services"]) + (" + pynamodb's dynamodb" if event["pynamodb"] else "")
        header += [f"floor ({clients})", n]
        align += ["---:", "---:"]
    lines = [
        f"Run {when} of {code_version()} on {machine()}; {runs} cold starts of each kind, order rotated "
        "every round, after one discarded warm-up each; medians in ms.",
        "",
        "| | " + " | ".join(header) + " |",
        "|---|" + "|".join(align) + "|",
    ]
    rows = [
        ("imports, from the runner's first line", "import_ms"),
        ("first event (function: a 200 through moto, issuer, upstream)", "first_event_ms"),
        ("**cold start** (imports + first event)", "cold_ms"),
        ("wall time, parent's spawn → result", "wall_ms"),
        ("CPU time of the process until the result (user + system, interpreter start included)", "cpu_ms"),
        ("second event in the same process (warm)", "second_event_ms"),
        ("cold-start penalty (cold start - the warm event)", "penalty_ms"),
    ]
    for label, key in rows:
        cells = [f"{med(results[kind, n], key):.0f}" for n in names for kind in ("floor", "function")]
        if key == "cold_ms":
            cells = [f"**{c}**" for c in cells]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    ratios = []
    figures: dict[str, dict[str, float]] = {}
    for n in names:
        floor, function = results["floor", n], results["function", n]
        ratio = med(function, "cold_ms") / med(floor, "cold_ms")
        figures[n] = {
            "ratio": round(ratio, 3),
            "floor_ms": round(med(floor, "cold_ms"), 1),
            "added_ms": round(med(function, "cold_ms") - med(floor, "cold_ms"), 1),
        }
        wall = med(function, "wall_ms") / med(floor, "wall_ms")
        verdict = "met" if ratio <= TARGET_RATIO else "**missed**"
        penalty = med(function, "penalty_ms") / med(floor, "penalty_ms")
        cpu = med(function, "cpu_ms") / med(floor, "cpu_ms")
        ratios.append(
            f"{n}: cold start **{ratio:.2f}x** its floor (wall time {wall:.2f}x, CPU time {cpu:.2f}x), "
            f"+{med(function, 'cold_ms') - med(floor, 'cold_ms'):.0f} ms; "
            f"target ≤ {TARGET_RATIO}x: {verdict}. "
            f"Cold-start penalty {penalty:.2f}x the floor's."
        )
    lines += ["", *ratios, ""]
    if skipped:
        lines += [
            f"Not measured (`--function NAME` adds one; their first events need a SCIM token, a held "
            f"approval, a queue message or a schedule): {', '.join(skipped)}.",
            "",
        ]
    modes = ", ".join(f"{n}: {mode}" for n, mode in tracing.items())
    lines += [
        f"X-Ray as deployed by the template ({modes}): wardgate creates the Powertools Tracer (importing the "
        f"X-Ray SDK) only under Active; {xray_per_start:.1f} UDP segment(s) per cold start "
        f"reached the stand-in daemon. The children saw only the layer's distributions: {', '.join(layer)}.",
        "",
    ]
    for n, stderr in importtime.items():
        lines += [f"Import breakdown of {n} (one extra run with `python -X importtime`):", ""]
        lines += import_tables(stderr, top=10)
        if n in profiles:
            lines += first_event_profile(profiles[n], n)
    lines += ["<!-- figures " + json.dumps({"functions": figures}) + " -->"]
    return "\n".join(lines).rstrip()


def main() -> None:
    global LAYER
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help=f"update the cold-start section of {DOC.name}")
    parser.add_argument("--runs", type=int, default=15, help="timed cold starts of each kind (default 15)")
    parser.add_argument(
        "--function",
        action="append",
        dest="functions",
        help="a function to measure (default: HttpProxyFunction and SqlProxyFunction, the ones on agents' "
        "request paths; the others need events of their own: a SCIM token, a held approval, a schedule)",
    )
    parser.add_argument(
        "--layer",
        type=Path,
        default=LAYER,
        help="the layer source to measure, e.g. a copy with a candidate change",
    )
    parser.add_argument(
        "--tracing",
        choices=("Active", "PassThrough"),
        help="override the template's Tracing (default: as deployed)",
    )
    parser.add_argument(
        "--without-bytecode",
        action="store_true",
        help="the layer without .pyc files, as SAM's python3.11 builder made it before the layer's "
        "Makefile: every child (floors too) compiles the layer's modules it imports",
    )
    args = parser.parse_args()
    if args.write and args.layer.resolve() != LAYER:
        parser.error("--write records the figures of layers/wardgate only")
    if args.write and (args.tracing or args.without_bytecode):
        parser.error("--write records the template as it is (no --tracing, no --without-bytecode)")
    LAYER = args.layer.resolve()
    sys.path.insert(0, str(LAYER))

    with tempfile.TemporaryDirectory() as tmp, local_stack(Path(tmp), args.tracing) as (functions, upstream):
        workdir = Path(tmp)
        layer = link_layer(workdir / "layer-python")
        if args.without_bytecode:
            LAYER = without_bytecode(workdir / "layer-python", LAYER, workdir / "layer-source")
        floor_dir = workdir / "floor"
        floor_dir.mkdir()
        (floor_dir / "floor_app.py").write_text(FLOOR_MODULE)
        sandbox = Sandbox(workdir, workdir / "layer-python", XRaySink(), not args.without_bytecode)

        base = {"marker": PHASE_MARKER, "prefix": RESULT_PREFIX}
        wanted = set(args.functions or DEFAULT_FUNCTIONS)
        measured = [f for f in functions if f.event is not None and f.name in wanted]
        skipped = [f.name for f in functions if f not in measured]
        floor_event = {f.name: {"services": f.services, "pynamodb": uses_pynamodb()} for f in measured}
        runs: dict[tuple[str, str], tuple[dict[str, Any], dict[str, str]]] = {}
        for f in measured:
            runs["function", f.name] = (
                {**base, "function": f.name, "handler": f.handler, "event": f.event},
                sandbox.env(f.name, f.code_dir, f.env, with_layer=True, tracing=f.tracing),
            )
            runs["floor", f.name] = (
                {**base, "function": f.name, "handler": "floor_app.handler", "event": floor_event[f.name]},
                sandbox.env(f.name, floor_dir, {}, with_layer=False, tracing=f.tracing),
            )
        results: dict[tuple[str, str], list[dict[str, Any]]] = {key: [] for key in runs}
        xray_before = sandbox.xray.received
        keys = list(runs)
        for i in range(args.runs + 1):
            shift = i % len(keys)  # rotate the order: no kind always runs first
            for key in keys[shift:] + keys[:shift]:
                result = sandbox.run(*runs[key])
                http = key[1] != "SqlProxyFunction"
                if key[0] == "function" and http and upstream.requests[-1]["credential"] != "accepted":
                    raise RuntimeError(f"{key[1]}: the upstream did not get the connection's credential")
                if i > 0:  # run 0 is the warm-up
                    results[key].append(result)
            log(f"cold starts: {i}/{args.runs} ...")
        time.sleep(0.2)  # let the last UDP segments arrive
        xray_per_start = (sandbox.xray.received - xray_before) / max(1, (args.runs + 1) * len(measured))
        tracing = {f.name: f.tracing for f in measured}
        importtime, profiles = {}, {}
        for f in measured:
            config, env = runs["function", f.name]
            importtime[f.name] = sandbox.run(config, env, importtime=True)["stderr"]
            profiles[f.name] = workdir / f"{f.name}.pstats"
            sandbox.run({**config, "profile": str(profiles[f.name])}, env)
        text = report(
            results, floor_event, importtime, profiles, layer, skipped, tracing, xray_per_start, args.runs
        )
    if args.without_bytecode:
        text = "**Without bytecode** (no .pyc of the layer, floors included).\n\n" + text
    print(text)
    if args.write:
        write_section(MARKERS, text)
        summary.update()


if __name__ == "__main__":
    main()
