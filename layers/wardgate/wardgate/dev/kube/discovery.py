"""The cluster double's discovery documents: what kubectl and client-go read before anything else.

Two forms, both built from ``catalog.py``:

- legacy discovery (meta/v1): ``APIVersions`` at ``/api``, ``APIGroupList`` at ``/apis``,
  ``APIGroup`` at ``/apis/<group>``, ``APIResourceList`` at ``/api/v1`` and ``/apis/<group>/<version>``
  (https://kubernetes.io/docs/reference/using-api/api-concepts/#discovery-api);
- aggregated discovery (``apidiscovery.k8s.io/v2``, GA in 1.30): the whole ``/api`` or ``/apis`` in
  one ``APIGroupDiscoveryList``, served when the client's ``Accept`` names it. kubectl 1.32 asks
  ``application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,...;v=v2beta1;...,application/json``
  and decides which form it got from the response's ``Content-Type`` alone, so that header must
  name the group, version and kind exactly
  (https://kubernetes.io/docs/concepts/overview/kubernetes-api/#aggregated-discovery).

Plus ``/version`` and the health endpoints (``/healthz``, ``/livez``, ``/readyz``). The documents
are static: each is serialised once.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from typing import Any

from wardgate.dev.kube import catalog
from wardgate.dev.kube.catalog import Answer, Resource

JSON = dict[str, Any]
JSON_TYPE = "application/json"
DISCOVERY_GROUP = "apidiscovery.k8s.io"
AGGREGATED_KIND = "APIGroupDiscoveryList"
AGGREGATED_VERSIONS = ("v2", "v2beta1")  # the same document under both; v2beta1 for older clients

# Subresources whose responseKind lives in another group than the resource's (meta/v1 APIResource
# names it in its group/version fields): a scale subresource answers autoscaling/v1 Scale.
_SUBRESOURCE_KIND_GROUP_VERSION = {"Scale": ("autoscaling", "v1")}


def _serialise(document: JSON) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _resources_of(group: str, version: str) -> list[Resource]:
    return [r for r in catalog.RESOURCES if (r.group, r.version) == (group, version)]


def _versions_of(group: str) -> list[str]:
    return list(dict.fromkeys(r.version for r in catalog.RESOURCES if r.group == group))


def subresource_group_version(resource: Resource, kind: str) -> tuple[str, str]:
    """The group and version of the kind a subresource answers (deployments/scale: autoscaling/v1)."""
    return _SUBRESOURCE_KIND_GROUP_VERSION.get(kind, (resource.group, resource.version))


# --- legacy discovery (meta/v1) ---------------------------------------------------------------


def _api_resource(resource: Resource) -> JSON:
    entry: JSON = {
        "name": resource.plural,
        "singularName": resource.singular,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": list(resource.verbs),
    }
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    if resource.categories:
        entry["categories"] = list(resource.categories)
    # storageVersionHash lets clients notice a storage change; any stable opaque value will do.
    digest = hashlib.sha256(f"{resource.group}/{resource.version}/{resource.kind}".encode()).digest()
    entry["storageVersionHash"] = base64.b64encode(digest[:8]).decode()
    return entry


def _api_subresource(resource: Resource, name: str, kind: str, verbs: tuple[str, ...]) -> JSON:
    # Subresources carry an empty singularName; group and version only when they differ from the
    # list's group version (deployments/scale -> autoscaling/v1 Scale), as a real server lists them.
    entry: JSON = {
        "name": f"{resource.plural}/{name}",
        "singularName": "",
        "namespaced": resource.namespaced,
    }
    group, version = subresource_group_version(resource, kind)
    if (group, version) != (resource.group, resource.version):
        entry["group"], entry["version"] = group, version
    entry["kind"] = kind
    entry["verbs"] = list(verbs)
    return entry


def api_resource_list(group: str, version: str) -> JSON | None:
    resources = _resources_of(group, version)
    if not resources:
        return None
    entries: list[JSON] = []
    for resource in resources:
        entries.append(_api_resource(resource))
        for name, (kind, verbs) in resource.subresources.items():
            entries.append(_api_subresource(resource, name, kind, verbs))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }


def _group_version(group: str, version: str) -> JSON:
    return {"groupVersion": f"{group}/{version}", "version": version}


def api_group(group: str) -> JSON | None:
    versions = _versions_of(group)
    if not group or not versions:
        return None
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [_group_version(group, v) for v in versions],
        "preferredVersion": _group_version(group, versions[0]),
    }


def api_group_list() -> JSON:
    groups = [api_group(g) for g in catalog.GROUPS]
    # Inside a list each APIGroup carries no kind/apiVersion of its own (meta/v1 APIGroupList).
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [{k: v for k, v in g.items() if k not in ("kind", "apiVersion")} for g in groups if g],
    }


def api_versions() -> JSON:
    # serverAddressByClientCIDRs is required by the type (the Python client refuses a document
    # without it); clients use the address they dialled, so an empty address over 0.0.0.0/0 is honest.
    return {
        "kind": "APIVersions",
        "versions": _versions_of(""),
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    }


# --- aggregated discovery (apidiscovery.k8s.io/v2) --------------------------------------------


def _response_kind(group: str, version: str, kind: str) -> JSON:
    return {"group": group, "version": version, "kind": kind}


def _resource_discovery(resource: Resource) -> JSON:
    """One APIResourceDiscovery (apidiscovery/v2 types.go): scope is "Namespaced" or "Cluster"."""
    entry: JSON = {
        "resource": resource.plural,
        "responseKind": _response_kind(resource.group, resource.version, resource.kind),
        "scope": "Namespaced" if resource.namespaced else "Cluster",
        "singularResource": resource.singular,
        "verbs": list(resource.verbs),
    }
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    if resource.categories:
        entry["categories"] = list(resource.categories)
    if resource.subresources:
        entry["subresources"] = [
            {
                "subresource": name,
                "responseKind": _response_kind(*subresource_group_version(resource, kind), kind),
                "verbs": list(verbs),
            }
            for name, (kind, verbs) in resource.subresources.items()
        ]
    return entry


def _group_discovery(group: str) -> JSON:
    # metadata holds only the name ("" for the legacy core group, so left out as a real server does).
    metadata: JSON = {"name": group, "creationTimestamp": None} if group else {"creationTimestamp": None}
    return {
        "metadata": metadata,
        "versions": [
            {
                "version": version,
                "resources": [_resource_discovery(r) for r in _resources_of(group, version)],
                "freshness": "Current",  # "Stale" is for aggregated API servers that did not answer
            }
            for version in _versions_of(group)
        ],
    }


def aggregated(legacy_core: bool, version: str = "v2") -> JSON:
    """The APIGroupDiscoveryList of ``/api`` (legacy_core) or of ``/apis`` (every named group)."""
    items = [_group_discovery("")] if legacy_core else [_group_discovery(g) for g in catalog.GROUPS]
    return {
        "kind": AGGREGATED_KIND,
        "apiVersion": f"{DISCOVERY_GROUP}/{version}",
        "metadata": {},
        "items": items,
    }


def aggregated_content_type(version: str) -> str:
    return f"{JSON_TYPE};g={DISCOVERY_GROUP};v={version};as={AGGREGATED_KIND}"


# --- content negotiation ---------------------------------------------------------------------


def media_ranges(accept: str) -> list[tuple[str, dict[str, str]]]:
    """An Accept header's media ranges in order, each as (type, parameters); q=0 ranges dropped."""
    ranges: list[tuple[str, dict[str, str]]] = []
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params: dict[str, str] = {}
        for piece in pieces[1:]:
            key, _, value = piece.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        if params.get("q", "1") in ("0", "0.0", "0.00", "0.000"):
            continue
        ranges.append((pieces[0].lower(), params))
    return ranges


