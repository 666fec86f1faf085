"""The cluster double: a local Kubernetes API server for ``wardgate dev`` and the tests.

``KubeDouble`` serves HTTPS (with the development CA's certificate) or plain HTTP on a loopback
port, checks one bearer token as the API server's token authenticator would (401 and an
``Unauthorized`` Status otherwise), and answers what kubectl 1.32 and the official Python client
send: discovery and OpenAPI (``discovery.py``, ``openapi.py``), the REST verbs over the object
store (``rest.py``, ``store.py``, ``controllers.py``), watches and followed logs as chunked
streams, and exec/attach/port-forward upgrades, which it hands to ``streams.serve_upgrade``.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import select
import socket
import ssl
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from wardgate.dev.certs import DevCertificates
from wardgate.dev.kube.catalog import Answer
from wardgate.dev.kube.controllers import PODS, Cluster
from wardgate.dev.kube.rest import Api, Request, Stream, parse_route
from wardgate.dev.kube.seed import seed as seed_store
from wardgate.dev.kube.status import internal_error, status_answer
from wardgate.dev.kube.store import Store, StoreError
from wardgate.dev.server import shutdown_promptly

LOG = logging.getLogger(__name__)
HANDSHAKE_TIMEOUT_S = 10.0
STREAM_END_TIMEOUT_S = 5.0  # stop() waits this long for watches and followed logs to end cleanly
MAX_REQUEST_BODY = 3 * 1024 * 1024 + 1024
_PROBES = ("/healthz", "/livez", "/readyz")  # readable without a token (system:public-info-viewer)
_UPGRADED = ("exec", "attach", "portforward")
_ANSWERING = "kube_double_answering"  # set on a handler once its answer has begun


class _DoubleHTTPServer(ThreadingHTTPServer):
    """Threaded HTTPS: the TLS handshake happens on the connection's thread, not the accept loop."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext | None
    ) -> None:
        self.tls_context = context
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.connection_threads: list[threading.Thread] = []
        self.closing = False  # drop_connections() ran: a connection still coming in is closed at once
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Named threads, joined in server_close(): stop() leaves none behind, and tests can tell them apart.
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"kube-double:{self.server_address[1]} {client_address[1]}",
            daemon=True,
        )
        with self.connections_lock:
            self.connection_threads = [t for t in self.connection_threads if t.is_alive()]
            self.connection_threads.append(thread)
        thread.start()

    def server_close(self) -> None:
        super().server_close()
        with self.connections_lock:
            threads = list(self.connection_threads)
        for thread in threads:
            thread.join()

    def finish_request(self, request: Any, client_address: Any) -> None:
        connection: socket.socket = request
        if self.tls_context is not None:
            try:
                connection.settimeout(HANDSHAKE_TIMEOUT_S)
                connection = self.tls_context.wrap_socket(request, server_side=True)
                connection.settimeout(None)
            except (OSError, ssl.SSLError):
                request.close()
                return
        with self.connections_lock:
            self.connections.add(connection)
            closing = self.closing
        if closing:  # accepted just before stop(): never served
            with contextlib.suppress(OSError):
                connection.close()
            return
        try:
            super().finish_request(connection, client_address)
        finally:
            with self.connections_lock:
                self.connections.discard(connection)
            with contextlib.suppress(OSError):
                connection.close()

    def shutdown_request(self, request: Any) -> None:
        with contextlib.suppress(OSError):
            request.shutdown(socket.SHUT_WR)
        request.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError | TimeoutError):
            super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        with self.connections_lock:
            self.closing = True
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class KubeDouble:
    """A Kubernetes API server double on a loopback port (see the module's docstring).

    ``token``: the one bearer token it accepts. ``certificates``: serve HTTPS with them (``url`` is
    then ``https://``, ``ca_pem`` the CA to trust), else plain HTTP. ``seed``: start with the demo
    cluster (``seed.py``). ``pod_start_seconds``: how long a new pod stays ContainerCreating (0: it
    runs at once; more makes rollouts take time, as kubectl rollout status expects on a real
    cluster). ``store`` holds the objects and logs (``store.append_log`` adds a container's line);
    ``store.compact()`` forgets history as etcd's compaction does.
    """

    def __init__(
        self,
        *,
        token: str,
        certificates: DevCertificates | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: bool = True,
        pod_start_seconds: float = 0.0,
    ) -> None:
        self.token = token
        self.certificates = certificates
        self.store = Store()
        self.cluster = Cluster(self.store, pod_start_seconds)
        if certificates is not None:
            self.cluster.root_ca_pem = certificates.ca_file.read_text()
        self.api = Api(self.store, self.cluster)
        if seed:
            seed_store(self.store, self.cluster)
        context: ssl.SSLContext | None = None
        self.ca_pem: str | None = None
        if certificates is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(certificates.cert_file, certificates.key_file)
            context.set_alpn_protocols(["http/1.1"])  # never h2: client-go would speak HTTP/2 if offered
            self.ca_pem = certificates.ca_file.read_text()
        self._server = _DoubleHTTPServer((host, port), self._handler_class(), context)
        self.cluster.kubelet_name = f"kube-double:{self.port} kubelet"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"kube-double:{self.port}",
            daemon=True,
        )
        self._started = False
        self._stopped = False
        self._open_streams = 0
        self._streams_changed = threading.Condition()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        scheme = "https" if self.certificates is not None else "http"
        return f"{scheme}://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> Self:
        self._thread.start()
        self._started = True
        return self

    def stop(self) -> None:
        """Stops serving: open watches and log streams end, connections close, threads are joined."""
        if self._stopped:
            return
        self._stopped = True
        if self._started:
            shutdown_promptly(self._server)
            self._thread.join()
        self.cluster.stop()
        self.store.close()  # watches and followed logs end their chunked answers cleanly...
        with self._streams_changed:
            self._streams_changed.wait_for(lambda: self._open_streams == 0, timeout=STREAM_END_TIMEOUT_S)
        self._server.drop_connections()  # ...then idle keep-alive connections and upgraded streams close
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- requests ------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "wardgate-kube-double"
            sys_version = ""
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                double.dispatch(self)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

        return Handler

    def _authorized(self, h: BaseHTTPRequestHandler) -> bool:
        scheme, _, credential = (h.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credential.strip().encode(), self.token.encode()
        )

    def dispatch(self, h: BaseHTTPRequestHandler) -> None:
        setattr(h, _ANSWERING, False)
        try:
            self._dispatch(h)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            h.close_connection = True
        except Exception as error:  # a bug of the double: a Status (if nothing was sent yet), no traceback
            LOG.exception("cluster double: %s failed", h.command)
            if not getattr(h, _ANSWERING):
                self._write(h, internal_error(error), close=True)
            h.close_connection = True

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        path, query = unquote(split.path), split.query
        body = _read_body(h)
        if body is None:
            too_large = status_answer(413, "RequestEntityTooLarge", "the request is too large")
            self._write(h, too_large, close=True)
            return
        if path not in _PROBES and not self._authorized(h):
            self._write(h, status_answer(401, "Unauthorized", "Unauthorized"))
            return
        accept = h.headers.get("Accept") or ""
        answer = self._meta_answer(path, query, accept)
        if answer is not None:
            self._write(h, answer)
            return
        route = parse_route(path)
        if (
            route is not None
            and route.subresource in _UPGRADED
            and route.resource is PODS
            and h.command in ("GET", "POST")
            and h.headers.get("Upgrade")
        ):
            self._upgrade(h, route.namespace or "", route.name or "", route.subresource, query)
            return
        request = Request(h.command, path, parse_qs(query, keep_blank_values=True), h.headers, body)
        result = self.api.handle(request)
        if isinstance(result, Stream):
            self._stream(h, result)
        else:
            self._write(h, result)

    def _meta_answer(self, path: str, query: str, accept: str) -> Answer | None:
        """Discovery, /version, health and OpenAPI: H1b's modules (imported lazily); None for the rest."""
        if path.startswith("/openapi/"):
            from wardgate.dev.kube import openapi

            answer: Answer | None = openapi.answer(path, query, accept)
            return answer or status_answer(
                404, "NotFound", "the server could not find the requested resource"
            )
        from wardgate.dev.kube import discovery

        return discovery.answer(path, query, accept)

    def _upgrade(
        self, h: BaseHTTPRequestHandler, namespace: str, name: str, subresource: str, query: str
    ) -> None:
        try:
            pod = self.store.get(PODS, namespace, name)
        except StoreError as error:
            from wardgate.dev.kube.status import error_answer

            self._write(h, error_answer(error), close=True)
            return
        from wardgate.dev.kube import streams

        setattr(h, _ANSWERING, True)  # the streams write their own 101 or refusal
        try:
            streams.serve_upgrade(h, self, pod, subresource, parse_qs(query, keep_blank_values=True))
        finally:
            h.close_connection = True

    # -- writing -------------------------------------------------------------------------------

    def _write(self, h: BaseHTTPRequestHandler, answer: Answer, close: bool = False) -> None:
        setattr(h, _ANSWERING, True)
        try:
            h.send_response(answer.status)
            h.send_header("Content-Type", answer.content_type)
            h.send_header("Content-Length", str(len(answer.body)))
            h.send_header("Cache-Control", "no-cache, private")
            h.send_header(
                "Audit-Id", str(uuid.uuid4())
            )  # each answer names its request, as the API server's do
            for name, value in answer.headers:
                h.send_header(name, value)
            if close:
                h.send_header("Connection", "close")
                h.close_connection = True
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(answer.body)
            h.wfile.flush()
        except (ConnectionError, ssl.SSLError, OSError):
            h.close_connection = True

    def _stream(self, h: BaseHTTPRequestHandler, stream: Stream) -> None:
        """Chunked transfer encoding; an empty chunk from the stream: a pause to check the client is there."""
        setattr(h, _ANSWERING, True)
        with self._streams_changed:
            self._open_streams += 1
        try:
            h.send_response(200)
            h.send_header("Content-Type", stream.content_type)
            h.send_header("Transfer-Encoding", "chunked")
            h.send_header("Cache-Control", "no-cache, private")
            h.send_header(
                "Audit-Id", str(uuid.uuid4())
            )  # each answer names its request, as the API server's do
            for name, value in stream.headers:
                h.send_header(name, value)
            h.end_headers()
            h.wfile.flush()
            for chunk in stream.chunks:
                if not chunk:
                    if _peer_gone(h.connection):
                        h.close_connection = True
                        return
                    continue
                h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                h.wfile.flush()
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except (ConnectionError, ssl.SSLError, OSError):
            h.close_connection = True
        finally:
            close = getattr(stream.chunks, "close", None)
            if close is not None:
                close()
            for callback in stream.on_close:
                callback()
            with self._streams_changed:
                self._open_streams -= 1
                self._streams_changed.notify_all()


def _read_body(h: BaseHTTPRequestHandler) -> bytes | None:
    """The request body, by Content-Length or chunked (a proxy may stream it); None if too large."""
    if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
        body = bytearray()
        while True:
            size = int(h.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while h.rfile.readline(1024) not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return bytes(body)
            if len(body) + size > MAX_REQUEST_BODY:
                return None
            body += h.rfile.read(size)
            h.rfile.readline(1024)  # the CRLF after the chunk
    length = int(h.headers.get("Content-Length") or 0)
    if length > MAX_REQUEST_BODY:
        return None
    return h.rfile.read(length) if length > 0 else b""


def _peer_gone(connection: socket.socket) -> bool:
    """During a stream the client sends nothing: a readable socket means it closed (or misbehaves)."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
