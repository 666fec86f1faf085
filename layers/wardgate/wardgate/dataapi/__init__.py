"""SQL through an RDS Data API compatible endpoint (issue 7): the layer below and above the route.

Agents keep ``boto3.client("rds-data")`` and point it at ``/sql/{connection}``
(``client.wardgate_rds_data_client`` adds the bearer token). The pieces:

- ``requests``: ``parse_request(operation, body, database=...)`` validates the JSON body of
  ``Execute``, ``BatchExecute``, ``BeginTransaction``, ``CommitTransaction``,
  ``RollbackTransaction`` into typed requests. The agent's ``resourceArn``/``secretArn`` are
  accepted and never used; a ``database`` other than the connection's is refused.
- ``errors``: ``DataApiError`` (``error_type``, ``status``, ``message``; ``to_body()`` and
  ``headers()`` give the rest-json error boto3 turns into ``client.exceptions.<Type>``).
- ``fields``: typed Fields <-> Python values, ``ColumnMetadata``, ``formattedRecords``.
- ``params``: ``:name`` placeholders -> ``%(name)s``, skipping literals, identifiers, comments,
  dollar quotes and ``::`` casts; missing or unused parameters are refused.
- ``backends``: the ``Backend`` protocol, ``ResultSet`` (columns, rows of Python values,
  ``number_of_records_updated``, ``generated_fields``, ``truncated``), ``BatchResult``,
  ``Limits`` (row/byte caps, statement timeout, transaction timeouts).
- ``postgres.PostgresBackend`` (psycopg) and ``mysql.MySqlBackend`` (PyMySQL) for ``wardgate
  dev`` and tests; ``rdsdata.RdsDataBackend`` (the real API, the function's IAM role) for AWS.
  Transactions are bound to the connection and to the ``owner`` that began them.
- ``factory.backend_from_url(connection, upstream_url, password=..., binding_key=...)``: the
  backend a SQL connection names (``postgresql://user@host/db``, ``mysql://...``,
  ``rds-data:///db?resourceArn=...&secretArn=...``).
- ``result``: response bodies from a ``ResultSet``; ``service``: ``handle``/``run`` tie it together.
- ``client.wardgate_rds_data_client(endpoint_url, token_provider)``: the agents' boto3 client.

How the gateway uses them, per request::

    request = parse_request(operation, body, database=connection_database)   # 400 on bad input
    # policy: request.sql (each statement: operations.sql.parse_sql) -> allow / deny / approval
    response = run(backend, request, owner=f"{identity.issuer} {identity.subject}",
                   on_result=lambda rs: rs.with_rows(mask_rows(rs.column_names, rs.rows, profile).value))
    # record request, decision, response.body (already masked); answer with
    # response.status, response.headers, response.body_bytes()

``DataApiError`` responses must keep their ``x-amzn-ErrorType`` header: boto3 reads the error
type from it. The backend is long-lived (one per connection per container: it pools database
connections and holds open transactions), so build it once and keep it.
"""

from wardgate.dataapi.backends import Backend, BatchResult, Limits, ResultSet
from wardgate.dataapi.errors import DataApiError
from wardgate.dataapi.requests import parse_request
from wardgate.dataapi.service import DataApiResponse, handle, run

__all__ = [
    "Backend",
    "BatchResult",
    "DataApiError",
    "DataApiResponse",
    "Limits",
    "ResultSet",
    "handle",
    "parse_request",
    "run",
]
