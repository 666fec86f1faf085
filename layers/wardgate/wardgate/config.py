"""Settings read once from the environment (set by template.yaml on AWS, by ``wardgate dev`` locally)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from wardgate.errors import ServiceUnavailable
from wardgate.identity import IssuerConfig


@dataclass(frozen=True)
class Limits:
    """Caps that keep one request inside Lambda's and API Gateway's own limits."""

    max_request_body: int = 1024 * 1024  # API Gateway accepts 10 MB, Lambda 6 MB; agents rarely need more
    max_response_body: int = 4 * 1024 * 1024  # base64 of 4 MiB stays under Lambda's 6 MB response cap
    recorded_body_bytes: int = (
        64 * 1024
    )  # bodies beyond this are recorded truncated (docs/recording-format.md)
    connect_timeout: float = 3.0
    upstream_timeout: float = 25.0  # under API Gateway's 30 s integration timeout


# Environment overrides of the limits, for operators and tests.
LIMIT_VARIABLES: dict[str, tuple[str, type]] = {
    "max_request_body": ("WARDGATE_MAX_REQUEST_BYTES", int),
    "max_response_body": ("WARDGATE_MAX_RESPONSE_BYTES", int),
    "recorded_body_bytes": ("WARDGATE_RECORDED_BODY_BYTES", int),
    "connect_timeout": ("WARDGATE_CONNECT_TIMEOUT_S", float),
    "upstream_timeout": ("WARDGATE_UPSTREAM_TIMEOUT_S", float),
}


@dataclass(frozen=True)
class Settings:
    """The function's configuration from its environment (tables, stream, issuers, limits)."""

    issuers: tuple[IssuerConfig, ...]
    connections_table: str
    recordings_table: str
    policies_table: str
    recordings_stream: str
    recordings_bucket: str
    recordings_prefix: str = "recordings/"
    agents_table: str = "wardgate-agents"
    admin_group: str = "wardgate-admins"
    scim_token_secret: str = ""
    approvals_table: str = ""  # empty: no approval flow (require_approval is refused)
    approval_state_machine: str = ""
    approval_key_secret: str = ""
    approval_sender: str = ""
    public_url: str = ""  # base of poll URLs and approval links; empty: https://<Host of the request>
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        try:
            limits = Limits(
                **{
                    name: kind(env[variable])
                    for name, (variable, kind) in LIMIT_VARIABLES.items()
                    if env.get(variable)
                }
            )
        except ValueError as exc:
            raise ServiceUnavailable(f"invalid limit setting: {exc}") from None
        try:
            raw_issuers = json.loads(env.get("WARDGATE_ISSUERS", "[]"))
            issuers = tuple(IssuerConfig.from_dict(item) for item in raw_issuers)
        except (ValueError, TypeError, KeyError) as exc:
            # Fail closed: a gateway that cannot read its trusted issuers trusts nobody.
            raise ServiceUnavailable(f"WARDGATE_ISSUERS is not a valid issuer list: {exc}") from None
        return cls(
            issuers=issuers,
            connections_table=env.get("CONNECTIONS_TABLE", "wardgate-connections"),
            recordings_table=env.get("RECORDINGS_TABLE", "wardgate-recordings"),
            policies_table=env.get("POLICIES_TABLE", "wardgate-policies"),
            recordings_stream=env.get("RECORDINGS_STREAM", "wardgate-recordings"),
            recordings_bucket=env.get("RECORDINGS_BUCKET", "wardgate-recordings"),
            recordings_prefix=env.get("RECORDINGS_PREFIX", "recordings/"),
            agents_table=env.get("AGENTS_TABLE", "wardgate-agents"),
            admin_group=env.get("ADMIN_GROUP", "wardgate-admins"),
            scim_token_secret=env.get("SCIM_TOKEN_SECRET", ""),
            approvals_table=env.get("APPROVALS_TABLE", ""),
            approval_state_machine=env.get("APPROVAL_STATE_MACHINE", ""),
            approval_key_secret=env.get("APPROVAL_KEY_SECRET", ""),
            approval_sender=env.get("APPROVAL_SENDER", ""),
            public_url=env.get("WARDGATE_PUBLIC_URL", ""),
            limits=limits,
        )
