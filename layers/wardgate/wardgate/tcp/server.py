"""The TCP gateway's process: listeners, TLS, the health endpoint, the kill-switch sweep, metrics.

``wardgate serve-tcp`` runs it on the Fargate task (one asyncio loop, uvloop when installed);
``wardgate dev`` and the tests run the very same server in a background thread
(``GatewayThread``). Each listener serves one protocol; a protocol is a session class taking the
shared ``TcpServices`` (PostgreSQL and MySQL; SSH plugs in to ``SESSIONS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from wardgate.config import Settings
from wardgate.connections import ConnectionStore
from wardgate.credentials import CredentialStore
from wardgate.gate import Gate
from wardgate.identity import TokenValidator
from wardgate.observability import logger
from wardgate.policy.store import PolicyStore
from wardgate.recording import DynamoRecordIndex, EventStream, FirehoseStream, Recorder, RecordIndex
from wardgate.tcp.config import TcpSettings
from wardgate.tcp.recorder import GroupCommit, SessionRecorder
from wardgate.tcp.services import TcpServices
from wardgate.tcp.sessions import SessionTable

METRICS_INTERVAL_S = 60.0
SHUTDOWN_GRACE_S = 20.0  # ECS waits 30 s (stopTimeout) after SIGTERM before SIGKILL


class Session(Protocol):
    async def run(self) -> None: ...


def _postgres(services: TcpServices, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Session:
    from wardgate.tcp.postgres.session import PgSession

    return PgSession(services, reader, writer)


def _mysql(services: TcpServices, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Session:
    from wardgate.tcp.mysql.session import MySqlSession

    return MySqlSession(services, reader, writer)


SESSIONS: dict[str, Callable[[TcpServices, asyncio.StreamReader, asyncio.StreamWriter], Session]] = {
    "postgres": _postgres,
    "mysql": _mysql,
}


Track = Callable[["asyncio.Future[Any]"], None]  # a session's lifetime, awaited at shutdown


async def _ssh(services: TcpServices, host: str, port: int, track: Track) -> Any:
    from wardgate.tcp.ssh.session import load_listener_keys, start_ssh_listener

    host_key, authority = await asyncio.to_thread(load_listener_keys)
    return await start_ssh_listener(services, host, port, host_key, authority, track)


async def _kubernetes(services: TcpServices, host: str, port: int, track: Track) -> Any:
    from wardgate.tcp.kubernetes.listener import start_kubernetes_listener

    return await start_kubernetes_listener(services, host, port, track)


# Protocols whose listening socket is their own (asyncssh; HTTPS from the first byte): their
# server, not a session per stream; ``track`` is given each session's lifetime (or connection's
# task), so shutdown waits for their last records.
SERVERS: dict[str, Callable[[TcpServices, str, int, Track], Any]] = {"ssh": _ssh, "kubernetes": _kubernetes}


def server_tls_context(tcp: TcpSettings, alpn: list[str] | None = None) -> ssl.SSLContext | None:
    """The certificate clients see: files (local mode) or the Secrets Manager secret (AWS)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        context.set_alpn_protocols(alpn)
    if tcp.tls_cert_file and tcp.tls_key_file:
        context.load_cert_chain(tcp.tls_cert_file, tcp.tls_key_file)
        return context
    if not tcp.tls_secret:
        return None
    from wardgate import aws

    secret = json.loads(
        aws.client("secretsmanager").get_secret_value(SecretId=tcp.tls_secret)["SecretString"]
    )
    # ssl loads a certificate chain from files only: a private folder, deleted at once.
    with tempfile.TemporaryDirectory(prefix="wardgate-tls-") as folder:
        cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert.write_text(secret["certificate_pem"])
        key.touch(mode=0o600)
        key.write_text(secret["private_key_pem"])
        context.load_cert_chain(cert, key)
    return context


def build_services(
    settings: Settings,
    tcp: TcpSettings,
    *,
    stream: EventStream | None = None,
    index: RecordIndex | None = None,
    inline_recording: bool = False,
) -> TcpServices:
    """The core, as the Lambda functions build it, plus what sessions share."""
    from wardgate import runtime

    policies = PolicyStore(settings.policies_table, settings.connections_table)
    stream = stream or FirehoseStream(settings.recordings_stream)
    index = index or DynamoRecordIndex(settings.recordings_table)
    gate = Gate(
        validator=TokenValidator(settings.issuers),
        agents=runtime.agent_registry(settings, policies),
        connections=ConnectionStore(settings.connections_table),
        recorder=Recorder(stream, index),
        policies=policies,
        limits=settings.limits,
        approvals=runtime.approval_desk() if settings.approvals_table else None,
    )
    return TcpServices(
        gate=gate,
        credentials=CredentialStore(),
        recorder=SessionRecorder(GroupCommit(stream, inline=inline_recording), index),
        sessions=SessionTable(tcp.limits),
        limits=tcp.limits,
        tls=server_tls_context(tcp),
        http_tls=(
            server_tls_context(tcp, ["http/1.1"])
            if any(listener.protocol == "kubernetes" for listener in tcp.listeners)
            else None
        ),
        mysql_server_version=tcp.mysql_server_version,
    )


