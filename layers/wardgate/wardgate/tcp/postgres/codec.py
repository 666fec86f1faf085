"""The PostgreSQL wire protocol (3.0, and 3.2's longer cancel keys), sans-I/O: bytes in, messages out.

Nothing here touches a socket or an event loop (h11/wsproto style): the session feeds the bytes it
received into a :class:`MessageReader`, takes whole messages out of it, decodes the few payloads it
needs with the ``parse_*`` functions and writes what the builders return.

Framing. Every message after the start-up phase is ``Byte1 type, Int32 length (counting itself, not
the type byte), payload``. The first messages a client sends (SSLRequest, GSSENCRequest,
StartupMessage, CancelRequest) have no type byte: ``Int32 length, payload``; a reader built with
``startup=True`` frames those until the session calls :meth:`MessageReader.expect_typed`.

Message types are ints (``body[0]`` of the framed message) and the same byte means different things in
each direction: ``ord("C")`` is Close from a client and CommandComplete from a server, ``ord("D")``
Describe and DataRow, ``ord("E")`` Execute and ErrorResponse, ``ord("S")`` Sync and ParameterStatus,
``ord("H")`` Flush and CopyOutResponse. The frontend constants are therefore the verbs (``QUERY``,
``DESCRIBE``, ``CLOSE``...; the five colliding ones also as ``FRONTEND_DESCRIBE``, ``FRONTEND_CLOSE``...)
and the backend constants the responses (``DATA_ROW``, ``COMMAND_COMPLETE``...); only compare a type
against the constants of the direction it was read from. ``COPY_DATA`` and ``COPY_DONE`` mean the same
in both directions.

Decoding. Strings are NUL-terminated UTF-8 (the session only accepts ``client_encoding`` UTF8); invalid
UTF-8, a missing terminator, a count or length that points past the payload, or bytes left over after
the last field raise :class:`ProtocolViolation`, never ``IndexError``/``struct.error``. The one lenient
decoder is :func:`parse_error_fields`: a server may send its early (pre-start-up) errors in the server's
encoding, and an unreadable byte in an error message must not turn a refusal into a protocol failure.

Building. Builders return the whole framed message as ``bytes``. Text meant for people (error and
notice fields) has NUL replaced by U+FFFD; identifiers, SQL and start-up parameters containing NUL are
a caller bug and raise ``ValueError`` (a NUL would silently truncate them on the server).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from struct import Struct

# Protocol versions and the start-up request codes (sent in place of a protocol version).
PROTOCOL_3_0 = 196608  # 3 << 16
PROTOCOL_3_2 = 196610  # PostgreSQL 18: 256-byte cancel keys
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102
MAX_STARTUP_PACKET = 10000  # the server's limit on an untyped start-up message, length word included
TLS_HANDSHAKE_BYTE = 0x16  # first byte of a TLS ClientHello: PostgreSQL 17's direct SSL (no SSLRequest)

# Frontend (client -> server) message types.
QUERY = ord("Q")
PARSE = ord("P")
BIND = ord("B")
DESCRIBE = FRONTEND_DESCRIBE = ord("D")
EXECUTE = FRONTEND_EXECUTE = ord("E")
SYNC = FRONTEND_SYNC = ord("S")
FLUSH = FRONTEND_FLUSH = ord("H")
CLOSE = FRONTEND_CLOSE = ord("C")
TERMINATE = ord("X")
FUNCTION_CALL = ord("F")
PASSWORD = ord("p")  # also GSSResponse, SASLInitialResponse and SASLResponse: the context decides
COPY_DATA = ord("d")  # both directions
COPY_DONE = ord("c")  # both directions
COPY_FAIL = ord("f")

#: Every type a client may send after start-up; anything else is a protocol violation.
FRONTEND_TYPES = frozenset(
    {QUERY, PARSE, BIND, DESCRIBE, EXECUTE, SYNC, FLUSH, CLOSE, TERMINATE, FUNCTION_CALL, PASSWORD}
    | {COPY_DATA, COPY_DONE, COPY_FAIL}
)

# Backend (server -> client) message types.
AUTHENTICATION = ord("R")
BACKEND_KEY_DATA = ord("K")
PARSE_COMPLETE = ord("1")
BIND_COMPLETE = ord("2")
CLOSE_COMPLETE = ord("3")
COMMAND_COMPLETE = ord("C")
COPY_IN_RESPONSE = ord("G")
COPY_OUT_RESPONSE = ord("H")
COPY_BOTH_RESPONSE = ord("W")
DATA_ROW = ord("D")
EMPTY_QUERY_RESPONSE = ord("I")
ERROR_RESPONSE = ord("E")
FUNCTION_CALL_RESPONSE = ord("V")
NEGOTIATE_PROTOCOL_VERSION = ord("v")
NO_DATA = ord("n")
NOTICE_RESPONSE = ord("N")
NOTIFICATION_RESPONSE = ord("A")
PARAMETER_DESCRIPTION = ord("t")
PARAMETER_STATUS = ord("S")
PORTAL_SUSPENDED = ord("s")
READY_FOR_QUERY = ord("Z")
ROW_DESCRIPTION = ord("T")

# Authentication request codes (the first Int32 of an 'R' message).
AUTH_OK = 0
AUTH_KERBEROS_V5 = 2
AUTH_CLEARTEXT_PASSWORD = 3
AUTH_MD5_PASSWORD = 5
AUTH_GSS = 7
AUTH_GSS_CONTINUE = 8
AUTH_SSPI = 9
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12

_TYPED_HEADER = Struct("!Bi")  # type byte, length (signed: a negative length is a violation, not a huge one)
_INT16 = Struct("!h")
_INT32 = Struct("!i")
_INT32_PAIR = Struct("!ii")
# A RowDescription field after its name: table oid, attnum, type oid, size, type modifier, format.
_FIELD = Struct("!IhIhih")
_DATA_ROW_HEADER = Struct("!Bih")  # 'D', length, column count
_NULL_LENGTH = _INT32.pack(-1)

_unpack_typed = _TYPED_HEADER.unpack_from
_unpack_int16 = _INT16.unpack_from
_unpack_int32 = _INT32.unpack_from
_unpack_field = _FIELD.unpack_from
_pack_typed = _TYPED_HEADER.pack
_pack_int16 = _INT16.pack
_pack_int32 = _INT32.pack


class ProtocolViolation(Exception):
    """The peer sent something that is not the protocol: the session must end (SQLSTATE 08P01).

    A few start-up refusals carry the SQLSTATE PostgreSQL itself uses: 0A000 for an unsupported
    protocol version, 28000 for a start-up packet without a user name.
    """

    def __init__(self, message: str, sqlstate: str = "08P01") -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate


# --------------------------------------------------------------------------------------------------
# Start-up messages (untyped)


@dataclass(frozen=True, slots=True)
class StartupMessage:
    """``protocol`` is ``major << 16 | minor``; ``parameters`` keeps the client's order (user, database,
    application_name, options, client_encoding, ``_pq_.*`` protocol options...)."""

    protocol: int
    parameters: dict[str, str]


@dataclass(frozen=True, slots=True)
class SSLRequest:
    pass


@dataclass(frozen=True, slots=True)
class GSSENCRequest:
    pass


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """``secret_key`` is 4 bytes in protocol 3.0 and up to 256 in 3.2."""

    process_id: int
    secret_key: bytes


def parse_startup(body: bytes) -> StartupMessage | SSLRequest | GSSENCRequest | CancelRequest:
    """Decode an untyped start-up message; ``body`` excludes its 4-byte length word.

    Any 3.x minor version is accepted (negotiating it down is the session's business, see
    :func:`negotiate_protocol_version`); duplicate parameter names are refused so that the gateway and
    the server can never disagree about, say, which ``user`` a client asked for.
    """
    if len(body) < 4:
        raise ProtocolViolation("invalid length of startup packet")
    (code,) = _unpack_int32(body, 0)
    if code in (SSL_REQUEST_CODE, GSSENC_REQUEST_CODE):
        if len(body) != 4:
            raise ProtocolViolation("invalid length of SSL/GSS encryption request")
        return SSLRequest() if code == SSL_REQUEST_CODE else GSSENCRequest()
    if code == CANCEL_REQUEST_CODE:
        if not 12 <= len(body) <= 8 + 256:
            raise ProtocolViolation(f"invalid length of cancel request: {len(body) + 4} bytes")
        (process_id,) = _unpack_int32(body, 4)
        return CancelRequest(process_id, body[8:])
    major, minor = code >> 16, code & 0xFFFF
    if major != 3:
        raise ProtocolViolation(
            f"unsupported frontend protocol {major}.{minor}: this gateway supports protocol 3", "0A000"
        )
    parameters: dict[str, str] = {}
    pos, last = 4, len(body) - 1
    while True:
        if pos > last:
            raise ProtocolViolation("invalid startup packet layout: expected terminator as last byte")
        if body[pos] == 0:
            if pos != last:
                raise ProtocolViolation("invalid startup packet layout: bytes after the terminator")
            break
        name, pos = _cstring(body, pos, "startup packet")
        value, pos = _cstring(body, pos, "startup packet")
        if name in parameters:
            raise ProtocolViolation(f"invalid startup packet: parameter {name!r} given twice")
        parameters[name] = value
    if not parameters.get("user"):
        raise ProtocolViolation("no PostgreSQL user name specified in startup packet", "28000")
    return StartupMessage(code, parameters)


# --------------------------------------------------------------------------------------------------
# Framing


class MessageReader:
    """Splits a byte stream into messages. Sans-I/O: feed(bytes), then next() until it returns None.

    ``startup=True`` frames the untyped start-up messages (``Int32 length, body``, type reported as 0,
    8 to 10000 bytes) until :meth:`expect_typed`: a frontend reader stays untyped across SSLRequest ->
    TLS -> StartupMessage and the session switches it once it has read the StartupMessage. After an
    SSLRequest or GSSENCRequest the session must check that :attr:`buffered` is 0 before starting the
    handshake: bytes a client sent ahead of it were not encrypted (CVE-2021-23214) and are a violation.

    Three ways to take messages out, all sharing one buffer and freely mixable:

    * :meth:`next` returns ``(type, payload)``, one message at a time;
    * :meth:`next_raw` also returns the framed message, for forwarding one message unchanged;
    * :meth:`take_messages` returns every complete message at once as ``(chunk, spans)``: ``chunk`` is
      one ``bytes`` holding exactly those messages back to back (write it as is to forward them all)
      and ``spans`` lists ``(type, start, end)`` per message, ``chunk[start:end]`` being the framed
      message and ``chunk[start + 5:end]`` its payload (``start + 4`` while untyped). When a fed
      ``bytes`` object ends on a message boundary, ``chunk`` is that very object (no copy).

    A message arriving in many pieces is joined once, when it is complete, so a large row costs one
    copy however it was split. After a :class:`ProtocolViolation` the reader's state is undefined.
    """

    __slots__ = ("_data", "_max", "_parts", "_parts_len", "_pos", "_typed")

    def __init__(self, *, max_message: int = 64 * 1024 * 1024, startup: bool = False) -> None:
        self._data = b""  # the bytes the next message starts in; _data[:_pos] was already taken
        self._pos = 0
        self._parts: list[bytes] = []  # fed after _data and not joined to it yet
        self._parts_len = 0
        self._max = max_message
        self._typed = not startup

    @property
    def typed(self) -> bool:
        """False while the reader frames untyped start-up messages."""
        return self._typed

    @property
    def buffered(self) -> int:
        """Bytes held and not taken yet (after next() returned None: the incomplete tail)."""
        return len(self._data) - self._pos + self._parts_len

    def expect_typed(self) -> None:
        """From now on every message has a type byte (bytes already buffered included)."""
        self._typed = True

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        chunk = bytes(data)  # the object itself when it is already bytes; a copy of mutable buffers
        if self._pos == len(self._data) and not self._parts:
            self._data = chunk
            self._pos = 0
        else:
            self._parts.append(chunk)
            self._parts_len += len(chunk)

    def next(self) -> tuple[int, bytes] | None:
        """The next complete message as ``(type, payload)`` (type 0 while untyped), or None."""
        found = self._locate()
        if found is None:
            return None
        kind, start, end = found
        return kind, self._data[start + (5 if self._typed else 4) : end]

    def next_raw(self) -> tuple[int, bytes, bytes] | None:
        """Like :meth:`next`, plus the framed message (type, length and payload) to forward unchanged."""
        found = self._locate()
        if found is None:
            return None
        kind, start, end = found
        data = self._data
        return kind, data[start + (5 if self._typed else 4) : end], data[start:end]

    def take_messages(self) -> tuple[bytes, list[tuple[int, int, int]]]:
        """Every complete message buffered, as ``(chunk, spans)`` (see the class); ``(b"", [])`` if none."""
        if self._parts:
            self._join_if_complete()
        data, pos = self._data, self._pos
        if not self._typed:  # start-up phase: rare and short, no need for the fast loop
            spans: list[tuple[int, int, int]] = []
            limit = len(data)
            while limit - pos >= 4:
                (length,) = _unpack_int32(data, pos)
                if length < 8 or length > MAX_STARTUP_PACKET or length > self._max:
                    raise ProtocolViolation(f"invalid length of startup packet: {length}")
                if pos + length > limit:
                    break
                spans.append((0, pos - self._pos, pos + length - self._pos))
                pos += length
            chunk = data[self._pos : pos]
            self._pos = pos
            return chunk, spans
        if pos:
            if pos == len(data):
                return b"", []
            data = data[pos:]
            pos = 0
        spans = []
        append = spans.append
        limit = len(data)
        largest = self._max
        while limit - pos >= 5:
            kind, length = _unpack_typed(data, pos)
            if length < 4 or length > largest:
                raise self._bad_length(length)
            end = pos + 1 + length
            if end > limit:
                break
            append((kind, pos, end))
            pos = end
        self._data, self._pos = data, pos
        if pos == limit:
            return data, spans
        return data[:pos], spans

    def drain_complete(self) -> tuple[list[tuple[int, bytes]], bytes]:
        """Every complete message decoded as ``(type, payload)``, and the chunk holding them all."""
        chunk, spans = self.take_messages()
        skip = 5 if self._typed else 4
        return [(kind, chunk[start + skip : end]) for kind, start, end in spans], chunk

    def _locate(self) -> tuple[int, int, int] | None:
        """Frame the next message: ``(type, start, end)`` within ``self._data``, consuming it."""
        data, pos = self._data, self._pos
        if self._typed:
            if len(data) - pos < 5:
                if not self._ensure(5):
                    return None
                data, pos = self._data, 0
            kind, length = _unpack_typed(data, pos)
            if length < 4 or length > self._max:
                raise self._bad_length(length)
            end = pos + 1 + length
        else:
            if len(data) - pos < 4:
                if not self._ensure(4):
                    return None
                data, pos = self._data, 0
            (length,) = _unpack_int32(data, pos)
            if length < 8 or length > MAX_STARTUP_PACKET or length > self._max:
                raise ProtocolViolation(f"invalid length of startup packet: {length}")
            kind, end = 0, pos + length
        if end > len(data):
            if not self._ensure(end - pos):
                return None
            data, end, pos = self._data, end - pos, 0
        self._pos = end
        return kind, pos, end

    def _ensure(self, size: int) -> bool:
        """Make ``self._data[self._pos:]`` hold ``size`` bytes (joining the parts) if they arrived."""
        if len(self._data) - self._pos + self._parts_len < size:
            return False
        self._join()
        return True

    def _join_if_complete(self) -> None:
        """Join the parts unless they do not even complete the first message (a big one arriving)."""
        data, pos = self._data, self._pos
        header = 5 if self._typed else 4
        available = len(data) - pos + self._parts_len
        if len(data) - pos >= header:
            need = 1 + _unpack_typed(data, pos)[1] if self._typed else _unpack_int32(data, pos)[0]
            if need > available:
                return
        elif available < header:
            return
        self._join()

    def _join(self) -> None:
        data, pos, parts = self._data, self._pos, self._parts
        if pos < len(data):
            self._data = b"".join([memoryview(data)[pos:], *parts])
        elif len(parts) == 1:
            self._data = parts[0]
        else:
            self._data = b"".join(parts)
        self._pos = 0
        parts.clear()
        self._parts_len = 0

    def _bad_length(self, length: int) -> ProtocolViolation:
        if length < 4:
            return ProtocolViolation(f"invalid message length {length}")
        return ProtocolViolation(f"message of {length} bytes exceeds the limit of {self._max}")


# --------------------------------------------------------------------------------------------------
# Decoding helpers


def _cstring(body: bytes, pos: int, what: str) -> tuple[str, int]:
    """The NUL-terminated UTF-8 string at ``pos`` and the offset after its terminator."""
    end = body.find(b"\0", pos)
    if end < 0:
        raise ProtocolViolation(f"invalid {what}: string is not NUL-terminated")
    try:
        return body[pos:end].decode(), end + 1
    except UnicodeDecodeError:
        raise ProtocolViolation(f"invalid {what}: string is not valid UTF-8") from None


def _only_cstring(body: bytes, what: str) -> str:
    """A payload that is exactly one NUL-terminated UTF-8 string."""
    end = body.find(b"\0")
    if end < 0:
        raise ProtocolViolation(f"invalid {what} message: string is not NUL-terminated")
    if end != len(body) - 1:
        raise ProtocolViolation(f"invalid {what} message: bytes after its string")
    try:
        return body[:end].decode()
    except UnicodeDecodeError:
        raise ProtocolViolation(f"invalid {what} message: string is not valid UTF-8") from None


def _int16(body: bytes, pos: int, what: str) -> int:
    if pos + 2 > len(body):
        raise ProtocolViolation(f"invalid {what} message: truncated")
    return int(_unpack_int16(body, pos)[0])


def _int32(body: bytes, pos: int, what: str) -> int:
    if pos + 4 > len(body):
        raise ProtocolViolation(f"invalid {what} message: truncated")
    return int(_unpack_int32(body, pos)[0])


def _count(body: bytes, pos: int, item_size: int, what: str, items: str) -> int:
    """An Int16 count at ``pos``, checked against the bytes its (at least ``item_size``-byte) items need."""
    if pos + 2 > len(body):
        raise ProtocolViolation(f"invalid {what} message: truncated")
    (count,) = _unpack_int16(body, pos)
    if count < 0:
        raise ProtocolViolation(f"invalid {what} message: negative {items} count {count}")
    if pos + 2 + count * item_size > len(body):
        raise ProtocolViolation(f"invalid {what} message: {count} {items} do not fit in the message")
    return int(count)


def _int16_array(body: bytes, pos: int, what: str, items: str) -> tuple[tuple[int, ...], int]:
    """An Int16 count at ``pos`` and that many Int16s (format codes), and the offset after them."""
    if pos + 2 > len(body):
        raise ProtocolViolation(f"invalid {what} message: truncated")
    (count,) = _unpack_int16(body, pos)
    if count == 0:
        return (), pos + 2
    end = pos + 2 + 2 * count
    if count < 0:
        raise ProtocolViolation(f"invalid {what} message: negative {items} count {count}")
    if end > len(body):
        raise ProtocolViolation(f"invalid {what} message: {count} {items} do not fit in the message")
    if count == 1:
        return _unpack_int16(body, pos + 2), end
    return struct.unpack_from(f"!{count}h", body, pos + 2), end


def _end(body: bytes, pos: int, what: str) -> None:
    if pos != len(body):
        raise ProtocolViolation(f"invalid {what} message: {len(body) - pos} unexpected bytes at its end")


# --------------------------------------------------------------------------------------------------
# Frontend payloads (client -> gateway)


@dataclass(frozen=True, slots=True)
class Parse:
    name: str
    query: str
    param_types: tuple[int, ...]  # type OIDs, 0 for "let the server infer"


@dataclass(frozen=True, slots=True)
class Bind:
    """Format codes are reported as sent (0 text, 1 binary; the server rejects others itself)."""

    portal: str
    statement: str
    param_formats: tuple[int, ...]  # empty (all text), one (for all) or one per parameter
    params: tuple[bytes | None, ...]
    result_formats: tuple[int, ...]


def parse_query(body: bytes) -> str:
    """'Q' Query: the SQL text."""
    return _only_cstring(body, "Query")


def parse_parse(body: bytes) -> Parse:
    """'P' Parse."""
    name, pos = _cstring(body, 0, "Parse message")
    sql, pos = _cstring(body, pos, "Parse message")
    count = _count(body, pos, 4, "Parse", "parameter types")
    pos += 2
    end = pos + 4 * count
    _end(body, end, "Parse")
    types: tuple[int, ...] = struct.unpack_from(f"!{count}I", body, pos) if count else ()
    return Parse(name, sql, types)


def parse_bind(body: bytes) -> Bind:
    """'B' Bind: parameter values stay bytes (NULL is None); their formats say how to read them."""
    portal, pos = _cstring(body, 0, "Bind message")
    statement, pos = _cstring(body, pos, "Bind message")
    param_formats, pos = _int16_array(body, pos, "Bind", "parameter formats")
    count = _count(body, pos, 4, "Bind", "parameters")
    pos += 2
    if len(param_formats) > 1 and len(param_formats) != count:
        raise ProtocolViolation(
            f"bind message has {len(param_formats)} parameter formats but {count} parameters"
        )
    params: list[bytes | None] = []
    append = params.append
    limit = len(body)
    for _ in range(count):
        if pos + 4 > limit:
            raise ProtocolViolation("invalid Bind message: truncated parameter")
        (length,) = _unpack_int32(body, pos)
        pos += 4
        if length >= 0:
            end = pos + length
            if end > limit:
                raise ProtocolViolation(f"invalid Bind message: parameter of {length} bytes past its end")
            append(body[pos:end])
            pos = end
        elif length == -1:
            append(None)
        else:
            raise ProtocolViolation(f"invalid Bind message: parameter length {length}")
    result_formats, pos = _int16_array(body, pos, "Bind", "result formats")
    _end(body, pos, "Bind")
    return Bind(portal, statement, param_formats, tuple(params), result_formats)


def _kind_and_name(body: bytes, what: str) -> tuple[str, str]:
    if not body or body[0] not in b"SP":
        subtype = repr(chr(body[0])) if body else "missing"
        raise ProtocolViolation(f"invalid {what} message subtype {subtype}")
    return chr(body[0]), _only_cstring(body[1:], what)


def parse_describe(body: bytes) -> tuple[str, str]:
    """'D' Describe: ``("S", statement)`` or ``("P", portal)``."""
    return _kind_and_name(body, "Describe")


def parse_close(body: bytes) -> tuple[str, str]:
    """'C' Close: ``("S", statement)`` or ``("P", portal)``."""
    return _kind_and_name(body, "Close")


def parse_execute(body: bytes) -> tuple[str, int]:
    """'E' Execute: ``(portal, max_rows)``, max_rows 0 (or negative) meaning all."""
    portal, pos = _cstring(body, 0, "Execute message")
    max_rows = _int32(body, pos, "Execute")
    _end(body, pos + 4, "Execute")
    return portal, max_rows


def parse_password(body: bytes) -> str:
    """'p' PasswordMessage carrying a cleartext password."""
    return _only_cstring(body, "password")


def parse_sasl_initial_response(body: bytes) -> tuple[str, bytes | None]:
    """'p' SASLInitialResponse: ``(mechanism, client-first message or None)``."""
    mechanism, pos = _cstring(body, 0, "SASLInitialResponse message")
    length = _int32(body, pos, "SASLInitialResponse")
    pos += 4
    if length == -1:
        _end(body, pos, "SASLInitialResponse")
        return mechanism, None
    if length < 0 or pos + length != len(body):
        raise ProtocolViolation(f"invalid SASLInitialResponse message: data length {length}")
    return mechanism, body[pos:]


def parse_copy_fail(body: bytes) -> str:
    """'f' CopyFail: the client's reason."""
    return _only_cstring(body, "CopyFail")


