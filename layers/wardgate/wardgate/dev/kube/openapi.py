"""The cluster double's OpenAPI documents and the schema checks its REST handlers make with them.

Served as a v1.32 API server serves them:

- ``/openapi/v3``: the index, one entry per group version, each pointing at its document by a
  ``serverRelativeURL`` carrying the document's hash (clients cache hashed URLs forever);
- ``/openapi/v3/api/v1``, ``/openapi/v3/apis/<group>/<version>``: OpenAPI 3.0 documents with the
  paths of that group version and, in ``components.schemas``, every schema they reach, named as a
  real server names them (``io.k8s.api.core.v1.Pod``). kubectl 1.32 reads these for ``explain``,
  for client-side apply's strategic-merge patches (``x-kubernetes-patch-*`` on the schemas, and
  ``application/strategic-merge-patch+json`` among the PATCH operation's request types) and to
  decide on server-side field validation: when a kind's PATCH operation declares the
  ``fieldValidation`` query parameter, kubectl sends ``fieldValidation=Strict`` instead of
  validating the manifest itself (kubectl's ``QueryParamVerifierV3``);
- ``/openapi/v2``: the Swagger 2.0 document, as JSON or, for kubectl, which asks it as
  ``application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` only, as gnostic's protobuf
  (``schemas/swagger_protobuf.py``). kubectl 1.32 reads v2 where v3 cannot answer: it validates a
  ``kind: List`` manifest and kinds without a PATCH operation (SelfSubjectAccessReview) itself,
  from v2 (a 406 there fails ``kubectl apply -f`` of ``kubectl get -o yaml``'s output), and
  ``explain --output=plaintext-openapiv2`` prints from it.

Paths, operation ids and parameters follow https://kubernetes.io/docs/reference/kubernetes-api/
(each resource's "Operations" section). Every document is built once and kept serialised.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wardgate.dev.kube import catalog
from wardgate.dev.kube.catalog import Answer, Resource
from wardgate.dev.kube.discovery import accepts_json, media_ranges, subresource_group_version
from wardgate.dev.kube.schemas import DEFINITIONS, schema_name, swagger_protobuf
from wardgate.dev.kube.schemas.fields import META, REF_PREFIX

JSON = dict[str, Any]
JSON_TYPE = "application/json"
_V2_REF_PREFIX = "#/definitions/"
_TITLE = "Kubernetes"
_PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
_RESPONSE_TYPES = (JSON_TYPE, "application/yaml", "application/vnd.kubernetes.protobuf")
_WATCH_TYPES = ("application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch")
_OPERATION_GROUP = {"": "Core", "apps": "Apps", "authorization.k8s.io": "Authorization"}


# --- parameters ------------------------------------------------------------------------------


def _query(name: str, description: str, type_: str = "string") -> JSON:
    schema: JSON = {"type": type_}
    if type_ == "integer":
        schema["format"] = "int64"
    return {"name": name, "in": "query", "description": description, "schema": schema}


_PRETTY = _query("pretty", "If 'true', the output is pretty printed.")
_DRY_RUN = _query(
    "dryRun",
    "When present, modifications are not persisted. Valid value: All (process every stage, persist nothing).",
)
_FIELD_MANAGER = _query(
    "fieldManager",
    "The name of the actor or entity making the change: at most 128 printable characters "
    "(https://pkg.go.dev/unicode#IsPrint). Required for apply patches.",
)
_FIELD_VALIDATION = _query(
    "fieldValidation",
    "How the server handles fields in the request that the schema does not know (or duplicated): "
    "Ignore drops them silently; Warn drops them and answers a Warning header per field; Strict "
    "fails the request with a BadRequest naming every such field.",
)
_FORCE = _query("force", "Forces an apply request to take conflicting fields from other managers.", "boolean")
_SELECTION_PARAMETERS = (  # which objects a list, watch or deletecollection is about
    _query("continue", "The continue token of a previous, limited list: fetch the next page."),
    _query("fieldSelector", "Restrict the returned objects by their fields (metadata.name=web)."),
    _query("labelSelector", "Restrict the returned objects by their labels (app=web,tier!=db)."),
    _query("limit", "The most items to return; a continue token is set when more remain.", "integer"),
    _query("resourceVersion", "Which version of the data the list or watch starts from."),
    _query("resourceVersionMatch", "How resourceVersion applies to a list: Exact or NotOlderThan."),
    _query(
        "sendInitialEvents",
        "Whether a watch starts with synthetic ADDED events for the current state.",
        "boolean",
    ),
    _query("timeoutSeconds", "How long a list or watch call may last.", "integer"),
)
_LIST_PARAMETERS = (
    _query("allowWatchBookmarks", "Requests watch events of type BOOKMARK.", "boolean"),
    *_SELECTION_PARAMETERS,
    _query("watch", "Watch for changes to the described resources and return them as a stream.", "boolean"),
)
_DELETE_PARAMETERS = (
    _DRY_RUN,
    _query("gracePeriodSeconds", "Seconds before the object is deleted; 0 deletes immediately.", "integer"),
    _query(
        "propagationPolicy",
        "Whether and how dependents are garbage collected: Orphan, Background, Foreground.",
    ),
)
_LOG_PARAMETERS = (
    _query("container", "The container to stream logs of; defaults to the only container, if there is one."),
    _query("follow", "Follow the log stream of the pod.", "boolean"),
    _query("insecureSkipTLSVerifyBackend", "Skip verifying the kubelet's serving certificate.", "boolean"),
    _query("limitBytes", "Bytes to read from the server before terminating the log output.", "integer"),
    _query("previous", "Return the logs of the previous, terminated container.", "boolean"),
    _query("sinceSeconds", "Only logs newer than this many seconds.", "integer"),
    _query("tailLines", "Lines from the end of the logs to show.", "integer"),
    _query("timestamps", "Prefix every line with an RFC 3339 timestamp.", "boolean"),
)
_EXEC_PARAMETERS = (
    _query("command", "The command to execute, one argument per repeated parameter; not run in a shell."),
    _query("container", "The container in which to execute the command."),
    _query("stderr", "Redirect the standard error stream of the command.", "boolean"),
    _query("stdin", "Redirect the standard input stream of the command.", "boolean"),
    _query("stdout", "Redirect the standard output stream of the command.", "boolean"),
    _query("tty", "Allocate a terminal for the command.", "boolean"),
)
_ATTACH_PARAMETERS = (
    _query("container", "The container to attach to."),
    _query("stderr", "Stream the container's standard error.", "boolean"),
    _query("stdin", "Pass stdin to the container.", "boolean"),
    _query("stdout", "Stream the container's standard output.", "boolean"),
    _query("tty", "The container's stdin is a terminal.", "boolean"),
)
_PORTFORWARD_PARAMETERS = (
    _query("ports", "The pod ports to forward, one per repeated parameter.", "integer"),
)
_CONNECT_PARAMETERS = {
    "exec": _EXEC_PARAMETERS,
    "attach": _ATTACH_PARAMETERS,
    "portforward": _PORTFORWARD_PARAMETERS,
}


def _path_parameter(name: str, description: str) -> JSON:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


_NAMESPACE = _path_parameter("namespace", "object name and auth scope, such as for teams and projects")


# --- operations -------------------------------------------------------------------------------


def _schema_ref(name: str) -> JSON:
    return {"$ref": REF_PREFIX + name}


def _content(types: Sequence[str], schema: JSON) -> JSON:
    return {media_type: {"schema": schema} for media_type in types}


_CODE_TEXT = {"200": "OK", "201": "Created", "202": "Accepted"}


def _ok(schema: JSON, types: Sequence[str] = _RESPONSE_TYPES, *codes: str) -> JSON:
    responses: JSON = {
        code: {"description": _CODE_TEXT[code], "content": _content(types, schema)} for code in codes
    }
    responses["401"] = {"description": "Unauthorized"}
    return responses


@dataclass(frozen=True)
class _Target:
    """What an operation is on: its kind (for the GVK extension and the operation id) and schema."""

    group: str
    version: str
    kind: str  # the GVK's kind ("Scale" for deployments/scale)
    schema: str | None  # the request/response schema's name; None for text and connect answers


def _operation(
    action: str,
    operation_id: str,
    description: str,
    target: _Target,
    resource: Resource,
    *,
    parameters: Sequence[JSON] = (),
    request_types: Sequence[str] = (),
    request_schema: str = "",
    responses: JSON,
) -> JSON:
    operation: JSON = {
        "tags": [f"{_OPERATION_GROUP.get(resource.group, resource.group)}_{resource.version}".lower()],
        "description": description,
        "operationId": operation_id,
        "responses": responses,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": target.group,
            "kind": target.kind,
            "version": target.version,
        },
    }
    if parameters:
        operation["parameters"] = list(parameters)
    if request_types:
        operation["requestBody"] = {
            "content": _content(request_types, _schema_ref(request_schema)),
            "required": True,
        }
    return operation


def _title(resource: Resource, namespaced: bool, subresource: str = "") -> tuple[str, str]:
    """The operation id's tail (CoreV1NamespacedPodStatus) and its group-version prefix (CoreV1)."""
    prefix = _OPERATION_GROUP.get(resource.group, resource.group.title()) + resource.version.title()
    scope = "Namespaced" if namespaced else ""
    return f"{prefix}{scope}{resource.kind}{subresource.title()}", prefix


