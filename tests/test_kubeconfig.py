"""``wardgate kubeconfig`` and ``wardgate kube credential``: the file kubectl and the Python
``kubernetes`` client load unchanged, the exec credential plugin they run, and the HTTPS front door
they reach (the development CA). One local stack for the module; real clients, real processes."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from moto import mock_aws

from tests.conftest import ROOT
from wardgate import cli
from wardgate.cli_kube import exec_credential, token_expiry
from wardgate.dev.stack import SFN_INTERPRETER, DevStack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    saved = dict(os.environ)
    state = tmp_path_factory.mktemp("wardgate-kubeconfig")
    os.environ["WARDGATE_HOME"] = str(state)  # read_state() (wardgate kubeconfig) finds this stack
    try:
        with mock_aws(config=SFN_INTERPRETER):  # type: ignore[call-overload]
            running = DevStack(
                root=ROOT, state_dir=state, port=0, upstream_port=0, sign_manifests=False
            ).start()
            running.write_state()
            try:
                yield running
            finally:
                running.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def token(stack: DevStack) -> str:
    assert stack.issuer is not None
    return stack.issuer.mint("agent-1", ["ci"])


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def kubeconfig_of(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run_cli(capsys, "kubeconfig", *argv)
    assert code == 0, err
    document: dict[str, Any] = yaml.safe_load(out)
    return document


def plugin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``wardgate kube credential`` as kubectl runs it: a separate process, its env, no stdin."""
    return subprocess.run(
        [sys.executable, "-m", "wardgate.cli", "kube", "credential", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


# --------------------------------------------------------------------------- the credential plugin
def test_the_plugin_prints_an_exec_credential_with_the_tokens_expiry(stack: DevStack, token: str) -> None:
    info = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "spec": {}}
    done = plugin({"WARDGATE_TOKEN": token, "KUBERNETES_EXEC_INFO": json.dumps(info)})

    assert done.returncode == 0, done.stderr
    credential = json.loads(done.stdout)
    assert credential["apiVersion"] == "client.authentication.k8s.io/v1"
    assert credential["kind"] == "ExecCredential" and credential["status"]["token"] == token
    expiry = token_expiry(token)
    assert expiry is not None and credential["status"]["expirationTimestamp"] == expiry.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert 0 < expiry.timestamp() - time.time() <= 900  # the dev issuer's default lifetime


def test_the_plugin_reads_a_token_file_and_answers_the_version_it_was_asked_in(
    stack: DevStack, token: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    info = {"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential", "spec": {}}
    done = plugin(
        {"WARDGATE_TOKEN": "", "KUBERNETES_EXEC_INFO": json.dumps(info)}, "--token-file", str(token_file)
    )

    assert done.returncode == 0, done.stderr
    credential = json.loads(done.stdout)
    assert credential["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert credential["status"]["token"] == token


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"WARDGATE_TOKEN": ""}, "no token: set WARDGATE_TOKEN or pass --token-file"),
        ({"WARDGATE_TOKEN": "two tokens"}, "holds whitespace"),
        ({"KUBERNETES_EXEC_INFO": '{"apiVersion": "client.authentication.k8s.io/v2"}'}, "unsupported"),
    ],
)
def test_the_plugin_fails_clearly_and_prints_no_credential(
    stack: DevStack, token: str, env: dict[str, str], says: str
) -> None:
    done = plugin({"WARDGATE_TOKEN": token, **env})
    assert done.returncode == 1 and done.stdout == ""
    assert says in done.stderr
    assert token not in done.stderr  # never echoed


def test_an_expired_token_is_refused_by_the_plugin_rather_than_sent(stack: DevStack) -> None:
    assert stack.issuer is not None
    expired = stack.issuer.mint("agent-1", ["ci"], ttl=-60)
    done = plugin({"WARDGATE_TOKEN": expired})
    assert done.returncode == 1 and done.stdout == ""
    assert "the token expired at" in done.stderr


