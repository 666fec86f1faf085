"""What the local cluster double serves: its API groups, resources and their verbs, in one place.

The double (``wardgate.dev.kube``) is a development stand-in for a Kubernetes API server, used by
``wardgate dev`` and the tests so that kubectl and client-go work against it unchanged. Discovery
(``discovery.py``), the OpenAPI documents (``openapi.py``), the REST handlers and the object store
(``server.py``, ``store.py``) and the streaming subresources (``streams.py``) all read this
catalogue, so a resource is added here once. Shapes follow the Kubernetes API reference
(https://kubernetes.io/docs/reference/kubernetes-api/) and the discovery documents of a real
v1.32 API server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SERVER_VERSION = {  # GET /version (what kubectl version prints as the server's)
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4-wardgate-double",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.8",
    "compiler": "gc",
    "platform": "linux/amd64",
}

STANDARD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    """One REST resource, as APIResource in discovery names it (meta/v1 APIResource)."""

    group: str  # "" for the core group
    version: str
    plural: str  # the URL segment: "pods"
    kind: str  # "Pod"
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = STANDARD_VERBS
    categories: tuple[str, ...] = ()
    # Subresource name -> (kind, verbs) as listed in discovery ("pods/log": ("Pod", ("get",))).
    subresources: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:  # what objects carry in apiVersion
        return self.group_version


_CONNECT = ("create", "get")  # exec, attach, portforward: GET (WebSocket) and POST (SPDY)
RESOURCES: tuple[Resource, ...] = (
    Resource(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        ("ns",),
        ("create", "delete", "get", "list", "patch", "update", "watch"),
        subresources={
            "status": ("Namespace", ("get", "patch", "update")),
            "finalize": ("Namespace", ("update",)),
        },
    ),
    Resource(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        ("po",),
        categories=("all",),
        subresources={
            "status": ("Pod", ("get", "patch", "update")),
            "log": ("Pod", ("get",)),
            "exec": ("PodExecOptions", _CONNECT),
            "attach": ("PodAttachOptions", _CONNECT),
            "portforward": ("PodPortForwardOptions", _CONNECT),
        },
    ),
    Resource(
        "",
        "v1",
        "services",
        "Service",
        True,
        ("svc",),
        categories=("all",),
        subresources={"status": ("Service", ("get", "patch", "update"))},
    ),
    Resource("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    Resource("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    Resource("", "v1", "secrets", "Secret", True),
    Resource("", "v1", "events", "Event", True, ("ev",)),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    Resource(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        ("deploy",),
        categories=("all",),
        subresources={
            "status": ("Deployment", ("get", "patch", "update")),
            "scale": ("Scale", ("get", "patch", "update")),
        },
    ),
    Resource(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        True,
        ("rs",),
        categories=("all",),
        subresources={
            "status": ("ReplicaSet", ("get", "patch", "update")),
            "scale": ("Scale", ("get", "patch", "update")),
        },
    ),
    # kubectl auth can-i: a create-only, cluster-scoped review answered from the request alone.
    Resource(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        verbs=("create",),
    ),
)

GROUPS: tuple[str, ...] = tuple(dict.fromkeys(r.group for r in RESOURCES if r.group))  # /apis order


def resource(group: str, version: str, plural: str) -> Resource | None:
    for candidate in RESOURCES:
        if (candidate.group, candidate.version, candidate.plural) == (group, version, plural):
            return candidate
    return None


def by_kind(api_version: str, kind: str) -> Resource | None:
    for candidate in RESOURCES:
        if (candidate.api_version, candidate.kind) == (api_version, kind):
            return candidate
    return None


@dataclass(frozen=True)
class Answer:
    """A whole response of the double: discovery, OpenAPI and REST handlers return one."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
