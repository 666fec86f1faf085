"""The MySQL client/server protocol (MySQL 5.7-9.x, MariaDB 10.x-11.x), sans-I/O: bytes in, events out.

Nothing here touches a socket or an event loop: the session feeds what it received into a
:class:`PacketReader`, takes logical payloads out of it, decodes what it needs with the ``parse_*``
functions (or a :class:`ResponseReader` per command sent to the server) and writes what
:func:`frame` and the ``build_*`` functions return.

Framing. Every packet is ``int<3> payload length, int<1> sequence id, payload``. A payload of
0xFFFFFF bytes or more is split into 0xFFFFFF-byte packets with consecutive sequence ids, ended by
a shorter packet (an empty one when the length is an exact multiple); :class:`PacketReader` joins
them into one *logical payload* and every parser here works on logical payloads. Sequence ids
restart at 0 with each command a client sends and go up by one per packet in both directions
(wrapping at 256); the reader checks them when told what to expect.

Capabilities. The parsers and builders of packets whose layout depends on the negotiated
capabilities (OK, ERR, EOF, column definitions, rows...) take them as an ``int``; the gateway always
requires ``CLIENT_PROTOCOL_41``. MariaDB's extended capabilities (bits 32-63) travel in the filler
of the greeting and of the client's answer when the ``CLIENT_LONG_PASSWORD`` bit (``CLIENT_MYSQL``
to MariaDB) is clear; they are parsed, and wardgate never advertises them.

Errors. Anything that is not the protocol raises :class:`ProtocolViolation` (never ``IndexError``
or ``struct.error``), with the MySQL error code and SQLSTATE the session reports to the client in
an ERR packet before it ends the connection: :class:`PacketTooLarge` (1153, ``08S01``) for a
payload over the reader's limit, :class:`PacketsOutOfOrder` (1156, ``08S01``) for a sequence id
that is not the expected one, 1835 (``ER_MALFORMED_PACKET``, ``HY000``) for the rest. Builders
given values that cannot be encoded (a NUL in a NUL-terminated field, a number out of range)
raise ``ValueError``: that is a caller bug, not a peer's.
"""

from __future__ import annotations

import datetime
import re
import struct
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from struct import Struct

# --------------------------------------------------------------------------------------------------
# Constants

MAX_PACKET_PAYLOAD = 0xFFFFFF  # a physical packet's longest payload; one this long continues
DEFAULT_MAX_PAYLOAD = 64 * 1024 * 1024  # the reader's default limit (MySQL's max_allowed_packet: 64 MiB)
PROTOCOL_VERSION = 10
SSL_REQUEST_LENGTH = 32
NATIVE_PASSWORD = "mysql_native_password"
CACHING_SHA2_PASSWORD = "caching_sha2_password"
SHA256_PASSWORD = "sha256_password"
CLEAR_PASSWORD = "mysql_clear_password"
CLIENT_ED25519 = "client_ed25519"  # MariaDB's ed25519 plugin, as the client side names it

# Capability flags (CLIENT_*), as in include/mysql_com.h.
CLIENT_LONG_PASSWORD = 1 << 0
CLIENT_MYSQL = CLIENT_LONG_PASSWORD  # MariaDB: set by MySQL peers; clear when extended capabilities follow
CLIENT_FOUND_ROWS = 1 << 1
CLIENT_LONG_FLAG = 1 << 2
CLIENT_CONNECT_WITH_DB = 1 << 3
CLIENT_NO_SCHEMA = 1 << 4
CLIENT_COMPRESS = 1 << 5
CLIENT_ODBC = 1 << 6
CLIENT_LOCAL_FILES = 1 << 7
CLIENT_IGNORE_SPACE = 1 << 8
CLIENT_PROTOCOL_41 = 1 << 9
CLIENT_INTERACTIVE = 1 << 10
CLIENT_SSL = 1 << 11
CLIENT_IGNORE_SIGPIPE = 1 << 12
CLIENT_TRANSACTIONS = 1 << 13
CLIENT_RESERVED = 1 << 14
CLIENT_SECURE_CONNECTION = 1 << 15  # CLIENT_RESERVED2 in MySQL 8
CLIENT_MULTI_STATEMENTS = 1 << 16
CLIENT_MULTI_RESULTS = 1 << 17
CLIENT_PS_MULTI_RESULTS = 1 << 18
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_CONNECT_ATTRS = 1 << 20
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
CLIENT_SESSION_TRACK = 1 << 23
CLIENT_DEPRECATE_EOF = 1 << 24
CLIENT_OPTIONAL_RESULTSET_METADATA = 1 << 25
CLIENT_ZSTD_COMPRESSION_ALGORITHM = 1 << 26
CLIENT_QUERY_ATTRIBUTES = 1 << 27
CLIENT_MULTI_FACTOR_AUTHENTICATION = 1 << 28
CLIENT_CAPABILITY_EXTENSION = 1 << 29
CLIENT_SSL_VERIFY_SERVER_CERT = 1 << 30
CLIENT_REMEMBER_OPTIONS = 1 << 31
# MariaDB's extended capabilities (the high 32 bits)
MARIADB_CLIENT_PROGRESS = 1 << 32
MARIADB_CLIENT_COM_MULTI = 1 << 33
MARIADB_CLIENT_STMT_BULK_OPERATIONS = 1 << 34
MARIADB_CLIENT_EXTENDED_METADATA = 1 << 35
MARIADB_CLIENT_CACHE_METADATA = 1 << 36
MARIADB_CLIENT_BULK_UNIT_RESULTS = 1 << 37

# Server status flags (SERVER_*), in OK and EOF packets.
SERVER_STATUS_IN_TRANS = 1 << 0
SERVER_STATUS_AUTOCOMMIT = 1 << 1
SERVER_MORE_RESULTS_EXISTS = 1 << 3
SERVER_QUERY_NO_GOOD_INDEX_USED = 1 << 4
SERVER_QUERY_NO_INDEX_USED = 1 << 5
SERVER_STATUS_CURSOR_EXISTS = 1 << 6
SERVER_STATUS_LAST_ROW_SENT = 1 << 7
SERVER_STATUS_DB_DROPPED = 1 << 8
SERVER_STATUS_NO_BACKSLASH_ESCAPES = 1 << 9
SERVER_STATUS_METADATA_CHANGED = 1 << 10
SERVER_QUERY_WAS_SLOW = 1 << 11
SERVER_PS_OUT_PARAMS = 1 << 12
SERVER_STATUS_IN_TRANS_READONLY = 1 << 13
SERVER_SESSION_STATE_CHANGED = 1 << 14

# Command bytes (the first byte of a client's command payload).
COM_SLEEP = 0x00
COM_QUIT = 0x01
COM_INIT_DB = 0x02
COM_QUERY = 0x03
COM_FIELD_LIST = 0x04
COM_CREATE_DB = 0x05
COM_DROP_DB = 0x06
COM_REFRESH = 0x07
COM_SHUTDOWN = 0x08
COM_STATISTICS = 0x09
COM_PROCESS_INFO = 0x0A
COM_CONNECT = 0x0B
COM_PROCESS_KILL = 0x0C
COM_DEBUG = 0x0D
COM_PING = 0x0E
COM_TIME = 0x0F
COM_DELAYED_INSERT = 0x10
COM_CHANGE_USER = 0x11
COM_BINLOG_DUMP = 0x12
COM_TABLE_DUMP = 0x13
COM_CONNECT_OUT = 0x14
COM_REGISTER_SLAVE = 0x15
COM_STMT_PREPARE = 0x16
COM_STMT_EXECUTE = 0x17
COM_STMT_SEND_LONG_DATA = 0x18
COM_STMT_CLOSE = 0x19
COM_STMT_RESET = 0x1A
COM_SET_OPTION = 0x1B
COM_STMT_FETCH = 0x1C
COM_DAEMON = 0x1D
COM_BINLOG_DUMP_GTID = 0x1E
COM_RESET_CONNECTION = 0x1F
COM_CLONE = 0x20
COM_STMT_BULK_EXECUTE = 0xFA  # MariaDB
COM_MULTI = 0xFE  # MariaDB 10.2-10.5

# COM_SET_OPTION's options
MYSQL_OPTION_MULTI_STATEMENTS_ON = 0
MYSQL_OPTION_MULTI_STATEMENTS_OFF = 1

# COM_STMT_EXECUTE flags (enum_cursor_type)
CURSOR_TYPE_NO_CURSOR = 0
CURSOR_TYPE_READ_ONLY = 1
CURSOR_TYPE_FOR_UPDATE = 2
CURSOR_TYPE_SCROLLABLE = 4
PARAMETER_COUNT_AVAILABLE = 8  # MySQL 8.0.26+, with CLIENT_QUERY_ATTRIBUTES

# Column types (enum_field_types).
MYSQL_TYPE_DECIMAL = 0
MYSQL_TYPE_TINY = 1
MYSQL_TYPE_SHORT = 2
MYSQL_TYPE_LONG = 3
MYSQL_TYPE_FLOAT = 4
MYSQL_TYPE_DOUBLE = 5
MYSQL_TYPE_NULL = 6
MYSQL_TYPE_TIMESTAMP = 7
MYSQL_TYPE_LONGLONG = 8
MYSQL_TYPE_INT24 = 9
MYSQL_TYPE_DATE = 10
MYSQL_TYPE_TIME = 11
MYSQL_TYPE_DATETIME = 12
MYSQL_TYPE_YEAR = 13
MYSQL_TYPE_NEWDATE = 14  # server-internal
MYSQL_TYPE_VARCHAR = 15
MYSQL_TYPE_BIT = 16
MYSQL_TYPE_TIMESTAMP2 = 17  # server-internal
MYSQL_TYPE_DATETIME2 = 18  # server-internal
MYSQL_TYPE_TIME2 = 19  # server-internal
MYSQL_TYPE_TYPED_ARRAY = 20  # replication only
MYSQL_TYPE_VECTOR = 242  # MySQL 9
MYSQL_TYPE_INVALID = 243
MYSQL_TYPE_BOOL = 244  # server-internal
MYSQL_TYPE_JSON = 245
MYSQL_TYPE_NEWDECIMAL = 246
MYSQL_TYPE_ENUM = 247
MYSQL_TYPE_SET = 248
MYSQL_TYPE_TINY_BLOB = 249
MYSQL_TYPE_MEDIUM_BLOB = 250
MYSQL_TYPE_LONG_BLOB = 251
MYSQL_TYPE_BLOB = 252
MYSQL_TYPE_VAR_STRING = 253
MYSQL_TYPE_STRING = 254
MYSQL_TYPE_GEOMETRY = 255

# Column definition flags.
NOT_NULL_FLAG = 1
PRI_KEY_FLAG = 2
UNIQUE_KEY_FLAG = 4
MULTIPLE_KEY_FLAG = 8
BLOB_FLAG = 16
UNSIGNED_FLAG = 32
ZEROFILL_FLAG = 64
BINARY_FLAG = 128
ENUM_FLAG = 256
AUTO_INCREMENT_FLAG = 512
TIMESTAMP_FLAG = 1024
SET_FLAG = 2048
NO_DEFAULT_VALUE_FLAG = 4096
ON_UPDATE_NOW_FLAG = 8192
PART_KEY_FLAG = 16384
NUM_FLAG = 32768

# Character sets (collation ids) the gateway names.
BINARY_CHARSET = 63
UTF8MB4_GENERAL_CI = 45
UTF8MB4_0900_AI_CI = 255  # MySQL 8's default

# Packet headers.
OK_HEADER = 0x00
AUTH_MORE_DATA_HEADER = 0x01
LOCAL_INFILE_HEADER = 0xFB
EOF_HEADER = 0xFE  # also AuthSwitchRequest during authentication
ERR_HEADER = 0xFF
NULL_CELL = 0xFB  # a NULL value in a text-protocol row

