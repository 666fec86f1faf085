"""Kubernetes API requests, parsed into the attributes the API server authorizes.

``parse_k8s_request`` follows the API server's request-info resolution (the step that turns an
HTTP request into the RBAC attributes *verb, API group, version, namespace, resource,
subresource, name*), so a policy rule written in RBAC terms matches what Kubernetes itself
would check:

* ``/api/v1/...`` is the core group (``api_group == ""``); ``/apis/<group>/<version>/...`` a
  named group. Anything else (``/healthz``, ``/version``, ``/openapi/v2``, and the discovery
  documents ``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>``, ``/apis/<group>/<version>``)
  is a *non-resource* request whose verb is the lower-cased HTTP method.
* ``namespaces/<ns>/<resource>[/<name>[/<subresource>]]``; ``/api/v1/namespaces/<name>`` is the
  namespace object itself, and, as in the API server, its ``namespace`` attribute is its own
  name (a namespaced grant in ``<name>`` covers it); ``status`` and ``finalize`` right after a
  namespace name are that namespace's subresources.
* Verbs: POST create, GET/HEAD get (list on a collection; watch with ``?watch=`` anything but
  ``false``/``0``, or under the legacy ``/watch/`` prefix), PUT update, PATCH patch, DELETE
  delete (deletecollection on a collection). A list or watch narrowed by
  ``fieldSelector=metadata.name=<n>`` carries ``name == <n>``, as in the API server.
* ``exec``/``attach``/``portforward`` over a GET (WebSocket upgrade) resolve to ``get``; since
  Kubernetes 1.35 (feature gate ``AuthorizePodWebsocketUpgradeCreatePermission``, on by
  default) the API server additionally requires ``create`` on the subresource.
  ``authorized_verbs`` lists every verb the API server checks, so a rule on ``create
  pods/exec`` can also catch the GET form.

Fail-closed choices (each raises ``UnparseableOperation`` with a reason):

* The path goes through ``normalise_path``, the HTTP proxy's single decoding step: it is
  percent-decoded exactly once (``secr%65ts`` *is* ``secrets``); empty segments (``//``), dot
  segments (also encoded, ``%2e%2e``), encoded slashes or backslashes, control characters and
  invalid UTF-8 are refused. The API server resolves the attributes from Go's ``URL.Path``,
  which is decoded exactly once, so ``secr%2565ts`` reaches it as the resource ``secr%65ts`` --
  not a resource name at all; we refuse it rather than guess. (``URL.Path`` also turns ``%2F``
  into a real ``/``, which the resolver then splits on: another reason to refuse it.) A single
  trailing slash is dropped, as the API server's resolver does (``pods/`` is the collection).
* Resources, subresources, groups, versions and namespaces must be lower-case DNS names.
  Kubernetes matches them case-sensitively, so ``Secrets`` is not ``secrets`` to the API server
  (it would answer 404); we refuse it instead of treating it as a harmless unknown resource.
  ``API``/``APIS`` as a first segment is refused for the same reason.
* Object names are ASCII letters, digits and ``-._:@``, starting with a letter or digit
  (DNS names, ``system:`` RBAC names and ``<name>:<port>`` proxy targets).
* Anything the API server would not route or would resolve ambiguously is refused: methods
  other than GET HEAD POST PUT PATCH DELETE on resources, the removed legacy ``/proxy/``
  prefix, extra path segments after a subresource (except after ``proxy``), a repeated
  ``watch`` parameter or ``metadata.name`` selector, and query strings containing ``;``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from wardgate.errors import GatewayError
from wardgate.operations import UnparseableOperation
from wardgate.proxies.http import check_query, normalise_path

K8S_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
NON_RESOURCE_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
RESOURCE_METHOD_VERBS = {
    "GET": "get",
    "HEAD": "get",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
# Pod subresources whose WebSocket (GET) form also needs `create` (Kubernetes >= 1.35).
CONNECT_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})
MAX_PATH = 8192
MAX_QUERY = 16384

_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_GROUP_RE = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
_LABEL_RE = re.compile(_DNS_LABEL)
_RESOURCE_RE = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,252}")


@dataclass(frozen=True)
class K8sOperation:
    method: str
    path: str
    is_resource_request: bool
    verb: str
    api_group: str
    api_version: str
    namespace: str | None
    resource: str | None
    subresource: str | None
    name: str | None
    exec_command: tuple[str, ...] = ()
    authorized_verbs: tuple[str, ...] = ()

    def attributes(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "is_resource_request": self.is_resource_request,
            "verb": self.verb,
            "api_group": self.api_group,
            "api_version": self.api_version,
            "namespace": self.namespace,
            "resource": self.resource,
            "subresource": self.subresource,
            "name": self.name,
            "exec_command": list(self.exec_command),
            "authorized_verbs": list(self.authorized_verbs or (self.verb,)),
        }

    def to_record(self) -> dict[str, Any]:
        return {"protocol": "k8s", **self.attributes()}


def parse_k8s_request(method: str, raw_path: str, raw_query: str = "") -> K8sOperation:
    """The RBAC attributes of one API request; ``raw_path`` percent-encoded as received."""
    if method not in NON_RESOURCE_METHODS and method.upper() in NON_RESOURCE_METHODS:
        raise UnparseableOperation(f"HTTP methods are case-sensitive: {method!r} is not {method.upper()!r}")
    if method not in NON_RESOURCE_METHODS:
        raise UnparseableOperation(f"unsupported HTTP method {method[:20]!r}")
    if len(raw_path) > MAX_PATH or len(raw_query) > MAX_QUERY:
        raise UnparseableOperation("request path or query string is too long")
    try:
        path = normalise_path(raw_path)
        query = check_query(raw_query)
    except GatewayError as exc:
        raise UnparseableOperation(str(exc)) from None
    if ";" in query:
        raise UnparseableOperation("';' in the query string is ambiguous (not a separator to Kubernetes)")
    if path.endswith("/") and path != "/":
        path = path[:-1]
    # normalise_path re-encodes each decoded segment with quote(); unquote() is its exact inverse,
    # so this recovers the once-decoded segments without decoding anything a second time.
    parts = [unquote(p, errors="strict") for p in path.strip("/").split("/")] if path != "/" else []
    params = _parse_query(query)

    def non_resource() -> K8sOperation:
        return K8sOperation(
            method=method,
            path=path,
            is_resource_request=False,
            verb=method.lower(),
            api_group="",
            api_version="",
            namespace=None,
            resource=None,
            subresource=None,
            name=None,
            authorized_verbs=(method.lower(),),
        )

    if parts and parts[0].lower() in ("api", "apis") and parts[0] not in ("api", "apis"):
        raise UnparseableOperation(f"API prefix {parts[0]!r} must be lower case")
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource()
    rest = parts[1:]
    group = ""
    if parts[0] == "apis":
        if len(rest) < 3:
            return non_resource()  # /apis/<group>/<version>: discovery
        group, rest = rest[0], rest[1:]
        if len(group) > 253 or not _GROUP_RE.fullmatch(group):
            raise UnparseableOperation(f"invalid API group {group!r}")
    version, rest = rest[0], rest[1:]
    if not _LABEL_RE.fullmatch(version):
        raise UnparseableOperation(f"invalid API version {version!r}")

    if rest[0] == "proxy":
        raise UnparseableOperation(
            "the legacy /proxy/ path prefix is not supported; use <resource>/<name>/proxy"
        )
    special_watch = rest[0] == "watch"
    if special_watch:
        if len(rest) < 2:
            raise UnparseableOperation("the /watch/ prefix needs a resource")
        if method not in ("GET", "HEAD"):
            raise UnparseableOperation(f"{method} under the /watch/ prefix is not a watch")
        rest = rest[1:]
        verb = "watch"
    else:
        if method not in RESOURCE_METHOD_VERBS:
            raise UnparseableOperation(f"{method} is not a Kubernetes resource method")
        verb = RESOURCE_METHOD_VERBS[method]

    namespace: str | None = None
    in_namespace = False
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
            in_namespace = True
        if not _LABEL_RE.fullmatch(namespace):
            raise UnparseableOperation(f"invalid namespace {namespace!r}")

    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    if "%" in resource:
        raise UnparseableOperation(
            f"resource {resource!r} is still percent-encoded after decoding once (double encoding);"
            " Kubernetes decodes the path once and would not treat it as a resource name"
        )
    if not _RESOURCE_RE.fullmatch(resource):
        raise UnparseableOperation(
            f"invalid resource {resource!r}: Kubernetes resources are lower-case plural names"
            " and are matched case-sensitively"
        )
    if in_namespace and resource == "namespaces":
        raise UnparseableOperation("namespaces are not namespaced: /namespaces/<ns>/namespaces is invalid")
    if name is not None:
        _check_name(name)
    if subresource is not None and not _RESOURCE_RE.fullmatch(subresource):
        raise UnparseableOperation(f"invalid subresource {subresource!r}")
    if len(rest) > 3 and subresource != "proxy":
        raise UnparseableOperation(f"unexpected path segments after the {subresource} subresource")

    if name is None and verb == "get":
        verb = _list_or_watch(params)
        name = _field_selector_name(params)
    if name is None and verb == "delete":
        verb = "deletecollection"

    exec_command: tuple[str, ...] = ()
    if resource == "pods" and subresource == "exec":
        exec_command = tuple(v for k, v in params if k == "command")
    authorized: tuple[str, ...] = (verb,)
    if resource == "pods" and subresource in CONNECT_SUBRESOURCES and verb != "create":
        authorized = (verb, "create")
    return K8sOperation(
        method=method,
        path=path,
        is_resource_request=True,
        verb=verb,
        api_group=group,
        api_version=version,
        namespace=namespace,
        resource=resource,
        subresource=subresource,
        name=name,
        exec_command=exec_command,
        authorized_verbs=authorized,
    )


def _check_name(name: str) -> None:
    if name in (".", "..") or not _NAME_RE.fullmatch(name):
        raise UnparseableOperation(f"invalid object name {name[:80]!r}")


def _parse_query(query: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(query, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise UnparseableOperation("query string is not valid UTF-8") from None


def _list_or_watch(params: list[tuple[str, str]]) -> str:
    values = [v for k, v in params if k == "watch"]
    if len(values) > 1:
        raise UnparseableOperation("repeated 'watch' query parameter is ambiguous")
    # Kubernetes converts a query value to a bool as: "0" and "false" (any case) are false,
    # everything else, including an empty value, is true.
    if values and values[0].lower() not in ("false", "0"):
        return "watch"
    return "list"


def _field_selector_name(params: list[tuple[str, str]]) -> str | None:
    """``metadata.name`` from an exact-match field selector, as the API server resolves it."""
    selectors = [v for k, v in params if k == "fieldSelector"]
    if len(selectors) > 1:
        raise UnparseableOperation("repeated 'fieldSelector' query parameter is ambiguous")
    if not selectors or "\\" in selectors[0]:
        return None  # escaped selectors: leave the name unset, the broader (collection) check
    names: list[str] = []
    for term in selectors[0].split(","):
        for i in range(len(term)):
            op = next((o for o in ("!=", "==", "=") if term.startswith(o, i)), None)
            if op is not None:
                if term[:i] == "metadata.name" and op != "!=":
                    names.append(term[i + len(op) :])
                break
    if len(names) > 1:
        raise UnparseableOperation("more than one metadata.name field selector is ambiguous")
    if not names or names[0] in ("", ".", "..") or "/" in names[0] or "%" in names[0]:
        return None  # the API server ignores a selector name that is not a valid path segment
    _check_name(names[0])
    return names[0]


# ---------------------------------------------------------------------------------------------
# kubectl (for the dry-run CLI)


@dataclass(frozen=True)
class _Kind:
    resource: str
    group: str
    version: str
    namespaced: bool


def _kinds() -> dict[str, _Kind]:
    table: list[tuple[str, str, str, bool, tuple[str, ...]]] = [
        ("pods", "", "v1", True, ("po", "pod")),
        ("services", "", "v1", True, ("svc", "service")),
        ("configmaps", "", "v1", True, ("cm", "configmap")),
        ("secrets", "", "v1", True, ("secret",)),
        ("namespaces", "", "v1", False, ("ns", "namespace")),
        ("nodes", "", "v1", False, ("no", "node")),
        ("serviceaccounts", "", "v1", True, ("sa", "serviceaccount")),
        ("persistentvolumeclaims", "", "v1", True, ("pvc", "persistentvolumeclaim")),
        ("persistentvolumes", "", "v1", False, ("pv", "persistentvolume")),
        ("endpoints", "", "v1", True, ("ep",)),
        ("events", "", "v1", True, ("ev", "event")),
        ("replicationcontrollers", "", "v1", True, ("rc", "replicationcontroller")),
        ("resourcequotas", "", "v1", True, ("quota", "resourcequota")),
        ("limitranges", "", "v1", True, ("limits", "limitrange")),
        ("deployments", "apps", "v1", True, ("deploy", "deployment")),
        ("daemonsets", "apps", "v1", True, ("ds", "daemonset")),
        ("statefulsets", "apps", "v1", True, ("sts", "statefulset")),
        ("replicasets", "apps", "v1", True, ("rs", "replicaset")),
        ("jobs", "batch", "v1", True, ("job",)),
        ("cronjobs", "batch", "v1", True, ("cj", "cronjob")),
        ("ingresses", "networking.k8s.io", "v1", True, ("ing", "ingress")),
        ("networkpolicies", "networking.k8s.io", "v1", True, ("netpol", "networkpolicy")),
        ("horizontalpodautoscalers", "autoscaling", "v2", True, ("hpa", "horizontalpodautoscaler")),
        ("poddisruptionbudgets", "policy", "v1", True, ("pdb", "poddisruptionbudget")),
        ("storageclasses", "storage.k8s.io", "v1", False, ("sc", "storageclass")),
        ("priorityclasses", "scheduling.k8s.io", "v1", False, ("pc", "priorityclass")),
        ("customresourcedefinitions", "apiextensions.k8s.io", "v1", False, ("crd", "crds")),
        ("roles", "rbac.authorization.k8s.io", "v1", True, ("role",)),
        ("rolebindings", "rbac.authorization.k8s.io", "v1", True, ("rolebinding",)),
        ("clusterroles", "rbac.authorization.k8s.io", "v1", False, ("clusterrole",)),
        ("clusterrolebindings", "rbac.authorization.k8s.io", "v1", False, ("clusterrolebinding",)),
        ("certificatesigningrequests", "certificates.k8s.io", "v1", False, ("csr",)),
        (
            "mutatingwebhookconfigurations",
            "admissionregistration.k8s.io",
            "v1",
            False,
            ("mutatingwebhookconfiguration",),
        ),
        (
            "validatingwebhookconfigurations",
            "admissionregistration.k8s.io",
            "v1",
            False,
            ("validatingwebhookconfiguration",),
        ),
    ]
    kinds: dict[str, _Kind] = {}
    for resource, group, version, namespaced, aliases in table:
        kind = _Kind(resource, group, version, namespaced)
        for alias in (resource, *aliases):
            kinds[alias] = kind
    return kinds


KUBECTL_KINDS = _kinds()

# kubectl flags this parser understands: those that take a value, and boolean ones.
_VALUE_FLAGS = {
    "-n": "namespace",
    "--namespace": "namespace",
    "-o": "output",
    "--output": "output",
    "-l": "selector",
    "--selector": "selector",
    "--field-selector": "field-selector",
    "-c": "container",
    "--container": "container",
    "--grace-period": "grace-period",
    "--timeout": "timeout",
    "--replicas": "replicas",
    "--tail": "tail",
    "--since": "since",
    "--raw": "raw",
    "-p": "patch",  # `logs -p` is --previous: handled per command below
    "--patch": "patch",
    "--type": "type",
    "--request-timeout": "request-timeout",
    "--cascade": "cascade",
}
_BOOL_FLAGS = {
    "-A": "all-namespaces",
    "--all-namespaces": "all-namespaces",
    "--all": "all",
    "-w": "watch",
    "--watch": "watch",
    "-i": "stdin",
    "--stdin": "stdin",
    "-t": "tty",
    "--tty": "tty",
    "-f": "follow",
    "--follow": "follow",
    "--previous": "previous",
    "--force": "force",
    "--now": "now",
    "--wait": "wait",
    "--ignore-not-found": "ignore-not-found",
    "--overwrite": "overwrite",
    "--no-headers": "no-headers",
    "--show-labels": "show-labels",
    "-q": "quiet",
    "--quiet": "quiet",
}
_KUBECTL_COMMANDS = frozenset(
    {
        "get",
        "describe",
        "delete",
        "exec",
        "attach",
        "logs",
        "port-forward",
        "scale",
        "label",
        "annotate",
        "patch",
        "edit",
        "cordon",
        "uncordon",
    }
)


def parse_kubectl(command: str) -> K8sOperation:
    """The API request a kubectl-style command sends, parsed with ``parse_k8s_request``.

    One request per command: anything that would need several (``drain``, several names,
    ``pods,svc``) or that reads manifests (``apply``, ``create -f``) is unparseable.
    """
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise UnparseableOperation(f"cannot split the kubectl command: {exc}") from None
    if words and words[0] == "kubectl":
        words = words[1:]
    if not words:
        raise UnparseableOperation("empty kubectl command")
    sub, args = words[0], words[1:]
    if sub not in _KUBECTL_COMMANDS:
        raise UnparseableOperation(f"unsupported kubectl command {sub[:40]!r}")
    flags: dict[str, str] = {}
    positional: list[str] = []
    trailing: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            trailing = args[i:]
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        flag, eq, value = arg.partition("=")
        if sub == "logs" and flag == "-p":
            flags["previous"] = "true"
            continue
        if sub != "logs" and flag in ("-f", "--filename", "-k", "--kustomize"):
            raise UnparseableOperation("commands that read manifests (-f/-k) are not supported")
        if flag in _VALUE_FLAGS:
            if not eq:
                if i >= len(args):
                    raise UnparseableOperation(f"flag {flag} needs a value")
                value = args[i]
                i += 1
            flags[_VALUE_FLAGS[flag]] = value
        elif flag in _BOOL_FLAGS and (not eq or value in ("true", "false")):
            flags[_BOOL_FLAGS[flag]] = value or "true"
        elif flag.startswith("-n") and not flag.startswith("--") and len(flag) > 2:
            flags["namespace"] = arg[2:]  # -nprod
        elif not flag.startswith("--") and len(flag) > 2 and all(f"-{c}" in _BOOL_FLAGS for c in flag[1:]):
            for c in flag[1:]:  # combined short boolean flags: -it
                flags[_BOOL_FLAGS[f"-{c}"]] = "true"
        else:
            raise UnparseableOperation(f"unsupported kubectl flag {flag[:40]!r}")

    if "raw" in flags:
        return _kubectl_raw(sub, flags["raw"], positional)
    namespace = flags.get("namespace", "default")
    if "all-namespaces" in flags and flags["all-namespaces"] == "true":
        namespace = ""

    if sub in ("cordon", "uncordon"):
        positional = ["nodes", *positional]
    if sub in ("exec", "attach", "logs", "port-forward"):
        if not positional:
            raise UnparseableOperation(f"kubectl {sub} needs a pod name")
        target = positional[0]
        kind_name, slash, obj = target.partition("/")
        if slash:
            if _lookup_kind(kind_name).resource != "pods":
                raise UnparseableOperation(
                    f"kubectl {sub} on {kind_name}/… picks a pod at run time; name the pod instead"
                )
            target = obj
        if sub == "exec":
            command_argv = trailing or positional[1:]
            query = urlencode([("command", c) for c in command_argv])
            return _request("POST", _object_path(KUBECTL_KINDS["pods"], namespace, target, "exec"), query)
        if sub == "attach":
            return _request("POST", _object_path(KUBECTL_KINDS["pods"], namespace, target, "attach"))
        if sub == "port-forward":
            return _request("POST", _object_path(KUBECTL_KINDS["pods"], namespace, target, "portforward"))
        if len(positional) > 1:
            raise UnparseableOperation("kubectl logs: give one pod (and -c for the container)")
        log_query = [("container", flags["container"])] if "container" in flags else []
        if flags.get("follow") == "true":
            log_query.append(("follow", "true"))
        return _request(
            "GET", _object_path(KUBECTL_KINDS["pods"], namespace, target, "log"), urlencode(log_query)
        )

    if sub in ("label", "annotate"):  # drop the key=value / key- arguments
        positional = [p for p in positional if "=" not in p and not p.endswith("-")]
    kind, name = _kind_and_name(positional)
    if sub in ("get", "describe"):
        query_items: list[tuple[str, str]] = []
        if name is None:
            if "selector" in flags:
                query_items.append(("labelSelector", flags["selector"]))
            if "field-selector" in flags:
                query_items.append(("fieldSelector", flags["field-selector"]))
        if flags.get("watch") == "true":
            if name is not None:
                query_items.append(("fieldSelector", f"metadata.name={name}"))
                name = None
            query_items.append(("watch", "true"))
        return _request("GET", _object_path(kind, namespace, name), urlencode(query_items))
    if sub == "delete":
        if name is None:
            if flags.get("all") == "true":
                return _request("DELETE", _object_path(kind, namespace, None))
            if "selector" in flags:
                selector = urlencode([("labelSelector", flags["selector"])])
                return _request("DELETE", _object_path(kind, namespace, None), selector)
            raise UnparseableOperation("kubectl delete needs a name, --all or -l")
        return _request("DELETE", _object_path(kind, namespace, name))
    if name is None:
        raise UnparseableOperation(f"kubectl {sub} needs an object name")
    if sub == "scale":
        return _request("PATCH", _object_path(kind, namespace, name, "scale"))
    # label, annotate, patch, edit, cordon, uncordon: a PATCH of the object
    return _request("PATCH", _object_path(kind, namespace, name))


def _kubectl_raw(sub: str, raw: str, positional: list[str]) -> K8sOperation:
    methods = {"get": "GET", "delete": "DELETE"}
    if sub not in methods or positional:
        raise UnparseableOperation("--raw is supported for 'get' and 'delete' with no other arguments")
    path, _, query = raw.partition("?")
    if not path.startswith("/"):
        raise UnparseableOperation("--raw needs an absolute path")
    return parse_k8s_request(methods[sub], path, query)


def _lookup_kind(text: str) -> _Kind:
    lowered = text.lower()
    kind = KUBECTL_KINDS.get(lowered)
    if kind is None and "." in lowered:  # resource.group, e.g. deployments.apps
        short, _, group = lowered.partition(".")
        candidate = KUBECTL_KINDS.get(short)
        if candidate is not None and candidate.group == group:
            kind = candidate
    if kind is None:
        raise UnparseableOperation(
            f"unknown Kubernetes resource type {text[:60]!r}; known: {', '.join(sorted(_plurals()))}"
        )
    return kind


def _plurals() -> set[str]:
    return {k.resource for k in KUBECTL_KINDS.values()}


def _kind_and_name(positional: list[str]) -> tuple[_Kind, str | None]:
    if not positional:
        raise UnparseableOperation("kubectl command needs a resource type")
    first = positional[0]
    if "," in first:
        raise UnparseableOperation("several resource types in one command are several requests")
    if "/" in first:
        kind_name, _, name = first.partition("/")
        if len(positional) > 1 or not name:
            raise UnparseableOperation("give one TYPE/NAME per command")
        return _lookup_kind(kind_name), name
    kind = _lookup_kind(first)
    if len(positional) > 2:
        raise UnparseableOperation("several object names in one command are several requests")
    return kind, positional[1] if len(positional) == 2 else None


def _object_path(kind: _Kind, namespace: str, name: str | None, subresource: str | None = None) -> str:
    base = f"/apis/{kind.group}/{kind.version}" if kind.group else f"/api/{kind.version}"
    parts = [base]
    if kind.namespaced and namespace:
        parts.append(f"namespaces/{quote(namespace, safe='')}")
    parts.append(kind.resource)
    if name is not None:
        parts.append(quote(name, safe=""))
    if subresource is not None:
        parts.append(subresource)
    return "/".join(parts)


def _request(method: str, path: str, query: str = "") -> K8sOperation:
    return parse_k8s_request(method, path, query)
