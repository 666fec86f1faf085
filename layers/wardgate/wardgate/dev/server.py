"""The local HTTP front door: API Gateway's job, done the way payload format 2.0 describes it.

It serves the routes declared in template.yaml by building the same events API Gateway
would and calling the same handlers, plus the development issuer under /_dev/oidc.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import socket
import socketserver
import ssl
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import unquote

from wardgate.dev.oidc import ISSUER_PATH, DevIssuer
from wardgate.dev.template import ACCOUNT, Route, Template

MAX_PAYLOAD = 10 * 1024 * 1024  # API Gateway HTTP APIs accept at most 10 MB
OUTBOX_PATH = "/_dev/outbox"  # local mode's mail: approval emails land here instead of SES
MAX_ISSUER_FORM = 16 * 1024  # the development issuer's sign-in form and token requests
TLS_HANDSHAKE_TIMEOUT_S = 10.0

if TYPE_CHECKING:
    from wardgate.dev.certs import DevCertificates


def shutdown_promptly(server: socketserver.TCPServer) -> None:
    """``server.shutdown()`` without waiting out ``serve_forever``'s poll interval.

    ``shutdown()`` sets a flag that the serving loop reads only when its ``select`` returns: at the
    next poll, or when a connection arrives. So connect to the listening socket until it has
    stopped: the loop wakes, sees the flag and ends (a connection it accepted first is served like
    any other: an HTTP handler reads nothing, a TLS handshake fails, both quietly). Every DevStack
    the tests start and stop has four such servers.
    """
    stopped = threading.Event()

    def stop() -> None:
        server.shutdown()
        stopped.set()

    threading.Thread(target=stop, name="shutdown-promptly", daemon=True).start()
    host, port = server.server_address[:2]
    while not stopped.wait(0.002):
        with contextlib.suppress(OSError):
            socket.create_connection((str(host), int(port)), timeout=1).close()


class LoopbackServer(ThreadingHTTPServer):
    """A threaded HTTP server that does not print a traceback when a client hangs up early."""

    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 drops connections under a burst of clients (load test)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionResetError | BrokenPipeError):
            super().handle_error(request, client_address)


class TlsLoopbackServer(LoopbackServer):
    """The same server over TLS: each connection's handshake runs on its own thread (a slow or
    broken client never holds up ``accept``), and one that fails is dropped quietly."""

    def __init__(
        self, address: tuple[str, int], handler_class: type[BaseHTTPRequestHandler], context: ssl.SSLContext
    ) -> None:
        super().__init__(address, handler_class)
        self.context = context

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(TLS_HANDSHAKE_TIMEOUT_S)
            request.do_handshake()
            request.settimeout(None)
        except (ssl.SSLError, OSError):
            return  # a client that does not trust the CA, a port scan, a plain HTTP request
        super().finish_request(request, client_address)


def server_tls_context(certificates: DevCertificates) -> ssl.SSLContext:
    """TLS 1.2+ with the development CA's server certificate (localhost, 127.0.0.1, ::1)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(certificates.cert_file), str(certificates.key_file))
    context.set_alpn_protocols(["http/1.1"])  # no h2: kubectl and client-go fall back to HTTP/1.1
    return context


