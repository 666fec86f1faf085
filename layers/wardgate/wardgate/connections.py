"""Connections: the named backends agents may reach, stored in DynamoDB.

A connection names its upstream and a Secrets Manager reference for the backend credential;
the agent only ever names the connection. Items are validated when read as well as when
written, so a hand-edited item cannot widen what the gateway forwards to.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from wardgate import aws
from wardgate.errors import NotFound, ServiceUnavailable

KINDS = ("http", "k8s", "sql", "tcp", "ssh")
SECRET_PREFIX = "wardgate/"
SQL_SCHEMES = ("postgresql", "postgres", "mysql", "mariadb", "rds-data")  # dataapi/factory.py builds them
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_CACHED = 4096  # connection names (known and unknown) kept by one store
SSH_USER = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]{0,63}$")  # the target's login name
SSH_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")  # as ssh-keygen -l prints it
MAX_HOST_KEY_CHARS = 16384


def validate_ssh_host_key(pin: str) -> str:
    """The target's pinned host key: an OpenSSH public key line (``ssh-ed25519 AAAA... [comment]``)
    or its SHA256 fingerprint (``SHA256:<43 base64 characters>``); returned stripped."""
    pin = pin.strip()
    if not pin:
        raise ValueError(
            "an ssh connection must pin its target's host key (host_key: an OpenSSH public key line "
            "or a SHA256:... fingerprint); wardgate never trusts a host key on first use"
        )
    if len(pin) > MAX_HOST_KEY_CHARS or "\n" in pin or "\r" in pin:
        raise ValueError("host_key must be one OpenSSH public key line or one SHA256 fingerprint")
    if pin.startswith("SHA256:"):
        if not SSH_FINGERPRINT.fullmatch(pin):
            raise ValueError(
                "host_key fingerprint must be SHA256: followed by 43 base64 characters (ssh-keygen -lf)"
            )
        return pin
    if pin.split(None, 1)[0].endswith("-cert-v01@openssh.com"):
        raise ValueError("host_key must be the target's host key itself, not a certificate")
    import asyncssh  # only ssh connections pay for it

    try:
        asyncssh.import_public_key(pin)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ValueError(
            f"host_key is not an OpenSSH public key line ({exc}) nor a SHA256: fingerprint"
        ) from None
    return pin


@dataclass(frozen=True)
class Connection:
    """A named backend agents reach through wardgate: its kind, upstream, credential and who may use it."""

    name: str
    kind: str
    upstream_url: str
    credential_secret: str | None = None  # Secrets Manager name or ARN; None = upstream needs no credential
    allowed_groups: tuple[str, ...] = ()  # empty = nobody (default deny)
    description: str = ""
    host_key: str = ""  # ssh: the target's pinned host key (key line or SHA256 fingerprint)

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ValueError(f"connection name {self.name!r} must match {NAME_PATTERN.pattern}")
        if self.kind not in KINDS:
            raise ValueError(f"connection kind {self.kind!r} is not one of {KINDS}")
        if self.kind in ("http", "k8s"):  # proxied over HTTP: the URL is where requests go
            parts = urlsplit(self.upstream_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"upstream_url {self.upstream_url!r} must be an absolute http(s) URL")
            if parts.username or parts.password or parts.query or parts.fragment:
                raise ValueError("upstream_url must not carry credentials, a query or a fragment")
        if self.kind == "sql":
            parts = urlsplit(self.upstream_url)
            if parts.scheme not in SQL_SCHEMES:
                raise ValueError(f"a sql upstream_url must start with one of {', '.join(SQL_SCHEMES)}://")
            if parts.password:
                raise ValueError("a sql upstream_url must not carry a password: use credential_secret")
        if self.kind == "ssh":
            self._validate_ssh()
        elif self.host_key:
            raise ValueError("host_key is only for ssh connections")
        if self.credential_secret is not None and not self.credential_secret.split(":secret:")[-1].startswith(
            SECRET_PREFIX
        ):
            # The functions' IAM role may read only this prefix; say so now rather than 503 later.
            raise ValueError(f"credential_secret must be a Secrets Manager secret named {SECRET_PREFIX}...")

    def _validate_ssh(self) -> None:
        """``ssh://user@host[:port]``, and exactly one host key pin: the field or the URL's
        ``host_key`` query parameter (URL-encoded)."""
        parts = urlsplit(self.upstream_url)
        if parts.scheme != "ssh" or not parts.hostname:
            raise ValueError(f"an ssh upstream_url must be ssh://user@host[:port], not {self.upstream_url!r}")
        if parts.password is not None:
            raise ValueError("an ssh upstream_url must not carry a password: use credential_secret")
        if not parts.username or not SSH_USER.fullmatch(unquote(parts.username)):
            raise ValueError(
                "an ssh upstream_url must name the target's login user (ssh://user@host[:port]; "
                f"user matching {SSH_USER.pattern})"
            )
        try:
            parts.port  # noqa: B018 - raises on a port out of range or not a number
        except ValueError:
            raise ValueError(f"an ssh upstream_url has an invalid port: {self.upstream_url!r}") from None
        if parts.path not in ("", "/") or parts.fragment:
            raise ValueError("an ssh upstream_url must not have a path or a fragment")
        query = parse_qs(parts.query, keep_blank_values=True)
        if set(query) - {"host_key"} or len(query.get("host_key", [])) > 1:
            raise ValueError("an ssh upstream_url takes no query parameter but one host_key")
        in_url = query.get("host_key", [""])[0]
        if in_url and self.host_key:
            raise ValueError("pin the host key once: in host_key or in the URL, not both")
        validate_ssh_host_key(self.host_key or in_url)

    @property
    def ssh_host_key(self) -> str:
        """An ssh connection's pinned host key, wherever it was given."""
        if self.host_key:
            return self.host_key.strip()
        return parse_qs(urlsplit(self.upstream_url).query).get("host_key", [""])[0].strip()

    def to_dict(self) -> dict[str, Any]:
        item = {
            "name": self.name,
            "kind": self.kind,
            "upstream_url": self.upstream_url,
            "credential_secret": self.credential_secret,
            "allowed_groups": list(self.allowed_groups),
            "description": self.description,
        }
        if self.host_key:  # only ssh connections have one: the others' items stay as they were
            item["host_key"] = self.host_key
        return item

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Connection:
        return cls(
            name=raw["name"],
            kind=raw["kind"],
            upstream_url=raw["upstream_url"],
            credential_secret=raw.get("credential_secret") or None,
            allowed_groups=tuple(raw.get("allowed_groups") or ()),
            description=raw.get("description") or "",
            host_key=raw.get("host_key") or "",
        )


