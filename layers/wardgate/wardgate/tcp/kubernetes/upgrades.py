"""exec, attach and port-forward: decided before anything reaches the cluster, then relayed.

* **exec**: the request's ``command`` argv (``sh -c``/``bash -c`` scripts through the shell
  parser, as on the SSH path; ``kubectl cp`` runs ``tar``) is decided by the connection's
  ``shell`` rules, and the request itself by its ``k8s`` rules as ``create pods/exec`` (what the
  API server checks: the WebSocket GET also needs ``create`` since Kubernetes 1.35, and kubectl's
  SPDY form is a POST). A terminal (``-t``) needs a shell rule naming the feature ``pty``, as on
  SSH. **attach** with stdin hands the agent's keystrokes to a running process: it needs a rule
  naming ``interactive_shell``. ``require_approval`` holds the exact command for this pod; once
  approved, the identical command by the same identity runs once.
* Refused: a 403 ``Status`` before the upgrade (kubectl 1.30+ prints ``Error from server
  (Forbidden): <policy's message>``, and does not fall back to SPDY on a Status), recorded;
  nothing reaches the cluster.
* Allowed: the cluster is asked for the client's WebSocket subprotocol (``v5.channel.k8s.io``,
  ``v4.channel.k8s.io``), and the messages are relayed both ways through wsproto on each side;
  stdout and stderr are masked (``TerminalStream``: values split across messages are held back
  until the program is quiet); with a terminal, output (masked), input (masked) and resizes are
  recorded as asciicast frames, as SSH terminals are. The kill switch ends a live exec: the client
  gets a Failure Status on the error channel (kubectl prints it) and the connection closes.
* **port-forward** (WebSocket-tunnelled SPDY since kubectl 1.31, or a SPDY upgrade): decided as
  ``create pods/portforward`` (the ``no-pod-exec`` pack refuses it); allowed, the upgraded
  connection is relayed opaquely and recorded (pod, ports, bytes each way, duration).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import dataclasses
import shlex
import time
from typing import Any
from urllib.parse import parse_qsl

from wsproto import ConnectionType
from wsproto.connection import Connection as WebSocket
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.utilities import LocalProtocolError

from wardgate.apigw import HttpResponse
from wardgate.approvals.service import ApprovalRequired
from wardgate.errors import BadRequest, Forbidden, GatewayError
from wardgate.gate import RECORDED_REQUEST_MASKING, decide_on
from wardgate.masking.engine import MaskingProfile, mask_text
from wardgate.masking.terminal import TerminalStream
from wardgate.operations import UnparseableOperation
from wardgate.operations.k8s import K8sOperation
from wardgate.operations.shell import ShellCommand, ShellOperation, parse_shell
from wardgate.policy.engine import Decision, PolicySet
from wardgate.policy.rules import SEVERITY
from wardgate.proxies import http as http_proxy
from wardgate.tcp.guard import HeldOperation, claim_or_hold_approval, cut
from wardgate.tcp.kubernetes import channels
from wardgate.tcp.kubernetes.listener import UPGRADE_SUBRESOURCES as UPGRADES
from wardgate.tcp.kubernetes.listener import Incoming, KubeConnection
from wardgate.tcp.kubernetes.session import StreamSession, operation_record, recorded_request
from wardgate.tcp.kubernetes.status import error_status
from wardgate.tcp.kubernetes.upstream import UpstreamStream, open_stream
from wardgate.tcp.sessions import first_to_end

READ_CHUNK = 64 * 1024
QUIET_S = 0.05  # output held back for masking is sent once the program is this long quiet
RECORDED_OUTPUT_BYTES = 16 * 1024
MAX_MESSAGE = 16 * 1024 * 1024
PTY, INTERACTIVE_SHELL = "pty", "interactive_shell"
SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh"})
INTERPRETERS = frozenset({"python", "perl", "ruby", "node", "php", "lua", "irb"})
TERMINAL_CHANNEL = 1  # an exec is one terminal: its record's channel (SSH numbers its channels)
# The cluster's 101 headers the client needs (the rest are the cluster's own business).
SWITCH_HEADERS = (
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "x-stream-protocol-version",
)
# The client's handshake headers the cluster needs; the agent's Authorization never goes.
HANDSHAKE_HEADERS = ("sec-websocket-key", "sec-websocket-version", "x-stream-protocol-version")


def websocket_required() -> BadRequest:
    return BadRequest(
        "exec and attach are served over WebSocket (v5.channel.k8s.io or v4.channel.k8s.io): use kubectl "
        "1.30 or later",
        code="websocket_required",
    )


def _flag(params: list[tuple[str, str]], name: str) -> bool:
    values = [v for k, v in params if k == name]
    return bool(values) and values[-1].lower() in ("true", "1")


def _feature_operation(feature: str) -> ShellOperation:
    """What the shell rules decide for a terminal or an attached stdin (as SSH decides terminals)."""
    name = f"<{feature}>"
    command = ShellCommand(
        argv=(name,), program=name, effective_programs=(name,), operator=None, redirects=()
    )
    return ShellOperation(text=name, commands=(command,), features=(feature,))


def reads_commands_from_stdin(argv: tuple[str, ...]) -> bool:
    """Whether an exec runs a shell or interpreter that takes its program from stdin (``sh``,
    ``bash -i``, ``python3``...): with stdin attached, that is an interactive shell, whose
    commands policy never sees."""
    if not argv:
        return False
    program = argv[0].rsplit("/", 1)[-1]
    if program == "busybox" and len(argv) > 1:
        program, argv = argv[1], argv[1:]
    if program in SHELLS:
        return "-c" not in argv[1:]
    if program.rstrip("0123456789.") in INTERPRETERS:
        operands = [arg for arg in argv[1:] if not arg.startswith("-")]
        return not operands or "-" in argv[1:] or "-i" in argv[1:]
    return False


def _mask_shell_record(record: dict[str, Any]) -> None:
    """A command as recorded: its text and arguments masked like a request body (values in argv
    are values), as SQL statement texts are."""
    record["text"] = mask_text(record["text"], RECORDED_REQUEST_MASKING).value
    for command in record.get("commands", []):
        command["argv"] = [mask_text(arg, RECORDED_REQUEST_MASKING).value for arg in command["argv"]]


def _worst(decisions: list[Decision]) -> Decision:
    worst = decisions[0]
    for decision in decisions[1:]:
        if SEVERITY[decision.outcome] > SEVERITY[worst.outcome]:
            worst = decision
    return worst


class UpgradeSession(StreamSession):
    """One exec, attach or port-forward through the listener."""

    def __init__(self, client: KubeConnection, request: Incoming, connection_name: str) -> None:
        super().__init__(client.services, connection_name, client.peer)
        self.client = client
        self.request = request
        self.params = parse_qsl(request.query, keep_blank_values=True)
        self.protocol = ""  # the WebSocket subprotocol of an exec or attach
        self.upstream: UpstreamStream | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.spdy_fallback = False  # an exec or attach asked over SPDY
        self.client_early = b""  # what the client sent after its upgrade request (the new protocol's)
        self.command_text: str | None = None  # an exec's command (shlex-joined argv), masked
        self.decided: dict[str, Any] = {}  # the decision as recorded
        self.offered: list[str] = []

    # ------------------------------------------------------------------ deciding
    async def serve(self, proxy_path: str, operation: K8sOperation | None) -> None:
        what = recorded_request(self.request.method, proxy_path, self.request.query)
        try:
            await self.admit(self.request.headers.get("authorization"))
            if operation is None or operation.resource != "pods" or operation.subresource not in UPGRADES:
                raise BadRequest(
                    "only exec, attach and portforward of a pod are upgraded connections", code="bad_upgrade"
                )
            if operation.name is None or operation.namespace is None:
                raise BadRequest("exec, attach and portforward name a pod in a namespace", code="bad_upgrade")
            self._check_handshake(operation.subresource or "")
            if self.spdy_fallback:
                remembered = self.client.listener.refusal(self._refusal_key(proxy_path))
                if remembered is not None:  # this very exec was refused over WebSocket just now
                    answer, code = remembered
                    again = "kubectl's SPDY retry of a refused WebSocket upgrade, answered alike"
                    await self.refused(GatewayError(again, code=code), request=what)
                    await self.client.respond(answer, close=True)
                    return
            policy_set = await self.services.policy_set()
            operation = dataclasses.replace(operation, verb="create", authorized_verbs=("create",))
            recorded, decided, profile = await self._decide(policy_set, operation)
            if self.spdy_fallback:
                raise websocket_required()
            path = http_proxy.normalise_path(proxy_path)
            query = http_proxy.check_query(self.request.query)
            credential = await self._credential()
            await self.open(
                request=what, pod=f"{operation.namespace}/{operation.name}", subresource=operation.subresource
            )
            self.record.statements += 1
            self.decided = decided
            await self.services.recorder.write(self.record, "command", operation=recorded, decision=decided)
        except GatewayError as refused:
            if self.admitted:  # live already (its command could not be recorded): it ends, refused
                self.record.outcome, self.record.reason = "refused", refused.code
                self.ended_reason = refused.message
                await self.close()
            else:
                await self.refused(refused, request=what)
            answer = error_status(refused, self.record.record_id)
            self._remember(proxy_path, operation, answer, refused.code)
            await self.client.respond(answer, close=True)
            return
        started = time.perf_counter()
        result: dict[str, Any] = {"command_seq": self.record.seq}
        try:
            await self._connect(operation, path, query, credential, result)
            if self.upstream is not None and self.upstream.upgraded:
                if operation.subresource == "portforward":
                    await self._splice()
                else:
                    await Relay(self, profile).run(result)
        finally:
            if self.upstream is not None:
                self.upstream.close()
            result["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
            result["bytes_from_client"], result["bytes_to_client"] = self.bytes_in, self.bytes_out
            self.services.recorder.write_later(self.record, "command_result", self.recording_failed, **result)
            await self.close()

    def _remember(self, path: str, operation: K8sOperation | None, answer: HttpResponse, code: str) -> None:
        """A refused WebSocket exec or attach of a known identity: kubectl retries it over SPDY at
        once, and the retry gets this same answer (not decided again: one record, one approval
        request)."""
        known = hasattr(self, "connection")  # admitted: identity and connection are set
        websocket = self.request.headers.get("upgrade", "").lower() == "websocket"
        if known and websocket and operation is not None and operation.subresource in ("exec", "attach"):
            with contextlib.suppress(GatewayError):
                self.client.listener.remember_refusal(self._refusal_key(path), answer, code)

    def _refusal_key(self, path: str) -> tuple[str, ...]:
        """Who asked for which exec: kubectl's SPDY retry asks for the very same path and query."""
        normalised = http_proxy.normalise_path(path)
        identity = (self.identity.issuer, self.identity.subject)
        return (*identity, self.connection.name, normalised, self.request.query)

    def _check_handshake(self, subresource: str) -> None:
        upgrade = self.request.headers.get("upgrade", "").lower()
        if subresource == "portforward":
            if upgrade not in ("websocket", "spdy/3.1"):
                raise BadRequest(
                    f"port-forward upgrades to WebSocket or SPDY/3.1, not {upgrade[:40]!r}",
                    code="bad_upgrade",
                )
            return
        if upgrade == "spdy/3.1":
            # kubectl 1.32 falls back to SPDY when its WebSocket upgrade is refused (any non-101): the
            # SPDY attempt is decided again, so that a refusal reaches kubectl as the Status it prints
            # ("Error from server (Forbidden): <the policy's message>"); allowed, it is refused all
            # the same (SPDY exec is not relayed: wardgate could not mask it), see websocket_required.
            self.spdy_fallback = True
            return
        if upgrade != "websocket":
            raise websocket_required()
        offered = [p.strip() for p in self.request.headers.get("sec-websocket-protocol", "").split(",")]
        served = [p for p in offered if p in channels.SERVED]
        if not served:
            raise BadRequest(
                "none of the offered WebSocket subprotocols is served: wardgate speaks "
                + ", ".join(channels.SERVED),
                code="websocket_protocol",
            )
        self.offered = served

    async def _decide(
        self, policy_set: PolicySet, operation: K8sOperation
    ) -> tuple[dict[str, Any], dict[str, Any], MaskingProfile]:
        """The k8s decision on the request, and for exec the shell decision on its command (and on
        a terminal); the worst wins. Returns the operation and decision as recorded."""
        recorded: dict[str, Any] = operation_record(operation)
        decisions = [decide_on(policy_set, self.identity, self.connection, operation)]
        command = ""
        stdin, tty = _flag(self.params, "stdin"), _flag(self.params, "tty")
        if operation.subresource == "exec":
            argv = list(operation.exec_command)
            if not argv:
                raise BadRequest("exec needs a command", code="bad_upgrade")
            command = shlex.join(argv)
            self.command_text = mask_text(command, RECORDED_REQUEST_MASKING).value
            shell: ShellOperation | UnparseableOperation
            try:
                shell = parse_shell(command)
                recorded["shell"] = shell.to_record()
            except UnparseableOperation as unparseable:
                shell = unparseable
                recorded["shell"] = {"protocol": "shell", "text": command, "unparseable": unparseable.reason}
            _mask_shell_record(recorded["shell"])
            decisions.append(policy_set.decide(self.identity, self.connection.name, "shell", shell))
        features = [PTY] if tty and operation.subresource == "exec" else []
        if stdin and (operation.subresource == "attach" or reads_commands_from_stdin(operation.exec_command)):
            features.append(INTERACTIVE_SHELL)  # what it is told on stdin is not decided one by one
        for feature in features:
            decisions.append(self._feature_grant(policy_set, feature))
        recorded.update(stdin=stdin, tty=tty, container=_value(self.params, "container"))
        decision = _worst(decisions)
        if decision.outcome == "require_approval" and self.spdy_fallback:
            raise websocket_required()  # never claim an approval for an exec that cannot be relayed
        if decision.outcome == "require_approval":
            held_text = f"{operation.subresource} {operation.namespace}/{operation.name}"
            held_text += f" -c {_value(self.params, 'container')}" if _value(self.params, "container") else ""
            held_text += f" tty={tty} stdin={stdin} -- {command}"
            approval = await self._approval(policy_set, decision, held_text, recorded)
            return (
                recorded,
                {**decision.to_record(), "outcome": "allow", **approval},
                self.profile_of(policy_set),
            )
        if decision.outcome != "allow":
            raise Forbidden(decision.reason, code="denied_by_policy")
        return recorded, decision.to_record(), self.profile_of(policy_set)

    def _feature_grant(self, policy_set: PolicySet, feature: str) -> Decision:
        """Allowed only by an allow rule naming ``feature`` itself, so a broad rule
        (``programs: ["*"]``) never opens a terminal by accident (as on SSH)."""
        decision = policy_set.decide(
            self.identity, self.connection.name, "shell", _feature_operation(feature)
        )
        named = any(
            feature in [str(f).lower() for f in (rule.conditions.get("features") or [])]
            for rule in policy_set.rules
            if rule.name == decision.rule and rule.effect == "allow"
        )
        if decision.outcome == "allow" and not named:
            return Decision(
                "deny",
                f"{'terminals (-t)' if feature == PTY else 'attaching stdin (-i)'} are not allowed on "
                f"connection {self.connection.name!r}: policy grants them with a shell rule naming the "
                f"feature {feature!r}",
                "wardgate.kubernetes",
                policy_set.version,
            )
        return decision

    async def _approval(
        self, policy_set: PolicySet, decision: Decision, text: str, recorded: dict[str, Any]
    ) -> dict[str, Any]:
        desk = self.services.gate.approvals
        if desk is None:
            raise Forbidden(
                f"{decision.reason}; approvals are not configured, so it is refused", code="approval_required"
            )
        required = ApprovalRequired(decision, policy_set, decision.reason)
        held = HeldOperation("kubernetes", "EXEC", text, [], recorded, self.record.client)
        answer = await asyncio.to_thread(
            claim_or_hold_approval, desk, required, self.identity, self.connection, self.record, held
        )
        if "pending" in answer:
            raise Forbidden(
                f"{decision.reason}: this needs approval: request {answer['pending']} is pending "
                f"({answer['poll_url']}); once it is approved, run the identical command again and it "
                "runs, once",
                code="approval_pending",
            )
        return dict(answer)

    async def _credential(self) -> Any:
        secret = self.connection.credential_secret
        if not secret:
            return None
        return await asyncio.to_thread(self.services.credentials.get, secret)

    # ------------------------------------------------------------------ connecting
    async def _connect(
        self, operation: K8sOperation, path: str, query: str, credential: Any, result: dict[str, Any]
    ) -> None:
        """The same upgrade asked of the cluster; its 101 relayed to the client, or its refusal."""
        headers = {k: v for k, v in self.request.headers.items() if k in HANDSHAKE_HEADERS}
        headers.update(upgrade=self.request.headers["upgrade"], connection="Upgrade")
        if operation.subresource == "portforward":
            if "sec-websocket-protocol" in self.request.headers:
                headers["sec-websocket-protocol"] = self.request.headers["sec-websocket-protocol"]
        else:
            headers["sec-websocket-protocol"] = ", ".join(self.offered)
        headers["x-wardgate-request-id"] = self.record.record_id
        limits = self.services.limits
        try:
            self.upstream = await open_stream(
                self.connection,
                credential,
                self.request.method,
                path,
                query,
                headers,
                limits.backend_connect_timeout_s,
            )
        except GatewayError as failed:  # the cluster cannot be reached: kubectl's SPDY retry hears so too
            result["error"] = {"code": failed.code, "message": failed.message}
            unreachable = error_status(failed, self.record.record_id)
            self._remember(path, operation, unreachable, failed.code)
            await self.client.respond(unreachable, close=True)
            return
        upstream = self.upstream
        if not upstream.upgraded:
            body = await upstream.read_all()
            content_type = upstream.header("content-type") or "application/json"
            masked = mask_text(
                body.decode("utf-8", "replace"), self.profile_of(await self.services.policy_set())
            )
            result["error"] = {
                "code": "cluster_refused",
                "message": cut(masked.value, 1024),
                "status": upstream.status,
            }
            refusal = HttpResponse(upstream.status, {"content-type": content_type}, masked.value.encode())
            self._remember(path, operation, refusal, "cluster_refused")
            await self.client.respond(refusal, close=True)
            return
        self.protocol = upstream.header("sec-websocket-protocol")
        if operation.subresource != "portforward" and self.protocol not in channels.SERVED:
            result["error"] = {"code": "cluster_protocol", "message": f"the cluster chose {self.protocol!r}"}
            upstream.upgraded = False
            await self.client.respond(
                error_status(
                    GatewayError("the cluster chose no served subprotocol", code="cluster_protocol")
                ),
                close=True,
            )
            return
        switch = [(k, v) for k, v in upstream.headers if k in SWITCH_HEADERS]
        self.client_early = self.client.switch_protocols(switch)
        await self.client.writer.drain()

    # ------------------------------------------------------------------ relaying
    async def _splice(self) -> None:
        """port-forward: both directions as they are (recorded: byte counts, duration)."""
        upstream = self.upstream
        assert upstream is not None

        async def pipe(
            reader: asyncio.StreamReader, first: bytes, writer: asyncio.StreamWriter, inbound: bool
        ) -> None:
            data = first
            while True:
                if data:
                    writer.write(data)
                    if inbound:
                        self.bytes_in += len(data)
                    else:
                        self.bytes_out += len(data)
                    await writer.drain()
                data = await reader.read(READ_CHUNK)
                if not data:
                    return

        tasks = [
            asyncio.create_task(pipe(self.client.reader, self.client_early, upstream.writer, True)),
            asyncio.create_task(pipe(upstream.reader, upstream.trailing, self.client.writer, False)),
            asyncio.create_task(self.wait_ended()),
        ]
        with contextlib.suppress(ConnectionError, OSError):
            await first_to_end(tasks)


