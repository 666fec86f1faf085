"""Humans sign in to the replay page: OIDC authorization code flow with PKCE, as a public client.

``start`` makes a fresh ``state`` (ties the answer to this browser's sign-in), ``nonce`` (ties the
ID token to it) and PKCE ``code_verifier`` (only its S256 challenge goes to the provider, so a code
that leaks through the browser or a log is worthless without it), and the provider's authorization
URL. The page keeps the three in a sealed, short-lived cookie. ``finish`` checks the provider's
answer against them: the state first (constant time), then it exchanges the code at the token
endpoint with the verifier and no client secret, validates the ID token exactly like an agent's
access token (``wardgate.identity``: trusted issuer, asymmetric algorithm, signature from the
issuer's JWKS, ``aud`` = this client, expiry), and then its ``nonce`` (and ``azp`` when it names
several audiences). Every failure is a ``SignInError`` with a stable code; nothing is retried.

The provider's endpoints come from its discovery document, which must name the same issuer; they
must be https (http only on loopback, as for ``wardgate dev``). Calls to the provider do not follow
redirects or read proxy settings from the environment.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt

from wardgate.errors import GatewayError
from wardgate.identity import (
    FetchJson,
    Identity,
    IssuerConfig,
    TokenValidator,
    fetch_json_with_httpx,
    is_loopback_url,
)

PostForm = Callable[[str, dict[str, str]], tuple[int, Mapping[str, Any]]]
MAX_PROVIDER_TEXT = 200  # characters of an error description the provider sends back


class SignInError(Exception):
    """A sign-in that must not go on; ``code`` is stable, ``message`` is for the human, ``status`` HTTP."""

    def __init__(self, code: str, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _trusted(url: str) -> bool:
    scheme = urlsplit(url).scheme
    return scheme == "https" or (scheme == "http" and is_loopback_url(url))


def _shown(value: Any) -> str:
    """Text a provider sent, cut short and without control characters (it goes into a page)."""
    text = str(value)[:MAX_PROVIDER_TEXT]
    return re.sub(r"[\x00-\x1f\x7f]", "?", text)


def pkce_challenge(verifier: str) -> str:
    """The S256 ``code_challenge`` of a ``code_verifier`` (RFC 7636 section 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


@functools.cache
def _provider_client() -> Any:
    import httpx

    from wardgate.tls import tls_context

    return httpx.Client(
        verify=tls_context(), timeout=httpx.Timeout(5.0), follow_redirects=False, trust_env=False
    )


def post_form_with_httpx(url: str, form: dict[str, str]) -> tuple[int, Mapping[str, Any]]:
    """POST ``form`` to the token endpoint: (status, JSON object; empty when the body is not one)."""
    response = _provider_client().post(url, data=form, headers={"accept": "application/json"})
    try:
        document = response.json()
    except ValueError:
        document = {}
    return response.status_code, document if isinstance(document, dict) else {}


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str


@dataclass(frozen=True)
class LoginState:
    """What one sign-in keeps between the redirect out and the answer back (sealed in a cookie)."""

    state: str
    nonce: str
    verifier: str
    next: str  # where to go once signed in: a path of the page
    issued_at: int

    def to_claims(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> LoginState:
        try:
            return cls(
                str(claims["state"]),
                str(claims["nonce"]),
                str(claims["verifier"]),
                str(claims["next"]),
                int(claims["issued_at"]),
            )
        except (KeyError, TypeError, ValueError):
            raise SignInError("bad_state", "this sign-in's cookie is not one the page made", 400) from None


class OidcClient:
    """The page as a public OIDC client of one trusted issuer."""

    def __init__(
        self,
        issuer: IssuerConfig,
        client_id: str,
        fetch_json: FetchJson = fetch_json_with_httpx,
        post_form: PostForm = post_form_with_httpx,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.fetch_json = fetch_json
        self.post_form = post_form
        # ID tokens are meant for this client: the same issuer, with this client as the audience.
        self.validator = TokenValidator(
            [dataclasses.replace(issuer, audience=client_id, owner_claim=None)], fetch_json
        )
        self._endpoints: Endpoints | None = None
        self._lock = threading.Lock()

    def endpoints(self) -> Endpoints:
        """From the discovery document, once per container (a failure is tried again next time)."""
        with self._lock:
            if self._endpoints is None:
                self._endpoints = self._discover()
            return self._endpoints

    def _discover(self) -> Endpoints:
        url = self.issuer.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            document = self.fetch_json(url)
        except Exception as exc:
            raise SignInError(
                "identity_provider_unavailable",
                f"the identity provider's discovery document could not be read ({type(exc).__name__})",
                503,
            ) from None
        if document.get("issuer") != self.issuer.issuer:
            raise SignInError("bad_discovery", "the discovery document names another issuer", 503)
        authorization, token = document.get("authorization_endpoint"), document.get("token_endpoint")
        for name, value in (("authorization_endpoint", authorization), ("token_endpoint", token)):
            if not isinstance(value, str) or not _trusted(value):
                raise SignInError(
                    "bad_discovery", f"the identity provider's {name} is missing or not https", 503
                )
        methods = document.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            raise SignInError("bad_discovery", "the identity provider does not support PKCE with S256", 503)
        assert isinstance(authorization, str) and isinstance(token, str)
        return Endpoints(authorization, token)

    def start(self, next_path: str, now: int, redirect_uri: str) -> tuple[str, LoginState]:
        """The provider's authorization URL to send the browser to, and what to keep until it is back."""
        login = LoginState(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(48),  # 64 characters of the RFC 7636 alphabet
            next=next_path,
            issued_at=now,
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": "openid",
                "state": login.state,
                "nonce": login.nonce,
                "code_challenge": pkce_challenge(login.verifier),
                "code_challenge_method": "S256",
            }
        )
        authorization = self.endpoints().authorization
        return authorization + ("&" if "?" in authorization else "?") + query, login

    def finish(self, login: LoginState, answer: Mapping[str, str], redirect_uri: str) -> Identity:
        """The signed-in human, from the provider's answer (the callback's query) and ``login``;
        ``redirect_uri`` is the one the sign-in started with (the token endpoint compares them)."""
        if not hmac.compare_digest(answer.get("state", "").encode(), login.state.encode()):
            raise SignInError(
                "bad_state",
                "this answer does not belong to the sign-in this browser started (state mismatch)",
                400,
            )
        if "error" in answer:
            description = answer.get("error_description")
            raise SignInError(
                "sign_in_refused",
                f"the identity provider refused the sign-in: {_shown(answer['error'])}"
                + (f" ({_shown(description)})" if description else ""),
            )
        code = answer.get("code", "")
        if not code:
            raise SignInError("bad_answer", "the identity provider's answer has no code", 400)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "code_verifier": login.verifier,
        }
        try:
            status, document = self.post_form(self.endpoints().token, form)
        except SignInError:
            raise
        except Exception as exc:
            raise SignInError(
                "identity_provider_unavailable",
                f"the identity provider's token endpoint could not be reached ({type(exc).__name__})",
                503,
            ) from None
        if status != 200:
            error = document.get("error", f"HTTP {status}")
            description = document.get("error_description")
            raise SignInError(
                "token_refused",
                f"the identity provider refused the code: {_shown(error)}"
                + (f" ({_shown(description)})" if description else ""),
            )
        id_token = document.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise SignInError("no_id_token", "the identity provider sent no ID token")
        try:
            identity = self.validator.validate(id_token)
        except GatewayError as exc:
            raise SignInError(
                "bad_id_token", f"the ID token is not valid: {exc.message}", exc.status
            ) from None
        # Verified just above: these are the claims that were signed.
        claims = jwt.decode(id_token, options={"verify_signature": False})
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(), login.nonce.encode()):
            raise SignInError("nonce_mismatch", "the ID token was not issued for this sign-in (nonce)")
        audiences = claims.get("aud")
        if isinstance(audiences, list) and len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise SignInError(
                "bad_id_token", "the ID token names several audiences but not this client as azp"
            )
        return identity
