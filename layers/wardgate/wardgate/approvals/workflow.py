"""Step Functions adapter: start an approval workflow and tell it the outcome.

The definition is statemachines/approval.asl.json.
"""

from __future__ import annotations

import json

from wardgate import aws
from wardgate.approvals.model import ApprovalRequest, grant_key
from wardgate.errors import ServiceUnavailable
from wardgate.observability import logger


class Workflow:
    def __init__(self, state_machine_arn: str) -> None:
        self.state_machine_arn = state_machine_arn

    @staticmethod
    def input_of(request: ApprovalRequest) -> dict[str, object]:
        """The execution's input: what the definition's states read (no secrets, no operation body)."""
        return {
            "pk": request.pk,
            "request_id": request.request_id,
            "timeout_seconds": max(1, request.expires_at - request.created_at),
            "mode": request.mode,
            "grant_pk": grant_key(request.issuer, request.subject, request.connection, request.rule),
            "issuer": request.issuer,
            "subject": request.subject,
            "connection": request.connection,
            "rule": request.rule,
        }

    def start(self, request: ApprovalRequest) -> None:
        try:
            aws.client("stepfunctions").start_execution(
                stateMachineArn=self.state_machine_arn,
                name=f"approval-{request.request_id}",
                input=json.dumps(self.input_of(request)),
            )
        except Exception as exc:
            logger.error("approval workflow did not start", extra={"error": type(exc).__name__})
            raise ServiceUnavailable(
                f"the approval workflow could not be started ({type(exc).__name__})",
                code="approval_unavailable",
            ) from None

    def decide(self, task_token: str, outcome: str, grant_expires_at: int = 0) -> None:
        """Release the waiting workflow. The token comes from the table and goes nowhere else."""
        aws.client("stepfunctions").send_task_success(
            taskToken=task_token,
            output=json.dumps({"outcome": outcome, "grant_expires_at": str(grant_expires_at)}),
        )
