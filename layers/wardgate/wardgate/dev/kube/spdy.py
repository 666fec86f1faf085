"""A sans-I/O SPDY/3.1 frame codec: what ``kubectl port-forward`` (and the SPDY form of exec) speaks.

Kubernetes' streaming subresources still use SPDY/3.1 streams: a plain ``Upgrade: SPDY/3.1``, or, since
KEP-4006 ("Transition from SPDY to WebSockets"), SPDY tunnelled in WebSocket binary messages under the
subprotocol ``SPDY/3.1+portforward.k8s.io``. This module turns bytes into frames and frames into bytes;
the caller owns the socket. Reference: the SPDY Protocol Draft 3.1
(https://www.chromium.org/spdy/spdy-protocol/spdy-protocol-draft3-1/): section 2.2 (frame layout),
2.6 (control frames), 2.6.10 (name/value header blocks and their zlib compression with a preset
dictionary, one compression context per direction for the whole session).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

VERSION = 3  # SPDY/3.1 frames carry version 3 (3.1 changes flow control, not the frame layout)

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes (draft 3.1, 2.6.3).
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION, CANCEL, INTERNAL_ERROR = 1, 2, 3, 4, 5, 6
FLOW_CONTROL_ERROR, STREAM_IN_USE, STREAM_ALREADY_CLOSED = 7, 8, 9
# GOAWAY status codes (2.6.6).
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR, GOAWAY_INTERNAL_ERROR = 0, 1, 2

MAX_FRAME_LENGTH = (1 << 24) - 1  # the 24-bit length field
MAX_HEADER_BLOCK = 1 << 20  # a decompressed name/value block larger than this is refused (a zlib bomb)

# The preset dictionary of the header compression (draft 3, 2.6.10.1): length-prefixed header names
# and common values, then unprefixed response fragments. Its Adler-32 (0xe3c6a7c2) is the DICTID every
# SPDY/3 zlib stream names in its header; a peer using any other dictionary cannot be read.
_DICTIONARY_NAMES = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base content-encoding "
    "content-language content-length content-location content-md5 content-range content-type date etag "
    "expect expires from host if-match if-modified-since if-none-match if-range if-unmodified-since "
    "last-modified location max-forwards pragma proxy-authenticate proxy-authorization range referer "
    "retry-after server te trailer transfer-encoding upgrade user-agent vary via warning www-authenticate "
    "method get status"
)
_DICTIONARY_AFTER_OK = "version HTTP/1.1 url public set-cookie keep-alive origin"
_DICTIONARY_WORDS = [*_DICTIONARY_NAMES.split(), "200 OK", *_DICTIONARY_AFTER_OK.split()]
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00"
    " Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = (
    b"".join(struct.pack(">I", len(word)) + word.encode() for word in _DICTIONARY_WORDS)
    + _DICTIONARY_TAIL.encode()
)
DICTIONARY_ADLER32 = 0xE3C6A7C2

Headers = tuple[tuple[str, str], ...]  # (lower-case name, value); several values of one name: NUL-joined


class SpdyError(Exception):
    """The peer broke the protocol; the session should answer GOAWAY (PROTOCOL_ERROR) and close."""


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers
    flags: int = 0
    associated_stream_id: int = 0
    priority: int = 0
    slot: int = 0


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers = ()
    flags: int = 0


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...]  # (flags, id, value)
    flags: int = 0


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    flags: int = 0


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    flags: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


Frame = SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame | WindowUpdate | Data


def header(headers: Headers, name: str) -> str | None:
    """The value of a header by name (names are case-insensitive; SPDY sends them lower-case)."""
    wanted = name.lower()
    return next((value for key, value in headers if key == wanted), None)


class FrameDecoder:
    """Bytes from the peer in, frames out. One inflate context for every header block of the session."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def receive(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            first, second = struct.unpack_from(">II", self._buffer)
            length = second & 0xFFFFFF
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            flags = second >> 24
            if first & 0x80000000:
                version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
                if version != VERSION:
                    raise SpdyError(f"unsupported SPDY version {version}")
                frame = self._control(kind, flags, payload)
                if frame is not None:
                    frames.append(frame)
            else:
                frames.append(Data(first & 0x7FFFFFFF, payload, flags))
        return frames

    def _control(self, kind: int, flags: int, payload: bytes) -> Frame | None:
        try:
            if kind == SYN_STREAM:
                stream_id, associated, priority, slot = struct.unpack_from(">IIBB", payload)
                return SynStream(
                    stream_id & 0x7FFFFFFF,
                    self._header_block(payload[10:]),
                    flags,
                    associated & 0x7FFFFFFF,
                    priority >> 5,
                    slot,
                )
            if kind == SYN_REPLY:
                (stream_id,) = struct.unpack_from(">I", payload)
                return SynReply(stream_id & 0x7FFFFFFF, self._header_block(payload[4:]), flags)
            if kind == HEADERS:
                (stream_id,) = struct.unpack_from(">I", payload)
                return HeadersFrame(stream_id & 0x7FFFFFFF, self._header_block(payload[4:]), flags)
            if kind == RST_STREAM:
                stream_id, status = struct.unpack_from(">II", payload)
                return RstStream(stream_id & 0x7FFFFFFF, status)
            if kind == SETTINGS:
                (count,) = struct.unpack_from(">I", payload)
                entries = []
                for index in range(count):
                    id_and_flags, value = struct.unpack_from(">II", payload, 4 + 8 * index)
                    entries.append((id_and_flags >> 24, id_and_flags & 0xFFFFFF, value))
                return Settings(tuple(entries), flags)
            if kind == PING:
                return Ping(struct.unpack_from(">I", payload)[0])
            if kind == GOAWAY:
                last, status = struct.unpack_from(">II", payload)
                return GoAway(last & 0x7FFFFFFF, status)
            if kind == WINDOW_UPDATE:
                stream_id, delta = struct.unpack_from(">II", payload)
                return WindowUpdate(stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        except struct.error as error:
            raise SpdyError(f"control frame {kind} too short") from error
        return None  # unknown control frames are ignored (2.2.1)

    def _header_block(self, compressed: bytes) -> Headers:
        try:
            block = self._inflate.decompress(compressed, MAX_HEADER_BLOCK)
        except zlib.error as error:
            raise SpdyError(f"header block cannot be decompressed: {error}") from error
        if self._inflate.unconsumed_tail:
            raise SpdyError("header block too large")
        try:
            (count,) = struct.unpack_from(">I", block)
            offset = 4
            pairs: list[tuple[str, str]] = []
            for _ in range(count):
                (name_length,) = struct.unpack_from(">I", block, offset)
                name = block[offset + 4 : offset + 4 + name_length]
                offset += 4 + name_length
                (value_length,) = struct.unpack_from(">I", block, offset)
                value = block[offset + 4 : offset + 4 + value_length]
                offset += 4 + value_length
                if len(name) != name_length or len(value) != value_length:
                    raise SpdyError("header block truncated")
                pairs.append((name.decode("latin-1"), value.decode("latin-1")))
        except struct.error as error:
            raise SpdyError("header block truncated") from error
        return tuple(pairs)


class FrameEncoder:
    """Frames to bytes. One deflate context for every header block this side sends."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, zdict=DICTIONARY)

    @staticmethod
    def _control(kind: int, flags: int, payload: bytes) -> bytes:
        if len(payload) > MAX_FRAME_LENGTH:
            raise SpdyError("frame too large")
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload

    def _header_block(self, headers: Headers) -> bytes:
        block = bytearray(struct.pack(">I", len(headers)))
        for name, value in headers:
            if name != name.lower():
                raise SpdyError(f"header name {name!r} is not lower-case")  # Go's framer refuses it
            raw_name, raw_value = name.encode("latin-1"), value.encode("latin-1")
            block += (
                struct.pack(">I", len(raw_name)) + raw_name + struct.pack(">I", len(raw_value)) + raw_value
            )
        return self._deflate.compress(bytes(block)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, Data):
            if len(frame.data) > MAX_FRAME_LENGTH:
                raise SpdyError("frame too large")
            return struct.pack(">II", frame.stream_id & 0x7FFFFFFF, (frame.flags << 24) | len(frame.data)) + (
                frame.data
            )
        if isinstance(frame, SynStream):
            fixed = struct.pack(
                ">IIBB", frame.stream_id, frame.associated_stream_id, (frame.priority & 7) << 5, frame.slot
            )
            return self._control(SYN_STREAM, frame.flags, fixed + self._header_block(frame.headers))
        if isinstance(frame, SynReply):
            payload = struct.pack(">I", frame.stream_id) + self._header_block(frame.headers)
            return self._control(SYN_REPLY, frame.flags, payload)
        if isinstance(frame, HeadersFrame):
            payload = struct.pack(">I", frame.stream_id) + self._header_block(frame.headers)
            return self._control(HEADERS, frame.flags, payload)
        if isinstance(frame, RstStream):
            return self._control(RST_STREAM, 0, struct.pack(">II", frame.stream_id, frame.status))
        if isinstance(frame, Settings):
            entries = b"".join(
                struct.pack(">II", (flags << 24) | (setting & 0xFFFFFF), value)
                for flags, setting, value in frame.entries
            )
            return self._control(SETTINGS, frame.flags, struct.pack(">I", len(frame.entries)) + entries)
        if isinstance(frame, Ping):
            return self._control(PING, 0, struct.pack(">I", frame.ping_id))
        if isinstance(frame, GoAway):
            return self._control(GOAWAY, 0, struct.pack(">II", frame.last_good_stream_id, frame.status))
        return self._control(WINDOW_UPDATE, 0, struct.pack(">II", frame.stream_id, frame.delta))