# --------------------------------------------------------------------------------------------------
# Backend payloads (server -> gateway)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    table_oid: int  # 0 when the column is not a table's
    column: int  # the attribute number, 0 when not a table's
    type_oid: int
    type_size: int  # negative for variable-width types
    type_modifier: int
    format: int  # 0 text, 1 binary (0 in a Describe's answer: not known yet)


def parse_row_description(body: bytes) -> tuple[Column, ...]:
    """'T' RowDescription."""
    count = _count(body, 0, 19, "RowDescription", "fields")
    pos = 2
    columns: list[Column] = []
    limit = len(body)
    for _ in range(count):
        name, pos = _cstring(body, pos, "RowDescription message")
        if pos + 18 > limit:
            raise ProtocolViolation("invalid RowDescription message: truncated field")
        columns.append(Column(name, *_unpack_field(body, pos)))
        pos += 18
    _end(body, pos, "RowDescription")
    return tuple(columns)


def parse_data_row(body: bytes) -> list[bytes | None]:
    """'D' DataRow: one value per column, None for NULL."""
    limit = len(body)
    if limit < 2:
        raise ProtocolViolation("invalid DataRow message: truncated")
    (count,) = _unpack_int16(body, 0)
    if count < 0 or 2 + 4 * count > limit:
        raise ProtocolViolation(f"invalid DataRow message: {count} columns do not fit in the message")
    values: list[bytes | None] = []
    append = values.append
    pos = 2
    for _ in range(count):
        if pos + 4 > limit:
            raise ProtocolViolation("invalid DataRow message: truncated column")
        (length,) = _unpack_int32(body, pos)
        pos += 4
        if length < 0:
            if length != -1:
                raise ProtocolViolation(f"invalid DataRow message: column length {length}")
            append(None)
            continue
        end = pos + length
        if end > limit:
            raise ProtocolViolation(f"invalid DataRow message: column of {length} bytes past its end")
        append(body[pos:end])
        pos = end
    if pos != limit:
        raise ProtocolViolation(f"invalid DataRow message: {limit - pos} unexpected bytes at its end")
    return values


