"""The TCP gateway's Kubernetes listener with real kubectl (and the official Python client), through
wardgate to the cluster double: every verb, streaming ones included, policy, masking, recordings,
approvals, the kill switch, and bad input.

One local stack and one double per module; each test reaches them with its own kubeconfig.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import gzip
import json
import os
import pty
import queue
import re
import select
import shutil
import socket
import ssl
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import boto3
import httpx
import pytest
from moto import mock_aws

from tests.helpers import apply_policy_now, register_agent
from wardgate.dev.stack import DEV_POLICY, SFN_INTERPRETER, DevStack

ROOT = Path(__file__).resolve().parent.parent
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
CLUSTER = "cluster"  # exec, attach and port-forward allowed by rules
LOCKED = "cluster-locked"  # the same cluster under the no-pod-exec pack
CARD = "4111 1111 1111 1111"
MASKED_CARD = "**** **** **** 1111"
POLICY: dict[str, Any] = {
    "version": 1,
    "connections": [],
    "rules": [
        {
            "name": "agents read the clusters",
            "effect": "allow",
            "connections": [CLUSTER, LOCKED],
            "identity": {"groups": ["ci"]},
            "match": {"k8s": {"verbs": ["get", "list", "watch"]}},
        },
        {
            "name": "agents exec into and attach to pods",
            "effect": "allow",
            "connections": [CLUSTER, LOCKED],
            "match": {
                "k8s": {"verbs": ["create"], "resources": ["pods"], "subresources": ["exec", "attach"]}
            },
        },
        {
            "name": "agents forward ports of pods",
            "effect": "allow",
            "connections": [CLUSTER, LOCKED],
            "match": {"k8s": {"verbs": ["create"], "resources": ["pods"], "subresources": ["portforward"]}},
        },
        {
            "name": "harmless programs",
            "effect": "allow",
            "connections": [CLUSTER, LOCKED],
            "match": {"shell": {"programs": ["echo", "cat", "tar", "sh", "ls", "sleep"]}},
        },
        {
            "name": "operators get terminals and interactive shells",
            "effect": "allow",
            "connections": [CLUSTER],
            "identity": {"groups": ["operators"]},
            "match": {"shell": {"features": ["pty", "interactive_shell"]}},
        },
        {
            "name": "nobody removes files in pods",
            "effect": "deny",
            "connections": [CLUSTER],
            "message": "removing files in pods is not allowed through wardgate",
            "match": {"shell": {"programs": ["rm"]}},
        },
        {
            "name": "touching files needs a human",
            "effect": "require_approval",
            "connections": [CLUSTER],
            "approvers": ["demo-approvers"],
            "message": "creating files in pods needs an on-call engineer",
            "match": {"shell": {"programs": ["touch"]}},
        },
    ],
    "packs": [{"name": "no-pod-exec", "connections": [LOCKED]}],
    "settings": DEV_POLICY["settings"],
}


@dataclasses.dataclass
class Kube:
    stack: DevStack
    double: Any  # wardgate.dev.kube.server.KubeDouble
    token: str
    folder: Path
    cluster_token: str  # the double's own (what wardgate's credential holds)

    @property
    def url(self) -> str:
        return self.stack.kube_listener_url

    @property
    def ca_file(self) -> str:
        return str(self.stack.certificates.ca_file)

    @property
    def services(self) -> Any:
        return self.stack.tcp.services

    def kubeconfig(
        self, token: str | None = None, connection: str = CLUSTER, namespace: str = "prod"
    ) -> Path:
        token = self.token if token is None else token
        path = self.folder / f"kubeconfig-{connection}-{abs(hash(token))}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "wardgate",
                    "cluster": {"server": f"{self.url}/{connection}", "certificate-authority": self.ca_file},
                }
            ],
            "users": [{"name": "agent", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "wardgate",
                    "context": {"cluster": "wardgate", "user": "agent", "namespace": namespace},
                }
            ],
            "current-context": "wardgate",
        }
        path.write_text(json.dumps(config))
        return path

    def argv(
        self, *args: str, token: str | None = None, connection: str = CLUSTER, namespace: str = "prod"
    ) -> list[str]:
        config = self.kubeconfig(token, connection, namespace)
        return [KUBECTL, "--kubeconfig", str(config), "--cache-dir", str(self.folder / "cache"), *args]

    def kubectl(
        self,
        *args: str,
        token: str | None = None,
        connection: str = CLUSTER,
        namespace: str = "prod",
        input: bytes | None = None,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.argv(*args, token=token, connection=connection, namespace=namespace),
            input=input,
            capture_output=True,
            timeout=timeout,
            env=self.env(),
        )
        return subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
        )

    def env(self) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.folder), "KUBECONFIG": ""}

    def raw(self) -> ssl.SSLSocket:
        """A TLS connection to the listener, as a hand-written client."""
        context = ssl.create_default_context(cafile=self.ca_file)
        context.set_alpn_protocols(["http/1.1"])
        sock = socket.create_connection(("127.0.0.1", self.stack.kube_listener_port_bound), timeout=10)
        return context.wrap_socket(sock, server_hostname="127.0.0.1")


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    if not Path(KUBECTL).exists():
        pytest.fail("kubectl (v1.30 or later) is required for these tests: install it (Debian's is too old)")
    from wardgate import aws
    from wardgate.connections import Connection, ConnectionStore
    from wardgate.dev.kube.server import KubeDouble

    saved = dict(os.environ)
    _DELIVERED.clear()
    folder = tmp_path_factory.mktemp("kube-gateway")
    os.environ.update({"WARDGATE_UPSTREAM_TIMEOUT_S": "5", "WARDGATE_HOME": str(folder)})
    try:
        with mock_aws(config=cast(Any, SFN_INTERPRETER)):
            stack = DevStack(
                root=ROOT,
                state_dir=folder,
                port=0,
                upstream_port=0,
                pg_port=0,
                mysql_port=0,
                sign_manifests=False,
            ).start()
            double = None
            try:
                cluster_token = "double-" + os.urandom(8).hex()
                double = KubeDouble(token=cluster_token, certificates=stack.certificates).start()
                secret = {"type": "bearer", "token": cluster_token, "ca_pem": double.ca_pem}
                aws.client("secretsmanager").create_secret(
                    Name="wardgate/cluster", SecretString=json.dumps(secret)
                )
                store = ConnectionStore(os.environ["CONNECTIONS_TABLE"])
                for name in (CLUSTER, LOCKED):
                    store.put(
                        Connection(name, "k8s", double.url, "wardgate/cluster", ("ci",), "the cluster double")
                    )
                apply_policy_now(stack, POLICY)
                assert stack.issuer is not None
                yield Kube(stack, double, stack.issuer.mint("agent-1", ["ci"]), folder, cluster_token)
            finally:
                if double is not None:
                    double.stop()
                stack.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved)


_DELIVERED: dict[str, list[dict[str, Any]]] = {}  # S3 key -> its events (objects never change)


def _events(kind: str | None = None) -> list[dict[str, Any]]:
    """The listener's recorded events, oldest first; each delivered object is read once."""
    s3 = boto3.client("s3")
    prefix = os.environ.get("RECORDINGS_PREFIX", "recordings/")
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=os.environ["RECORDINGS_BUCKET"], Prefix=prefix
    ):
        for item in page.get("Contents", []):
            if item["Key"] not in _DELIVERED:
                data = s3.get_object(Bucket=os.environ["RECORDINGS_BUCKET"], Key=item["Key"])["Body"].read()
                data = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
                _DELIVERED[item["Key"]] = [json.loads(line) for line in data.splitlines()]
    events = [e for found in _DELIVERED.values() for e in found if e.get("protocol") == "kubernetes"]
    events.sort(key=lambda e: e["time"])
    return [e for e in events if kind is None or e["event"] == kind]


