"""The database side of a MySQL/MariaDB session: where to connect, TLS, and logging in for the agent.

The connection's ``upstream_url`` names user, host, port and one database
(``mysql://app@db.internal:3306/billing?ssl-mode=verify-identity``; ``mariadb://`` too); the
password comes from its credential in Secrets Manager (``{"type": "basic", ...}``) and never
reaches the agent, or, with ``auth=rds-iam``, is an RDS IAM authentication token made by the
task's role. Query parameters (anything else is refused, so a typo cannot weaken TLS):

``ssl-mode``
    MySQL's ``--ssl-mode`` names: ``disabled``, ``required`` (encrypted, the certificate not
    checked), ``verify-ca`` (it chains to the credential's ``ca_pem``, else to the public CAs) or
    ``verify-identity`` (that, and it names the host). ``preferred`` is refused: it falls back to
    plaintext when anyone in between says the server has no TLS. Default: ``verify-identity``,
    ``disabled`` on loopback (as the PostgreSQL listener's ``sslmode``).
``auth``
    ``password`` (default) or ``rds-iam`` (with ``region``; needs ``ssl-mode=verify-identity``:
    the token travels as ``mysql_clear_password``).
``server-public-key-sha256``
    The SHA-256 (hex) of the server's RSA public key (DER SubjectPublicKeyInfo:
    ``openssl pkey -pubin -in public_key.pem -outform DER | sha256sum``), for
    ``caching_sha2_password`` full authentication outside verified TLS (below).

Logging in. Plugins: ``mysql_native_password``, ``caching_sha2_password`` (MySQL 8's default),
MariaDB's ``client_ed25519``, and ``mysql_clear_password``, in the greeting or by an
AuthSwitchRequest; any other is refused naming it. The password itself (``mysql_clear_password``,
caching_sha2's full authentication) is sent only to a server the gateway verified
(``verify-ca`` or ``verify-identity``), as the PostgreSQL listener sends a cleartext password
only with ``sslmode=verify-full``. Otherwise caching_sha2's full authentication asks the server
for its RSA key and encrypts the password to it only when the URL pins that key
(``server-public-key-sha256``): a key fetched unpinned would be whoever-answers' key, the
``--get-server-public-key`` trap. Once the server's cache knows the password (any login with it
since the server started), the fast path (a scramble, nothing reusable) needs neither.

Capabilities. The session passes what its client asked for; the database gets
(client's ∩ :data:`RELAYED_CAPABILITIES` ∩ server's) for what the session relays after login,
plus what the login itself needs (``CLIENT_SSL``, ``CLIENT_CONNECT_WITH_DB``,
``CLIENT_PLUGIN_AUTH``...) decided here. MariaDB's extended capabilities are never asked for.

Errors are :class:`BackendUnavailable` with a message fit for the agent (never the password) and
the MySQL error code and SQLSTATE the session puts in its ERR packet: the client library's codes
for what happens before the server speaks (2003 cannot connect, 2013 lost during the handshake,
2026 TLS, 2027 malformed packet, 2059/2061 authentication plugin) and the server's own otherwise
(1045 ``28000`` access denied, 1040 too many connections, 1129 host blocked...).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from wardgate.credentials import Credential
from wardgate.identity import is_loopback_url
from wardgate.tcp.mysql import auth, codec

SCHEMES = ("mysql", "mariadb")
DEFAULT_PORT = 3306
SSL_MODES = ("disabled", "required", "verify-ca", "verify-identity")
VERIFIED_SSL_MODES = ("verify-ca", "verify-identity")
URL_PARAMETERS = ("ssl-mode", "auth", "region", "server-public-key-sha256")
LOGIN_MAX_PAYLOAD = 64 * 1024  # no packet of the connection phase comes near (an RSA key: ~450 bytes)
MAX_AUTH_ROUNDS = 8  # server packets after the client's response; a loop past this is a broken server
DEFAULT_MAX_PACKET_SIZE = 1 << 24  # what mysql and PyMySQL announce (16 MiB)

# Client library error codes (errmsg.h) for failures before or outside the server's own ERR packets.
CR_CONN_HOST_ERROR = 2003
CR_SERVER_LOST = 2013
CR_SSL_CONNECTION_ERROR = 2026
CR_MALFORMED_PACKET = 2027
CR_AUTH_PLUGIN_CANNOT_LOAD = 2059
CR_AUTH_PLUGIN_ERR = 2061
ER_ACCESS_DENIED_ERROR = 1045
# SQLSTATEs of the errors a server sends before its greeting's capabilities are known (no '#').
GREETING_ERROR_SQLSTATES = {1040: "08004", 1129: "HY000", 1130: "HY000", 1203: "42000"}

# What the session may relay between its client and the database once logged in. Left out: what
# the login decides (SSL, CONNECT_WITH_DB, PLUGIN_AUTH*, CONNECT_ATTRS), compression (a proxy
# that reads every packet would have to inflate it), CLIENT_OPTIONAL_RESULTSET_METADATA (masking
# needs the columns), CAN_HANDLE_EXPIRED_PASSWORDS (an expired gateway credential is a refused
# login, not a sandbox for the agent), multi-factor authentication, MariaDB's extended ones.
RELAYED_CAPABILITIES = (
    codec.CLIENT_LONG_PASSWORD
    | codec.CLIENT_FOUND_ROWS
    | codec.CLIENT_LONG_FLAG
    | codec.CLIENT_NO_SCHEMA
    | codec.CLIENT_ODBC
    | codec.CLIENT_LOCAL_FILES
    | codec.CLIENT_IGNORE_SPACE
    | codec.CLIENT_PROTOCOL_41
    | codec.CLIENT_INTERACTIVE
    | codec.CLIENT_IGNORE_SIGPIPE
    | codec.CLIENT_TRANSACTIONS
    | codec.CLIENT_SECURE_CONNECTION
    | codec.CLIENT_MULTI_STATEMENTS
    | codec.CLIENT_MULTI_RESULTS
    | codec.CLIENT_PS_MULTI_RESULTS
    | codec.CLIENT_SESSION_TRACK
    | codec.CLIENT_DEPRECATE_EOF
    | codec.CLIENT_QUERY_ATTRIBUTES
)
# What the gateway's own login needs of every server (MySQL 5.5.7 and later, every MariaDB).
REQUIRED_SERVER_CAPABILITIES = (
    codec.CLIENT_PROTOCOL_41
    | codec.CLIENT_SECURE_CONNECTION
    | codec.CLIENT_PLUGIN_AUTH
    | codec.CLIENT_CONNECT_WITH_DB
)
SUPPORTED_PLUGINS = (
    codec.NATIVE_PASSWORD,
    codec.CACHING_SHA2_PASSWORD,
    codec.CLIENT_ED25519,
    codec.CLEAR_PASSWORD,
)
_PIN = re.compile(r"[0-9a-f]{64}")


class BackendUnavailable(Exception):
    """The database could not be reached or refused the gateway's login: the session ends with an
    ERR packet carrying ``code`` and ``sqlstate``."""

    def __init__(self, message: str, code: int = CR_SERVER_LOST, sqlstate: str = "08S01") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.sqlstate = sqlstate


@dataclass(frozen=True)
class MySqlTarget:
    host: str
    port: int
    database: str
    user: str
    ssl_mode: str
    auth: str = "password"  # or "rds-iam"
    region: str = ""
    server_public_key_sha256: bytes | None = None  # the pinned RSA key (caching_sha2 without verified TLS)

    @property
    def verified(self) -> bool:
        """The server's certificate is checked: only then does the password itself go to it."""
        return self.ssl_mode in VERIFIED_SSL_MODES

    @classmethod
    def from_url(cls, url: str) -> MySqlTarget:
        """The target ``url`` names; ``ValueError`` saying what is wrong otherwise."""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ValueError(f"{url!r} is not a mysql:// or mariadb:// URL")
        if parts.password is not None:
            raise ValueError("the upstream URL must not carry a password: use the connection's credential")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise ValueError(f"{url!r} has an invalid port") from None
        database = unquote(parts.path.lstrip("/"))
        if not parts.hostname or not parts.username or not database or "/" in database:
            raise ValueError(f"{url!r} must name a user, a host and one database")
        user = unquote(parts.username)
        if any(ord(c) < 32 for c in user + database):
            raise ValueError("the user and database names cannot contain control characters")
        if parts.fragment:
            raise ValueError("the upstream URL cannot have a fragment")
        query: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)):
            if key not in URL_PARAMETERS:
                raise ValueError(
                    f"unknown parameter {key!r}: the upstream URL takes {', '.join(URL_PARAMETERS)}"
                )
            if key in query:
                raise ValueError(f"parameter {key!r} is given twice")
            query[key] = value
        default_mode = "disabled" if is_loopback_url(url) else "verify-identity"
        ssl_mode = query.get("ssl-mode", default_mode).lower().replace("_", "-")
        if ssl_mode == "preferred":
            raise ValueError(
                "ssl-mode=preferred falls back to plaintext when anyone in between says so: "
                "choose required, verify-ca or verify-identity (or disabled)"
            )
        if ssl_mode not in SSL_MODES:
            raise ValueError(f"ssl-mode must be one of {', '.join(SSL_MODES)}")
        auth_kind = query.get("auth", "password")
        if auth_kind not in ("password", "rds-iam"):
            raise ValueError("auth must be 'password' or 'rds-iam'")
        if auth_kind == "rds-iam" and ssl_mode != "verify-identity":
            raise ValueError(
                "auth=rds-iam sends a token in clear inside TLS: it needs ssl-mode=verify-identity"
            )
        pin: bytes | None = None
        if "server-public-key-sha256" in query:
            raw_pin = query["server-public-key-sha256"].lower().replace(":", "")
            if not _PIN.fullmatch(raw_pin):
                raise ValueError("server-public-key-sha256 must be 64 hexadecimal digits (a SHA-256)")
            pin = bytes.fromhex(raw_pin)
        return cls(
            host=parts.hostname,
            port=port,
            database=database,
            user=user,
            ssl_mode=ssl_mode,
            auth=auth_kind,
            region=query.get("region", ""),
            server_public_key_sha256=pin,
        )