def parse_error_fields(body: bytes) -> dict[str, str]:
    """'E' ErrorResponse / 'N' NoticeResponse: field code ('S', 'V', 'C', 'M', 'D', 'H', 'P', ...) -> value.

    Values are decoded leniently (undecodable bytes become U+FFFD): see the module's docstring.
    """
    fields: dict[str, str] = {}
    pos, last = 0, len(body) - 1
    while True:
        if pos > last:
            raise ProtocolViolation("invalid error message: missing its terminator")
        code = body[pos]
        if code == 0:
            if pos != last:
                raise ProtocolViolation("invalid error message: bytes after its terminator")
            return fields
        end = body.find(b"\0", pos + 1)
        if end < 0:
            raise ProtocolViolation("invalid error message: field is not NUL-terminated")
        fields[chr(code)] = body[pos + 1 : end].decode("utf-8", "replace")
        pos = end + 1


def parse_command_complete(body: bytes) -> str:
    """'C' CommandComplete: the command tag, e.g. ``SELECT 1``, ``INSERT 0 3``."""
    return _only_cstring(body, "CommandComplete")


def parse_authentication(body: bytes) -> tuple[int, bytes]:
    """'R' Authentication*: ``(code, rest)``, e.g. ``(AUTH_OK, b"")``, ``(AUTH_MD5_PASSWORD, salt)``,
    ``(AUTH_SASL, mechanism list)``, ``(AUTH_SASL_CONTINUE, server-first)``, ``(AUTH_SASL_FINAL, ...)``."""
    code = _int32(body, 0, "Authentication")
    rest = body[4:]
    if code in (AUTH_OK, AUTH_CLEARTEXT_PASSWORD) and rest:
        raise ProtocolViolation(f"invalid Authentication message: {len(rest)} unexpected bytes")
    if code == AUTH_MD5_PASSWORD and len(rest) != 4:
        raise ProtocolViolation("invalid Authentication message: the MD5 salt is not 4 bytes")
    return code, rest


