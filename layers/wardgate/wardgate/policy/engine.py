"""The decision engine: one applied policy set answers every protocol's ``decide`` call.

Deny wins over require-approval, which wins over allow; nothing matching means deny. An
operation made of several units (the statements of a SQL string, the commands of a shell
line) is decided unit by unit and the most severe outcome stands, so an allowed ``SELECT``
cannot carry a stacked ``DROP``. Rules are indexed by connection and by the protocol's main
attribute (HTTP method, Kubernetes verb, SQL statement kind, shell program), so a decision
looks at a handful of candidates even with thousands of rules loaded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from wardgate.identity import Identity
from wardgate.masking.policy import MaskingPolicy
from wardgate.operations import UnparseableOperation
from wardgate.policy.rules import ATTRIBUTE_CONDITIONS, INDEX_CONDITION, SEVERITY, Effect, Rule

ANY = "\0any"  # index bucket of rules that do not constrain the index attribute


@dataclass(frozen=True)
class Decision:
    """Policy's answer on one operation: the outcome, why, which rule, under which version."""

    outcome: Effect
    reason: str
    rule: str
    policy_version: str
    approvers: tuple[str, ...] = ()
    unit: int | None = None  # which statement/command decided, for multi-unit operations
    approval: tuple[tuple[str, Any], ...] = ()  # the deciding rule's `approval:` settings (mode, minutes)

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "outcome": self.outcome,
            "reason": self.reason,
            "rule": self.rule,
            "policy_version": self.policy_version,
        }
        if self.approvers:
            record["approvers"] = list(self.approvers)
        if self.approval:
            record["approval"] = dict(self.approval)
        if self.unit is not None:
            record["unit"] = self.unit
        return record


def units_of(operation: Any) -> list[Mapping[str, Any]]:
    """The parts of an operation that are decided one by one."""
    if isinstance(operation, UnparseableOperation):
        return [{"unparseable": True, "reason": operation.reason}]
    protocol = operation.to_record()["protocol"]
    if protocol == "http":
        return [{**operation.attributes(), "operation": operation}]
    if protocol == "sql":
        return [statement.attributes() for statement in operation.statements]
    if protocol == "shell":
        return [{**command.attributes(), "features": operation.features} for command in operation.commands]
    return [operation.attributes()]


def describe(protocol: str, unit: Mapping[str, Any]) -> str:
    if unit.get("unparseable"):
        return f"an operation that could not be parsed ({unit.get('reason')})"
    if protocol == "http":
        return f"{unit['method']} {unit['path']}"
    if protocol == "sql":
        kind = str(unit.get("ddl_action") or unit["kind"])
        return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind} statement"
    if protocol == "k8s":
        target = "/".join(p for p in (unit.get("resource"), unit.get("subresource")) if p) or unit.get("path")
        where = f" in namespace {unit['namespace']}" if unit.get("namespace") else ""
        return f"{unit.get('verb')} {target}{where}"
    if protocol == "shell":
        return f"the command {' '.join(unit.get('argv', ()))!r}"
    return protocol


@dataclass
class PolicySet:
    """One applied policy version: its rules indexed for decisions, its settings and masking."""

    version: str
    rules: tuple[Rule, ...]
    unparseable: Effect = "deny"
    document: dict[str, Any] = field(default_factory=dict, repr=False)
    masking: MaskingPolicy = field(default_factory=lambda: MaskingPolicy(None), repr=False)
    _index: dict[tuple[str, str | None], dict[str, list[Rule]]] = field(default_factory=dict, init=False)

    timeless: bool = field(default=True, init=False)
    """No rule has a time window: a decision depends on the identity and the operation only."""

    def __post_init__(self) -> None:
        self.timeless = all(rule.window is None for rule in self.rules)
        # (connection or "*", protocol or None) -> index value -> rules, most severe first
        index: dict[tuple[str, str | None], dict[str, list[Rule]]] = defaultdict(lambda: defaultdict(list))
        for rule in sorted(self.rules, key=lambda r: -r.severity):
            for connection in rule.connections:
                bucket = index[(connection, rule.protocol)]
                for value in rule.index_values() or (ANY,):
                    bucket[value].append(rule)
        self._index = {key: dict(buckets) for key, buckets in index.items()}

    def candidates(self, connection: str, protocol: str, unit: Mapping[str, Any]) -> list[Rule]:
        attribute = ATTRIBUTE_CONDITIONS[protocol][INDEX_CONDITION[protocol]][0][0]
        raw = unit.get(attribute)
        how = ATTRIBUTE_CONDITIONS[protocol][INDEX_CONDITION[protocol]][1]
        keys = [ANY]
        values = raw if isinstance(raw, tuple | list) else (raw,) if raw is not None else ()
        keys += [v.upper() if how == "upper" else v.lower() if how == "lower" else v for v in values]
        found: list[Rule] = []
        for scope in ((connection, protocol), ("*", protocol), (connection, None), ("*", None)):
            buckets = self._index.get(scope)
            if buckets:
                for key in keys:
                    found.extend(buckets.get(key, ()))
        return found

    def decide(
        self,
        identity: Identity,
        connection: str,
        protocol: str,
        operation: Any,
        now: datetime | None = None,
    ) -> Decision:
        now = now or datetime.now(UTC)
        units = units_of(operation)
        if not units:
            units = [{"unparseable": True, "reason": "the request holds no operation"}]
        worst: Decision | None = None
        for position, unit in enumerate(units):
            decision = self._decide_unit(identity, connection, protocol, unit, now)
            if len(units) > 1:
                decision = replace(decision, unit=position)
            if worst is None or SEVERITY[decision.outcome] > SEVERITY[worst.outcome]:
                worst = decision
            if worst.outcome == "deny":
                break
        assert worst is not None
        return worst

    def _decide_unit(
        self, identity: Identity, connection: str, protocol: str, unit: Mapping[str, Any], now: datetime
    ) -> Decision:
        best: Rule | None = None
        for rule in self.candidates(connection, protocol, unit):
            if best is not None and rule.severity <= best.severity:
                continue  # candidates come most severe first per bucket; only a worse one can change it
            if rule.protocol is None and unit.get("unparseable") and rule.effect == "allow":
                continue  # only a rule that names unparseable operations may let them through
            if (rule.protocol is None or rule.matches(unit)) and rule.applies_to(identity, now):
                best = rule
                if rule.effect == "deny":
                    break
        what = describe(protocol, unit)
        if best is None:
            if unit.get("unparseable"):
                return Decision(
                    self.unparseable,
                    f"{what}; policy sends such operations to {self.unparseable.replace('_', ' ')}",
                    "settings.unparseable",
                    self.version,
                )
            return Decision(
                "deny", f"no rule allows {what} on connection {connection!r}", "default-deny", self.version
            )
        reason = (
            best.message
            or {
                "allow": f"allowed by rule {best.name!r}",
                "deny": f"{what} is denied by rule {best.name!r}",
                "require_approval": f"{what} needs approval (rule {best.name!r})",
            }[best.effect]
        )
        return Decision(best.effect, reason, best.name, self.version, best.approvers, approval=best.approval)
