"""One guarded HTTP or Kubernetes API request: admit, decide, record, forward, mask, record.

``gate.Gate`` does what every protocol shares (and says why the order is the security
argument); this module adds the HTTP specifics: the normalised path that policy sees is exactly
what is forwarded, the upstream is pinned, the credential injected, the response masked.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias
from urllib.parse import parse_qsl

from wardgate.apigw import HttpRequest, HttpResponse, error_response
from wardgate.approvals.required import ApprovalRequired
from wardgate.connections import Connection
from wardgate.credentials import CredentialStore
from wardgate.errors import (
    BadGateway,
    BadRequest,
    Forbidden,
    GatewayError,
    NotAcceptable,
    ServiceUnavailable,
)
from wardgate.gate import Gate, Progress, masked_counts_header, masked_url_part, ms_since
from wardgate.identity import Identity
from wardgate.masking.engine import FIELD_MASK, MaskingRefused, MaskResult, mask_body
from wardgate.masking.kubernetes import MASKED_DATA, mask_kubernetes_body
from wardgate.masking.policy import AppliedMasking
from wardgate.operations import UnparseableOperation
from wardgate.operations.http import HttpOperation
from wardgate.proxies import http as http_proxy
from wardgate.proxies import kubernetes
from wardgate.recording import Recording, recorded_body, recorded_headers

if TYPE_CHECKING:
    from wardgate.approvals.model import ApprovalRequest  # imported when an operation is first held
    from wardgate.operations.k8s import K8sOperation  # imported by the first Kubernetes request

Operation: TypeAlias = "HttpOperation | K8sOperation | UnparseableOperation"

# What the Lambda route cannot serve (API Gateway's HTTP API neither upgrades a connection nor
# streams a response) and where it is served instead.
STREAMING_ELSEWHERE = (
    "through wardgate's Kubernetes listener (the TCP gateway), which `wardgate kubeconfig "
    "--connection <name>` points at unless given --via lambda"
)


class KubernetesApprovalPending(Forbidden):
    """A Kubernetes operation held for approval. kubectl cannot take a 202 (it would report a
    delete or an apply as done), so the hold is a refusal naming the request; once approved, the
    identical request by the same identity runs, once (or the poll URL runs it)."""

    code = "approval_pending"

    def __init__(self, reason: str, request_id: str, poll_url: str) -> None:
        super().__init__(
            f"{reason}: approval request {request_id} is pending ({poll_url}); once it is approved, "
            "run the identical command again and it runs, once"
        )
        self.request_id = request_id


def kubernetes_call_key(
    identity: Identity, connection: str, rule: str, method: str, path: str, query: str, body: bytes
) -> str:
    """What makes two Kubernetes requests the same operation: who, where, which rule, and exactly
    what would be forwarded (method, normalised path, query, body)."""
    material = [identity.issuer, identity.subject, connection, rule, method, path, query]
    material.append(hashlib.sha256(body).hexdigest())
    return "k8s:" + hashlib.sha256(json.dumps(material).encode()).hexdigest()


@dataclass(frozen=True)
class Outgoing:
    """What goes to the upstream, before the credential: the agent's request, or a held one."""

    method: str
    path: str  # normalised
    query: str
    headers: Mapping[str, str]  # the agent's (filtered by forwarded_headers)
    cookies: list[str]
    body: bytes