def _collection_operations(resource: Resource) -> JSON:
    name = schema_name(resource.group, resource.version, resource.kind)
    list_name = schema_name(resource.group, resource.version, resource.kind + "List")
    target = _Target(resource.group, resource.version, resource.kind, name)
    suffix, prefix = _title(resource, resource.namespaced)
    what = resource.kind
    operations: JSON = {}
    if "list" in resource.verbs and list_name:
        operations["get"] = _operation(
            "list",
            f"list{suffix}",
            f"list or watch objects of kind {what}",
            target,
            resource,
            parameters=_LIST_PARAMETERS,
            responses=_ok(_schema_ref(list_name), (*_RESPONSE_TYPES, *_WATCH_TYPES), "200"),
        )
    if "create" in resource.verbs and name:
        operations["post"] = _operation(
            "post",
            f"create{suffix}",
            f"create a {what}",
            target,
            resource,
            parameters=(_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION),
            request_types=("*/*",),
            request_schema=name,
            responses=_ok(_schema_ref(name), _RESPONSE_TYPES, "200", "201", "202"),
        )
    if "deletecollection" in resource.verbs:
        operations["delete"] = _operation(
            "deletecollection",
            f"delete{prefix}Collection{suffix[len(prefix) :]}",
            f"delete collection of {what}",
            target,
            resource,
            parameters=(*_DELETE_PARAMETERS, *_SELECTION_PARAMETERS),
            request_types=("*/*",),
            request_schema=META + "DeleteOptions",
            responses=_ok(_schema_ref(META + "Status"), _RESPONSE_TYPES, "200"),
        )
    return operations


