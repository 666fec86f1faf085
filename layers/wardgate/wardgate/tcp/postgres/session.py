"""One PostgreSQL client session through wardgate, from the first byte to the last.

The agent's client (psql, psycopg, asyncpg, pgbench...) connects as to any PostgreSQL server:
TLS inside the protocol (required), the **connection name as the database**, any user name, and
its OIDC token as the password. wardgate admits it once (token, agent registry, connection), logs
in to the real database with the connection's own credential, then relays the session, deciding
every statement.

Refusals keep PostgreSQL's own semantics by letting the database produce the error: a refused
statement is replaced, in place, by a statement that cannot parse (``wardgate_refused_<nonce>``),
so the database answers with a syntax error exactly where the statement's answer belongs (even
deep in a pipeline), aborts the transaction if one is open and skips to the next Sync, as it
would for any error. The gateway swaps that error for its own (SQLSTATE 42501, the policy's
reason, the record id) on the way back. Nothing of the refused statement reaches the database.

Two coroutines relay a session: client to database (decide, record, forward) and database to
client (mask, count, forward). ``_Pending`` keeps, in order, what the database still owes an
answer to, so the second knows which statement, result formats and columns each answer belongs to.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from wardgate.connections import Connection
from wardgate.errors import Forbidden, GatewayError, NotFound, ServiceUnavailable, Unauthorized
from wardgate.identity import Identity
from wardgate.masking.engine import MaskingProfile, MaskingRefused, mask_text
from wardgate.observability import logger
from wardgate.tcp.guard import Refusal, SqlGuard, StatementRun, Verdict, cut
from wardgate.tcp.postgres import codec
from wardgate.tcp.postgres.backend import BackendLink, BackendUnavailable, PgTarget, connect, rds_iam_token
from wardgate.tcp.postgres.backend import cancel as cancel_backend
from wardgate.tcp.postgres.values import ResultMasker, render_binary
from wardgate.tcp.services import TcpServices
from wardgate.tcp.sessions import TooManySessions, first_to_end

READ_SIZE = 256 * 1024
REFUSED_PREFIX = "wardgate_refused_"
# Startup parameters passed on to the database. Others are dropped: they would change the session
# without a statement policy could see (``options`` can set any GUC, ``replication`` a protocol).
FORWARDED_PARAMETERS = (
    "application_name",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "extra_float_digits",
    "IntervalStyle",
)
REFUSED_PARAMETERS = ("options", "replication")
PG_SCHEMES = ("postgresql", "postgres")
# How a refusal at admission reads in PostgreSQL's terms.
ADMISSION_SQLSTATE = {Unauthorized: "28P01", Forbidden: "28000", NotFound: "3D000", TooManySessions: "53300"}
ENDING_SQLSTATE = "57P01"  # admin_shutdown: what the kill switch and lifetimes end a session with


class _Ended(Exception):
    """The session is over (the reason is already told and recorded)."""


@dataclass(slots=True)
class _Pending:
    """A frontend message the database still owes an answer to."""

    kind: int
    name: str = ""  # the statement (Parse, Describe 'S', Close 'S') or portal (Describe 'P', Execute)
    what: str = ""  # Describe/Close: 'S' or 'P'
    internal: bool = False  # a Describe the gateway added: its answer is not the client's
    run: StatementRun | None = None
    statement: str = ""  # Execute: the statement of its portal
    formats: tuple[int, ...] = ()  # Execute: the result formats its Bind asked for
    prepared: _Prepared | None = None  # Execute: the statement its portal was bound to; Describe 'S': it
    portal: _Portal | None = None  # Execute, Describe 'P': the very portal (a name can be bound again)
    # Parse, Close 'S': (name, the statement the name had, the one it has now): undone when the
    # database skips or fails the message, so that the gateway's names stay the database's
    undo: tuple[str, _Prepared | None, _Prepared | None] | None = None
    settles: bool = False  # Sync: it ends a run of messages that changed statement names


@dataclass(slots=True)
class _Prepared:
    text: str
    operation: dict[str, Any]
    decision: dict[str, Any]
    param_types: tuple[int, ...]  # as the Parse declared them (0: let the server infer)
    refused: bool = False
    # From a Describe of the statement, or of a portal bound to it: a prepared statement's result
    # columns never change (PostgreSQL refuses to run one whose result type would), so later
    # executions need no Describe of their own for masking.
    columns: tuple[codec.Column, ...] | None = None
    described: bool = False  # a Describe 'S' was sent since its Parse


@dataclass(slots=True)
class _Portal:
    statement: str
    params: tuple[bytes | None, ...]
    param_formats: tuple[int, ...]
    formats: tuple[int, ...]
    columns: tuple[codec.Column, ...] | None = None
    described: bool = False
    prepared: _Prepared | None = None  # the very statement it was bound to (a name can be parsed again)


class PgSession:
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
            "postgres",
            "postgres",
            self.peer,
            pinned=_changes_client_encoding,
            on_recording_failure=self._recording_failed,
        )
        self.record = self.guard.record
        self.messages = codec.MessageReader(startup=True, max_message=self.limits.max_message_bytes)
        self.identity: Identity
        self.connection: Connection
        self.target: PgTarget
        self.backend: BackendLink | None = None
        self.opened_at = self.verified_at = time.monotonic()
        self.process_id = 0
        self.secret_key = b""
        self.tx_status = b"I"
        self.pending: deque[_Pending] = deque()
        self.prepared: dict[str, _Prepared] = {}
        self.portals: dict[str, _Portal] = {}
        self.rewrites: dict[str, bytes] = {}
        # Syncs sent after Parse/Close messages whose ReadyForQuery has not come back: until then,
        # the next messages naming statements wait (see _settle_names)
        self._unsettled = 0
        self._names_changed = False  # since the last Sync
        self._settled = asyncio.Event()
        self.ending: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # (id(profile), description) -> (profile, masker): the entry holds its profile, so that its
        # id is not another's (a new policy's profile can be allocated where an old one was)
        self._maskers: dict[tuple[Any, ...], tuple[MaskingProfile, ResultMasker]] = {}
        # id(columns) -> (columns, formats, profile, masker): the masker of the latest results,
        # found without rebuilding their description (the entry holds its objects: ids stay theirs)
        self._recent_maskers: dict[
            int, tuple[tuple[codec.Column, ...], tuple[int, ...] | None, MaskingProfile, ResultMasker]
        ] = {}
        self._row_descriptions: dict[bytes, tuple[codec.Column, ...]] = {}  # body -> its parse

    # ------------------------------------------------------------------ life cycle
    async def run(self) -> None:
        try:
            try:
                async with asyncio.timeout(self.limits.startup_timeout_s):
                    if not await self._start() or self.ending is not None:
                        return  # (ended by the sweep while it was logging in)
            except TimeoutError:
                await self._fatal(
                    "08P01", f"the session did not start within {self.limits.startup_timeout_s:g} s"
                )
                return
            await self._relay()
        except MaskingRefused as refused:
            self.ending = self.ending or f"result withheld: {refused.reason}"
            await self._fatal("0A000", f"wardgate withheld a result it cannot mask: {refused.reason}")
        except codec.ProtocolViolation as violation:
            await self._fatal(violation.sqlstate, f"protocol violation: {violation.message}")
            self.ending = self.ending or f"protocol violation: {violation.message}"
        except (ConnectionError, asyncio.IncompleteReadError, _Ended):
            pass
        except Exception:
            logger.exception("postgres session failed", extra={"record_id": self.record.record_id})
            self.ending = self.ending or "internal error"
            await self._fatal("XX000", f"internal error in wardgate (record {self.record.record_id})")
        finally:
            await self._close()

    async def _start(self) -> bool:
        """TLS, startup, token, admission, the database's login. False: nothing more to serve."""
        encrypted = False
        while True:
            kind, body = await self._next_message()
            startup = codec.parse_startup(body)
            if isinstance(startup, codec.CancelRequest):
                await self._cancel(startup)
                return False
            if isinstance(startup, codec.GSSENCRequest):
                self.client.write(b"N")  # declined: libpq then asks for TLS
                continue
            if isinstance(startup, codec.SSLRequest):
                if encrypted or self.services.tls is None:
                    self.client.write(b"N")
                    continue
                if self.messages.buffered:  # bytes sent before the handshake could be injected
                    raise codec.ProtocolViolation("data was sent after SSLRequest before the TLS handshake")
                self.client.write(b"S")
                await self.client.drain()
                await self.client.start_tls(self.services.tls)
                encrypted = True
                continue
            break
        self.messages.expect_typed()
        if not encrypted:
            await self._fatal(
                "28000",
                "wardgate requires TLS: connect with sslmode=require or stronger (sslmode=verify-full "
                "with the gateway's CA as sslrootcert is best)",
            )
            return False
        parameters = startup.parameters
        if startup.protocol != codec.PROTOCOL_3_0:
            unknown = [name for name in parameters if name.startswith("_pq_.")]
            self.client.write(codec.negotiate_protocol_version(0, unknown))
        for name in REFUSED_PARAMETERS:
            if name in parameters:
                await self._fatal("08P01", f"the startup parameter {name!r} is not accepted by wardgate")
                return False
        encoding = parameters.get("client_encoding", "UTF8").strip("'\"").upper()  # asyncpg: 'utf-8'
        encoding = encoding.replace("-", "").replace("_", "")
        if encoding not in ("UTF8", "UNICODE"):
            await self._fatal("22023", "wardgate serves client_encoding UTF8 only")
            return False
        self.record.connection = connection_name = parameters.get("database") or parameters["user"]
        self.client.write(codec.authentication_cleartext_password())
        await self.client.drain()
        kind, body = await self._next_message()
        if kind != codec.PASSWORD:
            raise codec.ProtocolViolation("expected a password message")
        token = codec.parse_password(body)
        try:
            await self._admit(token, connection_name)
        except GatewayError as refused:
            sqlstate = next((s for t, s in ADMISSION_SQLSTATE.items() if isinstance(refused, t)), "57P03")
            await self.guard.record_admission_refusal(refused)
            await self._fatal(sqlstate, refused.message)
            return False
        try:
            self.backend = await self._open_backend(parameters)
        except BackendUnavailable as down:
            self.ending = f"database unavailable: {down.message}"
            # The database's own login refusal (28xxx) is not the agent's: 08004 says the server
            # side rejected the connection; a store wardgate needs keeps its 57P03.
            sqlstate = down.sqlstate if down.sqlstate.startswith(("08", "57")) else "08004"
            await self._fatal(sqlstate, down.message)
            return False
        self.process_id, self.secret_key = self._cancel_key()
        self.services.cancel_targets[self.process_id] = self
        out = [codec.authentication_ok(), *self.backend.parameters, *self.backend.notices]
        out.append(codec.backend_key_data(self.process_id, self.secret_key))
        out.append(codec.ready_for_query(self.backend.status))
        self.client.write(b"".join(out))
        await self.client.drain()
        return True

    async def _admit(self, token: str, connection_name: str) -> None:
        guard = self.guard
        await guard.admit(token, connection_name, PG_SCHEMES)
        self.identity, self.connection = guard.identity, guard.connection
        try:
            self.target = PgTarget.from_url(self.connection.upstream_url)
        except ValueError as exc:
            raise ServiceUnavailable(
                f"connection {connection_name!r} is misconfigured: {exc}", code="bad_connection"
            ) from None
        await guard.open(self, database=self.target.database)

    async def _open_backend(self, parameters: dict[str, str]) -> BackendLink:
        password: str | None = None
        ca_pem: str | None = None
        try:
            credential = await self.guard.credential()
        except GatewayError as exc:
            raise BackendUnavailable(exc.message, "57P03") from None  # a store, not the database
        if credential is not None:
            password, ca_pem = credential.password, credential.ca_pem
        if self.target.auth == "rds-iam":
            try:
                password = await asyncio.to_thread(rds_iam_token, self.target)
            except Exception as exc:
                raise BackendUnavailable(f"no RDS IAM token ({type(exc).__name__})") from None
        forwarded = {k: v for k, v in parameters.items() if k in FORWARDED_PARAMETERS}
        forwarded["client_encoding"] = "UTF8"
        return await connect(self.target, password, ca_pem, forwarded, self.limits.backend_connect_timeout_s)

    def _cancel_key(self) -> tuple[int, bytes]:
        while True:
            process_id = secrets.randbelow(2**31 - 1) + 1
            if process_id not in self.services.cancel_targets:
                return process_id, secrets.token_bytes(4)

    async def _cancel(self, request: codec.CancelRequest) -> None:
        """A cancel request, on its own connection: verified by its key, then sent to the database."""
        session = self.services.cancel_targets.get(request.process_id)
        if not isinstance(session, PgSession) or not hmac.compare_digest(
            session.secret_key, request.secret_key
        ):
            return  # PostgreSQL says nothing either way
        backend = session.backend
        if backend is None:
            return
        await cancel_backend(session.target, backend.process_id, backend.secret_key, 5.0)
        session.record_later("cancel", client=self.peer)

    def terminate(self, reason: str, code: str) -> None:
        """End the session now (the kill switch, its token's expiry, its maximum duration)."""
        if self.ending is not None:
            return
        self.ending = f"{code}: {reason}"
        self.guard.ended(code)
        with contextlib.suppress(Exception):
            self.client.write(
                codec.error_response(
                    ENDING_SQLSTATE, f"wardgate ended the session: {reason}", severity="FATAL"
                )
            )
        for task in self._tasks:
            task.cancel()

    async def _close(self) -> None:
        if self.backend is not None:
            with contextlib.suppress(Exception):
                self.backend.writer.write(codec.terminate())
                self.backend.writer.close()
        with contextlib.suppress(Exception):
            self.client.close()
        self.services.cancel_targets.pop(self.process_id, None)
        await self.guard.close(self, self.ending)

    async def _fatal(self, sqlstate: str, message: str) -> None:
        with contextlib.suppress(Exception):
            self.client.write(codec.error_response(sqlstate, message, severity="FATAL"))
            await self.client.drain()

    async def _next_message(self) -> tuple[int, bytes]:
        while True:
            message = self.messages.next()
            if message is not None:
                return message
            data = await self.client_reader.read(READ_SIZE)
            if not data:
                raise _Ended
            self.messages.feed(data)

    def record_later(self, kind: str, **fields: Any) -> None:
        self.guard.record_later(kind, **fields)

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
        messages = self.messages
        while True:
            data = await self.client_reader.read(READ_SIZE)
            if not data:
                return
            messages.feed(data)
            out: list[bytes] = []
            while (message := messages.next_raw()) is not None:
                kind, body, raw = message
                if kind == codec.TERMINATE:
                    backend.write(b"".join(out))
                    return
                if self._unsettled and kind in _NAMING:
                    if out:
                        backend.write(b"".join(out))
                        out.clear()
                        await backend.drain()
                    await self._settle_names()
                await self._client_message(kind, body, raw, out)
            if out:
                backend.write(b"".join(out))
                await backend.drain()

    async def _client_message(self, kind: int, body: bytes, raw: bytes, out: list[bytes]) -> None:
        if kind in (codec.COPY_DATA, codec.COPY_DONE, codec.COPY_FAIL, codec.FLUSH):
            out.append(raw)
        elif kind == codec.SYNC:
            out.append(raw)
            self.pending.append(_Pending(kind, settles=self._names_changed))
            if self._names_changed:
                self._unsettled += 1
                self._names_changed = False
        elif kind == codec.QUERY:
            await self._query(codec.parse_query(body), raw, out)
        elif kind == codec.PARSE:
            await self._parse(codec.parse_parse(body), raw, out)
        elif kind == codec.BIND:
            self._bind(codec.parse_bind(body), raw, out)
        elif kind == codec.DESCRIBE:
            what, name = codec.parse_describe(body)
            statement = self.prepared.get(name) if what == "S" else None
            portal = self.portals.get(name) if what == "P" else None
            target = statement or portal
            if target is not None:
                target.described = True
            out.append(raw)
            self.pending.append(_Pending(kind, name, what, prepared=statement, portal=portal))
        elif kind == codec.EXECUTE:
            await self._execute(codec.parse_execute(body)[0], raw, out)
        elif kind == codec.CLOSE:
            what, name = codec.parse_close(body)
            undo = None
            if what == "S":
                undo = (name, self.prepared.pop(name, None), None)
                self._names_changed = True
            else:
                self.portals.pop(name, None)
            out.append(raw)
            self.pending.append(_Pending(kind, name, what, undo=undo))
        elif kind == codec.FUNCTION_CALL:
            raise codec.ProtocolViolation("the function call sub-protocol is not served by wardgate", "0A000")
        else:
            raise codec.ProtocolViolation(f"unexpected message type {chr(kind)!r}")

    async def _query(self, sql: str, raw: bytes, out: list[bytes]) -> None:
        verdict = await self._decide(sql)
        run = await self.guard.recorded_run("query", verdict) if verdict.allowed else None
        if run is None:
            out.append(codec.query(self._refusal_placeholder(verdict.refusal)))
            self.pending.append(_Pending(codec.QUERY))
            return
        out.append(raw)
        self.pending.append(_Pending(codec.QUERY, run=run))

    async def _parse(self, parse: codec.Parse, raw: bytes, out: list[bytes]) -> None:
        # Parse runs nothing: a statement needing approval is prepared, and asked for at Execute,
        # where its parameters are known (an approval is for one statement with its values).
        verdict = await self._decide(parse.query, executing=False)
        name = parse.name
        installed = _Prepared(
            parse.query, verdict.operation, verdict.decision, parse.param_types, refused=not verdict.allowed
        )
        previous = self.prepared.get(name)
        self.prepared[name] = installed
        self._names_changed = True
        if name:
            # The name may hold a statement the gateway did not see (SQL PREPARE) or one it thinks
            # gone (SQL DEALLOCATE): PostgreSQL would keep that one and refuse this Parse. Closed
            # first, the name holds exactly this statement, as the gateway's decisions assume.
            out.append(codec.close("S", name))
            self.pending.append(_Pending(codec.CLOSE, name, "S", internal=True))
        if verdict.allowed:
            out.append(raw)
        else:
            out.append(codec.parse(name, self._refusal_placeholder(verdict.refusal), parse.param_types))
        self.pending.append(_Pending(codec.PARSE, name, undo=(name, previous, installed)))

    def _bind(self, bind: codec.Bind, raw: bytes, out: list[bytes]) -> None:
        if bind.statement not in self.prepared:
            # A statement prepared by SQL PREPARE, or never: wardgate decides statements at Parse,
            # so it binds only those. The database reports "does not exist" in place (rewritten).
            refusal = codec.error_response(
                "26000",
                f"prepared statement {bind.statement!r} was not prepared through wardgate's Parse "
                "(statements prepared with SQL PREPARE run with SQL EXECUTE)",
            )
            out.append(codec.bind(bind.portal, self._refusal_placeholder(refusal)))
        else:
            self.portals[bind.portal] = _Portal(
                bind.statement,
                bind.params,
                bind.param_formats,
                bind.result_formats,
                prepared=self.prepared[bind.statement],
            )
            out.append(raw)
        self.pending.append(_Pending(codec.BIND, bind.portal))

    async def _execute(self, portal_name: str, raw: bytes, out: list[bytes]) -> None:
        params: list[str | None]
        portal = self.portals.get(portal_name)
        # the statement the portal was bound to, not the one its name has now: a name parsed
        # again after the Bind does not change what the portal runs
        prepared = portal.prepared if portal is not None else None
        if prepared is not None and prepared.refused:
            out.append(raw)  # the database skips it: its Parse already failed
            self.pending.append(_Pending(codec.EXECUTE, portal_name))
            return
        if portal is None or prepared is None:
            # A cursor declared with SQL DECLARE (its query was decided then), or no portal at all
            # (the database answers with its own error).
            portal = self.portals[portal_name] = _Portal("", (), (), ())
            verdict = Verdict(True, {"protocol": "sql", "cursor": portal_name}, {"outcome": "allow"})
            params = []
        else:
            # Decided again (a cache hit while the policy is unchanged): a newer policy, a closed
            # time window or a spent approval applies to every execution, not only to the Parse.
            params = self._recorded_params(portal, prepared.param_types)
            verdict = await self._decide(prepared.text, bound=(portal, params))
            if not verdict.allowed:
                out.append(codec.execute(self._refusal_placeholder(verdict.refusal)))
                self.pending.append(_Pending(codec.EXECUTE, portal_name))
                return
        run = await self.guard.recorded_run("execute", verdict, params)
        if run is None:
            out.append(codec.execute(self._refusal_placeholder(verdict.refusal)))
            self.pending.append(_Pending(codec.EXECUTE, portal_name))
            return
        if not (
            portal.described
            or (prepared is not None and (prepared.described or prepared.columns is not None))
        ):
            # Masking needs the result's columns: ask for them; the answer stays with the gateway.
            out.append(codec.describe("P", portal_name))
            self.pending.append(_Pending(codec.DESCRIBE, portal_name, "P", internal=True, portal=portal))
        out.append(raw)
        self.pending.append(
            _Pending(
                codec.EXECUTE,
                portal_name,
                run=run,
                statement=portal.statement,
                formats=portal.formats,
                prepared=prepared,
                portal=portal,
            )
        )

    # ------------------------------------------------------------------ deciding and recording
    async def _decide(
        self,
        sql: str,
        *,
        executing: bool = True,
        bound: tuple[_Portal, list[str | None]] | None = None,
    ) -> Verdict:
        """Policy's verdict on ``sql`` (``SqlGuard.decide``); a Bind's values are approved exactly as
        sent, with their formats."""
        values = None
        if bound is not None:
            portal, shown = bound
            sent = [v.hex() if v is not None else None for v in portal.params] + list(portal.param_formats)
            values = (sent, shown)
        return await self.guard.decide(
            sql, executing=executing, in_transaction=self.tx_status != b"I", bound=values
        )

    def _refusal_placeholder(self, refusal: Refusal | bytes | None) -> str:
        """A name the database cannot know: its error, in place, becomes ``refusal`` for the client."""
        nonce = secrets.token_hex(8)
        self.rewrites[nonce] = refusal if isinstance(refusal, bytes) else _refusal_error(refusal)
        return REFUSED_PREFIX + nonce

    def _recorded_params(self, portal: _Portal, types: tuple[int, ...]) -> list[str | None]:
        """A Bind's values as recorded and shown to approvers: as text (binary ones decoded by the
        types the Parse declared, where known), masked, cut at the recorded length."""
        formats = portal.param_formats
        shown: list[str | None] = []
        for i, value in enumerate(portal.params):
            binary = (formats[i] if len(formats) > 1 else formats[0] if formats else 0) == 1
            if value is None:
                shown.append(None)
                continue
            if binary:
                text = render_binary(types[i] if i < len(types) else 0, value)
            else:
                text = value.decode("utf-8", "replace")
            shown.append(self.guard.shown_value(text))
        return shown

    # ------------------------------------------------------------------ the database's answers
    async def _from_backend(self) -> None:
        assert self.backend is not None
        reader, client = self.backend.reader, self.client
        messages = codec.MessageReader()
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                if self.ending is None:
                    self.ending = "the database closed the session"
                    await self._fatal("08006", "the database closed the connection")
                return
            messages.feed(data)
            chunk, spans = messages.take_messages()
            out = self._answer(chunk, spans)
            if out:
                client.write(out)
                await client.drain()  # backpressure: a slow client slows the database, memory stays flat

    def _answer(self, chunk: bytes, spans: list[tuple[int, int, int]]) -> bytes:
        """The client's bytes for a run of database messages: unchanged ones are copied as they
        are, in one slice; DataRows go through masking in batches."""
        out: list[bytes] = []
        copied = 0  # chunk[copied:start] is still to be copied as it is
        rows: list[bytes] = []  # consecutive DataRows awaiting masking
        rows_start = 0
        for kind, start, end in spans:
            if kind == codec.DATA_ROW:
                if not rows:
                    out.append(chunk[copied:start])
                    rows_start = start
                rows.append(chunk[start:end])
                copied = end
                continue
            if rows:
                out.append(self._rows(rows, chunk[rows_start:start]))
                rows = []
            if kind in _PASS:
                continue
            replacement = self._backend_message(kind, chunk[start + 5 : end], chunk[start:end])
            if replacement is not None:
                out.append(chunk[copied:start])
                out.append(replacement)
                copied = end
        if rows:
            out.append(self._rows(rows, chunk[rows_start:]))
        else:
            out.append(chunk[copied:])
        return b"".join(out)

    def _backend_message(self, kind: int, body: bytes, raw: bytes) -> bytes | None:
        """Track one database message; the bytes the client gets instead, or None to pass it."""
        pending = self.pending
        head = pending[0] if pending else None
        if kind == codec.ROW_DESCRIPTION:
            columns = self._row_descriptions.get(body)
            if columns is None:  # a pure function of the bytes: the same result's is parsed once
                columns = codec.parse_row_description(body)
                if len(self._row_descriptions) >= 64:
                    self._row_descriptions.clear()
                self._row_descriptions[body] = columns
            self._current_columns = columns
            if head is not None and head.kind == codec.DESCRIBE:
                pending.popleft()
                if head.prepared is not None:  # Describe 'S'
                    head.prepared.columns = columns
                portal = head.portal  # Describe 'P'
                if portal is not None:
                    portal.columns = columns
                    if portal.prepared is not None and portal.prepared.columns is None:
                        portal.prepared.columns = columns
                if head.internal:
                    return b""
            return None
        if kind == codec.NO_DATA:
            if head is not None and head.kind == codec.DESCRIBE:
                pending.popleft()
                if head.internal:
                    return b""
            return None
        if kind in (codec.PARSE_COMPLETE, codec.BIND_COMPLETE, codec.CLOSE_COMPLETE):
            if head is not None and head.kind in (codec.PARSE, codec.BIND, codec.CLOSE):
                pending.popleft()
                if head.internal:  # the Close the gateway sends before a named Parse
                    return b""
            return None
        if kind in (codec.COMMAND_COMPLETE, codec.EMPTY_QUERY_RESPONSE, codec.PORTAL_SUSPENDED):
            run = head.run if head is not None else None
            if run is not None:
                if kind == codec.COMMAND_COMPLETE:
                    run.tags.append(codec.parse_command_complete(body))
                if head is not None and head.kind == codec.EXECUTE:
                    pending.popleft()
                    self._finish(run)
            elif head is not None and head.kind == codec.EXECUTE:
                pending.popleft()
            return None
        if kind == codec.ERROR_RESPONSE or kind == codec.NOTICE_RESPONSE:
            return self._error(kind, body, raw, head)
        if kind == codec.READY_FOR_QUERY:
            self.tx_status = codec.parse_ready_for_query(body)
            while pending:
                done = pending.popleft()
                if done.run is not None:
                    self._finish(done.run)
                if done.settles:
                    self._unsettled -= 1
                    if not self._unsettled:
                        self._settled.set()
                if done.kind in (codec.SYNC, codec.QUERY):
                    break
            return None
        if kind == codec.COPY_OUT_RESPONSE:
            overall, _ = codec.parse_copy_response(body)
            if overall != 0:
                raise MaskingRefused(
                    "binary COPY output cannot be masked: use COPY ... TO STDOUT in text or CSV format"
                )
            if self._profile().columns:
                raise MaskingRefused(
                    "COPY output cannot be masked by column rules, which this connection has"
                )
            self._copy_out = True
            return None
        if kind == codec.COPY_DATA:
            return self._copy_data(body)
        if kind == codec.COPY_DONE:
            self._copy_out = False
            return None
        if kind == codec.COPY_BOTH_RESPONSE:
            raise codec.ProtocolViolation("replication (COPY BOTH) is not served by wardgate", "0A000")
        if kind == codec.PARAMETER_STATUS:
            name, value = codec.parse_parameter_status(body)
            if name == "client_encoding" and value.upper() != "UTF8":
                # Statements are parsed as UTF-8: in another encoding the database could read
                # bytes differently from the decision (a quote hidden in a multi-byte character).
                raise codec.ProtocolViolation(
                    f"the database's client_encoding became {value!r}; wardgate decides statements "
                    "in UTF8 only, so the session ends",
                    "0A000",
                )
            return None
        if kind == codec.NOTIFICATION_RESPONSE:
            process_id, channel, payload = codec.parse_notification_response(body)
            masked = mask_text(payload, self._profile())
            return codec.notification_response(process_id, channel, masked.value) if masked.counts else None
        if kind in (codec.AUTHENTICATION, codec.BACKEND_KEY_DATA):
            raise codec.ProtocolViolation("the database sent a login message in mid-session")
        return None

    def _error(self, kind: int, body: bytes, raw: bytes, head: _Pending | None) -> bytes:
        fields = codec.parse_error_fields(body)
        message = fields.get("M", "")
        if kind == codec.ERROR_RESPONSE and REFUSED_PREFIX in message:
            nonce = message.split(REFUSED_PREFIX, 1)[1][:16]
            refusal = self.rewrites.pop(nonce, None)
            if refusal is not None:
                self._fail_head(head, {"code": "42501", "message": "refused by wardgate"})
                self._undo_skipped_names()
                return refusal
        masked: dict[str, str] = {}
        changed = False
        profile = self._profile()
        for code, value in fields.items():
            if code in "MDHW" and value:
                result = mask_text(value, profile)
                changed = changed or bool(result.counts)
                masked[code] = result.value
            else:
                masked[code] = value
        if kind == codec.ERROR_RESPONSE:
            self._fail_head(head, {"code": masked.get("C", ""), "message": masked.get("M", "")})
            self._undo_skipped_names()
        return codec.error_from_fields(masked, kind) if changed else raw

    def _undo_skipped_names(self) -> None:
        """An error in the extended protocol: the database failed the message in front and skips
        every message up to the next Sync. What those Parse and Close messages did to statement
        names did not happen there, so it is undone here too (latest first): a failed Parse leaves
        its name empty (a named one was closed first; an unnamed one is dropped before parsing), a
        skipped one leaves the name's statement as it was. Later messages naming statements waited
        for this (``_settle_names``), so nothing else has used these names meanwhile."""
        skipped: list[_Pending] = []
        for position, item in enumerate(self.pending):
            if item.kind == codec.SYNC:
                break
            if position == 0 and item.kind not in _EXTENDED:
                return  # a simple Query's error skips nothing
            skipped.append(item)
        for position in range(len(skipped) - 1, -1, -1):
            item = skipped[position]
            if item.undo is None:
                continue
            name, previous, installed = item.undo
            if self.prepared.get(name) is not installed:
                continue
            failed = position == 0 and item.kind == codec.PARSE
            if failed or previous is None:
                self.prepared.pop(name, None)
            else:
                self.prepared[name] = previous

    async def _settle_names(self) -> None:
        """Wait until every Sync after a Parse or Close has its ReadyForQuery: a message naming a
        statement after that Sync must be decided on what the name holds in the database, which an
        error before the Sync may have left unchanged (``_undo_skipped_names``)."""
        while self._unsettled:
            self._settled.clear()
            await self._settled.wait()

    def _fail_head(self, head: _Pending | None, error: dict[str, str]) -> None:
        """An error ends the statement in progress (the database skips to the next Sync)."""
        for pending in self.pending:
            if pending.run is not None and not pending.run.finished:
                pending.run.error = error
                break
            if pending.kind in (codec.SYNC, codec.QUERY):
                break

    def _finish(self, run: StatementRun) -> None:
        self.guard.finish(run)

    # ------------------------------------------------------------------ masking
    _current_columns: tuple[codec.Column, ...] = ()
    _copy_out: bool = False

    def _profile(self) -> MaskingProfile:
        return self.guard.profile()

    def _masker_for_rows(self) -> ResultMasker:
        head = self.pending[0] if self.pending else None
        profile = self._profile()
        if head is not None and head.kind == codec.EXECUTE:
            portal = head.portal
            prepared = head.prepared
            columns = portal.columns if portal is not None and portal.columns is not None else None
            if columns is None and prepared is not None:
                columns = prepared.columns
            if columns is None:
                raise MaskingRefused("rows arrived for a result whose columns are unknown")
            # a Bind said the formats; a cursor's Describe says them itself
            formats = head.formats if head.statement else None
        else:  # a simple Query (or a cursor): its RowDescription says the formats
            columns, formats = self._current_columns, None
        recent = self._recent_maskers.get(id(columns))
        if recent is not None and recent[0] is columns and recent[1] == formats and recent[2] is profile:
            return recent[3]
        if formats is not None:
            described = tuple(
                (c.name, c.type_oid, formats[i] if len(formats) > 1 else formats[0] if formats else 0)
                for i, c in enumerate(columns)
            )
        else:
            described = tuple((c.name, c.type_oid, c.format) for c in columns)
        key = (id(profile), described)
        found = self._maskers.get(key)
        if found is not None and found[0] is profile:
            masker = found[1]
        else:
            if len(self._maskers) > 256:
                self._maskers.clear()
            masker = ResultMasker(described, profile)
            self._maskers[key] = (profile, masker)
        if len(self._recent_maskers) >= 64:
            self._recent_maskers.clear()
        self._recent_maskers[id(columns)] = (columns, formats, profile, masker)
        return masker

    def _rows(self, raw_rows: list[bytes], raw: bytes) -> bytes:
        head = self.pending[0] if self.pending else None
        run = head.run if head is not None else None
        masker = self._masker_for_rows()
        if masker.inert and (run is None or len(run.first_rows) >= self.limits.recorded_rows):
            if run is not None:
                run.rows += len(raw_rows)
            return raw
        rows = [codec.parse_data_row(r[5:]) for r in raw_rows]
        masked, counts = masker.mask(rows) if not masker.inert else (None, {})
        if run is not None:
            run.rows += len(rows)
            run.count_masked(counts)
            shown = masked if masked is not None else rows
            for row in shown[: max(0, self.limits.recorded_rows - len(run.first_rows))]:
                run.first_rows.append(
                    [cut(v, self.limits.recorded_row_bytes) if v else v for v in masker.displayed(row)]
                )
        if masked is None:
            return raw
        return b"".join(codec.data_row(row) for row in masked)

    def _copy_data(self, body: bytes) -> bytes | None:
        if not self._copy_out:
            return None
        text = body.decode("utf-8", "replace")
        result = mask_text(text, self._profile())
        if not result.counts:
            return None
        head = self.pending[0] if self.pending else None
        if head is not None and head.run is not None:
            head.run.count_masked(result.counts)
        return codec.copy_data(result.value.encode())