def parse_sasl_mechanisms(rest: bytes) -> list[str]:
    """The mechanism names of an AuthenticationSASL message (its ``rest``)."""
    mechanisms: list[str] = []
    pos, last = 0, len(rest) - 1
    while True:
        if pos > last:
            raise ProtocolViolation("invalid AuthenticationSASL message: missing its terminator")
        if rest[pos] == 0:
            if pos != last:
                raise ProtocolViolation("invalid AuthenticationSASL message: bytes after its terminator")
            return mechanisms
        name, pos = _cstring(rest, pos, "AuthenticationSASL message")
        mechanisms.append(name)


def parse_backend_key_data(body: bytes) -> tuple[int, bytes]:
    """'K' BackendKeyData: ``(process id, secret key)``; the key is 4 bytes in 3.0, up to 256 in 3.2."""
    if not 8 <= len(body) <= 4 + 256:
        raise ProtocolViolation(f"invalid BackendKeyData message: {len(body)} bytes")
    return _unpack_int32(body, 0)[0], body[4:]


def parse_parameter_status(body: bytes) -> tuple[str, str]:
    """'S' ParameterStatus: ``(name, value)``."""
    name, pos = _cstring(body, 0, "ParameterStatus message")
    value, pos = _cstring(body, pos, "ParameterStatus message")
    _end(body, pos, "ParameterStatus")
    return name, value


