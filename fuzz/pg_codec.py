"""Fuzz the TCP gateway's PostgreSQL wire codec, ``wardgate.tcp.postgres.codec`` (sans-I/O).

Input: a first byte choosing the mode, then

* mode 0, **framing**: 6 header bytes, then the byte stream a peer sends. Header: flags (bit 0:
  the reader starts untyped, ``startup=True``), the number of untyped messages after which the
  session calls ``expect_typed`` (255: never), a ``max_message`` choice, and a 3-byte seed for
  how the stream is cut into chunks and which of ``next``/``next_raw``/``take_messages``/
  ``drain_complete`` takes the messages out. The messages taken must be exactly those of a
  reference framer run on the whole stream (same types, payloads and framed bytes, in order),
  a ``ProtocolViolation`` must come exactly where the reference finds a bad length, and
  ``buffered`` must be the incomplete tail.
* mode 1, **payloads**: a byte choosing a ``parse_*`` function (every one the module has), then
  its payload. Where the module has a builder for the message, parse -> build must give back
  the very payload (``parse_error_fields``, which is lenient: parse -> build -> parse is stable).

A crash is any exception but ``ProtocolViolation`` (``IndexError``, ``struct.error``,
``UnicodeDecodeError``... are all promised never to escape), or a broken invariant above.
"""

from __future__ import annotations

import inspect
import random
import struct
from collections.abc import Callable
from typing import Any

import atheris
from _harness import Finding, fuzz

with atheris.instrument_imports(include=["wardgate"]):
    from wardgate.tcp.postgres import codec
    from wardgate.tcp.postgres.codec import MAX_STARTUP_PACKET, MessageReader, ProtocolViolation

MAX_MESSAGES = (5, 8, 64, 1000, 64 * 1024 * 1024)
Frame = tuple[int, bytes, bytes]  # type, payload, framed message


def reference(stream: bytes, startup: bool, switch_after: int, largest: int) -> tuple[list[Frame], bool, int]:
    """Frame ``stream`` the plain way: (messages, whether a bad length stops it, bytes left over)."""
    frames: list[Frame] = []
    pos, typed = 0, not startup
    while True:
        if not typed and len(frames) == switch_after:
            typed = True
        header = 5 if typed else 4
        if len(stream) - pos < header:
            return frames, False, len(stream) - pos
        if typed:
            kind, length = struct.unpack_from("!Bi", stream, pos)
            if length < 4 or length > largest:
                return frames, True, 0
            end = pos + 1 + length
        else:
            (length,) = struct.unpack_from("!i", stream, pos)
            if length < 8 or length > MAX_STARTUP_PACKET or length > largest:
                return frames, True, 0
            kind, end = 0, pos + length
        if end > len(stream):
            return frames, False, len(stream) - pos
        frames.append((kind, stream[pos + header : end], stream[pos:end]))
        pos = end


