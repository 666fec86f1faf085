"""Fuzz the TCP gateway's MySQL wire codec, ``wardgate.tcp.mysql.codec`` (sans-I/O).

Input: a first byte choosing the mode, then

* mode 0, **framing**: 5 header bytes (a ``max_payload`` choice, whether sequence ids are checked
  and from which id, a 2-byte seed for how the stream is cut into chunks), then the byte stream a
  peer sends. The payloads taken out of :class:`PacketReader` must be exactly those of a reference
  framer run on the whole stream (ids, payloads, joined continuations, in order); a
  ``ProtocolViolation`` must come exactly where the reference finds an oversized payload or an
  out-of-order id; ``buffered`` must be the incomplete tail.
* mode 1, **payloads**: a byte choosing a parser, a byte of capabilities, then the payload. Where
  the module has a builder, parse -> build -> parse gives the same object back.
* mode 2, **answers**: a command choice, capabilities (DEPRECATE_EOF, SESSION_TRACK, translation),
  then server payloads (each a 2-byte length and its bytes) read by a :class:`ResponseReader`:
  events until ``done``, after which any payload is a violation; with translation every payload
  handed on is an OK the client can parse, and only definition EOFs are dropped.
* mode 3, **executes**: a parameter count and previous types, then a COM_STMT_EXECUTE payload;
  what parses re-encodes (build_stmt_execute) to a payload that parses to the same parameters.

A crash is any exception but ``ProtocolViolation`` (``IndexError``, ``struct.error``,
``UnicodeDecodeError``, ``OverflowError``... are promised never to escape), or a broken invariant.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from typing import Any

import atheris
from _harness import Finding, fuzz

with atheris.instrument_imports(include=["wardgate"]):
    from wardgate.tcp.mysql import codec
    from wardgate.tcp.mysql.codec import PacketReader, ProtocolViolation

MAX_PAYLOADS = (1, 16, 300, 4096, codec.DEFAULT_MAX_PAYLOAD)
CAPABILITY_BITS = (
    codec.CLIENT_PROTOCOL_41,
    codec.CLIENT_SESSION_TRACK,
    codec.CLIENT_DEPRECATE_EOF,
    codec.CLIENT_QUERY_ATTRIBUTES,
    codec.CLIENT_TRANSACTIONS,
    codec.CLIENT_PLUGIN_AUTH,
    codec.CLIENT_SECURE_CONNECTION,
    codec.CLIENT_CONNECT_WITH_DB,
)
COMMANDS = (
    codec.COM_QUERY,
    codec.COM_STMT_EXECUTE,
    codec.COM_STMT_PREPARE,
    codec.COM_STMT_FETCH,
    codec.COM_FIELD_LIST,
    codec.COM_STATISTICS,
    codec.COM_SET_OPTION,
    codec.COM_PING,
)
Packet = tuple[int, bytes]


def capabilities(byte: int) -> int:
    return sum(bit for k, bit in enumerate(CAPABILITY_BITS) if byte >> k & 1)


# --- mode 0 --------------------------------------------------------------------------------------


def reference(stream: bytes, largest: int, expected: int | None) -> tuple[list[Packet], bool, int]:
    """Split ``stream`` the plain way: (payloads, whether a violation stops it, bytes left over)."""
    packets: list[Packet] = []
    pos = 0
    while True:
        parts: list[bytes] = []
        first = -1
        start = pos
        total = 0
        while True:
            if len(stream) - pos < 4:
                return packets, False, len(stream) - start
            length = int.from_bytes(stream[pos : pos + 3], "little")
            seq = stream[pos + 3]
            if first < 0:
                first = seq
                if expected is not None and seq != expected:
                    return packets, True, 0
            elif seq != (first + len(parts)) & 0xFF:
                return packets, True, 0
            total += length
            if total > largest:
                return packets, True, 0
            if pos + 4 + length > len(stream):
                return packets, False, len(stream) - start
            parts.append(stream[pos + 4 : pos + 4 + length])
            pos += 4 + length
            if length < codec.MAX_PACKET_PAYLOAD:
                break
        packets.append((first, b"".join(parts)))
        if expected is not None:
            expected = (first + len(parts)) & 0xFF


def framing(data: bytes) -> None:
    if len(data) < 5:
        return
    largest = MAX_PAYLOADS[data[0] % len(MAX_PAYLOADS)]
    expected = data[2] if data[1] & 1 else None
    rng = random.Random(data[3:5])  # noqa: S311 - chunking, not secrets
    stream = data[5:]
    want, violation, left = reference(stream, largest, expected)
    reader = PacketReader(max_payload=largest, expected_sequence=expected)
    got: list[Packet] = []
    raised = False
    pos = 0
    try:
        while pos < len(stream):
            step = rng.randint(1, 64)
            reader.feed(stream[pos : pos + step])
            pos += step
            while (packet := reader.next()) is not None:
                got.append(packet)
    except ProtocolViolation:
        raised = True
    if got != want[: len(got)] or (not raised and got != want):
        raise Finding(f"framing: got {got!r}, expected {want!r}")
    if raised != violation:
        raise Finding(f"framing: violation {raised}, expected {violation}")
    if not raised and reader.buffered != left:
        raise Finding(f"framing: {reader.buffered} bytes buffered, expected {left}")


# --- mode 1 --------------------------------------------------------------------------------------


def _stable(parse: Callable[[bytes], Any], build: Callable[[Any], bytes], payload: bytes) -> None:
    first = parse(payload)
    try:
        rebuilt = build(first)
    except ValueError:
        return  # a value the builders refuse to write (a NUL in a name...): the caller's own check
    second = parse(rebuilt)
    if second != first:
        raise Finding(f"parse -> build -> parse: {first!r} became {second!r} (via {rebuilt!r})")


def payloads(data: bytes) -> None:
    if len(data) < 2:
        return
    choice, flags, payload = data[0], data[1], data[2:]
    caps = capabilities(flags)
    which = choice % 12
    if which == 0:
        _stable(codec.parse_handshake, codec.build_handshake, payload)
    elif which == 1:

        def build_client(message: Any) -> bytes:
            if isinstance(message, codec.SSLRequest):
                return codec.build_ssl_request(message)
            return codec.build_handshake_response(message)

        _stable(codec.parse_client_handshake, build_client, payload)
    elif which == 2:
        _stable(lambda p: codec.parse_ok(p, caps), lambda ok: codec.build_ok(ok, caps), payload)
    elif which == 3:
        _stable(lambda p: codec.parse_err(p, caps), lambda err: codec.build_err(err, caps), payload)
    elif which == 4:
        _stable(lambda p: codec.parse_eof(p, caps), lambda eof: codec.build_eof(eof, caps), payload)
    elif which == 5:
        codec.parse_auth_packet(payload, caps)
    elif which == 6:
        codec.parse_command(payload, caps)
    elif which == 7:
        field_list = bool(choice & 0x80)
        _stable(
            lambda p: codec.parse_column_definition(p, field_list),
            lambda c: codec.build_column_definition(c),
            payload,
        )
    elif which == 8:
        count = flags & 0x0F
        _stable(
            lambda p: codec.parse_text_row(p, count),
            lambda values: codec.build_text_row(values),
            payload,
        )
    elif which == 9:
        types = [t for t in payload[:4] if t in codec.binary_value_types()]
        body = payload[4:]
        _stable(
            lambda p: codec.parse_binary_row(p, types),
            lambda values: codec.build_binary_row(values, types),
            body,
        )
    elif which == 10:
        field_type = payload[0] if payload else 0
        raw, _ = codec.read_binary_value(payload, 1, field_type)
        unsigned = bool(flags & 1)
        value = codec.decode_binary_value(field_type, unsigned, raw)
        if (
            value is not None
            and value == value  # NaN is the one value unequal to itself
            and codec.decode_binary_value(
                field_type, unsigned, codec.encode_binary_value(field_type, unsigned, value)
            )
            != value
        ):
            raise Finding(f"binary value {value!r} of type {field_type} does not round-trip")
    else:
        codec.parse_auth_switch(payload)


# --- mode 2 --------------------------------------------------------------------------------------


def answers(data: bytes) -> None:
    if len(data) < 2:
        return
    command = COMMANDS[data[0] % len(COMMANDS)]
    flags = data[1]
    caps = codec.CLIENT_PROTOCOL_41
    if flags & 1:
        caps |= codec.CLIENT_DEPRECATE_EOF
    if flags & 2:
        caps |= codec.CLIENT_SESSION_TRACK
    translate = bool(flags & 4) and not flags & 1
    reader = codec.ResponseReader(command, caps, translate_eof=translate)
    client_caps = caps | (codec.CLIENT_DEPRECATE_EOF if translate else 0)
    pos = 2
    while pos + 2 <= len(data):
        (length,) = struct.unpack_from(">H", data, pos)
        payload = data[pos + 2 : pos + 2 + length]
        pos += 2 + length
        was_done = reader.done
        try:
            event = reader.read(payload)
        except ProtocolViolation:
            return
        if was_done:
            raise Finding("the reader took a packet after the end of the answer")
        forward = event.payload
        if forward is None:
            if not (translate and isinstance(event, codec.ColumnsDone)):
                raise Finding(f"{event!r} dropped without translation")
        elif translate and isinstance(event, codec.ResultSetDone | codec.FieldListDone | codec.EofReply):
            codec.parse_ok(forward, client_caps)  # the client must read it as an OK
        elif forward != payload and not translate:
            raise Finding(f"{event!r} changed a payload without translation")


# --- mode 3 --------------------------------------------------------------------------------------


def _comparable(params: tuple[codec.Parameter, ...]) -> list[tuple[Any, ...]]:
    """Parameters with NaN (the one value unequal to itself) made comparable."""
    return [
        (p.type, p.unsigned, "NaN" if isinstance(p.value, float) and p.value != p.value else p.value)
        for p in params
    ]


def executes(data: bytes) -> None:
    if len(data) < 3:
        return
    count = data[0] % 8
    types = [(t, bool(data[1] & 1)) for t in data[2 : 2 + count] if t in codec.PARAMETER_TYPES]
    payload = data[2 + count :]
    try:
        request = codec.parse_stmt_execute(payload, count, types if len(types) == count else None)
    except ProtocolViolation:
        return
    try:
        rebuilt = codec.build_stmt_execute(
            request.statement_id, request.params, flags=request.flags, iteration_count=request.iteration_count
        )
    except ValueError as exc:
        raise Finding(f"parsed parameters {request.params!r} cannot be written back: {exc}") from None
    again = codec.parse_stmt_execute(rebuilt, count)
    if _comparable(again.params) != _comparable(request.params):
        raise Finding(f"execute parameters {request.params!r} became {again.params!r}")


MODES = (framing, payloads, answers, executes)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    try:
        MODES[data[0] % len(MODES)](data[1:])
    except ProtocolViolation as violation:
        if not violation.message or not violation.sqlstate or not violation.code:
            raise Finding(f"a ProtocolViolation without its message or error: {violation!r}") from None


def seeds() -> list[bytes]:
    """Seed inputs built with the codec's own builders (fuzz/make_corpus.py writes them)."""
    caps = codec.CLIENT_PROTOCOL_41
    ok = codec.build_ok(codec.Ok(1, 2, 2, 0, b"info"), caps)
    greeting = codec.build_handshake(
        codec.Handshake(
            "8.4.0", 7, bytes(range(1, 21)), 0xDFFFFFFF & ~(1 << 30), 255, 2, "caching_sha2_password"
        )
    )
    response = codec.build_handshake_response(
        codec.HandshakeResponse(
            caps | codec.CLIENT_SECURE_CONNECTION | codec.CLIENT_PLUGIN_AUTH | codec.CLIENT_CONNECT_WITH_DB,
            1 << 24,
            45,
            "agent",
            b"token\x00",
            "demo",
            "mysql_clear_password",
        )
    )
    column = codec.column("email", codec.MYSQL_TYPE_VAR_STRING).payload
    eof = codec.build_eof(codec.Eof(0, 2), caps)
    row = codec.build_text_row([b"1", None, b"x" * 300])
    binary = codec.build_binary_row(
        [b"\x01\x00\x00\x00", None], [codec.MYSQL_TYPE_LONG, codec.MYSQL_TYPE_BLOB]
    )
    execute = codec.build_stmt_execute(
        1,
        [
            codec.Parameter(codec.MYSQL_TYPE_LONGLONG, False, 7),
            codec.Parameter(codec.MYSQL_TYPE_VAR_STRING, False, None),
            codec.Parameter(codec.MYSQL_TYPE_DATETIME, False, "2024-01-02 03:04:05"),
        ],
    )

    def answer(command: int, flags: int, packets: list[bytes]) -> bytes:
        return bytes((2, COMMANDS.index(command), flags)) + b"".join(
            struct.pack(">H", len(p)) + p for p in packets
        )

    result = [b"\x01", column, eof, row[:0] + codec.build_text_row([b"a"]), eof]
    prepare_ok = b"\x00\x01\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00"
    return [
        bytes((0, 4, 1, 0, 9, 9)) + codec.frame(b"\x03SELECT 1", 0) + codec.frame(b"\x0e", 1),
        bytes((0, 1, 0, 0, 1, 2)) + codec.frame(b"x" * 20, 5) + b"\x05\x00",
        bytes((1, 0, 0x01)) + greeting,
        bytes((1, 1, 0xFF)) + response,
        bytes((1, 2, 0x03)) + ok,
        bytes((1, 3, 0x01)) + codec.build_err(codec.Err(1142, "denied", "42000"), caps),
        bytes((1, 4, 0x01)) + eof,
        bytes((1, 6, 0x09)) + b"\x03\x01\x01\x00\x01\xfe\x00\x01a\x011SELECT 1",
        bytes((1, 6, 0x01)) + execute,
        bytes((1, 7, 0x01)) + column,
        bytes((1, 8, 0x03)) + row,
        bytes((1, 9, 0x01)) + bytes((3, 252, 0, 0)) + binary,
        bytes((1, 10, 0x00, codec.MYSQL_TYPE_TIME)) + b"\x08\x01\x01\x00\x00\x00\x02\x03\x04",
        answer(codec.COM_QUERY, 0, result),
        answer(codec.COM_QUERY, 4, result),
        answer(codec.COM_QUERY, 1, [b"\x01", column, row[:0] + b"\x01a", b"\xfe\x00\x00\x02\x00\x00\x00"]),
        answer(codec.COM_QUERY, 0, [b"\xfbfile", ok]),
        answer(codec.COM_STMT_PREPARE, 0, [prepare_ok, column, eof, column, eof]),
        answer(codec.COM_STMT_EXECUTE, 0, [b"\x02", column, column, eof, binary, eof]),
        answer(codec.COM_STMT_FETCH, 0, [binary, b"\xfe\x00\x00\x82\x00"]),
        answer(codec.COM_FIELD_LIST, 2, [column + b"\x01d", eof]),
        bytes((3, 3, 0)) + bytes((8, 253, 12)) + execute,
    ]


if __name__ == "__main__":
    fuzz("mysql_codec", test_one_input, max_len=4096)
