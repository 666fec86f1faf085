"""Fuzz the Data API request parser, ``wardgate.dataapi.requests.parse_request``, and ``:name`` binding.

Input: ``<operation>\\n<body>``: the path after ``/sql/{connection}/`` (``Execute``,
``BatchExecute``, ``BeginTransaction``, ``CommitTransaction``, ``RollbackTransaction``, or
anything else) and the JSON body boto3's ``rds-data`` client would send, as bytes. The
connection's database is ``appdb``.

A crash is any exception but ``DataApiError`` (rendered as the Data API's error,
``BadRequestException`` here), an error of another type than ``BadRequestException``, or an
accepted request breaking its checks: a ``sql`` that is empty or over the limit, a ``database``
other than the connection's. Accepted ``Execute``/``BatchExecute`` statements then go through
``dataapi.params.bind`` (``:name`` to the drivers' paramstyle) in both dialects, where again
only ``DataApiError`` may escape.
"""

from __future__ import annotations

import json

import atheris
from _harness import Finding, fuzz

with atheris.instrument_imports(include=["wardgate"]):
    from wardgate.dataapi.errors import DataApiError
    from wardgate.dataapi.params import bind
    from wardgate.dataapi.requests import (
        MAX_SQL_CHARS,
        BatchExecuteStatementRequest,
        ExecuteStatementRequest,
        parse_request,
    )

DATABASE = "appdb"


def test_one_input(data: bytes) -> None:
    raw_operation, _, body = data.partition(b"\n")
    operation = raw_operation.decode("utf-8", "replace")
    try:
        request = parse_request(operation, body, database=DATABASE)
    except DataApiError as refused:
        if refused.error_type != "BadRequestException" or refused.status != 400:
            raise Finding(f"parse_request refused with {refused.error_type} {refused.status}") from None
        json.dumps(refused.to_body())
        return
    if isinstance(request, ExecuteStatementRequest | BatchExecuteStatementRequest):
        if not request.sql.strip() or len(request.sql) > MAX_SQL_CHARS:
            raise Finding(f"accepted sql of {len(request.sql)} characters: {request.sql[:40]!r}")
        document = json.loads(body)
        if document.get("database") not in (None, "", DATABASE):
            raise Finding(f"accepted database {document.get('database')!r}")
        parameter_sets = (
            (request.parameters,) if isinstance(request, ExecuteStatementRequest) else request.parameter_sets
        )
        for parameters in parameter_sets:
            for dialect in ("postgres", "mysql"):
                try:
                    bind(request.sql, parameters, dialect)
                except DataApiError as refused:
                    if refused.error_type != "BadRequestException":
                        raise Finding(f"bind refused with {refused.error_type}") from None


if __name__ == "__main__":
    fuzz("dataapi_request", test_one_input)
