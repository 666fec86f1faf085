"""The connection to the target host: asyncssh as a client, the pinned host key only.

A connection of the ``ssh`` kind names ``ssh://user@host:port`` and pins the target's host key
(``connections.py``: an OpenSSH public key line or its ``SHA256:`` fingerprint). There is no
trust on first use: a host presenting any other key is refused during the key exchange, before
wardgate authenticates to it, so the credential is never offered to an impostor. The credential
(Secrets Manager) is the private key (``ssh_key``), or a password (``basic``).

A connection may be begun early (``EarlyConnection``): its TCP connect and key exchange (the
pinned host key checked) run while the client's session is admitted and its first command
decided, but it logs in only once a command is allowed, so a refused command still never logs in
to the target.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncssh
from asyncssh.public_key import SSHLocalKeyPair

from wardgate.connections import Connection
from wardgate.errors import ServiceUnavailable
from wardgate.tcp.ssh.wire import Connector

DEFAULT_PORT = 22
# The target hop's bulk transfer (SFTP downloads, exec output), measured on loopback against
# Debian's sshd (docs/benchmarks.md): asyncssh's ChaCha20-Poly1305 costs about twice AES-GCM's CPU
# per MB (it builds a cipher per packet; AES-GCM is one OpenSSL call), and 32 KiB packets twice
# 255 KiB ones. AES-256-GCM is as strong as ChaCha20-Poly1305; a target without it gets asyncssh's
# usual list. Packets up to 255 KiB (what OpenSSH accepts) and a 4 MiB window per channel: the
# memory one target channel may hold.
TARGET_ENCRYPTION = ("aes256-gcm@openssh.com", "aes128-gcm@openssh.com")
TARGET_MAX_PACKET = 255 * 1024
TARGET_WINDOW = 4 * 1024 * 1024


class TargetRefused(ServiceUnavailable):
    """The target could not be reached, or was not the host the connection pins."""

    code = "target_unavailable"


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int
    user: str
    host_key: str  # an OpenSSH public key line or "SHA256:<base64>"

    @classmethod
    def of(cls, connection: Connection) -> SshTarget:
        """The target named by an ``ssh`` connection (validated when it was stored)."""
        parts = urlsplit(connection.upstream_url)
        if connection.kind != "ssh" or not parts.hostname or not parts.username:
            raise ValueError(f"connection {connection.name!r} is not an ssh connection")
        return cls(
            parts.hostname, parts.port or DEFAULT_PORT, unquote(parts.username), connection.ssh_host_key
        )

    def accepts(self, key: asyncssh.SSHKey) -> bool:
        """Whether ``key`` is the pinned host key (the whole key, or its SHA256 fingerprint)."""
        if self.host_key.startswith("SHA256:"):
            return bool(key.get_fingerprint("sha256") == self.host_key)
        try:
            pinned = asyncssh.import_public_key(self.host_key)
        except (asyncssh.KeyImportError, ValueError):
            return False
        return bool(pinned.public_data == key.public_data)


class _SignsOnLogin(SSHLocalKeyPair):
    """The credential's key pair, signing only once ``login`` is set. asyncssh first asks the
    target whether it would take the key (no login: sshd logs it as postponed), then signs; so the
    question goes with the key exchange, and an allowed command waits for one round trip only."""

    def __init__(self, key: asyncssh.SSHKey, login: asyncio.Event) -> None:
        super().__init__(key, None, None, None)
        self.login = login

    async def sign_async(self, data: bytes) -> bytes:
        await self.login.wait()
        return self.sign(data)


class _PinnedHostClient(asyncssh.SSHClient):
    """Validates the target's host key against the pin (asyncssh asks this for every key not in its
    empty trusted list), and signs with the private key only once ``login`` is set."""

    def __init__(self, target: SshTarget, key: asyncssh.SSHKey | None, login: asyncio.Event) -> None:
        self.target = target
        self.key = key
        self.login = login
        self.mismatch = False

    def public_key_auth_requested(self) -> asyncssh.SSHKeyPair | None:
        key, self.key = self.key, None  # offered once
        return None if key is None else _SignsOnLogin(key, self.login)

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        if self.target.accepts(key):
            return True
        self.mismatch = True
        return False


def _other_encryption() -> list[str]:
    from asyncssh.encryption import get_default_encryption_algs

    return [name.decode() for name in get_default_encryption_algs() if name.decode() not in TARGET_ENCRYPTION]


@functools.lru_cache(maxsize=64)
def _private_key(text: str) -> asyncssh.SSHKey:
    """A credential's private key, parsed once (a passphrase-protected one costs a bcrypt KDF)."""
    return asyncssh.import_private_key(text)