def _value(params: list[tuple[str, str]], name: str) -> str:
    values = [v for k, v in params if k == name]
    return values[-1] if values else ""


class Relay:
    """exec and attach: WebSocket messages both ways, output masked, a terminal recorded."""

    def __init__(self, session: UpgradeSession, profile: MaskingProfile) -> None:
        self.session = session
        self.profile = profile
        self.protocol = session.protocol
        assert session.upstream is not None
        self.upstream = session.upstream
        self.client = session.client
        self.to_client = WebSocket(ConnectionType.SERVER)
        self.to_cluster = WebSocket(ConnectionType.CLIENT)
        self.streams = {channels.STDOUT: TerminalStream(profile), channels.STDERR: TerminalStream(profile)}
        self.decoders = {
            ch: codecs.getincrementaldecoder("utf-8")(errors="surrogateescape") for ch in self.streams
        }
        self.tty = _flag(session.params, "tty")
        self.output: list[str] = []
        self.kept = 0
        self.exit_code: int | None = None
        self.cluster_error = b""
        self.screen_started = 0.0
        self.terminal_open = False  # terminal_start written (at the first resize or frame)

    async def run(self, result: dict[str, Any]) -> None:
        session = self.session
        tasks = [
            asyncio.create_task(self._from_client(session.client_early)),
            asyncio.create_task(self._from_cluster()),
            asyncio.create_task(session.wait_ended()),
        ]
        failure: BaseException | None = None
        try:
            await first_to_end(tasks)
        except (ConnectionError, OSError):
            pass
        except channels.ChannelError as bad:
            failure = bad
        if session.ended_reason is not None:
            self._send_client(
                channels.encode(
                    channels.ERROR, channels.failure(f"wardgate: session ended: {session.ended_reason}")
                )
            )
        elif failure is not None:
            result["error"] = {"code": "channel_error", "message": str(failure)}
            self._send_client(
                channels.encode(channels.ERROR, channels.failure(f"wardgate: {failure}", "BadRequest", 400))
            )
        self._close_both()
        with contextlib.suppress(Exception):
            await self.client.writer.drain()
        if self.tty and self.terminal_open:
            self._record("terminal_end", channel=TERMINAL_CHANNEL, exit_status=self.exit_code)
        result["exit_status"] = self.exit_code
        result["output"] = "".join(self.output)
        masked: dict[str, int] = {}
        for stream in self.streams.values():
            for name, n in stream.counts.items():
                masked[name] = masked.get(name, 0) + n
        if masked:
            result["masked"] = masked
        if self.cluster_error and self.exit_code is None:
            result["error"] = {
                "code": "cluster_error",
                "message": cut(self.cluster_error.decode("utf-8", "replace"), 1024),
            }

    # -- plumbing
    def _record(self, kind: str, **fields: Any) -> None:
        session = self.session
        session.services.recorder.write_later(session.record, kind, session.recording_failed, **fields)

    def _open_terminal(self, width: int, height: int) -> None:
        """``terminal_start`` in the SSH terminals' shape (docs/recording-format.md), sized by the
        client's first resize (kubectl sends one at once) or 80x24 when output came first."""
        self.terminal_open = True
        self.screen_started = time.monotonic()
        session = self.session
        self._record(
            "terminal_start",
            channel=TERMINAL_CHANNEL,
            width=width,
            height=height,
            term=None,  # an exec carries no TERM
            command=session.command_text,
            decision=session.decided,
            subprotocol=self.protocol,
        )

    def _frame(self, code: str, data: str) -> None:
        if not self.terminal_open:
            self._open_terminal(80, 24)
        text = data.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        self._record(
            "terminal_output",
            channel=TERMINAL_CHANNEL,
            frames=[[round(time.monotonic() - self.screen_started, 6), code, text]],
        )

    def _send_client(self, message: bytes) -> None:
        with contextlib.suppress(LocalProtocolError):
            data = self.to_client.send(BytesMessage(data=message))
            self.session.bytes_out += len(message)
            self.client.writer.write(data)

    def _send_cluster(self, message: bytes) -> None:
        with contextlib.suppress(LocalProtocolError):
            self.upstream.writer.write(self.to_cluster.send(BytesMessage(data=message)))

    def _close_both(self) -> None:
        for ws, writer in ((self.to_client, self.client.writer), (self.to_cluster, self.upstream.writer)):
            if ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
                with contextlib.suppress(LocalProtocolError, RuntimeError):
                    writer.write(ws.send(CloseConnection(code=1000)))

    async def _from_client(self, early: bytes) -> None:
        pending = bytearray()
        data: bytes | None = early
        while True:
            if data:
                self.to_client.receive_data(data)
            for event in self.to_client.events():
                if isinstance(event, BytesMessage):
                    pending += event.data
                    if len(pending) > MAX_MESSAGE:
                        raise channels.ChannelError("a message from the client is too large")
                    if event.message_finished:
                        self._client_message(bytes(pending))
                        pending.clear()
                elif isinstance(event, TextMessage):
                    raise channels.ChannelError("text messages are not part of the channel protocol")
                elif isinstance(event, Ping):
                    self.client.writer.write(self.to_client.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if event.code not in (1000, 1005, 1006):
                        raise channels.ChannelError(
                            f"the client's WebSocket failed: {event.reason or event.code}"
                        )
                    return
            await self.upstream.writer.drain()
            data = await self.client.reader.read(READ_CHUNK)
            if not data:
                return

    def _client_message(self, message: bytes) -> None:
        frame = channels.decode(message, self.protocol)
        self.session.bytes_in += len(frame.data)
        if frame.channel == channels.STDIN and self.tty and frame.data:
            self._frame("i", mask_text(frame.data.decode("utf-8", "surrogateescape"), self.profile).value)
        elif frame.channel == channels.RESIZE and self.tty:
            size = channels.resize_of(frame.data)
            if size is not None and not self.terminal_open:
                self._open_terminal(*size)
            elif size is not None:
                self._frame("r", f"{size[0]}x{size[1]}")
        elif frame.channel in (channels.STDOUT, channels.STDERR, channels.ERROR):
            raise channels.ChannelError(f"the client may not write to channel {frame.channel}")
        self._send_cluster(message)

    async def _from_cluster(self) -> None:
        pending = bytearray()
        data: bytes | None = self.upstream.trailing
        while True:
            if data:
                self.to_cluster.receive_data(data)
            for event in self.to_cluster.events():
                if isinstance(event, BytesMessage):
                    pending += event.data
                    if len(pending) > MAX_MESSAGE:
                        raise channels.ChannelError("a message from the cluster is too large")
                    if event.message_finished:
                        self._cluster_message(bytes(pending))
                        pending.clear()
                elif isinstance(event, Ping):
                    self.upstream.writer.write(self.to_cluster.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self._flush()
                    return
            await self.client.writer.drain()
            try:
                data = await asyncio.wait_for(self.upstream.reader.read(READ_CHUNK), QUIET_S)
            except TimeoutError:
                self._flush()
                await self.client.writer.drain()
                data = await self.upstream.reader.read(READ_CHUNK)
            if not data:
                self._flush()
                return

    def _cluster_message(self, message: bytes) -> None:
        frame = channels.decode(message, self.protocol)
        if frame.channel in self.streams and not frame.data:
            self._send_client(message)  # the kubelet's empty first message: "connected"
            return
        if frame.channel in self.streams:
            text = self.streams[frame.channel].feed(self.decoders[frame.channel].decode(frame.data))
            self._output(frame.channel, text)
            return
        if frame.channel == channels.ERROR:
            self._flush()
            self.cluster_error = frame.data
            self.exit_code = channels.exit_code_of(frame.data)
        elif frame.closes in self.streams:
            self._flush_channel(frame.closes)  # type: ignore[arg-type]
        self._send_client(message)

    def _output(self, channel: int, text: str) -> None:
        if not text:
            return
        if self.kept < RECORDED_OUTPUT_BYTES:
            part = text[: RECORDED_OUTPUT_BYTES - self.kept]
            self.output.append(part.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
            self.kept += len(part)
        if self.tty:
            self._frame("o", text)
        self._send_client(channels.encode(channel, text.encode("utf-8", "surrogateescape")))

    def _flush_channel(self, channel: int) -> None:
        stream = self.streams[channel]
        self._output(channel, stream.feed(self.decoders[channel].decode(b"", final=False)) + stream.close())

    def _flush(self) -> None:
        for channel in self.streams:
            self._flush_channel(channel)


async def serve_upgrade(
    client: KubeConnection,
    request: Incoming,
    connection_name: str,
    proxy_path: str,
    operation: K8sOperation | None,
) -> None:
    await UpgradeSession(client, request, connection_name).serve(proxy_path, operation)