def _wait_for(kind: str, predicate: Any = lambda e: True, timeout: float = 5) -> dict[str, Any]:
    """The latest recorded event of ``kind`` meeting ``predicate`` (queued events land just after
    the client is answered)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in _events(kind) if predicate(e)]
        if found:
            return found[-1]
        assert time.monotonic() < deadline, f"no {kind} event recorded"
        time.sleep(0.05)


def _pod(kube: Kube, namespace: str, prefix: str) -> str:
    names = kube.kubectl("get", "pods", "-n", namespace, "-o", "name").stdout.split()
    return next(n.split("/", 1)[1] for n in names if n.split("/", 1)[1].startswith(prefix))


# ---------------------------------------------------------------------------------------------------
# request/response verbs: the Lambda path's own gateway


def test_kubectl_gets_through_the_listener_masked(kube: Kube) -> None:
    pods = kube.kubectl("get", "pods")
    assert pods.returncode == 0, pods.stderr
    assert "web-" in pods.stdout and "Running" in pods.stdout
    secret = kube.kubectl("get", "secret", "db-credentials", "-o", "json")
    assert secret.returncode == 0, secret.stderr
    document = json.loads(secret.stdout)
    assert set(document["data"]) == {"username", "password"}
    assert "s3cr3t" not in secret.stdout and "czNjcjN0" not in secret.stdout  # nor its base64
    denied = kube.kubectl("delete", "configmap", "web-config")
    assert denied.returncode != 0
    assert "Error from server (Forbidden)" in denied.stderr and "no rule allows delete" in denied.stderr


# ---------------------------------------------------------------------------------------------------
# watches and followed logs


def test_a_watch_streams_masked_events_and_is_recorded(kube: Kube) -> None:
    from kubernetes import client
    from kubernetes import watch as watching_module

    watch: Any = watching_module  # the client is untyped

    configuration = client.Configuration()
    configuration.host = f"{kube.url}/{CLUSTER}"
    configuration.ssl_ca_cert = kube.ca_file
    configuration.api_key = {"authorization": f"Bearer {kube.token}"}
    api = client.CoreV1Api(client.ApiClient(configuration))
    events = []
    for event in watch.Watch().stream(
        api.list_namespaced_secret, "prod", timeout_seconds=1, _request_timeout=10
    ):
        events.append(event)
        if len(events) == 1:
            break
    secret = events[0]["object"]
    assert events[0]["type"] == "ADDED" and secret.metadata.name == "db-credentials"
    assert set(secret.data.values()) == {"W21hc2tlZF0="}  # base64 of "[masked]"
    start = _wait_for("session_start", lambda e: e.get("stream") == "watch")
    assert start["operation"]["verb"] == "watch" and start["operation"]["resource"] == "secrets"
    end = _wait_for("session_end", lambda e: e["record_id"] == start["record_id"])
    assert end["events"] >= 1 and "s3cr3t" not in json.dumps(end["first_events"])
    assert end["masked"]["kubernetes_secret"] >= 1


def test_a_table_watch_of_secrets_masks_their_last_applied_copies(kube: Kube) -> None:
    """``kubectl get secrets -w`` asks for Tables: each row embeds the Secret's metadata only, whose
    last-applied annotation is a copy of the Secret (its password in base64)."""
    table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    headers = {"authorization": f"Bearer {kube.token}", "accept": table}
    with httpx.Client(base_url=kube.url, verify=kube.ca_file, timeout=10) as http:
        watched = http.get(
            f"/{CLUSTER}/api/v1/namespaces/prod/secrets?watch=true&timeoutSeconds=1", headers=headers
        )
    assert watched.status_code == 200 and '"kind":"Table"' in watched.text.replace(" ", "")
    assert "db-credentials" in watched.text
    assert "s3cr3t" not in watched.text and "czNjcjN0" not in watched.text  # nor its base64


def test_kubectl_get_watch_prints_changes_as_they_happen(kube: Kube) -> None:
    with subprocess.Popen(
        kube.argv("get", "configmaps", "-w", "--output-watch-events", "-o", "name"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=kube.env(),
    ) as watching:
        try:
            lines = Lines(watching.stdout)
            listed = [lines.next() for _ in range(2)]  # kube-root-ca.crt, web-config
            assert "configmap/web-config\n" in listed, listed
            _wait_live(kube, "WatchSession", "/configmaps")  # the watch itself, after kubectl's list
            _create_configmap(kube, "prod", "made-while-watching", {"owner": "ada@example.com"})
            assert lines.next() == "configmap/made-while-watching\n"
        finally:
            watching.kill()


def test_one_kubeconfig_from_wardgate_kubeconfig_serves_every_verb(kube: Kube) -> None:
    from wardgate import cli

    token_file = kube.folder / "agent-token"
    token_file.write_text(kube.token)
    config = kube.folder / "generated-kubeconfig"
    base = kube.url.removesuffix("/k8s")
    argv = ["kubeconfig", "--connection", CLUSTER, "--server", base, "--ca-file", kube.ca_file]
    argv += ["--user-credential", "token-file", "--token-file", str(token_file), "-o", str(config)]
    assert cli.main(argv) == 0
    env = {**kube.env(), "KUBECONFIG": str(config)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([KUBECTL, *args], env=env, capture_output=True, text=True, timeout=30)

    web = _pod(kube, "prod", "web-")
    assert run("get", "deployments", "-n", "prod", "-o", "name").stdout == "deployment.apps/web\n"
    assert run("logs", "-n", "prod", web).returncode == 0
    assert run("exec", "-n", "default", "debug", "--", "echo", "hello").stdout == "hello\n"
    watched = run("get", "pods", "-n", "prod", "-w", "--request-timeout=2s")
    assert web in watched.stdout  # the watch's list, then it ends at the request timeout


def test_rollout_status_follows_the_deployment_through_a_watch(kube: Kube) -> None:
    done = kube.kubectl("rollout", "status", "deployment/web", "--timeout=20s")
    assert done.returncode == 0, done.stderr
    assert 'deployment "web" successfully rolled out' in done.stdout
    assert _wait_for("session_start", lambda e: e.get("operation", {}).get("resource") == "deployments")


def _live(kube: Kube, kind: str) -> list[Any]:
    sessions = kube.stack.tcp.call(kube.services.sessions.live)
    return [session for session in sessions if type(session).__name__ == kind]


def _wait_live(kube: Kube, kind: str, path: str, timeout: float = 10) -> Any:
    """The live session of ``kind`` whose request path holds ``path``, waiting for it (one that is
    ending, from an earlier test, is not it)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [s for s in _live(kube, kind) if path in s.request.path and not s.ended.is_set()]
        if found:
            return found[-1]
        assert time.monotonic() < deadline, f"no live {kind} on {path}"
        time.sleep(0.02)


