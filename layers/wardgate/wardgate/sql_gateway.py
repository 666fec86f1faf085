"""One RDS Data API call through ``POST /sql/{connection}/{Execute|BatchExecute|...}``.

Agents keep ``boto3.client("rds-data")`` with only the endpoint changed. On top of ``gate.Gate``
(token, registry, connection, policy, recording), this module parses the Data API request, asks
policy about every statement (``BeginTransaction`` and friends are the statements ``BEGIN``,
``COMMIT`` and ``ROLLBACK``), runs it on the connection's backend, masks every row by column
rule and by content before the agent or the recording sees it, and answers in the Data API's
shapes, errors included (``x-amzn-ErrorType``), so boto3 raises what it would raise on AWS.

A statement refused inside a transaction rolls that transaction back, and the error says so:
the agent can never believe half a transaction was applied.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from wardgate.apigw import HttpRequest, HttpResponse, check_request_body
from wardgate.approvals.required import ApprovalRequired
from wardgate.connections import Connection
from wardgate.credentials import CredentialStore
from wardgate.dataapi import Backend, DataApiError, Limits, ResultSet, parse_request, run
from wardgate.dataapi.requests import (
    BatchExecuteStatementRequest,
    BeginTransactionRequest,
    CommitTransactionRequest,
    DataApiRequest,
    ExecuteStatementRequest,
)
from wardgate.errors import BadRequest, Forbidden, GatewayError
from wardgate.gate import (
    Gate,
    Progress,
    masked_counts_header,
    ms_since,
    sql_operation_record,
)
from wardgate.identity import Identity
from wardgate.masking.engine import MaskingRefused, mask_rows
from wardgate.masking.policy import AppliedMasking
from wardgate.operations import UnparseableOperation
from wardgate.operations.sql import Dialect, SqlOperation, parse_sql
from wardgate.recording import Recording, recorded_body

if TYPE_CHECKING:  # the approval flow's modules are imported when an operation is first held
    from wardgate.approvals.model import ApprovalRequest

# Which Data API error type a wardgate refusal becomes (boto3 reads the type, not the status).
ERROR_TYPE_BY_STATUS = {
    400: "BadRequestException",
    401: "AccessDeniedException",
    403: "ForbiddenException",
    404: "NotFoundException",
    413: "BadRequestException",
    500: "InternalServerErrorException",
}
TRANSACTION_CONTROL = {BeginTransactionRequest: "BEGIN", CommitTransactionRequest: "COMMIT"}
PARSED_STATEMENTS = 1024  # distinct statement texts a container keeps parsed
PARSED_TEXT_MAX = 8 * 1024  # longer texts are parsed every time (rarely repeated, large to keep)


class ApprovalPending(GatewayError):
    """A Data API call held for approval: boto3 raises ``ApprovalPendingException`` naming the request."""

    status = 403
    code = "approval_pending"
    error_type = "ApprovalPendingException"

    def __init__(self, request_id: str, poll_url: str) -> None:
        super().__init__(
            f"this statement needs approval: request {request_id} is pending ({poll_url}); "
            "once it is approved, send the identical call again and it runs, once"
        )
        self.request_id = request_id


def call_key(identity: Identity, connection: str, rule: str, request: HttpRequest) -> str:
    """What makes two Data API calls the same call: who, where, which rule, which statement and values."""
    try:
        body = {k: v for k, v in json.loads(request.body).items() if k not in ("resourceArn", "secretArn")}
    except (ValueError, AttributeError):
        body = {"raw": request.body.decode("utf-8", "replace")}
    material = [identity.issuer, identity.subject, connection, rule, request.proxy_path.strip("/"), body]
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


class DataApiRefusal(GatewayError):
    """A Data API error (bad request, database error, unknown transaction) as a gateway refusal."""

    def __init__(self, error: DataApiError) -> None:
        super().__init__(error.message, code=error.error_type)
        self.status = error.status
        self.error_type = error.error_type


def data_api_error_response(error: GatewayError, request_id: str) -> HttpResponse:
    """Any refusal in the Data API's error shape; wardgate's own code stays readable in ``code``."""
    if isinstance(error, DataApiRefusal | ApprovalPending):
        error_type, message = error.error_type, error.message
    else:
        error_type = ERROR_TYPE_BY_STATUS.get(error.status, "ServiceUnavailableError")
        message = f"{error.message} (wardgate: {error.code})"
    body = {"message": message, "code": error.code, "__type": error_type}
    headers = {
        "content-type": "application/json",
        "x-amzn-errortype": error_type,
        "x-amzn-requestid": request_id,
    }
    return HttpResponse(error.status, headers, json.dumps(body).encode())


def dialect_of(upstream_url: str) -> Dialect:
    """The SQL dialect policy parses in: by scheme, or ``?dialect=mysql`` on an rds-data URL."""
    parts = urlsplit(upstream_url)
    if parts.scheme in ("mysql", "mariadb"):
        return "mysql"
    if parts.scheme == "rds-data" and parse_qs(parts.query).get("dialect", ["postgres"])[-1] == "mysql":
        return "mysql"
    return "postgres"


@functools.lru_cache(maxsize=256)  # a few URLs per container (one per SQL connection); bounded
def _url_facts(upstream_url: str) -> tuple[str | None, Dialect]:
    """The database a connection's URL names (None: the backend's default) and its dialect: pure
    functions of the URL, parsed once per URL rather than on every statement."""
    return unquote(urlsplit(upstream_url).path.lstrip("/")) or None, dialect_of(upstream_url)


def caps_of(upstream_url: str, defaults: Limits) -> Limits:
    """A connection's own result caps: ``?max_rows=100&max_bytes=65536`` on its upstream URL."""
    query = parse_qs(urlsplit(upstream_url).query)
    caps = {name: int(query[name][-1]) for name in ("max_rows", "max_bytes") if name in query}
    if any(value < 1 for value in caps.values()):
        raise ValueError("max_rows and max_bytes must be positive")
    return replace(defaults, **caps)


