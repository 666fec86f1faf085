"""Label and field selectors, as the API server parses and applies them.

Label selectors: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors
(equality ``=``/``==``/``!=``, sets ``in``/``notin``, existence ``key``/``!key``; the API server also
accepts ``>``/``<`` on integer values). Field selectors:
https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/ (``=``, ``==``,
``!=`` on the fields each resource supports; any other field is refused with
"field label not supported").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wardgate.dev.kube.store import JSON, StoreError

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_REQUIREMENT = re.compile(
    rf"^\s*(?:(?P<not>!)\s*(?P<nkey>{_KEY})"
    rf"|(?P<key>{_KEY})\s*(?:(?P<op>==|=|!=|>|<)\s*(?P<value>[-A-Za-z0-9_.]*)"
    rf"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?)\s*$"
)


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        try:  # > and <: both sides integers, else no match (apimachinery's labels.Requirement)
            left, right = int(value or ""), int(self.values[0])
        except ValueError:
            return False
        return left > right if self.operator == ">" else left < right


def _split_top_level(text: str) -> list[str]:
    """Splits on commas outside parentheses: ``a in (x,y),b`` is two requirements."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part for part in parts if part.strip()]


def parse_label_selector(text: str) -> list[Requirement]:
    requirements = []
    for part in _split_top_level(text):
        match = _REQUIREMENT.match(part)
        if match is None:
            raise StoreError(400, "BadRequest", f"unable to parse requirement: found '{part.strip()}'")
        if match["nkey"]:
            requirements.append(Requirement(match["nkey"], "!"))
        elif match["setop"]:
            values = tuple(v.strip() for v in match["values"].split(",") if v.strip())
            requirements.append(Requirement(match["key"], match["setop"], values))
        elif match["op"]:
            operator = "=" if match["op"] == "==" else match["op"]
            requirements.append(Requirement(match["key"], operator, (match["value"],)))
        else:
            requirements.append(Requirement(match["key"], "exists"))
    return requirements


def _path(obj: JSON, dotted: str) -> str:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


# Fields each resource may be selected by, beyond metadata.name and metadata.namespace (the API
# server's per-resource field label conversion functions; kubectl describe uses the events' ones).
_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "events": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "secrets": ("type",),
    "namespaces": ("status.phase",),
    "replicasets": ("status.replicas",),
}
_FIELD_REQUIREMENT = re.compile(r"^\s*(?P<field>[A-Za-z.]+)\s*(?P<op>==|=|!=)\s*(?P<value>.*?)\s*$")


def parse_field_selector(plural: str, text: str) -> Callable[[JSON], bool]:
    checks: list[tuple[str, bool, str]] = []
    for part in text.split(","):
        if not part.strip():
            continue
        match = _FIELD_REQUIREMENT.match(part)
        if match is None:
            raise StoreError(400, "BadRequest", f"invalid selector: '{text}'; can't understand '{part}'")
        field = match["field"]
        if field not in ("metadata.name", "metadata.namespace", *_FIELDS.get(plural, ())):
            raise StoreError(400, "BadRequest", f"field label not supported: {field}")
        checks.append((field, match["op"] == "!=", match["value"]))

    def matches(obj: JSON) -> bool:
        for field, negated, value in checks:
            actual = _path(obj, field)
            if field == "source" and plural == "events":
                actual = _path(obj, "source.component")
            if (actual == value) == negated:
                return False
        return True

    return matches


def object_filter(plural: str, label_selector: str, field_selector: str) -> Callable[[JSON], bool]:
    """One predicate for both selectors (an empty selector matches everything)."""
    requirements = parse_label_selector(label_selector) if label_selector else []
    fields = parse_field_selector(plural, field_selector) if field_selector else None

    def matches(obj: JSON) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        if not all(requirement.matches(labels) for requirement in requirements):
            return False
        return fields is None or fields(obj)

    return matches
