"""The cluster double's object store: objects by resource, one resourceVersion counter, watches, logs.

Every change takes the store's lock, bumps a single counter (etcd's revision: the API server's
resourceVersion is opaque to clients, but one counter across resources is what etcd gives and what
list/watch semantics assume) and is fanned out to the watchers of that resource. A watcher has a
bounded queue: one that falls behind is closed, as the API server drops a slow watcher, and its
client re-lists. A short history of changes serves watches that start from a past resourceVersion;
an older one than the history holds is "too old" (410 Gone, see
https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes).
"""

from __future__ import annotations

import contextlib
import datetime
import queue
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from wardgate.dev.kube.catalog import Resource

JSON = dict[str, Any]
HISTORY_LENGTH = 2000  # changes kept for watches that resume from a past resourceVersion
WATCH_QUEUE_LENGTH = 1000  # events a watcher may fall behind by before it is closed
LOG_LINES_KEPT = 10_000  # per container
GENERATION_TRACKED = ("deployments", "replicasets")


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clone(obj: JSON) -> JSON:
    """A deep copy of a JSON object (a JSON round trip: several times faster than copy.deepcopy)."""
    copied: JSON = orjson.loads(orjson.dumps(obj))
    return copied


def _comparable(obj: JSON) -> JSON:
    """An object without what every write changes (resourceVersion, managedFields' times)."""
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in ("resourceVersion", "managedFields")}
    return {**obj, "metadata": meta}


