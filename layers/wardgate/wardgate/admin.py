"""Administration of agents: register, disable, revoke, the scheduled check, and the admin API.

``AgentAdmin`` is what the CLI, the admin API, SCIM deprovisioning and the scheduled check
all go through, so every change (and every refused attempt) lands in the audit trail with
who did it and why. ``AdminApi`` serves ``/admin/...`` to callers whose OIDC token carries the
admin group (``ADMIN_GROUP``, template parameter ``AdminGroup``):

    GET  /admin/agents[?owner=...]     the registry
    POST /admin/agents                 register: {issuer, subject, owner, purpose, connections,
                                       owner_groups?, expires_at? | expires_in_days?}
    POST /admin/agents/disable         {subject, issuer?, reason}
    POST /admin/revocations            {owner, reason} or {subject, issuer?, reason}
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from wardgate.agents import Agent, AgentRegistry, Revocation, normalise_owner
from wardgate.apigw import HttpResponse, error_response
from wardgate.audit import AuditLog
from wardgate.errors import BadRequest, Forbidden, GatewayError, NotFound
from wardgate.identity import Identity, TokenValidator
from wardgate.observability import logger

MAX_BODY = 64 * 1024
MAX_EXPIRES_AT = 253402300799  # 9999-12-31T23:59:59Z


@dataclass
class AgentAdmin:
    registry: AgentRegistry
    audit: AuditLog

    def _audited(
        self,
        action: str,
        actor: dict[str, Any],
        target: dict[str, Any],
        reason: str,
        source: str,
        request_id: str,
        work: Any,
        undo: Any = None,
    ) -> Any:
        """``work()``, then its audit event; a refusal is audited too. A change whose audit event
        cannot be written is taken back by ``undo(outcome)`` when given (a registration: its retry
        would be refused as a duplicate), else it stands and the 503 asks for a retry, which is
        audited (revocations and disabling are idempotent; taking them back would be unsafe)."""
        try:
            outcome = work()
        except GatewayError as error:
            self.audit.record(
                action,
                actor,
                target,
                reason,
                status=error.status,
                error={"code": error.code, "message": error.message},
                request_id=request_id,
                source=source,
            )
            raise
        result = outcome.to_dict() if hasattr(outcome, "to_dict") else {"value": outcome}
        try:
            self.audit.record(action, actor, target, reason, result, request_id=request_id, source=source)
        except GatewayError:
            if undo is not None:
                undo(outcome)
            raise
        return outcome

    def register(
        self, agent: Agent, actor: dict[str, Any], source: str = "cli", request_id: str = ""
    ) -> Agent:
        target = {"issuer": agent.issuer, "subject": agent.subject, "owner": agent.owner}
        by = str(actor.get("subject") or "-")
        stored: Agent = self._audited(
            "register_agent",
            actor,
            target,
            agent.purpose,
            source,
            request_id,
            lambda: self.registry.register(agent, by),
            undo=self.registry.unregister,
        )
        return stored

    def disable(
        self,
        subject: str,
        issuer: str | None,
        reason: str,
        actor: dict[str, Any],
        source: str = "cli",
        request_id: str = "",
    ) -> Revocation:
        by = str(actor.get("subject") or "-")
        result: Revocation = self._audited(
            "disable_agent",
            actor,
            {"subject": subject, "issuer": issuer},
            reason,
            source,
            request_id,
            lambda: self.registry.disable(subject, issuer, by, reason),
        )
        return result

    def revoke(
        self,
        actor: dict[str, Any],
        reason: str,
        owner: str | None = None,
        subject: str | None = None,
        issuer: str | None = None,
        source: str = "cli",
        request_id: str = "",
    ) -> Revocation:
        if bool(owner) == bool(subject):
            raise BadRequest("revoke takes exactly one of an owner or a subject")
        by = str(actor.get("subject") or "-")
        target: dict[str, Any]
        if owner:
            action, target = "revoke_owner", {"owner": owner}
            work: Any = lambda: self.registry.revoke_owner(owner, by, reason)  # noqa: E731
        else:
            assert subject is not None
            action, target = "revoke_subject", {"subject": subject, "issuer": issuer}
            work = lambda: self.registry.revoke_subject(subject, issuer, by, reason)  # noqa: E731
        result: Revocation = self._audited(action, actor, target, reason, source, request_id, work)
        return result

    def scheduled_check(self, provisioned: set[str] | None) -> list[dict[str, Any]]:
        actor = {"subject": "scheduled-check", "kind": "schedule"}
        actions = self.registry.sweep(provisioned)
        for action in actions:
            self.audit.record(action["action"], actor, action["target"], action["reason"], source="schedule")
        return actions


def agent_from_request(raw: dict[str, Any], now: float | None = None) -> Agent:
    """An ``Agent`` from an API body or CLI arguments; ValueError/KeyError when invalid."""
    expires_at = raw.get("expires_at")
    if raw.get("expires_in_days") is not None:
        days = float(raw["expires_in_days"])
        if days <= 0:
            raise ValueError("expires_in_days must be positive")
        expires_at = (now or time.time()) + days * 86400
    connections = raw.get("connections")
    if not isinstance(connections, list) or not all(isinstance(c, str) for c in connections):
        raise ValueError('connections must be a list of connection names (or ["*"])')
    groups = raw.get("owner_groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ValueError("owner_groups must be a list of group names")
    for name in ("issuer", "subject", "owner", "purpose"):
        if not isinstance(raw.get(name), str):
            raise ValueError(f"{name} must be a string")
    if expires_at is not None:
        try:
            expires_at = int(expires_at)  # a float infinity (JSON's Infinity, 1e307 days) overflows
        except OverflowError:
            raise ValueError("the expiry must be a time before the year 10000") from None
        if expires_at > MAX_EXPIRES_AT:  # DynamoDB stores numbers of at most 38 digits
            raise ValueError("the expiry must be a time before the year 10000")
    return Agent(
        issuer=raw["issuer"],
        subject=raw["subject"],
        owner=raw["owner"],
        purpose=raw["purpose"],
        connections=tuple(connections),
        owner_groups=tuple(groups),
        expires_at=expires_at,
    )


def _json_response(status: int, body: Any) -> HttpResponse:
    return HttpResponse(
        status, {"content-type": "application/json", "cache-control": "no-store"}, json.dumps(body).encode()
    )


@dataclass
class AdminApi:
    validator: TokenValidator
    admin: AgentAdmin
    admin_group: str

    def handle(self, event: dict[str, Any]) -> HttpResponse:
        context = event.get("requestContext") or {}
        request_id = str(context.get("requestId", ""))
        method = str((context.get("http") or {}).get("method", "GET")).upper()
        path = "/" + str((event.get("pathParameters") or {}).get("proxy", "")).strip("/")
        actor: dict[str, Any] = {"subject": None, "source_ip": (context.get("http") or {}).get("sourceIp")}
        try:
            headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
            identity = self.admin.registry.check(self.validator.authenticate(headers.get("authorization")))
            actor = {**actor, "subject": identity.subject, "issuer": identity.issuer, "kind": "oidc"}
            if self.admin_group not in identity.groups:
                raise Forbidden(f"the admin API is for members of {self.admin_group!r}", code="not_an_admin")
            return self._route(method, path, event, identity, actor, request_id)
        except GatewayError as error:
            if error.status in (401, 403):
                try:  # refused attempts on the admin API are audited too
                    self.admin.audit.record(
                        f"{method} /admin{path}",
                        actor,
                        {},
                        status=error.status,
                        error={"code": error.code, "message": error.message},
                        request_id=request_id,
                        source="admin_api",
                    )
                except GatewayError:
                    logger.error("admin refusal not recorded", extra={"code": error.code})
            return error_response(error, request_id)
        except Exception:
            logger.exception("admin API failed")
            return error_response(GatewayError("internal error"), request_id)

    def _route(
        self,
        method: str,
        path: str,
        event: dict[str, Any],
        identity: Identity,
        actor: dict[str, Any],
        request_id: str,
    ) -> HttpResponse:
        query = dict(parse_qsl(str(event.get("rawQueryString") or "")))
        if (method, path) == ("GET", "/agents"):
            agents = self.admin.registry.agents(_owner(query.get("owner")))
            return _json_response(200, {"agents": [a.to_dict() for a in agents]})
        if method != "POST" or path not in ("/agents", "/agents/disable", "/revocations"):
            raise NotFound(f"no admin route {method} /admin{path}", code="unknown_route")
        body = _body(event)
        source = "admin_api"
        if path == "/agents":
            try:
                agent = agent_from_request(body)
            except (KeyError, TypeError, ValueError) as exc:
                raise BadRequest(f"invalid agent: {exc}", code="invalid_agent") from None
            stored = self.admin.register(agent, actor, source, request_id)
            return _json_response(201, {"agent": stored.to_dict()})
        subject, issuer, reason = body.get("subject"), body.get("issuer"), str(body.get("reason") or "")
        if path == "/agents/disable":
            if not isinstance(subject, str):
                raise BadRequest("subject is required", code="invalid_request")
            result = self.admin.disable(subject, issuer, reason, actor, source, request_id)
        else:
            owner = _owner(body.get("owner"))
            result = self.admin.revoke(
                actor,
                reason,
                owner=owner,
                subject=subject,
                issuer=issuer,
                source=source,
                request_id=request_id,
            )
        return _json_response(200, {"revocation": result.to_dict()})


def _owner(value: Any) -> str | None:
    """An owner named by a query or a body: None when absent, else a valid owner name (else 400)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest("owner must be a string", code="invalid_request")
    try:
        return normalise_owner(value)
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_request") from None


