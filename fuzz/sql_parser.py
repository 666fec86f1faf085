"""Fuzz the SQL normaliser, ``wardgate.operations.sql.parse_sql``, in both dialects.

Input: one SQL string as an agent sends it (Data API ``sql``, a PostgreSQL Query or Parse), parsed
as PostgreSQL and as MySQL.

A crash is any exception but ``UnparseableOperation`` (the function's contract: "never raises
anything else, whatever ``text`` holds"), a hang (sqlglot or the token checks running away), or
a parse that breaks what policies rely on: every statement has a known ``kind``, non-empty
text that appears in the input, and the operation has a JSON recording form.
"""

from __future__ import annotations

import json

import atheris
from _harness import Finding, fuzz, text

with atheris.instrument_imports(include=["wardgate"]):
    from wardgate.operations import UnparseableOperation
    from wardgate.operations.sql import KINDS, parse_sql


def test_one_input(data: bytes) -> None:
    sql = text(data)
    for dialect in ("postgres", "mysql"):
        try:
            operation = parse_sql(sql, dialect)
        except UnparseableOperation as refused:
            if not isinstance(refused.reason, str) or not refused.reason:
                raise Finding("UnparseableOperation without a reason") from None
            continue
        for statement in operation.statements:
            if statement.kind not in KINDS:
                raise Finding(f"{dialect}: unknown kind {statement.kind!r}")
            if not statement.text or statement.text not in sql:
                raise Finding(f"{dialect}: statement text {statement.text!r} is not part of the input")
        json.dumps(operation.to_record())


if __name__ == "__main__":
    fuzz("sql_parser", test_one_input)