def parse_parameter_description(body: bytes) -> tuple[int, ...]:
    """'t' ParameterDescription: the parameters' type OIDs."""
    count = _count(body, 0, 4, "ParameterDescription", "parameters")
    _end(body, 2 + 4 * count, "ParameterDescription")
    return struct.unpack_from(f"!{count}I", body, 2) if count else ()


def parse_ready_for_query(body: bytes) -> bytes:
    """'Z' ReadyForQuery: the transaction status: ``b"I"`` idle, ``b"T"`` in a block, ``b"E"`` failed."""
    if len(body) != 1 or body not in (b"I", b"T", b"E"):
        raise ProtocolViolation(f"invalid ReadyForQuery message: status {body!r}")
    return body


def parse_negotiate_protocol_version(body: bytes) -> tuple[int, list[str]]:
    """'v' NegotiateProtocolVersion: ``(newest minor version supported, unrecognized options)``."""
    minor = _int32(body, 0, "NegotiateProtocolVersion")
    count = _int32(body, 4, "NegotiateProtocolVersion")
    if count < 0 or 8 + count > len(body):
        raise ProtocolViolation(f"invalid NegotiateProtocolVersion message: {count} options")
    options: list[str] = []
    pos = 8
    for _ in range(count):
        option, pos = _cstring(body, pos, "NegotiateProtocolVersion message")
        options.append(option)
    _end(body, pos, "NegotiateProtocolVersion")
    return minor, options


