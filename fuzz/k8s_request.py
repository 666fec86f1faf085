"""Fuzz the Kubernetes API path parser, ``wardgate.operations.k8s.parse_k8s_request``.

Input: ``METHOD path[?query]`` (a request line without the version), the path as the agent sent
it after ``/k8s/{connection}``, still percent-encoded.

A crash is any exception but ``UnparseableOperation`` (which the gateway turns into a refusal),
or an operation that policy could misread: a resource request whose verb is not an RBAC verb,
whose ``authorized_verbs`` leave out its own verb, or whose resource is not a lower-case name;
a non-resource request whose verb is not its method; a path that is not what the HTTP proxy's
``normalise_path`` made of the input.
"""

from __future__ import annotations

import atheris
from _harness import Finding, fuzz, text

with atheris.instrument_imports(include=["wardgate"]):
    from wardgate.operations import UnparseableOperation
    from wardgate.operations.k8s import _RESOURCE_RE, K8S_VERBS, parse_k8s_request
    from wardgate.proxies.http import normalise_path


def test_one_input(data: bytes) -> None:
    line = text(data)
    method, space, target = line.partition(" ")
    if not space:
        method, target = "GET", line
    raw_path, _, raw_query = target.partition("?")
    try:
        operation = parse_k8s_request(method, raw_path, raw_query)
    except UnparseableOperation as refused:
        if not refused.reason:
            raise Finding("UnparseableOperation without a reason") from None
        return
    expected_path = normalise_path(raw_path)
    if expected_path != "/" and expected_path.endswith("/"):
        expected_path = expected_path[:-1]
    if operation.path != expected_path:
        raise Finding(f"path {operation.path!r} is not the normalised {expected_path!r}")
    if operation.method != method:
        raise Finding(f"method {method!r} became {operation.method!r}")
    if operation.verb not in operation.authorized_verbs:
        raise Finding(f"verb {operation.verb!r} missing from authorized_verbs {operation.authorized_verbs}")
    if operation.is_resource_request:
        if operation.verb not in K8S_VERBS or not set(operation.authorized_verbs) <= set(K8S_VERBS):
            raise Finding(f"not an RBAC verb: {operation.verb!r} {operation.authorized_verbs}")
        if operation.resource is None or not _RESOURCE_RE.fullmatch(operation.resource):
            raise Finding(f"resource {operation.resource!r} is not a Kubernetes resource name")
    elif operation.verb != method.lower() or operation.resource is not None:
        raise Finding(f"non-resource request with verb {operation.verb!r} / resource {operation.resource!r}")
    operation.to_record()


if __name__ == "__main__":
    fuzz("k8s_request", test_one_input)
