"""The HTTPS listener: TLS (ALPN ``http/1.1`` only), HTTP/1.1 with keep-alive (h11), routing.

``https://<listener>/k8s/<connection>/<Kubernetes API path>``: the kubeconfig's server is
``.../k8s/<connection>`` and the agent's OIDC token the bearer token, as on the Lambda route.

* request/response verbs (get, apply, delete, logs...) go through ``HttpGateway.handle``, the
  Lambda path's own code (admit, decide, approvals, record, forward, mask), in a worker thread;
* watches and followed logs are streamed (``streams.py``);
* exec, attach and port-forward upgrades (``upgrades.py``).

Every refusal is a Kubernetes ``Status`` (``status.py``), so kubectl prints it as it prints the
API server's own errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import h11

from wardgate.apigw import HttpRequest, HttpResponse
from wardgate.errors import NotFound
from wardgate.gateway import HttpGateway
from wardgate.observability import logger
from wardgate.operations import UnparseableOperation
from wardgate.operations.k8s import K8sOperation, parse_k8s_request
from wardgate.proxies.http import DROPPED_RESPONSE_HEADERS, HttpForwarder
from wardgate.tcp.kubernetes.status import error_status, status_response
from wardgate.tcp.services import TcpServices

PREFIX = "/k8s/"
MAX_HEAD = 64 * 1024  # a request's line and headers (h11 answers 431 beyond)
IDLE_S = 120.0  # a kept-alive connection with no request for this long is closed
READ_CHUNK = 64 * 1024
SERVER = "wardgate"
UPGRADE_PROTOCOLS = ("websocket", "spdy/3.1")
UPGRADE_SUBRESOURCES = ("exec", "attach", "portforward")
REFUSAL_MEMORY_S = 10.0  # kubectl's SPDY retry follows its refused WebSocket upgrade at once
REMEMBERED_REFUSALS = 1024
REQUEST_THREADS = 64  # request/response verbs in flight per task (each holds a thread while it waits)


@dataclass
class Incoming:
    method: str
    target: str
    headers: dict[str, str]  # lower-case names, repeated headers joined
    body: bytes
    peer: str

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]


class RequestRefused(Exception):
    """A request that cannot be read (garbage, too large, too slow): answered, then closed."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class KubeListener:
    """What the listener's connections share: the services and the HTTP gateway built on them."""

    def __init__(self, services: TcpServices, track: Callable[[asyncio.Future[Any]], None] | None) -> None:
        self.services = services
        self.track = track
        gate = services.gate
        self.gateway = HttpGateway(
            validator=gate.validator,
            agents=gate.agents,
            connections=gate.connections,
            recorder=gate.recorder,
            policies=gate.policies,
            limits=gate.limits,
            approvals=gate.approvals,
            credentials=services.credentials,
            forwarder=HttpForwarder(gate.limits.connect_timeout, gate.limits.max_response_body),
        )
        # Request/response verbs block on the cluster (up to the upstream timeout): their own
        # threads, so that they never queue the worker threads the other sessions use for records.
        self.pool = ThreadPoolExecutor(max_workers=REQUEST_THREADS, thread_name_prefix="wardgate-k8s")
        # Refused WebSocket exec/attach upgrades, briefly (see upgrades.py: kubectl retries a refused
        # upgrade over SPDY at once, and the retry gets the same answer).
        self._refusals: dict[tuple[str, ...], tuple[float, HttpResponse, str]] = {}

    def remember_refusal(self, key: tuple[str, ...], response: HttpResponse, code: str) -> None:
        now = time.monotonic()
        for stale in [k for k, (until, *_) in self._refusals.items() if until < now]:
            del self._refusals[stale]
        if len(self._refusals) < REMEMBERED_REFUSALS:
            self._refusals[key] = (now + REFUSAL_MEMORY_S, response, code)

    def refusal(self, key: tuple[str, ...]) -> tuple[HttpResponse, str] | None:
        """The answer (and its code) a WebSocket attempt of the same exec got, once."""
        until, response, code = self._refusals.pop(key, (0.0, HttpResponse(0), ""))
        return (response, code) if until >= time.monotonic() else None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None and self.track is not None:
            self.track(task)
        # Shutdown cancels connections still open (kept-alive clients): that is their end, not an
        # error for asyncio to report about the server's callback.
        with contextlib.suppress(asyncio.CancelledError):
            await KubeConnection(self, reader, writer).run()