@dataclass
class MySqlBackendLink:
    """A logged-in database session, ready for commands (the next packet the session sends is a
    command, sequence id 0)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    greeting: codec.Handshake  # the server's: version, connection id, capabilities, charset, status
    capabilities: int  # negotiated: what the gateway's side of this connection speaks from now on
    ok: codec.Ok  # the server's OK ending the login (its status flags, session state changes)
    plugin: str  # the authentication plugin that logged in
    tls: bool

    @property
    def connection_id(self) -> int:
        """The server's thread id: what ``KILL QUERY`` names (:func:`kill_query`)."""
        return self.greeting.connection_id

    @property
    def status(self) -> int:
        return self.ok.status


def negotiate_capabilities(client: int, server: int, *, tls: bool, attributes: bool) -> int:
    """What the gateway asks the database for: the relayed capabilities both ends have, and the
    login's own."""
    wanted = client & RELAYED_CAPABILITIES
    wanted |= codec.CLIENT_LONG_PASSWORD  # CLIENT_MYSQL to MariaDB: no extended capabilities follow
    wanted |= REQUIRED_SERVER_CAPABILITIES
    wanted |= codec.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    if tls:
        wanted |= codec.CLIENT_SSL
    if attributes:
        wanted |= codec.CLIENT_CONNECT_ATTRS
    return wanted & server & 0xFFFFFFFF | codec.CLIENT_LONG_PASSWORD


