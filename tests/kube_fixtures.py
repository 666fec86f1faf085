"""Shared helpers for tests that talk to the cluster double: start it, write a kubeconfig, run kubectl.

Use in a test module::

    from tests.kube_fixtures import kube_double, kubectl  # kube_double: a module-scoped fixture

    def test_pods(kube_double: KubeDouble) -> None:
        result = kubectl(kube_double, DOUBLE_TOKEN, None, "get", "pods", "-n", "prod")

Each kubectl run gets its own KUBECONFIG and HOME (so ~/.kube/cache is never shared between tests
or with a developer's own cluster; pass ``home`` to share one cache within a test module) and
fails the test with a clear message if the machine has no kubectl or only Debian's far older one.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from wardgate.dev.certs import make_dev_certificates
from wardgate.dev.kube.server import KubeDouble

DOUBLE_TOKEN = "kube-double-test-token"  # the double's one bearer token in tests
MINIMUM_KUBECTL = (1, 30)  # WebSocket exec (v5.channel.k8s.io) and aggregated discovery


def start_kube_double(folder: Path, token: str = DOUBLE_TOKEN, *, seed: bool = True) -> KubeDouble:
    """A started double over HTTPS with a development CA made in ``folder`` (its ``ca_file`` there)."""
    certificates = make_dev_certificates(folder)
    return KubeDouble(token=token, certificates=certificates, seed=seed).start()


@pytest.fixture(scope="module")
def kube_double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeDouble]:
    double = start_kube_double(tmp_path_factory.mktemp("kube-double"))
    try:
        yield double
    finally:
        double.stop()


def ca_file_of(double: KubeDouble) -> Path:
    assert double.certificates is not None, "the double was started without TLS"
    return double.certificates.ca_file


def write_kubeconfig(
    path: Path, server: str, token: str, ca_file: Path | str | None, namespace: str = ""
) -> Path:
    """A kubeconfig with one cluster, user and context (the shape ``kubectl config view`` prints)."""
    cluster: dict[str, object] = {"server": server}
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    context: dict[str, str] = {"cluster": "double", "user": "agent"}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "double", "cluster": cluster}],
        "users": [{"name": "agent", "user": {"token": token}}],
        "contexts": [{"name": "double", "context": context}],
        "current-context": "double",
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@functools.cache
def kubectl_path() -> str:
    """The kubectl binary, or the test fails saying why (never an old Debian kubectl)."""
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is not installed: these tests need kubectl >= 1.30 (v1.32 is expected)")
    version = subprocess.run(
        [found, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30
    )
    match = re.search(r'"gitVersion":\s*"v(\d+)\.(\d+)', version.stdout)
    if match is None or (int(match[1]), int(match[2])) < MINIMUM_KUBECTL:
        pytest.fail(
            f"{found} is too old or unreadable ({version.stdout.strip()[:200]}): need kubectl >= 1.30"
        )
    return found


def kubectl(
    target: KubeDouble | str,
    token: str,
    ca_file: Path | str | None,
    *args: str,
    input: str | None = None,
    timeout: float = 60.0,
    home: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``kubectl <args>`` against a double (its CA by default) or a URL, with a fresh kubeconfig and HOME."""
    if isinstance(target, KubeDouble):
        server = target.url
        if ca_file is None and target.certificates is not None:
            ca_file = target.certificates.ca_file
    else:
        server = target
    binary = kubectl_path()
    with tempfile.TemporaryDirectory(prefix="kubectl-") as fresh_home:
        # A caller's own home (one per test module) keeps kubectl's discovery cache between its runs.
        folder = home or Path(fresh_home)
        config = write_kubeconfig(Path(fresh_home) / "config", server, token, ca_file)
        environment = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(folder),
            "KUBECONFIG": str(config),
            "KUBECACHEDIR": str(folder / "cache"),
        }
        return subprocess.run(
            [binary, *args], input=input, capture_output=True, text=True, timeout=timeout, env=environment
        )
