"""One approval request as stored: the held operation, who asked, who may decide, what happened."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

ENDED = ("executed", "denied", "expired", "cancelled")
"""Final states. ``approved`` (window mode: final too) and ``executing`` are on the way to ``executed``."""


@dataclass
class Vote:
    approver: str
    decision: str  # "approve" or "deny"
    at: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ApprovalRequest:
    request_id: str
    record_id: str  # the recording the held request started; every step is appended to it
    record_started_at: float
    issuer: str
    subject: str
    owner: str
    groups: tuple[str, ...]
    connection: str
    kind: str  # the connection's kind: http or k8s
    rule: str
    reason: str  # the rule's message (or the decision's reason)
    policy_version: str
    operation: dict[str, Any]  # the normalised operation as recorded
    summary: str  # one line an approver can read: "DELETE /v1/users/7", "delete pods/web in prod"
    held: dict[str, Any]  # method, path, query, headers, body (base64): what would be forwarded
    approvers: tuple[str, ...]  # email addresses, requester and owner already removed
    quorum: int
    any_deny_ends: bool
    mode: str  # one-time or window
    window_seconds: int
    created_at: int
    expires_at: int
    binding: str
    status: str = "pending"
    decided: str = ""  # approved/denied once the votes settled it (set before the workflow is told)
    workflow: str = "starting"
    votes: dict[str, Vote] = field(default_factory=dict)
    notified_at: int = 0
    notify_error: str = ""
    ended_at: str = ""
    ended_by: str = ""  # who cancelled (revocation) or "timeout"
    executed_at: int = 0
    result: dict[str, Any] | None = None  # status, headers, body (base64) of the executed operation
    grant_expires_at: int = 0
    released_at: int = 0  # when the decision reached the workflow (decide: a double click is then 409)

    @property
    def pk(self) -> str:
        return request_key(self.request_id)

    def effective_status(self, now: float | None = None) -> str:
        """``expired`` as soon as the deadline passed, even before the workflow's timeout lands."""
        now = time.time() if now is None else now
        if self.status == "pending" and now >= self.expires_at:
            return "expired"
        return self.status

    def approvals(self) -> list[Vote]:
        return [v for v in self.votes.values() if v.decision == "approve"]

    def denials(self) -> list[Vote]:
        return [v for v in self.votes.values() if v.decision == "deny"]

    def settled(self) -> str:
        """approved, denied or "" (still open) from the votes alone."""
        if len({v.approver for v in self.approvals() if v.approver in self.approvers}) >= self.quorum:
            return "approved"
        denials = len(self.denials())
        if denials and self.any_deny_ends:
            return "denied"
        if len(self.approvers) - denials < self.quorum:
            return "denied"  # the approvers left can no longer reach the quorum
        return ""

    # ------------------------------------------------------------------ storage
    def to_item(self) -> dict[str, Any]:
        doc = asdict(self)
        for key in ("votes", "result", "status", "decided", "workflow", "request_id"):
            doc.pop(key)
        return {
            "pk": self.pk,
            "kind": "request",
            "request_id": self.request_id,
            "status": self.status,
            "decided": self.decided,
            "workflow": self.workflow,
            "issuer": self.issuer,
            "subject": self.subject,
            "owner": self.owner,
            "expires_at": self.expires_at,
            "ttl": self.expires_at + 30 * 86400,
            "votes": {k: v.to_dict() for k, v in self.votes.items()},
            "doc": json.dumps(doc, separators=(",", ":"), default=str),
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ApprovalRequest:
        doc = json.loads(item["doc"])
        doc["groups"] = tuple(doc["groups"])
        doc["approvers"] = tuple(doc["approvers"])
        for key in (
            "notified_at",
            "notify_error",
            "ended_at",
            "ended_by",
            "executed_at",
            "grant_expires_at",
            "released_at",
        ):
            if key in item:
                doc[key] = item[key]
        request = cls(
            request_id=str(item["request_id"]),
            status=str(item["status"]),
            decided=str(item.get("decided", "")),
            workflow=str(item.get("workflow", "")),
            votes={
                k: Vote(str(v["approver"]), str(v["decision"]), int(v["at"]))
                for k, v in (item.get("votes") or {}).items()
            },
            result=json.loads(item["result"]) if item.get("result") else None,
            **doc,
        )
        request.notified_at = int(request.notified_at or 0)
        request.executed_at = int(request.executed_at or 0)
        request.grant_expires_at = int(request.grant_expires_at or 0)
        request.released_at = int(request.released_at or 0)
        return request

    def to_public(self, now: float | None = None) -> dict[str, Any]:
        """What the requesting agent reads at its poll URL (never the task token, never the votes' links)."""
        status = self.effective_status(now)
        body: dict[str, Any] = {
            "request_id": self.request_id,
            "status": status,
            "mode": self.mode,
            "connection": self.connection,
            "operation": self.summary,
            "rule": self.rule,
            "reason": self.reason,
            "expires_at": iso(self.expires_at),
            "approvals": [{"by": v.approver, "at": iso(v.at)} for v in self.approvals()],
            "quorum": self.quorum,
        }
        denials = self.denials()
        if status == "denied" and denials:
            body["decided_by"] = denials[0].approver
            body["decided_at"] = iso(denials[0].at)
        elif status in ("approved", "executing", "executed") and self.approvals():
            last = max(self.approvals(), key=lambda v: v.at)
            body["decided_by"] = last.approver
            body["decided_at"] = iso(last.at)
        elif status == "expired":
            body["decided_by"] = "timeout"
            body["decided_at"] = self.ended_at or iso(self.expires_at)
        elif status == "cancelled":
            body["decided_by"] = self.ended_by
            body["decided_at"] = self.ended_at
        if self.notify_error and status == "pending":
            body["notification"] = f"failed: {self.notify_error} (the request stays pending until it expires)"
        if self.mode == "window" and self.grant_expires_at:
            body["grant_expires_at"] = iso(self.grant_expires_at)
        if self.executed_at:
            body["executed_at"] = iso(self.executed_at)
        return body


def request_key(request_id: str) -> str:
    return f"req#{request_id}"


def grant_key(issuer: str, subject: str, connection: str, rule: str) -> str:
    return "grant#" + json.dumps([issuer, subject, connection, rule], separators=(",", ":"))


def iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
