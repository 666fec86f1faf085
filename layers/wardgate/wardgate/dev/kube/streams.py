"""The cluster double's streaming subresources: pods/exec, pods/attach and pods/portforward.

The double's server hands a ``pods/<name>/{exec,attach,portforward}`` request that carries ``Upgrade``
to ``serve_upgrade``, on the request's own thread; it answers the upgrade itself and returns when the
stream ends. What is on the wire, as a v1.32 API server and kubelet put it:

* exec and attach: a WebSocket (RFC 6455) whose binary messages start with a channel byte: 0 stdin,
  1 stdout, 2 stderr, 3 error (a ``Status``: how the client learns the exit code), 4 resize
  (``{"Width":..,"Height":..}``); subprotocols ``v5.channel.k8s.io`` (adds the close signal
  ``[255, <channel>]``: the client closed its stdin), ``v4.channel.k8s.io`` (the error channel carries a
  Status), ``channel.k8s.io`` (it carries plain text) and their ``base64.`` forms (text messages, the
  channel as an ASCII digit, base64 data). References: k8s.io/apimachinery/pkg/util/remotecommand
  (constants), k8s.io/apiserver/pkg/util/wsstream (framing), KEP-4006 "Transition from SPDY to
  WebSockets" (v5 and the close signal), the kubelet's cri/streaming/remotecommand (the Status shapes).
  Also over SPDY/3.1 (``Upgrade: SPDY/3.1``, ``X-Stream-Protocol-Version: v4.channel.k8s.io``): kubectl's
  fallback when the WebSocket upgrade fails, and what clients before 1.30 speak; one SPDY stream per
  channel, named by its ``streamtype`` header.
* port-forward: SPDY/3.1 streams (``spdy.py``), a pair per forwarded connection (``streamtype`` ``error``
  and ``data``, with ``port`` and ``requestid``), either tunnelled in WebSocket binary messages under the
  subprotocol ``SPDY/3.1+portforward.k8s.io`` (what kubectl 1.31+ tries first, KEP-4006) or after a plain
  ``Upgrade: SPDY/3.1`` (``X-Stream-Protocol-Version: portforward.k8s.io``), kubectl's fallback. The
  Python client forwards over WebSocket channels instead (``v4.channel.k8s.io``, two per port).

Behind the streams is ``container.py``: no real process or socket is ever opened. A forwarded connection
to a port the pod declares is answered by a one-response HTTP/1.1 responder; any other port gets the
error a kubelet sends when nothing listens there.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import socket
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from wardgate.dev.kube import spdy
from wardgate.dev.kube.container import (
    BytesInput,
    Container,
    ExecNotFound,
    Input,
    ProcessIO,
    StreamInput,
    container_for,
)

JSON = dict[str, Any]
_log = logging.getLogger(__name__)

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE_SIGNAL = 255  # v5: [255, channel] says the client closed that channel (its stdin)

PORT_FORWARD_PROTOCOL = "portforward.k8s.io"
PORT_FORWARD_TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"


@dataclass(frozen=True)
class ChannelProtocol:
    name: str
    version: int  # 1 (pre-v4: plain-text errors), 4 (Status errors), 5 (and the close signal)
    binary: bool  # False: text messages, "<digit><base64>"


# In the server's order of preference when a client offers several (the newest first).
CHANNEL_PROTOCOLS: dict[str, ChannelProtocol] = {
    p.name: p
    for p in (
        ChannelProtocol("v5.channel.k8s.io", 5, True),
        ChannelProtocol("v4.channel.k8s.io", 4, True),
        ChannelProtocol("v4.base64.channel.k8s.io", 4, False),
        ChannelProtocol("channel.k8s.io", 1, True),
        ChannelProtocol("base64.channel.k8s.io", 1, False),
    )
}


def negotiate(offered: list[str]) -> ChannelProtocol | None:
    """The protocol to speak: the first the client offers that the double knows (as wsstream picks);
    a client that offers none gets the unversioned binary protocol."""
    if not offered:
        return CHANNEL_PROTOCOLS["channel.k8s.io"]
    return next((CHANNEL_PROTOCOLS[name] for name in offered if name in CHANNEL_PROTOCOLS), None)


def encode_channel(protocol: ChannelProtocol, channel: int, data: bytes) -> bytes | str:
    """One message on a channel: ``<channel byte><data>``, or ``<digit><base64 data>`` as text."""
    if protocol.binary:
        return bytes([channel]) + data
    return str(channel) + base64.b64encode(data).decode()


def decode_channel(protocol: ChannelProtocol, payload: bytes | str) -> tuple[int, bytes]:
    """A client's message as (channel, data). Raises ValueError on an empty or malformed message."""
    if isinstance(payload, str) and protocol.binary:
        # wsstream reads text frames as bytes too (the Python client sends str stdin as text frames).
        payload = payload.encode()
    if isinstance(payload, str):
        if not payload or not payload[0].isdigit():
            raise ValueError("malformed text message")
        try:
            return int(payload[0]), base64.b64decode(payload[1:], validate=True)
        except binascii.Error as error:
            raise ValueError("bad base64 in a channel message") from error
    if not payload:
        raise ValueError("empty channel message")
    return payload[0], payload[1:]


