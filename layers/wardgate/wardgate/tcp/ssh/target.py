"""The connection to the target host: asyncssh as a client, the pinned host key only.

A connection of the ``ssh`` kind names ``ssh://user@host:port`` and pins the target's host key
(``connections.py``: an OpenSSH public key line or its ``SHA256:`` fingerprint). There is no
trust on first use: a host presenting any other key is refused during the key exchange, before
wardgate authenticates to it, so the credential is never offered to an impostor. The credential
(Secrets Manager) is the private key (``ssh_key``), or a password (``basic``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncssh

from wardgate.connections import Connection
from wardgate.errors import ServiceUnavailable

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


class _PinnedHostClient(asyncssh.SSHClient):
    """Validates the target's host key against the pin (asyncssh asks this for every key not in its
    empty trusted list)."""

    def __init__(self, target: SshTarget) -> None:
        self.target = target
        self.mismatch = False

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        if self.target.accepts(key):
            return True
        self.mismatch = True
        return False


def _other_encryption() -> list[str]:
    from asyncssh.encryption import get_default_encryption_algs

    return [name.decode() for name in get_default_encryption_algs() if name.decode() not in TARGET_ENCRYPTION]


async def connect_target(
    target: SshTarget, *, private_key: str | None, password: str | None, timeout: float
) -> asyncssh.SSHClientConnection:
    """An authenticated connection to ``target``, or ``TargetRefused`` saying why not."""
    client = _PinnedHostClient(target)
    options: dict[str, Any] = {
        "username": target.user,
        "known_hosts": ([], [], []),  # nothing trusted but what validate_host_public_key accepts
        "x509_trusted_certs": None,
        "agent_path": None,  # never the gateway's own agent, keys or config
        "config": [],
        "preferred_auth": "publickey" if private_key else "password,keyboard-interactive",
        "client_keys": [asyncssh.import_private_key(private_key)] if private_key else [],
        "password": password,
        "connect_timeout": timeout,
        "login_timeout": timeout,
        "encryption_algs": [*TARGET_ENCRYPTION, *_other_encryption()],
        "max_pktsize": TARGET_MAX_PACKET,
        "window": TARGET_WINDOW,
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