async def connect_target(
    target: SshTarget,
    *,
    private_key: str | None,
    password: str | None,
    timeout: float,
    login: asyncio.Event | None = None,
) -> asyncssh.SSHClientConnection:
    """An authenticated connection to ``target``, or ``TargetRefused`` saying why not. With
    ``login``, the credential is offered only once it is set (the key exchange goes ahead)."""
    if login is None:
        login = asyncio.Event()
        login.set()
    client = _PinnedHostClient(target, _private_key(private_key) if private_key else None, login)
    gate = login

    async def gated_password() -> str | None:
        await gate.wait()
        return password

    options: dict[str, Any] = {
        "username": target.user,
        "known_hosts": ([], [], []),  # nothing trusted but what validate_host_public_key accepts
        "x509_trusted_certs": None,
        "agent_path": None,  # never the gateway's own agent, keys or config
        "config": [],
        "preferred_auth": "publickey" if private_key else "password,keyboard-interactive",
        "client_keys": None,  # the key is offered by the client object, once login is set
        "password": gated_password if password is not None else None,
        "connect_timeout": timeout,
        "login_timeout": timeout,
        "encryption_algs": [*TARGET_ENCRYPTION, *_other_encryption()],
        "max_pktsize": TARGET_MAX_PACKET,
        "window": TARGET_WINDOW,
        "tunnel": Connector(),  # plain TCP, the connection prepared (wire.py)
    }
    try:
        connection, _ = await asyncssh.create_connection(lambda: client, target.host, target.port, **options)
    except asyncssh.HostKeyNotVerifiable:
        raise TargetRefused(
            f"the target {target.host}:{target.port} presented a host key other than the one the connection "
            "pins: refused, nothing was sent to it",
            code="target_host_key_mismatch",
        ) from None
    except asyncssh.PermissionDenied:
        raise TargetRefused(
            f"the target {target.host}:{target.port} refused the connection's credential for user "
            f"{target.user!r}",
            code="target_auth_failed",
        ) from None
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        raise TargetRefused(
            f"the target {target.host}:{target.port} cannot be reached ({type(exc).__name__}: {exc})"
        ) from None
    return connection


@dataclass(frozen=True)
class Begun:
    """What an early connection was begun for: it serves a command only if that is still so."""

    target: SshTarget
    credential_secret: str | None


class EarlyConnection:
    """A connection to the target begun before a command needs it: the client has proven its
    identity and its session is being admitted. ``take`` lets it log in and returns it; ``abandon``
    closes it (the session was refused, or ended before a command was allowed): it never logged in."""

    def __init__(
        self, begun: Begun, connect: Callable[[asyncio.Event], Awaitable[asyncssh.SSHClientConnection]]
    ) -> None:
        self.begun = begun
        self.login = asyncio.Event()
        self.task = asyncio.ensure_future(connect(self.login))
        self.task.add_done_callback(_seen)

    async def take(self, wanted: Begun) -> asyncssh.SSHClientConnection | None:
        """The connection, logged in, or raise why not (``TargetRefused``). None: connect afresh
        (it was begun for another target or credential, since changed, or it failed before it was
        asked for, e.g. its login timed out while the client's first command was refused)."""
        if wanted != self.begun or (self.task.done() and not self._connected()):
            self.abandon()
            return None
        self.login.set()
        return await self.task

    def _connected(self) -> bool:
        return not self.task.cancelled() and self.task.exception() is None

    def abandon(self) -> None:
        self.task.cancel()
        if self.task.done() and self._connected():
            self.task.result().close()


def _seen(task: asyncio.Future[asyncssh.SSHClientConnection]) -> None:
    """A failure is reported by ``take`` (or of no interest when it is abandoned): never unretrieved."""
    if not task.cancelled():
        task.exception()