def close_signal(channel: int) -> bytes:
    return bytes([CLOSE_SIGNAL, channel])


def success_status() -> JSON:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}


def exit_code_status(argv: list[str], code: int) -> JSON:
    """How the kubelet reports a non-zero exit: kubectl exits with the code in ``details.causes``."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command "
        f"[{' '.join(argv)}], exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def internal_error_status(message: str) -> JSON:
    """apierrors.NewInternalError: the exec could not start (kubectl prints the message, exits 1)."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


def error_channel_payload(protocol: ChannelProtocol, status: JSON) -> bytes | None:
    """What goes on the error channel: the Status as JSON (v4+), its message as text (v1, nothing on
    success)."""
    if protocol.version >= 4:
        return json.dumps(status, separators=(",", ":")).encode()
    if status.get("status") == "Success":
        return None
    return str(status.get("message", "")).encode()


def bad_request(message: str, code: int = 400, reason: str = "BadRequest") -> JSON:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class Refused(Exception):
    """A stream request refused before upgrading: answered as a plain HTTP Status response."""

    def __init__(self, status: JSON) -> None:
        super().__init__(status.get("message", ""))
        self.status = status


# -- what a stream request asks for --------------------------------------------------------------------


def _flag(query: dict[str, list[str]], name: str, default: bool = False) -> bool:
    values = query.get(name)
    if not values:
        return default
    return values[-1].lower() in ("true", "1", "t", "yes")


@dataclass(frozen=True)
class StreamOptions:
    """PodExecOptions / PodAttachOptions from the query (core/v1 API reference)."""

    container: str
    command: list[str]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def stream_options(pod: JSON, subresource: str, query: dict[str, list[str]]) -> StreamOptions:
    """The request's options, or Refused as the API server answers a bad one (400 Status)."""
    name = pod.get("metadata", {}).get("name", "")
    containers = [c.get("name", "") for c in pod.get("spec", {}).get("containers", [])]
    container = (query.get("container") or [""])[-1]
    if not container:
        if not containers:
            raise Refused(bad_request(f"pod {name} does not have a container"))
        container = containers[0]
    elif container not in containers:
        raise Refused(bad_request(f"container {container} is not valid for pod {name}"))
    phase = pod.get("status", {}).get("phase", "Running")
    if phase in ("Succeeded", "Failed"):
        verb = "exec into" if subresource == "exec" else "attach to"
        raise Refused(bad_request(f"cannot {verb} a container in a completed pod; current phase is {phase}"))
    options = StreamOptions(
        container,
        list(query.get("command") or []),
        _flag(query, "stdin"),
        _flag(query, "stdout", default=subresource == "attach"),
        _flag(query, "stderr", default=subresource == "attach"),
        _flag(query, "tty"),
    )
    if subresource == "exec" and not options.command:
        raise Refused(bad_request("you must specify at least one command for the container"))
    if not (options.stdin or options.stdout or options.stderr):
        raise Refused(bad_request("you must specify at least 1 of stdin, stdout, stderr"))
    return options


# -- connections and the double's stop -----------------------------------------------------------------


class _Socket:
    """The upgraded connection: reads on the request's thread, writes from any thread under a lock."""

    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        self._write_lock = threading.Lock()
        self.closed = threading.Event()

    def recv(self) -> bytes:
        try:
            return self.connection.recv(65536)
        except OSError:
            return b""

    def send(self, data: bytes) -> None:
        if not data:
            return
        with self._write_lock:
            if self.closed.is_set():
                raise ConnectionError("stream closed")
            self.connection.sendall(data)

    def shutdown(self) -> None:
        """Ends the connection both ways: a read blocked on it returns (the stream ends)."""
        self.closed.set()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


_open: weakref.WeakKeyDictionary[Any, set[_Socket]] = weakref.WeakKeyDictionary()
_open_lock = threading.Lock()


def _track(store: Any, connection: _Socket) -> None:
    """Ends ``connection`` when the double stops (its store closes): a reaper thread per store."""
    closed: threading.Event | None = getattr(store, "closed", None)
    if closed is None:
        return
    with _open_lock:
        known = _open.get(store)
        if known is None:
            known = _open[store] = set()
            threading.Thread(
                target=_reap, args=(weakref.ref(store), closed), name="kube-double-streams", daemon=True
            ).start()
        known.add(connection)
    if closed.is_set():
        connection.shutdown()


