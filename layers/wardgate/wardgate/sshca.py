"""wardgate's SSH certificate authority and the SSH gateway's host key (protocol-free core).

An agent exchanges its OIDC token for a short-lived OpenSSH user certificate for its own public
key (``POST /ssh/certificate``, ``wardgate ssh login``); the SSH listener trusts certificates
signed by this CA's key and reads the identity back from them (``identity_from_certificate``).

Keys are configured like the recording manifests' signing key: each setting holds a Secrets
Manager secret id or ARN whose string is an OpenSSH private key (on AWS), or ``file:<path>`` to
such a key (local mode's, made at first start under ``.wardgate/`` by ``make_local_keys``):

- ``SSH_CA_KEY``: the CA's signing key (ed25519 recommended).
- ``SSH_HOST_KEY``: the gateway's host key, stable across tasks (never regenerated per task).
- ``SSH_CA_PUBLIC_KEY``: instead of ``SSH_CA_KEY`` where certificates are only checked (the SSH
  listener): the CA's public key line, so that task never holds the signing key.

A certificate's key id is the identity as compact JSON (``key_id``), its only principal the
identity's subject; see docs/ssh-gateway.md for the format.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
from asyncssh.public_key import SSHOpenSSHCertificate

from wardgate.errors import BadRequest, ServiceUnavailable, Unauthorized
from wardgate.identity import Identity

CA_KEY_SETTING = "SSH_CA_KEY"
CA_PUBLIC_KEY_SETTING = "SSH_CA_PUBLIC_KEY"
HOST_KEY_SETTING = "SSH_HOST_KEY"
LOCAL_CA_KEY_FILE = "ssh-ca-key"
LOCAL_HOST_KEY_FILE = "ssh-host-key"

MAX_LIFETIME_S = 3600  # a certificate never outlives its token, nor this
BACKDATE_S = 30  # valid from a little before now: clocks of gateway and signer may differ
KEY_ID_VERSION = 1
MAX_KEY_ID_BYTES = 4096  # groups are copied from the token; a key id beyond this is refused
MAX_PUBLIC_KEY_CHARS = 16384  # a large RSA key line is ~750 characters
# What an agent's key may be. DSA is broken, and a certificate as the key to certify is refused.
ALLOWED_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
MIN_RSA_BITS = 2048
USER_CERTIFICATE = 1  # the certificate type field of OpenSSH's PROTOCOL.certkeys


class InvalidCertificate(Unauthorized):
    """A certificate the SSH gateway must refuse; the message says why, for the agent."""

    code = "invalid_certificate"


class WrongCertificateAuthority(InvalidCertificate):
    pass


class CertificateExpired(InvalidCertificate):
    pass


class CertificateNotYetValid(InvalidCertificate):
    pass


class WrongPrincipal(InvalidCertificate):
    pass


class BadKeyId(InvalidCertificate):
    pass


class NotAUserCertificate(InvalidCertificate):
    pass


@dataclass(frozen=True)
class SshSettings:
    """Where the CA key and the host key are: a Secrets Manager secret id/ARN, or ``file:<path>``."""

    ca_key: str = ""
    host_key: str = ""
    ca_public_key: str = ""  # checking only: the CA's public key line

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SshSettings:
        env = dict(os.environ if env is None else env)
        return cls(
            ca_key=env.get(CA_KEY_SETTING, ""),
            host_key=env.get(HOST_KEY_SETTING, ""),
            ca_public_key=env.get(CA_PUBLIC_KEY_SETTING, ""),
        )


@dataclass(frozen=True)
class SignedCertificate:
    certificate: str  # one OpenSSH line: "<type>-cert-v01@openssh.com <base64> <comment>"
    valid_after: int
    valid_before: int
    serial: int
    key_id: str


def _read_key(setting: str, name: str, what: str) -> asyncssh.SSHKey:
    """An OpenSSH private key from a file or a Secrets Manager secret; unreadable fails closed (503)."""
    if not setting:
        raise ServiceUnavailable(f"{name} is not set: no {what}", code="ssh_key_unavailable")
    if setting.startswith("file:"):
        try:
            data = Path(setting.removeprefix("file:")).read_bytes()
        except OSError as exc:
            raise ServiceUnavailable(
                f"{what} unavailable ({type(exc).__name__})", code="ssh_key_unavailable"
            ) from None
    else:
        from wardgate.runtime import secret_string

        data = secret_string(setting, what).encode()
    try:
        key = asyncssh.import_private_key(data)
    except (asyncssh.KeyImportError, ValueError) as exc:
        # The key's bytes are never echoed: only that it is not an unencrypted OpenSSH private key.
        raise ServiceUnavailable(
            f"{what} is not an unencrypted OpenSSH private key ({type(exc).__name__})",
            code="ssh_key_unavailable",
        ) from None
    return key


def key_id(identity: Identity) -> str:
    """The certificate's key id: the identity as compact JSON with sorted keys (documented format)."""
    document: dict[str, Any] = {
        "v": KEY_ID_VERSION,
        "iss": identity.issuer,
        "sub": identity.subject,
        "groups": list(identity.groups),
    }
    if identity.client_id is not None:
        document["client_id"] = identity.client_id
    if identity.token_id is not None:
        document["jti"] = identity.token_id
    text = json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    if len(text.encode()) > MAX_KEY_ID_BYTES:
        raise BadRequest(
            f"the identity is too large for a certificate's key id ({len(text.encode())} bytes, "
            f"at most {MAX_KEY_ID_BYTES}): too many groups in the token",
            code="identity_too_large",
        )
    return text


