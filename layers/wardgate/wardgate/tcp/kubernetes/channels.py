"""The Kubernetes stream channel framing, sans-I/O: what travels inside each WebSocket message of
exec and attach.

Protocols ``v4.channel.k8s.io`` and ``v5.channel.k8s.io`` (Kubernetes API reference, "exec" and
KEP-4006): every binary message starts with one byte naming its channel, 0 stdin, 1 stdout,
2 stderr, 3 error (a ``Status`` JSON when the command ends: Success, or Failure with reason
``NonZeroExitCode`` and the code in ``details.causes[ExitCode]``), 4 resize (JSON
``{"Width": w, "Height": h}``). v5 adds channel 255, ``[255, n]``: "channel n is closed" (the
client's end of stdin). Other subprotocols (``base64.channel.k8s.io``, v1-v3) are not served.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255  # v5: the next byte names a channel that is closed
V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
SERVED = (V5, V4)  # most preferred first, as kubectl offers them


class ChannelError(ValueError):
    """A message that is not a framed channel message of the negotiated protocol."""


@dataclass(frozen=True, slots=True)
class Frame:
    channel: int
    data: bytes

    @property
    def closes(self) -> int | None:
        """For a v5 close message, the channel it closes."""
        return self.data[0] if self.channel == CLOSE and self.data else None


def decode(message: bytes, protocol: str) -> Frame:
    if not message:
        raise ChannelError("an empty message carries no channel")
    channel = message[0]
    if channel == CLOSE:
        if protocol != V5 or len(message) != 2:
            raise ChannelError("a close message is v5's and names exactly one channel")
    elif channel > RESIZE:
        raise ChannelError(f"unknown channel {channel}")
    return Frame(channel, bytes(message[1:]))


def encode(channel: int, data: bytes) -> bytes:
    return bytes((channel,)) + data


def close(channel: int) -> bytes:
    return bytes((CLOSE, channel))


def resize_of(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a resize message, or None when it is not one."""
    try:
        size: Any = json.loads(data)
        width, height = int(size["Width"]), int(size["Height"])
    except (ValueError, KeyError, TypeError):
        return None
    return (width, height) if 0 <= width < 65536 and 0 <= height < 65536 else None


def exit_code_of(data: bytes) -> int | None:
    """The exit code an error-channel Status reports: 0 for Success; None when it says nothing."""
    try:
        status: Any = json.loads(data)
    except ValueError:
        return None
    if not isinstance(status, dict):
        return None
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message", ""))
            except ValueError:
                return None
    return None


def failure(message: str, reason: str = "InternalError", code: int = 500) -> bytes:
    """An error-channel Status (its message is what kubectl prints, then it exits 1)."""
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
    ).encode()
