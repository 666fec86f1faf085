"""core/v1 types the double serves: Pod and what it embeds, Service, Endpoints, ConfigMap, Secret,
Event, Namespace, ServiceAccount (https://kubernetes.io/docs/reference/kubernetes-api/).

Fields a real server models in depth that the double does not (affinity, topology spread,
ephemeral containers, most volume sources...) are declared as free-form objects: ``kubectl
explain`` lists them, strict field validation accepts whatever they hold. The list extensions
mirror the Go types' markers: containers, env and volumes merge by ``name``, ports by
``containerPort`` (map keys containerPort+protocol), volumeMounts by ``mountPath``, conditions by
``type``; volumes also retain keys (a source replaced by another drops the old one's fields).
"""

from __future__ import annotations

from wardgate.dev.kube.schemas.fields import (
    CORE,
    INT_OR_STRING,
    JSON,
    META,
    QUANTITY,
    boolean,
    free_list,
    free_object,
    gvk,
    integer,
    list_kind,
    list_of,
    map_of,
    object_metadata,
    ref,
    string,
    string_list,
    string_map,
    struct,
    type_meta,
)

_TIME = META + "Time"
_NAME_REF = "Name of the referent. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#names"
_PROTOCOL = string(
    'The protocol: "TCP" (default), "UDP" or "SCTP".', enum=("SCTP", "TCP", "UDP"), default="TCP"
)


def _byte_map(description: str) -> JSON:
    return {
        "type": "object",
        "additionalProperties": {"type": "string", "format": "byte"},
        "description": description,
    }


def _key_selector(what: str) -> JSON:
    return struct(
        f"Selects a key of a {what}.",
        {
            "key": string(f"The key of the {what} to select."),
            "name": string(_NAME_REF, default=""),
            "optional": boolean(f"Whether the {what} or its key must exist."),
        },
        required=("key",),
        x_kubernetes_map_type="atomic",
    )


def _probe(what: str) -> JSON:
    return ref(
        CORE + "Probe",
        f"Periodic probe of container {what}. More info: "
        "https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle#container-probes",
    )


_CONTAINER = struct(
    "A single application container to run within a pod.",
    {
        "args": string_list(
            "Arguments to the entrypoint; the image's CMD when not given. $(VAR) references are expanded "
            "from the container's environment."
        ),
        "command": string_list(
            "Entrypoint array, not run in a shell; the image's ENTRYPOINT when not given. Cannot be updated."
        ),
        "env": list_of(
            CORE + "EnvVar",
            "Environment variables to set in the container. Cannot be updated.",
            merge_key="name",
            strategy="merge",
            map_keys=("name",),
        ),
        "envFrom": list_of(
            CORE + "EnvFromSource",
            "Sources (ConfigMaps, Secrets) whose keys become environment variables; env takes precedence.",
            list_type="atomic",
        ),
        "image": string(
            "Container image name. More info: https://kubernetes.io/docs/concepts/containers/images"
        ),
        "imagePullPolicy": string(
            "Always, Never or IfNotPresent. Defaults to Always for the :latest tag, IfNotPresent otherwise.",
            enum=("Always", "IfNotPresent", "Never"),
        ),
        "lifecycle": free_object("Actions the management system takes on container lifecycle events."),
        "livenessProbe": _probe("liveness: the container is restarted when it fails"),
        "name": string("Name of the container, a DNS label unique in the pod. Cannot be updated."),
        "ports": list_of(
            CORE + "ContainerPort",
            "Ports to expose from the container; informational (any port listening on 0.0.0.0 is reachable).",
            merge_key="containerPort",
            strategy="merge",
            map_keys=("containerPort", "protocol"),
        ),
        "readinessProbe": _probe("service readiness: the pod leaves service endpoints when it fails"),
        "resizePolicy": free_list("Resource resize policy for the container."),
        "resources": ref(
            CORE + "ResourceRequirements",
            "Compute resources required by this container. More info: "
            "https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/",
            default=True,
        ),
        "restartPolicy": string('Only "Always", for init containers that run as sidecars.'),
        "securityContext": ref(CORE + "SecurityContext", "Security options the container runs with."),
        "startupProbe": _probe("startup: other probes wait until it succeeds"),
        "stdin": boolean(
            "Whether the container allocates a buffer for stdin; reads from stdin get EOF otherwise."
        ),
        "stdinOnce": boolean("Whether stdin is closed after the first attach session ends."),
        "terminationMessagePath": string("File the container's termination message is read from."),
        "terminationMessagePolicy": string(
            "File or FallbackToLogsOnError.", enum=("FallbackToLogsOnError", "File")
        ),
        "tty": boolean("Whether the container allocates a TTY for itself (needs stdin)."),
        "volumeDevices": free_list("Block devices used by the container."),
        "volumeMounts": list_of(
            CORE + "VolumeMount",
            "Pod volumes to mount into the container's filesystem. Cannot be updated.",
            merge_key="mountPath",
            strategy="merge",
            map_keys=("mountPath",),
        ),
        "workingDir": string("The container's working directory; the image's when not given."),
    },
    required=("name",),
)

