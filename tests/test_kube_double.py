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

from tests.kube_fixtures import DOUBLE_TOKEN, ca_file_of, kube_double, start_kube_double, write_kubeconfig
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
