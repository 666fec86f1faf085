"""The cluster side of a streamed request: one HTTP/1.1 connection (h11) per watch, followed log,
exec, attach or port-forward, TLS verified against the connection's CA as on the Lambda path.

A streamed request cannot share the HTTP gateway's pooled, whole-body forwarder: its response
never ends on its own, and an upgraded connection belongs to one stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import h11

from wardgate.connections import Connection
from wardgate.credentials import Credential
from wardgate.errors import BadGateway, GatewayTimeout, ServiceUnavailable
from wardgate.proxies import http as http_proxy

READ_CHUNK = 64 * 1024
MAX_HEAD = 64 * 1024  # the cluster's response head
MAX_ERROR_BODY = 1024 * 1024  # a refusal's body (a Status), read whole to be masked


@functools.cache
def _client_context(ca_pem: str | None) -> ssl.SSLContext:
    """HTTP/1.1 only (ALPN): an upgrade and a streamed body are HTTP/1.1 things."""
    if ca_pem is None:
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
    else:
        try:
            context = ssl.create_default_context(cadata=ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise ServiceUnavailable(
                f"the connection's CA bundle is unusable ({type(exc).__name__})",
                code="credential_unavailable",
            ) from None
    context.set_alpn_protocols(["http/1.1"])
    return context


@dataclass
class UpstreamStream:
    """An open request to the cluster whose response head has arrived."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    h11: h11.Connection
    status: int
    headers: list[tuple[str, str]]
    upgraded: bool = False
    trailing: bytes = b""  # bytes after a 101's head: the upgraded protocol's first
    _ended: bool = field(default=False, init=False)

    def header(self, name: str) -> str:
        return ", ".join(v for k, v in self.headers if k == name)

    async def body(self) -> AsyncIterator[bytes]:
        """The response body as it arrives (not for an upgraded stream)."""
        while not self._ended:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                chunk = await self.reader.read(READ_CHUNK)
                self.h11.receive_data(chunk)
                continue
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                self._ended = True

    async def read_all(self, limit: int = MAX_ERROR_BODY) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in self.body():
            size += len(chunk)
            if size > limit:
                raise BadGateway("the cluster's answer is too large to relay", code="upstream_bad_response")
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


async def open_stream(
    connection: Connection,
    credential: Credential | None,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    timeout: float,
) -> UpstreamStream:
    """Connect to the connection's cluster, send the request (no body) and read its response head.

    ``headers`` are sent as given plus Host and the credential (the agent's Authorization never
    reaches the cluster: ``forwarded_headers`` dropped it)."""
    url = http_proxy.upstream_url(connection.upstream_url, path, query)
    context = _client_context(credential.ca_pem if credential else None) if url.scheme == "https" else None
    port = url.port or http_proxy.DEFAULT_PORTS[url.scheme]
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                url.raw_host.decode("ascii"),
                port,
                ssl=context,
                server_hostname=url.raw_host.decode("ascii") if context else None,
                limit=READ_CHUNK * 4,
            )
    except TimeoutError:
        raise GatewayTimeout("the cluster did not accept the connection in time") from None
    except ssl.SSLCertVerificationError:
        raise BadGateway(
            "the cluster's TLS certificate could not be verified (a private CA goes in the connection's "
            "credential as ca_pem)",
            code="upstream_tls_error",
        ) from None
    except OSError as exc:
        raise BadGateway(f"the cluster is unreachable ({type(exc).__name__})") from None
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    head = [("host", url.netloc.decode("ascii"))]
    head += [(k, v) for k, v in headers.items() if k != "host"]
    if credential is not None:
        head.append((credential.header_name, credential.header_value))
    try:
        writer.write(conn.send(h11.Request(method=method, target=url.raw_path, headers=head)))
        writer.write(conn.send(h11.EndOfMessage()))
        async with asyncio.timeout(timeout):
            await writer.drain()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    chunk = await reader.read(READ_CHUNK)
                    conn.receive_data(chunk)
                    continue
                if isinstance(event, h11.InformationalResponse) and event.status_code != 101:
                    continue  # 100 Continue and the like
                if isinstance(event, h11.InformationalResponse | h11.Response):
                    break
                raise BadGateway("the cluster closed the connection without answering")
    except TimeoutError:
        writer.close()
        raise GatewayTimeout("the cluster did not answer in time") from None
    except (h11.RemoteProtocolError, h11.LocalProtocolError, OSError) as exc:
        writer.close()
        raise BadGateway(f"the cluster's answer is not HTTP/1.1 ({type(exc).__name__})") from None
    pairs = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers]
    stream = UpstreamStream(reader, writer, conn, event.status_code, pairs)
    if event.status_code == 101:
        stream.upgraded = True
        stream.trailing = conn.trailing_data[0]
    return stream