# Error codes the gateway uses for protocol failures.
ER_NET_PACKET_TOO_LARGE = 1153
ER_NET_PACKETS_OUT_OF_ORDER = 1156
ER_MALFORMED_PACKET = 1835
ER_UNKNOWN_COM_ERROR = 1047

_HEADER = Struct("<I")  # payload length (3 bytes) and sequence id (1 byte), one little-endian word
_U16 = Struct("<H")
_U32 = Struct("<I")
_U64 = Struct("<Q")
_OK_41 = Struct("<HH")  # status, warnings
_HANDSHAKE_TAIL = Struct("<BHHB")  # charset, status, capabilities (high 16 bits), auth data length
_CLIENT_HEAD = Struct("<IIB")  # capabilities, max packet size, charset

_unpack_header = _HEADER.unpack_from
_pack_header = _HEADER.pack
_unpack_u16 = _U16.unpack_from
_unpack_u32 = _U32.unpack_from


class ProtocolViolation(Exception):
    """The peer sent something that is not the protocol: the session reports it and ends.

    ``code`` and ``sqlstate`` are what the session puts in the ERR packet it sends the client.
    """

    code = ER_MALFORMED_PACKET
    sqlstate = "HY000"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PacketTooLarge(ProtocolViolation):
    """A logical payload over the reader's limit (``ER_NET_PACKET_TOO_LARGE``)."""

    code = ER_NET_PACKET_TOO_LARGE
    sqlstate = "08S01"


class PacketsOutOfOrder(ProtocolViolation):
    """A packet whose sequence id is not the expected one (``ER_NET_PACKETS_OUT_OF_ORDER``)."""

    code = ER_NET_PACKETS_OUT_OF_ORDER
    sqlstate = "08S01"


# --------------------------------------------------------------------------------------------------
# Length-encoded integers and strings (hot path: rows are made of them)


def read_lenenc_int(data: bytes, pos: int) -> tuple[int, int]:
    """``(value, position after it)`` of the length-encoded integer at ``pos``.

    0xFB (NULL in a row) and 0xFF are not integers: :class:`ProtocolViolation`, as is one cut short.
    """
    try:
        first = data[pos]
    except IndexError:
        raise ProtocolViolation("a length-encoded integer is missing") from None
    if first < 0xFB:
        return first, pos + 1
    if first == 0xFC:
        end = pos + 3
    elif first == 0xFD:
        end = pos + 4
    elif first == 0xFE:
        end = pos + 9
    else:
        raise ProtocolViolation(f"invalid length-encoded integer prefix 0x{first:02x}")
    if end > len(data):
        raise ProtocolViolation("a length-encoded integer is truncated")
    return int.from_bytes(data[pos + 1 : end], "little"), end


def read_lenenc_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    """``(bytes, position after them)`` of the length-encoded string at ``pos``."""
    length, pos = read_lenenc_int(data, pos)
    end = pos + length
    if end > len(data):
        raise ProtocolViolation("a length-encoded string runs past the end of its packet")
    return data[pos:end], end


def lenenc_int(value: int) -> bytes:
    """The length-encoded form of ``0 <= value < 2**64``."""
    if value < 0xFB:
        if value < 0:
            raise ValueError("a length-encoded integer cannot be negative")
        return bytes((value,))
    if value < 0x10000:
        return b"\xfc" + value.to_bytes(2, "little")
    if value < 0x1000000:
        return b"\xfd" + value.to_bytes(3, "little")
    if value < 1 << 64:
        return b"\xfe" + value.to_bytes(8, "little")
    raise ValueError("a length-encoded integer must be below 2**64")


def lenenc_bytes(value: bytes) -> bytes:
    """``value`` as a length-encoded string."""
    n = len(value)
    if n < 0xFB:
        return bytes((n,)) + value
    return lenenc_int(n) + value


def _read_nul(data: bytes, pos: int, what: str) -> tuple[bytes, int]:
    end = data.find(b"\x00", pos)
    if end < 0:
        raise ProtocolViolation(f"{what} is not NUL-terminated")
    return data[pos:end], end + 1


def _nul(value: bytes, what: str) -> bytes:
    if b"\x00" in value:
        raise ValueError(f"{what} cannot contain NUL")
    return value + b"\x00"


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolViolation(f"{what} is not valid UTF-8") from None


def _fixed(data: bytes, pos: int, size: int, what: str) -> int:
    """The end of a ``size``-byte field at ``pos``, checked."""
    end = pos + size
    if end > len(data):
        raise ProtocolViolation(f"{what} is truncated")
    return end


def _done(data: bytes, pos: int, what: str) -> None:
    if pos != len(data):
        raise ProtocolViolation(f"{len(data) - pos} unexpected bytes at the end of {what}")


# --------------------------------------------------------------------------------------------------
# Framing


def frame(payload: bytes, seq: int) -> bytes:
    """``payload`` framed as packets starting at sequence id ``seq`` (see :func:`next_sequence`).

    A payload of 0xFFFFFF bytes or more is split into 0xFFFFFF-byte packets, ended by a shorter
    one: an empty packet when the length is an exact multiple of 0xFFFFFF.
    """
    n = len(payload)
    if n < MAX_PACKET_PAYLOAD:
        return _pack_header(n | (seq & 0xFF) << 24) + payload
    parts: list[bytes] = []
    pos = 0
    while True:
        chunk = payload[pos : pos + MAX_PACKET_PAYLOAD]
        parts.append(_pack_header(len(chunk) | (seq & 0xFF) << 24))
        parts.append(chunk)
        seq += 1
        pos += len(chunk)
        if len(chunk) < MAX_PACKET_PAYLOAD:
            return b"".join(parts)


def packet_count(payload_length: int) -> int:
    """How many packets (sequence ids) a payload of this length takes on the wire."""
    return payload_length // MAX_PACKET_PAYLOAD + 1


