"""Applied policy sets in DynamoDB: immutable versions, one ``current`` pointer, read with a short cache.

Layout of the policies table (partition key ``pk``, sort key ``sk``):
``("policy", "version#<id>")`` holds a version's document (gzipped JSON), never changed;
``("policy", "current")`` names the version in force. ``apply`` writes the version item, then
switches the pointer and (when the policy declares connections) the connections table in one
DynamoDB transaction, conditioned on the version it started from: all or nothing.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wardgate import aws
from wardgate.errors import ServiceUnavailable
from wardgate.policy.document import build, version_of
from wardgate.policy.engine import PolicySet

PK = "policy"
NO_POLICY = "none"
MAX_TRANSACTION_ITEMS = 100


class ApplyConflict(RuntimeError):
    """Someone applied another policy since this one was diffed."""


def _serializer() -> Any:
    from boto3.dynamodb.types import TypeSerializer

    return TypeSerializer()


def _deserialize(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()}


@dataclass(eq=False, repr=False)  # a service: compared by identity, its caches never printed
class PolicyStore:
    """The policy in force from DynamoDB (pointer, then the version), remembered for ``ttl_seconds``."""

    table_name: str
    connections_table: str
    ttl_seconds: float = 5.0  # a newly applied policy is in force everywhere within this
    clock: Any = time.monotonic
    _cached: tuple[float, PolicySet] | None = field(default=None, init=False)
    _sets: dict[str, PolicySet] = field(default_factory=dict, init=False)  # versions are immutable
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def fresh(self) -> PolicySet | None:
        """The policy in force if it is cached and fresh: no I/O (an event loop's fast path)."""
        cached = self._cached
        if cached is not None and self.clock() - cached[0] < self.ttl_seconds:
            return cached[1]
        return None

    def current(self) -> PolicySet:
        now = self.clock()
        cached = self._cached
        if cached is not None and now - cached[0] < self.ttl_seconds:
            return cached[1]
        with self._lock:
            try:
                version = self.current_version(consistent=False)
                policy_set = self._sets.get(version) or self._load(version)
            except Exception as exc:
                # Fail closed: without the policy in force there is no decision to make.
                raise ServiceUnavailable(
                    f"policy store unavailable ({type(exc).__name__})", code="policy_unavailable"
                ) from None
            self._sets = {version: policy_set}
            self._cached = (now, policy_set)
        return policy_set

    def current_version(self, consistent: bool = True) -> str:
        """The version in force. The live path reads it eventually consistent (half the price; a
        switch is seen within about a second); ``apply`` and the CLI read it strongly."""
        key = {"pk": {"S": PK}, "sk": {"S": "current"}}
        ddb = aws.client("dynamodb")
        item = ddb.get_item(TableName=self.table_name, Key=key, ConsistentRead=consistent).get("Item")
        return str(item["version"]["S"]) if item else NO_POLICY

    def document(self, version: str | None = None) -> dict[str, Any] | None:
        version = version or self.current_version()
        if version == NO_POLICY:
            return None
        item = (
            aws.client("dynamodb")
            .get_item(TableName=self.table_name, Key={"pk": {"S": PK}, "sk": {"S": f"version#{version}"}})
            .get("Item")
        )
        if item is None:
            raise LookupError(f"policy version {version} is not stored")
        document: dict[str, Any] = json.loads(gzip.decompress(item["document"]["B"]))
        return document

    def _load(self, version: str) -> PolicySet:
        document = self.document(version)
        if document is None:
            return PolicySet(version=NO_POLICY, rules=())
        return build(document, strict=False)  # checked when applied; the function may not scan connections

    def connection_kinds(self) -> dict[str, str]:
        """Every stored connection, name -> kind (what files without connections are checked against)."""
        pages = (
            aws.client("dynamodb")
            .get_paginator("scan")
            .paginate(
                TableName=self.connections_table,
                ProjectionExpression="#n, kind",
                ExpressionAttributeNames={"#n": "name"},
            )
        )
        return {item["name"]["S"]: item["kind"]["S"] for page in pages for item in page["Items"]}

    def apply(self, document: dict[str, Any], applied_by: str, expected_version: str) -> str:
        """Make ``document`` the policy in force; returns its version id. Raises ApplyConflict."""
        build(document, known_connections=None if document.get("connections") else self.connection_kinds())
        version = version_of(document)
        ddb = aws.client("dynamodb")
        now = datetime.now(UTC).isoformat()
        blob = gzip.compress(json.dumps(document, sort_keys=True).encode())
        ddb.put_item(
            TableName=self.table_name,
            Item={
                "pk": {"S": PK},
                "sk": {"S": f"version#{version}"},
                "document": {"B": blob},
                "created_at": {"S": now},
                "created_by": {"S": applied_by},
            },
        )
        actions = self._connection_actions(document) if document.get("connections") else []
        pointer: dict[str, Any] = {
            "Put": {
                "TableName": self.table_name,
                "Item": {
                    "pk": {"S": PK},
                    "sk": {"S": "current"},
                    "version": {"S": version},
                    "applied_at": {"S": now},
                    "applied_by": {"S": applied_by},
                },
                "ConditionExpression": "attribute_not_exists(version)"
                if expected_version == NO_POLICY
                else "version = :expected",
            }
        }
        if expected_version != NO_POLICY:
            pointer["Put"]["ExpressionAttributeValues"] = {":expected": {"S": expected_version}}
        if len(actions) + 1 > MAX_TRANSACTION_ITEMS:
            raise ValueError(f"a policy may change at most {MAX_TRANSACTION_ITEMS - 1} connections at once")
        from botocore.exceptions import ClientError

        try:
            ddb.transact_write_items(TransactItems=[*actions, pointer])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise ApplyConflict(
                    f"the policy in force is no longer {expected_version}; run diff again"
                ) from None
            raise
        with self._lock:
            self._cached = None
        return version

    def _connection_actions(self, document: dict[str, Any]) -> list[dict[str, Any]]:
        serializer = _serializer()
        wanted = {c["name"]: c for c in document["connections"]}
        existing = {c["name"]: c for c in self.stored_connections()}
        actions: list[dict[str, Any]] = []
        for name, connection in wanted.items():
            if existing.get(name) != _connection_item(connection):
                item = {k: serializer.serialize(v) for k, v in _connection_item(connection).items()}
                actions.append({"Put": {"TableName": self.connections_table, "Item": item}})
        for name in existing.keys() - wanted.keys():
            actions.append({"Delete": {"TableName": self.connections_table, "Key": {"name": {"S": name}}}})
        return actions

    def stored_connections(self) -> list[dict[str, Any]]:
        pages = aws.client("dynamodb").get_paginator("scan").paginate(TableName=self.connections_table)
        return [_deserialize(item) for page in pages for item in page["Items"]]


def _connection_item(connection: dict[str, Any]) -> dict[str, Any]:
    """A connection as the connections table stores it (connections.py writes the same shape)."""
    item = {
        "name": connection["name"],
        "kind": connection["kind"],
        "upstream_url": connection["upstream_url"],
        "allowed_groups": list(connection.get("allowed_groups") or []),
        "description": connection.get("description", ""),
    }
    if connection.get("credential_secret"):
        item["credential_secret"] = connection["credential_secret"]
    return item
