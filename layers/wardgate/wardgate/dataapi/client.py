"""A boto3 ``rds-data`` client that talks to wardgate instead of AWS.

Agents keep their Data API code and change only how the client is made::

    from wardgate.dataapi.client import wardgate_rds_data_client

    client = wardgate_rds_data_client(
        "https://wardgate.example.com/sql/warehouse", token_provider=lambda: os.environ["WARDGATE_TOKEN"]
    )
    client.execute_statement(resourceArn="-" * 11, secretArn="-" * 11, sql="SELECT 1")

Requests are not SigV4-signed (``signature_version=UNSIGNED``: the agent needs no AWS
credentials); a ``before-send`` hook puts ``Authorization: Bearer <token>`` on every request,
retries included, asking ``token_provider`` each time so a refreshed token is picked up.
``resourceArn`` and ``secretArn`` must still be given (boto3 requires them) but wardgate uses
the connection's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PLACEHOLDER_ARN = "arn:aws:rds:us-east-1:000000000000:cluster:wardgate"  # for agents with nothing to send


def wardgate_rds_data_client(
    endpoint_url: str, token_provider: Callable[[], str], *, region_name: str = "us-east-1", **kwargs: Any
) -> Any:
    """A real ``boto3.client("rds-data")`` pointed at ``endpoint_url`` (``.../sql/{connection}``).

    Extra keyword arguments go to ``boto3.client`` (``config`` is merged: ours sets only the
    signature version).
    """
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    config = Config(signature_version=UNSIGNED)
    if "config" in kwargs:
        config = kwargs.pop("config").merge(config)
    client = boto3.client(
        "rds-data", endpoint_url=endpoint_url.rstrip("/"), region_name=region_name, config=config, **kwargs
    )

    def add_bearer(request: Any, **_: Any) -> None:
        request.headers["Authorization"] = f"Bearer {token_provider()}"

    client.meta.events.register("before-send.rds-data.*", add_bearer)
    return client
