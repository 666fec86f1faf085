"""apps/v1 (Deployment, ReplicaSet), autoscaling/v1 (Scale, the scale subresource's kind) and
authorization/v1 (SelfSubjectAccessReview, for ``kubectl auth can-i``), see
https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/deployment-v1/.
"""

from __future__ import annotations

from wardgate.dev.kube.schemas.fields import (
    APPS,
    AUTHORIZATION,
    AUTOSCALING,
    CORE,
    INT_OR_STRING,
    JSON,
    META,
    boolean,
    free_object,
    gvk,
    integer,
    list_kind,
    list_of,
    object_metadata,
    ref,
    string,
    struct,
    type_meta,
)

_TIME = META + "Time"
_SPEC_STATUS = (
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#spec-and-status"
)


def _condition(what: str, *, last_update: bool = False) -> JSON:
    properties: JSON = {
        "lastTransitionTime": ref(_TIME, "Last time the condition moved from one status to another."),
        "message": string("A human-readable message with details about the transition."),
        "reason": string("The reason for the condition's last transition."),
        "status": string("True, False or Unknown."),
        "type": string(f"The type of {what} condition."),
    }
    if last_update:
        properties["lastUpdateTime"] = ref(_TIME, "The last time this condition was updated.")
    return struct(f"The state of a {what} at a certain point.", properties, required=("type", "status"))


def _selector(what: str) -> JSON:
    return ref(
        META + "LabelSelector",
        f"Label query over the pods the {what} manages; it must match the pod template's labels. "
        "More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
    )


def _template(what: str) -> JSON:
    return ref(CORE + "PodTemplateSpec", f"The pods the {what} creates.", default=True)