def parse_copy_response(body: bytes) -> tuple[int, tuple[int, ...]]:
    """'G' / 'H' / 'W' Copy{In,Out,Both}Response: ``(overall format, per-column formats)``."""
    if not body:
        raise ProtocolViolation("invalid CopyResponse message: truncated")
    formats, pos = _int16_array(body, 1, "CopyResponse", "column formats")
    _end(body, pos, "CopyResponse")
    return body[0], formats


def parse_notification_response(body: bytes) -> tuple[int, str, str]:
    """'A' NotificationResponse: ``(notifying process id, channel, payload)``."""
    process_id = _int32(body, 0, "NotificationResponse")
    channel, pos = _cstring(body, 4, "NotificationResponse message")
    payload, pos = _cstring(body, pos, "NotificationResponse message")
    _end(body, pos, "NotificationResponse")
    return process_id, channel, payload


# --------------------------------------------------------------------------------------------------
# Builders


def _frame(kind: int, payload: bytes) -> bytes:
    return _pack_typed(kind, len(payload) + 4) + payload


def _strict(text: str, what: str) -> bytes:
    """An identifier, SQL text or parameter as a C string; NUL inside would truncate it on the server."""
    data = text.encode()
    if b"\0" in data:
        raise ValueError(f"{what} contains a NUL character")
    return data + b"\0"


def _lossy(text: str) -> bytes:
    """Text for people as a C string: NUL becomes U+FFFD, unencodable characters '?'."""
    return text.replace("\0", "\ufffd").encode("utf-8", "replace") + b"\0"


def error_from_fields(fields: dict[str, str], kind: int = ERROR_RESPONSE) -> bytes:
    """Re-encode (possibly edited) :func:`parse_error_fields` output as an ErrorResponse or, with
    ``kind=NOTICE_RESPONSE``, a NoticeResponse. Field codes are single non-NUL characters."""
    parts: list[bytes] = []
    for code, value in fields.items():
        if len(code) != 1 or not 0 < ord(code) < 256:
            raise ValueError(f"invalid error field code {code!r}")
        parts.append(code.encode("latin-1"))
        parts.append(_lossy(value))
    parts.append(b"\0")
    return _frame(kind, b"".join(parts))


