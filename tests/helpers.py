"""Small helpers for reading what the stack recorded."""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

import boto3


def recorded_events() -> list[dict[str, Any]]:
    """Every recording event that Firehose delivered to S3, oldest first."""
    s3 = boto3.client("s3")
    bucket = os.environ["RECORDINGS_BUCKET"]
    events = []
    prefix = os.environ.get("RECORDINGS_PREFIX", "recordings/")  # not manifests/ (auditing/integrity.py)
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        data = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        events.extend(json.loads(line) for line in data.splitlines())
    return sorted(events, key=lambda e: e["time"])


def raw_recordings() -> bytes:
    """All recorded bytes (S3 objects and index items), for 'this secret never appears' checks."""
    s3 = boto3.client("s3")
    bucket = os.environ["RECORDINGS_BUCKET"]
    blob = b"".join(
        s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    )
    items = boto3.client("dynamodb").scan(TableName=os.environ["RECORDINGS_TABLE"])["Items"]
    return blob + json.dumps(items).encode()


def index_entries() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=os.environ["RECORDINGS_TABLE"])["Items"]
    return [{k: next(iter(v.values())) for k, v in item.items()} for item in items]


def apply_policy_now(stack: Any, document: dict[str, Any]) -> str:
    """Apply ``document`` and make the running gateway see it now (not after its 5 s cache)."""
    from wardgate import runtime

    version: str = stack.apply_policy(document)
    for gateway in (runtime.http_gateway(), runtime.sql_gateway()):
        gateway.policies._cached = None
    if getattr(stack, "tcp", None) is not None:  # the TCP gateway's own store (its own cache)
        stack.tcp.services.gate.policies._cached = None
    return version


def register_agent(stack: Any, subject: str, owner: str, connection: str = "demo") -> None:
    """``wardgate agents register`` as an operator runs it, for an agent of the dev issuer."""
    from wardgate import cli

    argv = ["agents", "register", "--subject", subject, "--owner", owner, "--purpose", "test", "--by", "root"]
    assert cli.main([*argv, "--issuer", stack.issuer.issuer, "--connection", connection]) == 0