_POD_SPEC = struct(
    "PodSpec is a description of a pod.",
    {
        "activeDeadlineSeconds": integer("Seconds the pod may be active before it is failed.", fmt="int64"),
        "affinity": free_object("The pod's scheduling constraints (node, pod and anti-affinity)."),
        "automountServiceAccountToken": boolean("Whether a service account token is mounted."),
        "containers": list_of(
            CORE + "Container",
            "List of containers belonging to the pod; at least one. Cannot be updated.",
            merge_key="name",
            strategy="merge",
            map_keys=("name",),
        ),
        "dnsConfig": free_object("DNS parameters of the pod, merged with those dnsPolicy generates."),
        "dnsPolicy": string(
            "ClusterFirstWithHostNet, ClusterFirst (default), Default or None.",
            enum=("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"),
        ),
        "enableServiceLinks": boolean("Whether services' information is injected as environment variables."),
        "ephemeralContainers": free_list(
            "Ephemeral containers run in this pod for debugging (kubectl debug)."
        ),
        "hostAliases": free_list("Entries added to the pod's hosts file."),
        "hostIPC": boolean("Use the host's IPC namespace."),
        "hostNetwork": boolean("Use the host's network namespace."),
        "hostPID": boolean("Use the host's PID namespace."),
        "hostUsers": boolean("Use the host's user namespace (true when not set)."),
        "hostname": string("The pod's hostname; the system-defined value when not given."),
        "imagePullSecrets": list_of(
            CORE + "LocalObjectReference",
            "Secrets in the same namespace used to pull the pod's images.",
            merge_key="name",
            strategy="merge",
            map_keys=("name",),
        ),
        "initContainers": list_of(
            CORE + "Container",
            "Containers run in order before the app containers start. More info: "
            "https://kubernetes.io/docs/concepts/workloads/pods/init-containers/",
            merge_key="name",
            strategy="merge",
            map_keys=("name",),
        ),
        "nodeName": string("The node the pod is bound to; set by the scheduler."),
        "nodeSelector": {
            **string_map("Labels a node must carry for the pod to fit on it."),
            "x-kubernetes-map-type": "atomic",
        },
        "os": free_object("The operating system of the pod's containers."),
        "overhead": map_of(QUANTITY, "Resource overhead of running the pod's sandbox."),
        "preemptionPolicy": string("Never or PreemptLowerPriority (default)."),
        "priority": integer("The priority value, from priorityClassName."),
        "priorityClassName": string("The pod's priority class."),
        "readinessGates": free_list("Extra conditions for pod readiness."),
        "resourceClaims": free_list("Dynamic resources the pod uses."),
        "restartPolicy": string(
            "Always (default), OnFailure or Never. More info: "
            "https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#restart-policy",
            enum=("Always", "Never", "OnFailure"),
        ),
        "runtimeClassName": string("The RuntimeClass the pod runs with."),
        "schedulerName": string("The scheduler that dispatches the pod."),
        "schedulingGates": free_list("Gates that block scheduling while present."),
        "securityContext": ref(CORE + "PodSecurityContext", "Pod-level security attributes.", default=False),
        "serviceAccount": string("Deprecated alias of serviceAccountName."),
        "serviceAccountName": string(
            "The service account the pod runs as. More info: "
            "https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/"
        ),
        "setHostnameAsFQDN": boolean("Whether the pod's hostname is its fully qualified domain name."),
        "shareProcessNamespace": boolean("Whether the containers share one process namespace."),
        "subdomain": string("The pod's subdomain: <hostname>.<subdomain>.<namespace>.svc.<cluster domain>."),
        "terminationGracePeriodSeconds": integer(
            "Seconds the pod has to stop gracefully; 30 by default.", fmt="int64"
        ),
        "tolerations": list_of(CORE + "Toleration", "The pod's tolerations.", list_type="atomic"),
        "topologySpreadConstraints": free_list("How pods spread across topology domains."),
        "volumes": list_of(
            CORE + "Volume",
            "Volumes the pod's containers can mount. More info: https://kubernetes.io/docs/concepts/storage/volumes",
            merge_key="name",
            strategy="merge,retainKeys",
            map_keys=("name",),
        ),
    },
    required=("containers",),
)

_CONDITION_FIELDS = {
    "lastTransitionTime": ref(_TIME, "Last time the condition moved from one status to another."),
    "message": string("A human-readable message with details about the transition."),
    "reason": string("A one-word CamelCase reason for the last transition."),
    "status": string("True, False or Unknown."),
    "type": string("The condition's type."),
}

