"""Patches and field ownership: JSON patch, merge patch, strategic merge patch, server-side apply.

- JSON patch: RFC 6902 (``application/json-patch+json``).
- Merge patch: RFC 7386 (``application/merge-patch+json``): objects merge, ``null`` deletes, lists replace.
- Strategic merge patch (``application/strategic-merge-patch+json``,
  https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/ and
  the design in kubernetes/community contributors/devel/sig-api-machinery/strategic-merge-patch.md):
  lists of objects with a merge key merge by that key (containers by ``name``, container ports by
  ``containerPort``...), ``$patch: delete|replace|merge``, ``$retainKeys``,
  ``$deleteFromPrimitiveList/<field>`` and ``$setElementOrder/<field>`` (kubectl's client-side apply
  sends the last). The merge keys come from this module's table, by field name, rather than from
  the OpenAPI document: it covers the resources the double serves.
- Server-side apply (https://kubernetes.io/docs/reference/using-api/server-side-apply/):
  ``metadata.managedFields`` entries (manager, operation Apply|Update, ``fieldsType: FieldsV1``)
  record who owns which field; an apply that changes a field another manager owns conflicts
  (409) unless forced, and fields a manager applied before and no longer applies are removed when
  nobody else owns them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from wardgate.dev.kube.store import JSON, StoreError, now_rfc3339

# Lists of objects that merge by a key (patchMergeKey), by field name.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
# Lists of scalars that merge as sets (patchStrategy: merge on a primitive list).
SET_LISTS = frozenset({"finalizers"})
# Fields treated as one value by server-side apply (structType/mapType atomic).
ATOMIC = frozenset({"selector", "command", "args"})
# Map-valued fields: their field set names the map itself too ("." in FieldsV1).
MAPS = frozenset(
    {
        "labels",
        "annotations",
        "data",
        "binaryData",
        "stringData",
        "matchLabels",
        "rollingUpdate",
        "nodeSelector",
        "resources",
        "limits",
        "requests",
    }
)
# Metadata the server owns: never part of a manager's field set.
_SERVER_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "generateName",
    }
)


class PatchError(Exception):
    """A patch that cannot apply; ``invalid``: a well-formed patch that fails (422), else malformed (400)."""

    def __init__(self, message: str, invalid: bool = True) -> None:
        super().__init__(message)
        self.invalid = invalid


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":  # container ports merge by containerPort, service ports by port
        dicts = [item for item in items if isinstance(item, dict)]
        if dicts and all("containerPort" in item for item in dicts):
            return "containerPort"
        return "port"
    return MERGE_KEYS.get(field)


# -- RFC 7386 merge patch ------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- RFC 6902 JSON patch -------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f'invalid JSON pointer "{path}"', invalid=False)
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list[Any], token: str, for_add: bool) -> int:
    if token == "-" and for_add:
        return len(container)
    if not token.isdigit():
        raise PatchError(f'invalid array index "{token}"')
    index = int(token)
    if index > len(container) or (index == len(container) and not for_add):
        raise PatchError(f"array index {index} out of bounds")
    return index


def _parent(document: Any, parts: list[str], path: str) -> Any:
    node = document
    for token in parts[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f'doc is missing path: "{path}": missing value')
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, False)]
        else:
            raise PatchError(f'doc is missing path: "{path}": missing value')
    return node


def _get(document: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return document
    parent = _parent(document, parts, path)
    token = parts[-1]
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f'doc is missing path: "{path}": missing value')
        return parent[token]
    if isinstance(parent, list):
        return parent[_index(parent, token, False)]
    raise PatchError(f'doc is missing path: "{path}": missing value')


def _remove(document: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _parent(document, parts, path)
    token = parts[-1]
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"Unable to remove nonexistent key: {token}: missing value")
        return parent.pop(token)
    if isinstance(parent, list):
        return parent.pop(_index(parent, token, False))
    raise PatchError(f'doc is missing path: "{path}": missing value')


def _add(document: Any, path: str, value: Any, replace: bool = False) -> Any:
    parts = _pointer(path)
    if not parts:
        return copy.deepcopy(value)
    parent = _parent(document, parts, path)
    token = parts[-1]
    if isinstance(parent, dict):
        if replace and token not in parent:
            raise PatchError(f"replace operation does not apply: doc is missing key: {path}: missing value")
        parent[token] = copy.deepcopy(value)
    elif isinstance(parent, list):
        if replace:
            parent[_index(parent, token, False)] = copy.deepcopy(value)
        else:
            parent.insert(_index(parent, token, True), copy.deepcopy(value))
    else:
        raise PatchError(f'doc is missing path: "{path}": missing value')
    return document


def json_patch(target: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations", invalid=False)
    document = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError("each JSON patch operation needs an op and a path", invalid=False)
        op, path = operation["op"], operation["path"]
        if op == "add":
            document = _add(document, path, operation.get("value"))
        elif op == "remove":
            _remove(document, path)
        elif op == "replace":
            document = _add(document, path, operation.get("value"), replace=True)
        elif op == "move":
            value = _remove(document, operation["from"])
            document = _add(document, path, value)
        elif op == "copy":
            document = _add(document, path, _get(document, operation["from"]))
        elif op == "test":
            if _get(document, path) != operation.get("value"):
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"Unexpected kind: {op}", invalid=False)
    return document


# -- strategic merge patch -----------------------------------------------------------------------


def strategic_merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be an object", invalid=False)
    return _merge_map(copy.deepcopy(target) if isinstance(target, dict) else {}, patch)


def _merge_map(original: JSON, patch: JSON) -> JSON:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return {}
    retain = patch.get("$retainKeys")
    result = original
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [item for item in result[field] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            result[key] = _merge_map(copy.deepcopy(current) if isinstance(current, dict) else {}, value)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _apply_order(field, result[field], order)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(field: str, original: Any, patch: list[Any]) -> list[Any]:
    current = copy.deepcopy(original) if isinstance(original, list) else []
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(item) for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    if field in SET_LISTS:
        return current + [copy.deepcopy(item) for item in patch if item not in current]
    key = _merge_key(field, current + patch)
    if key is None or not all(isinstance(item, dict) for item in patch):
        return [copy.deepcopy(item) for item in patch]  # patchStrategy replace (the default)
    for item in patch:
        position = next(
            (i for i, old in enumerate(current) if isinstance(old, dict) and old.get(key) == item.get(key)),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                current.pop(position)
            continue
        if position is None:
            current.append(_merge_map({}, item))
        else:
            current[position] = _merge_map(current[position], item)
    return current


def _apply_order(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    """$setElementOrder: the patched list in the order the client sent, unlisted items after."""
    key = _merge_key(field, items)
    if key is None:
        return items

    def identity(item: Any) -> Any:
        return item.get(key) if isinstance(item, dict) else item

    wanted = [identity(entry) for entry in order]
    listed = [item for ident in wanted for item in items if identity(item) == ident]
    return listed + [item for item in items if identity(item) not in wanted]


# -- field ownership (managedFields) and server-side apply ---------------------------------------

Path = tuple[str, ...]


def _item_key(field: str, item: Any, siblings: list[Any]) -> str:
    key = _merge_key(field, siblings)
    if key is not None and isinstance(item, dict) and key in item:
        return "k:" + json.dumps({key: item[key]}, separators=(",", ":"))
    return "v:" + json.dumps(item, separators=(",", ":"), sort_keys=True)


def _is_keyed_list(field: str, value: list[Any]) -> bool:
    return bool(value) and (
        field in SET_LISTS
        or (_merge_key(field, value) is not None and all(isinstance(i, dict) for i in value))
    )


def leaf_paths(value: Any, prefix: Path = (), field: str = "") -> Iterator[Path]:
    """The fields an object sets, as FieldsV1 paths (``f:spec``, ``k:{"name":"web"}``, ``v:"x"``)."""
    if isinstance(value, dict) and value and field not in ATOMIC:
        for key, child in value.items():
            if not prefix and key in ("apiVersion", "kind", "status"):
                continue
            if prefix == ("f:metadata",) and key in _SERVER_METADATA:
                continue
            yield from leaf_paths(child, (*prefix, f"f:{key}"), key)
        if field in MAPS:
            yield (*prefix, ".")
    elif isinstance(value, list) and _is_keyed_list(field, value):
        for item in value:
            element = (*prefix, _item_key(field, item, value))
            if isinstance(item, dict):
                yield (*element, ".")
                yield from leaf_paths(item, element, "")
            else:
                yield element
    elif prefix:
        yield prefix


def fields_v1(paths: set[Path]) -> JSON:
    tree: JSON = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    return tree


def paths_of(tree: JSON, prefix: Path = ()) -> set[Path]:
    result: set[Path] = set()
    for element, child in tree.items():
        path = (*prefix, element)
        if child:
            result |= paths_of(child, path)
        else:
            result.add(path)
    return result


def _lookup(obj: Any, path: Path) -> tuple[bool, Any]:
    """The value at a FieldsV1 path (found?, value)."""
    node = obj
    for element in path:
        if element == ".":
            return True, node
        if element.startswith("f:") and isinstance(node, dict):
            if element[2:] not in node:
                return False, None
            node = node[element[2:]]
        elif element.startswith("k:") and isinstance(node, list):
            ((key, wanted),) = json.loads(element[2:]).items()
            found = next((item for item in node if isinstance(item, dict) and item.get(key) == wanted), None)
            if found is None:
                return False, None
            node = found
        elif element.startswith("v:") and isinstance(node, list):
            wanted = json.loads(element[2:])
            if wanted not in node:
                return False, None
            node = wanted
        else:
            return False, None
    return True, node


def _delete_path(obj: Any, path: Path) -> None:
    """Removes the field at ``path``; ``<item>/.``: the list item itself, ``<map>/.``: the map if empty."""
    if not path:
        return
    if path[-1] == ".":
        if len(path) >= 2 and path[-2][:2] in ("k:", "v:"):
            _delete_path(obj, path[:-1])
            found, rest = _lookup(obj, path[:-2])
            if found and rest == []:  # its last item gone, the list goes too
                _delete_path(obj, path[:-2])
        else:
            found, value = _lookup(obj, path[:-1])
            if found and value in ({}, []):
                _delete_path(obj, path[:-1])
        return
    found, parent = _lookup(obj, path[:-1])
    if not found:
        return
    element = path[-1]
    if element.startswith("f:") and isinstance(parent, dict):
        parent.pop(element[2:], None)
    elif element.startswith("k:") and isinstance(parent, list):
        ((key, wanted),) = json.loads(element[2:]).items()
        parent[:] = [item for item in parent if not (isinstance(item, dict) and item.get(key) == wanted)]
    elif element.startswith("v:") and isinstance(parent, list):
        wanted = json.loads(element[2:])
        parent[:] = [item for item in parent if item != wanted]


def _entries(obj: JSON) -> list[JSON]:
    return [entry for entry in obj.get("metadata", {}).get("managedFields") or [] if isinstance(entry, dict)]


Identity = tuple[str, str, str]  # manager, operation (Apply|Update), subresource ("" for the main resource)


def _identity(entry: JSON) -> Identity:
    return (str(entry.get("manager", "")), str(entry.get("operation", "")), str(entry.get("subresource", "")))


def _set_entry(obj: JSON, identity: Identity, api_version: str, paths: set[Path]) -> None:
    entries = [e for e in _entries(obj) if _identity(e) != identity]
    if paths:
        manager, operation, subresource = identity
        entry: JSON = {
            "manager": manager,
            "operation": operation,
            "apiVersion": api_version,
            "time": now_rfc3339(),
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_v1(paths),
        }
        if subresource:
            entry["subresource"] = subresource
        entries.append(entry)
    obj.setdefault("metadata", {})["managedFields"] = entries


def _drop_from_others(obj: JSON, identity: Identity, paths: set[Path]) -> None:
    """Ownership of ``paths`` moves to one manager: the others' entries lose them (empty ones go)."""
    kept = []
    for entry in _entries(obj):
        if _identity(entry) == identity:
            kept.append(entry)
            continue
        owned = paths_of(entry.get("fieldsV1") or {}) - paths
        if owned:
            kept.append({**entry, "fieldsV1": fields_v1(owned)})
    obj["metadata"]["managedFields"] = kept


