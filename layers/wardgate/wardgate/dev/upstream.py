"""The demo upstream: a small echo API that checks the credential wardgate injects.

It answers with what it received (method, path, query, headers, body) so you can see the
gateway's work, but it never echoes the credential itself, only whether it matched.
Extra routes exercise the gateway: /status/{code}, /delay/{seconds}, /redirect?to=...,
/bytes/{n}, /gzip, /links.
"""

from __future__ import annotations

import gzip
import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from wardgate.dev.server import LoopbackService


class EchoUpstream(LoopbackService):
    def __init__(self, expected_authorization: str | None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.expected_authorization = expected_authorization
        self.requests: list[dict[str, Any]] = []  # what reached the upstream, for tests
        super().__init__(self._handler_class(), host, port)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def __getattr__(self, name: str) -> Any:
                if name.startswith("do_"):
                    return self._handle
                raise AttributeError(name)

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                authorization = self.headers.get("authorization")
                seen = {
                    "method": self.command,
                    "path": parts.path,
                    "query": parts.query,
                    "headers": {
                        k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"
                    },
                    "body": body.decode("utf-8", "replace"),
                    "credential": "missing"
                    if authorization is None
                    else ("accepted" if authorization == upstream.expected_authorization else "rejected"),
                    "host": self.headers.get("host"),
                }
                upstream.requests.append(seen)
                if upstream.expected_authorization and seen["credential"] != "accepted":
                    return self._send(401, {"error": "demo upstream: wrong or missing credential"})
                segments = parts.path.strip("/").split("/")
                if segments[0] == "status" and len(segments) > 1:
                    return self._send(int(segments[1]), {"status": int(segments[1])})
                if segments[0] == "delay" and len(segments) > 1:
                    time.sleep(float(segments[1]))
                if segments[0] == "redirect":
                    target = parse_qs(parts.query).get("to", ["/anything"])[0]
                    return self._send(302, {"redirect": target}, {"location": target})
                if segments[0] == "bytes" and len(segments) > 1:
                    return self._raw(200, b"x" * int(segments[1]), "application/octet-stream")
                if segments[0] == "links":  # the same header twice
                    self.send_response(200)
                    for rel in ("next", "last"):
                        self.send_header("link", f'</items?page=2>; rel="{rel}"')
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return None
                if segments[0] == "gzip":
                    data = gzip.compress(json.dumps({"gzipped": True}).encode())
                    return self._raw(200, data, "application/json", {"content-encoding": "gzip"})
                return self._send(200, seen, {"set-cookie": "demo=1; Path=/"})

            def _send(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
                self._raw(status, json.dumps(doc).encode(), "application/json", headers)

            def _raw(
                self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
