"""The cluster double (wardgate.dev.kube) against real clients: the official Python client and kubectl 1.32.

Each test drives a client straight at the double over HTTPS with the development CA, the way the
gateway will reach it, and checks what a real API server would answer (shapes from the Kubernetes
API reference).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.kube_fixtures import (
    DOUBLE_TOKEN,
    ca_file_of,
    kube_double,
    kubectl,
    start_kube_double,
    write_kubeconfig,
)
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


def run(double: KubeDouble, *args: str, input: str | None = None, ok: bool = True) -> str:
    """kubectl against the double; its output, or (ok=False) its error output, which must be a failure."""
    result = kubectl(double, DOUBLE_TOKEN, None, *args, input=input)
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
    import json

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
    secrets = run(kube_double, "get", "secrets", "-A", "--field-selector", "type=Opaque")
    assert names(secrets) == ["db-credentials"]
    error = run(kube_double, "get", "pods", "--field-selector", "spec.unknown=x", ok=False)
    assert "field label not supported: spec.unknown" in error


def run_both(double: KubeDouble, *args: str) -> str:
    """stdout and stderr together (kubectl prints "No resources found" on stderr)."""
    result = kubectl(double, DOUBLE_TOKEN, None, *args)
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
    import json

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
    import json

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
    assert "(server dry run)" in run(
        kube_double, "delete", "pod", "debug", "-n", "default", "--dry-run=server"
    )
    assert names(run(kube_double, "get", "pod", "debug", "-n", "default")) == ["debug"]


def test_patch_types_label_and_annotate(kube_double: KubeDouble) -> None:
    import json

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