def _owned(entry: JSON) -> set[Path]:
    return paths_of(entry.get("fieldsV1") or {})


def record_update(new: JSON, old: JSON | None, manager: str, api_version: str, subresource: str = "") -> None:
    """An Update (create, replace, patch): the fields it changed become the manager's."""
    identity = (manager, "Update", subresource)
    new_paths = set(leaf_paths(new))
    if old is None:
        changed = new_paths
        new.setdefault("metadata", {})["managedFields"] = []
    else:
        changed = {path for path in new_paths if _lookup(old, path) != _lookup(new, path)}
        new.setdefault("metadata", {})["managedFields"] = copy.deepcopy(_entries(old))
    if not changed:
        return
    _drop_from_others(new, identity, changed)
    mine = next((e for e in _entries(new) if _identity(e) == identity), None)
    owned = (_owned(mine) if mine else set()) | changed
    owned = {path for path in owned if _lookup(new, path)[0]}  # removed fields are nobody's
    _set_entry(new, identity, api_version, owned)


def record_apply(obj: JSON, config: JSON, manager: str, api_version: str) -> None:
    """The first apply of an object (a create): the manager owns what it applied."""
    obj.setdefault("metadata", {})["managedFields"] = []
    _set_entry(obj, (manager, "Apply", ""), api_version, set(leaf_paths(config)))