class StoreError(Exception):
    """A request the store refuses; the server renders it as a meta/v1 Status."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: JSON | None = None,
        causes: list[JSON] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}
        if causes:
            self.details = {**self.details, "causes": causes}


def qualified(resource: Resource) -> str:
    """``pods``, ``deployments.apps``: how the API server names a resource in its messages."""
    return f"{resource.plural}.{resource.group}" if resource.group else resource.plural


def not_found(resource: Resource, name: str) -> StoreError:
    return StoreError(
        404,
        "NotFound",
        f'{qualified(resource)} "{name}" not found',
        {"name": name, "group": resource.group, "kind": resource.plural},
    )


@dataclass(frozen=True)
class Change:
    """One change to one object, as a watch event carries it (ADDED, MODIFIED, DELETED)."""

    revision: int
    kind_key: tuple[str, str]  # (group, plural)
    type: str
    object: JSON
    previous: JSON | None  # the object before a MODIFIED, to tell a selector's entries and exits


@dataclass(eq=False)
class Watcher:
    """One open watch: the changes to one resource, filtered by namespace (selectors: the server)."""

    kind_key: tuple[str, str]
    namespace: str | None
    events: queue.Queue[Change | None] = field(default_factory=lambda: queue.Queue(WATCH_QUEUE_LENGTH))
    closed: threading.Event = field(default_factory=threading.Event)

    def offer(self, change: Change) -> None:
        if self.closed.is_set():
            return
        try:
            self.events.put_nowait(change)
        except queue.Full:  # too slow: close it, the client re-lists (the API server does the same)
            self.close()

    def close(self) -> None:
        self.closed.set()
        with contextlib.suppress(queue.Full):
            self.events.put_nowait(None)


@dataclass(frozen=True)
class LogLine:
    timestamp: str  # RFC 3339 with nanoseconds, as kubectl logs --timestamps prints
    text: str


class Store:
    """All objects of the double by (group, plural, namespace, name); namespace "" if cluster-scoped."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        # (group, plural) -> (namespace, name) -> the stored object, never handed out (copies are)
        self._objects: dict[tuple[str, str], dict[tuple[str, str], JSON]] = {}
        self._revision = 1
        self._history: deque[Change] = deque(maxlen=HISTORY_LENGTH)
        self._compacted = 0  # the revision up to which history is gone (compact())
        self._watchers: set[Watcher] = set()
        self._logs: dict[tuple[str, str, str], deque[LogLine]] = {}
        self.logs_changed = threading.Condition(self.lock)
        self.closed = threading.Event()

    # -- reading -------------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        with self.lock:
            return self._revision

    def _table(self, resource: Resource) -> dict[tuple[str, str], JSON]:
        return self._objects.setdefault((resource.group, resource.plural), {})

    def peek(self, resource: Resource, namespace: str | None) -> list[JSON]:
        """The stored objects themselves, unsorted and uncopied: for the controllers' scans, which
        must not change them (they copy what they update)."""
        with self.lock:
            return [
                obj for (ns, _), obj in self._table(resource).items() if namespace is None or ns == namespace
            ]

    def get(self, resource: Resource, namespace: str, name: str) -> JSON:
        with self.lock:
            obj = self._table(resource).get((namespace, name))
            if obj is None:
                raise not_found(resource, name)
            return clone(obj)

    def find(self, resource: Resource, namespace: str, name: str) -> JSON | None:
        with self.lock:
            obj = self._table(resource).get((namespace, name))
            return clone(obj) if obj is not None else None

    def list_objects(self, resource: Resource, namespace: str | None) -> tuple[list[JSON], int]:
        """Objects of a resource (in one namespace, or all), sorted as etcd's keys are, and the revision."""
        with self.lock:
            items = [
                clone(obj)
                for (ns, _), obj in sorted(self._table(resource).items(), key=lambda kv: kv[0])
                if namespace is None or ns == namespace
            ]
            return items, self._revision

    # -- writing -------------------------------------------------------------------------------

    def _next_revision(self) -> int:
        self._revision += 1
        return self._revision

    def _record(self, resource: Resource, type_: str, obj: JSON, previous: JSON | None) -> None:
        change = Change(self._revision, (resource.group, resource.plural), type_, clone(obj), previous)
        self._history.append(change)
        for watcher in list(self._watchers):
            if watcher.kind_key == change.kind_key and (
                watcher.namespace is None or watcher.namespace == obj["metadata"].get("namespace", "")
            ):
                watcher.offer(change)

    def create(self, resource: Resource, obj: JSON, *, dry_run: bool = False) -> JSON:
        """Stores a new object: uid, creationTimestamp, resourceVersion and generation are the server's.

        With ``dry_run`` (dryRun=All) the object is checked and returned as it would be, not stored.
        """
        with self.lock:
            meta = obj.setdefault("metadata", {})
            namespace = meta.get("namespace", "") if resource.namespaced else ""
            key = (namespace, meta["name"])
            if key in self._table(resource):
                raise StoreError(
                    409,
                    "AlreadyExists",
                    f'{qualified(resource)} "{meta["name"]}" already exists',
                    {"name": meta["name"], "group": resource.group, "kind": resource.plural},
                )
            if (
                resource.namespaced
                and namespace
                and ("", namespace) not in self._objects.get(("", "namespaces"), {})
            ):
                raise StoreError(
                    404,
                    "NotFound",
                    f'namespaces "{namespace}" not found',
                    {"name": namespace, "kind": "namespaces"},
                )
            meta["uid"] = str(uuid.uuid4())
            meta.setdefault("creationTimestamp", now_rfc3339())
            if resource.plural in GENERATION_TRACKED:  # the strategies that set metadata.generation
                meta["generation"] = 1
            obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
            if dry_run:
                return clone(obj)
            meta["resourceVersion"] = str(self._next_revision())
            self._table(resource)[key] = clone(obj)
            self._record(resource, "ADDED", obj, None)
            return clone(obj)

    def update(
        self, resource: Resource, obj: JSON, *, check_version: bool = True, dry_run: bool = False
    ) -> JSON:
        """Replaces an object; a stale resourceVersion is a 409 Conflict (optimistic concurrency)."""
        with self.lock:
            meta = obj.setdefault("metadata", {})
            namespace = meta.get("namespace", "") if resource.namespaced else ""
            key = (namespace, meta.get("name", ""))
            current = self._table(resource).get(key)
            if current is None:
                raise not_found(resource, meta.get("name", ""))
            sent_version = meta.get("resourceVersion")
            if check_version and sent_version and sent_version != current["metadata"]["resourceVersion"]:
                raise StoreError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {qualified(resource)} "{meta["name"]}": the object '
                    "has been modified; please apply your changes to the latest version and try again",
                    {"name": meta["name"], "group": resource.group, "kind": resource.plural},
                )
            for fixed in ("uid", "creationTimestamp", "deletionTimestamp"):
                if fixed in current["metadata"]:
                    meta[fixed] = current["metadata"][fixed]
                else:
                    meta.pop(fixed, None)
            # metadata.generation moves when the spec does (not status, not metadata).
            generation = current["metadata"].get("generation")
            if generation is not None:
                spec_changed = {
                    k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")
                } != {
                    k: v for k, v in current.items() if k not in ("metadata", "status", "apiVersion", "kind")
                }
                meta["generation"] = generation + 1 if spec_changed else generation
            obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
            if _comparable(obj) == _comparable(current):
                return clone(current)  # a no-op update keeps its resourceVersion, as etcd's does
            if dry_run:
                meta["resourceVersion"] = current["metadata"]["resourceVersion"]
                return clone(obj)
            meta["resourceVersion"] = str(self._next_revision())
            previous = current
            self._table(resource)[key] = clone(obj)
            self._record(resource, "MODIFIED", obj, previous)
            return clone(obj)

    def delete(self, resource: Resource, namespace: str, name: str) -> JSON:
        with self.lock:
            key = (namespace if resource.namespaced else "", name)
            current = self._table(resource).pop(key, None)
            if current is None:
                raise not_found(resource, name)
            current["metadata"]["resourceVersion"] = str(self._next_revision())
            self._record(resource, "DELETED", current, None)
            self.logs_changed.notify_all()  # log followers of a deleted pod stop
            return clone(current)

    # -- watching ------------------------------------------------------------------------------

    def watch(
        self, resource: Resource, namespace: str | None, since: int | None
    ) -> tuple[Watcher, list[Change]]:
        """Opens a watcher; with ``since``, also the changes after it (410 if the history lacks them)."""
        with self.lock:
            backlog: list[Change] = []
            if since is not None and since > self._revision:  # a resourceVersion this store never had
                raise StoreError(
                    504,
                    "Timeout",
                    f"Timeout: Too large resource version: {since}, current: {self._revision}",
                    {"retryAfterSeconds": 1},
                    [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                )
            if since is not None and since < self._revision:
                oldest = self._history[0].revision - 1 if self._history else self._revision
                if since < max(oldest, self._compacted):
                    raise StoreError(410, "Expired", f"too old resource version: {since} ({self._revision})")
                backlog = [
                    change
                    for change in self._history
                    if change.revision > since
                    and change.kind_key == (resource.group, resource.plural)
                    and (namespace is None or change.object["metadata"].get("namespace", "") == namespace)
                ]
            watcher = Watcher((resource.group, resource.plural), namespace)
            if self.closed.is_set():
                watcher.close()
            self._watchers.add(watcher)
            return watcher, backlog

    def compact(self) -> None:
        """Forgets the change history, as etcd's compaction does: older resourceVersions are then too old."""
        with self.lock:
            self._history.clear()
            self._compacted = self._revision

    def unwatch(self, watcher: Watcher) -> None:
        with self.lock:
            self._watchers.discard(watcher)
        watcher.close()

    # -- logs ----------------------------------------------------------------------------------

    def append_log(self, namespace: str, pod: str, container: str, line: str) -> None:
        """Adds a line to a container's log (the fake container and attach call this)."""
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
        with self.lock:
            lines = self._logs.setdefault((namespace, pod, container), deque(maxlen=LOG_LINES_KEPT))
            lines.append(LogLine(stamp, line.rstrip("\n")))
            self.logs_changed.notify_all()

    def log_lines(self, namespace: str, pod: str, container: str) -> list[LogLine]:
        with self.lock:
            return list(self._logs.get((namespace, pod, container), ()))

    def follow_log(
        self, namespace: str, pod: str, container: str, start: int, alive: Callable[[], bool]
    ) -> Iterator[list[LogLine]]:
        """Batches of lines after index ``start`` until the pod goes, the store closes or ``alive`` fails."""
        position = start
        while True:
            with self.lock:
                lines = list(self._logs.get((namespace, pod, container), ()))
                fresh = lines[position:]
                position = max(position, len(lines))
                gone = (namespace, pod) not in self._objects.get(("", "pods"), {}) or self.closed.is_set()
                if not fresh and not gone:
                    self.logs_changed.wait(timeout=1.0)
            yield fresh  # empty when idle: the caller checks its client is still there
            if gone or not alive():
                return

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Ends every watch and log stream (the double is stopping)."""
        with self.lock:
            self.closed.set()
            watchers = list(self._watchers)
            self._watchers.clear()
            self.logs_changed.notify_all()
        for watcher in watchers:
            watcher.close()