def accepts_json(accept: str) -> bool:
    """Whether plain JSON (or any type) is acceptable: an empty Accept accepts everything."""
    ranges = media_ranges(accept)
    if not ranges:
        return True
    return any(t in (JSON_TYPE, "application/*", "*/*") and "as" not in p for t, p in ranges)


def _aggregated_version_asked(accept: str) -> str | None:
    """The apidiscovery version to serve, the first the client lists that we have, else None."""
    for media_type, params in media_ranges(accept):
        if (
            media_type == JSON_TYPE
            and params.get("g") == DISCOVERY_GROUP
            and params.get("as") == AGGREGATED_KIND
            and params.get("v") in AGGREGATED_VERSIONS
        ):
            return params["v"]
        if media_type == JSON_TYPE and "as" not in params:
            return None  # plain JSON listed first: the client prefers the legacy document
    return None


def _json_answer(document: JSON, *, content_type: str = JSON_TYPE, etag: bool = False) -> Answer:
    return _bytes_answer(_serialise(document), content_type=content_type, etag=etag)


def _bytes_answer(body: bytes, *, content_type: str, etag: bool) -> Answer:
    headers: tuple[tuple[str, str], ...] = (("Vary", "Accept"),)
    if etag:  # client-go's disk cache revalidates aggregated discovery with If-None-Match
        headers += (("ETag", f'"{hashlib.sha256(body).hexdigest()}"'),)
    return Answer(200, content_type, body, headers)


