"""Real kubectl through wardgate's Lambda route (the dev front door's HTTPS) to the cluster double.

The kubeconfig is the one ``wardgate kubeconfig --via lambda`` writes; kubectl runs unchanged.
Each verb of issue 17's request/response list works, RBAC-attribute policy refuses with the
rule's message as kubectl prints it, Secret values are masked in every output form, a held
delete runs once after approval, every request is recorded, and bad tokens and unknown
connections end in the Status kubectl understands. One stack for the module.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from moto import mock_aws

from tests.approval_helpers import link_in, press, wait_for_mail
from tests.conftest import ROOT
from tests.helpers import apply_policy_now, recorded_events
from wardgate import cli
from wardgate.dev.kube.catalog import resource
from wardgate.dev.stack import DEV_POLICY, SFN_INTERPRETER, DevStack

PASSWORD = "s3cr3t-Passw0rd!"  # the double's prod/db-credentials
MASKED_DATA = base64.b64encode(b"[masked]").decode()
NOT_SECRETS = "secrets are managed by the platform team, not by agents"
PROD_DELETES = "deleting in production pages a human first"
POLICY_RULES: list[dict[str, Any]] = [
    {
        "name": "agents may change the demo cluster",
        "effect": "allow",
        "connections": ["demo-k8s"],
        "identity": {"groups": ["ci"]},
        "match": {"k8s": {"verbs": ["create", "update", "patch"]}},
    },
    {
        "name": "agents may delete in default",
        "effect": "allow",
        "connections": ["demo-k8s"],
        "identity": {"groups": ["ci"]},
        "match": {"k8s": {"verbs": ["delete"], "namespaces": ["default"]}},
    },
    {
        "name": "no deleting secrets",
        "effect": "deny",
        "connections": ["demo-k8s"],
        "message": NOT_SECRETS,
        "match": {"k8s": {"verbs": ["delete"], "resources": ["secrets"]}},
    },
    {
        "name": "deletes in prod need on-call",
        "effect": "require_approval",
        "connections": ["demo-k8s"],
        "approvers": ["oncall@example.com"],
        "message": PROD_DELETES,
        "match": {"k8s": {"verbs": ["delete"], "namespaces": ["prod"]}},
    },
]


def kubectl_binary() -> str:
    """kubectl 1.30+ (what the issue's verbs need); an old or missing one fails with the reason."""
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is not installed: these tests need kubectl v1.30 or later (v1.32 expected)")
    version = json.loads(
        subprocess.run(
            [found, "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    )["clientVersion"]
    minor = int(re.match(r"\d+", version["minor"]).group(0))  # type: ignore[union-attr]
    if (int(version["major"]), minor) < (1, 30):
        pytest.fail(f"kubectl {version['gitVersion']} is too old (Debian's kubernetes-client?): need v1.30+")
    return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    saved = dict(os.environ)
    state = tmp_path_factory.mktemp("wardgate-kubectl")
    os.environ.update(WARDGATE_HOME=str(state))  # wardgate kubeconfig reads this stack's state
    try:
        with mock_aws(config=SFN_INTERPRETER):  # type: ignore[call-overload]
            running = DevStack(
                root=ROOT, state_dir=state, port=0, upstream_port=0, sign_manifests=False
            ).start()
            running.write_state()
            document = copy.deepcopy(DEV_POLICY)
            document["rules"].extend(POLICY_RULES)
            apply_policy_now(running, document)
            try:
                yield running
            finally:
                running.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def client(stack: DevStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        yield http


@pytest.fixture(scope="module")
def kube_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kube-home")  # kubectl's discovery cache lives in $HOME/.kube


@pytest.fixture(scope="module")
def token_file(stack: DevStack, kube_home: Path) -> Path:
    assert stack.issuer is not None
    path = kube_home / "agent-token"
    path.write_text(stack.issuer.mint("agent-1", ["ci"], ttl=3600))
    return path


def write_kubeconfig(path: Path, *argv: str) -> Path:
    assert cli.main(["kubeconfig", "--via", "lambda", "-o", str(path), "--force", *argv]) == 0
    return path


@pytest.fixture(scope="module")
def kubeconfig(stack: DevStack, token_file: Path, kube_home: Path) -> Path:
    """The token-file form (no process per kubectl call); the exec form has its own tests."""
    return write_kubeconfig(
        kube_home / "kubeconfig",
        "--connection",
        "demo-k8s",
        "--user-credential",
        "token-file",
        "--token-file",
        str(token_file),
    )


class Kubectl:
    def __init__(self, binary: str, kubeconfig: Path, home: Path, env: dict[str, str] | None = None) -> None:
        self.binary, self.kubeconfig, self.home, self.env = binary, kubeconfig, home, env or {}

    def __call__(
        self, *args: str, ok: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.binary, "--kubeconfig", str(self.kubeconfig), "--request-timeout=20s", *args],
            env={**os.environ, "HOME": str(self.home), **self.env},
            cwd=self.home,  # kubectl cp's relative paths land there, never in the checkout
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if ok:
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        else:
            assert done.returncode != 0, f"kubectl {' '.join(args)} should have failed: {done.stdout}"
        return done


@pytest.fixture(scope="module")
def kubectl(kubeconfig: Path, kube_home: Path) -> Kubectl:
    return Kubectl(kubectl_binary(), kubeconfig, kube_home)


def store_find(
    stack: DevStack, plural: str, namespace: str, name: str, group: str = "", version: str = "v1"
) -> Any:
    kind = resource(group, version, plural)
    assert kind is not None
    return stack.kube.store.find(kind, namespace, name)


def events_of(verb: str, plural: str, name: str | None = None) -> list[dict[str, Any]]:
    """The recorded request events of one kind of operation, oldest first."""
    return [
        e
        for e in recorded_events()
        if e["event"] == "request"
        and (e.get("operation") or {}).get("verb") == verb
        and (e.get("operation") or {}).get("resource") == plural
        and (name is None or e["operation"].get("name") == name)
    ]


# --------------------------------------------------------------------------- reading
def test_get_lists_pods_as_a_table_and_objects_as_yaml(kubectl: Kubectl) -> None:
    table = kubectl("get", "pods", "-n", "prod").stdout
    assert table.splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert sum(1 for line in table.splitlines()[1:] if line.startswith("web-") and "Running" in line) >= 2
    deployment = kubectl("get", "deployment", "web", "-n", "prod", "-o", "yaml").stdout
    assert "kind: Deployment" in deployment and "image: nginx:1.27" in deployment


def test_every_request_is_recorded_with_its_rbac_attributes_and_outcome(kubectl: Kubectl) -> None:
    kubectl("get", "configmaps", "-n", "prod")
    [request] = events_of("list", "configmaps")[-1:]
    assert request["operation"]["namespace"] == "prod" and request["operation"]["api_group"] == ""
    assert request["identity"]["subject"] == "agent-1" and request["decision"]["outcome"] == "allow"
    [response] = [
        e for e in recorded_events() if e["record_id"] == request["record_id"] and e["event"] == "response"
    ]
    assert response["response"]["status"] == 200


def test_describe_reads_the_object_and_its_events(kubectl: Kubectl) -> None:
    described = kubectl("describe", "deployment", "web", "-n", "prod").stdout
    assert re.search(r"^Name:\s+web$", described, re.M) and "nginx:1.27" in described


def test_logs_without_following(kubectl: Kubectl, stack: DevStack) -> None:
    pods = resource("", "v1", "pods")
    assert pods is not None
    pod = sorted(p["metadata"]["name"] for p in stack.kube.store.list_objects(pods, "prod")[0])[0]
    stack.kube.store.append_log("prod", pod, "nginx", "GET /healthz 200")
    assert "GET /healthz 200" in kubectl("logs", pod, "-n", "prod").stdout


def test_auth_can_i_is_answered_by_the_cluster(kubectl: Kubectl) -> None:
    assert kubectl("auth", "can-i", "create", "pods", "-n", "default").stdout.strip() == "yes"


# --------------------------------------------------------------------------- masking
def test_secret_values_are_masked_in_json_yaml_and_describe_and_the_table_is_unchanged(
    kubectl: Kubectl,
) -> None:
    as_json = json.loads(kubectl("get", "secret", "db-credentials", "-n", "prod", "-o", "json").stdout)
    assert as_json["data"] == {"username": MASKED_DATA, "password": MASKED_DATA}
    annotations = as_json["metadata"]["annotations"]
    applied = json.loads(annotations["kubectl.kubernetes.io/last-applied-configuration"])
    assert applied["data"] == {"username": MASKED_DATA, "password": MASKED_DATA}  # still JSON: apply works
    as_yaml = kubectl("get", "secret", "db-credentials", "-n", "prod", "-o", "yaml").stdout
    assert f"password: {MASKED_DATA}" in as_yaml
    described = kubectl("describe", "secret", "db-credentials", "-n", "prod").stdout
    assert re.search(r"password:\s+8 bytes", described)  # "[masked]": not even the length shows
    table = kubectl("get", "secrets", "-n", "prod").stdout
    assert re.search(r"^db-credentials\s+Opaque\s+2\s", table, re.M)
    for output in (json.dumps(as_json), as_yaml, described, table):
        assert PASSWORD not in output and base64.b64encode(PASSWORD.encode()).decode() not in output


# --------------------------------------------------------------------------- writing
def test_apply_client_side_then_server_side_create_replace_and_dry_run(
    kubectl: Kubectl, stack: DevStack, tmp_path: Path
) -> None:
    manifest = tmp_path / "settings.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-settings\n  namespace: default\n"
        "data:\n  mode: fast\n"
    )
    assert kubectl("apply", "-f", str(manifest)).stdout.strip() == "configmap/app-settings created"
    manifest.write_text(manifest.read_text().replace("fast", "safe"))
    dry = kubectl("apply", "--dry-run=server", "-f", str(manifest)).stdout
    assert "configured (server dry run)" in dry
    assert store_find(stack, "configmaps", "default", "app-settings")["data"] == {"mode": "fast"}
    assert kubectl("apply", "-f", str(manifest)).stdout.strip() == "configmap/app-settings configured"
    assert store_find(stack, "configmaps", "default", "app-settings")["data"] == {"mode": "safe"}

    server_side = tmp_path / "limits.yaml"
    server_side.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: limits\n  namespace: default\n"
        "data:\n  cpu: '2'\n"
    )
    assert kubectl("apply", "--server-side", "-f", str(server_side)).stdout.strip() == (
        "configmap/limits serverside-applied"
    )
    assert kubectl("create", "configmap", "flags", "--from-literal=beta=on").stdout.strip() == (
        "configmap/flags created"
    )
    # kubectl 1.32 sends that body as protobuf: forwarded as sent, recorded by its size only.
    [created] = events_of("create", "configmaps")[-1:]
    assert created["request"]["headers"]["content-type"] == "application/vnd.kubernetes.protobuf"
    assert "is binary" in created["request"]["body"]["withheld"] and created["request"]["body"]["size"] > 0
    server_side.write_text(server_side.read_text().replace("'2'", "'4'"))
    assert kubectl("replace", "-f", str(server_side)).stdout.strip() == "configmap/limits replaced"
    assert store_find(stack, "configmaps", "default", "limits")["data"] == {"cpu": "4"}


def test_client_side_apply_updates_a_secret_whose_values_it_never_sees(
    kubectl: Kubectl, stack: DevStack, tmp_path: Path
) -> None:
    """kubectl apply reads the live object's last-applied annotation for its three-way patch: masked,
    it is still that JSON document, so applying to an existing Secret works (values sent, never read)."""
    manifest = tmp_path / "api-key.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api-key\n  namespace: default\n"
        "stringData:\n  key: first-value\n"
    )
    assert kubectl("apply", "-f", str(manifest)).stdout.strip() == "secret/api-key created"
    manifest.write_text(manifest.read_text().replace("first-value", "second-value"))
    assert kubectl("apply", "-f", str(manifest)).stdout.strip() == "secret/api-key configured"
    live = store_find(stack, "secrets", "default", "api-key")
    assert base64.b64decode(live["data"]["key"]) == b"second-value"
    shown = kubectl("get", "secret", "api-key", "-o", "yaml").stdout
    assert "second-value" not in shown and base64.b64encode(b"second-value").decode() not in shown


def test_a_masked_secret_applied_back_is_refused_before_it_replaces_the_real_values(
    kubectl: Kubectl, stack: DevStack, tmp_path: Path
) -> None:
    exported = tmp_path / "db-credentials.yaml"
    exported.write_text(kubectl("get", "secret", "db-credentials", "-n", "prod", "-o", "yaml").stdout)
    for verb in (("apply", "-f"), ("replace", "-f")):
        refused = kubectl(*verb, str(exported), ok=False)
        assert "(BadRequest)" in refused.stderr and "carries values wardgate masked" in refused.stderr
    live = store_find(stack, "secrets", "prod", "db-credentials")
    assert base64.b64decode(live["data"]["password"]).decode() == PASSWORD  # untouched


def test_patch_in_three_flavours_label_and_annotate(kubectl: Kubectl, stack: DevStack) -> None:
    kubectl("create", "configmap", "patched", "--from-literal=a=1")
    kubectl("patch", "configmap", "patched", "-p", '{"data": {"b": "2"}}')
    kubectl("patch", "configmap", "patched", "--type", "merge", "-p", '{"data": {"c": "3"}}')
    kubectl("patch", "configmap", "patched", "--type", "json", "-p", '[{"op": "remove", "path": "/data/a"}]')
    assert (
        kubectl("label", "configmap", "patched", "team=payments").stdout.strip()
        == "configmap/patched labeled"
    )
    assert (
        kubectl("annotate", "configmap", "patched", "owner=sre").stdout.strip()
        == "configmap/patched annotated"
    )
    patched = store_find(stack, "configmaps", "default", "patched")
    assert patched["data"] == {"b": "2", "c": "3"}
    assert patched["metadata"]["labels"] == {"team": "payments"}
    assert patched["metadata"]["annotations"]["owner"] == "sre"


def test_scale_and_rollout_undo(kubectl: Kubectl, stack: DevStack) -> None:
    assert kubectl("scale", "deployment", "web", "--replicas=3", "-n", "prod").stdout.strip() == (
        "deployment.apps/web scaled"
    )
    assert store_find(stack, "deployments", "prod", "web", "apps")["spec"]["replicas"] == 3
    kubectl("set", "image", "deployment/web", "nginx=nginx:1.28", "-n", "prod")
    assert kubectl("rollout", "undo", "deployment/web", "-n", "prod").stdout.strip() == (
        "deployment.apps/web rolled back"
    )
    template = store_find(stack, "deployments", "prod", "web", "apps")["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == "nginx:1.27"
    scaled = events_of("patch", "deployments")
    assert any(e["operation"]["subresource"] == "scale" for e in scaled)  # recorded as RBAC sees it


def test_delete_where_policy_allows_it(kubectl: Kubectl, stack: DevStack) -> None:
    kubectl("create", "configmap", "scratch", "--from-literal=x=1")
    assert kubectl("delete", "configmap", "scratch").stdout.strip() == 'configmap "scratch" deleted'
    assert store_find(stack, "configmaps", "default", "scratch") is None


# --------------------------------------------------------------------------- refusals
def test_a_refused_verb_prints_the_rules_message_and_reaches_nothing(
    kubectl: Kubectl, stack: DevStack
) -> None:
    refused = kubectl("delete", "secret", "db-credentials", "-n", "prod", ok=False)
    assert refused.stderr.startswith(f"Error from server (Forbidden): {NOT_SECRETS} (wardgate record ")
    assert store_find(stack, "secrets", "prod", "db-credentials") is not None
    [event] = [e for e in recorded_events() if e["event"] == "refused" and NOT_SECRETS in json.dumps(e)][-1:]
    assert event["record_id"] in refused.stderr  # the record kubectl named is the refusal's


def test_a_verb_no_rule_allows_is_refused_by_default(kubectl: Kubectl) -> None:
    refused = kubectl("delete", "namespace", "kube-public", ok=False)
    assert "Error from server (Forbidden): no rule allows" in refused.stderr


def test_streaming_verbs_are_sent_to_the_kubernetes_listener(kubectl: Kubectl) -> None:
    watch = kubectl("get", "pods", "-n", "prod", "--watch", ok=False)
    assert "Error from server (BadRequest)" in watch.stderr and "Kubernetes listener" in watch.stderr
    follow = kubectl("logs", "-f", "deployment/web", "-n", "prod", ok=False)
    assert "following logs is not served by wardgate's Lambda route" in follow.stderr
    for verb, argv in (
        ("exec", ("exec", "debug", "--", "ls")),
        ("exec", ("cp", "debug:/etc/hostname", "hostname")),  # kubectl cp is a tar over exec
        ("portforward", ("port-forward", "pod/debug", "0:80")),
    ):
        refused = kubectl(*argv, ok=False)
        assert f"{verb} needs an upgraded (WebSocket/SPDY) connection" in refused.stderr
        assert "Kubernetes listener" in refused.stderr


@pytest.mark.parametrize(
    ("token_of", "reason"),
    [
        (lambda issuer: issuer.mint("agent-1", ["ci"], ttl=-600), "token has expired"),
        (
            lambda issuer: issuer.mint("agent-1", ["ci"], audience="someone-else"),
            "token audience is not this gateway",
        ),
        (lambda issuer: "not-a-token", "token is not a well-formed JWT"),
    ],
)
def test_a_bad_token_is_a_401_kubectl_explains(
    stack: DevStack, kubectl: Kubectl, kube_home: Path, tmp_path: Path, token_of: Any, reason: str
) -> None:
    """kubectl prints the Status's reason once its discovery cache is warm (an agent that worked
    before). Discovery itself decodes no Status (client-go's Raw()), so with a cold cache kubectl
    words a 401 itself; the exec plugin refuses an expired token before sending it."""
    assert stack.issuer is not None
    kubectl("get", "namespaces")  # a good token warms $HOME/.kube/cache for this server
    bad = tmp_path / "bad-token"
    bad.write_text(token_of(stack.issuer))
    config = write_kubeconfig(
        tmp_path / "kubeconfig",
        "--connection",
        "demo-k8s",
        "--user-credential",
        "token-file",
        "--token-file",
        str(bad),
    )
    refused = Kubectl(kubectl_binary(), config, kube_home)("get", "pods", "-n", "prod", ok=False)
    assert f"error: You must be logged in to the server ({reason}" in refused.stderr
    cold = Kubectl(kubectl_binary(), config, tmp_path)("get", "pods", "-n", "prod", ok=False)
    assert "error: You must be logged in to the server (the server has asked for the client" in cold.stderr


def test_an_unknown_connection_is_a_not_found_status(token_file: Path, tmp_path: Path) -> None:
    config = write_kubeconfig(
        tmp_path / "kubeconfig",
        "--connection",
        "no-such-cluster",
        "--user-credential",
        "token-file",
        "--token-file",
        str(token_file),
    )
    # kubectl's first request is discovery, whose 404 client-go words itself (it decodes no Status
    # there, from any server): kubectl says NotFound; the Status itself names the connection.
    refused = Kubectl(kubectl_binary(), config, tmp_path)("get", "pods", ok=False)
    assert "Error from server (NotFound)" in refused.stderr
    from kubernetes import client
    from kubernetes import config as kube_config
    from kubernetes.client.exceptions import ApiException

    api_client = kube_config.new_client_from_config(config_file=str(config))  # type: ignore[no-untyped-call]
    with pytest.raises(ApiException) as raised:  # the same file: its tokenFile user
        client.CoreV1Api(api_client).list_namespaced_pod("default")
    assert raised.value.body is not None
    status = json.loads(raised.value.body)
    assert (raised.value.status, status["kind"], status["reason"]) == (404, "Status", "NotFound")
    assert status["message"].startswith("no connection named 'no-such-cluster'")


# --------------------------------------------------------------------------- the exec plugin
def test_the_exec_plugin_hands_kubectl_the_agents_token(
    stack: DevStack, token_file: Path, tmp_path: Path
) -> None:
    config = write_kubeconfig(tmp_path / "kubeconfig", "--connection", "demo-k8s")
    with_token = Kubectl(kubectl_binary(), config, tmp_path, {"WARDGATE_TOKEN": token_file.read_text()})
    assert "web-" in with_token("get", "pods", "-n", "prod").stdout
    without = Kubectl(kubectl_binary(), config, tmp_path, {"WARDGATE_TOKEN": ""})
    refused = without("get", "pods", "-n", "prod", ok=False)
    assert "no token: set WARDGATE_TOKEN" in refused.stderr  # the plugin's own words, through kubectl


# --------------------------------------------------------------------------- approvals
def test_a_held_delete_runs_once_after_approval(
    kubectl: Kubectl, stack: DevStack, client: httpx.Client
) -> None:
    held = kubectl("delete", "configmap", "web-config", "-n", "prod", ok=False)
    pending = re.search(r"approval request (\w+) is pending \((\S+)\)", held.stderr)
    assert held.stderr.startswith(f"Error from server (Forbidden): {PROD_DELETES}: approval request ")
    assert pending, held.stderr
    request_id, poll_url = pending.groups()
    assert store_find(stack, "configmaps", "prod", "web-config") is not None  # held, not run
    again = kubectl("delete", "configmap", "web-config", "-n", "prod", ok=False)
    assert f"approval request {request_id} is pending" in again.stderr  # the same request, no new one

    [mail] = wait_for_mail(client, 1)
    assert press(client, link_in(mail, stack)).status_code == 200

    ran = kubectl("delete", "configmap", "web-config", "-n", "prod")
    assert ran.stdout.strip() == 'configmap "web-config" deleted'
    assert store_find(stack, "configmaps", "prod", "web-config") is None
    token = stack.issuer.mint("agent-1", ["ci"]) if stack.issuer else ""
    state = client.get(poll_url, headers={"Authorization": f"Bearer {token}"}).json()
    assert state["status"] == "executed"
    [approved] = [e for e in events_of("delete", "configmaps", "web-config") if e["decision"].get("approval")]
    assert approved["decision"]["approval"] == request_id and approved["decision"]["outcome"] == "allow"

    kubectl("create", "configmap", "web-config", "-n", "prod", "--from-literal=a=1")
    once_more = kubectl("delete", "configmap", "web-config", "-n", "prod", ok=False)
    assert "is pending" in once_more.stderr and request_id not in once_more.stderr  # spent: a new request
    assert store_find(stack, "configmaps", "prod", "web-config") is not None


def test_a_refusal_before_any_request_exists_is_a_status_too(stack: DevStack) -> None:
    """A broken event (or configuration) on the Kubernetes route, answered by the handler itself."""
    from wardgate import runtime

    answer = runtime.handle_http_event(
        {"routeKey": "ANY /k8s/{connection}/{proxy+}", "requestContext": {"requestId": "r-1"}}, None
    )
    status = json.loads(answer["body"])
    assert (answer["statusCode"], status["kind"], status["reason"]) == (400, "Status", "BadRequest")
    assert status["details"]["causes"][0]["reason"] == "bad_event"
    other = runtime.handle_http_event({"routeKey": "ANY /http/{connection}/{proxy+}"}, None)
    assert json.loads(other["body"])["error"]["code"] == "bad_event"  # wardgate's own shape elsewhere


@pytest.mark.parametrize(
    ("accept", "served"),
    [
        ("", True),
        ("*/*", True),
        ("application/json", True),
        ("application/vnd.kubernetes.protobuf, */*", True),  # kubectl's typed clients: JSON is fine
        ("application/vnd.kubernetes.protobuf,application/json", True),  # client-go's default
        ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json", True),
        ("application/vnd.kubernetes.protobuf", False),
        ("application/vnd.kubernetes.protobuf;stream=watch", False),
        ("Application/Vnd.Kubernetes.Protobuf ; q=1", False),
    ],
)
def test_which_clients_can_read_json(accept: str, served: bool) -> None:
    from wardgate.proxies.kubernetes import accepts_json

    assert accepts_json(accept) is served
