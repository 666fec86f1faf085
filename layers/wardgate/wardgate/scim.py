"""SCIM 2.0 ``/scim/v2/Users``: offboarding from the identity provider becomes an owner revocation.

The subset Okta and Microsoft Entra ID use to provision and deprovision users (RFC 7644):
``POST /Users``, ``GET /Users?filter=userName eq "..."`` (also ``externalId`` and ``id``; with
``startIndex``/``count``), ``GET /Users/{id}``, ``PUT``, ``PATCH`` (Okta's
``{"op":"replace","value":{"active":false}}`` and Entra's
``{"op":"Replace","path":"active","value":"False"}``) and ``DELETE``. A user's ``userName``
(lowercased) is the owner name agents are registered with.

Deactivating or deleting a user revokes that owner and every agent they own
(``AgentAdmin.revoke``, audited); a repeated deactivation changes nothing. Reactivating a user
lets them own agents again; agents revoked with them stay revoked. Attributes other than
``userName``, ``externalId``, ``displayName``, ``name``, ``emails`` and ``active`` are not kept
(PATCH operations on other paths are accepted and ignored, as IdPs send many).

The bearer token is a Secrets Manager secret (template resource ``ScimTokenSecret``), compared
in constant time, and never logged.
"""

from __future__ import annotations

import base64
import functools
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from wardgate import aws
from wardgate.admin import AgentAdmin
from wardgate.agents import AgentTable, normalise_owner
from wardgate.errors import GatewayError
from wardgate.observability import logger

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CONTENT_TYPE = "application/scim+json"
MAX_BODY = 256 * 1024
MAX_COUNT = 200
FILTER = re.compile(
    r'^\s*(?:urn:ietf:params:scim:schemas:core:2\.0:User:)?(userName|externalId|id)\s+eq\s+("(?:[^"\\]|\\.)*")\s*$',
    re.IGNORECASE,
)
KEPT = ("userName", "externalId", "displayName", "name", "emails")
ACTOR = {"subject": "scim", "kind": "scim"}