def framing(data: bytes) -> None:
    if len(data) < 6:
        return
    flags, switch_after, max_choice = data[0], data[1], data[2]
    rng = random.Random(data[3:6])  # noqa: S311 - chunking and method choices, not secrets
    stream = data[6:]
    startup = bool(flags & 1)
    largest = MAX_MESSAGES[max_choice % len(MAX_MESSAGES)]
    never = switch_after == 255
    expected, violation, left = reference(stream, startup, -1 if never else switch_after, largest)
    reader = MessageReader(max_message=largest, startup=startup)
    got: list[Frame] = []
    raised = False

    def untyped_by_one() -> bool:
        """While a switch to typed is pending, messages must be taken one at a time."""
        return not reader.typed and not never

    def pull() -> bool:
        """Take messages out with one of the reader's methods; False when none was complete."""
        if not reader.typed and not never and len(got) == switch_after:
            reader.expect_typed()
        method = rng.randrange(4) if not untyped_by_one() else rng.randrange(2)
        skip = 5 if reader.typed else 4
        if method == 0:
            message = reader.next()
            if message is None:
                return False
            got.append((message[0], message[1], b"?"))  # next() has no framed bytes: compared below
            return True
        if method == 1:
            raw = reader.next_raw()
            if raw is None:
                return False
            got.append(raw)
            return True
        if method == 2:
            chunk, spans = reader.take_messages()
            got.extend((kind, chunk[start + skip : end], chunk[start:end]) for kind, start, end in spans)
            return bool(spans)
        messages, chunk = reader.drain_complete()
        got.extend((kind, payload, b"?") for kind, payload in messages)
        return bool(messages)

    pos = 0
    try:
        while pos < len(stream):
            size = rng.choice((1, 2, 3, 5, 7, 16, 64, 1024, len(stream)))
            piece = stream[pos : pos + size]
            reader.feed(piece if rng.randrange(3) else bytearray(piece))
            pos += size
            while pull():
                pass
        while pull():
            pass
    except ProtocolViolation:
        raised = True
    if raised != violation:
        raise Finding(f"ProtocolViolation raised: {raised}; the reference finds a bad length: {violation}")
    # take_messages() drops the complete messages ahead of a bad length in the same call: the
    # session ends on the violation anyway, so those may be missing, never extra or different.
    if len(got) > len(expected) or (not raised and len(got) != len(expected)):
        raise Finding(f"{len(got)} messages taken, the reference frames {len(expected)}")
    for index, ((kind, payload, framed), (want_kind, want_payload, want_framed)) in enumerate(
        zip(got, expected, strict=False)
    ):
        if (kind, payload) != (want_kind, want_payload) or framed not in (b"?", want_framed):
            raise Finding(
                f"message {index}: {(kind, payload[:40], framed[:40])} != {(want_kind, want_payload[:40])}"
            )
    if not raised and reader.buffered != left:
        raise Finding(f"buffered {reader.buffered} bytes, {left} are left over")


def _roundtrip(name: str, body: bytes, built: bytes, skip: int = 5) -> None:
    if built[skip:] != body:
        raise Finding(f"{name}: building what was parsed gives {built[skip:][:60]!r}, not {body[:60]!r}")


def _startup(body: bytes) -> None:
    message = codec.parse_startup(body)
    if isinstance(message, codec.StartupMessage):
        _roundtrip("parse_startup", body, codec.startup_message(message.parameters, message.protocol), 4)
    elif isinstance(message, codec.CancelRequest) and len(message.secret_key) >= 4:
        _roundtrip("parse_startup", body, codec.cancel_request(message.process_id, message.secret_key), 4)
    elif isinstance(message, codec.SSLRequest):
        _roundtrip("parse_startup", body, codec.ssl_request(), 4)
    elif isinstance(message, codec.GSSENCRequest):
        _roundtrip("parse_startup", body, codec.gssenc_request(), 4)


def _parse(body: bytes) -> None:
    message = codec.parse_parse(body)
    _roundtrip("parse_parse", body, codec.parse(message.name, message.query, message.param_types))


def _bind(body: bytes) -> None:
    b = codec.parse_bind(body)
    _roundtrip(
        "parse_bind", body, codec.bind(b.portal, b.statement, b.params, b.param_formats, b.result_formats)
    )


def _describe(body: bytes) -> None:
    _roundtrip("parse_describe", body, codec.describe(*codec.parse_describe(body)))


def _close(body: bytes) -> None:
    _roundtrip("parse_close", body, codec.close(*codec.parse_close(body)))


def _execute(body: bytes) -> None:
    _roundtrip("parse_execute", body, codec.execute(*codec.parse_execute(body)))


def _query(body: bytes) -> None:
    _roundtrip("parse_query", body, codec.query(codec.parse_query(body)))


def _sasl_initial(body: bytes) -> None:
    _roundtrip(
        "parse_sasl_initial_response",
        body,
        codec.sasl_initial_response(*codec.parse_sasl_initial_response(body)),
    )


def _copy_fail(body: bytes) -> None:
    _roundtrip("parse_copy_fail", body, codec.copy_fail(codec.parse_copy_fail(body)))


def _row_description(body: bytes) -> None:
    _roundtrip("parse_row_description", body, codec.row_description(codec.parse_row_description(body)))


def _data_row(body: bytes) -> None:
    _roundtrip("parse_data_row", body, codec.data_row(codec.parse_data_row(body)))


