"""meta/v1 and the apimachinery scalar types (Time, Quantity, IntOrString), as a v1.32 server names them.

Time and MicroTime are strings in date-time format. Quantity and IntOrString take either of two
JSON types, which OpenAPI v3 says with ``oneOf`` (so ``kubectl explain`` names them by their type
name, ``<IntOrString>``); the v2 document declares them as strings (``int-or-string`` format). See
https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/.
"""

from __future__ import annotations

from wardgate.dev.kube.schemas.fields import (
    INT_OR_STRING,
    JSON,
    META,
    QUANTITY,
    RAW_EXTENSION,
    boolean,
    gvk,
    integer,
    list_metadata,
    list_of,
    ref,
    string,
    string_list,
    string_map,
    struct,
    type_meta,
)

_TIME = META + "Time"

DEFINITIONS: dict[str, JSON] = {
    _TIME: {
        "description": "Time is a timestamp in RFC 3339 form (seconds precision) in UTC.",
        "type": "string",
        "format": "date-time",
    },
    META + "MicroTime": {
        "description": "MicroTime is a timestamp in RFC 3339 form with microseconds.",
        "type": "string",
        "format": "date-time",
    },
    QUANTITY: {
        "description": (
            "Quantity is a fixed-point number with a suffix: binary SI (Ki, Mi, Gi, Ti, Pi, Ei), "
            "decimal SI (m, k, M, G, T, P, E) or a decimal exponent (e3). Written as a string, "
            'for example "500m" CPU or "128Mi" memory.'
        ),
        "oneOf": [{"type": "string"}, {"type": "number"}],
    },
    INT_OR_STRING: {
        "description": "IntOrString holds either an int32 or a string (a port number or a port name).",
        "format": "int-or-string",
        "oneOf": [{"type": "integer"}, {"type": "string"}],
    },
    RAW_EXTENSION: {
        "description": "RawExtension holds a complete embedded object (a watch event's object).",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    },
    META + "FieldsV1": {
        "description": "FieldsV1 is the set of fields a manager owns, in the fieldsV1 trie format.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    },
    META + "Patch": {
        "description": "Patch is a patch document; its format is the request's Content-Type.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    },
    META + "ObjectMeta": struct(
        "ObjectMeta is the metadata every persisted resource has, including what users create.",
        {
            "annotations": string_map(
                "Annotations is an unstructured key value map that tools store with a resource; not "
                "queryable. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/annotations"
            ),
            "creationTimestamp": ref(_TIME, "When the object was created, set by the server. Read-only."),
            "deletionGracePeriodSeconds": integer(
                "Seconds the object is allowed to terminate gracefully before removal. Read-only.",
                fmt="int64",
            ),
            "deletionTimestamp": ref(_TIME, "When the object will be deleted, set by the server. Read-only."),
            "finalizers": string_list(
                "Finalizers must be empty before the object is deleted from the registry.",
                list_type="set",
                strategy="merge",
            ),
            "generateName": string("A prefix the server uses to generate a unique name when name is empty."),
            "generation": integer(
                "A sequence number for the desired state's generation. Read-only.", fmt="int64"
            ),
            "labels": string_map(
                "Map of string keys and values that selectors match on. More info: "
                "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels"
            ),
            "managedFields": list_of(
                META + "ManagedFieldsEntry",
                "Which manager owns which fields (server-side apply). Clients rarely set it.",
                list_type="atomic",
            ),
            "name": string(
                "Name must be unique within a namespace; required when creating resources. Cannot be "
                "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
            ),
            "namespace": string(
                "Namespace defines the space within which the name must be unique; empty for cluster-scoped "
                "objects. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces"
            ),
            "ownerReferences": list_of(
                META + "OwnerReference",
                "Objects this object depends on; it is garbage collected when all owners are gone.",
                merge_key="uid",
                strategy="merge",
                map_keys=("uid",),
            ),
            "resourceVersion": string(
                "An opaque value for the object's internal version, for optimistic concurrency, change "
                "detection and watch. Read-only."
            ),
            "selfLink": string("Deprecated: not set by the server."),
            "uid": string(
                "The unique identifier of this object in time and space, set by the server. Read-only."
            ),
        },
    ),
    META + "ListMeta": struct(
        "ListMeta is the metadata of lists: their resourceVersion and continuation.",
        {
            "continue": string("Set when the list is limited: pass it back to fetch the next page."),
            "remainingItemCount": integer("How many items the list left out, when known.", fmt="int64"),
            "resourceVersion": string("The list's resourceVersion, to watch from. Read-only."),
            "selfLink": string("Deprecated: not set by the server."),
        },
    ),
    META + "OwnerReference": struct(
        "OwnerReference identifies an owning object in the same namespace.",
        {
            "apiVersion": string("API version of the referent."),
            "blockOwnerDeletion": boolean(
                "If true, the owner cannot be deleted before this reference is removed."
            ),
            "controller": boolean("If true, this reference points to the managing controller."),
            "kind": string("Kind of the referent."),
            "name": string("Name of the referent."),
            "uid": string("UID of the referent."),
        },
        required=("apiVersion", "kind", "name", "uid"),
        x_kubernetes_map_type="atomic",
    ),
    META + "ManagedFieldsEntry": struct(
        "ManagedFieldsEntry records which manager owns which fields, by operation.",
        {
            "apiVersion": string("The version of the resource the fields refer to."),
            "fieldsType": string('The format of fieldsV1; only "FieldsV1".'),
            "fieldsV1": ref(META + "FieldsV1", "The owned fields."),
            "manager": string("The name of the workflow managing these fields."),
            "operation": string('The operation that set them: "Apply" or "Update".'),
            "subresource": string("The subresource used to update the object, if any."),
            "time": ref(_TIME, "When these fields were last changed."),
        },
    ),
    META + "LabelSelector": struct(
        "A label selector: matchLabels and matchExpressions are ANDed; an empty selector matches everything.",
        {
            "matchExpressions": list_of(
                META + "LabelSelectorRequirement",
                "A list of label selector requirements, ANDed.",
                list_type="atomic",
            ),
            "matchLabels": string_map(
                "Each {key,value} pair is a requirement that the label key equals value."
            ),
        },
        x_kubernetes_map_type="atomic",
    ),
    META + "LabelSelectorRequirement": struct(
        "A selector requirement: a key, an operator and values.",
        {
            "key": string("The label key that the selector applies to."),
            "operator": string("One of In, NotIn, Exists and DoesNotExist."),
            "values": string_list("Values for In and NotIn; empty for Exists and DoesNotExist."),
        },
        required=("key", "operator"),
    ),
    META + "Status": struct(
        "Status is the result of an operation that returns no object (errors, deletions).",
        {
            **type_meta("Status"),
            "code": integer("Suggested HTTP return code for this status, 0 if not set."),
            "details": ref(META + "StatusDetails", "Extended data, depending on the reason.", default=False),
            "message": string("A human-readable description of the operation's status."),
            "metadata": list_metadata(),
            "reason": string("A machine-readable reason for a Failure (NotFound, Forbidden, ...)."),
            "status": string('"Success" or "Failure".'),
        },
        x_kubernetes_group_version_kind=gvk("", "v1", "Status"),
    ),
    META + "StatusDetails": struct(
        "StatusDetails names the object a Status is about and its causes.",
        {
            "causes": list_of(META + "StatusCause", "The causes of a Failure.", list_type="atomic"),
            "group": string("The group of the resource."),
            "kind": string("The kind of the resource."),
            "name": string("The name of the resource."),
            "retryAfterSeconds": integer("Seconds to wait before retrying, if the operation may be retried."),
            "uid": string("The UID of the resource."),
        },
    ),
    META + "StatusCause": struct(
        "StatusCause is one reason an operation failed, with the field it concerns.",
        {
            "field": string('The field at fault, as a path ("spec.containers[0].name").'),
            "message": string("A human-readable description of the cause."),
            "reason": string("A machine-readable description of the cause."),
        },
    ),
    META + "Preconditions": struct(
        "Preconditions a delete must meet.",
        {
            "resourceVersion": string("The object's resourceVersion must equal this."),
            "uid": string("The object's uid must equal this."),
        },
    ),
    META + "DeleteOptions": struct(
        "DeleteOptions may be sent with a delete.",
        {
            **type_meta("DeleteOptions"),
            "dryRun": string_list("All: process the request without persisting it."),
            "gracePeriodSeconds": integer(
                "Seconds before the object is deleted; 0 deletes now.", fmt="int64"
            ),
            "orphanDependents": boolean("Deprecated: use propagationPolicy."),
            "preconditions": ref(META + "Preconditions", "Must be fulfilled before the deletion."),
            "propagationPolicy": string("Orphan, Background or Foreground: what happens to dependents."),
        },
        x_kubernetes_group_version_kind=[
            {"group": group, "kind": "DeleteOptions", "version": version}
            for group, version in (
                ("", "v1"),
                ("apps", "v1"),
                ("authorization.k8s.io", "v1"),
                ("autoscaling", "v1"),
            )
        ],
    ),
    META + "WatchEvent": struct(
        "A watch event: its type (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR) and the object.",
        {
            "object": ref(RAW_EXTENSION, "The object, or a Status for ERROR.", default=False),
            "type": string("The event's type."),
        },
        required=("type", "object"),
        x_kubernetes_group_version_kind=[
            {"group": group, "kind": "WatchEvent", "version": version}
            for group, version in (
                ("", "v1"),
                ("apps", "v1"),
                ("authorization.k8s.io", "v1"),
                ("autoscaling", "v1"),
            )
        ],
    ),
}
