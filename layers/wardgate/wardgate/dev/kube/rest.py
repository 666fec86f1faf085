"""The double's REST handlers: get, list, watch, create, update, patch, delete and subresources.

Requests follow the API server's URL layout
(https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris):
``/api/v1/[namespaces/<ns>/]<plural>[/<name>[/<subresource>]]`` for the core group and
``/apis/<group>/<version>/...`` for the others. Each handler returns a whole ``Answer``, or a
``Stream`` for watches and followed logs, which the server writes chunk by chunk.
"""

from __future__ import annotations

import base64
import copy
import datetime
import json
import logging
import queue
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import orjson
import yaml

from wardgate.dev.kube import patches, protobuf, tables
from wardgate.dev.kube.catalog import Answer, Resource, resource
from wardgate.dev.kube.controllers import PODS, Cluster, selector_string
from wardgate.dev.kube.selectors import object_filter
from wardgate.dev.kube.status import error_answer, internal_error, json_answer, status_answer, status_object
from wardgate.dev.kube.store import JSON, Change, Store, StoreError

LOG = logging.getLogger(__name__)
MAX_BODY = 3 * 1024 * 1024  # the API server's request body limit (3 MiB)
BOOKMARK_INTERVAL_S = 5.0  # an idle watch that asked for bookmarks gets one this often
IDLE_CHECK_S = 1.0  # an idle stream checks this often that its client is still there
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")  # DNS-1123 subdomain
_LABEL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # DNS-1123 label (namespaces, services)
_PROTOBUF = "application/vnd.kubernetes.protobuf"
_UNSUPPORTED_MEDIA = 415


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes

    def param(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def flag(self, name: str) -> bool:
        return self.param(name).lower() in ("true", "1")


@dataclass
class Stream:
    """A streamed answer (watch events, a followed log), written with chunked encoding."""

    content_type: str
    chunks: Iterator[bytes]
    headers: tuple[tuple[str, str], ...] = ()
    on_close: list[Callable[[], None]] = field(default_factory=list)


@dataclass(frozen=True)
class Route:
    resource: Resource
    namespace: str | None  # None: all namespaces (or a cluster-scoped resource)
    name: str | None
    subresource: str | None


@dataclass(frozen=True)
class Output:
    """What the client accepts: plain JSON, YAML, a Table or PartialObjectMetadata."""

    form: str  # "json", "yaml", "table", "metadata"
    table_version: str = "v1"


def parse_route(path: str) -> Route | None:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace: str | None = None
    # namespaces/<ns>/<plural>/...: a namespaced resource; namespaces/<name>/status: the namespace's own
    if rest[0] == "namespaces" and len(rest) >= 3 and not (group == "" and rest[2] in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    found = resource(group, version, rest[0])
    if found is None or len(rest) > 3:
        return None
    if namespace is not None and not found.namespaced:
        return None
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    if subresource is not None and subresource not in found.subresources:
        return None
    return Route(found, namespace, name, subresource)


def negotiate(accept: str) -> Output | None:
    """The first acceptable media range, in the client's order (None: only protobuf or nothing we serve)."""
    if not accept.strip():
        return Output("json")
    for entry in accept.split(","):
        media, *params = [p.strip() for p in entry.split(";")]
        options = dict(p.split("=", 1) for p in params if "=" in p)
        media = media.lower()
        if media in ("application/json", "*/*", "application/*"):
            as_kind = options.get("as")
            if as_kind is None:
                return Output("json")
            if (
                as_kind == "Table"
                and options.get("g") == "meta.k8s.io"
                and options.get("v") in ("v1", "v1beta1")
            ):
                return Output("table", options["v"])
            if (
                as_kind in ("PartialObjectMetadata", "PartialObjectMetadataList")
                and options.get("g") == "meta.k8s.io"
            ):
                return Output("metadata", options.get("v", "v1"))
        elif media == "application/yaml":
            return Output("yaml")
    return None


class Api:
    """The request handlers over one store and its controllers."""

    def __init__(self, store: Store, cluster: Cluster) -> None:
        self.store = store
        self.cluster = cluster

    # -- entry ---------------------------------------------------------------------------------

    def handle(self, request: Request) -> Answer | Stream:
        try:
            return self._handle(request)
        except StoreError as error:
            return error_answer(error)
        except Exception as error:  # a bug of the double: a Status, never a traceback on the wire
            LOG.exception("cluster double: %s %s failed", request.method, request.path)
            return internal_error(error)

    def _handle(self, request: Request) -> Answer | Stream:
        route = parse_route(request.path)
        if route is None:
            return status_answer(404, "NotFound", "the server could not find the requested resource", {})
        output = negotiate(request.headers.get("Accept", ""))
        if output is None:
            return status_answer(
                406,
                "NotAcceptable",
                f"only the following media types are accepted: application/json, application/yaml "
                f"(this double does not serve {_PROTOBUF})",
            )
        method, res, sub = request.method, route.resource, route.subresource
        if route.name is None:
            if method == "GET":
                if "list" not in res.verbs:
                    return self._method_not_allowed(request)
                if request.flag("watch"):
                    return self._watch(request, route, output)
                return self._list(request, route, output)
            if method == "POST":
                if res.plural == "selfsubjectaccessreviews":
                    return self._access_review(request)
                return self._create(request, route, output)
            if method == "DELETE" and "deletecollection" in res.verbs:
                return self._delete_collection(request, route, output)
            return self._method_not_allowed(request)
        if sub in ("exec", "attach", "portforward"):
            # Reached only without an Upgrade header (the server hands upgrades to the streams): the
            # pod is looked up first (404), then the missing upgrade refused, as the API server does.
            self.store.get(res, route.namespace or "", route.name)
            return status_answer(400, "BadRequest", "Upgrade request required")
        if sub == "log":
            if method != "GET":
                return self._method_not_allowed(request)
            return self._log(request, route)
        if sub == "scale":
            return self._scale(request, route)
        if method == "GET":
            obj = self.store.get(res, route.namespace or "", route.name)
            return self._render(obj, output, res)
        if method == "PUT":
            return self._replace(request, route, output)
        if method == "PATCH":
            return self._patch(request, route, output)
        if method == "DELETE":
            return self._delete(request, route, output)
        return self._method_not_allowed(request)

    def _method_not_allowed(self, request: Request) -> Answer:
        return status_answer(
            405,
            "MethodNotAllowed",
            f"the server does not allow this method on the requested resource ({request.method})",
            {},
        )

    # -- rendering -----------------------------------------------------------------------------

    def _render(
        self,
        obj: JSON,
        output: Output,
        res: Resource,
        code: int = 200,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Answer:
        if output.form == "table":
            return json_answer(
                code,
                tables.table(
                    res, [obj], output.table_version, "Metadata", obj["metadata"].get("resourceVersion", "")
                ),
                headers,
            )
        if output.form == "metadata":
            return json_answer(code, _partial(obj, output.table_version), headers)
        if output.form == "yaml":
            return Answer(code, "application/yaml", yaml.safe_dump(obj, sort_keys=False).encode(), headers)
        return json_answer(code, obj, headers)

    # -- list and watch ------------------------------------------------------------------------

    def _selected(self, request: Request, res: Resource) -> Callable[[JSON], bool]:
        return object_filter(res.plural, request.param("labelSelector"), request.param("fieldSelector"))

    def _list(self, request: Request, route: Route, output: Output) -> Answer:
        res = route.resource
        matches = self._selected(request, res)
        items, revision = self.store.list_objects(res, route.namespace)
        items = [item for item in items if matches(item)]
        metadata: JSON = {"resourceVersion": str(revision)}
        limit = int(request.param("limit", "0") or 0)
        start = 0
        token = request.param("continue")
        if token:
            try:
                start = int(json.loads(base64.urlsafe_b64decode(token.encode()))["start"])
            except (ValueError, KeyError, TypeError) as error:
                raise StoreError(400, "BadRequest", "continue key is not valid: " + str(error)) from error
        if start or limit:
            remaining = items[start + limit :] if limit else []
            items = items[start : start + limit] if limit else items[start:]
            if remaining:
                metadata["continue"] = base64.urlsafe_b64encode(
                    json.dumps({"start": start + limit, "rv": revision}).encode()
                ).decode()
                metadata["remainingItemCount"] = len(remaining)
        if output.form == "table":
            return json_answer(
                200,
                tables.table(
                    res,
                    items,
                    output.table_version,
                    request.param("includeObject", "Metadata"),
                    str(revision),
                    metadata.get("continue"),
                    metadata.get("remainingItemCount"),
                ),
            )
        if output.form == "metadata":
            body = {
                "kind": "PartialObjectMetadataList",
                "apiVersion": f"meta.k8s.io/{output.table_version}",
                "metadata": metadata,
                "items": [_partial(item, output.table_version) for item in items],
            }
            return json_answer(200, body)
        for item in items:  # items of a typed list carry no kind/apiVersion (the list does)
            item.pop("kind", None)
            item.pop("apiVersion", None)
        body = {
            "kind": f"{res.kind}List",
            "apiVersion": res.api_version,
            "metadata": metadata,
            "items": items,
        }
        if output.form == "yaml":
            return Answer(200, "application/yaml", yaml.safe_dump(body, sort_keys=False).encode())
        return json_answer(200, body)

    def _watch(self, request: Request, route: Route, output: Output) -> Answer | Stream:
        """A watch stream: one JSON WatchEvent per line (https://kubernetes.io/docs/reference/using-api/api-concepts/#watch-bookmarks)."""
        res = route.resource
        matches = self._selected(request, res)
        since_text = request.param("resourceVersion")
        bookmarks = request.flag("allowWatchBookmarks")
        send_initial = request.flag("sendInitialEvents")
        timeout = float(request.param("timeoutSeconds", "0") or 0) or 1800.0
        if output.form == "yaml":
            output = Output("json")
        initial: list[JSON] = []
        since: int | None = None
        if since_text in ("", "0") or send_initial:
            # "Get State and Start at Most Recent" / "at Any": synthetic ADDED events for what exists.
            items, revision = self.store.list_objects(res, route.namespace)
            initial = [item for item in items if matches(item)]
            since = revision
        else:
            try:
                since = int(since_text)
            except ValueError:
                raise StoreError(400, "BadRequest", f'invalid resource version: "{since_text}"') from None
        try:
            watcher, backlog = self.store.watch(res, route.namespace, since)
        except StoreError as error:
            if error.code != 410:
                raise
            # A too-old resourceVersion: 200 with one ERROR event holding a 410 Expired Status.
            expired = {"type": "ERROR", "object": status_object(410, "Expired", error.message)}
            return Stream("application/json", iter([json.dumps(expired).encode() + b"\n"]))
        first_table = [True]

        def encode(event_type: str, obj: JSON) -> bytes:
            if output.form == "table" and event_type not in ("BOOKMARK", "ERROR"):
                converted = tables.table(
                    res,
                    [obj],
                    output.table_version,
                    request.param("includeObject", "Metadata"),
                    obj["metadata"].get("resourceVersion", ""),
                )
                if not first_table[0]:  # column definitions only in the first event, as the API server does
                    converted["columnDefinitions"] = []
                first_table[0] = False
                obj = converted
            elif output.form == "metadata" and event_type not in ("BOOKMARK", "ERROR"):
                obj = _partial(obj, output.table_version)
            return orjson.dumps({"type": event_type, "object": obj}) + b"\n"

        def bookmark(revision: int, initial_end: bool = False) -> bytes:
            meta: JSON = {"resourceVersion": str(revision)}
            if initial_end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            return encode("BOOKMARK", {"kind": res.kind, "apiVersion": res.api_version, "metadata": meta})

        def events() -> Iterator[bytes]:
            deadline = time.monotonic() + timeout
            last_sent = time.monotonic()
            latest = since or 0
            for item in initial:
                yield encode("ADDED", item)
            if send_initial and bookmarks:
                yield bookmark(latest, initial_end=True)
            for change in backlog:
                latest = change.revision
                event = _filtered(change, matches)
                if event is not None:
                    yield encode(*event)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.store.closed.is_set():
                    return
                try:
                    next_change = watcher.events.get(timeout=min(remaining, IDLE_CHECK_S))
                except queue.Empty:
                    if bookmarks and time.monotonic() - last_sent >= BOOKMARK_INTERVAL_S:
                        last_sent = time.monotonic()
                        yield bookmark(max(latest, self.store.revision))
                    else:
                        yield b""  # idle: the server checks the client is still there
                    continue
                if next_change is None:
                    return
                if next_change.revision <= latest:
                    continue
                latest = next_change.revision
                event = _filtered(next_change, matches)
                if event is not None:
                    last_sent = time.monotonic()
                    yield encode(*event)

        return Stream("application/json", events(), on_close=[lambda: self.store.unwatch(watcher)])

    # -- create, replace, patch, delete --------------------------------------------------------

    def _decode_body(self, request: Request) -> JSON:
        if len(request.body) > MAX_BODY:
            raise StoreError(413, "RequestEntityTooLarge", "the request is too large")
        content_type = (request.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if content_type == _PROTOBUF:  # kubectl's typed clients (create <generator>, auth can-i)
            return protobuf.decode(request.body)
        try:
            if content_type == "application/yaml":
                body = yaml.safe_load(request.body.decode())
            else:
                body = json.loads(request.body or b"{}")
        except (ValueError, yaml.YAMLError) as error:
            raise StoreError(400, "BadRequest", f"the body could not be decoded: {error}") from None
        if not isinstance(body, dict):
            raise StoreError(400, "BadRequest", "the body must be an object")
        return body

    def _check_kind(self, res: Resource, obj: JSON) -> None:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if (api_version or kind) and (api_version, kind) != (res.api_version, res.kind):
            raise StoreError(
                400,
                "BadRequest",
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({res.api_version})"
                if api_version != res.api_version
                else f'{kind} in version "{res.version}" cannot be handled as a {res.kind}',
            )

    def _field_validation(
        self, request: Request, res: Resource, obj: JSON, applied: bool = False
    ) -> tuple[tuple[str, str], ...]:
        """fieldValidation=Strict rejects unknown fields, Warn reports them in Warning headers.

        https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation: a JSON body's
        error is the decoder's ("strict decoding error"), an applied configuration's the typed
        conversion's ("field not declared in schema").
        """
        mode = request.param("fieldValidation", "Warn")
        if mode not in ("Strict", "Warn", "Ignore"):
            raise StoreError(400, "BadRequest", f'fieldValidation parameter unsupported: "{mode}"')
        if mode == "Ignore":
            return ()
        unknown = _unknown_fields(res, obj)
        if not unknown:
            return ()
        if mode == "Strict" and applied:
            meta = obj.get("metadata") or {}
            where = f"/{meta.get('namespace', '')}/{meta.get('name', '')}"
            if not res.namespaced:
                where = f"/{meta.get('name', '')}"
            group_version_kind = f"{res.api_version}, Kind={res.kind}"
            raise StoreError(
                400,
                "BadRequest",
                f"failed to create typed patch object ({where}; {group_version_kind}): "
                + ", ".join(f"{path}: field not declared in schema" for path in unknown),
            )
        if mode == "Strict":
            fields = ", ".join(f'unknown field "{path.lstrip(".")}"' for path in unknown)
            raise StoreError(
                400,
                "BadRequest",
                f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                f"strict decoding error: {fields}",
            )
        return tuple(("Warning", f'299 - "unknown field \\"{path.lstrip(".")}\\""') for path in unknown)

    def _dry_run(self, request: Request) -> bool:
        values = request.query.get("dryRun", [])
        for value in values:
            if value != "All":
                raise StoreError(400, "BadRequest", f'unsupported dry run value: "{value}" (only "All")')
        return bool(values)

    def _manager(self, request: Request) -> str:
        manager = request.param("fieldManager")
        if manager:
            return manager
        agent = request.headers.get("User-Agent", "unknown")
        return agent.split("/")[0] or "unknown"

    def _prepare_new(self, request: Request, route: Route, obj: JSON) -> JSON:
        res = route.resource
        self._check_kind(res, obj)
        meta = obj.setdefault("metadata", {})
        if res.namespaced:
            namespace = route.namespace or meta.get("namespace") or "default"
            if meta.get("namespace") and route.namespace and meta["namespace"] != route.namespace:
                raise StoreError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            from wardgate.dev.kube.controllers import random_suffix

            meta["name"] = meta["generateName"] + random_suffix()
        obj.pop("status", None)  # a create ignores status: the controllers and the kubelet write it
        for server_field in (
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "managedFields",
            "selfLink",
        ):
            meta.pop(server_field, None)
        _validate(res, obj)
        return obj

    def _create(self, request: Request, route: Route, output: Output) -> Answer:
        res = route.resource
        if res.namespaced and route.namespace is None:
            return self._method_not_allowed(request)
        obj = self._prepare_new(request, route, self._decode_body(request))
        warnings = self._field_validation(request, res, obj)
        dry_run = self._dry_run(request)
        _defaults(res, obj)
        patches.record_update(obj, None, self._manager(request), res.api_version)
        created = self.store.create(res, obj, dry_run=dry_run)
        if not dry_run:
            self.cluster.reconcile(created["metadata"].get("namespace") or None)
            created = (
                self.store.find(res, created["metadata"].get("namespace", ""), created["metadata"]["name"])
                or created
            )
        return self._render(created, output, res, 201, warnings)

    def _replace(self, request: Request, route: Route, output: Output) -> Answer:
        res = route.resource
        assert route.name is not None
        obj = self._decode_body(request)
        self._check_kind(res, obj)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") != route.name:
            raise StoreError(400, "BadRequest", "the name of the object does not match the name on the URL")
        if res.namespaced:
            meta["namespace"] = route.namespace or ""
        warnings = self._field_validation(request, res, obj)
        current = self.store.get(res, route.namespace or "", route.name)
        if route.subresource == "status":
            current["status"] = obj.get("status", {})
            obj = current
        elif route.subresource is None and "status" in current and res.plural not in ("namespaces",):
            obj["status"] = current["status"]  # the main resource ignores status (the strategies reset it)
        _validate_update(res, current, obj)
        obj["metadata"]["managedFields"] = current["metadata"].get("managedFields", [])
        patches.record_update(obj, current, self._manager(request), res.api_version, route.subresource or "")
        dry_run = self._dry_run(request)
        updated = self.store.update(res, obj, dry_run=dry_run)
        return self._after_write(res, updated, output, warnings, 200, dry_run)

    def _after_write(
        self,
        res: Resource,
        obj: JSON,
        output: Output,
        warnings: tuple[tuple[str, str], ...],
        code: int,
        dry_run: bool,
    ) -> Answer:
        """The written object as the controllers left it (a dry run's result as it is: nothing ran)."""
        if dry_run:
            return self._render(obj, output, res, code, warnings)
        meta = obj["metadata"]
        self.cluster.reconcile(meta.get("namespace") or None)
        fresh = self.store.find(res, meta.get("namespace", ""), meta["name"])
        if fresh is not None and fresh["metadata"].get("uid") == meta.get("uid"):
            obj = fresh
        return self._render(obj, output, res, code, warnings)

    def _patch(self, request: Request, route: Route, output: Output) -> Answer:
        res = route.resource
        assert route.name is not None
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        dry_run = self._dry_run(request)
        namespace = route.namespace or ""
        if content_type == "application/apply-patch+yaml":
            return self._apply(request, route, output, dry_run)
        current = self.store.get(res, namespace, route.name)
        try:
            if content_type == "application/json-patch+json":
                operations = json.loads(request.body or b"[]")
                patched = patches.json_patch(current, operations)
            elif content_type == "application/merge-patch+json":
                patched = patches.merge_patch(current, self._patch_body(request))
            elif content_type == "application/strategic-merge-patch+json":
                patched = patches.strategic_merge(current, self._patch_body(request))
            else:
                raise StoreError(
                    _UNSUPPORTED_MEDIA,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: "
                    "application/json-patch+json, application/merge-patch+json, "
                    "application/apply-patch+yaml, "
                    "application/strategic-merge-patch+json",
                )
        except patches.PatchError as error:
            raise StoreError(
                422 if error.invalid else 400, "Invalid" if error.invalid else "BadRequest", str(error)
            ) from None
        except ValueError as error:
            raise StoreError(400, "BadRequest", f"the patch could not be decoded: {error}") from None
        if not isinstance(patched, dict):
            raise StoreError(400, "BadRequest", "the patch did not produce an object")
        if patched.get("metadata", {}).get("name") != route.name:
            raise StoreError(
                422,
                "Invalid",
                f'{res.kind} "{route.name}" is invalid: metadata.name: Invalid value: the name cannot change',
            )
        warnings = self._field_validation(request, res, patched)
        if route.subresource == "status":
            current["status"] = patched.get("status", {})
            patched = current
        elif "status" in current and res.plural != "namespaces":
            patched["status"] = current["status"]
        _validate_update(res, current, patched)
        patches.record_update(
            patched, current, self._manager(request), res.api_version, route.subresource or ""
        )
        if "resourceVersion" not in (self._patch_body_or_empty(request, content_type).get("metadata") or {}):
            patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        updated = self.store.update(res, patched, dry_run=dry_run)
        return self._after_write(res, updated, output, warnings, 200, dry_run)

    def _patch_body(self, request: Request) -> JSON:
        body = json.loads(request.body or b"{}")
        if not isinstance(body, dict):
            raise StoreError(400, "BadRequest", "the patch must be a JSON object")
        return body

    def _patch_body_or_empty(self, request: Request, content_type: str) -> JSON:
        if content_type == "application/json-patch+json":
            return {}
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _apply(self, request: Request, route: Route, output: Output, dry_run: bool) -> Answer:
        """Server-side apply (https://kubernetes.io/docs/reference/using-api/server-side-apply/)."""
        res = route.resource
        assert route.name is not None
        manager = request.param("fieldManager")
        if not manager:
            raise StoreError(
                400,
                "BadRequest",
                "PATCH, application/apply-patch+yaml requests must have a fieldManager query parameter",
            )
        try:
            config = yaml.safe_load(request.body.decode() or "{}")
        except yaml.YAMLError as error:
            raise StoreError(400, "BadRequest", f"error decoding YAML: {error}") from None
        if not isinstance(config, dict):
            raise StoreError(400, "BadRequest", "the applied configuration must be an object")
        self._check_kind(res, config)
        if not config.get("apiVersion") or not config.get("kind"):
            raise StoreError(400, "BadRequest", "apiVersion and kind must be set in an applied configuration")
        meta = config.setdefault("metadata", {})
        if meta.get("name") != route.name:
            raise StoreError(400, "BadRequest", "the name of the object does not match the name on the URL")
        if res.namespaced:
            meta["namespace"] = route.namespace or meta.get("namespace") or "default"
        warnings = self._field_validation(request, res, config, applied=True)
        current = self.store.find(res, route.namespace or "", route.name)
        force = request.flag("force")
        if current is None:
            obj = self._prepare_new(request, route, copy.deepcopy(config))
            _defaults(res, obj)
            patches.record_apply(obj, config, manager, res.api_version)
            created = self.store.create(res, obj, dry_run=dry_run)
            if dry_run:
                return self._render(created, output, res, 201, warnings)
            return self._after_write(res, created, output, warnings, 201, dry_run)
        merged = patches.apply(current, config, manager, res.api_version, force)
        if route.subresource != "status" and "status" in current and res.plural != "namespaces":
            merged["status"] = current["status"]
        _validate_update(res, current, merged)
        merged["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        updated = self.store.update(res, merged, dry_run=dry_run)
        return self._after_write(res, updated, output, warnings, 200, dry_run)

    def _delete_options(self, request: Request) -> JSON:
        options: JSON = {}
        if request.body:
            try:
                decoded = self._decode_body(request)
            except StoreError:
                raise StoreError(400, "BadRequest", "DeleteOptions could not be decoded") from None
            options = decoded
        if request.param("propagationPolicy"):
            options["propagationPolicy"] = request.param("propagationPolicy")
        if request.param("dryRun"):
            options["dryRun"] = request.query["dryRun"]
        if request.param("orphanDependents"):
            options["orphanDependents"] = request.flag("orphanDependents")
        return options

    def _propagation(self, res: Resource, options: JSON) -> str:
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is True:
            policy = "Orphan"
        if policy is None:
            policy = "Background"
        if policy not in ("Orphan", "Background", "Foreground"):
            raise StoreError(
                422,
                "Invalid",
                f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "{policy}": '
                'supported values: "Foreground", "Background", "Orphan"',
            )
        return str(policy)

    def _delete(self, request: Request, route: Route, output: Output) -> Answer:
        """DELETE: the object is gone at once (no finalizers here), so kubectl's wait ends promptly."""
        res = route.resource
        assert route.name is not None
        options = self._delete_options(request)
        dry_run = bool(options.get("dryRun"))
        if dry_run and options["dryRun"] != ["All"] and options["dryRun"] != "All":
            raise StoreError(400, "BadRequest", 'unsupported dry run value (only "All")')
        propagation = self._propagation(res, options)
        namespace = route.namespace or ""
        preconditions = options.get("preconditions") or {}
        current = self.store.get(res, namespace, route.name)
        if preconditions.get("uid") and preconditions["uid"] != current["metadata"]["uid"]:
            raise StoreError(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                f"UID in object meta: {current['metadata']['uid']}",
            )
        if (
            preconditions.get("resourceVersion")
            and preconditions["resourceVersion"] != current["metadata"]["resourceVersion"]
        ):
            raise StoreError(
                409, "Conflict", "Precondition failed: resourceVersion in precondition does not match"
            )
        if dry_run:
            return self._deleted_answer(res, current, output)
        deleted = self.store.delete(res, namespace, route.name)
        self.cluster.collect_garbage(deleted, propagation)
        self.cluster.reconcile(namespace or None)
        return self._deleted_answer(res, deleted, output)

    def _deleted_answer(self, res: Resource, deleted: JSON, output: Output) -> Answer:
        # Pods, services and namespaces answer with the object; the others with a Success Status
        # naming it (the registries' ReturnDeletedObject).
        if res.plural in ("pods", "services", "namespaces") or output.form != "json":
            return self._render(deleted, output, res)
        details = {
            "name": deleted["metadata"]["name"],
            "group": res.group,
            "kind": res.plural,
            "uid": deleted["metadata"]["uid"],
        }
        return json_answer(200, status_object(200, "", "", details))

    def _delete_collection(self, request: Request, route: Route, output: Output) -> Answer:
        res = route.resource
        options = self._delete_options(request)
        propagation = self._propagation(res, options)
        matches = self._selected(request, res)
        items, _ = self.store.list_objects(res, route.namespace)
        deleted = []
        for item in items:
            if not matches(item):
                continue
            if not options.get("dryRun"):
                try:
                    removed = self.store.delete(
                        res, item["metadata"].get("namespace", ""), item["metadata"]["name"]
                    )
                except StoreError:
                    continue
                self.cluster.collect_garbage(removed, propagation)
                deleted.append(removed)
            else:
                deleted.append(item)
        self.cluster.reconcile(route.namespace)
        for item in deleted:
            item.pop("kind", None)
            item.pop("apiVersion", None)
        body = {
            "kind": f"{res.kind}List",
            "apiVersion": res.api_version,
            "metadata": {"resourceVersion": str(self.store.revision)},
            "items": deleted,
        }
        return json_answer(200, body)

    # -- subresources --------------------------------------------------------------------------

    def _scale(self, request: Request, route: Route) -> Answer:
        """autoscaling/v1 Scale: the scale subresource of deployments and replica sets.

        https://kubernetes.io/docs/reference/kubernetes-api/autoscaling/ (Scale) and the Deployment
        reference's "replace scale of the specified Deployment".
        """
        res = route.resource
        assert route.name is not None
        namespace = route.namespace or ""
        current = self.store.get(res, namespace, route.name)
        if request.method in ("PUT", "PATCH"):
            scale = _scale_of(current)
            if request.method == "PUT":
                wanted = self._decode_body(request)
            else:
                content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
                try:
                    if content_type == "application/json-patch+json":
                        wanted = patches.json_patch(scale, json.loads(request.body or b"[]"))
                    else:
                        wanted = patches.merge_patch(scale, self._patch_body(request))
                except patches.PatchError as error:
                    raise StoreError(422, "Invalid", str(error)) from None
            sent_version = (wanted.get("metadata") or {}).get("resourceVersion")
            if sent_version and sent_version != current["metadata"]["resourceVersion"]:
                raise StoreError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {res.plural}.{res.group} "{route.name}": '
                    "the object has been modified; please apply your changes to the latest version and "
                    "try again",
                )
            replicas = (wanted.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise StoreError(
                    422,
                    "Invalid",
                    f'Scale.autoscaling "{route.name}" is invalid: spec.replicas: Invalid value: {replicas}: '
                    "must be greater than or equal to 0",
                )
            scaled = copy.deepcopy(current)
            scaled["spec"]["replicas"] = replicas
            if not self._dry_run(request):
                patches.record_update(scaled, current, self._manager(request), res.api_version, "scale")
                self.store.update(res, scaled, check_version=False)
                self.cluster.reconcile(namespace)
                scaled = self.store.get(res, namespace, route.name)
            current = scaled
        elif request.method != "GET":
            return self._method_not_allowed(request)
        return json_answer(200, _scale_of(current))

    def _access_review(self, request: Request) -> Answer:
        """SelfSubjectAccessReview (kubectl auth can-i): the double's one user may do everything."""
        review = self._decode_body(request)
        review["apiVersion"], review["kind"] = "authorization.k8s.io/v1", "SelfSubjectAccessReview"
        review.setdefault("metadata", {})["creationTimestamp"] = None
        review["status"] = {"allowed": True, "reason": "the cluster double's token may do everything"}
        return json_answer(201, review)

    def _log(self, request: Request, route: Route) -> Answer | Stream:
        """Pod logs (https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#read-log-of-the-specified-pod)."""
        assert route.name is not None
        namespace = route.namespace or ""
        pod = self.store.get(PODS, namespace, route.name)
        containers = [c["name"] for c in pod.get("spec", {}).get("containers") or []]
        container = request.param("container")
        if not container:
            if len(containers) != 1:
                raise StoreError(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {route.name}, "
                    f"choose one of: [{' '.join(containers)}]",
                )
            container = containers[0]
        elif container not in containers:
            raise StoreError(400, "BadRequest", f"container {container} is not valid for pod {route.name}")
        waiting = next(
            (
                (status.get("state") or {}).get("waiting")
                for status in (pod.get("status") or {}).get("containerStatuses") or []
                if status.get("name") == container
            ),
            None,
        )
        if waiting is not None:  # the kubelet has no log for a container that has not started
            reason = waiting.get("reason", "ContainerCreating")
            raise StoreError(
                400,
                "BadRequest",
                f'container "{container}" in pod "{route.name}" is waiting to start: {reason}',
            )
        if request.flag("previous"):
            raise StoreError(
                400,
                "BadRequest",
                f'previous terminated container "{container}" in pod "{route.name}" not found',
            )
        timestamps = request.flag("timestamps")
        lines = self.store.log_lines(namespace, route.name, container)
        total = len(lines)
        tail = request.param("tailLines")
        if tail:
            try:
                count = int(tail)
            except ValueError:
                raise StoreError(400, "BadRequest", f'invalid tailLines: "{tail}"') from None
            lines = lines[max(0, len(lines) - count) :] if count >= 0 else lines
        since_seconds, since_time = request.param("sinceSeconds"), request.param("sinceTime")
        try:
            cutoff: datetime.datetime | None = None
            if since_seconds:
                cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=int(since_seconds))
            elif since_time:
                cutoff = datetime.datetime.fromisoformat(since_time.replace("Z", "+00:00"))
        except ValueError:
            raise StoreError(400, "BadRequest", "sinceSeconds or sinceTime is not valid") from None
        if cutoff is not None:
            lines = [line for line in lines if _parse_stamp(line.timestamp) >= cutoff]
        limit_bytes = int(request.param("limitBytes", "0") or 0)

        def render(batch: list[Any]) -> bytes:
            return "".join(
                (f"{line.timestamp} " if timestamps else "") + line.text + "\n" for line in batch
            ).encode()

        body = render(lines)
        if limit_bytes:
            body = body[:limit_bytes]
        if not request.flag("follow"):
            return Answer(200, "text/plain", body)
        alive_flag = [True]

        def chunks() -> Iterator[bytes]:
            if body:
                yield body
            for batch in self.store.follow_log(
                namespace, route.name or "", container, total, lambda: alive_flag[0]
            ):
                yield render(batch)

        return Stream("text/plain", chunks(), on_close=[lambda: alive_flag.__setitem__(0, False)])


# -- helpers ---------------------------------------------------------------------------------------


def _filtered(change: Change, matches: Callable[[JSON], bool]) -> tuple[str, JSON] | None:
    """A change as the watcher sees it through its selectors: entering is ADDED, leaving DELETED."""
    now = matches(change.object)
    if change.type == "MODIFIED" and change.previous is not None:
        before = matches(change.previous)
        if now and not before:
            return "ADDED", change.object
        if before and not now:
            return "DELETED", change.object
    return (change.type, change.object) if now else None


def _partial(obj: JSON, version: str) -> JSON:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": obj.get("metadata", {}),
    }


def _scale_of(obj: JSON) -> JSON:
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": obj.get("spec", {}).get("replicas", 1)},
        "status": {
            "replicas": obj.get("status", {}).get("replicas", 0),
            "selector": selector_string(obj.get("spec", {}).get("selector") or {}),
        },
    }


def _parse_stamp(stamp: str) -> datetime.datetime:
    return datetime.datetime.strptime(stamp[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.UTC)


def _unknown_fields(res: Resource, obj: JSON) -> list[str]:
    try:
        from wardgate.dev.kube import openapi
    except ImportError:
        return []
    finder = getattr(openapi, "unknown_fields", None)
    if finder is None:
        return []
    return list(finder(res, obj))


def _invalid(res: Resource, name: str, causes: list[tuple[str, str, str]]) -> StoreError:
    """422 Invalid with field causes, as the API server's validation reports them."""
    text = "; ".join(f"{field}: {message}" for field, _, message in causes)
    kind = f"{res.kind}.{res.group}" if res.group else res.kind  # Deployment.apps "web" is invalid: ...
    return StoreError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {text}',
        {"name": name, "group": res.group, "kind": res.kind},
        [{"reason": reason, "message": message, "field": field} for field, reason, message in causes],
    )


def _validate(res: Resource, obj: JSON) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    causes: list[tuple[str, str, str]] = []
    if not name:
        causes.append(
            ("metadata.name", "FieldValueRequired", "Required value: name or generateName is required")
        )
    elif (
        not (_LABEL_NAME if res.plural in ("namespaces", "services") else _NAME).match(name)
        or len(name) > 253
    ):
        causes.append(
            (
                "metadata.name",
                "FieldValueInvalid",
                f'Invalid value: "{name}": a lowercase RFC 1123 '
                f"{'label' if res.plural in ('namespaces', 'services') else 'subdomain'} must consist of "
                "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character",
            )
        )
    spec = obj.get("spec") or {}
    if res.plural == "pods":
        containers = spec.get("containers") or []
        if not containers:
            causes.append(("spec.containers", "FieldValueRequired", "Required value"))
        for index, container in enumerate(containers):
            if not container.get("name"):
                causes.append((f"spec.containers[{index}].name", "FieldValueRequired", "Required value"))
            if not container.get("image"):
                causes.append((f"spec.containers[{index}].image", "FieldValueRequired", "Required value"))
    if res.plural in ("deployments", "replicasets"):
        selector = spec.get("selector")
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector:
            causes.append(("spec.selector", "FieldValueRequired", "Required value"))
        elif any(template_labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
            causes.append(
                (
                    "spec.template.metadata.labels",
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(template_labels)}: "
                    "`selector` does not match template `labels`",
                )
            )
        replicas = spec.get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 0:
            causes.append(
                (
                    "spec.replicas",
                    "FieldValueInvalid",
                    f"Invalid value: {replicas}: must be greater than or equal to 0",
                )
            )
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        if not containers:
            causes.append(("spec.template.spec.containers", "FieldValueRequired", "Required value"))
        for index, container in enumerate(containers):
            if not container.get("image"):
                causes.append(
                    (f"spec.template.spec.containers[{index}].image", "FieldValueRequired", "Required value")
                )
    if res.plural == "secrets":
        for key, value in (obj.get("data") or {}).items():
            try:
                base64.b64decode(value, validate=True)
            except (ValueError, TypeError):
                causes.append((f"data[{key}]", "FieldValueInvalid", "Invalid value: illegal base64 data"))
    if causes:
        raise _invalid(res, name, causes)


def _validate_update(res: Resource, current: JSON, new: JSON) -> None:
    """An update's checks: the object's own, defaults, then the fields that may not change once set."""
    _validate(res, new)
    name = new["metadata"].get("name", "")
    old_spec, new_spec = current.get("spec") or {}, new.get("spec") or {}
    if res.plural == "services" and old_spec.get("clusterIP") and not new_spec.get("clusterIP"):
        # An update that leaves the address out keeps the allocated one.
        new_spec["clusterIP"], new_spec["clusterIPs"] = old_spec["clusterIP"], old_spec.get("clusterIPs")
    _defaults(res, new)
    causes: list[tuple[str, str, str]] = []
    if res.plural in ("deployments", "replicasets") and new_spec.get("selector") != old_spec.get("selector"):
        selector = json.dumps(new_spec.get("selector"), separators=(",", ":"))
        causes.append(
            ("spec.selector", "FieldValueInvalid", f"Invalid value: {selector}: field is immutable")
        )
    if (
        res.plural == "services"
        and old_spec.get("clusterIP")
        and new_spec["clusterIP"] != old_spec["clusterIP"]
    ):
        value = new_spec["clusterIP"]
        causes.append(
            ("spec.clusterIP", "FieldValueInvalid", f'Invalid value: "{value}": field is immutable')
        )
    if res.plural in ("configmaps", "secrets") and current.get("immutable"):
        for field in ("data", "binaryData"):
            if new.get(field) != current.get(field):
                causes.append(
                    (field, "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set")
                )
    if res.plural == "secrets" and new.get("type", "Opaque") != current.get("type", "Opaque"):
        causes.append(
            ("type", "FieldValueInvalid", f'Invalid value: "{new.get("type")}": field is immutable')
        )
    if causes:
        raise _invalid(res, name, causes)


def _defaults(res: Resource, obj: JSON) -> None:
    """The defaults the API server fills in on the way in (the ones kubectl shows or relies on)."""
    spec = (
        obj.setdefault("spec", {})
        if res.plural in ("deployments", "replicasets", "pods", "services", "namespaces")
        else None
    )
    if res.plural == "secrets":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
    if spec is None:
        return
    if res.plural == "deployments":
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
    if res.plural == "replicasets":
        spec.setdefault("replicas", 1)
    if res.plural == "services":
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        if spec.get("type") != "ExternalName" and "clusterIP" not in spec:
            digest = sum(ord(c) for c in obj["metadata"].get("name", "")) % 250
            spec["clusterIP"] = f"10.96.{digest}.{len(obj['metadata'].get('name', '')) + 1}"
            spec["clusterIPs"] = [spec["clusterIP"]]
    if res.plural == "namespaces":
        spec.setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    pod_spec: Any = None
    if res.plural == "pods":
        pod_spec = spec
    elif res.plural in ("deployments", "replicasets"):
        pod_spec = (spec.get("template") or {}).get("spec")
    if not isinstance(pod_spec, dict):
        return
    for key, value in (
        ("restartPolicy", "Always"),
        ("terminationGracePeriodSeconds", 30),
        ("dnsPolicy", "ClusterFirst"),
        ("securityContext", {}),
        ("schedulerName", "default-scheduler"),
    ):
        pod_spec.setdefault(key, value)
    containers: list[JSON] = pod_spec.get("containers") or []
    for container in containers:
        container.setdefault(
            "imagePullPolicy",
            "Always"
            if container.get("image", "").endswith(":latest") or ":" not in container.get("image", "")
            else "IfNotPresent",
        )
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")
