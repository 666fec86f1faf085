"""The database side of a PostgreSQL session: where to connect, TLS, and logging in for the agent.

The connection's ``upstream_url`` names host, port, database and user
(``postgresql://app@db.internal:5432/billing?sslmode=verify-full``); the password comes from its
credential in Secrets Manager (``{"type": "basic", ...}``) and never reaches the agent, or, with
``auth=rds-iam``, is an RDS IAM authentication token made by the task's role. The backend's
certificate is verified (``sslmode=verify-full``, the default off loopback) against the
credential's ``ca_pem`` when it has one (an RDS CA bundle), the public CAs otherwise.
SCRAM-SHA-256 is done by ``scramp``; md5 and cleartext (to a verified server only) are accepted because
older servers and poolers still ask for them.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from wardgate.identity import is_loopback_url
from wardgate.tcp.postgres import codec

SSLMODES = ("disable", "require", "verify-full")
READ_SIZE = 256 * 1024


class BackendUnavailable(Exception):
    """The database could not be reached or refused the gateway's login: the session ends (FATAL)."""

    def __init__(self, message: str, sqlstate: str = "08006") -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate


@dataclass(frozen=True)
class PgTarget:
    host: str
    port: int
    database: str
    user: str
    sslmode: str
    auth: str = "password"  # or "rds-iam"
    region: str = ""

    @classmethod
    def from_url(cls, url: str) -> PgTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(f"{url!r} is not a postgresql:// URL")
        if parts.password is not None:
            raise ValueError("the upstream URL must not carry a password: use the connection's credential")
        database = unquote(parts.path.lstrip("/"))
        if not parts.hostname or not parts.username or not database or "/" in database:
            raise ValueError(f"{url!r} must name a user, a host and one database")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        default_mode = "disable" if is_loopback_url(url) else "verify-full"
        sslmode = query.get("sslmode", default_mode)
        if sslmode not in SSLMODES:
            raise ValueError(f"sslmode must be one of {', '.join(SSLMODES)}")
        auth = query.get("auth", "password")
        if auth not in ("password", "rds-iam"):
            raise ValueError("auth must be 'password' or 'rds-iam'")
        if auth == "rds-iam" and sslmode != "verify-full":
            raise ValueError("auth=rds-iam sends a token: it needs sslmode=verify-full")
        return cls(
            host=parts.hostname,
            port=parts.port or 5432,
            database=database,
            user=unquote(parts.username),
            sslmode=sslmode,
            auth=auth,
            region=query.get("region", ""),
        )


