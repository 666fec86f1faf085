"""Rules: what a rule matches (operation attributes, identity, connection, time) and what it yields.

Conditions are lists of values or glob patterns (``fnmatch``); a list matches when any entry
matches, and a rule matches when all its conditions do. Attributes that hold several values
(the tables of a statement, the programs of a shell command) match when any value does.
"""

from __future__ import annotations

import fnmatch
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any, Literal

from wardgate.identity import Identity
from wardgate.operations.http import UNREADABLE

Effect = Literal["allow", "require_approval", "deny"]
SEVERITY: dict[str, int] = {"allow": 0, "require_approval": 1, "deny": 2}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PROTOCOLS = ("http", "k8s", "sql", "shell")
KIND_PROTOCOL = {"ssh": "shell"}  # connection kinds whose operations are of another protocol
# Connection kinds whose rules of another protocol are enforced too: a k8s connection's pod exec
# commands are decided by its shell rules (tcp/kubernetes/upgrades.py), as an ssh connection's are.
ALSO_ENFORCED: dict[str, tuple[str, ...]] = {"k8s": ("shell",)}
COMPARISONS = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}

# condition key -> (attribute names in the unit, how values compare)
ATTRIBUTE_CONDITIONS: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {
    "http": {
        "methods": (("method",), "upper"),
        "paths": (("path",), "lower"),  # many servers route case-insensitively: so must deny rules
        "query": (("query",), "exact"),
    },
    "k8s": {
        "verbs": (("authorized_verbs",), "lower"),  # a GET exec is also checked as "create"
        "api_groups": (("api_group",), "lower"),
        "resources": (("resource",), "lower"),
        "subresources": (("subresource",), "lower"),
        "namespaces": (("namespace",), "exact"),
        "names": (("name",), "exact"),
    },
    "sql": {
        "kinds": (("kind",), "lower"),
        "ddl_actions": (("ddl_action",), "lower"),
        "object_types": (("object_type",), "lower"),
        "tables": (("tables_read", "tables_written"), "lower"),
        "tables_read": (("tables_read",), "lower"),
        "tables_written": (("tables_written",), "lower"),
        "functions": (("functions",), "lower"),
        "features": (("features",), "lower"),
    },
    "shell": {
        "programs": (("effective_programs",), "exact"),
        "args": (("argv",), "exact"),
        "features": (("features",), "lower"),
    },
}
# The attribute each protocol's rules are indexed by (engine.py).
INDEX_CONDITION = {"http": "methods", "k8s": "verbs", "sql": "kinds", "shell": "programs"}


def _fold(value: str, how: str) -> str:
    return value.upper() if how == "upper" else value.lower() if how == "lower" else value


