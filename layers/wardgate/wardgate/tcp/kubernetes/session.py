"""What every streamed request of the Kubernetes listener shares: admission and its record, the
session table (so the kill switch, the token's expiry and the maximum duration end it), the
session's end. One streamed request (a watch, a followed log, an exec...) is one session."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from wardgate.connections import Connection
from wardgate.errors import GatewayError
from wardgate.gate import RECORDED_REQUEST_MASKING, masked_url_part
from wardgate.identity import Identity
from wardgate.masking.engine import mask_text
from wardgate.operations.k8s import K8sOperation
from wardgate.policy.engine import PolicySet
from wardgate.tcp.recorder import SessionRecord
from wardgate.tcp.services import TcpServices

PROTOCOL = "kubernetes"  # the records' protocol
ROUTE = "k8s"  # the connection kind this listener serves


class StreamSession:
    """A ``LiveSession`` (tcp/sessions.py) for one streamed request."""

    identity: Identity
    connection: Connection

    def __init__(self, services: TcpServices, connection_name: str, peer: str) -> None:
        self.services = services
        self.record = SessionRecord(PROTOCOL, connection_name, peer)
        self.opened_at = time.monotonic()
        self.verified_at = self.opened_at
        self.admitted = False
        self.ended_reason: str | None = None
        self.ended = asyncio.Event()

    async def admit(self, authorization: str | None) -> None:
        """Token, agent registry, connection (a k8s one); raises the refusal."""
        gate = self.services.gate

        def admit() -> tuple[Identity, Connection]:
            identity = gate.validator.authenticate(authorization)
            return gate.admit_identity(identity, self.record.connection, ROUTE, self.record)

        self.identity, self.connection = await asyncio.to_thread(admit)

    async def refused(self, refused: GatewayError, **fields: Any) -> None:
        """The record of a request refused before it reached the cluster (best effort: the client is
        refused either way)."""
        self.record.outcome, self.record.reason = "refused", refused.code
        self.record.refused += 1
        with contextlib.suppress(GatewayError):
            await self.services.recorder.write(
                self.record,
                "session_refused",
                identity=self.record.identity,
                client=self.record.client,
                error={"code": refused.code, "message": refused.message},
                **fields,
            )
            await self.services.recorder.index_session(self.record)

    async def open(self, **fields: Any) -> None:
        """Live: counted, swept, and recorded (durably, before anything reaches the cluster)."""
        self.services.sessions.add(self)
        self.admitted = True
        self.verified_at = time.monotonic()
        try:
            await self.services.recorder.write(
                self.record,
                "session_start",
                identity=self.record.identity,
                client=self.record.client,
                **fields,
            )
            await self.services.recorder.index_session(self.record)
        except GatewayError:
            self.services.sessions.discard(self)
            self.admitted = False
            raise

    def terminate(self, reason: str, code: str) -> None:
        """The kill switch, the token's expiry, shutdown: the stream ends with ``reason``."""
        if self.ended_reason is not None:
            return
        self.ended_reason = reason
        self.record.outcome, self.record.reason = "ended", code
        self.ended.set()

    async def wait_ended(self) -> None:
        await self.ended.wait()

    def recording_failed(self, error: BaseException) -> None:
        self.terminate("this session can no longer be recorded", "recording_unavailable")

    async def close(self, **fields: Any) -> None:
        if not self.admitted:
            return
        self.admitted = False
        self.services.sessions.discard(self)
        reason = self.ended_reason or "the stream ended"
        await self.services.recorder.end(self.record, reason, self.opened_at, **fields)

    def profile_of(self, policy_set: PolicySet) -> Any:
        return policy_set.masking.for_caller(self.connection.name, self.identity.groups).profile


def recorded_request(method: str, path: str, query: str) -> dict[str, Any]:
    """The request as recorded: its path and query masked as the HTTP path records them."""
    return {"method": method, "path": masked_url_part(path, "/"), "query": masked_url_part(query, "=&")}


def operation_record(operation: K8sOperation) -> dict[str, Any]:
    record = operation.to_record()
    record["path"] = masked_url_part(record["path"], "/")
    if record.get("exec_command"):
        record["exec_command"] = [
            mask_text(a, RECORDED_REQUEST_MASKING).value for a in record["exec_command"]
        ]
    return record
