"""What the PostgreSQL and MySQL backends share: a small connection pool, transactions, caps.

Statements outside a transaction run on a pooled autocommit connection; a transaction holds one
connection from ``BEGIN`` until commit, rollback or expiry. Idle pooled connections are checked
before reuse and replaced when dead, so a warm Lambda container or a long ``wardgate dev``
survives a database restart. The drivers are imported lazily: the Lambda never loads them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from wardgate.dataapi.backends import (
    ROLLBACK_COMPLETE,
    TRANSACTION_COMMITTED,
    BatchResult,
    Limits,
    ResultSet,
)
from wardgate.dataapi.errors import DataApiError, database_error
from wardgate.dataapi.params import Dialect, bind
from wardgate.dataapi.requests import BatchExecuteStatementRequest, ExecuteStatementRequest, SqlParameter
from wardgate.dataapi.transactions import Transaction, TransactionRegistry

C = TypeVar("C")
R = TypeVar("R")
PING_AFTER_IDLE_S = 5.0  # a connection idle for longer is pinged before reuse


class ConnectionPool(Generic[C]):
    """At most ``max_idle`` idle connections; connections in use are not counted."""

    def __init__(
        self,
        connect: Callable[[], C],
        alive: Callable[[C], bool],
        close: Callable[[C], None],
        *,
        max_idle: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect, self._alive, self._close = connect, alive, close
        self.max_idle = max_idle
        self._clock = clock
        self._idle: list[tuple[float, C]] = []
        self._lock = threading.Lock()

    def acquire(self) -> C:
        while True:
            with self._lock:
                if not self._idle:
                    break
                since, conn = self._idle.pop()
            if self._clock() - since < PING_AFTER_IDLE_S or self._alive(conn):
                return conn
            self._close(conn)  # dead (server restarted, idle timeout): try the next or a new one
        return self._connect()

    def release(self, conn: C) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append((self._clock(), conn))
                return
        self._close(conn)

    def discard(self, conn: C) -> None:
        self._close(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for _, conn in idle:
            self._close(conn)


class DbApiBackend(ABC, Generic[C]):
    """A Data API backend over a DB-API driver; subclasses supply the driver-specific parts."""

    dialect: Dialect

    def __init__(self, limits: Limits | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or Limits()
        self.pool: ConnectionPool[C] = ConnectionPool(
            self._connect, self._alive, self._close_quietly, clock=clock
        )
        self.transactions: TransactionRegistry[C] = TransactionRegistry(
            idle_timeout_s=self.limits.idle_transaction_timeout_s,
            max_lifetime_s=self.limits.max_transaction_s,
            expire=self._expire,
            clock=clock,
        )

    # ---- driver-specific -----------------------------------------------------------------

    @abstractmethod
    def _connect(self) -> C:
        """A new autocommit connection with the statement timeout set; DataApiError when down."""

    @abstractmethod
    def _alive(self, conn: C) -> bool: ...

    @abstractmethod
    def _close(self, conn: C) -> None: ...

    @abstractmethod
    def _run(self, conn: C, sql: str, params: dict[str, Any], include_metadata: bool) -> ResultSet:
        """Run one statement; the rows capped by ``self.limits``."""

    @abstractmethod
    def _error(self, exc: Exception) -> DataApiError | None:
        """The Data API error for a driver exception, or None when it is not the driver's."""

    @abstractmethod
    def _broken(self, conn: C) -> bool:
        """Whether ``conn`` is unusable after an error (lost connection)."""

    def _transaction_failed(self, conn: C) -> bool:
        """Whether the open transaction on ``conn`` can only roll back (PostgreSQL after an error)."""
        return False

    @abstractmethod
    def _driver_value(self, value: Any) -> Any:
        """A parameter value as the driver should receive it."""

    # ---- the Backend protocol --------------------------------------------------------------

    def execute(self, request: ExecuteStatementRequest, *, owner: str) -> ResultSet:
        sql, params = self._bind(request.sql, request.parameters)
        include = request.include_result_metadata or request.format_records_as == "JSON"
        if request.transaction_id is None:
            return self._with_connection(lambda conn: self._run(conn, sql, params, include))
        tx = self.transactions.get(request.transaction_id, owner)
        return self._in_transaction(tx, lambda conn: self._run(conn, sql, params, include))

    def batch_execute(self, request: BatchExecuteStatementRequest, *, owner: str) -> BatchResult:
        sets = request.parameter_sets or ((),)
        bound = [self._bind(request.sql, s) for s in sets]

        def run_all(conn: C) -> BatchResult:
            return BatchResult(
                [self._run(conn, sql, params, False).generated_fields for sql, params in bound]
            )

        if request.transaction_id is not None:
            tx = self.transactions.get(request.transaction_id, owner)
            return self._in_transaction(tx, run_all)

        def atomically(conn: C) -> BatchResult:
            # Outside a transaction the whole batch commits or none of it does.
            self._execute_control(conn, "BEGIN")
            try:
                result = run_all(conn)
            except BaseException:
                self._rollback_quietly(conn)
                raise
            self._execute_control(conn, "COMMIT")
            return result

        return self._with_connection(atomically)

    def begin_transaction(self, *, owner: str) -> str:
        self.transactions.reap()
        conn = self._acquire()
        try:
            self._guarded(conn, lambda: self._execute_control(conn, "BEGIN"))
        except BaseException:
            self.pool.discard(conn)
            raise
        return self.transactions.add(owner, conn).id

    def commit_transaction(self, transaction_id: str, *, owner: str) -> str:
        tx = self.transactions.pop(transaction_id, owner)
        with tx.lock:
            if self._transaction_failed(tx.connection):
                # PostgreSQL would answer COMMIT with a silent rollback; say so instead.
                self._rollback_quietly(tx.connection)
                self.pool.release(tx.connection)
                raise database_error("The transaction was rolled back: a statement in it failed")
            try:
                self._guarded(tx.connection, lambda: self._execute_control(tx.connection, "COMMIT"))
            except BaseException:
                self._rollback_quietly(tx.connection)
                self.pool.discard(tx.connection)
                raise
        self.pool.release(tx.connection)
        return TRANSACTION_COMMITTED

    def rollback_transaction(self, transaction_id: str, *, owner: str) -> str:
        tx = self.transactions.pop(transaction_id, owner)
        with tx.lock:
            try:
                self._guarded(tx.connection, lambda: self._execute_control(tx.connection, "ROLLBACK"))
            except BaseException:
                self.pool.discard(tx.connection)
                raise
        self.pool.release(tx.connection)
        return ROLLBACK_COMPLETE

    def close(self) -> None:
        self.transactions.close_all()
        self.pool.close()

    # ---- shared machinery ------------------------------------------------------------------

    def _bind(self, sql: str, parameters: Sequence[SqlParameter]) -> tuple[str, dict[str, Any]]:
        text, values = bind(sql, parameters, self.dialect)
        return text, {name: self._driver_value(v) for name, v in values.items()}

    def _acquire(self) -> C:
        try:
            return self.pool.acquire()
        except DataApiError:
            raise
        except Exception as exc:
            raise self._error(exc) or exc from None

    def _in_transaction(self, tx: Transaction[C], work: Callable[[C], R]) -> R:
        with tx.lock:
            try:
                return self._guarded(tx.connection, lambda: work(tx.connection))
            except DataApiError:
                if self._broken(tx.connection):
                    # The database dropped the connection: the transaction is gone with it.
                    self.transactions.discard(tx.id)
                    self.pool.discard(tx.connection)
                raise

    def _with_connection(self, work: Callable[[C], R]) -> R:
        self.transactions.reap()
        conn = self._acquire()
        try:
            result = self._guarded(conn, lambda: work(conn))
        except BaseException:
            if self._broken(conn):
                self.pool.discard(conn)
            else:
                self._rollback_quietly(conn)  # autocommit, but a failed explicit BEGIN may be open
                self.pool.release(conn)
            raise
        self.pool.release(conn)
        return result

    def _guarded(self, conn: C, work: Callable[[], R]) -> R:
        """Run ``work``, turning driver exceptions into Data API errors (no tracebacks, no DSNs)."""
        try:
            return work()
        except DataApiError:
            raise
        except Exception as exc:
            error = self._error(exc)
            if error is None:
                raise
            raise error from None

    def _execute_control(self, conn: C, statement: str) -> None:
        self._run(conn, statement, {}, False)

    def _rollback_quietly(self, conn: C) -> None:
        with contextlib.suppress(Exception):  # best effort: the connection may already be gone
            self._execute_control(conn, "ROLLBACK")

    def _expire(self, conn: C) -> None:
        self._rollback_quietly(conn)
        self.pool.discard(conn)  # a fresh connection is cheaper than trusting this one's state

    def _close_quietly(self, conn: C) -> None:
        with contextlib.suppress(Exception):  # closing a dead connection may fail; nothing to do
            self._close(conn)
