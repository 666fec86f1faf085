"""One guarded HTTP or Kubernetes API request: admit, decide, record, forward, mask, record.

``gate.Gate`` does what every protocol shares (and says why the order is the security
argument); this module adds the HTTP specifics: the normalised path that policy sees is exactly
what is forwarded, the upstream is pinned, the credential injected, the response masked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from wardgate.apigw import HttpRequest, HttpResponse, error_response
from wardgate.connections import Connection
from wardgate.credentials import CredentialStore
from wardgate.errors import BadGateway, BadRequest
from wardgate.gate import Gate, Progress, masked_counts_header, masked_url_part, ms_since
from wardgate.masking.engine import MaskingRefused, mask_body
from wardgate.masking.kubernetes import mask_kubernetes_body
from wardgate.masking.policy import AppliedMasking
from wardgate.operations import UnparseableOperation
from wardgate.operations.http import HttpOperation
from wardgate.operations.k8s import K8sOperation, parse_k8s_request
from wardgate.proxies import http as http_proxy
from wardgate.proxies import kubernetes
from wardgate.recording import Recording, recorded_body, recorded_headers

Operation = HttpOperation | K8sOperation | UnparseableOperation


@dataclass
class HttpGateway(Gate):
    credentials: CredentialStore
    forwarder: http_proxy.HttpForwarder

    def handle(self, request: HttpRequest, deadline: float) -> HttpResponse:
        return self.serve(
            request, lambda rec, progress: self._proxy(request, deadline, rec, progress), error_response
        )

    def _proxy(
        self, request: HttpRequest, deadline: float, recording: Recording, progress: Progress
    ) -> HttpResponse:
        started = time.perf_counter()
        identity, connection = self.admit(request, recording, progress)
        path = http_proxy.normalise_path(request.proxy_path)  # refuses traversal tricks, both kinds
        query = http_proxy.check_query(request.raw_query)
        operation = self._operation(request, connection.kind, path, query)
        recording.operation = (
            {"protocol": connection.kind, "unparseable": operation.reason}
            if isinstance(operation, UnparseableOperation)
            else operation.to_record()
        )
        if connection.kind == "http":
            recording.operation["path"] = masked_url_part(path, "/")
            recording.operation["query"] = masked_url_part(query, "=&")
        policy_set = self.decide(identity, connection, operation, recording)
        masking = policy_set.masking.for_caller(connection.name, identity.groups)
        body = http_proxy.check_request_body(request.body, self.limits.max_request_body)
        url = http_proxy.upstream_url(connection.upstream_url, path, query)
        credential = (
            self.credentials.get(connection.credential_secret) if connection.credential_secret else None
        )
        headers = http_proxy.forwarded_headers(
            request.headers, request.cookies, credential, request.request_id
        )
        if connection.kind == "k8s":
            headers = kubernetes.json_only(headers)
        recording.timings_ms["guard"] = ms_since(started)

        self.recorder.record_request(recording)  # durable before anything leaves: fail closed
        progress.forwarded = True
        upstream_started = time.perf_counter()
        upstream = self.forwarder.forward(request.method, url, headers, body, deadline)
        recording.timings_ms["upstream"] = ms_since(upstream_started)
        return self._relay(upstream, connection, request.gateway_prefix, masking, recording)

    def _relay(
        self,
        upstream: http_proxy.UpstreamResponse,
        connection: Connection,
        gateway_prefix: str,
        masking: AppliedMasking,
        recording: Recording,
    ) -> HttpResponse:
        """The agent's response from the upstream's, masked, and its recording (of the same bytes)."""
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
            if connection.kind == "k8s":
                masked = mask_kubernetes_body(upstream.body, headers.get("content-type"), masking.profile)
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
        try:
            operation = parse_k8s_request(request.method, request.proxy_path, request.raw_query)
        except UnparseableOperation as unparseable:
            return unparseable  # policy decides what happens to it (settings.unparseable)
        if operation.verb == "watch":
            # A Lambda answers once, with the whole body: a watch would hang until the timeout.
            raise BadRequest(
                "watch requests are not supported through wardgate's HTTP gateway; poll with list instead",
                code="watch_not_supported",
            )
        return operation