def next_sequence(seq: int, payload_length: int) -> int:
    """The sequence id after a payload of ``payload_length`` bytes framed from ``seq``."""
    return (seq + payload_length // MAX_PACKET_PAYLOAD + 1) & 0xFF


def check_sequence(actual: int, expected: int) -> None:
    """:class:`PacketsOutOfOrder` unless ``actual == expected`` (both taken modulo 256)."""
    if (actual - expected) & 0xFF:
        raise PacketsOutOfOrder(f"got packet sequence id {actual & 0xFF}, expected {expected & 0xFF}")


class PacketReader:
    """Splits a byte stream into logical payloads. Sans-I/O: feed(bytes), then next() until None.

    :meth:`next` returns ``(sequence id, payload)``; a payload split over several packets comes back
    joined, with the sequence id of its first packet (:attr:`last_sequence` is its last one's).
    A logical payload over ``max_payload`` bytes raises :class:`PacketTooLarge` as soon as its length
    is known (before it is buffered whole). When :attr:`expected_sequence` is set, each packet's id
    must be that one (then it goes up by one per packet): :class:`PacketsOutOfOrder` otherwise. The
    session sets it when it expects a new exchange: 0 for a client's command, and for the server's
    answer the id after its command's last packet. ``None`` (the default) checks nothing.

    A payload arriving in many pieces is joined once, when it is complete. After a
    :class:`ProtocolViolation` the reader's state is undefined.
    """

    __slots__ = ("_data", "_max", "_parts", "_parts_len", "_pos", "expected_sequence", "last_sequence")

    def __init__(
        self, *, max_payload: int = DEFAULT_MAX_PAYLOAD, expected_sequence: int | None = None
    ) -> None:
        if max_payload < 1:
            raise ValueError("max_payload must be positive")
        self._data = b""  # the bytes the next packet starts in; _data[:_pos] was already taken
        self._pos = 0
        self._parts: list[bytes] = []  # fed after _data and not joined to it yet
        self._parts_len = 0
        self._max = max_payload
        self.expected_sequence = expected_sequence
        self.last_sequence: int | None = None

    @property
    def max_payload(self) -> int:
        return self._max

    @property
    def buffered(self) -> int:
        """Bytes held and not taken yet (after next() returned None: the incomplete tail)."""
        return len(self._data) - self._pos + self._parts_len

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        chunk = bytes(data)  # the object itself when it is already bytes
        if self._pos == len(self._data) and not self._parts:
            self._data = chunk
            self._pos = 0
        else:
            self._parts.append(chunk)
            self._parts_len += len(chunk)

    def _contiguous(self, size: int) -> bool:
        """Make ``size`` bytes from the current position contiguous in ``_data``, if they arrived."""
        if len(self._data) - self._pos >= size:
            return True
        if len(self._data) - self._pos + self._parts_len < size:
            return False
        self._data = self._data[self._pos :] + b"".join(self._parts)
        self._pos = 0
        self._parts = []
        self._parts_len = 0
        return True

    def _too_large(self, length: int) -> PacketTooLarge:
        return PacketTooLarge(
            f"a packet of {length} bytes or more is larger than the limit of {self._max} bytes"
        )

    def next(self) -> tuple[int, bytes] | None:
        """The next complete logical payload as ``(sequence id, payload)``, or None."""
        if not self._contiguous(4):
            return None
        data, pos = self._data, self._pos
        (word,) = _unpack_header(data, pos)
        length, seq = word & 0xFFFFFF, word >> 24
        if length < MAX_PACKET_PAYLOAD:
            if length > self._max:
                raise self._too_large(length)
            expected = self.expected_sequence
            if expected is not None and seq != expected:
                check_sequence(seq, expected)
            if not self._contiguous(4 + length):
                return None
            data, pos = self._data, self._pos
            end = pos + 4 + length
            self._pos = end
            self.last_sequence = seq
            if expected is not None:
                self.expected_sequence = (seq + 1) & 0xFF
            return seq, data[pos + 4 : end]
        return self._next_split()

    def _next_split(self) -> tuple[int, bytes] | None:
        """A payload of several packets: taken only once every one of them arrived."""
        offset = 0  # from the current position
        total = 0
        count = 0
        first_seq = last_seq = 0
        expected = self.expected_sequence
        while True:
            if not self._contiguous(offset + 4):
                return None
            (word,) = _unpack_header(self._data, self._pos + offset)
            length, seq = word & 0xFFFFFF, word >> 24
            if count == 0:
                first_seq = seq
            if expected is not None:
                check_sequence(seq, expected + count)
            elif count:
                check_sequence(seq, first_seq + count)  # the parts of one payload are consecutive
            total += length
            if total > self._max:
                raise self._too_large(total)
            offset += 4 + length
            count += 1
            last_seq = seq
            if length < MAX_PACKET_PAYLOAD:
                break
        if not self._contiguous(offset):
            return None
        data, pos = self._data, self._pos
        chunks = []
        end = pos + offset
        while pos < end:
            (word,) = _unpack_header(data, pos)
            length = word & 0xFFFFFF
            chunks.append(data[pos + 4 : pos + 4 + length])
            pos += 4 + length
        self._pos = end
        self.last_sequence = last_seq
        if expected is not None:
            self.expected_sequence = (last_seq + 1) & 0xFF
        return first_seq, b"".join(chunks)


# --------------------------------------------------------------------------------------------------
# Connection phase: greeting, SSLRequest, HandshakeResponse41, authentication exchanges


@dataclass(frozen=True, slots=True)
class Handshake:
    """The server's greeting (Protocol::HandshakeV10).

    ``capabilities`` holds MariaDB's extended capabilities in bits 32-63 when the server sent them
    (``CLIENT_MYSQL`` clear). ``auth_plugin_data`` is the nonce (usually 20 bytes, without the NUL
    MySQL appends); ``auth_plugin_name`` is empty when the server did not name one.
    """

    server_version: str
    connection_id: int
    auth_plugin_data: bytes
    capabilities: int
    charset: int
    status: int
    auth_plugin_name: str


def parse_handshake(payload: bytes) -> Handshake:
    """Decode the server's greeting (an ERR payload is the caller's to detect first: 0xFF)."""
    if not payload or payload[0] != PROTOCOL_VERSION:
        version = payload[0] if payload else None
        raise ProtocolViolation(f"unsupported handshake protocol version {version}: expected 10")
    raw_version, pos = _read_nul(payload, 1, "the server version")
    end = _fixed(payload, pos, 4 + 8 + 1 + 2, "the server greeting")
    (connection_id,) = _unpack_u32(payload, pos)
    nonce = payload[pos + 4 : pos + 12]
    (capabilities,) = _unpack_u16(payload, pos + 13)
    pos = end
    if pos + _HANDSHAKE_TAIL.size + 10 > len(payload):
        raise ProtocolViolation("the server greeting is truncated (a pre-4.1 server?)")
    charset, status, high, data_length = _HANDSHAKE_TAIL.unpack_from(payload, pos)
    capabilities |= high << 16
    pos += _HANDSHAKE_TAIL.size + 6
    if not capabilities & CLIENT_MYSQL:
        (extended,) = _unpack_u32(payload, pos)
        capabilities |= extended << 32
    pos += 4
    if not capabilities & CLIENT_PROTOCOL_41:
        raise ProtocolViolation("the server does not speak protocol 4.1")
    if capabilities & CLIENT_SECURE_CONNECTION:
        size = max(12, data_length - 9) if capabilities & CLIENT_PLUGIN_AUTH else 12
        end = _fixed(payload, pos, size, "the server's nonce")
        nonce += payload[pos:end]
        pos = end
        if pos < len(payload):
            if payload[pos] != 0:
                raise ProtocolViolation("the server's nonce is not followed by NUL")
            pos += 1
    plugin = b""
    if capabilities & CLIENT_PLUGIN_AUTH and pos < len(payload):
        end = payload.find(b"\x00", pos)
        if end < 0:  # some servers end the name with the packet instead
            plugin, pos = payload[pos:], len(payload)
        else:
            plugin, pos = payload[pos:end], end + 1
    _done(payload, pos, "the server greeting")
    return Handshake(
        server_version=_text(raw_version, "the server version"),
        connection_id=connection_id,
        auth_plugin_data=nonce,
        capabilities=capabilities,
        charset=charset,
        status=status,
        auth_plugin_name=_text(plugin, "the authentication plugin name"),
    )


def build_handshake(handshake: Handshake) -> bytes:
    """The greeting's payload. The nonce must be 8 bytes, or 20 or more with SECURE_CONNECTION."""
    caps = handshake.capabilities
    nonce = handshake.auth_plugin_data
    if not 0 <= caps < 1 << 64 or not 0 <= handshake.connection_id < 1 << 32:
        raise ValueError("capabilities or connection id out of range")
    if not caps & CLIENT_PROTOCOL_41:
        raise ValueError("the greeting must advertise CLIENT_PROTOCOL_41")
    if caps & CLIENT_SECURE_CONNECTION:
        if len(nonce) < 20:
            raise ValueError("the nonce must be at least 20 bytes with CLIENT_SECURE_CONNECTION")
    elif len(nonce) != 8:
        raise ValueError("the nonce must be 8 bytes without CLIENT_SECURE_CONNECTION")
    data_length = len(nonce) + 1 if caps & CLIENT_PLUGIN_AUTH else 0
    if data_length > 0xFF:
        raise ValueError("the nonce is too long")
    filler = (caps >> 32).to_bytes(4, "little") if not caps & CLIENT_MYSQL else b"\x00" * 4
    parts = [
        bytes((PROTOCOL_VERSION,)),
        _nul(handshake.server_version.encode(), "the server version"),
        _U32.pack(handshake.connection_id),
        nonce[:8],
        b"\x00",
        _U16.pack(caps & 0xFFFF),
        _HANDSHAKE_TAIL.pack(handshake.charset, handshake.status, caps >> 16 & 0xFFFF, data_length),
        b"\x00" * 6,
        filler,
    ]
    if caps & CLIENT_SECURE_CONNECTION:
        parts.append(nonce[8:] + b"\x00")
    if caps & CLIENT_PLUGIN_AUTH:
        parts.append(_nul(handshake.auth_plugin_name.encode(), "the plugin name"))
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class SSLRequest:
    """The client's 32-byte request to switch to TLS before its HandshakeResponse."""

    capabilities: int
    max_packet_size: int
    charset: int


@dataclass(frozen=True, slots=True)
class HandshakeResponse:
    """The client's answer to the greeting (Protocol::HandshakeResponse41).

    ``database`` is None without CLIENT_CONNECT_WITH_DB; ``auth_plugin_name`` is empty when the client
    did not name one; ``connect_attributes`` keep the client's order (None without CONNECT_ATTRS).
    """

    capabilities: int
    max_packet_size: int
    charset: int
    username: str
    auth_response: bytes
    database: str | None = None
    auth_plugin_name: str = ""
    connect_attributes: tuple[tuple[str, str], ...] | None = None
    zstd_level: int | None = None


def _client_head(payload: bytes) -> tuple[int, int, int]:
    if len(payload) < SSL_REQUEST_LENGTH:
        raise ProtocolViolation(f"the client's handshake response is truncated ({len(payload)} bytes)")
    capabilities, max_packet, charset = _CLIENT_HEAD.unpack_from(payload)
    if not capabilities & CLIENT_PROTOCOL_41:
        raise ProtocolViolation("the client does not speak protocol 4.1 (HandshakeResponse320)")
    if not capabilities & CLIENT_MYSQL:
        (extended,) = _unpack_u32(payload, 28)
        capabilities |= extended << 32
    return capabilities, max_packet, charset


def parse_client_handshake(payload: bytes) -> SSLRequest | HandshakeResponse:
    """Decode what a client sends after the greeting: an SSLRequest (32 bytes) or its response."""
    capabilities, max_packet, charset = _client_head(payload)
    if len(payload) == SSL_REQUEST_LENGTH:
        if not capabilities & CLIENT_SSL:
            raise ProtocolViolation("a 32-byte handshake response without CLIENT_SSL")
        return SSLRequest(capabilities, max_packet, charset)
    raw_user, pos = _read_nul(payload, SSL_REQUEST_LENGTH, "the user name")
    if capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        auth, pos = read_lenenc_bytes(payload, pos)
    elif capabilities & CLIENT_SECURE_CONNECTION:
        end = _fixed(payload, pos, 1, "the authentication response")
        auth_end = _fixed(payload, end, payload[pos], "the authentication response")
        auth, pos = payload[end:auth_end], auth_end
    else:
        auth, pos = _read_nul(payload, pos, "the authentication response")
    database: str | None = None
    if capabilities & CLIENT_CONNECT_WITH_DB and pos < len(payload):
        raw_db, pos = _read_nul(payload, pos, "the database name")
        database = _text(raw_db, "the database name")
    plugin = b""
    if capabilities & CLIENT_PLUGIN_AUTH and pos < len(payload):
        plugin, pos = _read_nul(payload, pos, "the authentication plugin name")
    attributes: tuple[tuple[str, str], ...] | None = None
    if capabilities & CLIENT_CONNECT_ATTRS and pos < len(payload):
        block, pos = read_lenenc_bytes(payload, pos)
        attributes = _parse_attributes(block)
    zstd: int | None = None
    if capabilities & CLIENT_ZSTD_COMPRESSION_ALGORITHM and pos < len(payload):
        zstd = payload[pos]
        pos += 1
    _done(payload, pos, "the handshake response")
    return HandshakeResponse(
        capabilities=capabilities,
        max_packet_size=max_packet,
        charset=charset,
        username=_text(raw_user, "the user name"),
        auth_response=auth,
        database=database,
        auth_plugin_name=_text(plugin, "the authentication plugin name"),
        connect_attributes=attributes,
        zstd_level=zstd,
    )


def _parse_attributes(block: bytes) -> tuple[tuple[str, str], ...]:
    pairs = []
    pos = 0
    while pos < len(block):
        key, pos = read_lenenc_bytes(block, pos)
        value, pos = read_lenenc_bytes(block, pos)
        pairs.append((_text(key, "a connection attribute"), _text(value, "a connection attribute")))
    return tuple(pairs)


def _client_head_bytes(capabilities: int, max_packet: int, charset: int) -> bytes:
    if not 0 <= capabilities < 1 << 64 or not 0 <= max_packet < 1 << 32 or not 0 <= charset < 256:
        raise ValueError("capabilities, max packet size or charset out of range")
    extended = (capabilities >> 32).to_bytes(4, "little") if not capabilities & CLIENT_MYSQL else b"\x00" * 4
    return _CLIENT_HEAD.pack(capabilities & 0xFFFFFFFF, max_packet, charset) + b"\x00" * 19 + extended


def build_ssl_request(request: SSLRequest) -> bytes:
    if not request.capabilities & CLIENT_SSL:
        raise ValueError("an SSLRequest must carry CLIENT_SSL")
    return _client_head_bytes(request.capabilities, request.max_packet_size, request.charset)


def build_handshake_response(response: HandshakeResponse) -> bytes:
    """The response's payload; fields are written as the capabilities say (see the parser)."""
    caps = response.capabilities
    if not caps & CLIENT_PROTOCOL_41:
        raise ValueError("the response must carry CLIENT_PROTOCOL_41")
    parts = [
        _client_head_bytes(caps, response.max_packet_size, response.charset),
        _nul(response.username.encode(), "the user name"),
    ]
    auth = response.auth_response
    if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        parts.append(lenenc_bytes(auth))
    elif caps & CLIENT_SECURE_CONNECTION:
        if len(auth) > 0xFF:
            raise ValueError("an authentication response over 255 bytes needs PLUGIN_AUTH_LENENC_CLIENT_DATA")
        parts.append(bytes((len(auth),)) + auth)
    else:
        parts.append(_nul(auth, "the authentication response"))
    tail_needed = (
        response.auth_plugin_name
        or response.connect_attributes is not None
        or response.zstd_level is not None
    )
    if caps & CLIENT_CONNECT_WITH_DB and (response.database is not None or tail_needed):
        parts.append(_nul((response.database or "").encode(), "the database name"))
    if caps & CLIENT_PLUGIN_AUTH and (
        response.auth_plugin_name
        or response.connect_attributes is not None
        or response.zstd_level is not None
    ):
        parts.append(_nul(response.auth_plugin_name.encode(), "the plugin name"))
    if caps & CLIENT_CONNECT_ATTRS and (
        response.connect_attributes is not None or response.zstd_level is not None
    ):
        block = b"".join(
            lenenc_bytes(k.encode()) + lenenc_bytes(v.encode()) for k, v in response.connect_attributes or ()
        )
        parts.append(lenenc_bytes(block))
    if caps & CLIENT_ZSTD_COMPRESSION_ALGORITHM and response.zstd_level is not None:
        parts.append(bytes((response.zstd_level,)))
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class AuthSwitchRequest:
    """The server asks the client to authenticate with another plugin (0xFE, plugin, data)."""

    plugin: str
    data: bytes


@dataclass(frozen=True, slots=True)
class AuthMoreData:
    """Plugin data during authentication (0x01, data): a caching_sha2 status byte, a public key..."""

    data: bytes


def parse_auth_switch(payload: bytes) -> AuthSwitchRequest:
    if not payload or payload[0] != EOF_HEADER:
        raise ProtocolViolation("not an authentication switch request")
    if len(payload) == 1:
        raise ProtocolViolation("the server asks for the pre-4.1 mysql_old_password: not supported")
    raw, pos = _read_nul(payload, 1, "the authentication plugin name")
    return AuthSwitchRequest(_text(raw, "the authentication plugin name"), payload[pos:])


def build_auth_switch(request: AuthSwitchRequest) -> bytes:
    if not request.plugin:
        raise ValueError("an authentication switch names a plugin")
    return b"\xfe" + _nul(request.plugin.encode(), "the plugin name") + request.data


def parse_auth_more_data(payload: bytes) -> AuthMoreData:
    if not payload or payload[0] != AUTH_MORE_DATA_HEADER:
        raise ProtocolViolation("not an AuthMoreData packet")
    return AuthMoreData(payload[1:])


def build_auth_more_data(data: bytes) -> bytes:
    return b"\x01" + data


# --------------------------------------------------------------------------------------------------
# Generic response packets: OK, ERR, EOF


@dataclass(frozen=True, slots=True)
class Ok:
    """An OK packet. ``eof_header``: it came with the 0xFE header (the EOF replacement under
    CLIENT_DEPRECATE_EOF). With CLIENT_SESSION_TRACK ``info`` is None when the field was absent
    and ``session_state`` holds the raw session-state-change block (None when absent); without
    it ``info`` is the rest of the packet."""

    affected_rows: int = 0
    last_insert_id: int = 0
    status: int = 0
    warnings: int = 0
    info: bytes | None = None
    session_state: bytes | None = None
    eof_header: bool = False


@dataclass(frozen=True, slots=True)
class Err:
    """An ERR packet; ``sqlstate`` is None when the server sent none (a pre-handshake error)."""

    code: int
    message: str
    sqlstate: str | None = "HY000"


@dataclass(frozen=True, slots=True)
class Eof:
    """An EOF packet (without CLIENT_DEPRECATE_EOF)."""

    warnings: int = 0
    status: int = 0


def is_eof_packet(payload: bytes, capabilities: int) -> bool:
    """True when ``payload`` ends rows: an EOF (0xFE, under 9 bytes) or, under DEPRECATE_EOF, an
    OK with the 0xFE header. A row whose first value starts with 0xFE (a length-encoded length of
    2**24 or more) is at least 2**24 bytes long, so the length tells them apart."""
    if not payload or payload[0] != EOF_HEADER:
        return False
    if capabilities & CLIENT_DEPRECATE_EOF:
        return len(payload) < MAX_PACKET_PAYLOAD
    return len(payload) < 9


def parse_ok(payload: bytes, capabilities: int) -> Ok:
    if not payload or payload[0] not in (OK_HEADER, EOF_HEADER):
        raise ProtocolViolation("not an OK packet")
    affected, pos = read_lenenc_int(payload, 1)
    insert_id, pos = read_lenenc_int(payload, pos)
    status = warnings = 0
    if capabilities & CLIENT_PROTOCOL_41:
        end = _fixed(payload, pos, 4, "an OK packet")
        status, warnings = _OK_41.unpack_from(payload, pos)
        pos = end
    elif capabilities & CLIENT_TRANSACTIONS:
        end = _fixed(payload, pos, 2, "an OK packet")
        (status,) = _unpack_u16(payload, pos)
        pos = end
    info: bytes | None = None
    state: bytes | None = None
    if capabilities & CLIENT_SESSION_TRACK:
        if pos < len(payload) or status & SERVER_SESSION_STATE_CHANGED:
            info, pos = read_lenenc_bytes(payload, pos)
            if status & SERVER_SESSION_STATE_CHANGED:
                state, pos = read_lenenc_bytes(payload, pos)
        _done(payload, pos, "an OK packet")
    elif pos < len(payload):
        info = payload[pos:]
    return Ok(affected, insert_id, status, warnings, info, state, payload[0] == EOF_HEADER)


def build_ok(ok: Ok, capabilities: int) -> bytes:
    parts = [
        b"\xfe" if ok.eof_header else b"\x00",
        lenenc_int(ok.affected_rows),
        lenenc_int(ok.last_insert_id),
    ]
    if capabilities & CLIENT_PROTOCOL_41:
        parts.append(_OK_41.pack(ok.status, ok.warnings))
    elif capabilities & CLIENT_TRANSACTIONS:
        parts.append(_U16.pack(ok.status))
    if capabilities & CLIENT_SESSION_TRACK:
        if ok.session_state is not None and not ok.status & SERVER_SESSION_STATE_CHANGED:
            raise ValueError("session state needs SERVER_SESSION_STATE_CHANGED in the status")
        if ok.info is not None or ok.status & SERVER_SESSION_STATE_CHANGED:
            parts.append(lenenc_bytes(ok.info or b""))
        if ok.status & SERVER_SESSION_STATE_CHANGED:
            parts.append(lenenc_bytes(ok.session_state or b""))
    elif ok.info:
        parts.append(ok.info)
    payload = b"".join(parts)
    if ok.eof_header and len(payload) >= MAX_PACKET_PAYLOAD:
        raise ValueError("a 0xFE-headed OK packet must be shorter than 0xFFFFFF bytes")
    return payload


def parse_err(payload: bytes, capabilities: int) -> Err:
    """Decode an ERR packet. The message is decoded leniently (a server may send it in another
    character set): an unreadable byte in an error must not become a protocol failure."""
    if not payload or payload[0] != ERR_HEADER:
        raise ProtocolViolation("not an ERR packet")
    end = _fixed(payload, 1, 2, "an ERR packet")
    (code,) = _unpack_u16(payload, 1)
    pos = end
    sqlstate: str | None = None
    if capabilities & CLIENT_PROTOCOL_41 and payload[pos : pos + 1] == b"#":
        end = _fixed(payload, pos, 6, "an ERR packet's SQLSTATE")
        sqlstate = payload[pos + 1 : end].decode("latin-1")
        pos = end
    return Err(code, payload[pos:].decode("utf-8", "replace"), sqlstate)


def build_err(err: Err, capabilities: int) -> bytes:
    if not 0 <= err.code <= 0xFFFF:
        raise ValueError("an error code is 16 bits")
    parts = [b"\xff", _U16.pack(err.code)]
    if capabilities & CLIENT_PROTOCOL_41 and err.sqlstate is not None:
        state = err.sqlstate.encode("ascii")
        if len(state) != 5:
            raise ValueError(f"a SQLSTATE is 5 characters, not {err.sqlstate!r}")
        parts.append(b"#" + state)
    parts.append(err.message.encode("utf-8", "replace"))
    return b"".join(parts)


def parse_eof(payload: bytes, capabilities: int) -> Eof:
    if not payload or payload[0] != EOF_HEADER or len(payload) >= 9:
        raise ProtocolViolation("not an EOF packet")
    if capabilities & CLIENT_PROTOCOL_41:
        if len(payload) != 5:
            raise ProtocolViolation(f"an EOF packet has {len(payload)} bytes, not 5")
        warnings, status = _OK_41.unpack_from(payload, 1)
        return Eof(warnings, status)
    _done(payload, 1, "an EOF packet")
    return Eof()


def build_eof(eof: Eof, capabilities: int) -> bytes:
    if capabilities & CLIENT_PROTOCOL_41:
        return b"\xfe" + _OK_41.pack(eof.warnings, eof.status)
    return b"\xfe"


AuthPacket = Ok | Err | AuthSwitchRequest | AuthMoreData


def parse_auth_packet(payload: bytes, capabilities: int) -> AuthPacket:
    """What the server says during authentication: OK, ERR, AuthSwitchRequest or AuthMoreData."""
    if not payload:
        raise ProtocolViolation("an empty packet during authentication")
    header = payload[0]
    if header == OK_HEADER:
        return parse_ok(payload, capabilities)
    if header == ERR_HEADER:
        return parse_err(payload, capabilities)
    if header == EOF_HEADER:
        return parse_auth_switch(payload)
    if header == AUTH_MORE_DATA_HEADER:
        return AuthMoreData(payload[1:])
    raise ProtocolViolation(f"unexpected packet 0x{header:02x} during authentication")


# --------------------------------------------------------------------------------------------------
# Binary protocol values (COM_STMT_EXECUTE parameters, binary result rows)

Value = int | float | str | bytes | datetime.date | datetime.datetime | datetime.timedelta | None
"""A decoded binary-protocol value: ints, floats, DECIMAL as its text, strings (``str`` when UTF-8,
else ``bytes``), blobs and bits as ``bytes``, DATE as ``date``, DATETIME/TIMESTAMP as ``datetime``,
TIME as ``timedelta``; zero and other invalid dates keep MySQL's text (``"0000-00-00"``)."""

_FIXED_WIDTH = {
    MYSQL_TYPE_TINY: 1,
    MYSQL_TYPE_SHORT: 2,
    MYSQL_TYPE_YEAR: 2,
    MYSQL_TYPE_LONG: 4,
    MYSQL_TYPE_INT24: 4,
    MYSQL_TYPE_FLOAT: 4,
    MYSQL_TYPE_LONGLONG: 8,
    MYSQL_TYPE_DOUBLE: 8,
    MYSQL_TYPE_NULL: 0,
}
LENENC_TYPES = frozenset(
    {
        MYSQL_TYPE_DECIMAL,
        MYSQL_TYPE_NEWDECIMAL,
        MYSQL_TYPE_VARCHAR,
        MYSQL_TYPE_BIT,
        MYSQL_TYPE_VECTOR,
        MYSQL_TYPE_JSON,
        MYSQL_TYPE_ENUM,
        MYSQL_TYPE_SET,
        MYSQL_TYPE_TINY_BLOB,
        MYSQL_TYPE_MEDIUM_BLOB,
        MYSQL_TYPE_LONG_BLOB,
        MYSQL_TYPE_BLOB,
        MYSQL_TYPE_VAR_STRING,
        MYSQL_TYPE_STRING,
        MYSQL_TYPE_GEOMETRY,
    }
)
"""Types whose binary value is a length-encoded string."""
TEMPORAL_LENGTHS = {
    MYSQL_TYPE_DATE: frozenset((0, 4, 7, 11)),
    MYSQL_TYPE_DATETIME: frozenset((0, 4, 7, 11)),
    MYSQL_TYPE_TIMESTAMP: frozenset((0, 4, 7, 11)),
    MYSQL_TYPE_TIME: frozenset((0, 8, 12)),
}
"""Temporal types and the lengths their binary value (a length byte, then that many bytes) may have."""
_INTEGER_TYPES = frozenset(
    {
        MYSQL_TYPE_TINY,
        MYSQL_TYPE_SHORT,
        MYSQL_TYPE_YEAR,
        MYSQL_TYPE_LONG,
        MYSQL_TYPE_INT24,
        MYSQL_TYPE_LONGLONG,
    }
)
_STRING_TYPES = frozenset(
    {
        MYSQL_TYPE_VARCHAR,
        MYSQL_TYPE_VAR_STRING,
        MYSQL_TYPE_STRING,
        MYSQL_TYPE_ENUM,
        MYSQL_TYPE_SET,
        MYSQL_TYPE_JSON,
    }
)
_DECIMAL_TYPES = frozenset({MYSQL_TYPE_DECIMAL, MYSQL_TYPE_NEWDECIMAL})
_FLOAT = Struct("<f")
_DOUBLE = Struct("<d")
_DATE = Struct("<HBB")
_CLOCK = Struct("<BBB")
_TIME_HEAD = Struct("<BI")  # is_negative, days


PARAMETER_TYPES = frozenset(
    {
        MYSQL_TYPE_TINY,
        MYSQL_TYPE_SHORT,
        MYSQL_TYPE_LONG,
        MYSQL_TYPE_LONGLONG,
        MYSQL_TYPE_FLOAT,
        MYSQL_TYPE_DOUBLE,
        MYSQL_TYPE_DATE,
        MYSQL_TYPE_TIME,
        MYSQL_TYPE_DATETIME,
        MYSQL_TYPE_TIMESTAMP,
        MYSQL_TYPE_NULL,
    }
    | (LENENC_TYPES - {MYSQL_TYPE_VECTOR})
)
"""The parameter types accepted in COM_STMT_EXECUTE (and query attributes). Servers read the types
they do not convert themselves (MYSQL_TYPE_INT24, MYSQL_TYPE_YEAR among them) as length-encoded
strings whatever their row encoding is, and not every server the same way: such a parameter could
mean one thing to the gateway and another to the server, so it is refused. A MYSQL_TYPE_NULL
parameter must be NULL in the bitmap."""


def binary_value_types() -> frozenset[int]:
    """Every column/parameter type this module can read and write in the binary protocol."""
    return frozenset(_FIXED_WIDTH) | LENENC_TYPES | frozenset(TEMPORAL_LENGTHS)


def read_binary_value(data: bytes, pos: int, field_type: int) -> tuple[bytes, int]:
    """``(value bytes, position after)`` of one binary-protocol value of ``field_type`` at ``pos``.

    The value bytes are what follows any length prefix: the fixed-width bytes of a number, the
    content of a length-encoded string, the bytes after a temporal value's length byte.
    """
    width = _FIXED_WIDTH.get(field_type)
    if width is not None:
        end = pos + width
        if end > len(data):
            raise ProtocolViolation(f"a binary value of type {field_type} is truncated")
        return data[pos:end], end
    if field_type in LENENC_TYPES:
        return read_lenenc_bytes(data, pos)
    lengths = TEMPORAL_LENGTHS.get(field_type)
    if lengths is None:
        raise ProtocolViolation(f"unsupported binary protocol type {field_type}")
    if pos >= len(data):
        raise ProtocolViolation(f"a binary value of type {field_type} is missing")
    length = data[pos]
    if length not in lengths:
        raise ProtocolViolation(f"a binary value of type {field_type} has an invalid length {length}")
    end = pos + 1 + length
    if end > len(data):
        raise ProtocolViolation(f"a binary value of type {field_type} is truncated")
    return data[pos + 1 : end], end


def write_binary_value(field_type: int, raw: bytes) -> bytes:
    """Value bytes (as :func:`read_binary_value` returns them) with their length prefix, if any."""
    width = _FIXED_WIDTH.get(field_type)
    if width is not None:
        if len(raw) != width:
            raise ValueError(f"a value of type {field_type} has {width} bytes, not {len(raw)}")
        return raw
    if field_type in LENENC_TYPES:
        return lenenc_bytes(raw)
    lengths = TEMPORAL_LENGTHS.get(field_type)
    if lengths is None or len(raw) not in lengths:
        raise ValueError(f"cannot write {len(raw)} bytes as a binary value of type {field_type}")
    return bytes((len(raw),)) + raw


def _zero_date_text(year: int, month: int, day: int) -> str:
    return f"{year:04d}-{month:02d}-{day:02d}"


def decode_binary_value(field_type: int, unsigned: bool, raw: bytes) -> Value:
    """A value's bytes (see :func:`read_binary_value`) as Python (see :data:`Value`)."""
    if field_type in _INTEGER_TYPES:
        return int.from_bytes(raw, "little", signed=not unsigned and field_type != MYSQL_TYPE_YEAR)
    if field_type == MYSQL_TYPE_DOUBLE:
        return float(_DOUBLE.unpack(raw)[0])
    if field_type == MYSQL_TYPE_FLOAT:
        return float(_FLOAT.unpack(raw)[0])
    if field_type == MYSQL_TYPE_NULL:
        return None
    if field_type in _DECIMAL_TYPES:
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolViolation("a DECIMAL value is not ASCII text") from None
    if field_type in _STRING_TYPES:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
    if field_type in LENENC_TYPES:
        return raw
    if field_type == MYSQL_TYPE_TIME:
        return _decode_time(raw)
    if field_type in TEMPORAL_LENGTHS:
        return _decode_datetime(field_type, raw)
    raise ProtocolViolation(f"unsupported binary protocol type {field_type}")


def _decode_datetime(field_type: int, raw: bytes) -> datetime.date | datetime.datetime | str:
    year, month, day = _DATE.unpack_from(raw) if raw else (0, 0, 0)
    hour, minute, second = _CLOCK.unpack_from(raw, 4) if len(raw) >= 7 else (0, 0, 0)
    micro = _unpack_u32(raw, 7)[0] if len(raw) == 11 else 0
    try:
        if field_type == MYSQL_TYPE_DATE:
            return datetime.date(year, month, day)
        return datetime.datetime(year, month, day, hour, minute, second, micro)
    except (ValueError, OverflowError):  # zero dates and the like, which MySQL keeps: its own text
        text = _zero_date_text(year, month, day)
        if field_type != MYSQL_TYPE_DATE:
            text += f" {hour:02d}:{minute:02d}:{second:02d}"
            if micro:
                text += f".{micro:06d}"
        return text


def _decode_time(raw: bytes) -> datetime.timedelta:
    if not raw:
        return datetime.timedelta(0)
    negative, days = _TIME_HEAD.unpack_from(raw)
    hour, minute, second = _CLOCK.unpack_from(raw, 5)
    micro = _unpack_u32(raw, 8)[0] if len(raw) == 12 else 0
    if negative > 1:
        raise ProtocolViolation("a TIME value has an invalid sign byte")
    try:
        value = datetime.timedelta(days=days, hours=hour, minutes=minute, seconds=second, microseconds=micro)
    except OverflowError:
        raise ProtocolViolation("a TIME value is out of range") from None
    return -value if negative else value


def encode_binary_value(field_type: int, unsigned: bool, value: Value) -> bytes:
    """``value`` as the bytes :func:`read_binary_value` returns for ``field_type`` (no length prefix).

    ``ValueError`` when ``value`` does not fit the type.
    """
    if value is None:
        raise ValueError("NULL has no value bytes: it is a bit in the NULL bitmap")
    if field_type in _INTEGER_TYPES:
        if not isinstance(value, int):
            raise ValueError(f"an integer type needs an int, not {type(value).__name__}")
        signed = not unsigned and field_type != MYSQL_TYPE_YEAR
        try:
            return value.to_bytes(_FIXED_WIDTH[field_type], "little", signed=signed)
        except OverflowError:
            raise ValueError(f"{value} does not fit type {field_type}") from None
    if field_type in (MYSQL_TYPE_DOUBLE, MYSQL_TYPE_FLOAT):
        if not isinstance(value, int | float):
            raise ValueError(f"a floating-point type needs a number, not {type(value).__name__}")
        try:
            return (_DOUBLE if field_type == MYSQL_TYPE_DOUBLE else _FLOAT).pack(value)
        except (OverflowError, struct.error):
            raise ValueError(f"{value} does not fit type {field_type}") from None
    if field_type in LENENC_TYPES:
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, bytes):
            return value
        raise ValueError(f"a string type needs str or bytes, not {type(value).__name__}")
    if field_type == MYSQL_TYPE_TIME:
        if not isinstance(value, datetime.timedelta):
            raise ValueError(f"TIME needs a timedelta, not {type(value).__name__}")
        return _encode_time(value)
    if field_type in TEMPORAL_LENGTHS:
        return _encode_datetime(value)
    raise ValueError(f"unsupported binary protocol type {field_type}")


