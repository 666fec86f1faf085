"""Kubernetes API requests that try to hide what they touch: kept as data for reuse.

Each entry is ``(method, raw_path, raw_query, expectation)``. ``raw_path`` is percent-encoded as
an agent would send it. ``expectation`` is either ``{"unparseable": True}`` or a subset of
``K8sOperation.attributes()`` the parsed request must have. ``tests/test_k8s_operations.py``
checks every entry against ``parse_k8s_request``; the policy engine's bypass suite can replay
them against rules (for example "deny reading secrets in kube-system").
"""

from __future__ import annotations

from typing import Any

UNPARSEABLE: dict[str, Any] = {"unparseable": True}
SECRETS_LIST = {"resource": "secrets", "verb": "list", "namespace": "kube-system", "name": None}
SECRET_GET = {"resource": "secrets", "verb": "get", "namespace": "kube-system", "name": "admin-token"}

K8S_BYPASS_CORPUS: list[tuple[str, str, str, dict[str, Any]]] = [
    # the plain requests the tricks below try to disguise
    ("GET", "/api/v1/namespaces/kube-system/secrets", "", SECRETS_LIST),
    ("GET", "/api/v1/namespaces/kube-system/secrets/admin-token", "", SECRET_GET),
    # extra slashes
    ("GET", "/api//v1/namespaces/kube-system/secrets", "", UNPARSEABLE),
    ("GET", "//api/v1/namespaces/kube-system/secrets", "", UNPARSEABLE),
    ("GET", "/api/v1/namespaces/kube-system//secrets", "", UNPARSEABLE),
    # dot segments, plain and encoded, and Tomcat-style "..;"
    ("GET", "/api/v1/namespaces/kube-system/pods/../secrets", "", UNPARSEABLE),
    ("GET", "/api/v1/namespaces/kube-system/pods/%2e%2e/secrets", "", UNPARSEABLE),
    ("GET", "/api/v1/namespaces/kube-system/pods/.%2E/secrets", "", UNPARSEABLE),
    ("GET", "/api/v1/namespaces/kube-system/./secrets", "", UNPARSEABLE),
    ("GET", "/api/v1/namespaces/kube-system/pods/..;/secrets", "", UNPARSEABLE),
    ("PUT", "/api/v1/namespaces/prod/pods/web/../../../kube-system/secrets/x", "", UNPARSEABLE),
    # encoded slashes and backslashes
    ("GET", "/api/v1/namespaces/kube-system/secrets%2Fadmin-token", "", UNPARSEABLE),
    ("GET", "/api/v1/namespaces%2Fkube-system/secrets", "", UNPARSEABLE),
    ("GET", "/api/v1/namespaces/kube-system/secrets%5Cadmin-token", "", UNPARSEABLE),
    # percent-encoded letters are decoded exactly once, as the API server does
    ("GET", "/api/v1/namespaces/kube-system/secr%65ts", "", SECRETS_LIST),
    ("GET", "/api/v1/namespaces/kube%2Dsystem/%73ecrets/admin%2Dtoken", "", SECRET_GET),
    ("GET", "/%61pi/v1/namespaces/kube-system/secrets", "", SECRETS_LIST),
    # double encoding: one decoding leaves "%65", which is no resource name
    ("GET", "/api/v1/namespaces/kube-system/secr%2565ts", "", UNPARSEABLE),
    ("GET", "/api/v1/namespaces/kube-system/pods/%252e%252e/secrets", "", UNPARSEABLE),
    # invalid percent-encoding, control characters, non-ASCII look-alikes
    ("GET", "/api/v1/namespaces/kube-system/secr%6", "", UNPARSEABLE),
    ("GET", "/api/v1/namespaces/kube-system/secrets/admin-token%00", "", UNPARSEABLE),
    ("GET", "/api/v1/namespaces/kube-system/secr%D0%B5ts", "", UNPARSEABLE),
    # case: Kubernetes is case-sensitive, so these are refused rather than passed as "unknown"
    ("GET", "/api/v1/namespaces/kube-system/Secrets", "", UNPARSEABLE),
    ("GET", "/API/v1/namespaces/kube-system/secrets", "", UNPARSEABLE),
    ("GET", "/api/v1/namespaces/Kube-System/secrets", "", UNPARSEABLE),
    ("get", "/api/v1/namespaces/kube-system/secrets", "", UNPARSEABLE),
    # trailing slashes are dropped, as by the API server's resolver
    ("GET", "/api/v1/namespaces/kube-system/secrets/", "", SECRETS_LIST),
    ("GET", "/api/v1/namespaces/kube-system/secrets/admin-token/", "", SECRET_GET),
    # watch: by query (anything but false/0 is true), or the legacy /watch/ prefix
    ("GET", "/api/v1/namespaces/kube-system/secrets", "watch=true", {**SECRETS_LIST, "verb": "watch"}),
    ("GET", "/api/v1/namespaces/kube-system/secrets", "watch=1", {**SECRETS_LIST, "verb": "watch"}),
    ("GET", "/api/v1/namespaces/kube-system/secrets", "watch=", {**SECRETS_LIST, "verb": "watch"}),
    ("GET", "/api/v1/namespaces/kube-system/secrets", "w%61tch=yes", {**SECRETS_LIST, "verb": "watch"}),
    ("GET", "/api/v1/namespaces/kube-system/secrets", "watch=False", SECRETS_LIST),
    ("GET", "/api/v1/namespaces/kube-system/secrets", "watch=false&watch=true", UNPARSEABLE),
    ("GET", "/api/v1/namespaces/kube-system/secrets", "x=1;watch=true", UNPARSEABLE),
    ("GET", "/api/v1/watch/namespaces/kube-system/secrets", "", {**SECRETS_LIST, "verb": "watch"}),
    ("POST", "/api/v1/watch/namespaces/kube-system/secrets", "", UNPARSEABLE),
    # a list narrowed to one object by field selector names it, as the API server does
    (
        "GET",
        "/api/v1/namespaces/kube-system/secrets",
        "fieldSelector=metadata.name%3Dadmin-token",
        {**SECRET_GET, "verb": "list"},
    ),
    (
        "GET",
        "/api/v1/namespaces/kube-system/secrets",
        "fieldSelector=metadata.name%3Da,metadata.name%3Db",
        UNPARSEABLE,
    ),
    # exec over GET (WebSocket) and POST (SPDY); the GET form also needs create since 1.35
    (
        "GET",
        "/api/v1/namespaces/prod/pods/web/exec",
        "command=sh&command=-c&command=id",
        {
            "verb": "get",
            "authorized_verbs": ["get", "create"],
            "resource": "pods",
            "subresource": "exec",
            "name": "web",
            "exec_command": ["sh", "-c", "id"],
        },
    ),
    (
        "POST",
        "/api/v1/namespaces/prod/pods/web/exec",
        "command=rm&command=-rf&command=%2F",
        {"verb": "create", "subresource": "exec", "exec_command": ["rm", "-rf", "/"]},
    ),
    ("POST", "/api/v1/namespaces/prod/pods/web/exec/extra", "command=sh", UNPARSEABLE),
    ("POST", "/api/v1/namespaces/prod/pods/web/%65xec", "", {"verb": "create", "subresource": "exec"}),
    ("GET", "/api/v1/namespaces/prod/pods/web/attach", "", {"authorized_verbs": ["get", "create"]}),
    ("GET", "/api/v1/proxy/namespaces/prod/pods/web", "", UNPARSEABLE),
    # delete versus deletecollection
    ("DELETE", "/api/v1/namespaces/prod/pods/web", "", {"verb": "delete", "resource": "pods", "name": "web"}),
    ("DELETE", "/api/v1/namespaces/prod/pods", "", {"verb": "deletecollection", "resource": "pods"}),
    ("DELETE", "/api/v1/namespaces/prod/pods/", "", {"verb": "deletecollection", "resource": "pods"}),
    # the namespace object itself versus objects in a namespace
    (
        "DELETE",
        "/api/v1/namespaces/prod",
        "",
        {"verb": "delete", "resource": "namespaces", "name": "prod", "namespace": "prod"},
    ),
    ("DELETE", "/api/v1/namespaces", "", {"verb": "deletecollection", "resource": "namespaces"}),
    (
        "PUT",
        "/api/v1/namespaces/prod/finalize",
        "",
        {"verb": "update", "resource": "namespaces", "name": "prod", "subresource": "finalize"},
    ),
    ("GET", "/api/v1/namespaces/prod/namespaces/kube-system", "", UNPARSEABLE),
    # methods the API server does not map to a verb
    ("OPTIONS", "/api/v1/namespaces/kube-system/secrets", "", UNPARSEABLE),
    ("TRACE", "/api/v1/namespaces/kube-system/secrets", "", UNPARSEABLE),
    # names with characters no object name has
    ("GET", "/api/v1/namespaces/prod/pods/web%20app", "", UNPARSEABLE),
    ("GET", "/api/v1/namespaces/prod/pods/%25", "", UNPARSEABLE),
]