def not_acceptable(accept: str) -> Answer:
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"only the following media types are accepted: {JSON_TYPE}, "
        f"{aggregated_content_type('v2')}; not {accept!r}",
        "reason": "NotAcceptable",
        "code": 406,
    }
    return Answer(406, JSON_TYPE, _serialise(status))


@functools.cache
def _aggregated_body(legacy_core: bool, version: str) -> bytes:
    return _serialise(aggregated(legacy_core, version))


@functools.lru_cache(maxsize=64)  # any path may be asked: bounded
def _legacy_body(path: str) -> bytes | None:
    parts = path.strip("/").split("/")
    document: JSON | None
    if parts == ["api"]:
        document = api_versions()
    elif parts == ["apis"]:
        document = api_group_list()
    elif len(parts) == 2 and parts[0] == "api":
        document = api_resource_list("", parts[1])
    elif len(parts) == 2 and parts[0] == "apis":
        document = api_group(parts[1])
    elif len(parts) == 3 and parts[0] == "apis":
        document = api_resource_list(parts[1], parts[2])
    else:
        return None
    return None if document is None else _serialise(document)


_HEALTH = ("healthz", "livez", "readyz")


def _health(path: str, query: str) -> Answer | None:
    parts = path.strip("/").split("/")
    if parts[0] not in _HEALTH or len(parts) > 2:
        return None
    if len(parts) == 2:  # a single check: /livez/ping
        if parts[1] != "ping":
            return None
        return Answer(200, "text/plain; charset=utf-8", b"ok")
    if "verbose" in query.split("&") or any(q.startswith("verbose=") for q in query.split("&")):
        body = f"[+]ping ok\n{parts[0]} check passed\n".encode()
        return Answer(200, "text/plain; charset=utf-8", body)
    return Answer(200, "text/plain; charset=utf-8", b"ok")


def answer(path: str, query: str, accept: str) -> Answer | None:
    """The discovery answer for a GET of ``path``, or None when ``path`` is not a discovery path.

    ``accept`` is the request's Accept header ("" when absent). Paths under a group version
    (``/api/v1/pods``) are the REST handlers', so None.
    """
    path = path.rstrip("/") or "/"
    health = _health(path, query)
    if health is not None:
        return health
    if path == "/version":
        return _json_answer(catalog.SERVER_VERSION)
    if path in ("/api", "/apis"):
        version = _aggregated_version_asked(accept)
        if version is not None:
            body = _aggregated_body(path == "/api", version)
            return _bytes_answer(body, content_type=aggregated_content_type(version), etag=True)
    legacy = _legacy_body(path) if path.startswith(("/api/", "/apis/")) or path in ("/api", "/apis") else None
    if legacy is None:
        return None
    if not accepts_json(accept):
        return not_acceptable(accept)  # protobuf-only: the double speaks JSON alone
    return _bytes_answer(legacy, content_type=JSON_TYPE, etag=False)
