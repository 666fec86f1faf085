"""The ``Backend`` protocol and the neutral results every backend returns.

A backend runs parsed Data API requests and answers with a ``ResultSet``: column metadata and
rows of plain Python values. The caller masks the rows (``wardgate.masking.mask_rows``) and
only then renders the wire response (``result.py``), so neither the agent nor the recording
sees an unmasked value. Implementations: ``PostgresBackend`` (psycopg), ``MySqlBackend``
(PyMySQL), ``RdsDataBackend`` (the real ``rds-data`` API).

Every call names its ``owner`` (the identity that makes it): a transaction can only be used by
the identity that began it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol

from wardgate.dataapi.fields import ColumnMetadata
from wardgate.dataapi.requests import BatchExecuteStatementRequest, ExecuteStatementRequest

MIB = 1024 * 1024
TRANSACTION_COMMITTED = "Transaction Committed"  # the real service's transactionStatus strings
ROLLBACK_COMPLETE = "Rollback Complete"


@dataclass(frozen=True)
class Limits:
    """Caps per call. The real Data API answers at most 1 MiB; rows beyond a cap are dropped and
    the ResultSet says ``truncated``."""

    max_rows: int = 1000
    max_bytes: int = MIB
    statement_timeout_s: float = 20.0  # under API Gateway's 30 s, so the database stops first
    connect_timeout_s: float = 3.0
    idle_transaction_timeout_s: float = 180.0  # the Data API's: 3 minutes without a call
    max_transaction_s: float = 24 * 3600.0  # and 24 hours at most


@dataclass
class ResultSet:
    """What one statement returned: columns, rows, counts, generated fields, whether rows were capped."""

    columns: list[ColumnMetadata] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    number_of_records_updated: int = 0
    generated_fields: list[Any] = field(default_factory=list)  # Python values (MySQL auto-increment ids)
    truncated: bool = False

    @property
    def column_names(self) -> list[str]:
        """Labels, as masking rules and ``formattedRecords`` keys see them."""
        return [c.label or c.name for c in self.columns]

    def with_rows(self, rows: Sequence[Sequence[Any]]) -> ResultSet:
        """The same result with other rows (the masked ones)."""
        return replace(self, rows=[list(r) for r in rows])


@dataclass
class BatchResult:
    """What a batch returned: the generated fields of each parameter set."""

    update_results: list[list[Any]] = field(default_factory=list)  # generated fields per parameter set


class Backend(Protocol):
    def execute(self, request: ExecuteStatementRequest, *, owner: str) -> ResultSet: ...

    def batch_execute(self, request: BatchExecuteStatementRequest, *, owner: str) -> BatchResult: ...

    def begin_transaction(self, *, owner: str) -> str: ...

    def commit_transaction(self, transaction_id: str, *, owner: str) -> str: ...

    def rollback_transaction(self, transaction_id: str, *, owner: str) -> str: ...

    def close(self) -> None: ...


def value_size(value: Any) -> int:
    """Roughly how many bytes ``value`` takes in the JSON response (for the byte cap)."""
    if value is None or isinstance(value, bool | int | float | Decimal):
        return 24
    if isinstance(value, bytes | bytearray | memoryview):
        return 20 + (len(value) + 2) // 3 * 4
    if isinstance(value, str):
        return 20 + len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, datetime | date | time | timedelta):
        return 48
    if isinstance(value, list | tuple):
        return 20 + sum(value_size(v) for v in value)
    if isinstance(value, dict):
        return 20 + sum(value_size(k) + value_size(v) for k, v in value.items())
    return 20 + len(str(value))


def cap_rows(rows: Sequence[Sequence[Any]], limits: Limits) -> tuple[list[list[Any]], bool]:
    """The rows that fit within ``limits``, and whether any were dropped."""
    kept: list[list[Any]] = []
    total = 0
    for row in rows:
        size = 4 + sum(value_size(v) for v in row)
        if len(kept) >= limits.max_rows or total + size > limits.max_bytes:
            return kept, True
        total += size
        kept.append(list(row))
    return kept, False
