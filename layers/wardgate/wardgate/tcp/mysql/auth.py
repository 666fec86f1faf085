"""What a MySQL client computes from its password and the server's nonce: pure functions.

wardgate is the client of the backend server, with the credential it holds for the connection:

* ``mysql_native_password``: ``SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password)))``.
* ``caching_sha2_password``: fast authentication sends
  ``SHA256(password) XOR SHA256(SHA256(SHA256(password)) + nonce)``; the server answers with
  AuthMoreData ``0x03`` (:data:`FAST_AUTH_SUCCESS`) or ``0x04`` (:data:`PERFORM_FULL_AUTHENTICATION`).
  Full authentication sends the password in clear (NUL-terminated) inside TLS, or without TLS
  encrypted with the server's RSA key (the client asks for it with ``0x02``,
  :data:`REQUEST_PUBLIC_KEY`): RSA-OAEP (SHA-1) of ``(password + NUL) XOR nonce``.
* MariaDB's ``client_ed25519``: an Ed25519 signature of the nonce with a key derived from the
  password as RFC 8032 derives it from a seed, except that the "seed" is the password itself,
  of any length: ``h = SHA-512(password)``, the secret scalar is ``h[:32]`` clamped and the
  nonce prefix ``h[32:]``. A standard Ed25519 library only takes 32-byte seeds, hence PyNaCl's
  low-level scalar and point operations.
* ``mysql_clear_password``: the password and a NUL (only ever inside TLS).

Nonces are the 20 bytes of the greeting or of an AuthSwitchRequest (whose data MySQL ends with a
NUL: :func:`switch_nonce` removes it).
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = [
    "FAST_AUTH_SUCCESS",
    "PERFORM_FULL_AUTHENTICATION",
    "REQUEST_PUBLIC_KEY",
    "caching_sha2_rsa_password",
    "caching_sha2_scramble",
    "clear_password",
    "ed25519_signature",
    "native_password_scramble",
    "switch_nonce",
]

REQUEST_PUBLIC_KEY = 0x02  # client -> server: send me your RSA public key (caching_sha2, no TLS)
FAST_AUTH_SUCCESS = 0x03  # server -> client (AuthMoreData): the scramble matched the cache; OK follows
PERFORM_FULL_AUTHENTICATION = 0x04  # server -> client (AuthMoreData): send the password itself
NONCE_LENGTH = 20


def switch_nonce(data: bytes) -> bytes:
    """The nonce of an AuthSwitchRequest's data: MySQL ends it with a NUL that is not part of it."""
    return data[:-1] if data.endswith(b"\x00") and len(data) == NONCE_LENGTH + 1 else data


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def native_password_scramble(password: bytes, nonce: bytes) -> bytes:
    """``mysql_native_password``'s answer (20 bytes; empty for an empty password)."""
    if not password:
        return b""
    stage1 = hashlib.sha1(password).digest()  # noqa: S324 - the protocol's hash, not our choice
    stage2 = hashlib.sha1(stage1).digest()  # noqa: S324
    return _xor(stage1, hashlib.sha1(nonce[:NONCE_LENGTH] + stage2).digest())  # noqa: S324


def caching_sha2_scramble(password: bytes, nonce: bytes) -> bytes:
    """``caching_sha2_password``'s fast-authentication answer (32 bytes; empty for an empty password)."""
    if not password:
        return b""
    stage1 = hashlib.sha256(password).digest()
    stage2 = hashlib.sha256(stage1).digest()
    return _xor(stage1, hashlib.sha256(stage2 + nonce[:NONCE_LENGTH]).digest())


def clear_password(password: bytes) -> bytes:
    """The password as ``mysql_clear_password`` and caching_sha2's full authentication over TLS send it."""
    if b"\x00" in password:
        raise ValueError("a password sent in clear cannot contain NUL")
    return password + b"\x00"


def caching_sha2_rsa_password(password: bytes, nonce: bytes, public_key_pem: bytes) -> bytes:
    """caching_sha2's (and sha256_password's) full authentication without TLS: RSA-OAEP with SHA-1
    of ``(password + NUL) XOR nonce`` (the nonce repeated), under the server's public key (PEM).

    ``ValueError`` when the key is not an RSA public key in PEM, or too small for the password.
    """
    key = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the server's public key is not an RSA key")
    message = clear_password(password)
    salt = nonce[:NONCE_LENGTH]
    if not salt:
        raise ValueError("an empty nonce")
    stream = (salt * (len(message) // len(salt) + 1))[: len(message)]
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303
    return key.encrypt(_xor(message, stream), oaep)


def ed25519_signature(password: bytes, nonce: bytes) -> bytes:
    """MariaDB ``client_ed25519``'s answer: the 64-byte signature ``R || S`` of ``nonce``.

    RFC 8032 section 5.1.6 with ``SHA-512(password)`` in place of ``SHA-512(seed)``.
    """
    from nacl import bindings  # imported here: only backends using this plugin need PyNaCl loaded

    digest = hashlib.sha512(password).digest()
    secret = bytearray(digest[:32])
    secret[0] &= 248  # clamp, as RFC 8032 prunes the first half of the hash
    secret[31] = (secret[31] & 127) | 64
    scalar = bytes(secret)
    public = bindings.crypto_scalarmult_ed25519_base_noclamp(scalar)
    r = bindings.crypto_core_ed25519_scalar_reduce(hashlib.sha512(digest[32:] + nonce).digest())
    commitment = bindings.crypto_scalarmult_ed25519_base_noclamp(r)
    k = bindings.crypto_core_ed25519_scalar_reduce(hashlib.sha512(commitment + public + nonce).digest())
    s = bindings.crypto_core_ed25519_scalar_add(bindings.crypto_core_ed25519_scalar_mul(k, scalar), r)
    return bytes(commitment + s)
