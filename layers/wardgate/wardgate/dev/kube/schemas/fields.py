"""Small builders for the double's OpenAPI v3 schemas, so each type below reads as a field list.

The shapes follow what a real API server serves at ``/openapi/v3/<group-version>`` (OpenAPI 3.0):
a field that holds another named type is ``{"allOf": [{"$ref": ...}], "description": ...}``
because OpenAPI 3.0 ignores siblings of a bare ``$ref`` (the description would be lost for
``kubectl explain``); struct-valued fields that are not pointers carry ``"default": {}``; lists
carry the strategic-merge and server-side-apply extensions (``x-kubernetes-patch-strategy``,
``x-kubernetes-patch-merge-key``, ``x-kubernetes-list-type``, ``x-kubernetes-list-map-keys``), see
https://kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy. Descriptions are
written for this double, briefly, in the reference's sense.
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]
REF_PREFIX = "#/components/schemas/"

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
CORE = "io.k8s.api.core.v1."
APPS = "io.k8s.api.apps.v1."
AUTOSCALING = "io.k8s.api.autoscaling.v1."
AUTHORIZATION = "io.k8s.api.authorization.v1."
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
RAW_EXTENSION = "io.k8s.apimachinery.pkg.runtime.RawExtension"


def ref(name: str, description: str, *, default: bool = False) -> JSON:
    """A field holding the named type (``default: {}`` for a non-pointer struct, as served)."""
    schema: JSON = {"allOf": [{"$ref": REF_PREFIX + name}], "description": description}
    if default:
        schema["default"] = {}
    return schema


def string(
    description: str, *, enum: tuple[str, ...] = (), fmt: str = "", default: str | None = None
) -> JSON:
    schema: JSON = {"type": "string", "description": description}
    if enum:
        schema["enum"] = list(enum)
    if fmt:
        schema["format"] = fmt
    if default is not None:
        schema["default"] = default
    return schema


def integer(description: str, *, fmt: str = "int32", default: int | None = None) -> JSON:
    schema: JSON = {"type": "integer", "format": fmt, "description": description}
    if default is not None:
        schema["default"] = default
    return schema


def boolean(description: str) -> JSON:
    return {"type": "boolean", "description": description}


def free_object(description: str) -> JSON:
    """A field the double does not model in detail: any object is accepted and kept as given."""
    return {"type": "object", "description": description, "x-kubernetes-preserve-unknown-fields": True}


def string_map(description: str) -> JSON:
    return {
        "type": "object",
        "additionalProperties": {"type": "string", "default": ""},
        "description": description,
    }


def map_of(name: str, description: str) -> JSON:
    return {"type": "object", "additionalProperties": {"$ref": REF_PREFIX + name}, "description": description}


def string_list(description: str, *, list_type: str = "atomic", strategy: str = "") -> JSON:
    schema: JSON = {
        "type": "array",
        "items": {"type": "string", "default": ""},
        "description": description,
        "x-kubernetes-list-type": list_type,
    }
    if strategy:
        schema["x-kubernetes-patch-strategy"] = strategy
    return schema


def list_of(
    name: str,
    description: str,
    *,
    merge_key: str = "",
    strategy: str = "",
    map_keys: tuple[str, ...] = (),
    list_type: str = "",
) -> JSON:
    """A list of the named type; ``map_keys`` make it a server-side-apply map list."""
    schema: JSON = {
        "type": "array",
        "items": {"allOf": [{"$ref": REF_PREFIX + name}], "default": {}},
        "description": description,
    }
    if map_keys:
        schema["x-kubernetes-list-type"] = "map"
        schema["x-kubernetes-list-map-keys"] = list(map_keys)
    elif list_type:
        schema["x-kubernetes-list-type"] = list_type
    if merge_key:
        schema["x-kubernetes-patch-merge-key"] = merge_key
    if strategy:
        schema["x-kubernetes-patch-strategy"] = strategy
    return schema


def free_list(description: str) -> JSON:
    """A list of objects the double does not model in detail (affinity terms, host aliases...)."""
    return {
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "description": description,
        "x-kubernetes-list-type": "atomic",
    }


def struct(description: str, properties: JSON, *, required: tuple[str, ...] = (), **extensions: Any) -> JSON:
    schema: JSON = {"description": description, "type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    schema.update({k.replace("_", "-"): v for k, v in extensions.items()})
    return schema


def gvk(group: str, version: str, kind: str) -> list[JSON]:
    """The ``x-kubernetes-group-version-kind`` of a top-level kind (a list: some types have several)."""
    return [{"group": group, "kind": kind, "version": version}]


def type_meta(description_kind: str) -> JSON:
    """apiVersion and kind, as every top-level object and list declares them."""
    return {
        "apiVersion": string(
            "APIVersion names the versioned schema of this representation of an object; a server "
            "converts recognised schemas to its latest internal value and may reject unknown ones. "
            "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
        ),
        "kind": string(
            f"Kind is a string value naming the REST resource this object represents ({description_kind}); "
            "a server may infer it from the endpoint the client submits to. It cannot be updated, in "
            "CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
        ),
    }


def object_metadata() -> JSON:
    return ref(
        META + "ObjectMeta",
        "Standard object's metadata. More info: "
        "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
        default=True,
    )


def list_metadata() -> JSON:
    return ref(
        META + "ListMeta",
        "Standard list metadata. More info: "
        "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
        default=True,
    )


def list_kind(prefix: str, group: str, version: str, kind: str, plural: str) -> tuple[str, JSON]:
    """The ``<Kind>List`` type every listable kind has: its schema's name and schema."""
    return prefix + kind + "List", struct(
        f"{kind}List is a list of {kind} objects.",
        {
            **type_meta(kind + "List"),
            "items": list_of(prefix + kind, f"Items is the list of {plural}."),
            "metadata": list_metadata(),
        },
        required=("items",),
        x_kubernetes_group_version_kind=gvk(group, version, kind + "List"),
    )
