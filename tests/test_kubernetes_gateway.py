"""The Kubernetes API path /k8s/{connection}: RBAC-style policy, Secret values masked, JSON only.

demo-k8s is the cluster double (wardgate.dev.kube), which answers only its own bearer token:
every 200 here proves wardgate injected the connection's credential. Requests are made with httpx
the way kubectl and client-go make them (bearer token, their Accept headers); real kubectl is in
test_kubectl_lambda.py.
"""

from __future__ import annotations

import base64
import json

from tests.helpers import apply_policy_now, raw_recordings, recorded_events
from wardgate.dev.kube.catalog import resource
from wardgate.dev.stack import DEV_POLICY

SECRETS = "/k8s/demo-k8s/api/v1/namespaces/prod/secrets"
PASSWORD = b"s3cr3t-Passw0rd!"  # the double's prod/db-credentials
KUBECTL_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
    "application/json"
)


def test_a_secret_read_through_wardgate_has_its_keys_but_none_of_its_values(client, auth, stack):
    response = client.get(f"{SECRETS}/db-credentials", headers=auth)

    assert response.status_code == 200, response.text
    secret = response.json()
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "db-credentials"
    assert set(secret["data"]) == {"username", "password"}
    assert {base64.b64decode(v) for v in secret["data"].values()} == {b"[masked]"}
    applied = json.loads(
        secret["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert applied["kind"] == "Secret" and set(applied["data"].values()) == {
        base64.b64encode(b"[masked]").decode()
    }
    assert secret["metadata"]["annotations"]["owner"] == "[masked:email]"  # detectors run too
    assert response.headers["x-wardgate-masked"] == "email=1, kubernetes_secret=3"
    recorded = raw_recordings()  # nor in what auditors read
    assert base64.b64encode(PASSWORD) not in recorded and PASSWORD not in recorded


def test_secret_lists_are_masked_and_the_recording_says_what_was_asked(client, auth):
    response = client.get(SECRETS, headers={**auth, "Accept": "application/json"})

    assert response.status_code == 200
    assert response.json()["kind"] == "SecretList"
    assert [i["data"]["password"] for i in response.json()["items"]] == [
        base64.b64encode(b"[masked]").decode()
    ]
    request_event = next(
        e for e in recorded_events() if e["record_id"] == response.headers["x-wardgate-record-id"]
    )
    assert request_event["operation"] == {
        **request_event["operation"],
        "protocol": "k8s",
        "verb": "list",
        "resource": "secrets",
        "namespace": "prod",
    }


def test_a_secret_table_shows_no_values_and_its_embedded_objects_are_masked(client, auth):
    """kubectl get secrets asks for a Table; its rows embed each object's metadata, annotations
    included: the last-applied annotation (a copy of the Secret) must not ride along."""
    response = client.get(SECRETS, headers={**auth, "Accept": KUBECTL_ACCEPT})

    assert response.status_code == 200 and response.json()["kind"] == "Table"
    [row] = response.json()["rows"]
    assert row["cells"][0] == "db-credentials" and row["cells"][2] == 2  # name, type, keys: unchanged
    assert PASSWORD not in response.content and base64.b64encode(PASSWORD) not in response.content


def test_protobuf_is_never_asked_for(client, auth, stack):
    """client-go asks for protobuf first; wardgate asks the cluster for JSON (only JSON is masked)."""
    mixed = client.get(
        SECRETS, headers={**auth, "Accept": "application/vnd.kubernetes.protobuf,application/json"}
    )
    assert mixed.status_code == 200 and mixed.headers["content-type"].startswith("application/json")
    assert mixed.json()["kind"] == "SecretList"
    refused = client.get(SECRETS, headers={**auth, "Accept": "application/vnd.kubernetes.protobuf"})
    assert refused.status_code == 406 and refused.json()["reason"] == "NotAcceptable"
    assert "JSON only" in refused.json()["message"]  # a protobuf-only client is told, not sent JSON


def test_policy_decides_on_kubernetes_verbs(client, auth, stack):
    response = client.delete(f"{SECRETS}/db-credentials", headers=auth)
    assert response.status_code == 403
    status = response.json()  # a meta/v1 Status: kubectl prints "Error from server (Forbidden): ..."
    assert status["kind"] == "Status" and status["reason"] == "Forbidden" and status["code"] == 403
    assert status["details"]["causes"][0]["reason"] == "denied_by_policy"
    assert "delete" in status["message"]
    assert response.headers["x-wardgate-record-id"] in status["message"]
    secrets = resource("", "v1", "secrets")
    assert secrets is not None
    assert stack.kube.store.find(secrets, "prod", "db-credentials") is not None  # nothing reached it


def test_watches_are_refused_with_a_clear_error(client, auth):
    response = client.get(f"{SECRETS}?watch=true", headers=auth)
    assert response.status_code == 400
    assert response.json()["details"]["causes"][0]["reason"] == "watch_not_supported"
    assert "Kubernetes listener" in response.json()["message"]


def test_a_connection_is_only_served_under_its_own_kind(client, auth):
    wrong = client.get("/http/demo-k8s/api/v1/namespaces/prod/secrets", headers=auth)
    assert wrong.status_code == 403 and "is a k8s connection" in wrong.json()["error"]["message"]
    wrong = client.get("/k8s/demo/v1/customers", headers=auth)
    assert wrong.status_code == 403 and "is a http connection" in wrong.json()["message"]


def test_policy_can_reveal_secret_values_to_a_group(stack, client):
    apply_policy_now(
        stack,
        {
            **DEV_POLICY,
            "settings": {
                "masking": {"exemptions": [{"groups": ["break-glass"], "reveal": ["kubernetes_secrets"]}]}
            },
        },
    )
    token = stack.issuer.mint("sre-1", ["ci", "break-glass"])
    secret = client.get(f"{SECRETS}/db-credentials", headers={"Authorization": f"Bearer {token}"}).json()
    assert base64.b64decode(secret["data"]["password"]) == PASSWORD
    event = [e for e in recorded_events() if e["event"] == "response"][-1]
    assert event["response"]["masking"]["revealed"] == ["kubernetes_secrets"]
    assert (
        json.loads(event["response"]["body"]["data"])["data"]["password"]
        == base64.b64encode(PASSWORD).decode()
    )


def test_the_sample_kubernetes_event_is_served_by_the_proxy_function(stack, token):
    from wardgate.dev.server import LambdaContext
    from wardgate.dev.template import Template

    route = next(r for r in Template(stack.root / "template.yaml").routes() if r.path.startswith("/k8s/"))
    event = json.loads((stack.root / "events" / "k8s_proxy.json").read_text())
    event["headers"]["authorization"] = f"Bearer {token}"
    result = stack.gateway.handler_for(route)(event, LambdaContext("test"))
    assert result["statusCode"] == 200, result
    assert json.loads(result["body"])["kind"] == "Table"  # the event asks as kubectl does


def test_impersonation_and_method_overrides_are_refused_before_anything_is_forwarded(client, auth, stack):
    """wardgate's own credential must not act as another user, and the method policy decided on is the
    method the upstream runs."""
    seen = len(stack.upstream.requests)  # the demo HTTP upstream; the cluster keeps its Secret below
    for path, header in (
        (SECRETS, {"Impersonate-User": "system:admin"}),
        (SECRETS, {"Impersonate-Group": "system:masters"}),
        (SECRETS, {"Impersonate-Extra-Scopes": "view"}),
        ("/http/demo/v1/users/1", {"X-HTTP-Method-Override": "DELETE"}),
        ("/http/demo/v1/users/1", {"X-Method-Override": "DELETE"}),
    ):
        response = client.get(path, headers={**auth, **header})
        assert response.status_code == 400, response.text
        body = response.json()
        code, message = (
            (body["details"]["causes"][0]["reason"], body["message"])
            if path.startswith("/k8s/")
            else (body["error"]["code"], body["error"]["message"])
        )
        assert code == "bad_header" and next(iter(header)).lower() in message
    assert len(stack.upstream.requests) == seen
    assert client.get(f"{SECRETS}/db-credentials", headers=auth).status_code == 200
