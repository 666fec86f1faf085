"""Starts the whole local stack: moto, the template's resources, the issuer, the demo upstream, the gateway.

``wardgate dev`` runs it until Ctrl-C; the integration tests start the very same stack.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wardgate.dev.oidc import ISSUER_PATH, DevIssuer
from wardgate.dev.server import GatewayServer
from wardgate.dev.template import REGION, Template, issuers_parameter
from wardgate.dev.upstream import EchoUpstream

DEMO_SECRET = "wardgate/demo"
DEMO_GROUPS = ("ci", "developers")
DEMO_SQL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"  # a local PostgreSQL's default superuser
# demo-mysql: the local MariaDB's wardgate_test as wardgate_native, a login that `make dev` creates
# (scripts/mysql-test-auth) with an application's privileges there and nothing else; local only.
DEMO_MYSQL_URL = "mysql://wardgate_native@127.0.0.1:3306/wardgate_test"
DEMO_MYSQL_SECRET = "wardgate/demo-mysql"
DEMO_K8S_SECRET = "wardgate/demo-k8s"  # the cluster double's bearer token and CA (dev/kube)
DEMO_MYSQL_LOGIN = {"type": "basic", "username": "wardgate_native", "password": "wardgate-login-pw"}
DEMO_APPROVERS = ("oncall@example.com", "lead@example.com")
DEV_AUDIT_CLIENT = "wardgate-audit"  # the replay page's client at the development issuer (PKCE, no secret)
SFN_INTERPRETER = {"stepfunctions": {"execute_state_machine": True}}  # moto runs the approval workflow
# The policy local mode applies: agents may call HTTP connections, except to delete users on demo,
# read the demo cluster, the local PostgreSQL and MariaDB; members of pii-readers see emails and phones.
DEV_POLICY: dict[str, Any] = {
    "version": 1,
    "connections": [],
    "rules": [
        {
            "name": "agents may call http connections",
            "effect": "allow",
            "identity": {"groups": list(DEMO_GROUPS)},
            "match": {"http": {"methods": ["*"]}},
        },
        {
            "name": "no deleting users on demo",
            "effect": "deny",
            "connections": ["demo"],
            "message": "deleting users is not allowed through wardgate",
            "match": {"http": {"methods": ["DELETE"], "paths": ["/v1/users/*"]}},
        },
        {
            "name": "refunds need a human",
            "effect": "require_approval",
            "connections": ["demo"],
            "message": "refunds are paid out for real: a human approves each one",
            "approvers": ["demo-approvers"],
            "match": {"http": {"methods": ["POST"], "paths": ["/v1/refunds"]}},
        },
        {
            "name": "agents may read the demo cluster",
            "effect": "allow",
            "connections": ["demo-k8s"],
            "identity": {"groups": list(DEMO_GROUPS)},
            "match": {"k8s": {"verbs": ["get", "list", "watch"]}},  # watch: get -w, rollout status
        },
        {
            # MySQL drivers set up their session with SET at connect (PyMySQL: SET NAMES utf8mb4;
            # mysql-connector: SET NAMES, SET @@session.autocommit). Deny wins: the read-only pack
            # still refuses SET GLOBAL, SET ROLE and the rest, and the gateway pins sql_mode and
            # the character set whatever policy says.
            "name": "mysql drivers may set up their session on demo-mysql",
            "effect": "allow",
            "connections": ["demo-mysql"],
            "identity": {"groups": list(DEMO_GROUPS)},
            "match": {"sql": {"kinds": ["set"]}},
        },
    ],
    "packs": [{"name": "read-only-sql", "connections": ["demo-sql", "demo-pg", "demo-mysql"]}],
    "settings": {
        "masking": {"exemptions": [{"groups": ["pii-readers"], "reveal": ["email", "phone"]}]},
        "approval": {"approvers": {"demo-approvers": list(DEMO_APPROVERS)}, "timeout_minutes": 15},
    },
}
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
LOCAL_ENV = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


def state_dir(root: Path) -> Path:
    """Where local mode keeps its issuer key and the running server's address."""
    return Path(os.environ.get("WARDGATE_HOME") or root / ".wardgate")


def find_project_root(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "template.yaml").exists():
            return candidate
    raise FileNotFoundError("no template.yaml here or above: run wardgate from the project folder")


