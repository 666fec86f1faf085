"""The OpenAPI v2 document in the protobuf form kubectl asks for (gnostic's ``openapi.v2.Document``).

kubectl and client-go fetch ``/openapi/v2`` only as
``application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` and need it whenever the v3 document
cannot answer: client-side validation of a ``kind: List`` manifest (what ``kubectl get -o yaml``
prints for several objects) and of kinds with no PATCH operation (SelfSubjectAccessReview), and
``kubectl explain --output=plaintext-openapiv2``. This module encodes the double's Swagger 2.0 JSON
(``openapi.v2_document()``) as that message: field numbers from gnostic's ``OpenAPIv2.proto``
(https://github.com/google/gnostic/blob/main/openapiv2/OpenAPIv2.proto). Values that the proto
keeps as ``Any`` (vendor extensions, defaults, enums) travel as YAML text, which is what
kube-openapi's readers parse (JSON is YAML). Keys this encoder does not know raise: a document
that would silently lose a field is a bug to fix, not to serve.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from typing import Any

JSON = dict[str, Any]
# kubectl asks with "@", which is no token character: the answer names the type with a dot, or
# client-go's mime.ParseMediaType fails on the response ("unexpected content after media subtype").
MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
MEDIA_TYPES = ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf", MEDIA_TYPE)

_VARINT, _FIXED64, _LENGTH = 0, 1, 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _message(number: int, payload: bytes) -> bytes:
    """A length-delimited field: an embedded message, a string or bytes (always written)."""
    return _key(number, _LENGTH) + _varint(len(payload)) + payload


def _string(number: int, value: str) -> bytes:
    return _message(number, value.encode()) if value else b""  # proto3 leaves out defaults


def _strings(number: int, values: Iterable[str]) -> bytes:
    return b"".join(_message(number, value.encode()) for value in values)


def _bool(number: int, value: bool) -> bytes:
    return _key(number, _VARINT) + b"\x01" if value else b""


def _int(number: int, value: int) -> bytes:
    return _key(number, _VARINT) + _varint(value) if value else b""


def _double(number: int, value: float) -> bytes:
    return _key(number, _FIXED64) + struct.pack("<d", value)


def _any(number: int, value: Any) -> bytes:
    """An ``openapi.v2.Any`` holding ``value`` as YAML text (field 2)."""
    return _message(number, _string(2, json.dumps(value, separators=(",", ":"))))


def _named(number: int, name: str, value: bytes) -> bytes:
    """One entry of gnostic's ordered maps (``Named*``: name 1, value 2)."""
    return _message(number, _string(1, name) + _message(2, value))


def _extensions(number: int, node: JSON) -> bytes:
    return b"".join(
        _message(number, _string(1, key) + _any(2, value))
        for key, value in node.items()
        if key.startswith("x-")
    )


def _unknown(node: JSON, known: frozenset[str], what: str) -> None:
    extra = {key for key in node if key not in known and not key.startswith("x-")}
    if extra:
        raise ValueError(f"{what}: no protobuf field for {sorted(extra)}")


_SCHEMA_KEYS = frozenset(
    {
        "$ref",
        "format",
        "title",
        "description",
        "default",
        "maximum",
        "minimum",
        "uniqueItems",
        "required",
        "enum",
        "additionalProperties",
        "type",
        "items",
        "allOf",
        "properties",
        "readOnly",
        "example",
    }
)


def schema(node: JSON) -> bytes:
    """An ``openapi.v2.Schema``."""
    _unknown(node, _SCHEMA_KEYS, "schema")
    out = bytearray()
    out += _string(1, node.get("$ref", ""))
    out += _string(2, node.get("format", ""))
    out += _string(3, node.get("title", ""))
    out += _string(4, node.get("description", ""))
    if "default" in node:
        out += _any(5, node["default"])
    if "maximum" in node:
        out += _double(7, float(node["maximum"]))
    if "minimum" in node:
        out += _double(9, float(node["minimum"]))
    out += _bool(16, bool(node.get("uniqueItems")))
    out += _strings(19, node.get("required", ()))
    for value in node.get("enum", ()):
        out += _any(20, value)
    additional = node.get("additionalProperties")
    if isinstance(additional, dict):
        out += _message(21, _message(1, schema(additional)))
    elif isinstance(additional, bool):
        out += _message(21, _key(2, _VARINT) + (b"\x01" if additional else b"\x00"))
    types = node.get("type")
    if types is not None:
        out += _message(22, _strings(1, [types] if isinstance(types, str) else types))
    items = node.get("items")
    if items is not None:
        out += _message(
            23, b"".join(_message(1, schema(i)) for i in (items if isinstance(items, list) else [items]))
        )
    for part in node.get("allOf", ()):
        out += _message(24, schema(part))
    properties = node.get("properties")
    if properties is not None:
        out += _message(25, b"".join(_named(1, name, schema(value)) for name, value in properties.items()))
    out += _bool(27, bool(node.get("readOnly")))
    if "example" in node:
        out += _any(30, node["example"])
    out += _extensions(31, node)
    return bytes(out)


_PARAMETER_KEYS = frozenset(
    {"name", "in", "description", "required", "type", "format", "uniqueItems", "schema"}
)


