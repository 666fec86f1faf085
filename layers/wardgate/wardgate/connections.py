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
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from wardgate import aws
from wardgate.errors import NotFound, ServiceUnavailable

KINDS = ("http", "k8s", "sql", "tcp")
SECRET_PREFIX = "wardgate/"
SQL_SCHEMES = ("postgresql", "postgres", "mysql", "mariadb", "rds-data")  # dataapi/factory.py builds them
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_CACHED = 4096  # connection names (known and unknown) kept by one store


@dataclass(frozen=True)
class Connection:
    name: str
    kind: str
    upstream_url: str
    credential_secret: str | None = None  # Secrets Manager name or ARN; None = upstream needs no credential
    allowed_groups: tuple[str, ...] = ()  # empty = nobody (default deny)
    description: str = ""

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
        if self.credential_secret is not None and not self.credential_secret.split(":secret:")[-1].startswith(
            SECRET_PREFIX
        ):
            # The functions' IAM role may read only this prefix; say so now rather than 503 later.
            raise ValueError(f"credential_secret must be a Secrets Manager secret named {SECRET_PREFIX}...")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "upstream_url": self.upstream_url,
            "credential_secret": self.credential_secret,
            "allowed_groups": list(self.allowed_groups),
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Connection:
        return cls(
            name=raw["name"],
            kind=raw["kind"],
            upstream_url=raw["upstream_url"],
            credential_secret=raw.get("credential_secret") or None,
            allowed_groups=tuple(raw.get("allowed_groups") or ()),
            description=raw.get("description") or "",
        )


@functools.cache  # one class (and one pynamodb connection) per table, however many stores
def _model(table_name: str) -> Any:
    """A pynamodb model bound to ``table_name`` (pynamodb reads the table name from class Meta)."""
    from pynamodb.attributes import ListAttribute, UnicodeAttribute
    from pynamodb.models import Model

    class ConnectionModel(Model):
        class Meta:
            # Fail fast: pynamodb's defaults (15 s connect, 30 s read) outlast API Gateway's 30 s.
            connect_timeout_seconds = aws.CLIENT_CONFIG["connect_timeout"]
            read_timeout_seconds = aws.CLIENT_CONFIG["read_timeout"]
            max_retry_attempts = 1

        name = UnicodeAttribute(hash_key=True)
        kind = UnicodeAttribute()
        upstream_url = UnicodeAttribute()
        credential_secret = UnicodeAttribute(null=True)
        allowed_groups = ListAttribute(of=UnicodeAttribute, default=list)
        description = UnicodeAttribute(default="")

    ConnectionModel.Meta.table_name = table_name  # type: ignore[attr-defined]
    # pynamodb would build a botocore session of its own, loading the same endpoint and service
    # data again (~50 ms of a cold start); it has no public hook, so hand it the shared one.
    ConnectionModel._get_connection().connection._local.session = aws.botocore_session()
    return ConnectionModel


@dataclass
class ConnectionStore:
    """Reads connections with a short cache: a changed connection takes effect within ``ttl_seconds``."""

    table_name: str
    ttl_seconds: float = 10.0
    clock: Any = time.monotonic
    _cache: dict[str, tuple[float, Connection | None]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _model_class: Any = field(default=None, init=False)

    @property
    def model(self) -> Any:
        if self._model_class is None:
            self._model_class = _model(self.table_name)
        return self._model_class

    def get(self, name: str) -> Connection:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and now - cached[0] < self.ttl_seconds:
            connection = cached[1]
        else:
            connection = self._load(name) if NAME_PATTERN.match(name) else None
            with self._lock:
                if len(self._cache) >= MAX_CACHED:  # agents choose the names: never let it grow unbounded
                    self._cache.clear()
                self._cache[name] = (now, connection)  # unknown names are cached too: no DynamoDB spam
        if connection is None:
            raise NotFound(f"no connection named {name!r}", code="unknown_connection")
        return connection

    def _load(self, name: str) -> Connection | None:
        from pynamodb.exceptions import DoesNotExist, PynamoDBException

        try:
            item = self.model.get(name, consistent_read=False)
        except DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise ServiceUnavailable(
                f"connection store unavailable ({type(exc.__cause__ or exc).__name__})",
                code="store_unavailable",
            ) from None
        try:
            return Connection.from_dict(item.attribute_values)
        except (KeyError, ValueError) as exc:
            raise ServiceUnavailable(
                f"connection {name!r} is misconfigured: {exc}", code="bad_connection"
            ) from None

    def put(self, connection: Connection) -> None:
        self.model(**connection.to_dict()).save()
        with self._lock:
            self._cache.pop(connection.name, None)

    def all(self) -> list[Connection]:
        return [Connection.from_dict(item.attribute_values) for item in self.model.scan()]

    def delete(self, name: str) -> None:
        self.model(name=name).delete()
        with self._lock:
            self._cache.pop(name, None)
