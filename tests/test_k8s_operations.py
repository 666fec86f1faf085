"""Kubernetes API requests and kubectl commands → the RBAC attributes the API server authorizes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.k8s_bypass_corpus import K8S_BYPASS_CORPUS
from wardgate.operations import UnparseableOperation
from wardgate.operations.k8s import K8S_VERBS, K8sOperation, parse_k8s_request, parse_kubectl


def check(op: K8sOperation, expected: dict[str, Any]) -> None:
    attributes = op.attributes()
    mismatched = {k: (v, attributes.get(k)) for k, v in expected.items() if attributes.get(k) != v}
    assert not mismatched, mismatched


@pytest.mark.parametrize(("method", "raw_path", "raw_query", "expected"), K8S_BYPASS_CORPUS)
def test_bypass_corpus(method: str, raw_path: str, raw_query: str, expected: dict[str, Any]) -> None:
    if expected.get("unparseable"):
        with pytest.raises(UnparseableOperation) as info:
            parse_k8s_request(method, raw_path, raw_query)
        assert info.value.reason
    else:
        check(parse_k8s_request(method, raw_path, raw_query), expected)


def test_bypass_corpus_is_large_enough() -> None:
    assert len(K8S_BYPASS_CORPUS) >= 15
    assert sum(1 for *_, e in K8S_BYPASS_CORPUS if e.get("unparseable")) >= 10


POD = "/api/v1/namespaces/prod/pods"

RESOURCE_REQUESTS = [
    # method, path, query, group, version, namespace, resource, subresource, name, verb
    ("GET", POD, "", "", "v1", "prod", "pods", None, None, "list"),
    ("HEAD", POD, "", "", "v1", "prod", "pods", None, None, "list"),
    ("GET", POD, "watch=true", "", "v1", "prod", "pods", None, None, "watch"),
    ("GET", POD, "watch=0", "", "v1", "prod", "pods", None, None, "list"),
    ("GET", POD, "labelSelector=app%3Dweb&limit=5", "", "v1", "prod", "pods", None, None, "list"),
    ("GET", POD + "/web-1", "", "", "v1", "prod", "pods", None, "web-1", "get"),
    ("GET", POD + "/web-1", "watch=true", "", "v1", "prod", "pods", None, "web-1", "get"),
    ("POST", POD, "", "", "v1", "prod", "pods", None, None, "create"),
    ("PUT", POD + "/web-1", "", "", "v1", "prod", "pods", None, "web-1", "update"),
    ("PATCH", POD + "/web-1", "", "", "v1", "prod", "pods", None, "web-1", "patch"),
    ("DELETE", POD + "/web-1", "", "", "v1", "prod", "pods", None, "web-1", "delete"),
    ("DELETE", POD, "labelSelector=app%3Dweb", "", "v1", "prod", "pods", None, None, "deletecollection"),
    (
        "DELETE",
        POD,
        "fieldSelector=metadata.name%3Dweb",
        "",
        "v1",
        "prod",
        "pods",
        None,
        None,
        "deletecollection",
    ),
    ("GET", POD + "/web-1/log", "container=app", "", "v1", "prod", "pods", "log", "web-1", "get"),
    ("POST", POD + "/web-1/exec", "command=ls", "", "v1", "prod", "pods", "exec", "web-1", "create"),
    ("GET", POD + "/web-1/exec", "command=ls", "", "v1", "prod", "pods", "exec", "web-1", "get"),
    ("POST", POD + "/web-1/attach", "", "", "v1", "prod", "pods", "attach", "web-1", "create"),
    ("POST", POD + "/web-1/portforward", "", "", "v1", "prod", "pods", "portforward", "web-1", "create"),
    ("POST", POD + "/web-1/eviction", "", "", "v1", "prod", "pods", "eviction", "web-1", "create"),
    ("POST", POD + "/web-1/binding", "", "", "v1", "prod", "pods", "binding", "web-1", "create"),
    (
        "PATCH",
        POD + "/web-1/ephemeralcontainers",
        "",
        "",
        "v1",
        "prod",
        "pods",
        "ephemeralcontainers",
        "web-1",
        "patch",
    ),
    ("GET", POD + "/web-1:8080/proxy/metrics/x", "", "", "v1", "prod", "pods", "proxy", "web-1:8080", "get"),
    (
        "POST",
        "/api/v1/namespaces/prod/services/https:web:443/proxy/admin",
        "",
        "",
        "v1",
        "prod",
        "services",
        "proxy",
        "https:web:443",
        "create",
    ),
    (
        "POST",
        "/api/v1/namespaces/prod/serviceaccounts/builder/token",
        "",
        "",
        "v1",
        "prod",
        "serviceaccounts",
        "token",
        "builder",
        "create",
    ),
    ("PUT", POD + "/web-1/status", "", "", "v1", "prod", "pods", "status", "web-1", "update"),
    ("GET", "/api/v1/nodes", "", "", "v1", None, "nodes", None, None, "list"),
    ("GET", "/api/v1/nodes/node-1/proxy/stats", "", "", "v1", None, "nodes", "proxy", "node-1", "get"),
    ("GET", "/api/v1/pods", "", "", "v1", None, "pods", None, None, "list"),
    ("GET", "/api/v1/secrets", "watch=true", "", "v1", None, "secrets", None, None, "watch"),
    ("GET", "/api/v1/namespaces", "", "", "v1", None, "namespaces", None, None, "list"),
    ("POST", "/api/v1/namespaces", "", "", "v1", None, "namespaces", None, None, "create"),
    ("GET", "/api/v1/namespaces/prod", "", "", "v1", "prod", "namespaces", None, "prod", "get"),
    ("PUT", "/api/v1/namespaces/prod/status", "", "", "v1", "prod", "namespaces", "status", "prod", "update"),
    (
        "GET",
        "/apis/apps/v1/namespaces/prod/deployments",
        "",
        "apps",
        "v1",
        "prod",
        "deployments",
        None,
        None,
        "list",
    ),
    (
        "PATCH",
        "/apis/apps/v1/namespaces/prod/deployments/web/scale",
        "",
        "apps",
        "v1",
        "prod",
        "deployments",
        "scale",
        "web",
        "patch",
    ),
    (
        "GET",
        "/apis/apps/v1/watch/namespaces/prod/deployments/web",
        "",
        "apps",
        "v1",
        "prod",
        "deployments",
        None,
        "web",
        "watch",
    ),
    ("GET", "/apis/apps/v1/watch/deployments", "", "apps", "v1", None, "deployments", None, None, "watch"),
    ("POST", "/apis/batch/v1/namespaces/ci/jobs", "", "batch", "v1", "ci", "jobs", None, None, "create"),
    (
        "DELETE",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/system:admin",
        "",
        "rbac.authorization.k8s.io",
        "v1",
        None,
        "clusterrolebindings",
        None,
        "system:admin",
        "delete",
    ),
    (
        "GET",
        "/apis/example.com/v1alpha1/namespaces/prod/widgets/w",
        "",
        "example.com",
        "v1alpha1",
        "prod",
        "widgets",
        None,
        "w",
        "get",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "query", "group", "version", "namespace", "resource", "subresource", "name", "verb"),
    RESOURCE_REQUESTS,
)
def test_resource_requests(
    method: str,
    path: str,
    query: str,
    group: str,
    version: str,
    namespace: str | None,
    resource: str,
    subresource: str | None,
    name: str | None,
    verb: str,
) -> None:
    op = parse_k8s_request(method, path, query)
    assert op.is_resource_request
    assert (op.api_group, op.api_version, op.namespace, op.resource, op.subresource, op.name, op.verb) == (
        group,
        version,
        namespace,
        resource,
        subresource,
        name,
        verb,
    )
    assert op.method == method
    assert op.verb in K8S_VERBS


@pytest.mark.parametrize(
    ("method", "path", "verb"),
    [
        ("GET", "/", "get"),
        ("GET", "/healthz", "get"),
        ("GET", "/livez", "get"),
        ("GET", "/readyz/etcd", "get"),
        ("GET", "/version", "get"),
        ("GET", "/metrics", "get"),
        ("GET", "/openapi/v2", "get"),
        ("GET", "/openapi/v3/apis/apps/v1", "get"),
        ("GET", "/api", "get"),
        ("GET", "/api/v1", "get"),
        ("GET", "/api/v1/", "get"),
        ("GET", "/apis", "get"),
        ("GET", "/apis/apps", "get"),
        ("GET", "/apis/apps/v1", "get"),
        ("HEAD", "/healthz", "head"),
        ("OPTIONS", "/version", "options"),
        ("POST", "/logs/x", "post"),
        ("PUT", "/healthz", "put"),
        ("PATCH", "/healthz", "patch"),
        ("DELETE", "/metrics", "delete"),
    ],
)
def test_non_resource_requests(method: str, path: str, verb: str) -> None:
    op = parse_k8s_request(method, path)
    assert not op.is_resource_request
    assert op.verb == verb
    assert op.authorized_verbs == (verb,)
    assert (op.api_group, op.api_version, op.namespace, op.resource, op.subresource, op.name) == (
        "",
        "",
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("query", "name", "verb"),
    [
        ("fieldSelector=metadata.name%3Dweb", "web", "list"),
        ("fieldSelector=metadata.name%3D%3Dweb&watch=1", "web", "watch"),
        ("fieldSelector=metadata.name%21%3Dweb", None, "list"),  # != names nothing
        ("fieldSelector=status.phase%3DRunning%2Cmetadata.name%3Dweb", "web", "list"),
        ("fieldSelector=metadata.namespace%3Dprod", None, "list"),
        ("fieldSelector=metadata.name%3Dweb%5C%2Cx", None, "list"),  # escapes: left unset (broader)
        ("fieldSelector=metadata.name%3D", None, "list"),
    ],
)
def test_field_selector_name(query: str, name: str | None, verb: str) -> None:
    op = parse_k8s_request("GET", POD, query)
    assert (op.name, op.verb) == (name, verb)


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", POD, "fieldSelector=a&fieldSelector=b"),
        ("GET", POD, "fieldSelector=metadata.name%3Dweb%20app"),
        ("GET", POD, "q=%ff"),  # not UTF-8
        ("GET", POD, "q=%zz"),
        ("GET", POD, "q=a b"),
        ("GET", POD, "q=\u00e9"),
        ("GET", POD + "/web-1", "x=1#frag"),
        ("GET", "/api/v1/watch", ""),
        ("GET", "/api/V1/pods", ""),
        ("GET", "/apis/Apps/v1/deployments", ""),
        ("GET", "/apis/apps_x/v1/deployments", ""),
        ("GET", "/api/v1/namespaces/prod/pods/web-1/Exec", ""),
        ("GET", "/api/v1/namespaces/prod/pods/-/log", "x"),
        ("GET", "/api/v1/namespaces/prod/pods/web%2Fx", ""),
        ("GET", "/api/v1/namespaces/prod/pods/" + "a" * 254, ""),
        ("GET", "/api/v1/namespaces/" + "a" * 64 + "/pods", ""),
        ("GET", "/api/v1/namespaces/prod/1pods", ""),
        ("GET", "/healthz/../api/v1/secrets", ""),
        ("GET", "/" + "a/" * 5000, ""),
        ("CONNECT", POD, ""),
        ("", POD, ""),
    ],
)
def test_unparseable_requests(method: str, path: str, query: str) -> None:
    with pytest.raises(UnparseableOperation) as info:
        parse_k8s_request(method, path, query)
    assert info.value.reason


def test_exec_command_in_order_and_only_for_exec() -> None:
    op = parse_k8s_request(
        "POST", POD + "/web/exec", "container=app&command=sh&stdin=true&command=-c&command=id%20-u"
    )
    assert op.exec_command == ("sh", "-c", "id -u")
    assert parse_k8s_request("POST", POD + "/web/attach", "command=sh").exec_command == ()
    assert parse_k8s_request("POST", POD + "/web/exec").exec_command == ()


def test_websocket_connect_requests_also_need_create() -> None:
    for sub in ("exec", "attach", "portforward"):
        assert parse_k8s_request("GET", f"{POD}/web/{sub}").authorized_verbs == ("get", "create")
        assert parse_k8s_request("POST", f"{POD}/web/{sub}").authorized_verbs == ("create",)
    assert parse_k8s_request("GET", POD + "/web/log").authorized_verbs == ("get",)
    assert parse_k8s_request("GET", POD + "/web:80/proxy").authorized_verbs == ("get",)


def test_path_is_canonical() -> None:
    op = parse_k8s_request("GET", "/api/v1/namespaces/kube%2Dsystem/secr%65ts/")
    assert op.path == "/api/v1/namespaces/kube-system/secrets"
    assert parse_k8s_request("GET", "api/v1/pods").path == "/api/v1/pods"
    assert parse_k8s_request("GET", "").path == "/"
    assert parse_k8s_request("GET", "/").path == "/"


def test_record_is_json_and_complete() -> None:
    op = parse_k8s_request("GET", POD + "/web/exec", "command=ls")
    record = op.to_record()
    assert record == {
        "protocol": "k8s",
        "method": "GET",
        "path": "/api/v1/namespaces/prod/pods/web/exec",
        "is_resource_request": True,
        "verb": "get",
        "api_group": "",
        "api_version": "v1",
        "namespace": "prod",
        "resource": "pods",
        "subresource": "exec",
        "name": "web",
        "exec_command": ["ls"],
        "authorized_verbs": ["get", "create"],
    }
    assert json.loads(json.dumps(record)) == record


# -- kubectl -------------------------------------------------------------------------------

KUBECTL = [
    (
        "delete pods -n prod web-1",
        {"verb": "delete", "resource": "pods", "namespace": "prod", "name": "web-1"},
    ),
    ("kubectl delete pod web-1 --namespace=prod", {"verb": "delete", "namespace": "prod", "name": "web-1"}),
    ("get secrets -n kube-system", {"verb": "list", "resource": "secrets", "namespace": "kube-system"}),
    ("get secret db -n kube-system -o yaml", {"verb": "get", "resource": "secrets", "name": "db"}),
    ("get pods", {"verb": "list", "namespace": "default"}),
    ("get pods -A", {"verb": "list", "namespace": None, "path": "/api/v1/pods"}),
    ("get po --all-namespaces -w", {"verb": "watch", "namespace": None}),
    ("get pods web -w -n prod", {"verb": "watch", "name": "web", "namespace": "prod"}),
    ("get pods -l app=web", {"verb": "list", "name": None}),
    ("get pods --field-selector metadata.name=web", {"verb": "list", "name": "web"}),
    ("describe deploy web -n prod", {"verb": "get", "api_group": "apps", "resource": "deployments"}),
    (
        "exec -n prod web-1 -- sh",
        {
            "method": "POST",
            "verb": "create",
            "resource": "pods",
            "subresource": "exec",
            "name": "web-1",
            "namespace": "prod",
            "exec_command": ["sh"],
        },
    ),
    (
        "exec -it web-1 -c app -- rm -rf /tmp/x",
        {"exec_command": ["rm", "-rf", "/tmp/x"], "namespace": "default"},
    ),
    ("exec pod/web-1 -- id", {"name": "web-1", "subresource": "exec"}),
    ("attach web-1 -n prod", {"verb": "create", "subresource": "attach"}),
    ("port-forward web-1 8080:80 -n prod", {"verb": "create", "subresource": "portforward"}),
    ("logs web-1 -n prod", {"verb": "get", "subresource": "log", "name": "web-1", "namespace": "prod"}),
    ("logs -f web-1 -c app --tail 10", {"subresource": "log", "name": "web-1"}),
    ("get deploy/web -n prod", {"verb": "get", "api_group": "apps", "api_version": "v1", "name": "web"}),
    ("get deployments.apps web -n prod", {"verb": "get", "resource": "deployments", "name": "web"}),
    ("delete pods --all -n ci", {"verb": "deletecollection", "resource": "pods", "namespace": "ci"}),
    ("delete pods -l app=web -n ci", {"verb": "deletecollection", "namespace": "ci"}),
    ("get nodes", {"verb": "list", "resource": "nodes", "namespace": None}),
    ("get no node-1 -n prod", {"verb": "get", "namespace": None, "name": "node-1"}),
    ("get ns", {"verb": "list", "resource": "namespaces", "namespace": None}),
    ("delete ns prod", {"verb": "delete", "resource": "namespaces", "name": "prod", "namespace": "prod"}),
    ("get pv", {"resource": "persistentvolumes", "namespace": None}),
    ("get pvc -n prod", {"resource": "persistentvolumeclaims", "namespace": "prod"}),
    ("get crd", {"resource": "customresourcedefinitions", "api_group": "apiextensions.k8s.io"}),
    ("get svc -n prod", {"resource": "services"}),
    ("get ds -n kube-system", {"resource": "daemonsets", "api_group": "apps"}),
    ("get sts", {"resource": "statefulsets", "api_group": "apps"}),
    ("get rs", {"resource": "replicasets", "api_group": "apps"}),
    ("get cm", {"resource": "configmaps", "api_group": ""}),
    ("get sa", {"resource": "serviceaccounts"}),
    ("get ing", {"resource": "ingresses", "api_group": "networking.k8s.io"}),
    ("get jobs", {"resource": "jobs", "api_group": "batch"}),
    ("get cj", {"resource": "cronjobs", "api_group": "batch"}),
    (
        "get role -n prod",
        {"resource": "roles", "api_group": "rbac.authorization.k8s.io", "namespace": "prod"},
    ),
    ("get rolebinding -n prod", {"resource": "rolebindings", "namespace": "prod"}),
    ("get clusterrole admin", {"resource": "clusterroles", "namespace": None, "name": "admin"}),
    ("delete clusterrolebinding system:x", {"resource": "clusterrolebindings", "name": "system:x"}),
    ("get Deployment", {"resource": "deployments"}),
    ("scale deploy/web --replicas=0 -n prod", {"verb": "patch", "subresource": "scale", "name": "web"}),
    ("label pods web-1 env=prod -n prod", {"verb": "patch", "name": "web-1"}),
    ("annotate pods/web-1 a=b", {"verb": "patch", "name": "web-1"}),
    ("patch deploy web -p '{\"spec\":{}}'", {"verb": "patch", "resource": "deployments"}),
    ("edit cm app-config", {"verb": "patch", "resource": "configmaps"}),
    ("cordon node-1", {"verb": "patch", "resource": "nodes", "name": "node-1"}),
    ("get --raw /healthz", {"is_resource_request": False, "verb": "get", "path": "/healthz"}),
    (
        "get --raw /api/v1/namespaces/x/secrets?watch=1",
        {"verb": "watch", "resource": "secrets", "namespace": "x"},
    ),
    ("delete --raw /api/v1/namespaces/x/pods", {"verb": "deletecollection", "resource": "pods"}),
    ("get pods -nprod", {"namespace": "prod"}),
]


@pytest.mark.parametrize(("command", "expected"), KUBECTL)
def test_kubectl(command: str, expected: dict[str, Any]) -> None:
    op = parse_kubectl(command)
    check(op, expected)
    # both paths agree: the kubectl form is exactly the API request it sends
    assert parse_k8s_request(op.method, op.path, _query_of(op)) == op


def _query_of(op: K8sOperation) -> str:
    from urllib.parse import urlencode

    if op.subresource == "exec":
        return urlencode([("command", c) for c in op.exec_command])
    if op.verb == "watch":
        return urlencode(
            ([("fieldSelector", f"metadata.name={op.name}")] if op.name else []) + [("watch", "1")]
        )
    if op.name and op.verb == "list":
        return urlencode([("fieldSelector", f"metadata.name={op.name}")])
    return ""


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("get widgets", "unknown Kubernetes resource type 'widgets'"),
        ("get pods,svc", "several resource types"),
        ("get pods a b", "several object names"),
        ("apply -f x.yaml", "unsupported kubectl command 'apply'"),
        ("create -f x.yaml", "unsupported kubectl command"),
        ("delete -f x.yaml", "read manifests"),
        ("drain node-1", "unsupported kubectl command"),
        ("delete pods", "needs a name, --all or -l"),
        ("exec deploy/web -- sh", "picks a pod"),
        ("logs deploy/web", "picks a pod"),
        ("get pods --as=admin", "unsupported kubectl flag '--as'"),
        ("get pods --kubeconfig x", "unsupported kubectl flag"),
        ("get pods -n", "needs a value"),
        ("get 'pods", "cannot split"),
        ("", "empty kubectl command"),
        ("kubectl", "empty kubectl command"),
        ("get", "needs a resource type"),
        ("scale deploy --replicas=1", "needs an object name"),
        ("get deployments.batch", "unknown Kubernetes resource type"),
        ("get --raw healthz", "absolute path"),
        ("get pods --raw /healthz", "--raw is supported"),
        ("get pods -n Prod", "invalid namespace"),
        ("get pods/", "give one TYPE/NAME"),
    ],
)
def test_kubectl_unparseable(command: str, reason: str) -> None:
    with pytest.raises(UnparseableOperation, match=re.escape(reason)):
        parse_kubectl(command)


def test_kubectl_unknown_resource_lists_known_ones() -> None:
    with pytest.raises(UnparseableOperation) as info:
        parse_kubectl("get widgets")
    assert "deployments" in info.value.reason and "secrets" in info.value.reason


# -- properties ----------------------------------------------------------------------------

METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "get", "TRACE", ""])
SEGMENTS = st.one_of(
    st.sampled_from(
        [
            "api",
            "apis",
            "v1",
            "apps",
            "watch",
            "proxy",
            "namespaces",
            "kube-system",
            "prod",
            "pods",
            "secrets",
            "Secrets",
            "exec",
            "status",
            "finalize",
            "log",
            "web-1",
            "..",
            ".",
            "%2e%2e",
            "%2F",
            "%2565",
            "secr%65ts",
            "%00",
            "",
            "a:b",
            "%",
            "%zz",
            "..;",
            "%5C",
            "\u00e9",
            "x y",
        ]
    ),
    st.text(min_size=0, max_size=12),
)
QUERIES = st.one_of(
    st.sampled_from(
        ["", "watch=true", "watch=0", "watch", "command=sh&command=-c", "fieldSelector=metadata.name%3Dx"]
    ),
    st.text(max_size=30),
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _invariants(op: K8sOperation, method: str, query: str) -> None:
    assert op.method == method
    assert op.path.startswith("/")
    assert "//" not in op.path
    if op.is_resource_request:
        assert op.verb in K8S_VERBS
        assert op.resource is not None and re.fullmatch(r"[a-z][-a-z0-9]*", op.resource)
        assert op.verb in op.authorized_verbs
    else:
        assert op.verb == method.lower()
        assert op.resource is None
    # the canonical path parses to the same operation: nothing is decoded twice
    assert parse_k8s_request(method, op.path, query) == op
    json.dumps(op.to_record())


@SETTINGS
@given(method=METHODS, segments=st.lists(SEGMENTS, max_size=9), query=QUERIES, trailing=st.booleans())
def test_property_paths_from_segments(method: str, segments: list[str], query: str, trailing: bool) -> None:
    raw_path = "/" + "/".join(segments) + ("/" if trailing else "")
    try:
        op = parse_k8s_request(method, raw_path, query)
    except UnparseableOperation as exc:
        assert exc.reason
        return
    _invariants(op, method, query)


@SETTINGS
@given(method=st.text(max_size=8), raw_path=st.text(max_size=80), query=st.text(max_size=40))
def test_property_arbitrary_text(method: str, raw_path: str, query: str) -> None:
    try:
        op = parse_k8s_request(method, raw_path, query)
    except UnparseableOperation as exc:
        assert exc.reason
        return
    _invariants(op, method, query)


KUBECTL_WORDS = st.sampled_from(
    [
        "get",
        "delete",
        "exec",
        "logs",
        "describe",
        "scale",
        "label",
        "pods",
        "po",
        "deploy/web",
        "secrets",
        "ns",
        "nodes",
        "web-1",
        "-n",
        "prod",
        "-A",
        "--all",
        "-l",
        "app=x",
        "--",
        "sh",
        "-c",
        "-it",
        "-w",
        "--raw",
        "/healthz",
        "--replicas=1",
        "-o",
        "yaml",
        "'",
        '"',
        "x=y",
        "crd",
        "Deployment",
    ]
)


@SETTINGS
@given(words=st.lists(st.one_of(KUBECTL_WORDS, st.text(max_size=10)), max_size=8))
def test_property_kubectl(words: list[str]) -> None:
    try:
        op = parse_kubectl(" ".join(words))
    except UnparseableOperation as exc:
        assert exc.reason
        return
    assert isinstance(op, K8sOperation)
    json.dumps(op.to_record())