_ZERO_DATE_TEXT = re.compile(  # what _decode_datetime gives for dates Python cannot hold
    r"([0-9]{4,5})-([0-9]{2,3})-([0-9]{2,3})(?: ([0-9]{2,3}):([0-9]{2,3}):([0-9]{2,3})(?:\.([0-9]{6,10}))?)?"
)


def _encode_datetime(value: Value) -> bytes:
    if isinstance(value, datetime.datetime):
        parts = (
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
        )
    elif isinstance(value, datetime.date):
        parts = (value.year, value.month, value.day, 0, 0, 0, 0)
    elif isinstance(value, str) and (m := _ZERO_DATE_TEXT.fullmatch(value)) is not None:
        parts = tuple(int(g) if g else 0 for g in m.groups())  # type: ignore[assignment]
    else:
        raise ValueError(f"a date or datetime type needs a date, datetime or MySQL's text, not {value!r}")
    year, month, day, hour, minute, second, micro = parts
    if year > 0xFFFF or max(month, day, hour, minute, second) > 0xFF or micro > 0xFFFFFFFF:
        raise ValueError(f"{value!r} does not fit a binary date")
    if micro:
        return _DATE.pack(year, month, day) + _CLOCK.pack(hour, minute, second) + _U32.pack(micro)
    if hour or minute or second:
        return _DATE.pack(year, month, day) + _CLOCK.pack(hour, minute, second)
    if year or month or day:
        return _DATE.pack(year, month, day)
    return b""


