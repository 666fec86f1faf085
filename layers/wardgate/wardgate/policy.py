"""Decisions: may this identity perform this operation on this connection?

For now the only rule is group membership on the connection, default deny. The policy
engine (rules on parsed operations, packs, policies as code) replaces ``decide`` without
changing its signature: every proxy asks here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from wardgate.connections import Connection
from wardgate.identity import Identity

Outcome = Literal["allow", "deny"]


@dataclass(frozen=True)
class HttpOperation:
    method: str
    path: str  # decoded and normalised exactly as it is forwarded
    query: str

    def to_record(self) -> dict[str, Any]:
        return {"protocol": "http", "method": self.method, "path": self.path, "query": self.query}


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    rule: str

    def to_record(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "reason": self.reason, "rule": self.rule}


def decide(identity: Identity, connection: Connection, operation: HttpOperation) -> Decision:
    allowed = set(connection.allowed_groups) & set(identity.groups)
    if allowed:
        return Decision("allow", f"member of {sorted(allowed)[0]!r}", "connection.allowed_groups")
    return Decision(
        "deny",
        f"identity {identity.subject!r} is in none of the groups allowed on connection {connection.name!r}",
        "default-deny",
    )