def _item_operations(resource: Resource) -> JSON:
    name = schema_name(resource.group, resource.version, resource.kind)
    if name is None:
        return {}
    target = _Target(resource.group, resource.version, resource.kind, name)
    suffix, _ = _title(resource, resource.namespaced)
    what = resource.kind
    operations: JSON = {}
    if "get" in resource.verbs:
        operations["get"] = _operation(
            "get",
            f"read{suffix}",
            f"read the specified {what}",
            target,
            resource,
            responses=_ok(_schema_ref(name), _RESPONSE_TYPES, "200"),
        )
    if "update" in resource.verbs:
        operations["put"] = _operation(
            "put",
            f"replace{suffix}",
            f"replace the specified {what}",
            target,
            resource,
            parameters=(_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION),
            request_types=("*/*",),
            request_schema=name,
            responses=_ok(_schema_ref(name), _RESPONSE_TYPES, "200", "201"),
        )
    if "patch" in resource.verbs:
        operations["patch"] = _patch_operation(
            f"patch{suffix}", f"partially update the specified {what}", target, resource
        )
    if "delete" in resource.verbs:
        operations["delete"] = _operation(
            "delete",
            f"delete{suffix}",
            f"delete a {what}",
            target,
            resource,
            parameters=_DELETE_PARAMETERS,
            request_types=("*/*",),
            request_schema=META + "DeleteOptions",
            responses=_ok(_schema_ref(name), _RESPONSE_TYPES, "200", "202"),
        )
    return operations


def _patch_operation(operation_id: str, description: str, target: _Target, resource: Resource) -> JSON:
    assert target.schema is not None
    return _operation(
        "patch",
        operation_id,
        description,
        target,
        resource,
        parameters=(_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION, _FORCE),
        request_types=_PATCH_TYPES,
        request_schema=META + "Patch",
        responses=_ok(_schema_ref(target.schema), _RESPONSE_TYPES, "200", "201"),
    )


