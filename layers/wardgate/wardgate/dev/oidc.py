"""A development OIDC issuer: discovery, JWKS, and tokens minted with a key kept on local disk.

It serves the same documents a real identity provider does, so the gateway validates its
tokens through exactly the code path it uses on AWS.

For humans (the auditors' replay page) it also runs the authorization code flow with PKCE, as a
real provider does for a public client: ``/authorize`` checks the client and its registered
redirect URI, requires an S256 ``code_challenge``, and (development only: there are no passwords)
shows a form that signs in whichever subject and groups are typed; ``/token`` exchanges a code once,
within a minute, for the verifier that matches its challenge, and answers with an ID token
(``aud`` = the client, the request's ``nonce``) and an access token. Both are sans-I/O here
(``OidcAnswer`` out); ``dev/server.py`` serves them under ``/_dev/oidc``.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from wardgate.auditing.web.signin import pkce_challenge  # RFC 7636 S256, as the page computes it

DEV_AUDIENCE = "wardgate"
ISSUER_PATH = "/_dev/oidc"
CODE_SECONDS = 60  # an authorization code is exchanged at once, or never
ID_TOKEN_SECONDS = 300
# Issuer keys loaded in this process, by their PEM: the tests start hundreds of stacks on one key file.
_LOADED_KEYS: dict[bytes, rsa.RSAPrivateKey] = {}
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 section 4.1
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of a SHA-256, unpadded
AUTHORIZE_PARAMETERS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
)


@dataclass(frozen=True)
class OidcAnswer:
    """What an endpoint of the issuer answers: a status, headers and a body (server.py sends it)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class _Grant:
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    subject: str
    groups: tuple[str, ...]
    expires_at: float


def _json(status: int, document: dict[str, Any]) -> OidcAnswer:
    headers = {"content-type": "application/json", "cache-control": "no-store", "pragma": "no-cache"}
    return OidcAnswer(status, headers, json.dumps(document).encode())


def _token_error(code: str, description: str, status: int = 400) -> OidcAnswer:
    return _json(status, {"error": code, "error_description": description})


def _html(status: int, title: str, body: str) -> OidcAnswer:
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    headers = {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-store",
        "content-security-policy": "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
    }
    return OidcAnswer(status, headers, page.encode())


def _redirect(location: str) -> OidcAnswer:
    return OidcAnswer(302, {"location": location, "cache-control": "no-store"})


def _with_query(uri: str, parameters: dict[str, str]) -> str:
    return uri + ("&" if "?" in uri else "?") + urlencode(parameters)


