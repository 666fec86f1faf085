"""``settings.approval`` and a rule's ``approval:``: who approves, how many, how long, which mode."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from wardgate.errors import Forbidden

Mode = Literal["one-time", "window"]
DEFAULT_TIMEOUT_MINUTES = 60
DEFAULT_MAX_WINDOW_MINUTES = 60


@dataclass(frozen=True)
class ApprovalSettings:
    approvers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> email addresses
    quorum: int = 1
    any_deny_ends: bool = True
    timeout_minutes: int = DEFAULT_TIMEOUT_MINUTES
    max_window_minutes: int = DEFAULT_MAX_WINDOW_MINUTES

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> ApprovalSettings:
        raw = (document.get("settings") or {}).get("approval") or {}
        return cls(
            approvers={
                str(name): tuple(str(a).strip().lower() for a in emails)
                for name, emails in (raw.get("approvers") or {}).items()
            },
            quorum=int(raw.get("quorum", 1)),
            any_deny_ends=bool(raw.get("any_deny_ends", True)),
            timeout_minutes=int(raw.get("timeout_minutes", DEFAULT_TIMEOUT_MINUTES)),
            max_window_minutes=int(raw.get("max_window_minutes", DEFAULT_MAX_WINDOW_MINUTES)),
        )

    def resolve(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """Email addresses of the rule's approvers: names through ``approvers``, addresses as written.

        A name that resolves to nothing is an error (a typo must not leave a rule without approvers).
        """
        found: list[str] = []
        for name in names:
            if name in self.approvers:
                found.extend(self.approvers[name])
            elif "@" in name:
                found.append(name.strip().lower())
            else:
                raise Forbidden(
                    f"approver {name!r} is neither an email address "
                    "nor a name in settings.approval.approvers",
                    code="approval_impossible",
                )
        return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class RuleApproval:
    """What one approval of a rule grants, after the policy's caps."""

    mode: Mode
    quorum: int
    timeout_seconds: int
    window_seconds: int  # 0 for one-time

    @classmethod
    def of(cls, rule_approval: dict[str, Any], settings: ApprovalSettings) -> RuleApproval:
        mode: Mode = "window" if rule_approval.get("mode") == "window" else "one-time"
        window = 0
        if mode == "window":
            minutes = int(rule_approval.get("minutes") or settings.max_window_minutes)
            window = min(minutes, settings.max_window_minutes) * 60
        return cls(
            mode=mode,
            quorum=int(rule_approval.get("quorum") or settings.quorum),
            timeout_seconds=int(rule_approval.get("timeout_minutes") or settings.timeout_minutes) * 60,
            window_seconds=window,
        )
