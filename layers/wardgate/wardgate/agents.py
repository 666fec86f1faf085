"""Agent identities with human owners, and the kill switch.

An agent identity is a token subject per issuer (the ``sub``, or the ``client_id`` of a
client-credentials token), registered with the human who answers for it, a purpose, the
connections it may use and an expiry. Owners can be revoked as a whole: one owner item
(``owner:<owner>``) is the switch, read on every request, so an owner's revocation takes
effect for all of their agents at once, whatever state the individual agent items are in.

Every gateway calls ``AgentRegistry.check`` right after the token is validated. Results are
cached for ``ttl_seconds`` (0.5 s) per container, so a revocation is in force everywhere within
half a second after it is written; reads behind a cache miss are strongly
consistent. If the registry cannot be read the request is refused with 503 (fail closed).

Table layout (one table, hash key ``pk``, no indexes):

- ``agent:["<issuer>","<subject>"]``: an agent (``Agent``);
- ``owner:<owner>``: an owner's revocation state (``OwnerState``), written on revocation;
- ``scim:<id>`` and ``scimname:<userName>``: users provisioned through SCIM (``scim.py``).

Owners are case-insensitive (e-mail addresses, IdP user names): they are stored lowercased.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from wardgate import aws
from wardgate.connections import NAME_PATTERN
from wardgate.errors import BadRequest, Conflict, Forbidden, GatewayError, NotFound, ServiceUnavailable
from wardgate.identity import Identity
from wardgate.observability import logger

STATUSES = ("active", "disabled", "revoked")
REGISTRATION_MODES = ("optional", "required")
MAX_TRANSACTION_ITEMS = 100  # DynamoDB's TransactWriteItems limit
MAX_CACHED = 10_000
UNAUDITED = "the registration could not be audited: register the agent again"


def normalise_owner(owner: str) -> str:
    value = owner.strip().lower()
    if not value or len(value) > 256 or any(c.isspace() for c in value):
        raise ValueError(f"owner {owner!r} must be a non-empty user name or e-mail address without spaces")
    return value


def agent_key(issuer: str, subject: str) -> str:
    return "agent:" + json.dumps([issuer, subject], separators=(",", ":"))


def owner_key(owner: str) -> str:
    return "owner:" + normalise_owner(owner)


@dataclass(frozen=True)
class Agent:
    """A registered agent identity and the human responsible for it."""

    issuer: str
    subject: str
    owner: str
    purpose: str
    connections: tuple[str, ...] = ("*",)  # connection names, or "*" for every connection
    owner_groups: tuple[str, ...] = ()
    expires_at: int | None = None  # epoch seconds; None: does not expire
    status: str = "active"
    status_reason: str = ""
    status_by: str = ""
    status_at: int | None = None
    created_by: str = ""
    created_at: int = 0
    last_used: int | None = None
    flags: tuple[str, ...] = ()  # findings of the scheduled check, e.g. "owner_not_provisioned"

    def __post_init__(self) -> None:
        if not self.issuer or not self.subject:
            raise ValueError("an agent needs an issuer and a subject")
        object.__setattr__(self, "owner", normalise_owner(self.owner))
        if not self.purpose.strip():
            raise ValueError("an agent needs a purpose")
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {STATUSES}")
        if not self.connections:
            raise ValueError("an agent needs at least one connection (or '*')")
        for name in self.connections:
            if name != "*" and not NAME_PATTERN.match(name):
                raise ValueError(f"connection name {name!r} must match {NAME_PATTERN.pattern}")

    @property
    def key(self) -> str:
        return agent_key(self.issuer, self.subject)

    def allows(self, connection: str) -> bool:
        return "*" in self.connections or connection in self.connections

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        for name in ("connections", "owner_groups", "flags"):
            raw[name] = list(raw[name])
        return raw

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Agent:
        def number(name: str) -> int | None:
            value = raw.get(name)
            return None if value is None else int(value)

        return cls(
            issuer=str(raw["issuer"]),
            subject=str(raw["subject"]),
            owner=str(raw["owner"]),
            purpose=str(raw["purpose"]),
            connections=tuple(raw.get("connections") or ("*",)),
            owner_groups=tuple(raw.get("owner_groups") or ()),
            expires_at=number("expires_at"),
            status=str(raw.get("status") or "active"),
            status_reason=str(raw.get("status_reason") or ""),
            status_by=str(raw.get("status_by") or ""),
            status_at=number("status_at"),
            created_by=str(raw.get("created_by") or ""),
            created_at=int(raw.get("created_at") or 0),
            last_used=number("last_used"),
            flags=tuple(raw.get("flags") or ()),
        )


@dataclass(frozen=True)
class OwnerState:
    """Whether a human owner's agents are admitted (``active``) or all revoked, and who said so when."""

    owner: str
    status: str  # "active" or "revoked"
    reason: str = ""
    by: str = ""
    at: int | None = None

    @property
    def revoked(self) -> bool:
        return self.status == "revoked"


