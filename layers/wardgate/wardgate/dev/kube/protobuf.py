"""Reading the Kubernetes protobuf bodies kubectl sends, as the JSON they stand for.

kubectl 1.32's typed clients (``kubectl create configmap|secret|deployment|namespace|service|
serviceaccount`` and ``kubectl auth can-i``) send their request bodies as
``application/vnd.kubernetes.protobuf``: the four bytes ``k8s\\0`` then a ``runtime.Unknown``
message (typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2: the object's own message), per
https://kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding. A real API
server decodes every built-in type; this double decodes the messages those commands produce, with
field numbers from k8s.io/api's and k8s.io/apimachinery's ``generated.proto``, and refuses (415)
any field it does not know rather than dropping it (unless it holds a zero value: Go's marshaller
writes those for plain fields, where JSON would leave them out). Answers are always JSON, which client-go
accepts from the response's Content-Type.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

from wardgate.dev.kube.store import JSON, StoreError

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

# Field kinds: "string", "bytes" (base64 in JSON), "int", "bool", "time" (meta/v1 Time),
# "intstr" (IntOrString), "quantity", "strings" (repeated string), "map" (map<string,string>),
# "bytesmap" (map<string,bytes>), "quantities" (map<string,Quantity>), or a message name; a
# leading "*" marks a repeated message.
Field = tuple[str, str]
# Fields Go declares as pointers: present on the wire even when zero, and then kept in JSON.
_KEEP_ZERO = frozenset(
    {
        "replicas",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
        "terminationGracePeriodSeconds",
        "activeDeadlineSeconds",
        "immutable",
        "automountServiceAccountToken",
        "enableServiceLinks",
        "allocateLoadBalancerNodePorts",
        "controller",
        "blockOwnerDeletion",
    }
)

SCHEMA: dict[str, dict[int, Field]] = {
    "ObjectMeta": {
        1: ("name", "string"),
        2: ("generateName", "string"),
        3: ("namespace", "string"),
        4: ("selfLink", "string"),
        5: ("uid", "string"),
        6: ("resourceVersion", "string"),
        7: ("generation", "int"),
        8: ("creationTimestamp", "time"),
        9: ("deletionTimestamp", "time"),
        10: ("deletionGracePeriodSeconds", "int"),
        11: ("labels", "map"),
        12: ("annotations", "map"),
        13: ("ownerReferences", "*OwnerReference"),
        14: ("finalizers", "strings"),
    },
    "OwnerReference": {
        1: ("kind", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
        5: ("apiVersion", "string"),
        6: ("controller", "bool"),
        7: ("blockOwnerDeletion", "bool"),
    },
    "LabelSelector": {1: ("matchLabels", "map"), 2: ("matchExpressions", "*LabelSelectorRequirement")},
    "LabelSelectorRequirement": {1: ("key", "string"), 2: ("operator", "string"), 3: ("values", "strings")},
    "ConfigMap": {
        1: ("metadata", "ObjectMeta"),
        2: ("data", "map"),
        3: ("binaryData", "bytesmap"),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", "ObjectMeta"),
        2: ("data", "bytesmap"),
        3: ("type", "string"),
        4: ("stringData", "map"),
        5: ("immutable", "bool"),
    },
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec"), 3: ("status", "Empty")},
    "NamespaceSpec": {1: ("finalizers", "strings")},
    "ServiceAccount": {
        1: ("metadata", "ObjectMeta"),
        2: ("secrets", "*ObjectReference"),
        3: ("imagePullSecrets", "*LocalObjectReference"),
        4: ("automountServiceAccountToken", "bool"),
    },
    "ObjectReference": {
        1: ("kind", "string"),
        2: ("namespace", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
        5: ("apiVersion", "string"),
        6: ("resourceVersion", "string"),
        7: ("fieldPath", "string"),
    },
    "LocalObjectReference": {1: ("name", "string")},
    "Service": {1: ("metadata", "ObjectMeta"), 2: ("spec", "ServiceSpec"), 3: ("status", "ServiceStatus")},
    "ServiceSpec": {
        1: ("ports", "*ServicePort"),
        2: ("selector", "map"),
        3: ("clusterIP", "string"),
        4: ("type", "string"),
        5: ("externalIPs", "strings"),
        7: ("sessionAffinity", "string"),
        8: ("loadBalancerIP", "string"),
        10: ("externalName", "string"),
        11: ("externalTrafficPolicy", "string"),
        17: ("ipFamilyPolicy", "string"),
        18: ("clusterIPs", "strings"),
        19: ("ipFamilies", "strings"),
        20: ("allocateLoadBalancerNodePorts", "bool"),
        22: ("internalTrafficPolicy", "string"),
    },
    "ServicePort": {
        1: ("name", "string"),
        2: ("protocol", "string"),
        3: ("port", "int"),
        4: ("targetPort", "intstr"),
        5: ("nodePort", "int"),
        6: ("appProtocol", "string"),
    },
    "ServiceStatus": {1: ("loadBalancer", "Empty")},
    "Deployment": {1: ("metadata", "ObjectMeta"), 2: ("spec", "DeploymentSpec"), 3: ("status", "Empty")},
    "DeploymentSpec": {
        1: ("replicas", "int"),
        2: ("selector", "LabelSelector"),
        3: ("template", "PodTemplateSpec"),
        4: ("strategy", "DeploymentStrategy"),
        5: ("minReadySeconds", "int"),
        6: ("revisionHistoryLimit", "int"),
        7: ("paused", "bool"),
        9: ("progressDeadlineSeconds", "int"),
    },
    "DeploymentStrategy": {1: ("type", "string"), 2: ("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: ("maxUnavailable", "intstr"), 2: ("maxSurge", "intstr")},
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec")},
    "PodSpec": {
        2: ("containers", "*Container"),
        3: ("restartPolicy", "string"),
        4: ("terminationGracePeriodSeconds", "int"),
        5: ("activeDeadlineSeconds", "int"),
        6: ("dnsPolicy", "string"),
        7: ("nodeSelector", "map"),
        8: ("serviceAccountName", "string"),
        9: ("serviceAccount", "string"),
        10: ("nodeName", "string"),
        15: ("imagePullSecrets", "*LocalObjectReference"),
        16: ("hostname", "string"),
        17: ("subdomain", "string"),
        19: ("schedulerName", "string"),
        20: ("initContainers", "*Container"),
        21: ("automountServiceAccountToken", "bool"),
        30: ("enableServiceLinks", "bool"),
    },
    "Container": {
        1: ("name", "string"),
        2: ("image", "string"),
        3: ("command", "strings"),
        4: ("args", "strings"),
        5: ("workingDir", "string"),
        6: ("ports", "*ContainerPort"),
        7: ("env", "*EnvVar"),
        8: ("resources", "ResourceRequirements"),
        13: ("terminationMessagePath", "string"),
        14: ("imagePullPolicy", "string"),
        16: ("stdin", "bool"),
        17: ("stdinOnce", "bool"),
        18: ("tty", "bool"),
        20: ("terminationMessagePolicy", "string"),
    },
    "ContainerPort": {
        1: ("name", "string"),
        2: ("hostPort", "int"),
        3: ("containerPort", "int"),
        4: ("protocol", "string"),
        5: ("hostIP", "string"),
    },
    "EnvVar": {1: ("name", "string"), 2: ("value", "string")},
    "ResourceRequirements": {1: ("limits", "quantities"), 2: ("requests", "quantities")},
    "SelfSubjectAccessReview": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "SelfSubjectAccessReviewSpec"),
        3: ("status", "SubjectAccessReviewStatus"),
    },
    "SelfSubjectAccessReviewSpec": {
        1: ("resourceAttributes", "ResourceAttributes"),
        2: ("nonResourceAttributes", "NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: ("namespace", "string"),
        2: ("verb", "string"),
        3: ("group", "string"),
        4: ("version", "string"),
        5: ("resource", "string"),
        6: ("subresource", "string"),
        7: ("name", "string"),
    },
    "NonResourceAttributes": {1: ("path", "string"), 2: ("verb", "string")},
    "SubjectAccessReviewStatus": {
        1: ("allowed", "bool"),
        2: ("reason", "string"),
        3: ("evaluationError", "string"),
        4: ("denied", "bool"),
    },
    "DeleteOptions": {
        1: ("gracePeriodSeconds", "int"),
        2: ("preconditions", "Preconditions"),
        3: ("orphanDependents", "bool"),
        4: ("propagationPolicy", "string"),
        5: ("dryRun", "strings"),
    },
    "Preconditions": {1: ("uid", "string"), 2: ("resourceVersion", "string")},
    "Empty": {},  # a status kubectl sends empty
}
ROOTS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "Namespace"): "Namespace",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Service"): "Service",
    ("apps/v1", "Deployment"): "Deployment",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("v1", "DeleteOptions"): "DeleteOptions",
    ("meta.k8s.io/v1", "DeleteOptions"): "DeleteOptions",
}


def _unsupported(what: str) -> StoreError:
    return StoreError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format: this cluster double reads {MEDIA_TYPE} only for "
        f"the objects kubectl's create generators and auth can-i send ({what}); send application/json",
    )


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if position >= len(data) or shift > 63:
            raise _unsupported("a truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """The (field number, wire type, value) triples of one message: ints or byte strings."""
    fields: list[tuple[int, int, Any]] = []
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        value: int | bytes
        if wire_type == 0:
            value, position = _varint(data, position)
        elif wire_type == 2:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise _unsupported("a truncated field")
            value, position = data[position : position + length], position + length
        elif wire_type == 1:
            value, position = int.from_bytes(data[position : position + 8], "little"), position + 8
        elif wire_type == 5:
            value, position = int.from_bytes(data[position : position + 4], "little"), position + 4
        else:
            raise _unsupported(f"wire type {wire_type}")
        fields.append((number, wire_type, value))
    return fields


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _map_entry(data: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for number, _, item in _fields(data):
        if number == 1:
            key = item.decode()
        elif number == 2:
            value = item
    return key, value


def _message(name: str, data: bytes) -> JSON:
    schema = SCHEMA.get(name)
    if schema is None:
        raise _unsupported(name)
    result: JSON = {}
    for number, wire_type, value in _fields(data):
        field = schema.get(number)
        if field is None:
            if value in (0, b""):  # Go writes its zero values; JSON would leave them out
                continue
            raise _unsupported(f"{name} field {number}")
        json_name, kind = field
        if kind == "string":
            result[json_name] = value.decode()
        elif kind == "bytes":
            result[json_name] = base64.b64encode(value).decode()
        elif kind == "int":
            result[json_name] = _signed(value)
        elif kind == "bool":
            result[json_name] = bool(value)
        elif kind == "strings":
            result.setdefault(json_name, []).append(value.decode())
        elif kind in ("map", "bytesmap", "quantities"):
            key, raw = _map_entry(value)
            if kind == "map":
                entry: Any = raw.decode()
            elif kind == "bytesmap":
                entry = base64.b64encode(raw).decode()
            else:
                entry = next((v.decode() for n, _, v in _fields(raw) if n == 1), "")
            result.setdefault(json_name, {})[key] = entry
        elif kind == "time":
            seconds = next((_signed(v) for n, _, v in _fields(value) if n == 1), 0)
            if seconds:
                moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
                result[json_name] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif kind == "intstr":
            parts = {n: v for n, _, v in _fields(value)}
            result[json_name] = parts.get(3, b"").decode() if parts.get(1) == 1 else _signed(parts.get(2, 0))
        elif kind.startswith("*"):
            result.setdefault(json_name, []).append(_message(kind[1:], value))
        else:
            if wire_type != 2:
                raise _unsupported(f"{name} field {number}")
            result[json_name] = _message(kind, value)
    # Go's JSON leaves out zero values of non-pointer fields (omitempty); pointer fields stay.
    return {
        key: value
        for key, value in result.items()
        if key in _KEEP_ZERO or not (value in ("", 0, False) and not isinstance(value, dict | list))
    }


def decode(body: bytes) -> JSON:
    """A protobuf-encoded object (with its ``k8s\\0`` envelope) as the JSON object it stands for."""
    if not body.startswith(MAGIC):
        raise _unsupported("no k8s envelope")
    envelope = {n: v for n, _, v in _fields(body[len(MAGIC) :])}
    type_meta = {n: v.decode() for n, _, v in _fields(envelope.get(1, b""))}
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    if envelope.get(3) or envelope.get(4):
        raise _unsupported("an encoded or typed raw payload")
    root = ROOTS.get((api_version, kind))
    if root is None:
        raise _unsupported(f"{api_version} {kind}")
    obj = _message(root, envelope.get(2, b""))
    return {"apiVersion": api_version, "kind": kind, **obj}
