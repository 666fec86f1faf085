"""What every SQL session of the TCP gateway does, whatever its wire protocol.

A PostgreSQL or MySQL session is one admission (token, agent registry, connection), then many
decisions and records (one per statement), then one end (the client quits, the kill switch, a
lifetime). ``SqlGuard`` is that sequence for one session; the protocol's session (``postgres/``,
``mysql/``) owns the sockets and the codec, asks the guard, and renders its answers in its own
terms: a ``Refusal`` becomes an ErrorResponse with a SQLSTATE or a MySQL ERR packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wardgate.apigw import HttpRequest
from wardgate.approvals.service import ApprovalDesk, ApprovalRequired
from wardgate.connections import Connection
from wardgate.credentials import Credential
from wardgate.errors import Forbidden, GatewayError, NotFound
from wardgate.identity import Identity
from wardgate.masking.engine import MaskingProfile
from wardgate.operations.sql import Dialect
from wardgate.policy.engine import PolicySet
from wardgate.tcp.recorder import SessionRecord
from wardgate.tcp.services import RECORDED_TEXTS, SessionDecisions, TcpServices
from wardgate.tcp.sessions import LiveSession


@dataclass(slots=True)
class StatementRun:
    """One statement on its way through the database: what its ``result`` event will say."""

    seq: int  # the seq of its ``statement`` event
    started: float
    rows: int = 0
    tags: list[str] = field(default_factory=list)
    error: dict[str, str] | None = None
    first_rows: list[list[str | None]] = field(default_factory=list)
    masked: dict[str, int] = field(default_factory=dict)
    finished: bool = False

    def count_masked(self, counts: dict[str, int]) -> None:
        for name, n in counts.items():
            self.masked[name] = self.masked.get(name, 0) + n


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a statement does not reach the database, for the protocol to render."""

    code: str  # denied_by_policy, approval_pending, approval_required, recording_unavailable, ...
    message: str
    record_id: str
    event: int = 0  # the seq of its ``statement_refused`` event; 0 when it could not be recorded


@dataclass(slots=True)
class Verdict:
    allowed: bool
    operation: dict[str, Any]
    decision: dict[str, Any]
    refusal: Refusal | None = None