@dataclass(frozen=True)
class Revocation:
    """What one revocation did; handed to every revocation listener and returned to the caller."""

    kind: str  # "owner", "subject" or "agent" (disabled)
    target: str  # the owner, or the agent's subject
    by: str
    reason: str
    at: int
    agents: tuple[tuple[str, str], ...] = ()  # (issuer, subject) newly revoked or disabled
    already: tuple[tuple[str, str], ...] = ()  # already revoked before this call
    owner_already_revoked: bool = False
    listener_errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "by": self.by,
            "reason": self.reason,
            "at": self.at,
            "agents": [{"issuer": i, "subject": s} for i, s in self.agents],
            "already": [{"issuer": i, "subject": s} for i, s in self.already],
            "owner_already_revoked": self.owner_already_revoked,
            "listener_errors": list(self.listener_errors),
        }


# A revocation listener is called after every revocation has been written. The approval flow
# (issue 5) registers one that cancels the pending approval requests and withdraws the grants of
# ``revocation.agents`` (and of every agent of ``revocation.target`` for an owner revocation).
# Requests are refused by ``check`` whatever a listener does; a failing listener is logged and
# reported in ``Revocation.listener_errors``, never undoes the revocation.
RevocationListener = Callable[[Revocation], None]


class AgentTable:
    """The DynamoDB adapter: plain items in and out, every AWS failure a 503."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    @staticmethod
    def _unavailable(exc: Exception) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"agent registry unavailable ({type(exc).__name__})", code="registry_unavailable"
        )

    def get(self, pk: str) -> dict[str, Any] | None:
        from boto3.dynamodb.types import TypeDeserializer

        try:
            item = (
                aws.client("dynamodb")
                .get_item(TableName=self.table_name, Key={"pk": {"S": pk}}, ConsistentRead=True)
                .get("Item")
            )
        except Exception as exc:
            raise self._unavailable(exc) from None
        if item is None:
            return None
        deserializer = TypeDeserializer()
        return {k: deserializer.deserialize(v) for k, v in item.items()}

    def scan(self, prefix: str) -> list[dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        try:
            pages = (
                aws.client("dynamodb")
                .get_paginator("scan")
                .paginate(
                    TableName=self.table_name,
                    ConsistentRead=True,
                    FilterExpression="begins_with(pk, :p)",
                    ExpressionAttributeValues={":p": {"S": prefix}},
                )
            )
            return [
                {k: deserializer.deserialize(v) for k, v in item.items()}
                for page in pages
                for item in page["Items"]
            ]
        except Exception as exc:
            raise self._unavailable(exc) from None

    def put(self, pk: str, item: Mapping[str, Any]) -> None:
        try:
            aws.client("dynamodb").put_item(TableName=self.table_name, Item=_serialize({**item, "pk": pk}))
        except Exception as exc:
            raise self._unavailable(exc) from None

    def delete(self, pk: str) -> None:
        try:
            aws.client("dynamodb").delete_item(TableName=self.table_name, Key={"pk": {"S": pk}})
        except Exception as exc:
            raise self._unavailable(exc) from None

    def put_new(self, pk: str, item: Mapping[str, Any], replacing_reason: str = "") -> bool:
        """Write ``item`` unless ``pk`` exists (or, with ``replacing_reason``, exists only as an item
        disabled for that reason); False when it does."""
        condition, values = "attribute_not_exists(pk)", {}
        if replacing_reason:
            condition += " OR (#s = :disabled AND status_reason = :reason)"
            values = {":disabled": {"S": "disabled"}, ":reason": {"S": replacing_reason}}
        try:
            aws.client("dynamodb").put_item(
                TableName=self.table_name,
                Item=_serialize({**item, "pk": pk}),
                ConditionExpression=condition,
                **(
                    {"ExpressionAttributeNames": {"#s": "status"}, "ExpressionAttributeValues": values}
                    if values
                    else {}
                ),
            )
        except Exception as exc:
            if _conditional_failure(exc):
                return False
            raise self._unavailable(exc) from None
        return True

    def set_fields(self, pk: str, values: Mapping[str, Any], unless_status: str | None = None) -> bool:
        """Set ``values`` on an existing item (False if it does not exist, or has ``unless_status``)."""
        try:
            aws.client("dynamodb").update_item(
                TableName=self.table_name, **_update(pk, values, unless_status)
            )
        except Exception as exc:
            if _conditional_failure(exc):
                return False
            raise self._unavailable(exc) from None
        return True

    def transact(
        self, puts: Sequence[tuple[str, Mapping[str, Any]]], updates: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> None:
        """All of ``puts`` (whole items) and ``updates`` (fields of existing items), or none."""
        actions: list[dict[str, Any]] = [
            {"Put": {"TableName": self.table_name, "Item": _serialize({**item, "pk": pk})}}
            for pk, item in puts
        ]
        actions += [
            {"Update": {"TableName": self.table_name, **_update(pk, values)}} for pk, values in updates
        ]
        try:
            aws.client("dynamodb").transact_write_items(TransactItems=actions)
        except Exception as exc:
            raise self._unavailable(exc) from None

    def put_all_new(self, items: list[tuple[str, Mapping[str, Any]]]) -> bool:
        """Write every item in one transaction unless one of their keys exists; False when one does."""
        actions = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": _serialize({**item, "pk": pk}),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for pk, item in items
        ]
        try:
            aws.client("dynamodb").transact_write_items(TransactItems=actions)
        except Exception as exc:
            reasons = (getattr(exc, "response", None) or {}).get("CancellationReasons") or []
            if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                return False
            raise self._unavailable(exc) from None
        return True

    def touch(self, pk: str, when: int) -> None:
        """Record a use of an agent; the proxy's role may update nothing but ``last_used``."""
        aws.client("dynamodb").update_item(
            TableName=self.table_name,
            Key={"pk": {"S": pk}},
            UpdateExpression="SET last_used = :t",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":t": {"N": str(when)}},
        )