@dataclass
class DevStack:
    """One running local wardgate.

    ``aws_endpoint`` is moto's server, or None when moto is mocked in-process (the tests).
    """

    root: Path
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 8700
    upstream_port: int = 8701
    # The TCP gateway's listeners: any free port unless asked (`wardgate dev` asks for 15432 and
    # 13306), so stacks made by tests and benchmarks never collide with a running one.
    pg_port: int = 0
    mysql_port: int = 0
    ssh_port: int | None = None  # the TCP gateway's SSH listener (wardgate dev: 12222); None: none
    kube_listener_port: int = 0  # the TCP gateway's Kubernetes listener, HTTPS (wardgate dev: 16443)
    # The front door over HTTPS (development CA; wardgate dev: 8743) and the Kubernetes cluster
    # double behind demo-k8s (wardgate dev: 8703); any free port unless asked.
    https_port: int = 0
    kube_port: int = 0
    aws_endpoint: str | None = None
    # Recording manifests signed after each delivery, as on AWS. The shared test fixture turns it off:
    # a few ms of moto work per object, for tests that never verify (test_recording_integrity.py does).
    sign_manifests: bool = True
    gateway: GatewayServer | None = field(default=None, init=False)
    upstream: EchoUpstream | None = field(default=None, init=False)
    issuer: DevIssuer | None = field(default=None, init=False)
    template: Template | None = field(default=None, init=False)
    outbox: Path | None = field(default=None, init=False)
    tcp: Any = field(default=None, init=False)  # tcp.server.GatewayThread
    certificates: Any = field(default=None, init=False)  # dev.certs.DevCertificates
    manifests: Any = field(default=None, init=False)  # dev.manifests.LocalManifestSigner
    kube: Any = field(default=None, init=False)  # dev.kube.server.KubeDouble, behind demo-k8s
    _stoppers: list[Callable[[], None]] = field(default_factory=list, init=False)

    def start(self) -> DevStack:
        try:
            return self._start()
        except BaseException:
            self.stop()  # a stack that fails half way leaves no thread behind (a signer, a notifier...)
            raise

    def _start(self) -> DevStack:
        os.environ.update(FAKE_AWS_ENV)
        for key, value in LOCAL_ENV.items():
            os.environ.setdefault(key, value)
        from wardgate import aws, runtime

        if self.aws_endpoint:
            os.environ["AWS_ENDPOINT_URL"] = self.aws_endpoint
            aws.reset_clients()  # clients made earlier would still talk to another endpoint
            enable_workflows(self.aws_endpoint)
        runtime.http_gateway.cache_clear()
        runtime.sql_gateway.cache_clear()
        runtime.approval_desk.cache_clear()
        from wardgate import ssh_certificates

        ssh_certificates.ssh_certificate_api.cache_clear()
        from wardgate import admin, scim

        for cached in (admin.agent_admin, admin.admin_api, scim.scim_service):
            cached.cache_clear()
        self.template = Template(self.root / "template.yaml")
        self.template.provision()

        # Bind first: with port 0 the issuer URL is only known once the socket exists.
        self.gateway = GatewayServer(self.template, None, self.host, self.port)
        self.issuer = DevIssuer(f"{self.gateway.url}{ISSUER_PATH}", self.state_dir / "dev-issuer-key.pem")
        self.gateway.issuer = self.issuer
        parameters = {
            "TrustedIssuers": issuers_parameter(self.issuer.issuer_config()),
            "AuditClientId": DEV_AUDIT_CLIENT,
        }
        for function in {r.function for r in self.template.routes()} | {"ApprovalNotifierFunction"}:
            os.environ.update(self.template.function_environment(function, parameters))
        # The SSH CA and the SSH gateway's host key: files made at first start (Secrets Manager on AWS).
        from wardgate.sshca import local_environment

        os.environ.update(local_environment(self.state_dir))
        # Approval links and poll URLs point here; mail goes to the outbox (/_dev/outbox) and the console.
        self.outbox = self.state_dir / f"outbox-{os.getpid()}-{self.gateway.url.rsplit(':', 1)[1]}"
        shutil.rmtree(self.outbox, ignore_errors=True)
        os.environ.update(WARDGATE_PUBLIC_URL=self.gateway.url, WARDGATE_OUTBOX=str(self.outbox))
        self.gateway.outbox = self.outbox
        # The replay page (/audit): signs in at the development issuer and queries the local cache
        # with DuckDB (moto has no Athena), the same cache `wardgate recordings` reads.
        self.issuer.register_client(DEV_AUDIT_CLIENT, f"{self.gateway.url}/audit/callback")
        os.environ.update(AUDIT_ENGINE="local", AUDIT_CACHE_DIR=str(self.state_dir / "recordings-cache"))

        from wardgate.dev.certs import make_dev_certificates

        # One server certificate for the HTTPS front door, the TCP gateway and the cluster double.
        self.certificates = make_dev_certificates(self.state_dir)
        demo_token = secrets.token_urlsafe(24)
        self.upstream = EchoUpstream(f"Bearer {demo_token}", self.host, self.upstream_port).start()
        self._stoppers.append(self.upstream.stop)
        from wardgate.dev.kube.server import KubeDouble

        # demo-k8s: a cluster double with its own token, over TLS with the development CA.
        kube_token = secrets.token_urlsafe(24)
        self.kube = KubeDouble(
            token=kube_token, certificates=self.certificates, host=self.host, port=self.kube_port
        ).start()
        self._stoppers.append(self.kube.stop)
        self.seed_demo(demo_token)
        self.apply_policy(DEV_POLICY)
        if self.sign_manifests:
            self.start_manifests()

        self.gateway.start()
        self._stoppers.append(self.gateway.stop)
        self.gateway.serve_tls(self.certificates, self.https_port)
        self.start_notifier()
        self.start_tcp()
        return self

    def start_manifests(self) -> None:
        """Each delivered recording object signed, as RecordingManifestFunction does on AWS: with a
        local key made at first start, from the bucket's notifications (dev/manifests.py)."""
        from wardgate.auditing.signing import KEY_SETTING, FileSigner, make_local_key
        from wardgate.config import Settings
        from wardgate.dev.manifests import LocalManifestSigner

        key = make_local_key(self.state_dir)
        os.environ[KEY_SETTING] = f"file:{key}"
        settings = Settings.from_env()
        self.manifests = LocalManifestSigner(
            settings.recordings_bucket, settings.recordings_prefix, FileSigner(key)
        ).start()
        self._stoppers.append(self.manifests.stop)

    def start_tcp(self) -> None:
        """The TCP gateway, as on the Fargate task, in a thread; its certificate from the dev CA."""
        from wardgate.config import Settings
        from wardgate.dev.certs import make_dev_certificates
        from wardgate.tcp.config import Listener, TcpSettings
        from wardgate.tcp.server import GatewayThread, build_services

        self.certificates = self.certificates or make_dev_certificates(self.state_dir)
        settings = TcpSettings(
            listeners=(
                Listener("postgres", self.pg_port, self.host),
                Listener("mysql", self.mysql_port, self.host),
                *([Listener("ssh", self.ssh_port, self.host)] if self.ssh_port is not None else []),
                Listener("kubernetes", self.kube_listener_port, self.host),
            ),
            tls_cert_file=str(self.certificates.cert_file),
            tls_key_file=str(self.certificates.key_file),
            health_port=None,
        )
        self.tcp = GatewayThread(lambda: build_services(Settings.from_env(), settings), settings).start()
        self._stoppers.append(self.tcp.stop)

    def start_notifier(self) -> None:
        """What the SQS event source mapping does on AWS: the notifier consumes the workflow's queue."""
        from wardgate import runtime
        from wardgate.approvals.notifier import LocalNotifier

        assert self.template is not None
        queue_url = str(self.template.resolve({"Ref": "ApprovalNotifyQueue"}, {}))
        notifier = LocalNotifier(queue_url, runtime.approval_desk, lambda: runtime.mailer()).start()
        self._stoppers.append(notifier.stop)

    def seed_demo(self, demo_token: str) -> None:
        from wardgate import aws
        from wardgate.config import Settings
        from wardgate.connections import Connection, ConnectionStore

        assert self.upstream is not None
        aws.client("secretsmanager").create_secret(
            Name=DEMO_SECRET, SecretString=json.dumps({"type": "bearer", "token": demo_token})
        )
        aws.client("secretsmanager").create_secret(
            Name=DEMO_MYSQL_SECRET, SecretString=json.dumps(DEMO_MYSQL_LOGIN)
        )
        assert self.kube is not None
        aws.client("secretsmanager").create_secret(
            Name=DEMO_K8S_SECRET,
            SecretString=json.dumps({"type": "bearer", "token": self.kube.token, "ca_pem": self.kube.ca_pem}),
        )
        store = ConnectionStore(Settings.from_env().connections_table)
        upstream = self.upstream.url
        sql_url = os.environ.get("WARDGATE_DEV_SQL_URL", DEMO_SQL_URL)
        for connection in (
            Connection(
                "demo",
                "http",
                upstream,
                DEMO_SECRET,
                DEMO_GROUPS,
                "Local echo API that checks the credential wardgate injects",
            ),
            Connection(
                "demo-k8s",
                "k8s",
                self.kube.url,
                DEMO_K8S_SECRET,
                DEMO_GROUPS,
                "The local cluster double (namespaces default and prod: a Deployment, pods, a Secret...)",
            ),
            Connection(
                "demo-sql",
                "sql",
                sql_url,
                None,
                DEMO_GROUPS,
                "The local PostgreSQL, read-only through wardgate (WARDGATE_DEV_SQL_URL)",
            ),
            Connection(
                "demo-pg",
                "sql",
                sql_url,
                None,
                DEMO_GROUPS,
                "The local PostgreSQL for psql and drivers through the TCP gateway, read-only",
            ),
            Connection(
                "demo-mysql",
                "sql",
                DEMO_MYSQL_URL,
                DEMO_MYSQL_SECRET,
                DEMO_GROUPS,
                "The local MariaDB for the mariadb client and drivers through the TCP gateway, read-only",
            ),
        ):
            store.put(connection)

    def apply_policy(self, document: dict[str, Any]) -> str:
        from wardgate.config import Settings
        from wardgate.policy.store import PolicyStore

        settings = Settings.from_env()
        store = PolicyStore(settings.policies_table, settings.connections_table)
        return store.apply(document, applied_by="wardgate dev", expected_version=store.current_version())

    def write_state(self) -> Path:
        """Let CLI commands in other shells find this stack (and know it is local)."""
        state: dict[str, Any] = {
            "url": self.url,
            "aws_endpoint": self.aws_endpoint,
            "pid": os.getpid(),
            "env": self.function_env(),
        }
        # `wardgate kubeconfig` reads its endpoints and the CA to trust here (docs/kubernetes.md).
        state["kubernetes"] = {
            "lambda_url": f"{self.https_url}/k8s",
            "ca_file": str(self.certificates.ca_file),
        }
        # The TCP gateway's Kubernetes listener: every verb, streaming ones too (kubeconfig's default).
        state.setdefault("kubernetes", {})["listener_url"] = self.kube_listener_url
        path = self.state_dir / "dev.json"
        path.write_text(json.dumps(state, indent=2))
        self._stoppers.append(lambda: path.unlink(missing_ok=True))
        return path

    def function_env(self) -> dict[str, str]:
        keys = (
            "CONNECTIONS_TABLE",
            "POLICIES_TABLE",
            "AGENTS_TABLE",
            "APPROVALS_TABLE",
            "APPROVAL_STATE_MACHINE",
            "APPROVAL_KEY_SECRET",
            "WARDGATE_PUBLIC_URL",
            "WARDGATE_OUTBOX",
            "SCIM_TOKEN_SECRET",
            "RECORDINGS_TABLE",
            "RECORDINGS_STREAM",
            "RECORDINGS_BUCKET",
            "RECORDINGS_PREFIX",
            "RECORDINGS_MANIFEST_KEY",
        )
        return {k: os.environ[k] for k in keys if k in os.environ}

    @property
    def pg_port_bound(self) -> int:
        return int(self.tcp.port("postgres")) if self.tcp is not None else self.pg_port

    @property
    def mysql_port_bound(self) -> int:
        return int(self.tcp.port("mysql")) if self.tcp is not None else self.mysql_port

    @property
    def ssh_port_bound(self) -> int | None:
        if self.ssh_port is None:
            return None
        return int(self.tcp.port("ssh")) if self.tcp is not None else self.ssh_port

    @property
    def kube_listener_port_bound(self) -> int:
        return int(self.tcp.port("kubernetes")) if self.tcp is not None else self.kube_listener_port

    @property
    def kube_listener_url(self) -> str:
        """``https://127.0.0.1:<port>/k8s``: a kubeconfig's server is this plus ``/<connection>``."""
        return f"https://{self.host}:{self.kube_listener_port_bound}/k8s"

    @property
    def url(self) -> str:
        assert self.gateway is not None
        return self.gateway.url

    @property
    def https_url(self) -> str:
        """The front door over HTTPS, with the development CA (``certificates.ca_file``)."""
        assert self.gateway is not None
        return self.gateway.https_url

    def scim_token(self) -> str:
        """The bearer token of the local SCIM endpoint (generated at start, like the stack's secret)."""
        from wardgate import aws

        secret = aws.client("secretsmanager").get_secret_value(SecretId=os.environ["SCIM_TOKEN_SECRET"])
        return str(secret["SecretString"])

    def stop(self) -> None:
        while self._stoppers:
            self._stoppers.pop()()


