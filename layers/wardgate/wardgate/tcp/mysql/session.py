"""One MySQL or MariaDB client session through wardgate, from the greeting to the last packet.

The agent's client (the ``mariadb``/``mysql`` command line, PyMySQL, mysql-connector...) connects
as to any MySQL server: TLS (required), the **connection name as the database** (or as the user
name when no database is given), and its OIDC token as the password. The token arrives in clear,
inside TLS, through ``caching_sha2_password``'s full authentication, which every current client
does unchanged (or through ``mysql_clear_password`` when the client asks for it). wardgate admits
the session once (token, agent registry, connection), logs in to the real database with the
connection's own credential, then relays commands, deciding every statement.

MySQL answers commands one at a time, in order, so a refused command is answered by wardgate
itself with an ERR packet (1227, SQLSTATE 42000, the policy's reason and the record id) and
never reaches the database; ``_Pending`` keeps answers in order if a client pipelines commands.
Prepared statements are decided at COM_STMT_PREPARE and again at every COM_STMT_EXECUTE, with
their parameters (approvals are bound to the values).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

from wardgate.connections import Connection
from wardgate.errors import Forbidden, GatewayError, NotFound, ServiceUnavailable, Unauthorized
from wardgate.identity import Identity
from wardgate.masking.engine import MaskingRefused, mask_text
from wardgate.observability import logger
from wardgate.tcp.guard import Refusal, SqlGuard, StatementRun, cut
from wardgate.tcp.mysql import auth, codec
from wardgate.tcp.mysql.backend import (
    BackendUnavailable,
    MySqlBackendLink,
    MySqlTarget,
    close_backend,
    kill_query,
    open_backend,
)
from wardgate.tcp.mysql.values import ResultMasker, parameter_text
from wardgate.tcp.services import TcpServices
from wardgate.tcp.sessions import TooManySessions, first_to_end

READ_SIZE = 256 * 1024
MYSQL_SCHEMES = ("mysql", "mariadb")
# The greeting's version until a database's is known (the greeting speaks first): clients pick
# defaults by it, and a 5.7 server gets choices that MySQL 8 and MariaDB both accept (not MySQL 8's
# utf8mb4_0900_ai_ci collation, which MariaDB does not know).
SERVER_VERSION = "5.7.44-wardgate"
LOGIN_PACKET_LIMIT = 64 * 1024  # a HandshakeResponse with connect attributes, or a token
# What wardgate offers clients. Not offered: compression (the gateway reads every packet),
# session tracking and query attributes (state the gateway would have to follow), IGNORE_SPACE
# (it changes how the server reads function names), MariaDB's extensions.
GATEWAY_CAPABILITIES = (
    codec.CLIENT_LONG_PASSWORD
    | codec.CLIENT_FOUND_ROWS
    | codec.CLIENT_LONG_FLAG
    | codec.CLIENT_CONNECT_WITH_DB
    | codec.CLIENT_LOCAL_FILES
    | codec.CLIENT_PROTOCOL_41
    | codec.CLIENT_INTERACTIVE
    | codec.CLIENT_SSL
    | codec.CLIENT_TRANSACTIONS
    | codec.CLIENT_SECURE_CONNECTION
    | codec.CLIENT_MULTI_STATEMENTS
    | codec.CLIENT_MULTI_RESULTS
    | codec.CLIENT_PS_MULTI_RESULTS
    | codec.CLIENT_PLUGIN_AUTH
    | codec.CLIENT_CONNECT_ATTRS
    | codec.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | codec.CLIENT_DEPRECATE_EOF
)
# Collations of the character sets wardgate reads statements in (UTF-8 and its ASCII subset):
# utf8mb3 (33, 83, 192-215), utf8mb4 (45, 46, 224-247, 255 and MySQL 8's 0900 ones up to 323),
# ascii (11, 65).
UTF8_COLLATIONS = frozenset({11, 33, 45, 46, 65, 83, *range(192, 216), *range(224, 248), *range(255, 324)})

# MySQL's error numbers and SQLSTATEs for what wardgate says.
ER_ACCESS_DENIED = (1045, "28000")
ER_DBACCESS_DENIED = (1044, "42000")
ER_BAD_DB = (1049, "42000")
ER_TOO_MANY_USER_CONNECTIONS = (1203, "42000")
ER_SPECIFIC_ACCESS_DENIED = (1227, "42000")  # a statement refused by policy
ER_UNKNOWN_ERROR = (1105, "HY000")
ER_UNKNOWN_COM = (1047, "08S01")
ER_NET_PACKET_TOO_LARGE = (1153, "08S01")
ER_NET_PACKETS_OUT_OF_ORDER = (1156, "08S01")
ER_HANDSHAKE = (1043, "08S01")
ER_SECURE_TRANSPORT_REQUIRED = (3159, "HY000")
ER_UNKNOWN_CHARACTER_SET = (1115, "42000")
ER_CONNECTION_KILLED = (1927, "70100")  # MariaDB's; MySQL clients show the message all the same
ER_NOT_SUPPORTED_YET = (1235, "42000")
ER_SERVER_SHUTDOWN = (1053, "08S01")
ER_NO_SUCH_THREAD = (1094, "HY000")
LAST_PREPARED = 0xFFFFFFFF  # MariaDB: a statement id meaning the one prepared last
ADMISSION_ERRORS = {
    Unauthorized: ER_ACCESS_DENIED,
    TooManySessions: ER_TOO_MANY_USER_CONNECTIONS,
    Forbidden: ER_DBACCESS_DENIED,
    NotFound: ER_BAD_DB,
}


class _Ended(Exception):
    """The session is over (the reason is already told and recorded)."""


@dataclass(slots=True)
class _Prepared:
    """A statement prepared through wardgate, by the database's statement id."""

    text: str
    param_count: int
    columns: list[codec.ColumnDefinition] = field(default_factory=list)
    param_types: tuple[tuple[int, bool], ...] = ()  # from the last execute that bound them
    long_data: dict[int, Any] = field(default_factory=dict)  # param -> sha256 of what was sent