def apply(current: JSON, config: JSON, manager: str, api_version: str, force: bool) -> JSON:
    """Server-side apply of ``config`` by ``manager`` onto ``current``: the merged object (409: conflicts)."""
    identity = (manager, "Apply", "")
    applied = set(leaf_paths(config))
    conflicts: list[tuple[Identity, Path]] = []
    for entry in _entries(current):
        if _identity(entry) == identity:
            continue
        for path in applied & _owned(entry):
            if path[-1] == ".":
                continue
            if _lookup(current, path) != _lookup(config, path):
                conflicts.append((_identity(entry), path))
    if conflicts and not force:
        raise _conflict_error(conflicts, api_version)
    merged: JSON = strategic_merge(current, _for_merge(config))
    previous = next((e for e in _entries(current) if _identity(e) == identity), None)
    if previous is not None:
        others: set[Path] = set()
        for entry in _entries(current):
            if entry is not previous:
                others |= _owned(entry)
        # Whole list items first (their fields go with them), then fields from the deepest up.
        for path in sorted(_owned(previous) - applied - others, key=_removal_order):
            _delete_path(merged, path)
    merged["metadata"]["managedFields"] = copy.deepcopy(_entries(current))
    if force:
        _drop_from_others(merged, identity, {path for _, path in conflicts})
    _set_entry(merged, identity, api_version, applied)
    return merged


