"""The cluster double's discovery and OpenAPI documents (issue 17): their shapes, then real clients.

The first part reads the documents as ``discovery.answer``/``openapi.answer`` serve them, field by
field where a client reads the field (client-go's discovery and RESTMapper, kubectl's explain,
field-validation verifier and apply patcher). The second part points real kubectl v1.32 and the
official Python client at the double over HTTPS: api-resources, api-versions, explain, short
names, strict field validation on apply (and ``--validate=false``), and client-side apply's
strategic-merge patch, which kubectl computes from the v3 document's merge keys.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import dynamic

from tests.kube_fixtures import DOUBLE_TOKEN, kubectl, start_kube_double
from wardgate.dev.kube import catalog, discovery, openapi
from wardgate.dev.kube.catalog import Answer, Resource
from wardgate.dev.kube.schemas import DEFINITIONS, swagger_protobuf
from wardgate.dev.kube.server import KubeDouble

JSON = dict[str, Any]
# What kubectl 1.32 and client-go send for /api and /apis.
KUBECTL_DISCOVERY_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)
AGGREGATED_V2_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
REF = "#/components/schemas/"
PACKAGES = {"": "core", "apps": "apps", "authorization.k8s.io": "authorization"}  # schema name parts
GROUP_VERSIONS = sorted({(r.group, r.version) for r in catalog.RESOURCES})


def resource_id(resource: Resource) -> str:
    return f"{resource.group or 'core'}/{resource.plural}"


def served(path: str, accept: str = "application/json", query: str = "") -> Answer:
    found = discovery.answer(path, query, accept) or openapi.answer(path, query, accept)
    assert found is not None, f"{path} is not served"
    return found


def body_of(answer: Answer) -> JSON:
    assert answer.status == 200, answer.body[:300]
    document = json.loads(answer.body)
    assert isinstance(document, dict)
    return document


def header(answer: Answer, name: str) -> str | None:
    return next((value for key, value in answer.headers if key.lower() == name.lower()), None)


def v3_document(group: str, version: str) -> JSON:
    return body_of(served(f"/openapi/v3/apis/{group}/{version}" if group else f"/openapi/v3/api/{version}"))


# --- legacy discovery --------------------------------------------------------------------------


def test_api_lists_the_core_version_with_the_fields_clients_require() -> None:
    versions = body_of(served("/api"))
    assert versions["kind"] == "APIVersions"
    assert versions["versions"] == ["v1"]
    # The Python client refuses an APIVersions without serverAddressByClientCIDRs.
    assert versions["serverAddressByClientCIDRs"] == [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]


def test_apis_lists_every_named_group_with_its_preferred_version() -> None:
    groups = body_of(served("/apis"))
    assert (groups["kind"], groups["apiVersion"]) == ("APIGroupList", "v1")
    assert [g["name"] for g in groups["groups"]] == list(catalog.GROUPS)
    apps = groups["groups"][0]
    assert apps == {
        "name": "apps",
        "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
    }
    group = body_of(served("/apis/authorization.k8s.io"))
    assert (group["kind"], group["name"]) == ("APIGroup", "authorization.k8s.io")
    assert group["preferredVersion"]["groupVersion"] == "authorization.k8s.io/v1"


@pytest.mark.parametrize("resource", catalog.RESOURCES, ids=resource_id)
def test_api_resource_lists_describe_each_catalogue_resource(resource: Resource) -> None:
    path = f"/apis/{resource.group}/{resource.version}" if resource.group else f"/api/{resource.version}"
    listing = body_of(served(path))
    assert (listing["kind"], listing["apiVersion"], listing["groupVersion"]) == (
        "APIResourceList",
        "v1",
        resource.group_version,
    )
    entries = {entry["name"]: entry for entry in listing["resources"]}
    entry = entries[resource.plural]
    assert entry["singularName"] == resource.singular
    assert entry["namespaced"] is resource.namespaced
    assert entry["kind"] == resource.kind
    assert entry["verbs"] == list(resource.verbs)
    assert entry.get("shortNames", []) == list(resource.short_names)
    assert entry.get("categories", []) == list(resource.categories)
    for name, (kind, verbs) in resource.subresources.items():
        sub = entries[f"{resource.plural}/{name}"]
        assert (sub["kind"], sub["verbs"], sub["singularName"]) == (kind, list(verbs), "")


def test_scale_subresources_name_the_autoscaling_group() -> None:
    listing = body_of(served("/apis/apps/v1"))
    scale = next(e for e in listing["resources"] if e["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    status = next(e for e in listing["resources"] if e["name"] == "deployments/status")
    assert "group" not in status  # same group version as the list: left out, as a real server does


def test_pod_connect_subresources_take_get_and_create() -> None:
    listing = body_of(served("/api/v1"))
    entries = {e["name"]: e for e in listing["resources"]}
    assert entries["pods/exec"]["kind"] == "PodExecOptions"
    assert entries["pods/portforward"]["verbs"] == ["create", "get"]
    assert entries["pods/log"]["verbs"] == ["get"]
    assert entries["namespaces"]["namespaced"] is False


# --- aggregated discovery ----------------------------------------------------------------------


def test_aggregated_discovery_is_served_to_kubectl_with_the_content_type_it_checks() -> None:
    answer = served("/apis", KUBECTL_DISCOVERY_ACCEPT)
    # client-go decides "aggregated or not" from this header alone.
    assert answer.content_type == AGGREGATED_V2_TYPE
    document = body_of(answer)
    assert (document["kind"], document["apiVersion"]) == ("APIGroupDiscoveryList", "apidiscovery.k8s.io/v2")
    assert [item["metadata"]["name"] for item in document["items"]] == list(catalog.GROUPS)
    apps = document["items"][0]["versions"][0]
    assert (apps["version"], apps["freshness"]) == ("v1", "Current")
    deployments = next(r for r in apps["resources"] if r["resource"] == "deployments")
    assert deployments["responseKind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert deployments["scope"] == "Namespaced"
    assert deployments["singularResource"] == "deployment"
    assert deployments["shortNames"] == ["deploy"]
    assert deployments["categories"] == ["all"]
    scale = next(s for s in deployments["subresources"] if s["subresource"] == "scale")
    assert scale == {
        "subresource": "scale",
        "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
        "verbs": ["get", "patch", "update"],
    }


def test_aggregated_core_group_covers_every_core_resource() -> None:
    document = body_of(served("/api", KUBECTL_DISCOVERY_ACCEPT))
    (core,) = document["items"]
    assert "name" not in core["metadata"]  # the legacy group has the empty name
    resources = {r["resource"]: r for r in core["versions"][0]["resources"]}
    assert set(resources) == {r.plural for r in catalog.RESOURCES if not r.group}
    assert resources["namespaces"]["scope"] == "Cluster"
    assert resources["pods"]["shortNames"] == ["po"]
    exec_ = next(s for s in resources["pods"]["subresources"] if s["subresource"] == "exec")
    assert exec_["responseKind"]["kind"] == "PodExecOptions"
    assert exec_["verbs"] == ["create", "get"]


def test_aggregated_discovery_has_a_stable_etag_of_its_body() -> None:
    first, second = served("/api", KUBECTL_DISCOVERY_ACCEPT), served("/api", KUBECTL_DISCOVERY_ACCEPT)
    etag = header(first, "ETag")
    assert etag == f'"{hashlib.sha256(first.body).hexdigest()}"'
    assert header(second, "ETag") == etag
    assert header(served("/apis", KUBECTL_DISCOVERY_ACCEPT), "ETag") != etag
    assert header(first, "Vary") == "Accept"


def test_an_older_client_asking_only_v2beta1_gets_v2beta1() -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
    answer = served("/apis", accept)
    assert answer.content_type == "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
    assert body_of(answer)["apiVersion"] == "apidiscovery.k8s.io/v2beta1"


@pytest.mark.parametrize("accept", ["application/json", "", "*/*", "application/json, */*"])
def test_plain_json_clients_get_the_legacy_documents(accept: str) -> None:
    answer = served("/apis", accept)
    assert answer.content_type == "application/json"
    assert body_of(answer)["kind"] == "APIGroupList"


def test_a_protobuf_only_client_is_refused_clearly() -> None:
    answer = served("/api/v1", "application/vnd.kubernetes.protobuf")
    assert answer.status == 406
    status = json.loads(answer.body)
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "NotAcceptable", 406)


@pytest.mark.parametrize(
    "path",
    ["/api/v1/pods", "/api/v2", "/apis/batch", "/apis/apps/v2", "/apis/apps/v1/deployments", "/metrics"],
)
def test_paths_that_are_not_discovery_are_left_to_the_rest_handlers(path: str) -> None:
    assert discovery.answer(path, "", "application/json") is None


def test_version_and_health_endpoints() -> None:
    assert body_of(served("/version")) == catalog.SERVER_VERSION
    for path in ("/healthz", "/livez", "/readyz", "/readyz/ping"):
        answer = served(path)
        assert (answer.status, answer.body) == (200, b"ok")
    verbose = served("/livez", query="verbose")
    assert verbose.body.decode().endswith("livez check passed\n")


# --- OpenAPI v3 --------------------------------------------------------------------------------


def test_the_v3_index_points_at_each_group_version_by_its_hash() -> None:
    index = body_of(served("/openapi/v3"))
    expected = {f"apis/{g}/{v}" if g else f"api/{v}" for g, v in GROUP_VERSIONS}
    assert set(index["paths"]) == expected
    for path, entry in index["paths"].items():
        url = entry["serverRelativeURL"]
        assert url.startswith(f"/openapi/v3/{path}?hash=")
        hashed = served(url.split("?")[0], query=url.split("?")[1])
        assert hashed.status == 200
        assert url.endswith("hash=" + hashlib.sha512(hashed.body).hexdigest().upper())
        assert header(hashed, "Cache-Control") == "public, immutable"


def test_a_stale_hash_is_redirected_to_the_current_document() -> None:
    answer = served("/openapi/v3/api/v1", query="hash=0123")
    assert answer.status == 301
    location = header(answer, "Location")
    assert location is not None and location.startswith("/openapi/v3/api/v1?hash=")
    assert served("/openapi/v3/api/v1", query=location.split("?")[1]).status == 200


def test_unknown_v3_documents_are_404_and_non_openapi_paths_none() -> None:
    assert served("/openapi/v3/apis/batch/v1").status == 404
    assert openapi.answer("/api/v1", "", "application/json") is None


@pytest.mark.parametrize("group_version", GROUP_VERSIONS, ids=lambda gv: "/".join(filter(None, gv)))
def test_each_v3_document_is_self_contained(group_version: tuple[str, str]) -> None:
    document = v3_document(*group_version)
    assert document["openapi"].startswith("3.0")
    schemas = document["components"]["schemas"]
    references = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(document)))
    assert references and references <= set(schemas)


@pytest.mark.parametrize("resource", catalog.RESOURCES, ids=resource_id)
def test_each_kind_has_its_schema_named_as_a_real_server_names_it(resource: Resource) -> None:
    schemas = v3_document(resource.group, resource.version)["components"]["schemas"]
    schema = schemas[f"io.k8s.api.{PACKAGES[resource.group]}.{resource.version}.{resource.kind}"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": resource.group, "kind": resource.kind, "version": resource.version}
    ]
    assert schema["description"]
    metadata = schema["properties"]["metadata"]
    assert metadata["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    assert {"apiVersion", "kind"} <= set(schema["properties"])


def operations_of(resource: Resource) -> list[tuple[str, str, JSON]]:
    document = v3_document(resource.group, resource.version)
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            gvk = operation["x-kubernetes-group-version-kind"]
            if (gvk["group"], gvk["version"], gvk["kind"]) == (
                resource.group,
                resource.version,
                resource.kind,
            ):
                found.append((path, method, operation))
    return found


def query_parameters(operation: JSON) -> set[str]:
    return {p["name"] for p in operation.get("parameters", ()) if p["in"] == "query"}


@pytest.mark.parametrize(
    "resource",
    [r for r in catalog.RESOURCES if "patch" in r.verbs],
    ids=lambda r: f"{r.group or 'core'}/{r.plural}",
)
def test_patch_operations_declare_field_validation_and_strategic_merge(resource: Resource) -> None:
    # kubectl's QueryParamVerifierV3 looks for fieldValidation among the kind's PATCH operation's own
    # parameters; its apply patcher wants strategic-merge-patch+json among the request types.
    patches = [op for path, method, op in operations_of(resource) if method == "patch" and "{name}" in path]
    assert patches, f"no PATCH operation for {resource.kind}"
    for operation in patches:
        assert {"fieldValidation", "dryRun", "fieldManager", "force"} <= query_parameters(operation)
        assert operation["x-kubernetes-action"] == "patch"
        assert "application/strategic-merge-patch+json" in operation["requestBody"]["content"]
        assert "application/apply-patch+yaml" in operation["requestBody"]["content"]


@pytest.mark.parametrize(
    "resource",
    [r for r in catalog.RESOURCES if "create" in r.verbs],
    ids=lambda r: f"{r.group or 'core'}/{r.plural}",
)
def test_create_operations_declare_dry_run_field_manager_and_validation(resource: Resource) -> None:
    posts = [op for _, method, op in operations_of(resource) if method == "post"]
    assert len(posts) == 1
    assert {"fieldValidation", "dryRun", "fieldManager"} <= query_parameters(posts[0])
    assert posts[0]["operationId"].startswith("create")


def test_operation_ids_follow_the_api_reference() -> None:
    document = v3_document("", "v1")
    ids = {
        op["operationId"]
        for item in document["paths"].values()
        for m, op in item.items()
        if m != "parameters"
    }
    assert {
        "listCoreV1NamespacedPod",
        "listCoreV1PodForAllNamespaces",
        "readCoreV1NamespacedPod",
        "patchCoreV1NamespacedPod",
        "deleteCoreV1CollectionNamespacedPod",
        "readCoreV1NamespacedPodLog",
        "connectCoreV1GetNamespacedPodExec",
        "connectCoreV1PostNamespacedPodPortforward",
        "listCoreV1Namespace",
        "replaceCoreV1NamespaceFinalize",
    } <= ids
    apps = v3_document("apps", "v1")
    scale = apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"]
    assert scale["operationId"] == "patchAppsV1NamespacedDeploymentScale"
    assert scale["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling",
        "kind": "Scale",
        "version": "v1",
    }
    assert set(
        apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["get"]["responses"]["200"][
            "content"
        ]
    ) >= {"application/json", "application/json;stream=watch"}


def schemas_of(group: str = "") -> JSON:
    schemas = v3_document(group, "v1")["components"]["schemas"]
    assert isinstance(schemas, dict)
    return schemas


@pytest.mark.parametrize(
    ("schema", "field", "merge_key", "strategy", "map_keys"),
    [
        ("io.k8s.api.core.v1.PodSpec", "containers", "name", "merge", ["name"]),
        ("io.k8s.api.core.v1.PodSpec", "initContainers", "name", "merge", ["name"]),
        ("io.k8s.api.core.v1.PodSpec", "volumes", "name", "merge,retainKeys", ["name"]),
        ("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", "name", "merge", ["name"]),
        ("io.k8s.api.core.v1.Container", "ports", "containerPort", "merge", ["containerPort", "protocol"]),
        ("io.k8s.api.core.v1.Container", "env", "name", "merge", ["name"]),
        ("io.k8s.api.core.v1.Container", "volumeMounts", "mountPath", "merge", ["mountPath"]),
        ("io.k8s.api.core.v1.PodStatus", "conditions", "type", "merge", ["type"]),
        ("io.k8s.api.core.v1.ServiceSpec", "ports", "port", "merge", ["port", "protocol"]),
    ],
)
def test_lists_carry_their_merge_keys(
    schema: str, field: str, merge_key: str, strategy: str, map_keys: list[str]
) -> None:
    declared = schemas_of()[schema]["properties"][field]
    assert declared["type"] == "array"
    assert declared["x-kubernetes-patch-merge-key"] == merge_key
    assert declared["x-kubernetes-patch-strategy"] == strategy
    assert declared["x-kubernetes-list-type"] == "map"
    assert declared["x-kubernetes-list-map-keys"] == map_keys


def test_deployment_conditions_merge_by_type() -> None:
    declared = schemas_of("apps")["io.k8s.api.apps.v1.DeploymentStatus"]["properties"]["conditions"]
    assert (declared["x-kubernetes-patch-merge-key"], declared["x-kubernetes-list-map-keys"]) == (
        "type",
        ["type"],
    )


def test_scalar_types_are_declared_as_real_servers_declare_them() -> None:
    schemas = schemas_of()
    assert schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]["format"] == "date-time"
    int_or_string = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert int_or_string["format"] == "int-or-string"
    assert int_or_string["oneOf"] == [{"type": "integer"}, {"type": "string"}]
    assert schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]["oneOf"] == [
        {"type": "string"},
        {"type": "number"},
    ]
    limits = schemas["io.k8s.api.core.v1.ResourceRequirements"]["properties"]["limits"]
    assert limits["additionalProperties"] == {
        "$ref": "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity"
    }


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    undescribed = []
    for group, version in GROUP_VERSIONS:
        for name, schema in v3_document(group, version)["components"]["schemas"].items():
            assert schema.get("description"), name
            for field, declared in schema.get("properties", {}).items():
                if not declared.get("description"):
                    undescribed.append(f"{name}.{field}")
    assert undescribed == []


# --- OpenAPI v2 --------------------------------------------------------------------------------


def test_v2_is_served_as_json_swagger_with_definitions_refs() -> None:
    answer = served("/openapi/v2", "application/json, */*")
    document = body_of(answer)
    assert document["swagger"] == "2.0"
    definitions = document["definitions"]
    text = json.dumps(document)
    assert "#/components/" not in text and "allOf" not in text and "oneOf" not in text
    assert set(re.findall(r'"#/definitions/([^"]+)"', text)) <= set(definitions)
    pod_spec = definitions["io.k8s.api.core.v1.Pod"]["properties"]["spec"]
    assert pod_spec["$ref"] == "#/definitions/io.k8s.api.core.v1.PodSpec" and pod_spec["description"]
    assert definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["type"] == "string"
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in patch["consumes"]
    assert patch["parameters"][0] == {
        "name": "body",
        "in": "body",
        "required": True,
        "schema": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"},
    }
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}


def test_v2_is_served_as_gnostic_protobuf_to_kubectl() -> None:
    answer = served("/openapi/v2", OPENAPI_V2_PROTOBUF)
    assert answer.status == 200
    # client-go parses the answer's type with mime.ParseMediaType, which refuses the "@" kubectl sends.
    assert answer.content_type == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert answer.body.startswith(b"\x0a\x032.0")  # Document.swagger (field 1) = "2.0"
    assert b"io.k8s.api.apps.v1.DeploymentSpec" in answer.body
    assert header(answer, "ETag") == f'"{hashlib.sha512(answer.body).hexdigest().upper()}"'


def test_v2_refuses_a_client_taking_neither_json_nor_its_protobuf() -> None:
    answer = served("/openapi/v2", "application/vnd.kubernetes.protobuf")
    assert answer.status == 406
    assert answer.content_type.startswith("text/plain")
    assert b"application/json" in answer.body


# --- strict field validation and merge metadata ------------------------------------------------

DEPLOYMENTS = catalog.resource("apps", "v1", "deployments")
PODS = catalog.resource("", "v1", "pods")
SECRETS = catalog.resource("", "v1", "secrets")
assert DEPLOYMENTS is not None and PODS is not None and SECRETS is not None

A_DEPLOYMENT: JSON = yaml.safe_load(
    """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: prod
  labels: {app: api}
  annotations: {kubectl.kubernetes.io/last-applied-configuration: "{}"}
  creationTimestamp: null