def _form(data: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body; a repeated parameter is refused (RFC 6749 3.1)."""
    pairs = parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True)
    names = [name for name, _ in pairs]
    if len(names) != len(set(names)):
        raise ValueError("a parameter is repeated")
    return dict(pairs)


class DevIssuer:
    def __init__(self, issuer: str, key_file: Path) -> None:
        self.issuer = issuer.rstrip("/")
        self.clients: dict[str, set[str]] = {}  # public clients: client_id -> registered redirect URIs
        self._grants: dict[str, _Grant] = {}  # authorization code -> what it grants, until exchanged
        self._lock = threading.Lock()
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
            pem = key_file.read_bytes()
            key = _LOADED_KEYS.get(pem)
            if key is None:  # loading checks the RSA key (~30 ms): once per process and key
                loaded = serialization.load_pem_private_key(pem, password=None)
                assert isinstance(loaded, rsa.RSAPrivateKey)
                key = _LOADED_KEYS.setdefault(pem, loaded)
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
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["openid"],
            "subject_types_supported": ["public"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "azp", "groups"],
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

    # ------------------------------------------------------------------ authorization code flow

    def register_client(self, client_id: str, redirect_uri: str) -> None:
        """A public client (no secret) and one redirect URI it may use, matched exactly."""
        with self._lock:
            self.clients.setdefault(client_id, set()).add(redirect_uri)

    def authorize(self, method: str, raw_query: str, body: bytes = b"") -> OidcAnswer:
        """``GET /authorize``: the sign-in form; ``POST /authorize`` (the form): a code, redirected back.

        Errors about the client or its redirect URI are shown here and never redirected (the URI is
        not trusted yet); the others go back to the client as ``error`` with its ``state``.
        """
        if method not in ("GET", "POST"):
            return _html(405, "Method not allowed", "<p>Use GET (the sign-in form) or POST (its answer).</p>")
        try:
            params = _form(body) if method == "POST" else _form(raw_query.encode())
        except ValueError as exc:
            return _html(400, "Bad authorization request", f"<p>{escape(str(exc))}</p>")
        client_id, redirect_uri = params.get("client_id", ""), params.get("redirect_uri", "")
        if client_id not in self.clients:
            return _html(400, "Unknown client", f"<p>No client {escape(client_id)!r} is registered.</p>")
        if redirect_uri not in self.clients[client_id]:
            return _html(
                400,
                "Unregistered redirect URI",
                f"<p>{escape(redirect_uri)!r} is not registered for this client.</p>",
            )
        back = {"state": params["state"]} if "state" in params else {}
        problem = self._authorize_problem(params)
        if problem is not None:
            error, description = problem
            return _redirect(
                _with_query(redirect_uri, {"error": error, "error_description": description, **back})
            )
        if method == "GET":
            return self._sign_in_form(params)
        subject = params.get("subject", "").strip()
        if not subject or any(ord(c) < 32 for c in subject):
            return self._sign_in_form(params, "Type the subject to sign in as.")
        groups = tuple(g for g in params.get("groups", "").replace(",", " ").split() if g)
        code = secrets.token_urlsafe(32)
        grant = _Grant(
            client_id,
            redirect_uri,
            params["code_challenge"],
            params.get("nonce"),
            subject,
            groups,
            time.time() + CODE_SECONDS,
        )
        with self._lock:
            now = time.time()
            for stale in [c for c, g in self._grants.items() if g.expires_at < now]:
                del self._grants[stale]
            self._grants[code] = grant
        return _redirect(_with_query(redirect_uri, {"code": code, **back}))

    @staticmethod
    def _authorize_problem(params: dict[str, str]) -> tuple[str, str] | None:
        if params.get("response_type") != "code":
            return "unsupported_response_type", "only the authorization code flow (response_type=code)"
        if "openid" not in params.get("scope", "").split():
            return "invalid_scope", "the scope must include openid"
        if params.get("code_challenge_method") != "S256" or not _CHALLENGE.fullmatch(
            params.get("code_challenge", "")
        ):
            return "invalid_request", "PKCE is required: a code_challenge with code_challenge_method=S256"
        return None

    def _sign_in_form(self, params: dict[str, str], note: str = "") -> OidcAnswer:
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{escape(params[name])}">'
            for name in AUTHORIZE_PARAMETERS
            if name in params
        )
        body = (
            f"<p>Development issuer, no passwords: sign in to <b>{escape(params['client_id'])}</b> "
            "as anyone.</p>"
            + (f'<p id="note">{escape(note)}</p>' if note else "")
            + f'<form method="post">{hidden}'
            '<p><label>Subject <input name="subject" id="subject" required></label></p>'
            '<p><label>Groups (space-separated) <input name="groups" id="groups"></label></p>'
            '<p><button type="submit" id="sign-in">Sign in</button></p></form>'
        )
        return _html(200, "Sign in (wardgate dev)", body)

    def token(self, method: str, body: bytes) -> OidcAnswer:
        """``POST /token``: an authorization code and its PKCE verifier for an ID token (RFC 6749 4.1.3)."""
        if method != "POST":
            return _token_error("invalid_request", "the token endpoint takes POST", 405)
        try:
            params = _form(body)
        except ValueError as exc:
            return _token_error("invalid_request", str(exc))
        if params.get("grant_type") != "authorization_code":
            return _token_error("unsupported_grant_type", "only grant_type=authorization_code")
        with self._lock:
            grant = self._grants.pop(params.get("code", ""), None)  # one use, whatever happens next
        if grant is None or grant.expires_at < time.time():
            return _token_error("invalid_grant", "the code is unknown, used or expired")
        if params.get("client_id") != grant.client_id:
            return _token_error("invalid_grant", "the code was issued to another client")
        if params.get("redirect_uri") != grant.redirect_uri:
            return _token_error("invalid_grant", "redirect_uri differs from the authorization request's")
        verifier = params.get("code_verifier", "")
        if not _VERIFIER.fullmatch(verifier):
            return _token_error("invalid_request", "code_verifier is missing or malformed (RFC 7636)")
        if not hmac.compare_digest(pkce_challenge(verifier), grant.code_challenge):
            return _token_error("invalid_grant", "PKCE verification failed: the verifier does not match")
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant.subject,
            "aud": grant.client_id,
            "azp": grant.client_id,
            "iat": now,
            "nbf": now,
            "exp": now + ID_TOKEN_SECONDS,
            "auth_time": now,
            "jti": uuid.uuid4().hex,
            "groups": list(grant.groups),
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        id_token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})
        return _json(
            200,
            {
                "access_token": self.mint(grant.subject, grant.groups, ttl=ID_TOKEN_SECONDS),
                "token_type": "Bearer",
                "expires_in": ID_TOKEN_SECONDS,
                "scope": "openid",
                "id_token": id_token,
            },
        )

    def issuer_config(self) -> dict[str, Any]:
        """The entry for WARDGATE_ISSUERS that trusts this issuer."""
        return {
            "issuer": self.issuer,
            "audience": DEV_AUDIENCE,
            "groups_claim": "groups",
            "owner_claim": "owner",
        }
