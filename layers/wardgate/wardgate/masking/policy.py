"""Masking as policy says: ``settings.masking`` of the policy document, turned into profiles.

The shape (docs/policy.md has the full reference)::

    settings:
      masking:
        default:                 # every connection, unless it has its own profile
          detectors: [card, email, ...]  # default: every built-in detector; [] = none
          custom:                # policy-defined detectors
            - {name: employee_id, regex: "EMP-[0-9]{6}"}
            - {name: codenames, words: [bluebird, nightjar]}
          fields: ["$..password"]   # JSON paths always masked whole
          columns: [ssn]            # SQL columns always masked whole
          kubernetes_secrets: mask  # or reveal
          on_limit: refuse          # or truncate
          binary: refuse            # or pass
          max_bytes: 4194304
        connections:
          billing: {fields: ["$..iban"]}  # keys given here replace the default's
        exemptions:
          - groups: [pii-readers]         # callers in any of these groups...
            connections: [billing]        # ...on these connections (default: all)...
            reveal: [email, phone]        # ...see these: detector names, fields, kubernetes_secrets

No ``settings.masking`` at all means the default profile: every built-in detector, Kubernetes
Secret values masked, over-limit and binary bodies refused. Masking is never off by accident.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from wardgate.masking.detectors import BUILTIN_DETECTORS, Detector
from wardgate.masking.engine import MaskingProfile, compile_path

PROFILE_KEYS = frozenset(
    (
        "detectors",
        "custom",
        "fields",
        "columns",
        "kubernetes_secrets",
        "on_limit",
        "binary",
        "max_bytes",
        "max_depth",
        "max_string",
    )
)
REVEALABLE_EXTRAS = ("fields", "kubernetes_secrets")
"""What an exemption may reveal besides detectors: field/column rules, Kubernetes Secret values."""

Path = tuple[str | int, ...]


class MaskingSettingsError(ValueError):
    """``settings.masking`` is invalid; ``problems`` lists (path under settings.masking, message)."""

    def __init__(self, problems: list[tuple[Path, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


@dataclass(frozen=True)
class AppliedMasking:
    """The profile one caller gets on one connection, and where it came from (for the record)."""

    profile: MaskingProfile
    source: str  # "default" or "connections.<name>"
    revealed: tuple[str, ...] = ()  # what exemptions let this caller see

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"profile": self.source}
        if self.revealed:
            record["revealed"] = list(self.revealed)
        return record


@dataclass(frozen=True)
class _Exemption:
    """A masking exemption: the detectors it reveals, for which groups and connections."""

    groups: frozenset[str]
    connections: frozenset[str]
    reveal: frozenset[str]

    def applies(self, connection: str, groups: Iterable[str]) -> bool:
        return ("*" in self.connections or connection in self.connections) and not self.groups.isdisjoint(
            groups
        )


class MaskingPolicy:
    """Profiles per connection and exemptions per group, checked once when the policy is built."""

    def __init__(self, raw: dict[str, Any] | None) -> None:
        raw = raw or {}
        problems: list[tuple[Path, str]] = []
        self._specs: dict[str, dict[str, Any]] = {}
        default = raw.get("default") or {}
        self._specs["default"] = default
        for name, spec in (raw.get("connections") or {}).items():
            self._specs[f"connections.{name}"] = {**default, **(spec or {})}
        self._detectors: dict[str, tuple[Detector, ...]] = {}
        for source, spec in self._specs.items():
            if source == "default":
                where: Path = ("default",)
                own = spec
            else:
                where = ("connections", source.split(".", 1)[1])
                own = raw["connections"][where[1]] or {}
            found: list[tuple[Path, str]] = []
            self._detectors[source] = _detectors(spec, where, found)
            _check_limits(spec, where, found)
            _check_fields(spec, where, found)
            # A problem inherited from the default is reported once, where it is written.
            problems += [p for p in found if p[0][len(where)] in own]
        self._exemptions: list[_Exemption] = []
        known = set(BUILTIN_DETECTORS) | set(REVEALABLE_EXTRAS)
        for detectors in self._detectors.values():
            known |= {d.name for d in detectors}
        for i, item in enumerate(raw.get("exemptions") or []):
            unknown = sorted(set(item.get("reveal") or ()) - known)
            if unknown:
                problems.append(
                    (
                        ("exemptions", i, "reveal"),
                        f"exemption reveals unknown {unknown}; known: {sorted(known)}",
                    )
                )
            self._exemptions.append(
                _Exemption(
                    groups=frozenset(item.get("groups") or ()),
                    connections=frozenset(item.get("connections") or ("*",)),
                    reveal=frozenset(item.get("reveal") or ()),
                )
            )
        if problems:
            raise MaskingSettingsError(problems)
        self._cache: dict[tuple[str, frozenset[str]], AppliedMasking] = {}

    @cached_property
    def connections(self) -> tuple[str, ...]:
        """The connections with their own profile (checked against known connections by the caller)."""
        return tuple(s.split(".", 1)[1] for s in self._specs if s != "default")

    def for_caller(self, connection: str, groups: Iterable[str]) -> AppliedMasking:
        """The profile for a caller in ``groups`` on ``connection`` (cached: profiles are immutable)."""
        groups = tuple(groups)
        reveal = frozenset().union(*(e.reveal for e in self._exemptions if e.applies(connection, groups)))
        source = f"connections.{connection}" if f"connections.{connection}" in self._specs else "default"
        key = (source, reveal)
        applied = self._cache.get(key)
        if applied is None:
            applied = self._cache[key] = self._build(source, reveal)
        return applied

    def _build(self, source: str, reveal: frozenset[str]) -> AppliedMasking:
        spec = self._specs[source]
        fields_revealed = "fields" in reveal
        profile = MaskingProfile(
            detectors=self._detectors[source],
            exempt=frozenset(reveal - set(REVEALABLE_EXTRAS)),
            fields=() if fields_revealed else tuple(spec.get("fields") or ()),
            columns=frozenset() if fields_revealed else frozenset(spec.get("columns") or ()),
            kubernetes_secrets=spec.get("kubernetes_secrets", "mask") == "mask"
            and "kubernetes_secrets" not in reveal,
            on_limit=spec.get("on_limit", "refuse"),
            allow_binary=spec.get("binary", "refuse") == "pass",
            **{k: int(spec[k]) for k in ("max_bytes", "max_depth", "max_string") if k in spec},
        )
        return AppliedMasking(profile, source, tuple(sorted(reveal)))


def _detectors(spec: dict[str, Any], where: Path, problems: list[tuple[Path, str]]) -> tuple[Detector, ...]:
    names = spec.get("detectors")
    chosen: list[Detector] = []
    for j, name in enumerate(BUILTIN_DETECTORS if names is None else names):
        if name in BUILTIN_DETECTORS:
            chosen.append(BUILTIN_DETECTORS[name])
        else:
            problems.append(
                (
                    (*where, "detectors", j),
                    f"unknown detector {name!r}; built-in: {', '.join(BUILTIN_DETECTORS)}",
                )
            )
    for j, custom in enumerate(spec.get("custom") or ()):
        name = custom.get("name", "")
        at: Path = (*where, "custom", j)
        if name in BUILTIN_DETECTORS or name in REVEALABLE_EXTRAS or name in {d.name for d in chosen}:
            problems.append(((*at, "name"), f"detector name {name!r} is already taken"))
            continue
        if ("regex" in custom) == ("words" in custom):
            problems.append((at, f"custom detector {name!r} needs exactly one of regex or words"))
            continue
        try:
            if "regex" in custom:
                flags = re.IGNORECASE if custom.get("case_sensitive") is False else 0
                chosen.append(Detector.from_regex(name, custom["regex"], flags=flags))
            else:
                chosen.append(
                    Detector.from_words(
                        name, custom["words"], case_insensitive=not custom.get("case_sensitive")
                    )
                )
        except (re.error, ValueError) as exc:
            problems.append((at, f"custom detector {name!r}: {exc}"))
    return tuple(chosen)


def _check_fields(spec: dict[str, Any], where: Path, problems: list[tuple[Path, str]]) -> None:
    """Field rules are compiled when the policy is built: a bad path is refused by ``policy
    validate``/``apply``, never found by the first request."""
    for i, path in enumerate(spec.get("fields") or ()):
        try:
            compile_path(path)
        except ValueError as exc:
            problems.append(((*where, "fields", i), f"field rule {path!r} is not a JSON path: {exc}"))


def _check_limits(spec: dict[str, Any], where: Path, problems: list[tuple[Path, str]]) -> None:
    for key in ("max_bytes", "max_depth", "max_string"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            problems.append(((*where, key), f"{key} must be a positive integer"))
