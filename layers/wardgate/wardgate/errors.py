"""The errors a request can end with, each mapped to one HTTP status and a stable code.

Every refusal the gateway produces is one of these, so the handler can turn it into a JSON
body of the same shape everywhere: ``{"error": {"code": ..., "message": ..., "request_id": ...}}``.
Messages are written for the agent calling us: specific, but never containing secrets,
tokens or stack traces.
"""

from __future__ import annotations


class GatewayError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(GatewayError):
    status = 400
    code = "bad_request"


class Unauthorized(GatewayError):
    status = 401
    code = "invalid_token"


class Forbidden(GatewayError):
    status = 403
    code = "forbidden"


class NotFound(GatewayError):
    status = 404
    code = "not_found"


class NotAcceptable(GatewayError):
    """The client accepts no representation wardgate serves (a protobuf-only Kubernetes client)."""

    status = 406
    code = "not_acceptable"


class Conflict(GatewayError):
    status = 409
    code = "conflict"


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"


class BadGateway(GatewayError):
    status = 502
    code = "upstream_unavailable"


class ServiceUnavailable(GatewayError):
    """A dependency of the gateway itself (DynamoDB, S3, Firehose, Secrets Manager, the IdP) failed."""

    status = 503
    code = "service_unavailable"


class GatewayTimeout(GatewayError):
    status = 504
    code = "upstream_timeout"
