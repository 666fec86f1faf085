"""The RDS Data API's errors: one exception type carrying the wire error type, HTTP status and message.

The error types and statuses are those of botocore's ``rds-data`` service model, so a real
boto3 client raises the same ``client.exceptions.<Type>`` it would against AWS. Messages are
written for the agent: the database's own message at most, never a stack trace, a host name,
a connection string or a password.
"""

from __future__ import annotations

from typing import Any

# error type -> HTTP status, from botocore/data/rds-data/2018-08-01/service-2.json
STATUS_BY_TYPE: dict[str, int] = {
    "AccessDeniedException": 403,
    "BadRequestException": 400,
    "DatabaseErrorException": 400,
    "DatabaseNotFoundException": 404,
    "DatabaseUnavailableException": 504,
    "ForbiddenException": 403,
    "InternalServerErrorException": 500,
    "NotFoundException": 404,
    "SecretsErrorException": 400,
    "ServiceUnavailableError": 503,
    "StatementTimeoutException": 400,
    "TransactionNotFoundException": 404,
    "UnsupportedResultException": 400,
}


class DataApiError(Exception):
    """An error in the Data API's shape: ``error_type`` is the ``x-amzn-ErrorType`` botocore reads."""

    def __init__(self, error_type: str, message: str) -> None:
        if error_type not in STATUS_BY_TYPE:
            raise ValueError(f"unknown Data API error type {error_type!r}")
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.status = STATUS_BY_TYPE[error_type]
        self.message = message

    def to_body(self) -> dict[str, Any]:
        """The JSON body of the error response (rest-json: the type also goes in a header)."""
        return {"message": self.message, "__type": self.error_type}

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json", "x-amzn-ErrorType": self.error_type}


def bad_request(message: str) -> DataApiError:
    return DataApiError("BadRequestException", message)


def database_error(message: str) -> DataApiError:
    return DataApiError("DatabaseErrorException", message)


def transaction_not_found(transaction_id: str) -> DataApiError:
    # The real service's wording; the same error for an unknown, expired or someone else's id,
    # so an id cannot be probed for existence.
    return DataApiError("TransactionNotFoundException", f"Transaction {transaction_id} is not found")


def statement_timeout(
    message: str = "The statement ran past the statement timeout and was cancelled",
) -> DataApiError:
    return DataApiError("StatementTimeoutException", message)


def database_unavailable(message: str = "The database is not available") -> DataApiError:
    return DataApiError("ServiceUnavailableError", message)
