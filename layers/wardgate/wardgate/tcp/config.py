"""The TCP gateway's settings: its listeners, its server certificate and the limits of a session.

Read once from the environment (the Fargate task definition in template.yaml, ``wardgate dev``
locally), beside ``config.Settings``, which the TCP gateway shares with the Lambda functions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

PROTOCOLS = ("postgres", "mysql", "ssh", "kubernetes")  # tcp/server.py maps each to its session or server


@dataclass(frozen=True)
class Listener:
    protocol: str
    port: int
    host: str = "0.0.0.0"

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"listener protocol {self.protocol!r} is not one of {PROTOCOLS}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"listener port {self.port} is not a TCP port")


@dataclass(frozen=True)
class SessionLimits:
    """How long and how many: every figure here is documented in docs/tcp-gateway.md."""

    startup_timeout_s: float = 10.0  # TLS, startup and the password, or the socket is closed
    backend_connect_timeout_s: float = 5.0
    token_grace_s: float = 60.0  # a session ends at most this long after its token expires
    max_session_s: float = 8 * 3600.0
    max_sessions_per_identity: int = 32
    max_message_bytes: int = 16 * 1024 * 1024  # one client message (a Bind with large parameters)
    sweep_interval_s: float = 0.25  # how often live sessions are checked against the kill switch
    unverified_grace_s: float = 10.0  # a session the registry cannot vouch for this long is ended
    recorded_statement_bytes: int = 16 * 1024  # statement text and each parameter, as recorded
    recorded_rows: int = 5  # the first rows of each result, as the agent saw them
    recorded_row_bytes: int = 4 * 1024


LIMIT_VARIABLES: dict[str, tuple[str, type]] = {
    "startup_timeout_s": ("WARDGATE_TCP_STARTUP_TIMEOUT_S", float),
    "backend_connect_timeout_s": ("WARDGATE_TCP_BACKEND_TIMEOUT_S", float),
    "token_grace_s": ("WARDGATE_TCP_TOKEN_GRACE_S", float),
    "max_session_s": ("WARDGATE_TCP_MAX_SESSION_S", float),
    "max_sessions_per_identity": ("WARDGATE_TCP_MAX_SESSIONS_PER_IDENTITY", int),
    "max_message_bytes": ("WARDGATE_TCP_MAX_MESSAGE_BYTES", int),
    "sweep_interval_s": ("WARDGATE_TCP_SWEEP_INTERVAL_S", float),
}


@dataclass(frozen=True)
class TcpSettings:
    listeners: tuple[Listener, ...]
    tls_secret: str = ""  # Secrets Manager: {"certificate_pem": ..., "private_key_pem": ...} (AWS)
    tls_cert_file: str = ""  # or files (local mode's development certificate)
    tls_key_file: str = ""
    health_port: int | None = 8080  # GET /healthz for the load balancer; None: no health endpoint
    limits: SessionLimits = field(default_factory=SessionLimits)
    # The MySQL greeting's version until a session has logged in to a database (then that one's):
    # clients choose defaults by it (MySQL 8's collations, MariaDB's "5.5.5-10.11.9-MariaDB").
    mysql_server_version: str = ""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> TcpSettings:
        env = dict(os.environ if env is None else env)
        raw = json.loads(env.get("WARDGATE_TCP_LISTENERS") or '[{"protocol": "postgres", "port": 5432}]')
        listeners = tuple(Listener(**item) for item in raw)
        limits = SessionLimits(
            **{name: kind(env[var]) for name, (var, kind) in LIMIT_VARIABLES.items() if env.get(var)}
        )
        health = env.get("WARDGATE_TCP_HEALTH_PORT", "8080")
        return cls(
            listeners=listeners,
            tls_secret=env.get("WARDGATE_TCP_TLS_SECRET", ""),
            tls_cert_file=env.get("WARDGATE_TCP_TLS_CERT", ""),
            tls_key_file=env.get("WARDGATE_TCP_TLS_KEY", ""),
            health_port=int(health) if health else None,
            limits=limits,
            mysql_server_version=env.get("WARDGATE_TCP_MYSQL_SERVER_VERSION", ""),
        )
