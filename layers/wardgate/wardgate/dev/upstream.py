"""The demo upstream: a small echo API that checks the credential wardgate injects.

It answers with what it received (method, path, query, headers, body) so you can see the
gateway's work, but it never echoes the credential itself, only whether it matched.
Extra routes exercise the gateway: /status/{code}, /delay/{seconds}, /redirect?to=...,
/bytes/{n}[?type=...], /gzip, /links, /respond?type=...&encoding=... (answers with the request
body as it came, under that Content-Type and Content-Encoding), /v1/customers (made-up
customer records full of values masking must hide) and, as a Kubernetes API server would,
/api/v1/namespaces/{ns}/secrets[/{name}].
"""

from __future__ import annotations

import gzip
import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from wardgate.dev.server import LoopbackService

# Made-up customers (test card numbers, reserved example domains and ranges) to show masking.
DEMO_CUSTOMERS = {
    "customers": [
        {
            "id": 1,
            "name": "Ada Example",
            "email": "ada@example.com",
            "phone": "+1 415 555 0100",
            "card": "4242 4242 4242 4242",
            "ssn": "078-05-1120",
            "last_login_ip": "203.0.113.7",
            "notes": "prefers email; api key sk_live_4eC39HqLyjWDarjtT1zdp7dc was rotated",
        },
        {
            "id": 2,
            "name": "Grace Sample",
            "email": "grace@example.org",
            "phone": "+44 20 7946 0958",
            "card": "5555-5555-5555-4444",
            "iban": "GB82 WEST 1234 5698 7654 32",
            "last_login_ip": "2001:db8::8a2e:370:7334",
            "notes": "VIP",
        },
    ]
}


def demo_secrets(namespace: str, name: str | None) -> dict[str, Any]:
    """A Kubernetes Secret (or a SecretList of one) as the API server returns it."""
    data = {"username": "YXBw", "password": "aHVudGVyMi1kZW1v"}  # app / hunter2-demo
    secret = {
        "metadata": {
            "name": name or "db-credentials",
            "namespace": namespace,
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps({"data": data}),
                "owner": "dba@example.com",
            },
        },
        "data": data,
        "type": "Opaque",
    }
    if name is not None:
        return {"kind": "Secret", "apiVersion": "v1", **secret}
    return {"kind": "SecretList", "apiVersion": "v1", "metadata": {}, "items": [secret]}


class EchoUpstream(LoopbackService):
    def __init__(self, expected_authorization: str | None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.expected_authorization = expected_authorization
        self.requests: list[dict[str, Any]] = []  # what reached the upstream, for tests
        super().__init__(self._handler_class(), host, port)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in two writes: don't wait 40 ms for an ACK

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
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if segments[0] == "bytes" and len(segments) > 1:
                    return self._raw(
                        200, b"x" * int(segments[1]), query.get("type", "application/octet-stream")
                    )
                if segments[0] == "respond":
                    encoding = {"content-encoding": query["encoding"]} if "encoding" in query else {}
                    return self._raw(200, body, query.get("type", "application/json"), encoding)
                if (
                    segments[:2] == ["api", "v1"]
                    and segments[2:3] == ["namespaces"]
                    and segments[4:5] == ["secrets"]
                ):
                    return self._send(
                        200, demo_secrets(segments[3], segments[5] if len(segments) > 5 else None)
                    )
                if segments[:2] == ["v1", "customers"]:
                    return self._send(200, DEMO_CUSTOMERS)
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
                if self.command != "HEAD":  # a body after a HEAD answer would be read as the next response
                    self.wfile.write(data)

        return Handler