_PASS = frozenset({codec.PARAMETER_DESCRIPTION, codec.COPY_IN_RESPONSE})
_EXTENDED = frozenset({codec.PARSE, codec.BIND, codec.DESCRIBE, codec.EXECUTE, codec.CLOSE})
_NAMING = frozenset({codec.PARSE, codec.BIND, codec.DESCRIBE, codec.CLOSE})  # messages naming statements
ENCODING_SETTERS = frozenset({"set_config"})


def _changes_client_encoding(recorded: dict[str, Any]) -> str:
    """Why a statement may not run whatever policy says: it would change the encoding in which the
    database reads the next statements, which wardgate parses as UTF-8 (protocol invariant)."""
    for statement in recorded.get("statements", ()):
        if "set_client_encoding" in statement["features"] or ENCODING_SETTERS & set(statement["functions"]):
            return (
                "statements that change client_encoding (SET client_encoding, SET NAMES, set_config) "
                "are not accepted: wardgate reads every statement as UTF8"
            )
    return ""


def _refusal_error(refusal: Refusal | None) -> bytes:
    """A refusal in PostgreSQL's terms: 42501 with the policy's reason and where it is on record,
    or 58000 when the statement could not be recorded (so it did not run)."""
    assert refusal is not None
    if refusal.code == "recording_unavailable":
        return codec.error_response(
            "58000",
            f"wardgate: {refusal.message}",
            hint="nothing reaches the database unrecorded; try again shortly",
        )
    where = (
        f"record {refusal.record_id}, event {refusal.event}"
        if refusal.event
        else f"record {refusal.record_id}"
    )
    return codec.error_response(
        "42501",
        f"wardgate: {refusal.message}",
        detail=f"{where} ({refusal.code})",
        hint="the statement did not reach the database",
    )
