"""The approvals table (DynamoDB): requests, single-use link nonces, window grants.

Items: ``req#<id>`` (one approval request, ``model.ApprovalRequest``), ``link#<nonce>`` (a used
link, written in the same transaction as its vote), ``grant#[issuer,subject,connection,rule]`` (a
window grant, written by the workflow). Every state change is a conditional write, so double
clicks, replays, late votes and repeated polls change nothing. Every AWS failure is a 503.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from wardgate import aws
from wardgate.approvals.model import ApprovalRequest, Vote, grant_key, request_key
from wardgate.errors import Conflict, ServiceUnavailable
from wardgate.observability import logger


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


class VoteRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ApprovalStore:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    # ------------------------------------------------------------------ plumbing
    @staticmethod
    def _ser(value: Any) -> Any:
        from boto3.dynamodb.types import TypeSerializer

        return TypeSerializer().serialize(value)

    def _item(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: self._ser(v) for k, v in values.items()}

    def _call(self, what: str, **kwargs: Any) -> Any:
        try:
            return getattr(aws.client("dynamodb"), what)(**kwargs)
        except Exception as exc:
            if type(exc).__name__ in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise
            logger.warning("approvals table unavailable", extra={"call": what, "error": type(exc).__name__})
            raise ServiceUnavailable(
                f"the approvals table is unavailable ({type(exc).__name__})", code="store_unavailable"
            ) from None

    def _update(
        self, key: str, sets: dict[str, Any], condition: str = "", values: dict[str, Any] | None = None
    ) -> bool:
        """SET the fields; False when ``condition`` does not hold."""
        names = {f"#f{i}": name for i, name in enumerate(sets)}
        attr_values = {f":v{i}": self._ser(value) for i, value in enumerate(sets.values())}
        attr_values.update({k: self._ser(v) for k, v in (values or {}).items()})
        expression = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(sets)))
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": key}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": {**names, "#status": "status", "#decided": "decided"},
            "ExpressionAttributeValues": attr_values,
        }
        if condition:
            kwargs["ConditionExpression"] = condition
        else:
            kwargs["ConditionExpression"] = "attribute_exists(pk)"
        if "#status" not in expression + kwargs["ConditionExpression"]:
            kwargs["ExpressionAttributeNames"].pop("#status")
        if "#decided" not in expression + kwargs["ConditionExpression"]:
            kwargs["ExpressionAttributeNames"].pop("#decided")
        try:
            self._call("update_item", **kwargs)
        except Exception as exc:
            if type(exc).__name__ == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # ------------------------------------------------------------------ requests
    def create(self, request: ApprovalRequest) -> None:
        self._call(
            "put_item",
            TableName=self.table_name,
            Item=self._item(request.to_item()),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get(self, request_id: str) -> ApprovalRequest | None:
        from boto3.dynamodb.types import TypeDeserializer

        found = self._call(
            "get_item",
            TableName=self.table_name,
            Key={"pk": {"S": request_key(request_id)}},
            ConsistentRead=True,
        ).get("Item")
        if not found:
            return None
        deserializer = TypeDeserializer()
        item = _plain({k: deserializer.deserialize(v) for k, v in found.items()})
        if item.get("kind") != "request":
            return None
        return ApprovalRequest.from_item(item)

    def set_fields(self, request_id: str, fields: dict[str, Any]) -> None:
        self._update(request_key(request_id), fields)

    def mark_workflow_failed(self, request_id: str, error: str) -> None:
        self._update(request_key(request_id), {"workflow": "failed", "workflow_error": error})

    def store_task_token(self, request_id: str, token: str) -> bool:
        """Kept for the decision endpoint only; never returned by ``get`` and never logged."""
        return self._update(
            request_key(request_id), {"task_token": token}, "#status = :pending", {":pending": "pending"}
        )

    def mark_once(self, request_id: str, flag: str) -> bool:
        """Set ``flag`` if it is not set yet; False when it was (at-least-once delivery made idempotent)."""
        return self._update(
            request_key(request_id), {flag: True}, f"attribute_exists(pk) AND attribute_not_exists({flag})"
        )

    def task_token(self, request_id: str) -> str:
        found = (
            self._call(
                "get_item",
                TableName=self.table_name,
                Key={"pk": {"S": request_key(request_id)}},
                ProjectionExpression="task_token",
                ConsistentRead=True,
            ).get("Item")
            or {}
        )
        return str((found.get("task_token") or {}).get("S", ""))

    # ------------------------------------------------------------------ votes
    def record_vote(self, request_id: str, nonce: str, vote: Vote, now: int) -> None:
        """The vote and the link's single use, in one transaction; ``VoteRefused`` says why not."""
        request = {
            "Update": {
                "TableName": self.table_name,
                "Key": {"pk": {"S": request_key(request_id)}},
                "UpdateExpression": "SET votes.#a = :vote",
                "ConditionExpression": (
                    "#status = :pending AND #decided = :open AND expires_at > :now "
                    "AND attribute_not_exists(votes.#a)"
                ),
                "ExpressionAttributeNames": {"#a": vote.approver, "#status": "status", "#decided": "decided"},
                "ExpressionAttributeValues": self._item(
                    {":vote": vote.to_dict(), ":pending": "pending", ":open": "", ":now": now}
                ),
            }
        }
        link = {
            "Put": {
                "TableName": self.table_name,
                "Item": self._item(
                    {"pk": f"link#{nonce}", "kind": "link", "request_id": request_id, "ttl": now + 40 * 86400}
                ),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        try:
            self._call("transact_write_items", TransactItems=[link, request])
        except Exception as exc:
            if type(exc).__name__ != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in getattr(exc, "response", {}).get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise VoteRefused("link_used", "this approval link was already used") from None
            current = self.get(request_id)
            if current is not None and vote.approver in current.votes:
                raise VoteRefused("already_voted", "you have already decided on this request") from None
            raise VoteRefused("not_pending", "this request is no longer waiting for a decision") from None

    def settle(self, request_id: str, outcome: str) -> bool:
        """Record that the votes decided it (once); the workflow is told after this."""
        return self._update(
            request_key(request_id),
            {"decided": outcome},
            "#status = :pending AND #decided = :open",
            {":pending": "pending", ":open": ""},
        )

    # ------------------------------------------------------------------ one-time execution
    def claim_execution(self, request_id: str, now: int) -> bool:
        """approved -> executing, once: a retry or a second poll gets False and never executes."""
        return self._update(
            request_key(request_id),
            {"status": "executing", "executing_at": now},
            "#status = :approved AND #decided = :approved",
            {":approved": "approved"},
        )

    def release_execution(self, request_id: str) -> bool:
        """executing -> approved: the claimed execution forwarded nothing (a dependency failed first)."""
        return self._update(
            request_key(request_id),
            {"status": "approved"},
            "#status = :executing",
            {":executing": "executing"},
        )

    def finish_execution(self, request_id: str, result: dict[str, Any], now: int) -> None:
        self._update(
            request_key(request_id),
            {"status": "executed", "executed_at": now, "result": json.dumps(result, separators=(",", ":"))},
            "#status = :executing",
            {":executing": "executing"},
        )

    # ------------------------------------------------------------------ held SQL calls
    def remember_call(self, call_key: str, request_id: str, ttl: int) -> None:
        """The approval request a held Data API call belongs to, so its retry finds it."""
        self._call(
            "put_item",
            TableName=self.table_name,
            Item=self._item(
                {"pk": f"sqlcall#{call_key}", "kind": "call", "request_id": request_id, "ttl": ttl}
            ),
        )

    def request_for_call(self, call_key: str) -> str | None:
        found = self._call(
            "get_item",
            TableName=self.table_name,
            Key={"pk": {"S": f"sqlcall#{call_key}"}},
            ConsistentRead=True,
        ).get("Item")
        return str(found["request_id"]["S"]) if found else None

    # ------------------------------------------------------------------ grants
    def active_grant(self, issuer: str, subject: str, connection: str, rule: str, now: int) -> str | None:
        """The request id of an unexpired, unwithdrawn window grant, or None."""
        found = self._call(
            "get_item",
            TableName=self.table_name,
            Key={"pk": {"S": grant_key(issuer, subject, connection, rule)}},
            ConsistentRead=True,
        ).get("Item")
        if not found or found.get("status", {}).get("S") != "active":
            return None
        if int(found.get("expires_at", {}).get("N", "0")) <= now:
            return None
        return str(found.get("request_id", {}).get("S", ""))

    # ------------------------------------------------------------------ revocation
    def of_identities(
        self, identities: set[tuple[str, str]], owner: str | None, subjects: set[str] | None = None
    ) -> list[dict[str, Any]]:
        """Pending requests and active grants of these (issuer, subject) pairs, subjects, or this owner."""
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        found: list[dict[str, Any]] = []
        pages = (
            aws.client("dynamodb")
            .get_paginator("scan")
            .paginate(
                TableName=self.table_name,
                FilterExpression=(
                    "(kind = :request AND #status = :pending) OR (kind = :grant AND #status = :active)"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=self._item(
                    {":request": "request", ":grant": "grant", ":pending": "pending", ":active": "active"}
                ),
            )
        )
        for page in pages:
            for raw in page["Items"]:
                item = _plain({k: deserializer.deserialize(v) for k, v in raw.items()})
                pair = (str(item.get("issuer", "")), str(item.get("subject", "")))
                if (
                    pair in identities
                    or pair[1] in (subjects or set())
                    or (owner and item.get("owner") == owner)
                ):
                    found.append(item)
        return found

    def cancel(self, request_id: str, by: str, at: str) -> bool:
        return self._update(
            request_key(request_id),
            {"status": "cancelled", "ended_by": by, "ended_at": at},
            "#status = :pending",
            {":pending": "pending"},
        )

    def withdraw_grant(self, pk: str, by: str) -> bool:
        return self._update(
            pk, {"status": "withdrawn", "withdrawn_by": by}, "#status = :active", {":active": "active"}
        )


def conflict(message: str) -> Conflict:
    return Conflict(message, code="approval_conflict")
