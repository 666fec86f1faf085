"""Open transactions of a local backend: unguessable ids bound to their owner, expired when idle.

An id is ``secrets.token_urlsafe(32)``; the registry belongs to one backend, so an id is bound
to that backend's connection too. An unknown id, an expired one and another identity's id all
give the same ``TransactionNotFoundException``, so ids cannot be probed. Expired transactions
(idle past ``idle_timeout_s`` or older than ``max_lifetime_s``) are rolled back the next time
the registry is touched, whoever touches it, and when the backend closes.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from wardgate.dataapi.errors import transaction_not_found

C = TypeVar("C")


@dataclass
class Transaction(Generic[C]):
    id: str
    owner: str
    connection: C
    started: float
    last_used: float
    lock: threading.Lock = field(default_factory=threading.Lock)


class TransactionRegistry(Generic[C]):
    def __init__(
        self,
        *,
        idle_timeout_s: float,
        max_lifetime_s: float,
        expire: Callable[[C], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.max_lifetime_s = max_lifetime_s
        self._expire = expire  # rolls back and releases the connection of an expired transaction
        self._clock = clock
        self._open: dict[str, Transaction[C]] = {}
        self._lock = threading.Lock()

    def add(self, owner: str, connection: C) -> Transaction[C]:
        now = self._clock()
        tx = Transaction(secrets.token_urlsafe(32), owner, connection, now, now)
        with self._lock:
            self._open[tx.id] = tx
        return tx

    def get(self, transaction_id: str, owner: str) -> Transaction[C]:
        """The caller's open transaction, its last use refreshed; expired ones are reaped first."""
        self.reap()
        with self._lock:
            tx = self._open.get(transaction_id)
            if tx is None or not secrets.compare_digest(tx.owner.encode(), owner.encode()):
                raise transaction_not_found(transaction_id)
            tx.last_used = self._clock()
            return tx

    def pop(self, transaction_id: str, owner: str) -> Transaction[C]:
        """Remove the caller's transaction (commit or rollback follows)."""
        tx = self.get(transaction_id, owner)
        with self._lock:
            self._open.pop(tx.id, None)
        return tx

    def discard(self, transaction_id: str) -> None:
        """Forget a transaction whose connection is already gone (nothing left to roll back)."""
        with self._lock:
            self._open.pop(transaction_id, None)

    def reap(self) -> int:
        """Roll back expired transactions; returns how many."""
        now = self._clock()
        with self._lock:
            expired = [
                tx
                for tx in self._open.values()
                if now - tx.last_used > self.idle_timeout_s or now - tx.started > self.max_lifetime_s
            ]
            for tx in expired:
                del self._open[tx.id]
        for tx in expired:
            with tx.lock:
                self._expire(tx.connection)
        return len(expired)

    def close_all(self) -> None:
        with self._lock:
            left = list(self._open.values())
            self._open.clear()
        for tx in left:
            self._expire(tx.connection)

    def __len__(self) -> int:
        return len(self._open)