def _error_fields(body: bytes) -> None:
    fields = codec.parse_error_fields(body)
    again = codec.parse_error_fields(codec.error_from_fields(fields)[5:])
    if again != fields:
        raise Finding(f"parse_error_fields: {fields!r} re-parsed as {again!r}")


def _command_complete(body: bytes) -> None:
    _roundtrip("parse_command_complete", body, codec.command_complete(codec.parse_command_complete(body)))


def _authentication(body: bytes) -> None:
    code, rest = codec.parse_authentication(body)
    if code == codec.AUTH_SASL:
        mechanisms = codec.parse_sasl_mechanisms(rest)
        _roundtrip("parse_sasl_mechanisms", body, codec.authentication_sasl(mechanisms))
    elif code == codec.AUTH_MD5_PASSWORD:
        _roundtrip("parse_authentication", body, codec.authentication_md5_password(rest))


def _backend_key_data(body: bytes) -> None:
    _roundtrip("parse_backend_key_data", body, codec.backend_key_data(*codec.parse_backend_key_data(body)))


def _parameter_status(body: bytes) -> None:
    _roundtrip("parse_parameter_status", body, codec.parameter_status(*codec.parse_parameter_status(body)))


def _parameter_description(body: bytes) -> None:
    oids = codec.parse_parameter_description(body)
    _roundtrip("parse_parameter_description", body, codec.parameter_description(oids))


def _ready_for_query(body: bytes) -> None:
    _roundtrip("parse_ready_for_query", body, codec.ready_for_query(codec.parse_ready_for_query(body)))


def _negotiate(body: bytes) -> None:
    minor, options = codec.parse_negotiate_protocol_version(body)
    _roundtrip("parse_negotiate_protocol_version", body, codec.negotiate_protocol_version(minor, options))


def _no_builder(parser: Callable[[bytes], Any]) -> Callable[[bytes], None]:
    def parse_only(body: bytes) -> None:
        parser(body)

    return parse_only


PARSED = {  # every parse_* of the module, checked below: a new parser must be added here
    "parse_startup", "parse_parse", "parse_bind", "parse_describe", "parse_close", "parse_execute",
    "parse_query", "parse_password", "parse_sasl_initial_response", "parse_copy_fail",
    "parse_row_description", "parse_data_row", "parse_error_fields", "parse_command_complete",
    "parse_authentication", "parse_sasl_mechanisms", "parse_backend_key_data", "parse_parameter_status",
    "parse_parameter_description", "parse_ready_for_query", "parse_negotiate_protocol_version",
    "parse_copy_response", "parse_notification_response",
}  # fmt: skip
_DECODERS = {  # parse_complete() is the ParseComplete builder: the decoders are those taking bytes
    name
    for name in dir(codec)
    if name.startswith("parse_") and inspect.signature(getattr(codec, name)).parameters
}
if _DECODERS != PARSED:
    missing = _DECODERS ^ PARSED
    raise SystemExit(f"pg_codec harness: parse_* functions out of step with the codec: {sorted(missing)}")
PARSERS: tuple[Callable[[bytes], None], ...] = (
    _startup,
    _parse,
    _bind,
    _describe,
    _close,
    _execute,
    _query,
    _no_builder(codec.parse_password),
    _sasl_initial,
    _copy_fail,
    _row_description,
    _data_row,
    _error_fields,
    _command_complete,
    _authentication,
    _no_builder(codec.parse_sasl_mechanisms),
    _backend_key_data,
    _parameter_status,
    _parameter_description,
    _ready_for_query,
    _negotiate,
    _no_builder(codec.parse_copy_response),
    _no_builder(codec.parse_notification_response),
)


def payload(data: bytes) -> None:
    if not data:
        return
    try:
        PARSERS[data[0] % len(PARSERS)](data[1:])
    except ProtocolViolation as refused:
        if not refused.message or len(refused.sqlstate) != 5:
            raise Finding(f"ProtocolViolation {refused.sqlstate!r} {refused.message!r}") from None


def test_one_input(data: bytes) -> None:
    if not data:
        return
    if data[0] % 2 == 0:
        framing(data[1:])
    else:
        payload(data[1:])


if __name__ == "__main__":
    fuzz("pg_codec", test_one_input, max_len=8192)