@dataclass(eq=False, repr=False)  # a service: compared by identity, its caches never printed
class BackendPool:
    """One backend per connection per container: it pools database sessions and holds transactions."""

    credentials: CredentialStore
    limits: Limits = field(default_factory=Limits)
    binding_key: Any = None  # () -> bytes: the rds-data transaction-id key, read when first needed
    _backends: dict[tuple[str, str, str | None], Backend] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def get(self, connection: Connection) -> Backend:
        from wardgate.dataapi.factory import backend_from_url  # drivers load on first SQL request

        key = (connection.name, connection.upstream_url, connection.credential_secret)
        with self._lock:
            backend = self._backends.get(key)
            if backend is None:
                credential = (
                    self.credentials.get(connection.credential_secret)
                    if connection.credential_secret
                    else None
                )
                is_rds = connection.upstream_url.startswith("rds-data:")
                try:
                    backend = backend_from_url(
                        connection.name,
                        connection.upstream_url,
                        password=credential.password if credential else None,
                        binding_key=self.binding_key() if is_rds and self.binding_key else None,
                        limits=caps_of(connection.upstream_url, self.limits),
                    )
                except ValueError as exc:
                    raise GatewayError(f"connection {connection.name!r} is misconfigured: {exc}") from None
                self._backends[key] = backend
            return backend