def test_a_token_without_a_readable_exp_has_no_expiry_and_is_still_served() -> None:
    assert token_expiry("not-a-jwt") is None
    unsigned = ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
        for part in ({"alg": "none"}, {"sub": "x", "exp": "tomorrow"})
    )
    credential = exec_credential(unsigned + ".sig", "client.authentication.k8s.io/v1")
    assert "expirationTimestamp" not in credential["status"]
    soon = exec_credential(
        unsigned.split(".")[0]
        + "."
        + base64.urlsafe_b64encode(json.dumps({"exp": 4102444800}).encode()).decode().rstrip("=")
        + ".sig",
        "client.authentication.k8s.io/v1",
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert soon["status"]["expirationTimestamp"] == "2100-01-01T00:00:00Z"


# --------------------------------------------------------------------------- the kubeconfig
def test_the_local_kubeconfig_points_at_the_https_lambda_route_with_the_dev_ca(
    stack: DevStack, capsys: pytest.CaptureFixture[str]
) -> None:
    config = kubeconfig_of(capsys, "--connection", "demo-k8s", "--via", "lambda")

    assert config["apiVersion"] == "v1" and config["kind"] == "Config"
    assert config["current-context"] == "demo-k8s"
    [cluster] = config["clusters"]
    assert cluster["name"] == "demo-k8s"
    assert cluster["cluster"]["server"] == f"{stack.https_url}/k8s/demo-k8s"
    ca = base64.b64decode(cluster["cluster"]["certificate-authority-data"])
    assert ca == stack.certificates.ca_file.read_bytes()
    assert config["contexts"] == [
        {"name": "demo-k8s", "context": {"cluster": "demo-k8s", "user": "demo-k8s"}}
    ]
    [user] = config["users"]
    plugin_config = user["user"]["exec"]
    assert plugin_config["apiVersion"] == "client.authentication.k8s.io/v1"
    assert plugin_config["args"][-2:] == ["kube", "credential"]
    assert plugin_config["interactiveMode"] == "Never" and plugin_config["provideClusterInfo"] is False
    assert Path(plugin_config["command"]).name in ("wardgate", Path(sys.executable).name)


def test_the_default_kubeconfig_points_at_the_kubernetes_listener(
    stack: DevStack, capsys: pytest.CaptureFixture[str]
) -> None:
    config = kubeconfig_of(capsys, "--connection", "demo-k8s")
    server = config["clusters"][0]["cluster"]["server"]
    state = json.loads((stack.state_dir / "dev.json").read_text())
    assert server == state["kubernetes"]["listener_url"] + "/demo-k8s"
    assert server.startswith("https://") and server != f"{stack.https_url}/k8s/demo-k8s"


def test_a_token_file_user_and_an_explicit_server(
    stack: DevStack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    token_file = tmp_path / "agent-token"
    ca_file = stack.certificates.ca_file
    config = kubeconfig_of(
        capsys,
        "--connection",
        "prod-cluster",
        "--server",
        "https://gw.example.com:6443/k8s/",
        "--ca-file",
        str(ca_file),
        "--user-credential",
        "token-file",
        "--token-file",
        str(token_file),
    )
    assert config["clusters"][0]["cluster"]["server"] == "https://gw.example.com:6443/k8s/prod-cluster"
    assert config["users"] == [{"name": "prod-cluster", "user": {"tokenFile": str(token_file)}}]


def test_the_output_file_is_private_and_never_silently_replaced(
    stack: DevStack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "kubeconfig"
    code, _, err = run_cli(
        capsys, "kubeconfig", "--connection", "demo-k8s", "--via", "lambda", "-o", str(target)
    )
    assert code == 0 and "KUBECONFIG=" in err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    first = target.read_text()
    code, _, err = run_cli(
        capsys, "kubeconfig", "--connection", "other", "--via", "lambda", "-o", str(target)
    )
    assert code == 2 and "exists" in err and target.read_text() == first
    code, _, _ = run_cli(
        capsys, "kubeconfig", "--connection", "other", "--via", "lambda", "-o", str(target), "--force"
    )
    assert code == 0 and "current-context: other" in target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--connection", "../etc"], "must match"),
        (["--connection", "c", "--server", "http://gw:8700"], "must be an https:// URL"),
        (["--connection", "c", "--user-credential", "token-file"], "needs --token-file"),
        (
            ["--connection", "c", "--via", "lambda", "--ca-file", "/nonexistent/ca.pem"],
            "cannot read the CA file",
        ),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(
    stack: DevStack, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    code, out, err = run_cli(capsys, "kubeconfig", *argv)
    assert code == 2 and out == "" and says in err


# --------------------------------------------------------------------------- real clients
def test_the_python_kubernetes_client_loads_the_file_and_runs_the_plugin(
    stack: DevStack, token: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from kubernetes import client, config

    path = tmp_path / "kubeconfig"
    assert cli.main(["kubeconfig", "--connection", "demo-k8s", "--via", "lambda", "-o", str(path)]) == 0
    os.environ["WARDGATE_TOKEN"] = token  # what the agent's shell holds; the plugin reads it
    try:
        api_client = config.new_client_from_config(config_file=str(path))  # type: ignore[no-untyped-call]
        secret = client.CoreV1Api(api_client).read_namespaced_secret("db-credentials", "prod")
    finally:
        del os.environ["WARDGATE_TOKEN"]
    assert secret.metadata is not None and secret.metadata.name == "db-credentials"
    assert secret.data is not None
    assert {base64.b64decode(v) for v in secret.data.values()} == {b"[masked]"}  # masked on the way


def test_the_https_front_door_serves_every_route_with_the_dev_ca(stack: DevStack, token: str) -> None:
    with httpx.Client(base_url=stack.https_url, verify=str(stack.certificates.ca_file), timeout=10) as https:
        denied = https.get("/http/demo/anything")
        assert denied.status_code == 401  # the same routes as over HTTP
        allowed = https.get("/http/demo/anything", headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200, allowed.text
    with pytest.raises(httpx.ConnectError):  # a client that does not trust the dev CA never talks
        httpx.get(f"{stack.https_url}/http/demo/anything", timeout=5)
    plain = httpx.get(f"{stack.url}/http/demo/anything", headers={"Authorization": f"Bearer {token}"})
    assert plain.status_code == 200  # plain HTTP stays for the rest


def test_the_quick_starts_kubernetes_lines_work(
    stack: DevStack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """What `wardgate dev` prints for Kubernetes, run as printed (kubectl through both endpoints)."""
    from wardgate.dev.stack import quick_start

    text = quick_start(stack)
    block = text[text.index("Kubernetes with kubectl unchanged") :].split("\n\n", 1)[0]
    env = {"HOME": str(tmp_path)}
    ran = 0
    for line in block.splitlines()[1:]:
        command = re.split(r"\s{2,}\(", line.strip())[0]  # without the explanation in parentheses
        if command.startswith("export WARDGATE_TOKEN=$("):
            argv = shlex.split(command[len("export WARDGATE_TOKEN=$(") : -1])
            assert argv[0] == "wardgate" and cli.main(argv[1:]) == 0
            env["WARDGATE_TOKEN"] = capsys.readouterr().out.strip()
        elif command.startswith("wardgate kubeconfig"):
            line_argv, _, target = command.partition(" > ")
            assert cli.main(shlex.split(line_argv)[1:]) == 0
            (tmp_path / target).write_text(capsys.readouterr().out)
        else:
            assignment, _, kubectl = command.partition(" ")
            name, _, value = assignment.partition("=")
            assert name == "KUBECONFIG" and kubectl.startswith("kubectl "), command
            done = subprocess.run(
                shlex.split(kubectl),
                env={**os.environ, **env, "KUBECONFIG": str(tmp_path / value)},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, f"{command}: {done.stderr}"
            assert "s3cr3t" not in done.stdout
        ran += 1
    assert ran == 6


def test_a_deployed_stacks_outputs_name_both_endpoints(
    stack: DevStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """--stack reads CloudFormation's outputs (moto here): the listener's KubernetesEndpoint by
    default, the HTTP API (its custom domain first) with --via lambda; no CA for a public one."""
    import boto3

    def deploy(name: str, outputs: dict[str, str]) -> None:
        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},  # any resource moto makes
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
        boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))

    deploy(
        "wardgate-prod",
        {
            "ApiUrl": "https://abc123.execute-api.us-east-1.amazonaws.com/",
            "KubernetesEndpoint": "https://wardgate-nlb.elb.us-east-1.amazonaws.com:443/k8s",
        },
    )
    listener = kubeconfig_of(capsys, "--stack", "wardgate-prod", "--connection", "prod-cluster")
    assert listener["clusters"][0]["cluster"] == {
        "server": "https://wardgate-nlb.elb.us-east-1.amazonaws.com:443/k8s/prod-cluster"
    }
    via_lambda = kubeconfig_of(
        capsys, "--stack", "wardgate-prod", "--connection", "prod-cluster", "--via", "lambda"
    )
    assert via_lambda["clusters"][0]["cluster"] == {
        "server": "https://abc123.execute-api.us-east-1.amazonaws.com/k8s/prod-cluster"
    }

    deploy("wardgate-http-only", {"ApiUrl": "https://def456.execute-api.us-east-1.amazonaws.com/"})
    code, out, err = run_cli(capsys, "kubeconfig", "--stack", "wardgate-http-only", "--connection", "c")
    assert code == 2 and out == "" and "no KubernetesEndpoint output" in err and "--via lambda" in err