def _item_of(connection: Connection) -> dict[str, Any]:
    """A connection as a DynamoDB item: strings, the groups as a list of strings, no attribute for
    an empty credential or host key (the shape the table has always held)."""
    item: dict[str, Any] = {
        "name": {"S": connection.name},
        "kind": {"S": connection.kind},
        "upstream_url": {"S": connection.upstream_url},
        "allowed_groups": {"L": [{"S": group} for group in connection.allowed_groups]},
        "description": {"S": connection.description},
    }
    if connection.credential_secret:
        item["credential_secret"] = {"S": connection.credential_secret}
    if connection.host_key:
        item["host_key"] = {"S": connection.host_key}
    return item


def _connection_of(item: dict[str, Any]) -> Connection:
    """A stored item back as a ``Connection``; a field of another type than it is written with (a
    hand-edited item) is a ``ValueError``, never a guess."""

    def text(name: str) -> str | None:
        value = item.get(name)
        if value is None or value.get("NULL"):
            return None
        if set(value) != {"S"}:
            raise ValueError(f"{name} must be a string")
        return str(value["S"])

    groups = item.get("allowed_groups", {"L": []})
    if set(groups) != {"L"} or any(set(group) != {"S"} for group in groups["L"]):
        raise ValueError("allowed_groups must be a list of strings")
    name, kind, upstream_url = text("name"), text("kind"), text("upstream_url")
    if name is None or kind is None or upstream_url is None:
        raise ValueError("name, kind and upstream_url are required")
    return Connection(
        name=name,
        kind=kind,
        upstream_url=upstream_url,
        credential_secret=text("credential_secret") or None,
        allowed_groups=tuple(group["S"] for group in groups["L"]),
        description=text("description") or "",
        host_key=text("host_key") or "",
    )


@functools.cache
def _reads_ahead() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="wardgate-connection-read")


