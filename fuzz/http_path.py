"""Fuzz the HTTP proxy's target pinning (``normalise_path``, ``check_query``, ``upstream_url``) and
the JSON body fields policy rules read (``HttpOperation.body_field``).

Input: the text after ``/http/{connection}`` as an agent sends it, ``path[?query]``, then, after
the first newline, the request body (read as ``application/json``).

A crash is any exception but ``BadRequest`` (400 ``bad_path``/``bad_query``), or an accepted
path or query breaking what the gateway relies on:

* the normalised path is ASCII, starts with ``/``, has no empty segment (but a trailing ``/``)
  and no dot segment, and is a fixed point (normalising it again changes nothing);
* an accepted query is returned unchanged and is ASCII;
* ``upstream_url`` of what was accepted never refuses (its origin check is defence in depth, it
  must never be what stops a request) and keeps the connection's scheme, host, port and base path;
* a body field is a JSON value, None (absent) or ``UNREADABLE``, never an exception.
"""

from __future__ import annotations

import atheris
from _harness import Finding, fuzz, text

with atheris.instrument_imports(include=["wardgate"]):
    from wardgate.errors import BadRequest
    from wardgate.operations.http import HttpOperation
    from wardgate.proxies.http import check_query, normalise_path, upstream_url

BASES = (
    ("https://api.example.com/base", "https", "api.example.com", None, b"/base"),
    ("http://up.example:8080", "http", "up.example", 8080, b""),
)


def test_one_input(data: bytes) -> None:
    line, _, body = data.partition(b"\n")
    operation = HttpOperation("POST", "/v1/refunds", "", body, "application/json")
    for field in ("amount", "items.0.price", "a.b.c.d"):
        operation.body_field(field)
    raw = text(line)
    raw_path, _, raw_query = raw.partition("?")
    try:
        path = normalise_path(raw_path)
    except BadRequest as refused:
        if refused.code != "bad_path":
            raise Finding(f"normalise_path refused with code {refused.code!r}") from None
        path = None
    try:
        query = check_query(raw_query)
    except BadRequest as refused:
        if refused.code != "bad_query":
            raise Finding(f"check_query refused with code {refused.code!r}") from None
        query = None
    if query is not None and (query != raw_query or not query.isascii()):
        raise Finding(f"check_query accepted and changed {raw_query!r} into {query!r}")
    if path is None:
        return
    if not path.isascii() or not path.startswith("/"):
        raise Finding(f"normalised path {path!r} is not an absolute ASCII path")
    segments = path.split("/")[1:]
    if "" in segments[:-1] or any(s in (".", "..") for s in segments):
        raise Finding(f"normalised path {path!r} has an empty or dot segment")
    if normalise_path(path) != path:
        raise Finding(f"normalised path {path!r} is not a fixed point: {normalise_path(path)!r}")
    for base, scheme, host, port, base_path in BASES:
        url = upstream_url(base, path, query or "")  # must not raise: BadRequest here is a finding
        if (url.scheme, url.host, url.port, url.userinfo) != (scheme, host, port, b""):
            raise Finding(f"{path!r} moved the request from {base} to {url}")
        if not url.raw_path.startswith(base_path + path.encode()):
            raise Finding(f"{path!r} left the base path: {url.raw_path!r}")


if __name__ == "__main__":
    fuzz("http_path", test_one_input)