spec:
  replicas: 2
  selector:
    matchLabels: {app: api}
    matchExpressions: [{key: tier, operator: In, values: [web]}]
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: 1}}
  template:
    metadata: {labels: {app: api}}
    spec:
      affinity: {nodeAffinity: {anything: [goes]}}
      volumes:
      - {name: config, configMap: {name: api-config, items: [{key: a, path: a.conf}]}}
      - {name: scratch, emptyDir: {sizeLimit: 1Gi}}
      containers:
      - name: api
        image: nginx:1.27
        ports: [{containerPort: 80, name: http, protocol: TCP}]
        env:
        - {name: MODE, value: prod}
        - name: PASSWORD
          valueFrom: {secretKeyRef: {name: db-credentials, key: password}}
        resources: {limits: {cpu: 500m, memory: 128Mi}, requests: {cpu: 0.1}}
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 5}
        volumeMounts: [{name: config, mountPath: /etc/api}]
status: {replicas: 2, conditions: [{type: Available, status: "True"}]}
"""
)


def test_a_complete_manifest_has_no_unknown_fields() -> None:
    assert DEPLOYMENTS is not None
    assert openapi.unknown_fields(DEPLOYMENTS, A_DEPLOYMENT) == []


def test_unknown_fields_are_found_at_every_depth() -> None:
    assert DEPLOYMENTS is not None
    manifest: JSON = json.loads(json.dumps(A_DEPLOYMENT))
    manifest["spec"]["replica"] = 3
    manifest["metadata"]["labelz"] = {}
    pod_spec = manifest["spec"]["template"]["spec"]
    pod_spec["containers"][0]["imagePullPolicyy"] = "Always"
    pod_spec["containers"][0]["ports"][0]["hostport"] = 8080
    pod_spec["containers"][0]["env"][1]["valueFrom"]["secretKeyRef"]["field"] = "x"
    pod_spec["volumes"][1]["emptyDir"]["size"] = "1Gi"
    manifest["top"] = 1
    assert openapi.unknown_fields(DEPLOYMENTS, manifest) == [
        ".metadata.labelz",
        ".spec.template.spec.volumes[1].emptyDir.size",
        ".spec.template.spec.containers[0].ports[0].hostport",
        ".spec.template.spec.containers[0].env[1].valueFrom.secretKeyRef.field",
        ".spec.template.spec.containers[0].imagePullPolicyy",
        ".spec.replica",
        ".top",
    ]


def test_maps_hold_any_keys_and_free_form_fields_anything() -> None:
    assert SECRETS is not None and PODS is not None
    secret = {"apiVersion": "v1", "kind": "Secret", "data": {"any-key": "eA=="}, "stringData": {"k": "v"}}
    assert openapi.unknown_fields(SECRETS, secret) == []
    pod = {"spec": {"containers": [{"name": "a", "lifecycle": {"preStop": {"exec": {"command": ["x"]}}}}]}}
    assert openapi.unknown_fields(PODS, pod) == []
    assert openapi.unknown_fields(SECRETS, {"datta": {}}) == [".datta"]


def test_a_subresource_body_is_checked_against_its_own_kind() -> None:
    assert DEPLOYMENTS is not None
    scale: JSON = {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {"replicas": 3},
        "status": {"replicas": 2, "selector": "app=web"},
    }
    assert openapi.unknown_fields(DEPLOYMENTS, scale) == []
    scale["spec"]["replica"] = 3
    assert openapi.unknown_fields(DEPLOYMENTS, scale) == [".spec.replica"]
    # A kind the double does not know: the resource's own schema decides.
    assert openapi.unknown_fields(DEPLOYMENTS, {"apiVersion": "x/v1", "kind": "Y", "spek": {}}) == [".spek"]


def test_patch_meta_gives_the_merge_rules_of_nested_lists() -> None:
    assert DEPLOYMENTS is not None
    ports = openapi.patch_meta(DEPLOYMENTS, ("spec", "template", "spec", "containers", "ports"))
    assert ports == openapi.PatchMeta("merge", "containerPort", "map", ("containerPort", "protocol"))
    volumes = openapi.patch_meta(DEPLOYMENTS, ("spec", "template", "spec", "volumes"))
    assert volumes is not None and (volumes.strategy, volumes.merge_key) == ("merge,retainKeys", "name")
    strategy = openapi.patch_meta(DEPLOYMENTS, ("spec", "strategy"))
    assert strategy == openapi.PatchMeta("retainKeys", "", "", ())
    finalizers = openapi.patch_meta(DEPLOYMENTS, ("metadata", "finalizers"))
    assert finalizers == openapi.PatchMeta("merge", "", "set", ())
    assert openapi.patch_meta(DEPLOYMENTS, ("spec", "nothing")) is None


# --- real clients against the double -----------------------------------------------------------


@pytest.fixture(scope="module")
def double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeDouble]:
    started = start_kube_double(tmp_path_factory.mktemp("kube-discovery"))
    try:
        yield started
    finally:
        started.stop()


def run(double: KubeDouble, *args: str, input: str | None = None) -> tuple[int, str, str]:
    result = kubectl(double, DOUBLE_TOKEN, None, *args, input=input)
    return result.returncode, result.stdout, result.stderr


def test_kubectl_api_resources_lists_the_catalogue_with_short_names(double: KubeDouble) -> None:
    code, out, err = run(double, "api-resources", "--no-headers")
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.splitlines()}
    assert set(rows) == {r.plural for r in catalog.RESOURCES}
    for resource in catalog.RESOURCES:
        row = rows[resource.plural]
        assert row[-1] == resource.kind
        assert resource.group_version in row
        for short in resource.short_names:
            assert short in row
    code, out, err = run(double, "api-resources", "--namespaced=false", "-o", "name")
    assert code == 0, err
    assert set(out.split()) == {"namespaces", "selfsubjectaccessreviews.authorization.k8s.io"}


def test_kubectl_api_versions(double: KubeDouble) -> None:
    code, out, err = run(double, "api-versions")
    assert code == 0, err
    assert out.split() == ["apps/v1", "authorization.k8s.io/v1", "v1"]


def test_kubectl_version_reads_the_server_version(double: KubeDouble) -> None:
    code, out, err = run(double, "version", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["serverVersion"] == catalog.SERVER_VERSION


def test_kubectl_explain_reads_the_v3_document(double: KubeDouble) -> None:
    code, out, err = run(double, "explain", "pods.spec.containers")
    assert code == 0, err
    assert "FIELD: containers <[]Container>" in out
    assert re.search(r"name\s+<string> -required-", out)
    assert re.search(r"ports\s+<\[\]ContainerPort>", out)
    assert "A single application container to run within a pod." in out
    code, out, err = run(double, "explain", "deployment.spec", "--recursive")
    assert code == 0, err
    assert "GROUP:      apps" in out
    assert re.search(r"selector\s+<LabelSelector> -required-", out)
    assert re.search(r"maxSurge\s+<IntOrString>", out)
    assert re.search(r"containerPort\s+<integer> -required-", out)
    assert re.search(r"limits\s+<map\[string\]Quantity>", out)


def test_kubectl_short_names_resolve(double: KubeDouble) -> None:
    code, out, err = run(double, "get", "po", "-n", "prod", "-o", "name")
    assert code == 0, err
    assert len(out.split()) == 2 and all(name.startswith("pod/web-") for name in out.split())
    code, out, err = run(double, "get", "deploy,svc,cm", "-n", "prod", "-o", "name")
    assert code == 0, err
    assert {"deployment.apps/web", "service/web", "configmap/web-config"} <= set(out.split())


def test_kubectl_get_all_lists_the_all_category(double: KubeDouble) -> None:
    code, out, err = run(double, "get", "all", "-n", "prod", "-o", "name")
    assert code == 0, err
    kinds = {name.split("/")[0] for name in out.split()}
    assert kinds == {"pod", "service", "deployment.apps", "replicaset.apps"}


@pytest.mark.parametrize("resource", catalog.RESOURCES, ids=resource_id)
def test_kubectl_explains_every_kind(double: KubeDouble, resource: Resource) -> None:
    name = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
    code, out, err = run(double, "explain", name, "--recursive")
    assert code == 0, err
    assert f"KIND:       {resource.kind}" in out
    assert re.search(r"^  metadata\s+<ObjectMeta>( -required-)?$", out, re.MULTILINE)


def missing_required(schema: JSON, value: Any, path: str = "") -> list[str]:
    """Required fields absent from ``value``: what kubectl's client-side (v2) validation reports."""
    resolved = schema
    while "allOf" in resolved or "$ref" in resolved:
        resolved = resolved["allOf"][0] if "allOf" in resolved else DEFINITIONS[resolved["$ref"][len(REF) :]]
    missing: list[str] = []
    if isinstance(value, dict):
        missing += [f"{path}.{name}" for name in resolved.get("required", ()) if name not in value]
        for name, field in resolved.get("properties", {}).items():
            if name in value:
                missing += missing_required(field, value[name], f"{path}.{name}")
    elif isinstance(value, list) and isinstance(resolved.get("items"), dict):
        for index, item in enumerate(value):
            missing += missing_required(resolved["items"], item, f"{path}[{index}]")
    return missing


