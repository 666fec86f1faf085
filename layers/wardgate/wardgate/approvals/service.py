"""The approval flow's logic: hold an operation, answer the agent's polls, serve approvers, execute once.

Fail closed throughout: an operation runs only when the stored request is ``approved`` by the
workflow, its votes reach the quorum from allowed approvers, its binding still matches the held
operation and the requester is still admitted by the agent registry. Every step is appended to
the held request's recording as an ``approval`` event (docs/recording-format.md).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote

from wardgate.apigw import HttpRequest, HttpResponse
from wardgate.approvals import email, pages
from wardgate.approvals.mail import Mailer
from wardgate.approvals.model import ApprovalRequest, Vote, iso
from wardgate.approvals.required import ApprovalRequired as ApprovalRequired  # re-exported
from wardgate.approvals.settings import ApprovalSettings, RuleApproval
from wardgate.approvals.signing import LinkError, Signer, binding_of
from wardgate.approvals.store import ApprovalStore, VoteRefused
from wardgate.approvals.workflow import Workflow
from wardgate.errors import Conflict, Forbidden, GatewayError, NotFound, PayloadTooLarge, ServiceUnavailable
from wardgate.identity import Identity
from wardgate.observability import count, logger
from wardgate.policy.engine import Decision
from wardgate.recording import FORMAT, Recorder, Recording

HELD_BODY_LIMIT = 64 * 1024  # a held request lives in one DynamoDB item (400 KB) with its metadata
RESULT_LIMIT = 256 * 1024  # a one-time result is kept in the item; larger ones are not held (docs)
MAX_WAIT_SECONDS = 25.0  # long-poll, inside API Gateway's 30 s
MIN_EXECUTION_SECONDS = 5.0  # a poll with less time left reports "approved" and the next poll executes
POLL_INTERVAL_SECONDS = 0.1
NOT_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "host", "content-length"})

# Runs an approved operation; raises ServiceUnavailable when it forwarded nothing (the claim is released).
Executor = Callable[[ApprovalRequest, float], HttpResponse]


def summary_of(operation: dict[str, Any]) -> str:
    """One line an approver reads at 3 a.m."""
    protocol = operation.get("protocol")
    if protocol == "http":
        query = f"?{operation['query']}" if operation.get("query") else ""
        return f"{operation.get('method')} {operation.get('path')}{query}"
    if protocol == "k8s":
        resource = "/".join(str(p) for p in (operation.get("resource"), operation.get("subresource")) if p)
        target = f"{resource} {operation['name']}" if operation.get("name") else resource
        where = f" in namespace {operation['namespace']}" if operation.get("namespace") else ""
        return f"kubectl {operation.get('verb')} {target or operation.get('path')}{where}"
    if protocol == "sql":
        text = "SQL: " + "; ".join(str(st.get("text", "")) for st in operation.get("statements") or [])[:500]
        values = operation.get("parameters")  # a prepared statement's values: approved with it
        return text + (
            " -- with " + ", ".join(f"${i} = {v!r}" for i, v in enumerate(values, 1)) if values else ""
        )
    if protocol == "shell" and not operation.get("unparseable"):
        return "shell: " + str(operation.get("text", ""))[:500]
    if operation.get("unparseable"):
        return f"an unparseable operation ({operation['unparseable']})"
    return json.dumps(operation, sort_keys=True)[:200]


def _unfinished(current: ApprovalRequest, approver: str, choice: str, refusal: str) -> bool:
    """Whether a used link's form is this approver's stored vote, resubmitted before it took effect."""
    vote = current.votes.get(approver)
    return (
        refusal == "link_used"
        and vote is not None
        and vote.decision == choice
        and current.status == "pending"
        and not current.released_at  # a double click after it all went through: the link is used
    )


def _json(status: int, doc: dict[str, Any]) -> HttpResponse:
    headers = {"content-type": "application/json", "cache-control": "no-store"}
    return HttpResponse(status, headers, json.dumps(doc).encode())


@dataclass
class ApprovalDesk:
    store: ApprovalStore
    recorder: Recorder
    workflow: Workflow | None = None
    signer: Signer | None = None
    public_url: str = ""  # base URL of links and poll URLs; else https://<Host>
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    # ------------------------------------------------------------------ the recording
    def record(self, request: ApprovalRequest, step: str, **details: Any) -> None:
        """Append one step to the held request's recording; a step that cannot be recorded fails."""
        now = self.clock()
        from datetime import UTC, datetime

        event = {
            "format": FORMAT,
            "event": "approval",
            "record_id": request.record_id,
            "request_id": request.request_id,
            "time": datetime.fromtimestamp(now, UTC).isoformat(),
            "started_at": datetime.fromtimestamp(request.record_started_at, UTC).isoformat(),
            "connection": request.connection,
            "identity": {"issuer": request.issuer, "subject": request.subject, "owner": request.owner},
            "approval": {"step": step, "approval_id": request.request_id, **details},
        }
        self.recorder.append(event)

    # ------------------------------------------------------------------ the gateway's side
    def grant_for(self, identity: Identity, connection: str, decision: Decision) -> str | None:
        if dict(decision.approval).get("mode") != "window":
            return None
        return self.store.active_grant(
            identity.issuer, identity.subject, connection, decision.rule, int(self.clock())
        )

    def hold(
        self,
        request: HttpRequest,
        identity: Identity,
        connection_kind: str,
        path: str,
        query: str,
        required: ApprovalRequired,
        recording: Recording,
    ) -> HttpResponse:
        """Store the operation, start the workflow, answer 202. Raises when it cannot be held."""
        decision, policy_set = required.decision, required.policy_set
        settings = ApprovalSettings.from_document(policy_set.document)
        rule = RuleApproval.of(dict(decision.approval), settings)
        own = {identity.subject.lower(), (identity.owner or "").lower()} - {""}
        approvers = tuple(a for a in settings.resolve(decision.approvers) if a not in own)
        if len(approvers) < rule.quorum:
            raise Forbidden(
                f"{decision.reason}; it needs {rule.quorum} approval(s) but only {len(approvers)} "
                "approver(s) "
                "other than the requester and its owner are configured",
                code="approval_impossible",
            )
        if len(request.body) > HELD_BODY_LIMIT:
            raise PayloadTooLarge(
                f"an operation that needs approval may carry at most {HELD_BODY_LIMIT} bytes of body",
                code="approval_body_too_large",
            )
        now = int(self.clock())
        operation = dict(recording.operation or {})
        body = (recording.request.get("body") or {}).get("data")
        if body:
            operation["body"] = str(body)[:4096]  # masked as recorded: approvers see what auditors see
        held = {
            "method": request.method,
            "path": path,  # normalised and checked: exactly what would have been forwarded
            "query": query,
            "headers": {k: v for k, v in request.headers.items() if k not in NOT_HEADERS},
            "body": base64.b64encode(request.body).decode(),
        }
        approval = ApprovalRequest(
            request_id=secrets.token_hex(16),
            record_id=recording.record_id,
            record_started_at=recording.started_at,
            issuer=identity.issuer,
            subject=identity.subject,
            owner=identity.owner or "",
            groups=tuple(identity.groups),
            connection=recording.connection,
            kind=connection_kind,
            rule=decision.rule,
            reason=decision.reason,
            policy_version=decision.policy_version,
            operation=operation,
            summary=summary_of(operation),
            held=held,
            approvers=approvers,
            quorum=rule.quorum,
            any_deny_ends=settings.any_deny_ends,
            mode=rule.mode,
            window_seconds=rule.window_seconds,
            created_at=now,
            expires_at=now + rule.timeout_seconds,
            binding="",
        )
        approval.binding = binding_of(approval)
        if self.workflow is None:
            raise ServiceUnavailable("the approval workflow is not configured", code="approval_unavailable")
        self.store.create(approval)
        self.record(
            approval,
            "requested",
            rule=approval.rule,
            approvers=list(approvers),
            quorum=approval.quorum,
            mode=approval.mode,
            expires_at=iso(approval.expires_at),
            binding=approval.binding,
        )
        try:
            self.workflow.start(approval)
        except GatewayError:
            self.store.mark_workflow_failed(approval.request_id, "the workflow could not be started")
            raise
        count("ApprovalsRequested", connection=approval.connection)
        poll_url = f"{self.base_url(request)}/requests/{approval.request_id}"
        recording.response = {
            "status": 202,
            "approval": {"request_id": approval.request_id, "mode": approval.mode},
        }
        return _json(
            202,
            {
                "request_id": approval.request_id,
                "poll_url": poll_url,
                "status": "pending",
                "mode": approval.mode,
                "reason": f"{decision.reason} (rule {decision.rule!r}): waiting for "
                f"{approval.quorum} approval(s) from {', '.join(decision.approvers)}",
                "expires_at": iso(approval.expires_at),
            },
        )

    def base_url(self, request: HttpRequest | None = None) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = (request.headers.get("host") if request else None) or "localhost"
        return f"https://{host}"

    # ------------------------------------------------------------------ the agent's poll
    def poll(
        self, request_id: str, identity: Identity, wait: float, deadline: float, execute: Executor
    ) -> HttpResponse:
        """The request's state for its requester; long-polls up to ``wait``; runs one-time operations once."""
        wait = max(0.0, min(wait, MAX_WAIT_SECONDS))
        until = time.monotonic() + min(wait, max(0.0, deadline - time.monotonic() - MIN_EXECUTION_SECONDS))
        while True:
            approval = self._own(request_id, identity)
            status = approval.effective_status(self.clock())
            if status == "approved" and approval.mode == "one-time" and approval.kind != "sql":
                return self._execute(approval, deadline, execute)
            if status != "pending" or time.monotonic() >= until:
                return _json(200, self._public(approval))
            self.sleep(POLL_INTERVAL_SECONDS)

    # ------------------------------------------------------------------ held Data API calls
    def held_call(self, call_key: str, identity: Identity) -> ApprovalRequest | None:
        """The approval request of an identical earlier Data API call by this identity, if any."""
        request_id = self.store.request_for_call(call_key)
        approval = self.store.get(request_id) if request_id else None
        if approval is None or (approval.issuer, approval.subject) != (identity.issuer, identity.subject):
            return None
        return approval

    def claim_call(self, approval: ApprovalRequest) -> bool:
        """Whether this retry may run the approved call: verified, and claimed exactly once."""
        problem = self.verify_for_execution(approval)
        if problem:
            logger.error("approved request failed verification", extra={"approval": approval.request_id})
            self.record(approval, "refused", reason=problem)
            raise Forbidden(f"the approval cannot be used: {problem}", code="approval_invalid")
        if not self.store.claim_execution(approval.request_id, int(self.clock())):
            return False
        try:
            self.record(approval, "executing")
        except ServiceUnavailable:
            self._unclaim(approval)  # it did not run: the next identical call may run it
            raise
        return True

    def _unclaim(self, approval: ApprovalRequest) -> None:
        """executing -> approved, for an execution that forwarded nothing (best effort: if this fails
        too, the request stays ``executing`` and never runs, which is the safe side)."""
        try:
            self.store.release_execution(approval.request_id)
        except GatewayError:
            logger.error("approved request left executing", extra={"approval": approval.request_id})

    def finish_call(self, approval: ApprovalRequest, status: int, result: dict[str, Any]) -> None:
        self.store.finish_execution(approval.request_id, result, int(self.clock()))
        self.record(approval, "executed", status=status)
        count("ApprovalsExecuted", connection=approval.connection)

    def hold_call(
        self,
        request: HttpRequest,
        identity: Identity,
        call_key: str,
        required: ApprovalRequired,
        recording: Recording,
    ) -> dict[str, Any]:
        """Hold a Data API call (``hold``), remembered under ``call_key`` so that its retry finds it."""
        path = "/" + request.proxy_path.strip("/")
        response = self.hold(request, identity, "sql", path, "", required, recording)
        held: dict[str, Any] = json.loads(response.body)
        self.store.remember_call(call_key, held["request_id"], int(self.clock()) + 30 * 86400)
        return held

    def _own(self, request_id: str, identity: Identity) -> ApprovalRequest:
        approval = self.store.get(request_id) if request_id.isalnum() and len(request_id) <= 64 else None
        if approval is None or (approval.issuer, approval.subject) != (identity.issuer, identity.subject):
            raise NotFound(f"no approval request {request_id[:64]!r} of yours", code="unknown_request")
        return approval

    def _public(self, approval: ApprovalRequest) -> dict[str, Any]:
        body = approval.to_public(self.clock())
        if approval.kind == "sql" and body.get("status") == "approved" and approval.mode == "one-time":
            body["next"] = "send the identical Data API call again: it runs once"
        if approval.result is not None:
            body["result"] = approval.result
        return body

    def _execute(self, approval: ApprovalRequest, deadline: float, execute: Executor) -> HttpResponse:
        problem = self.verify_for_execution(approval)
        if problem:
            logger.error("approved request failed verification", extra={"approval": approval.request_id})
            self.record(approval, "refused", reason=problem)
            raise Forbidden(f"the approval cannot be used: {problem}", code="approval_invalid")
        if deadline - time.monotonic() < MIN_EXECUTION_SECONDS:
            return _json(200, {**self._public(approval), "retry": "poll again to run the approved operation"})
        now = int(self.clock())
        if not self.store.claim_execution(approval.request_id, now):
            current = self.store.get(approval.request_id) or approval
            return _json(200, self._public(current))  # another poll runs (or ran) it: never twice
        try:
            self.record(approval, "executing")
            response = execute(approval, deadline)
        except ServiceUnavailable:
            # Nothing was forwarded (``execute`` raises only then): the approval stands, and the
            # agent's next poll runs it once the dependency is back.
            self._unclaim(approval)
            raise
        result = self._result(response)
        self.store.finish_execution(approval.request_id, result, int(self.clock()))
        self.record(approval, "executed", status=response.status, result_size=len(response.body))
        count("ApprovalsExecuted", connection=approval.connection)
        current = self.store.get(approval.request_id) or approval
        return _json(200, self._public(current))

    @staticmethod
    def verify_for_execution(approval: ApprovalRequest) -> str:
        """Why this approval must not run anything, or "" when it is sound."""
        if binding_of(approval) != approval.binding:
            return "the held operation does not match its binding"
        if approval.decided != "approved" or approval.settled() != "approved":
            return "its votes do not reach the quorum"
        own = {approval.subject.lower(), approval.owner.lower()}
        if any(v.approver in own for v in approval.approvals()):
            return "the requester or its owner voted"
        return ""

    @staticmethod
    def _result(response: HttpResponse) -> dict[str, Any]:
        headers = {k: v for k, v in response.headers.items() if k != "x-wardgate-record-id"}
        if len(response.body) > RESULT_LIMIT:
            return {
                "status": response.status,
                "headers": headers,
                "withheld": f"the result is {len(response.body)} bytes; wardgate holds at most "
                f"{RESULT_LIMIT} "
                "for a poll (the masked response is in the recording)",
            }
        try:
            return {
                "status": response.status,
                "headers": headers,
                "encoding": "utf-8",
                "body": response.body.decode(),
            }
        except UnicodeDecodeError:
            return {
                "status": response.status,
                "headers": headers,
                "encoding": "base64",
                "body": base64.b64encode(response.body).decode(),
            }

    # ------------------------------------------------------------------ the approver's side
    def view(self, request_id: str, token: str) -> HttpResponse:
        approval, claims_or_error = self._link(request_id, token)
        if isinstance(claims_or_error, HttpResponse):
            return claims_or_error
        assert approval is not None and self.signer is not None
        status = approval.effective_status(self.clock())
        if status != "pending":
            return pages.refused(
                409, "not_pending", f"this request is {status}: nothing left to decide", approval
            )
        if claims_or_error.approver in approval.votes:
            return pages.refused(409, "already_voted", "you have already decided on this request", approval)
        self.record(approval, "viewed", by=claims_or_error.approver)
        return pages.confirmation(
            approval, claims_or_error.approver, token, self.signer.page_token(claims_or_error)
        )

    def decide(self, request_id: str, form_body: bytes) -> HttpResponse:
        form = {k: v[0] for k, v in parse_qs(form_body.decode("utf-8", "replace")).items()}
        approval, claims_or_error = self._link(request_id, form.get("t", ""))
        if isinstance(claims_or_error, HttpResponse):
            return claims_or_error
        assert approval is not None and self.signer is not None
        claims = claims_or_error
        try:
            self.signer.verify_page_token(claims, form.get("page", ""))
        except LinkError as error:
            return pages.refused(403, error.code, error.message, approval)
        choice = form.get("decision")
        if choice not in ("approve", "deny"):
            return pages.refused(400, "bad_decision", "the decision must be approve or deny", approval)
        now = int(self.clock())
        resubmitted = False
        try:
            self.store.record_vote(request_id, claims.nonce, Vote(claims.approver, choice, now), now)
        except VoteRefused as refused:
            current = self.store.get(request_id) or approval
            if not _unfinished(current, claims.approver, choice, refused.code):
                status = 409 if refused.code in ("link_used", "already_voted", "not_pending") else 403
                return pages.refused(status, refused.code, refused.message, current)
            # This very vote was stored by an earlier submission of this form that failed after it
            # (an AWS dependency): the approver submits again, and what followed the vote is done now.
            resubmitted = True
        current = self.store.get(request_id) or approval
        self.record(
            current,
            "approved" if choice == "approve" else "denied",
            by=claims.approver,
            **({"resubmitted": True} if resubmitted else {}),
        )
        outcome = current.settled()
        if outcome and (
            self.store.settle(request_id, outcome)
            or (resubmitted and current.decided == outcome and current.status == "pending")
        ):
            self._release(current, outcome)
        return pages.decided(current, claims.approver, choice, outcome)

    def _release(self, approval: ApprovalRequest, outcome: str) -> None:
        """Record the decision, then tell the waiting workflow. Anything failing is a 503 the approver
        can submit again (``decide`` resumes); until the workflow is told, nothing is approved."""
        token = self.store.task_token(approval.request_id)
        grant_until = int(self.clock()) + approval.window_seconds if approval.mode == "window" else 0
        self.record(
            approval, f"decided_{outcome}", **({"grant_expires_at": iso(grant_until)} if grant_until else {})
        )
        try:
            if not token or self.workflow is None:
                raise RuntimeError("no task token stored (the notifier did not finish)")
            self.workflow.decide(token, outcome, grant_until)
        except Exception as exc:
            logger.error(
                "could not release the approval workflow",
                extra={"approval": approval.request_id, "error": type(exc).__name__},
            )
            try:
                self.record(approval, "workflow_error", outcome=outcome, error=type(exc).__name__)
            except GatewayError:
                logger.error("workflow error not recorded", extra={"approval": approval.request_id})
            raise ServiceUnavailable(
                f"the decision is recorded but the approval workflow could not be told "
                f"({type(exc).__name__}): submit it again",
                code="approval_unavailable",
            ) from None
        try:  # what tells a double click (409) from a resubmission that must finish the decision
            self.store.set_fields(approval.request_id, {"released_at": int(self.clock())})
        except GatewayError:
            logger.warning("workflow state not stored", extra={"approval": approval.request_id})
        if grant_until:  # shown at the poll URL; the grant itself is the workflow's
            try:
                self.store.set_fields(approval.request_id, {"grant_expires_at": grant_until})
            except GatewayError:
                logger.warning("grant expiry not stored", extra={"approval": approval.request_id})

    def _link(self, request_id: str, token: str) -> tuple[ApprovalRequest | None, Any]:
        if self.signer is None:
            return None, pages.refused(503, "approval_unavailable", "approvals are not configured")
        approval = self.store.get(request_id) if request_id.isalnum() and len(request_id) <= 64 else None
        if approval is None:
            return None, pages.refused(404, "unknown_request", "there is no such approval request")
        try:
            claims = self.signer.verify_link(approval, token)
        except LinkError as error:
            logger.warning("approval link refused", extra={"approval": request_id, "code": error.code})
            status = 410 if error.code == "link_expired" else 403
            return approval, pages.refused(status, error.code, error.message, approval)
        return approval, claims

    def link_for(self, approval: ApprovalRequest, approver: str) -> str:
        assert self.signer is not None
        token = self.signer.link_token(approval, approver)
        return f"{self.base_url()}/approvals/{approval.request_id}?t={quote(token, safe='')}"

    # ------------------------------------------------------------------ the notifier
    def notify(self, request_id: str, task_token: str, mailer: Mailer) -> bool:
        """Keep the task token, mail every approver their own link. False: nothing to notify."""
        approval = self.store.get(request_id)
        if approval is None or approval.effective_status(self.clock()) != "pending":
            return False
        if not self.store.store_task_token(request_id, task_token):
            return False
        try:
            for approver in approval.approvers:
                mailer.send(email.approval_email(approval, approver, self.link_for(approval, approver)))
        except Exception as exc:
            # The request stays pending and visible (its poll says the notification failed); it is never
            # approved by default and expires at its deadline.
            logger.error(
                "approval notification failed", extra={"approval": request_id, "error": type(exc).__name__}
            )
            self.store.set_fields(request_id, {"notify_error": type(exc).__name__})
            self.record(approval, "notify_failed", error=type(exc).__name__)
            raise
        self.store.set_fields(request_id, {"notified_at": int(self.clock())})
        self.record(approval, "notified", approvers=list(approval.approvers))
        return True

    def record_expiry(self, request_id: str) -> bool:
        """Append ``expired`` to the recording, once (the workflow's timeout marked the request)."""
        approval = self.store.get(request_id)
        if approval is None or approval.status != "expired":
            return False
        if not self.store.mark_once(request_id, "expiry_recorded"):
            return False  # a redelivered message
        self.record(approval, "expired", at=approval.ended_at, deadline=iso(approval.expires_at))
        return True

    # ------------------------------------------------------------------ revocation
    def withdraw(self, request_id: str, identity: Identity) -> HttpResponse:
        """The requester takes its pending request back: nothing of it will run."""
        from datetime import UTC, datetime

        approval = self._own(request_id, identity)
        at = datetime.fromtimestamp(self.clock(), UTC).isoformat(timespec="seconds")
        if not self._cancel(approval, f"{identity.subject} (the requester)", at):
            status = approval.effective_status(self.clock())
            raise Conflict(
                f"request {request_id} is {status}: only a pending request can be withdrawn",
                code="not_pending",
            )
        return _json(200, self._public(self.store.get(request_id) or approval))

    def _cancel(self, approval: ApprovalRequest, by: str, at: str) -> bool:
        """pending -> cancelled (conditional), recorded, and the workflow told when it waits."""
        if not self.store.cancel(approval.request_id, by, at):
            return False
        self.record(approval, "cancelled", by=by)
        token = self.store.task_token(approval.request_id)
        if token and self.workflow is not None:
            try:
                self.workflow.decide(token, "cancelled")
            except Exception as exc:  # the item is cancelled already; the workflow times out
                logger.warning("workflow not told of cancellation", extra={"error": type(exc).__name__})
        return True

    def cancel_identities(
        self, identities: set[tuple[str, str]], owner: str | None, by: str, subjects: set[str] | None = None
    ) -> int:
        """Cancel pending requests and withdraw grants of revoked identities (or all of an owner's)."""
        from datetime import UTC, datetime

        done = 0
        at = datetime.fromtimestamp(self.clock(), UTC).isoformat(timespec="seconds")
        for item in self.store.of_identities(identities, owner, subjects):
            if item.get("kind") == "grant":
                done += self.store.withdraw_grant(str(item["pk"]), by)
                continue
            approval = self.store.get(str(item["request_id"]))
            if approval is not None and self._cancel(approval, by, at):
                done += 1
        return done