def _create_configmap(kube: Kube, namespace: str, name: str, data: dict[str, str]) -> None:
    """A change made in the cluster by someone else (straight to the double, with its own token)."""
    response = httpx.post(
        f"{kube.double.url}/api/v1/namespaces/{namespace}/configmaps",
        json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data},
        headers={"authorization": f"Bearer {kube.cluster_token}"},
        verify=kube.ca_file,
    )
    assert response.status_code == 201, response.text


class Lines:
    """A process's output, line by line as it comes (a thread reads it: pipes buffer)."""

    def __init__(self, stream: Any) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in iter(stream.readline, b""):
            self.queue.put(line.decode())
        self.queue.put("")  # the end

    def next(self, timeout: float = 15) -> str:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("nothing arrived in time") from None


# ---------------------------------------------------------------------------------------------------
# exec, attach, cp


def test_exec_runs_an_allowed_command_masked_and_recorded(kube: Kube) -> None:
    ran = kube.kubectl("exec", "-n", "default", "debug", "--", "echo", f"card {CARD}")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == f"card {MASKED_CARD}\n"
    command = _wait_for("command", lambda e: "echo" in json.dumps(e["operation"]))
    assert command["operation"]["verb"] == "create" and command["operation"]["subresource"] == "exec"
    assert command["operation"]["shell"]["commands"][0]["program"] == "echo"
    assert CARD not in json.dumps(command)  # the argv is recorded masked too
    result = _wait_for("command_result", lambda e: e["record_id"] == command["record_id"])
    assert result["exit_status"] == 0 and result["output"] == f"card {MASKED_CARD}\n"
    assert result["masked"] == {"card": 1}
    failed = kube.kubectl("exec", "-n", "default", "debug", "--", "sh", "-c", "cat /nowhere")
    assert failed.returncode == 1 and "No such file or directory" in failed.stderr
    status = kube.kubectl("exec", "-n", "default", "debug", "--", "sh", "-c", "exit 3")
    assert status.returncode == 3 and "command terminated with exit code 3" in status.stderr
    # The cluster's own refusal reaches kubectl, also when it retries over SPDY (remembered briefly)
    wrong = kube.kubectl("exec", "-n", "default", "debug", "-c", "nope", "--", "echo", "hi")
    assert wrong.returncode == 1
    assert "Error from server (BadRequest): container nope is not valid for pod debug" in wrong.stderr


