"""Policy documents: the merged content of the policy files, checked and built into a ``PolicySet``.

``build`` does the checks a schema cannot: unique names, rules and packs naming connections
that exist and whose protocol they can enforce, valid times and timezones. Every problem names
where it is (a path into the document that ``files.py`` turns into file and line).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import time
from typing import Any

from wardgate.connections import Connection
from wardgate.masking.policy import MaskingPolicy, MaskingSettingsError
from wardgate.policy.engine import PolicySet
from wardgate.policy.packs import PACKS, expand
from wardgate.policy.rules import (
    ALSO_ENFORCED,
    ATTRIBUTE_CONDITIONS,
    DAYS,
    KIND_PROTOCOL,
    BodyCondition,
    IdentityMatch,
    Pattern,
    Rule,
    TimeWindow,
)

Path = tuple[str | int, ...]
DOCUMENT_VERSION = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a policy document, where it is (a path into the document) and what."""

    path: Path
    message: str


class PolicyError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


def version_of(document: dict[str, Any]) -> str:
    """A content hash: the same policy always has the same version id."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return "p-" + hashlib.sha256(canonical).hexdigest()[:12]


def connections_of(document: dict[str, Any]) -> list[Connection]:
    return [Connection.from_dict(raw) for raw in document.get("connections", [])]


def build(
    document: dict[str, Any], known_connections: dict[str, str] | None = None, strict: bool = True
) -> PolicySet:
    """Build the policy set; raise PolicyError listing every problem found.

    ``known_connections`` (name -> kind) adds connections that exist outside the document.
    ``strict=False`` skips the checks against connections (done when the policy was applied).
    """
    problems: list[Problem] = []
    kinds = dict(known_connections or {})
    declared: set[str] = set()
    for i, raw in enumerate(document.get("connections", [])):
        try:
            connection = Connection.from_dict(raw)
        except (KeyError, ValueError, TypeError) as exc:
            problems.append(Problem(("connections", i), f"connection is invalid: {exc}"))
            continue
        if connection.name in declared:
            problems.append(
                Problem(("connections", i, "name"), f"connection {connection.name!r} is declared twice")
            )
        declared.add(connection.name)
        kinds[connection.name] = connection.kind

    rules: list[Rule] = []
    names: set[str] = set()
    for i, raw in enumerate(document.get("rules", [])):
        rule = _rule(raw, ("rules", i), f"rule {raw.get('name')!r}", kinds if strict else None, problems)
        if rule is not None:
            if rule.name in names:
                problems.append(Problem(("rules", i, "name"), f"rule name {rule.name!r} is used twice"))
            names.add(rule.name)
            rules.append(rule)
    for i, pack in enumerate(document.get("packs", [])):
        if pack.get("name") not in PACKS:
            problems.append(
                Problem(("packs", i, "name"), f"unknown pack {pack.get('name')!r}; known: {sorted(PACKS)}")
            )
            continue
        accepted = PACKS[pack["name"]][2]
        for param in pack.get("params") or {}:
            if param not in accepted:
                problems.append(
                    Problem(("packs", i, "params", param), f"pack {pack['name']!r} takes no {param!r}")
                )
        for raw in expand(pack):
            rule = _rule(raw, ("packs", i), f"pack {pack['name']!r}", kinds if strict else None, problems)
            if rule is not None:
                rules.append(rule)
    settings = document.get("settings") or {}
    masking = _masking(settings.get("masking"), kinds if strict else None, problems)
    named = (settings.get("approval") or {}).get("approvers")
    if named is not None:  # approver names must resolve (addresses contain "@"): no rule without approvers
        for rule in rules:
            for name in rule.approvers:
                if "@" not in name and name not in named:
                    problems.append(
                        Problem(
                            ("settings", "approval", "approvers"),
                            f"rule {rule.name!r} names approver {name!r}, which is neither an email "
                            "address nor a name in settings.approval.approvers",
                        )
                    )
    if problems or masking is None:
        raise PolicyError(problems)
    return PolicySet(
        version=version_of(document),
        rules=tuple(rules),
        unparseable=settings.get("unparseable", "deny"),
        document=document,
        masking=masking,
    )


def _masking(
    raw: dict[str, Any] | None, kinds: dict[str, str] | None, problems: list[Problem]
) -> MaskingPolicy | None:
    where: Path = ("settings", "masking")
    masking: MaskingPolicy | None = None
    try:
        masking = MaskingPolicy(raw)
    except MaskingSettingsError as exc:
        problems.extend(Problem((*where, *path), f"masking: {message}") for path, message in exc.problems)
    if kinds is not None:
        named: list[tuple[Path, str]] = [
            (("connections", name), name) for name in (raw or {}).get("connections") or {}
        ]
        for i, item in enumerate((raw or {}).get("exemptions") or []):
            named += [
                (("exemptions", i, "connections", j), n) for j, n in enumerate(item.get("connections") or ())
            ]
        for path, name in named:
            if name != "*" and name not in kinds:
                problems.append(Problem((*where, *path), f"masking names unknown connection {name!r}"))
    return masking


def _rule(
    raw: dict[str, Any], where: Path, source: str, kinds: dict[str, str] | None, problems: list[Problem]
) -> Rule | None:
    start = len(problems)
    match: dict[str, Any] = raw.get("match") or {}
    protocols = [p for p in match if p in ATTRIBUTE_CONDITIONS]
    if len(protocols) > 1:
        problems.append(
            Problem((*where, "match"), f"{source} matches several protocols {protocols}; use one rule each")
        )
        return None
    protocol = protocols[0] if protocols else None
    conditions: dict[str, Any] = match.get(protocol, {}) if protocol else {}
    connections = tuple(raw.get("connections") or ["*"])
    for j, name in enumerate(connections):
        if name == "*" or kinds is None:
            continue
        if name not in kinds:
            problems.append(
                Problem((*where, "connections", j), f"{source} names unknown connection {name!r}")
            )
        elif protocol and protocol not in (
            KIND_PROTOCOL.get(kinds[name], kinds[name]),
            *ALSO_ENFORCED.get(kinds[name], ()),
        ):
            problems.append(
                Problem(
                    (*where, "connections", j),
                    f"{source} matches {protocol} operations but connection {name!r} is a {kinds[name]} "
                    "connection: it could never be enforced there",
                )
            )
    attributes = tuple(
        (key, Pattern.of(list(values), ATTRIBUTE_CONDITIONS[protocol][key][1]))
        for key, values in conditions.items()
        if protocol and key in ATTRIBUTE_CONDITIONS[protocol]
    )
    where_missing = conditions.get("where_missing")
    if where_missing is not None and protocol != "sql":
        problems.append(Problem((*where, "match"), f"{source}: where_missing applies to sql only"))
    body = tuple(_body(field, spec) for field, spec in (conditions.get("body") or {}).items())
    identity = raw.get("identity")
    window = _window(raw.get("time"), (*where, "time"), source, problems)
    if raw.get("effect") == "require_approval" and not raw.get("approvers"):
        problems.append(Problem((*where, "approvers"), f"{source} requires approval but names no approvers"))
    if len(problems) > start:
        return None
    return Rule(
        name=str(raw.get("name") or source),
        effect=raw["effect"],
        source=source,
        message=raw.get("message", ""),
        connections=connections,
        protocol=protocol,
        attributes=attributes,
        where_missing=where_missing,
        body=body,
        unparseable=bool(conditions.get("unparseable")),
        identity=IdentityMatch(
            subjects=Pattern.of(identity["subjects"], "exact") if identity.get("subjects") else None,
            groups=Pattern.of(identity["groups"], "exact") if identity.get("groups") else None,
            owners=Pattern.of(identity["owners"], "exact") if identity.get("owners") else None,
            owner_groups=Pattern.of(identity["owner_groups"], "exact")
            if identity.get("owner_groups")
            else None,
        )
        if identity
        else None,
        window=window,
        approvers=tuple(raw.get("approvers") or ()),
        approval=tuple(sorted((raw.get("approval") or {}).items())),
        conditions=conditions,
    )


def _body(field: str, spec: Any) -> BodyCondition:
    if isinstance(spec, dict):
        return BodyCondition(field, bounds=tuple((op, float(bound)) for op, bound in spec.items()))
    return BodyCondition(field, values=Pattern.of([str(v) for v in spec], "exact"))


def _window(
    raw: dict[str, Any] | None, where: Path, source: str, problems: list[Problem]
) -> TimeWindow | None:
    if not raw:
        return None
    try:
        start = time.fromisoformat(raw.get("start", "00:00"))
        end = time.fromisoformat(raw.get("end", "23:59:59.999999"))
    except ValueError as exc:
        problems.append(Problem(where, f"{source}: time window start/end must be HH:MM ({exc})"))
        return None
    timezone = raw.get("timezone", "UTC")
    if timezone != "UTC":
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(Problem((*where, "timezone"), f"{source}: unknown timezone {timezone!r}"))
            return None
    days = tuple(DAYS.index(d) for d in raw.get("days", DAYS))
    return TimeWindow(days=days, start=start, end=end, timezone=timezone)