@dataclass(eq=False, repr=False)  # a service: compared by identity, its caches never printed
class ConnectionStore:
    """Reads connections with a short cache: a changed connection takes effect within ``ttl_seconds``.

    Through the container's shared DynamoDB client (``aws.client``), not an ORM: one client and its
    short timeouts for every table, and no ORM's imports and second client on a cold start.
    """

    table_name: str
    ttl_seconds: float = 10.0
    clock: Any = time.monotonic
    _cache: dict[str, tuple[float, Connection | None]] = field(default_factory=dict, init=False)
    _reading: dict[str, tuple[float, Future[Connection | None]]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def get(self, name: str) -> Connection:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(name)
            reading = self._reading.get(name)
        if cached is not None and now - cached[0] < self.ttl_seconds:
            connection = cached[1]
        elif reading is not None and now - reading[0] < self.ttl_seconds and self._begun(name, reading[1]):
            connection = reading[1].result()  # a read begun since the cache's time limit: as our own
        else:
            connection = self._load(name) if NAME_PATTERN.match(name) else None
            self._remember(name, now, connection)
        if connection is None:
            raise NotFound(f"no connection named {name!r}", code="unknown_connection")
        return connection

    def read_ahead(self, name: str) -> None:
        """Begin reading ``name`` in the background unless it is cached or being read, so that a
        caller's other checks (the agent registry's) and this read overlap. Nothing is decided
        here: the next ``get`` waits for this read and uses it as it would its own, a failure
        included (so it fails closed the same way), if it began within ``ttl_seconds`` (a Lambda
        container frozen mid-read thaws with an old read: ``get`` then reads anew). Its result is
        cached by the time the read began, like ``get``'s."""
        if not NAME_PATTERN.match(name):
            return
        now = self.clock()
        with self._lock:
            cached = self._cache.get(name)
            if (cached is not None and now - cached[0] < self.ttl_seconds) or name in self._reading:
                return
            self._reading[name] = (now, _reads_ahead().submit(self._read_ahead, name, now))

    def _begun(self, name: str, reading: Future[Connection | None]) -> bool:
        """Whether ``read_ahead``'s read has begun (it is then waited for). One still queued behind
        a busy pool is dropped, and the caller reads for itself: no request waits for others' reads."""
        if not reading.cancel():
            return True
        with self._lock:
            if self._reading.get(name, (0.0, None))[1] is reading:
                del self._reading[name]
        return False

    def _read_ahead(self, name: str, started: float) -> Connection | None:
        try:
            connection = self._load(name)
        except BaseException:
            with self._lock:
                self._reading.pop(name, None)
            raise
        self._remember(name, started, connection)
        return connection

    def _remember(self, name: str, at: float, connection: Connection | None) -> None:
        with self._lock:
            self._reading.pop(name, None)  # from now on the cache answers (a later read_ahead reads anew)
            if len(self._cache) >= MAX_CACHED:  # agents choose the names: never let it grow unbounded
                self._cache.clear()
            self._cache[name] = (at, connection)  # unknown names are cached too: no DynamoDB spam

    def _load(self, name: str) -> Connection | None:
        try:
            answer = aws.client("dynamodb").get_item(
                TableName=self.table_name, Key={"name": {"S": name}}, ConsistentRead=False
            )
        except Exception as exc:  # botocore's ClientError, timeouts, connection errors
            raise ServiceUnavailable(
                f"connection store unavailable ({type(exc).__name__})", code="store_unavailable"
            ) from None
        item = answer.get("Item")
        if item is None:
            return None
        try:
            return _connection_of(item)
        except (KeyError, ValueError) as exc:
            raise ServiceUnavailable(
                f"connection {name!r} is misconfigured: {exc}", code="bad_connection"
            ) from None

    def put(self, connection: Connection) -> None:
        aws.client("dynamodb").put_item(TableName=self.table_name, Item=_item_of(connection))
        with self._lock:
            self._cache.pop(connection.name, None)

    def all(self) -> list[Connection]:
        pages = aws.client("dynamodb").get_paginator("scan").paginate(TableName=self.table_name)
        return [_connection_of(item) for page in pages for item in page["Items"]]

    def delete(self, name: str) -> None:
        aws.client("dynamodb").delete_item(TableName=self.table_name, Key={"name": {"S": name}})
        with self._lock:
            self._cache.pop(name, None)