@dataclass(eq=False, repr=False)  # a service: compared by identity, its caches never printed
class HttpGateway(Gate):
    """``Gate`` for HTTP and Kubernetes API connections: the credential injected, forwarded, masked."""

    credentials: CredentialStore
    forwarder: http_proxy.HttpForwarder

    def handle(self, request: HttpRequest, deadline: float) -> HttpResponse:
        if request.route != "k8s":
            return self.serve(
                request, lambda rec, progress: self._proxy(request, deadline, rec, progress), error_response
            )
        # kubectl prints a refusal only from a meta/v1 Status; its message names the record.
        record_ids: list[str] = []

        def work(recording: Recording, progress: Progress) -> HttpResponse:
            record_ids.append(recording.record_id)
            return self._proxy(request, deadline, recording, progress)

        def render(error: GatewayError, request_id: str) -> HttpResponse:
            return kubernetes.status_response(error, request_id, record_ids[0] if record_ids else "")

        return self.serve(request, work, render)

    def _proxy(
        self, request: HttpRequest, deadline: float, recording: Recording, progress: Progress
    ) -> HttpResponse:
        started = time.perf_counter()
        identity, connection = self.admit(request, recording, progress)
        path = http_proxy.normalise_path(request.proxy_path)  # refuses traversal tricks, both kinds
        query = http_proxy.check_query(request.raw_query)
        http_proxy.check_headers(request.headers)
        if connection.kind == "k8s":
            self._check_kubernetes_media(request)
        operation = self._operation(request, connection.kind, path, query)
        recording.operation = (
            {"protocol": connection.kind, "unparseable": operation.reason}
            if isinstance(operation, UnparseableOperation)
            else operation.to_record()
        )
        if connection.kind == "http":  # as recorded: masked (the request's own, when unchanged)
            recorded = recording.request
            same_path = path == request.proxy_path
            recording.operation["path"] = recorded["path"] if same_path else masked_url_part(path, "/")
            same_query = query == request.raw_query
            recording.operation["query"] = recorded["query"] if same_query else masked_url_part(query, "=&")
        if connection.kind == "k8s":
            from wardgate.operations.k8s import K8sOperation

            if isinstance(operation, K8sOperation):
                self._refuse_masked_secret_values(request.body, operation)
        approval: ApprovalRequest | None = None
        try:
            policy_set = self.decide(identity, connection, operation, recording)
        except ApprovalRequired as required:
            if self.approvals is None:
                raise
            if connection.kind == "k8s":
                approval = self._approved_call(request, identity, path, query, required, recording, progress)
                policy_set = required.policy_set
            else:
                response = self.approvals.hold(
                    request, identity, connection.kind, path, query, required, recording
                )
                progress.held = True
                return response
        masking = policy_set.masking.for_caller(connection.name, identity.groups)
        body = http_proxy.check_request_body(request.body, self.limits.max_request_body)
        recording.timings_ms["guard"] = ms_since(started)
        outgoing = Outgoing(request.method, path, query, request.headers, request.cookies, body)
        try:
            response = self._forward(
                connection,
                outgoing,
                request.request_id,
                request.gateway_prefix,
                masking,
                recording,
                progress,
                deadline,
            )
        except GatewayError as error:
            if approval is not None:
                self._end_approved_call(approval, progress, error.status)
            raise
        if approval is not None:
            self._end_approved_call(approval, progress, response.status)
        return response

    def _approved_call(
        self,
        request: HttpRequest,
        identity: Identity,
        path: str,
        query: str,
        required: ApprovalRequired,
        recording: Recording,
        progress: Progress,
    ) -> ApprovalRequest:
        """The approval that lets this very Kubernetes request run now (claimed: it runs once), or
        ``KubernetesApprovalPending`` naming the approval request (a new one when there is none or
        the last one is spent, denied or expired). A window approval never gets here."""
        assert self.approvals is not None
        key = kubernetes_call_key(
            identity, request.connection, required.decision.rule, request.method, path, query, request.body
        )
        approval = self.approvals.held_call(key, identity)
        if approval is not None:
            status = approval.effective_status(self.approvals.clock())
            if status == "pending":
                poll_url = f"{self.approvals.base_url(request)}/requests/{approval.request_id}"
                progress.held = True
                raise KubernetesApprovalPending(required.decision.reason, approval.request_id, poll_url)
            if status == "approved" and approval.mode == "one-time" and self.approvals.claim_call(approval):
                recording.decision = {
                    **(recording.decision or {}),
                    "outcome": "allow",
                    "approval": approval.request_id,
                    "approved_by": [v.approver for v in approval.approvals()],
                }
                return approval
        held = json.loads(
            self.approvals.hold(request, identity, "k8s", path, query, required, recording).body
        )
        self.approvals.store.remember_call(key, held["request_id"], int(self.approvals.clock()) + 30 * 86400)
        progress.held = True
        raise KubernetesApprovalPending(required.decision.reason, held["request_id"], held["poll_url"])

    def _end_approved_call(self, approval: ApprovalRequest, progress: Progress, status: int) -> None:
        """Spent once forwarded (whatever the cluster answered); released when nothing left."""
        assert self.approvals is not None
        if progress.forwarded:
            self.approvals.finish_call(approval, status, {"status": status, "result": "in the response"})
            return
        # Best effort: a request left "executing" never runs, which is the safe side.
        with contextlib.suppress(GatewayError):
            self.approvals.store.release_execution(approval.request_id)

    def _forward(
        self,
        connection: Connection,
        outgoing: Outgoing,
        request_id: str,
        gateway_prefix: str,
        masking: AppliedMasking,
        recording: Recording,
        progress: Progress,
        deadline: float,
    ) -> HttpResponse:
        """Credential in, recorded before it leaves (fail closed), forwarded, masked on the way back."""
        url = http_proxy.upstream_url(connection.upstream_url, outgoing.path, outgoing.query)
        credential = (
            self.credentials.get(connection.credential_secret) if connection.credential_secret else None
        )
        headers = http_proxy.forwarded_headers(outgoing.headers, outgoing.cookies, credential, request_id)
        schema = connection.kind == "k8s" and kubernetes.is_schema_path(outgoing.path)
        if connection.kind == "k8s" and not schema:
            headers = kubernetes.json_only(headers)
        self.recorder.record_request(recording)  # durable before anything leaves: fail closed
        progress.forwarded = True
        upstream_started = time.perf_counter()
        ca_pem = credential.ca_pem if credential else None
        upstream = self.forwarder.forward(outgoing.method, url, headers, outgoing.body, deadline, ca_pem)
        recording.timings_ms["upstream"] = ms_since(upstream_started)
        return self._relay(upstream, connection, gateway_prefix, masking, recording, schema)

    def execute_held(self, held: ApprovalRequest, deadline: float) -> HttpResponse:
        """Run an approved one-time operation exactly as it was held, inside its original recording.

        The caller (``ApprovalDesk``) has verified the approval and claimed the execution; this adds
        the credential, records ``request`` before forwarding and ``response`` after, and masks.
        A dependency failing before anything is forwarded (503: connection store, policy, credential,
        the recording stream) is raised rather than answered, so that the approval is not spent on an
        operation that never ran: the desk releases its claim and the agent's next poll runs it.
        """
        started = time.perf_counter()
        recording = Recording(
            request_id=held.request_id,
            connection=held.connection,
            request={
                "method": held.held["method"],
                "path": masked_url_part(held.held["path"], "/"),
                "query": masked_url_part(held.held["query"], "=&"),
                "headers": recorded_headers(held.held["headers"].items()),
                "approval": held.request_id,
            },
            started_at=held.record_started_at,
            record_id=held.record_id,
        )
        recording.identity = {"issuer": held.issuer, "subject": held.subject, "owner": held.owner or None}
        recording.operation = held.operation
        recording.decision = {
            "outcome": "allow",
            "reason": f"approved (approval request {held.request_id})",
            "rule": held.rule,
            "policy_version": held.policy_version,
            "approval": held.request_id,
            "approved_by": [v.approver for v in held.approvals()],
        }
        progress = Progress()
        not_run: ServiceUnavailable | None = None
        try:
            connection = self.connections.get(held.connection)
            masking = self.policies.current().masking.for_caller(connection.name, held.groups)
            outgoing = Outgoing(
                held.held["method"],
                held.held["path"],
                held.held["query"],
                held.held["headers"],
                [],
                base64.b64decode(held.held["body"]),
            )
            recording.timings_ms["guard"] = ms_since(started)
            response = self._forward(
                connection, outgoing, held.request_id, "", masking, recording, progress, deadline
            )
        except GatewayError as error:
            response = self._refuse(recording, error, held.request_id, error_response)
            if isinstance(error, ServiceUnavailable) and not progress.forwarded:
                not_run = error
        recording.timings_ms["total"] = ms_since(started)
        try:
            self.recorder.record_outcome(recording, "response" if progress.forwarded else "refused")
        except GatewayError as error:  # answered but not recorded: the agent does not get the answer
            response = error_response(error, held.request_id)
        if not_run is not None:
            raise not_run
        return response

    def _relay(
        self,
        upstream: http_proxy.UpstreamResponse,
        connection: Connection,
        gateway_prefix: str,
        masking: AppliedMasking,
        recording: Recording,
        schema: bool = False,
    ) -> HttpResponse:
        """The agent's response from the upstream's, masked, and its recording (of the same bytes).

        ``schema``: a Kubernetes OpenAPI document (``kubernetes.is_schema_path``), passed unmasked."""
        headers: dict[str, str] = {}
        for name, value in upstream.headers:  # repeated headers (Link, Vary) are joined, not lost
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if "location" in headers:
            headers["location"] = http_proxy.rewrite_location(
                headers["location"], connection.upstream_url, gateway_prefix
            )
        recording.response = {
            "status": upstream.status,
            "headers": recorded_headers(upstream.headers),
            "cookies": len(upstream.cookies),
        }
        masking_started = time.perf_counter()
        try:
            if schema:
                masked = MaskResult(upstream.body, {})
            elif connection.kind == "k8s":
                # The resource asked for: a Table of secrets embeds metadata objects that name no kind.
                resource = (recording.operation or {}).get("resource")
                masked = mask_kubernetes_body(
                    upstream.body, headers.get("content-type"), masking.profile, resource=resource
                )
            else:
                masked = mask_body(upstream.body, headers.get("content-type"), None, masking.profile)
        except MaskingRefused as refused:
            recording.response["body"] = {"size": len(upstream.body), "withheld": refused.reason}
            raise BadGateway(
                f"the upstream response was withheld: {refused.reason}", code="masking_refused"
            ) from None
        recording.timings_ms["masking"] = ms_since(masking_started)
        if masked.content_type is not None:
            headers["content-type"] = masked.content_type
        headers.update(masked_counts_header(masked.counts))
        if masked.truncated:
            headers["x-wardgate-truncated"] = "true"
        recording.response["body"] = recorded_body(masked.value, self.limits.recorded_body_bytes)
        recording.response["masking"] = {
            **masking.to_record(),
            "counts": masked.counts,
            "truncated": masked.truncated,
        }
        return HttpResponse(upstream.status, headers, masked.value, upstream.cookies)

    @staticmethod
    def _operation(request: HttpRequest, kind: str, path: str, query: str) -> Operation:
        """The request as policy sees it."""
        if kind == "http":
            return HttpOperation(
                request.method, path, query, request.body, request.headers.get("content-type", "")
            )
        # Kubernetes operations' module: imported by the first Kubernetes request, not the cold start
        # of a function whose first request (like most of the Lambda route's) is HTTP.
        from wardgate.operations.k8s import CONNECT_SUBRESOURCES, parse_k8s_request

        try:
            operation = parse_k8s_request(request.method, request.proxy_path, request.raw_query)
        except UnparseableOperation as unparseable:
            return unparseable  # policy decides what happens to it (settings.unparseable)
        if operation.verb == "watch":
            # A Lambda answers once, with the whole body: a watch would hang until the timeout.
            raise BadRequest(
                "watch requests are not served by wardgate's Lambda route (it answers once, with "
                f"the whole body): watch {STREAMING_ELSEWHERE}, or poll with list",
                code="watch_not_supported",
            )
        if operation.subresource == "log" and any(
            k == "follow" and v.lower() not in ("", "false", "0") for k, v in parse_qsl(query)
        ):
            raise BadRequest(
                f"following logs is not served by wardgate's Lambda route: follow {STREAMING_ELSEWHERE}, "
                "or read them without --follow",
                code="follow_not_supported",
            )
        if operation.resource == "pods" and operation.subresource in CONNECT_SUBRESOURCES:
            raise BadRequest(
                f"{operation.subresource} needs an upgraded (WebSocket/SPDY) connection, which wardgate's "
                f"Lambda route cannot hold: it is served {STREAMING_ELSEWHERE}",
                code="upgrade_not_supported",
            )
        return operation

    @staticmethod
    def _refuse_masked_secret_values(body: bytes, operation: K8sOperation) -> None:
        """A Secret written with values wardgate masked (``kubectl get secret -o yaml``, edited,
        applied back) would replace the real values with ``[masked]``: refused before anything is
        decided or sent. JSON carries them as ``[masked]`` or its base64, protobuf as raw bytes."""
        if (
            operation.resource == "secrets"
            and operation.verb in ("create", "update", "patch")
            and (FIELD_MASK.encode() in body or MASKED_DATA.encode() in body)
        ):
            raise BadRequest(
                "this Secret carries values wardgate masked ([masked]): writing them back would replace "
                "the real values. Send the real values, or only the keys you change (kubectl patch, "
                "kubectl apply of a manifest of your own)",
                code="masked_values_written",
            )

    @staticmethod
    def _check_kubernetes_media(request: HttpRequest) -> None:
        """JSON out: wardgate can mask only JSON, so a client that takes only protobuf is told so
        (406). A protobuf request body (kubectl 1.32 sends one for built-in types: ``create
        configmap``, ``auth can-i``) is forwarded: policy decides on the request's RBAC
        attributes, never its body, and the recording keeps its size only (not readable)."""
        if not kubernetes.accepts_json(request.headers.get("accept", "")):
            raise NotAcceptable(
                "wardgate serves the Kubernetes API as JSON only (it masks what it returns) and this "
                f"client accepts only {kubernetes.PROTOBUF}: accept application/json "
                "(client-go: ContentConfig.AcceptContentTypes; kubectl does by default)",
                code="protobuf_not_served",
            )