@functools.lru_cache(maxsize=64)
def tls_context(ssl_mode: str, ca_pem: str | None) -> ssl.SSLContext | None:
    """The context for ``ssl_mode``: the credential's CA alone when it has one (an RDS bundle, a
    private CA), the public CAs otherwise."""
    if ssl_mode == "disabled":
        return None
    if ca_pem:
        try:
            context = ssl.create_default_context(cadata=ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise BackendUnavailable(
                f"the connection's ca_pem is not a valid PEM CA bundle ({type(exc).__name__})",
                CR_SSL_CONNECTION_ERROR,
                "HY000",
            ) from None
    else:
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
    if ssl_mode == "required":  # encrypted, not authenticated: only where the connection says so
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ssl_mode == "verify-ca":
        context.check_hostname = False  # the chain is still verified (CERT_REQUIRED)
    return context


def rds_iam_token(target: MySqlTarget) -> str:
    """An RDS IAM authentication token (15 minutes) for the target's user, signed by the task's role."""
    from wardgate import aws

    return str(
        aws.client("rds").generate_db_auth_token(
            DBHostname=target.host, Port=target.port, DBUsername=target.user, Region=target.region or None
        )
    )


async def open_backend(
    target: MySqlTarget,
    credential: Credential | None,
    *,
    client_capabilities: int,
    charset: int = codec.UTF8MB4_GENERAL_CI,
    connect_attrs: Iterable[tuple[str, str]] = (),
    timeout: float = 10.0,
    connection: str = "",
    max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
) -> MySqlBackendLink:
    """Connect, secure and log in as the target's user to its database, within ``timeout`` seconds.

    ``client_capabilities`` and ``charset`` (a collation id) are the session client's, ``connect_attrs``
    what the database's ``performance_schema.session_connect_attrs`` will show, ``connection`` the
    connection's name for messages. ``BackendUnavailable`` otherwise.
    """
    where = f"{target.host}:{target.port}"
    password = credential.password if credential is not None else None
    ca_pem = credential.ca_pem if credential is not None else None
    context = tls_context(target.ssl_mode, ca_pem)
    if target.auth == "rds-iam":
        try:
            password = await asyncio.to_thread(rds_iam_token, target)
        except Exception as exc:
            raise BackendUnavailable(
                f"no RDS IAM token for the database at {where} ({type(exc).__name__})",
                CR_AUTH_PLUGIN_ERR,
                "HY000",
            ) from None
    login = _Login(
        target=target,
        where=where,
        connection=connection,
        password=(password or "").encode(),
        context=context,
        client_capabilities=client_capabilities,
        charset=charset or codec.UTF8MB4_GENERAL_CI,
        connect_attrs=tuple(connect_attrs),
        max_packet_size=max_packet_size,
    )
    stage = "connect"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(target.host, target.port)
            stage = "handshake"
            try:
                return await login.run(reader, writer)
            except BaseException:
                writer.transport.abort()  # a failed login: no TLS close_notify to wait for
                raise
    except TimeoutError:
        if stage == "connect":
            raise BackendUnavailable(
                f"the database at {where} did not accept a connection within {timeout:g} s",
                CR_CONN_HOST_ERROR,
            ) from None
        raise BackendUnavailable(
            f"the database at {where} did not finish the login handshake within {timeout:g} s"
        ) from None
    except ssl.SSLError as exc:
        reason = exc.reason or type(exc).__name__
        if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
            reason = f"{reason} ({exc.verify_message})"  # which check failed: chain, name, dates
        raise BackendUnavailable(
            f"TLS with the database at {where} failed: {reason}", CR_SSL_CONNECTION_ERROR, "HY000"
        ) from None
    except asyncio.IncompleteReadError:
        raise BackendUnavailable(f"the database at {where} closed the connection during the login") from None
    except OSError as exc:
        if stage == "connect":
            raise BackendUnavailable(
                f"the database at {where} is unreachable ({type(exc).__name__})", CR_CONN_HOST_ERROR
            ) from None
        raise BackendUnavailable(
            f"the connection to the database at {where} failed during the login ({type(exc).__name__})"
        ) from None
    except codec.ProtocolViolation as exc:
        raise BackendUnavailable(
            f"the database at {where} broke the protocol: {exc.message}", CR_MALFORMED_PACKET, "HY000"
        ) from None


@dataclass
class _Login:
    """One connection phase, as the client: greeting, TLS, response, authentication exchanges."""

    target: MySqlTarget
    where: str
    connection: str
    password: bytes
    context: ssl.SSLContext | None
    client_capabilities: int
    charset: int
    connect_attrs: tuple[tuple[str, str], ...]
    max_packet_size: int
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    sequence: int = 0  # the next packet's sequence id, in either direction
    capabilities: int = 0
    tls: bool = False

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> MySqlBackendLink:
        self.reader, self.writer = reader, writer
        payload = await self._read()
        if payload[:1] == bytes((codec.ERR_HEADER,)):
            err = codec.parse_err(payload, 0)  # before capabilities: no SQLSTATE marker
            raise BackendUnavailable(
                f"the database at {self.where} refused the connection: {err.message}",
                err.code,
                err.sqlstate or GREETING_ERROR_SQLSTATES.get(err.code, "08004"),
            )
        greeting = codec.parse_handshake(payload)
        missing = REQUIRED_SERVER_CAPABILITIES & ~greeting.capabilities
        if missing:
            raise BackendUnavailable(
                f"the database at {self.where} ({greeting.server_version}) lacks capabilities the gateway "
                f"needs (0x{missing:x}): MySQL 5.5.7 or later, or MariaDB, is required",
                CR_MALFORMED_PACKET,
                "HY000",
            )
        if self.context is not None and not greeting.capabilities & codec.CLIENT_SSL:
            raise BackendUnavailable(
                f"the database at {self.where} does not offer TLS (ssl-mode={self.target.ssl_mode})",
                CR_SSL_CONNECTION_ERROR,
                "HY000",
            )
        self.capabilities = negotiate_capabilities(
            self.client_capabilities,
            greeting.capabilities,
            tls=self.context is not None,
            attributes=bool(self.connect_attrs),
        )
        self._no_more_buffered("its greeting")
        if self.context is not None:
            request = codec.SSLRequest(self.capabilities, self.max_packet_size, self.charset)
            self._write(codec.build_ssl_request(request))
            await writer.drain()
            await writer.start_tls(self.context, server_hostname=self.target.host)
            self._no_more_buffered("its greeting")  # arrived while TLS was being set up
            self.tls = True
        plugin = greeting.auth_plugin_name or codec.NATIVE_PASSWORD
        nonce = greeting.auth_plugin_data
        if plugin not in (codec.NATIVE_PASSWORD, codec.CACHING_SHA2_PASSWORD) and not (
            plugin == codec.CLEAR_PASSWORD and self.target.verified
        ):
            # The first answer can only be a scramble; the server switches to what the user needs.
            plugin = codec.NATIVE_PASSWORD
        response = codec.HandshakeResponse(
            capabilities=self.capabilities,
            max_packet_size=self.max_packet_size,
            charset=self.charset,
            username=self.target.user,
            auth_response=self._answer(plugin, nonce),
            database=self.target.database,
            auth_plugin_name=plugin,
            connect_attributes=self.connect_attrs or None,
        )
        self._write(codec.build_handshake_response(response))
        await writer.drain()
        ok, plugin = await self._authenticate(plugin, nonce)
        self._no_more_buffered("its OK")
        return MySqlBackendLink(reader, writer, greeting, self.capabilities, ok, plugin, self.tls)

    async def _authenticate(self, plugin: str, nonce: bytes) -> tuple[codec.Ok, str]:
        """The exchange after the client's response, until the server's OK and the plugin it took."""
        awaiting_key = False
        for _ in range(MAX_AUTH_ROUNDS):
            assert self.writer is not None
            packet = codec.parse_auth_packet(await self._read(), self.capabilities)
            if isinstance(packet, codec.Ok):
                if awaiting_key:
                    raise codec.ProtocolViolation("an OK instead of the server's RSA key")
                return packet, plugin
            if isinstance(packet, codec.Err):
                raise self._refused(packet)
            if isinstance(packet, codec.AuthSwitchRequest):
                if awaiting_key:
                    raise codec.ProtocolViolation("an authentication switch instead of the server's RSA key")
                plugin = packet.plugin
                nonce = packet.data if plugin == codec.CLIENT_ED25519 else auth.switch_nonce(packet.data)
                self._write(self._answer(plugin, nonce))
            elif plugin == codec.CACHING_SHA2_PASSWORD:
                data = packet.data
                if awaiting_key:
                    self._write(self._rsa_password(data, nonce))
                    awaiting_key = False
                elif data == bytes((auth.FAST_AUTH_SUCCESS,)):
                    continue  # the OK follows
                elif data == bytes((auth.PERFORM_FULL_AUTHENTICATION,)):
                    if self.tls and self.target.verified:
                        self._write(auth.clear_password(self.password))
                    elif self.target.server_public_key_sha256 is not None:
                        self._write(bytes((auth.REQUEST_PUBLIC_KEY,)))
                        awaiting_key = True
                    else:
                        raise self._plugin_error(
                            "the database asks for the password itself (caching_sha2_password full "
                            "authentication, its cache does not know it yet); the gateway sends it only "
                            "inside verified TLS (ssl-mode=verify-ca or verify-identity) or encrypted to "
                            "a pinned RSA key (server-public-key-sha256)"
                        )
                else:
                    raise codec.ProtocolViolation(
                        f"unexpected caching_sha2_password data ({len(data)} bytes) from the server"
                    )
            else:
                raise codec.ProtocolViolation(f"unexpected authentication data for {plugin}")
            await self.writer.drain()
        raise codec.ProtocolViolation(f"no end to the authentication after {MAX_AUTH_ROUNDS} exchanges")

    def _answer(self, plugin: str, nonce: bytes) -> bytes:
        if plugin == codec.NATIVE_PASSWORD:
            return auth.native_password_scramble(self.password, nonce)
        if plugin == codec.CACHING_SHA2_PASSWORD:
            return auth.caching_sha2_scramble(self.password, nonce)
        if plugin == codec.CLIENT_ED25519:
            return auth.ed25519_signature(self.password, nonce)
        if plugin == codec.CLEAR_PASSWORD:
            if not (self.tls and self.target.verified):
                raise self._plugin_error(
                    "the database asks for the password in clear (mysql_clear_password); the gateway "
                    "sends it only inside verified TLS (ssl-mode=verify-ca or verify-identity)"
                )
            return auth.clear_password(self.password)
        raise BackendUnavailable(
            f"the database asks for authentication plugin {plugin!r}, which the gateway does not "
            f"support (it supports {', '.join(SUPPORTED_PLUGINS)})",
            CR_AUTH_PLUGIN_CANNOT_LOAD,
            "HY000",
        )

    def _rsa_password(self, public_key_pem: bytes, nonce: bytes) -> bytes:
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_pem_public_key(public_key_pem)
        except (ValueError, TypeError):
            raise codec.ProtocolViolation("the server's RSA public key is not a PEM public key") from None
        spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if hashlib.sha256(spki).digest() != self.target.server_public_key_sha256:
            raise self._plugin_error(
                "the database's RSA public key is not the one the connection pins (server-public-key-sha256)"
            )
        try:
            return auth.caching_sha2_rsa_password(self.password, nonce, public_key_pem)
        except ValueError as exc:
            raise self._plugin_error(f"the database's RSA public key cannot be used: {exc}") from None

    def _refused(self, err: codec.Err) -> BackendUnavailable:
        named = f"connection {self.connection!r}" if self.connection else f"the database at {self.where}"
        message = err.message
        if self.password and self.password.decode(errors="replace") in message:  # never, but never echo it
            message = message.replace(self.password.decode(errors="replace"), "***")
        if err.code == ER_ACCESS_DENIED_ERROR:
            text = f"the database refused the gateway's credential for {named}: {message}"
        else:
            text = f"the database refused the gateway's login for {named}: {message}"
        return BackendUnavailable(text, err.code, err.sqlstate or "28000")

    def _plugin_error(self, reason: str) -> BackendUnavailable:
        return BackendUnavailable(f"{reason} (database at {self.where})", CR_AUTH_PLUGIN_ERR, "HY000")

    def _write(self, payload: bytes) -> None:
        assert self.writer is not None
        self.writer.write(codec.frame(payload, self.sequence))
        self.sequence = codec.next_sequence(self.sequence, len(payload))

    async def _read(self) -> bytes:
        """One packet of the connection phase, exactly (nothing past it is read), in sequence."""
        assert self.reader is not None
        header = await self.reader.readexactly(4)
        length, sequence = int.from_bytes(header[:3], "little"), header[3]
        if length > LOGIN_MAX_PAYLOAD:
            raise codec.PacketTooLarge(f"a {length}-byte packet during the login (is it a MySQL server?)")
        codec.check_sequence(sequence, self.sequence)
        self.sequence = (sequence + 1) & 0xFF
        return await self.reader.readexactly(length)

    def _no_more_buffered(self, after: str) -> None:
        """Nothing may follow the server's greeting before TLS (it would be read as if it came
        inside TLS: a plaintext injection) nor its final OK (it answers no command)."""
        assert self.reader is not None
        pending = getattr(self.reader, "_buffer", b"")  # StreamReader keeps what it read ahead here
        if len(pending):
            raise codec.ProtocolViolation(f"{len(pending)} unexpected bytes after {after}")


async def kill_query(
    target: MySqlTarget,
    credential: Credential | None,
    connection_id: int,
    *,
    timeout: float = 5.0,
    connection: str = "",
) -> bool:
    """``KILL QUERY connection_id`` on a connection of its own (a statement to stop when its client
    went away or the kill switch ended its session). Best effort: False when it could not be done
    (the statement may have ended meanwhile: MySQL then says "Unknown thread id")."""
    if not 0 < connection_id < 1 << 64:
        raise ValueError("a connection id is a positive 64-bit integer")
    try:
        link = await open_backend(
            target,
            credential,
            client_capabilities=codec.CLIENT_PROTOCOL_41 | codec.CLIENT_TRANSACTIONS,
            connect_attrs=(("program_name", "wardgate"), ("_wardgate", "kill query")),
            timeout=timeout,
            connection=connection,
        )
    except BackendUnavailable:
        return False
    try:
        async with asyncio.timeout(timeout):
            link.writer.write(codec.frame(bytes((codec.COM_QUERY,)) + b"KILL QUERY %d" % connection_id, 0))
            await link.writer.drain()
            header = await link.reader.readexactly(4)
            length = int.from_bytes(header[:3], "little")
            if length > LOGIN_MAX_PAYLOAD:
                return False
            payload = await link.reader.readexactly(length)
            return payload[:1] == bytes((codec.OK_HEADER,))
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        close_backend(link)


def close_backend(link: MySqlBackendLink) -> None:
    """Say COM_QUIT and close (the server then logs no aborted connection)."""
    with contextlib.suppress(Exception):
        link.writer.write(codec.frame(bytes((codec.COM_QUIT,)), 0))
        link.writer.close()
