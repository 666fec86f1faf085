"""The double's controllers: deployment → replica sets → pods, a kubelet, events, namespaces, garbage.

They run synchronously after each write (``Cluster.reconcile``) until nothing changes, so the
cluster is settled when a request returns: a scaled deployment already has its pods and a
rollout is already complete (``kubectl rollout status`` finishes at once). What they write
follows the shapes a real v1.32 control plane writes: a ReplicaSet per pod template named
``<deployment>-<pod-template-hash>`` with ``deployment.kubernetes.io/revision`` (rollout history
and undo read it), Deployment status with ``observedGeneration`` and Available/Progressing
conditions (https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/deployment-v1/#DeploymentStatus),
Running pods with Ready conditions, and core/v1 Events for what happened.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import secrets
import threading
import time
from typing import Any

from wardgate.dev.kube.catalog import Resource, resource
from wardgate.dev.kube.store import JSON, Store, StoreError, clone, now_rfc3339

NODE_NAME = "wardgate-double-node"
HOST_IP = "10.0.0.10"
# The alphabet Kubernetes uses for generated names and hashes (no vowels, no confusable digits).
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
REVISION = "deployment.kubernetes.io/revision"
EVENT_TTL_S = 3600  # the API server's default --event-ttl
EVENT_SWEEP_EVERY = 200  # events recorded between sweeps for expired ones
_MAX_ROUNDS = 20  # reconcile passes before giving up (a loop would be a bug; it must not hang a request)


def _resource(group: str, plural: str) -> Resource:
    found = resource(group, "v1", plural)
    assert found is not None, plural
    return found


PODS = _resource("", "pods")
EVENTS = _resource("", "events")
NAMESPACES = _resource("", "namespaces")
REPLICASETS = _resource("apps", "replicasets")
DEPLOYMENTS = _resource("apps", "deployments")
SERVICE_ACCOUNTS = _resource("", "serviceaccounts")
CONFIGMAPS = _resource("", "configmaps")
SERVICES = _resource("", "services")
ENDPOINTS = _resource("", "endpoints")


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_SAFE_ALPHABET) for _ in range(length))


def template_hash(template: JSON) -> str:
    """A stable short hash of a pod template (the pod-template-hash label's role; not the same digits)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in digest[:10])


def owner_reference(owner: JSON, api_version: str) -> JSON:
    return {
        "apiVersion": api_version,
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_by(obj: JSON, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


def _template_without_hash(template: JSON) -> JSON:
    """A pod template as the deployment controller compares them: no hash label, no null timestamp."""
    template = copy.deepcopy(template)
    metadata = template.get("metadata") or {}
    (metadata.get("labels") or {}).pop("pod-template-hash", None)
    if metadata.get("creationTimestamp") is None:  # kubectl rollout undo sends null; Go decodes it as zero
        metadata.pop("creationTimestamp", None)
    if not metadata:
        template.pop("metadata", None)
    return template


def _selector_matches(selector: JSON, labels: dict[str, str]) -> bool:
    """A LabelSelector object (matchLabels, matchExpressions) against labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def selector_string(selector: JSON) -> str:
    """A LabelSelector as the string form Scale's status.selector carries."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        operator = expression["operator"]
        if operator in ("In", "NotIn"):
            parts.append(
                f"{expression['key']} {operator.lower()} ({','.join(expression.get('values') or [])})"
            )
        elif operator == "Exists":
            parts.append(expression["key"])
        else:
            parts.append(f"!{expression['key']}")
    return ",".join(parts)


class Cluster:
    """The control loops, run to a fixed point after each write (see the module's docstring)."""

    def __init__(self, store: Store, pod_start_seconds: float = 0.0) -> None:
        self.store = store
        # 0: a pod is Running as soon as it is made; more: it stays Pending (ContainerCreating) that
        # long, so a rollout takes time and kubectl rollout status watches it progress.
        self.pod_start_seconds = pod_start_seconds
        self.root_ca_pem = ""  # what each namespace's kube-root-ca.crt ConfigMap holds (the server's CA)
        self._pod_ips = 0
        self._starting: set[tuple[str, str]] = set()
        self._kubelet_queue: list[tuple[float, tuple[str, str]]] = []
        self._kubelet: threading.Thread | None = None
        self._kubelet_wakeup = threading.Event()
        self._stopping = threading.Event()
        self.kubelet_name = "kube-double-kubelet"  # the kubelet thread's (the server adds its port)
        self._last_event_ns = 0
        self._events_recorded = 0

    # -- events --------------------------------------------------------------------------------

    def _event_suffix(self) -> str:
        """The recorder's name suffix: the time in nanoseconds in hex, so names sort by time."""
        self._last_event_ns = max(time.time_ns(), self._last_event_ns + 1)
        return f"{self._last_event_ns:x}"

    def record_event(
        self,
        involved: JSON,
        reason: str,
        message: str,
        component: str,
        type_: str = "Normal",
        field_path: str = "",
    ) -> None:
        """A core/v1 Event about an object (what kubectl describe shows under Events)."""
        meta = involved["metadata"]
        now = now_rfc3339()
        event: JSON = {
            "metadata": {
                "name": f"{meta['name']}.{self._event_suffix()}",
                "namespace": meta.get("namespace") or "default",
            },
            "involvedObject": {
                "kind": involved["kind"],
                "namespace": meta.get("namespace", ""),
                "name": meta["name"],
                "uid": meta.get("uid", ""),
                "apiVersion": involved["apiVersion"],
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "source": {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": type_,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": "",
        }
        if field_path:
            event["involvedObject"]["fieldPath"] = field_path
        with contextlib.suppress(StoreError):  # the namespace is going away: no event
            self.store.create(EVENTS, event)
        self._events_recorded += 1
        if self._events_recorded % EVENT_SWEEP_EVERY == 0:
            self._expire_events()

    def _expire_events(self) -> None:
        """Events older than the API server's default TTL (--event-ttl, one hour) go."""
        cutoff = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - EVENT_TTL_S))
        for event in self.store.peek(EVENTS, None):
            if (event.get("lastTimestamp") or cutoff) < cutoff:
                meta = event["metadata"]
                with contextlib.suppress(StoreError):
                    self.store.delete(EVENTS, meta["namespace"], meta["name"])

    # -- the loops -----------------------------------------------------------------------------

    def reconcile(self, namespace: str | None = None) -> None:
        """Runs every loop over a namespace (or all) until nothing changes."""
        with self.store.lock:
            for _ in range(_MAX_ROUNDS):
                before = self.store.revision
                namespaces = [namespace] if namespace else self._namespace_names()
                for ns in namespaces:
                    for deployment in self.store.list_objects(DEPLOYMENTS, ns)[0]:
                        self._reconcile_deployment(deployment)
                    for replicaset in self.store.list_objects(REPLICASETS, ns)[0]:
                        self._reconcile_replicaset(replicaset)
                    for pod in self.store.peek(PODS, ns):
                        if not (pod.get("status") or {}).get("phase"):  # new: the scheduler's
                            self._run_pod(clone(pod))
                    self._reconcile_namespace_defaults(ns)
                    self._reconcile_endpoints(ns)
                if self.store.revision == before:
                    return

    def _namespace_names(self) -> list[str]:
        return sorted(ns["metadata"]["name"] for ns in self.store.peek(NAMESPACES, None))

    def _reconcile_namespace_defaults(self, namespace: str) -> None:
        """A new namespace gets its default ServiceAccount and the kube-root-ca.crt ConfigMap."""
        if self.store.find(NAMESPACES, "", namespace) is None:
            return
        if self.store.find(SERVICE_ACCOUNTS, namespace, "default") is None:
            self.store.create(SERVICE_ACCOUNTS, {"metadata": {"name": "default", "namespace": namespace}})
        if self.store.find(CONFIGMAPS, namespace, "kube-root-ca.crt") is None:
            self.store.create(
                CONFIGMAPS,
                {
                    "metadata": {"name": "kube-root-ca.crt", "namespace": namespace},
                    "data": {"ca.crt": self.root_ca_pem},
                },
            )

    def _reconcile_deployment(self, deployment: JSON) -> None:
        meta, spec = deployment["metadata"], deployment.get("spec") or {}
        namespace, uid = meta["namespace"], meta["uid"]
        template = spec.get("template") or {}
        desired = int(spec.get("replicas", 1))
        owned = [clone(rs) for rs in self.store.peek(REPLICASETS, namespace) if owned_by(rs, uid)]
        revisions = [int(rs["metadata"].get("annotations", {}).get(REVISION, "0")) for rs in owned]
        current = next(
            (
                rs
                for rs in owned
                if _template_without_hash(rs["spec"]["template"]) == _template_without_hash(template)
            ),
            None,
        )
        if spec.get("paused"):
            new_rs = current
        elif current is None:
            new_rs = self._new_replicaset(deployment, max(revisions, default=0) + 1, desired)
        else:
            new_rs = current
            annotations = new_rs["metadata"].setdefault("annotations", {})
            changed = False
            if int(annotations.get(REVISION, "0")) < max(revisions, default=0):  # rollout undo
                old_revision = annotations.get(REVISION, "0")
                history = [r for r in annotations.get(f"{REVISION}-history", "").split(",") if r]
                annotations[f"{REVISION}-history"] = ",".join([*history, old_revision])
                annotations[REVISION] = str(max(revisions) + 1)
                changed = True
            old_replicas = int(new_rs["spec"].get("replicas", 0))
            if old_replicas != desired:
                new_rs["spec"]["replicas"] = desired
                changed = True
                direction = "up" if desired > old_replicas else "down"
                name = new_rs["metadata"]["name"]
                self.record_event(
                    deployment,
                    "ScalingReplicaSet",
                    f"Scaled {direction} replica set {name} from {old_replicas} to {desired}",
                    "deployment-controller",
                )
            if changed:
                new_rs = self.store.update(REPLICASETS, new_rs)
        if not spec.get("paused"):
            self._scale_down_old(deployment, owned, new_rs, desired)
            self._prune_history(deployment, new_rs)
        self._deployment_status(deployment, new_rs)

    def _prune_history(self, deployment: JSON, new_rs: JSON | None) -> None:
        """Old replica sets at zero beyond spec.revisionHistoryLimit go, the oldest first."""
        meta = deployment["metadata"]
        limit = int((deployment.get("spec") or {}).get("revisionHistoryLimit", 10))
        new_uid = (new_rs or {}).get("metadata", {}).get("uid")
        idle = sorted(
            (
                rs
                for rs in self.store.peek(REPLICASETS, meta["namespace"])
                if owned_by(rs, meta["uid"])
                and rs["metadata"]["uid"] != new_uid
                and int(rs["spec"].get("replicas", 0)) == 0
                and int((rs.get("status") or {}).get("replicas", 0)) == 0
            ),
            key=lambda rs: int(rs["metadata"].get("annotations", {}).get(REVISION, "0")),
        )
        for replicaset in idle[: max(0, len(idle) - limit)]:
            removed = self.store.delete(REPLICASETS, meta["namespace"], replicaset["metadata"]["name"])
            self.collect_garbage(removed, "Background")

    def _scale_down_old(self, deployment: JSON, owned: list[JSON], new_rs: JSON | None, desired: int) -> None:
        """Old replica sets give way as the new one's pods become available (a rolling update keeps
        the deployment available); with Recreate they go to zero at once."""
        recreate = (deployment["spec"].get("strategy") or {}).get("type") == "Recreate"
        new_uid = (new_rs or {}).get("metadata", {}).get("uid")
        new_available = int((new_rs or {}).get("status", {}).get("availableReplicas", 0))
        allowed = 0 if recreate else max(0, desired - new_available)  # old pods still needed
        old = sorted(
            (rs for rs in owned if rs["metadata"]["uid"] != new_uid),
            key=lambda rs: int(rs["metadata"].get("annotations", {}).get(REVISION, "0")),
            reverse=True,  # the newest old one keeps its pods longest
        )
        for replicaset in old:
            current = int(replicaset["spec"].get("replicas", 0))
            target = min(current, allowed)
            allowed -= target
            if target == current:
                continue
            replicaset["spec"]["replicas"] = target
            self.store.update(REPLICASETS, replicaset)
            self.record_event(
                deployment,
                "ScalingReplicaSet",
                f"Scaled down replica set {replicaset['metadata']['name']} from {current} to {target}",
                "deployment-controller",
            )

    def _new_replicaset(self, deployment: JSON, revision: int, replicas: int) -> JSON:
        meta, spec = deployment["metadata"], deployment["spec"]
        pod_hash = template_hash(_template_without_hash(spec.get("template") or {}))
        template = copy.deepcopy(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pod_hash
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
        name = f"{meta['name']}-{pod_hash}"
        annotations = {
            REVISION: str(revision),
            "deployment.kubernetes.io/desired-replicas": str(replicas),
            "deployment.kubernetes.io/max-replicas": str(replicas + 1),
        }
        cause = (meta.get("annotations") or {}).get("kubernetes.io/change-cause")
        if cause:
            annotations["kubernetes.io/change-cause"] = cause
        replicaset = {
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": {**(template["metadata"].get("labels") or {})},
                "annotations": annotations,
                "ownerReferences": [owner_reference(deployment, "apps/v1")],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template},
        }
        created = self.store.create(REPLICASETS, replicaset)
        self.record_event(
            deployment,
            "ScalingReplicaSet",
            f"Scaled up replica set {name} from 0 to {replicas}",
            "deployment-controller",
        )
        return created

    def _deployment_status(self, deployment: JSON, new_rs: JSON | None) -> None:
        meta, spec = deployment["metadata"], deployment.get("spec") or {}
        owned = [rs for rs in self.store.peek(REPLICASETS, meta["namespace"]) if owned_by(rs, meta["uid"])]
        desired = int(spec.get("replicas", 1))
        replicas = sum(int(rs.get("status", {}).get("replicas", 0)) for rs in owned)
        ready = sum(int(rs.get("status", {}).get("readyReplicas", 0)) for rs in owned)
        available = sum(int(rs.get("status", {}).get("availableReplicas", 0)) for rs in owned)
        updated = int((new_rs or {}).get("status", {}).get("replicas", 0))
        old_status = deployment.get("status") or {}
        old_conditions = {c["type"]: c for c in old_status.get("conditions") or []}
        now = now_rfc3339()

        def condition(type_: str, status: str, reason: str, message: str) -> JSON:
            previous = old_conditions.get(type_)
            same = previous is not None and previous["status"] == status and previous["reason"] == reason
            return {
                "type": type_,
                "status": status,
                "lastUpdateTime": previous["lastUpdateTime"] if same and previous else now,
                "lastTransitionTime": previous["lastTransitionTime"]
                if previous is not None and previous["status"] == status
                else now,
                "reason": reason,
                "message": message,
            }

        minimum = desired - _max_unavailable(spec, desired)
        conditions = [
            condition(
                "Available",
                "True" if available >= minimum else "False",
                "MinimumReplicasAvailable" if available >= minimum else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if available >= minimum
                else "Deployment does not have minimum availability.",
            )
        ]
        if new_rs is not None:
            complete = updated == desired and available == desired and replicas == desired
            conditions.append(
                condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                    f'ReplicaSet "{new_rs["metadata"]["name"]}" has successfully progressed.'
                    if complete
                    else f'ReplicaSet "{new_rs["metadata"]["name"]}" is progressing.',
                )
            )
        status: JSON = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": conditions,
        }
        if replicas - available > 0:
            status["unavailableReplicas"] = replicas - available
        for key in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas"):
            if status[key] == 0:  # omitempty, as the API server writes them
                del status[key]
        annotations = meta.setdefault("annotations", {})
        revision = (new_rs or {}).get("metadata", {}).get("annotations", {}).get(REVISION)
        changed = False
        if revision is not None and annotations.get(REVISION) != revision:
            annotations[REVISION] = revision
            changed = True
        if _comparable(old_status) != _comparable(status) or changed:
            deployment["status"] = status
            self.store.update(DEPLOYMENTS, deployment, check_version=False)

    def _reconcile_replicaset(self, replicaset: JSON) -> None:
        meta, spec = replicaset["metadata"], replicaset.get("spec") or {}
        namespace, uid = meta["namespace"], meta["uid"]
        pods = [pod for pod in self.store.peek(PODS, namespace) if owned_by(pod, uid)]
        desired = int(spec.get("replicas", 1))
        for _ in range(desired - len(pods)):
            pod = self._new_pod(replicaset)
            self.record_event(
                replicaset,
                "SuccessfulCreate",
                f"Created pod: {pod['metadata']['name']}",
                "replicaset-controller",
            )
        if len(pods) > desired:
            for pod in sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)[
                : len(pods) - desired
            ]:
                self.pod_stopped(self.store.delete(PODS, namespace, pod["metadata"]["name"]))
                self.record_event(
                    replicaset,
                    "SuccessfulDelete",
                    f"Deleted pod: {pod['metadata']['name']}",
                    "replicaset-controller",
                )
        pods = [pod for pod in self.store.peek(PODS, namespace) if owned_by(pod, uid)]
        ready = sum(1 for pod in pods if _pod_ready(pod))
        status: JSON = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": meta.get("generation", 1),
        }
        for key in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
            if status[key] == 0:
                del status[key]
        if _comparable(replicaset.get("status") or {}) != _comparable(status):
            replicaset["status"] = status
            self.store.update(REPLICASETS, replicaset, check_version=False)

    def _new_pod(self, replicaset: JSON) -> JSON:
        meta = replicaset["metadata"]
        template = copy.deepcopy(replicaset["spec"].get("template") or {})
        pod_meta = template.get("metadata") or {}
        pod = {
            "metadata": {
                "name": f"{meta['name']}-{random_suffix()}",
                "generateName": f"{meta['name']}-",
                "namespace": meta["namespace"],
                "labels": pod_meta.get("labels") or {},
                "ownerReferences": [owner_reference(replicaset, "apps/v1")],
            },
            "spec": template.get("spec") or {},
        }
        if pod_meta.get("annotations"):
            pod["metadata"]["annotations"] = pod_meta["annotations"]
        return self.store.create(PODS, pod)

    def _run_pod(self, pod: JSON) -> None:
        """The scheduler's and kubelet's part: a new pod is bound to the node, then its containers start."""
        status = pod.get("status") or {}
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        if status.get("phase") in ("Running", "Succeeded", "Failed") or key in self._starting:
            return
        spec = pod.setdefault("spec", {})
        for field, default in (
            ("nodeName", NODE_NAME),
            ("restartPolicy", "Always"),
            ("dnsPolicy", "ClusterFirst"),
            ("schedulerName", "default-scheduler"),
            ("serviceAccountName", "default"),
            ("terminationGracePeriodSeconds", 30),
        ):
            spec.setdefault(field, default)
        now = now_rfc3339()
        containers = spec.get("containers") or []
        pod["status"] = {
            "phase": "Pending",
            "conditions": [
                {"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": now}
                for kind, value in (
                    ("PodReadyToStartContainers", "False"),
                    ("Initialized", "True"),
                    ("Ready", "False"),
                    ("ContainersReady", "False"),
                    ("PodScheduled", "True"),
                )
            ],
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "startTime": now,
            "qosClass": "BestEffort",
            "containerStatuses": [
                {
                    "name": container["name"],
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                    "lastState": {},
                    "ready": False,
                    "restartCount": 0,
                    "image": container.get("image", ""),
                    "imageID": "",
                    "started": False,
                }
                for container in containers
            ],
        }
        scheduled = self.store.update(PODS, pod, check_version=False)
        self.record_event(
            scheduled,
            "Scheduled",
            f"Successfully assigned {key[0]}/{key[1]} to {NODE_NAME}",
            "default-scheduler",
        )
        if self.pod_start_seconds <= 0:
            self._start_pod(scheduled)
        else:
            self._starting.add(key)
            self._kubelet_queue.append((time.monotonic() + self.pod_start_seconds, key))
            self._ensure_kubelet()

    def _start_pod(self, pod: JSON) -> None:
        """The containers run: the pod is Running and Ready, with the kubelet's events."""
        now = now_rfc3339()
        self._pod_ips += 1
        ip = f"10.244.{self._pod_ips // 240}.{10 + self._pod_ips % 240}"
        status = pod["status"]
        status["phase"] = "Running"
        for condition in status["conditions"]:
            if condition["status"] != "True":
                condition["status"], condition["lastTransitionTime"] = "True", now
        status["podIP"], status["podIPs"] = ip, [{"ip": ip}]
        for container_status in status["containerStatuses"]:
            image = container_status["image"]
            container_status.update(
                {
                    "state": {"running": {"startedAt": now}},
                    "ready": True,
                    "started": True,
                    "imageID": f"docker.io/library/{image}@sha256:"
                    + hashlib.sha256(image.encode()).hexdigest(),
                    "containerID": f"containerd://{secrets.token_hex(32)}",
                }
            )
        started = self.store.update(PODS, pod, check_version=False)
        for container in pod["spec"].get("containers") or []:
            image, name = container.get("image", ""), container["name"]
            path = f"spec.containers{{{name}}}"
            pulled = f'Container image "{image}" already present on machine'
            self.record_event(started, "Pulled", pulled, "kubelet", field_path=path)
            self.record_event(started, "Created", f"Created container: {name}", "kubelet", field_path=path)
            self.record_event(started, "Started", f"Started container {name}", "kubelet", field_path=path)

    # -- the delayed kubelet (pod_start_seconds > 0) ---------------------------------------------

    def _ensure_kubelet(self) -> None:
        if self._kubelet is None and not self._stopping.is_set():
            self._kubelet = threading.Thread(target=self._run_kubelet, name=self.kubelet_name, daemon=True)
            self._kubelet.start()
        self._kubelet_wakeup.set()

    def _run_kubelet(self) -> None:
        """Starts pods once their delay has passed, then lets the controllers react."""
        while not self._stopping.is_set():
            with self.store.lock:
                now = time.monotonic()
                due = [entry for entry in self._kubelet_queue if entry[0] <= now]
                self._kubelet_queue = [entry for entry in self._kubelet_queue if entry[0] > now]
                for _, (namespace, name) in due:
                    self._starting.discard((namespace, name))
                    pod = self.store.find(PODS, namespace, name)
                    if pod is not None and (pod.get("status") or {}).get("phase") == "Pending":
                        self._start_pod(pod)
                for namespace in {key[0] for _, key in due}:
                    self.reconcile(namespace)
                wait = min((entry[0] for entry in self._kubelet_queue), default=now + 1.0) - now
            self._kubelet_wakeup.wait(timeout=max(wait, 0.01))
            self._kubelet_wakeup.clear()

    def stop(self) -> None:
        self._stopping.set()
        self._kubelet_wakeup.set()
        if self._kubelet is not None:
            self._kubelet.join()

    def _reconcile_endpoints(self, namespace: str) -> None:
        """Endpoints of each Service with a selector: the ready pods it selects (describe shows them)."""
        pods = self.store.peek(PODS, namespace)
        for service in self.store.peek(SERVICES, namespace):
            selector = (service.get("spec") or {}).get("selector")
            if not selector:
                continue
            addresses = [
                {
                    "ip": pod["status"]["podIP"],
                    "nodeName": NODE_NAME,
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": namespace,
                        "name": pod["metadata"]["name"],
                        "uid": pod["metadata"]["uid"],
                    },
                }
                for pod in pods
                if _pod_ready(pod)
                and _selector_matches({"matchLabels": selector}, pod["metadata"].get("labels") or {})
            ]
            ports = [
                {
                    k: v
                    for k, v in {
                        "name": port.get("name"),
                        "port": port.get("targetPort", port.get("port")),
                        "protocol": port.get("protocol", "TCP"),
                    }.items()
                    if v is not None
                }
                for port in service["spec"].get("ports") or []
            ]
            subsets = [{"addresses": addresses, "ports": ports}] if addresses else []
            name = service["metadata"]["name"]
            current = self.store.find(ENDPOINTS, namespace, name)
            if current is None:
                self.store.create(
                    ENDPOINTS,
                    {
                        "metadata": {
                            "name": name,
                            "namespace": namespace,
                            "labels": service["metadata"].get("labels") or {},
                        },
                        "subsets": subsets,
                    },
                )
            elif (current.get("subsets") or []) != subsets:
                current["subsets"] = subsets
                self.store.update(ENDPOINTS, current, check_version=False)

    # -- deletion ------------------------------------------------------------------------------

    def pod_stopped(self, pod: JSON) -> None:
        """The kubelet's Killing events for a deleted pod's containers."""
        for container in (pod.get("spec") or {}).get("containers") or []:
            name = container.get("name", "")
            self.record_event(
                pod,
                "Killing",
                f"Stopping container {name}",
                "kubelet",
                field_path=f"spec.containers{{{name}}}",
            )

    def collect_garbage(self, deleted: JSON, propagation: str) -> None:
        """After a delete: dependents go too (Background/Foreground) or lose their owner (Orphan)."""
        uid = deleted["metadata"]["uid"]
        if deleted["kind"] == "Pod":
            self.pod_stopped(deleted)
        if deleted["kind"] == "Namespace":
            self._empty_namespace(deleted["metadata"]["name"])
            return
        namespace = deleted["metadata"].get("namespace", "")
        for dependent_resource in (REPLICASETS, PODS):
            for dependent in self.store.list_objects(dependent_resource, namespace or None)[0]:
                if not owned_by(dependent, uid):
                    continue
                if propagation == "Orphan":
                    dependent["metadata"]["ownerReferences"] = [
                        ref for ref in dependent["metadata"]["ownerReferences"] if ref.get("uid") != uid
                    ]
                    if not dependent["metadata"]["ownerReferences"]:
                        del dependent["metadata"]["ownerReferences"]
                    self.store.update(dependent_resource, dependent, check_version=False)
                else:
                    try:
                        removed = self.store.delete(
                            dependent_resource, namespace, dependent["metadata"]["name"]
                        )
                    except StoreError:
                        continue
                    self.collect_garbage(removed, propagation)
        if deleted["kind"] == "Service":
            with contextlib.suppress(StoreError):
                self.store.delete(ENDPOINTS, namespace, deleted["metadata"]["name"])

    def _empty_namespace(self, namespace: str) -> None:
        from wardgate.dev.kube.catalog import RESOURCES

        for namespaced in RESOURCES:
            if not namespaced.namespaced:
                continue
            for obj in self.store.list_objects(namespaced, namespace)[0]:
                with contextlib.suppress(StoreError):
                    self.store.delete(namespaced, namespace, obj["metadata"]["name"])


def _pod_ready(pod: JSON) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _max_unavailable(spec: JSON, desired: int) -> int:
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return desired
    value: Any = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return desired * int(value[:-1]) // 100
    return int(value)


def _comparable(status: JSON) -> JSON:
    """A status without timestamps, to tell whether a controller's write would change anything."""
    result = copy.deepcopy(status)
    for condition in result.get("conditions") or []:
        condition.pop("lastUpdateTime", None)
        condition.pop("lastTransitionTime", None)
    return result
