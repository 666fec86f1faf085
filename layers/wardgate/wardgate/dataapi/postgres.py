"""``PostgresBackend``: Data API requests against a real PostgreSQL, through psycopg 3.

For ``wardgate dev`` and tests (the Lambda uses ``RdsDataBackend``). Column metadata follows
what the Data API (pgjdbc underneath) reports: ``typeName`` is the PostgreSQL type name
(``int4``, ``numeric``, ``_text`` for a text array), ``type`` the JDBC type code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wardgate.dataapi import fields as f
from wardgate.dataapi.backends import Limits, ResultSet, cap_rows
from wardgate.dataapi.errors import DataApiError, database_error, database_unavailable, statement_timeout
from wardgate.dataapi.local import DbApiBackend

if TYPE_CHECKING:
    import psycopg

# PostgreSQL type name -> (JDBC type, precision when the type fixes it), as pgjdbc reports them
PG_TYPES: dict[str, tuple[int, int]] = {
    "bool": (f.JDBC_BIT, 1),
    "int2": (f.JDBC_SMALLINT, 5),
    "int4": (f.JDBC_INTEGER, 10),
    "int8": (f.JDBC_BIGINT, 19),
    "oid": (f.JDBC_BIGINT, 10),
    "float4": (f.JDBC_REAL, 8),
    "float8": (f.JDBC_DOUBLE, 17),
    "numeric": (f.JDBC_NUMERIC, 0),
    "money": (f.JDBC_DOUBLE, 0),
    "bpchar": (f.JDBC_CHAR, 0),
    "char": (f.JDBC_CHAR, 1),
    "varchar": (f.JDBC_VARCHAR, 0),
    "text": (f.JDBC_VARCHAR, 2147483647),
    "name": (f.JDBC_VARCHAR, 63),
    "bytea": (f.JDBC_BINARY, 2147483647),
    "date": (f.JDBC_DATE, 13),
    "time": (f.JDBC_TIME, 15),
    "timetz": (f.JDBC_TIME, 21),
    "timestamp": (f.JDBC_TIMESTAMP, 29),
    "timestamptz": (f.JDBC_TIMESTAMP, 35),
    "uuid": (f.JDBC_OTHER, 36),
    "json": (f.JDBC_OTHER, 2147483647),
    "jsonb": (f.JDBC_OTHER, 2147483647),
}
# connection exceptions, and the server shutting the session down (pg_terminate_backend, restart)
LOST_CONNECTION = {"08000", "08003", "08006", "57P01", "57P02", "57P03"}
SIGNED = {"int2", "int4", "int8", "float4", "float8", "numeric", "money"}
CASE_SENSITIVE = {"text", "varchar", "bpchar", "char", "name", "json", "jsonb"}


class PostgresBackend(DbApiBackend["psycopg.Connection[Any]"]):
    dialect = "postgres"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 5432,
        dbname: str,
        user: str,
        password: str | None = None,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._params: dict[str, Any] = {"host": host, "port": port, "dbname": dbname, "user": user}
        self._password = password
        self.database = dbname
        self._type_names: dict[int, str] = {}
        super().__init__(limits, clock=clock)

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        timeout_ms = int(self.limits.statement_timeout_s * 1000)
        try:
            return psycopg.connect(
                **self._params,
                password=self._password,
                autocommit=True,
                connect_timeout=max(1, int(self.limits.connect_timeout_s)),
                # Server side: the database cancels a statement that runs too long, even if we die.
                # TimeZone UTC: the Data API renders timestamptz in UTC.
                options=f"-c statement_timeout={timeout_ms} -c TimeZone=UTC",
                application_name="wardgate",
            )
        except psycopg.OperationalError:
            # psycopg's message names host, port and user: the agent gets none of it.
            raise database_unavailable("The database is not available: could not connect") from None

    def _alive(self, conn: psycopg.Connection[Any]) -> bool:
        if conn.closed or conn.broken:
            return False
        try:
            conn.execute("SELECT 1")
        except Exception:
            return False
        return True

    def _close(self, conn: psycopg.Connection[Any]) -> None:
        conn.close()

    def _broken(self, conn: psycopg.Connection[Any]) -> bool:
        return bool(conn.closed or conn.broken)

    def _transaction_failed(self, conn: psycopg.Connection[Any]) -> bool:
        from psycopg import pq

        return conn.info.transaction_status == pq.TransactionStatus.INERROR

    def _driver_value(self, value: Any) -> Any:
        return str(value) if isinstance(value, f.JsonText) else value

    def _error(self, exc: Exception) -> DataApiError | None:
        import psycopg

        if isinstance(exc, psycopg.errors.QueryCanceled):
            return statement_timeout()
        state = exc.sqlstate if isinstance(exc, psycopg.Error) else None
        if isinstance(exc, psycopg.OperationalError) and (state is None or state in LOST_CONNECTION):
            return database_unavailable("The database is not available: the connection was lost")
        if isinstance(exc, psycopg.Error):
            primary = exc.diag.message_primary or "the database refused the statement"
            return database_error(f"ERROR: {primary}; SQLState: {exc.sqlstate or 'unknown'}")
        return None

    def _run(
        self, conn: psycopg.Connection[Any], sql: str, params: dict[str, Any], include_metadata: bool
    ) -> ResultSet:
        with conn.cursor() as cur:
            cur.execute(sql, params)  # always a dict, even empty: the text has its % doubled
            if cur.description is None:
                return ResultSet(number_of_records_updated=max(cur.rowcount, 0))
            rows, truncated = cap_rows(_fetch(cur, self.limits.max_rows + 1), self.limits)
            columns = self._columns(conn, cur, include_metadata)
            status = (cur.statusmessage or "").split(" ", 1)[0]
            updated = cur.rowcount if status in ("INSERT", "UPDATE", "DELETE", "MERGE") else 0
            return ResultSet(columns, rows, updated, [], truncated)

    def _columns(
        self, conn: psycopg.Connection[Any], cur: psycopg.Cursor[Any], full: bool
    ) -> list[f.ColumnMetadata]:
        assert cur.description is not None and cur.pgresult is not None
        origins = self._origins(conn, cur) if full else {}
        out = []
        for i, col in enumerate(cur.description):
            type_name, element = self._type_name(conn, col.type_code)
            jdbc, precision = PG_TYPES.get(element or type_name, (f.JDBC_OTHER, 0))
            if col.type_code and type_name.startswith("_"):
                jdbc, base, precision = f.JDBC_ARRAY, PG_TYPES.get(element, (f.JDBC_OTHER, 0))[0], 0
            else:
                base = 0
            if type_name in ("varchar", "bpchar") and col.display_size:
                precision = col.display_size
            if type_name == "numeric":
                precision = col.precision or 0
            schema, table, nullable = origins.get(i, ("", "", 2))
            out.append(
                f.ColumnMetadata(
                    name=col.name,
                    label=col.name,
                    type_name=type_name,
                    type=jdbc,
                    precision=precision,
                    scale=(col.scale or 0) if type_name == "numeric" else 0,
                    nullable=nullable,
                    is_signed=type_name in SIGNED,
                    is_case_sensitive=type_name in CASE_SENSITIVE,
                    is_currency=type_name == "money",
                    array_base_column_type=base,
                    schema_name=schema,
                    table_name=table,
                )
            )
        return out

    def _type_name(self, conn: psycopg.Connection[Any], oid: int) -> tuple[str, str]:
        """(type name, element type name or "") for a type oid; arrays are ``_element``."""
        info = conn.adapters.types.get(oid)
        if info is not None:
            if info.array_oid == oid:
                return "_" + info.name, info.name
            return info.name, ""
        if oid not in self._type_names:
            row = conn.execute(
                "SELECT t.typname, coalesce(e.typname, '') FROM pg_type t "
                "LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' WHERE t.oid = %s",
                (oid,),
            ).fetchone()
            self._type_names[oid] = "|".join(row) if row else "unknown|"
        name, element = self._type_names[oid].split("|", 1)
        return name, element

    @staticmethod
    def _origins(conn: psycopg.Connection[Any], cur: psycopg.Cursor[Any]) -> dict[int, tuple[str, str, int]]:
        """Schema, table and nullability of columns read straight from a table (one catalog query)."""
        result = cur.pgresult
        assert result is not None and cur.description is not None
        wanted = {
            i: (result.ftable(i), result.ftablecol(i))
            for i in range(len(cur.description))
            if result.ftable(i)
        }
        if not wanted:
            return {}
        tables = sorted({t for t, _ in wanted.values()})
        rows = conn.execute(
            "SELECT c.oid::int8, a.attnum::int4, n.nspname, c.relname, a.attnotnull "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 WHERE c.oid = ANY(%s)",
            (tables,),
        ).fetchall()
        found = {
            (int(oid), int(num)): (str(ns), str(rel), 0 if notnull else 1)
            for oid, num, ns, rel, notnull in rows
        }
        return {i: found[key] for i, key in wanted.items() if key in found}


def _fetch(cur: psycopg.Cursor[Any], limit: int) -> list[Any]:
    # One past the row cap, so truncation is seen without reading further.
    return cur.fetchmany(limit)
