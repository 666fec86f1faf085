"""Sealed cookies: JSON claims encrypted and authenticated with AES-256-GCM.

The key comes from the page's secret in Secrets Manager (read lazily, like the approval link key),
stretched with HKDF-SHA256 into one key per purpose (the session cookie, the sign-in cookie), so a
value sealed for one purpose never opens as the other: the purpose is also the AEAD's associated
data. A sealed value is ``base64url(nonce || ciphertext || tag)``; anything else (altered, cut,
sealed with another key or for another purpose) fails the same way, with no detail of why.
Encryption, not only a signature: the sign-in cookie carries the PKCE verifier and nonce, which the
browser holds but must not be able to read or choose.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
MAX_SEALED_CHARS = 3000  # a cookie stays well under browsers' 4 KiB per cookie
MIN_SECRET_BYTES = 32


class SealError(Exception):
    """A sealed value that does not open: forged, altered, truncated, or for another purpose."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sealer:
    def __init__(self, secret: Callable[[], bytes]) -> None:
        self._secret = secret  # from Secrets Manager, read on first use

    @functools.cache  # noqa: B019 - one Sealer per container; the cache holds two purposes' keys
    def _aead(self, purpose: str) -> AESGCM:
        secret = self._secret()
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the page's session secret is shorter than {MIN_SECRET_BYTES} bytes")
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"wardgate audit page",
            info=b"wardgate.audit-page/v1 " + purpose.encode(),
        ).derive(secret)
        return AESGCM(key)

    def seal(self, purpose: str, claims: dict[str, Any]) -> str:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
        sealed = _b64(nonce + self._aead(purpose).encrypt(nonce, plain, purpose.encode()))
        if len(sealed) > MAX_SEALED_CHARS:
            raise ValueError(
                f"{purpose}: the sealed value is {len(sealed)} characters, too large for a cookie"
            )
        return sealed

    def open(self, purpose: str, sealed: str) -> dict[str, Any]:
        if not sealed or len(sealed) > MAX_SEALED_CHARS:
            raise SealError(purpose)
        try:
            raw = _unb64(sealed)
        except (binascii.Error, ValueError):
            raise SealError(purpose) from None
        if len(raw) < NONCE_BYTES + 16:
            raise SealError(purpose)
        try:
            plain = self._aead(purpose).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode())
        except InvalidTag:
            raise SealError(purpose) from None
        claims = json.loads(plain)
        if not isinstance(claims, dict):
            raise SealError(purpose)
        return claims
