"""The long-lived objects of a warm Lambda container, built on first use from the environment.

Building lazily (not at import) keeps cold-start imports small and lets a configuration
error surface as a 503 on the request instead of a crashed init phase.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any, cast

from wardgate.agents import AgentRegistry, AgentTable, registration_mode
from wardgate.apigw import HttpRequest, error_response
from wardgate.config import Settings
from wardgate.connections import ConnectionStore
from wardgate.credentials import CredentialStore
from wardgate.errors import GatewayError, ServiceUnavailable
from wardgate.identity import TokenValidator
from wardgate.policy.store import PolicyStore
from wardgate.recording import DynamoRecordIndex, FirehoseStream, Recorder

if TYPE_CHECKING:
    from wardgate.approvals.service import ApprovalDesk
    from wardgate.gateway import HttpGateway
    from wardgate.sql_gateway import SqlGateway

DEADLINE_MARGIN_S = 1.0  # leave time to record the outcome and answer before Lambda's own timeout
PREPARE_WAIT_S = 2.0  # how long the init phase waits for its prefetches (they go on if slower)


def secret_string(secret_id: str, what: str) -> str:
    """A key of wardgate's own from Secrets Manager; unreadable is a 503, like a connection's credential."""
    from wardgate import aws

    try:
        return str(aws.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"])
    except Exception as exc:
        raise ServiceUnavailable(
            f"{what} unavailable ({type(exc).__name__})", code="credential_unavailable"
        ) from None


def agent_registry(settings: Settings, policies: PolicyStore | None = None) -> AgentRegistry:
    """The registry; with ``policies``, registration is required when the policy in force says so."""
    if policies is None:  # the registry that revokes (admin API, SCIM, CLI): tell the approval flow
        registry = AgentRegistry(AgentTable(settings.agents_table))
        if settings.approvals_table:
            from wardgate.approvals.revocation import revocation_listener

            registry.listeners.append(revocation_listener(approval_desk))
        return registry
    return AgentRegistry(
        AgentTable(settings.agents_table),
        registration=lambda: registration_mode(policies.current().document.get("settings") or {}),
    )


@functools.cache
def http_gateway() -> HttpGateway:
    # The HTTP and Kubernetes proxying modules: the HTTP function's, not the SQL function's or those
    # that import this module for agent_registry or secret_string.
    from wardgate.gateway import HttpGateway
    from wardgate.proxies.http import HttpForwarder

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
        approvals=approvals_of(settings),
    )


class _DeskOnFirstUse:
    """Stands for ``approval_desk()`` in the proxy functions' gateways and builds it on first use.

    The desk is used only for a ``require_approval`` decision (a window grant looked up, the
    operation held) and a held call's approval: a request that policy allows or denies never
    touches it, and the flow's modules (service, store, signing, mail, pages, workflow: ~7 ms
    of a cold start's imports) are imported when one first does. Building it reads nothing from
    AWS; should it fail, that request fails (a recorded refusal, as any error there) and the next
    one builds it again. Present, so a gateway with it never refuses for want of approvals."""

    def __getattr__(self, name: str) -> Any:
        return getattr(approval_desk(), name)


def approvals_of(settings: Settings) -> ApprovalDesk | None:
    """The gateways' approval desk: built on first use when approvals are configured, else None."""
    return cast("ApprovalDesk", _DeskOnFirstUse()) if settings.approvals_table else None


@functools.cache
def approval_desk() -> ApprovalDesk:
    """The approval flow's service: its table, workflow, link signer (when the key is configured)."""
    from wardgate.approvals.service import ApprovalDesk
    from wardgate.approvals.signing import Signer
    from wardgate.approvals.store import ApprovalStore
    from wardgate.approvals.workflow import Workflow

    settings = Settings.from_env()
    key_secret = settings.approval_key_secret

    @functools.cache  # a failure is not cached: the next request reads the key again
    def key() -> bytes:
        return secret_string(key_secret, "the approval link key").encode()

    return ApprovalDesk(
        store=ApprovalStore(settings.approvals_table),
        recorder=Recorder(
            FirehoseStream(settings.recordings_stream), DynamoRecordIndex(settings.recordings_table)
        ),
        workflow=Workflow(settings.approval_state_machine) if settings.approval_state_machine else None,
        signer=Signer(key) if key_secret else None,
        public_url=settings.public_url,
    )


def mailer() -> Any:
    """SES on AWS; the local outbox folder when WARDGATE_OUTBOX is set (``wardgate dev``)."""
    import os
    from pathlib import Path

    from wardgate.approvals.mail import OutboxMailer, SesMailer

    outbox = os.environ.get("WARDGATE_OUTBOX")
    if outbox:
        return OutboxMailer(Path(outbox))
    return SesMailer(Settings.from_env().approval_sender)


def handle_notifier_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from wardgate.approvals.notifier import handle_sqs_event

    return handle_sqs_event(approval_desk(), mailer(), event)


def handle_approver_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from wardgate.approvals.api import handle_approver

    return handle_approver(event, approval_desk).to_apigw_v2()


def handle_poll_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from wardgate.approvals.api import handle_poll

    request_id = (event.get("requestContext") or {}).get("requestId", "")
    try:
        gateway = http_gateway()
        response = handle_poll(
            event,
            gateway.validator,
            gateway.agents,
            approval_desk(),
            gateway.execute_held,
            deadline_for(context, 28.0),
        )
    except GatewayError as error:
        response = error_response(error, request_id)
    return response.to_apigw_v2()