class TcpGateway:
    def __init__(self, services: TcpServices, settings: TcpSettings) -> None:
        self.services = services
        self.settings = settings
        self.ports: dict[str, int] = {}
        self.health_port: int | None = None
        self._servers: list[Any] = []  # asyncio.Server, or asyncssh's acceptor (wraps one)
        self._tasks: list[asyncio.Task[None]] = []
        self._connections: set[asyncio.Future[Any]] = set()  # a task per stream session; SSH's lifetimes

    async def start(self) -> None:
        for listener in self.settings.listeners:
            if listener.protocol in SERVERS:
                own = await SERVERS[listener.protocol](
                    self.services, listener.host, listener.port, self._track
                )
                self._servers.append(own)
                self.ports[listener.protocol] = own.sockets[0].getsockname()[1]
                continue
            make = SESSIONS[listener.protocol]
            server = await asyncio.start_server(
                self._serving(make), listener.host, listener.port, limit=256 * 1024, backlog=1024
            )
            self._servers.append(server)
            self.ports[listener.protocol] = server.sockets[0].getsockname()[1]
        if self.settings.health_port is not None:
            health = await asyncio.start_server(self._health, "0.0.0.0", self.settings.health_port)
            self._servers.append(health)
            self.health_port = health.sockets[0].getsockname()[1]
        gate = self.services.gate
        sweep = self.services.sessions.sweep_forever(gate.agents, gate.connections)
        self._tasks.append(asyncio.create_task(sweep))
        service = os.environ.get("WARDGATE_METRICS_SERVICE")
        if service:
            self._tasks.append(asyncio.create_task(self._publish_metrics(service)))

    def _track(self, lifetime: asyncio.Future[Any]) -> None:
        self._connections.add(lifetime)
        lifetime.add_done_callback(self._connections.discard)

    def _serving(
        self, make: Callable[[TcpServices, asyncio.StreamReader, asyncio.StreamWriter], Session]
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):  # one small message per round trip: no Nagle delay
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = asyncio.current_task()
            if task is not None:
                self._connections.add(task)
            try:
                await make(self.services, reader, writer).run()
            finally:
                if task is not None:
                    self._connections.discard(task)

        return serve

    async def _health(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """``GET /healthz``: 200 while the listeners accept connections (the load balancer's check)."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                request = await reader.readuntil(b"\r\n\r\n")
            serving = all(server.is_serving() for server in self._servers)
            ok = request.startswith(b"GET /healthz ") and serving
            body = json.dumps(
                {"status": "ok" if ok else "unavailable", "sessions": len(self.services.sessions)}
            )
            status = "200 OK" if ok else "503 Service Unavailable"
            writer.write(
                f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
                f"connection: close\r\n\r\n{body}".encode()
            )
            await writer.drain()
        writer.close()

    async def _publish_metrics(self, service: str) -> None:
        """``ActiveSessions`` in CloudWatch's embedded metric format: the autoscaling signal."""
        while True:
            await asyncio.sleep(METRICS_INTERVAL_S)
            print(
                json.dumps(
                    {
                        "_aws": {
                            "Timestamp": int(time.time() * 1000),
                            "CloudWatchMetrics": [
                                {
                                    "Namespace": "wardgate",
                                    "Dimensions": [["Service"]],
                                    "Metrics": [{"Name": "ActiveSessions", "Unit": "Count"}],
                                }
                            ],
                        },
                        "Service": service,
                        "ActiveSessions": len(self.services.sessions),
                    }
                ),
                flush=True,
            )

    async def stop(self, grace: float = 0.0) -> None:
        """Stop accepting; give live sessions ``grace`` seconds, then end them."""
        for server in self._servers:
            server.close()
        if grace and self._connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    while self._connections:
                        await asyncio.sleep(0.1)
        for session in self.services.sessions.live():
            session.terminate("the gateway is shutting down: reconnect", "shutdown")
        if self._connections:  # let ended sessions record their end before anything is cancelled
            await asyncio.wait(list(self._connections), timeout=5)
        for task in [*self._tasks, *self._connections]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._connections, return_exceptions=True)


def serve_tcp() -> int:
    """``wardgate serve-tcp``: run until SIGTERM/SIGINT (the Fargate task's main process)."""
    import signal

    settings, tcp = Settings.from_env(), TcpSettings.from_env()

    async def main() -> None:
        services = await asyncio.to_thread(build_services, settings, tcp)
        gateway = TcpGateway(services, tcp)
        await gateway.start()
        logger.info(
            "tcp gateway listening", extra={"ports": gateway.ports, "health_port": gateway.health_port}
        )
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await stopping.wait()
        await gateway.stop(SHUTDOWN_GRACE_S)

    loop = new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return 0


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (the image; its TLS and socket paths are in C), else
    asyncio's: the task, local mode and the tests run the same loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class GatewayThread:
    """A ``TcpGateway`` on its own event loop in a background thread (local mode and tests)."""

    def __init__(self, build: Callable[[], TcpServices], settings: TcpSettings) -> None:
        self._build = build
        self.settings = settings
        self.gateway: TcpGateway | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="wardgate-tcp", daemon=True)

    def start(self) -> GatewayThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = new_event_loop()
        self._loop = loop
        try:
            self.gateway = TcpGateway(self._build(), self.settings)
            loop.run_until_complete(self.gateway.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self.gateway.stop())
        loop.close()

    @property
    def services(self) -> TcpServices:
        assert self.gateway is not None
        return self.gateway.services

    def port(self, protocol: str = "postgres") -> int:
        assert self.gateway is not None
        return self.gateway.ports[protocol]

    def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` on the gateway's loop and wait for it (tests poke at live sessions)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(_call(function), self._loop).result(10)

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def _call(function: Callable[[], Any]) -> Any:
    return function()
