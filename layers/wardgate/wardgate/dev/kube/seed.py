"""What the double holds when it starts: a small, realistic cluster the demos and tests rely on.

``default`` and ``prod`` namespaces; in ``prod`` a Deployment ``web`` (its ReplicaSet and two
Running pods, made by the controllers), a Service, a ConfigMap and a Secret whose values (and
last-applied annotation) masking must hide; in ``default`` a Pod ``debug`` whose environment holds
a password.
"""

from __future__ import annotations

import base64
import json

from wardgate.dev.kube.catalog import resource
from wardgate.dev.kube.controllers import (
    CONFIGMAPS,
    DEPLOYMENTS,
    NAMESPACES,
    PODS,
    SERVICES,
    Cluster,
    owned_by,
)
from wardgate.dev.kube.store import JSON, Store

DB_PASSWORD = "s3cr3t-Passw0rd!"  # made up; masking must hide it wherever it appears
SECRETS = resource("", "v1", "secrets")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def seed(store: Store, cluster: Cluster) -> None:
    assert SECRETS is not None
    for name in ("default", "prod"):
        store.create(
            NAMESPACES,
            {
                "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            },
        )
    labels = {"app": "web"}
    store.create(
        DEPLOYMENTS,
        {
            "metadata": {"name": "web", "namespace": "prod", "labels": labels},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
                },
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "nginx",
                                "image": "nginx:1.27",
                                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                "imagePullPolicy": "IfNotPresent",
                                "resources": {},
                                "terminationMessagePath": "/dev/termination-log",
                                "terminationMessagePolicy": "File",
                            }
                        ],
                        "restartPolicy": "Always",
                        "terminationGracePeriodSeconds": 30,
                        "dnsPolicy": "ClusterFirst",
                        "schedulerName": "default-scheduler",
                        "securityContext": {},
                    },
                },
            },
        },
    )
    store.create(
        SERVICES,
        {
            "metadata": {"name": "web", "namespace": "prod", "labels": labels},
            "spec": {
                "type": "ClusterIP",
                "selector": labels,
                "ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}],
                "clusterIP": "10.96.120.15",
                "clusterIPs": ["10.96.120.15"],
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster",
            },
            "status": {"loadBalancer": {}},
        },
    )
    store.create(
        CONFIGMAPS,
        {
            "metadata": {"name": "web-config", "namespace": "prod", "labels": labels},
            "data": {"LOG_LEVEL": "info", "UPSTREAM_TIMEOUT": "30s"},
        },
    )
    secret_data = {"username": _b64("app"), "password": _b64(DB_PASSWORD)}
    last_applied: JSON = {
        "apiVersion": "v1",
        "data": secret_data,
        "kind": "Secret",
        "metadata": {"annotations": {}, "name": "db-credentials", "namespace": "prod"},
        "type": "Opaque",
    }
    store.create(
        SECRETS,
        {
            "metadata": {
                "name": "db-credentials",
                "namespace": "prod",
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": json.dumps(
                        last_applied, separators=(",", ":")
                    )
                    + "\n",
                    "owner": "dba@example.com",
                },
            },
            "type": "Opaque",
            "data": secret_data,
        },
    )
    store.create(
        PODS,
        {
            "metadata": {"name": "debug", "namespace": "default", "labels": {"run": "debug"}},
            "spec": {
                "containers": [
                    {
                        "name": "shell",
                        "image": "busybox:1.36",
                        "command": ["sleep", "infinity"],
                        "env": [{"name": "DB_PASSWORD", "value": DB_PASSWORD}],
                        "imagePullPolicy": "IfNotPresent",
                    }
                ],
            },
        },
    )
    start_delay, cluster.pod_start_seconds = cluster.pod_start_seconds, 0.0  # the seeded pods run at once
    try:
        cluster.reconcile()
    finally:
        cluster.pod_start_seconds = start_delay
    deployment = store.get(DEPLOYMENTS, "prod", "web")
    replica_sets = resource("apps", "v1", "replicasets")
    assert replica_sets is not None
    for replicaset in store.list_objects(replica_sets, "prod")[0]:
        if not owned_by(replicaset, deployment["metadata"]["uid"]):
            continue
        for pod in store.list_objects(PODS, "prod")[0]:
            if owned_by(pod, replicaset["metadata"]["uid"]):
                name = pod["metadata"]["name"]
                for line in (
                    "/docker-entrypoint.sh: Configuration complete; ready for start up",
                    "2026/01/01 00:00:00 [notice] 1#1: nginx/1.27.5",
                    "2026/01/01 00:00:00 [notice] 1#1: start worker processes",
                    '10.244.0.1 - - [01/Jan/2026:00:00:01 +0000] "GET / HTTP/1.1" 200 615 "-" '
                    f'"kube-probe/1.32" {name}',
                ):
                    store.append_log("prod", name, "nginx", line)
    store.append_log("default", "debug", "shell", "debug shell ready")