DEFINITIONS: dict[str, JSON] = {
    APPS + "Deployment": struct(
        "Deployment enables declarative updates for Pods and ReplicaSets.",
        {
            **type_meta("Deployment"),
            "metadata": object_metadata(),
            "spec": ref(APPS + "DeploymentSpec", "The desired behavior of the Deployment.", default=True),
            "status": ref(APPS + "DeploymentStatus", "The most recently observed status.", default=True),
        },
        x_kubernetes_group_version_kind=gvk("apps", "v1", "Deployment"),
    ),
    APPS + "DeploymentSpec": struct(
        "The desired behavior of a Deployment.",
        {
            "minReadySeconds": integer(
                "Seconds a new pod must be ready, without crashing, to count as available."
            ),
            "paused": boolean("Whether the deployment is paused."),
            "progressDeadlineSeconds": integer(
                "Seconds the deployment may take to progress before it is considered failed; 600 by default."
            ),
            "replicas": integer("Number of desired pods; 1 by default."),
            "revisionHistoryLimit": integer("Old ReplicaSets kept for rollback; 10 by default."),
            "selector": _selector("deployment"),
            "strategy": {
                **ref(
                    APPS + "DeploymentStrategy", "How existing pods are replaced by new ones.", default=True
                ),
                "x-kubernetes-patch-strategy": "retainKeys",
            },
            "template": _template("deployment"),
        },
        required=("selector", "template"),
    ),
    APPS + "DeploymentStrategy": struct(
        "How pods are replaced.",
        {
            "rollingUpdate": ref(
                APPS + "RollingUpdateDeployment", "Rolling update parameters (type RollingUpdate)."
            ),
            "type": string("Recreate or RollingUpdate (default).", enum=("Recreate", "RollingUpdate")),
        },
    ),
    APPS + "RollingUpdateDeployment": struct(
        "Controls a rolling update.",
        {
            "maxSurge": ref(
                INT_OR_STRING, "Pods that can be created above the desired count (number or %); 25%."
            ),
            "maxUnavailable": ref(
                INT_OR_STRING, "Pods that can be unavailable during the update (number or %); 25%."
            ),
        },
    ),
    APPS + "DeploymentStatus": struct(
        "The most recently observed status of a Deployment.",
        {
            "availableReplicas": integer("Available pods (ready for at least minReadySeconds)."),
            "collisionCount": integer("Hash collisions seen for the ReplicaSets' names."),
            "conditions": list_of(
                APPS + "DeploymentCondition",
                "The latest available observations of the deployment's state.",
                merge_key="type",
                strategy="merge",
                map_keys=("type",),
            ),
            "observedGeneration": integer("The generation the controller observed.", fmt="int64"),
            "readyReplicas": integer("Pods with a Ready condition."),
            "replicas": integer("Pods targeted by the deployment (their labels match the selector)."),
            "unavailableReplicas": integer("Pods still needed for 100% available capacity."),
            "updatedReplicas": integer("Pods that have the desired template spec."),
        },
    ),
    APPS + "DeploymentCondition": _condition("deployment", last_update=True),
    APPS + "ReplicaSet": struct(
        "ReplicaSet ensures that a specified number of pod replicas are running at any given time.",
        {
            **type_meta("ReplicaSet"),
            "metadata": object_metadata(),
            "spec": ref(
                APPS + "ReplicaSetSpec",
                "The desired behavior of the ReplicaSet. More info: " + _SPEC_STATUS,
                default=True,
            ),
            "status": ref(APPS + "ReplicaSetStatus", "The most recently observed status.", default=True),
        },
        x_kubernetes_group_version_kind=gvk("apps", "v1", "ReplicaSet"),
    ),
    APPS + "ReplicaSetSpec": struct(
        "The desired behavior of a ReplicaSet.",
        {
            "minReadySeconds": integer("Seconds a new pod must be ready to count as available."),
            "replicas": integer("Number of desired pods; 1 by default."),
            "selector": _selector("ReplicaSet"),
            "template": _template("ReplicaSet"),
        },
        required=("selector",),
    ),
    APPS + "ReplicaSetStatus": struct(
        "The most recently observed status of a ReplicaSet.",
        {
            "availableReplicas": integer("Available pods."),
            "conditions": list_of(
                APPS + "ReplicaSetCondition",
                "The latest available observations of the ReplicaSet's state.",
                merge_key="type",
                strategy="merge",
                map_keys=("type",),
            ),
            "fullyLabeledReplicas": integer("Pods whose labels match the template's labels."),
            "observedGeneration": integer("The generation the controller observed.", fmt="int64"),
            "readyReplicas": integer("Pods with a Ready condition."),
            "replicas": integer("The most recently observed number of pods."),
        },
        required=("replicas",),
    ),
    APPS + "ReplicaSetCondition": _condition("ReplicaSet"),
    AUTOSCALING + "Scale": struct(
        "Scale represents a scaling request for a resource (the scale subresource).",
        {
            **type_meta("Scale"),
            "metadata": object_metadata(),
            "spec": ref(AUTOSCALING + "ScaleSpec", "The desired behavior of the scale.", default=True),
            "status": ref(
                AUTOSCALING + "ScaleStatus", "The current status of the scale. Read-only.", default=True
            ),
        },
        x_kubernetes_group_version_kind=gvk("autoscaling", "v1", "Scale"),
    ),
    AUTOSCALING + "ScaleSpec": struct(
        "The attributes of a scale subresource.", {"replicas": integer("The desired number of instances.")}
    ),
    AUTOSCALING + "ScaleStatus": struct(
        "The current status of a scale subresource.",
        {
            "replicas": integer("The actual number of observed instances."),
            "selector": string("The label query over the pods counted, in string form (app=web)."),
        },
        required=("replicas",),
    ),
    AUTHORIZATION + "SelfSubjectAccessReview": struct(
        "SelfSubjectAccessReview checks whether the current user can perform an action; the spec "
        "must be set (kubectl auth can-i).",
        {
            **type_meta("SelfSubjectAccessReview"),
            "metadata": object_metadata(),
            "spec": ref(
                AUTHORIZATION + "SelfSubjectAccessReviewSpec", "The action being evaluated.", default=True
            ),
            "status": ref(
                AUTHORIZATION + "SubjectAccessReviewStatus",
                "The server's answer: allowed or not.",
                default=True,
            ),
        },
        required=("spec",),
        x_kubernetes_group_version_kind=gvk("authorization.k8s.io", "v1", "SelfSubjectAccessReview"),
    ),
    AUTHORIZATION + "SelfSubjectAccessReviewSpec": struct(
        "The action to check: exactly one of resourceAttributes and nonResourceAttributes.",
        {
            "nonResourceAttributes": ref(
                AUTHORIZATION + "NonResourceAttributes", "A request on a non-resource path."
            ),
            "resourceAttributes": ref(AUTHORIZATION + "ResourceAttributes", "A request on a resource."),
        },
    ),
    AUTHORIZATION + "ResourceAttributes": struct(
        "The attributes of a resource request, as the authorizer sees them.",
        {
            "fieldSelector": free_object("The request's field selector, if any."),
            "group": string('The API group of the resource; "*" means all.'),
            "labelSelector": free_object("The request's label selector, if any."),
            "name": string("The resource's name; empty for get-all (list) requests."),
            "namespace": string('The namespace; "" means all namespaces for namespaced resources.'),
            "resource": string('One of the existing resource types; "*" means all.'),
            "subresource": string('A subresource; "" means none.'),
            "verb": string('A Kubernetes verb (get, list, watch, create...); "*" means all.'),
            "version": string('The API version of the resource; "*" means all.'),
        },
    ),
    AUTHORIZATION + "NonResourceAttributes": struct(
        "The attributes of a request on a non-resource path.",
        {"path": string("The URL path of the request."), "verb": string("The standard HTTP verb.")},
    ),
    AUTHORIZATION + "SubjectAccessReviewStatus": struct(
        "The answer of an access review.",
        {
            "allowed": boolean("Whether the action is allowed."),
            "denied": boolean("Whether the action is explicitly denied."),
            "evaluationError": string("An error while checking authorization, if any."),
            "reason": string("Why the action is allowed or denied."),
        },
        required=("allowed",),
    ),
}

for _kind, _plural in (("Deployment", "Deployments"), ("ReplicaSet", "ReplicaSets")):
    _name, _schema = list_kind(APPS, "apps", "v1", _kind, _plural)
    DEFINITIONS[_name] = _schema
