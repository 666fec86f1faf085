"""What every gateway does around its protocol's own work: admit, decide, record, answer.

The order is the security argument: nothing reaches a backend before the caller is
authenticated and checked against the agent registry, the connection resolved, the policy asked
and the request durably recorded (by the protocol's gateway, just before it forwards). Every
exit, success or refusal, produces a recording; a recording that cannot be written withholds the
answer. ``HttpGateway`` (HTTP and Kubernetes API) and ``SqlGateway`` (Data API) build on this.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, unquote

from wardgate.agents import AgentRegistry
from wardgate.apigw import HttpRequest, HttpResponse
from wardgate.approvals.required import ApprovalRequired
from wardgate.config import Limits
from wardgate.connections import Connection, ConnectionStore
from wardgate.errors import Forbidden, GatewayError
from wardgate.identity import Identity, TokenValidator
from wardgate.masking.engine import MaskingProfile, MaskingRefused, mask_body, mask_text
from wardgate.observability import count, logger
from wardgate.operations import UnparseableOperation
from wardgate.policy.engine import Decision, PolicySet
from wardgate.policy.rules import KIND_PROTOCOL
from wardgate.policy.store import PolicyStore
from wardgate.recording import Recorder, Recording, recorded_body, recorded_headers

if TYPE_CHECKING:  # the approval flow's modules are imported when an operation is first held
    from wardgate.approvals.service import ApprovalDesk

RECORDED_REQUEST_MASKING = MaskingProfile(on_limit="truncate")
"""How what the agent *sent* is recorded: every built-in detector (auditors are not the agent)."""

RenderError = Callable[[GatewayError, str], HttpResponse]


def ms_since(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


def masked_url_part(part: str, safe: str) -> str:
    """A path or query as recorded: ``/users/ada%40example.com`` is a value too, so it is masked
    (decoded to be found, re-encoded when something was masked; unchanged otherwise)."""
    if not part:
        return part
    masked = mask_text(unquote(part), RECORDED_REQUEST_MASKING)
    return quote(masked.value, safe=safe) if masked.counts else part


def masked_counts_header(counts: dict[str, int]) -> dict[str, str]:
    """``x-wardgate-masked: card=2, email=1``: the agent learns that values were hidden, not which."""
    return {"x-wardgate-masked": ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))} if counts else {}


def decide_on(
    policy_set: PolicySet,
    identity: Identity,
    connection: Connection,
    operation: Any,
    now: datetime | None = None,
) -> Decision:
    """The connection's own gate (its allowed groups), then the rules: one decision, no I/O.
    ``now``: the time rules' windows are read at (``policy replay`` passes the recorded time)."""
    if set(connection.allowed_groups) & set(identity.groups):
        protocol = KIND_PROTOCOL.get(connection.kind, connection.kind)  # ssh connections run shell commands
        return policy_set.decide(identity, connection.name, protocol, operation, now)
    return Decision(
        "deny",
        f"identity {identity.subject!r} is in none of the groups allowed on connection {connection.name!r}",
        "connection.allowed_groups",
        policy_set.version,
    )


def sql_operation_record(operation: Any, dialect: str, **extra: Any) -> dict[str, Any]:
    """A parsed SQL operation as recorded: statement texts masked like request bodies (literals are
    values); an unparseable one says why."""
    if isinstance(operation, UnparseableOperation):
        return {"protocol": "sql", "dialect": dialect, "unparseable": operation.reason, **extra}
    record: dict[str, Any] = {**operation.to_record(), **extra}
    for statement in record["statements"]:
        statement["text"] = mask_text(statement["text"], RECORDED_REQUEST_MASKING).value
    return record


class Identified(Protocol):
    """A record of who called: an HTTP ``Recording``, a TCP ``SessionRecord``."""

    identity: dict[str, Any] | None


@dataclass
class Progress:
    """How far one request got: for the outcome event and the metric."""

    connection: str = "unknown"  # a metric dimension: never an agent-chosen name
    forwarded: bool = False
    held: bool = False  # answered 202: the operation waits for approval (recorded as a "held" event)


