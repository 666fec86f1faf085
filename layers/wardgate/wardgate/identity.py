"""Who is calling: OIDC access-token validation against several trusted issuers.

Tokens are validated in-function (not by an API Gateway authorizer): see docs/architecture.md.
Only asymmetric algorithms are accepted; ``none`` and every HMAC variant are refused outright,
because with a public JWKS an HMAC "secret" is public too. Signing keys come from the issuer's
discovery document, are cached, and an unknown ``kid`` triggers at most one refresh per
``min_refresh_interval`` so that garbage tokens cannot make us hammer the identity provider.
The raw token never leaves this module: callers get an ``Identity``.

A warm container sees the same token on many requests (an agent keeps it until it expires), so
``VerifiedTokens`` remembers, for a short while, the identity a token was verified to carry:
keyed by the token's SHA-256 (never the token), only after every check above passed, never past
the token's ``exp``, dropped when the issuer's keys are reloaded, and bounded in size. Refusals
are never remembered, so a cache can only repeat an allow it fully checked itself; the agent
registry (the kill switch) is still asked on every request by the gateways.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import ipaddress
import json
import sys
import threading
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import cryptography

from wardgate.errors import ServiceUnavailable, Unauthorized


class _ImportedOnUse(types.ModuleType):
    """Stands in for module ``name`` in one importer: the first attribute read imports the module
    (importlib's locks make that thread-safe) and every read is forwarded to it."""

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attribute)


def _import_jwt() -> types.ModuleType:
    """PyJWT, without importing ``cryptography.x509`` until something uses it.

    PyJWT's ``algorithms`` imports ``cryptography.x509`` (~20 ms of CPU, a tenth of what a cold
    start adds to its floor) only to refuse X.509 certificates as HMAC secrets, and wardgate never
    lets HMAC through. PyJWT gets a stand-in for that one import (it is taken out of
    ``sys.modules`` again at once, so every other importer gets the real module); the real module
    is imported on the stand-in's first use, so PyJWT behaves exactly as before.
    """
    name = "cryptography.x509"
    if "jwt" in sys.modules or name in sys.modules:
        return importlib.import_module("jwt")
    stand_in = _ImportedOnUse(name)
    sys.modules[name] = stand_in
    try:
        return importlib.import_module("jwt")
    finally:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        if getattr(cryptography, "x509", None) is stand_in:
            delattr(cryptography, "x509")


if TYPE_CHECKING:
    import jwt
else:
    jwt = _import_jwt()

SAFE_ALGORITHMS: tuple[str, ...] = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384")
MAX_TOKEN_BYTES = 16 * 1024
VERIFIED_TOKENS_MAX = 1024  # distinct live tokens a container remembers (agents are few; bounded)
VERIFIED_TOKENS_MAX_AGE_SECONDS = 60.0  # a remembered verification is redone at least this often

FetchJson = Callable[[str], Mapping[str, Any]]


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _require_trusted_url(url: str, what: str) -> None:
    """Key material must come over TLS; plain http is tolerated only on loopback (wardgate dev)."""
    scheme = urlsplit(url).scheme
    if scheme == "https" or (scheme == "http" and is_loopback_url(url)):
        return
    raise ValueError(f"{what} must be an https URL (http only on loopback): {url!r}")


@dataclass(frozen=True)
class IssuerConfig:
    """One trusted identity provider and how to read its tokens."""

    issuer: str
    audience: str
    groups_claim: str = "groups"  # dotted path for nested claims, e.g. "realm_access.roles"
    owner_claim: str | None = None  # the claim naming the human responsible for an agent, if the IdP sets one
    algorithms: tuple[str, ...] = SAFE_ALGORITHMS
    jwks_uri: str | None = None  # normally read from the discovery document
    max_lifetime_seconds: int = 24 * 3600  # a token valid for longer than this is not short-lived

    def __post_init__(self) -> None:
        if not self.issuer or not self.audience:
            raise ValueError("an issuer needs both 'issuer' and 'audience'")
        _require_trusted_url(self.issuer, "issuer")
        if self.jwks_uri:
            _require_trusted_url(self.jwks_uri, "jwks_uri")
        unsafe = [a for a in self.algorithms if a not in SAFE_ALGORITHMS]
        if unsafe or not self.algorithms:
            raise ValueError(f"algorithms must be a non-empty subset of {SAFE_ALGORITHMS}, got {unsafe}")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> IssuerConfig:
        known = {
            "issuer",
            "audience",
            "groups_claim",
            "owner_claim",
            "algorithms",
            "jwks_uri",
            "max_lifetime_seconds",
        }
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown issuer fields: {sorted(unknown)}")
        values = dict(raw)
        if "algorithms" in values:
            values["algorithms"] = tuple(values["algorithms"])
        return cls(**values)


