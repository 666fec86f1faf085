"""``wardgate recordings show``: one record as a timeline an auditor reads top to bottom.

Everything printed comes from agents, upstreams or databases, so it is shown inert: control
characters, escape sequences and bidirectional overrides are escaped (a recorded path must not
clear the auditor's screen or reorder what they read).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
MAX_TEXT = 2000  # characters of one SQL text, body preview or command


def inert(value: Any, limit: int = MAX_TEXT) -> str:
    """``value`` as text that cannot drive a terminal, cut at ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text) - limit} more characters)"
    return _UNSAFE.sub(
        lambda m: f"\\u{ord(m.group()):04x}" if ord(m.group()) > 0xFF else f"\\x{ord(m.group()):02x}", text
    )


def ordered(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """A record's events in the order they happened: TCP sessions by ``seq`` (batches from several
    sessions reach S3 in any order), others by time."""
    events = list(events)
    if events and all(isinstance(e.get("seq"), int) for e in events):
        return sorted(events, key=lambda e: int(e["seq"]))
    return sorted(events, key=lambda e: (str(e.get("time", "")), e.get("seq") or 0))


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _decision(event: dict[str, Any]) -> str:
    decision = event.get("decision") or {}
    if not decision:
        return ""
    outcome = {"allow": "ALLOWED", "deny": "DENIED", "require_approval": "NEEDS APPROVAL"}.get(
        str(decision.get("outcome")), str(decision.get("outcome")).upper()
    )
    parts = [outcome]
    if decision.get("rule"):
        parts.append(f"by rule {inert(decision['rule'])!s}")
    if decision.get("approval") and isinstance(decision["approval"], str):
        by = ", ".join(inert(v) for v in decision.get("approved_by") or [])
        parts.append(f"(approval {inert(decision['approval'])}{' by ' + by if by else ''})")
    return " ".join(parts)


def _statements(operation: dict[str, Any] | None) -> str:
    if not operation:
        return ""
    if operation.get("unparseable"):
        return f"(unparseable: {inert(operation['unparseable'])})"
    texts = [inert(s.get("text", "")) for s in operation.get("statements") or []]
    if texts:
        return "; ".join(texts)
    if operation.get("protocol") == "shell":
        return inert(operation.get("text", ""))
    if operation.get("cursor"):
        return f"(cursor {inert(operation['cursor'])})"
    return ""


def _http_request(event: dict[str, Any]) -> str:
    request = event.get("request") or {}
    operation = event.get("operation") or {}
    line = f"{inert(request.get('method', ''))} {inert(request.get('path', ''))}"
    if request.get("query"):
        line += "?" + inert(request["query"])
    sql = _statements(operation) if operation.get("protocol") == "sql" else ""
    if sql:
        line += f"  {sql}"
    if operation.get("protocol") == "k8s" and operation.get("verb"):
        line += f"  [k8s {inert(operation.get('verb'))} {inert(operation.get('resource') or '')}]"
        if operation.get("exec_command"):
            line += "  exec: " + inert(" ".join(map(str, operation["exec_command"])))
    return line


def _body(body: dict[str, Any] | None) -> str:
    if not body:
        return ""
    if body.get("withheld"):
        return f"{body.get('size', '?')} bytes withheld ({inert(body['withheld'])})"
    text = f"{body.get('size', 0)} bytes"
    if body.get("truncated"):
        text += " (recorded truncated)"
    return text


def _counts(counts: dict[str, Any] | None) -> str:
    return ", ".join(f"{inert(k)} {v}" for k, v in sorted((counts or {}).items()))


def describe(event: dict[str, Any]) -> tuple[str, str]:
    """(label, what happened) for one event."""
    kind = str(event.get("event", "?"))
    error = event.get("error") or {}
    if kind in ("request", "held"):
        line = f"{_decision(event)}  {_http_request(event)}"
        if kind == "held":
            approval = (event.get("response") or {}).get("approval") or {}
            line += (
                f"  -> held for approval {inert(approval.get('request_id', ''))} "
                f"({inert(approval.get('mode', ''))})"
            )
        return kind, line.strip()
    if kind == "response":
        response = event.get("response") or {}
        parts = [f"{response.get('status', '?')}", _body(response.get("body"))]
        result = response.get("result")
        if result:
            parts.append(f"{result.get('rows', 0)} row(s){' (truncated)' if result.get('truncated') else ''}")
        masked = _counts((response.get("masking") or {}).get("counts"))
        if masked:
            parts.append(f"masked: {masked}")
        total = (event.get("timings_ms") or {}).get("total")
        if total is not None:
            parts.append(f"in {total} ms")
        return kind, ", ".join(p for p in parts if p)
    if kind == "refused":
        what = _http_request(event)
        reason = (
            f"{error.get('status', '')} {inert(error.get('code', ''))}: {inert(error.get('message', ''))}"
        )
        decision = _decision(event)
        return kind, f"REFUSED {reason}  {what}" + (f"  [{decision}]" if decision else "")
    if kind == "approval":
        approval = event.get("approval") or {}
        step = inert(approval.get("step", "?"))
        details = {k: v for k, v in approval.items() if k not in ("step", "approval_id", "binding")}
        extra = ", ".join(f"{inert(k)}: {inert(v, 200)}" for k, v in details.items())
        return "approval", f"{step} ({inert(approval.get('approval_id', ''))}){'  ' + extra if extra else ''}"
    if kind == "admin":
        actor = event.get("actor") or {}
        line = (
            f"{inert(event.get('action', ''))} by {inert(actor.get('subject', '?'))} "
            f"({inert(event.get('source', ''))})"
            f"  target {inert(event.get('target') or {}, 300)}"
        )
        if event.get("reason"):
            line += f"  reason: {inert(event['reason'])}"
        line += f"  -> {event.get('status', '?')}"
        if error:
            line += f" {inert(error.get('code', ''))}: {inert(error.get('message', ''))}"
        return "admin", line
    if kind == "session_start":
        return (
            "session start",
            f"client {inert(event.get('client', ''))}, database {inert(event.get('database', ''))}",
        )
    if kind == "session_refused":
        return "session refused", f"{inert(error.get('code', ''))}: {inert(error.get('message', ''))}"
    if kind == "statement":
        label = f"statement #{event.get('seq', '?')}"
        line = f"{_decision(event)}  {_statements(event.get('operation'))}"
        if event.get("parameters"):
            line += f"  parameters {inert(event['parameters'], 300)}"
        return label, line.strip()
    if kind == "statement_refused":
        line = f"{_decision(event)}  {_statements(event.get('operation'))}"
        return (
            "refused",
            f"{line.strip()}  -> {inert(error.get('code', ''))}: {inert(error.get('message', ''))}",
        )
    if kind == "result":
        label = f"result of #{event.get('statement_seq', '?')}"
        if event.get("ran") is False:
            return label, "not run (an earlier statement failed)"
        parts = [f"{event.get('rows', 0)} row(s)", inert(" ".join(map(str, event.get("tags") or [])))]
        if event.get("duration_ms") is not None:
            parts.append(f"in {event['duration_ms']} ms")
        if event.get("masked"):
            parts.append(f"masked: {_counts(event['masked'])}")
        if error:
            parts.append(f"error {inert(error.get('code', ''))}: {inert(error.get('message', ''))}")
        return label, ", ".join(p for p in parts if p)
    if kind == "cancel":
        return "cancel", f"cancel request from {inert(event.get('client', ''))}"
    if kind == "session_end":
        return "session end", (
            f"{inert(event.get('outcome', ''))}: {inert(event.get('reason', ''))}; "
            f"{event.get('statements', 0)} statement(s) run, {event.get('refused', 0)} refused, "
            f"{event.get('duration_ms', '?')} ms"
        )
    if kind == "terminal_start":
        command = event.get("command")
        what = f"command {inert(command)}" if command else "interactive shell"
        return f"terminal {event.get('channel', '')}", (
            f"{_decision(event)}  {what}, {event.get('width', '?')}x{event.get('height', '?')}".strip()
        )
    if kind == "terminal_output":
        frames = event.get("frames") or []
        size = sum(len(str(f[2])) for f in frames if isinstance(f, list) and len(f) == 3)
        return (
            f"terminal {event.get('channel', '')}",
            f"{len(frames)} frame(s), {size} characters (see replay)",
        )
    if kind == "terminal_end":
        return f"terminal {event.get('channel', '')}", f"ended, exit status {event.get('exit_status', '?')}"
    known = {"format", "event", "record_id", "time", "started_at", "connection", "protocol", "seq"}
    return kind, inert({k: v for k, v in event.items() if k not in known}, 500)


def header(events: list[dict[str, Any]]) -> str:
    first = events[0]
    identity = next((e.get("identity") for e in events if e.get("identity")), None) or {}
    protocol = next(
        (p for e in events if (p := e.get("protocol") or (e.get("operation") or {}).get("protocol"))), None
    )
    who = inert(identity.get("subject", "unauthenticated"))
    if identity.get("owner"):
        who += f" (owner {inert(identity['owner'])})"
    if identity.get("groups"):
        who += f" groups {inert(', '.join(map(str, identity['groups'])))}"
    if first.get("event") == "admin":
        who = f"operator {inert((first.get('actor') or {}).get('subject', '?'))}"
    return (
        f"record {inert(first.get('record_id', ''))}  connection {inert(first.get('connection', ''))}  "
        f"{inert(protocol or 'admin' if first.get('event') == 'admin' else protocol or '-')}  {who}\n"
        f"started {inert(first.get('started_at', ''))}, {len(events)} event(s)"
    )


def render(events: list[dict[str, Any]]) -> str:
    """The timeline: a header, then one line per event with its time and offset from the start."""
    events = ordered(events)
    start = _when(events[0].get("started_at")) or _when(events[0].get("time"))
    lines = [header(events), ""]
    for event in events:
        when = _when(event.get("time"))
        stamp = when.strftime("%H:%M:%S.%f")[:-3] if when else "?"
        offset = f"+{(when - start).total_seconds():.3f}s" if when and start else ""
        label, text = describe(event)
        lines.append(f"{stamp} {offset:>10}  {label:<16} {text}")
    return "\n".join(lines)