def error_response(
    sqlstate: str,
    message: str,
    *,
    severity: str = "ERROR",
    detail: str | None = None,
    hint: str | None = None,
) -> bytes:
    """'E' ErrorResponse with S and V (both ``severity``: ERROR, FATAL...), C, M and optional D, H."""
    fields = {"S": severity, "V": severity, "C": sqlstate, "M": message}
    if detail is not None:
        fields["D"] = detail
    if hint is not None:
        fields["H"] = hint
    return error_from_fields(fields, ERROR_RESPONSE)


def notice_response(
    message: str, *, sqlstate: str = "00000", severity: str = "NOTICE", detail: str | None = None
) -> bytes:
    """'N' NoticeResponse (severity NOTICE, WARNING, INFO...)."""
    fields = {"S": severity, "V": severity, "C": sqlstate, "M": message}
    if detail is not None:
        fields["D"] = detail
    return error_from_fields(fields, NOTICE_RESPONSE)


_AUTHENTICATION_OK = _frame(AUTHENTICATION, _pack_int32(AUTH_OK))
_AUTHENTICATION_CLEARTEXT = _frame(AUTHENTICATION, _pack_int32(AUTH_CLEARTEXT_PASSWORD))
_READY_FOR_QUERY = {status: _frame(READY_FOR_QUERY, status) for status in (b"I", b"T", b"E")}
_SYNC = _frame(SYNC, b"")
_FLUSH = _frame(FLUSH, b"")
_TERMINATE = _frame(TERMINATE, b"")
_COPY_DONE = _frame(COPY_DONE, b"")
_PARSE_COMPLETE = _frame(PARSE_COMPLETE, b"")
_BIND_COMPLETE = _frame(BIND_COMPLETE, b"")
_CLOSE_COMPLETE = _frame(CLOSE_COMPLETE, b"")
_NO_DATA = _frame(NO_DATA, b"")
_EMPTY_QUERY_RESPONSE = _frame(EMPTY_QUERY_RESPONSE, b"")
_PORTAL_SUSPENDED = _frame(PORTAL_SUSPENDED, b"")


def authentication_ok() -> bytes:
    return _AUTHENTICATION_OK


def authentication_cleartext_password() -> bytes:
    return _AUTHENTICATION_CLEARTEXT


def authentication_md5_password(salt: bytes) -> bytes:
    if len(salt) != 4:
        raise ValueError("an MD5 salt is 4 bytes")
    return _frame(AUTHENTICATION, _pack_int32(AUTH_MD5_PASSWORD) + salt)


def authentication_sasl(mechanisms: list[str]) -> bytes:
    """AuthenticationSASL offering ``mechanisms`` (e.g. ``["SCRAM-SHA-256"]``)."""
    names = b"".join(_strict(name, "SASL mechanism") for name in mechanisms)
    return _frame(AUTHENTICATION, _pack_int32(AUTH_SASL) + names + b"\0")


def authentication_sasl_continue(data: bytes) -> bytes:
    return _frame(AUTHENTICATION, _pack_int32(AUTH_SASL_CONTINUE) + data)


def authentication_sasl_final(data: bytes) -> bytes:
    return _frame(AUTHENTICATION, _pack_int32(AUTH_SASL_FINAL) + data)


def parameter_status(name: str, value: str) -> bytes:
    return _frame(PARAMETER_STATUS, _strict(name, "parameter name") + _strict(value, "parameter value"))


def backend_key_data(process_id: int, secret_key: bytes) -> bytes:
    if not 4 <= len(secret_key) <= 256:
        raise ValueError("a cancel key is 4 to 256 bytes")
    return _frame(BACKEND_KEY_DATA, _pack_int32(process_id) + secret_key)


def ready_for_query(status: bytes) -> bytes:
    """'Z' ReadyForQuery with status ``b"I"``, ``b"T"`` or ``b"E"``."""
    try:
        return _READY_FOR_QUERY[status]
    except KeyError:
        raise ValueError(f"invalid transaction status {status!r}") from None


def command_complete(tag: str) -> bytes:
    return _frame(COMMAND_COMPLETE, _strict(tag, "command tag"))


def negotiate_protocol_version(newest_minor: int, unsupported_options: list[str]) -> bytes:
    """'v' NegotiateProtocolVersion: the newest 3.x minor the gateway speaks, and the ``_pq_.``
    options of the StartupMessage it does not know."""
    options = b"".join(_strict(option, "protocol option") for option in unsupported_options)
    return _frame(
        NEGOTIATE_PROTOCOL_VERSION, _INT32_PAIR.pack(newest_minor, len(unsupported_options)) + options
    )


def row_description(columns: Sequence[Column]) -> bytes:
    """'T' RowDescription (e.g. the server's, with the types of masked columns changed)."""
    parts = [_pack_int16(len(columns))]
    for c in columns:
        parts.append(_strict(c.name, "column name"))
        parts.append(_FIELD.pack(c.table_oid, c.column, c.type_oid, c.type_size, c.type_modifier, c.format))
    return _frame(ROW_DESCRIPTION, b"".join(parts))


def data_row(values: Sequence[bytes | None]) -> bytes:
    """'D' DataRow, None being NULL."""
    parts: list[bytes] = [b""]
    append = parts.append
    size = 6  # length word and column count
    for value in values:
        if value is None:
            append(_NULL_LENGTH)
            size += 4
        else:
            append(_pack_int32(len(value)))
            append(value)
            size += 4 + len(value)
    parts[0] = _DATA_ROW_HEADER.pack(DATA_ROW, size, len(values))
    return b"".join(parts)


