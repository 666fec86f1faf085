"""The SSH listener: one ``SshSession`` (an asyncssh ``SSHServer``) per client connection.

The SSH user name is the wardgate connection's name (``ssh <connection>@gateway cmd``). The client
authenticates with its OIDC token as the password (or keyboard-interactive, SSH_ASKPASS), or with
an OpenSSH user certificate signed by wardgate's SSH CA (``wardgate.sshca``) when the CA is
configured. Either way the identity then goes through the agent registry and the connection's
groups, as on every other listener; a refusal is sent as the authentication banner (OpenSSH
prints it) and recorded.

What is served (docs/ssh-gateway.md):

* exec requests: the command is parsed (``parse_shell``) and decided by policy (protocol
  ``shell``); allowed, its ``command`` event is durable first, then it runs on the target over a
  new connection there (``target.py``: the pinned host key only), stdout and stderr streamed back
  masked (``TerminalStream``: values straddling chunks are held back), exit status or signal
  relayed. Refused: the reason on stderr, exit status 126, nothing sent to the target.
* terminals (an interactive shell, a pty): only where an allow rule names the feature
  (``interactive_shell``, ``pty``); relayed with resizes and signals, recorded as asciicast frames.
* SFTP (and OpenSSH 9's ``scp``, which speaks it) where a rule names ``sftp_read``/``sftp_write``:
  each file operation decided on its target-resolved path (``sftp.py``); otherwise refused.
* not served, refused with a message: other subsystems, legacy ``scp -O``, port forwarding of every
  kind, agent and X11 forwarding.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import asyncssh
from asyncssh.public_key import decode_ssh_certificate

from wardgate.approvals.service import ApprovalRequired
from wardgate.connections import Connection
from wardgate.errors import Forbidden, GatewayError, NotFound, Unauthorized
from wardgate.gate import decide_on
from wardgate.identity import Identity
from wardgate.masking.engine import MaskingProfile
from wardgate.masking.terminal import TerminalStream, mask_terminal
from wardgate.observability import logger
from wardgate.operations import UnparseableOperation
from wardgate.operations.shell import ShellCommand, ShellOperation, parse_shell
from wardgate.policy.engine import Decision, PolicySet
from wardgate.sshca import SshCertificateAuthority
from wardgate.tcp.guard import HeldOperation, claim_or_hold_approval
from wardgate.tcp.recorder import SessionRecord
from wardgate.tcp.services import TcpServices
from wardgate.tcp.ssh.sftp import SftpProxy, sftp_enabled
from wardgate.tcp.ssh.target import Begun, EarlyConnection, SshTarget, connect_target
from wardgate.tcp.ssh.wire import Listener

PROTOCOL = "ssh"
ROUTE = "ssh"  # the connection kind this listener serves
EXIT_REFUSED = 126  # wardgate refused the command (policy, approval, recording): it never ran
EXIT_TARGET = 255  # the target could not be reached (what ssh itself exits with for its errors)
RECORDED_OUTPUT_BYTES = 16 * 1024  # of each command's output (masked), in its result event
READ_CHUNK = 64 * 1024
QUIET_S = 0.05  # output held back for masking is sent once the program is this long quiet
# Programs refused whatever policy says: they carry files, and file transfer is not governed yet.
UNSERVED_PROGRAMS = {"scp": "scp", "sftp-server": "SFTP", "sftp": "SFTP"}


class SshSession(asyncssh.SSHServer):
    """One client's SSH connection: authentication, then its channels. A ``LiveSession``."""

    identity: Identity
    connection: Connection

    def __init__(
        self,
        services: TcpServices,
        authority: SshCertificateAuthority | None = None,
        track: Callable[[asyncio.Future[Any]], None] | None = None,
    ) -> None:
        self.services = services
        self.track = track  # the gateway awaits what it is given at shutdown
        self.authority = authority  # None: certificates are not accepted (no CA configured)
        self.limits = services.limits
        self.record = SessionRecord(PROTOCOL, "unknown", "")
        self.opened_at = time.monotonic()
        self.verified_at = self.opened_at
        self.admitted = False
        self.ended_reason: str | None = None
        self.conn: asyncssh.SSHServerConnection | None = None
        self.target: SshTarget | None = None
        self.early: EarlyConnection | None = None  # the target's connection, begun at login (target.py)
        self.channels = 0
        self.open_channels: set[asyncssh.SSHServerProcess[bytes]] = set()
        self._channel_tasks: set[asyncio.Task[Any]] = set()
        self._closing: asyncio.Task[None] | None = None
        self._lifetime: asyncio.Future[None] | None = None  # done once the session's end is recorded

    # ------------------------------------------------------------------ connection
    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername") or ("?", 0)
        self.record.client = f"{peer[0]}:{peer[1]}"
        conn.set_extra_info(wardgate_session=self)
        if self.authority is not None:  # certificates: see begin_auth
            checked = conn.validate_public_key

            async def validate_public_key(
                username: str, key_data: bytes, msg: bytes, signature: bytes
            ) -> bool:
                return await self._validate_certificate(checked, username, key_data, msg, signature)

            setattr(conn, "validate_public_key", validate_public_key)  # noqa: B010 - see above

    def connection_lost(self, exc: Exception | None) -> None:
        self._abandon_early()
        for task in self._channel_tasks:  # the client is gone: so is what it ran (target closed)
            task.cancel()
        if self.admitted and self._closing is None:
            self._closing = asyncio.get_event_loop().create_task(self._close())

    async def _close(self) -> None:
        try:
            await self._record_end()
        finally:
            if self._lifetime is not None and not self._lifetime.done():
                self._lifetime.set_result(None)

    async def _record_end(self) -> None:
        self.services.sessions.discard(self)
        reason = self.ended_reason or "the client closed the session"
        record = self.record
        await self.services.recorder.end(
            record, reason, self.opened_at, commands=record.statements, refused=record.refused
        )

    def terminate(self, reason: str, code: str) -> None:
        """The kill switch, a lifetime, shutdown: the client sees ``reason`` as the disconnect."""
        if self.ended_reason is not None:
            return
        self.ended_reason = reason
        self.record.outcome, self.record.reason = "ended", code
        for process in list(self.open_channels):  # clients print stderr, not always a disconnect's text
            with contextlib.suppress(Exception):
                process.stderr.write(f"\r\nwardgate: session ended: {reason}\r\n".encode())
                process.exit(EXIT_TARGET)
        if self.conn is not None:
            self.conn.disconnect(asyncssh.DISC_BY_APPLICATION, f"wardgate: {reason}")

    # ------------------------------------------------------------------ authentication
    def begin_auth(self, username: str) -> bool:
        self.record.connection = username
        if self.authority is not None and self.conn is not None:
            # asyncssh checks a certificate's signatures, validity window and key possession against
            # this trust entry (any principal: the identity in its key id decides); it hands its
            # server no certificate, so connection_made reads the offered key blob on its way in.
            entry = f'cert-authority,principals="*" {self.authority.public_key_line()}\n'
            self.conn.set_authorized_keys(asyncssh.import_authorized_keys(entry))
        return True  # every client authenticates

    def password_auth_supported(self) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return self.authority is not None

    async def _validate_certificate(
        self,
        checked: Callable[[str, bytes, bytes, bytes], Awaitable[bool]],
        username: str,
        key_data: bytes,
        msg: bytes,
        signature: bytes,
    ) -> bool:
        """A public key offered for ``username``: only a user certificate of wardgate's SSH CA, whose
        key id names the identity (``sshca.identity_from_certificate``: CA, type, validity, principal);
        asyncssh's own check (``checked``) proves the client holds its key."""
        assert self.authority is not None
        if self.admitted:
            return False
        try:
            certificate = decode_ssh_certificate(key_data)
        except asyncssh.KeyImportError:
            await self._refuse(
                Unauthorized(
                    "a plain public key is not accepted: use a certificate from wardgate ssh login, or "
                    "the token as the password",
                    code="certificate_required",
                ),
                final=False,
            )
            return False
        try:
            identity = self.authority.identity_from_certificate(certificate)
        except GatewayError as invalid:
            await self._refuse(invalid, final=False)
            return False
        if not await checked(username, key_data, msg, signature):
            return False
        if not msg:  # the client only asked whether this key would do: it must still sign
            return True
        try:
            await self._admit(identity, username)
        except GatewayError as refused:
            await self._refuse(refused)
            return False
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        """The password is the agent's OIDC token, validated as on every path (keyboard-interactive
        asks for it too: asyncssh's prompt when password authentication is supported)."""
        if self.admitted:
            return False
        validator = self.services.gate.validator
        try:
            identity = await asyncio.to_thread(validator.validate, password)
            await self._admit(identity, username)
        except GatewayError as refused:
            await self._refuse(refused)
            return False
        return True

    async def _admit(self, identity: Identity, connection_name: str) -> None:
        beginning = asyncio.ensure_future(self._begin_target(connection_name))  # alongside admission
        try:
            await self._admitted(identity, connection_name)
            await beginning
        except BaseException:
            beginning.cancel()
            self._abandon_early()
            raise

    async def _begin_target(self, connection_name: str) -> None:
        """The client has proven its identity: the target's TCP connect and key exchange begin now,
        while the session is admitted and its first command decided (about a handshake's time
        saved per connection); it logs in only for an allowed command (``EarlyConnection``)."""
        try:
            connection = await asyncio.to_thread(self.services.gate.connections.get, connection_name)
            target = SshTarget.of(connection)
        except Exception:  # admission reads it again and says why: never refused here
            return
        secret = connection.credential_secret

        async def connect(login: asyncio.Event) -> asyncssh.SSHClientConnection:
            credential = await self._credential_of(secret)
            return await connect_target(
                target, timeout=self.limits.backend_connect_timeout_s, login=login, **credential
            )

        self.early = EarlyConnection(Begun(target, secret), connect)

    def _abandon_early(self) -> None:
        if self.early is not None:
            self.early.abandon()
            self.early = None

    async def _connect_target(self) -> asyncssh.SSHClientConnection:
        """The target's connection for an allowed command: the one begun at login when it is still
        for this target and credential (the first command's), otherwise a new one."""
        assert self.target is not None
        early, self.early = self.early, None
        if early is not None:
            connection = await early.take(Begun(self.target, self.connection.credential_secret))
            if connection is not None:
                return connection
        credential = await self._credential_of(self.connection.credential_secret)
        return await connect_target(self.target, timeout=self.limits.backend_connect_timeout_s, **credential)

    async def _admitted(self, identity: Identity, connection_name: str) -> None:
        gate = self.services.gate
        self.identity, self.connection = await asyncio.to_thread(
            gate.admit_identity, identity, connection_name, ROUTE, self.record
        )
        if not set(self.connection.allowed_groups) & set(self.identity.groups):
            raise Forbidden(
                f"identity {self.identity.subject!r} is in none of the groups allowed on connection "
                f"{connection_name!r}",
                code="denied_by_policy",
            )
        try:
            self.target = SshTarget.of(self.connection)
        except ValueError as bad:
            raise NotFound(str(bad), code="unknown_connection") from None
        self.services.sessions.add(self)
        self.admitted = True
        self._lifetime = asyncio.get_running_loop().create_future()
        if self.track is not None:
            self.track(self._lifetime)
        self.verified_at = time.monotonic()
        try:
            await self.services.recorder.write(
                self.record,
                "session_start",
                identity=self.record.identity,
                client=self.record.client,
                target=f"{self.target.user}@{self.target.host}:{self.target.port}",
            )
            await self.services.recorder.index_session(self.record)
        except GatewayError:
            self.services.sessions.discard(self)
            self.admitted = False
            self._lifetime.set_result(None)
            raise

    async def _refuse(self, refused: GatewayError, *, final: bool = True) -> None:
        """Tell the client why and record it. ``final`` (a token: trying it again cannot help): the
        reason is the disconnect message every client shows; otherwise (a key or certificate: the
        client may offer another) the authentication banner, which OpenSSH prints."""
        logger.info("ssh login refused", extra={"code": refused.code, "connection": self.record.connection})
        message = f"wardgate: {refused.message} ({refused.code})"
        if self.conn is not None:
            with contextlib.suppress(Exception):
                if final:
                    self.conn.disconnect(asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, message)
                else:
                    self.conn.send_auth_banner(message + "\r\n")
        self.record.outcome, self.record.reason = "refused", refused.code
        with contextlib.suppress(GatewayError):
            await self.services.recorder.write(
                self.record,
                "session_refused",
                identity=self.record.identity,
                client=self.record.client,
                error={"code": refused.code, "message": refused.message},
            )
            await self.services.recorder.index_session(self.record)
        self.record = SessionRecord(PROTOCOL, self.record.connection, self.record.client)  # a retry's own

    # ------------------------------------------------------------------ what is refused outright
    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        self._record_refused_channel("direct-tcpip", f"{dest_host}:{dest_port}")
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "wardgate: port forwarding is not allowed"
        )

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        self._record_refused_channel("tcpip-forward", f"{listen_host}:{listen_port}")
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        self._record_refused_channel("direct-streamlocal", dest_path)
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "wardgate: socket forwarding is not allowed"
        )

    def unix_server_requested(self, listen_path: str) -> bool:
        self._record_refused_channel("streamlocal-forward", listen_path)
        return False

    def _record_refused_channel(self, kind: str, where: str) -> None:
        if self.admitted:
            self.record.refused += 1
            self.services.recorder.write_later(
                self.record,
                "channel_refused",
                self._recording_failed,
                channel=kind,
                target=where,
                error={"code": "forwarding_refused", "message": f"{kind} to {where} is not allowed"},
            )

    def _recording_failed(self, error: BaseException) -> None:
        self.terminate("this session can no longer be recorded", "recording_unavailable")

    # ------------------------------------------------------------------ channels
    async def serve(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        """One session channel: an exec request is decided and run; anything else is refused."""
        self.channels += 1
        channel = self.channels
        self.open_channels.add(process)
        task = asyncio.current_task()
        if task is not None:
            self._channel_tasks.add(task)
            if self.track is not None:
                self.track(task)
        try:
            if process.subsystem is not None:
                unserved = "SFTP" if process.subsystem == "sftp" else f"the {process.subsystem!r} subsystem"
                await self._refuse_channel(process, channel, f"{unserved} is not served by wardgate yet")
            else:
                await self._exec(process, channel, process.command)
        except Exception:
            logger.exception("ssh channel failed")
            with contextlib.suppress(Exception):
                process.stderr.write(b"wardgate: internal error; the command's outcome is unknown\r\n")
                process.exit(EXIT_TARGET)
        finally:
            self.open_channels.discard(process)
            if task is not None:
                self._channel_tasks.discard(task)

    async def sftp_server(self, chan: asyncssh.SSHServerChannel[bytes]) -> SftpProxy:
        """An SFTP subsystem channel (``sftp.py``): served where policy grants SFTP on this
        connection, each file operation decided; otherwise (off) or when the target cannot be
        reached, the reason on stderr and the channel closed (``_end_sftp``)."""
        self.channels += 1
        channel = self.channels
        policy_set = await self.services.policy_set()
        if not sftp_enabled(self, policy_set):
            why = (
                f"SFTP is not served on connection {self.connection.name!r}: no rule grants it (a shell "
                "rule naming the feature sftp_read or sftp_write)"
            )
            self.record.refused += 1
            self.services.recorder.write_later(
                self.record,
                "channel_refused",
                self._recording_failed,
                channel=channel,
                subsystem="sftp",
                error={"code": "not_served", "message": why},
            )
            _end_sftp(chan, why, EXIT_REFUSED)
        assert self.target is not None
        try:
            target = await self._connect_target()
        except GatewayError as failed:
            _end_sftp(chan, failed.message, EXIT_TARGET)
        try:
            sftp = await target.start_sftp_client()
        except (asyncssh.Error, OSError) as lost:
            target.close()
            why = f"the target's SFTP server cannot be started ({type(lost).__name__}: {lost})"
            _end_sftp(chan, why, EXIT_TARGET)
        return SftpProxy(chan, self, target, sftp, channel)

    async def _refuse_channel(
        self, process: asyncssh.SSHServerProcess[bytes], channel: int, why: str
    ) -> None:
        self.record.refused += 1
        with contextlib.suppress(GatewayError):
            await self.services.recorder.write(
                self.record,
                "channel_refused",
                channel=channel,
                subsystem=process.subsystem,
                error={"code": "not_served", "message": why},
            )
        process.stderr.write(f"wardgate: {why}\r\n".encode())
        process.exit(EXIT_REFUSED)

    async def _exec(
        self, process: asyncssh.SSHServerProcess[bytes], channel: int, command: str | None
    ) -> None:
        """An exec request (``command``), or an interactive shell (None); either with a pty or not."""
        policy_set = await self.services.policy_set()
        term = process.get_terminal_type()
        if command is None or term is not None:  # a terminal: only where policy grants it by name
            feature = INTERACTIVE_SHELL if command is None else PTY
            granted, recorded, decision = self._terminal_grant(policy_set, feature)
            if not granted:
                what = "interactive shells" if command is None else "ptys"
                await self._refuse_command(
                    process,
                    channel,
                    recorded,
                    decision,
                    "terminal_not_allowed",
                    f"{what} are not allowed on connection {self.connection.name!r}: policy grants them with "
                    f"a shell rule naming the feature {feature!r}; exec (ssh host 'command') is the governed "
                    "path",
                )
                return
            if command is None:
                await self._recorded_run(process, channel, None, recorded, decision.to_record(), policy_set)
                return
        assert command is not None
        operation, recorded = _parsed(command)
        decision = self._decide(policy_set, operation)
        unserved = _unserved(operation)
        if unserved:
            decision = Decision(
                "deny", f"{unserved} is not served by wardgate yet", "wardgate.ssh", policy_set.version
            )
        decided = decision.to_record()
        if decision.outcome == "require_approval":
            try:
                decided = {
                    **decided,
                    "outcome": "allow",
                    **await self._approval(command, decision, policy_set, recorded),
                }
            except GatewayError as refused:
                await self._refuse_command(
                    process, channel, recorded, decision, refused.code, refused.message
                )
                return
        elif decision.outcome != "allow":
            await self._refuse_command(
                process, channel, recorded, decision, "denied_by_policy", decision.reason
            )
            return
        await self._recorded_run(process, channel, command, recorded, decided, policy_set)

    async def _recorded_run(
        self,
        process: asyncssh.SSHServerProcess[bytes],
        channel: int,
        command: str | None,
        recorded: dict[str, Any],
        decided: dict[str, Any],
        policy_set: PolicySet,
    ) -> None:
        """The ``command`` event, durable before anything reaches the target (fail closed), then the run."""
        self.record.statements += 1
        seq = self.record.seq + 1
        try:
            await self.services.recorder.write(
                self.record, "command", channel=channel, operation=recorded, decision=decided
            )
        except GatewayError as unrecorded:
            self.record.statements -= 1
            why = f"the command was not run because it cannot be recorded now ({unrecorded.message})"
            process.stderr.write(f"wardgate: {why}\r\n".encode())
            process.exit(EXIT_REFUSED)
            return
        await self._run(process, seq, channel, command, policy_set, decided)

    def _terminal_grant(self, policy_set: PolicySet, feature: str) -> tuple[bool, dict[str, Any], Decision]:
        """Whether policy grants a terminal (``feature``: an interactive shell or a pty) on this
        connection: the decision on a terminal operation must be an allow by a rule that names the
        feature itself, so a broad rule (``programs: ["*"]``) never opens a terminal by accident."""
        operation = _terminal_operation(feature)
        decision = self._decide(policy_set, operation)
        named = any(
            feature in [str(f).lower() for f in (rule.conditions.get("features") or [])]
            for rule in policy_set.rules
            if rule.name == decision.rule and rule.effect == "allow"
        )
        return decision.outcome == "allow" and named, operation.to_record(), decision

    async def _approval(
        self, command: str, decision: Decision, policy_set: PolicySet, recorded: dict[str, Any]
    ) -> dict[str, Any]:
        """The approval that lets this exact command run now (claimed once), or raise why not."""
        desk = self.services.gate.approvals
        if desk is None:
            raise Forbidden(
                f"{decision.reason}; approvals are not configured, so it is refused", code="approval_required"
            )
        required = ApprovalRequired(decision, policy_set, decision.reason)
        held = HeldOperation(PROTOCOL, "SHELL", command, [], recorded, self.record.client)
        answer = await asyncio.to_thread(
            claim_or_hold_approval, desk, required, self.identity, self.connection, self.record, held
        )
        if "pending" in answer:
            raise Forbidden(
                f"{decision.reason}: this command needs approval: request {answer['pending']} is pending "
                f"({answer['poll_url']}); once it is approved, run the identical command again on this "
                "connection and it runs, once",
                code="approval_pending",
            )
        return answer

    def _decide(self, policy_set: PolicySet, operation: Any) -> Decision:
        """The connection's groups, then the rules of protocol ``shell`` (an ``ssh`` connection's)."""
        return decide_on(policy_set, self.identity, self.connection, operation)

    async def _refuse_command(
        self,
        process: asyncssh.SSHServerProcess[bytes],
        channel: int,
        recorded: dict[str, Any],
        decision: Decision,
        code: str,
        message: str,
    ) -> None:
        self.record.refused += 1
        seq = self.record.seq + 1
        try:
            await self.services.recorder.write(
                self.record,
                "command_refused",
                channel=channel,
                operation=recorded,
                decision=decision.to_record(),
                error={"code": code, "message": message},
            )
            where = f"record {self.record.record_id}, event {seq}"
        except GatewayError:
            where = f"record {self.record.record_id}; the refusal itself could not be recorded"
        process.stderr.write(f"wardgate: refused: {message} ({code}; {where})\r\n".encode())
        process.exit(EXIT_REFUSED)

    async def _run(
        self,
        process: asyncssh.SSHServerProcess[bytes],
        seq: int,
        channel: int,
        command: str | None,
        policy_set: PolicySet,
        decided: dict[str, Any],
    ) -> None:
        """Run on the target; with a pty (or an interactive shell) the output is recorded as a
        terminal (asciicast frames: docs/recording-format.md), resizes and signals forwarded."""
        assert self.target is not None
        started = time.perf_counter()
        profile = policy_set.masking.for_caller(self.connection.name, self.identity.groups).profile
        result: dict[str, Any] = {"command_seq": seq}
        try:
            target = await self._connect_target()
        except GatewayError as failed:
            process.stderr.write(f"wardgate: {failed.message}\r\n".encode())
            process.exit(EXIT_TARGET)
            self._finish(result, started, error={"code": failed.code, "message": failed.message})
            return
        output = _Captured(RECORDED_OUTPUT_BYTES)
        term = process.get_terminal_type()
        screen: _Screen | None = None
        try:
            async with target:
                if term is not None:
                    width, height = process.get_terminal_size()[:2]
                    remote = await target.create_process(
                        command, term_type=term, term_size=(width, height), encoding=None
                    )
                    screen = _Screen(self, channel)
                    self.services.recorder.write_later(
                        self.record,
                        "terminal_start",
                        self._recording_failed,
                        channel=channel,
                        width=width,
                        height=height,
                        term=term,
                        command=command,
                        decision=decided,
                    )
                else:
                    remote = await target.create_process(command, encoding=None)
                pump_in = asyncio.create_task(_copy_input(process, remote, screen, profile))
                await asyncio.gather(
                    _relay(remote.stdout, process.stdout, TerminalStream(profile), output, screen),
                    _relay(remote.stderr, process.stderr, TerminalStream(profile), output, screen),
                )
                completed = await remote.wait()
                pump_in.cancel()
        except (asyncssh.Error, OSError) as lost:
            process.stderr.write(
                f"wardgate: the target connection failed ({type(lost).__name__})\r\n".encode()
            )
            process.exit(EXIT_TARGET)
            self._finish(result, started, output=output, error={"code": "target_lost", "message": str(lost)})
            return
        if completed.exit_signal is not None:
            signal, core_dumped, message, lang = completed.exit_signal
            process.exit_with_signal(signal, core_dumped, message, lang)
            result["signal"] = signal
        else:
            status = completed.exit_status if completed.exit_status is not None else EXIT_TARGET
            process.exit(status)
            result["exit_status"] = status
        if screen is not None:
            self.services.recorder.write_later(
                self.record,
                "terminal_end",
                self._recording_failed,
                channel=channel,
                exit_status=result.get("exit_status"),
            )
        self._finish(result, started, output=output)

    async def _credential_of(self, secret: str | None) -> dict[str, Any]:
        """The private key (``ssh_key``) or password (``basic``) wardgate logs in to the target with."""
        if not secret:
            return {"private_key": None, "password": None}
        credential = await asyncio.to_thread(self.services.credentials.get, secret)
        return {
            "private_key": credential.private_key,
            "password": None if credential.private_key else credential.password,
        }

    def _finish(
        self,
        result: dict[str, Any],
        started: float,
        *,
        output: _Captured | None = None,
        error: dict[str, str] | None = None,
    ) -> None:
        result["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
        if output is not None:
            result["output"] = output.text()
            result["output_bytes"] = output.seen
            if output.masked:
                result["masked"] = output.masked
        if error is not None:
            result["error"] = error
        self.services.recorder.write_later(self.record, "command_result", self._recording_failed, **result)


def _end_sftp(chan: asyncssh.SSHServerChannel[bytes], why: str, status: int) -> NoReturn:
    """Refuse an SFTP channel: ``why`` on its stderr (clients print it), closed with ``status``.
    asyncssh runs the SFTP server once the factory returns; a factory that raises an error takes
    the whole connection down, one that is cancelled is let go: so the channel's task ends
    cancelled, and the client's other channels go on."""
    with contextlib.suppress(Exception):
        chan.write_stderr(f"wardgate: {why}\r\n".encode())
        chan.exit(status)
    raise asyncio.CancelledError


class _Captured:
    """The first bytes of a command's output as the agent saw them (masked), for its record."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.kept = 0
        self.seen = 0
        self.masked: dict[str, int] = {}

    def add(self, text: str, raw_bytes: int) -> None:
        self.seen += raw_bytes
        if self.kept < self.cap:
            part = text[: self.cap - self.kept]
            # Bytes that were not UTF-8 (carried as surrogates) are recorded as U+FFFD: a record is
            # text, and JSON cannot hold them.
            self.parts.append(part.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
            self.kept += len(part)

    def count(self, counts: dict[str, int]) -> None:
        for name, n in counts.items():
            self.masked[name] = self.masked.get(name, 0) + n

    def text(self) -> str:
        joined = "".join(self.parts)
        return joined if self.seen <= self.kept else joined + "…[cut]"


def _parsed(command: str) -> tuple[ShellOperation | UnparseableOperation, dict[str, Any]]:
    try:
        operation = parse_shell(command)
    except UnparseableOperation as unparseable:
        return unparseable, {"protocol": "shell", "text": command, "unparseable": unparseable.reason}
    return operation, operation.to_record()


INTERACTIVE_SHELL = "interactive_shell"
PTY = "pty"


def _terminal_operation(feature: str) -> ShellOperation:
    """What policy decides for a terminal: one command ``<interactive_shell>`` or ``<pty>`` with
    that feature (a rule grants it with ``features: [interactive_shell]`` or ``[pty]``)."""
    name = f"<{feature}>"
    command = ShellCommand(
        argv=(name,), program=name, effective_programs=(name,), operator=None, redirects=()
    )
    return ShellOperation(text=name, commands=(command,), features=(feature,))


def _unserved(operation: ShellOperation | UnparseableOperation) -> str:
    if isinstance(operation, UnparseableOperation):
        return ""
    for program in operation.programs:
        if program.rsplit("/", 1)[-1] in UNSERVED_PROGRAMS:
            return UNSERVED_PROGRAMS[program.rsplit("/", 1)[-1]]
    return ""


class _Screen:
    """A terminal's recording: asciicast frames (``[seconds, code, data]``), one ``terminal_output``
    event per relayed chunk (the group commit batches them)."""

    def __init__(self, session: SshSession, channel: int) -> None:
        self.session = session
        self.channel = channel
        self.started = time.monotonic()

    def frame(self, code: str, data: str) -> None:
        session = self.session
        text = data.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        session.services.recorder.write_later(
            session.record,
            "terminal_output",
            session._recording_failed,
            channel=self.channel,
            frames=[[round(time.monotonic() - self.started, 6), code, text]],
        )


async def _relay(
    source: asyncssh.SSHReader[bytes],
    sink: asyncssh.SSHWriter[bytes],
    stream: TerminalStream,
    output: _Captured,
    screen: _Screen | None = None,
) -> None:
    """One output stream of the target to the client, masked; bytes that are not UTF-8 pass as they
    are (surrogateescape), masking applies to the text around them. ``TerminalStream`` holds back
    the end of what it has seen (a value may go on in the next chunk); when the program has been
    quiet for ``QUIET_S``, that end is masked as it stands and sent (a prompt must show)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    while True:
        try:
            chunk = await asyncio.wait_for(source.read(READ_CHUNK), QUIET_S)
        except TimeoutError:
            await _send(stream.close(), 0, sink, output, screen)
            chunk = await source.read(READ_CHUNK)
        if not chunk:
            await _send(
                stream.feed(decoder.decode(b"", final=True)) + stream.close(), 0, sink, output, screen
            )
            output.count(stream.counts)
            return
        await _send(stream.feed(decoder.decode(chunk)), len(chunk), sink, output, screen)


async def _send(
    text: str, raw_bytes: int, sink: asyncssh.SSHWriter[bytes], output: _Captured, screen: _Screen | None
) -> None:
    output.add(text, raw_bytes)
    if not text:
        return
    sink.write(text.encode("utf-8", errors="surrogateescape"))
    if screen is not None:
        screen.frame("o", text)
    await sink.drain()


async def _copy_input(
    process: asyncssh.SSHServerProcess[bytes],
    remote: asyncssh.SSHClientProcess[bytes],
    screen: _Screen | None,
    profile: MaskingProfile,
) -> None:
    """The client's stdin to the command, then its end of file; on a terminal, resizes, signals
    and breaks are forwarded and input is recorded (masked: a typed secret is still a secret)."""
    with contextlib.suppress(asyncssh.Error, OSError, BrokenPipeError):
        while True:
            try:
                data = await process.stdin.read(READ_CHUNK)
            except asyncssh.TerminalSizeChanged as resized:
                remote.change_terminal_size(resized.width, resized.height)
                if screen is not None:
                    screen.frame("r", f"{resized.width}x{resized.height}")
                continue
            except asyncssh.SignalReceived as signalled:
                remote.send_signal(signalled.signal)
                continue
            except asyncssh.BreakReceived as broke:
                remote.send_break(broke.msec)
                continue
            if not data:
                remote.stdin.write_eof()
                return
            remote.stdin.write(data)
            if screen is not None:
                screen.frame("i", mask_terminal(data.decode("utf-8", "surrogateescape"), profile).value)
            await remote.stdin.drain()


async def start_ssh_listener(
    services: TcpServices,
    host: str,
    port: int,
    host_key: asyncssh.SSHKey,
    authority: SshCertificateAuthority | None = None,
    track: Callable[[asyncio.Future[Any]], None] | None = None,
) -> Any:
    """asyncssh's own listening server (it owns the socket), one ``SshSession`` per client;
    certificates of ``authority`` are accepted besides tokens as passwords."""

    async def serve(process: asyncssh.SSHServerProcess[bytes]) -> None:
        session: SshSession = process.get_extra_info("wardgate_session")
        await session.serve(process)

    ciphers = client_ciphers()
    return await asyncssh.create_server(
        lambda: SshSession(services, authority, track),
        host,
        port,
        server_host_keys=[host_key],
        process_factory=serve,
        encoding=None,
        allow_pty=True,  # asked of policy per channel (_exec): refused there unless granted
        x11_forwarding=False,
        agent_forwarding=False,
        allow_scp=False,
        # SFTP channels: SshSession.sftp_server decides whether to serve them (policy), then each
        # file operation; asyncssh's own file-serving methods are all overridden (sftp.py).
        sftp_factory=lambda chan: chan.get_connection().get_extra_info("wardgate_session").sftp_server(chan),
        login_timeout=services.limits.startup_timeout_s,
        keepalive_interval=30,
        server_version="wardgate",
        **({"encryption_algs": list(ciphers)} if ciphers else {}),
        tunnel=Listener(backlog=1024),  # plain TCP, each connection prepared (wire.py)
    )


CIPHERS_SETTING = "WARDGATE_SSH_CIPHERS"


def client_ciphers() -> tuple[str, ...]:
    """The ciphers the listener offers its clients (``WARDGATE_SSH_CIPHERS``, comma-separated);
    unset: asyncssh's list, where OpenSSH clients choose ChaCha20-Poly1305. The client picks the
    first of its own list the server offers, so only leaving a cipher out changes what it uses:
    ``aes256-gcm@openssh.com,aes128-gcm@openssh.com`` cut the gateway's CPU per MB copied by a
    fifth to a third (asyncssh's ChaCha20 builds ciphers per packet), but refuses clients without AES-GCM
    (OpenSSH before 6.2, Paramiko before 3.5, libssh2 before 1.11). A name asyncssh does not know
    stops the listener from starting."""
    import os

    from asyncssh.encryption import get_encryption_algs

    named = tuple(name.strip() for name in os.environ.get(CIPHERS_SETTING, "").split(",") if name.strip())
    known = {name.decode() for name in get_encryption_algs()}
    unknown = [name for name in named if name not in known]
    if unknown:
        raise ValueError(
            f"{CIPHERS_SETTING}: unknown ciphers {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return named


def load_listener_keys() -> tuple[asyncssh.SSHKey, SshCertificateAuthority | None]:
    """The gateway's host key (``SSH_HOST_KEY``: stable, never made per task), and the CA whose
    certificates it accepts (``sshca.load_ca``: on the task, checking-only from
    ``SSH_CA_PUBLIC_KEY``), or None when neither CA setting is there (tokens as passwords only)."""
    from wardgate.sshca import SshSettings, load_ca, load_host_key

    settings = SshSettings.from_env()
    authority = load_ca(settings) if settings.ca_key or settings.ca_public_key else None
    return load_host_key(settings), authority