def _str_field(document: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = document.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise BadKeyId(f"the certificate's key id has no valid {name!r} (a non-empty string)")
    return value


def identity_from_key_id(text: str) -> Identity:
    """The inverse of ``key_id`` (without expiry, which is the certificate's own)."""
    try:
        document = json.loads(text)
    except ValueError:
        raise BadKeyId("the certificate's key id is not a wardgate identity (not JSON)") from None
    if not isinstance(document, dict):
        raise BadKeyId("the certificate's key id is not a wardgate identity (not a JSON object)")
    if document.get("v") != KEY_ID_VERSION:
        raise BadKeyId(f"the certificate's key id has version {document.get('v')!r}, not {KEY_ID_VERSION}")
    unknown = set(document) - {"v", "iss", "sub", "groups", "client_id", "jti"}
    if unknown:
        raise BadKeyId(f"the certificate's key id has unknown fields: {', '.join(sorted(unknown))}")
    groups = document.get("groups")
    if not isinstance(groups, list) or not all(isinstance(group, str) for group in groups):
        raise BadKeyId("the certificate's key id has no valid 'groups' (a list of strings)")
    subject = _str_field(document, "sub", required=True)
    issuer = _str_field(document, "iss", required=True)
    assert subject is not None and issuer is not None  # required=True raises otherwise
    return Identity(
        subject=subject,
        issuer=issuer,
        groups=tuple(groups),
        client_id=_str_field(document, "client_id", required=False),
        token_id=_str_field(document, "jti", required=False),
    )


def parse_public_key(text: str) -> asyncssh.SSHKey:
    """An agent's public key from one OpenSSH line; anything else is a 400 that says what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("public_key must be an OpenSSH public key line, e.g. 'ssh-ed25519 AAAA...'")
    if len(text) > MAX_PUBLIC_KEY_CHARS:
        raise BadRequest(f"public_key is longer than {MAX_PUBLIC_KEY_CHARS} characters")
    line = text.strip()
    if "\n" in line or "\r" in line:
        raise BadRequest("public_key must be a single line")
    key_type = line.split(None, 1)[0]
    if key_type.endswith("-cert-v01@openssh.com"):
        raise BadRequest("public_key is a certificate; send the public key it certifies")
    if key_type not in ALLOWED_KEY_TYPES:
        raise BadRequest(
            f"public_key has type {key_type[:64]!r}; allowed: {', '.join(sorted(ALLOWED_KEY_TYPES))}"
        )
    try:
        key = asyncssh.import_public_key(line)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise BadRequest(f"public_key is not a valid OpenSSH public key: {exc}") from None
    if key.get_algorithm() != key_type:
        raise BadRequest(f"public_key says {key_type!r} but holds a {key.get_algorithm()!r} key")
    if key_type == "ssh-rsa":
        bits = key.pyca_key.key_size  # type: ignore[union-attr]
        if bits < MIN_RSA_BITS:
            raise BadRequest(f"public_key is a {bits}-bit RSA key; at least {MIN_RSA_BITS} bits")
    return key


class SshCertificateAuthority:
    """Signs agents' user certificates and reads identities back from them."""

    def __init__(self, key: asyncssh.SSHKey, *, can_sign: bool = True) -> None:
        self._key = key if can_sign else None
        self._public_key = key.convert_to_public() if can_sign else key
        self._public_data = self._public_key.public_data

    @classmethod
    def verifier(cls, public_key_line: str) -> SshCertificateAuthority:
        """A CA that checks certificates only (from its public key line); signing raises."""
        try:
            key = asyncssh.import_public_key(public_key_line.strip())
        except (asyncssh.KeyImportError, ValueError):
            raise ServiceUnavailable(
                f"{CA_PUBLIC_KEY_SETTING} is not an OpenSSH public key line", code="ssh_key_unavailable"
            ) from None
        return cls(key, can_sign=False)

    def public_key_line(self) -> str:
        """The CA's public key as one OpenSSH line (``ssh-ed25519 AAAA...``), for trust lists
        (sshd's ``TrustedUserCAKeys``, the SSH listener)."""
        return host_key_line(self._public_key)

    def fingerprint(self) -> str:
        return self._public_key.get_fingerprint("sha256")

    def sign_user_certificate(
        self, identity: Identity, public_key: str | asyncssh.SSHKey, *, now: float | None = None
    ) -> SignedCertificate:
        """A user certificate for ``public_key`` naming ``identity``: valid from now - 30 s to the
        token's expiry or now + 1 h, whichever comes first; the subject its only principal; only
        ``permit-pty`` (the gateway decides forwarding, agents and X11 itself)."""
        if self._key is None:
            raise ServiceUnavailable("this SSH CA only checks certificates", code="ssh_key_unavailable")
        user_key = parse_public_key(public_key) if isinstance(public_key, str) else public_key
        current = int(time.time() if now is None else now)
        valid_before = current + MAX_LIFETIME_S
        if identity.expires_at is not None:
            if identity.expires_at <= current:
                raise Unauthorized("the token has expired", code="token_expired")
            valid_before = min(valid_before, int(identity.expires_at))
        if not identity.subject:
            raise BadRequest("the identity has no subject to name as the certificate's principal")
        text = key_id(identity)
        serial = secrets.randbits(64)
        certificate = self._key.generate_user_certificate(
            user_key,
            text,
            serial=serial,
            principals=[identity.subject],
            valid_after=current - BACKDATE_S,
            valid_before=valid_before,
            permit_x11_forwarding=False,
            permit_agent_forwarding=False,
            permit_port_forwarding=False,
            permit_pty=True,
            permit_user_rc=False,
            comment=f"wardgate {identity.subject}"[:200],
        )
        line = certificate.export_certificate().decode().strip()
        return SignedCertificate(line, current - BACKDATE_S, valid_before, serial, text)

    def identity_from_certificate(
        self, certificate: str | bytes | asyncssh.SSHCertificate, *, now: float | None = None
    ) -> Identity:
        """The identity a certificate of this CA names, after checking it: a user certificate
        (signature verified on import), signed by this CA's key, within its validity window, with
        exactly the key id's subject as principal. ``expires_at`` is the certificate's end."""
        if isinstance(certificate, asyncssh.SSHCertificate):
            cert = certificate
        else:
            try:
                cert = asyncssh.import_certificate(certificate)
            except (asyncssh.KeyImportError, ValueError) as exc:
                raise InvalidCertificate(f"not a valid OpenSSH certificate: {exc}") from None
        if not isinstance(cert, SSHOpenSSHCertificate):
            raise InvalidCertificate("not an OpenSSH certificate (X.509 certificates are not accepted)")
        fields = _certificate_fields(cert)
        if cert.signing_key.public_data != self._public_data:
            raise WrongCertificateAuthority(
                f"the certificate is signed by {cert.signing_key.get_fingerprint('sha256')}, "
                f"not by this gateway's SSH CA ({self.fingerprint()})"
            )
        if fields.cert_type != USER_CERTIFICATE:
            raise NotAUserCertificate("the certificate is a host certificate, not a user certificate")
        current = time.time() if now is None else now
        if current < fields.valid_after:
            raise CertificateNotYetValid(
                f"the certificate is not valid before {_utc(fields.valid_after)} (now {_utc(current)})"
            )
        if current >= fields.valid_before:
            raise CertificateExpired(f"the certificate expired at {_utc(fields.valid_before)}")
        identity = identity_from_key_id(fields.key_id)
        if list(cert.principals) != [identity.subject]:
            raise WrongPrincipal(
                f"the certificate's principals {list(cert.principals)!r} are not exactly its "
                f"identity's subject {identity.subject!r}"
            )
        return Identity(
            subject=identity.subject,
            issuer=identity.issuer,
            groups=identity.groups,
            client_id=identity.client_id,
            token_id=identity.token_id,
            expires_at=fields.valid_before,
        )


@dataclass(frozen=True)
class _CertificateFields:
    cert_type: int
    key_id: str
    valid_after: int
    valid_before: int
    serial: int


def _certificate_fields(cert: SSHOpenSSHCertificate) -> _CertificateFields:
    # asyncssh keeps these decoded fields private (no accessors in 2.23); asyncssh is pinned and
    # tests/test_ssh_ca.py checks each of them against ssh-keygen -L.
    return _CertificateFields(
        cert_type=int(cert._cert_type),
        key_id=str(cert._key_id),
        valid_after=int(cert._valid_after),
        valid_before=int(cert._valid_before),
        serial=int(cert._serial),
    )


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def load_ca(settings: SshSettings | None = None) -> SshCertificateAuthority:
    """The CA from its private key (``SSH_CA_KEY``), or, without one, a checking-only CA from its
    public key line (``SSH_CA_PUBLIC_KEY``)."""
    settings = SshSettings.from_env() if settings is None else settings
    if not settings.ca_key and settings.ca_public_key:
        return SshCertificateAuthority.verifier(settings.ca_public_key)
    return SshCertificateAuthority(_read_key(settings.ca_key, CA_KEY_SETTING, "the SSH CA key"))


def load_host_key(settings: SshSettings | None = None) -> asyncssh.SSHKey:
    """The SSH gateway's host key (a private key: the listener serves with it)."""
    settings = SshSettings.from_env() if settings is None else settings
    return _read_key(settings.host_key, HOST_KEY_SETTING, "the SSH gateway's host key")


def host_key_line(key: asyncssh.SSHKey) -> str:
    """A public key's ``<type> <base64>`` (no comment), as known_hosts lines and pins hold it."""
    algorithm, data = key.convert_to_public().export_public_key().decode().split()[:2]
    return f"{algorithm} {data}"


def _make_local_key(path: Path, comment: str) -> None:
    """An ed25519 key made once and kept (like the dev CA); an unreadable one is left to fail."""
    if path.exists():
        return
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    # Created 0600 before the private key is written, and never replaced once there.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
        file.write(key.export_private_key())
    path.with_name(path.name + ".pub").write_bytes(key.export_public_key())


def make_local_keys(folder: Path) -> SshSettings:
    """Local mode's CA key and host key under ``folder`` (``.wardgate/``), made at first start."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, host = folder / LOCAL_CA_KEY_FILE, folder / LOCAL_HOST_KEY_FILE
    _make_local_key(ca, "wardgate development SSH CA")
    _make_local_key(host, "wardgate development SSH host key")
    return SshSettings(ca_key=f"file:{ca}", host_key=f"file:{host}")


def local_environment(folder: Path) -> dict[str, str]:
    """Local mode's SSH settings: the keys under ``folder`` (made at first start), and the host
    key's public half for the certificate route (``SSH_HOST_PUBLIC_KEY``)."""
    settings = make_local_keys(folder)
    host_public = Path(settings.host_key.removeprefix("file:") + ".pub").read_text().split()[:2]
    return {
        CA_KEY_SETTING: settings.ca_key,
        HOST_KEY_SETTING: settings.host_key,
        "SSH_HOST_PUBLIC_KEY": " ".join(host_public),
    }