@dataclass(eq=False, repr=False)  # a service: compared by identity, its caches never printed
class Gate:
    """What every gateway does around its protocol's work: admit, decide, record, answer."""

    validator: TokenValidator
    agents: AgentRegistry  # the kill switch: checked on every request right after the token
    connections: ConnectionStore
    recorder: Recorder
    policies: PolicyStore
    limits: Limits
    # The approval flow (approvals/): None refuses require_approval with 403 approval_required.
    approvals: ApprovalDesk | None = field(default=None, kw_only=True)

    def serve(
        self,
        request: HttpRequest,
        work: Callable[[Recording, Progress], HttpResponse],
        render_error: RenderError,
    ) -> HttpResponse:
        """Run ``work`` inside the recording: every refusal and crash is recorded and rendered."""
        started = time.perf_counter()
        recording = self.start_recording(request)
        progress = Progress()
        try:
            response = work(recording, progress)
        except GatewayError as error:
            response = self._refuse(recording, error, request.request_id, render_error)
        except Exception:  # a bug must still end in a recorded, generic refusal, never a bare crash
            logger.exception("unexpected error", extra={"record_id": recording.record_id})
            response = self._refuse(
                recording, GatewayError("internal error"), request.request_id, render_error
            )
        recording.timings_ms["total"] = ms_since(started)
        try:
            kind = "response" if progress.forwarded else "held" if progress.held else "refused"
            self.recorder.record_outcome(recording, kind)
        except GatewayError as error:
            logger.error("recording failed", extra={"record_id": recording.record_id, "code": error.code})
            count("RecordingFailures", connection=progress.connection)
            if progress.forwarded or response.status < 400:
                # The backend answered but we could not record it: the agent does not get the answer.
                response = render_error(error, request.request_id)
        self._observe(recording, response, progress.connection)
        response.headers["x-wardgate-record-id"] = recording.record_id
        return response

    def admit(
        self, request: HttpRequest, recording: Recording, progress: Progress
    ) -> tuple[Identity, Connection]:
        """The caller (token, then registry) and the connection, served under its own route."""
        identity = self.validator.authenticate(request.headers.get("authorization"))
        return self.admit_identity(identity, request.connection, request.route, recording, progress)

    def admit_identity(
        self,
        identity: Identity,
        connection_name: str,
        route: str,
        recording: Identified,
        progress: Progress | None = None,
    ) -> tuple[Identity, Connection]:
        """What every front door does once the token is validated: the registry's check (the kill
        switch), then the connection, which must be of the kind ``route`` serves. The connection is
        read from the store while the registry is asked (``ConnectionStore.read_ahead``), and looked
        at only once the registry has admitted the caller: a refusal is the registry's first."""
        recording.identity = identity.to_record()
        self.connections.read_ahead(connection_name)  # overlaps the registry's check; used only after it
        identity = self.agents.check(identity, connection_name)  # revoked/unregistered: 403
        recording.identity = identity.to_record()
        connection = self.connections.get(connection_name)
        if progress is not None:
            progress.connection = connection.name
        if connection.kind != route:
            raise Forbidden(
                f"connection {connection.name!r} is a {connection.kind} connection: "
                f"it is not served under /{route}/"
            )
        return identity, connection

    def decide(
        self, identity: Identity, connection: Connection, operation: Any, recording: Recording
    ) -> PolicySet:
        """Policy's answer on ``operation``; anything but allow is raised. Returns the policy used."""
        policy_set = self.policies.current()
        decision = decide_on(policy_set, identity, connection, operation)
        recording.decision = decision.to_record()
        if decision.outcome == "require_approval":
            grant = self.approvals.grant_for(identity, connection.name, decision) if self.approvals else None
            if grant:  # a window approval of this rule for this identity and connection is open
                recording.decision = {**recording.decision, "outcome": "allow", "approval_grant": grant}
                return policy_set
            raise ApprovalRequired(
                decision,
                policy_set,
                f"{decision.reason}; approvers: {', '.join(decision.approvers)}"
                + (
                    ""
                    if self.approvals
                    else " (approvals are served for HTTP and Kubernetes operations only, so it is refused)"
                ),
            )
        if decision.outcome != "allow":
            raise Forbidden(decision.reason, code="denied_by_policy")
        return policy_set

    def start_recording(self, request: HttpRequest) -> Recording:
        """The recording of ``request`` as received, before anything is decided about it."""
        return Recording(
            request_id=request.request_id,
            connection=request.connection,
            request={
                "method": request.method,
                "path": masked_url_part(request.proxy_path, "/"),
                "query": masked_url_part(request.raw_query, "=&"),
                "source_ip": request.source_ip,
                "headers": recorded_headers(request.headers.items()),
                "body": self._recorded_request_body(request),
            },
        )

    def _recorded_request_body(self, request: HttpRequest) -> dict[str, Any]:
        """The agent's body as recorded, masked (the backend still gets it as sent)."""
        try:
            masked = mask_body(
                request.body, request.headers.get("content-type"), None, RECORDED_REQUEST_MASKING
            )
        except MaskingRefused as refused:
            return {"size": len(request.body), "withheld": refused.reason}
        return {**recorded_body(masked.value, self.limits.recorded_body_bytes), "masked": masked.counts}

    @staticmethod
    def _refuse(
        recording: Recording, error: GatewayError, request_id: str, render: RenderError
    ) -> HttpResponse:
        recording.error = {"status": error.status, "code": error.code, "message": error.message}
        upstream = recording.response  # set when the backend answered but its answer was withheld
        recording.response = {"status": error.status, **({"upstream": upstream} if upstream else {})}
        return render(error, request_id)

    @staticmethod
    def _observe(recording: Recording, response: HttpResponse, connection: str) -> None:
        outcome = (
            (recording.decision or {}).get("outcome", "refused") if recording.error is None else "refused"
        )
        count("Requests", connection=connection, outcome=outcome)
        # DEBUG: the recording is the audit trail; a log line per request would cost more than the index.
        if not logger.isEnabledFor(logging.DEBUG):  # as on Lambda (INFO): skip building the line's fields
            return
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