def parameter_description(type_oids: Sequence[int]) -> bytes:
    return _frame(
        PARAMETER_DESCRIPTION, _pack_int16(len(type_oids)) + struct.pack(f"!{len(type_oids)}I", *type_oids)
    )


def parse_complete() -> bytes:
    return _PARSE_COMPLETE


def bind_complete() -> bytes:
    return _BIND_COMPLETE


def close_complete() -> bytes:
    return _CLOSE_COMPLETE


def no_data() -> bytes:
    return _NO_DATA


def empty_query_response() -> bytes:
    return _EMPTY_QUERY_RESPONSE


def portal_suspended() -> bytes:
    return _PORTAL_SUSPENDED


def startup_message(parameters: dict[str, str], protocol: int = PROTOCOL_3_0) -> bytes:
    """An untyped StartupMessage (length word included)."""
    parts = [_pack_int32(protocol)]
    for name, value in parameters.items():
        if not name:
            raise ValueError("a startup parameter name is empty")
        parts.append(_strict(name, "startup parameter name"))
        parts.append(_strict(value, "startup parameter value"))
    parts.append(b"\0")
    body = b"".join(parts)
    return _pack_int32(len(body) + 4) + body


_SSL_REQUEST = _INT32_PAIR.pack(8, SSL_REQUEST_CODE)
_GSSENC_REQUEST = _INT32_PAIR.pack(8, GSSENC_REQUEST_CODE)


def ssl_request() -> bytes:
    return _SSL_REQUEST


def gssenc_request() -> bytes:
    return _GSSENC_REQUEST


def cancel_request(process_id: int, secret_key: bytes) -> bytes:
    """An untyped CancelRequest (sent on a connection of its own)."""
    if not 4 <= len(secret_key) <= 256:
        raise ValueError("a cancel key is 4 to 256 bytes")
    return _INT32_PAIR.pack(12 + len(secret_key), CANCEL_REQUEST_CODE) + _pack_int32(process_id) + secret_key


def password_message(data: bytes) -> bytes:
    """'p' with a raw payload: add the NUL terminator yourself for a cleartext or MD5 password."""
    return _frame(PASSWORD, data)


def sasl_initial_response(mechanism: str, data: bytes | None) -> bytes:
    """'p' SASLInitialResponse: the chosen mechanism and the client-first message (None: no data)."""
    length = _NULL_LENGTH if data is None else _pack_int32(len(data))
    return _frame(PASSWORD, _strict(mechanism, "SASL mechanism") + length + (data or b""))


def sasl_response(data: bytes) -> bytes:
    """'p' SASLResponse."""
    return _frame(PASSWORD, data)


def query(sql: str) -> bytes:
    """'Q' Query."""
    return _frame(QUERY, _strict(sql, "query"))


def parse(name: str, query: str, param_types: tuple[int, ...] = ()) -> bytes:
    """'P' Parse."""
    count = len(param_types)
    return _frame(
        PARSE,
        _strict(name, "statement name")
        + _strict(query, "query")
        + _pack_int16(count)
        + struct.pack(f"!{count}I", *param_types),
    )


def bind(
    portal: str,
    statement: str,
    params: Sequence[bytes | None] = (),
    param_formats: tuple[int, ...] = (),
    result_formats: tuple[int, ...] = (),
) -> bytes:
    """'B' Bind."""
    parts = [
        _strict(portal, "portal name"),
        _strict(statement, "statement name"),
        _pack_int16(len(param_formats)),
        struct.pack(f"!{len(param_formats)}h", *param_formats),
        _pack_int16(len(params)),
    ]
    for value in params:
        if value is None:
            parts.append(_NULL_LENGTH)
        else:
            parts.append(_pack_int32(len(value)))
            parts.append(value)
    parts.append(_pack_int16(len(result_formats)))
    parts.append(struct.pack(f"!{len(result_formats)}h", *result_formats))
    return _frame(BIND, b"".join(parts))


def _kind_message(kind: int, target: str, name: str) -> bytes:
    if target not in ("S", "P"):
        raise ValueError(f"describe/close target is 'S' or 'P', not {target!r}")
    return _frame(kind, target.encode() + _strict(name, "statement or portal name"))


def describe(target: str, name: str = "") -> bytes:
    """'D' Describe a statement (``"S"``) or a portal (``"P"``)."""
    return _kind_message(DESCRIBE, target, name)


def close(target: str, name: str = "") -> bytes:
    """'C' Close a statement (``"S"``) or a portal (``"P"``)."""
    return _kind_message(CLOSE, target, name)


def execute(portal: str = "", max_rows: int = 0) -> bytes:
    """'E' Execute (``max_rows`` 0: all rows)."""
    return _frame(EXECUTE, _strict(portal, "portal name") + _pack_int32(max_rows))


def copy_data(data: bytes) -> bytes:
    return _frame(COPY_DATA, data)


def notification_response(process_id: int, channel: str, payload: str) -> bytes:
    """'A' NotificationResponse (a masked payload on its way to the client)."""
    body = _pack_int32(process_id) + _lossy(channel) + _lossy(payload)
    return _frame(NOTIFICATION_RESPONSE, body)


def copy_done() -> bytes:
    return _COPY_DONE


def copy_fail(message: str) -> bytes:
    return _frame(COPY_FAIL, _lossy(message))


def sync() -> bytes:
    return _SYNC


def flush() -> bytes:
    return _FLUSH


def terminate() -> bytes:
    return _TERMINATE
