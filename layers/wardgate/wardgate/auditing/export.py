"""``wardgate recordings export``: a record as JSON lines, an HTTP archive (HAR 1.2) or asciicast v2.

* ``jsonl``: the events as recorded, one per line, in order: any record.
* ``har``: HTTP exchanges (``/http``, ``/k8s`` and Data API ``/sql`` requests), so browser dev
  tools and HAR viewers open them. Bodies are what the recording holds: masked, and cut at the
  recording cap (the entry's ``comment`` says so); wardgate's own refusals are entries with the
  status and error the agent got. wardgate's decision travels in ``_wardgate`` (custom fields
  start with an underscore, as HAR 1.2 asks).
* ``asciicast``: terminal sessions (SSH, Kubernetes exec): asciicast v2, played by ``asciinema
  play`` or asciinema-player. The frames are the masked output as recorded.

Terminal events (written by the SSH and exec gateways, docs/recording-format.md#terminal-events):
``terminal_start`` (``channel``, ``width``, ``height``, ``term``, ``command``), ``terminal_output``
(``channel``, ``frames``: ``[seconds since terminal_start, "o" | "i" | "r", data]``),
``terminal_end`` (``channel``, ``exit_status``).
"""

from __future__ import annotations

import http
import json
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from typing import Any
from urllib.parse import parse_qsl

from wardgate.auditing.timeline import ordered

FORMATS = ("jsonl", "har", "asciicast")
_ROUTES = {"http": "http", "k8s": "k8s", "sql": "sql"}
FRAME_CODES = ("o", "i", "r")


class ExportError(ValueError):
    """The record cannot be exported in that format (the message says which format fits)."""


def kind_of(events: list[dict[str, Any]]) -> str:
    """What the record is: http, k8s, sql (Data API), terminal, a TCP protocol (postgres ...) or admin."""
    if any(str(e.get("event", "")).startswith("terminal_") for e in events):
        return "terminal"
    for event in events:
        if event.get("event") == "admin":
            return "admin"
        protocol = event.get("protocol") or (event.get("operation") or {}).get("protocol")
        if protocol:
            return str(protocol)
    if any(e.get("event") in ("request", "refused", "held") for e in events):
        return "http"
    return "unknown"


def to_jsonl(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e, separators=(",", ":"), ensure_ascii=False) + "\n" for e in ordered(events))


# ---------------------------------------------------------------- HAR 1.2


def _version() -> str:
    try:
        return metadata.version("wardgate")
    except metadata.PackageNotFoundError:
        return "0"


def _headers(headers: dict[str, Any] | None) -> list[dict[str, str]]:
    return [{"name": str(k), "value": str(v)} for k, v in (headers or {}).items()]


def _header(headers: dict[str, Any] | None, name: str) -> str | None:
    return next((str(v) for k, v in (headers or {}).items() if str(k).lower() == name), None)


def _status_text(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _content(
    body: dict[str, Any] | None, mime: str, fallback: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """A HAR ``content`` (or ``postData``) from a recorded body object, and notes about it."""
    notes: list[str] = []
    if not body:
        if fallback is not None:
            return {"size": len(fallback.encode()), "mimeType": mime, "text": fallback}, notes
        return {"size": 0, "mimeType": mime}, notes
    content: dict[str, Any] = {"size": int(body.get("size") or 0), "mimeType": mime}
    if body.get("withheld"):
        notes.append(f"body withheld: {body['withheld']}")
        return content, notes
    content["text"] = str(body.get("data", ""))
    if body.get("encoding") == "base64":
        content["encoding"] = "base64"
    if body.get("truncated"):
        notes.append(f"body recorded truncated: {len(content['text'])} of {content['size']} bytes")
    return content, notes


def _entry(request_event: dict[str, Any], outcome: dict[str, Any] | None) -> dict[str, Any]:
    request = request_event.get("request") or {}
    protocol = (request_event.get("operation") or {}).get("protocol")
    headers = request.get("headers") or {}
    host = _header(headers, "host") or "wardgate"
    scheme = _header(headers, "x-forwarded-proto") or "https"
    route = _ROUTES.get(str(protocol), "http")
    query = str(request.get("query") or "")
    url = f"{scheme}://{host}/{route}/{request_event.get('connection', '')}{request.get('path', '')}"
    if query:
        url += "?" + query
    request_body = request.get("body") or {}
    har_request: dict[str, Any] = {
        "method": str(request.get("method", "GET")),
        "url": url,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": _headers(headers),
        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(query, keep_blank_values=True)],
        "headersSize": -1,
        "bodySize": int(request_body.get("size") or 0),
    }
    notes: list[str] = []
    if har_request["bodySize"]:
        post, post_notes = _content(
            request_body, _header(headers, "content-type") or "application/octet-stream"
        )
        har_request["postData"] = {"mimeType": post["mimeType"], "text": post.get("text", "")}
        notes += [f"request {n}" for n in post_notes]
    source = outcome or request_event
    response = source.get("response") or {}
    error = source.get("error")
    status = int(response.get("status") or 0)
    response_headers = response.get("headers") or {}
    mime = _header(response_headers, "content-type") or ("application/json" if error else "")
    refusal = (
        json.dumps({"error": error}, separators=(",", ":")) if error and not response.get("body") else None
    )
    content, content_notes = _content(response.get("body"), mime, refusal)
    notes += [f"response {n}" for n in content_notes]
    if outcome is None:
        notes.append("no response was recorded (the record may be incomplete)")
    if refusal is not None:
        notes.append("wardgate answered this request itself; nothing was forwarded")
    timings = source.get("timings_ms") or {}
    send = float(timings.get("guard") or 0.0)
    wait = float(timings.get("upstream") or timings.get("backend") or 0.0)
    receive = float(timings.get("masking") or 0.0)
    if not wait and timings.get("total"):
        wait = max(float(timings["total"]) - send - receive, 0.0)
    entry: dict[str, Any] = {
        "startedDateTime": str(request_event.get("started_at") or request_event.get("time")),
        "time": round(send + wait + receive, 3),
        "request": har_request,
        "response": {
            "status": status,
            "statusText": _status_text(status),
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": _headers(response_headers),
            "content": content,
            "redirectURL": _header(response_headers, "location") or "",
            "headersSize": -1,
            "bodySize": int(content.get("size") or 0),
        },
        "cache": {},
        "timings": {"send": round(send, 3), "wait": round(wait, 3), "receive": round(receive, 3)},
        "_wardgate": {
            "record_id": request_event.get("record_id"),
            "event": request_event.get("event"),
            "decision": request_event.get("decision"),
            "identity": request_event.get("identity"),
            "error": error,
            "masking": response.get("masking"),
        },
    }
    if notes:
        entry["comment"] = "; ".join(notes)
    return entry


def to_har(events: list[dict[str, Any]]) -> dict[str, Any]:
    """One entry per exchange of the record (a held request that later ran has two)."""
    kind = kind_of(events)
    if kind not in _ROUTES:
        raise ExportError(
            f"record {events[0].get('record_id')} is a {kind} record: HAR holds HTTP exchanges "
            "(http, k8s and Data API requests); use --format jsonl"
            + (" or --format asciicast" if kind == "terminal" else "")
        )
    entries = []
    pending: dict[str, Any] | None = None
    for event in ordered(events):
        kind_of_event = event.get("event")
        if kind_of_event == "request":
            pending = event
        elif kind_of_event == "response" and pending is not None:
            entries.append(_entry(pending, event))
            pending = None
        elif kind_of_event in ("refused", "held"):
            entries.append(_entry(pending or event, event))
            pending = None
    if pending is not None:
        entries.append(_entry(pending, None))
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "wardgate", "version": _version()},
            "entries": entries,
            "comment": f"wardgate record {events[0].get('record_id')}: bodies and values as recorded, masked",
        }
    }


