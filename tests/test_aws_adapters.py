"""The AWS adapters share one botocore session and fail fast (both matter for cold start and 30 s limits)."""

from __future__ import annotations

import os

import pytest

from wardgate import aws
from wardgate.connections import ConnectionStore


def test_the_connection_store_reads_through_the_shared_client_with_short_timeouts(stack):
    store = ConnectionStore(os.environ["CONNECTIONS_TABLE"])
    dynamodb = aws.client("dynamodb")
    read: list[str] = []

    def seen(params: dict[str, object], **_: object) -> None:
        read.append(str(params["TableName"]))

    dynamodb.meta.events.register("provide-client-params.dynamodb.GetItem", seen)
    try:
        assert store.get("demo").name == "demo"
    finally:
        dynamodb.meta.events.unregister("provide-client-params.dynamodb.GetItem", seen)
    assert read == [os.environ["CONNECTIONS_TABLE"]]  # no second client of its own
    assert dynamodb.meta.config.connect_timeout == 2 and dynamodb.meta.config.read_timeout == 5


def test_boto3_clients_are_cached_and_fail_fast(stack):
    firehose = aws.client("firehose")
    assert aws.client("firehose") is firehose
    assert firehose.meta.config.read_timeout == aws.CLIENT_CONFIG["read_timeout"]
    assert aws._session()._session is aws.botocore_session()


def test_the_connection_cache_stays_bounded_whatever_names_agents_try(stack):
    """Agents choose the names they ask for (the TCP gateway's dbname): a long-lived task must not
    keep every one of them."""
    import os

    from wardgate import connections
    from wardgate.errors import NotFound

    store = connections.ConnectionStore(os.environ["CONNECTIONS_TABLE"])
    for i in range(connections.MAX_CACHED + 10):
        store._cache[f"name-{i}"] = (store.clock(), None)  # as if asked for, without 4,000 reads
        if len(store._cache) >= connections.MAX_CACHED:
            break
    with pytest.raises(NotFound):
        store.get("one-more-unknown-name")
    assert len(store._cache) <= connections.MAX_CACHED
    assert store.get("demo").name == "demo"
