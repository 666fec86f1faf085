"""Live sessions of the TCP gateway, whatever their protocol: limits, lifetimes and the kill switch.

A session is admitted once (token, agent registry, connection) but may live for hours, so the
checks an HTTP request gets on every call are repeated here on a timer: every
``sweep_interval_s`` each live session's identity goes through ``AgentRegistry.check`` again
(whose cache is 0.5 s) and its connection is read again (cached 10 s), and sessions whose agent or
owner was revoked, whose connection changed or was removed, whose token expired more than
``token_grace_s`` ago, or which reached ``max_session_s`` are ended with a reason their client can
read. Revocation therefore ends idle sessions too, within about a second.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from wardgate.agents import AgentRegistry
from wardgate.connections import Connection, ConnectionStore
from wardgate.errors import Forbidden, GatewayError, NotFound
from wardgate.identity import Identity
from wardgate.observability import logger
from wardgate.tcp.config import SessionLimits


class LiveSession(Protocol):
    """What the sweep needs of a protocol's session."""

    identity: Identity
    connection: Connection
    opened_at: float  # time.monotonic()
    verified_at: float  # time.monotonic() of the last successful registry check

    def terminate(self, reason: str, code: str) -> None:
        """End now: tell the client why (in its protocol), close both sides. Idempotent."""
        ...


async def first_to_end(tasks: list[asyncio.Task[None]]) -> None:
    """The two directions of a relayed session: when one ends (or fails), the other is stopped;
    a failure is raised (the session reports it in its protocol)."""
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            failure = None if task.cancelled() else task.exception()
            if failure is not None:
                raise failure
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class TooManySessions(Forbidden):
    code = "too_many_sessions"


class SessionTable:
    """Every live session of this task."""

    def __init__(
        self,
        limits: SessionLimits,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.wall = wall
        self.clock = clock
        self._sessions: set[LiveSession] = set()
        self._per_identity: Counter[tuple[str, str]] = Counter()

    def __len__(self) -> int:
        return len(self._sessions)

    def live(self) -> list[LiveSession]:
        return list(self._sessions)

    def add(self, session: LiveSession) -> None:
        key = (session.identity.issuer, session.identity.subject)
        if self._per_identity[key] >= self.limits.max_sessions_per_identity:
            raise TooManySessions(
                f"identity {key[1]!r} already has {self._per_identity[key]} open sessions "
                f"(the limit is {self.limits.max_sessions_per_identity})"
            )
        self._sessions.add(session)
        self._per_identity[key] += 1

    def discard(self, session: LiveSession) -> None:
        if session in self._sessions:
            self._sessions.remove(session)
            key = (session.identity.issuer, session.identity.subject)
            self._per_identity[key] -= 1
            if not self._per_identity[key]:
                del self._per_identity[key]

    def expired(self, session: LiveSession) -> tuple[str, str] | None:
        """Why ``session`` has outlived its token or the maximum duration, if it has."""
        expires_at = session.identity.expires_at
        if expires_at is not None and self.wall() > expires_at + self.limits.token_grace_s:
            return (
                f"the session's token expired (sessions end {self.limits.token_grace_s:g} s after it): "
                "reconnect with a fresh token",
                "token_expired",
            )
        if self.clock() - session.verified_at > self.limits.unverified_grace_s:
            return (
                "the agent registry could not be read for "
                f"{self.limits.unverified_grace_s:g} s, so the session cannot be kept open",
                "registry_unavailable",
            )
        if self.clock() - session.opened_at > self.limits.max_session_s:
            return (
                f"the session reached its maximum duration of {self.limits.max_session_s:g} s",
                "session_too_long",
            )
        return None

    async def sweep_forever(self, registry: AgentRegistry, connections: ConnectionStore) -> None:
        while True:
            await asyncio.sleep(self.limits.sweep_interval_s)
            try:
                await self.sweep(registry, connections)
            except Exception:  # the sweep must outlive any one failure
                logger.exception("session sweep failed")

    async def sweep(self, registry: AgentRegistry, connections: ConnectionStore) -> None:
        live = self.live()
        for session in live:
            ended = self.expired(session)
            if ended:
                session.terminate(*ended)
        if not live:
            return
        verdicts = await asyncio.to_thread(_recheck, registry, connections, live)
        now = self.clock()
        for session, error in verdicts:
            if error is None:
                session.verified_at = now
            elif isinstance(error, Forbidden):
                session.terminate(error.message, error.code)


def _recheck(
    registry: AgentRegistry, connections: ConnectionStore, sessions: list[LiveSession]
) -> list[tuple[LiveSession, GatewayError | None]]:
    """The kill switch for every live session (a worker thread: the registry reads DynamoDB), and
    the connection each was admitted to: changed (its groups, its upstream...) or removed, the
    session ends and its client reconnects under the new settings.

    A store that cannot be read ends nothing at once; a session it cannot vouch for during
    ``unverified_grace_s`` is ended (``expired``): fail closed, without a blip ending them all.
    """
    answers: dict[tuple[Identity, Connection], GatewayError | None] = {}  # sessions share identities
    for session in sessions:
        key = (session.identity, session.connection)
        if key not in answers:
            answers[key] = _verdict(registry, connections, *key)
    return [(session, answers[(session.identity, session.connection)]) for session in sessions]


def _verdict(
    registry: AgentRegistry, connections: ConnectionStore, identity: Identity, connection: Connection
) -> GatewayError | None:
    try:
        registry.check(identity, connection.name)
        if connections.get(connection.name) != connection:
            return Forbidden(
                f"the settings of connection {connection.name!r} changed: reconnect",
                code="connection_changed",
            )
    except NotFound:
        return Forbidden("the connection was removed", code="connection_removed")
    except GatewayError as error:
        return error
    return None
