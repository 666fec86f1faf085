"""How the SSH listener's connections use TCP, on both hops (the client's and the target's).

asyncssh makes every connection through a factory this module wraps (asyncssh's ``tunnel``
hook: an object with ``create_server`` or ``create_connection``, here a plain TCP listener or
connector; asyncssh's log says "via SSH tunnel" for them, though there is none), so each
connection is prepared before its first byte:

* **Acknowledged at once** (``TCP_QUICKACK`` after each read). OpenSSH leaves Nagle's algorithm on
  for sessions without a terminal, so a small packet it sends right after another waits until the
  first is acknowledged; Linux delays an acknowledgement (40 ms) when the receiver has nothing to
  send back. The SSH handshake hits this up to three times per connection: the client's
  ``KEXINIT`` then ``KEX_ECDH_INIT``, its ``NEWKEYS`` then ``SERVICE_REQUEST``, and, on the target
  hop, sshd's messages after a login then the channel's confirmation. Acknowledging what was read
  at once takes those 40 ms stalls out (``docs/benchmarks.md``); it changes no byte of the stream.
* **No empty ``SSH_MSG_IGNORE`` before every packet.** asyncssh sends one ahead of each packet it
  encrypts, RFC 4251's countermeasure (9.3.1) for CBC mode, whose next IV an attacker can predict;
  it doubles the packets, encryptions and socket writes of a bulk copy. With an AEAD cipher
  (ChaCha20-Poly1305, AES-GCM) or a counter mode there is no IV to predict and OpenSSH sends none;
  with any other cipher (CBC) asyncssh's ignore packets are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

MSG_IGNORE = 2  # RFC 4253 11.2
EMPTY_STRING = b"\x00\x00\x00\x00"  # an SSH string of no bytes: what asyncssh's ignore packets carry
QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only; elsewhere nothing is done


def needs_ignore_packets(cipher: str | None) -> bool:
    """Whether packets sent with ``cipher`` keep asyncssh's ignore packet ahead of each (CBC, or a
    cipher not known here); not for AEAD ciphers or counter modes."""
    if not cipher:
        return True
    aead = cipher == "chacha20-poly1305@openssh.com" or cipher.endswith("-gcm@openssh.com")
    return not (aead or cipher.endswith("-ctr"))


def prepared(conn: Any) -> Any:
    """``conn`` (an asyncssh connection, the protocol of its TCP transport, not yet connected)
    acknowledging each read at once and sending no per-packet ignore packets (see above)."""
    send_packet = conn.send_packet

    def send_without_chaff(pkttype: int, *args: bytes, handler: Any = None) -> None:
        if (
            pkttype == MSG_IGNORE
            and args == (EMPTY_STRING,)
            and not needs_ignore_packets(conn.get_extra_info("send_cipher"))
        ):
            return
        send_packet(pkttype, *args, handler=handler)

    conn.send_packet = send_without_chaff
    made = conn.connection_made
    received = conn.data_received
    sockets: list[Any] = []

    def connection_made(transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if QUICKACK is not None and sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sockets.append(sock)
        made(transport)

    def data_received(data: bytes, datatype: Any = None) -> None:
        received(data, datatype)
        for sock in sockets:  # an acknowledgement still pending for what was read leaves now
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)

    # Set before the transport takes the protocol (uvloop keeps the methods it is given then).
    conn.connection_made = connection_made
    conn.data_received = data_received
    return conn


class Listener:
    """asyncssh's ``tunnel`` for ``create_server``: a plain TCP listener of prepared connections."""

    def __init__(self, backlog: int = 1024) -> None:
        self.backlog = backlog

    async def create_server(
        self, session_factory: Callable[[str, int], Any], host: str, port: int
    ) -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            lambda: prepared(session_factory("", 0)), host, port, backlog=self.backlog, reuse_address=True
        )


class Connector:
    """asyncssh's ``tunnel`` for ``create_connection``: a plain TCP connection, prepared."""

    async def create_connection(
        self, session_factory: Callable[[], Any], host: str, port: int
    ) -> tuple[asyncio.BaseTransport, Any]:
        loop = asyncio.get_running_loop()
        return await loop.create_connection(lambda: prepared(session_factory()), host, port)
