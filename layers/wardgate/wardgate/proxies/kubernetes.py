"""What the Kubernetes API path adds to plain HTTP proxying."""

from __future__ import annotations


def json_only(headers: dict[str, str]) -> dict[str, str]:
    """Ask the API server for JSON, never protobuf: only JSON can be masked (Secrets above all).

    client-go asks for ``application/vnd.kubernetes.protobuf,application/json``; kubectl asks for
    JSON Tables. Protobuf media ranges are dropped; what is left, or plain JSON, is asked for.
    """
    ranges = [r.strip() for r in headers.get("accept", "").split(",") if r.strip()]
    kept = [r for r in ranges if "protobuf" not in r.lower()]
    return {**headers, "accept": ", ".join(kept) or "application/json"}
