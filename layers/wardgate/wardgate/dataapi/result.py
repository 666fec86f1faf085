"""The Data API response bodies, built from a (masked) ``ResultSet``.

``records`` hold one typed Field per column (``formattedRecords`` instead, a JSON string of
objects keyed by column label, when ``formatRecordsAs`` is JSON); ``columnMetadata`` only when
``includeResultMetadata`` is set, as the real service does. ``truncated`` is wardgate's own
addition (boto3 ignores members it does not know): true when a row or byte cap dropped rows.
"""

from __future__ import annotations

from typing import Any

from wardgate.dataapi.backends import BatchResult, ResultSet
from wardgate.dataapi.fields import format_records, to_field
from wardgate.dataapi.requests import ExecuteStatementRequest


def execute_response(request: ExecuteStatementRequest, result: ResultSet) -> dict[str, Any]:
    options = request.result_set_options
    decimal, long = options.decimal_return_type, options.long_return_type
    body: dict[str, Any] = {"numberOfRecordsUpdated": result.number_of_records_updated}
    if result.columns:
        if request.format_records_as == "JSON":
            body["formattedRecords"] = format_records(result.columns, result.rows, decimal, long)
        else:
            body["records"] = [
                [to_field(v, c, decimal, long) for v, c in zip(row, result.columns, strict=True)]
                for row in result.rows
            ]
            if request.include_result_metadata:
                body["columnMetadata"] = [c.to_wire() for c in result.columns]
    elif request.include_result_metadata and request.format_records_as != "JSON":
        body["columnMetadata"] = []
    body["generatedFields"] = [to_field(v) for v in result.generated_fields]
    if result.truncated:
        body["truncated"] = True
    return body


def batch_response(result: BatchResult) -> dict[str, Any]:
    return {
        "updateResults": [
            {"generatedFields": [to_field(v) for v in fields]} for fields in result.update_results
        ]
    }


def begin_response(transaction_id: str) -> dict[str, Any]:
    return {"transactionId": transaction_id}


def transaction_status_response(status: str) -> dict[str, Any]:
    return {"transactionStatus": status}