def _untrack(store: Any, connection: _Socket) -> None:
    with _open_lock:
        _open.get(store, set()).discard(connection)


def _reap(store_ref: weakref.ref[Any], closed: threading.Event) -> None:
    closed.wait()
    store = store_ref()
    if store is None:
        return
    with _open_lock:
        connections = list(_open.get(store, ()))
    for connection in connections:
        connection.shutdown()


class WebSocket:
    """A server-side WebSocket on an upgraded connection (wsproto does the framing)."""

    def __init__(self, connection: _Socket, ws: WSConnection, subprotocol: str | None) -> None:
        self.connection = connection
        self.ws = ws
        self.subprotocol = subprotocol
        self._lock = threading.Lock()
        self._closing = False

    def send(self, payload: bytes | str) -> None:
        with self._lock:
            if self._closing:
                return
            event = TextMessage(payload) if isinstance(payload, str) else BytesMessage(payload)
            try:
                data = self.ws.send(event)
            except LocalProtocolError as error:  # the WebSocket is no longer open
                raise ConnectionError(str(error)) from error
        self.connection.send(data)

    def close(self, code: int = 1000) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            try:
                data = self.ws.send(CloseConnection(code))
            except LocalProtocolError:
                return
        with contextlib.suppress(OSError):
            self.connection.send(data)

    def messages(self) -> Iterator[bytes | str]:
        """Whole messages from the client until it closes, the connection drops or the stream ends."""
        text: list[str] = []
        binary = bytearray()
        while True:
            data = self.connection.recv()
            if not data:
                return
            try:
                self.ws.receive_data(data)
                events = list(self.ws.events())
            except RemoteProtocolError:
                return
            for event in events:
                if isinstance(event, Ping):
                    with self._lock:
                        reply = self.ws.send(event.response())
                    self._send_quietly(reply)
                elif isinstance(event, CloseConnection):
                    with self._lock:
                        answer = b"" if self._closing else self.ws.send(event.response())
                        self._closing = True
                    self._send_quietly(answer)
                    return
                elif isinstance(event, BytesMessage):
                    binary += event.data
                    if event.message_finished:
                        yield bytes(binary)
                        binary.clear()
                elif isinstance(event, TextMessage):
                    text.append(event.data)
                    if event.message_finished:
                        yield "".join(text)
                        text.clear()

    def _send_quietly(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.connection.send(data)


def _reject(handler: BaseHTTPRequestHandler, status: JSON) -> None:
    body = json.dumps(status).encode()
    handler.send_response(int(status.get("code", 400)))
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(body)
    handler.wfile.flush()
    handler.close_connection = True


def _accept_websocket(
    handler: BaseHTTPRequestHandler, choose: Callable[[list[str]], str | None]
) -> WebSocket | None:
    """Completes the WebSocket handshake with the subprotocol ``choose`` picks from the client's offer;
    None (after a 400 answer) when the request is no valid handshake or no offered protocol fits."""
    request_bytes = (
        handler.requestline
        + "\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in handler.headers.items())
        + "\r\n"
    ).encode("latin-1")
    ws = WSConnection(ConnectionType.SERVER)
    connection = _Socket(handler.connection)
    try:
        ws.receive_data(request_bytes)
        request = next((e for e in ws.events() if isinstance(e, Request)), None)
    except RemoteProtocolError:
        request = None
    if request is None:
        _reject(handler, bad_request("invalid WebSocket upgrade request"))
        return None
    chosen = choose(list(request.subprotocols))
    if chosen is None:
        offered = ", ".join(request.subprotocols)
        _reject(handler, bad_request(f"none of the WebSocket subprotocols offered is supported: {offered}"))
        return None
    connection.send(ws.send(AcceptConnection(subprotocol=chosen or None)))
    return WebSocket(connection, ws, chosen or None)


# -- the entry point -------------------------------------------------------------------------------


def serve_upgrade(
    handler: BaseHTTPRequestHandler, double: Any, pod: JSON, subresource: str, query: dict[str, list[str]]
) -> None:
    """Serves one upgraded exec, attach or portforward request to its end (see the module docstring)."""
    upgrade = handler.headers.get("Upgrade", "").strip().lower()
    if subresource == "portforward":
        if upgrade == "websocket" and PORT_FORWARD_TUNNEL_PROTOCOL in _offered_websocket_protocols(handler):
            _serve_port_forward_tunnel(handler, double, pod)
        elif upgrade == "websocket":
            _serve_port_forward_channels(handler, double, pod, query)
        elif upgrade.startswith("spdy/3.1"):
            _serve_port_forward_spdy(handler, double, pod)
        else:
            _reject(handler, bad_request(f"unsupported upgrade {upgrade!r} for port forwarding"))
        return
    try:
        options = stream_options(pod, subresource, query)
    except Refused as refused:
        _reject(handler, refused.status)
        return
    if upgrade.startswith("spdy/3.1"):
        _serve_channels_spdy(handler, double, pod, subresource, options)
        return
    if upgrade != "websocket":
        _reject(handler, bad_request(f"unsupported upgrade {upgrade!r}"))
        return

    def choose(offered: list[str]) -> str | None:
        protocol = negotiate(offered)
        return None if protocol is None else protocol.name if offered else ""

    websocket = _accept_websocket(handler, choose)
    if websocket is None:
        return
    protocol = CHANNEL_PROTOCOLS[websocket.subprotocol or "channel.k8s.io"]
    _ChannelSession(double, pod, subresource, options, _WebSocketChannels(websocket, protocol, options)).run()


def _offered_websocket_protocols(handler: BaseHTTPRequestHandler) -> list[str]:
    values = handler.headers.get_all("Sec-WebSocket-Protocol") or []
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _offered_stream_protocols(handler: BaseHTTPRequestHandler) -> list[str]:
    values = handler.headers.get_all("X-Stream-Protocol-Version") or []
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _switch_to_spdy(handler: BaseHTTPRequestHandler, protocol: str) -> _Socket:
    connection = _Socket(handler.connection)
    connection.send(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
        + f"X-Stream-Protocol-Version: {protocol}\r\n\r\n".encode()
    )
    return connection


def _serve_channels_spdy(
    handler: BaseHTTPRequestHandler, double: Any, pod: JSON, subresource: str, options: StreamOptions
) -> None:
    # As httpstream.Handshake: the first protocol the client offers that the server speaks, else 403.
    offered = _offered_stream_protocols(handler)
    chosen = next((name for name in offered if name in SPDY_REMOTE_COMMAND_PROTOCOLS), None)
    if chosen is None:
        message = f"unable to upgrade: unable to negotiate protocol: client supports {offered}, server " + (
            f"supports {list(SPDY_REMOTE_COMMAND_PROTOCOLS)}"
        )
        _reject(handler, bad_request(message, 403, "Forbidden"))
        return
    channels = _SpdyChannels(_switch_to_spdy(handler, chosen), SPDY_REMOTE_COMMAND_PROTOCOLS[chosen], options)
    _ChannelSession(double, pod, subresource, options, channels).run()


# -- exec and attach -----------------------------------------------------------------------------------


class _Channels:
    """How a session's channels travel: WebSocket messages (``_WebSocketChannels``) or SPDY streams
    (``_SpdyChannels``)."""

    connection: _Socket

    def send(self, channel: int, data: bytes) -> None:
        raise NotImplementedError

    def finish(self, status: JSON, reader_done: threading.Event) -> None:
        """Sends the final Status on the error channel and closes the stream."""
        raise NotImplementedError

    def read(self, session: _ChannelSession) -> None:
        """Feeds the client's input to ``session`` until the client leaves; calls ``session.start()``."""
        raise NotImplementedError


class _ChannelSession:
    """One exec or attach: the command's thread writes the output channels, the request's thread reads
    the client's input (stdin, its close, resizes)."""

    def __init__(
        self, double: Any, pod: JSON, subresource: str, options: StreamOptions, channels: _Channels
    ) -> None:
        self.double = double
        self.pod = pod
        self.subresource = subresource
        self.options = options
        self.channels = channels
        self.stopped = threading.Event()
        self.stdin = StreamInput(self.stopped)
        self.terminal = [80, 24]  # [columns, rows], until the client's first resize message
        self.reader_done = threading.Event()
        self._worker: threading.Thread | None = None

    def _send(self, channel: int, data: bytes) -> None:
        if self.stopped.is_set():
            return
        try:
            self.channels.send(channel, data)
        except OSError:
            self.stopped.set()

    def _output(self, channel: int, wanted: bool) -> Callable[[bytes], None]:
        if not wanted:
            return lambda data: None
        return lambda data: self._send(channel, data) if data else None

    def run(self) -> None:
        store = self.double.store
        connection = self.channels.connection
        _track(store, connection)
        try:
            self.channels.read(self)
            self.reader_done.set()
            self.stopped.set()
            self.stdin.wake()
            if self._worker is not None:
                self._worker.join(timeout=5)
        finally:
            _untrack(store, connection)
            connection.shutdown()

    def start(self) -> None:
        """Starts the command (or the attached process) once the client's streams are all there."""
        if self._worker is None:
            target = self._attach if self.subresource == "attach" else self._exec
            self._worker = threading.Thread(
                target=self._work, args=(target,), name="kube-double-exec", daemon=True
            )
            self._worker.start()

    def on_stdin(self, data: bytes) -> None:
        if self.options.stdin:
            self.stdin.feed(data, tty=self.options.tty)

    def on_stdin_closed(self) -> None:
        self.stdin.close()

    def on_resize(self, size: Any) -> None:
        try:
            width, height = int(size["Width"]), int(size["Height"])
        except (KeyError, TypeError, ValueError):
            return
        self.terminal[:] = [width, height]

    def _container(self) -> Container:
        store = self.double.store
        namespace = self.pod.get("metadata", {}).get("namespace", "")
        return container_for(store, self.pod, self.options.container, _lookup(store, namespace))

    def _work(self, target: Callable[[], JSON | None]) -> None:
        try:
            status = target()
        except Exception:  # a fault of the double must not leave the client waiting on a silent stream
            _log.exception("the cluster double's %s failed", self.subresource)
            status = internal_error_status(f"the cluster double's {self.subresource} failed")
        if status is not None and not self.reader_done.is_set():
            try:
                self.channels.finish(status, self.reader_done)
            except OSError:
                self.channels.connection.shutdown()

    def _exec(self) -> JSON | None:
        stdin: Input = self.stdin if self.options.stdin else BytesInput()
        process = ProcessIO(
            stdin,
            self._output(STDOUT, self.options.stdout),
            self._output(STDERR if not self.options.tty else STDOUT, self.options.stderr or self.options.tty),
            self.stopped,
            self.options.tty,
            self.stdin.interrupted,
            self.terminal,
        )
        try:
            code = self._container().exec(self.options.command, process)
        except ExecNotFound as error:
            return internal_error_status(f"error executing command in container: {error}")
        if self.stopped.is_set() and self.reader_done.is_set():
            return None  # the client left: nobody to tell
        return success_status() if code == 0 else exit_code_status(self.options.command, code)

    def _attach(self) -> JSON | None:
        """The container's main process: its output is the pod's new log lines; stdin lines go to it."""
        store = self.double.store
        metadata = self.pod.get("metadata", {})
        namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
        container = self.options.container
        start = len(store.log_lines(namespace, name, container))  # before stdin can add a line
        if self.options.stdin:
            threading.Thread(
                target=self._attach_input, args=(store, namespace, name, container), daemon=True
            ).start()
        output = self._output(STDOUT, self.options.stdout)
        newline = b"\r\n" if self.options.tty else b"\n"
        for batch in store.follow_log(namespace, name, container, start, lambda: not self.stopped.is_set()):
            for line in batch:
                output(line.text.encode() + newline)
        if self.stopped.is_set():
            return None
        return success_status()  # the pod is gone or the double stopped: the process ended

    def _attach_input(self, store: Any, namespace: str, name: str, container: str) -> None:
        pending = bytearray()
        while not self.stopped.is_set():
            chunk = self.stdin.read()
            if not chunk:
                break
            pending += chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            while b"\n" in pending:
                line, _, rest = bytes(pending).partition(b"\n")
                pending[:] = rest
                store.append_log(namespace, name, container, "received: " + line.decode(errors="replace"))
        if pending:
            store.append_log(namespace, name, container, "received: " + pending.decode(errors="replace"))


class _WebSocketChannels(_Channels):
    def __init__(self, websocket: WebSocket, protocol: ChannelProtocol, options: StreamOptions) -> None:
        self.websocket = websocket
        self.connection = websocket.connection
        self.protocol = protocol
        self.options = options

    def send(self, channel: int, data: bytes) -> None:
        self.websocket.send(encode_channel(self.protocol, channel, data))

    def finish(self, status: JSON, reader_done: threading.Event) -> None:
        payload = error_channel_payload(self.protocol, status)
        if payload is not None:
            self.send(ERROR, payload)
        self.websocket.close()
        # The client answers the close; if it does not within a moment, the connection ends.
        if not reader_done.wait(timeout=2):
            self.connection.shutdown()

    def read(self, session: _ChannelSession) -> None:
        # The kubelet's first message: an empty one on the lowest writable channel ("connected").
        first = STDOUT if self.options.stdout else STDERR if self.options.stderr else ERROR
        self.send(first, b"")
        session.start()
        for message in self.websocket.messages():
            try:
                channel, data = decode_channel(self.protocol, message)
            except ValueError:
                continue
            if channel == CLOSE_SIGNAL and self.protocol.version >= 5:
                if data[:1] == bytes([STDIN]):
                    session.on_stdin_closed()
            elif channel == STDIN:
                session.on_stdin(data)
            elif channel == RESIZE:
                try:
                    session.on_resize(json.loads(data))
                except ValueError:
                    continue


# Remote command over SPDY (kubectl's fallback, and clients before 1.30): one SPDY stream per channel,
# named by its "streamtype" header; stdin's end is the stream's FIN; resize is a stream of JSON objects.
SPDY_REMOTE_COMMAND_PROTOCOLS = {"v4.channel.k8s.io": 4, "v3.channel.k8s.io": 3, "v2.channel.k8s.io": 2}
_STREAM_TYPES = {STDOUT: "stdout", STDERR: "stderr", ERROR: "error"}


class _SpdyChannels(_Channels):
    def __init__(self, connection: _Socket, version: int, options: StreamOptions) -> None:
        self.connection = connection
        self.version = version
        self.options = options
        self.encoder = spdy.FrameEncoder()
        self.decoder = spdy.FrameDecoder()
        self._lock = threading.Lock()  # one frame at a time: the encoder's zlib context is shared
        self.streams: dict[str, int] = {}  # stream type -> stream id
        self.expected = {"error"}
        if options.stdin:
            self.expected.add("stdin")
        if options.stdout:
            self.expected.add("stdout")
        if options.stderr and not options.tty:
            self.expected.add("stderr")
        if options.tty and version >= 3:
            self.expected.add("resize")
        self._last_stream = 0

    def _write(self, *frames: spdy.Frame) -> None:
        with self._lock:
            self.connection.send(b"".join(self.encoder.encode(frame) for frame in frames))

    def send(self, channel: int, data: bytes) -> None:
        stream_id = self.streams.get(_STREAM_TYPES.get(channel, ""))
        if stream_id is not None:
            self._write(spdy.Data(stream_id, data))

    def finish(self, status: JSON, reader_done: threading.Event) -> None:
        frames: list[spdy.Frame] = [
            spdy.Data(self.streams[kind], b"", spdy.FLAG_FIN)
            for kind in ("stdout", "stderr")
            if kind in self.streams
        ]
        if self.version >= 4:
            payload: bytes | None = json.dumps(status, separators=(",", ":")).encode()
        else:  # v2, v3: the error's text, nothing on success
            payload = None if status.get("status") == "Success" else str(status.get("message", "")).encode()
        if "error" in self.streams:
            frames.append(spdy.Data(self.streams["error"], payload or b"", spdy.FLAG_FIN))
        frames.append(spdy.GoAway(self._last_stream))
        self._write(*frames)
        if not reader_done.wait(timeout=2):
            self.connection.shutdown()

    def read(self, session: _ChannelSession) -> None:
        by_id: dict[int, str] = {}
        resize = bytearray()
        decoder = json.JSONDecoder()
        while True:
            data = self.connection.recv()
            if not data:
                return
            try:
                frames = self.decoder.receive(data)
            except spdy.SpdyError:
                self._write(spdy.GoAway(self._last_stream, spdy.GOAWAY_PROTOCOL_ERROR))
                return
            for frame in frames:
                if isinstance(frame, spdy.SynStream):
                    kind = spdy.header(frame.headers, "streamtype") or ""
                    self._last_stream = max(self._last_stream, frame.stream_id)
                    by_id[frame.stream_id] = kind
                    self.streams[kind] = frame.stream_id
                    self._write(spdy.SynReply(frame.stream_id))
                    if self.expected <= set(self.streams):
                        session.start()
                elif isinstance(frame, spdy.Data):
                    kind = by_id.get(frame.stream_id, "")
                    if kind == "stdin":
                        if frame.data:
                            session.on_stdin(frame.data)
                        if frame.fin:
                            session.on_stdin_closed()
                    elif kind == "resize":
                        resize += frame.data
                        while resize:
                            text = resize.decode(errors="replace").lstrip()
                            try:
                                size, end = decoder.raw_decode(text)
                            except ValueError:
                                break
                            resize[:] = text[end:].encode()
                            session.on_resize(size)
                elif isinstance(frame, spdy.Ping):
                    if frame.ping_id % 2 == 1:
                        self._write(frame)
                elif isinstance(frame, spdy.GoAway):
                    return


def _lookup(store: Any, namespace: str) -> Callable[[str, str], Any]:
    """Finds a Secret or ConfigMap of the namespace (for env ``valueFrom``), or None."""
    from wardgate.dev.kube import catalog

    def find(kind: str, name: str) -> Any:
        resource = catalog.by_kind("v1", kind)
        if resource is None:
            return None
        try:
            return store.find(resource, namespace, name)
        except Exception:  # the store's shape is the double's; a miss only loses an env value
            return None

    return find


# -- port-forward ------------------------------------------------------------------------------------


def declared_ports(pod: JSON) -> set[int]:
    return {
        int(port["containerPort"])
        for container in pod.get("spec", {}).get("containers", [])
        for port in container.get("ports") or []
        if "containerPort" in port
    }


def _refused_message(pod: JSON, port: int) -> str:
    # What a containerd kubelet sends on the error stream when nothing listens on the port.
    uid = pod.get("metadata", {}).get("uid", "")
    name = pod.get("metadata", {}).get("name", "")
    return (
        f"error forwarding port {port} to pod {uid}, uid : failed to execute portforward in network "
        f'namespace "/var/run/netns/cni-{uid}": failed to connect to localhost:{port} inside namespace '
        f'"{name}", IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused IPv6 dial tcp6 '
        f"[::1]:{port}: connect: connection refused "
    )


def hello_response(pod_name: str, port: int) -> bytes:
    body = f"hello from {pod_name}:{port}\n".encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class _Forward:
    """One forwarded connection: its error and data streams (by ``requestid``) and what it has read."""

    port: int
    error_stream: int = 0
    data_stream: int = 0
    request: bytearray = field(default_factory=bytearray)
    answered: bool = False


class PortForwardSession:
    """The server side of port-forward's SPDY session, sans-I/O: ``receive(bytes)`` returns the bytes to
    send back. ``finished`` once the client went away (GOAWAY) or broke the protocol."""

    def __init__(self, pod: JSON) -> None:
        self.pod = pod
        self.pod_name = pod.get("metadata", {}).get("name", "")
        self.ports = declared_ports(pod)
        self.decoder = spdy.FrameDecoder()
        self.encoder = spdy.FrameEncoder()
        self.forwards: dict[str, _Forward] = {}
        self.streams: dict[int, str] = {}  # stream id -> request id
        self.finished = False
        self.last_stream = 0

    def receive(self, data: bytes) -> bytes:
        out: list[spdy.Frame] = []
        try:
            frames = self.decoder.receive(data)
        except spdy.SpdyError:
            self.finished = True
            return self.encoder.encode(spdy.GoAway(self.last_stream, spdy.GOAWAY_PROTOCOL_ERROR))
        for frame in frames:
            self._handle(frame, out)
        return b"".join(self.encoder.encode(frame) for frame in out)

    def _handle(self, frame: spdy.Frame, out: list[spdy.Frame]) -> None:
        if isinstance(frame, spdy.SynStream):
            self._open(frame, out)
        elif isinstance(frame, spdy.Data):
            self._data(frame, out)
        elif isinstance(frame, spdy.Ping):
            if frame.ping_id % 2 == 1:  # the client's (odd) pings are echoed; ours would be even
                out.append(frame)
        elif isinstance(frame, spdy.RstStream):
            request_id = self.streams.pop(frame.stream_id, None)
            if request_id is not None:
                self.forwards.pop(request_id, None)
        elif isinstance(frame, spdy.GoAway):
            self.finished = True
        # SETTINGS, WINDOW_UPDATE, HEADERS, SYN_REPLY: nothing to do for a server of short replies

    def _open(self, frame: spdy.SynStream, out: list[spdy.Frame]) -> None:
        self.last_stream = max(self.last_stream, frame.stream_id)
        kind = spdy.header(frame.headers, "streamtype")
        port_text = spdy.header(frame.headers, "port") or ""
        request_id = spdy.header(frame.headers, "requestid") or ""
        if kind not in ("error", "data") or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            out.append(spdy.RstStream(frame.stream_id, spdy.PROTOCOL_ERROR))
            return
        out.append(spdy.SynReply(frame.stream_id))
        forward = self.forwards.setdefault(request_id, _Forward(int(port_text)))
        self.streams[frame.stream_id] = request_id
        if kind == "error":
            forward.error_stream = frame.stream_id
        else:
            forward.data_stream = frame.stream_id
        if forward.error_stream and forward.data_stream and forward.port not in self.ports:
            message = _refused_message(self.pod, forward.port).encode()
            out.append(spdy.Data(forward.error_stream, message, spdy.FLAG_FIN))
            out.append(spdy.Data(forward.data_stream, b"", spdy.FLAG_FIN))
            forward.answered = True

    def _data(self, frame: spdy.Data, out: list[spdy.Frame]) -> None:
        request_id = self.streams.get(frame.stream_id)
        forward = self.forwards.get(request_id) if request_id is not None else None
        if forward is None or frame.stream_id != forward.data_stream or forward.answered:
            return
        forward.request += frame.data
        if b"\r\n\r\n" in forward.request or frame.fin:
            # The in-process responder: one HTTP/1.1 answer, then both streams end.
            answer = hello_response(self.pod_name, forward.port) if forward.request.strip() else b""
            out.append(spdy.Data(forward.data_stream, answer, spdy.FLAG_FIN))
            out.append(spdy.Data(forward.error_stream, b"", spdy.FLAG_FIN))
            forward.answered = True


def _serve_port_forward_spdy(handler: BaseHTTPRequestHandler, double: Any, pod: JSON) -> None:
    offered = _offered_stream_protocols(handler)
    if PORT_FORWARD_PROTOCOL not in offered:
        _reject(
            handler,
            bad_request(f"port forwarding needs {PORT_FORWARD_PROTOCOL}, got {offered}", 403, "Forbidden"),
        )
        return
    connection = _switch_to_spdy(handler, PORT_FORWARD_PROTOCOL)
    session = PortForwardSession(pod)
    store = double.store
    _track(store, connection)
    try:
        while not session.finished:
            data = connection.recv()
            if not data:
                break
            answer = session.receive(data)
            if answer:
                connection.send(answer)
    except OSError:
        pass
    finally:
        _untrack(store, connection)
        connection.shutdown()


def _serve_port_forward_tunnel(handler: BaseHTTPRequestHandler, double: Any, pod: JSON) -> None:
    websocket = _accept_websocket(
        handler,
        lambda offered: PORT_FORWARD_TUNNEL_PROTOCOL if PORT_FORWARD_TUNNEL_PROTOCOL in offered else None,
    )
    if websocket is None:
        return
    session = PortForwardSession(pod)
    store = double.store
    _track(store, websocket.connection)
    try:
        for message in websocket.messages():
            if isinstance(message, str):
                break  # the tunnel carries SPDY bytes in binary messages only
            answer = session.receive(message)
            if answer:
                websocket.send(answer)
            if session.finished:
                break
        websocket.close()
    except OSError:
        pass
    finally:
        _untrack(store, websocket.connection)
        websocket.connection.shutdown()


# Port-forward over WebSocket channels (the Python client's ``portforward``, older WebSocket clients):
# two channels per forwarded port in the ``ports`` query, data (2i) and error (2i+1), each opened by the
# port number as two little-endian bytes; one connection per port for the life of the WebSocket.
PORT_FORWARD_CHANNEL_PROTOCOLS = ("v4.channel.k8s.io", "v4.base64.channel.k8s.io")


def forwarded_ports(query: dict[str, list[str]]) -> list[int]:
    """The ``ports`` query (repeated or comma-separated), or Refused as the kubelet answers a bad one."""
    ports: list[int] = []
    for value in query.get("ports") or []:
        for item in value.split(","):
            if not item.strip().isdigit() or not 0 < int(item) < 65536:
                raise Refused(bad_request(f"invalid port {item!r}"))
            ports.append(int(item))
    if not ports:
        raise Refused(bad_request('query parameter "ports" is required'))
    return ports


def _serve_port_forward_channels(
    handler: BaseHTTPRequestHandler, double: Any, pod: JSON, query: dict[str, list[str]]
) -> None:
    try:
        ports = forwarded_ports(query)
    except Refused as refused:
        _reject(handler, refused.status)
        return

    def choose(offered: list[str]) -> str | None:
        if not offered:
            return ""
        return next((name for name in offered if name in PORT_FORWARD_CHANNEL_PROTOCOLS), None)

    websocket = _accept_websocket(handler, choose)
    if websocket is None:
        return
    protocol = CHANNEL_PROTOCOLS[websocket.subprotocol or "channel.k8s.io"]
    store = double.store
    _track(store, websocket.connection)
    pod_name = pod.get("metadata", {}).get("name", "")
    declared = declared_ports(pod)
    requests = [bytearray() for _ in ports]
    answered = [False for _ in ports]
    try:
        for index, port in enumerate(ports):
            for channel in (2 * index, 2 * index + 1):
                websocket.send(encode_channel(protocol, channel, port.to_bytes(2, "little")))
            if port not in declared:
                websocket.send(encode_channel(protocol, 2 * index + 1, _refused_message(pod, port).encode()))
                answered[index] = True
        for message in websocket.messages() if not all(answered) else iter(()):
            try:
                channel, data = decode_channel(protocol, message)
            except ValueError:
                continue
            index = channel // 2
            if channel % 2 or index >= len(ports) or answered[index]:
                continue
            requests[index] += data
            if b"\r\n\r\n" in requests[index]:
                websocket.send(encode_channel(protocol, channel, hello_response(pod_name, ports[index])))
                answered[index] = True
            if all(answered):
                break
        websocket.close()  # every forwarded connection ended: so does the WebSocket, as the kubelet's
    except OSError:
        pass
    finally:
        _untrack(store, websocket.connection)
        websocket.connection.shutdown()
