"""The replay page's HTML: server-rendered, every recorded value escaped, no inline script or style.

Recorded values come from agents, upstreams and databases: they are made inert first
(``timeline.inert``: control characters, escape sequences and bidirectional overrides shown as
escapes) and then HTML-escaped. The terminal player gets its recording in a ``data-`` attribute
(escaped) and is started by ``static/audit.js``; the CSP allows scripts and styles from the page's
own origin only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

from wardgate.auditing import questions
from wardgate.auditing.export import terminals
from wardgate.auditing.query import QueryResult
from wardgate.auditing.replay import defang
from wardgate.auditing.timeline import describe, header, inert
from wardgate.auditing.web.records import IntegrityStatus, RecordEvents

PAGE = "/audit"
STATIC = "/audit/static"
CELL = 160  # characters of one table cell in the search results


def _text(value: Any, limit: int = CELL) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return escape(inert(str(value), limit))


def document(
    title: str, body: str, who: str | None = None, signout_token: str | None = None, player: bool = False
) -> str:
    """A whole page; ``player``: with asciinema-player's script and stylesheet (record pages with a
    terminal)."""
    bar = ""
    if who is not None:
        signout = ""
        if signout_token is not None:
            signout = (
                f'<form method="post" action="{PAGE}/signout" class="signout">'
                f'<input type="hidden" name="csrf" value="{escape(signout_token)}">'
                '<button type="submit" id="sign-out">Sign out</button></form>'
            )
        bar = f'<div class="who">Signed in as <b id="who">{escape(who)}</b>{signout}</div>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)}</title>"
        + (f'<link rel="stylesheet" href="{STATIC}/asciinema-player.css">' if player else "")
        + f'<link rel="stylesheet" href="{STATIC}/audit.css"></head>'
        f'<body><header><a href="{PAGE}" class="home">wardgate recordings</a>{bar}</header>'
        f"<main><h1>{escape(title)}</h1>{body}</main>"
        + (f'<script src="{STATIC}/asciinema-player.min.js"></script>' if player else "")
        + f'<script src="{STATIC}/audit.js"></script></body></html>'
    )


def message(title: str, text: str, code: str, who: str | None = None, link: str = "") -> str:
    extra = f'<p><a href="{escape(link)}" id="next">{"Sign in again" if "signin" in link else "Back"}</a></p>'
    return document(
        title, f'<p id="error" data-code="{escape(code)}">{escape(text)}</p>{extra if link else ""}', who
    )


def not_an_auditor(subject: str, group: str, signout_token: str) -> str:
    body = (
        f'<p id="error" data-code="not_an_auditor">You are signed in as <b>{escape(subject)}</b>, '
        f"but not as a member of the auditors' group <code>{escape(group)}</code>: the recordings are "
        "shown to its members only. Ask whoever manages that group at your identity provider, then "
        "sign out and in again.</p>"
    )
    return document("Not an auditor", body, subject, signout_token)


# ------------------------------------------------------------------------------------------ search


def _field(name: str, label: str, value: str, placeholder: str = "") -> str:
    hint = f' placeholder="{escape(placeholder)}"' if placeholder else ""
    return f'<label>{escape(label)}<input name="{name}" id="f-{name}" value="{escape(value)}"{hint}></label>'


def _select(name: str, label: str, value: str, choices: Iterable[str]) -> str:
    options = ['<option value="">any</option>'] + [
        f'<option value="{escape(c)}"{" selected" if c == value else ""}>{escape(c)}</option>'
        for c in choices
    ]
    return f'<label>{escape(label)}<select name="{name}" id="f-{name}">{"".join(options)}</select></label>'


def search_form(values: dict[str, str]) -> str:
    when = "24h, 7d, 2026-03-01 or 2026-03-01T12:00Z"
    return (
        f'<form method="get" action="{PAGE}" id="filters" class="filters">'
        + _field("since", "Since", values.get("since", ""), f"{when} (default 24h)")
        + _field("until", "Until", values.get("until", ""), "now")
        + _field("subject", "Subject (agent)", values.get("subject", ""))
        + _field("owner", "Owner", values.get("owner", ""))
        + _field("connection", "Connection", values.get("connection", ""))
        + _select("outcome", "Outcome", values.get("outcome", ""), questions.OUTCOMES)
        + _select("protocol", "Protocol", values.get("protocol", ""), questions.PROTOCOLS)
        + '<button type="submit" id="search">Search</button></form>'
    )


def search_page(
    values: dict[str, str],
    result: QueryResult | None,
    who: str,
    signout_token: str,
    limit: int,
    error: str = "",
    since_shown: str = "",
) -> str:
    body = search_form(values)
    if error:
        body += f'<p id="error" data-code="bad_filter">{escape(error)}</p>'
    if result is not None:
        columns = result.columns
        head = "".join(f"<th>{escape(c)}</th>" for c in columns)
        rows = []
        for row in result.rows:
            cells = []
            for column, value in zip(columns, row, strict=True):
                if column == "record_id" and isinstance(value, str):
                    link = f"{PAGE}/records/{quote(value, safe='')}"
                    cells.append(f'<td><a class="record" href="{link}">{escape(value)}</a></td>')
                else:
                    cells.append(f'<td class="{escape(column)}">{_text(value)}</td>')
            rows.append(f"<tr>{''.join(cells)}</tr>")
        count = len(result.rows)
        note = f"{count} record(s), newest first"
        if count >= limit or result.truncated:
            note += f" (the newest {count} only: narrow the filters)"
        if since_shown:
            note += f", since {escape(since_shown)}"
        body += (
            f'<p class="note" id="count">{note}. Open a record for its timeline, replay and integrity.</p>'
        )
        body += f'<table id="records"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    return document("Recordings", body, who, signout_token)


# ------------------------------------------------------------------------------------------ a record


def _integrity(status: IntegrityStatus) -> str:
    problems = "".join(
        f'<li data-kind="{escape(kind)}"><b>{escape(kind)}</b>: {escape(inert(text, 600))}</li>'
        for kind, text in status.problems
    )
    notes = "".join(f"<li>{escape(note)}</li>" for note in status.notes)
    key = f'<p class="note">Manifests checked with key {escape(status.key_id)}.</p>' if status.key_id else ""
    return (
        f'<section id="integrity" class="integrity {escape(status.state)}" '
        f'data-state="{escape(status.state)}">'
        f"<h2>Integrity: {escape(status.state)}</h2><p>{escape(status.summary)}</p>"
        + (f'<ul class="problems">{problems}</ul>' if problems else "")
        + (f'<ul class="notes">{notes}</ul>' if notes else "")
        + key
        + "</section>"
    )


def asciicast_of(record_id: str, terminal: Any) -> str:
    """asciicast v2 of one terminal, its output defanged: the player is a terminal emulator too."""
    head: dict[str, Any] = {"version": 2, "width": terminal.width, "height": terminal.height}
    if terminal.started:
        head["timestamp"] = int(terminal.started.timestamp())
    head["title"] = f"wardgate record {record_id}"
    lines = [json.dumps(head)]
    for at, code, data in terminal.frames:
        if code == "o":
            lines.append(json.dumps([round(at, 6), "o", defang(data)]))
        elif code == "r":
            lines.append(json.dumps([round(at, 6), "r", data]))
    return "\n".join(lines) + "\n"


def _terminals(record_id: str, shown: RecordEvents) -> str:
    found = terminals(shown.events)
    if not found:
        return ""
    parts = ['<section id="terminals"><h2>Terminal replay</h2>']
    for terminal in found:
        what = f"command {inert(terminal.command)}" if terminal.command else "interactive shell"
        parts.append(
            f"<h3>Channel {escape(str(terminal.channel))}: {escape(what)}, "
            f"{terminal.width}x{terminal.height}, exit status {escape(str(terminal.exit_status))}</h3>"
            f'<div class="player" data-channel="{escape(str(terminal.channel))}" '
            f'data-asciicast="{escape(asciicast_of(record_id, terminal))}"></div>'
        )
    parts.append(
        '<p class="note">Played from the recorded (masked) output. Escape sequences that act on a '
        "terminal rather than draw on it (titles, clipboard, queries) are left out; "
        "<code>wardgate recordings export --format asciicast</code> has the frames as recorded.</p></section>"
    )
    return "".join(parts)


def _timeline(shown: RecordEvents) -> str:
    events = shown.events
    start = _start(events)
    rows = []
    for event in events:
        when = _parse(event.get("time"))
        stamp = when.strftime("%H:%M:%S.%f")[:-3] if when else "?"
        offset = f"+{(when - start).total_seconds():.3f}s" if when and start else ""
        label, text = describe(event)
        kind = escape(str(event.get("event", "")))
        rows.append(
            f'<tr class="event" data-event="{kind}"><td class="time">{escape(stamp)}</td>'
            f'<td class="offset">{escape(offset)}</td><td class="label">{escape(label)}</td>'
            f'<td class="what">{escape(text)}</td></tr>'
        )
    notes = []
    if shown.duplicates:
        notes.append(f"{shown.duplicates} line(s) delivered twice are shown once")
    if shown.truncated:
        notes.append(f"the first {len(events)} events only")
    note = f'<p class="note">{escape("; ".join(notes))}.</p>' if notes else ""
    return (
        '<section id="timeline"><h2>Timeline</h2>'
        "<table><thead><tr><th>time (UTC)</th><th>offset</th><th>event</th><th>what happened</th>"
        "</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{note}</section>"
    )


def _parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _start(events: list[dict[str, Any]]) -> datetime | None:
    return _parse(events[0].get("started_at")) or _parse(events[0].get("time"))


def record_page(
    record_id: str, shown: RecordEvents, status: IntegrityStatus, who: str, signout_token: str
) -> str:
    players = _terminals(record_id, shown)
    body = (
        f'<p><a href="{PAGE}" id="back">Back to the search</a></p>'
        + _integrity(status)
        + f'<pre id="summary">{escape(header(shown.events))}</pre>'
        + players
        + _timeline(shown)
    )
    return document(f"Record {record_id}", body, who, signout_token, player=bool(players))