class SqlGuard:
    """Admission, decisions, approvals and records of one SQL session.

    ``pinned`` says why a statement may not run whatever policy says (it would change how the
    database reads the statements that follow, e.g. their character set), or "" when it may.
    ``on_recording_failure`` ends the session: a result that cannot be recorded must not be followed
    by more statements.
    """

    def __init__(
        self,
        services: TcpServices,
        protocol: str,
        dialect: Dialect,
        peer: str,
        *,
        pinned: Callable[[dict[str, Any]], str],
        on_recording_failure: Callable[[BaseException], None],
    ) -> None:
        self.services = services
        self.limits = services.limits
        self.protocol = protocol
        self.dialect = dialect
        self.peer = peer
        self.pinned = pinned
        self.on_recording_failure = on_recording_failure
        self.record = SessionRecord(protocol, "unknown", peer)
        self.identity: Identity
        self.connection: Connection
        self.decisions: SessionDecisions
        self.profile_of: tuple[str, MaskingProfile] | None = None  # (policy version, profile)
        self.admitted = False
        self.opened_at = time.monotonic()

    # ------------------------------------------------------------------ admission and end
    async def admit(self, token: str, connection_name: str, schemes: tuple[str, ...]) -> None:
        """Token, registry, connection (of one of ``schemes``); then the session is live and
        recorded. Raises a ``GatewayError`` the protocol turns into its login refusal."""
        gate = self.services.gate
        self.record.connection = connection_name

        def admit() -> tuple[Identity, Connection]:
            identity = gate.validator.validate(token)
            return gate.admit_identity(identity, connection_name, "sql", self.record)

        self.identity, self.connection = await asyncio.to_thread(admit)
        if not set(self.connection.allowed_groups) & set(self.identity.groups):
            # Every statement would be refused (gate.decide_on): say so once, at the door.
            raise Forbidden(
                f"identity {self.identity.subject!r} is in none of the groups allowed on connection "
                f"{connection_name!r}",
                code="denied_by_policy",
            )
        if self.connection.upstream_url.split(":", 1)[0] not in schemes:
            raise NotFound(
                f"connection {connection_name!r} is not a {self.protocol} connection",
                code="unknown_connection",
            )
        self.renew_profile(await self.services.policy_set())
        self.decisions = SessionDecisions(self.identity, self.connection, self.services.parses, self.dialect)

    async def open(self, session: LiveSession, **fields: Any) -> None:
        """The session is admitted and its target known: it counts, it can be swept, it is recorded."""
        self.services.sessions.add(session)
        self.admitted = True
        await self.services.recorder.write(
            self.record, "session_start", identity=self.record.identity, client=self.peer, **fields
        )
        await self.services.recorder.index_session(self.record)

    async def record_admission_refusal(self, refused: GatewayError) -> None:
        self.record.outcome, self.record.reason = "refused", refused.code
        with contextlib.suppress(GatewayError):
            await self.services.recorder.write(
                self.record,
                "session_refused",
                identity=self.record.identity,
                client=self.peer,
                error={"code": refused.code, "message": refused.message},
            )
            await self.services.recorder.index_session(self.record)

    async def credential(self) -> Credential | None:
        """The connection's credential from Secrets Manager (None when it has none)."""
        secret = self.connection.credential_secret
        if not secret:
            return None
        return await asyncio.to_thread(self.services.credentials.get, secret)

    def ended(self, code: str) -> None:
        self.record.outcome, self.record.reason = "ended", code

    async def close(self, session: LiveSession, reason: str | None) -> None:
        """The session's last event (when it was admitted)."""
        if not self.admitted:
            return
        self.services.sessions.discard(session)
        record = self.record
        await self.services.recorder.end(
            record,
            reason or "the client closed the session",
            self.opened_at,
            statements=record.statements,
            refused=record.refused,
        )

    def record_later(self, kind: str, **fields: Any) -> None:
        self.services.recorder.write_later(self.record, kind, self.on_recording_failure, **fields)

    # ------------------------------------------------------------------ decisions
    async def decide(
        self,
        sql: str,
        *,
        executing: bool = True,
        in_transaction: bool = False,
        bound: tuple[list[Any], list[str | None]] | None = None,
    ) -> Verdict:
        """Policy's verdict on ``sql``. ``executing``: it runs now (a query, or an execution with
        the values ``bound``: (exactly as sent, as shown)), so a statement needing approval needs
        it now; a statement only being prepared is allowed and asked for when it runs."""
        policy_set = await self.services.policy_set()
        self.renew_profile(policy_set)  # rows are masked under the policy that let them through
        decision, recorded = self.decisions.decide(policy_set, sql)
        pinned = self.pinned(recorded)
        if pinned:
            return await self.refuse(recorded, decision.to_record(), pinned, "client_encoding_pinned")
        if decision.outcome == "allow" or (decision.outcome == "require_approval" and not executing):
            return Verdict(True, recorded, decision.to_record())
        if decision.outcome == "require_approval":
            try:
                approval = await self._approval(sql, bound, decision, policy_set, recorded, in_transaction)
            except GatewayError as refused:
                return await self.refuse(recorded, decision.to_record(), refused.message, refused.code)
            return Verdict(True, recorded, {**decision.to_record(), "outcome": "allow", **approval})
        return await self.refuse(recorded, decision.to_record(), decision.reason, "denied_by_policy")

    async def refuse(
        self, operation: dict[str, Any], decision: dict[str, Any], message: str, code: str
    ) -> Verdict:
        """Record the refusal (durably: the client hears of it only once it is recorded)."""
        self.record.refused += 1
        event = {"operation": operation, "decision": decision, "error": {"code": code, "message": message}}
        seq = self.record.seq + 1  # taken now: a queued result event may take the next one meanwhile
        try:
            await self.services.recorder.write(self.record, "statement_refused", **event)
        except GatewayError:
            seq = 0  # refused all the same; the client is told it is not on record
        return Verdict(False, operation, decision, Refusal(code, message, self.record.record_id, seq))

    async def recorded_run(
        self, call: str, verdict: Verdict, params: list[str | None] | None = None
    ) -> StatementRun | None:
        """The statement's event, durable before the statement is forwarded (group commit); None
        when it cannot be recorded: then it must not run, and ``verdict.refusal`` says why."""
        self.record.statements += 1
        run = StatementRun(self.record.seq + 1, time.perf_counter())
        event: dict[str, Any] = {"call": call, "operation": verdict.operation, "decision": verdict.decision}
        if params:
            event["parameters"] = params
        try:
            await self.services.recorder.write(self.record, "statement", **event)
        except GatewayError as unrecorded:
            self.record.statements -= 1
            verdict.allowed = False
            verdict.refusal = Refusal(
                "recording_unavailable",
                f"the statement was not run because it cannot be recorded now ({unrecorded.message})",
                self.record.record_id,
            )
            return None
        return run

    def finish(self, run: StatementRun) -> None:
        """The statement's ``result`` event (queued: a failure ends the session)."""
        if run.finished:
            return
        run.finished = True
        result: dict[str, Any] = {
            "statement_seq": run.seq,
            "rows": run.rows,
            "tags": run.tags,
            "duration_ms": round((time.perf_counter() - run.started) * 1000, 3),
        }
        if run.error is not None:
            result["error"] = run.error
        elif not run.tags:
            result["ran"] = False  # an earlier error in its batch made the database skip it
        if run.first_rows:
            result["first_rows"] = run.first_rows
        if run.masked:
            result["masked"] = run.masked
        self.record_later("result", **result)

    def shown_value(self, text: str) -> str:
        """A statement parameter as recorded and shown to approvers: masked, cut."""
        return cut(RECORDED_TEXTS.masked(text), self.limits.recorded_statement_bytes)

    # ------------------------------------------------------------------ masking
    def profile(self) -> MaskingProfile:
        """The caller's masking profile under the policy that decided the latest statement."""
        assert self.profile_of is not None  # set at admission, renewed by every decision
        return self.profile_of[1]

    def renew_profile(self, policy_set: PolicySet) -> None:
        if self.profile_of is None or self.profile_of[0] != policy_set.version:
            applied = policy_set.masking.for_caller(self.connection.name, self.identity.groups)
            self.profile_of = (policy_set.version, applied.profile)

    # ------------------------------------------------------------------ approvals
    async def _approval(
        self,
        sql: str,
        bound: tuple[list[Any], list[str | None]] | None,
        decision: Any,
        policy_set: Any,
        recorded: dict[str, Any],
        in_transaction: bool,
    ) -> dict[str, Any]:
        """The approval that lets this statement (with its values) run now, claimed once, or raise
        why it may not."""
        desk = self.services.gate.approvals
        required = ApprovalRequired(decision, policy_set, decision.reason)
        if desk is None:
            raise Forbidden(
                f"{decision.reason}; approvals are not configured, so it is refused", code="approval_required"
            )
        if in_transaction:
            raise Forbidden(
                f"{decision.reason}; a statement that needs approval cannot run inside a transaction "
                "(it could only run after the transaction is gone): run it on its own",
                code="approval_required",
            )
        values: list[Any] = []
        if bound is not None:  # the very values are approved: other values need another approval
            values, shown = bound
            recorded = {**recorded, "parameters": shown}  # approvers see them (masked)
        held = HeldOperation(self.protocol, "SQL", sql, values, recorded, self.peer)

        def claim_or_hold() -> dict[str, Any]:
            return claim_or_hold_approval(desk, required, self.identity, self.connection, self.record, held)

        answer = await asyncio.to_thread(claim_or_hold)
        if "pending" in answer:
            raise Forbidden(
                f"this statement needs approval: request {answer['pending']} is pending "
                f"({answer['poll_url']}); once it is approved, send the identical statement again on this "
                "connection and it runs, once",
                code="approval_pending",
            )
        return answer