def quick_start(stack: DevStack) -> str:
    groups = ", ".join(DEMO_GROUPS)
    return f"""
wardgate dev is running.

  gateway        {stack.url}   (and every route over HTTPS: {stack.https_url}, the dev CA)
  OIDC issuer    {stack.url}{ISSUER_PATH}   (discovery and JWKS; audience "wardgate")
  demo upstream  {stack.upstream.url if stack.upstream else "-"}   (connection "demo", groups {groups})
  AWS (moto)     {stack.aws_endpoint or "in-process"}

Try it (in another shell, from this folder, with .venv/bin on PATH):

  export TOKEN=$(wardgate token --sub agent-1 --group ci)
  curl -H "Authorization: Bearer $TOKEN" {stack.url}/http/demo/anything
  curl -H "Authorization: Bearer $TOKEN" {stack.url}/http/demo/v1/customers      (masked)
  curl -H "Authorization: Bearer $TOKEN" {stack.url}/k8s/demo-k8s/api/v1/namespaces/prod/secrets
  export PII=$(wardgate token --sub analyst-1 --group ci --group pii-readers)   (sees emails)
  wardgate recordings ls
  wardgate recordings show <record-id>
  wardgate recordings verify                  (signed manifests, hash chains: intact?)
  wardgate agents register --subject agent-1 --owner alice@example.com --purpose "CI bot" --connection demo
  wardgate revoke --owner alice@example.com --reason "offboarded"
  SCIM: {stack.url}/scim/v2/Users  (bearer token: wardgate agents scim-token)
  Replay page: {stack.url}/audit  (auditors: sign in at the dev issuer with group "auditors")

PostgreSQL through the TCP gateway (psql, psycopg, asyncpg, pgbench: the connection is the dbname,
the token is the password, TLS is required):
  export PGPASSWORD=$(wardgate token --sub agent-1 --group ci)
  psql "{pg_conninfo(stack)}"

MySQL and MariaDB through the TCP gateway (mariadb/mysql, PyMySQL, mysql-connector: the connection is
the database, the token is the password, TLS is required):
  export MYSQL_PWD=$(wardgate token --sub agent-1 --group ci)
  {mariadb_command(stack)}
  python -c {shlex.quote(pymysql_snippet(stack))}
{ssh_lines(stack)}
Kubernetes with kubectl unchanged (demo-k8s is a local cluster double; docs/kubernetes.md):
  export WARDGATE_TOKEN=$(wardgate token --sub agent-1 --group ci)
  wardgate kubeconfig --connection demo-k8s > kubeconfig                (every verb, via the TCP gateway)
  KUBECONFIG=kubeconfig kubectl get pods -n prod
  KUBECONFIG=kubeconfig kubectl get secret db-credentials -n prod -o yaml   (values masked)
  wardgate kubeconfig --connection demo-k8s --via lambda > kubeconfig-lambda   (request/response verbs)
  KUBECONFIG=kubeconfig-lambda kubectl describe deployment web -n prod

Approvals (refunds on demo need a human; the mail lands in {stack.url}/_dev/outbox and here):
  curl -H "Authorization: Bearer $TOKEN" -d '{{"amount": 900}}' {stack.url}/http/demo/v1/refunds
                                                        (202 Accepted, with a poll_url)
  open the link from the mail, approve, then:
  curl -H "Authorization: Bearer $TOKEN" "<poll_url>?wait=25"                    (the executed result)

Ctrl-C stops everything; local state is in memory and goes with it.
"""