def test_the_python_clients_exec_speaks_v4_through_the_listener(kube: Kube) -> None:
    from kubernetes import client
    from kubernetes.stream import stream

    configuration = client.Configuration()
    configuration.host = f"{kube.url}/{CLUSTER}"
    configuration.ssl_ca_cert = kube.ca_file
    configuration.api_key = {"authorization": f"Bearer {kube.token}"}
    api = client.CoreV1Api(client.ApiClient(configuration))
    output = stream(
        api.connect_get_namespaced_pod_exec,
        "debug",
        "default",
        command=["echo", CARD],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert output == f"{MASKED_CARD}\n"
    start = _wait_for("command", lambda e: "echo" in json.dumps(e["operation"]))
    result = _wait_for("command_result", lambda e: e["record_id"] == start["record_id"])
    assert result["exit_status"] == 0


def test_a_refused_exec_never_reaches_the_pod(kube: Kube) -> None:
    made = kube.kubectl("exec", "-n", "default", "debug", "--", "sh", "-c", "echo kept > /tmp/keep")
    assert made.returncode == 0, made.stderr
    for argv in (["rm", "/tmp/keep"], ["sh", "-c", "echo hi; rm -f /tmp/keep"]):
        refused = kube.kubectl("exec", "-n", "default", "debug", "--", *argv)
        assert refused.returncode == 1
        assert "Error from server (Forbidden): removing files in pods is not allowed through wardgate" in (
            refused.stderr
        ), refused.stderr
        refusal = _wait_for("session_refused", lambda e: "rm" in json.dumps(e.get("request", {})))
        assert refusal["error"]["code"] == "denied_by_policy"
    kept = kube.kubectl("exec", "-n", "default", "debug", "--", "cat", "/tmp/keep")
    assert kept.stdout == "kept\n"
    locked = kube.kubectl("exec", "-n", "default", "debug", "--", "echo", "hi", connection=LOCKED)
    assert (
        locked.returncode == 1 and "exec, attach and port-forward into pods are not allowed" in locked.stderr
    )


def test_an_exec_is_refused_while_it_cannot_be_recorded(kube: Kube) -> None:
    """Fail closed: with the recording stream down nothing reaches the pod; once it is back, exec
    runs again."""

    class Down:
        def put_batch(self, lines: list[bytes]) -> None:
            raise ConnectionError("firehose is down")

    marker = f"/tmp/unrecorded-{time.time_ns()}"
    commit = kube.services.recorder.commit
    working = commit.stream
    kube.stack.tcp.call(lambda: setattr(commit, "stream", Down()))
    try:
        refused = kube.kubectl("exec", "-n", "default", "debug", "--", "sh", "-c", f"echo x > {marker}")
    finally:
        kube.stack.tcp.call(lambda: setattr(commit, "stream", working))
    assert refused.returncode == 1 and "recording stream unavailable" in refused.stderr, refused.stderr
    missing = kube.kubectl("exec", "-n", "default", "debug", "--", "cat", marker)
    assert missing.returncode == 1 and "No such file or directory" in missing.stderr


def test_an_exec_needing_approval_runs_once_after_it_is_approved(kube: Kube) -> None:
    from tests.approval_helpers import link_in, mail_to, outbox, press, wait_for_mail, wait_status

    marker = f"/tmp/approved-{time.time_ns()}"
    with httpx.Client(base_url=kube.stack.url, timeout=10) as web:
        mails = len(outbox(web))
        held = kube.kubectl("exec", "-n", "default", "debug", "--", "touch", marker)
        assert held.returncode == 1 and "Error from server (Forbidden)" in held.stderr, held.stderr
        assert "creating files in pods needs an on-call engineer" in held.stderr
        request_id = re.search(r"request (\w+) is pending", held.stderr).group(1)  # type: ignore[union-attr]
        poll_url = re.search(r"\((https?://[^)\s]+/requests/\w+)\)", held.stderr).group(1)  # type: ignore[union-attr]
        mail = mail_to(wait_for_mail(web, mails + 2), "oncall@example.com")
        assert request_id in mail["text"] and "touch" in mail["text"]
        assert press(web, link_in(mail, kube.stack)).status_code == 200
        wait_status(web, poll_url, {"Authorization": f"Bearer {kube.token}"}, "approved")
    ran = kube.kubectl("exec", "-n", "default", "debug", "--", "touch", marker)  # the identical command
    assert ran.returncode == 0, ran.stderr
    assert kube.kubectl("exec", "-n", "default", "debug", "--", "ls", marker).stdout == f"{marker}\n"
    command = _wait_for("command", lambda e: "touch" in json.dumps(e["operation"]))
    assert command["decision"]["approval"] == request_id
    again = kube.kubectl("exec", "-n", "default", "debug", "--", "touch", marker)  # spent: a new request
    assert again.returncode == 1 and "is pending" in again.stderr and request_id not in again.stderr


def test_a_shell_reading_stdin_needs_an_interactive_shell_grant(kube: Kube) -> None:
    script = b"echo from-stdin\n"
    refused = kube.kubectl("exec", "-i", "-n", "default", "debug", "--", "sh", input=script)
    assert refused.returncode == 1 and "interactive_shell" in refused.stderr, refused.stderr
    assert kube.stack.issuer is not None
    operator = kube.stack.issuer.mint("operator-1", ["ci", "operators"])
    ran = kube.kubectl("exec", "-i", "-n", "default", "debug", "--", "sh", input=script, token=operator)
    assert ran.returncode == 0 and ran.stdout == "from-stdin\n", ran.stderr
    scripted = kube.kubectl("exec", "-i", "-n", "default", "debug", "--", "sh", "-c", "cat", input=script)
    assert scripted.stdout == "echo from-stdin\n"  # a decided script: its stdin is data to cat


def test_an_interactive_exec_through_a_pty_is_recorded_as_a_terminal(kube: Kube) -> None:
    assert kube.stack.issuer is not None
    operator = kube.stack.issuer.mint("operator-1", ["ci", "operators"])
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # rows, columns
    with subprocess.Popen(
        kube.argv("exec", "-it", "-n", "default", "debug", "--", "sh", token=operator),
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=kube.env(),
        start_new_session=True,
    ) as shell:
        os.close(follower)
        seen = _pty_until(leader, b"#", 15)  # the prompt
        os.write(leader, f"echo {CARD}\r".encode())
        seen += _pty_until(leader, MASKED_CARD.encode(), 10)
        os.write(leader, b"exit\r")
        seen += _pty_until(leader, None, 10)
        assert shell.wait(10) == 0, seen
    os.close(leader)
    assert CARD.encode() not in seen.replace(f"echo {CARD}".encode(), b"")  # the echoed keystrokes aside
    start = _wait_for("terminal_start")
    assert (start["command"], start["width"], start["height"]) == ("sh", 120, 40)  # the terminal's size
    assert start["channel"] == 1 and start["decision"]["outcome"] == "allow"
    _wait_for("terminal_end", lambda e: e["record_id"] == start["record_id"])
    from wardgate.auditing.export import terminals

    (terminal,) = terminals([e for e in _events() if e["record_id"] == start["record_id"]])  # replay's view
    assert {code for _, code, _ in terminal.frames} >= {"o", "i"}
    shown = json.dumps(terminal.frames)
    assert CARD not in shown and MASKED_CARD in shown  # input recorded masked too
    assert terminal.exit_status == 0


def _pty_until(leader: int, wanted: bytes | None, timeout: float) -> bytes:
    """What the terminal showed until ``wanted`` (None: until the program closed it)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted is None or wanted not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, seen
        ready, _, _ = select.select([leader], [], [], remaining)
        if not ready:
            continue
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the follower side is closed: the program is gone
            chunk = b""
        if not chunk:
            assert wanted is None, seen
            return seen
        seen += chunk
    return seen


def test_kubectl_cp_copies_both_ways(kube: Kube) -> None:
    local = kube.folder / "report.txt"
    local.write_text("line one\nline two\n")
    up = kube.kubectl("cp", str(local), "default/debug:/tmp/report.txt")
    assert up.returncode == 0, up.stderr
    back = kube.folder / "report-back.txt"
    down = kube.kubectl("cp", "default/debug:/tmp/report.txt", str(back))
    assert down.returncode == 0, down.stderr
    assert back.read_text() == "line one\nline two\n"
    tars = [e for e in _events("command") if "tar" in json.dumps(e["operation"].get("shell", {}))]
    assert len(tars) >= 2  # one each way, each decided as a tar command


# ---------------------------------------------------------------------------------------------------
# port-forward


def test_port_forward_is_refused_by_the_pack_and_relayed_where_a_rule_allows_it(kube: Kube) -> None:
    web = _pod(kube, "prod", "web-")
    refused = kube.kubectl("port-forward", f"pod/{web}", ":80", connection=LOCKED, timeout=20)
    assert refused.returncode != 0
    assert "exec, attach and port-forward into pods are not allowed" in refused.stderr, refused.stderr
    with subprocess.Popen(
        kube.argv("port-forward", f"pod/{web}", ":80"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=kube.env(),
    ) as forwarding:
        try:
            lines = Lines(forwarding.stdout)
            line = lines.next()
            port = int(re.search(r"127\.0\.0\.1:(\d+) -> 80", line).group(1))  # type: ignore[union-attr]
            answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
            assert answer.status_code == 200
        finally:
            forwarding.kill()
    start = _wait_for("session_start", lambda e: e.get("subresource") == "portforward")
    assert start["pod"] == f"prod/{web}"
    result = _wait_for("command_result", lambda e: e["record_id"] == start["record_id"])
    assert result["bytes_from_client"] > 0 and result["bytes_to_client"] > 0


# ---------------------------------------------------------------------------------------------------
# followed logs and attach


def test_logs_follow_streams_new_lines_masked(kube: Kube) -> None:
    web = _pod(kube, "prod", "web-")
    argv = kube.argv("logs", "-f", "--tail", "0", web)
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=kube.env()) as following:
        try:
            lines = Lines(following.stdout)
            line = _log_until_seen(kube, lines, web, f"payment by card {CARD} accepted")
            assert line == f"payment by card {MASKED_CARD} accepted\n"
        finally:
            following.kill()
    start = _wait_for("session_start", lambda e: e.get("stream") == "log")
    end = _wait_for("session_end", lambda e: e["record_id"] == start["record_id"])
    assert end["masked"]["card"] >= 1 and CARD not in json.dumps(end)


def _log_until_seen(kube: Kube, lines: Lines, pod: str, text: str) -> str:
    """Append ``text`` to the pod's log until a line of it arrives: the follow (or attach) starts
    on the double's side a moment after the listener's session is live."""
    for _ in range(40):
        kube.double.store.append_log("prod", pod, "nginx", text)
        with contextlib.suppress(AssertionError):
            return lines.next(timeout=0.25)
    raise AssertionError("no line arrived")


def test_attach_relays_output_and_stdin_needs_a_grant(kube: Kube) -> None:
    web = _pod(kube, "prod", "web-")
    refused = kube.kubectl("attach", "-i", web, timeout=20)
    assert refused.returncode != 0 and "interactive_shell" in refused.stderr, refused.stderr
    argv = kube.argv("attach", web)
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=kube.env()) as attached:
        try:
            lines = Lines(attached.stdout)
            line = _log_until_seen(kube, lines, web, f"GET /pay?card={CARD.replace(' ', '')} 200")
            assert line.startswith("GET /pay?card=") and CARD.replace(" ", "") not in line, line
        finally:
            attached.kill()


# ---------------------------------------------------------------------------------------------------
# the kill switch and lifetimes


def test_revoking_the_agent_ends_its_live_exec_and_watch(kube: Kube) -> None:
    from wardgate import cli

    assert kube.stack.issuer is not None
    register_agent(kube.stack, "agent-doomed", "bob@example.com", CLUSTER)
    doomed = kube.stack.issuer.mint("agent-doomed", ["ci"])
    exec_argv = kube.argv("exec", "-n", "default", "debug", "--", "sleep", "30", token=doomed)
    watch_argv = kube.argv("get", "pods", "-w", token=doomed)
    pipes: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "env": kube.env(),
    }
    with subprocess.Popen(exec_argv, **pipes) as session, subprocess.Popen(watch_argv, **pipes) as watching:
        _wait_live(kube, "UpgradeSession", "/exec")
        _wait_live(kube, "WatchSession", "/pods")
        revoke = ["revoke", "--owner", "bob@example.com", "--reason", "offboarded", "--by", "root"]
        assert cli.main(revoke) == 0
        revoked = time.monotonic()
        _, stderr = session.communicate(timeout=10)
        watched, _ = watching.communicate(timeout=10)
        assert time.monotonic() - revoked < 3
    assert session.returncode != 0 and b"revoked" in stderr, stderr
    assert b"revoked" in watched, watched  # the watch's ERROR event, as kubectl prints it
    ends = [e for e in _events("session_end") if e.get("identity", {}).get("subject") == "agent-doomed"]
    deadline = time.monotonic() + 5
    while len(ends) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        ends = [e for e in _events("session_end") if e.get("identity", {}).get("subject") == "agent-doomed"]
    assert [e["outcome"] for e in ends] == ["ended", "ended"]
    again = kube.kubectl("get", "pods", token=doomed)
    assert again.returncode != 0 and "revoked" in again.stderr


def test_a_watch_ends_when_the_policy_no_longer_allows_it(kube: Kube) -> None:
    argv = kube.argv("get", "configmaps", "-w")
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=kube.env()) as watching:
        try:
            _wait_live(kube, "WatchSession", "/configmaps")
            rules = [dict(rule) for rule in POLICY["rules"]]
            rules[0]["match"] = {"k8s": {"verbs": ["get", "list"]}}  # no more watches
            apply_policy_now(kube.stack, {**POLICY, "rules": rules})
            changed = time.monotonic()
            printed, _ = watching.communicate(timeout=10)
            assert time.monotonic() - changed < 4
        finally:
            watching.kill()
            apply_policy_now(kube.stack, POLICY)
    assert b"no longer allows it" in printed, printed
    end = _wait_for("session_end", lambda e: e.get("reason", "").startswith("the policy in force"))
    assert end["outcome"] == "ended"


def test_a_watch_ends_when_its_token_expires(kube: Kube) -> None:
    services = kube.services
    saved = services.limits
    services.limits = services.sessions.limits = dataclasses.replace(saved, token_grace_s=0.0)
    try:
        assert kube.stack.issuer is not None
        short = kube.stack.issuer.mint("agent-1", ["ci"], ttl=2)
        started = time.monotonic()
        watched = kube.kubectl("get", "pods", "-w", token=short, timeout=20)
        assert time.monotonic() - started < 10
    finally:
        services.limits = services.sessions.limits = saved
    # kubectl prints the ERROR event's Status (as a row of its table) and ends
    assert "the session's token expired" in watched.stdout + watched.stderr, watched
    end = _wait_for("session_end", lambda e: e["reason"].startswith("the session's token expired"))
    assert end["outcome"] == "ended"


# ---------------------------------------------------------------------------------------------------
# bad input: each a clear answer, and nothing else is disturbed


def _exchange(kube: Kube, data: bytes, *, wait: float = 10) -> bytes:
    """Send ``data`` on a new TLS connection; what comes back until the listener closes it."""
    with kube.raw() as sock:
        sock.settimeout(wait)
        sock.sendall(data)
        answer = b""
        with contextlib.suppress(TimeoutError, ssl.SSLError, ConnectionError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


def _status_of(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_garbage_oversized_and_unfinished_requests_are_answered_and_closed(kube: Kube) -> None:
    code, status = _status_of(_exchange(kube, b"\x00\x01\x02 not http at all\r\n\r\n"))
    assert code == 400 and status["kind"] == "Status" and status["reason"] == "BadRequest"
    huge = b"GET /k8s/cluster/api HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    code, status = _status_of(_exchange(kube, huge))
    assert code == 431 and "too large" in status["message"]
    services = kube.services
    saved = services.limits
    services.limits = dataclasses.replace(saved, startup_timeout_s=0.5)
    try:
        started = time.monotonic()
        code, status = _status_of(_exchange(kube, b"GET /k8s/cluster/api HTTP/1.1\r\nHost: x\r\n"))
        assert code == 408 and "not complete in time" in status["message"]
        assert time.monotonic() - started < 3
    finally:
        services.limits = saved
    assert kube.kubectl("get", "configmap", "web-config", "-o", "name").stdout == "configmap/web-config\n"


def test_bad_and_expired_tokens_unknown_connections_and_routes_are_refused_as_statuses(kube: Kube) -> None:
    bad = kube.kubectl("get", "pods", token="not-a-token")
    assert bad.returncode == 1 and "You must be logged in to the server" in bad.stderr, bad.stderr
    assert kube.stack.issuer is not None
    expired = kube.stack.issuer.mint("agent-1", ["ci"], ttl=-120)
    stale = kube.kubectl("get", "pods", token=expired)
    assert stale.returncode == 1 and "You must be logged in to the server" in stale.stderr, stale.stderr
    auth = {"authorization": f"Bearer {kube.token}"}
    with httpx.Client(base_url=kube.url.removesuffix("/k8s"), verify=kube.ca_file, timeout=10) as http:
        answer = http.get("/k8s/nope/api/v1/namespaces/prod/pods", headers=auth)
        assert answer.status_code == 404 and answer.json()["reason"] == "NotFound"
        assert "no connection named 'nope'" in answer.json()["message"]
        answer = http.get("/k8s/nope/api/v1/namespaces/prod/pods?watch=true", headers=auth)
        assert answer.status_code == 404 and answer.json()["kind"] == "Status"
        answer = http.get("/elsewhere", headers=auth)
        assert answer.status_code == 404 and "/k8s/<connection>" in answer.json()["message"]
        answer = http.get("/k8s/cluster/api/v1/namespaces/prod/pods", headers={"authorization": "Bearer x"})
        assert answer.status_code == 401 and answer.json()["reason"] == "Unauthorized"
        assert answer.headers["www-authenticate"].startswith("Bearer")


def test_a_protobuf_only_client_is_refused_clearly_and_json_clients_are_served(kube: Kube) -> None:
    auth = {"authorization": f"Bearer {kube.token}"}
    protobuf = "application/vnd.kubernetes.protobuf"
    with httpx.Client(base_url=kube.url, verify=kube.ca_file, timeout=10) as http:
        for query in ("", "?watch=true&timeoutSeconds=1"):
            answer = http.get(
                f"/{CLUSTER}/api/v1/namespaces/prod/pods{query}", headers={**auth, "accept": protobuf}
            )
            assert answer.status_code == 406 and answer.json()["reason"] == "NotAcceptable", answer.text
        both = http.get(
            f"/{CLUSTER}/api/v1/namespaces/prod/pods",
            headers={**auth, "accept": f"{protobuf}, application/json"},
        )
        assert both.status_code == 200 and both.headers["content-type"].startswith("application/json")


def test_a_websocket_frame_error_ends_that_exec_only(kube: Kube) -> None:
    import base64

    from wsproto import ConnectionType
    from wsproto.connection import Connection as WebSocket
    from wsproto.events import CloseConnection, TextMessage

    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET /k8s/cluster/api/v1/namespaces/default/pods/debug/exec?command=cat&stdin=true&stdout=true "
        f"HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {kube.token}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n"
    ).encode()
    with kube.raw() as sock:
        sock.settimeout(10)
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        websocket = WebSocket(ConnectionType.CLIENT)
        with kube.raw() as other:  # another client of the listener meanwhile
            other.sendall(
                b"GET /k8s/cluster/version HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + kube.token.encode()
                + b"\r\n\r\n"
            )
            sock.sendall(websocket.send(TextMessage(data="text is not part of the channel protocol")))
            closed = None
            with contextlib.suppress(TimeoutError, ssl.SSLError, ConnectionError):
                while closed is None and (data := sock.recv(65536)):
                    websocket.receive_data(data)
                    closed = next((e for e in websocket.events() if isinstance(e, CloseConnection)), None)
            assert closed is not None
            other.settimeout(10)
            assert other.recv(65536).startswith(b"HTTP/1.1 200")
    result = _wait_for("command_result", lambda e: "channel protocol" in json.dumps(e))
    assert result["error"]["code"] == "channel_error"


def test_requests_share_a_kept_alive_connection(kube: Kube) -> None:
    request = "GET /k8s/cluster/api/v1/namespaces/prod/configmaps/web-config HTTP/1.1\r\nHost: x\r\n"
    request += f"Authorization: Bearer {kube.token}\r\n\r\n"
    with kube.raw() as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"
        sock.settimeout(10)
        answers = []
        for _ in range(3):
            sock.sendall(request.encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(1)
            length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
            body = b""
            while len(body) < length:
                body += sock.recv(length - len(body))
            answers.append((head.split(b" ", 2)[1], json.loads(body)["metadata"]["name"]))
    assert answers == [(b"200", "web-config")] * 3
    h2c = request.replace("Host: x\r\n", "Host: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n")
    assert _exchange(kube, h2c.encode(), wait=3).startswith(b"HTTP/1.1 200")  # declined: answered as HTTP/1.1


# ---------------------------------------------------------------------------------------------------
# the channel codec (sans-I/O)


def test_the_channel_codec_frames_and_refuses_what_is_not_the_protocol() -> None:
    from wardgate.tcp.kubernetes import channels

    frame = channels.decode(channels.encode(channels.STDOUT, b"hello"), channels.V5)
    assert (frame.channel, frame.data, frame.closes) == (channels.STDOUT, b"hello", None)
    assert channels.decode(channels.close(channels.STDIN), channels.V5).closes == channels.STDIN
    for bad, protocol in ((b"", channels.V5), (b"\x09data", channels.V5), (b"\xff\x00", channels.V4)):
        with pytest.raises(channels.ChannelError):
            channels.decode(bad, protocol)
    assert channels.resize_of(b'{"Width": 120, "Height": 40}') == (120, 40)
    assert (
        channels.resize_of(b"not json") is None and channels.resize_of(b'{"Width": -1, "Height": 1}') is None
    )
    assert channels.exit_code_of(b'{"status": "Success"}') == 0
    causes = [{"reason": "ExitCode", "message": "3"}]
    failure = {"status": "Failure", "reason": "NonZeroExitCode", "details": {"causes": causes}}
    assert channels.exit_code_of(json.dumps(failure).encode()) == 3
    assert channels.exit_code_of(channels.failure("wardgate: ended")) is None
    assert json.loads(channels.failure("why", "Forbidden", 403))["message"] == "why"


def test_kubectls_protobuf_bodies_and_its_list_validation_work_through_the_listener(kube: Kube) -> None:
    """kubectl 1.32 sends `create configmap` and `auth can-i` bodies as protobuf, and validates a
    `kind: List` with /openapi/v2, which it asks only as protobuf: both must reach the cluster as
    sent (the schema is the API's own, passed unmasked; a JSON answer failed kubectl's decoding)."""
    writes = {
        "name": "agents write configmaps and ask what they may do",
        "effect": "allow",
        "connections": [CLUSTER],
        "match": {
            "k8s": {"verbs": ["create", "patch"], "resources": ["configmaps", "selfsubjectaccessreviews"]}
        },
    }
    apply_policy_now(kube.stack, {**POLICY, "rules": [writes, *POLICY["rules"]]})
    try:
        created = kube.kubectl("create", "configmap", "from-protobuf", "--from-literal=a=b")
        assert (created.returncode, created.stdout) == (0, "configmap/from-protobuf created\n"), (
            created.stderr
        )
        assert kube.kubectl("auth", "can-i", "get", "pods").stdout == "yes\n"
        manifest = b"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n"
        manifest += b"  metadata: {name: from-a-list}\n  data: {x: y}\n"
        applied = kube.kubectl("apply", "-f", "-", input=manifest)
        assert (applied.returncode, applied.stdout) == (0, "configmap/from-a-list created\n"), applied.stderr
        unknown = manifest.replace(b"  data:", b"  dta:")
        refused = kube.kubectl("apply", "-f", "-", input=unknown)  # kubectl's own v2 check still runs
        assert refused.returncode == 1 and 'unknown field "dta"' in refused.stderr, refused.stderr
    finally:
        apply_policy_now(kube.stack, POLICY)