@dataclass
class BackendLink:
    """A logged-in database session, ready for queries."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    parameters: list[bytes]  # the server's ParameterStatus messages, whole, for the client
    process_id: int
    secret_key: bytes
    status: bytes  # from its first ReadyForQuery
    notices: list[bytes]


def tls_context(target: PgTarget, ca_pem: str | None) -> ssl.SSLContext | None:
    if target.sslmode == "disable":
        return None
    context = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
    if target.sslmode == "require":  # encrypted, not authenticated: only where the connection says so
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def connect(
    target: PgTarget,
    password: str | None,
    ca_pem: str | None,
    parameters: dict[str, str],
    timeout: float,
) -> BackendLink:
    """Open, secure and log in; ``BackendUnavailable`` with a message fit for the agent otherwise."""
    where = f"{target.host}:{target.port}"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(target.host, target.port, limit=READ_SIZE)
            try:
                context = tls_context(target, ca_pem)
                if context is not None:
                    writer.write(codec.ssl_request())
                    await writer.drain()
                    answer = await reader.readexactly(1)
                    if answer != b"S":
                        raise BackendUnavailable(f"the database at {where} does not offer TLS")
                    await writer.start_tls(context, server_hostname=target.host)
                startup = {**parameters, "user": target.user, "database": target.database}
                writer.write(codec.startup_message(startup))
                await writer.drain()
                return await _login(reader, writer, target, password)
            except BaseException:
                writer.close()
                raise
    except TimeoutError:
        raise BackendUnavailable(f"the database at {where} did not answer within {timeout:g} s") from None
    except ssl.SSLError as exc:
        raise BackendUnavailable(f"TLS with the database at {where} failed: {exc.reason}") from None
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise BackendUnavailable(f"the database at {where} is unreachable ({type(exc).__name__})") from None
    except codec.ProtocolViolation as exc:
        raise BackendUnavailable(f"the database at {where} broke the protocol: {exc.message}") from None


async def _login(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: PgTarget, password: str | None
) -> BackendLink:
    messages = codec.MessageReader()
    scram = None
    parameters: list[bytes] = []
    notices: list[bytes] = []
    key: tuple[int, bytes] | None = None
    verified = target.sslmode == "verify-full"
    while True:
        message = messages.next_raw()
        if message is None:
            data = await reader.read(READ_SIZE)
            if not data:
                raise BackendUnavailable("the database closed the connection during login")
            messages.feed(data)
            continue
        kind, body, raw = message
        if kind == codec.ERROR_RESPONSE:
            fields = codec.parse_error_fields(body)
            raise BackendUnavailable(
                f"the database refused the gateway's login: {fields.get('M', '')}", fields.get("C", "08006")
            )
        if kind == codec.NOTICE_RESPONSE:
            notices.append(raw)
        elif kind == codec.PARAMETER_STATUS:
            parameters.append(raw)
        elif kind == codec.BACKEND_KEY_DATA:
            key = codec.parse_backend_key_data(body)
        elif kind == codec.READY_FOR_QUERY:
            if key is None:
                key = (0, b"")  # some poolers send none: cancel requests cannot be routed then
            return BackendLink(reader, writer, parameters, key[0], key[1], body[:1], notices)
        elif kind == codec.AUTHENTICATION:
            code, rest = codec.parse_authentication(body)
            if code == 0:
                continue
            if password is None:
                raise BackendUnavailable(
                    "the database asks for a password and the connection has none", "28000"
                )
            if code == 3:
                if not verified:  # encrypted but unauthenticated, anyone in between could ask for it
                    raise BackendUnavailable(
                        "the database asks for a cleartext password, which the gateway sends only to a "
                        "server it verified (sslmode=verify-full)",
                        "28000",
                    )
                writer.write(codec.password_message(password.encode() + b"\0"))
            elif code == 5:
                inner = hashlib.md5((password + target.user).encode()).hexdigest()  # noqa: S324 (the protocol's)
                outer = hashlib.md5(inner.encode() + rest[:4]).hexdigest()  # noqa: S324
                writer.write(codec.password_message(b"md5" + outer.encode() + b"\0"))
            elif code == 10:
                from scramp import ScramClient

                offered = codec.parse_sasl_mechanisms(rest)
                if "SCRAM-SHA-256" not in offered:
                    raise BackendUnavailable(f"no supported SASL mechanism among {offered}", "28000")
                scram = ScramClient(["SCRAM-SHA-256"], target.user, password)
                writer.write(codec.sasl_initial_response("SCRAM-SHA-256", scram.get_client_first().encode()))
            elif code == 11 and scram is not None:
                scram.set_server_first(rest.decode())
                writer.write(codec.sasl_response(scram.get_client_final().encode()))
            elif code == 12 and scram is not None:
                try:
                    scram.set_server_final(rest.decode())
                except Exception:
                    raise BackendUnavailable(
                        "the database failed SCRAM server verification", "28000"
                    ) from None
                continue
            else:
                raise BackendUnavailable(
                    f"the database asks for an unsupported authentication ({code})", "28000"
                )
            await writer.drain()
        else:
            raise BackendUnavailable(f"unexpected message {chr(kind)!r} during login")


def rds_iam_token(target: PgTarget) -> str:
    """An RDS IAM authentication token (15 minutes) for the target's user, signed by the task's role."""
    from wardgate import aws

    return str(
        aws.client("rds").generate_db_auth_token(
            DBHostname=target.host, Port=target.port, DBUsername=target.user, Region=target.region or None
        )
    )


async def cancel(target: PgTarget, process_id: int, secret_key: bytes, timeout: float) -> None:
    """Forward a cancel request to the database (best effort: PostgreSQL never answers one)."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(target.host, target.port)
            writer.write(codec.cancel_request(process_id, secret_key))
            await writer.drain()
            writer.close()
    except (OSError, TimeoutError):
        return