def _encode_time(value: datetime.timedelta) -> bytes:
    negative = value < datetime.timedelta(0)
    if negative:
        value = -value
    days, seconds, micro = value.days, value.seconds, value.microseconds
    if days >= 1 << 32:
        raise ValueError("a TIME value is out of range")
    hour, rest = divmod(seconds, 3600)
    minute, second = divmod(rest, 60)
    if not (days or seconds or micro):
        return b""
    head = _TIME_HEAD.pack(1 if negative else 0, days) + _CLOCK.pack(hour, minute, second)
    return head + _U32.pack(micro) if micro else head


# --------------------------------------------------------------------------------------------------
# Client commands


@dataclass(frozen=True, slots=True)
class Parameter:
    """A bound value: of a COM_STMT_EXECUTE, or a query attribute of a COM_QUERY (``name``).

    ``value`` is None for NULL and :data:`LONG_DATA` for a parameter whose value the client sent
    with COM_STMT_SEND_LONG_DATA (it is not in the execute packet)."""

    type: int
    unsigned: bool
    value: Value | LongData
    name: str | None = None

    @property
    def long_data(self) -> bool:
        return isinstance(self.value, LongData)


class LongData:
    """The marker of a parameter sent with COM_STMT_SEND_LONG_DATA (see :data:`LONG_DATA`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "LONG_DATA"


LONG_DATA = LongData()


@dataclass(frozen=True, slots=True)
class Query:
    """COM_QUERY; ``attributes`` are the query attributes of CLIENT_QUERY_ATTRIBUTES (named values)."""

    sql: bytes
    attributes: tuple[Parameter, ...] = ()


@dataclass(frozen=True, slots=True)
class InitDb:
    schema: str


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Quit:
    pass


@dataclass(frozen=True, slots=True)
class FieldList:
    table: str
    wildcard: str


@dataclass(frozen=True, slots=True)
class ResetConnection:
    pass


@dataclass(frozen=True, slots=True)
class SetOption:
    option: int  # MYSQL_OPTION_MULTI_STATEMENTS_ON / _OFF


@dataclass(frozen=True, slots=True)
class ChangeUser:
    """COM_CHANGE_USER: only the user name is read (the gateway refuses the command)."""

    username: str


@dataclass(frozen=True, slots=True)
class Statistics:
    pass


@dataclass(frozen=True, slots=True)
class ProcessKill:
    connection_id: int


@dataclass(frozen=True, slots=True)
class Debug:
    pass


@dataclass(frozen=True, slots=True)
class StmtPrepare:
    sql: bytes


@dataclass(frozen=True, slots=True)
class StmtExecute:
    """COM_STMT_EXECUTE's head; its parameters need the statement's: :func:`parse_stmt_execute`."""

    statement_id: int
    flags: int
    iteration_count: int

    @property
    def cursor(self) -> bool:
        """The client asks for a cursor: rows come with COM_STMT_FETCH."""
        return bool(self.flags & (CURSOR_TYPE_READ_ONLY | CURSOR_TYPE_FOR_UPDATE | CURSOR_TYPE_SCROLLABLE))


@dataclass(frozen=True, slots=True)
class StmtSendLongData:
    statement_id: int
    param_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StmtClose:
    statement_id: int


@dataclass(frozen=True, slots=True)
class StmtReset:
    statement_id: int


@dataclass(frozen=True, slots=True)
class StmtFetch:
    statement_id: int
    rows: int


@dataclass(frozen=True, slots=True)
class Unknown:
    """Any other command (COM_BINLOG_DUMP, COM_SHUTDOWN, COM_STMT_BULK_EXECUTE, an unassigned byte...)."""

    command: int
    payload: bytes


Command = (
    Query
    | InitDb
    | Ping
    | Quit
    | FieldList
    | ResetConnection
    | SetOption
    | ChangeUser
    | Statistics
    | ProcessKill
    | Debug
    | StmtPrepare
    | StmtExecute
    | StmtSendLongData
    | StmtClose
    | StmtReset
    | StmtFetch
    | Unknown
)

_STMT_HEAD = Struct("<IBI")  # statement id, flags, iteration count
_STMT_ID = Struct("<I")
_LONG_DATA_HEAD = Struct("<IH")
_FETCH = Struct("<II")
_NO_ARGUMENT: dict[int, Ping | Quit | ResetConnection | Statistics | Debug] = {
    COM_PING: Ping(),
    COM_QUIT: Quit(),
    COM_RESET_CONNECTION: ResetConnection(),
    COM_STATISTICS: Statistics(),
    COM_DEBUG: Debug(),
}


def parse_command(payload: bytes, capabilities: int = CLIENT_PROTOCOL_41) -> Command:
    """Decode a client's command payload. Only CLIENT_QUERY_ATTRIBUTES in ``capabilities`` matters
    (COM_QUERY then starts with its attributes); the gateway does not negotiate it."""
    if not payload:
        raise ProtocolViolation("an empty command packet")
    command = payload[0]
    if command == COM_QUERY:
        if capabilities & CLIENT_QUERY_ATTRIBUTES:
            attributes, pos = _parse_query_attributes(payload, 1)
            return Query(payload[pos:], attributes)
        return Query(payload[1:])
    if command == COM_STMT_EXECUTE:
        statement_id, flags, iterations = _stmt_head(payload)
        return StmtExecute(statement_id, flags, iterations)
    if command in _NO_ARGUMENT:
        if len(payload) != 1:
            raise ProtocolViolation(f"command 0x{command:02x} takes no argument")
        return _NO_ARGUMENT[command]
    if command == COM_STMT_PREPARE:
        return StmtPrepare(payload[1:])
    if command == COM_INIT_DB:
        return InitDb(_text(payload[1:], "the database name"))
    if command in (COM_STMT_CLOSE, COM_STMT_RESET):
        if len(payload) != 5:
            raise ProtocolViolation(f"command 0x{command:02x} takes a 4-byte statement id")
        (statement_id,) = _STMT_ID.unpack_from(payload, 1)
        return StmtClose(statement_id) if command == COM_STMT_CLOSE else StmtReset(statement_id)
    if command == COM_STMT_SEND_LONG_DATA:
        if len(payload) < 7:
            raise ProtocolViolation("COM_STMT_SEND_LONG_DATA is truncated")
        statement_id, param_id = _LONG_DATA_HEAD.unpack_from(payload, 1)
        return StmtSendLongData(statement_id, param_id, payload[7:])
    if command == COM_STMT_FETCH:
        if len(payload) != 9:
            raise ProtocolViolation("COM_STMT_FETCH takes a statement id and a row count")
        return StmtFetch(*_FETCH.unpack_from(payload, 1))
    if command == COM_FIELD_LIST:
        raw_table, pos = _read_nul(payload, 1, "the table name")
        return FieldList(_text(raw_table, "the table name"), _text(payload[pos:], "the wildcard"))
    if command == COM_SET_OPTION:
        if len(payload) != 3:
            raise ProtocolViolation("COM_SET_OPTION takes a 2-byte option")
        return SetOption(_unpack_u16(payload, 1)[0])
    if command == COM_PROCESS_KILL:
        if len(payload) != 5:
            raise ProtocolViolation("COM_PROCESS_KILL takes a 4-byte connection id")
        return ProcessKill(_unpack_u32(payload, 1)[0])
    if command == COM_CHANGE_USER:
        raw_user, _ = _read_nul(payload, 1, "the user name")
        return ChangeUser(raw_user.decode("utf-8", "replace"))
    return Unknown(command, payload)


def _stmt_head(payload: bytes) -> tuple[int, int, int]:
    if len(payload) < 10 or payload[0] != COM_STMT_EXECUTE:
        raise ProtocolViolation("COM_STMT_EXECUTE is truncated")
    statement_id, flags, iterations = _STMT_HEAD.unpack_from(payload, 1)
    return statement_id, flags, iterations


def _null_bitmap(payload: bytes, pos: int, count: int, offset: int = 0) -> tuple[bytes, int]:
    end = pos + (count + offset + 7) // 8
    if end > len(payload):
        raise ProtocolViolation("a NULL bitmap is truncated")
    return payload[pos:end], end


def _is_null(bitmap: bytes, index: int) -> bool:
    return bool(bitmap[index >> 3] >> (index & 7) & 1)


def _parse_query_attributes(payload: bytes, pos: int) -> tuple[tuple[Parameter, ...], int]:
    count, pos = read_lenenc_int(payload, pos)
    sets, pos = read_lenenc_int(payload, pos)
    if sets != 1:
        raise ProtocolViolation(f"query attributes come in one set, not {sets}")
    if not count:
        return (), pos
    if count > len(payload):
        raise ProtocolViolation("more query attributes than bytes")
    bitmap, pos = _null_bitmap(payload, pos, count)
    if payload[pos : pos + 1] != b"\x01":
        raise ProtocolViolation("query attributes must be sent with their types (new_params_bind_flag 1)")
    types, names, pos = _param_types(payload, pos + 1, count, named=True)
    params, pos = _param_values(payload, pos, bitmap, types, names, ())
    return params, pos


def _param_types(
    payload: bytes, pos: int, count: int, named: bool
) -> tuple[list[tuple[int, bool]], list[str | None], int]:
    types: list[tuple[int, bool]] = []
    names: list[str | None] = []
    for _ in range(count):
        end = _fixed(payload, pos, 2, "a parameter type")
        field_type, flag = payload[pos], payload[pos + 1]
        if field_type not in PARAMETER_TYPES:
            raise ProtocolViolation(f"unsupported parameter type {field_type}")
        if flag & 0x7F:
            raise ProtocolViolation(f"unsupported parameter flags 0x{flag:02x}")
        types.append((field_type, bool(flag & 0x80)))
        pos = end
        if named:
            raw_name, pos = read_lenenc_bytes(payload, pos)
            names.append(_text(raw_name, "a parameter name"))
        else:
            names.append(None)
    return types, names, pos


def _param_values(
    payload: bytes,
    pos: int,
    bitmap: bytes,
    types: Sequence[tuple[int, bool]],
    names: Sequence[str | None],
    long_data: Collection[int],
) -> tuple[tuple[Parameter, ...], int]:
    params = []
    for i, (field_type, unsigned) in enumerate(types):
        value: Value | LongData
        if _is_null(bitmap, i):
            value = None
        elif i in long_data:
            value = LONG_DATA
        elif field_type == MYSQL_TYPE_NULL:
            raise ProtocolViolation("a parameter of type NULL that is not NULL in the bitmap")
        else:
            raw, pos = read_binary_value(payload, pos, field_type)
            value = decode_binary_value(field_type, unsigned, raw)
        params.append(Parameter(field_type, unsigned, value, names[i]))
    return tuple(params), pos


@dataclass(frozen=True, slots=True)
class ExecuteRequest:
    """A COM_STMT_EXECUTE decoded with its statement's parameter count (:func:`parse_stmt_execute`).

    ``types_sent``: the client bound new types (new_params_bind_flag); when it did not, the types
    are the previous execute's. ``null_bitmap`` is as sent (empty without parameters).
    """

    statement_id: int
    flags: int
    iteration_count: int
    params: tuple[Parameter, ...]
    null_bitmap: bytes
    types_sent: bool

    @property
    def types(self) -> tuple[tuple[int, bool], ...]:
        return tuple((p.type, p.unsigned) for p in self.params)

    @property
    def cursor(self) -> bool:
        return bool(self.flags & (CURSOR_TYPE_READ_ONLY | CURSOR_TYPE_FOR_UPDATE | CURSOR_TYPE_SCROLLABLE))


def parse_stmt_execute(
    payload: bytes,
    param_count: int,
    previous_types: Sequence[tuple[int, bool]] | None = None,
    long_data: Collection[int] = (),
    capabilities: int = CLIENT_PROTOCOL_41,
) -> ExecuteRequest:
    """Decode a COM_STMT_EXECUTE for a statement prepared with ``param_count`` parameters.

    ``previous_types`` are the ``(type, unsigned)`` pairs of the last execute of the statement, used
    when the client does not send types again (new_params_bind_flag 0; refused without them);
    ``long_data`` are the indexes of the parameters sent with COM_STMT_SEND_LONG_DATA since then
    (their values are not in the packet: :data:`LONG_DATA`). With CLIENT_QUERY_ATTRIBUTES the
    packet may carry more (named) values than ``param_count``: they are returned after the others.
    """
    statement_id, flags, iterations = _stmt_head(payload)
    pos = 10
    count = param_count
    named = False
    if capabilities & CLIENT_QUERY_ATTRIBUTES and (param_count > 0 or flags & PARAMETER_COUNT_AVAILABLE):
        count, pos = read_lenenc_int(payload, pos)
        if count < param_count:
            raise ProtocolViolation(f"{count} parameters sent for a statement of {param_count}")
        named = True
    if count == 0:
        _done(payload, pos, "COM_STMT_EXECUTE")
        return ExecuteRequest(statement_id, flags, iterations, (), b"", False)
    if count > len(payload):
        raise ProtocolViolation("more parameters than bytes")
    bitmap, pos = _null_bitmap(payload, pos, count)
    if pos >= len(payload):
        raise ProtocolViolation("COM_STMT_EXECUTE lacks its new_params_bind_flag")
    bound = payload[pos]
    pos += 1
    if bound == 1:
        types, names, pos = _param_types(payload, pos, count, named)
    elif bound == 0:
        if previous_types is None or len(previous_types) != count:
            raise ProtocolViolation("COM_STMT_EXECUTE without parameter types, and none were sent before")
        types, names = list(previous_types), [None] * count
    else:
        raise ProtocolViolation(f"invalid new_params_bind_flag {bound}")
    params, pos = _param_values(payload, pos, bitmap, types, names, long_data)
    _done(payload, pos, "COM_STMT_EXECUTE")
    return ExecuteRequest(statement_id, flags, iterations, params, bitmap, bound == 1)


def build_query(sql: bytes | str) -> bytes:
    return b"\x03" + (sql.encode() if isinstance(sql, str) else sql)


def build_stmt_prepare(sql: bytes | str) -> bytes:
    return b"\x16" + (sql.encode() if isinstance(sql, str) else sql)


def build_init_db(schema: str) -> bytes:
    return b"\x02" + schema.encode()


def build_ping() -> bytes:
    return b"\x0e"


def build_quit() -> bytes:
    return b"\x01"


def build_reset_connection() -> bytes:
    return b"\x1f"


def build_stmt_close(statement_id: int) -> bytes:
    return b"\x19" + _STMT_ID.pack(statement_id)


def build_stmt_reset(statement_id: int) -> bytes:
    return b"\x1a" + _STMT_ID.pack(statement_id)


def build_stmt_fetch(statement_id: int, rows: int) -> bytes:
    return b"\x1c" + _FETCH.pack(statement_id, rows)


def build_stmt_send_long_data(statement_id: int, param_id: int, data: bytes) -> bytes:
    return b"\x18" + _LONG_DATA_HEAD.pack(statement_id, param_id) + data


def build_stmt_execute(
    statement_id: int,
    params: Sequence[Parameter],
    *,
    flags: int = CURSOR_TYPE_NO_CURSOR,
    iteration_count: int = 1,
    send_types: bool = True,
) -> bytes:
    """A COM_STMT_EXECUTE (without CLIENT_QUERY_ATTRIBUTES: parameter names are not sent).

    :data:`LONG_DATA` parameters are left out of the values (the server has them already).
    """
    parts = [b"\x17", _STMT_HEAD.pack(statement_id, flags, iteration_count)]
    if params:
        bitmap = bytearray((len(params) + 7) // 8)
        for i, param in enumerate(params):
            if param.value is None:
                bitmap[i >> 3] |= 1 << (i & 7)
        parts.append(bytes(bitmap))
        parts.append(b"\x01" if send_types else b"\x00")
        if send_types:
            parts.extend(bytes((p.type, 0x80 if p.unsigned else 0)) for p in params)
        for param in params:
            value = param.value
            if value is None or isinstance(value, LongData):
                continue
            parts.append(
                write_binary_value(param.type, encode_binary_value(param.type, param.unsigned, value))
            )
    return b"".join(parts)


# --------------------------------------------------------------------------------------------------
# Result sets: column definitions and rows


@dataclass(frozen=True, slots=True)
class ColumnDefinition:
    """A Protocol::ColumnDefinition41; ``default`` only in COM_FIELD_LIST's answer; ``payload`` is
    the packet as received (forward it as it is)."""

    catalog: bytes
    schema: bytes
    table: bytes
    org_table: bytes
    name: bytes
    org_name: bytes
    charset: int
    length: int
    type: int
    flags: int
    decimals: int
    default: bytes | None = None
    payload: bytes = field(default=b"", compare=False)  # equal definitions may differ in filler bytes

    @property
    def unsigned(self) -> bool:
        return bool(self.flags & UNSIGNED_FLAG)

    @property
    def name_text(self) -> str:
        return self.name.decode("utf-8", "replace")


_COLUMN_FIXED = Struct("<HIBHB")  # charset, length, type, flags, decimals (then 2 filler bytes)


def parse_column_definition(payload: bytes, field_list: bool = False) -> ColumnDefinition:
    """Decode a ColumnDefinition41 (``field_list``: COM_FIELD_LIST's, with a default value)."""
    pos = 0
    texts = []
    for _ in range(6):
        value, pos = read_lenenc_bytes(payload, pos)
        texts.append(value)
    fixed, pos = read_lenenc_int(payload, pos)
    if fixed != 0x0C:
        raise ProtocolViolation(f"a column definition's fixed fields are {fixed} bytes, not 12")
    end = _fixed(payload, pos, 12, "a column definition")
    charset, length, field_type, flags, decimals = _COLUMN_FIXED.unpack_from(payload, pos)
    pos = end
    default: bytes | None = None
    if field_list and pos < len(payload):
        if payload[pos] == NULL_CELL:
            pos += 1
        else:
            default, pos = read_lenenc_bytes(payload, pos)
    _done(payload, pos, "a column definition")
    catalog, schema, table, org_table, name, org_name = texts
    return ColumnDefinition(
        catalog,
        schema,
        table,
        org_table,
        name,
        org_name,
        charset,
        length,
        field_type,
        flags,
        decimals,
        default,
        payload,
    )


_DEFINITIONS: dict[bytes, ColumnDefinition] = {}
_DEFINITIONS_KEPT = 2048
_DEFINITION_KEPT_BYTES = 512


def column_definition(payload: bytes) -> ColumnDefinition:
    """``parse_column_definition(payload)``, kept by the payload's bytes: a session's statements
    answer with the same definitions over and over (each parse made a 13-field object, about 3 µs
    a column a statement). Decoding is a pure function of the bytes and the result is immutable,
    so a kept definition is the parse; a malformed payload raises and is never kept."""
    found = _DEFINITIONS.get(payload)
    if found is None:
        found = parse_column_definition(payload)
        if len(payload) <= _DEFINITION_KEPT_BYTES:
            if len(_DEFINITIONS) >= _DEFINITIONS_KEPT:
                _DEFINITIONS.clear()
            _DEFINITIONS[payload] = found
    return found


def build_column_definition(column: ColumnDefinition) -> bytes:
    """A ColumnDefinition41 from its fields (``payload`` is ignored)."""
    parts = [
        lenenc_bytes(column.catalog),
        lenenc_bytes(column.schema),
        lenenc_bytes(column.table),
        lenenc_bytes(column.org_table),
        lenenc_bytes(column.name),
        lenenc_bytes(column.org_name),
        b"\x0c",
        _COLUMN_FIXED.pack(column.charset, column.length, column.type, column.flags, column.decimals),
        b"\x00\x00",
    ]
    if column.default is not None:
        parts.append(lenenc_bytes(column.default))
    return b"".join(parts)


def column(
    name: str,
    field_type: int,
    *,
    charset: int = UTF8MB4_GENERAL_CI,
    flags: int = 0,
    length: int = 0,
    decimals: int = 0,
    table: str = "",
    schema: str = "",
) -> ColumnDefinition:
    """A column definition with its payload built: for tests and for result sets the gateway makes."""
    definition = ColumnDefinition(
        b"def",
        schema.encode(),
        table.encode(),
        table.encode(),
        name.encode(),
        name.encode(),
        charset,
        length,
        field_type,
        flags,
        decimals,
    )
    return replace(definition, payload=build_column_definition(definition))


def parse_text_row(payload: bytes, column_count: int) -> list[bytes | None]:
    """A text-protocol row: one length-encoded string or 0xFB (NULL) per column."""
    values: list[bytes | None] = []
    append = values.append
    pos = 0
    size = len(payload)
    for _ in range(column_count):
        if pos >= size:
            raise ProtocolViolation(f"a row has fewer than {column_count} values")
        first = payload[pos]
        if first < 0xFB:  # the common case: a value under 251 bytes
            end = pos + 1 + first
            if end > size:
                raise ProtocolViolation("a row value runs past the end of its packet")
            append(payload[pos + 1 : end])
            pos = end
        elif first == NULL_CELL:
            append(None)
            pos += 1
        else:
            value, pos = read_lenenc_bytes(payload, pos)
            append(value)
    if pos != size:
        raise ProtocolViolation(f"a row has more than {column_count} values")
    return values


def build_text_row(values: Sequence[bytes | None]) -> bytes:
    return b"".join(b"\xfb" if v is None else lenenc_bytes(v) for v in values)


def parse_binary_row(payload: bytes, column_types: Sequence[int]) -> list[bytes | None]:
    """A binary-protocol row: 0x00, a NULL bitmap (offset 2), then each non-NULL value by its
    column's type; values as :func:`read_binary_value` returns them (None: NULL)."""
    count = len(column_types)
    if not payload or payload[0] != 0:
        raise ProtocolViolation("a binary row does not start with 0x00")
    bitmap, pos = _null_bitmap(payload, 1, count, 2)
    values: list[bytes | None] = []
    for i, field_type in enumerate(column_types):
        k = i + 2
        if bitmap[k >> 3] >> (k & 7) & 1:
            values.append(None)
        else:
            raw, pos = read_binary_value(payload, pos, field_type)
            values.append(raw)
    if pos != len(payload):
        raise ProtocolViolation(f"{len(payload) - pos} unexpected bytes after a binary row's last value")
    if count and bitmap[-1] >> ((count + 2 - 1) & 7) >> 1:
        raise ProtocolViolation("a binary row's NULL bitmap has bits past its last column")
    if bitmap and bitmap[0] & 0x03:
        raise ProtocolViolation("a binary row's NULL bitmap has its two reserved bits set")
    return values


def build_binary_row(values: Sequence[bytes | None], column_types: Sequence[int]) -> bytes:
    """A binary-protocol row from value bytes (as :func:`parse_binary_row` returns them)."""
    if len(values) != len(column_types):
        raise ValueError(f"{len(values)} values for {len(column_types)} columns")
    bitmap = bytearray((len(values) + 9) // 8)
    parts = [b"\x00", b""]
    for i, (value, field_type) in enumerate(zip(values, column_types, strict=True)):
        if value is None:
            k = i + 2
            bitmap[k >> 3] |= 1 << (k & 7)
        else:
            parts.append(write_binary_value(field_type, value))
    parts[1] = bytes(bitmap)
    return b"".join(parts)


# --------------------------------------------------------------------------------------------------
# The server's answer to one command: a sans-I/O state machine


@dataclass(frozen=True, slots=True)
class OkReply:
    """An OK packet answering the command, or ending one result of several (``more_results``)."""

    ok: Ok
    payload: bytes

    @property
    def more_results(self) -> bool:
        return bool(self.ok.status & SERVER_MORE_RESULTS_EXISTS)


@dataclass(frozen=True, slots=True)
class ErrReply:
    """An ERR packet: the command failed (the rest of a multi-statement does not run)."""

    err: Err
    payload: bytes


@dataclass(frozen=True, slots=True)
class LocalInfileRequest:
    """The server asks the client to send a file (LOAD DATA LOCAL INFILE): 0xFB and its name.

    The session must never pass it on unless policy allows; to refuse, it sends the server an empty
    packet (no file) with the next sequence id, and the server answers with OK or ERR.
    """

    filename: bytes
    payload: bytes


@dataclass(frozen=True, slots=True)
class ResultSetStart:
    column_count: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Column:
    """One column definition of a result set (or of COM_FIELD_LIST's answer)."""

    definition: ColumnDefinition
    payload: bytes


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter definition of COM_STMT_PREPARE's answer."""

    definition: ColumnDefinition
    payload: bytes


@dataclass(frozen=True, slots=True)
class ColumnsDone:
    """The EOF after column (or, ``params``, parameter) definitions; ``payload`` None when dropped
    (translated for a client with CLIENT_DEPRECATE_EOF)."""

    eof: Eof
    payload: bytes | None
    params: bool = False


@dataclass(frozen=True, slots=True)
class TextRow:
    payload: bytes


@dataclass(frozen=True, slots=True)
class BinaryRow:
    payload: bytes


@dataclass(frozen=True, slots=True)
class ResultSetDone:
    """The end of a result set's rows: an EOF, or an OK with the 0xFE header (``ok``) under
    CLIENT_DEPRECATE_EOF. ``payload`` is what the client gets (an OK when translated)."""

    status: int
    warnings: int
    payload: bytes
    ok: Ok | None = None

    @property
    def more_results(self) -> bool:
        return bool(self.status & SERVER_MORE_RESULTS_EXISTS)

    @property
    def cursor_exists(self) -> bool:
        return bool(self.status & SERVER_STATUS_CURSOR_EXISTS)

    @property
    def last_row_sent(self) -> bool:
        return bool(self.status & SERVER_STATUS_LAST_ROW_SENT)


@dataclass(frozen=True, slots=True)
class PrepareOk:
    """COM_STMT_PREPARE's first answer; parameter and column definitions follow."""

    statement_id: int
    column_count: int
    param_count: int
    warnings: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class FieldListDone:
    """The end of COM_FIELD_LIST's column definitions (EOF, or a 0xFE-headed OK)."""

    status: int
    warnings: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class EofReply:
    """An EOF answering the command itself (COM_SET_OPTION, COM_DEBUG), or its 0xFE-headed OK."""

    status: int
    warnings: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class StatisticsReply:
    """COM_STATISTICS' answer: a line of text, no header."""

    text: str
    payload: bytes


Event = (
    OkReply
    | ErrReply
    | LocalInfileRequest
    | ResultSetStart
    | Column
    | Param
    | ColumnsDone
    | TextRow
    | BinaryRow
    | ResultSetDone
    | PrepareOk
    | FieldListDone
    | EofReply
    | StatisticsReply
)

# commands whose answer this module reads, and the shape of that answer
_RESULTS, _PREPARE, _FETCH_ROWS, _FIELDS, _STATISTICS, _EOF_OR_OK, _OK = range(7)
_ANSWERS = {
    COM_QUERY: _RESULTS,
    COM_STMT_EXECUTE: _RESULTS,
    COM_STMT_PREPARE: _PREPARE,
    COM_STMT_FETCH: _FETCH_ROWS,
    COM_FIELD_LIST: _FIELDS,
    COM_STATISTICS: _STATISTICS,
    COM_SET_OPTION: _EOF_OR_OK,
    COM_DEBUG: _EOF_OR_OK,
    COM_PING: _OK,
    COM_INIT_DB: _OK,
    COM_RESET_CONNECTION: _OK,
    COM_STMT_RESET: _OK,
    COM_PROCESS_KILL: _OK,
    COM_REFRESH: _OK,
    COM_CREATE_DB: _OK,
    COM_DROP_DB: _OK,
}
NO_RESPONSE = frozenset({COM_QUIT, COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA})
"""Commands the server does not answer (COM_QUIT: it closes the connection)."""
_UNSUPPORTED_CAPABILITIES = (
    CLIENT_OPTIONAL_RESULTSET_METADATA
    | MARIADB_CLIENT_CACHE_METADATA
    | MARIADB_CLIENT_EXTENDED_METADATA
    | MARIADB_CLIENT_PROGRESS
    | MARIADB_CLIENT_BULK_UNIT_RESULTS
)

# states
(
    _FIRST,  # the first packet of a result (or of the answer)
    _AFTER_INFILE,  # the server's OK/ERR after the client sent (or refused) a file
    _COLUMNS,  # column definitions of a result set
    _COLUMNS_EOF,  # the EOF after them
    _ROWS,
    _PARAMS,  # parameter definitions of COM_STMT_PREPARE's answer
    _PARAMS_EOF,
    _PREPARE_COLUMNS,
    _PREPARE_COLUMNS_EOF,
    _DONE,
) = range(10)


def expects_response(command: int) -> bool:
    """Whether the server answers ``command`` (False for COM_QUIT, COM_STMT_CLOSE, SEND_LONG_DATA)."""
    return command not in NO_RESPONSE


class ResponseReader:
    """Reads the server's answer to one command, payload by payload: :meth:`read` returns one event
    per payload until :attr:`done` (the next command may then be sent).

    ``capabilities`` are those negotiated with the server. ``translate_eof``: the client negotiated
    CLIENT_DEPRECATE_EOF and the server did not (``capabilities`` lack it): the EOFs after column and
    parameter definitions are dropped (their event's ``payload`` is None) and every other EOF becomes
    an OK packet with the 0xFE header, warnings and status kept (the event's ``payload``). Every
    event's ``payload`` is what the session forwards to the client (rows are the session's to mask).

    COM_QUERY's and COM_STMT_EXECUTE's results follow each other while their OK or end of rows says
    SERVER_MORE_RESULTS_EXISTS; an ERR ends the answer. An execute that opens a cursor answers with
    the column definitions and an end of rows carrying SERVER_STATUS_CURSOR_EXISTS, and no rows;
    the rows come with COM_STMT_FETCH, whose answer is rows and an end (CURSOR_EXISTS, or
    LAST_ROW_SENT once there are no more). LOCAL INFILE requests are only valid in COM_QUERY's
    answer. Anything out of place raises :class:`ProtocolViolation`.
    """

    __slots__ = (
        "_binary",
        "_capabilities",
        "_columns_left",
        "_kind",
        "_params_left",
        "_state",
        "_translate",
        "command",
    )

    def __init__(self, command: int, capabilities: int, *, translate_eof: bool = False) -> None:
        kind = _ANSWERS.get(command)
        if kind is None:
            raise ValueError(f"no answer to read for command 0x{command:02x}")
        if capabilities & _UNSUPPORTED_CAPABILITIES:
            raise ValueError("optional metadata, metadata caching and progress reports are not supported")
        if not capabilities & CLIENT_PROTOCOL_41:
            raise ValueError("CLIENT_PROTOCOL_41 is required")
        if translate_eof and capabilities & CLIENT_DEPRECATE_EOF:
            raise ValueError("translating EOFs is for a server without CLIENT_DEPRECATE_EOF")
        self.command = command
        self._kind = kind
        self._capabilities = capabilities
        self._translate = translate_eof
        self._binary = command in (COM_STMT_EXECUTE, COM_STMT_FETCH)
        self._state = _ROWS if kind == _FETCH_ROWS else _COLUMNS if kind == _FIELDS else _FIRST
        self._columns_left = 0
        self._params_left = 0

    @property
    def done(self) -> bool:
        """The answer is complete: the next command may be sent."""
        return self._state == _DONE

    @property
    def in_rows(self) -> bool:
        """The next packets are rows (until an end of rows or an ERR)."""
        return self._state == _ROWS

    def read(self, payload: bytes) -> Event:
        state = self._state
        if not payload:
            raise ProtocolViolation("an empty packet in the server's answer")
        header = payload[0]
        if state == _ROWS:
            if self._binary:
                if header == 0x00:
                    return BinaryRow(payload)
            elif header != EOF_HEADER and header != ERR_HEADER:
                return TextRow(payload)
            if header == EOF_HEADER and self._is_end(payload):
                return self._end_of_rows(payload)
            if header == ERR_HEADER:
                return self._err(payload)
            raise ProtocolViolation(f"unexpected packet 0x{header:02x} among binary rows")
        if state == _DONE:
            raise ProtocolViolation("a packet after the end of the server's answer")
        if header == ERR_HEADER:  # never the first byte of anything else here (statistics start 'Uptime')
            return self._err(payload)
        if state == _FIRST:
            return self._first(payload, header)
        if state == _AFTER_INFILE:
            if header != OK_HEADER:
                raise ProtocolViolation(f"unexpected packet 0x{header:02x} after a LOCAL INFILE exchange")
            return self._ok(payload)
        if state in (_COLUMNS, _PARAMS, _PREPARE_COLUMNS):
            return self._definition(payload, header, state)
        if state in (_COLUMNS_EOF, _PARAMS_EOF, _PREPARE_COLUMNS_EOF):
            return self._definitions_eof(payload, state)
        raise AssertionError(f"unknown state {state}")  # pragma: no cover

    # -- the pieces --------------------------------------------------------------------------------

    def _is_end(self, payload: bytes) -> bool:
        return is_eof_packet(payload, self._capabilities)

    def _err(self, payload: bytes) -> ErrReply:
        self._state = _DONE
        return ErrReply(parse_err(payload, self._capabilities), payload)

    def _ok(self, payload: bytes) -> OkReply:
        ok = parse_ok(payload, self._capabilities)
        more = ok.status & SERVER_MORE_RESULTS_EXISTS and self._kind == _RESULTS
        self._state = _FIRST if more else _DONE
        return OkReply(ok, payload)

    def _translated(self, payload: bytes, eof: Eof) -> bytes:
        if not self._translate:
            return payload
        status = eof.status & ~SERVER_SESSION_STATE_CHANGED  # an EOF carries no state changes
        return build_ok(Ok(0, 0, status, eof.warnings, eof_header=True), CLIENT_PROTOCOL_41)

    def _eof_like(self, payload: bytes) -> tuple[int, int, Ok | None, bytes]:
        """Status, warnings, the OK (under DEPRECATE_EOF) and the payload for the client of an end."""
        if self._capabilities & CLIENT_DEPRECATE_EOF:
            ok = parse_ok(payload, self._capabilities)
            return ok.status, ok.warnings, ok, payload
        eof = parse_eof(payload, self._capabilities)
        return eof.status, eof.warnings, None, self._translated(payload, eof)

    def _end_of_rows(self, payload: bytes) -> ResultSetDone:
        status, warnings, ok, forward = self._eof_like(payload)
        more = status & SERVER_MORE_RESULTS_EXISTS and self._kind == _RESULTS
        self._state = _FIRST if more else _DONE
        return ResultSetDone(status, warnings, forward, ok)

    def _first(self, payload: bytes, header: int) -> Event:
        kind = self._kind
        if kind == _STATISTICS:
            self._state = _DONE
            return StatisticsReply(payload.decode("utf-8", "replace"), payload)
        if header == OK_HEADER:
            if kind == _PREPARE:
                return self._prepare_ok(payload)
            return self._ok(payload)
        if kind == _EOF_OR_OK and header == EOF_HEADER and self._is_end(payload):
            status, warnings, _, forward = self._eof_like(payload)
            self._state = _DONE
            return EofReply(status, warnings, forward)
        if kind != _RESULTS:
            raise ProtocolViolation(
                f"unexpected packet 0x{header:02x} answering command 0x{self.command:02x}"
            )
        if header == LOCAL_INFILE_HEADER:
            if self.command != COM_QUERY:
                raise ProtocolViolation("a LOCAL INFILE request answering a prepared statement")
            self._state = _AFTER_INFILE
            return LocalInfileRequest(payload[1:], payload)
        count, pos = read_lenenc_int(payload, 0)
        _done(payload, pos, "a result set's column count")
        if count == 0:
            raise ProtocolViolation("a result set of 0 columns")
        self._columns_left = count
        self._state = _COLUMNS
        return ResultSetStart(count, payload)

    def _prepare_ok(self, payload: bytes) -> PrepareOk:
        if len(payload) < 12:
            raise ProtocolViolation(f"COM_STMT_PREPARE's OK has {len(payload)} bytes, not 12")
        statement_id, columns, params, _, warnings = _PREPARE_OK.unpack_from(payload, 1)
        _done(payload, 12, "COM_STMT_PREPARE's OK")
        self._params_left = params
        self._columns_left = columns
        self._state = _PARAMS if params else _PREPARE_COLUMNS if columns else _DONE
        return PrepareOk(statement_id, columns, params, warnings, payload)

    def _definition(self, payload: bytes, header: int, state: int) -> Event:
        if state == _COLUMNS and self._kind == _FIELDS:
            if header == EOF_HEADER and self._is_end(payload):
                status, warnings, _, forward = self._eof_like(payload)
                self._state = _DONE
                return FieldListDone(status, warnings, forward)
            return Column(parse_column_definition(payload, field_list=True), payload)
        definition = column_definition(payload)
        deprecate = self._capabilities & CLIENT_DEPRECATE_EOF
        if state == _PARAMS:
            self._params_left -= 1
            if not self._params_left:
                self._state = _PARAMS_EOF if not deprecate else self._after_params()
            return Param(definition, payload)
        self._columns_left -= 1
        if not self._columns_left:
            if state == _PREPARE_COLUMNS:
                self._state = _PREPARE_COLUMNS_EOF if not deprecate else _DONE
            else:
                self._state = _COLUMNS_EOF if not deprecate else _ROWS
        return Column(definition, payload)

    def _after_params(self) -> int:
        return _PREPARE_COLUMNS if self._columns_left else _DONE

    def _definitions_eof(self, payload: bytes, state: int) -> ColumnsDone:
        eof = parse_eof(payload, self._capabilities)
        forward = None if self._translate else payload
        if state == _PARAMS_EOF:
            self._state = self._after_params()
            return ColumnsDone(eof, forward, params=True)
        if state == _PREPARE_COLUMNS_EOF:
            self._state = _DONE
            return ColumnsDone(eof, forward)
        if eof.status & SERVER_STATUS_CURSOR_EXISTS and self.command == COM_STMT_EXECUTE:
            # a cursor was opened: no rows now, they come with COM_STMT_FETCH
            self._state = _DONE
            return ColumnsDone(eof, self._translated(payload, eof))
        self._state = _ROWS
        return ColumnsDone(eof, forward)


_PREPARE_OK = Struct("<IHHBH")  # statement id, columns, params, filler, warnings
