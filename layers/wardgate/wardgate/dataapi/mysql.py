"""``MySqlBackend``: Data API requests against a real MySQL or MariaDB, through PyMySQL.

For ``wardgate dev`` and tests (the Lambda uses ``RdsDataBackend``). Column metadata follows
MySQL Connector/J, which the Data API reports: ``typeName`` upper case (``INT``, ``DECIMAL``,
``VARCHAR``, ``DATETIME``), ``type`` the JDBC code, with table, schema, nullability, sign and
auto-increment from the protocol's field flags. Auto-increment ids of an insert come back as
``generatedFields``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import time as dtime
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from wardgate.dataapi import fields as f
from wardgate.dataapi.backends import Limits, ResultSet, cap_rows
from wardgate.dataapi.errors import DataApiError, database_error, database_unavailable, statement_timeout
from wardgate.dataapi.local import DbApiBackend

if TYPE_CHECKING:
    import pymysql

BINARY_CHARSET = 63
NOT_NULL_FLAG, UNSIGNED_FLAG, AUTO_INCREMENT_FLAG = 1, 32, 512
LOST_CONNECTION = {2006, 2013, 2055}  # server gone away, lost during query, lost at handshake
CANNOT_CONNECT = {1040, 1044, 1045, 1049, 2002, 2003, 2005}
TIMED_OUT = {1969, 3024}  # MariaDB max_statement_time, MySQL max_execution_time

# protocol field type -> (type name, JDBC type); text/binary variants resolved by charset below
MYSQL_TYPES: dict[int, tuple[str, int]] = {
    0: ("DECIMAL", f.JDBC_DECIMAL),
    1: ("TINYINT", f.JDBC_TINYINT),
    2: ("SMALLINT", f.JDBC_SMALLINT),
    3: ("INT", f.JDBC_INTEGER),
    4: ("FLOAT", f.JDBC_REAL),
    5: ("DOUBLE", f.JDBC_DOUBLE),
    6: ("NULL", f.JDBC_OTHER),
    7: ("TIMESTAMP", f.JDBC_TIMESTAMP),
    8: ("BIGINT", f.JDBC_BIGINT),
    9: ("MEDIUMINT", f.JDBC_INTEGER),
    10: ("DATE", f.JDBC_DATE),
    11: ("TIME", f.JDBC_TIME),
    12: ("DATETIME", f.JDBC_TIMESTAMP),
    13: ("YEAR", f.JDBC_DATE),
    16: ("BIT", f.JDBC_BIT),
    245: ("JSON", f.JDBC_LONGVARCHAR),
    246: ("DECIMAL", f.JDBC_DECIMAL),
    247: ("ENUM", f.JDBC_CHAR),
    248: ("SET", f.JDBC_CHAR),
    255: ("GEOMETRY", f.JDBC_BINARY),
}
TEXT_TYPES: dict[int, tuple[tuple[str, int], tuple[str, int]]] = {
    # type -> ((text name, JDBC), (binary name, JDBC))
    15: (("VARCHAR", f.JDBC_VARCHAR), ("VARBINARY", f.JDBC_VARBINARY)),
    253: (("VARCHAR", f.JDBC_VARCHAR), ("VARBINARY", f.JDBC_VARBINARY)),
    254: (("CHAR", f.JDBC_CHAR), ("BINARY", f.JDBC_BINARY)),
    249: (("TINYTEXT", f.JDBC_VARCHAR), ("TINYBLOB", f.JDBC_VARBINARY)),
    250: (("MEDIUMTEXT", f.JDBC_LONGVARCHAR), ("MEDIUMBLOB", f.JDBC_LONGVARBINARY)),
    251: (("LONGTEXT", f.JDBC_LONGVARCHAR), ("LONGBLOB", f.JDBC_LONGVARBINARY)),
    252: (("TEXT", f.JDBC_LONGVARCHAR), ("BLOB", f.JDBC_LONGVARBINARY)),
}
NUMERIC = {0, 1, 2, 3, 4, 5, 8, 9, 246}


class MySqlBackend(DbApiBackend["pymysql.connections.Connection[Any]"]):
    dialect = "mysql"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 3306,
        database: str,
        user: str,
        password: str = "",
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._params: dict[str, Any] = {"host": host, "port": port, "database": database, "user": user}
        self._password = password
        self.database = database
        super().__init__(limits, clock=clock)

    def _connect(self) -> pymysql.connections.Connection[Any]:
        import pymysql

        timeout = max(1, int(self.limits.connect_timeout_s))
        try:
            conn = pymysql.connect(
                **self._params,
                password=self._password,
                autocommit=True,
                charset="utf8mb4",
                connect_timeout=timeout,
                read_timeout=int(self.limits.statement_timeout_s) + 5,  # the server cancels first
                write_timeout=int(self.limits.statement_timeout_s) + 5,
            )
        except pymysql.MySQLError:
            raise database_unavailable("The database is not available: could not connect") from None
        with conn.cursor() as cur:
            # Server side: the database cancels a statement that runs too long, even if we die.
            if "mariadb" in str(conn.get_server_info()).lower():  # type: ignore[no-untyped-call]
                cur.execute(f"SET SESSION max_statement_time = {self.limits.statement_timeout_s:.3f}")
            else:
                cur.execute(f"SET SESSION max_execution_time = {int(self.limits.statement_timeout_s * 1000)}")
        return conn

    def _alive(self, conn: pymysql.connections.Connection[Any]) -> bool:
        try:
            conn.ping(reconnect=False)
        except Exception:
            return False
        return True

    def _close(self, conn: pymysql.connections.Connection[Any]) -> None:
        conn.close()

    def _broken(self, conn: pymysql.connections.Connection[Any]) -> bool:
        return not conn.open

    def _driver_value(self, value: Any) -> Any:
        return str(value) if isinstance(value, f.JsonText) else value

    def _error(self, exc: Exception) -> DataApiError | None:
        import pymysql

        if not isinstance(exc, pymysql.MySQLError):
            return None
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        message = str(exc.args[1]) if len(exc.args) > 1 else "the database refused the statement"
        if code in TIMED_OUT:
            return statement_timeout()
        if code in LOST_CONNECTION:
            return database_unavailable("The database is not available: the connection was lost")
        if code in CANNOT_CONNECT:
            return database_unavailable("The database is not available: could not connect")
        return database_error(f"{message}; Error code: {code}")

    def _run(
        self,
        conn: pymysql.connections.Connection[Any],
        sql: str,
        params: dict[str, Any],
        include_metadata: bool,
    ) -> ResultSet:
        with conn.cursor() as cur:
            cur.execute(sql, params)  # always a dict, even empty: the text has its % doubled
            if cur.description is None:
                generated = [cur.lastrowid] if cur.lastrowid else []
                return ResultSet(number_of_records_updated=max(cur.rowcount, 0), generated_fields=generated)
            fields_ = cur._result.fields if cur._result is not None else []
            columns = [_column(field) for field in fields_]
            raw = cur.fetchmany(self.limits.max_rows + 1)
            rows, truncated = cap_rows([_row(r, columns) for r in raw], self.limits)
            return ResultSet(columns, rows, 0, [], truncated)


def _column(field: Any) -> f.ColumnMetadata:
    code, flags, binary = field.type_code, field.flags, field.charsetnr == BINARY_CHARSET
    if code in TEXT_TYPES:
        type_name, jdbc = TEXT_TYPES[code][1 if binary else 0]
    else:
        type_name, jdbc = MYSQL_TYPES.get(code, ("UNKNOWN", f.JDBC_OTHER))
    unsigned = bool(flags & UNSIGNED_FLAG)
    if code == 1 and field.length == 1:  # TINYINT(1) is BOOLEAN: BIT, as Connector/J reports it
        type_name, jdbc = "BIT", f.JDBC_BIT
    if unsigned and code in NUMERIC:
        type_name += " UNSIGNED"
    scale = field.scale if code in (0, 246, 4, 5) else 0
    precision = field.length
    if code in (0, 246):  # the protocol's length counts the sign and the point
        precision = field.length - (1 if scale else 0) - (0 if unsigned else 1)
    elif code in TEXT_TYPES and not binary:
        precision = field.length // 4  # utf8mb4: 4 bytes a character
    return f.ColumnMetadata(
        name=field.org_name or field.name,
        label=field.name,
        type_name=type_name,
        type=jdbc,
        precision=precision,
        scale=scale,
        nullable=0 if flags & NOT_NULL_FLAG else 1,
        is_signed=code in NUMERIC and not unsigned,
        is_auto_increment=bool(flags & AUTO_INCREMENT_FLAG),
        is_case_sensitive=code in TEXT_TYPES and binary,
        schema_name=field.db.decode() if isinstance(field.db, bytes) else str(field.db or ""),
        table_name=field.org_table or field.table_name or "",
    )


def _row(raw: Any, columns: list[f.ColumnMetadata]) -> list[Any]:
    """PyMySQL's values made uniform with PostgreSQL's (TIME, BIT(1), JSON)."""
    out: list[Any] = []
    for value, column in zip(raw, columns, strict=True):
        if isinstance(value, timedelta) and timedelta(0) <= value < timedelta(days=1):
            value = _time_of(value)
        elif column.type == f.JDBC_BIT and isinstance(value, int) and column.precision == 1:
            value = bool(value)
        elif column.type == f.JDBC_BIT and isinstance(value, bytes) and column.precision == 1:
            value = value != b"\x00"
        elif column.type_name == "JSON" and isinstance(value, str | bytes):
            value = json.loads(value)
        out.append(value)
    return out


def _time_of(value: timedelta) -> dtime:
    seconds = value.seconds
    return dtime(seconds // 3600, seconds // 60 % 60, seconds % 60, value.microseconds)