class ParsedStatements:
    """Parsed SQL and its recorded form by (dialect, exact text), least recently used out first.

    Parsing is a pure function of the text, and so is the recorded form (literals masked): a
    remembered parse is the parse. The policy in force still decides every call on it, so no
    decision is remembered. Only statements that parse are kept (an unparseable one is parsed
    again each time, as before), at most ``entries`` of them, each at most ``PARSED_TEXT_MAX``.
    """

    def __init__(self, entries: int = PARSED_STATEMENTS) -> None:
        self.entries = entries
        self._parsed: OrderedDict[tuple[str, str], tuple[SqlOperation, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._parsed)

    def parse(
        self, text: str, dialect: Dialect
    ) -> tuple[SqlOperation | UnparseableOperation, dict[str, Any]]:
        """The operation (or why it is unparseable) and its recorded form, a copy of its own."""
        key = (dialect, text)
        with self._lock:
            found = self._parsed.get(key)
            if found is not None:
                self._parsed.move_to_end(key)
        if found is None:
            operation = _parse(text, dialect)
            record = sql_operation_record(operation, dialect)
            if isinstance(operation, UnparseableOperation):
                return operation, record
            found = (operation, record)
            if len(text) <= PARSED_TEXT_MAX and self.entries > 0:
                with self._lock:
                    self._parsed[key] = found
                    while len(self._parsed) > self.entries:
                        self._parsed.popitem(last=False)
        operation, record = found
        return operation, {**record, "statements": [dict(s) for s in record["statements"]]}


@dataclass(eq=False, repr=False)  # a service: compared by identity, its caches never printed
class SqlGateway(Gate):
    """``Gate`` for the Data API: every statement decided, run on the connection's backend, masked."""

    backends: BackendPool
    parses: ParsedStatements = field(default_factory=ParsedStatements)

    def handle(self, request: HttpRequest) -> HttpResponse:
        return self.serve(
            request, lambda rec, progress: self._execute(request, rec, progress), data_api_error_response
        )

    def _execute(self, request: HttpRequest, recording: Recording, progress: Progress) -> HttpResponse:
        started = time.perf_counter()
        identity, connection = self.admit(request, recording, progress)
        if request.method != "POST":
            raise BadRequest(f"the Data API takes POST requests, not {request.method}", code="bad_method")
        check_request_body(request.body, self.limits.max_request_body)
        database, dialect = _url_facts(connection.upstream_url)
        try:
            data_request = parse_request(request.proxy_path.strip("/"), request.body, database=database)
        except DataApiError as error:
            raise DataApiRefusal(error) from None
        operation, recorded = self.parses.parse(_sql_of(data_request), dialect)
        recording.operation = {**recorded, "call": type(data_request).__name__}
        backend = self.backends.get(connection)
        owner = f"{identity.issuer} {identity.subject}"
        approval: ApprovalRequest | None = None
        try:
            policy_set = self.decide(identity, connection, operation, recording)
        except ApprovalRequired as required:
            if self.approvals is None or getattr(data_request, "transaction_id", None) is not None:
                # A held statement could only run after its transaction is long gone: refuse it there.
                raise _rolled_back(required, data_request, backend, owner) from None
            approval = self._approved_call(request, identity, connection, required, recording, progress)
            policy_set = required.policy_set
        except Forbidden as refused:
            raise _rolled_back(refused, data_request, backend, owner) from None
        masking = policy_set.masking.for_caller(connection.name, identity.groups)
        recording.timings_ms["guard"] = ms_since(started)

        self.recorder.record_request(recording)  # durable before the statement runs: fail closed
        progress.forwarded = True
        backend_started = time.perf_counter()
        masked = _RowMasking(masking)
        try:
            response = run(backend, data_request, owner=owner, on_result=masked)
        except MaskingRefused as refused:
            if approval is not None and self.approvals is not None:  # it ran: the approval is spent
                self.approvals.finish_call(approval, 400, {"status": 400, "result": "withheld"})
            raise DataApiRefusal(
                DataApiError("UnsupportedResultException", f"the result was withheld: {refused.reason}")
            ) from None
        body = response.body_bytes()
        # The statement, masking its rows and the Data API response serialised: what a caller of
        # the backend itself would wait for too (benchmarks/sql_overhead.py compares the two).
        recording.timings_ms["backend"] = ms_since(backend_started)
        recording.response = {
            "status": response.status,
            "body": recorded_body(body, self.limits.recorded_body_bytes),
        }
        if masked.result is not None:
            recording.response["result"] = {
                "columns": masked.result.column_names,
                "rows": len(masked.result.rows),
                "truncated": masked.result.truncated,
            }
            recording.response["masking"] = {
                **masking.to_record(),
                "counts": masked.counts,
                "truncated": False,
            }
        if approval is not None and self.approvals is not None:
            self.approvals.finish_call(
                approval, response.status, {"status": response.status, "result": "in the call's response"}
            )
        if response.status >= 400:
            raise DataApiRefusal(DataApiError(response.body["__type"], response.body["message"]))
        headers = {"content-type": "application/json", **masked_counts_header(masked.counts)}
        return HttpResponse(200, headers, body)

    def _approved_call(
        self,
        request: HttpRequest,
        identity: Identity,
        connection: Connection,
        required: ApprovalRequired,
        recording: Recording,
        progress: Progress,
    ) -> ApprovalRequest:
        """The approval that lets this very call run now (claimed: it runs once), or ``ApprovalPending``.

        A Data API client cannot take a 202 (boto3 would hand the agent an empty result), so a held
        call is an error naming the request; once approved, the agent retries the identical call and
        that retry runs it, exactly once. A window approval never gets here (``Gate.decide``).
        """
        assert self.approvals is not None
        key = call_key(identity, connection.name, required.decision.rule, request)
        approval = self.approvals.held_call(key, identity)
        if approval is not None:
            status = approval.effective_status(self.approvals.clock())
            if status == "pending":
                raise ApprovalPending(
                    approval.request_id, f"{self.approvals.base_url(request)}/requests/{approval.request_id}"
                )
            if status == "approved" and approval.mode == "one-time" and self.approvals.claim_call(approval):
                recording.decision = {
                    **(recording.decision or {}),
                    "outcome": "allow",
                    "approval": approval.request_id,
                    "approved_by": [v.approver for v in approval.approvals()],
                }
                return approval
        held = self.approvals.hold_call(
            request, identity, key, required, recording
        )  # spent or none: ask again
        progress.held = True
        raise ApprovalPending(held["request_id"], held["poll_url"])


class _RowMasking:
    """``on_result``: masks a result's rows and keeps what it did for the recording."""

    def __init__(self, masking: AppliedMasking) -> None:
        self.masking = masking
        self.counts: dict[str, int] = {}
        self.result: ResultSet | None = None

    def __call__(self, result: ResultSet) -> ResultSet:
        masked = mask_rows(result.column_names, result.rows, self.masking.profile)
        self.counts = masked.counts
        self.result = result.with_rows(masked.value)
        return self.result


def _sql_of(request: DataApiRequest) -> str:
    if isinstance(request, ExecuteStatementRequest | BatchExecuteStatementRequest):
        return request.sql
    return TRANSACTION_CONTROL.get(type(request), "ROLLBACK")


def _parse(sql: str, dialect: Dialect) -> Any:
    try:
        return parse_sql(sql, dialect)
    except UnparseableOperation as unparseable:
        return unparseable  # policy decides (settings.unparseable); never run unchecked


def _rolled_back(refused: Forbidden, request: DataApiRequest, backend: Backend, owner: str) -> Forbidden:
    """A refusal inside a transaction rolls the transaction back, and says so."""
    transaction_id = getattr(request, "transaction_id", None)
    if transaction_id is None or isinstance(request, CommitTransactionRequest):
        return refused
    try:
        backend.rollback_transaction(transaction_id, owner=owner)
    except DataApiError:
        return refused  # unknown or expired: nothing of it can be applied anyway
    return Forbidden(
        f"{refused.message}; the transaction was rolled back, so none of its statements are applied",
        code=refused.code,
    )