def test_every_object_the_double_serves_passes_strict_validation(double: KubeDouble) -> None:
    # What `kubectl get -o yaml` prints must go back through `kubectl replace`/`apply` unchanged:
    # no field the double writes may be missing from its schemas.
    listable = [r for r in catalog.RESOURCES if "list" in r.verbs]
    kinds = ",".join(r.plural + (f".{r.group}" if r.group else "") for r in listable)
    code, out, err = run(double, "get", kinds, "--all-namespaces", "-o", "json")
    assert code == 0, err
    items = json.loads(out)["items"]
    served_kinds = {item["kind"] for item in items}
    assert served_kinds >= {"Pod", "ReplicaSet", "Deployment", "Service", "Secret", "Event", "Endpoints"}
    for item in items:
        resource = catalog.by_kind(item["apiVersion"], item["kind"])
        assert resource is not None
        name = f"{item['kind']} {item['metadata']['name']}"
        assert openapi.unknown_fields(resource, item) == [], name
        schema = DEFINITIONS[f"io.k8s.api.{PACKAGES[resource.group]}.{resource.version}.{resource.kind}"]
        assert missing_required(schema, item) == [], name


def test_kubectl_validates_a_list_manifest_client_side_from_the_v2_protobuf(double: KubeDouble) -> None:
    # kubectl validates a v1/List itself, from /openapi/v2 (asked as protobuf only): a real server
    # serves it, and kubectl apply -f of `kubectl get -o yaml`'s output depends on it.
    code, listed, err = run(double, "get", "configmaps", "-n", "prod", "-o", "yaml")
    assert code == 0, err
    assert yaml.safe_load(listed)["kind"] == "List"
    code, out, err = run(double, "apply", "-v=6", "-f", "-", input=listed)
    assert code == 0, err
    assert re.search(r"GET \S+/openapi/v2\S* 200 OK", err)
    assert "configmap/web-config configured" in out
    misspelt = yaml.safe_load(listed)
    misspelt["items"][0]["dataa"] = {"k": "v"}
    code, out, err = run(double, "apply", "-f", "-", input=yaml.safe_dump(misspelt))
    assert code == 1, out
    assert 'ValidationError(ConfigMap): unknown field "dataa" in io.k8s.api.core.v1.ConfigMap' in err