# ---------------------------------------------------------------- asciicast v2


@dataclass
class Terminal:
    channel: Any
    width: int
    height: int
    started: datetime | None
    command: str | None
    term: str | None
    frames: list[tuple[float, str, str]]
    exit_status: Any = None


def terminals(events: list[dict[str, Any]]) -> list[Terminal]:
    """The record's terminal channels, each with its frames in order."""
    found: dict[Any, Terminal] = {}
    for event in ordered(events):
        kind = event.get("event")
        channel = event.get("channel", 0)
        if kind == "terminal_start":
            found[channel] = Terminal(
                channel,
                _dimension(event.get("width"), 80),
                _dimension(event.get("height"), 24),
                _parse_time(event.get("time")),
                event.get("command"),
                event.get("term"),
                [],
            )
        elif kind == "terminal_output" and channel in found:
            for frame in event.get("frames") or []:
                if (
                    isinstance(frame, list)
                    and len(frame) == 3
                    and isinstance(frame[0], int | float)
                    and frame[1] in FRAME_CODES
                    and isinstance(frame[2], str)
                ):
                    found[channel].frames.append((float(frame[0]), frame[1], frame[2]))
        elif kind == "terminal_end" and channel in found:
            found[channel].exit_status = event.get("exit_status")
    for terminal in found.values():
        terminal.frames.sort(key=lambda f: f[0])
    return list(found.values())


def _dimension(value: Any, default: int) -> int:
    return value if isinstance(value, int) and 0 < value < 10_000 else default


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def pick_terminal(events: list[dict[str, Any]], channel: str | None = None) -> Terminal:
    found = terminals(events)
    if not found:
        raise ExportError(
            f"record {events[0].get('record_id')} is a {kind_of(events)} record, not a terminal session: "
            "asciicast and replay need SSH or exec output; use --format jsonl"
            + (" or --format har" if kind_of(events) in _ROUTES else "")
        )
    if channel is None:
        return found[0]
    for terminal in found:
        if str(terminal.channel) == channel:
            return terminal
    raise ExportError(
        f"no terminal channel {channel!r} in this record: it has {', '.join(str(t.channel) for t in found)}"
    )


def to_asciicast(events: list[dict[str, Any]], channel: str | None = None) -> str:
    terminal = pick_terminal(events, channel)
    header: dict[str, Any] = {"version": 2, "width": terminal.width, "height": terminal.height}
    if terminal.started:
        header["timestamp"] = int(terminal.started.timestamp())
    header["title"] = f"wardgate record {events[0].get('record_id')}" + (
        f": {terminal.command}" if terminal.command else ""
    )
    if terminal.term:
        header["env"] = {"TERM": str(terminal.term)}
    lines = [json.dumps(header, ensure_ascii=False)]
    lines += [json.dumps([round(t, 6), code, data], ensure_ascii=False) for t, code, data in terminal.frames]
    return "\n".join(lines) + "\n"


def export(events: list[dict[str, Any]], fmt: str, channel: str | None = None) -> str:
    if fmt == "jsonl":
        return to_jsonl(events)
    if fmt == "har":
        return json.dumps(to_har(events), indent=2, ensure_ascii=False) + "\n"
    if fmt == "asciicast":
        return to_asciicast(events, channel)
    raise ExportError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
