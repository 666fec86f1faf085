"""The cluster double (wardgate.dev.kube) against real clients: the official Python client and kubectl 1.32.

Each test drives a client straight at the double over HTTPS with the development CA, the way the
gateway will reach it, and checks what a real API server would answer (shapes from the Kubernetes
API reference).
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.kube_fixtures import (
    DOUBLE_TOKEN,
    ca_file_of,
    kube_double,
    kubectl,
    kubectl_path,
    start_kube_double,
    write_kubeconfig,
)
from wardgate.dev.certs import make_dev_certificates
from wardgate.dev.kube.server import KubeDouble

__all__ = ["kube_double"]  # the module-scoped fixture, imported for pytest


@pytest.fixture(scope="module")
def api_client(
    kube_double: KubeDouble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[client.ApiClient]:
    """The Python client loading a kubeconfig, as an agent's program would."""
    path = write_kubeconfig(
        tmp_path_factory.mktemp("kubeconfig") / "config",
        kube_double.url,
        DOUBLE_TOKEN,
        ca_file_of(kube_double),
    )
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)  # type: ignore[no-untyped-call]
    with client.ApiClient(configuration) as api:
        yield api


def wire(model: object) -> Any:
    """A client model as the JSON it came from (camelCase keys): what the double sent, typed loosely."""
    return client.ApiClient().sanitize_for_serialization(model)  # type: ignore[no-untyped-call]