def pg_conninfo(stack: DevStack) -> str:
    """What psql needs to reach ``demo-pg`` through the local TCP gateway (the token goes in PGPASSWORD)."""
    ca = stack.certificates.ca_file if stack.certificates else "-"
    return (
        f"host=127.0.0.1 port={stack.pg_port_bound} dbname=demo-pg user=agent-1 "
        f"sslmode=verify-full sslrootcert={ca}"
    )


def ssh_lines(stack: DevStack) -> str:
    """The quick start's SSH part (empty without the SSH listener): there is no demo target host, so
    it names the steps for one of your own (docs/ssh-gateway.md)."""
    if stack.ssh_port_bound is None:
        return ""
    port, host = stack.ssh_port_bound, stack.host
    return f"""
SSH through the TCP gateway (the SSH user is the connection; each command is decided on its own).
There is no demo host: name one of yours (its key in a secret {{"type": "ssh_key", "private_key": ...}}):
  wardgate connections put --name my-box --kind ssh --upstream ssh://deploy@<host>:22 \\
    --host-key "<its ssh-ed25519 key line>" --secret wardgate/my-box --group ci
  (and a policy rule allowing its commands: match: {{shell: {{programs: [uptime, ...]}}}})
  export WARDGATE_TOKEN=$(wardgate token --sub agent-1 --group ci)
  wardgate ssh login && wardgate ssh-config --connection my-box --gateway-host {host} \\
    --gateway-port {port} -o ~/.ssh/wardgate-my-box.conf
  ssh -F ~/.ssh/wardgate-my-box.conf my-box 'uptime'
  (or the token as the password: ssh -p {port} my-box@{host} 'uptime')
"""


