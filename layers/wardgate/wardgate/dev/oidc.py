"""A development OIDC issuer: discovery, JWKS, and tokens minted with a key kept on local disk.

It serves the same documents a real identity provider does, so the gateway validates its
tokens through exactly the code path it uses on AWS.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEV_AUDIENCE = "wardgate"
ISSUER_PATH = "/_dev/oidc"


class DevIssuer:
    def __init__(self, issuer: str, key_file: Path) -> None:
        self.issuer = issuer.rstrip("/")
        self.key = self._load_or_create(key_file)
        self.kid = (
            "dev-"
            + jwt.utils.base64url_encode(
                self.key.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )[-12:]
            ).decode()
        )

    @staticmethod
    def _load_or_create(key_file: Path) -> rsa.RSAPrivateKey:
        if key_file.exists():
            key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            return key
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key_file.touch(mode=0o600)
        key_file.write_bytes(pem)
        return key

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": self.issuer + "/jwks",
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
        }

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        public.update(kid=self.kid, use="sig", alg="RS256")
        return {"keys": [public]}

    def mint(
        self,
        subject: str,
        groups: list[str] | tuple[str, ...] = (),
        audience: str = DEV_AUDIENCE,
        ttl: int = 900,
        claims: dict[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "groups": list(groups),
            "client_id": subject,
        }
        payload.update(claims or {})
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": self.kid})

    def issuer_config(self) -> dict[str, Any]:
        """The entry for WARDGATE_ISSUERS that trusts this issuer."""
        return {
            "issuer": self.issuer,
            "audience": DEV_AUDIENCE,
            "groups_claim": "groups",
            "owner_claim": "owner",
        }