@dataclass(frozen=True, slots=True)
class HeldOperation:
    """What a session's operation needing approval is bound to: its protocol, its exact text and
    bound values (another text or other values need another approval), as recorded."""

    protocol: str  # postgres, mysql, ssh
    method: str  # as the approval's recording names it: SQL, SHELL
    text: str
    values: list[Any]
    recorded: dict[str, Any]  # the operation as recorded, shown to approvers
    peer: str


def claim_or_hold_approval(
    desk: ApprovalDesk,
    required: ApprovalRequired,
    identity: Identity,
    connection: Connection,
    record: SessionRecord,
    held: HeldOperation,
) -> dict[str, Any]:
    """The approval that lets ``held`` run now in this session: an open window grant, or the
    approved one-time request of the identical operation by this identity, claimed (spent) now;
    otherwise the pending request, held now if there was none. Blocking (a worker thread): the
    approval tables are DynamoDB. Returns ``{"pending": id, "poll_url": url}`` when it may not run."""
    decision = required.decision
    material = [
        held.protocol,
        identity.issuer,
        identity.subject,
        connection.name,
        decision.rule,
        held.text,
        held.values,
    ]
    key = hashlib.sha256(json.dumps(material).encode()).hexdigest()
    grant = desk.grant_for(identity, connection.name, decision)
    if grant:  # a window approval of this rule for this identity and connection is open
        return {"approval_grant": grant}
    approval = desk.held_call(key, identity)
    if approval is not None:
        status = approval.effective_status(desk.clock())
        poll = f"{desk.base_url()}/requests/{approval.request_id}"
        if status == "pending":
            return {"pending": approval.request_id, "poll_url": poll}
        if status == "approved" and approval.mode == "one-time" and desk.claim_call(approval):
            # Spent now: the operation goes to its backend next, in this session.
            desk.finish_call(approval, 200, {"status": 200, "result": f"session {record.record_id}"})
            return {
                "approval": approval.request_id,
                "approved_by": [v.approver for v in approval.approvals()],
            }
    request = HttpRequest(
        request_id=record.record_id,
        method="POST",
        connection=connection.name,
        route="sql",
        proxy_path=f"/{held.protocol}",
        raw_query="",
        headers={},
        cookies=[],
        body=held.text.encode(),
        source_ip=held.peer.rsplit(":", 1)[0],
    )
    recording = _approval_recording(record, held.recorded, decision, held.method)
    answer: dict[str, Any] = desk.hold_call(request, identity, key, required, recording)
    return {"pending": answer["request_id"], "poll_url": answer["poll_url"]}


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"…[{len(text) - limit} more characters]"


def _approval_recording(
    record: SessionRecord, operation: dict[str, Any], decision: Any, method: str = "SQL"
) -> Any:
    """The ``Recording`` the approval flow reads (record id, connection, operation, request body)."""
    from wardgate.recording import Recording

    recording = Recording(
        request_id=record.record_id,
        connection=record.connection,
        request={"method": method, "path": f"/{record.protocol}", "body": {}},
        started_at=record.started_at,
        record_id=record.record_id,
    )
    recording.operation = operation
    recording.identity = record.identity
    recording.decision = decision.to_record()
    return recording