def test_kubectl_explain_reads_the_v2_protobuf(double: KubeDouble) -> None:
    code, out, err = run(double, "explain", "deploy.spec.strategy", "--output=plaintext-openapiv2")
    assert code == 0, err
    assert "How existing pods are replaced by new ones." in out
    assert re.search(r"type\s+<string>", out) and re.search(r"rollingUpdate\s+<Object>", out)


MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: validated, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: validated}}
  template:
    metadata: {labels: {app: validated}}
    spec:
      containers:
      - {name: app, image: "nginx:1.27", ports: [{containerPort: 80}]}
"""


@pytest.fixture
def clean_deployment(double: KubeDouble) -> Iterator[str]:
    yield "validated"
    run(double, "delete", "deployment", "validated", "-n", "default", "--ignore-not-found")


def test_kubectl_apply_with_an_unknown_field_fails_strict_validation(
    double: KubeDouble, clean_deployment: str
) -> None:
    misspelt = MANIFEST.replace("replicas: 1", "replica: 1").replace(
        "image:", "imagePullPolicyy: Always, image:"
    )
    code, out, err = run(double, "apply", "-f", "-", input=misspelt)
    assert code == 1, out
    assert 'strict decoding error: unknown field "spec.replica"' in err
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolicyy"' in err
    code, out, err = run(double, "get", "deployment", clean_deployment, "-n", "default")
    assert code == 1 and "NotFound" in err
    code, out, err = run(double, "apply", "--validate=warn", "--dry-run=server", "-f", "-", input=misspelt)
    assert code == 0, err
    assert 'Warning: unknown field "spec.replica"' in err
    code, out, err = run(double, "apply", "--validate=false", "-f", "-", input=misspelt)
    assert code == 0, err
    assert "deployment.apps/validated created" in out


def test_kubectl_client_side_apply_merges_by_the_v3_merge_keys(
    double: KubeDouble, clean_deployment: str
) -> None:
    code, out, err = run(double, "apply", "-f", "-", input=MANIFEST)
    assert code == 0, err
    changed = MANIFEST.replace("nginx:1.27", "nginx:1.28").replace(
        "[{containerPort: 80}]", "[{containerPort: 80}, {containerPort: 443}]"
    )
    code, out, err = run(double, "apply", "-v=6", "-f", "-", input=changed)  # -v=6 logs each request
    assert code == 0, err
    # The patch was built from the v3 document (without a strategic-merge PATCH operation there,
    # kubectl would fetch /openapi/v2) and sent with server-side validation.
    assert "/openapi/v3/apis/apps/v1?hash=" in err
    assert "/openapi/v2" not in err and "warning" not in err.lower()
    assert re.search(r"PATCH \S+/deployments/validated\?\S*fieldValidation=Strict\S* 200 OK", err)
    code, out, err = run(
        double,
        "get",
        "deployment",
        clean_deployment,
        "-n",
        "default",
        "-o",
        "jsonpath={.spec.template.spec}",
    )
    assert code == 0, err
    (container,) = json.loads(out)["containers"]
    assert container["image"] == "nginx:1.28"
    assert [p["containerPort"] for p in container["ports"]] == [80, 443]


@pytest.fixture(scope="module")
def python_client(double: KubeDouble) -> Iterator[k8s.ApiClient]:
    configuration = k8s.Configuration()
    configuration.host = double.url
    assert double.certificates is not None
    configuration.ssl_ca_cert = str(double.certificates.ca_file)
    configuration.api_key = {"authorization": DOUBLE_TOKEN}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    with k8s.ApiClient(configuration) as api_client:
        yield api_client


def test_the_python_client_reads_legacy_discovery(python_client: k8s.ApiClient) -> None:
    groups = k8s.ApisApi(python_client).get_api_versions()
    assert [g.name for g in groups.groups] == list(catalog.GROUPS)
    preferred = groups.groups[0].preferred_version
    assert preferred is not None and preferred.group_version == "apps/v1"
    core = k8s.CoreApi(python_client).get_api_versions()
    assert core.versions == ["v1"]
    resources = k8s.AppsV1Api(python_client).get_api_resources()
    deployments = next(r for r in resources.resources if r.name == "deployments")
    assert (deployments.kind, deployments.short_names, deployments.namespaced) == (
        "Deployment",
        ["deploy"],
        True,
    )
    version = k8s.VersionApi(python_client).get_code()
    assert (version.major, version.minor) == ("1", "32")


def test_the_python_dynamic_client_discovers_resources_by_kind_and_short_name(
    python_client: k8s.ApiClient,
) -> None:
    discovered = dynamic.DynamicClient(python_client)  # type: ignore[no-untyped-call]
    deployments = discovered.resources.get(api_version="apps/v1", kind="Deployment")
    assert [d.metadata.name for d in deployments.get(namespace="prod").items] == ["web"]
    pods = discovered.resources.get(api_version="v1", short_names=["po"])
    assert (pods.name, pods.namespaced) == ("pods", True)
    review = discovered.resources.get(api_version="authorization.k8s.io/v1", kind="SelfSubjectAccessReview")
    assert (review.name, review.namespaced, review.verbs) == ("selfsubjectaccessreviews", False, ["create"])


def test_the_protobuf_encoder_refuses_what_it_cannot_carry() -> None:
    # description (field 4) "x", then type (field 22, a TypeItem whose field 1 is "string")
    encoded = swagger_protobuf.schema({"type": "string", "description": "x"})
    assert encoded == b"\x22\x01x" + b"\xb2\x01\x08" + b"\x0a\x06string"
    with pytest.raises(ValueError, match="oneOf"):
        swagger_protobuf.schema({"oneOf": [{"type": "string"}]})
    with pytest.raises(ValueError, match="header"):
        swagger_protobuf.parameter({"name": "X-Trace", "in": "header", "type": "string"})