class KubeConnection:
    """One client connection: requests one after the other (keep-alive), until one is upgraded."""

    def __init__(
        self, listener: KubeListener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.listener = listener
        self.services = listener.services
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
        self.keep_open = True  # False once the connection must close after this response

    async def run(self) -> None:
        try:
            while self.keep_open:
                try:
                    request = await self._read_request()
                except RequestRefused as refused:
                    await self._refuse_unreadable(refused)
                    return
                if request is None:
                    return
                await self._dispatch(request)
                if not self.keep_open or self.h11.our_state is not h11.DONE:
                    return
                try:
                    self.h11.start_next_cycle()
                except h11.LocalProtocolError:
                    return
        except (ConnectionError, ssl.SSLError, OSError, asyncio.IncompleteReadError):
            pass  # the client went away
        except Exception:
            logger.exception("kubernetes listener connection failed")
        finally:
            with contextlib.suppress(Exception):
                self.writer.close()

    # ------------------------------------------------------------------ reading
    async def _receive(self, timeout: float) -> bool:
        """More bytes from the client into h11; False at end of stream."""
        async with asyncio.timeout(timeout):
            data = await self.reader.read(READ_CHUNK)
        self.h11.receive_data(data)
        return bool(data)

    async def _read_request(self) -> Incoming | None:
        """The next request, body and all; None when the client closed an idle connection. Once a
        request has begun it must be complete within the startup timeout (a request that never
        finishes holds nothing for long)."""
        limits = self.services.limits
        body_limit = self.listener.gateway.limits.max_request_body
        deadline: float | None = None
        request: h11.Request | None = None
        parts: list[bytes] = []
        size = 0
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as bad:
                status = bad.error_status_hint
                message = (
                    "the request head is too large"
                    if status == 431
                    else f"the request is not HTTP/1.1 ({bad})"
                )
                raise RequestRefused(status, message, "bad_request") from None
            if event is h11.NEED_DATA:
                if deadline is None and (request is not None or self.h11.trailing_data[0]):
                    deadline = time.monotonic() + limits.startup_timeout_s
                timeout = IDLE_S if deadline is None else deadline - time.monotonic()
                try:
                    if timeout <= 0:
                        raise TimeoutError
                    more = await self._receive(timeout)
                except TimeoutError:
                    if deadline is None:
                        return None  # idle: closed quietly, as servers do
                    raise RequestRefused(
                        408, "the request was not complete in time", "request_timeout"
                    ) from None
                if deadline is None:
                    deadline = time.monotonic() + limits.startup_timeout_s
                if not more and request is None:
                    return None
                continue
            if isinstance(event, h11.Request):
                request = event
                head = len(event.target) + sum(len(name) + len(value) + 4 for name, value in event.headers)
                if head > MAX_HEAD:  # h11 checks only heads that arrive in several pieces
                    raise RequestRefused(431, "the request head is too large", "bad_request")
                if deadline is None:
                    deadline = time.monotonic() + limits.startup_timeout_s
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > body_limit:
                    raise RequestRefused(
                        413, f"the request body is larger than {body_limit} bytes", "payload_too_large"
                    )
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                headers: dict[str, str] = {}
                for raw_name, raw_value in request.headers:
                    name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
                    headers[name] = f"{headers[name]}, {value}" if name in headers else value
                return Incoming(
                    request.method.decode("ascii"),
                    request.target.decode("latin-1"),
                    headers,
                    b"".join(parts),
                    self.peer,
                )
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _refuse_unreadable(self, refused: RequestRefused) -> None:
        self.keep_open = False
        response = status_response(refused.status, refused.message, refused.code)
        with contextlib.suppress(Exception):
            await self.respond(response, close=True)

    # ------------------------------------------------------------------ writing
    def _head(
        self, response_headers: dict[str, str], *, length: int | None, close: bool
    ) -> list[tuple[str, str]]:
        headers = [
            (name, value)
            for name, value in response_headers.items()
            if name.lower() not in DROPPED_RESPONSE_HEADERS and name.lower() != "server"
        ]
        headers.append(("server", SERVER))
        if length is not None:
            headers.append(("content-length", str(length)))
        if close:
            headers.append(("connection", "close"))
        return headers

    async def respond(self, response: HttpResponse, *, close: bool = False, method: str = "GET") -> None:
        if close:
            self.keep_open = False
        head = self._head(response.headers, length=len(response.body), close=close)
        data = self.h11.send(h11.Response(status_code=response.status, headers=head)) or b""
        if response.body and method != "HEAD":
            data += self.h11.send(h11.Data(data=response.body)) or b""
        data += self.h11.send(h11.EndOfMessage()) or b""
        self.writer.write(data)
        await self.writer.drain()

    async def start_stream(self, status: int, headers: dict[str, str]) -> None:
        """A response whose body follows in pieces (chunked)."""
        head = self._head(headers, length=None, close=False)
        self.writer.write(self.h11.send(h11.Response(status_code=status, headers=head)) or b"")
        await self.writer.drain()

    async def send_data(self, data: bytes) -> None:
        if data:
            self.writer.write(self.h11.send(h11.Data(data=data)) or b"")
            await self.writer.drain()

    async def end_stream(self) -> None:
        self.writer.write(self.h11.send(h11.EndOfMessage()) or b"")
        await self.writer.drain()

    async def client_gone(self) -> None:
        """Returns when the client closes its side (read while a response streams: Go clients do not
        pipeline, and bytes that do arrive are kept for the next request)."""
        while True:
            data = await self.reader.read(READ_CHUNK)
            if not data:
                return
            self.h11.receive_data(data)

    def switch_protocols(self, headers: list[tuple[str, str]]) -> bytes:
        """Send the 101 (``headers``: the cluster's, filtered); the bytes the client sent after its
        request, which belong to the new protocol."""
        self.keep_open = False
        self.writer.write(self.h11.send(h11.InformationalResponse(status_code=101, headers=headers)) or b"")
        return bytes(self.h11.trailing_data[0])

    # ------------------------------------------------------------------ routing
    async def _dispatch(self, request: Incoming) -> None:
        request_id = secrets.token_hex(12)
        path = request.path
        if not path.startswith(PREFIX) or len(path) == len(PREFIX):
            await self.respond(
                error_status(
                    NotFound(
                        "this is wardgate's Kubernetes listener: the server URL is "
                        "https://<listener>/k8s/<connection>",
                        code="unknown_route",
                    ),
                    request_id,
                ),
                method=request.method,
            )
            return
        raw_name, _, rest = path[len(PREFIX) :].partition("/")
        connection = unquote(raw_name)
        proxy_path = "/" + rest
        operation: K8sOperation | None
        try:
            operation = parse_k8s_request(request.method, proxy_path, request.query)
        except UnparseableOperation:
            operation = None  # the HTTP gateway decides what an unparseable request gets
        upgrade = request.headers.get("upgrade", "").lower()
        if upgrade in UPGRADE_PROTOCOLS or (
            upgrade and operation is not None and operation.subresource in UPGRADE_SUBRESOURCES
        ):  # another Upgrade (h2c...) is declined by answering the request as it is
            from wardgate.tcp.kubernetes.upgrades import serve_upgrade

            await serve_upgrade(self, request, connection, proxy_path, operation)
            return
        if operation is not None and (operation.verb == "watch" or _follows_log(operation, request.query)):
            from wardgate.tcp.kubernetes.streams import serve_stream

            await serve_stream(self, request, connection, proxy_path, operation)
            return
        http_request = HttpRequest(
            request_id=request_id,
            method=request.method,
            connection=connection,
            route="k8s",
            proxy_path=proxy_path,
            raw_query=request.query,
            headers=request.headers,
            cookies=[],
            body=request.body,
            source_ip=self.peer.rsplit(":", 1)[0],
            gateway_prefix=PREFIX + raw_name,
        )
        gateway = self.listener.gateway
        deadline = time.monotonic() + gateway.limits.upstream_timeout
        loop = asyncio.get_running_loop()
        try:
            response = await loop.run_in_executor(self.listener.pool, gateway.handle, http_request, deadline)
        except RuntimeError:  # the pool is shut: the listener closed (the task is stopping)
            stopping = "the gateway is shutting down: reconnect"
            await self.respond(status_response(503, stopping, "shutdown", request_id), close=True)
            return
        await self.respond(response, method=request.method)


def _follows_log(operation: K8sOperation, query: str) -> bool:
    if operation.resource != "pods" or operation.subresource != "log" or operation.verb != "get":
        return False
    values = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "follow"]
    return bool(values) and values[-1].lower() not in ("false", "0", "")


class KubernetesServer:
    """The listening server as the TCP gateway handles its servers (``sockets``, ``is_serving``,
    ``close``); closing it also lets the request threads go."""

    def __init__(self, server: asyncio.Server, listener: KubeListener) -> None:
        self.server = server
        self.listener = listener

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self.server.sockets)

    def is_serving(self) -> bool:
        return self.server.is_serving()

    def close(self) -> None:
        self.server.close()
        self.listener.pool.shutdown(wait=False, cancel_futures=True)


async def start_kubernetes_listener(
    services: TcpServices,
    host: str,
    port: int,
    track: Callable[[asyncio.Future[Any]], None] | None = None,
) -> KubernetesServer:
    """The listening server (TLS from the first byte: HTTPS)."""
    context = services.http_tls
    if context is None:
        raise ValueError("the Kubernetes listener serves HTTPS only: the TCP gateway has no certificate")
    listener = KubeListener(services, track)
    server = await asyncio.start_server(
        listener.serve,
        host,
        port,
        ssl=context,
        ssl_handshake_timeout=services.limits.startup_timeout_s,
        limit=READ_CHUNK * 4,
        backlog=1024,
    )
    return KubernetesServer(server, listener)