def _values(unit: Mapping[str, Any], names: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    for name in names:
        value = unit.get(name)
        if isinstance(value, tuple | list):
            found.extend(str(v) for v in value)
        elif value is not None:
            found.append(str(value))
    return found


@dataclass(frozen=True)
class Pattern:
    """A list of values or globs, folded once when the rule is built."""

    patterns: tuple[str, ...]
    how: str

    @classmethod
    def of(cls, raw: list[str], how: str) -> Pattern:
        return cls(tuple(_fold(p, how) for p in raw), how)

    @property
    def literals(self) -> tuple[str, ...] | None:
        """The patterns when none is a glob (the rule can then be indexed by them)."""
        return None if any(c in p for p in self.patterns for c in "*?[") else self.patterns

    def matches_any(self, values: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(_fold(v, self.how), p) for v in values for p in self.patterns)


@dataclass(frozen=True)
class IdentityMatch:
    """Which callers a rule applies to: patterns of subjects, groups, owners and owners' groups."""

    subjects: Pattern | None = None
    groups: Pattern | None = None
    owners: Pattern | None = None
    owner_groups: Pattern | None = None  # the owner's groups, as the agent registry records them

    def matches(self, identity: Identity) -> bool:
        if self.subjects and not self.subjects.matches_any([identity.subject]):
            return False
        if self.groups and not self.groups.matches_any(list(identity.groups)):
            return False
        if self.owner_groups and not self.owner_groups.matches_any(list(identity.owner_groups)):
            return False
        return not (self.owners and not self.owners.matches_any([identity.owner] if identity.owner else []))


@dataclass(frozen=True)
class TimeWindow:
    """When a rule applies: days of the week and a time of day, in a time zone."""

    days: tuple[int, ...] = tuple(range(7))
    start: time = time(0, 0)
    end: time = time(23, 59, 59, 999999)
    timezone: str = "UTC"

    def contains(self, now: datetime) -> bool:
        if self.timezone != "UTC":
            from zoneinfo import ZoneInfo

            now = now.astimezone(ZoneInfo(self.timezone))
        clock = now.time()
        if self.start <= self.end:
            return now.weekday() in self.days and self.start <= clock <= self.end
        # A window over midnight (22:00-06:00) belongs to the day it starts on.
        if clock >= self.start:
            return now.weekday() in self.days
        return clock <= self.end and (now.weekday() - 1) % 7 in self.days


@dataclass(frozen=True)
class BodyCondition:
    """A JSON body field compared with values/globs or numeric bounds (``gt``, ``gte``, ``lt``, ``lte``)."""

    field: str
    values: Pattern | None = None
    bounds: tuple[tuple[str, float], ...] = ()

    def matches(self, value: Any, fail_closed: bool) -> bool:
        if value is UNREADABLE:
            return fail_closed  # a deny/approval rule that cannot read the body applies; an allow does not
        if value is None:
            return False
        if self.values and not self.values.matches_any([json_text(value)]):
            return False
        if self.bounds:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return fail_closed
            return all(COMPARISONS[op](value, bound) for op, bound in self.bounds)
        return True


def json_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Rule:
    """One policy rule as loaded: what it matches, its effect and where it was written."""

    name: str
    effect: Effect
    source: str  # "policies/prod.yaml:14" or "pack no-destructive-ddl"
    message: str = ""
    connections: tuple[str, ...] = ("*",)
    protocol: str | None = None  # None: an identity/time rule that applies to any operation
    attributes: tuple[tuple[str, Pattern], ...] = ()
    where_missing: bool | None = None
    body: tuple[BodyCondition, ...] = ()
    unparseable: bool = False
    identity: IdentityMatch | None = None
    window: TimeWindow | None = None
    approvers: tuple[str, ...] = ()
    approval: tuple[tuple[str, Any], ...] = ()  # the rule's `approval:` (mode, minutes, quorum), as pairs
    conditions: dict[str, Any] = field(default_factory=dict, compare=False)  # as written, for explanations

    @property
    def severity(self) -> int:
        return SEVERITY[self.effect]

    def index_values(self) -> tuple[str, ...] | None:
        """Values of the protocol's index attribute this rule can only match, or None for any."""
        if self.protocol is None:
            return None
        wanted = INDEX_CONDITION[self.protocol]
        for key, pattern in self.attributes:
            if key == wanted:
                return pattern.literals
        return None

    def applies_to(self, identity: Identity, now: datetime) -> bool:
        if self.identity is not None and not self.identity.matches(identity):
            return False
        return self.window is None or self.window.contains(now)

    def matches(self, unit: Mapping[str, Any]) -> bool:
        """Whether the operation conditions hold for one unit (an HTTP request, a statement...)."""
        if bool(unit.get("unparseable")) != self.unparseable:
            return False
        if self.unparseable:
            return True
        table = ATTRIBUTE_CONDITIONS.get(self.protocol or "", {})
        for key, pattern in self.attributes:
            if not pattern.matches_any(_values(unit, table[key][0])):
                return False
        if self.where_missing is not None and (unit.get("has_where") is False) != self.where_missing:
            return False
        if self.body:
            operation = unit.get("operation")
            fail_closed = self.effect != "allow"
            for condition in self.body:
                value = operation.body_field(condition.field) if operation is not None else None
                if not condition.matches(value, fail_closed):
                    return False
        return True