def parameter(node: JSON) -> bytes:
    """An ``openapi.v2.ParametersItem`` holding a body, query or path parameter."""
    _unknown(node, _PARAMETER_KEYS, "parameter")
    where = node["in"]
    if where == "body":
        body = (
            _string(1, node.get("description", ""))
            + _string(2, node["name"])
            + _string(3, where)
            + _bool(4, bool(node.get("required")))
            + _message(5, schema(node["schema"]))
        )
        return _message(1, _message(1, body))  # ParametersItem.parameter -> Parameter.body_parameter
    common = (
        _bool(1, bool(node.get("required")))
        + _string(2, where)
        + _string(3, node.get("description", ""))
        + _string(4, node["name"])
    )
    if where == "query":  # QueryParameterSubSchema: allow_empty_value is 5, so type 6, format 7
        sub = common + _string(6, node.get("type", "")) + _string(7, node.get("format", ""))
        sub += _bool(20, bool(node.get("uniqueItems")))
        variant = 3
    elif where == "path":  # PathParameterSubSchema: type 5, format 6
        sub = common + _string(5, node.get("type", "")) + _string(6, node.get("format", ""))
        sub += _bool(19, bool(node.get("uniqueItems")))
        variant = 4
    else:
        raise ValueError(f"parameter in {where!r}: the double declares body, query and path parameters only")
    # ParametersItem.parameter -> Parameter.non_body_parameter -> the variant's sub-schema
    return _message(1, _message(2, _message(variant, sub)))


_OPERATION_KEYS = frozenset(
    {
        "tags",
        "summary",
        "description",
        "operationId",
        "produces",
        "consumes",
        "parameters",
        "responses",
        "schemes",
    }
)


def operation(node: JSON) -> bytes:
    """An ``openapi.v2.Operation``."""
    _unknown(node, _OPERATION_KEYS, "operation")
    out = bytearray()
    out += _strings(1, node.get("tags", ()))
    out += _string(2, node.get("summary", ""))
    out += _string(3, node.get("description", ""))
    out += _string(5, node.get("operationId", ""))
    out += _strings(6, node.get("produces", ()))
    out += _strings(7, node.get("consumes", ()))
    for item in node.get("parameters", ()):
        out += _message(8, parameter(item))
    responses = b""
    for code, response in node.get("responses", {}).items():
        _unknown(response, frozenset({"description", "schema"}), "response")
        body = _string(1, response.get("description", ""))
        if "schema" in response:
            body += _message(2, _message(1, schema(response["schema"])))  # SchemaItem.schema
        responses += _named(1, code, _message(1, body))  # ResponseValue.response
    out += _message(9, responses)
    out += _strings(10, node.get("schemes", ()))
    out += _extensions(13, node)
    return bytes(out)


_PATH_ITEM_FIELDS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def path_item(node: JSON) -> bytes:
    _unknown(node, frozenset({*_PATH_ITEM_FIELDS, "parameters"}), "path item")
    out = bytearray()
    for method, number in _PATH_ITEM_FIELDS.items():
        if method in node:
            out += _message(number, operation(node[method]))
    for item in node.get("parameters", ()):
        out += _message(9, parameter(item))
    out += _extensions(10, node)
    return bytes(out)


def _security_definitions(node: JSON) -> bytes:
    entries = b""
    for name, scheme in node.items():
        _unknown(scheme, frozenset({"type", "name", "in", "description"}), "security scheme")
        if scheme["type"] != "apiKey":
            raise ValueError(f"security scheme {name}: only apiKey is declared by the double")
        api_key = (
            _string(1, scheme["type"])
            + _string(2, scheme.get("name", ""))
            + _string(3, scheme.get("in", ""))
            + _string(4, scheme.get("description", ""))
        )
        entries += _named(1, name, _message(2, api_key))  # SecurityDefinitionsItem.api_key_security
    return entries


def _security(requirements: list[JSON]) -> bytes:
    return b"".join(
        _message(12, b"".join(_named(1, name, _strings(1, scopes)) for name, scopes in requirement.items()))
        for requirement in requirements
    )


_DOCUMENT_KEYS = frozenset(
    {"swagger", "info", "host", "basePath", "schemes", "consumes", "produces", "paths", "definitions"}
    | {"security", "securityDefinitions"}
)


def document(node: JSON) -> bytes:
    """An ``openapi.v2.Document`` from a Swagger 2.0 JSON document."""
    _unknown(node, _DOCUMENT_KEYS, "document")
    info = node.get("info", {})
    out = bytearray()
    out += _string(1, node["swagger"])
    out += _message(2, _string(1, info.get("title", "")) + _string(2, info.get("version", "")))
    out += _string(3, node.get("host", ""))
    out += _string(4, node.get("basePath", ""))
    out += _strings(5, node.get("schemes", ()))
    out += _strings(6, node.get("consumes", ()))
    out += _strings(7, node.get("produces", ()))
    paths = b"".join(_named(2, path, path_item(item)) for path, item in node.get("paths", {}).items())
    out += _message(8, paths)
    definitions = b"".join(
        _named(1, name, schema(value)) for name, value in node.get("definitions", {}).items()
    )
    out += _message(9, definitions)
    out += _security(node.get("security", []))
    if "securityDefinitions" in node:
        out += _message(13, _security_definitions(node["securityDefinitions"]))
    out += _extensions(16, node)
    return bytes(out)
