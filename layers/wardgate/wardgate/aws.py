"""boto3 clients, created once per container on first use, with timeouts short enough to fail fast.

A Lambda that waits 60 s (botocore's default read timeout) on a sick dependency holds the
agent past API Gateway's 30 s limit; we would rather answer 503 quickly.
"""

from __future__ import annotations

import functools
from typing import Any

CLIENT_CONFIG = {"connect_timeout": 2, "read_timeout": 5, "retries": {"mode": "standard", "max_attempts": 2}}


@functools.cache
def botocore_session() -> Any:
    """The container's one botocore session: endpoint and service data are loaded once for all clients."""
    import botocore.session

    return botocore.session.get_session()


@functools.cache
def _session() -> Any:
    import boto3

    return boto3.session.Session(botocore_session=botocore_session())


@functools.cache
def client(service: str) -> Any:
    from botocore.config import Config

    return _session().client(service, config=Config(**CLIENT_CONFIG))  # type: ignore[arg-type]


def reset_clients() -> None:
    """Forget cached clients and credentials (``wardgate dev`` and tests change endpoints and accounts)."""
    client.cache_clear()
    _session.cache_clear()
    botocore_session.cache_clear()