@dataclass(frozen=True)
class Identity:
    """The caller, as established from a validated token. Never holds the token itself."""

    subject: str
    issuer: str
    groups: tuple[str, ...] = ()
    client_id: str | None = None
    token_id: str | None = None
    expires_at: int | None = None
    owner: str | None = None  # the human responsible for this (agent) identity
    owner_groups: tuple[str, ...] = ()  # the owner's groups, from the agent registry
    registered: bool = False  # True once the agent registry vouched for it (agents.AgentRegistry.check)

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "subject": self.subject,
            "issuer": self.issuer,
            "groups": list(self.groups),
            "client_id": self.client_id,
            "token_id": self.token_id,
            "owner": self.owner,
        }
        if self.registered:  # the owner then comes from the registry, not from a token claim
            record["registered"] = True
            record["owner_groups"] = list(self.owner_groups)
        return record


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _owner(claims: Mapping[str, Any], path: str | None) -> str | None:
    value = _claim(claims, path) if path else None
    return value if isinstance(value, str) and value else None


def _groups(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(g for g in value.replace(",", " ").split() if g)
    if isinstance(value, list | tuple):
        return tuple(g for g in value if isinstance(g, str))
    return ()


@functools.cache
def _idp_client() -> Any:
    import httpx  # lazy: only callers of fetch_json_with_httpx pay for it

    from wardgate.tls import tls_context

    return httpx.Client(
        verify=tls_context(), timeout=httpx.Timeout(3.0), follow_redirects=False, trust_env=False
    )


def fetch_json_with_httpx(url: str) -> Mapping[str, Any]:
    """``fetch_json_over_https`` through a kept-alive httpx client (the auditing web sign-in's)."""
    response = _idp_client().get(url)
    response.raise_for_status()
    document = response.json()
    if not isinstance(document, dict):
        raise ValueError(f"{url} did not return a JSON object")
    return document


MAX_IDP_DOCUMENT_BYTES = 1024 * 1024  # discovery documents and JWKS are a few KB
IDP_TIMEOUT_SECONDS = 3.0


def fetch_json_over_https(url: str) -> Mapping[str, Any]:
    """GET a JSON object from the identity provider: certificate verified against the CA bundle,
    no redirects, no proxies from the environment, a short timeout and a size limit.

    ``http.client`` rather than an HTTP library: botocore has imported it already, so the first
    token of a cold start does not pay for importing one (plain http only reaches loopback:
    ``IssuerConfig`` and discovery refuse anything else).
    """
    import http.client

    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        from wardgate.tls import tls_context

        connection = http.client.HTTPSConnection(
            host, port, timeout=IDP_TIMEOUT_SECONDS, context=tls_context()
        )
    elif parts.scheme == "http" and is_loopback_url(url):
        connection = http.client.HTTPConnection(host, port, timeout=IDP_TIMEOUT_SECONDS)
    else:
        raise ValueError(f"not an https URL: {url!r}")
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", target, headers={"accept": "application/json", "user-agent": "wardgate"})
        response = connection.getresponse()
        if not 200 <= response.status < 300:  # a redirect is not followed: it is an error too
            raise ValueError(f"{url} answered {response.status}")
        body = response.read(MAX_IDP_DOCUMENT_BYTES + 1)
    finally:
        connection.close()
    if len(body) > MAX_IDP_DOCUMENT_BYTES:
        raise ValueError(f"{url} sent more than {MAX_IDP_DOCUMENT_BYTES} bytes")
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError(f"{url} did not return a JSON object")
    return document


@dataclass(eq=False, repr=False)  # a service: compared by identity, its caches never printed
class JwksCache:
    """Signing keys of one issuer, refreshed on expiry and (rate-limited) on an unknown ``kid``."""

    config: IssuerConfig
    fetch_json: FetchJson
    ttl_seconds: float = 3600.0
    min_refresh_interval: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _keys: dict[str, dict[str, Any]] = field(default_factory=dict, init=False)
    _verifiers: dict[tuple[str, str], Any] = field(default_factory=dict, init=False)
    _loaded_at: float | None = field(default=None, init=False)
    _attempted_at: float | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    generation: int = field(default=0, init=False)
    """Bumped each time the keys are (re)loaded: verifications made with older keys are forgotten."""

    def load(self) -> None:
        """Fetch the keys now unless they are loaded (a cold start's init phase); may raise."""
        with self._lock:
            if self._loaded_at is None:
                self._refresh(self.clock())

    def jwk_for(self, kid: str | None) -> dict[str, Any]:
        return self._jwk_and_generation(kid)[0]

    def _jwk_and_generation(self, kid: str | None) -> tuple[dict[str, Any], int]:
        with self._lock:
            now = self.clock()
            stale = self._loaded_at is not None and now - self._loaded_at > self.ttl_seconds
            if self._loaded_at is None or (stale and self._may_refresh(now)):
                self._refresh(now)
            found = self._lookup(kid)
            if found is None and self._may_refresh(now):
                self._refresh(now)
                found = self._lookup(kid)
            generation = self.generation
        if found is None:
            raise Unauthorized("token is signed with a key the issuer does not publish", code="unknown_key")
        return found, generation

    def verifier_for(self, kid: str | None, alg: str) -> Any:
        """The key object that verifies ``alg`` signatures for ``kid``, built once per key."""
        return self.verifier_and_generation(kid, alg)[0]

    def verifier_and_generation(self, kid: str | None, alg: str) -> tuple[Any, int]:
        """``verifier_for``, and the generation of the keys it came from."""
        jwk, generation = self._jwk_and_generation(kid)
        cache_key = (str(jwk.get("kid")), alg)
        verifier = self._verifiers.get(cache_key)
        if verifier is None:
            declared = jwk.get("alg")
            if declared is not None and declared != alg:
                raise Unauthorized("token algorithm does not match its key", code="unsupported_algorithm")
            try:
                verifier = jwt.PyJWK(jwk, algorithm=alg).key
            except jwt.PyJWTError:
                raise Unauthorized(
                    "token key does not fit its algorithm", code="unsupported_algorithm"
                ) from None
            self._verifiers[cache_key] = verifier
        return verifier, generation

    def _may_refresh(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self.min_refresh_interval

    def _lookup(self, kid: str | None) -> dict[str, Any] | None:
        if kid is not None:
            return self._keys.get(kid)
        # A token without kid is only unambiguous when the issuer publishes a single key.
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    def _refresh(self, now: float) -> None:
        self._attempted_at = now
        try:
            jwks_uri = self.config.jwks_uri or self._discover_jwks_uri()
            document = self.fetch_json(jwks_uri)
            keys = document.get("keys")
            if not isinstance(keys, list):
                raise ValueError("JWKS has no 'keys' list")
        except Exception as exc:
            if self._keys:  # keep serving the keys we have; the IdP may be briefly down
                return
            raise ServiceUnavailable(
                f"cannot load signing keys of issuer {self.config.issuer}: {type(exc).__name__}",
                code="identity_provider_unavailable",
            ) from None
        self._verifiers = {}
        self.generation += 1
        self._keys = {
            str(k.get("kid", f"#{i}")): k
            for i, k in enumerate(keys)
            if isinstance(k, dict) and k.get("use", "sig") == "sig"
        }
        self._loaded_at = now

    def _discover_jwks_uri(self) -> str:
        document = self.fetch_json(self.config.issuer.rstrip("/") + "/.well-known/openid-configuration")
        if document.get("issuer") != self.config.issuer:
            raise ValueError("discovery document names a different issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError("discovery document has no jwks_uri")
        _require_trusted_url(jwks_uri, "jwks_uri")
        return jwks_uri


class VerifiedTokens:
    """Identities of tokens that passed every check, for at most ``max_age_seconds`` each.

    An entry is keyed by the SHA-256 of the token, so only the very same token (signature
    included) can find it; it is used only while the token has not expired (``exp``, without the
    validator's leeway: after that the token is checked in full again), while it is younger than
    ``max_age_seconds``, and while its issuer's keys are the ones it was verified with. At most
    ``max_entries`` are kept (the oldest goes first). Nothing is stored for a refused token.
    """

    def __init__(
        self,
        max_entries: int = VERIFIED_TOKENS_MAX,
        max_age_seconds: float = VERIFIED_TOKENS_MAX_AGE_SECONDS,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_age_seconds = max_age_seconds
        self._wall = wall
        self._monotonic = monotonic
        # digest -> (identity, exp, monotonic deadline, issuer key generation)
        self._entries: dict[bytes, tuple[Identity, float, float, int]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def get(self, key: bytes, generation_of: Callable[[str], int]) -> Identity | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        identity, exp, deadline, generation = entry
        if (
            self._wall() < exp
            and self._monotonic() < deadline
            and generation_of(identity.issuer) == generation
        ):
            return identity
        with self._lock:
            if self._entries.get(key) is entry:
                del self._entries[key]
        return None

    def put(self, key: bytes, identity: Identity, exp: float, generation: int) -> None:
        if self.max_entries <= 0 or exp <= self._wall():  # accepted within the leeway only: no reuse
            return
        deadline = self._monotonic() + self.max_age_seconds
        with self._lock:
            self._entries.pop(key, None)
            while len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]  # insertion order: the oldest first
            self._entries[key] = (identity, exp, deadline, generation)


class TokenValidator:
    """Turns an ``Authorization`` header into an ``Identity`` or raises ``Unauthorized``."""

    def __init__(
        self,
        issuers: tuple[IssuerConfig, ...] | list[IssuerConfig],
        fetch_json: FetchJson = fetch_json_over_https,
        leeway_seconds: int = 60,
        min_refresh_interval: float = 60.0,
        verified: VerifiedTokens | None = None,
    ) -> None:
        self.leeway = leeway_seconds
        self._issuers = {cfg.issuer: cfg for cfg in issuers}
        self._jwks = {
            cfg.issuer: JwksCache(cfg, fetch_json, min_refresh_interval=min_refresh_interval)
            for cfg in issuers
        }
        self.verified = verified if verified is not None else VerifiedTokens()

    def prefetch(self) -> None:
        """Load every trusted issuer's keys now (see ``runtime.prepare``); a failure is left for the
        first token to meet (and answer 503), so this never raises."""
        for jwks in self._jwks.values():
            try:
                jwks.load()
            except Exception:  # noqa: S112 (the request path retries and fails closed)
                continue

    def _generation_of(self, issuer: str) -> int:
        jwks = self._jwks.get(issuer)
        return -1 if jwks is None else jwks.generation

    def authenticate(self, authorization: str | None) -> Identity:
        """The caller of an HTTP request, from its ``Authorization: Bearer`` header."""
        return self.validate(self._bearer_token(authorization))

    def validate(self, token: str) -> Identity:
        """The caller a bare token names (the TCP gateway receives it as the database password)."""
        if not token:
            raise Unauthorized("no token was sent", code="missing_token")
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthorized("token is too large", code="malformed_token")
        digest = VerifiedTokens.key(token)
        remembered = self.verified.get(digest, self._generation_of)
        if remembered is not None:
            return remembered
        try:
            unverified_token = jwt.api_jwt.decode_complete(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthorized("token is not a well-formed JWT", code="malformed_token") from None
        header, unverified = unverified_token["header"], unverified_token["payload"]
        alg = header.get("alg")
        if alg not in SAFE_ALGORITHMS:
            shown = str(alg)[:20]  # attacker-chosen: never echo it at length
            raise Unauthorized(f"token algorithm {shown!r} is not accepted", code="unsupported_algorithm")
        iss = unverified.get("iss")
        config = self._issuers.get(iss) if isinstance(iss, str) else None
        if config is None:
            raise Unauthorized("token issuer is not trusted", code="untrusted_issuer")
        if alg not in config.algorithms:
            raise Unauthorized(f"issuer does not sign with {alg}", code="unsupported_algorithm")
        kid = header.get("kid")
        key, generation = self._jwks[config.issuer].verifier_and_generation(
            kid if isinstance(kid, str) else None, alg
        )
        claims = self._verify(token, alg, key, config)
        identity = Identity(
            subject=claims["sub"],
            issuer=config.issuer,
            groups=_groups(_claim(claims, config.groups_claim)),
            client_id=claims.get("client_id") or claims.get("azp"),
            token_id=claims.get("jti"),
            expires_at=int(claims["exp"]),
            owner=_owner(claims, config.owner_claim),
        )
        self.verified.put(digest, identity, float(claims["exp"]), generation)
        return identity

    @staticmethod
    def _bearer_token(authorization: str | None) -> str:
        if not authorization:
            raise Unauthorized("missing bearer token in the Authorization header", code="missing_token")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Authorization header must be 'Bearer <token>'", code="malformed_token")
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthorized("token is too large", code="malformed_token")
        return token

    def _verify(self, token: str, alg: str, key: Any, config: IssuerConfig) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=config.audience,
                issuer=config.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token has expired", code="token_expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized(
                "token is not valid yet (nbf or iat in the future)", code="token_not_yet_valid"
            ) from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("token audience is not this gateway", code="wrong_audience") from None
        except jwt.InvalidKeyError:
            raise Unauthorized("token key does not fit its algorithm", code="unsupported_algorithm") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("token issuer is not trusted", code="untrusted_issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"token lacks the {exc.claim!r} claim", code="malformed_token") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("token signature is invalid", code="bad_signature") from None
        except jwt.PyJWTError:
            raise Unauthorized("token is invalid", code="malformed_token") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Unauthorized("token subject is empty", code="malformed_token")
        exp, iat = claims["exp"], claims["iat"]
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in (exp, iat)):
            raise Unauthorized("token exp and iat must be numbers", code="malformed_token")
        if exp - iat > config.max_lifetime_seconds:
            raise Unauthorized(
                "token lifetime exceeds what this issuer is trusted for", code="token_too_long_lived"
            )
        return claims