def mariadb_command(stack: DevStack) -> str:
    """The ``mariadb`` command line reaching ``demo-mysql`` through the local TCP gateway (the token
    goes in MYSQL_PWD), verifying the gateway's certificate against the development CA."""
    ca = shlex.quote(str(stack.certificates.ca_file)) if stack.certificates else "-"
    return (
        f"mariadb -h 127.0.0.1 -P {stack.mysql_port_bound} -u agent-1 "
        f"--ssl-ca={ca} --ssl-verify-server-cert demo-mysql"
    )


def pymysql_snippet(stack: DevStack) -> str:
    """The same with PyMySQL (a dependency of wardgate, so .venv/bin/python has it): Python source
    for ``python -c``, which prints the database login wardgate used, never the agent's."""
    ca = json.dumps(str(stack.certificates.ca_file)) if stack.certificates else '"-"'
    return (
        "import os, pymysql; "
        f'c = pymysql.connect(host="127.0.0.1", port={stack.mysql_port_bound}, user="agent-1", '
        f'password=os.environ["MYSQL_PWD"], database="demo-mysql", ssl_ca={ca}, ssl_verify_identity=True)'
        '.cursor(); c.execute("SELECT CURRENT_USER()"); print(c.fetchall())'
    )


def enable_workflows(aws_endpoint: str) -> None:
    """Turn on moto's Step Functions interpreter in a moto server, and tell it where it listens
    (its DynamoDB and SQS service integrations call back into the server)."""
    import urllib.request

    os.environ["MOTO_PORT"] = aws_endpoint.rsplit(":", 1)[1].rstrip("/")
    request = urllib.request.Request(
        f"{aws_endpoint.rstrip('/')}/moto-api/config",
        data=json.dumps(SFN_INTERPRETER).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5):  # the local moto server
        pass


def read_state(root: Path | None = None) -> dict[str, Any] | None:
    try:
        path = state_dir(find_project_root(root)) / "dev.json"
        state: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(int(state["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return None  # a stale file from a dev server that is gone
    return state
