"""``RdsDataBackend``: the real ``rds-data`` API, called with the function's IAM role.

The connection's cluster ARN, secret ARN and database are used, never the agent's. Results
are always requested with metadata and as typed records (masking needs column names; the
caller renders ``formattedRecords`` itself after masking). Fields become plain Python values
losslessly (a decimal stays the string AWS sent), so re-encoding gives the same wire values.

**Transaction ids.** AWS's id is wrapped as ``<aws id>.<tag>`` where the tag is an HMAC of
the connection, the owner and the AWS id under ``binding_key``. Another identity's calls carry
a tag that does not verify and get ``TransactionNotFoundException``; nothing is kept in memory,
so this holds across Lambda containers. AWS enforces expiry (3 minutes idle, 24 hours).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from wardgate.dataapi.backends import BatchResult, Limits, ResultSet, cap_rows
from wardgate.dataapi.errors import STATUS_BY_TYPE, DataApiError, database_unavailable, transaction_not_found
from wardgate.dataapi.fields import ColumnMetadata, field_to_python, to_text
from wardgate.dataapi.requests import BatchExecuteStatementRequest, ExecuteStatementRequest, SqlParameter

TAG_CHARS = 32
# AWS errors about wardgate itself (its IAM role, AWS failing) rather than the agent's request
OUR_OWN_TROUBLE = ("AccessDeniedException", "InternalServerErrorException")


class RdsDataBackend:
    def __init__(
        self,
        *,
        connection: str,
        resource_arn: str,
        secret_arn: str,
        database: str,
        binding_key: bytes,
        client: Any = None,
        limits: Limits | None = None,
    ) -> None:
        if len(binding_key) < 16:
            raise ValueError("binding_key must be at least 16 bytes")
        self.connection = connection
        self.resource_arn, self.secret_arn, self.database = resource_arn, secret_arn, database
        self._key = binding_key
        self._client = client
        self.limits = limits or Limits()

    @property
    def client(self) -> Any:
        if self._client is None:
            from wardgate import aws

            self._client = aws.client("rds-data")
        return self._client

    # ---- the Backend protocol --------------------------------------------------------------

    def execute(self, request: ExecuteStatementRequest, *, owner: str) -> ResultSet:
        kwargs = self._target()
        kwargs.update(
            sql=request.sql,
            parameters=[boto_parameter(p) for p in request.parameters],
            includeResultMetadata=True,
            continueAfterTimeout=request.continue_after_timeout,
            resultSetOptions={
                "decimalReturnType": request.result_set_options.decimal_return_type,
                "longReturnType": request.result_set_options.long_return_type,
            },
        )
        if request.transaction_id is not None:
            kwargs["transactionId"] = self._unwrap(request.transaction_id, owner)
        response = self._call("execute_statement", kwargs, request.transaction_id)
        columns = [ColumnMetadata.from_wire(c) for c in response.get("columnMetadata", [])]
        raw_rows = response.get("records", [])
        rows, truncated = cap_rows([[field_to_python(v) for v in record] for record in raw_rows], self.limits)
        return ResultSet(
            columns=columns,
            rows=rows,
            number_of_records_updated=int(response.get("numberOfRecordsUpdated", 0)),
            generated_fields=[field_to_python(v) for v in response.get("generatedFields", [])],
            truncated=truncated,
        )

    def batch_execute(self, request: BatchExecuteStatementRequest, *, owner: str) -> BatchResult:
        kwargs = self._target()
        kwargs.update(
            sql=request.sql, parameterSets=[[boto_parameter(p) for p in s] for s in request.parameter_sets]
        )
        if request.transaction_id is not None:
            kwargs["transactionId"] = self._unwrap(request.transaction_id, owner)
        response = self._call("batch_execute_statement", kwargs, request.transaction_id)
        return BatchResult(
            [
                [field_to_python(v) for v in r.get("generatedFields", [])]
                for r in response.get("updateResults", [])
            ]
        )

    def begin_transaction(self, *, owner: str) -> str:
        response = self._call("begin_transaction", self._target(), None)
        return self._wrap(str(response["transactionId"]), owner)

    def commit_transaction(self, transaction_id: str, *, owner: str) -> str:
        kwargs = {"resourceArn": self.resource_arn, "secretArn": self.secret_arn}
        kwargs["transactionId"] = self._unwrap(transaction_id, owner)
        return str(self._call("commit_transaction", kwargs, transaction_id).get("transactionStatus", ""))

    def rollback_transaction(self, transaction_id: str, *, owner: str) -> str:
        kwargs = {"resourceArn": self.resource_arn, "secretArn": self.secret_arn}
        kwargs["transactionId"] = self._unwrap(transaction_id, owner)
        return str(self._call("rollback_transaction", kwargs, transaction_id).get("transactionStatus", ""))

    def close(self) -> None:
        pass  # nothing held: boto3's client is shared by the container

    # ---- internals -------------------------------------------------------------------------

    def _target(self) -> dict[str, Any]:
        return {"resourceArn": self.resource_arn, "secretArn": self.secret_arn, "database": self.database}

    def _tag(self, aws_id: str, owner: str) -> str:
        message = "\0".join((self.connection, owner, aws_id)).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:TAG_CHARS]

    def _wrap(self, aws_id: str, owner: str) -> str:
        return f"{aws_id}.{self._tag(aws_id, owner)}"

    def _unwrap(self, transaction_id: str, owner: str) -> str:
        aws_id, _, tag = transaction_id.rpartition(".")
        if not aws_id or not hmac.compare_digest(tag, self._tag(aws_id, owner)):
            raise transaction_not_found(transaction_id)
        return aws_id

    def _call(self, operation: str, kwargs: dict[str, Any], transaction_id: str | None) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response: dict[str, Any] = getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = str(error.get("Message", "")) or code
            if code in ("TransactionNotFoundException", "NotFoundException") and transaction_id is not None:
                raise transaction_not_found(transaction_id) from None  # the agent's id, not AWS's
            if code in STATUS_BY_TYPE and code not in OUR_OWN_TROUBLE:
                raise DataApiError(code, message) from None
            # Our own IAM or AWS trouble, not the agent's request: a short 503, details in our logs.
            raise database_unavailable(f"The Data API is not available ({code or 'error'})") from None
        except BotoCoreError as exc:
            raise database_unavailable(f"The Data API is not available ({type(exc).__name__})") from None
        return response


def boto_parameter(parameter: SqlParameter) -> dict[str, Any]:
    """A parameter as boto3's ``rds-data`` client takes it (blobs as bytes, hinted values as text)."""
    out: dict[str, Any] = {"name": parameter.name, "value": _boto_field(parameter.value)}
    if parameter.type_hint is not None:
        out["typeHint"] = parameter.type_hint
    return out


def _boto_field(value: Any) -> dict[str, Any]:
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes):
        return {"blobValue": value}
    if isinstance(value, date | time | Decimal | UUID | str):  # hinted text, as the agent wrote it
        return {"stringValue": to_text(value)}
        return {"stringValue": str(value)}
    raise TypeError(f"cannot send a {type(value).__name__} parameter")
