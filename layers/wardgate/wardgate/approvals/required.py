"""The refusal a ``require_approval`` decision raises, apart from the approval flow itself.

Every gateway raises or catches it, while the flow's modules (``service`` and what it imports)
are needed only once an operation is actually held: the proxy functions import them then, not
in their cold start (``runtime.http_gateway``/``sql_gateway``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wardgate.errors import Forbidden

if TYPE_CHECKING:
    from wardgate.policy.engine import Decision, PolicySet


class ApprovalRequired(Forbidden):
    """Policy wants a human; raised by ``Gate.decide``. A gateway without approvals refuses with it."""

    code = "approval_required"

    def __init__(self, decision: Decision, policy_set: PolicySet, message: str) -> None:
        super().__init__(message)
        self.decision = decision
        self.policy_set = policy_set
