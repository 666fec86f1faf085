"""Server-side printing: objects as a meta.k8s.io Table, what ``kubectl get`` shows by default.

Shape (https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables):
``{"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion"},
"columnDefinitions": [{"name", "type", "format", "description", "priority"}],
"rows": [{"cells": [...], "object": ...}]}``. A row's object is a PartialObjectMetadata unless the
client asked ``includeObject=Object`` (the whole object) or ``None``. Columns of priority 1 are
what ``-o wide`` adds. The columns and cell texts follow the API server's printers
(pkg/printers/internalversion), e.g. a pod's READY is ``1/1`` and its AGE a short duration.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from wardgate.dev.kube.catalog import Resource
from wardgate.dev.kube.store import JSON

Column = tuple[str, str, str, int, str]  # name, type, format, priority, description
Row = Callable[[JSON], list[Any]]

_NAME_COLUMN: Column = ("Name", "string", "name", 0, "Name must be unique within a namespace.")
_AGE_COLUMN: Column = (
    "Age",
    "string",
    "",
    0,
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
)


def human_duration(timestamp: str | None, now: datetime.datetime | None = None) -> str:
    """A short age (``45s``, ``5m``, ``3h``, ``2d``...), as apimachinery's duration.HumanDuration has it."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.datetime.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.UTC)
    except ValueError:
        return "<unknown>"
    seconds = int(((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds())
    if seconds < -1:
        return "<invalid>"
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = (seconds % 3600) // 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{hours // 24 // 365}y"


def _age(obj: JSON) -> str:
    return human_duration(obj.get("metadata", {}).get("creationTimestamp"))


def _none(value: str) -> str:
    return value or "<none>"


def _selector_text(selector: JSON | None) -> str:
    from wardgate.dev.kube.controllers import selector_string

    return _none(selector_string(selector or {}))


def _containers(template_spec: JSON) -> tuple[str, str]:
    containers = template_spec.get("containers") or []
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def _pod_row(pod: JSON) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    reason = status.get("reason") or status.get("phase") or "Pending"
    for container_status in statuses:  # a waiting or terminated container's reason wins, as kubectl shows
        state = container_status.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state and state["terminated"].get("reason"):
            reason = state["terminated"]["reason"]
    if pod.get("metadata", {}).get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        reason,
        str(restarts),
        _age(pod),
        _none(status.get("podIP", "")),
        _none(spec.get("nodeName", "")),
        _none(status.get("nominatedNodeName", "")),
        f"0/{len(gates)}" if gates else "<none>",
    ]


def _deployment_row(deployment: JSON) -> list[Any]:
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    names, images = _containers((spec.get("template") or {}).get("spec") or {})
    return [
        deployment["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        int(status.get("updatedReplicas", 0)),
        int(status.get("availableReplicas", 0)),
        _age(deployment),
        names,
        images,
        _selector_text(spec.get("selector")),
    ]


def _replicaset_row(replicaset: JSON) -> list[Any]:
    spec, status = replicaset.get("spec") or {}, replicaset.get("status") or {}
    names, images = _containers((spec.get("template") or {}).get("spec") or {})
    return [
        replicaset["metadata"]["name"],
        int(spec.get("replicas", 1)),
        int(status.get("replicas", 0)),
        int(status.get("readyReplicas", 0)),
        _age(replicaset),
        names,
        images,
        _selector_text(spec.get("selector")),
    ]


def _service_row(service: JSON) -> list[Any]:
    spec, status = service.get("spec") or {}, service.get("status") or {}
    ports = ",".join(
        f"{p.get('port')}"
        + (f":{p['nodePort']}" if p.get("nodePort") else "")
        + f"/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    external = ",".join(i.get("ip") or i.get("hostname", "") for i in ingress) or ",".join(
        spec.get("externalIPs") or []
    )
    if not external:
        external = "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"
    selector = spec.get("selector") or {}
    return [
        service["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        _none(spec.get("clusterIP", "")),
        external,
        _none(ports),
        _age(service),
        _none(",".join(f"{k}={v}" for k, v in sorted(selector.items()))),
    ]


def _event_row(event: JSON) -> list[Any]:
    involved = event.get("involvedObject") or {}
    last = event.get("lastTimestamp") or event.get("eventTime") or event["metadata"].get("creationTimestamp")
    first = (
        event.get("firstTimestamp") or event.get("eventTime") or event["metadata"].get("creationTimestamp")
    )
    source = (event.get("source") or {}).get("component") or event.get("reportingComponent", "")
    if (event.get("source") or {}).get("host"):
        source += ", " + event["source"]["host"]
    return [
        human_duration(last),
        event.get("type", ""),
        event.get("reason", ""),
        f"{involved.get('kind', '').lower()}/{involved.get('name', '')}",
        involved.get("fieldPath", ""),
        source,
        (event.get("message") or "").strip(),
        human_duration(first),
        int(event.get("count", 1) or 1),
        event["metadata"]["name"],
    ]


def _endpoints_row(endpoints: JSON) -> list[Any]:
    addresses = [
        f"{address['ip']}:{port['port']}"
        for subset in endpoints.get("subsets") or []
        for address in subset.get("addresses") or []
        for port in subset.get("ports") or [{}]
        if "port" in port
    ]
    text = ",".join(addresses[:3]) + (f" + {len(addresses) - 3} more..." if len(addresses) > 3 else "")
    return [endpoints["metadata"]["name"], _none(text), _age(endpoints)]


_TABLES: dict[str, tuple[list[Column], Row]] = {
    "pods": (
        [
            _NAME_COLUMN,
            ("Ready", "string", "", 0, "The aggregate readiness state of this pod for accepting traffic."),
            ("Status", "string", "", 0, "The aggregate status of the containers in this pod."),
            (
                "Restarts",
                "string",
                "",
                0,
                "The number of times the containers in this pod have been restarted.",
            ),
            _AGE_COLUMN,
            (
                "IP",
                "string",
                "",
                1,
                "IP address allocated to the pod. Routable at least within the cluster.",
            ),
            ("Node", "string", "", 1, "NodeName is a request to schedule this pod onto a specific node."),
            (
                "Nominated Node",
                "string",
                "",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node.",
            ),
            (
                "Readiness Gates",
                "string",
                "",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        _pod_row,
    ),
    "deployments": (
        [
            _NAME_COLUMN,
            ("Ready", "string", "", 0, "Number of the pod with ready state"),
            (
                "Up-to-date",
                "integer",
                "",
                0,
                "Total number of non-terminated pods of this deployment with the desired template.",
            ),
            (
                "Available",
                "integer",
                "",
                0,
                "Total number of available pods (ready for at least minReadySeconds).",
            ),
            _AGE_COLUMN,
            ("Containers", "string", "", 1, "Names of each container in the template."),
            ("Images", "string", "", 1, "Images referenced by each container in the template."),
            (
                "Selector",
                "string",
                "",
                1,
                "Label selector for pods.",
            ),
        ],
        _deployment_row,
    ),
    "replicasets": (
        [
            _NAME_COLUMN,
            ("Desired", "integer", "", 0, "Replicas is the number of desired replicas."),
            ("Current", "integer", "", 0, "Replicas is the most recently observed number of replicas."),
            ("Ready", "integer", "", 0, "The number of ready replicas for this replica set."),
            _AGE_COLUMN,
            ("Containers", "string", "", 1, "Names of each container in the template."),
            ("Images", "string", "", 1, "Images referenced by each container in the template."),
            (
                "Selector",
                "string",
                "",
                1,
                "Selector is a label query over pods that should match the replica count.",
            ),
        ],
        _replicaset_row,
    ),
    "services": (
        [
            _NAME_COLUMN,
            ("Type", "string", "", 0, "type determines how the Service is exposed."),
            (
                "Cluster-IP",
                "string",
                "",
                0,
                "clusterIP is the IP address of the service and is usually assigned randomly.",
            ),
            (
                "External-IP",
                "string",
                "",
                0,
                "externalIPs: IP addresses on which nodes also accept traffic for this service.",
            ),
            ("Port(s)", "string", "", 0, "The list of ports that are exposed by this service."),
            _AGE_COLUMN,
            (
                "Selector",
                "string",
                "",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        _service_row,
    ),
    "secrets": (
        [
            _NAME_COLUMN,
            ("Type", "string", "", 0, "Used to facilitate programmatic handling of secret data."),
            ("Data", "integer", "", 0, "Data contains the secret data."),
            _AGE_COLUMN,
        ],
        lambda s: [s["metadata"]["name"], s.get("type", "Opaque"), len(s.get("data") or {}), _age(s)],
    ),
    "configmaps": (
        [_NAME_COLUMN, ("Data", "integer", "", 0, "Data contains the configuration data."), _AGE_COLUMN],
        lambda c: [c["metadata"]["name"], len(c.get("data") or {}) + len(c.get("binaryData") or {}), _age(c)],
    ),
    "namespaces": (
        [_NAME_COLUMN, ("Status", "string", "", 0, "The status of the namespace"), _AGE_COLUMN],
        lambda n: [n["metadata"]["name"], (n.get("status") or {}).get("phase", "Active"), _age(n)],
    ),
    "events": (
        [
            ("Last Seen", "string", "", 0, "Time when this Event was last observed."),
            (
                "Type",
                "string",
                "",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future.",
            ),
            (
                "Reason",
                "string",
                "",
                0,
                "A short, machine understandable string: the reason for the object's transition.",
            ),
            ("Object", "string", "", 0, "The object that this event is about."),
            ("Subobject", "string", "", 1, "Specific subcomponent of the object that this event is about."),
            ("Source", "string", "", 1, "The component reporting this event."),
            ("Message", "string", "", 0, "A human-readable description of the status of this operation."),
            ("First Seen", "string", "", 1, "The time at which the event was first recorded."),
            ("Count", "string", "", 1, "The number of times this event has occurred."),
            ("Name", "string", "name", 1, "Name must be unique within a namespace."),
        ],
        _event_row,
    ),
    "endpoints": (
        [_NAME_COLUMN, ("Endpoints", "string", "", 0, "Endpoints of the service"), _AGE_COLUMN],
        _endpoints_row,
    ),
    "serviceaccounts": (
        [
            _NAME_COLUMN,
            (
                "Secrets",
                "integer",
                "",
                0,
                "The secrets pods running as this ServiceAccount may use.",
            ),
            _AGE_COLUMN,
        ],
        lambda a: [a["metadata"]["name"], len(a.get("secrets") or []), _age(a)],
    ),
}
# Any other resource: the generic convertor's Name and Created At.
_DEFAULT: tuple[list[Column], Row] = (
    [
        _NAME_COLUMN,
        (
            "Created At",
            "date",
            "",
            0,
            "CreationTimestamp is a timestamp representing the server time when this object was created.",
        ),
    ],
    lambda o: [o["metadata"]["name"], o["metadata"].get("creationTimestamp")],
)


def table(
    resource: Resource,
    items: list[JSON],
    version: str,
    include_object: str,
    resource_version: str,
    continue_token: str | None = None,
    remaining: int | None = None,
) -> JSON:
    columns, row = _TABLES.get(resource.plural, _DEFAULT)
    metadata: JSON = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    if remaining is not None:
        metadata["remainingItemCount"] = remaining
    rows = []
    for item in items:
        entry: JSON = {"cells": row(item)}
        if include_object == "Object":
            entry["object"] = {"kind": resource.kind, "apiVersion": resource.api_version, **item}
        elif include_object != "None":
            entry["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": f"meta.k8s.io/{version}",
                "metadata": item.get("metadata", {}),
            }
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": metadata,
        "columnDefinitions": [
            {"name": name, "type": type_, "format": format_, "description": description, "priority": priority}
            for name, type_, format_, priority, description in columns
        ],
        "rows": rows,
    }