class LambdaContext:
    """What a handler may read from its context object, with Lambda's 29 s API timeout."""

    def __init__(self, function_name: str, timeout_s: float = 29.0) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def api_gateway_event(
    route: Route,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
    source_ip: str,
) -> dict[str, Any]:
    params = route.match(method, raw_path) or {}
    cookies = [c.strip() for c in headers.pop("cookie", "").split(";") if c.strip()]
    now = datetime.now(UTC)
    return {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "cookies": cookies or None,
        "headers": headers,
        "pathParameters": {k: unquote(v) for k, v in params.items()},
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "http": {
                "method": method,
                "path": unquote(raw_path),
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": base64.b32encode(uuid.uuid4().bytes[:10]).decode().rstrip("="),
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": base64.b64encode(body).decode("ascii") if body else None,
        "isBase64Encoded": bool(body),
    }


class LoopbackService:
    """An HTTP server answering on a background thread: the local gateway, the demo upstream."""

    def __init__(self, handler_class: type[BaseHTTPRequestHandler], host: str, port: int) -> None:
        self.server = LoopbackServer((host, port), handler_class)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        shutdown_promptly(self.server)
        self.server.server_close()


class GatewayServer(LoopbackService):
    def __init__(
        self, template: Template, issuer: DevIssuer | None, host: str = "127.0.0.1", port: int = 8700
    ) -> None:
        self.routes = template.routes()
        self.issuer = issuer
        self.outbox: Path | None = None
        self._modules: dict[str, ModuleType] = {}
        self._lock = threading.Lock()
        self.tls_server: TlsLoopbackServer | None = None
        super().__init__(self._handler_class(), host, port)

    def serve_tls(self, certificates: DevCertificates, port: int = 0) -> str:
        """Also serve every route over HTTPS (the development CA), as API Gateway does on AWS:
        client-go sends no credentials to an ``http://`` server, so kubectl needs this one."""
        host = str(self.server.server_address[0])
        self.tls_server = TlsLoopbackServer(
            (host, port), self._handler_class(), server_tls_context(certificates)
        )
        threading.Thread(
            target=self.tls_server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self.https_url

    @property
    def https_url(self) -> str:
        """The HTTPS front door's URL (``serve_tls`` first)."""
        assert self.tls_server is not None, "serve_tls() was not called"
        host, port = self.tls_server.server_address[:2]
        return f"https://{host!s}:{port}"

    def stop(self) -> None:
        if self.tls_server is not None:
            shutdown_promptly(self.tls_server)
            self.tls_server.server_close()
        super().stop()

    def handler_for(self, route: Route) -> Any:
        module_name, _, function_name = route.handler.rpartition(".")
        with self._lock:
            module = self._modules.get(route.function)
            if module is None:
                path = route.code_dir / (module_name.replace(".", "/") + ".py")
                spec = importlib.util.spec_from_file_location(f"wardgate_function_{route.function}", path)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                self._modules[route.function] = module
        return getattr(module, function_name)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "wardgate-dev"
            disable_nagle_algorithm = True  # headers and body go in two writes: don't wait 40 ms for an ACK

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def __getattr__(self, name: str) -> Any:
                if name.startswith("do_"):
                    return lambda: gateway.dispatch(self)
                raise AttributeError(name)

        return Handler

    def dispatch(self, h: BaseHTTPRequestHandler) -> None:
        if not h.path.startswith("/"):
            return _reply(h, 400, {"message": "Bad Request"})
        raw_path, _, raw_query = h.path.partition("?")
        if self.issuer is not None and raw_path.startswith(ISSUER_PATH + "/"):
            return self._issuer_document(h, raw_path[len(ISSUER_PATH) :], raw_query)
        if raw_path in (OUTBOX_PATH, OUTBOX_PATH + ".json") and h.command == "GET":
            return self._outbox(h, as_json=raw_path.endswith(".json"))
        if h.headers.get("transfer-encoding"):
            return _reply(h, 411, {"message": "Length Required"})
        length = int(h.headers.get("content-length") or 0)
        if length > MAX_PAYLOAD:
            return _reply(h, 413, {"message": "Request Entity Too Large"})
        body = h.rfile.read(length) if length else b""
        route = next((r for r in self.routes if r.match(h.command, raw_path) is not None), None)
        if route is None:
            return _reply(h, 404, {"message": "Not Found"})
        headers: dict[str, str] = {}
        for name, value in h.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        event = api_gateway_event(route, h.command, raw_path, raw_query, headers, body, h.client_address[0])
        result = self.handler_for(route)(event, LambdaContext(route.function))
        data = result.get("body") or ""
        payload = base64.b64decode(data) if result.get("isBase64Encoded") else data.encode()
        h.send_response_only(int(result["statusCode"]))
        headers = result.get("headers") or {}
        if "date" not in headers:
            h.send_header("date", h.date_time_string())
        for name, value in headers.items():
            h.send_header(name, value)
        for cookie in result.get("cookies") or []:
            h.send_header("set-cookie", cookie)
        h.send_header("content-length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    def _issuer_document(self, h: BaseHTTPRequestHandler, path: str, raw_query: str = "") -> None:
        assert self.issuer is not None
        if path in ("/authorize", "/token"):  # the authorization code flow (the auditors' replay page)
            length = int(h.headers.get("content-length") or 0)
            if h.headers.get("transfer-encoding") or length > MAX_ISSUER_FORM:
                return _reply(h, 413, {"message": "Request Entity Too Large"})
            body = h.rfile.read(length) if length else b""
            answer = (
                self.issuer.authorize(h.command, raw_query, body)
                if path == "/authorize"
                else self.issuer.token(h.command, body)
            )
            h.send_response(answer.status)
            for name, value in answer.headers.items():
                h.send_header(name, value)
            h.send_header("content-length", str(len(answer.body)))
            h.end_headers()
            h.wfile.write(answer.body)
            return None
        if path == "/.well-known/openid-configuration":
            return _reply(h, 200, self.issuer.discovery())
        if path == "/jwks":
            return _reply(h, 200, self.issuer.jwks())
        return _reply(h, 404, {"message": "Not Found"})

    def _outbox(self, h: BaseHTTPRequestHandler, as_json: bool) -> None:
        from wardgate.approvals.mail import OutboxMailer

        messages = OutboxMailer(self.outbox).messages() if self.outbox else []
        if as_json:
            return _reply(h, 200, {"messages": messages})
        items = "".join(
            f"<article><h2>{escape(str(m['subject']))}</h2><p>to {escape(', '.join(m['to']))}</p>"  # type: ignore[arg-type]
            f'<div class="mail">{m["html"]}</div></article><hr>'
            for m in reversed(messages)
        )
        page = (
            '<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" '
            'content="width=device-width, initial-scale=1"><title>wardgate dev outbox</title></head>'
            f"<body><h1>Outbox ({len(messages)})</h1>{items or '<p>No mail yet.</p>'}</body></html>"
        ).encode()
        h.send_response(200)
        h.send_header("content-type", "text/html; charset=utf-8")
        h.send_header("cache-control", "no-store")
        h.send_header("content-length", str(len(page)))
        h.end_headers()
        h.wfile.write(page)


def _reply(h: BaseHTTPRequestHandler, status: int, doc: Any) -> None:
    data = json.dumps(doc).encode()
    h.send_response(status)
    h.send_header("content-type", "application/json")
    h.send_header("content-length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)