def _subresource_operations(resource: Resource, subresource: str, kind: str, verbs: tuple[str, ...]) -> JSON:
    suffix, prefix = _title(resource, resource.namespaced, subresource)
    text = _ok({"type": "string"}, ("*/*",), "200")
    if subresource == "log":
        target = _Target(resource.group, resource.version, resource.kind, None)
        return {
            "get": _operation(
                "get",
                f"read{suffix}",
                f"read log of the specified {resource.kind}",
                target,
                resource,
                parameters=_LOG_PARAMETERS,
                responses=_ok(
                    {"type": "string"},
                    ("text/plain", JSON_TYPE, "application/yaml", "application/vnd.kubernetes.protobuf"),
                    "200",
                ),
            )
        }
    if subresource in _CONNECT_PARAMETERS:
        target = _Target(resource.group, resource.version, kind, None)
        operations: JSON = {}
        for method in ("get", "post"):
            if ("get" if method == "get" else "create") not in verbs:
                continue
            operations[method] = _operation(
                "connect",
                f"connect{prefix}{method.title()}{suffix[len(prefix) :]}",
                f"connect {method.upper()} requests to {subresource} of {resource.kind}",
                target,
                resource,
                parameters=_CONNECT_PARAMETERS[subresource],
                responses=text,
            )
        return operations
    group, version = subresource_group_version(resource, kind)  # scale: autoscaling/v1 Scale
    schema = schema_name(group, version, kind)
    if schema is None:
        return {}
    target = _Target(group, version, kind, schema)
    operations = {}
    if "get" in verbs:
        operations["get"] = _operation(
            "get",
            f"read{suffix}",
            f"read {subresource} of the specified {resource.kind}",
            target,
            resource,
            responses=_ok(_schema_ref(schema), _RESPONSE_TYPES, "200"),
        )
    if "update" in verbs:
        operations["put"] = _operation(
            "put",
            f"replace{suffix}",
            f"replace {subresource} of the specified {resource.kind}",
            target,
            resource,
            parameters=(_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION),
            request_types=("*/*",),
            request_schema=schema,
            responses=_ok(_schema_ref(schema), _RESPONSE_TYPES, "200", "201"),
        )
    if "patch" in verbs:
        operations["patch"] = _patch_operation(
            f"patch{suffix}",
            f"partially update {subresource} of the specified {resource.kind}",
            target,
            resource,
        )
    return operations


def _paths(group: str, version: str) -> JSON:
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths: JSON = {}

    def add(path: str, operations: JSON, parameters: Sequence[JSON]) -> None:
        if operations:
            paths[path] = {**operations, "parameters": [*parameters, _PRETTY]}

    for resource in catalog.RESOURCES:
        if (resource.group, resource.version) != (group, version):
            continue
        scope = f"{base}/namespaces/{{namespace}}" if resource.namespaced else base
        scope_parameters = [_NAMESPACE] if resource.namespaced else []
        collection = f"{scope}/{resource.plural}"
        item = collection + "/{name}"
        item_parameters = [_path_parameter("name", f"name of the {resource.kind}"), *scope_parameters]
        add(collection, _collection_operations(resource), scope_parameters)
        add(item, _item_operations(resource), item_parameters)
        for subresource, (kind, verbs) in resource.subresources.items():
            add(
                f"{item}/{subresource}",
                _subresource_operations(resource, subresource, kind, verbs),
                item_parameters,
            )
        if resource.namespaced and "list" in resource.verbs:  # across namespaces: list and watch only
            list_name = schema_name(resource.group, resource.version, resource.kind + "List")
            if list_name:
                suffix, _ = _title(resource, False)
                target = _Target(resource.group, resource.version, resource.kind, list_name)
                add(
                    f"{base}/{resource.plural}",
                    {
                        "get": _operation(
                            "list",
                            f"list{suffix}ForAllNamespaces",
                            f"list or watch objects of kind {resource.kind}",
                            target,
                            resource,
                            parameters=_LIST_PARAMETERS,
                            responses=_ok(_schema_ref(list_name), (*_RESPONSE_TYPES, *_WATCH_TYPES), "200"),
                        )
                    },
                    [],
                )
    return paths


# --- documents -------------------------------------------------------------------------------


def _group_versions() -> list[tuple[str, str]]:
    return list(dict.fromkeys((r.group, r.version) for r in catalog.RESOURCES))