def _removal_order(path: Path) -> tuple[bool, int]:
    is_item = len(path) >= 2 and path[-1] == "." and path[-2][:2] in ("k:", "v:")
    return (not is_item, -len(path))


def _for_merge(config: JSON) -> JSON:
    """An applied configuration as a strategic patch: scalars and lists of scalars replace."""
    patch = copy.deepcopy(config)
    patch.get("metadata", {}).pop("managedFields", None)
    return patch


def _render_path(path: Path) -> str:
    text = ""
    for element in path:
        if element.startswith("f:"):
            text += "." + element[2:]
        elif element.startswith("k:"):
            text += "[" + ",".join(f"{k}=" + json.dumps(v) for k, v in json.loads(element[2:]).items()) + "]"
        elif element.startswith("v:"):
            text += "[=" + element[2:] + "]"
    return text


def _conflict_with(identity: Identity, api_version: str) -> str:
    manager, _, subresource = identity
    where = f' with subresource "{subresource}"' if subresource else ""
    return f'conflict with "{manager}"{where} using {api_version}'


def _conflict_error(conflicts: list[tuple[Identity, Path]], api_version: str) -> StoreError:
    """409 with FieldManagerConflict causes, as the API server words it for kubectl."""
    lines = [f"{_conflict_with(identity, api_version)}: {_render_path(path)}" for identity, path in conflicts]
    count = len(conflicts)
    message = f"Apply failed with {count} conflict{'s' if count != 1 else ''}: " + "\n".join(lines)
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": _conflict_with(identity, api_version),
            "field": _render_path(path),
        }
        for identity, path in conflicts
    ]
    return StoreError(409, "Conflict", message, {}, causes)