def _serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {k: serializer.serialize(v) for k, v in item.items() if v is not None}


def _update(pk: str, values: Mapping[str, Any], unless_status: str | None = None) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    names = {f"#f{i}": name for i, name in enumerate(values)}
    update: dict[str, Any] = {
        "Key": {"pk": {"S": pk}},
        "UpdateExpression": "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(values))),
        "ConditionExpression": "attribute_exists(pk)",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": {
            f":v{i}": serializer.serialize(v) for i, v in enumerate(values.values())
        },
    }
    if unless_status is not None:
        update["ConditionExpression"] += " AND #status <> :unless"
        update["ExpressionAttributeNames"]["#status"] = "status"
        update["ExpressionAttributeValues"][":unless"] = {"S": unless_status}
    return update


def _conditional_failure(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    return bool(response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


@functools.cache
def _background() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="wardgate-last-used")


@dataclass(eq=False, repr=False)  # a service: compared by identity, its caches never printed
class AgentRegistry:
    """Registration, revocation and the per-request check."""

    table: AgentTable
    registration: Callable[[], str] = lambda: "optional"  # the policy's settings.agents.registration
    ttl_seconds: float = 0.5  # how stale a cached answer may be: bounds revocation propagation
    last_used_interval: float = 60.0  # at most one last_used write per agent per container per minute
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    listeners: list[RevocationListener] = field(default_factory=list)
    _agents: dict[tuple[str, str, str | None], tuple[float, Agent | None]] = field(
        default_factory=dict, init=False
    )
    _owners: dict[str, tuple[float, OwnerState | None]] = field(default_factory=dict, init=False)
    _touched: dict[str, float] = field(default_factory=dict, init=False)
    _pending: list[Future[None]] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    # ------------------------------------------------------------------ the per-request check
    def check(self, identity: Identity, connection: str | None = None) -> Identity:
        """The identity as the registry knows it, or a 403 (revoked, unregistered...) / 503.

        ``connection`` is the connection the request names; an agent limited to others is refused.
        """
        now = self.clock()
        agent = self._agent_for(identity, now)
        if agent is None:
            if identity.owner and self._owner_state(identity.owner, now):
                raise Forbidden(
                    f"the owner of identity {identity.subject!r} has been revoked", code="owner_revoked"
                )
            if self.registration() == "required":
                raise Forbidden(
                    f"identity {identity.subject!r} of issuer {identity.issuer} is not a registered agent; "
                    "ask an administrator to register it (wardgate agents register)",
                    code="agent_not_registered",
                )
            return identity
        if agent.status != "active":
            raise Forbidden(
                f"agent {agent.subject!r} (owner {agent.owner}) has been {agent.status}", code="agent_revoked"
            )
        if agent.expired(self.wall()):
            raise Forbidden(f"the registration of agent {agent.subject!r} has expired", code="agent_expired")
        if self._owner_state(agent.owner, now):
            raise Forbidden(
                f"the owner of agent {agent.subject!r} ({agent.owner}) has been revoked", code="owner_revoked"
            )
        if connection is not None and not agent.allows(connection):
            raise Forbidden(
                f"agent {agent.subject!r} is not registered for connection {connection!r}",
                code="agent_connection_not_allowed",
            )
        self._touch(agent, now)
        return replace(identity, owner=agent.owner, owner_groups=agent.owner_groups, registered=True)

    def _agent_for(self, identity: Identity, now: float) -> Agent | None:
        cache_key = (identity.issuer, identity.subject, identity.client_id)
        cached = self._agents.get(cache_key)
        if cached is not None and now - cached[0] < self.ttl_seconds:
            return cached[1]
        agent = self.get(identity.issuer, identity.subject)
        if agent is None and identity.client_id and identity.client_id != identity.subject:
            agent = self.get(identity.issuer, identity.client_id)
        if len(self._agents) >= MAX_CACHED:  # distinct identities are few; never let it grow unbounded
            self._agents.clear()
        self._agents[cache_key] = (now, agent)
        return agent

    def _owner_state(self, owner: str, now: float) -> bool:
        """Whether ``owner`` is revoked."""
        try:
            key = normalise_owner(owner)
        except ValueError:
            return False
        cached = self._owners.get(key)
        if cached is not None and now - cached[0] < self.ttl_seconds:
            state = cached[1]
        else:
            state = self.owner(key)
            self._owners[key] = (now, state)
        return state is not None and state.revoked

    def _touch(self, agent: Agent, now: float) -> None:
        last = self._touched.get(agent.key)
        if last is not None and now - last < self.last_used_interval:
            return
        self._touched[agent.key] = now
        future = _background().submit(self._write_last_used, agent.key, int(self.wall()))
        with self._lock:
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(future)

    def _write_last_used(self, pk: str, when: int) -> None:
        try:
            self.table.touch(pk, when)
        except Exception as exc:  # bookkeeping only: never fails a request
            logger.warning("last_used not written", extra={"error": type(exc).__name__})

    def flush(self) -> None:
        """Wait for pending last_used writes (tests, and before a container is frozen on purpose)."""
        with self._lock:
            pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def forget(self) -> None:
        """Drop cached answers (after a change made by this process)."""
        self._agents.clear()
        self._owners.clear()

    # ------------------------------------------------------------------ reading
    def get(self, issuer: str, subject: str) -> Agent | None:
        item = self.table.get(agent_key(issuer, subject))
        if item is None:
            return None
        try:
            return Agent.from_dict(item)
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceUnavailable(
                f"agent item {subject!r} is malformed: {exc}", code="registry_unavailable"
            ) from None

    def owner(self, owner: str) -> OwnerState | None:
        item = self.table.get(owner_key(owner))
        if item is None:
            return None
        return OwnerState(
            owner=str(item.get("owner", owner)),
            status=str(item.get("status", "revoked")),  # an owner item without status: fail closed
            reason=str(item.get("reason", "")),
            by=str(item.get("by", "")),
            at=int(item["at"]) if item.get("at") is not None else None,
        )

    def agents(self, owner: str | None = None) -> list[Agent]:
        found = [Agent.from_dict(item) for item in self.table.scan("agent:")]
        if owner is not None:
            wanted = normalise_owner(owner)
            found = [a for a in found if a.owner == wanted]
        return sorted(found, key=lambda a: (a.owner, a.issuer, a.subject))

    def revoked_owners(self) -> list[OwnerState]:
        states = [self.owner(str(item["owner"])) for item in self.table.scan("owner:") if item.get("owner")]
        return [s for s in states if s is not None and s.revoked]

    def find(self, subject: str, issuer: str | None = None) -> Agent:
        """The one agent registered as ``subject`` (of ``issuer``, when given)."""
        if issuer:
            agent = self.get(issuer, subject)
            matches = [agent] if agent else []
        else:
            matches = [a for a in self.agents() if a.subject == subject]
        if not matches:
            where = f" of issuer {issuer}" if issuer else ""
            raise NotFound(f"no agent registered as {subject!r}{where}", code="unknown_agent")
        if len(matches) > 1:
            issuers = ", ".join(a.issuer for a in matches)
            raise BadRequest(f"subject {subject!r} is registered for several issuers ({issuers}): name one")
        return matches[0]

    # ------------------------------------------------------------------ changing
    def register(self, agent: Agent, by: str) -> Agent:
        state = self.owner(agent.owner)
        if state is not None and state.revoked:
            raise Conflict(
                f"owner {agent.owner!r} has been revoked: they cannot own agents", code="owner_revoked"
            )
        stored = replace(agent, status="active", created_by=by, created_at=int(self.wall()), last_used=None)
        item = {"kind": "agent", **stored.to_dict()}
        if not self.table.put_new(stored.key, item, replacing_reason=UNAUDITED):
            raise Conflict(
                f"agent {agent.subject!r} of {agent.issuer} is already registered", code="agent_exists"
            )
        self.forget()
        return stored

    def unregister(self, agent: Agent) -> None:
        """Take back a registration that could not be audited: the agent is disabled (agents are
        never erased), and registering it again replaces it. Best effort: the caller fails anyway;
        a revoked agent stays revoked."""
        try:
            self.table.set_fields(
                agent.key,
                {
                    "status": "disabled",
                    "status_reason": UNAUDITED,
                    "status_by": "wardgate",
                    "status_at": int(self.wall()),
                },
                unless_status="revoked",
            )
        except GatewayError:
            logger.error("unaudited registration not taken back", extra={"subject": agent.subject})
        self.forget()

    def disable(self, subject: str, issuer: str | None, by: str, reason: str) -> Revocation:
        return self._set_agent_status(self.find(subject, issuer), "disabled", "agent", by, reason)

    def revoke_subject(self, subject: str, issuer: str | None, by: str, reason: str) -> Revocation:
        return self._set_agent_status(self.find(subject, issuer), "revoked", "subject", by, reason)

    def _set_agent_status(self, agent: Agent, status: str, kind: str, by: str, reason: str) -> Revocation:
        reason = _required_reason(reason)
        at = int(self.wall())
        changed = self.table.set_fields(
            agent.key,
            {"status": status, "status_reason": reason, "status_by": by, "status_at": at},
            unless_status="revoked",  # revoked is final: neither disabling nor a replay rewrites it
        )
        done = ((agent.issuer, agent.subject),)
        result = Revocation(
            kind,
            agent.subject,
            by,
            reason,
            at,
            agents=done if changed else (),
            already=() if changed else done,
        )
        return self._notify(result)

    def revoke_owner(self, owner: str, by: str, reason: str) -> Revocation:
        """Revoke ``owner`` and every agent they own: the owner item is the switch, written first.

        The owner item and up to 99 agents go in one transaction; with more agents, the rest
        follow in further transactions, but every one of them is refused from the first write on
        because ``check`` reads the owner item on each request.
        """
        reason = _required_reason(reason)
        owner = normalise_owner(owner)
        at = int(self.wall())
        previous = self.owner(owner)
        already_revoked = previous is not None and previous.revoked
        owned = self.agents(owner)
        to_revoke = [a for a in owned if a.status != "revoked"]
        updates = [
            (
                a.key,
                {
                    "status": "revoked",
                    "status_reason": f"owner revoked: {reason}",
                    "status_by": by,
                    "status_at": at,
                },
            )
            for a in to_revoke
        ]
        puts: list[tuple[str, Mapping[str, Any]]] = []
        if not already_revoked:
            puts.append(
                (
                    owner_key(owner),
                    {
                        "kind": "owner",
                        "owner": owner,
                        "status": "revoked",
                        "reason": reason,
                        "by": by,
                        "at": at,
                    },
                )
            )
        first = MAX_TRANSACTION_ITEMS - len(puts)
        if puts or updates:
            self.table.transact(puts, updates[:first])
        for start in range(first, len(updates), MAX_TRANSACTION_ITEMS):
            self.table.transact([], updates[start : start + MAX_TRANSACTION_ITEMS])
        result = Revocation(
            "owner",
            owner,
            by,
            reason,
            at,
            agents=tuple((a.issuer, a.subject) for a in to_revoke),
            already=tuple((a.issuer, a.subject) for a in owned if a.status == "revoked"),
            owner_already_revoked=already_revoked,
        )
        return self._notify(result)

    def reinstate_owner(self, owner: str, by: str, reason: str) -> bool:
        """Let a revoked owner own agents again (their revoked agents stay revoked). False if not revoked."""
        state = self.owner(owner)
        if state is None or not state.revoked:
            return False
        owner = normalise_owner(owner)
        self.table.put(
            owner_key(owner),
            {
                "kind": "owner",
                "owner": owner,
                "status": "active",
                "reason": reason,
                "by": by,
                "at": int(self.wall()),
            },
        )
        self.forget()
        return True

    def flag(self, agent: Agent, flags: Iterable[str]) -> None:
        self.table.set_fields(agent.key, {"flags": sorted(set(flags))})

    def _notify(self, revocation: Revocation) -> Revocation:
        self.forget()
        errors: list[str] = []
        for listener in self.listeners:
            try:
                listener(revocation)
            except Exception as exc:
                logger.exception("revocation listener failed", extra={"listener": repr(listener)})
                errors.append(f"{getattr(listener, '__name__', repr(listener))}: {type(exc).__name__}")
        return replace(revocation, listener_errors=tuple(errors)) if errors else revocation

    # ------------------------------------------------------------------ the scheduled check
    def sweep(self, provisioned: set[str] | None, by: str = "scheduled-check") -> list[dict[str, Any]]:
        """Disable expired agents, revoke agents of revoked owners, flag owners the IdP does not know.

        ``provisioned`` is the set of owners the identity provider provisioned through SCIM and
        still has active, or None when SCIM is not in use (then no owner is flagged for it).
        Returns one entry per action taken, for the audit trail.
        """
        now = self.wall()
        revoked = {s.owner for s in self.revoked_owners()}
        actions: list[dict[str, Any]] = []
        for agent in self.agents():
            if agent.status == "revoked":
                continue
            target = {"issuer": agent.issuer, "subject": agent.subject, "owner": agent.owner}
            if agent.owner in revoked:
                result = self.revoke_subject(agent.subject, agent.issuer, by, "its owner has been revoked")
                if result.agents:
                    actions.append({"action": "revoke_agent", "target": target, "reason": "owner revoked"})
                continue
            if agent.status == "active" and agent.expired(now):
                result = self.disable(agent.subject, agent.issuer, by, "registration expired")
                if result.agents:
                    actions.append(
                        {"action": "disable_agent", "target": target, "reason": "registration expired"}
                    )
                continue
            if provisioned is not None:
                missing = agent.owner not in provisioned
                flags = set(agent.flags)
                if missing and "owner_not_provisioned" not in flags:
                    self.flag(agent, flags | {"owner_not_provisioned"})
                    actions.append(
                        {
                            "action": "flag_agent",
                            "target": target,
                            "reason": "owner is not an active user provisioned by the identity provider",
                        }
                    )
                elif not missing and "owner_not_provisioned" in flags:
                    self.flag(agent, flags - {"owner_not_provisioned"})
                    actions.append(
                        {"action": "unflag_agent", "target": target, "reason": "owner provisioned"}
                    )
        return actions


def _required_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise BadRequest("a reason is required: it is recorded with the revocation", code="reason_required")
    return reason[:1000]


def registration_mode(settings: Mapping[str, Any]) -> str:
    """``settings.agents.registration`` of a policy document (default: optional)."""
    mode = (settings.get("agents") or {}).get("registration", "optional")
    return mode if mode in REGISTRATION_MODES else "required"  # an unknown value: fail closed
