"""Binding and signed links: a link approves exactly one operation, for one approver, until it expires.

The **binding** is a SHA-256 over the canonical JSON of everything that makes the operation what it
is: requester (issuer, subject), connection, rule, the normalised operation record, the held
request (method, path, query, a hash of its body), the policy version and the expiry. It is stored
with the request and recomputed from the stored fields whenever a link is checked or the operation
is about to run, so a changed field fails closed.

A **link** carries the approver, the expiry and a random nonce, signed with HMAC-SHA256 over those
and the binding and the request id (``approvals/<id>?t=<claims>.<signature>``): an altered field, a
link of another request, a forged signature all fail the same constant-time comparison. It never
carries the Step Functions task token. A link is single-use: the nonce is written with a DynamoDB
conditional put in the same transaction as the vote (``store.py``).

A **page token** proves that a POST comes from the confirmation page wardgate rendered (a link
scanner that only GETs approves nothing, and a hand-made POST without it is refused).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from wardgate.approvals.model import ApprovalRequest

PAGE_TOKEN_SECONDS = 15 * 60


class LinkError(Exception):
    """A link or page token that must not be honoured; ``code`` is stable, the message is for humans."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def binding_of(request: ApprovalRequest) -> str:
    held = request.held
    material = {
        "v": 1,
        "request_id": request.request_id,
        "issuer": request.issuer,
        "subject": request.subject,
        "connection": request.connection,
        "rule": request.rule,
        "operation": request.operation,
        "held": {
            "method": held.get("method"),
            "path": held.get("path"),
            "query": held.get("query"),
            "body_sha256": hashlib.sha256(base64.b64decode(held.get("body") or "")).hexdigest(),
        },
        "policy_version": request.policy_version,
        "mode": request.mode,
        "window_seconds": request.window_seconds,
        "expires_at": request.expires_at,
    }
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class LinkClaims:
    request_id: str
    approver: str
    expires_at: int
    nonce: str


@dataclass
class Signer:
    key: Callable[[], bytes]  # from Secrets Manager, read lazily
    clock: Callable[[], float] = time.time

    def _mac(self, *parts: str) -> str:
        return hmac.new(self.key(), "\n".join(parts).encode(), hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------ links
    def link_token(self, request: ApprovalRequest, approver: str) -> str:
        claims = {"r": request.request_id, "a": approver, "e": request.expires_at, "n": secrets.token_hex(16)}
        encoded = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = self._mac("link", encoded, request.binding)
        return f"{encoded}.{signature}"

    def verify_link(self, request: ApprovalRequest, token: str) -> LinkClaims:
        """The link's claims, or ``LinkError``. Checks signature, binding, request, approver, expiry."""
        try:
            encoded, signature = token.split(".", 1)
            raw = json.loads(_unb64(encoded))
            claims = LinkClaims(str(raw["r"]), str(raw["a"]), int(raw["e"]), str(raw["n"]))
        except (ValueError, KeyError, TypeError, binascii.Error, OverflowError, RecursionError):
            raise LinkError("bad_link", "this approval link is malformed") from None
        if binding_of(request) != request.binding:
            raise LinkError("binding_mismatch", "the held operation no longer matches what was approved")
        if not hmac.compare_digest(self._mac("link", encoded, request.binding), signature):
            raise LinkError("bad_signature", "this approval link is forged or was altered")
        if claims.request_id != request.request_id:
            raise LinkError("wrong_request", "this approval link belongs to another request")
        if claims.approver not in request.approvers:
            raise LinkError("not_an_approver", "this link's approver may not decide this request")
        if claims.expires_at != request.expires_at or self.clock() >= claims.expires_at:
            raise LinkError("link_expired", "this approval link has expired")
        return claims

    # ------------------------------------------------------------------ the confirmation page's token
    def page_token(self, claims: LinkClaims) -> str:
        issued = str(int(self.clock()))
        return f"{issued}.{self._mac('page', claims.request_id, claims.approver, claims.nonce, issued)}"

    def verify_page_token(self, claims: LinkClaims, token: str) -> None:
        issued, _, signature = (token or "").partition(".")
        if not issued.isdigit() or not signature:
            raise LinkError("missing_page_token", "decisions are made from the confirmation page only")
        expected = self._mac("page", claims.request_id, claims.approver, claims.nonce, issued)
        if not hmac.compare_digest(expected, signature):
            raise LinkError("bad_page_token", "this form was not issued by wardgate for this link")
        if self.clock() - int(issued) > PAGE_TOKEN_SECONDS:
            raise LinkError("page_expired", "this confirmation page is too old: open the link again")