def test_lists_the_seeded_pods_over_tls(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    pods = wire(core.list_namespaced_pod("prod"))
    assert len(pods["items"]) == 2
    assert all(pod["status"]["phase"] == "Running" for pod in pods["items"])
    assert all(pod["metadata"]["name"].startswith("web-") for pod in pods["items"])
    assert int(pods["metadata"]["resourceVersion"]) > 0
    everywhere = wire(core.list_pod_for_all_namespaces())["items"]
    assert {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in everywhere} >= {("default", "debug")}


def test_gets_the_seeded_deployment_and_secret(api_client: client.ApiClient) -> None:
    deployment = wire(client.AppsV1Api(api_client).read_namespaced_deployment("web", "prod"))
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert deployment["status"]["readyReplicas"] == 2
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    secret = wire(client.CoreV1Api(api_client).read_namespaced_secret("db-credentials", "prod"))
    assert base64.b64decode(secret["data"]["password"]).decode() == "s3cr3t-Passw0rd!"
    assert "kubectl.kubernetes.io/last-applied-configuration" in secret["metadata"]["annotations"]


def test_a_wrong_token_is_401_unauthorized(kube_double: KubeDouble) -> None:
    configuration = client.Configuration()
    configuration.host = kube_double.url
    configuration.ssl_ca_cert = str(ca_file_of(kube_double))
    configuration.api_key = {"authorization": "Bearer not-the-token"}
    with client.ApiClient(configuration) as api, pytest.raises(ApiException) as raised:
        client.CoreV1Api(api).list_namespace()
    assert raised.value.status == 401
    assert '"reason":"Unauthorized"' in str(raised.value.body)


def test_a_missing_object_is_404_with_details(api_client: client.ApiClient) -> None:
    with pytest.raises(ApiException) as raised:
        client.CoreV1Api(api_client).read_namespaced_pod("nope", "prod")
    assert raised.value.status == 404
    assert '"message":"pods \\"nope\\" not found"' in str(raised.value.body)


def test_stop_leaves_no_threads(tmp_path: Path) -> None:
    double = start_kube_double(tmp_path)
    configuration = client.Configuration()
    configuration.host = double.url
    configuration.ssl_ca_cert = str(ca_file_of(double))
    configuration.api_key = {"authorization": f"Bearer {DOUBLE_TOKEN}"}
    with client.ApiClient(configuration) as api:
        client.CoreV1Api(api).list_namespace()
        assert any(t.name.startswith(f"kube-double:{double.port} ") for t in threading.enumerate())
        double.stop()  # with the client's connection still open
    assert [t.name for t in threading.enumerate() if t.name.startswith(f"kube-double:{double.port}")] == []


# -- kubectl ------------------------------------------------------------------------------------


KUBECTL_HOME = Path()  # this module's kubectl home (its discovery cache), set by the fixture below


@pytest.fixture(scope="module", autouse=True)
def kubectl_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    global KUBECTL_HOME
    KUBECTL_HOME = tmp_path_factory.mktemp("kubectl-home")


def run(double: KubeDouble, *args: str, input: str | None = None, ok: bool = True) -> str:
    """kubectl against the double; its output, or (ok=False) its error output, which must be a failure."""
    result = kubectl(double, DOUBLE_TOKEN, None, *args, input=input, home=KUBECTL_HOME)
    if ok:
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout
    assert result.returncode != 0, f"kubectl {' '.join(args)} should have failed: {result.stdout}"
    return result.stderr


def header(output: str) -> list[str]:
    return output.splitlines()[0].split()


def names(output: str) -> list[str]:
    """The NAME column of a kubectl table (the first column, or the second after NAMESPACE)."""
    lines = output.splitlines()
    column = 1 if lines[0].split()[0] == "NAMESPACE" else 0
    return [line.split()[column] for line in lines[1:] if line.strip()]


def fresh_namespace(double: KubeDouble, name: str) -> str:
    run(double, "create", "namespace", name)
    return name


def test_kubectl_get_prints_the_api_servers_columns(kube_double: KubeDouble) -> None:
    pods = run(kube_double, "get", "pods", "-n", "prod")
    assert header(pods) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert all(" 1/1 " in line and "Running" in line for line in pods.splitlines()[1:])
    wide = run(kube_double, "get", "pods", "-n", "default", "-o", "wide")
    assert header(wide)[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert "wardgate-double-node" in wide
    everywhere = run(kube_double, "get", "pods", "-A")
    assert header(everywhere)[0] == "NAMESPACE" and "debug" in names(everywhere)
    assert header(run(kube_double, "get", "deployments", "-n", "prod")) == [
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
    ]
    assert "2/2" in run(kube_double, "get", "deployment", "web", "-n", "prod")
    assert header(run(kube_double, "get", "secrets", "-n", "prod")) == ["NAME", "TYPE", "DATA", "AGE"]
    assert header(run(kube_double, "get", "configmaps", "-n", "prod")) == ["NAME", "DATA", "AGE"]
    assert header(run(kube_double, "get", "services", "-n", "prod")) == [
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "AGE",
    ]
    assert header(run(kube_double, "get", "namespaces")) == ["NAME", "STATUS", "AGE"]
    assert header(run(kube_double, "get", "replicasets", "-n", "prod")) == [
        "NAME",
        "DESIRED",
        "CURRENT",
        "READY",
        "AGE",
    ]
    events = run(kube_double, "get", "events", "-n", "prod")
    assert header(events) == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert "ScalingReplicaSet" in events and "deployment/web" in events


def test_kubectl_get_json_and_yaml(kube_double: KubeDouble) -> None:
    import yaml

    listed = json.loads(run(kube_double, "get", "pods", "-n", "prod", "-o", "json"))
    assert listed["kind"] == "List" and len(listed["items"]) == 2
    assert all(item["kind"] == "Pod" for item in listed["items"])  # kubectl puts kind back on items
    secret = yaml.safe_load(run(kube_double, "get", "secret", "db-credentials", "-n", "prod", "-o", "yaml"))
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["username"]) == b"app"
    assert run(kube_double, "get", "pod", "debug", "-o", "name") == "pod/debug\n"


def test_label_selectors(kube_double: KubeDouble) -> None:
    namespace = fresh_namespace(kube_double, "labels")
    for name, labels in (
        ("a", "tier=web,env=prod"),
        ("b", "tier=db,env=prod"),
        ("c", "tier=web,env=dev"),
        ("d", "env=dev"),
    ):
        run(kube_double, "run", name, "-n", namespace, "--image=busybox:1.36", f"--labels={labels}")

    def selected(selector: str) -> list[str]:
        return names(run(kube_double, "get", "pods", "-n", namespace, "-l", selector))

    assert selected("tier=web") == ["a", "c"]
    assert selected("tier!=web") == ["b", "d"]  # != matches pods without the label too
    assert selected("env in (prod),tier notin (db)") == ["a"]
    assert selected("tier") == ["a", "b", "c"]
    assert selected("!tier") == ["d"]
    assert selected("tier==web,env=dev") == ["c"]
    error = run(kube_double, "get", "pods", "-n", namespace, "-l", "tier in (web", ok=False)
    assert "unable to parse requirement" in error or "BadRequest" in error or "found" in error


def test_field_selectors(kube_double: KubeDouble) -> None:
    assert names(run(kube_double, "get", "pods", "-A", "--field-selector", "metadata.name=debug")) == [
        "debug"
    ]
    web = names(run(kube_double, "get", "pods", "-n", "prod", "--field-selector", "status.phase=Running"))
    assert len(web) == 2
    others = run(kube_double, "get", "pods", "-n", "prod", "--field-selector", f"metadata.name!={web[0]}")
    assert names(others) == web[1:]
    assert "No resources found" in run_both(
        kube_double, "get", "pods", "-A", "--field-selector", "status.phase=Pending"
    )
    events = run(
        kube_double,
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        "involvedObject.kind=Pod,involvedObject.name=debug",
    )
    assert {"Scheduled", "Pulled", "Created", "Started"} <= set(events.split())
    secrets = run(kube_double, "get", "secrets", "-n", "prod", "--field-selector", "type=Opaque")
    assert names(secrets) == ["db-credentials"]
    error = run(kube_double, "get", "pods", "--field-selector", "spec.unknown=x", ok=False)
    assert "field label not supported: spec.unknown" in error


def run_both(double: KubeDouble, *args: str) -> str:
    """stdout and stderr together (kubectl prints "No resources found" on stderr)."""
    result = kubectl(double, DOUBLE_TOKEN, None, *args, home=KUBECTL_HOME)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_describe_reads_events_by_field_selector(kube_double: KubeDouble) -> None:
    pod = run(kube_double, "describe", "pod", "debug", "-n", "default")
    assert "Status:           Running" in pod
    assert "Successfully assigned default/debug to wardgate-double-node" in pod
    deployment = run(kube_double, "describe", "deployment", "web", "-n", "prod")
    assert (
        "Replicas:               2 desired | 2 updated | 2 total | 2 available | 0 unavailable" in deployment
    )
    assert "NewReplicaSet:   web-" in deployment and "(2/2 replicas created)" in deployment
    assert "Scaled up replica set web-" in deployment
    secret = run(kube_double, "describe", "secret", "db-credentials", "-n", "prod")
    assert "password:  16 bytes" in secret and "s3cr3t" not in secret


CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {namespace}
  labels: {{tier: web, team: a}}
data:
  MODE: {mode}
"""

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: {namespace}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: api}}
  template:
    metadata:
      labels: {{app: api}}
    spec:
      containers:
      - name: api
        image: {image}
        ports:
        - containerPort: 8080
"""


def test_create_in_all_of_kubectls_ways(kube_double: KubeDouble) -> None:
    namespace = fresh_namespace(kube_double, "creates")  # kubectl create namespace: a protobuf body
    assert "configmap/settings created" in run(
        kube_double, "create", "-f", "-", input=CONFIGMAP.format(namespace=namespace, mode="blue")
    )
    error = run(
        kube_double, "create", "-f", "-", input=CONFIGMAP.format(namespace=namespace, mode="blue"), ok=False
    )
    assert (
        'Error from server (AlreadyExists): error when creating "STDIN": configmaps "settings" already exists'
        in error
    )
    run(kube_double, "create", "configmap", "literal", "-n", namespace, "--from-literal=a=b")
    run(kube_double, "create", "secret", "generic", "token", "-n", namespace, "--from-literal=key=hunter2")
    run(kube_double, "create", "deployment", "made", "-n", namespace, "--image=nginx:1.27", "--replicas=3")
    run(kube_double, "create", "serviceaccount", "robot", "-n", namespace)
    assert names(run(kube_double, "get", "configmaps", "-n", namespace)) == [
        "kube-root-ca.crt",
        "literal",
        "settings",
    ]
    secret = run(kube_double, "get", "secret", "token", "-n", namespace, "-o", "jsonpath={.data.key}")
    assert base64.b64decode(secret) == b"hunter2"
    assert "3/3" in run(kube_double, "get", "deployment", "made", "-n", namespace)
    assert len(names(run(kube_double, "get", "pods", "-n", namespace, "-l", "app=made"))) == 3
    assert names(run(kube_double, "get", "serviceaccounts", "-n", namespace)) == ["default", "robot"]
    missing = run(kube_double, "create", "configmap", "x", "-n", "nowhere", "--from-literal=a=b", ok=False)
    assert 'namespaces "nowhere" not found' in missing


def test_replace_and_optimistic_concurrency(kube_double: KubeDouble, api_client: client.ApiClient) -> None:
    namespace = fresh_namespace(kube_double, "replaces")
    run(kube_double, "create", "-f", "-", input=CONFIGMAP.format(namespace=namespace, mode="blue"))
    run(kube_double, "replace", "-f", "-", input=CONFIGMAP.format(namespace=namespace, mode="green"))
    assert (
        run(kube_double, "get", "cm", "settings", "-n", namespace, "-o", "jsonpath={.data.MODE}") == "green"
    )
    core = client.CoreV1Api(api_client)
    stale = core.read_namespaced_config_map("settings", namespace)
    fresh = core.read_namespaced_config_map("settings", namespace)
    fresh.data = {"MODE": "red"}
    core.replace_namespaced_config_map("settings", namespace, fresh)
    stale.data = {"MODE": "yellow"}
    with pytest.raises(ApiException) as raised:
        core.replace_namespaced_config_map("settings", namespace, stale)
    assert raised.value.status == 409
    assert "the object has been modified" in str(raised.value.body) and '"reason":"Conflict"' in str(
        raised.value.body
    )


def test_client_side_apply_creates_then_patches_with_the_last_applied(kube_double: KubeDouble) -> None:
    namespace = fresh_namespace(kube_double, "applies")
    first = DEPLOYMENT.format(namespace=namespace, replicas=1, image="nginx:1.27")
    assert "deployment.apps/api created" in run(kube_double, "apply", "-f", "-", input=first)
    assert "deployment.apps/api unchanged" in run(kube_double, "apply", "-f", "-", input=first)
    second = DEPLOYMENT.format(namespace=namespace, replicas=2, image="nginx:1.28").replace(
        "        ports:\n        - containerPort: 8080\n", ""
    )
    assert "deployment.apps/api configured" in run(kube_double, "apply", "-f", "-", input=second)
    deployment = json.loads(run(kube_double, "get", "deployment", "api", "-n", namespace, "-o", "json"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.28" and "ports" not in container  # dropped from the file: removed
    assert deployment["spec"]["replicas"] == 2 and deployment["status"]["readyReplicas"] == 2
    last_applied = json.loads(
        deployment["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert last_applied["spec"]["replicas"] == 2
    assert "successfully rolled out" in run(
        kube_double, "rollout", "status", "deployment/api", "-n", namespace
    )


def test_server_side_apply_owns_fields_and_conflicts(kube_double: KubeDouble) -> None:
    namespace = fresh_namespace(kube_double, "serverside")
    manifest = DEPLOYMENT.format(namespace=namespace, replicas=2, image="nginx:1.27")
    assert "serverside-applied" in run(kube_double, "apply", "--server-side", "-f", "-", input=manifest)
    run(kube_double, "scale", "deployment", "api", "-n", namespace, "--replicas=4")
    conflict = run(kube_double, "apply", "--server-side", "-f", "-", input=manifest, ok=False)
    expected = 'conflict with "kubectl" with subresource "scale" using apps/v1: .spec.replicas'
    assert f"Apply failed with 1 conflict: {expected}" in conflict
    run(kube_double, "apply", "--server-side", "--force-conflicts", "-f", "-", input=manifest)
    deployment = json.loads(
        run(kube_double, "get", "deployment", "api", "-n", namespace, "-o", "json", "--show-managed-fields")
    )
    assert deployment["spec"]["replicas"] == 2
    applied = [entry for entry in deployment["metadata"]["managedFields"] if entry["operation"] == "Apply"]
    assert [entry["manager"] for entry in applied] == ["kubectl"]
    assert applied[0]["fieldsType"] == "FieldsV1"
    assert "f:replicas" in applied[0]["fieldsV1"]["f:spec"]
    containers = applied[0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert 'k:{"name":"api"}' in containers
    # A field the manager stops applying, which nobody else owns, is removed.
    without_ports = manifest.replace("        ports:\n        - containerPort: 8080\n", "")
    run(kube_double, "apply", "--server-side", "-f", "-", input=without_ports)
    ports = run(
        kube_double,
        "get",
        "deployment",
        "api",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].ports}",
    )
    assert ports == ""


def test_dry_run_server_stores_nothing(kube_double: KubeDouble) -> None:
    namespace = fresh_namespace(kube_double, "dryrun")
    manifest = DEPLOYMENT.format(namespace=namespace, replicas=1, image="nginx:1.27")
    assert "(server dry run)" in run(kube_double, "create", "--dry-run=server", "-f", "-", input=manifest)
    assert "(server dry run)" in run(
        kube_double, "apply", "--server-side", "--dry-run=server", "-f", "-", input=manifest
    )
    assert "No resources found" in run_both(kube_double, "get", "deployments,pods", "-n", namespace)
    run(kube_double, "apply", "-f", "-", input=manifest)
    changed = manifest.replace("nginx:1.27", "nginx:1.29")
    diff = kubectl(kube_double, DOUBLE_TOKEN, None, "diff", "-f", "-", input=changed, home=KUBECTL_HOME)
    assert diff.returncode == 1, diff.stderr  # kubectl diff: 1 when the server's dry run differs
    assert "-      - image: nginx:1.27" in diff.stdout and "+      - image: nginx:1.29" in diff.stdout
    image = run(
        kube_double, "get", "deploy", "api", "-n", namespace, "-o", "jsonpath={..containers[0].image}"
    )
    assert image == "nginx:1.27"
    assert "(server dry run)" in run(
        kube_double, "delete", "pod", "debug", "-n", "default", "--dry-run=server"
    )
    assert names(run(kube_double, "get", "pod", "debug", "-n", "default")) == ["debug"]


def test_patch_types_label_and_annotate(kube_double: KubeDouble) -> None:
    namespace = fresh_namespace(kube_double, "patches")
    run(
        kube_double,
        "apply",
        "-f",
        "-",
        input=DEPLOYMENT.format(namespace=namespace, replicas=1, image="nginx:1.27"),
    )
    sidecar = {"spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "envoy:1.31"}]}}}}
    run(kube_double, "patch", "deployment", "api", "-n", namespace, "-p", json.dumps(sidecar))  # strategic
    containers = json.loads(
        run(
            kube_double,
            "get",
            "deployment",
            "api",
            "-n",
            namespace,
            "-o",
            "jsonpath={.spec.template.spec.containers}",
        )
    )
    assert [c["name"] for c in containers] == ["api", "proxy"]  # merged by name, not replaced
    run(
        kube_double,
        "patch",
        "deployment",
        "api",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"spec":{"replicas":3}}',
    )
    json_patch = '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28"}]'
    run(kube_double, "patch", "deployment", "api", "-n", namespace, "--type", "json", "-p", json_patch)
    images = run(
        kube_double,
        "get",
        "deployment",
        "api",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.template.spec.containers[*].image}",
    )
    assert images == "nginx:1.28 envoy:1.31"
    assert "3/3" in run(kube_double, "get", "deployment", "api", "-n", namespace)
    failing = '[{"op":"test","path":"/spec/replicas","value":7}]'
    error = run(
        kube_double, "patch", "deployment", "api", "-n", namespace, "--type", "json", "-p", failing, ok=False
    )
    assert "test failed" in error
    run(kube_double, "label", "deployment", "api", "-n", namespace, "tier=frontend")
    run(kube_double, "annotate", "deployment", "api", "-n", namespace, "owner=ops@example.com")
    overwrite = run(kube_double, "label", "deployment", "api", "-n", namespace, "tier=backend", ok=False)
    assert "already has a value (frontend)" in overwrite
    run(kube_double, "label", "deployment", "api", "-n", namespace, "tier=backend", "--overwrite")
    metadata = json.loads(
        run(kube_double, "get", "deployment", "api", "-n", namespace, "-o", "jsonpath={.metadata}")
    )
    assert metadata["labels"] == {"tier": "backend"}
    assert metadata["annotations"]["owner"] == "ops@example.com"
    run(kube_double, "label", "deployment", "api", "-n", namespace, "tier-")
    assert "tier" not in run(kube_double, "get", "deployment", "api", "-n", namespace, "--show-labels")


def test_delete_cascades_and_orphans(kube_double: KubeDouble) -> None:
    namespace = fresh_namespace(kube_double, "deletes")
    run(kube_double, "create", "deployment", "gone", "-n", namespace, "--image=nginx:1.27", "--replicas=2")
    run(kube_double, "create", "deployment", "kept", "-n", namespace, "--image=nginx:1.27", "--replicas=1")
    assert len(names(run(kube_double, "get", "pods", "-n", namespace))) == 3
    # kubectl delete waits until the object is gone: deletion is immediate, so this returns at once.
    assert 'deployment.apps "gone" deleted' in run(
        kube_double, "delete", "deployment", "gone", "-n", namespace
    )
    remaining = names(run(kube_double, "get", "replicasets,pods", "-n", namespace, "-o", "name"))
    assert all("gone" not in name for name in remaining) and any("kept" in name for name in remaining)
    run(kube_double, "delete", "deployment", "kept", "-n", namespace, "--cascade=orphan")
    replica_sets = json.loads(run(kube_double, "get", "replicasets", "-n", namespace, "-o", "json"))["items"]
    assert len(replica_sets) == 1 and "ownerReferences" not in replica_sets[0]["metadata"]
    assert len(names(run(kube_double, "get", "pods", "-n", namespace))) == 1  # still owned by the replica set
    error = run(kube_double, "delete", "configmap", "nothing", "-n", namespace, ok=False)
    assert 'Error from server (NotFound): configmaps "nothing" not found' in error
    run(kube_double, "delete", "namespace", namespace)
    assert "No resources found" in run_both(kube_double, "get", "replicasets,pods", "-n", namespace)


def test_scale_subresource_and_events(kube_double: KubeDouble, api_client: client.ApiClient) -> None:
    namespace = fresh_namespace(kube_double, "scales")
    run(kube_double, "create", "deployment", "web", "-n", namespace, "--image=nginx:1.27", "--replicas=1")
    assert "deployment.apps/web scaled" in run(
        kube_double, "scale", "deployment", "web", "-n", namespace, "--replicas=3"
    )
    scale = wire(client.AppsV1Api(api_client).read_namespaced_deployment_scale("web", namespace))
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 3}
    assert scale["status"] == {"replicas": 3, "selector": "app=web"}
    client.AppsV1Api(api_client).patch_namespaced_deployment_scale(
        "web", namespace, {"spec": {"replicas": 2}}
    )
    assert len(names(run(kube_double, "get", "pods", "-n", namespace, "-l", "app=web"))) == 2
    events = run(
        kube_double, "get", "events", "-n", namespace, "--field-selector", "involvedObject.kind=Deployment"
    )
    assert "Scaled up replica set web-" in events and "from 1 to 3" in events and "from 3 to 2" in events
    pod_events = run(
        kube_double, "get", "events", "-n", namespace, "--field-selector", "reason=SuccessfulCreate"
    )
    assert pod_events.count("Created pod: web-") == 3


def test_rollout_status_history_and_undo(kube_double: KubeDouble) -> None:
    namespace = fresh_namespace(kube_double, "rollouts")
    run(
        kube_double,
        "apply",
        "-f",
        "-",
        input=DEPLOYMENT.format(namespace=namespace, replicas=2, image="nginx:1.27"),
    )
    run(kube_double, "set", "image", "deployment/api", "-n", namespace, "api=nginx:1.28")
    assert 'deployment "api" successfully rolled out' in run(
        kube_double, "rollout", "status", "deployment/api", "-n", namespace, "--timeout=30s"
    )
    history = run(kube_double, "rollout", "history", "deployment/api", "-n", namespace)
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    replica_sets = run(kube_double, "get", "replicasets", "-n", namespace, "-o", "wide")
    assert {line.split()[1] for line in replica_sets.splitlines()[1:]} == {"0", "2"}  # the old one at zero
    assert "deployment.apps/api rolled back" in run(
        kube_double, "rollout", "undo", "deployment/api", "-n", namespace
    )
    image = run(
        kube_double,
        "get",
        "deployment",
        "api",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    )
    assert image == "nginx:1.27"
    history = run(kube_double, "rollout", "history", "deployment/api", "-n", namespace)
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]  # 1 became 3
    revision = run(
        kube_double, "get", "deployment", "api", "-n", namespace, "-o", "jsonpath={.metadata.annotations}"
    )
    assert '"deployment.kubernetes.io/revision":"3"' in revision
    assert "successfully rolled out" in run(
        kube_double, "rollout", "status", "deployment/api", "-n", namespace
    )
    run(
        kube_double,
        "patch",
        "deployment",
        "api",
        "-n",
        namespace,
        "-p",
        '{"spec":{"revisionHistoryLimit":0}}',
    )
    history = run(kube_double, "rollout", "history", "deployment/api", "-n", namespace)
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["3"]  # old ones pruned


def test_auth_can_i(kube_double: KubeDouble) -> None:
    assert run(kube_double, "auth", "can-i", "delete", "secrets", "-n", "prod") == "yes\n"


# -- watches, logs and the wire --------------------------------------------------------------------


@pytest.fixture(scope="module")
def http(kube_double: KubeDouble) -> Iterator[httpx.Client]:
    """Raw HTTPS to the double with its token: for what neither client shows plainly."""
    with httpx.Client(
        base_url=kube_double.url,
        verify=ssl.create_default_context(cafile=str(ca_file_of(kube_double))),
        headers={"Authorization": f"Bearer {DOUBLE_TOKEN}"},
        timeout=10,
    ) as raw:
        yield raw


class LineReader:
    """Reads a process's output on a thread; ``wait_for`` blocks until a line matches (no sleeps)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = 20.0) -> list[str]:
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self.lines), timeout):
                raise AssertionError(f"never saw it; output so far: {self.lines}")
            return list(self.lines)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._thread.join(timeout=10)


def kubectl_process(double: KubeDouble, home: Path, *args: str) -> LineReader:
    config = write_kubeconfig(home / "config", double.url, DOUBLE_TOKEN, ca_file_of(double))
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(home), "KUBECONFIG": str(config)}
    process = subprocess.Popen(
        [kubectl_path(), *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=environment
    )
    return LineReader(process)


def test_kubectl_get_watch_streams_changes(kube_double: KubeDouble, tmp_path: Path) -> None:
    namespace = fresh_namespace(kube_double, "watched")
    run(kube_double, "create", "configmap", "first", "-n", namespace, "--from-literal=a=1")
    watch = kubectl_process(
        kube_double, tmp_path, "get", "configmaps", "-n", namespace, "-w", "--output-watch-events"
    )
    try:
        watch.wait_for(lambda lines: any("first" in line for line in lines))
        run(kube_double, "create", "configmap", "second", "-n", namespace, "--from-literal=a=1")
        run(kube_double, "label", "configmap", "second", "-n", namespace, "seen=yes")
        run(kube_double, "delete", "configmap", "second", "-n", namespace)
        lines = watch.wait_for(lambda lines: any(line.startswith("DELETED") for line in lines))
    finally:
        watch.stop()
    assert lines[0].split()[:3] == ["EVENT", "NAME", "DATA"]  # the first event's Table carries the columns
    events = [(line.split()[0], line.split()[1]) for line in lines[1:]]
    assert events[-3:] == [("ADDED", "second"), ("MODIFIED", "second"), ("DELETED", "second")]


def test_watch_from_a_resource_version(kube_double: KubeDouble, api_client: client.ApiClient) -> None:
    namespace = fresh_namespace(kube_double, "resumed")
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="before", labels={"keep": "yes"}))
    )
    listed = core.list_namespaced_config_map(namespace, label_selector="keep=yes")
    since = wire(listed)["metadata"]["resourceVersion"]
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="after", labels={"keep": "yes"}))
    )
    core.patch_namespaced_config_map("before", namespace, {"metadata": {"labels": {"keep": "no"}}})
    core.delete_namespaced_config_map("after", namespace)
    stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
        core.list_namespaced_config_map,
        namespace,
        label_selector="keep=yes",
        resource_version=since,
        timeout_seconds=1,
    )
    seen = [(event["type"], event["object"].metadata.name) for event in stream]
    # Only changes after the list's resourceVersion; leaving the selector is a DELETED (as upstream).
    assert seen == [("ADDED", "after"), ("DELETED", "before"), ("DELETED", "after")]


def test_a_too_old_resource_version_is_410_gone(kube_double: KubeDouble, http: httpx.Client) -> None:
    listed = http.get("/api/v1/namespaces/prod/configmaps").json()
    old = listed["metadata"]["resourceVersion"]
    run(kube_double, "create", "configmap", "compacted", "-n", "default", "--from-literal=a=1")
    kube_double.store.compact()
    with http.stream(
        "GET", f"/api/v1/namespaces/prod/configmaps?watch=true&resourceVersion={old}"
    ) as response:
        assert response.status_code == 200
        events = [json.loads(line) for line in response.iter_lines() if line]
    assert events == [
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": events[0]["object"]["message"],
                "reason": "Expired",
                "code": 410,
            },
        }
    ]
    assert events[0]["object"]["message"].startswith(f"too old resource version: {old} (")
    future = int(http.get("/api/v1/namespaces/prod/configmaps").json()["metadata"]["resourceVersion"]) + 1000
    too_large = http.get(f"/api/v1/namespaces/prod/configmaps?watch=true&resourceVersion={future}")
    assert too_large.status_code == 504
    assert too_large.json()["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"


def test_watch_initial_events_bookmark_and_timeout(http: httpx.Client) -> None:
    query = "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
    query += "&timeoutSeconds=1"
    with http.stream("GET", f"/api/v1/namespaces/prod/services?{query}") as response:
        assert response.headers["content-type"] == "application/json"
        assert response.headers["transfer-encoding"] == "chunked"
        events = [json.loads(line) for line in response.iter_lines() if line]  # ends after timeoutSeconds
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in events[:2]] == [
        ("ADDED", "web"),
        ("BOOKMARK", None),
    ]
    bookmark = events[1]["object"]
    assert bookmark["kind"] == "Service" and bookmark["metadata"]["annotations"] == {
        "k8s.io/initial-events-end": "true"
    }
    assert int(bookmark["metadata"]["resourceVersion"]) >= int(
        events[0]["object"]["metadata"]["resourceVersion"]
    )


def test_logs_tail_timestamps_container_and_previous(kube_double: KubeDouble, http: httpx.Client) -> None:
    namespace = fresh_namespace(kube_double, "logs")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "two", "namespace": namespace},
        "spec": {
            "containers": [
                {"name": "app", "image": "busybox:1.36"},
                {"name": "side", "image": "busybox:1.36"},
            ]
        },
    }
    run(kube_double, "create", "-f", "-", input=json.dumps(pod))
    for index in range(5):
        kube_double.store.append_log(namespace, "two", "app", f"app line {index}")
    kube_double.store.append_log(namespace, "two", "side", "side line")
    assert (
        run(kube_double, "logs", "two", "-n", namespace, "-c", "app", "--tail=2")
        == "app line 3\napp line 4\n"
    )
    assert run(kube_double, "logs", "two", "-n", namespace, "-c", "side") == "side line\n"
    stamped = run(kube_double, "logs", "two", "-n", namespace, "-c", "side", "--timestamps").split(" ", 1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", stamped[0]) and stamped[1] == "side line\n"
    choose = http.get(f"/api/v1/namespaces/{namespace}/pods/two/log")  # kubectl itself picks the first
    assert choose.status_code == 400
    assert (
        choose.json()["message"]
        == "a container name must be specified for pod two, choose one of: [app side]"
    )
    previous = run(kube_double, "logs", "two", "-n", namespace, "-c", "app", "--previous", ok=False)
    assert 'previous terminated container "app" in pod "two" not found' in previous
    assert run(kube_double, "logs", "two", "-n", namespace, "-c", "side", "--since=1h") == "side line\n"
    assert (
        run(kube_double, "logs", "two", "-n", namespace, "-c", "side", "--since-time=2999-01-01T00:00:00Z")
        == ""
    )
    seeded = run(kube_double, "logs", "deployment/web", "-n", "prod")
    assert "start worker processes" in seeded


def test_logs_of_a_container_not_started_yet(
    kube_double: KubeDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = fresh_namespace(kube_double, "starting")
    monkeypatch.setattr(kube_double.cluster, "pod_start_seconds", 600.0)  # it stays ContainerCreating
    run(kube_double, "run", "slow", "-n", namespace, "--image=busybox:1.36")
    assert "ContainerCreating" in run(kube_double, "get", "pod", "slow", "-n", namespace)
    waiting = run(kube_double, "logs", "slow", "-n", namespace, ok=False)
    assert 'container "slow" in pod "slow" is waiting to start: ContainerCreating' in waiting


def test_logs_follow_streams_until_the_pod_goes(kube_double: KubeDouble, tmp_path: Path) -> None:
    namespace = fresh_namespace(kube_double, "follow")
    run(kube_double, "run", "tail", "-n", namespace, "--image=busybox:1.36")
    kube_double.store.append_log(namespace, "tail", "tail", "before")
    follow = kubectl_process(kube_double, tmp_path, "logs", "-f", "tail", "-n", namespace)
    try:
        follow.wait_for(lambda lines: lines == ["before"])
        kube_double.store.append_log(namespace, "tail", "tail", "while following")
        follow.wait_for(lambda lines: lines == ["before", "while following"])
        run(kube_double, "delete", "pod", "tail", "-n", namespace)
        assert follow.process.wait(timeout=20) == 0  # the stream ends with the pod
    finally:
        follow.stop()


TABLE = (  # what kubectl get asks for
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)


def test_table_rows_carry_metadata_or_the_object(http: httpx.Client) -> None:
    table = http.get("/api/v1/namespaces/prod/secrets", headers={"Accept": TABLE}).json()
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Type", "Data", "Age"]
    assert table["columnDefinitions"][0]["format"] == "name"
    row = table["rows"][0]
    assert row["cells"][:3] == ["db-credentials", "Opaque", 2]
    assert row["object"]["kind"] == "PartialObjectMetadata" and "data" not in row["object"]
    assert row["object"]["metadata"]["name"] == "db-credentials"
    full = http.get("/api/v1/namespaces/prod/secrets?includeObject=Object", headers={"Accept": TABLE}).json()
    assert full["rows"][0]["object"]["kind"] == "Secret" and "password" in full["rows"][0]["object"]["data"]
    wide = http.get("/apis/apps/v1/namespaces/prod/deployments", headers={"Accept": TABLE}).json()
    assert [(c["name"], c["priority"]) for c in wide["columnDefinitions"]][-3:] == [
        ("Containers", 1),
        ("Images", 1),
        ("Selector", 1),
    ]


def test_list_pages_with_limit_and_continue(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    first = wire(core.list_event_for_all_namespaces(limit=3))
    assert len(first["items"]) == 3 and first["metadata"]["remainingItemCount"] > 0
    second = wire(core.list_event_for_all_namespaces(limit=3, _continue=first["metadata"]["continue"]))
    assert {e["metadata"]["name"] for e in first["items"]}.isdisjoint(
        e["metadata"]["name"] for e in second["items"]
    )


def test_errors_are_status_objects(kube_double: KubeDouble, http: httpx.Client) -> None:
    unknown = http.get("/api/v1/namespaces/prod/widgets")
    assert unknown.status_code == 404 and unknown.json()["reason"] == "NotFound"
    assert re.fullmatch(r"[0-9a-f-]{36}", unknown.headers["Audit-Id"])
    not_allowed = http.put("/api/v1/namespaces/prod/configmaps", json={})
    assert not_allowed.status_code == 405 and not_allowed.json()["reason"] == "MethodNotAllowed"
    bad_deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "mismatch"},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {
                "metadata": {"labels": {"app": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    invalid = http.post("/apis/apps/v1/namespaces/prod/deployments", json=bad_deployment)
    assert invalid.status_code == 422
    status = invalid.json()
    assert status["reason"] == "Invalid" and status["message"].startswith(
        'Deployment.apps "mismatch" is invalid:'
    )
    assert status["details"]["causes"][0]["field"] == "spec.template.metadata.labels"
    error = run(
        kube_double,
        "create",
        "-f",
        "-",
        input=json.dumps(bad_deployment | {"metadata": {"name": "mismatch", "namespace": "prod"}}),
        ok=False,
    )
    assert "`selector` does not match template `labels`" in error
    protobuf_only = http.get(
        "/api/v1/namespaces/prod/pods", headers={"Accept": "application/vnd.kubernetes.protobuf"}
    )
    assert protobuf_only.status_code == 406 and protobuf_only.json()["reason"] == "NotAcceptable"
    exec_without_upgrade = http.post("/api/v1/namespaces/default/pods/debug/exec?command=id&stdout=true")
    assert exec_without_upgrade.status_code == 400
    assert exec_without_upgrade.json()["message"] == "Upgrade request required"
    missing_pod_exec = http.get(
        "/api/v1/namespaces/default/pods/nobody/exec", headers={"Upgrade": "websocket"}
    )
    assert missing_pod_exec.status_code == 404
    assert http.post("/api/v1/namespaces/default/pods/nobody/exec?command=id").status_code == 404


def test_field_validation_strict_warn_and_ignore(kube_double: KubeDouble, http: httpx.Client) -> None:
    unknown_field = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "typo"}, "dta": {"a": "b"}}
    strict = http.post("/api/v1/namespaces/prod/configmaps?fieldValidation=Strict", json=unknown_field)
    assert strict.status_code == 400
    assert strict.json()["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: '
        'strict decoding error: unknown field "dta"'
    )
    warned = http.post("/api/v1/namespaces/prod/configmaps?fieldValidation=Warn", json=unknown_field)
    assert warned.status_code == 201 and warned.headers["Warning"] == '299 - "unknown field \\"dta\\""'
    http.delete("/api/v1/namespaces/prod/configmaps/typo")
    ignored = http.post("/api/v1/namespaces/prod/configmaps?fieldValidation=Ignore", json=unknown_field)
    assert ignored.status_code == 201 and "Warning" not in ignored.headers
    http.delete("/api/v1/namespaces/prod/configmaps/typo")
    manifest = json.dumps(unknown_field | {"metadata": {"name": "typo", "namespace": "prod"}})
    assert 'strict decoding error: unknown field "dta"' in run(
        kube_double, "apply", "-f", "-", input=manifest, ok=False
    )
    server_side = run(kube_double, "apply", "--server-side", "-f", "-", input=manifest, ok=False)
    typed = "failed to create typed patch object (/prod/typo; v1, Kind=ConfigMap)"
    assert f"{typed}: .dta: field not declared in schema" in server_side


def test_stop_ends_open_watches_and_log_streams(tmp_path: Path) -> None:
    double = start_kube_double(tmp_path)
    context = ssl.create_default_context(cafile=str(ca_file_of(double)))
    headers = {"Authorization": f"Bearer {DOUBLE_TOKEN}"}
    with (
        httpx.Client(base_url=double.url, verify=context, headers=headers, timeout=10) as raw,
        raw.stream("GET", "/api/v1/pods?watch=true") as watching,
        raw.stream("GET", "/api/v1/namespaces/default/pods/debug/log?follow=true") as following,
    ):
        assert watching.status_code == following.status_code == 200
        double.stop()
        assert [line for line in following.iter_lines() if line] == ["debug shell ready"]
        assert all(json.loads(line)["type"] == "ADDED" for line in watching.iter_lines() if line)
    assert [t.name for t in threading.enumerate() if t.name.startswith(f"kube-double:{double.port}")] == []


def test_rollout_status_watches_a_rollout_in_progress(tmp_path: Path) -> None:
    """With pods that take a while to start, rollout status waits on a watch until the rollout is done."""
    double = KubeDouble(
        token=DOUBLE_TOKEN, certificates=make_dev_certificates(tmp_path), pod_start_seconds=1.5
    ).start()
    try:
        image = '{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.28"}]}}}}'
        run(double, "patch", "deployment", "web", "-n", "prod", "-p", image)
        pods = run(double, "get", "pods", "-n", "prod")
        assert "ContainerCreating" in pods and "Running" in pods  # the old pods serve until the new ones run
        status = run(double, "rollout", "status", "deployment/web", "-n", "prod", "--timeout=30s")
        assert 'Waiting for deployment "web" rollout to finish' in status
        assert status.rstrip().endswith('deployment "web" successfully rolled out')
        replica_sets = run(double, "get", "replicasets", "-n", "prod")
        assert sorted(line.split()[1] for line in replica_sets.splitlines()[1:]) == ["0", "2"]
    finally:
        double.stop()
    assert [t.name for t in threading.enumerate() if t.name.startswith(f"kube-double:{double.port}")] == []


def test_updates_keep_immutable_fields_and_convert_string_data(kube_double: KubeDouble) -> None:
    namespace = fresh_namespace(kube_double, "immutable")
    run(kube_double, "create", "deployment", "web", "-n", namespace, "--image=nginx:1.27")
    other = {"matchLabels": {"app": "other"}}
    selector = json.dumps(
        {"spec": {"selector": other, "template": {"metadata": {"labels": other["matchLabels"]}}}}
    )
    error = run(kube_double, "patch", "deployment", "web", "-n", namespace, "-p", selector, ok=False)
    assert (
        'The Deployment "web" is invalid: spec.selector: Invalid value: {"matchLabels":{"app":"other"}}'
        in error
    )
    assert "field is immutable" in error
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "plain", "namespace": namespace},
        "stringData": {"token": "abc"},
    }
    run(kube_double, "apply", "-f", "-", input=json.dumps(secret))
    secret["stringData"] = {"token": "xyz"}
    run(kube_double, "apply", "-f", "-", input=json.dumps(secret))  # a strategic patch carrying stringData
    stored = json.loads(run(kube_double, "get", "secret", "plain", "-n", namespace, "-o", "json"))
    assert stored["data"] == {"token": base64.b64encode(b"xyz").decode()} and "stringData" not in stored
    run(kube_double, "delete", "pod", "-n", namespace, "-l", "app=web")
    killing = run(kube_double, "get", "events", "-n", namespace, "--field-selector", "reason=Killing")
    assert "Stopping container nginx" in killing


def test_a_bug_in_the_double_is_a_500_status(
    kube_double: KubeDouble, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise KeyError("s3cr3t-Passw0rd!")

    monkeypatch.setattr(kube_double.api, "_list", broken)
    answer = http.get("/api/v1/namespaces/prod/secrets")
    assert answer.status_code == 500
    assert answer.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Internal error occurred: KeyError",
        "reason": "InternalError",
        "code": 500,
    }


def test_a_watcher_that_falls_behind_is_closed() -> None:
    """Fan-out never blocks a write: a watcher whose bounded queue fills is closed (its client re-lists)."""
    from wardgate.dev.kube.catalog import resource
    from wardgate.dev.kube.store import WATCH_QUEUE_LENGTH, Store

    configmaps = resource("", "v1", "configmaps")
    namespaces = resource("", "v1", "namespaces")
    assert configmaps is not None and namespaces is not None
    store = Store()
    store.create(namespaces, {"metadata": {"name": "busy"}})
    slow, _ = store.watch(configmaps, "busy", None)
    other, _ = store.watch(configmaps, "elsewhere", None)
    for index in range(WATCH_QUEUE_LENGTH + 1):
        store.create(configmaps, {"metadata": {"name": f"cm-{index}", "namespace": "busy"}})
    assert slow.closed.is_set() and not other.closed.is_set()
    assert other.events.empty()  # the other namespace's watcher saw none of it
    store.close()
    assert other.closed.is_set() and other.events.get_nowait() is None


def test_a_chunked_request_body_is_read(http: httpx.Client) -> None:
    """A proxy in front may stream a body with chunked encoding rather than a Content-Length."""
    body = json.dumps({"metadata": {"name": "streamed"}, "data": {"a": "b"}}).encode()
    created = http.post(
        "/api/v1/namespaces/default/configmaps", content=iter([body[:10], body[10:]])
    )  # an iterator: httpx sends it chunked
    assert created.request.headers["Transfer-Encoding"] == "chunked"
    assert created.status_code == 201 and created.json()["data"] == {"a": "b"}
    assert http.delete("/api/v1/namespaces/default/configmaps/streamed").status_code == 200


def test_kubectl_with_a_wrong_token_must_log_in(kube_double: KubeDouble) -> None:
    result = kubectl(kube_double, "not-the-token", None, "get", "pods")
    assert result.returncode == 1
    # kubectl 1.32 words a 401 to its discovery request this way against a real API server too.
    assert (
        "error: You must be logged in to the server (the server has asked for the client to" in result.stderr
    )


def test_events_expire_after_an_hour_and_stop_is_idempotent() -> None:
    from wardgate.dev.kube.controllers import EVENT_SWEEP_EVERY, EVENTS
    from wardgate.dev.kube.controllers import PODS as PODS_RESOURCE

    double = KubeDouble(token=DOUBLE_TOKEN, seed=True)  # plain HTTP, never started: the store alone
    old = double.store.list_objects(EVENTS, "prod")[0][0]
    old["lastTimestamp"] = "2020-01-01T00:00:00Z"
    double.store.update(EVENTS, old)
    pod = double.store.list_objects(PODS_RESOURCE, "default")[0][0]
    for _ in range(EVENT_SWEEP_EVERY):
        double.cluster.record_event(pod, "Tested", "an event", "test")
    assert double.store.find(EVENTS, "prod", old["metadata"]["name"]) is None
    assert double.url.startswith("http://127.0.0.1:")
    double.stop()
    double.stop()


def test_strategic_merge_directives() -> None:
    """The strategic merge patch directives kubectl sends (pure: no server)."""
    from wardgate.dev.kube.patches import json_patch, merge_patch, strategic_merge

    live = {
        "metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}},
        "spec": {
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
            "containers": [
                {"name": "app", "image": "a:1", "ports": [{"containerPort": 80}, {"containerPort": 81}]},
                {"name": "side", "image": "s:1"},
            ],
            "args": ["--one"],
        },
    }
    patch = {
        "metadata": {"finalizers": ["b"], "labels": {"x": None}},
        "spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "containers": [
                {"name": "app", "ports": [{"containerPort": 81, "$patch": "delete"}]},
                {"name": "side", "image": "s:2"},
            ],
            "args": ["--two"],  # a list without a merge key is replaced
        },
    }
    merged = strategic_merge(live, patch)
    assert merged["metadata"] == {"finalizers": ["a", "b"], "labels": {"y": "2"}}
    assert merged["spec"]["strategy"] == {"type": "Recreate"}
    assert [c["name"] for c in merged["spec"]["containers"]] == ["side", "app"]
    assert merged["spec"]["containers"][1]["ports"] == [{"containerPort": 80}]
    assert merged["spec"]["containers"][0]["image"] == "s:2" and merged["spec"]["args"] == ["--two"]
    removed = strategic_merge(merged, {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}})
    assert [c["name"] for c in removed["spec"]["containers"]] == ["app"]
    replaced = strategic_merge(
        merged, {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "o"}]}}
    )
    assert replaced["spec"]["containers"] == [{"name": "only", "image": "o"}]
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None}, "l": [2]}) == {
        "a": {"c": 2},
        "l": [2],
    }
    moved = json_patch(
        {"a": {"b": 1}, "l": [1, 2]},
        [{"op": "move", "from": "/a/b", "path": "/l/-"}, {"op": "copy", "from": "/l/0", "path": "/c"}],
    )
    assert moved == {"a": {}, "l": [1, 2, 1], "c": 1}


@pytest.mark.parametrize(
    ("seconds", "age"),
    [
        (45, "45s"),
        (119, "119s"),
        (330, "5m30s"),
        (600, "10m"),
        (10_000, "166m"),
        (12_600, "3h30m"),
        (36_000, "10h"),
        (190_800, "2d5h"),
        (864_000, "10d"),
        (3 * 365 * 86_400, "3y"),
        (-30, "<invalid>"),
    ],
)
def test_ages_read_as_kubectl_prints_them(seconds: int, age: str) -> None:
    import datetime

    from wardgate.dev.kube.tables import human_duration

    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    then = (now - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert human_duration(then, now) == age
