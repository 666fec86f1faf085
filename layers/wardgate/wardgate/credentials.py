"""Backend credentials: fetched from Secrets Manager, cached briefly, injected into upstream requests.

The agent never sees them: they are added to the outgoing request only, never recorded,
never logged, and their ``repr`` is blank.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from wardgate import aws
from wardgate.errors import ServiceUnavailable

HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")  # an RFC 9110 token, lower case
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "cookie"})


@dataclass(frozen=True)
class Credential:
    """A connection's secret as wardgate uses it: the header it injects, and per type a password,
    an SSH key or the private CA the upstream's certificate must chain to."""

    header_name: str
    header_value: str = field(repr=False)
    password: str | None = field(default=None, repr=False)  # basic: what a database connection needs
    ca_pem: str | None = None  # a private CA the upstream's certificate must chain to (not a secret)
    private_key: str | None = field(default=None, repr=False)  # ssh_key: unencrypted OpenSSH private key

    @classmethod
    def from_secret(cls, raw: str) -> Credential:
        """Secret string formats (JSON):
        ``{"type": "bearer", "token": ...}``, ``{"type": "basic", "username": ..., "password": ...}``,
        ``{"type": "api_key", "header": "X-Api-Key", "value": ...}``; any of them may add
        ``"ca_pem"``: the PEM CA the upstream's certificate must chain to (a cluster's CA).
        ``{"type": "ssh_key", "private_key": ..., "passphrase": ...}`` (ssh connections; passphrase
        optional): an OpenSSH or PEM private key, decrypted here once, so the SSH listener holds it
        as an unencrypted OpenSSH key and no header is injected anywhere.
        """
        doc = json.loads(raw)
        kind = doc.get("type")
        values = {k: v for k, v in doc.items() if k != "type"}
        if not values or not all(isinstance(v, str) and v for v in values.values()):
            raise ValueError("every credential field must be a non-empty string")
        ca_pem = doc.get("ca_pem")
        if ca_pem is not None and "-----BEGIN CERTIFICATE-----" not in ca_pem:
            raise ValueError("ca_pem must hold PEM certificates")
        if kind == "bearer":
            return cls("authorization", f"Bearer {doc['token']}", ca_pem=ca_pem)
        if kind == "basic":
            pair = f"{doc['username']}:{doc['password']}".encode()
            header = "Basic " + base64.b64encode(pair).decode("ascii")
            return cls("authorization", header, doc["password"], ca_pem)
        if kind == "ssh_key":
            return cls("", "", private_key=_ssh_private_key(doc["private_key"], doc.get("passphrase")))
        if kind == "api_key":
            header = str(doc["header"]).lower()
            if header in RESERVED_HEADERS or not HEADER_NAME.fullmatch(header):
                raise ValueError(f"header {header!r} cannot carry a credential")
            return cls(header, str(doc["value"]), ca_pem=ca_pem)
        raise ValueError(f"unknown credential type {kind!r}")


def _ssh_private_key(text: str, passphrase: str | None) -> str:
    """The key as an unencrypted OpenSSH private key; errors never include the key or passphrase."""
    import asyncssh  # only ssh credentials pay for it

    try:
        key = asyncssh.import_private_key(text, passphrase)
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError, TypeError) as exc:
        if isinstance(exc, asyncssh.KeyEncryptionError):
            reason = "the passphrase does not decrypt it"
        elif passphrase is None and "passphrase" in str(exc).lower():
            reason = "it is encrypted and the secret has no passphrase"
        else:
            reason = "not an OpenSSH or PEM private key"
        raise ValueError(f"ssh_key private_key: {reason}") from None
    return key.export_private_key().decode()


@dataclass(eq=False, repr=False)  # a service: compared by identity, its caches never printed
class CredentialStore:
    """Connections' credentials from Secrets Manager, remembered per container for ``ttl_seconds``."""

    ttl_seconds: float = 300.0
    clock: Any = time.monotonic
    _cache: dict[str, tuple[float, Credential]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def get(self, secret_id: str) -> Credential:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(secret_id)
        if cached is not None and now - cached[0] < self.ttl_seconds:
            return cached[1]
        credential = self._load(secret_id)
        with self._lock:
            self._cache[secret_id] = (now, credential)
        return credential

    @staticmethod
    def _load(secret_id: str) -> Credential:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            secret = aws.client("secretsmanager").get_secret_value(SecretId=secret_id)
        except (BotoCoreError, ClientError) as exc:
            code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
            raise ServiceUnavailable(
                f"backend credential unavailable ({code})", code="credential_unavailable"
            ) from None
        try:
            return Credential.from_secret(secret["SecretString"])
        except (KeyError, ValueError, TypeError, AttributeError):
            # Never echo the secret's content, not even in an error.
            raise ServiceUnavailable(
                "backend credential is malformed", code="credential_unavailable"
            ) from None