class ScimError(Exception):
    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ScimUser:
    id: str
    user_name: str
    active: bool = True
    attributes: dict[str, Any] = field(default_factory=dict)  # externalId, displayName, name, emails
    created: float = 0.0
    modified: float = 0.0

    @property
    def owner(self) -> str:
        return self.user_name.strip().lower()

    def resource(self, base: str) -> dict[str, Any]:
        return {
            "schemas": [USER_SCHEMA],
            "id": self.id,
            **{k: v for k, v in self.attributes.items() if v is not None},
            "userName": self.user_name,
            "active": self.active,
            "meta": {
                "resourceType": "User",
                "created": _iso(self.created),
                "lastModified": _iso(self.modified),
                "location": f"{base}/Users/{self.id}",
            },
        }

    def to_item(self) -> dict[str, Any]:
        return {
            "kind": "scim_user",
            "id": self.id,
            "userName": self.user_name,
            "active": self.active,
            "attributes": json.dumps(self.attributes),
            "created": str(self.created),
            "modified": str(self.modified),
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ScimUser:
        return cls(
            id=str(item["id"]),
            user_name=str(item["userName"]),
            active=bool(item.get("active", True)),
            attributes=json.loads(str(item.get("attributes") or "{}")),
            created=float(item.get("created") or 0),
            modified=float(item.get("modified") or 0),
        )


class ScimUsers:
    """SCIM users in the agents table: ``scim:<id>`` plus a ``scimname:<userName>`` uniqueness item."""

    def __init__(self, table: AgentTable) -> None:
        self.table = table

    def get(self, user_id: str) -> ScimUser | None:
        item = self.table.get("scim:" + user_id)
        return ScimUser.from_item(item) if item else None

    def by_user_name(self, user_name: str) -> ScimUser | None:
        pointer = self.table.get("scimname:" + user_name.strip().lower())
        return self.get(str(pointer["id"])) if pointer else None

    def all(self) -> list[ScimUser]:
        users = [ScimUser.from_item(item) for item in self.table.scan("scim:")]
        return sorted(users, key=lambda u: (u.created, u.id))

    def create(self, user: ScimUser) -> bool:
        return self.table.put_all_new(
            [
                ("scimname:" + user.owner, {"kind": "scim_name", "id": user.id}),
                ("scim:" + user.id, user.to_item()),
            ]
        )

    def save(self, user: ScimUser, previous_owner: str) -> bool:
        """Store ``user``; False when its (changed) userName belongs to another user."""
        if user.owner != previous_owner:
            if not self.table.put_new("scimname:" + user.owner, {"kind": "scim_name", "id": user.id}):
                return False
            self.table.delete("scimname:" + previous_owner)
        self.table.put("scim:" + user.id, user.to_item())
        return True

    def delete(self, user: ScimUser) -> None:
        self.table.delete("scim:" + user.id)
        self.table.delete("scimname:" + user.owner)

    def active_owners(self) -> set[str] | None:
        """Owners the IdP provisioned and keeps active; None when SCIM has never been used."""
        users = self.all()
        return {u.owner for u in users if u.active} if users else None


def _active(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ScimError(400, f"active must be a boolean, got {json.dumps(value)[:40]}", "invalidValue")


def _string(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ScimError(400, f"{name} must be a non-empty string", "invalidValue")
    return value


def _user_name(value: Any) -> str:
    """A userName that is also a valid owner name: it is what agents are registered with."""
    user_name = _string("userName", value)
    try:
        normalise_owner(user_name)
    except ValueError:
        raise ScimError(
            400, "userName must be a user name or e-mail address without spaces (at most 256)", "invalidValue"
        ) from None
    return user_name


@dataclass
class ScimService:
    users: ScimUsers
    admin: AgentAdmin
    expected_token: Callable[[], str]
    base: str = "/scim/v2"
    clock: Callable[[], float] = time.time

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        request_id: str = "",
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        """(status, SCIM body or None, extra headers)."""
        try:
            self._authenticate(headers.get("authorization"))
            parts = [p for p in path.strip("/").split("/") if p]
            if not parts or parts[0] != "Users" or len(parts) > 2:
                raise ScimError(404, f"no SCIM resource at {path!r}: only /Users is served")
            if len(parts) == 1:
                if method == "GET":
                    return 200, self._list(query), {}
                if method == "POST":
                    created = self._create(self._json(body), request_id)
                    location = f"{self.base}/Users/{created.id}"
                    return 201, created.resource(self.base), {"location": location}
                raise ScimError(405, f"{method} is not supported on /Users")
            user = self.users.get(parts[1])
            if user is None:
                raise ScimError(404, f"no user with id {parts[1]!r}")
            if method == "GET":
                return 200, user.resource(self.base), {}
            if method == "DELETE":
                self._delete(user, request_id)
                return 204, None, {}
            if method == "PUT":
                return 200, self._replace(user, self._json(body), request_id).resource(self.base), {}
            if method == "PATCH":
                return 200, self._patch(user, self._json(body), request_id).resource(self.base), {}
            raise ScimError(405, f"{method} is not supported on /Users/{{id}}")
        except ScimError as error:
            if error.status == 401:  # never the token itself: only that one was refused
                logger.warning("SCIM request refused: bad bearer token", extra={"request_id": request_id})
            return error.status, error.body(), {}
        except GatewayError as error:  # the registry, the secret or the audit trail failed
            status = error.status if error.status >= 500 else 400
            return status, ScimError(status, error.message).body(), {}

    # ------------------------------------------------------------------ requests
    def _authenticate(self, authorization: str | None) -> None:
        scheme, _, presented = (authorization or "").strip().partition(" ")
        expected = self.expected_token()
        if scheme.lower() != "bearer" or not presented.strip() or not expected:
            raise ScimError(401, "a valid bearer token is required")
        if not hmac.compare_digest(presented.strip().encode(), expected.encode()):
            raise ScimError(401, "a valid bearer token is required")

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        if len(body) > MAX_BODY:
            raise ScimError(413, "request body too large")
        try:
            document = json.loads(body or b"null")
        except ValueError:
            raise ScimError(400, "request body is not JSON", "invalidSyntax") from None
        except RecursionError:  # nested deeper than json.loads goes
            raise ScimError(400, "request body is nested too deeply", "invalidSyntax") from None
        if not isinstance(document, dict):
            raise ScimError(400, "request body must be a JSON object", "invalidSyntax")
        return document

    def _list(self, query: Mapping[str, str]) -> dict[str, Any]:
        try:
            start = int(query.get("startIndex") or 1)
            count = int(query.get("count") or MAX_COUNT)
        except ValueError:
            raise ScimError(400, "startIndex and count must be integers", "invalidValue") from None
        start, count = max(start, 1), min(max(count, 0), MAX_COUNT)
        filter_text = query.get("filter")
        if filter_text is None:
            found = self.users.all()
        else:
            match = FILTER.match(filter_text)
            if match is None:
                raise ScimError(
                    400,
                    'unsupported filter: only userName, externalId or id with "eq" and a quoted value',
                    "invalidFilter",
                )
            try:
                attribute, value = match.group(1).lower(), json.loads(match.group(2))
            except ValueError:  # quoted, but not a JSON string: "\q", a raw control character
                raise ScimError(
                    400, "the filter's quoted value is not a valid string", "invalidFilter"
                ) from None
            if attribute == "username":
                user = self.users.by_user_name(value)
                found = [user] if user else []
            elif attribute == "id":
                user = self.users.get(value) if value else None
                found = [user] if user else []
            else:
                found = [u for u in self.users.all() if u.attributes.get("externalId") == value]
        page = found[start - 1 : start - 1 + count]
        return {
            "schemas": [LIST_SCHEMA],
            "totalResults": len(found),
            "startIndex": start,
            "itemsPerPage": len(page),
            "Resources": [u.resource(self.base) for u in page],
        }

    def _create(self, document: dict[str, Any], request_id: str) -> ScimUser:
        user_name = _user_name(document.get("userName"))
        now = self.clock()
        user = ScimUser(
            id=uuid.uuid4().hex,
            user_name=user_name,
            active=True,
            attributes=self._attributes(document),
            created=now,
            modified=now,
        )
        active = _active(document.get("active", True))
        if not self.users.create(user):
            raise ScimError(409, f"a user named {user_name!r} exists already", "uniqueness")
        if not active:
            self._set_active(user, False, request_id, user.owner)
            self.users.save(user, user.owner)
        else:
            state = self.admin.registry.owner(user.owner)
            if state is not None and state.revoked:  # re-provisioned after a deletion: as a reactivation
                self._set_active(user, True, request_id, user.owner)
        self.admin.audit.record(
            "scim_create_user",
            ACTOR,
            {"id": user.id, "userName": user.user_name},
            request_id=request_id,
            source="scim",
        )
        return user

    def _replace(self, user: ScimUser, document: dict[str, Any], request_id: str) -> ScimUser:
        previous = user.owner
        user.user_name = _user_name(document.get("userName"))
        user.attributes = self._attributes(document)
        active = _active(document["active"]) if "active" in document else user.active
        return self._store(user, previous, active, request_id)

    def _patch(self, user: ScimUser, document: dict[str, Any], request_id: str) -> ScimUser:
        operations = document.get("Operations")
        if not isinstance(operations, list) or not operations:
            raise ScimError(400, "a PATCH needs a non-empty Operations list", "invalidSyntax")
        previous, active = user.owner, user.active
        for operation in operations:
            if not isinstance(operation, dict):
                raise ScimError(400, "each operation must be an object", "invalidSyntax")
            op = str(operation.get("op", "")).lower()
            if op not in ("add", "replace", "remove"):
                raise ScimError(400, f"unsupported op {str(operation.get('op'))[:20]!r}", "invalidSyntax")
            path, value = operation.get("path"), operation.get("value")
            if path is None:
                if op == "remove" or not isinstance(value, dict):
                    raise ScimError(400, "an operation without a path needs an object value", "invalidSyntax")
                items = list(value.items())
            elif isinstance(path, str):
                items = [(path, value)]
            else:
                raise ScimError(400, "path must be a string", "invalidPath")
            for name, item_value in items:
                active = self._apply(user, op, name, item_value, active)
        return self._store(user, previous, active, request_id)

    def _apply(self, user: ScimUser, op: str, path: str, value: Any, active: bool) -> bool:
        key = (
            path.split(":")[-1]
            if path.lower().startswith("urn:ietf:params:scim:schemas:core:2.0:user:")
            else path
        )
        head, _, sub = key.partition(".")
        lowered = head.lower()
        if lowered == "active":
            if op == "remove":
                raise ScimError(400, "active cannot be removed", "mutability")
            return _active(value)
        if lowered == "username":
            if op == "remove":
                raise ScimError(400, "userName cannot be removed", "mutability")
            user.user_name = _user_name(value)
            return active
        canonical = next((k for k in KEPT if k.lower() == lowered), None)
        if canonical is None or "[" in key:
            return active  # an attribute wardgate does not keep (see the module docstring)
        if sub and canonical == "name":
            current = user.attributes.get("name")  # any JSON value an IdP sent as the whole name
            name = dict(current) if isinstance(current, dict) else {}
            if op == "remove":
                name.pop(sub, None)
            else:
                name[sub] = value
            user.attributes["name"] = name
        elif op == "remove":
            user.attributes.pop(canonical, None)
        else:
            user.attributes[canonical] = value
        return active

    def _store(self, user: ScimUser, previous_owner: str, active: bool, request_id: str) -> ScimUser:
        user.modified = self.clock()
        if user.active and not active:
            # Revoke first, then store: if revoking fails the IdP retries and finds the user still active.
            self._set_active(user, False, request_id, previous_owner)
        elif active and not user.active:
            self._set_active(user, True, request_id, user.owner)
        if not self.users.save(user, previous_owner):
            raise ScimError(409, f"a user named {user.user_name!r} exists already", "uniqueness")
        return user

    def _set_active(self, user: ScimUser, active: bool, request_id: str, owner: str) -> None:
        if not active:
            self.admin.revoke(
                ACTOR,
                f"deprovisioned by the identity provider (SCIM user {user.id})",
                owner=owner,
                source="scim",
                request_id=request_id,
            )
        else:
            reinstated = self.admin.registry.reinstate_owner(
                owner, "scim", "reactivated by the identity provider"
            )
            self.admin.audit.record(
                "reinstate_owner",
                ACTOR,
                {"owner": owner, "id": user.id},
                "reactivated by the identity provider",
                {"reinstated": reinstated},
                request_id=request_id,
                source="scim",
            )
        user.active = active

    def _delete(self, user: ScimUser, request_id: str) -> None:
        if user.active:
            self.admin.revoke(
                ACTOR,
                f"deleted by the identity provider (SCIM user {user.id})",
                owner=user.owner,
                source="scim",
                request_id=request_id,
            )
        self.users.delete(user)
        self.admin.audit.record(
            "scim_delete_user",
            ACTOR,
            {"id": user.id, "userName": user.user_name},
            request_id=request_id,
            source="scim",
        )

    @staticmethod
    def _attributes(document: Mapping[str, Any]) -> dict[str, Any]:
        return {k: document[k] for k in KEPT if k != "userName" and k in document}


@dataclass
class SecretToken:
    """The SCIM bearer token from Secrets Manager, cached for ``ttl_seconds`` (rotation is picked up)."""

    secret_id: str
    ttl_seconds: float = 300.0
    _cached: tuple[float, str] | None = field(default=None, init=False)

    def __call__(self) -> str:
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self.ttl_seconds:
            return self._cached[1]
        if not self.secret_id:
            return ""  # no secret configured: nobody gets in
        try:
            value = str(
                aws.client("secretsmanager").get_secret_value(SecretId=self.secret_id)["SecretString"]
            )
        except Exception as exc:
            from wardgate.errors import ServiceUnavailable

            raise ServiceUnavailable(
                f"SCIM token unavailable ({type(exc).__name__})", code="credential_unavailable"
            ) from None
        self._cached = (now, value.strip())
        return self._cached[1]


@functools.cache
def scim_service() -> ScimService:
    from wardgate.admin import agent_admin
    from wardgate.config import Settings

    admin = agent_admin()
    return ScimService(
        ScimUsers(admin.registry.table), admin, SecretToken(Settings.from_env().scim_token_secret)
    )


def handle_scim_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    context_ = event.get("requestContext") or {}
    request_id = str(context_.get("requestId", ""))
    method = str((context_.get("http") or {}).get("method", "GET")).upper()
    path = "/" + str((event.get("pathParameters") or {}).get("proxy", ""))
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    raw = event.get("body") or ""
    try:
        body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
        service = scim_service()
        query = dict(parse_qsl(str(event.get("rawQueryString") or ""), keep_blank_values=True))
        status, document, extra = service.handle(method, path, query, headers, body, request_id)
    except GatewayError as error:
        status, document, extra = error.status, ScimError(error.status, error.message).body(), {}
    except Exception:
        logger.exception("SCIM request failed")
        status, document, extra = 500, ScimError(500, "internal error").body(), {}
    response: dict[str, Any] = {
        "statusCode": status,
        "headers": {"content-type": CONTENT_TYPE, "cache-control": "no-store", **extra},
        "body": json.dumps(document) if document is not None else "",
        "isBase64Encoded": False,
    }
    if status == 401:
        response["headers"]["www-authenticate"] = 'Bearer realm="wardgate-scim"'
    return response
