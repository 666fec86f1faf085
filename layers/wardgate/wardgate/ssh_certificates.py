"""``POST /ssh/certificate``: an agent's OIDC token exchanged for a short-lived SSH user certificate.

The caller is authenticated as on every other route (the token, then the agent registry: a
revoked, expired or unregistered agent gets no certificate), then ``sshca`` signs the agent's own
public key. Every issuance, and every refusal of a caller, is an ``admin`` event of the audit
trail (``wardgate recordings ls --connection _admin``); when the audit trail cannot be written,
no certificate is issued.

Request: ``{"public_key": "ssh-ed25519 AAAA..."}``. Answer (200)::

    {"certificate": "ssh-ed25519-cert-v01@openssh.com AAAA...", "valid_after": ..., "valid_before": ...,
     "serial": "<decimal>", "key_id": "<the identity, compact JSON>", "principal": "<subject>",
     "host_key": "ssh-ed25519 AAAA...", "known_hosts": "[host]:port ssh-ed25519 AAAA...",
     "ssh_host": "host" | null, "ssh_port": port | null}

Settings (besides sshca's ``SSH_CA_KEY``): ``SSH_HOST_PUBLIC_KEY``, the public half of the SSH
gateway's host key (this function never reads the private one), and ``SSH_GATEWAY_ENDPOINT``,
``host[:port]`` where agents reach the SSH listener (optional).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from wardgate.agents import AgentRegistry
from wardgate.apigw import HttpResponse, error_response
from wardgate.audit import AuditLog
from wardgate.errors import BadRequest, GatewayError, PayloadTooLarge, ServiceUnavailable
from wardgate.identity import Identity, TokenValidator
from wardgate.observability import logger
from wardgate.sshca import SshCertificateAuthority, load_ca, parse_public_key

MAX_BODY = 32 * 1024
HOST_PUBLIC_KEY_SETTING = "SSH_HOST_PUBLIC_KEY"
ENDPOINT_SETTING = "SSH_GATEWAY_ENDPOINT"
DEFAULT_SSH_PORT = 22


@dataclass(frozen=True)
class GatewayEndpoint:
    host_key: str  # "<type> <base64>"
    host: str | None = None
    port: int | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> GatewayEndpoint:
        import asyncssh

        env = dict(os.environ if env is None else env)
        line = env.get(HOST_PUBLIC_KEY_SETTING, "").strip()
        if not line:
            raise ServiceUnavailable(
                f"{HOST_PUBLIC_KEY_SETTING} is not set: agents could not verify the SSH gateway",
                code="ssh_key_unavailable",
            )
        try:
            key = asyncssh.import_public_key(line)
        except (asyncssh.KeyImportError, ValueError):
            raise ServiceUnavailable(
                f"{HOST_PUBLIC_KEY_SETTING} is not an OpenSSH public key line", code="ssh_key_unavailable"
            ) from None
        algorithm, data = key.export_public_key().decode().split()[:2]
        endpoint = env.get(ENDPOINT_SETTING, "").strip()
        if not endpoint:
            return cls(f"{algorithm} {data}")
        parts = urlsplit("//" + endpoint)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if not parts.hostname or parts.username or parts.path or parts.query or port == -1:
            raise ServiceUnavailable(f"{ENDPOINT_SETTING} must be host[:port]", code="bad_configuration")
        return cls(f"{algorithm} {data}", parts.hostname, port or DEFAULT_SSH_PORT)

    def known_hosts(self) -> str:
        """The known_hosts line for the gateway; without a configured endpoint, the key alone
        (``wardgate ssh-config`` writes the line for the host it is given)."""
        if self.host is None:
            return self.host_key
        name = self.host if self.port == DEFAULT_SSH_PORT else f"[{self.host}]:{self.port}"
        return f"{name} {self.host_key}"


@dataclass
class SshCertificateApi:
    validator: TokenValidator
    registry: AgentRegistry
    authority: SshCertificateAuthority
    endpoint: GatewayEndpoint
    audit: AuditLog

    def handle(self, event: dict[str, Any]) -> HttpResponse:
        context = event.get("requestContext") or {}
        request_id = str(context.get("requestId", ""))
        source_ip = (context.get("http") or {}).get("sourceIp")
        actor: dict[str, Any] = {"subject": None, "source_ip": source_ip}
        try:
            headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
            identity = self.validator.authenticate(headers.get("authorization"))
            actor = {**actor, **identity.to_record()}
            identity = self.registry.check(identity)  # revoked, expired, unregistered: 403
            actor = {**actor, **identity.to_record()}
            public_key = parse_public_key(_public_key_field(event))
            return self._issue(identity, public_key, actor, request_id)
        except GatewayError as error:
            if error.status in (401, 403):
                self._audit_refusal(actor, error, request_id)
            return error_response(error, request_id)
        except Exception:
            logger.exception("ssh certificate request failed")
            return error_response(GatewayError("internal error"), request_id)

    def _issue(
        self, identity: Identity, public_key: Any, actor: dict[str, Any], request_id: str
    ) -> HttpResponse:
        signed = self.authority.sign_user_certificate(identity, public_key)
        fingerprint = public_key.get_fingerprint("sha256")
        # Audited before it is handed out: no certificate leaves without its event.
        self.audit.record(
            "ssh certificate",
            actor,
            {"public_key_fingerprint": fingerprint, "principal": identity.subject},
            result={
                "serial": str(signed.serial),
                "valid_after": signed.valid_after,
                "valid_before": signed.valid_before,
                "ca_fingerprint": self.authority.fingerprint(),
            },
            request_id=request_id,
            source="ssh_certificate",
        )
        body = {
            "certificate": signed.certificate,
            "valid_after": signed.valid_after,
            "valid_before": signed.valid_before,
            "serial": str(signed.serial),
            "key_id": signed.key_id,
            "principal": identity.subject,
            "host_key": self.endpoint.host_key,
            "known_hosts": self.endpoint.known_hosts(),
            "ssh_host": self.endpoint.host,
            "ssh_port": self.endpoint.port,
        }
        headers = {"content-type": "application/json", "cache-control": "no-store"}
        return HttpResponse(200, headers, json.dumps(body).encode())

    def _audit_refusal(self, actor: dict[str, Any], error: GatewayError, request_id: str) -> None:
        try:
            self.audit.record(
                "ssh certificate",
                actor,
                {},
                status=error.status,
                error={"code": error.code, "message": error.message},
                request_id=request_id,
                source="ssh_certificate",
            )
        except GatewayError:
            logger.error("ssh certificate refusal not recorded", extra={"code": error.code})


def _public_key_field(event: dict[str, Any]) -> str:
    import base64
    import binascii

    raw = event.get("body") or ""
    if not isinstance(raw, str):
        raise BadRequest('the request body must be JSON: {"public_key": "ssh-ed25519 AAAA..."}')
    if len(raw) > MAX_BODY * 2:
        raise PayloadTooLarge(f"the request body is larger than {MAX_BODY} bytes")
    try:
        data = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else raw.encode()
    except binascii.Error:
        raise BadRequest("the request body is not valid base64") from None
    if len(data) > MAX_BODY:
        raise PayloadTooLarge(f"the request body is larger than {MAX_BODY} bytes")
    try:
        document = json.loads(data)
    except ValueError:
        raise BadRequest('the request body must be JSON: {"public_key": "ssh-ed25519 AAAA..."}') from None
    if not isinstance(document, dict) or set(document) != {"public_key"}:
        raise BadRequest("the request body must be a JSON object with exactly one field, public_key")
    value = document["public_key"]
    if not isinstance(value, str):
        raise BadRequest("public_key must be a string: an OpenSSH public key line")
    return value


@functools.cache
def ssh_certificate_api() -> SshCertificateApi:
    from wardgate import audit
    from wardgate.config import Settings
    from wardgate.policy.store import PolicyStore
    from wardgate.runtime import agent_registry

    settings = Settings.from_env()
    policies = PolicyStore(settings.policies_table, settings.connections_table)
    return SshCertificateApi(
        validator=TokenValidator(settings.issuers),
        registry=agent_registry(settings, policies),
        authority=load_ca(),
        endpoint=GatewayEndpoint.from_env(),
        audit=audit.from_settings(settings),
    )


def handle_ssh_certificate_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_id = str((event.get("requestContext") or {}).get("requestId", ""))
    try:
        api = ssh_certificate_api()
    except GatewayError as error:  # not cached: the next request tries again
        return error_response(error, request_id).to_apigw_v2()
    return api.handle(event).to_apigw_v2()
