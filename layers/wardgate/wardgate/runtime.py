"""The long-lived objects of a warm Lambda container, built on first use from the environment.

Building lazily (not at import) keeps cold-start imports small and lets a configuration
error surface as a 503 on the request instead of a crashed init phase.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

from wardgate.agents import AgentRegistry, AgentTable, registration_mode
from wardgate.apigw import HttpRequest, error_response
from wardgate.config import Settings
from wardgate.connections import ConnectionStore
from wardgate.credentials import CredentialStore
from wardgate.errors import GatewayError
from wardgate.gateway import HttpGateway
from wardgate.identity import TokenValidator
from wardgate.policy.store import PolicyStore
from wardgate.proxies.http import HttpForwarder
from wardgate.recording import DynamoRecordIndex, FirehoseStream, Recorder

if TYPE_CHECKING:
    from wardgate.sql_gateway import SqlGateway

DEADLINE_MARGIN_S = 1.0  # leave time to record the outcome and answer before Lambda's own timeout


def agent_registry(settings: Settings, policies: PolicyStore | None = None) -> AgentRegistry:
    """The registry; with ``policies``, registration is required when the policy in force says so."""
    if policies is None:
        return AgentRegistry(AgentTable(settings.agents_table))
    return AgentRegistry(
        AgentTable(settings.agents_table),
        registration=lambda: registration_mode(policies.current().document.get("settings") or {}),
    )


@functools.cache
def http_gateway() -> HttpGateway:
    settings = Settings.from_env()
    policies = PolicyStore(settings.policies_table, settings.connections_table)
    return HttpGateway(
        validator=TokenValidator(settings.issuers),
        connections=ConnectionStore(settings.connections_table),
        credentials=CredentialStore(),
        recorder=Recorder(
            FirehoseStream(settings.recordings_stream), DynamoRecordIndex(settings.recordings_table)
        ),
        forwarder=HttpForwarder(settings.limits.connect_timeout, settings.limits.max_response_body),
        policies=policies,
        limits=settings.limits,
        agents=agent_registry(settings, policies),
    )


@functools.cache
def sql_gateway() -> SqlGateway:
    import os

    from wardgate import aws
    from wardgate.sql_gateway import BackendPool, SqlGateway

    settings = Settings.from_env()
    policies = PolicyStore(settings.policies_table, settings.connections_table)
    key_secret = os.environ.get("TRANSACTION_KEY_SECRET", "")
    return SqlGateway(
        validator=TokenValidator(settings.issuers),
        connections=ConnectionStore(settings.connections_table),
        recorder=Recorder(
            FirehoseStream(settings.recordings_stream), DynamoRecordIndex(settings.recordings_table)
        ),
        policies=policies,
        limits=settings.limits,
        agents=agent_registry(settings, policies),
        backends=BackendPool(
            CredentialStore(),
            binding_key=lambda: (
                aws.client("secretsmanager").get_secret_value(SecretId=key_secret)["SecretString"].encode()
            ),
        ),
    )


def deadline_for(context: Any, budget: float) -> float:
    remaining_ms = context.get_remaining_time_in_millis() if context is not None else budget * 1000
    return time.monotonic() + min(budget, remaining_ms / 1000 - DEADLINE_MARGIN_S)


def handle_http_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_id = (event.get("requestContext") or {}).get("requestId", "")
    try:
        request = HttpRequest.from_apigw_v2(event)
        gateway = http_gateway()
        response = gateway.handle(request, deadline_for(context, gateway.limits.upstream_timeout))
    except GatewayError as error:  # before a request exists to record: a broken event or configuration
        response = error_response(error, request_id)
    return response.to_apigw_v2()


def handle_sql_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from wardgate.sql_gateway import data_api_error_response  # sqlglot and the Data API: SQL function only

    request_id = (event.get("requestContext") or {}).get("requestId", "")
    try:
        response = sql_gateway().handle(HttpRequest.from_apigw_v2(event))
    except GatewayError as error:  # before a request exists to record: a broken event or configuration
        response = data_api_error_response(error, request_id)
    return response.to_apigw_v2()
