"""HTTP operations: method, normalised path, query, and JSON body fields for rules that ask for them."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

MAX_BODY_FOR_FIELDS = 256 * 1024  # bodies larger than this are not parsed for field rules
UNREADABLE = object()  # a body that rules cannot read (not JSON, too large): see policy.rules


@dataclass(frozen=True)
class HttpOperation:
    """An HTTP request as policy sees it: the method, the path as forwarded, the query, the body."""

    method: str
    path: str  # decoded and normalised exactly as it is forwarded (proxies.http.normalise_path)
    query: str
    body: bytes = field(default=b"", repr=False)
    content_type: str = ""

    def attributes(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.match_path, "query": self.query}

    @functools.cached_property
    def match_path(self) -> str:
        """The path rules match: without ``;parameters`` in segments, which many servers ignore
        (``/admin;x=1/keys`` is ``/admin/keys`` to Tomcat or Spring), so they cannot dodge a rule."""
        if ";" not in self.path:
            return self.path
        return "/".join(segment.split(";", 1)[0] for segment in self.path.split("/"))

    def body_field(self, dotted: str) -> Any:
        """The value at ``dotted`` (``a.b.0.c``) in a JSON body; None if absent, UNREADABLE if not JSON."""
        document = self._json_body
        if document is UNREADABLE:
            return UNREADABLE
        value: Any = document
        for part in dotted.split("."):
            if isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return None
        return value

    @functools.cached_property
    def _json_body(self) -> Any:
        if not self.body:
            return {}
        if len(self.body) > MAX_BODY_FOR_FIELDS or "json" not in self.content_type.lower():
            return UNREADABLE
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than json.loads goes
            return UNREADABLE

    def to_record(self) -> dict[str, Any]:
        return {"protocol": "http", "method": self.method, "path": self.path, "query": self.query}
