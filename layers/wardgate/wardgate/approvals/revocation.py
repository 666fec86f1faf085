"""The agent registry's revocation listener: a revoked identity's pending requests are cancelled and
its window grants withdrawn (``agents.RevocationListener``)."""

from __future__ import annotations

from collections.abc import Callable

from wardgate.agents import Revocation
from wardgate.approvals.service import ApprovalDesk


def revocation_listener(desk: Callable[[], ApprovalDesk]) -> Callable[[Revocation], None]:
    def cancel_approvals(revocation: Revocation) -> None:
        identities = set(revocation.agents) | set(revocation.already)
        owner = revocation.target if revocation.kind == "owner" else None
        subjects = {revocation.target} if revocation.kind in ("subject", "agent") else set()
        desk().cancel_identities(
            identities, owner, f"revocation by {revocation.by}: {revocation.reason}", subjects
        )

    return cancel_approvals