DEFINITIONS: dict[str, JSON] = {
    CORE + "Container": _CONTAINER,
    CORE + "PodSpec": _POD_SPEC,
    CORE + "ContainerPort": struct(
        "A network port of a single container.",
        {
            "containerPort": integer("Port number to expose on the pod's IP address, 0 < x < 65536."),
            "hostIP": string("Host IP the external port binds to."),
            "hostPort": integer("Port number to expose on the host; most containers do not need this."),
            "name": string("An IANA_SVC_NAME unique within the pod, which services can refer to."),
            "protocol": _PROTOCOL,
        },
        required=("containerPort",),
    ),
    CORE + "EnvVar": struct(
        "An environment variable present in a container.",
        {
            "name": string("Name of the environment variable."),
            "value": string("The variable's value; $(VAR) references to earlier variables are expanded."),
            "valueFrom": ref(CORE + "EnvVarSource", "Source of the variable's value; not with value."),
        },
        required=("name",),
    ),
    CORE + "EnvVarSource": struct(
        "Where an environment variable's value comes from.",
        {
            "configMapKeyRef": ref(CORE + "ConfigMapKeySelector", "A key of a ConfigMap."),
            "fieldRef": ref(
                CORE + "ObjectFieldSelector", "A field of the pod (metadata.name, status.podIP...)."
            ),
            "resourceFieldRef": free_object("A resource of the container (limits.cpu, requests.memory...)."),
            "secretKeyRef": ref(CORE + "SecretKeySelector", "A key of a Secret in the pod's namespace."),
        },
    ),
    CORE + "ConfigMapKeySelector": _key_selector("ConfigMap"),
    CORE + "SecretKeySelector": _key_selector("Secret"),
    CORE + "ObjectFieldSelector": struct(
        "Selects a field of the object.",
        {
            "apiVersion": string('Version of the schema the fieldPath is written in; "v1" by default.'),
            "fieldPath": string("Path of the field to select in that version."),
        },
        required=("fieldPath",),
        x_kubernetes_map_type="atomic",
    ),
    CORE + "EnvFromSource": struct(
        "A source of a set of environment variables.",
        {
            "configMapRef": ref(CORE + "ConfigMapEnvSource", "The ConfigMap to select from."),
            "prefix": string("A prefix added to each key."),
            "secretRef": ref(CORE + "SecretEnvSource", "The Secret to select from."),
        },
    ),
    CORE + "ConfigMapEnvSource": struct(
        "A ConfigMap whose keys become environment variables.",
        {"name": string(_NAME_REF, default=""), "optional": boolean("Whether the ConfigMap must exist.")},
    ),
    CORE + "SecretEnvSource": struct(
        "A Secret whose keys become environment variables.",
        {"name": string(_NAME_REF, default=""), "optional": boolean("Whether the Secret must exist.")},
    ),
    CORE + "VolumeMount": struct(
        "A mounting of a volume within a container.",
        {
            "mountPath": string(
                "Path within the container at which the volume is mounted; must not contain ':'."
            ),
            "mountPropagation": string("How mounts propagate between host and container (None by default)."),
            "name": string("Must match the name of a volume."),
            "readOnly": boolean("Mounted read-only if true."),
            "recursiveReadOnly": string("Whether read-only mounts are made read-only recursively."),
            "subPath": string("Path within the volume to mount instead of its root."),
            "subPathExpr": string("Like subPath, with $(VAR) references expanded from the environment."),
        },
        required=("name", "mountPath"),
    ),
    CORE + "Volume": struct(
        "A named volume in a pod that any of its containers may mount; exactly one source is set.",
        {
            "configMap": ref(CORE + "ConfigMapVolumeSource", "A ConfigMap that populates this volume."),
            "csi": free_object("Storage from an external CSI driver."),
            "downwardAPI": free_object("Information about the pod that populates this volume."),
            "emptyDir": ref(
                CORE + "EmptyDirVolumeSource", "A temporary directory that shares the pod's lifetime."
            ),
            "ephemeral": free_object("A volume handled by a cluster storage driver for the pod's lifetime."),
            "hostPath": free_object("A file or directory of the host machine exposed to the container."),
            "name": string("Name of the volume, a DNS label unique within the pod."),
            "nfs": free_object("An NFS mount on the host that shares the pod's lifetime."),
            "persistentVolumeClaim": ref(
                CORE + "PersistentVolumeClaimVolumeSource", "A PersistentVolumeClaim in the same namespace."
            ),
            "projected": free_object("Items for all-in-one resources: secrets, configmaps, downward API."),
            "secret": ref(CORE + "SecretVolumeSource", "A Secret that populates this volume."),
        },
        required=("name",),
    ),
    CORE + "ConfigMapVolumeSource": struct(
        "Adapts a ConfigMap into a volume: each key becomes a file.",
        {
            "defaultMode": integer("Mode bits of the created files, 0644 by default."),
            "items": list_of(
                CORE + "KeyToPath", "Which keys to project, and to which paths.", list_type="atomic"
            ),
            "name": string(_NAME_REF, default=""),
            "optional": boolean("Whether the ConfigMap or its keys must exist."),
        },
    ),
    CORE + "SecretVolumeSource": struct(
        "Adapts a Secret into a volume: each key becomes a file.",
        {
            "defaultMode": integer("Mode bits of the created files, 0644 by default."),
            "items": list_of(
                CORE + "KeyToPath", "Which keys to project, and to which paths.", list_type="atomic"
            ),
            "optional": boolean("Whether the Secret or its keys must exist."),
            "secretName": string("Name of the Secret in the pod's namespace."),
        },
    ),
    CORE + "KeyToPath": struct(
        "Maps a key to a path within a volume.",
        {
            "key": string("The key to project."),
            "mode": integer("Mode bits of this file."),
            "path": string("The relative path of the file; may not contain '..'."),
        },
        required=("key", "path"),
    ),
    CORE + "EmptyDirVolumeSource": struct(
        "An empty directory for a pod.",
        {
            "medium": string('The storage medium: "" (the node\'s default) or "Memory".'),
            "sizeLimit": ref(QUANTITY, "Total amount of local storage the volume may use."),
        },
    ),
    CORE + "PersistentVolumeClaimVolumeSource": struct(
        "References a PersistentVolumeClaim in the same namespace.",
        {
            "claimName": string("Name of the PersistentVolumeClaim."),
            "readOnly": boolean("Force the mount to be read-only."),
        },
        required=("claimName",),
    ),
    CORE + "ResourceRequirements": struct(
        "Compute resource requirements.",
        {
            "claims": free_list("Dynamically allocated resources the container uses."),
            "limits": map_of(QUANTITY, "The maximum amount of compute resources allowed."),
            "requests": map_of(
                QUANTITY, "The minimum amount of compute resources required; limits by default."
            ),
        },
    ),
    CORE + "Probe": struct(
        "A health check performed against a container.",
        {
            "exec": ref(CORE + "ExecAction", "A command to run in the container."),
            "failureThreshold": integer(
                "Consecutive failures for the probe to count as failed; 3 by default."
            ),
            "grpc": free_object("A gRPC health check."),
            "httpGet": ref(CORE + "HTTPGetAction", "An HTTP GET request."),
            "initialDelaySeconds": integer("Seconds after the container starts before probes begin."),
            "periodSeconds": integer("How often to probe, in seconds; 10 by default."),
            "successThreshold": integer(
                "Consecutive successes for the probe to count as succeeded; 1 by default."
            ),
            "tcpSocket": ref(CORE + "TCPSocketAction", "A TCP port to connect to."),
            "terminationGracePeriodSeconds": integer("Grace period when the probe fails.", fmt="int64"),
            "timeoutSeconds": integer("Seconds after which the probe times out; 1 by default."),
        },
    ),
    CORE + "ExecAction": struct(
        "A command run in the container; exit status 0 is healthy.",
        {"command": string_list("The command line, run without a shell.")},
    ),
    CORE + "HTTPGetAction": struct(
        "An HTTP GET request.",
        {
            "host": string("Host name to connect to; the pod's IP by default."),
            "httpHeaders": list_of(CORE + "HTTPHeader", "Custom request headers.", list_type="atomic"),
            "path": string("Path to access on the HTTP server."),
            "port": ref(INT_OR_STRING, "Number or name of the port to access."),
            "scheme": string("HTTP (default) or HTTPS.", enum=("HTTP", "HTTPS")),
        },
        required=("port",),
    ),
    CORE + "HTTPHeader": struct(
        "A custom HTTP header.",
        {"name": string("The header field name."), "value": string("The header field value.")},
        required=("name", "value"),
    ),
    CORE + "TCPSocketAction": struct(
        "A TCP connection.",
        {
            "host": string("Host name to connect to; the pod's IP by default."),
            "port": ref(INT_OR_STRING, "Number or name of the port to access."),
        },
        required=("port",),
    ),
    CORE + "SecurityContext": struct(
        "Security options a container runs with; they override the pod's.",
        {
            "allowPrivilegeEscalation": boolean(
                "Whether a process can gain more privileges than its parent."
            ),
            "appArmorProfile": free_object("The AppArmor options."),
            "capabilities": ref(CORE + "Capabilities", "Capabilities to add or drop."),
            "privileged": boolean("Run the container in privileged mode."),
            "procMount": string("The type of proc mount."),
            "readOnlyRootFilesystem": boolean("Whether the root filesystem is read-only."),
            "runAsGroup": integer("The GID of the container process's entrypoint.", fmt="int64"),
            "runAsNonRoot": boolean("The container must run as a non-root user."),
            "runAsUser": integer("The UID of the container process's entrypoint.", fmt="int64"),
            "seLinuxOptions": free_object("The SELinux context."),
            "seccompProfile": free_object("The seccomp options."),
            "windowsOptions": free_object("Windows-specific options."),
        },
    ),
    CORE + "Capabilities": struct(
        "POSIX capabilities added to or dropped from a running container.",
        {"add": string_list("Added capabilities."), "drop": string_list("Removed capabilities.")},
    ),
    CORE + "PodSecurityContext": struct(
        "Pod-level security attributes and common container settings.",
        {
            "appArmorProfile": free_object("The AppArmor options."),
            "fsGroup": integer("A supplemental group that owns the pod's volumes.", fmt="int64"),
            "fsGroupChangePolicy": string("OnRootMismatch or Always."),
            "runAsGroup": integer("The GID of the containers' entrypoints.", fmt="int64"),
            "runAsNonRoot": boolean("The containers must run as a non-root user."),
            "runAsUser": integer("The UID of the containers' entrypoints.", fmt="int64"),
            "seLinuxOptions": free_object("The SELinux context."),
            "seccompProfile": free_object("The seccomp options."),
            "supplementalGroups": {
                "type": "array",
                "items": {"type": "integer", "format": "int64", "default": 0},
                "description": "Groups added to each container's first process.",
                "x-kubernetes-list-type": "atomic",
            },
            "supplementalGroupsPolicy": string("Merge or Strict."),
            "sysctls": free_list("Namespaced sysctls for the pod."),
            "windowsOptions": free_object("Windows-specific options."),
        },
    ),
    CORE + "LocalObjectReference": struct(
        "A reference to an object in the same namespace.",
        {"name": string(_NAME_REF, default="")},
        x_kubernetes_map_type="atomic",
    ),
    CORE + "Toleration": struct(
        "Lets the pod be scheduled on nodes with a matching taint.",
        {
            "effect": string("NoSchedule, PreferNoSchedule or NoExecute; empty matches all."),
            "key": string("The taint key; empty matches all keys (with operator Exists)."),
            "operator": string("Exists or Equal (default)."),
            "tolerationSeconds": integer("How long a NoExecute taint is tolerated.", fmt="int64"),
            "value": string("The taint value to match."),
        },
    ),
    CORE + "PodTemplateSpec": struct(
        "The description of a pod to create from a template.",
        {
            "metadata": object_metadata(),
            "spec": ref(
                CORE + "PodSpec",
                "Specification of the desired behavior of the pod. More info: "
                "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#spec-and-status",
                default=True,
            ),
        },
    ),
    CORE + "PodStatus": struct(
        "The most recently observed status of a pod; may trail the actual state.",
        {
            "conditions": list_of(
                CORE + "PodCondition",
                "Current service state of the pod. More info: "
                "https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle#pod-conditions",
                merge_key="type",
                strategy="merge",
                map_keys=("type",),
            ),
            "containerStatuses": list_of(
                CORE + "ContainerStatus", "One status per container in the spec.", list_type="atomic"
            ),
            "ephemeralContainerStatuses": free_list("Statuses of the ephemeral containers."),
            "hostIP": string("The IP of the node the pod is on."),
            "hostIPs": list_of(CORE + "HostIP", "The node's IPs.", list_type="atomic"),
            "initContainerStatuses": list_of(
                CORE + "ContainerStatus", "One status per init container.", list_type="atomic"
            ),
            "message": string("Why the pod is in this condition."),
            "nominatedNodeName": string("The node the pod may be placed on after preemption."),
            "phase": string(
                "Pending, Running, Succeeded, Failed or Unknown. More info: "
                "https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle#pod-phase",
                enum=("Failed", "Pending", "Running", "Succeeded", "Unknown"),
            ),
            "podIP": string("The IP address allocated to the pod."),
            "podIPs": list_of(
                CORE + "PodIP",
                "The pod's IP addresses (one per family).",
                merge_key="ip",
                strategy="merge",
                map_keys=("ip",),
            ),
            "qosClass": string(
                "Guaranteed, Burstable or BestEffort.", enum=("BestEffort", "Burstable", "Guaranteed")
            ),
            "reason": string("A brief CamelCase reason for the pod's state (Evicted...)."),
            "startTime": ref(_TIME, "When the kubelet acknowledged the pod, before its images were pulled."),
        },
    ),
    CORE + "PodCondition": struct(
        "A condition of the pod (PodScheduled, Initialized, ContainersReady, Ready).",
        {**_CONDITION_FIELDS, "lastProbeTime": ref(_TIME, "Last time the condition was probed.")},
        required=("type", "status"),
    ),
    CORE + "PodIP": struct("An IP address of the pod.", {"ip": string("The IP address.")}, required=("ip",)),
    CORE + "HostIP": struct(
        "An IP address of the host.", {"ip": string("The IP address.")}, required=("ip",)
    ),
    CORE + "ContainerStatus": struct(
        "The state of one container in the pod.",
        {
            "containerID": string("The container's ID, '<type>://<container_id>'."),
            "image": string("The image the container is running."),
            "imageID": string("The image's ID."),
            "lastState": ref(CORE + "ContainerState", "The container's last termination.", default=True),
            "name": string("The container's name, from the spec."),
            "ready": boolean("Whether the container passes its readiness probe."),
            "resources": ref(CORE + "ResourceRequirements", "Resources the runtime applied."),
            "restartCount": integer("How many times the container was restarted."),
            "started": boolean("Whether the container passed its startup probe."),
            "state": ref(CORE + "ContainerState", "The container's current state.", default=True),
        },
        required=("name", "ready", "restartCount", "image", "imageID"),
    ),
    CORE + "ContainerState": struct(
        "A container's state: exactly one of waiting, running or terminated (waiting by default).",
        {
            "running": ref(CORE + "ContainerStateRunning", "Details about a running container."),
            "terminated": ref(CORE + "ContainerStateTerminated", "Details about a terminated container."),
            "waiting": ref(CORE + "ContainerStateWaiting", "Details about a waiting container."),
        },
    ),
    CORE + "ContainerStateRunning": struct(
        "A running container.", {"startedAt": ref(_TIME, "When the container last (re)started.")}
    ),
    CORE + "ContainerStateWaiting": struct(
        "A waiting container.",
        {"message": string("Why the container is not running yet."), "reason": string("A brief reason.")},
    ),
    CORE + "ContainerStateTerminated": struct(
        "A terminated container.",
        {
            "containerID": string("The container's ID."),
            "exitCode": integer("Exit status of the last termination."),
            "finishedAt": ref(_TIME, "When the container last terminated."),
            "message": string("Message about the last termination."),
            "reason": string("A brief reason for the last termination."),
            "signal": integer("Signal of the last termination."),
            "startedAt": ref(_TIME, "When the container's previous execution started."),
        },
        required=("exitCode",),
    ),
    CORE + "Pod": struct(
        "Pod is a collection of containers that can run on a host, "
        "created by clients and scheduled onto hosts.",
        {
            **type_meta("Pod"),
            "metadata": object_metadata(),
            "spec": ref(
                CORE + "PodSpec",
                "Specification of the desired behavior of the pod. More info: "
                "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#spec-and-status",
                default=True,
            ),
            "status": ref(
                CORE + "PodStatus",
                "Most recently observed status of the pod; read-only, may trail the actual state. More info: "
                "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#spec-and-status",
                default=True,
            ),
        },
        x_kubernetes_group_version_kind=gvk("", "v1", "Pod"),
    ),
    CORE + "Service": struct(
        "Service is a named abstraction of a software service: ports the cluster proxies and a "
        "selector that picks the pods answering on them.",
        {
            **type_meta("Service"),
            "metadata": object_metadata(),
            "spec": ref(CORE + "ServiceSpec", "The behavior of the service.", default=True),
            "status": ref(
                CORE + "ServiceStatus", "The most recently observed status of the service.", default=True
            ),
        },
        x_kubernetes_group_version_kind=gvk("", "v1", "Service"),
    ),
    CORE + "ServiceSpec": struct(
        "The attributes a user creates on a service.",
        {
            "allocateLoadBalancerNodePorts": boolean("Whether node ports are allocated for a LoadBalancer."),
            "clusterIP": string(
                'The service\'s IP address, usually allocated; "None" makes a headless service.'
            ),
            "clusterIPs": string_list("The service's IP addresses, one per family."),
            "externalIPs": string_list("IP addresses for which nodes also accept the service's traffic."),
            "externalName": string("The DNS name returned for an ExternalName service."),
            "externalTrafficPolicy": string("Cluster or Local: how external traffic is routed."),
            "healthCheckNodePort": integer("The health-check node port of a Local LoadBalancer service."),
            "internalTrafficPolicy": string("Cluster or Local: how in-cluster traffic is routed."),
            "ipFamilies": string_list("IPv4 and/or IPv6."),
            "ipFamilyPolicy": string("SingleStack, PreferDualStack or RequireDualStack."),
            "loadBalancerClass": string("The class of load balancer implementation."),
            "loadBalancerIP": string("Deprecated: the load balancer's requested IP."),
            "loadBalancerSourceRanges": string_list("Client IP ranges allowed through the load balancer."),
            "ports": list_of(
                CORE + "ServicePort",
                "The list of ports the service exposes.",
                merge_key="port",
                strategy="merge",
                map_keys=("port", "protocol"),
            ),
            "publishNotReadyAddresses": boolean("Publish endpoints of pods that are not ready."),
            "selector": {
                **string_map("Route traffic to pods whose labels match this selector."),
                "x-kubernetes-map-type": "atomic",
            },
            "sessionAffinity": string("ClientIP or None (default).", enum=("ClientIP", "None")),
            "sessionAffinityConfig": free_object("Session affinity settings."),
            "trafficDistribution": string("A preference for how traffic is distributed to endpoints."),
            "type": string(
                "ClusterIP (default), NodePort, LoadBalancer or ExternalName.",
                enum=("ClusterIP", "ExternalName", "LoadBalancer", "NodePort"),
            ),
        },
    ),
    CORE + "ServicePort": struct(
        "A port a service exposes.",
        {
            "appProtocol": string("The application protocol of this port."),
            "name": string("A DNS label, required when the service has several ports."),
            "nodePort": integer("The port on each node for NodePort or LoadBalancer services."),
            "port": integer("The port the service exposes."),
            "protocol": _PROTOCOL,
            "targetPort": ref(INT_OR_STRING, "Number or name of the port on the pods; port by default."),
        },
        required=("port",),
    ),
    CORE + "ServiceStatus": struct(
        "The current status of a service.",
        {
            "conditions": free_list("Current service state."),
            "loadBalancer": ref(
                CORE + "LoadBalancerStatus", "The load balancer's status, if any.", default=True
            ),
        },
    ),
    CORE + "LoadBalancerStatus": struct(
        "The status of a load balancer.",
        {
            "ingress": list_of(
                CORE + "LoadBalancerIngress", "The load balancer's ingress points.", list_type="atomic"
            )
        },
    ),
    CORE + "LoadBalancerIngress": struct(
        "An ingress point of a load balancer.",
        {
            "hostname": string("A DNS-based ingress point."),
            "ip": string("An IP-based ingress point."),
            "ipMode": string("VIP or Proxy."),
            "ports": free_list("The service ports' records."),
        },
    ),
    CORE + "Endpoints": struct(
        "Endpoints is the set of addresses and ports that implement a service.",
        {
            **type_meta("Endpoints"),
            "metadata": object_metadata(),
            "subsets": list_of(CORE + "EndpointSubset", "All the endpoints, in subsets.", list_type="atomic"),
        },
        x_kubernetes_group_version_kind=gvk("", "v1", "Endpoints"),
    ),
    CORE + "EndpointSubset": struct(
        "A group of addresses with a common set of ports.",
        {
            "addresses": list_of(CORE + "EndpointAddress", "Ready addresses.", list_type="atomic"),
            "notReadyAddresses": list_of(
                CORE + "EndpointAddress", "Addresses not ready yet.", list_type="atomic"
            ),
            "ports": list_of(
                CORE + "EndpointPort", "The ports available on these addresses.", list_type="atomic"
            ),
        },
    ),
    CORE + "EndpointAddress": struct(
        "One endpoint's address.",
        {
            "hostname": string("The endpoint's hostname."),
            "ip": string("The endpoint's IP."),
            "nodeName": string("The node hosting the endpoint."),
            "targetRef": ref(CORE + "ObjectReference", "The object providing the endpoint (a pod)."),
        },
        required=("ip",),
        x_kubernetes_map_type="atomic",
    ),
    CORE + "EndpointPort": struct(
        "A port of an endpoint.",
        {
            "appProtocol": string("The application protocol of this port."),
            "name": string("The port's name, as in the service."),
            "port": integer("The port number."),
            "protocol": _PROTOCOL,
        },
        required=("port",),
        x_kubernetes_map_type="atomic",
    ),
    CORE + "ObjectReference": struct(
        "A reference to an object, with enough to find it.",
        {
            "apiVersion": string("API version of the referent."),
            "fieldPath": string("A piece of the object, as a path (spec.containers{name})."),
            "kind": string("Kind of the referent."),
            "name": string(_NAME_REF),
            "namespace": string("Namespace of the referent."),
            "resourceVersion": string("The referent's resourceVersion, if known."),
            "uid": string("UID of the referent."),
        },
        x_kubernetes_map_type="atomic",
    ),
    CORE + "ConfigMap": struct(
        "ConfigMap holds configuration data for pods to consume.",
        {
            **type_meta("ConfigMap"),
            "binaryData": _byte_map("Binary data, base64-encoded; keys must not also be in data."),
            "data": string_map("Configuration data (UTF-8); keys are [-._a-zA-Z0-9]+."),
            "immutable": boolean("If true, data cannot be updated, only the object deleted and recreated."),
            "metadata": object_metadata(),
        },
        x_kubernetes_group_version_kind=gvk("", "v1", "ConfigMap"),
    ),
    CORE + "Secret": struct(
        "Secret holds secret data of a certain type, at most 1 MB in total.",
        {
            **type_meta("Secret"),
            "data": _byte_map("The secret data, base64-encoded values; keys are [-._a-zA-Z0-9]+."),
            "immutable": boolean("If true, data cannot be updated, only the object deleted and recreated."),
            "metadata": object_metadata(),
            "stringData": string_map("Write-only convenience: plain-text values merged into data on write."),
            "type": string(
                "Used to ease programmatic handling of secret data "
                "(Opaque, kubernetes.io/tls...). More info: "
                "https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"
            ),
        },
        x_kubernetes_group_version_kind=gvk("", "v1", "Secret"),
    ),
    CORE + "Event": struct(
        "Event is a report of an event somewhere in the cluster.",
        {
            **type_meta("Event"),
            "action": string("What action was taken or failed on the object."),
            "count": integer("How many times this event occurred."),
            "eventTime": ref(META + "MicroTime", "When the event was first observed."),
            "firstTimestamp": ref(_TIME, "When the event was first recorded."),
            "involvedObject": ref(CORE + "ObjectReference", "The object this event is about.", default=True),
            "lastTimestamp": ref(_TIME, "When the event most recently occurred."),
            "message": string("A human-readable description of the status of this operation."),
            "metadata": object_metadata(),
            "reason": string("A short, machine-understandable reason for the transition."),
            "related": ref(CORE + "ObjectReference", "A secondary object."),
            "reportingComponent": string("The controller that emitted the event."),
            "reportingInstance": string("The controller instance that emitted the event."),
            "series": ref(CORE + "EventSeries", "Data about the series this event belongs to."),
            "source": ref(CORE + "EventSource", "The component reporting the event.", default=True),
            "type": string("Normal or Warning."),
        },
        required=("metadata", "involvedObject"),
        x_kubernetes_group_version_kind=gvk("", "v1", "Event"),
    ),
    CORE + "EventSeries": struct(
        "A series of events.",
        {
            "count": integer("Occurrences in this series up to the last heartbeat."),
            "lastObservedTime": ref(META + "MicroTime", "Time of the last occurrence observed."),
        },
    ),
    CORE + "EventSource": struct(
        "The source of an event.",
        {"component": string("The component the event is from."), "host": string("The node's name.")},
    ),
    CORE + "Namespace": struct(
        "Namespace provides a scope for names.",
        {
            **type_meta("Namespace"),
            "metadata": object_metadata(),
            "spec": ref(CORE + "NamespaceSpec", "The behavior of the namespace.", default=True),
            "status": ref(CORE + "NamespaceStatus", "The status of the namespace.", default=True),
        },
        x_kubernetes_group_version_kind=gvk("", "v1", "Namespace"),
    ),
    CORE + "NamespaceSpec": struct(
        "The attributes of a namespace.",
        {"finalizers": string_list("Must be empty before the namespace is removed from storage.")},
    ),
    CORE + "NamespaceStatus": struct(
        "The status of a namespace.",
        {
            "conditions": free_list("The namespace's conditions."),
            "phase": string("Active or Terminating.", enum=("Active", "Terminating")),
        },
    ),
    CORE + "ServiceAccount": struct(
        "ServiceAccount binds a name for pods to run as, and its secrets.",
        {
            **type_meta("ServiceAccount"),
            "automountServiceAccountToken": boolean("Whether pods running as this account mount a token."),
            "imagePullSecrets": list_of(
                CORE + "LocalObjectReference", "Secrets used to pull images for its pods.", list_type="atomic"
            ),
            "metadata": object_metadata(),
            "secrets": list_of(
                CORE + "ObjectReference",
                "Secrets pods running as this account may use.",
                merge_key="name",
                strategy="merge",
            ),
        },
        x_kubernetes_group_version_kind=gvk("", "v1", "ServiceAccount"),
    ),
}

for _kind, _plural in (
    ("Pod", "pods"),
    ("Service", "services"),
    ("Endpoints", "endpoints"),
    ("ConfigMap", "config maps"),
    ("Secret", "secrets"),
    ("Event", "events"),
    ("Namespace", "namespaces"),
    ("ServiceAccount", "service accounts"),
):
    _name, _schema = list_kind(CORE, "", "v1", _kind, _plural)
    DEFINITIONS[_name] = _schema
