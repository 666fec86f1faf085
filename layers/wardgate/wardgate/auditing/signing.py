"""The manifests' signing key: an asymmetric KMS key on AWS, a key file in ``wardgate dev``.

``RECORDINGS_MANIFEST_KEY`` names it: a KMS key ARN (``ECC_NIST_P256``, ``ECDSA_SHA_256``; the
stack output ``RecordingManifestKeyArn``) or ``file:<path>`` to a PEM private key (local mode's,
made at first start under ``.wardgate/``). What is signed is a short ASCII statement naming the
SHA-256 of the manifest's first line (``signed_message``), as a RAW message: KMS signs RAW
messages up to 4 KiB, and a manifest can be larger. Verifying uses the public key only: fetched
once with ``kms:GetPublicKey`` (or given as a PEM file), then checked locally, so ``verify``
makes no KMS call per manifest and an auditor can pin the key they were given.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEY_SETTING = "RECORDINGS_MANIFEST_KEY"
ALGORITHM = "ECDSA_SHA_256"
KEY_SPEC = "ECC_NIST_P256"
SIGNED_PREFIX = b"wardgate.recording-manifest/v1:"
LOCAL_KEY_FILE = "recording-manifest-key.pem"


class SigningKeyError(Exception):
    """The configured key cannot be used (missing, unreadable, of the wrong kind)."""


def signed_message(digest: str) -> bytes:
    """What the key signs for a manifest whose first line hashes to ``digest`` (hex)."""
    return SIGNED_PREFIX + digest.encode("ascii")


class ManifestSigner(Protocol):
    @property
    def key_id(self) -> str: ...

    def sign(self, message: bytes) -> bytes:
        """A DER-encoded ECDSA P-256 / SHA-256 signature of ``message``."""
        ...


class KmsSigner:
    def __init__(self, key_id: str) -> None:
        self.key_id = key_id

    def sign(self, message: bytes) -> bytes:
        from wardgate import aws

        answer = aws.client("kms").sign(
            KeyId=self.key_id, Message=message, MessageType="RAW", SigningAlgorithm=ALGORITHM
        )
        self.key_id = str(answer.get("KeyId") or self.key_id)  # the ARN, even when given an alias
        return bytes(answer["Signature"])


class FileSigner:
    def __init__(self, path: Path) -> None:
        self.private_key = _load_private_key(path)
        self.key_id = local_key_id(self.private_key.public_key())

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message, ec.ECDSA(hashes.SHA256()))


@dataclass(frozen=True)
class ManifestVerifier:
    public_key: ec.EllipticCurvePublicKey
    key_id: str  # for messages: which key the manifests were checked against

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True


def local_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """``local:`` and the first 16 hex digits of the SHA-256 of the public key (SubjectPublicKeyInfo)."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "local:" + hashlib.sha256(der).hexdigest()[:16]


def _is_file_setting(setting: str) -> bool:
    return setting.startswith("file:")


def signer_for(setting: str) -> ManifestSigner:
    if not setting:
        raise SigningKeyError(f"{KEY_SETTING} is not set: no key to sign manifests with")
    if _is_file_setting(setting):
        return FileSigner(Path(setting.removeprefix("file:")))
    return KmsSigner(setting)


def verifier_for(setting: str, public_key_file: str | None = None) -> ManifestVerifier:
    """The public key to check manifests against: ``public_key_file`` (PEM) when given, else the
    configured key's (KMS ``GetPublicKey``, or the local key file's public half)."""
    if public_key_file:
        key = _load_public_key(Path(public_key_file))
        return ManifestVerifier(key, f"{public_key_file} ({local_key_id(key)})")
    if not setting:
        raise SigningKeyError(
            f"{KEY_SETTING} is not set and no --public-key was given: no key to check manifests against"
        )
    if _is_file_setting(setting):
        key = _load_private_key(Path(setting.removeprefix("file:"))).public_key()
        return ManifestVerifier(key, local_key_id(key))
    return ManifestVerifier(_kms_public_key(setting), setting)


def _kms_public_key(key_id: str) -> ec.EllipticCurvePublicKey:
    from botocore.exceptions import ClientError

    from wardgate import aws

    try:
        answer = aws.client("kms").get_public_key(KeyId=key_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "UnsupportedOperationException":
            raise
        raise SigningKeyError(f"KMS key {key_id} has no public key: not an {KEY_SPEC} signing key") from None
    spec = answer.get("KeySpec") or answer.get("CustomerMasterKeySpec")  # the older name (moto's)
    if (
        spec != KEY_SPEC
        or answer.get("KeyUsage") != "SIGN_VERIFY"
        or ALGORITHM not in (answer.get("SigningAlgorithms") or [])
    ):
        raise SigningKeyError(
            f"KMS key {key_id} is {spec} for {answer.get('KeyUsage')}, not an {KEY_SPEC} signing key "
            f"with {ALGORITHM}"
        )
    key = serialization.load_der_public_key(bytes(answer["PublicKey"]))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SigningKeyError(f"KMS key {key_id} has no elliptic-curve public key")
    return key


def _load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), None)
    except FileNotFoundError:
        raise SigningKeyError(f"no manifest key at {path}") from None
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningKeyError(f"{path} is not a P-256 (secp256r1) private key")
    return key


def _load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise SigningKeyError(f"no public key at {path}") from None
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not a PEM public key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningKeyError(f"{path} is not a P-256 (secp256r1) public key")
    return key


def make_local_key(folder: Path) -> Path:
    """Local mode's signing key: made at first start, kept across runs (like the dev CA); its
    public half beside it, for ``openssl`` and ``verify --public-key``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCAL_KEY_FILE
    try:
        key = _load_private_key(path)
    except SigningKeyError:
        key = ec.generate_private_key(ec.SECP256R1())
        path.unlink(missing_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path.with_name(path.stem + ".pub.pem").write_bytes(public)
    return path
