"""The connections table through the shared DynamoDB client: the items keep the shape the table
has always held (written by pynamodb before), and a hand-edited item of the wrong shape is a
refusal, never a guess."""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest

from wardgate.connections import Connection, ConnectionStore
from wardgate.errors import NotFound, ServiceUnavailable

HTTP = Connection("items-http", "http", "https://api.example.com", None, (), "")
WITH_ALL = Connection(
    "items-all", "http", "https://api.example.com/v1", "wardgate/items", ("admins", "agents"), "a description"
)


@pytest.fixture
def table(stack: Any) -> str:
    return os.environ["CONNECTIONS_TABLE"]


def raw_item(table: str, name: str) -> dict[str, Any]:
    return boto3.client("dynamodb").get_item(TableName=table, Key={"name": {"S": name}})["Item"]  # type: ignore[no-any-return]


def test_items_keep_the_shape_the_table_held(table: str) -> None:
    store = ConnectionStore(table)
    store.put(HTTP)
    store.put(WITH_ALL)
    # As pynamodb wrote them: empty optional strings absent, the groups a list of strings.
    assert raw_item(table, "items-http") == {
        "name": {"S": "items-http"},
        "kind": {"S": "http"},
        "upstream_url": {"S": "https://api.example.com"},
        "allowed_groups": {"L": []},
        "description": {"S": ""},
    }
    assert raw_item(table, "items-all")["allowed_groups"] == {"L": [{"S": "admins"}, {"S": "agents"}]}
    assert raw_item(table, "items-all")["credential_secret"] == {"S": "wardgate/items"}
    assert ConnectionStore(table).get("items-http") == HTTP
    assert ConnectionStore(table).get("items-all") == WITH_ALL
    assert {HTTP, WITH_ALL} <= set(store.all())
    store.delete("items-all")
    with pytest.raises(NotFound):
        store.get("items-all")


def test_an_item_written_without_the_optional_attributes_reads_with_their_defaults(table: str) -> None:
    boto3.client("dynamodb").put_item(
        TableName=table,
        Item={"name": {"S": "items-bare"}, "kind": {"S": "http"}, "upstream_url": {"S": "https://x.example"}},
    )
    assert ConnectionStore(table).get("items-bare") == Connection("items-bare", "http", "https://x.example")


@pytest.mark.parametrize(
    "attribute, value",
    [
        ("allowed_groups", {"SS": ["admins"]}),  # a set, not the list the gateway writes
        ("allowed_groups", {"L": [{"N": "1"}]}),
        ("upstream_url", {"N": "1"}),
        ("kind", {"NULL": True}),
        ("credential_secret", {"L": []}),
    ],
)
def test_a_hand_edited_item_of_another_shape_is_refused(table: str, attribute: str, value: Any) -> None:
    item = {
        "name": {"S": "items-edited"},
        "kind": {"S": "http"},
        "upstream_url": {"S": "https://x.example"},
        "allowed_groups": {"L": [{"S": "admins"}]},
        attribute: value,
    }
    boto3.client("dynamodb").put_item(TableName=table, Item=item)
    with pytest.raises(ServiceUnavailable) as refused:
        ConnectionStore(table).get("items-edited")
    assert refused.value.code == "bad_connection"


def test_an_item_that_widens_the_upstream_is_refused_as_before(table: str) -> None:
    boto3.client("dynamodb").put_item(
        TableName=table,
        Item={
            "name": {"S": "items-wide"},
            "kind": {"S": "http"},
            "upstream_url": {"S": "https://user:pw@x.example"},
        },
    )
    with pytest.raises(ServiceUnavailable) as refused:
        ConnectionStore(table).get("items-wide")
    assert refused.value.code == "bad_connection"
