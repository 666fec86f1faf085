"""One guarded HTTP request, start to finish: authenticate, resolve, decide, record, forward, record.

The order is the security argument: nothing reaches the upstream before the caller is
authenticated, the connection resolved, the policy asked and the request durably recorded.
Every exit, success or refusal, produces a recording.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from wardgate.apigw import HttpRequest, HttpResponse, error_response
from wardgate.config import Limits
from wardgate.connections import ConnectionStore
from wardgate.credentials import CredentialStore
from wardgate.errors import Forbidden, GatewayError
from wardgate.identity import TokenValidator
from wardgate.observability import count, logger
from wardgate.operations.http import HttpOperation
from wardgate.policy.engine import Decision
from wardgate.policy.store import PolicyStore
from wardgate.proxies import http as http_proxy
from wardgate.recording import Recorder, Recording, recorded_body, recorded_headers


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


@dataclass
class HttpGateway:
    validator: TokenValidator
    connections: ConnectionStore
    credentials: CredentialStore
    recorder: Recorder
    forwarder: http_proxy.HttpForwarder
    policies: PolicyStore
    limits: Limits

    def handle(self, request: HttpRequest, deadline: float) -> HttpResponse:
        started = time.perf_counter()
        recording = self.start_recording(request)
        metric_connection = "unknown"
        forwarded = False
        try:
            identity = self.validator.authenticate(request.headers.get("authorization"))
            recording.identity = identity.to_record()
            connection = self.connections.get(request.connection)
            metric_connection = connection.name
            if connection.kind != "http":
                raise Forbidden(f"connection {connection.name!r} is a {connection.kind} connection, not http")
            operation = HttpOperation(
                request.method,
                http_proxy.normalise_path(request.proxy_path),
                http_proxy.check_query(request.raw_query),
                request.body,
                request.headers.get("content-type", ""),
            )
            recording.operation = operation.to_record()
            policy_set = self.policies.current()
            if set(connection.allowed_groups) & set(identity.groups):
                decision = policy_set.decide(identity, connection.name, "http", operation)
            else:  # the connection's own gate comes before any rule
                decision = Decision(
                    "deny",
                    f"identity {identity.subject!r} is in none of the groups allowed on connection "
                    f"{connection.name!r}",
                    "connection.allowed_groups",
                    policy_set.version,
                )
            recording.decision = decision.to_record()
            if decision.outcome == "require_approval":
                raise Forbidden(
                    f"{decision.reason}; approvers: {', '.join(decision.approvers)} "
                    "(the approval flow is not available yet, so the request is refused)",
                    code="approval_required",
                )
            if decision.outcome != "allow":
                raise Forbidden(decision.reason, code="denied_by_policy")
            body = http_proxy.check_request_body(request.body, self.limits.max_request_body)
            url = http_proxy.upstream_url(connection.upstream_url, operation.path, operation.query)
            credential = (
                self.credentials.get(connection.credential_secret) if connection.credential_secret else None
            )
            headers = http_proxy.forwarded_headers(
                request.headers, request.cookies, credential, request.request_id
            )
            recording.timings_ms["guard"] = _ms(started)

            self.recorder.record_request(recording)  # durable before anything leaves: fail closed
            forwarded = True
            upstream_started = time.perf_counter()
            upstream = self.forwarder.forward(request.method, url, headers, body, deadline)
            recording.timings_ms["upstream"] = _ms(upstream_started)
            response = self._relay(upstream, connection.upstream_url, request.gateway_prefix, recording)
        except GatewayError as error:
            response = self._refuse(recording, error, request.request_id)
        except Exception:  # a bug must still end in a recorded, generic refusal, never a bare crash
            logger.exception("unexpected error", extra={"record_id": recording.record_id})
            response = self._refuse(recording, GatewayError("internal error"), request.request_id)
        recording.timings_ms["total"] = _ms(started)
        try:
            self.recorder.record_outcome(recording, "response" if forwarded else "refused")
        except GatewayError as error:
            logger.error("recording failed", extra={"record_id": recording.record_id, "code": error.code})
            count("RecordingFailures", connection=metric_connection)
            if forwarded or response.status < 400:
                # The upstream answered but we could not record it: the agent does not get the answer.
                response = error_response(error, request.request_id)
        self._observe(recording, response, metric_connection)
        response.headers["x-wardgate-record-id"] = recording.record_id
        return response

    def _relay(
        self, upstream: http_proxy.UpstreamResponse, base_url: str, gateway_prefix: str, recording: Recording
    ) -> HttpResponse:
        """The agent's response from the upstream's, and its recording."""
        headers: dict[str, str] = {}
        for name, value in upstream.headers:  # repeated headers (Link, Vary) are joined, not lost
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if "location" in headers:
            headers["location"] = http_proxy.rewrite_location(headers["location"], base_url, gateway_prefix)
        recording.response = {
            "status": upstream.status,
            "headers": recorded_headers(upstream.headers),
            "cookies": len(upstream.cookies),
            "body": recorded_body(upstream.body, self.limits.recorded_body_bytes),
        }
        return HttpResponse(upstream.status, headers, upstream.body, upstream.cookies)

    def start_recording(self, request: HttpRequest) -> Recording:
        """The recording of ``request`` as received, before anything is decided about it."""
        return Recording(
            request_id=request.request_id,
            connection=request.connection,
            request={
                "method": request.method,
                "path": request.proxy_path,
                "query": request.raw_query,
                "source_ip": request.source_ip,
                "headers": recorded_headers(request.headers.items()),
                "body": recorded_body(request.body, self.limits.recorded_body_bytes),
            },
        )

    @staticmethod
    def _refuse(recording: Recording, error: GatewayError, request_id: str) -> HttpResponse:
        recording.error = {"status": error.status, "code": error.code, "message": error.message}
        recording.response = {"status": error.status}
        return error_response(error, request_id)

    @staticmethod
    def _observe(recording: Recording, response: HttpResponse, connection: str) -> None:
        outcome = (
            (recording.decision or {}).get("outcome", "refused") if recording.error is None else "refused"
        )
        count("Requests", connection=connection, outcome=outcome)
        # DEBUG: the recording is the audit trail; a log line per request would cost more than the index.
        logger.debug(
            "request finished",
            extra={
                "record_id": recording.record_id,
                "connection": recording.connection,
                "subject": (recording.identity or {}).get("subject"),
                "status": response.status,
                "error": (recording.error or {}).get("code"),
                "duration_ms": recording.timings_ms.get("total"),
            },
        )