@dataclass(slots=True)
class _Answer:
    """The database's answer to one command, as far as it has come (``reader``: the codec's)."""

    reader: codec.ResponseReader | None = None
    columns: list[codec.ColumnDefinition] = field(default_factory=list)
    rows: int = 0
    masker: ResultMasker | None = None
    dropped: int = 0  # packets the client does not see: its sequence ids are this much lower


@dataclass(slots=True)
class _Pending:
    """A command the client still awaits an answer to: from the database (``response``) or, for
    one wardgate refused, its own ERR (``local``), sent once the answers before it are out."""

    command: int
    answer: _Answer = field(default_factory=_Answer)
    local: bytes = b""
    run: StatementRun | None = None
    prepared_text: str = ""  # COM_STMT_PREPARE: the statement, kept under its id once known
    statement: _Prepared | None = None  # COM_STMT_EXECUTE / FETCH: the statement whose rows these are
    local_infile: str | None = None  # LOAD DATA LOCAL INFILE policy allowed: the one file it names


class MySqlSession:
    """A session; ``run()`` serves it to the end. The sweep may ``terminate()`` it at any time."""

    def __init__(
        self, services: TcpServices, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.services = services
        self.limits = services.limits
        self.client_reader = reader
        self.client = writer
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
        self.guard = SqlGuard(
            services,
            "mysql",
            "mysql",
            self.peer,
            pinned=_changes_how_statements_are_read,
            on_recording_failure=self._recording_failed,
        )
        self.record = self.guard.record
        self.packets = codec.PacketReader(max_payload=self.limits.max_message_bytes)
        self.identity: Identity
        self.connection: Connection
        self.target: MySqlTarget
        self.backend: MySqlBackendLink | None = None
        self.capabilities = 0  # as negotiated with the client (and asked of the database)
        self.opened_at = self.verified_at = time.monotonic()
        self.connection_id = _new_connection_id(services.mysql_sessions)
        self.status = codec.SERVER_STATUS_AUTOCOMMIT
        self.pending: deque[_Pending] = deque()
        self.prepared: dict[int, _Prepared] = {}
        self.last_prepared: int | None = None
        self._prepares_answered = asyncio.Event()  # set while no COM_STMT_PREPARE awaits its answer
        self._prepares_answered.set()
        self.ending: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sent_seq = 0  # the sequence id of the last packet of the answer being written
        self._infile: _Pending | None = None  # a LOAD DATA LOCAL INFILE whose file the client is sending
        self._maskers: dict[tuple[Any, ...], ResultMasker] = {}
        self._rows: list[tuple[int, bytes]] = []  # (client sequence id, row) not masked yet

    # ------------------------------------------------------------------ life cycle
    async def run(self) -> None:
        try:
            try:
                async with asyncio.timeout(self.limits.startup_timeout_s):
                    if not await self._start() or self.ending is not None:
                        return
            except TimeoutError:
                await self._fatal(
                    ER_HANDSHAKE, f"the session did not start within {self.limits.startup_timeout_s:g} s"
                )
                return
            await self._relay()
        except MaskingRefused as refused:
            self.ending = self.ending or f"result withheld: {refused.reason}"
            await self._fatal(
                ER_NOT_SUPPORTED_YET, f"wardgate withheld a result it cannot mask: {refused.reason}"
            )
        except codec.PacketTooLarge as large:
            self.ending = self.ending or f"protocol violation: {large}"
            await self._fatal(ER_NET_PACKET_TOO_LARGE, f"wardgate: {large}")
        except codec.PacketsOutOfOrder as disorder:
            self.ending = self.ending or f"protocol violation: {disorder}"
            await self._fatal(ER_NET_PACKETS_OUT_OF_ORDER, f"wardgate: {disorder}")
        except codec.ProtocolViolation as violation:
            self.ending = self.ending or f"protocol violation: {violation}"
            await self._fatal(ER_HANDSHAKE, f"wardgate: protocol violation: {violation}")
        except (ConnectionError, asyncio.IncompleteReadError, _Ended):
            pass
        except Exception:
            logger.exception("mysql session failed", extra={"record_id": self.record.record_id})
            self.ending = self.ending or "internal error"
            await self._fatal(
                ER_UNKNOWN_ERROR, f"internal error in wardgate (record {self.record.record_id})"
            )
        finally:
            await self._close()

    async def _start(self) -> bool:
        """Greeting, TLS, the client's login, admission, the database's login. False: nothing more."""
        nonce = bytes(33 + secrets.randbelow(94) for _ in range(20))  # printable, never NUL
        greeting = codec.Handshake(
            server_version=(
                self.services.mysql_server_version or self.services.mysql_learned_version or SERVER_VERSION
            ),
            connection_id=self.connection_id,
            auth_plugin_data=nonce,
            capabilities=GATEWAY_CAPABILITIES,
            charset=codec.UTF8MB4_GENERAL_CI,
            status=codec.SERVER_STATUS_AUTOCOMMIT,
            auth_plugin_name=codec.CACHING_SHA2_PASSWORD,
        )
        self._send(codec.build_handshake(greeting), 0)
        await self.client.drain()
        seq, payload = await self._client_packet(1)
        hello = codec.parse_client_handshake(payload)
        encrypted = False
        if isinstance(hello, codec.SSLRequest):
            if self.services.tls is None:
                await self._fatal(ER_SECURE_TRANSPORT_REQUIRED, "wardgate has no TLS certificate configured")
                return False
            await self._start_tls()
            encrypted = True
            seq, payload = await self._client_packet(2)
            hello = codec.parse_client_handshake(payload)
            if not isinstance(hello, codec.HandshakeResponse):
                raise codec.ProtocolViolation("a second SSLRequest")
        if not encrypted:
            await self._fatal(
                ER_SECURE_TRANSPORT_REQUIRED,
                "wardgate requires TLS: connect with --ssl (mariadb), ssl_mode=REQUIRED or stronger "
                "(--ssl-verify-server-cert / VERIFY_IDENTITY with the gateway's CA is best)",
                seq + 1,
            )
            return False
        self.capabilities = hello.capabilities & GATEWAY_CAPABILITIES
        if hello.charset not in UTF8_COLLATIONS:
            await self._fatal(
                ER_UNKNOWN_CHARACTER_SET,
                f"wardgate reads statements as UTF-8: connect with the utf8mb4 character set "
                f"(collation {hello.charset} is not one of it)",
                seq + 1,
            )
            return False
        self.record.connection = connection_name = hello.database or hello.username
        token, seq = await self._token(hello, seq)
        try:
            if not token:
                raise Unauthorized("no token: give the agent's OIDC token as the password")
            await self._admit(token, connection_name, hello)
        except GatewayError as refused:
            await self.guard.record_admission_refusal(refused)
            await self._fatal(_admission_error(refused), refused.message, seq + 1)
            return False
        try:
            self.backend = await self._open_backend(hello)
        except BackendUnavailable as down:
            self.ending = f"database unavailable: {down.message}"
            await self._fatal((down.code, down.sqlstate), down.message, seq + 1)
            return False
        self.status = self.backend.status
        self.services.mysql_sessions[self.connection_id] = self
        ok = codec.Ok(status=self.status)
        self._send(codec.build_ok(ok, self.capabilities), seq + 1)
        await self.client.drain()
        return True

    async def _token(self, hello: codec.HandshakeResponse, seq: int) -> tuple[str, int]:
        """The password the client sends: the agent's token, in clear inside TLS. Through
        caching_sha2_password's full authentication (switching to it if the client started with
        another plugin), or mysql_clear_password when the client chose it."""
        if hello.auth_plugin_name == codec.CLEAR_PASSWORD:
            return hello.auth_response.rstrip(b"\0").decode("utf-8", "replace"), seq
        if not self.capabilities & codec.CLIENT_PLUGIN_AUTH:
            raise codec.ProtocolViolation("the client does not support authentication plugins")
        if hello.auth_plugin_name != codec.CACHING_SHA2_PASSWORD:
            nonce = bytes(33 + secrets.randbelow(94) for _ in range(20))
            switch = codec.AuthSwitchRequest(codec.CACHING_SHA2_PASSWORD, nonce + b"\0")
            self._send(codec.build_auth_switch(switch), seq + 1)
            await self.client.drain()
            seq, _ = await self._client_packet(seq + 2)  # its scramble: of no use, the token is needed
        # "perform full authentication": over TLS the client sends the password itself.
        self._send(codec.build_auth_more_data(bytes([auth.PERFORM_FULL_AUTHENTICATION])), seq + 1)
        await self.client.drain()
        seq, payload = await self._client_packet(seq + 2)
        return payload.rstrip(b"\0").decode("utf-8", "replace"), seq

    async def _admit(self, token: str, connection_name: str, hello: codec.HandshakeResponse) -> None:
        guard = self.guard
        await guard.admit(token, connection_name, MYSQL_SCHEMES)
        self.identity, self.connection = guard.identity, guard.connection
        try:
            self.target = MySqlTarget.from_url(self.connection.upstream_url)
        except ValueError as exc:
            raise ServiceUnavailable(
                f"connection {connection_name!r} is misconfigured: {exc}", code="bad_connection"
            ) from None
        attributes = dict(hello.connect_attributes or ())
        await guard.open(
            self,
            database=self.target.database,
            client_user=cut(hello.username, 256),
            client_program=cut(attributes.get("program_name") or attributes.get("_client_name", ""), 256),
        )

    async def _open_backend(self, hello: codec.HandshakeResponse) -> MySqlBackendLink:
        try:
            credential = await self.guard.credential()
        except GatewayError as exc:
            raise BackendUnavailable(exc.message, *ER_UNKNOWN_ERROR) from None  # a store, not the database
        attributes = tuple(
            (k, v)
            for k, v in (hello.connect_attributes or ())
            if k in ("_client_name", "_client_version", "program_name")
        )
        link = await open_backend(
            self.target,
            credential,
            client_capabilities=self.capabilities,
            charset=hello.charset,
            connect_attrs=attributes,
            timeout=self.limits.backend_connect_timeout_s,
            connection=self.connection.name,
        )
        # The database may lack what the client was offered (DEPRECATE_EOF): the codec translates.
        self.services.mysql_learned_version = link.greeting.server_version
        return link

    def terminate(self, reason: str, code: str) -> None:
        """End the session now (the kill switch, its token's expiry, its maximum duration)."""
        if self.ending is not None:
            return
        self.ending = f"{code}: {reason}"
        self.guard.ended(code)
        with contextlib.suppress(Exception):
            # Read by the client as (the rest of) the answer to its command in flight, or as the
            # answer to its next one.
            seq = self._sent_seq + 1 if self.pending else 1
            self._send(_err(ER_CONNECTION_KILLED, f"wardgate ended the session: {reason}"), seq)
        for task in self._tasks:
            task.cancel()

    async def _close(self) -> None:
        self.services.mysql_sessions.pop(self.connection_id, None)
        if self.backend is not None:
            if any(not p.local for p in self.pending):
                # The client is gone (or was ended) with a statement still running: stop it.
                with contextlib.suppress(Exception):
                    await kill_query(
                        self.target, await self.guard.credential(), self.backend.connection_id, timeout=2.0
                    )
            close_backend(self.backend)
        with contextlib.suppress(Exception):
            self.client.close()
        await self.guard.close(self, self.ending)

    async def _fatal(self, error: tuple[int, str], message: str, seq: int = 0) -> None:
        """An ERR that ends the session (during the login its sequence id follows the client's)."""
        with contextlib.suppress(Exception):
            self._send(_err(error, message), seq or self._sent_seq + 1)
            await self.client.drain()

    def _send(self, payload: bytes, seq: int) -> None:
        self._sent_seq = (seq + codec.packet_count(len(payload)) - 1) & 0xFF
        self.client.write(codec.frame(payload, seq & 0xFF))

    async def _start_tls(self) -> None:
        """TLS right after the SSLRequest. The client does not wait for an answer, so the start of
        its ClientHello may already sit in the stream's buffer, where the TLS layer would never see
        it. Reading stops first (nothing more can land in that buffer), the buffered bytes are taken,
        and once start_tls has put the TLS protocol in place, and before that protocol starts its
        handshake (connection_made, scheduled by start_tls), they are given to it as received."""
        assert self.services.tls is not None
        reader = self.client_reader
        transport = cast(asyncio.Transport, self.client.transport)  # a socket's: it reads too
        transport.pause_reading()
        buffered: bytearray = reader._buffer  # type: ignore[attr-defined]  # asyncio has no public way back
        early = bytes(buffered)
        buffered.clear()
        plain = transport.get_protocol()
        upgrade = asyncio.ensure_future(self.client.start_tls(self.services.tls))
        while transport.get_protocol() is plain and not upgrade.done():
            await asyncio.sleep(0)  # this step runs right after the one that swapped the protocol
        if early and not upgrade.done():
            _feed(transport.get_protocol(), early)
        await upgrade

    async def _client_packet(self, expected: int | None = None) -> tuple[int, bytes]:
        """The client's next packet during the login, read exactly: after an SSLRequest the TLS
        handshake follows at once, and its bytes must stay in the stream for TLS."""
        header = await self.client_reader.readexactly(4)
        length, seq = int.from_bytes(header[:3], "little"), header[3]
        if length >= codec.MAX_PACKET_PAYLOAD or length > LOGIN_PACKET_LIMIT:
            raise codec.PacketTooLarge(
                f"a login packet of {length} bytes is larger than {LOGIN_PACKET_LIMIT}"
            )
        if expected is not None:
            codec.check_sequence(seq, expected)
        return seq, await self.client_reader.readexactly(length)

    def _recording_failed(self, error: BaseException) -> None:
        self.terminate("its events could not be recorded, so it cannot go on", "recording_unavailable")

    # ------------------------------------------------------------------ relaying
    async def _relay(self) -> None:
        self._tasks = [
            asyncio.create_task(self._from_client()),
            asyncio.create_task(self._from_backend()),
        ]
        try:
            await first_to_end(self._tasks)
        finally:
            if self.ending is not None:
                with contextlib.suppress(Exception):
                    await self.client.drain()

    async def _from_client(self) -> None:
        assert self.backend is not None
        backend = self.backend.writer
        packets = self.packets
        packets.expected_sequence = None  # commands start at 0; LOCAL INFILE data goes on from its request
        while True:
            data = await self.client_reader.read(READ_SIZE)
            if not data:
                return
            packets.feed(data)
            out: list[bytes] = []
            while (packet := packets.next()) is not None:
                seq, payload = packet
                if self._infile is not None:
                    out.append(self._infile_data(seq, payload))
                    continue
                if seq != 0:
                    raise codec.PacketsOutOfOrder(f"a command with sequence id {seq}, expected 0")
                if not payload:
                    raise codec.ProtocolViolation("an empty command packet")
                if payload[0] == codec.COM_QUIT:
                    backend.write(b"".join(out))
                    return
                await self._command(payload, out)
            if out:
                backend.write(b"".join(out))
                await backend.drain()

    # ------------------------------------------------------------------ commands
    async def _command(self, payload: bytes, out: list[bytes]) -> None:
        command = payload[0]
        if command == codec.COM_QUERY:
            await self._query(payload, out)
        elif command == codec.COM_STMT_EXECUTE:
            await self._stmt_execute(payload, out)
        elif command == codec.COM_STMT_PREPARE:
            await self._stmt_prepare(payload, out)
        elif command == codec.COM_STMT_SEND_LONG_DATA:
            self._stmt_long_data(payload, out)
        elif command == codec.COM_STMT_CLOSE:
            statement_id = _statement_id(payload)
            self.prepared.pop(statement_id, None)
            out.append(codec.frame(payload, 0))  # no answer comes
        elif command in (codec.COM_STMT_RESET, codec.COM_STMT_FETCH):
            statement = self.prepared.get(_statement_id(payload))
            if statement is not None and command == codec.COM_STMT_RESET:
                statement.long_data.clear()
            self._forward(payload, out, statement=statement)
        elif command == codec.COM_INIT_DB:
            schema = payload[1:].decode("utf-8", "replace")
            if schema != self.target.database:
                self._answer_locally(
                    command,
                    _err(
                        ER_DBACCESS_DENIED,
                        f"wardgate: connection {self.connection.name!r} serves only the database "
                        f"{self.target.database!r}",
                    ),
                )
            else:
                self._forward(payload, out)
        elif command == codec.COM_FIELD_LIST:
            # The columns of a table: decided as the SHOW COLUMNS it is.
            table = payload[1:].split(b"\0", 1)[0].decode("utf-8", "replace").replace("`", "``")
            verdict = await self.guard.decide(f"SHOW COLUMNS FROM `{table}`")
            if verdict.allowed:
                self._forward(payload, out)
            else:
                self._answer_locally(command, _refusal_err(verdict.refusal))
        elif command in (codec.COM_PING, codec.COM_STATISTICS, codec.COM_SET_OPTION):
            self._forward(payload, out)
        elif command == codec.COM_RESET_CONNECTION:
            self.prepared.clear()
            self._forward(payload, out)
        elif command == codec.COM_CHANGE_USER:
            self._answer_locally(
                command,
                _err(
                    ER_ACCESS_DENIED,
                    "wardgate: COM_CHANGE_USER is not served: a session is one agent on one connection "
                    "(open a new connection instead)",
                ),
            )
        else:
            name = _COMMAND_NAMES.get(command, f"0x{command:02x}")
            self._answer_locally(command, _err(ER_UNKNOWN_COM, f"wardgate does not serve the command {name}"))

    async def _query(self, payload: bytes, out: list[bytes]) -> None:
        sql = _statement_text(payload[1:])
        if sql is None:
            self._answer_locally(codec.COM_QUERY, _err(ER_INVALID_CHARACTER_STRING, _NOT_UTF8))
            return
        kill = _KILL.fullmatch(sql)
        if kill is not None:
            await self._kill(kill.group(1) or "", int(kill.group(2)))
            return
        verdict = await self.guard.decide(sql, in_transaction=self._in_transaction())
        run = await self.guard.recorded_run("query", verdict) if verdict.allowed else None
        if run is None:
            self._answer_locally(codec.COM_QUERY, _refusal_err(verdict.refusal))
            return
        self._forward(payload, out, run=run, local_infile=_loads_local_file(verdict.operation, sql))

    async def _kill(self, what: str, connection_id: int) -> None:
        """``KILL [QUERY|CONNECTION] <id>``, what a client's Ctrl-C sends on a new connection, with
        the id from wardgate's greeting: never passed on (the database's ids are others, and its
        thread with that id may be someone else's session). Served by wardgate for a session of the
        same identity; any other id is unknown, as MySQL says of a thread one may not see."""
        target = self.services.mysql_sessions.get(connection_id)
        mine = target is not None and (target.identity.issuer, target.identity.subject) == (
            self.identity.issuer,
            self.identity.subject,
        )
        kind = what.strip().lower() or "connection"
        try:
            await self.services.recorder.write(
                self.record, "kill", target=connection_id, what=kind, served=mine
            )
        except GatewayError as unrecorded:
            self._answer_locally(codec.COM_QUERY, _err(ER_UNKNOWN_ERROR, f"wardgate: {unrecorded.message}"))
            return
        if not mine or target is None:
            self._answer_locally(
                codec.COM_QUERY, _err(ER_NO_SUCH_THREAD, f"Unknown thread id: {connection_id}")
            )
            return
        if kind == "query":
            if target.backend is not None:
                credential = await target.guard.credential()
                await kill_query(target.target, credential, target.backend.connection_id, timeout=5.0)
        else:
            target.terminate(f"killed from session {self.record.record_id}", "killed_by_client")
        self._answer_locally(codec.COM_QUERY, codec.build_ok(codec.Ok(status=self.status), self.capabilities))

    async def _stmt_prepare(self, payload: bytes, out: list[bytes]) -> None:
        # Preparing runs nothing: a statement needing approval is prepared and asked for when it
        # is executed, with its values (an approval is for one statement with its parameters).
        sql = _statement_text(payload[1:])
        if sql is None:
            self._answer_locally(codec.COM_STMT_PREPARE, _err(ER_INVALID_CHARACTER_STRING, _NOT_UTF8))
            return
        verdict = await self.guard.decide(sql, executing=False)
        if not verdict.allowed:
            self._answer_locally(codec.COM_STMT_PREPARE, _refusal_err(verdict.refusal))
            return
        self._forward(payload, out, prepared_text=sql)

    async def _stmt_execute(self, payload: bytes, out: list[bytes]) -> None:
        statement_id = _statement_id(payload)
        if statement_id == LAST_PREPARED:
            # MariaDB's "the statement prepared last", sent right behind its COM_STMT_PREPARE
            # (pipelined): decided on that statement, so its answer is awaited first.
            if any(p.command == codec.COM_STMT_PREPARE and not p.local for p in self.pending):
                assert self.backend is not None
                self.backend.writer.write(b"".join(out))
                out.clear()
                await self.backend.writer.drain()
                await self._prepares_answered.wait()
            statement_id = self.last_prepared if self.last_prepared is not None else statement_id
        statement = self.prepared.get(statement_id)
        if statement is None:
            # Not prepared through wardgate (so never decided): the database must not run it.
            self._answer_locally(
                codec.COM_STMT_EXECUTE,
                _err(
                    (1243, "HY000"),
                    f"wardgate: unknown prepared statement handler ({statement_id}) given to execute",
                ),
            )
            return
        execute = codec.parse_stmt_execute(
            payload, statement.param_count, statement.param_types, tuple(statement.long_data)
        )
        statement.param_types = execute.types
        sent, shown = self._bound_values(statement, execute)
        verdict = await self.guard.decide(
            statement.text, in_transaction=self._in_transaction(), bound=(sent, shown)
        )
        run = await self.guard.recorded_run("execute", verdict, shown) if verdict.allowed else None
        if run is None:
            # Not sent: the database keeps the long data, and so does the hash of what it holds.
            self._answer_locally(codec.COM_STMT_EXECUTE, _refusal_err(verdict.refusal))
            return
        statement.long_data.clear()  # the database forgets it after an execute
        self._forward(payload, out, run=run, statement=statement)

    def _stmt_long_data(self, payload: bytes, out: list[bytes]) -> None:
        statement_id, param = _statement_id(payload), int.from_bytes(payload[5:7], "little")
        statement = self.prepared.get(statement_id)
        if statement is not None:
            # What the parameter will hold, for the approval bound to its values (never its text).
            digest = statement.long_data.get(param) or hashlib.sha256()
            digest.update(payload[7:])
            statement.long_data[param] = digest
        out.append(codec.frame(payload, 0))  # no answer comes

    def _bound_values(
        self, statement: _Prepared, execute: codec.ExecuteRequest
    ) -> tuple[list[Any], list[str | None]]:
        """The values as sent (what an approval is bound to) and as shown (masked, cut)."""
        sent: list[Any] = []
        shown: list[str | None] = []
        for i, param in enumerate(execute.params):
            if param.long_data:
                digest = statement.long_data[i].hexdigest()
                sent.append(["long_data", digest])
                shown.append(f"[sent as long data, sha256 {digest}]")
            elif param.value is None:
                sent.append(None)
                shown.append(None)
            else:
                text = parameter_text(param.value) or ""
                sent.append([param.type, param.unsigned, text])
                shown.append(self.guard.shown_value(text))
        return sent, shown

    def _in_transaction(self) -> bool:
        return bool(self.status & codec.SERVER_STATUS_IN_TRANS)

    def _forward(
        self,
        payload: bytes,
        out: list[bytes],
        *,
        run: StatementRun | None = None,
        statement: _Prepared | None = None,
        prepared_text: str = "",
        local_infile: str | None = None,
    ) -> None:
        out.append(codec.frame(payload, 0))
        caps = self._backend_caps
        translate = bool(self.capabilities & ~caps & codec.CLIENT_DEPRECATE_EOF)
        reader = codec.ResponseReader(payload[0], caps, translate_eof=translate)
        if payload[0] == codec.COM_STMT_PREPARE:
            self._prepares_answered.clear()
        self.pending.append(
            _Pending(
                payload[0],
                _Answer(reader),
                run=run,
                prepared_text=prepared_text,
                statement=statement,
                local_infile=local_infile,
            )
        )

    def _answer_locally(self, command: int, err: bytes) -> None:
        """wardgate's own answer to a command; after the database's answers to earlier ones."""
        if not self.pending:
            self._send(err, 1)
        else:
            self.pending.append(_Pending(command, local=err))

    # ------------------------------------------------------------------ the database's answers
    async def _from_backend(self) -> None:
        assert self.backend is not None
        reader, client = self.backend.reader, self.client
        packets = codec.PacketReader(max_payload=codec.DEFAULT_MAX_PAYLOAD)
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                if self.ending is None:
                    self.ending = "the database closed the session"
                    await self._fatal(ER_SERVER_SHUTDOWN, "the database closed the connection")
                return
            packets.feed(data)
            out: list[bytes] = []
            while (packet := packets.next()) is not None:
                self._backend_packet(packet[0], packet[1], out)
            self._flush_rows(out)
            if out:
                client.write(b"".join(out))
                await client.drain()  # backpressure: a slow client slows the database, memory stays flat

    def _backend_packet(self, seq: int, payload: bytes, out: list[bytes]) -> None:
        """One packet of the answer to the command at the head of ``pending`` (the codec's
        ``ResponseReader`` says what it is); what the client gets goes to ``out``: the packet as
        it is, masked, translated, or nothing."""
        if not self.pending or self.pending[0].local:
            raise codec.ProtocolViolation("the database sent a packet no command asked for")
        head = self.pending[0]
        answer = head.answer
        assert answer.reader is not None
        event = answer.reader.read(payload)
        client_seq = self._sent_seq = (seq - answer.dropped) & 0xFF
        if type(event) is codec.TextRow or type(event) is codec.BinaryRow:
            self._rows.append((client_seq, payload))  # masked in a batch: one scan of their strings
            return
        self._flush_rows(out)
        forwarded: bytes | None = payload
        match event:
            case codec.Column(definition=definition):
                answer.columns.append(definition)
            case codec.ResultSetStart():
                answer.columns, answer.masker, answer.rows = [], None, 0
            case codec.ResultSetDone():
                self._end_of_rows(head, event)
                forwarded = event.payload
            case codec.OkReply(ok=ok):
                self.status = ok.status
                if head.run is not None:
                    head.run.tags.append(f"OK {ok.affected_rows}")
            case codec.ErrReply(err=err):
                forwarded = self._database_error(head, err, payload)
                if head.command == codec.COM_STMT_PREPARE:
                    self.last_prepared = None  # "the statement prepared last" is none now
            case codec.PrepareOk():
                self.prepared[event.statement_id] = _Prepared(head.prepared_text, event.param_count)
                self.last_prepared = event.statement_id
            case codec.LocalInfileRequest(filename=filename):
                self._local_infile_request(head, seq, filename, out)
                return
            case codec.ColumnsDone() | codec.FieldListDone() | codec.EofReply():
                forwarded = event.payload  # translated, or None: dropped for this client
        if forwarded is None:
            answer.dropped += 1  # an EOF the client does not expect: later packets move up one
        else:
            out.append(codec.frame(forwarded, client_seq))
        if answer.reader.done:
            self._done(head, out)

    def _end_of_rows(self, head: _Pending, end: codec.ResultSetDone) -> None:
        answer = head.answer
        self.status = end.status
        if head.run is not None:
            head.run.tags.append(f"SELECT {answer.rows}")
        if end.cursor_exists and head.command == codec.COM_STMT_EXECUTE and head.statement is not None:
            head.statement.columns = answer.columns  # its rows come with COM_STMT_FETCH

    def _done(self, head: _Pending, out: list[bytes]) -> None:
        """The head command is answered: its result is recorded, wardgate's own answers that were
        waiting behind it go out."""
        self.pending.popleft()
        if head.run is not None:
            self.guard.finish(head.run)
        if head.command == codec.COM_STMT_PREPARE and not any(
            p.command == codec.COM_STMT_PREPARE and not p.local for p in self.pending
        ):
            self._prepares_answered.set()
        while self.pending and self.pending[0].local:
            out.append(codec.frame(self.pending.popleft().local, 1))

    def _database_error(self, head: _Pending, err: codec.Err, payload: bytes) -> bytes:
        """The database's ERR, its message masked like a result (it can quote a row's values)."""
        masked = mask_text(err.message, self.guard.profile())
        if head.run is not None:
            head.run.error = {
                "code": str(err.code),
                "sqlstate": err.sqlstate or "",
                "message": cut(masked.value, 512),
            }
        if not masked.counts:
            return payload
        return codec.build_err(codec.Err(err.code, masked.value, err.sqlstate), self.capabilities)

    def _flush_rows(self, out: list[bytes]) -> None:
        """The rows gathered for the head command, masked together, to ``out``."""
        if not self._rows:
            return
        batch, self._rows = self._rows, []
        head = self.pending[0]
        answer = head.answer
        masker = answer.masker
        if masker is None:
            # A FETCH's rows: the columns came with the execute that opened the cursor.
            columns = answer.columns or (head.statement.columns if head.statement is not None else [])
            if not columns:
                raise MaskingRefused("rows arrived for a result whose columns are unknown")
            masker = answer.masker = self._masker(tuple(columns), head.command != codec.COM_QUERY)
        masked, counts = masker.mask_rows([payload for _, payload in batch])
        answer.rows += len(batch)
        run = head.run
        if run is not None:
            run.rows += len(batch)
            if counts:
                run.count_masked(counts)
            for row in masked[: max(0, self.limits.recorded_rows - len(run.first_rows))]:
                run.first_rows.append(
                    [cut(v, self.limits.recorded_row_bytes) if v else v for v in masker.displayed(row)]
                )
        out.extend(codec.frame(row, seq) for (seq, _), row in zip(batch, masked, strict=True))

    def _masker(self, columns: tuple[codec.ColumnDefinition, ...], binary: bool) -> ResultMasker:
        profile = self.guard.profile()
        key = (id(profile), binary, tuple(c.payload for c in columns))  # names, original names, types
        masker = self._maskers.get(key)
        if masker is None:
            if len(self._maskers) > 256:
                self._maskers.clear()
            masker = self._maskers[key] = ResultMasker(columns, profile, binary=binary)
        return masker

    # ------------------------------------------------------------------ LOAD DATA LOCAL INFILE
    def _local_infile_request(self, head: _Pending, seq: int, filename: bytes, out: list[bytes]) -> None:
        """The database asks the client for a file. Passed on only for the file of a LOAD DATA
        LOCAL statement policy allowed: a server asking for another one is refused (that is how a
        rogue server reads a client's files)."""
        assert self.backend is not None
        name = filename.decode("utf-8", "replace")
        if head.local_infile is not None and name == head.local_infile:
            self._infile = head
            out.append(codec.frame(b"\xfb" + filename, (seq - head.answer.dropped) & 0xFF))
            return
        # No file for it (an empty packet): the database answers with an ERR, which the client gets.
        self.backend.writer.write(codec.frame(b"", seq + 1))
        head.answer.dropped += 2  # the request and our empty reply: the client saw neither
        if head.run is not None:
            head.run.error = {"code": "local_infile_refused", "message": f"the database asked for {name!r}"}

    def _infile_data(self, seq: int, payload: bytes) -> bytes:
        """A packet of the file the client sends for an allowed LOAD DATA LOCAL (an empty one ends it)."""
        head = self._infile
        assert head is not None
        if not payload:
            self._infile = None
        return codec.frame(payload, (seq + head.answer.dropped) & 0xFF)

    @property
    def _backend_caps(self) -> int:
        assert self.backend is not None
        return self.backend.capabilities


ER_INVALID_CHARACTER_STRING = (1300, "HY000")
_NOT_UTF8 = "wardgate: the statement is not valid UTF-8 (wardgate reads statements as UTF-8)"
_COMMAND_NAMES = {
    getattr(codec, name): name
    for name in dir(codec)
    if name.startswith("COM_") and isinstance(getattr(codec, name), int)
}


_KILL = re.compile(r"\s*KILL\s+(QUERY\s+|CONNECTION\s+)?(\d{1,19})\s*;?\s*", re.IGNORECASE)


def _new_connection_id(taken: dict[int, Any]) -> int:
    while True:
        connection_id = secrets.randbelow(2**31 - 1) + 1
        if connection_id not in taken:
            return connection_id


def _feed(protocol: Any, data: bytes) -> None:
    """Give ``data`` to a buffered protocol as if it came from the socket."""
    view = memoryview(data)
    while view:
        buffer = protocol.get_buffer(len(view))
        n = min(len(buffer), len(view))
        buffer[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]


def _err(error: tuple[int, str], message: str) -> bytes:
    code, sqlstate = error
    return codec.build_err(codec.Err(code, message, sqlstate), codec.CLIENT_PROTOCOL_41)


def _refusal_err(refusal: Refusal | None) -> bytes:
    """A refusal in MySQL's terms: 1227/42000 with the policy's reason and where it is on record,
    or 1105/HY000 when the statement could not be recorded (so it did not run)."""
    assert refusal is not None
    if refusal.code == "recording_unavailable":
        return _err(ER_UNKNOWN_ERROR, f"wardgate: {refusal.message}; nothing reaches the database unrecorded")
    where = (
        f"record {refusal.record_id}, event {refusal.event}"
        if refusal.event
        else f"record {refusal.record_id}"
    )
    return _err(ER_SPECIFIC_ACCESS_DENIED, f"wardgate: {refusal.message} ({where}, {refusal.code})")


def _admission_error(refused: GatewayError) -> tuple[int, str]:
    return next((e for t, e in ADMISSION_ERRORS.items() if isinstance(refused, t)), ER_UNKNOWN_ERROR)


def _statement_id(payload: bytes) -> int:
    if len(payload) < 5:
        raise codec.ProtocolViolation("a statement command without a statement id")
    return int.from_bytes(payload[1:5], "little")


def _statement_text(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _loads_local_file(operation: dict[str, Any], sql: str) -> str | None:
    """The file a LOAD DATA LOCAL INFILE statement (which policy allowed) names, else None."""
    if not any("load_data_local" in st.get("features", ()) for st in operation.get("statements", ())):
        return None
    named = _LOCAL_INFILE.search(sql)
    return named.group(2) if named else None


_LOCAL_INFILE = re.compile(r"\bLOCAL\s+INFILE\s+(['\"])(.*?)\1", re.IGNORECASE | re.DOTALL)


def _changes_how_statements_are_read(recorded: dict[str, Any]) -> str:
    """Why a statement may not run whatever policy says: it would change how the database reads
    the statements that follow, which wardgate reads as UTF-8 in MySQL's default quoting."""
    for statement in recorded.get("statements", ()):
        features = statement["features"]
        if "set_client_encoding" in features:
            return (
                "statements that switch to a character set other than utf8mb4/utf8mb3 (SET NAMES, "
                "SET CHARACTER SET, character_set_client...) are not accepted: wardgate reads every "
                "statement as UTF-8"
            )
        if "set_sql_mode" in features:
            return (
                "this sql_mode change is not accepted: ANSI_QUOTES, NO_BACKSLASH_ESCAPES (or a value "
                "wardgate cannot know in advance) change how the database reads the next statements"
            )
    return ""