def _document_path(group: str, version: str) -> str:
    """The key of a group version in the v3 index: ``api/v1``, ``apis/apps/v1``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _referenced(document: Any) -> set[str]:
    """The schema names a document fragment references directly."""
    found: set[str] = set()
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            target = node.get("$ref")
            if isinstance(target, str) and target.startswith(REF_PREFIX):
                found.add(target[len(REF_PREFIX) :])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _closure(names: set[str]) -> dict[str, JSON]:
    """The named schemas and every schema they reach, sorted by name as a real server lists them."""
    seen: set[str] = set()
    pending = sorted(names)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(_referenced(DEFINITIONS[name]) - seen)
    return {name: DEFINITIONS[name] for name in sorted(seen)}


def _info() -> JSON:
    return {"title": _TITLE, "version": catalog.SERVER_VERSION["gitVersion"]}


_SECURITY_SCHEMES = {
    "BearerToken": {
        "type": "apiKey",
        "description": "Bearer Token authentication",
        "name": "authorization",
        "in": "header",
    }
}


def v3_document(group: str, version: str) -> JSON | None:
    """The OpenAPI 3.0 document of one group version (what ``/openapi/v3/<path>`` serves)."""
    if (group, version) not in _group_versions():
        return None
    paths = _paths(group, version)
    return {
        "openapi": "3.0.0",
        "info": _info(),
        "paths": paths,
        "components": {"schemas": _closure(_referenced(paths)), "securitySchemes": _SECURITY_SCHEMES},
        "security": [{"BearerToken": []}],
    }


def _to_v2(node: Any) -> Any:
    """A v3 schema or operation fragment rewritten to Swagger 2.0 (refs under #/definitions/)."""
    if isinstance(node, list):
        return [_to_v2(item) for item in node]
    if not isinstance(node, dict):
        return node
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and set(all_of[0]) == {"$ref"}:
        # v2 allows siblings next to $ref (the v3 allOf wrapper only exists to keep them).
        rest = {k: _to_v2(v) for k, v in node.items() if k not in ("allOf", "default")}
        return {"$ref": _v2_ref(all_of[0]["$ref"]), **rest}
    one_of = node.get("oneOf")
    if isinstance(one_of, list) and all(set(choice) == {"type"} for choice in one_of):
        # Quantity and IntOrString: Swagger 2.0 has no oneOf; real v2 documents call them strings.
        return {**{k: _to_v2(v) for k, v in node.items() if k != "oneOf"}, "type": "string"}
    converted = {k: _to_v2(v) for k, v in node.items()}
    if isinstance(converted.get("$ref"), str):
        converted["$ref"] = _v2_ref(converted["$ref"])
    return converted


def _v2_ref(target: str) -> str:
    return _V2_REF_PREFIX + target[len(REF_PREFIX) :] if target.startswith(REF_PREFIX) else target


def _v2_parameter(parameter: JSON) -> JSON:
    converted = {k: v for k, v in parameter.items() if k != "schema"}
    converted.update(parameter.get("schema", {"type": "string"}))
    if parameter["in"] == "query" and converted.get("type") == "string":
        converted["uniqueItems"] = True
    return converted


def _v2_operation(operation: JSON) -> JSON:
    converted: JSON = {
        k: _to_v2(v) for k, v in operation.items() if k not in ("parameters", "requestBody", "responses")
    }
    parameters = [_v2_parameter(p) for p in operation.get("parameters", ())]
    body = operation.get("requestBody")
    if body:
        content = body["content"]
        converted["consumes"] = list(content)
        schema = next(iter(content.values()))["schema"]
        parameters.insert(0, {"name": "body", "in": "body", "required": True, "schema": _to_v2(schema)})
    else:
        converted["consumes"] = ["*/*"]
    produces: list[str] = []
    responses: JSON = {}
    for code, response in operation["responses"].items():
        entry: JSON = {"description": response["description"]}
        for media_type, media in response.get("content", {}).items():
            produces.append(media_type)
            entry["schema"] = _to_v2(media["schema"])
        responses[code] = entry
    converted["produces"] = list(dict.fromkeys(produces))
    converted["schemes"] = ["https"]
    converted["responses"] = responses
    if parameters:
        converted["parameters"] = parameters
    return converted


def v2_document() -> JSON:
    """The Swagger 2.0 document of every group version (what ``/openapi/v2`` serves as JSON)."""
    paths: JSON = {}
    names: set[str] = set()
    for group, version in _group_versions():
        v3_paths = _paths(group, version)
        names |= _referenced(v3_paths)
        for path, item in v3_paths.items():
            paths[path] = {
                method: [_v2_parameter(p) for p in value] if method == "parameters" else _v2_operation(value)
                for method, value in item.items()
            }
    return {
        "swagger": "2.0",
        "info": _info(),
        "paths": paths,
        "definitions": {name: _to_v2(schema) for name, schema in _closure(names).items()},
        "securityDefinitions": _SECURITY_SCHEMES,
        "security": [{"BearerToken": []}],
    }


def _serialise(document: JSON) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _hash(body: bytes) -> str:
    return hashlib.sha512(body).hexdigest().upper()  # as a real server computes the index's hashes


@functools.cache
def _v3_bodies() -> dict[str, bytes]:
    bodies: dict[str, bytes] = {}
    for group, version in _group_versions():
        document = v3_document(group, version)
        if document is not None:
            bodies[_document_path(group, version)] = _serialise(document)
    return bodies


def v3_index() -> JSON:
    return {
        "paths": {
            path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={_hash(body)}"}
            for path, body in _v3_bodies().items()
        }
    }


@functools.cache
def _v3_index_body() -> bytes:
    return _serialise(v3_index())


@functools.cache
def _v2_body() -> bytes:
    return _serialise(v2_document())


@functools.cache
def _v2_protobuf_body() -> bytes:
    return swagger_protobuf.document(v2_document())


# --- answers ---------------------------------------------------------------------------------

# Hashed URLs never change content, so clients may keep them as long as they like.
_IMMUTABLE = (("Cache-Control", "public, immutable"), ("Expires", "Thu, 31 Dec 2099 23:59:59 GMT"))
_REVALIDATE = (("Cache-Control", "no-cache, private"),)


def _not_acceptable(what: str) -> Answer:
    message = f"the cluster double serves {what} as application/json only\n"
    return Answer(406, "text/plain; charset=utf-8", message.encode())


def _query_value(query: str, key: str) -> str | None:
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name == key:
            return value
    return None


def answer(path: str, query: str, accept: str) -> Answer | None:
    """The answer to a GET of ``path`` under ``/openapi/``, or None when it is not an OpenAPI path.

    ``accept`` is the request's Accept header ("" when absent); ``query`` the raw query string.
    """
    path = path.rstrip("/")
    if path == "/openapi/v2":
        if accepts_json(accept):
            content_type, v2_body = JSON_TYPE, _v2_body()
        elif any(media_type in swagger_protobuf.MEDIA_TYPES for media_type, _ in media_ranges(accept)):
            content_type, v2_body = swagger_protobuf.MEDIA_TYPE, _v2_protobuf_body()  # what kubectl asks
        else:
            return _not_acceptable("the OpenAPI v2 document")
        headers = (("ETag", f'"{_hash(v2_body)}"'), ("Vary", "Accept"), *_REVALIDATE)
        return Answer(200, content_type, v2_body, headers)
    if path == "/openapi/v3":
        if not accepts_json(accept):
            return _not_acceptable("the OpenAPI v3 index")
        return Answer(200, JSON_TYPE, _v3_index_body(), _REVALIDATE)
    if not path.startswith("/openapi/v3/"):
        return None
    document_path = path[len("/openapi/v3/") :]
    body = _v3_bodies().get(document_path)
    if body is None:
        return Answer(404, "text/plain; charset=utf-8", b"404 page not found\n")
    if not accepts_json(accept):
        return _not_acceptable("OpenAPI v3 documents")
    current = _hash(body)
    asked = _query_value(query, "hash")
    etag = (("ETag", f'"{current}"'), ("Vary", "Accept"))
    if asked is None:
        return Answer(200, JSON_TYPE, body, (*etag, *_REVALIDATE))
    if asked != current:
        # A stale hash (the client's index is older than the document): send it to the current URL.
        return Answer(301, "text/plain; charset=utf-8", b"", (("Location", f"{path}?hash={current}"),))
    return Answer(200, JSON_TYPE, body, (*etag, *_IMMUTABLE))


# --- schema checks for the REST handlers -----------------------------------------------------


def _resolve(schema: JSON) -> JSON:
    """A field's schema with its ``allOf``/``$ref`` indirection followed to the named type."""
    while True:
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1:
            schema = all_of[0]
            continue
        target = schema.get("$ref")
        if isinstance(target, str) and target.startswith(REF_PREFIX):
            schema = DEFINITIONS[target[len(REF_PREFIX) :]]
            continue
        return schema


def _kind_schema(resource: Resource) -> JSON | None:
    name = schema_name(resource.group, resource.version, resource.kind)
    return None if name is None else DEFINITIONS[name]


def _object_schema(obj: JSON) -> JSON | None:
    """The schema of the kind an object names itself, if known: a subresource's body is another
    kind than its resource's (``deployments/scale`` takes an autoscaling/v1 Scale)."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None
    group, _, version = api_version.rpartition("/")
    name = schema_name(group, version, kind)
    return None if name is None else DEFINITIONS[name]


def _walk_unknown(schema: JSON, value: Any, path: str, found: list[str]) -> None:
    schema = _resolve(schema)
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return  # kept as given: nothing inside is unknown
    if isinstance(value, dict):
        properties = schema.get("properties")
        if isinstance(properties, dict):
            for key, item in value.items():
                if key in properties:
                    _walk_unknown(properties[key], item, f"{path}.{key}", found)
                else:
                    found.append(f"{path}.{key}")
            return
        values = schema.get("additionalProperties")
        if isinstance(values, dict):
            for key, item in value.items():
                _walk_unknown(values, item, f"{path}.{key}", found)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                _walk_unknown(items, item, f"{path}[{index}]", found)


def unknown_fields(resource: Resource, obj: JSON) -> list[str]:
    """The fields of ``obj`` the resource's schema does not declare, as ``.spec.foo`` paths.

    What a strict server rejects (``fieldValidation=Strict``: 400 ``strict decoding error: unknown
    field "spec.foo"``) or warns about (``Warn``). Follows refs, list items (``.spec.containers[0].foo``)
    and map values (``additionalProperties``); fields marked ``x-kubernetes-preserve-unknown-fields``
    (free-form objects the double does not model) hold anything. Type mismatches are not reported
    here. Paths come in the object's own order. An object that names its kind (apiVersion and kind)
    is checked against that kind's schema when the double has it (a Scale sent to
    ``deployments/scale``), else against the resource's.
    """
    schema = _object_schema(obj) or _kind_schema(resource)
    if schema is None:
        return []
    found: list[str] = []
    _walk_unknown(schema, obj, "", found)
    return found


@dataclass(frozen=True)
class PatchMeta:
    """How strategic merge and server-side apply merge one list or object field.

    ``strategy`` is the ``x-kubernetes-patch-strategy`` ("merge", "retainKeys", "merge,retainKeys",
    or "" for replace); ``merge_key`` the ``x-kubernetes-patch-merge-key`` of a list of objects;
    ``list_type`` and ``map_keys`` are the server-side-apply list markers ("map" lists are merged
    by ``map_keys``, "set" lists by value, "atomic" lists replaced whole).
    """

    strategy: str
    merge_key: str
    list_type: str
    map_keys: tuple[str, ...]


def _field_schema(resource: Resource, field_path: Sequence[str]) -> JSON | None:
    schema = _kind_schema(resource)
    if schema is None:
        return None
    field: JSON = schema
    for step in field_path:
        resolved = _resolve(field)
        if resolved.get("type") == "array" and isinstance(resolved.get("items"), dict):
            resolved = _resolve(resolved["items"])  # a list's fields are its items'
        properties = resolved.get("properties")
        if isinstance(properties, dict) and step in properties:
            field = properties[step]
            continue
        values = resolved.get("additionalProperties")
        if isinstance(values, dict):
            field = values
            continue
        return None
    return field


def patch_meta(resource: Resource, field_path: Sequence[str]) -> PatchMeta | None:
    """The merge metadata of the field at ``field_path`` in the resource's kind, or None if unknown.

    ``field_path`` names fields only; lists are stepped through to their items, so the ports of a
    deployment's containers are ``("spec", "template", "spec", "containers", "ports")``, which gives
    ``PatchMeta("merge", "containerPort", "map", ("containerPort", "protocol"))``.
    """
    field = _field_schema(resource, field_path)
    if field is None:
        return None
    # The markers sit on the field itself (next to allOf for struct fields, as deployment.spec.strategy).
    return PatchMeta(
        strategy=str(field.get("x-kubernetes-patch-strategy", "")),
        merge_key=str(field.get("x-kubernetes-patch-merge-key", "")),
        list_type=str(field.get("x-kubernetes-list-type", "")),
        map_keys=tuple(field.get("x-kubernetes-list-map-keys", ())),
    )