@functools.cache
def sql_gateway() -> SqlGateway:
    import os

    from wardgate.sql_gateway import BackendPool, SqlGateway

    settings = Settings.from_env()
    policies = PolicyStore(settings.policies_table, settings.connections_table)
    key_secret = os.environ.get("TRANSACTION_KEY_SECRET", "")

    @functools.cache  # a failure is not cached: the next backend reads the key again
    def binding_key() -> bytes:
        return secret_string(key_secret, "the transaction id key").encode()

    return SqlGateway(
        validator=TokenValidator(settings.issuers),
        connections=ConnectionStore(settings.connections_table),
        recorder=Recorder(
            FirehoseStream(settings.recordings_stream), DynamoRecordIndex(settings.recordings_table)
        ),
        policies=policies,
        limits=settings.limits,
        agents=agent_registry(settings, policies),
        approvals=approvals_of(settings),
        backends=BackendPool(CredentialStore(), binding_key=binding_key),
    )


def prepare(function: str) -> None:
    """Lambda's init phase (the handler module's import): do what the first event would do first.

    Init runs with more CPU than a 512 MB invocation and before the caller waits, so the first
    event's imports and clients are made here: boto3's clients, the upstream pool and its CA
    bundle (``http``), sqlglot and its PostgreSQL dialect (``sql``). Meanwhile threads fetch
    what every request needs and no request chooses, the trusted issuers' keys, the policy in
    force and (``sql``) the key that binds rds-data transaction ids, so their network waits
    overlap the imports; init waits for them up to ``PREPARE_WAIT_S``. Nothing an agent sends is
    involved, nothing is decided, and a failure is left for the first request, which redoes the
    work and fails closed as before: this never raises. Only on Lambda
    (``AWS_LAMBDA_FUNCTION_NAME``): local mode and tests build everything on first use.

    The handler modules pause the garbage collector before their imports, and this ends the
    pause (see ``end_gc_pause``), on Lambda or not.
    """
    import gc
    import os

    paused = not gc.isenabled()
    try:
        if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
            _prepare(function)
    finally:
        if paused:
            end_gc_pause(freeze=bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")))


def end_gc_pause(freeze: bool) -> None:
    """Collect again after the init phase, which ran without collections (``gc.disable()`` at the
    top of the handler module).

    What a cold start builds is what the container keeps: modules, boto3's clients and their
    service models, 80,000-110,000 objects that every full collection walks (one or two of them
    were a tenth of a cold start), while its cyclic garbage is a few hundred objects. ``freeze``
    (on Lambda) moves everything built so far into the permanent generation, so that no later
    collection walks it either, warm requests included. Reference counting still frees those
    objects; only a cycle among them that becomes garbage later would stay until the container
    ends. What requests create is collected as before.
    """
    import gc

    if freeze:
        gc.freeze()
    gc.enable()


def _prepare(function: str) -> None:
    import contextlib
    import threading

    try:
        gateway: HttpGateway | SqlGateway = sql_gateway() if function == "sql" else http_gateway()
    except Exception:  # a configuration error: the first request answers 503 with the reason
        return

    def quietly(work: Any, *args: Any) -> None:
        with contextlib.suppress(Exception):  # the first request redoes it and fails closed
            work(*args)

    started = time.monotonic()
    keys = threading.Thread(target=gateway.validator.prefetch, name="wardgate-prepare-keys", daemon=True)
    keys.start()
    from wardgate import aws

    quietly(aws.client, "dynamodb")  # before the policy thread, so that only one thread makes it
    policy = threading.Thread(
        target=quietly, args=(gateway.policies.current,), name="wardgate-prepare-policy", daemon=True
    )
    policy.start()
    fetches = [keys, policy]
    for service in ("firehose", "secretsmanager", *(("rds-data",) if function == "sql" else ())):
        quietly(aws.client, service)
    if function != "sql":
        quietly(http_gateway().forwarder.pool_for, None)
    else:
        import importlib
        import os

        from wardgate.operations.sql import parse_sql

        if os.environ.get("TRANSACTION_KEY_SECRET"):  # secretsmanager's client is made: one thread
            binding_key = threading.Thread(
                target=quietly,
                args=(sql_gateway().backends.binding_key,),
                name="wardgate-prepare-binding-key",
                daemon=True,
            )
            binding_key.start()
            fetches.append(binding_key)
        quietly(parse_sql, "SELECT 1", "postgres")
        quietly(importlib.import_module, "wardgate.dataapi.rdsdata")  # the one backend Lambda uses
    for thread in fetches:
        thread.join(max(0.0, started + PREPARE_WAIT_S - time.monotonic()))


def deadline_for(context: Any, budget: float) -> float:
    remaining_ms = context.get_remaining_time_in_millis() if context is not None else budget * 1000
    return time.monotonic() + min(budget, remaining_ms / 1000 - DEADLINE_MARGIN_S)


def handle_http_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if str(event.get("routeKey", "")).startswith(("GET /requests/", "DELETE /requests/")):
        return handle_poll_event(event, context)  # the approval poll runs the held operation here
    request_id = (event.get("requestContext") or {}).get("requestId", "")
    try:
        request = HttpRequest.from_apigw_v2(event)
        gateway = http_gateway()
        response = gateway.handle(request, deadline_for(context, gateway.limits.upstream_timeout))
    except GatewayError as error:  # before a request exists to record: a broken event or configuration
        if str(event.get("routeKey", "")).startswith("ANY /k8s/"):  # kubectl reads only a Status
            from wardgate.proxies.kubernetes import status_response

            response = status_response(error, request_id)
        else:
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