def _body(event: dict[str, Any]) -> dict[str, Any]:
    import base64

    raw = event.get("body") or ""
    try:
        data = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
        if len(data) > MAX_BODY:
            raise BadRequest("request body too large", code="invalid_request")
        body = json.loads(data or b"{}")
    except (ValueError, TypeError, RecursionError):  # RecursionError: nested deeper than json.loads goes
        raise BadRequest("request body must be a JSON object", code="invalid_request") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", code="invalid_request")
    return body


@functools.cache
def agent_admin() -> AgentAdmin:
    from wardgate import audit
    from wardgate.config import Settings
    from wardgate.runtime import agent_registry

    settings = Settings.from_env()
    return AgentAdmin(agent_registry(settings), audit.from_settings(settings))


@functools.cache
def admin_api() -> AdminApi:
    from wardgate.config import Settings

    settings = Settings.from_env()
    return AdminApi(TokenValidator(settings.issuers), agent_admin(), settings.admin_group)


def handle_admin_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_id = str((event.get("requestContext") or {}).get("requestId", ""))
    try:
        api = admin_api()
    except GatewayError as error:
        return error_response(error, request_id).to_apigw_v2()
    return api.handle(event).to_apigw_v2()


def handle_scheduled_check(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The EventBridge schedule: flag, disable and revoke what offboarding left behind."""
    from wardgate.scim import ScimUsers

    admin = agent_admin()
    provisioned = ScimUsers(admin.registry.table).active_owners()
    actions = admin.scheduled_check(provisioned)
    logger.info("scheduled agent check", extra={"actions": len(actions)})
    return {"actions": actions}
