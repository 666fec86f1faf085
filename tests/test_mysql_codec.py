"""The MySQL wire codec (wardgate.tcp.mysql.codec) and the authentication scrambles (tcp.mysql.auth).

Packets are checked byte for byte against the protocol's documented layouts, read back through
:class:`PacketReader` split at every byte boundary, and round-tripped through their parsers; every
kind of malformed input must end in :class:`ProtocolViolation` (with the MySQL error it maps to)
and nothing else. The scrambles are compared with PyMySQL's independent implementation, and a
blocking client built only on this codec logs in to the local MariaDB and runs queries, multi-
statements and prepared statements there, its decoded binary rows compared with PyMySQL's.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pymysql
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from pymysql import _auth as pymysql_auth

from wardgate.tcp.mysql import auth, codec
from wardgate.tcp.mysql.codec import (
    AuthMoreData,
    AuthSwitchRequest,
    Eof,
    Err,
    Handshake,
    HandshakeResponse,
    Ok,
    PacketReader,
    PacketsOutOfOrder,
    PacketTooLarge,
    ProtocolViolation,
    SSLRequest,
)

MY_HOST, MY_PORT = "127.0.0.1", 3306
MY_USER, MY_PASSWORD, MY_DATABASE = "wardgate", "wardgate-test-pw", "wardgate_test"  # scripts/services

CAPS_41 = codec.CLIENT_PROTOCOL_41 | codec.CLIENT_LONG_PASSWORD
CAPS_TRACK = CAPS_41 | codec.CLIENT_SESSION_TRACK
CAPS_DEPRECATE = CAPS_41 | codec.CLIENT_DEPRECATE_EOF

# MariaDB 10.11's greeting, as the local server sent it (extended capabilities in the filler)
MARIADB_GREETING = (
    b"\n5.5.5-10.11.19-MariaDB-0+deb12u1\x00\n\x00\x00\x00e[yoDAZ~\x00\xfe\xff-\x02\x00\xff\x81\x15"
    b"\x00\x00\x00\x00\x00\x00\x1d\x00\x00\x001qj>7:]CyY2-\x00mysql_native_password\x00"
)


def read_back(wire: bytes, **reader_options: Any) -> list[tuple[int, bytes]]:
    """Feed framed ``wire`` split at every byte boundary (and byte by byte): the same payloads come out."""
    results = set()
    splits = [[wire[:i], wire[i:]] for i in range(len(wire) + 1)]
    splits.append([wire[i : i + 1] for i in range(len(wire))])
    for pieces in splits:
        reader = PacketReader(**reader_options)
        got: list[tuple[int, bytes]] = []
        for piece in pieces:
            reader.feed(piece)
            while (packet := reader.next()) is not None:
                got.append(packet)
        assert reader.buffered == 0
        results.add(tuple(got))
    assert len(results) == 1
    return list(results.pop())


def violation(function: Callable[..., Any], *args: Any) -> ProtocolViolation:
    with pytest.raises(ProtocolViolation) as caught:
        function(*args)
    assert caught.value.message == str(caught.value)
    return caught.value


def every_truncation(payload: bytes, parse: Callable[[bytes], Any], keep: int = 0) -> None:
    """Each proper prefix of ``payload`` (longer than ``keep``) is a violation, never another error."""
    for end in range(keep, len(payload)):
        try:
            parse(payload[:end])
        except ProtocolViolation:
            continue
        raise AssertionError(f"{payload[:end]!r} was accepted")


# --------------------------------------------------------------------------------------------------
# Length-encoded integers and strings


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (0, b"\x00"),
        (250, b"\xfa"),
        (251, b"\xfc\xfb\x00"),
        (0xFFFF, b"\xfc\xff\xff"),
        (0x10000, b"\xfd\x00\x00\x01"),
        (0xFFFFFF, b"\xfd\xff\xff\xff"),
        (0x1000000, b"\xfe\x00\x00\x00\x01\x00\x00\x00\x00"),
        (2**64 - 1, b"\xfe" + b"\xff" * 8),
    ],
)
def test_lenenc_int_is_byte_exact(value: int, wire: bytes) -> None:
    assert codec.lenenc_int(value) == wire
    assert codec.read_lenenc_int(b"x" + wire + b"y", 1) == (value, 1 + len(wire))


def test_lenenc_refusals() -> None:
    for bad in (b"\xfb", b"\xff", b"", b"\xfc\x01", b"\xfd\x01\x02", b"\xfe\x01\x02\x03\x04\x05\x06\x07"):
        violation(codec.read_lenenc_int, bad, 0)
    assert "0xfb" in violation(codec.read_lenenc_int, b"\xfb", 0).message
    assert "past the end" in violation(codec.read_lenenc_bytes, b"\x05abcd", 0).message
    for out_of_range in (-1, 2**64):
        with pytest.raises(ValueError):
            codec.lenenc_int(out_of_range)


@given(st.binary(max_size=300), st.integers(min_value=0, max_value=2**64 - 1))
@settings(max_examples=200, deadline=None)
def test_lenenc_round_trips(value: bytes, number: int) -> None:
    wire = codec.lenenc_bytes(value) + codec.lenenc_int(number)
    got, pos = codec.read_lenenc_bytes(wire, 0)
    assert got == value
    assert codec.read_lenenc_int(wire, pos) == (number, len(wire))


# --------------------------------------------------------------------------------------------------
# Framing


def test_frame_is_byte_exact() -> None:
    assert codec.frame(b"\x03SELECT 1", 0) == b"\x09\x00\x00\x00\x03SELECT 1"
    assert codec.frame(b"", 7) == b"\x00\x00\x00\x07"
    assert codec.frame(b"x", 256 + 3) == b"\x01\x00\x00\x03x"  # ids wrap at 256
    assert codec.next_sequence(255, 10) == 0
    assert codec.packet_count(0) == 1


def test_large_payloads_are_split_and_joined() -> None:
    big = codec.MAX_PACKET_PAYLOAD
    for size, packets in ((big - 1, 1), (big, 2), (big + 1, 2), (2 * big, 3)):
        payload = os.urandom(16) * (size // 16) + b"z" * (size % 16)
        wire = codec.frame(payload, 254)
        assert len(wire) == size + 4 * packets
        assert codec.packet_count(size) == packets
        headers = []
        pos = 0
        for _ in range(packets):
            length = int.from_bytes(wire[pos : pos + 3], "little")
            headers.append((length, wire[pos + 3]))
            pos += 4 + length
        assert pos == len(wire)
        assert [seq for _, seq in headers] == [(254 + k) & 0xFF for k in range(packets)]
        assert headers[-1][0] < big and all(length == big for length, _ in headers[:-1])
        reader = PacketReader(max_payload=3 * big, expected_sequence=254)
        for k in range(0, len(wire), 1 << 20):  # arriving in 1 MiB reads
            reader.feed(wire[k : k + (1 << 20)])
        assert reader.next() == (254, payload)
        assert reader.last_sequence == (254 + packets - 1) & 0xFF
        assert reader.expected_sequence == codec.next_sequence(254, size)
        assert reader.next() is None and reader.buffered == 0


def test_reader_splits_a_stream_at_every_boundary() -> None:
    wire = codec.frame(b"\x0e", 0) + codec.frame(b"", 1) + codec.frame(b"\x03SELECT 'x'", 2)
    assert read_back(wire, expected_sequence=0) == [(0, b"\x0e"), (1, b""), (2, b"\x03SELECT 'x'")]
    assert read_back(wire) == [(0, b"\x0e"), (1, b""), (2, b"\x03SELECT 'x'")]


def test_reader_checks_sequence_ids() -> None:
    reader = PacketReader(expected_sequence=0)
    reader.feed(codec.frame(b"\x0e", 0) + codec.frame(b"\x0e", 2))
    assert reader.next() == (0, b"\x0e")
    error = violation(reader.next)
    assert isinstance(error, PacketsOutOfOrder)
    assert (error.code, error.sqlstate) == (1156, "08S01")
    assert error.message == "got packet sequence id 2, expected 1"
    unchecked = PacketReader()
    unchecked.feed(codec.frame(b"a", 9) + codec.frame(b"b", 3))
    assert [unchecked.next(), unchecked.next()] == [(9, b"a"), (3, b"b")]
    codec.check_sequence(256, 0)
    with pytest.raises(PacketsOutOfOrder):
        codec.check_sequence(1, 0)


def test_the_parts_of_one_payload_have_consecutive_ids() -> None:
    big = codec.MAX_PACKET_PAYLOAD
    wire = codec.frame(b"\x00" * big, 5)
    broken = wire[: 4 + big] + b"\x00\x00\x00\x09"  # the empty closing packet with id 9, not 6
    reader = PacketReader(max_payload=2 * big)
    reader.feed(broken)
    assert violation(reader.next).message == "got packet sequence id 9, expected 6"


def test_reader_refuses_oversized_payloads_before_buffering_them() -> None:
    reader = PacketReader(max_payload=1000)
    reader.feed(b"\xe9\x03\x00\x00")  # a 1001-byte payload announced; none of it sent
    error = violation(reader.next)
    assert isinstance(error, PacketTooLarge)
    assert (error.code, error.sqlstate) == (1153, "08S01")
    assert error.message == "a packet of 1001 bytes or more is larger than the limit of 1000 bytes"
    reader = PacketReader(max_payload=codec.MAX_PACKET_PAYLOAD + 10)
    reader.feed(b"\xff\xff\xff\x00" + b"\x00" * 100)  # 16 MiB - 1 and more announced
    assert reader.next() is None  # the first part fits: wait for it
    reader = PacketReader(max_payload=codec.MAX_PACKET_PAYLOAD + 10)
    reader.feed(b"\xff\xff\xff\x00" + b"\x00" * codec.MAX_PACKET_PAYLOAD + b"\x0b\x00\x00\x01")
    assert "16777226 bytes" in violation(reader.next).message
    with pytest.raises(ValueError):
        PacketReader(max_payload=0)


def test_reader_holds_incomplete_packets() -> None:
    reader = PacketReader()
    reader.feed(b"\x05\x00")
    assert reader.next() is None
    reader.feed(b"\x00\x00abc")
    assert reader.next() is None and reader.buffered == 7
    reader.feed(bytearray(b"de\x01\x00"))
    assert reader.next() == (0, b"abcde")
    assert reader.next() is None and reader.buffered == 2


# --------------------------------------------------------------------------------------------------
# Connection phase


def test_mariadb_greeting_round_trips() -> None:
    greeting = codec.parse_handshake(MARIADB_GREETING)
    assert greeting == Handshake(
        server_version="5.5.5-10.11.19-MariaDB-0+deb12u1",
        connection_id=10,
        auth_plugin_data=b"e[yoDAZ~1qj>7:]CyY2-",
        capabilities=0x1D_81FF_FFFE,
        charset=45,
        status=codec.SERVER_STATUS_AUTOCOMMIT,
        auth_plugin_name="mysql_native_password",
    )
    assert greeting.capabilities & codec.MARIADB_CLIENT_STMT_BULK_OPERATIONS
    assert not greeting.capabilities & codec.CLIENT_MYSQL
    assert codec.build_handshake(greeting) == MARIADB_GREETING
    nonce_end = MARIADB_GREETING.index(b"2-\x00") + 2
    every_truncation(MARIADB_GREETING[:nonce_end], codec.parse_handshake)
    # old servers end the plugin name with the packet, or send none: both are read
    assert codec.parse_handshake(MARIADB_GREETING[:-1]) == greeting
    assert codec.parse_handshake(MARIADB_GREETING[:nonce_end]).auth_plugin_name == ""


def test_mysql_greeting_is_byte_exact() -> None:
    caps = 0xDFFFFFFF & ~codec.CLIENT_SSL_VERIFY_SERVER_CERT
    greeting = Handshake("8.4.3", 0x01020304, bytes(range(1, 21)), caps, 255, 2, "caching_sha2_password")
    wire = codec.build_handshake(greeting)
    assert wire == (
        b"\x0a8.4.3\x00\x04\x03\x02\x01\x01\x02\x03\x04\x05\x06\x07\x08\x00"
        + caps.to_bytes(4, "little")[:2]
        + b"\xff\x02\x00"
        + caps.to_bytes(4, "little")[2:]
        + b"\x15"
        + b"\x00" * 10
        + bytes(range(9, 21))
        + b"\x00caching_sha2_password\x00"
    )
    assert codec.parse_handshake(wire) == greeting
    assert codec.parse_handshake(wire[:-1]) == greeting  # a name ended by the packet (old servers)


def test_greeting_refusals() -> None:
    assert "version 9" in violation(codec.parse_handshake, b"\x09garbage").message
    assert "version None" in violation(codec.parse_handshake, b"").message
    no_41 = bytearray(MARIADB_GREETING)
    no_41[MARIADB_GREETING.index(b"\xfe\xff-")] = 0xFE
    no_41[MARIADB_GREETING.index(b"\xfe\xff-") + 1] = 0xFD
    assert "4.1" in violation(codec.parse_handshake, bytes(no_41)).message
    assert "unexpected bytes" in violation(codec.parse_handshake, MARIADB_GREETING + b"x").message
    with pytest.raises(ValueError):
        codec.build_handshake(
            Handshake("x", 1, b"short", CAPS_41 | codec.CLIENT_SECURE_CONNECTION, 45, 0, "")
        )
    with pytest.raises(ValueError):
        codec.build_handshake(Handshake("x\0y", 1, bytes(20), codec.CLIENT_PROTOCOL_41, 45, 0, ""))


def test_ssl_request_is_32_bytes() -> None:
    caps = CAPS_41 | codec.CLIENT_SSL | codec.CLIENT_SECURE_CONNECTION
    request = SSLRequest(caps, 1 << 24, 45)
    wire = codec.build_ssl_request(request)
    assert wire == caps.to_bytes(4, "little") + b"\x00\x00\x00\x01" + b"\x2d" + b"\x00" * 23
    assert codec.parse_client_handshake(wire) == request
    mariadb = SSLRequest((caps & ~codec.CLIENT_MYSQL) | codec.MARIADB_CLIENT_PROGRESS, 0, 45)
    assert codec.build_ssl_request(mariadb)[-4:] == b"\x01\x00\x00\x00"
    assert codec.parse_client_handshake(codec.build_ssl_request(mariadb)) == mariadb
    no_ssl = (CAPS_41).to_bytes(4, "little") + b"\x00" * 28
    assert "CLIENT_SSL" in violation(codec.parse_client_handshake, no_ssl).message
    assert "truncated" in violation(codec.parse_client_handshake, wire[:31]).message
    with pytest.raises(ValueError):
        codec.build_ssl_request(SSLRequest(CAPS_41, 0, 45))


def test_handshake_response_is_byte_exact() -> None:
    caps = (
        CAPS_41
        | codec.CLIENT_SECURE_CONNECTION
        | codec.CLIENT_PLUGIN_AUTH
        | codec.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | codec.CLIENT_CONNECT_WITH_DB
        | codec.CLIENT_CONNECT_ATTRS
    )
    response = HandshakeResponse(
        caps, 1 << 24, 45, "agent", b"tok\x00en", "demo", "mysql_clear_password", (("_client_name", "x"),)
    )
    wire = codec.build_handshake_response(response)
    assert wire == (
        caps.to_bytes(4, "little")
        + b"\x00\x00\x00\x01\x2d"
        + b"\x00" * 23
        + b"agent\x00\x06tok\x00endemo\x00mysql_clear_password\x00"
        + b"\x0f\x0c_client_name\x01x"
    )
    assert codec.parse_client_handshake(wire) == response
    auth_end = wire.index(b"endemo") + 2
    every_truncation(wire[:auth_end], codec.parse_client_handshake, keep=33)
    # clients leave out trailing fields: a response may end after any whole field, not inside one
    shorter = codec.parse_client_handshake(wire[:auth_end])
    assert isinstance(shorter, HandshakeResponse) and shorter.database is None
    for inside in (auth_end + 2, wire.index(b"_password") + 3, len(wire) - 1):
        violation(codec.parse_client_handshake, wire[:inside])


@pytest.mark.parametrize(
    "caps",
    [
        CAPS_41 | codec.CLIENT_SECURE_CONNECTION,
        CAPS_41,
        CAPS_41 | codec.CLIENT_SECURE_CONNECTION | codec.CLIENT_PLUGIN_AUTH,
        CAPS_41 | codec.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | codec.CLIENT_ZSTD_COMPRESSION_ALGORITHM,
    ],
)
def test_handshake_response_variants_round_trip(caps: int) -> None:
    auth_data = b"" if not caps & codec.CLIENT_SECURE_CONNECTION and not caps & 1 << 21 else bytes(range(20))
    plugin = "mysql_native_password" if caps & codec.CLIENT_PLUGIN_AUTH else ""
    zstd = 3 if caps & codec.CLIENT_ZSTD_COMPRESSION_ALGORITHM else None
    response = HandshakeResponse(caps, 0, 8, "u", auth_data, None, plugin, None, zstd)
    assert codec.parse_client_handshake(codec.build_handshake_response(response)) == response


def test_handshake_response_refusals() -> None:
    head = (codec.CLIENT_LONG_PASSWORD).to_bytes(4, "little") + b"\x00" * 28
    assert "4.1" in violation(codec.parse_client_handshake, head + b"u\x00").message
    caps = (CAPS_41 | codec.CLIENT_SECURE_CONNECTION).to_bytes(4, "little")
    assert "NUL" in violation(codec.parse_client_handshake, caps + b"\x00" * 28 + b"user").message
    bad_utf8 = caps + b"\x00" * 28 + b"\xff\x00\x00"
    assert "UTF-8" in violation(codec.parse_client_handshake, bad_utf8).message
    assert (
        "truncated" in violation(codec.parse_client_handshake, caps + b"\x00" * 28 + b"u\x00\x05ab").message
    )
    with pytest.raises(ValueError):
        codec.build_handshake_response(HandshakeResponse(CAPS_41, 0, 8, "a\0b", b""))
    long_auth = HandshakeResponse(CAPS_41 | codec.CLIENT_SECURE_CONNECTION, 0, 8, "u", bytes(300))
    with pytest.raises(ValueError):
        codec.build_handshake_response(long_auth)


def test_auth_exchange_packets() -> None:
    switch = AuthSwitchRequest("mysql_native_password", bytes(range(20)) + b"\x00")
    wire = codec.build_auth_switch(switch)
    assert wire == b"\xfemysql_native_password\x00" + bytes(range(20)) + b"\x00"
    assert codec.parse_auth_packet(wire, CAPS_41) == switch
    assert auth.switch_nonce(switch.data) == bytes(range(20))
    assert auth.switch_nonce(bytes(32)) == bytes(32)  # ed25519's 32-byte nonce has no NUL to drop
    assert codec.build_auth_more_data(b"\x03") == b"\x01\x03"
    assert codec.parse_auth_packet(b"\x01\x04", CAPS_41) == AuthMoreData(b"\x04")
    assert codec.parse_auth_more_data(b"\x01-----BEGIN") == AuthMoreData(b"-----BEGIN")
    assert codec.parse_auth_packet(b"\x00\x00\x00\x02\x00\x00\x00", CAPS_41) == Ok(status=2)
    assert codec.parse_auth_packet(b"\xff\x15\x04#28000Access denied", CAPS_41) == Err(
        1045, "Access denied", "28000"
    )
    assert "mysql_old_password" in violation(codec.parse_auth_packet, b"\xfe", CAPS_41).message
    assert "0x02" in violation(codec.parse_auth_packet, b"\x02", CAPS_41).message
    assert "empty" in violation(codec.parse_auth_packet, b"", CAPS_41).message
    violation(codec.parse_auth_switch, b"\xfeplugin-without-nul")
    violation(codec.parse_auth_more_data, b"\x00")
    with pytest.raises(ValueError):
        codec.build_auth_switch(AuthSwitchRequest("", b""))


# --------------------------------------------------------------------------------------------------
# OK, ERR, EOF


def test_ok_packets_are_byte_exact() -> None:
    ok = Ok(affected_rows=300, last_insert_id=7, status=0x0002, warnings=1)
    assert codec.build_ok(ok, CAPS_41) == b"\x00\xfc\x2c\x01\x07\x02\x00\x01\x00"
    assert codec.parse_ok(b"\x00\xfc\x2c\x01\x07\x02\x00\x01\x00", CAPS_41) == ok
    info = Ok(1, 0, 2, 0, b"Rows matched: 1  Changed: 1  Warnings: 0")
    assert codec.build_ok(info, CAPS_41) == b"\x00\x01\x00\x02\x00\x00\x00" + info.info  # type: ignore[operator]
    assert codec.parse_ok(codec.build_ok(info, CAPS_41), CAPS_41) == info
    eof_ok = Ok(status=codec.SERVER_STATUS_AUTOCOMMIT, warnings=2, eof_header=True)
    assert codec.build_ok(eof_ok, CAPS_DEPRECATE) == b"\xfe\x00\x00\x02\x00\x02\x00"
    assert codec.parse_ok(b"\xfe\x00\x00\x02\x00\x02\x00", CAPS_DEPRECATE) == eof_ok
    older = codec.CLIENT_TRANSACTIONS
    assert codec.parse_ok(codec.build_ok(Ok(status=3), older), older) == Ok(status=3)
    every_truncation(b"\x00\xfc\x2c\x01\x07\x02\x00\x01\x00", lambda p: codec.parse_ok(p, CAPS_41))


def test_ok_with_session_tracking_round_trips() -> None:
    state = b"\x00\x0f\x0acharacter_set_client\x07utf8mb4"  # SESSION_TRACK_SYSTEM_VARIABLES
    changed = codec.SERVER_SESSION_STATE_CHANGED | codec.SERVER_STATUS_AUTOCOMMIT
    cases = [
        (Ok(status=2), b"\x00\x00\x00\x02\x00\x00\x00"),  # no info, no change: the fields are absent
        (Ok(status=2, info=b""), b"\x00\x00\x00\x02\x00\x00\x00\x00"),
        (
            Ok(status=changed, info=b"", session_state=state),
            b"\x00\x00\x00\x02\x40\x00\x00\x00" + bytes((len(state),)) + state,
        ),
    ]
    for ok, wire in cases:
        assert codec.build_ok(ok, CAPS_TRACK) == wire
        assert codec.parse_ok(wire, CAPS_TRACK) == ok
    assert (
        "unexpected bytes"
        in violation(codec.parse_ok, b"\x00\x00\x00\x02\x00\x00\x00\x00x", CAPS_TRACK).message
    )
    truncated = b"\x00\x00\x00\x02\x40\x00\x00\x00\x05ab"
    assert "past the end" in violation(codec.parse_ok, truncated, CAPS_TRACK).message
    with pytest.raises(ValueError):
        codec.build_ok(Ok(status=2, session_state=b"x"), CAPS_TRACK)
    # SERVER_SESSION_STATE_CHANGED promises the fields (found by fuzz/mysql_codec.py)
    assert "missing" in violation(codec.parse_ok, b"\x00\x00\x00\x00\x40\x00\x00", CAPS_TRACK).message


def test_err_packets() -> None:
    err = Err(1142, "SELECT command denied to user 'agent'", "42000")
    wire = codec.build_err(err, CAPS_41)
    assert wire == b"\xff\x76\x04#42000SELECT command denied to user 'agent'"
    assert codec.parse_err(wire, CAPS_41) == err
    early = b"\xff\x69\x04Host '10.0.0.9' is blocked"  # sent before the handshake: no SQLSTATE
    assert codec.parse_err(early, CAPS_41) == Err(1129, "Host '10.0.0.9' is blocked", None)
    assert codec.build_err(Err(1129, "Host '10.0.0.9' is blocked", None), CAPS_41) == early
    assert codec.parse_err(b"\xff\x01\x00#HY000f\xfcr", CAPS_41).message == "f\ufffdr"  # lenient
    assert codec.parse_err(b"\xff\x01\x00#HY000", 0) == Err(1, "#HY000", None)  # pre-4.1 layout
    violation(codec.parse_err, b"\xff\x01", CAPS_41)
    violation(codec.parse_err, b"\xff\x01\x00#HY0", CAPS_41)
    with pytest.raises(ValueError):
        codec.build_err(Err(1, "x", "4200"), CAPS_41)
    with pytest.raises(ValueError):
        codec.build_err(Err(70000, "x"), CAPS_41)


def test_eof_packets() -> None:
    eof = Eof(warnings=1, status=codec.SERVER_MORE_RESULTS_EXISTS | 2)
    assert codec.build_eof(eof, CAPS_41) == b"\xfe\x01\x00\x0a\x00"
    assert codec.parse_eof(b"\xfe\x01\x00\x0a\x00", CAPS_41) == eof
    assert codec.build_eof(eof, 0) == b"\xfe" and codec.parse_eof(b"\xfe", 0) == Eof()
    for bad in (b"\xfe\x01", b"\xfe" + bytes(8), b"\x00\x01\x00\x0a\x00", b""):
        violation(codec.parse_eof, bad, CAPS_41)


def test_end_of_rows_is_told_from_a_row_by_its_length() -> None:
    assert codec.is_eof_packet(b"\xfe\x00\x00\x02\x00", CAPS_41)
    assert not codec.is_eof_packet(b"\xfe" + bytes(8), CAPS_41)  # a row: a value of 2**24+ bytes
    assert codec.is_eof_packet(b"\xfe\x00\x00\x02\x00\x00\x00" + bytes(30), CAPS_DEPRECATE)
    assert not codec.is_eof_packet(b"\xfe" + bytes(codec.MAX_PACKET_PAYLOAD), CAPS_DEPRECATE)
    assert not codec.is_eof_packet(b"\x00\x00\x00\x02\x00", CAPS_41)
    assert not codec.is_eof_packet(b"", CAPS_41)


# --------------------------------------------------------------------------------------------------
# Authentication scrambles, against PyMySQL's independent implementation


PASSWORDS = [b"", b"x", b"wardgate-test-pw", "pässwörd".encode(), bytes(range(1, 256)), b"a" * 1000]


@pytest.mark.parametrize("password", PASSWORDS)
def test_scrambles_match_pymysql(password: bytes) -> None:
    for nonce in (bytes(20), bytes(range(20)), hashlib.sha1(password).digest()):
        assert auth.native_password_scramble(password, nonce) == pymysql_auth.scramble_native_password(
            password, nonce
        )
        assert auth.caching_sha2_scramble(password, nonce) == pymysql_auth.scramble_caching_sha2(
            password, nonce
        )
        assert auth.native_password_scramble(password, nonce + b"\x00") == auth.native_password_scramble(
            password, nonce
        )  # only the first 20 bytes count
    if password:
        for nonce in (bytes(32), hashlib.sha256(password).digest()):
            signature = auth.ed25519_signature(password, nonce)
            assert len(signature) == 64
            assert signature == pymysql_auth.ed25519_password(password, nonce)


def test_known_native_password_scramble() -> None:
    # SHA1 scheme worked by hand: SHA1("secret") XOR SHA1(nonce + SHA1(SHA1("secret")))
    nonce = b"abcdefghijklmnopqrst"
    stage1 = hashlib.sha1(b"secret").digest()
    expected = bytes(
        a ^ b
        for a, b in zip(
            stage1,
            hashlib.sha1(nonce + hashlib.sha1(stage1).digest()).digest(),
            strict=True,
        )
    )
    assert auth.native_password_scramble(b"secret", nonce) == expected
    assert expected.hex() == pymysql_auth.scramble_native_password(b"secret", nonce).hex()


def test_ed25519_signature_verifies_with_the_password_derived_key() -> None:
    from nacl import bindings
    from nacl.signing import VerifyKey

    password, nonce = b"wardgate-test-pw", os.urandom(32)
    digest = hashlib.sha512(password).digest()
    scalar = bytearray(digest[:32])
    scalar[0] &= 248
    scalar[31] = (scalar[31] & 127) | 64
    public = bindings.crypto_scalarmult_ed25519_base_noclamp(bytes(scalar))
    VerifyKey(public).verify(nonce, auth.ed25519_signature(password, nonce))  # raises if it does not


def test_caching_sha2_rsa_password_decrypts_to_the_xored_password() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    nonce = bytes(range(1, 21))
    password = b"a-password-longer-than-the-twenty-byte-nonce"
    sealed = auth.caching_sha2_rsa_password(password, nonce, pem)
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    plain = key.decrypt(sealed, oaep)
    assert bytes(b ^ nonce[i % 20] for i, b in enumerate(plain)) == password + b"\x00"
    # PyMySQL's encryption decrypts to the same message
    assert key.decrypt(pymysql_auth.sha2_rsa_encrypt(password, nonce, pem), oaep) == plain
    with pytest.raises(ValueError):
        auth.caching_sha2_rsa_password(password, nonce, b"not a key")
    with pytest.raises(ValueError):
        auth.clear_password(b"nul\x00inside")
    assert auth.clear_password(b"token") == b"token\x00"


# --------------------------------------------------------------------------------------------------
# Commands


def test_simple_commands_are_byte_exact() -> None:
    cases: list[tuple[bytes, codec.Command]] = [
        (b"\x03SELECT 1", codec.Query(b"SELECT 1")),
        (b"\x02wardgate_test", codec.InitDb("wardgate_test")),
        (b"\x0e", codec.Ping()),
        (b"\x01", codec.Quit()),
        (b"\x1f", codec.ResetConnection()),
        (b"\x09", codec.Statistics()),
        (b"\x0d", codec.Debug()),
        (b"\x04users\x00na%", codec.FieldList("users", "na%")),
        (b"\x1b\x01\x00", codec.SetOption(codec.MYSQL_OPTION_MULTI_STATEMENTS_OFF)),
        (b"\x0c\x2a\x00\x00\x00", codec.ProcessKill(42)),
        (b"\x16SELECT ?", codec.StmtPrepare(b"SELECT ?")),
        (b"\x17\x07\x00\x00\x00\x01\x01\x00\x00\x00", codec.StmtExecute(7, 1, 1)),
        (b"\x18\x07\x00\x00\x00\x02\x00chunk", codec.StmtSendLongData(7, 2, b"chunk")),
        (b"\x19\x07\x00\x00\x00", codec.StmtClose(7)),
        (b"\x1a\x07\x00\x00\x00", codec.StmtReset(7)),
        (b"\x1c\x07\x00\x00\x00\x64\x00\x00\x00", codec.StmtFetch(7, 100)),
        (b"\x11root\x00\x14" + bytes(20) + b"db\x00", codec.ChangeUser("root")),
        (b"\x08\x00", codec.Unknown(codec.COM_SHUTDOWN, b"\x08\x00")),
        (b"\xfa\x01\x00", codec.Unknown(codec.COM_STMT_BULK_EXECUTE, b"\xfa\x01\x00")),
        (b"\x12", codec.Unknown(codec.COM_BINLOG_DUMP, b"\x12")),
    ]
    for payload, command in cases:
        assert codec.parse_command(payload) == command, payload
    assert codec.parse_command(b"\x17\x07\x00\x00\x00\x01\x01\x00\x00\x00").cursor  # type: ignore[union-attr]
    builders = [
        (codec.build_query("SELECT 1"), b"\x03SELECT 1"),
        (codec.build_stmt_prepare(b"SELECT ?"), b"\x16SELECT ?"),
        (codec.build_init_db("wardgate_test"), b"\x02wardgate_test"),
        (codec.build_ping(), b"\x0e"),
        (codec.build_quit(), b"\x01"),
        (codec.build_reset_connection(), b"\x1f"),
        (codec.build_stmt_close(7), b"\x19\x07\x00\x00\x00"),
        (codec.build_stmt_reset(7), b"\x1a\x07\x00\x00\x00"),
        (codec.build_stmt_fetch(7, 100), b"\x1c\x07\x00\x00\x00\x64\x00\x00\x00"),
        (codec.build_stmt_send_long_data(7, 2, b"chunk"), b"\x18\x07\x00\x00\x00\x02\x00chunk"),
    ]
    for built, expected in builders:
        assert built == expected
    assert not codec.expects_response(codec.COM_STMT_CLOSE) and codec.expects_response(codec.COM_PING)


def test_malformed_commands() -> None:
    for payload, words in [
        (b"", "empty"),
        (b"\x0ex", "no argument"),
        (b"\x19\x07\x00", "4-byte statement id"),
        (b"\x1c\x07\x00\x00\x00", "row count"),
        (b"\x18\x07\x00\x00", "truncated"),
        (b"\x1b\x00", "2-byte option"),
        (b"\x0c\x01", "4-byte connection id"),
        (b"\x04users", "NUL"),
        (b"\x02\xff\xfe", "UTF-8"),
        (b"\x17\x07\x00", "truncated"),
        (b"\x11root", "NUL"),
    ]:
        assert words in violation(codec.parse_command, payload).message, payload


def test_query_attributes_are_parsed_when_negotiated() -> None:
    # MySQL's documented example: one attribute "a" = "1" (a MYSQL_TYPE_STRING), then the query
    payload = bytes.fromhex(
        "03010100 01fe0001 61013173 656c6563 7420404076657273696f6e5f636f6d6d656e74206c696d69742031".replace(
            " ", ""
        )
    )
    caps = CAPS_41 | codec.CLIENT_QUERY_ATTRIBUTES
    assert codec.parse_command(payload, caps) == codec.Query(
        b"select @@version_comment limit 1",
        (codec.Parameter(codec.MYSQL_TYPE_STRING, False, "1", "a"),),
    )
    assert codec.parse_command(b"\x03\x00\x01SELECT 1", caps) == codec.Query(b"SELECT 1")
    assert codec.parse_command(payload) == codec.Query(payload[1:])  # not negotiated: all SQL
    assert "one set" in violation(codec.parse_command, b"\x03\x00\x02SELECT 1", caps).message
    assert "bind_flag" in violation(codec.parse_command, b"\x03\x01\x01\x00\x00", caps).message
    null_attribute = b"\x03\x01\x01\x01\x01\x06\x00\x01nSELECT 1"
    assert codec.parse_command(null_attribute, caps) == codec.Query(
        b"SELECT 1", (codec.Parameter(codec.MYSQL_TYPE_NULL, False, None, "n"),)
    )


# --------------------------------------------------------------------------------------------------
# Binary values and COM_STMT_EXECUTE


BINARY_VALUES: list[tuple[int, bool, codec.Value, bytes]] = [
    (codec.MYSQL_TYPE_TINY, False, -1, b"\xff"),
    (codec.MYSQL_TYPE_TINY, True, 255, b"\xff"),
    (codec.MYSQL_TYPE_SHORT, False, -2, b"\xfe\xff"),
    (codec.MYSQL_TYPE_YEAR, False, 2024, b"\xe8\x07"),
    (codec.MYSQL_TYPE_LONG, False, -3, b"\xfd\xff\xff\xff"),
    (codec.MYSQL_TYPE_INT24, True, 0xFFFFFF, b"\xff\xff\xff\x00"),
    (codec.MYSQL_TYPE_LONGLONG, True, 2**64 - 1, b"\xff" * 8),
    (codec.MYSQL_TYPE_LONGLONG, False, 4111111111111111, (4111111111111111).to_bytes(8, "little")),
    (codec.MYSQL_TYPE_FLOAT, False, 1.5, b"\x00\x00\xc0\x3f"),
    (codec.MYSQL_TYPE_DOUBLE, False, -0.25, b"\x00\x00\x00\x00\x00\x00\xd0\xbf"),
    (codec.MYSQL_TYPE_NEWDECIMAL, False, "-12.50", b"-12.50"),
    (codec.MYSQL_TYPE_VAR_STRING, False, "héllo", "héllo".encode()),
    (codec.MYSQL_TYPE_STRING, False, b"\xff\xfe", b"\xff\xfe"),  # not UTF-8: bytes
    (codec.MYSQL_TYPE_BLOB, False, b"blob", b"blob"),
    (codec.MYSQL_TYPE_JSON, False, '{"a": 1}', b'{"a": 1}'),
    (codec.MYSQL_TYPE_BIT, True, b"\x05", b"\x05"),
    (codec.MYSQL_TYPE_DATE, False, datetime.date(2024, 2, 29), b"\xe8\x07\x02\x1d"),
    (codec.MYSQL_TYPE_DATE, False, "0000-00-00", b""),
    (
        codec.MYSQL_TYPE_DATETIME,
        False,
        datetime.datetime(2024, 2, 29, 13, 5, 9),
        b"\xe8\x07\x02\x1d\x0d\x05\x09",
    ),
    (
        codec.MYSQL_TYPE_TIMESTAMP,
        False,
        datetime.datetime(2024, 2, 29, 13, 5, 9, 120),
        b"\xe8\x07\x02\x1d\x0d\x05\x09\x78\x00\x00\x00",
    ),
    (codec.MYSQL_TYPE_DATETIME, False, datetime.datetime(2024, 1, 2), b"\xe8\x07\x01\x02"),
    (codec.MYSQL_TYPE_DATETIME, False, "2024-00-00 10:00:00", b"\xe8\x07\x00\x00\x0a\x00\x00"),
    (codec.MYSQL_TYPE_TIME, False, datetime.timedelta(0), b""),
    (
        codec.MYSQL_TYPE_TIME,
        False,
        -datetime.timedelta(days=1, hours=2, seconds=3),
        b"\x01\x01\x00\x00\x00\x02\x00\x03",
    ),
    (
        codec.MYSQL_TYPE_TIME,
        False,
        datetime.timedelta(hours=838, minutes=59, seconds=59, microseconds=5),
        b"\x00\x22\x00\x00\x00\x16\x3b\x3b\x05\x00\x00\x00",
    ),
]


@pytest.mark.parametrize(("field_type", "unsigned", "value", "raw"), BINARY_VALUES)
def test_binary_values_are_byte_exact(
    field_type: int, unsigned: bool, value: codec.Value, raw: bytes
) -> None:
    assert codec.encode_binary_value(field_type, unsigned, value) == raw
    assert codec.decode_binary_value(field_type, unsigned, raw) == value
    wire = codec.write_binary_value(field_type, raw)
    assert codec.read_binary_value(wire + b"next", 0, field_type) == (raw, len(wire))
    for end in range(len(wire)):  # every proper prefix is refused
        violation(codec.read_binary_value, wire[:end], 0, field_type)


def test_dates_python_cannot_hold_keep_mysql_text() -> None:
    # 2**32 - 1 microseconds (found by fuzz/mysql_codec.py: an OverflowError escaped), month 13
    raw = b"\xe8\x07\x01\x02\x03\x04\x05\xff\xff\xff\xff"
    assert (
        codec.decode_binary_value(codec.MYSQL_TYPE_DATETIME, False, raw) == "2024-01-02 03:04:05.4294967295"
    )
    assert (
        codec.encode_binary_value(codec.MYSQL_TYPE_DATETIME, False, "2024-01-02 03:04:05.4294967295") == raw
    )
    assert codec.decode_binary_value(codec.MYSQL_TYPE_DATE, False, b"\xe8\x07\x0d\x01") == "2024-13-01"
    with pytest.raises(ValueError):
        codec.encode_binary_value(codec.MYSQL_TYPE_DATETIME, False, "99999-01-01")
    params = [codec.Parameter(codec.MYSQL_TYPE_DATETIME, False, "2024-01-02 03:04:05.4294967295")]
    assert codec.parse_stmt_execute(codec.build_stmt_execute(1, params), 1).params == tuple(params)


def test_binary_value_refusals() -> None:
    assert (
        "invalid length 5"
        in violation(codec.read_binary_value, b"\x05abcde", 0, codec.MYSQL_TYPE_DATE).message
    )
    assert "unsupported" in violation(codec.read_binary_value, b"\x00", 0, 99).message
    assert "missing" in violation(codec.read_binary_value, b"", 0, codec.MYSQL_TYPE_TIME).message
    assert (
        "sign"
        in violation(codec.decode_binary_value, codec.MYSQL_TYPE_TIME, False, b"\x02" + bytes(7)).message
    )
    assert (
        "ASCII" in violation(codec.decode_binary_value, codec.MYSQL_TYPE_NEWDECIMAL, False, b"\xff").message
    )
    wrong: list[tuple[int, codec.Value]] = [
        (codec.MYSQL_TYPE_TINY, 256),
        (codec.MYSQL_TYPE_TINY, "1"),
        (codec.MYSQL_TYPE_FLOAT, 1e300),
        (codec.MYSQL_TYPE_DOUBLE, "x"),
        (codec.MYSQL_TYPE_BLOB, 1),
        (codec.MYSQL_TYPE_TIME, datetime.date(2024, 1, 1)),
        (codec.MYSQL_TYPE_DATE, "yesterday"),
        (codec.MYSQL_TYPE_NULL, None),
        (99, 1),
    ]
    for field_type, value in wrong:
        with pytest.raises(ValueError):
            codec.encode_binary_value(field_type, False, value)
    with pytest.raises(ValueError):
        codec.write_binary_value(codec.MYSQL_TYPE_LONG, b"\x00")
    with pytest.raises(ValueError):
        codec.write_binary_value(codec.MYSQL_TYPE_DATE, b"\x00")


@given(
    st.one_of(
        st.tuples(st.sampled_from([codec.MYSQL_TYPE_LONGLONG]), st.integers(-(2**63), 2**63 - 1)),
        st.tuples(st.sampled_from([codec.MYSQL_TYPE_DOUBLE]), st.floats(allow_nan=False)),
        st.tuples(
            st.sampled_from([codec.MYSQL_TYPE_VAR_STRING, codec.MYSQL_TYPE_BLOB]), st.text(max_size=300)
        ),
        st.tuples(st.sampled_from([codec.MYSQL_TYPE_DATETIME]), st.datetimes()),
        st.tuples(st.sampled_from([codec.MYSQL_TYPE_DATE]), st.dates()),
        st.tuples(
            st.sampled_from([codec.MYSQL_TYPE_TIME]),
            st.timedeltas(min_value=-datetime.timedelta(days=34), max_value=datetime.timedelta(days=34)),
        ),
        st.tuples(st.just(codec.MYSQL_TYPE_NULL), st.none()),
    )
)
@settings(max_examples=300, deadline=None)
def test_binary_values_round_trip(case: tuple[int, Any]) -> None:
    field_type, value = case
    if value is None:
        return
    raw = codec.encode_binary_value(field_type, False, value)
    decoded = codec.decode_binary_value(field_type, False, raw)
    expected = value.encode() if field_type == codec.MYSQL_TYPE_BLOB else value
    assert decoded == expected


EXECUTE_PARAMS = (
    codec.Parameter(codec.MYSQL_TYPE_LONGLONG, False, -5),
    codec.Parameter(codec.MYSQL_TYPE_VAR_STRING, False, None),
    codec.Parameter(codec.MYSQL_TYPE_VAR_STRING, False, "abc"),
    codec.Parameter(codec.MYSQL_TYPE_TINY, True, 200),
    codec.Parameter(codec.MYSQL_TYPE_DATETIME, False, datetime.datetime(2024, 5, 6, 7, 8, 9)),
    codec.Parameter(codec.MYSQL_TYPE_DOUBLE, False, 2.5),
    codec.Parameter(codec.MYSQL_TYPE_NEWDECIMAL, False, "1.10"),
    codec.Parameter(codec.MYSQL_TYPE_BLOB, False, b"\x00\xff"),
    codec.Parameter(codec.MYSQL_TYPE_TIME, False, datetime.timedelta(hours=1)),
)


def test_stmt_execute_is_byte_exact() -> None:
    params = EXECUTE_PARAMS[:3]
    wire = codec.build_stmt_execute(9, params)
    assert wire == (
        b"\x17\x09\x00\x00\x00\x00\x01\x00\x00\x00"  # statement 9, no cursor, 1 iteration
        b"\x02"  # NULL bitmap: the second parameter
        b"\x01"  # new types bound
        b"\x08\x00\xfd\x00\xfd\x00"
        b"\xfb\xff\xff\xff\xff\xff\xff\xff"
        b"\x03abc"
    )
    request = codec.parse_stmt_execute(wire, 3)
    assert request == codec.ExecuteRequest(9, 0, 1, params, b"\x02", True)
    assert request.types == ((8, False), (253, False), (253, False))
    again = codec.build_stmt_execute(9, params, send_types=False, flags=codec.CURSOR_TYPE_READ_ONLY)
    assert again == wire[:5] + b"\x01" + wire[6:11] + b"\x00" + wire[18:]
    reread = codec.parse_stmt_execute(again, 3, request.types)
    assert reread.params == params and not reread.types_sent and reread.cursor


def test_stmt_execute_round_trips_every_type() -> None:
    wire = codec.build_stmt_execute(1, EXECUTE_PARAMS)
    request = codec.parse_stmt_execute(wire, len(EXECUTE_PARAMS))
    assert request.params == EXECUTE_PARAMS
    assert codec.build_stmt_execute(1, request.params) == wire
    assert codec.parse_stmt_execute(b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00", 0).params == ()


def test_stmt_execute_with_long_data() -> None:
    params = (
        codec.Parameter(codec.MYSQL_TYPE_LONG, False, 1),
        codec.Parameter(codec.MYSQL_TYPE_BLOB, False, codec.LONG_DATA),
    )
    wire = codec.build_stmt_execute(3, params)
    assert wire.endswith(b"\x03\x00\xfc\x00\x01\x00\x00\x00")  # the blob's value is not in the packet
    request = codec.parse_stmt_execute(wire, 2, long_data={1})
    assert request.params == params and request.params[1].long_data
    violation(codec.parse_stmt_execute, wire, 2)  # without knowing: the blob's value is missing


def test_stmt_execute_with_query_attributes() -> None:
    caps = CAPS_41 | codec.CLIENT_QUERY_ATTRIBUTES
    # one positional parameter and one named attribute
    wire = (
        b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00"
        b"\x02"  # parameter_count
        b"\x00\x01"  # NULL bitmap, new types
        b"\x03\x00\x00"  # LONG, no name
        b"\xfe\x00\x02id"  # STRING named "id"
        b"\x07\x00\x00\x00"
        b"\x02ab"
    )
    request = codec.parse_stmt_execute(wire, 1, capabilities=caps)
    assert request.params == (
        codec.Parameter(codec.MYSQL_TYPE_LONG, False, 7, ""),
        codec.Parameter(codec.MYSQL_TYPE_STRING, False, "ab", "id"),
    )
    only_attributes = b"\x17\x01\x00\x00\x00\x08\x01\x00\x00\x00\x00"
    assert codec.parse_stmt_execute(only_attributes, 0, capabilities=caps).params == ()
    assert (
        "0 parameters"
        in violation(
            codec.parse_stmt_execute, b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00", 1, None, (), caps
        ).message
    )


def test_malformed_stmt_execute() -> None:
    good = codec.build_stmt_execute(1, EXECUTE_PARAMS[:1])
    for payload, count, words in [
        (good[:9], 1, "truncated"),
        (good[:10], 1, "NULL bitmap"),
        (good[:11], 1, "new_params_bind_flag"),
        (good[:11] + b"\x02", 1, "invalid new_params_bind_flag 2"),
        (good[:11] + b"\x00", 1, "none were sent before"),
        (good[:12] + b"\x63\x00", 1, "unsupported parameter type 99"),
        (good[:12] + b"\x09\x00", 1, "unsupported parameter type 9"),  # INT24: servers read it as text
        (good[:12] + b"\x0d\x00", 1, "unsupported parameter type 13"),  # YEAR: the same
        (good[:12] + b"\x06\x00", 1, "type NULL that is not NULL"),
        (good[:12] + b"\x08\x01", 1, "flags 0x01"),
        (good[:-1], 1, "truncated"),
        (good + b"x", 1, "unexpected bytes"),
        (good, 300, "more parameters than bytes"),
    ]:
        assert words in violation(codec.parse_stmt_execute, payload, count).message, words
    assert (
        "previous"
        not in violation(codec.parse_stmt_execute, good[:11] + b"\x00", 1, [(8, False), (8, False)]).message
    )


# --------------------------------------------------------------------------------------------------
# Column definitions and rows


def test_column_definition_is_byte_exact() -> None:
    definition = codec.column("card", codec.MYSQL_TYPE_VAR_STRING, table="t", schema="s", length=80, flags=1)
    assert definition.payload == (
        b"\x03def\x01s\x01t\x01t\x04card\x04card\x0c\x2d\x00\x50\x00\x00\x00\xfd\x01\x00\x00\x00\x00"
    )
    assert codec.parse_column_definition(definition.payload) == definition
    assert definition.name_text == "card" and not definition.unsigned
    with_default = codec.parse_column_definition(definition.payload + b"\x01d", field_list=True)
    assert with_default.default == b"d"
    assert codec.parse_column_definition(definition.payload + b"\xfb", field_list=True).default is None
    assert codec.build_column_definition(with_default) == definition.payload + b"\x01d"
    every_truncation(definition.payload, codec.parse_column_definition)
    assert (
        "unexpected bytes" in violation(codec.parse_column_definition, definition.payload + b"\x01d").message
    )
    bad_fixed = definition.payload.replace(b"\x0c\x2d", b"\x0d\x2d")
    assert "13 bytes" in violation(codec.parse_column_definition, bad_fixed).message


def test_kept_column_definitions_are_the_parse() -> None:
    """``column_definition`` keeps definitions by their bytes: the same object as a fresh parse
    (every field and the payload as received), nothing kept of a malformed one, and the keep is
    bounded."""
    definitions = [
        codec.column(f"c{i}", kind, table=f"t{i % 3}", schema="s", length=i, flags=i % 2, decimals=i % 4)
        for i, kind in enumerate(
            (codec.MYSQL_TYPE_LONG, codec.MYSQL_TYPE_VAR_STRING, codec.MYSQL_TYPE_BLOB) * 5
        )
    ]
    for _ in range(2):  # parsed, then kept
        for definition in definitions:
            kept = codec.column_definition(definition.payload)
            parsed = codec.parse_column_definition(definition.payload)
            assert kept == parsed == definition
            assert kept.payload == definition.payload and kept.charset == parsed.charset
    filler = definitions[0].payload[:-2] + b"\x07\x07"  # equal definition, other filler bytes
    assert codec.column_definition(filler).payload == filler
    assert codec.column_definition(definitions[0].payload).payload == definitions[0].payload
    bad_fixed = definitions[0].payload.replace(b"\x0c", b"\x0d", 1)
    for _ in range(2):
        assert "13 bytes" in violation(codec.column_definition, bad_fixed).message
    assert bad_fixed not in codec._DEFINITIONS
    for i in range(codec._DEFINITIONS_KEPT + 10):
        codec.column_definition(codec.column(f"n{i}", codec.MYSQL_TYPE_LONG).payload)
    assert len(codec._DEFINITIONS) <= codec._DEFINITIONS_KEPT


def test_text_rows() -> None:
    values = [b"1", None, b"", b"x" * 300, b"\xfe"]
    wire = codec.build_text_row(values)
    assert wire == b"\x011\xfb\x00\xfc\x2c\x01" + b"x" * 300 + b"\x01\xfe"
    assert codec.parse_text_row(wire, 5) == values
    assert "fewer than 6" in violation(codec.parse_text_row, wire, 6).message
    assert "more than 4" in violation(codec.parse_text_row, wire, 4).message
    assert "past the end" in violation(codec.parse_text_row, b"\x05ab", 1).message
    assert "0xff" in violation(codec.parse_text_row, b"\xff", 1).message


def test_binary_rows() -> None:
    types = [
        codec.MYSQL_TYPE_LONGLONG,
        codec.MYSQL_TYPE_VAR_STRING,
        codec.MYSQL_TYPE_DATE,
        codec.MYSQL_TYPE_TINY,
    ]
    values = [(7).to_bytes(8, "little"), None, b"\xe8\x07\x01\x02", None]
    wire = codec.build_binary_row(values, types)
    assert wire == b"\x00\x28" + (7).to_bytes(8, "little") + b"\x04\xe8\x07\x01\x02"  # NULL: bits 1+2, 3+2
    assert codec.parse_binary_row(wire, types) == values
    every_truncation(wire, lambda p: codec.parse_binary_row(p, types))
    assert "0x00" in violation(codec.parse_binary_row, b"\x01\x00", [1]).message
    assert "unexpected bytes" in violation(codec.parse_binary_row, wire + b"\x00", types).message
    assert "past its last column" in violation(codec.parse_binary_row, b"\x00\x08\x01", [1]).message
    assert "reserved bits" in violation(codec.parse_binary_row, b"\x00\x01\x01", [1]).message
    assert codec.parse_binary_row(b"\x00\x00", []) == []
    with pytest.raises(ValueError):
        codec.build_binary_row([None], [])


# --------------------------------------------------------------------------------------------------
# The response reader, on synthetic answers


def answer(command: int, payloads: list[bytes], capabilities: int, **options: Any) -> list[Any]:
    reader = codec.ResponseReader(command, capabilities, **options)
    events = []
    for payload in payloads:
        assert not reader.done
        events.append(reader.read(payload))
    assert reader.done
    with pytest.raises(ProtocolViolation):
        reader.read(b"\x00\x00\x00\x02\x00\x00\x00")
    return events


def result_set(
    rows: list[bytes], *, more: bool = False, deprecate: bool = False, status: int = 2
) -> list[bytes]:
    status |= codec.SERVER_MORE_RESULTS_EXISTS if more else 0
    columns = [
        codec.column("a", codec.MYSQL_TYPE_VAR_STRING).payload,
        codec.column("b", codec.MYSQL_TYPE_LONG).payload,
    ]
    end = (
        codec.build_ok(Ok(status=status, eof_header=True), CAPS_DEPRECATE)
        if deprecate
        else codec.build_eof(Eof(0, status), CAPS_41)
    )
    metadata_end = [] if deprecate else [codec.build_eof(Eof(0, 2), CAPS_41)]
    return [b"\x02", *columns, *metadata_end, *rows, end]


def test_reader_reads_text_result_sets() -> None:
    rows = [codec.build_text_row([b"x", b"1"]), codec.build_text_row([None, b"2"])]
    payloads = [*result_set(rows, more=True), b"\x00\x01\x00\x02\x00\x00\x00"]
    events = answer(codec.COM_QUERY, payloads, CAPS_41)
    assert [type(e).__name__ for e in events] == [
        "ResultSetStart",
        "Column",
        "Column",
        "ColumnsDone",
        "TextRow",
        "TextRow",
        "ResultSetDone",
        "OkReply",
    ]
    assert events[0] == codec.ResultSetStart(2, b"\x02")
    assert events[1].definition.name == b"a"
    assert events[6].more_results and not events[7].more_results
    assert events[7].ok.affected_rows == 1
    assert [e.payload for e in events] == payloads  # nothing translated: forwarded as received


def test_reader_reads_results_with_deprecate_eof() -> None:
    rows = [codec.build_text_row([b"\xfe", b"1"])]  # a row starting 0xFE, short: still a row here
    payloads = result_set(rows, deprecate=True)
    payloads[3] = b"\x01\xfe\x011"
    events = answer(codec.COM_QUERY, payloads, CAPS_DEPRECATE)
    assert [type(e).__name__ for e in events] == [
        "ResultSetStart",
        "Column",
        "Column",
        "TextRow",
        "ResultSetDone",
    ]
    assert events[-1].ok == Ok(status=2, eof_header=True)


def test_reader_translates_eofs_for_a_deprecate_eof_client() -> None:
    rows = [codec.build_text_row([b"x", b"1"])]
    payloads = result_set(rows, status=2 | codec.SERVER_SESSION_STATE_CHANGED)
    payloads[-1] = codec.build_eof(Eof(3, 2 | codec.SERVER_SESSION_STATE_CHANGED), CAPS_41)
    events = answer(codec.COM_QUERY, payloads, CAPS_41, translate_eof=True)
    assert events[3] == codec.ColumnsDone(Eof(0, 2), None)  # dropped
    assert events[-1].payload == b"\xfe\x00\x00\x02\x00\x03\x00"  # OK, 0xFE header, warnings kept
    assert codec.parse_ok(events[-1].payload, CAPS_DEPRECATE | codec.CLIENT_SESSION_TRACK) == Ok(
        status=2, warnings=3, eof_header=True
    )
    set_option = answer(codec.COM_SET_OPTION, [b"\xfe\x00\x00\x02\x00"], CAPS_41, translate_eof=True)
    assert set_option == [codec.EofReply(2, 0, b"\xfe\x00\x00\x02\x00\x00\x00")]
    with pytest.raises(ValueError):
        codec.ResponseReader(codec.COM_QUERY, CAPS_DEPRECATE, translate_eof=True)


def test_reader_reads_binary_results_and_cursors() -> None:
    types = [codec.MYSQL_TYPE_VAR_STRING, codec.MYSQL_TYPE_LONG]
    rows = [codec.build_binary_row([b"x", b"\x01\x00\x00\x00"], types)]
    events = answer(codec.COM_STMT_EXECUTE, result_set(rows), CAPS_41)
    assert isinstance(events[4], codec.BinaryRow)
    cursor = result_set([])[:-1]
    cursor[-1] = codec.build_eof(Eof(0, 2 | codec.SERVER_STATUS_CURSOR_EXISTS), CAPS_41)
    events = answer(codec.COM_STMT_EXECUTE, cursor, CAPS_41)
    assert (
        isinstance(events[-1], codec.ColumnsDone)
        and events[-1].eof.status & codec.SERVER_STATUS_CURSOR_EXISTS
    )
    translated = answer(codec.COM_STMT_EXECUTE, cursor, CAPS_41, translate_eof=True)
    assert translated[-1].payload == b"\xfe\x00\x00\x42\x00\x00\x00"  # the cursor's end is kept, as an OK
    fetched = answer(
        codec.COM_STMT_FETCH,
        [rows[0], rows[0], codec.build_eof(Eof(0, 2 | codec.SERVER_STATUS_LAST_ROW_SENT), CAPS_41)],
        CAPS_41,
    )
    assert [type(e).__name__ for e in fetched] == ["BinaryRow", "BinaryRow", "ResultSetDone"]
    assert fetched[-1].last_row_sent and not fetched[-1].more_results
    reader = codec.ResponseReader(codec.COM_STMT_EXECUTE, CAPS_41)
    for payload in result_set([])[:-1]:
        reader.read(payload)
    assert reader.in_rows
    assert "among binary rows" in violation(reader.read, b"\x05text").message


def test_reader_reads_prepare_answers() -> None:
    param = codec.column("?", codec.MYSQL_TYPE_VAR_STRING, charset=63).payload
    col = codec.column("a", codec.MYSQL_TYPE_LONG).payload
    head = b"\x00\x05\x00\x00\x00\x01\x00\x02\x00\x00\x00\x00"
    eof = codec.build_eof(Eof(0, 2), CAPS_41)
    events = answer(codec.COM_STMT_PREPARE, [head, param, param, eof, col, eof], CAPS_41)
    assert events[0] == codec.PrepareOk(5, 1, 2, 0, head)
    assert [type(e).__name__ for e in events[1:]] == [
        "Param",
        "Param",
        "ColumnsDone",
        "Column",
        "ColumnsDone",
    ]
    assert events[3].params and not events[5].params
    assert answer(codec.COM_STMT_PREPARE, [head, param, param, col], CAPS_DEPRECATE)[0].param_count == 2
    translated = answer(
        codec.COM_STMT_PREPARE, [head, param, param, eof, col, eof], CAPS_41, translate_eof=True
    )
    assert translated[3].payload is None and translated[5].payload is None
    no_columns = b"\x00\x05\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00"
    assert len(answer(codec.COM_STMT_PREPARE, [no_columns, param, eof], CAPS_41)) == 3
    assert len(answer(codec.COM_STMT_PREPARE, [b"\x00\x05\x00\x00\x00" + bytes(7)], CAPS_41)) == 1
    assert "12" in violation(codec.ResponseReader(codec.COM_STMT_PREPARE, CAPS_41).read, head[:9]).message
    err = answer(codec.COM_STMT_PREPARE, [b"\xff\x28\x04#42000syntax"], CAPS_41)
    assert err[0].err.code == 1064


def test_reader_reads_the_other_answers() -> None:
    ok = b"\x00\x00\x00\x02\x00\x00\x00"
    for command in (codec.COM_PING, codec.COM_INIT_DB, codec.COM_RESET_CONNECTION, codec.COM_STMT_RESET):
        assert answer(command, [ok], CAPS_41) == [codec.OkReply(Ok(status=2), ok)]
    text = b"Uptime: 1  Threads: 1"
    assert answer(codec.COM_STATISTICS, [text], CAPS_41) == [
        codec.StatisticsReply("Uptime: 1  Threads: 1", text)
    ]
    field = codec.column("id", codec.MYSQL_TYPE_LONG).payload + b"\x010"
    events = answer(codec.COM_FIELD_LIST, [field, b"\xfe\x00\x00\x02\x00"], CAPS_41)
    assert events[0].definition.default == b"0" and events[1] == codec.FieldListDone(
        2, 0, b"\xfe\x00\x00\x02\x00"
    )
    assert answer(codec.COM_FIELD_LIST, [b"\xff\x7a\x04#42S02no table"], CAPS_41)[0].err.code == 1146
    infile = answer(codec.COM_QUERY, [b"\xfb/etc/passwd", ok], CAPS_41)
    assert infile[0] == codec.LocalInfileRequest(b"/etc/passwd", b"\xfb/etc/passwd")
    for command in (codec.COM_QUIT, codec.COM_STMT_CLOSE, codec.COM_CHANGE_USER, 0x99):
        with pytest.raises(ValueError):
            codec.ResponseReader(command, CAPS_41)
    for unsupported in (codec.CLIENT_OPTIONAL_RESULTSET_METADATA, codec.MARIADB_CLIENT_CACHE_METADATA):
        with pytest.raises(ValueError):
            codec.ResponseReader(codec.COM_QUERY, CAPS_41 | unsupported)
    with pytest.raises(ValueError):
        codec.ResponseReader(codec.COM_QUERY, codec.CLIENT_LONG_PASSWORD)


@pytest.mark.parametrize(
    ("command", "payloads", "words"),
    [
        (codec.COM_QUERY, [b""], "empty packet"),
        (codec.COM_QUERY, [b"\x00"], "length-encoded integer is missing"),
        (codec.COM_QUERY, [b"\x00\x00\x00"], "truncated"),
        (codec.COM_QUERY, [b"\x02x"], "column count"),
        (codec.COM_QUERY, [b"\x00"[:0] + b"\xfc\x00"], "truncated"),
        (codec.COM_QUERY, [b"\x02", b"\x03def"], "length-encoded integer is missing"),
        (codec.COM_QUERY, [b"\x01", codec.column("a", 1).payload, b"\x00\x00\x00"], "not an EOF"),
        (codec.COM_QUERY, [b"\xfbfile", b"\x02"], "LOCAL INFILE"),
        (codec.COM_QUERY, [b"\x00\x00"], "length-encoded integer is missing"),
        (codec.COM_STMT_EXECUTE, [b"\xfbfile"], "prepared statement"),
        (codec.COM_PING, [b"\x01"], "unexpected packet 0x01"),
        (codec.COM_PING, [b"\xfe\x00\x00\x02\x00"], "unexpected packet 0xfe"),
        (codec.COM_STMT_PREPARE, [b"\x02"], "unexpected packet 0x02"),
    ],
)
def test_reader_refuses_what_is_out_of_place(command: int, payloads: list[bytes], words: str) -> None:
    reader = codec.ResponseReader(command, CAPS_41)
    with pytest.raises(ProtocolViolation) as caught:
        for payload in payloads:
            reader.read(payload)
    assert words in caught.value.message
    assert codec.ResponseReader(codec.COM_QUERY, CAPS_41).read(b"\x00" * 0 + b"\x01") == codec.ResultSetStart(
        1, b"\x01"
    )
    zero_columns = codec.ResponseReader(codec.COM_QUERY, CAPS_41)
    assert "0 columns" in violation(zero_columns.read, b"\xfc\x00\x00").message


# --------------------------------------------------------------------------------------------------
# The real server


class Client:
    """A blocking MySQL client built only on the codec (and auth.py), for the real-server checks."""

    CAPABILITIES = (
        codec.CLIENT_LONG_PASSWORD
        | codec.CLIENT_LONG_FLAG
        | codec.CLIENT_PROTOCOL_41
        | codec.CLIENT_TRANSACTIONS
        | codec.CLIENT_SECURE_CONNECTION
        | codec.CLIENT_MULTI_STATEMENTS
        | codec.CLIENT_MULTI_RESULTS
        | codec.CLIENT_PS_MULTI_RESULTS
        | codec.CLIENT_PLUGIN_AUTH
        | codec.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | codec.CLIENT_CONNECT_WITH_DB
        | codec.CLIENT_CONNECT_ATTRS
        | codec.CLIENT_SESSION_TRACK
    )

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = PacketReader(expected_sequence=0)
        self.capabilities = 0
        self.seq = 0

    def read(self) -> bytes:
        while (packet := self.reader.next()) is None:
            data = self.sock.recv(1 << 16)
            assert data, "the server closed the connection"
            self.reader.feed(data)
        self.seq = codec.next_sequence(packet[0], len(packet[1]))
        return packet[1]

    def write(self, payload: bytes) -> None:
        self.sock.sendall(codec.frame(payload, self.seq))
        self.seq = codec.next_sequence(self.seq, len(payload))
        self.reader.expected_sequence = self.seq

    def login(
        self, user: str, password: bytes, *, plugin: str = "", deprecate_eof: bool = False
    ) -> Handshake | Err:
        greeting = codec.parse_handshake(self.read())
        wanted = self.CAPABILITIES | (codec.CLIENT_DEPRECATE_EOF if deprecate_eof else 0)
        self.capabilities = wanted & greeting.capabilities
        plugin = plugin or greeting.auth_plugin_name
        first = (
            auth.native_password_scramble(password, greeting.auth_plugin_data)
            if plugin == codec.NATIVE_PASSWORD
            else b"not-a-scramble"
        )
        response = HandshakeResponse(
            self.capabilities,
            1 << 24,
            45,
            user,
            first,
            MY_DATABASE,
            plugin,
            (("_client_name", "wardgate-test"),),
        )
        self.write(codec.build_handshake_response(response))
        while True:
            answer = codec.parse_auth_packet(self.read(), self.capabilities)
            if isinstance(answer, Ok):
                return greeting
            if isinstance(answer, Err):
                return answer
            assert isinstance(answer, AuthSwitchRequest), answer
            assert answer.plugin == codec.NATIVE_PASSWORD
            self.write(auth.native_password_scramble(password, auth.switch_nonce(answer.data)))

    def command(self, payload: bytes) -> None:
        self.seq = 0
        self.reader.expected_sequence = 0
        self.write(payload)

    def run(self, payload: bytes, **options: Any) -> list[codec.Event]:
        """Send a command and read its whole answer as events."""
        reader = codec.ResponseReader(payload[0], self.capabilities, **options)
        self.command(payload)
        events: list[codec.Event] = []
        while not reader.done:
            events.append(reader.read(self.read()))
        return events

    def prepare(self, sql: str) -> tuple[codec.PrepareOk, list[codec.ColumnDefinition]]:
        events = self.run(codec.build_stmt_prepare(sql))
        head = events[0]
        assert isinstance(head, codec.PrepareOk), events
        return head, [e.definition for e in events if isinstance(e, codec.Column)]


@pytest.fixture
def server() -> Iterator[Client]:
    with socket.create_connection((MY_HOST, MY_PORT), timeout=10) as sock:
        yield Client(sock)


def test_real_greeting_round_trips(server: Client) -> None:
    payload = server.read()
    greeting = codec.parse_handshake(payload)
    assert codec.build_handshake(greeting) == payload
    assert len(greeting.auth_plugin_data) == 20
    assert greeting.capabilities & codec.CLIENT_DEPRECATE_EOF


@pytest.mark.parametrize("deprecate_eof", [False, True])
def test_real_native_password_login(server: Client, deprecate_eof: bool) -> None:
    assert isinstance(server.login(MY_USER, MY_PASSWORD.encode(), deprecate_eof=deprecate_eof), Handshake)
    server.command(b"\x0e")  # COM_PING
    assert codec.parse_ok(server.read(), server.capabilities).status & codec.SERVER_STATUS_AUTOCOMMIT


def test_real_login_through_an_auth_switch(server: Client) -> None:
    # asking for caching_sha2_password, which MariaDB lacks: it switches us to mysql_native_password
    greeting = server.login(MY_USER, MY_PASSWORD.encode(), plugin=codec.CACHING_SHA2_PASSWORD)
    assert isinstance(greeting, Handshake)


def test_real_wrong_password_is_an_err_packet(server: Client) -> None:
    refused = server.login(MY_USER, b"wrong")
    assert isinstance(refused, Err)
    assert (refused.code, refused.sqlstate) == (1045, "28000")
    assert "Access denied for user 'wardgate'" in refused.message


def test_pymysql_reaches_the_same_server() -> None:
    # the reference the binary rows are compared with below
    with (
        pymysql.connect(
            host=MY_HOST, port=MY_PORT, user=MY_USER, password=MY_PASSWORD, database=MY_DATABASE
        ) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


RAW: dict[Any, Any] = {
    k: v for k, v in pymysql.converters.encoders.items() if isinstance(k, type)
}  # no decoders: raw text


# the types PyMySQL returns as bytes when their charset is binary (63): strings and blobs
BYTE_STRING_TYPES = frozenset(
    {
        codec.MYSQL_TYPE_BIT,
        codec.MYSQL_TYPE_BLOB,
        codec.MYSQL_TYPE_TINY_BLOB,
        codec.MYSQL_TYPE_MEDIUM_BLOB,
        codec.MYSQL_TYPE_LONG_BLOB,
        codec.MYSQL_TYPE_STRING,
        codec.MYSQL_TYPE_VAR_STRING,
        codec.MYSQL_TYPE_VARCHAR,
        codec.MYSQL_TYPE_GEOMETRY,
    }
)


def kinds(events: Sequence[codec.Event]) -> list[str]:
    return [type(e).__name__ for e in events]


def text_cells(events: list[codec.Event], columns: list[codec.ColumnDefinition]) -> list[tuple[Any, ...]]:
    """The text rows of one result, as PyMySQL shows them without decoders (``conv=RAW``)."""
    rows = []
    for event in events:
        if isinstance(event, codec.TextRow):
            cells = codec.parse_text_row(event.payload, len(columns))
            rows.append(
                tuple(
                    v
                    if v is None or (c.charset == codec.BINARY_CHARSET and c.type in BYTE_STRING_TYPES)
                    else v.decode()
                    for v, c in zip(cells, columns, strict=True)
                )
            )
    return rows


@pytest.fixture
def logged_in(server: Client, request: pytest.FixtureRequest) -> Client:
    deprecate = getattr(request, "param", False)
    assert isinstance(server.login(MY_USER, MY_PASSWORD.encode(), deprecate_eof=deprecate), Handshake)
    return server


@pytest.mark.parametrize("logged_in", [False, True], indirect=True, ids=["eof", "deprecate_eof"])
def test_real_query_results_match_pymysql(logged_in: Client) -> None:
    sql = (
        "SELECT seq, CONCAT('row ', seq, ' é✓') AS label, IF(seq % 2, NULL, seq * 1.5) AS half,"
        " UNHEX('00FF') AS raw, REPEAT('x', 300) AS long_text FROM seq_1_to_40"
    )
    events = logged_in.run(codec.build_query(sql))
    columns = [e.definition for e in events if isinstance(e, codec.Column)]
    deprecate = bool(logged_in.capabilities & codec.CLIENT_DEPRECATE_EOF)
    assert kinds(events) == [
        "ResultSetStart",
        *["Column"] * 5,
        *(["ColumnsDone"] * (not deprecate)),
        *["TextRow"] * 40,
        "ResultSetDone",
    ]
    done = events[-1]
    assert isinstance(done, codec.ResultSetDone) and not done.more_results
    assert (done.ok is not None) == deprecate
    assert [c.name for c in columns] == [b"seq", b"label", b"half", b"raw", b"long_text"]
    with (
        pymysql.connect(
            host=MY_HOST, port=MY_PORT, user=MY_USER, password=MY_PASSWORD, conv=RAW, database=MY_DATABASE
        ) as reference,
        reference.cursor() as cursor,
    ):
        cursor.execute(sql)
        expected = list(cursor.fetchall())
    assert text_cells(events, columns) == expected


@pytest.mark.parametrize("logged_in", [False, True], indirect=True, ids=["eof", "deprecate_eof"])
def test_real_multi_statements(logged_in: Client) -> None:
    events = logged_in.run(
        codec.build_query("SELECT 1; DO 1; SELECT 'a', 'b' UNION SELECT 'c', NULL; SET @x = 1")
    )
    results = [e for e in events if isinstance(e, codec.ResultSetDone | codec.OkReply)]
    assert [e.more_results for e in results] == [True, True, True, False]
    assert kinds(results) == ["ResultSetDone", "OkReply", "ResultSetDone", "OkReply"]
    payloads = [e.payload for e in events if isinstance(e, codec.TextRow)]
    assert codec.parse_text_row(payloads[0], 1) == [b"1"]
    rows = [codec.parse_text_row(row, 2) for row in payloads[1:]]
    assert rows == [[b"a", b"b"], [b"c", None]]
    failing = logged_in.run(codec.build_query("SELECT 1; SELECT no_such_column; SELECT 3"))
    assert kinds(failing)[-1] == "ErrReply" and kinds(failing).count("ResultSetDone") == 1
    err = failing[-1]
    assert isinstance(err, codec.ErrReply) and (err.err.code, err.err.sqlstate) == (1054, "42S22")
    # the connection goes on, and the sequence ids of the next command start again
    assert kinds(logged_in.run(codec.build_ping())) == ["OkReply"]


def test_real_eof_translation_gives_what_a_deprecate_eof_server_sends(server: Client) -> None:
    sql = "SELECT 1 AS a UNION SELECT 2; SELECT 'x' AS b"
    assert isinstance(server.login(MY_USER, MY_PASSWORD.encode()), Handshake)
    translated = [e.payload for e in server.run(codec.build_query(sql), translate_eof=True)]
    with socket.create_connection((MY_HOST, MY_PORT), timeout=10) as sock:
        native = Client(sock)
        assert isinstance(native.login(MY_USER, MY_PASSWORD.encode(), deprecate_eof=True), Handshake)
        expected = [e.payload for e in native.run(codec.build_query(sql))]
    assert [p for p in translated if p is not None] == expected


@pytest.fixture
def types_table() -> Iterator[str]:
    name = f"codec_types_{os.getpid()}_{os.urandom(3).hex()}"
    with pymysql.connect(
        host=MY_HOST, port=MY_PORT, user=MY_USER, password=MY_PASSWORD, database=MY_DATABASE
    ) as conn:
        with conn.cursor() as cursor:
            cursor.execute(
                f"CREATE TABLE {name} (id INT PRIMARY KEY, tiny TINYINT, small SMALLINT UNSIGNED,"
                " medium MEDIUMINT, big BIGINT UNSIGNED, dec_ DECIMAL(12, 2), f FLOAT, d DOUBLE,"
                " vc VARCHAR(40), vb VARBINARY(8), bl BLOB, tx MEDIUMTEXT, dt DATE, dtm DATETIME(6),"
                " ts TIMESTAMP NULL, tm TIME(3), yr YEAR, bt BIT(8), en ENUM('a', 'b'), st SET('x', 'y'),"
                " js JSON) CHARACTER SET utf8mb4"
            )
        try:
            yield name
        finally:
            with conn.cursor() as cursor:
                cursor.execute(f"DROP TABLE {name}")


ROW_PARAMS: list[tuple[int, bool, codec.Value]] = [
    (codec.MYSQL_TYPE_LONG, False, 1),
    (codec.MYSQL_TYPE_TINY, False, -5),
    (codec.MYSQL_TYPE_SHORT, True, 65535),
    (codec.MYSQL_TYPE_LONG, False, -8388608),
    (codec.MYSQL_TYPE_LONGLONG, True, 2**64 - 1),
    (codec.MYSQL_TYPE_NEWDECIMAL, False, "-1234567890.25"),
    (codec.MYSQL_TYPE_FLOAT, False, 1.5),
    (codec.MYSQL_TYPE_DOUBLE, False, -2.25e100),
    (codec.MYSQL_TYPE_VAR_STRING, False, "héllo ✓"),
    (codec.MYSQL_TYPE_BLOB, False, b"\x00\xff"),
    (codec.MYSQL_TYPE_BLOB, False, b"\x01" * 300),
    (codec.MYSQL_TYPE_VAR_STRING, False, "t" * 70000),
    (codec.MYSQL_TYPE_DATE, False, datetime.date(2024, 2, 29)),
    (codec.MYSQL_TYPE_DATETIME, False, datetime.datetime(2024, 2, 29, 23, 59, 58, 123456)),
    (codec.MYSQL_TYPE_TIMESTAMP, False, datetime.datetime(2021, 3, 4, 5, 6, 7)),
    (codec.MYSQL_TYPE_TIME, False, -datetime.timedelta(hours=30, minutes=1, seconds=2, microseconds=3000)),
    (codec.MYSQL_TYPE_SHORT, False, 2024),
    (codec.MYSQL_TYPE_BLOB, False, b"\x05"),
    (codec.MYSQL_TYPE_VAR_STRING, False, "b"),
    (codec.MYSQL_TYPE_VAR_STRING, False, "x,y"),
    (codec.MYSQL_TYPE_VAR_STRING, False, '{"card": "4111 1111 1111 1111"}'),
]


def binary_rows_as_python(
    events: list[codec.Event], columns: list[codec.ColumnDefinition]
) -> list[tuple[Any, ...]]:
    """Binary rows decoded by the codec, text in a text charset as ``str`` (as PyMySQL gives it)."""
    rows = []
    for event in events:
        if isinstance(event, codec.BinaryRow):
            cells = codec.parse_binary_row(event.payload, [c.type for c in columns])
            values = []
            for raw, c in zip(cells, columns, strict=True):
                value = None if raw is None else codec.decode_binary_value(c.type, c.unsigned, raw)
                if isinstance(value, bytes) and c.charset != codec.BINARY_CHARSET:
                    value = value.decode()
                values.append(value)
            rows.append(tuple(values))
    return rows


@pytest.mark.parametrize("logged_in", [False, True], indirect=True, ids=["eof", "deprecate_eof"])
def test_real_prepared_statements_match_pymysql(logged_in: Client, types_table: str) -> None:
    logged_in.run(codec.build_init_db(MY_DATABASE))
    placeholders = ", ".join("?" * len(ROW_PARAMS))
    head, _ = logged_in.prepare(f"INSERT INTO {types_table} VALUES ({placeholders})")
    assert head.param_count == len(ROW_PARAMS) and head.column_count == 0
    params = [codec.Parameter(t, u, v) for t, u, v in ROW_PARAMS]
    inserted = logged_in.run(codec.build_stmt_execute(head.statement_id, params))
    assert isinstance(inserted[0], codec.OkReply) and inserted[0].ok.affected_rows == 1, inserted
    nulls = [codec.Parameter(codec.MYSQL_TYPE_LONG, False, 2)] + [
        codec.Parameter(t, u, None) for t, u, _ in ROW_PARAMS[1:]
    ]
    again = logged_in.run(codec.build_stmt_execute(head.statement_id, nulls, send_types=False))
    assert isinstance(again[0], codec.OkReply), again
    logged_in.command(codec.build_stmt_close(head.statement_id))  # answered by nothing
    assert kinds(logged_in.run(codec.build_ping())) == ["OkReply"]

    select, columns = logged_in.prepare(f"SELECT * FROM {types_table} WHERE id >= ? ORDER BY id")
    assert select.param_count == 1 and len(columns) == len(ROW_PARAMS)
    events = logged_in.run(
        codec.build_stmt_execute(select.statement_id, [codec.Parameter(codec.MYSQL_TYPE_LONGLONG, False, 0)])
    )
    result_columns = [e.definition for e in events if isinstance(e, codec.Column)]
    assert kinds(events).count("BinaryRow") == 2
    mine = binary_rows_as_python(events, result_columns)
    with (
        pymysql.connect(
            host=MY_HOST, port=MY_PORT, user=MY_USER, password=MY_PASSWORD, database=MY_DATABASE
        ) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute(f"SELECT * FROM {types_table} ORDER BY id")
        expected = list(cursor.fetchall())
    normalised = [
        tuple(decimal.Decimal(v) if isinstance(v, str) and i == 5 else v for i, v in enumerate(row))
        for row in mine
    ]
    assert normalised == expected
    assert mine[0] == tuple(v for _, _, v in ROW_PARAMS)  # what was bound comes back, value for value

    # a cursor: the execute answers with the columns only, the rows come with COM_STMT_FETCH
    opened = logged_in.run(
        codec.build_stmt_execute(
            select.statement_id,
            [codec.Parameter(codec.MYSQL_TYPE_LONGLONG, False, 0)],
            flags=codec.CURSOR_TYPE_READ_ONLY,
        )
    )
    assert "BinaryRow" not in kinds(opened)
    end = opened[-1]
    assert isinstance(end, codec.ColumnsDone | codec.ResultSetDone)
    status = end.eof.status if isinstance(end, codec.ColumnsDone) else end.status
    assert status & codec.SERVER_STATUS_CURSOR_EXISTS
    first = logged_in.run(codec.build_stmt_fetch(select.statement_id, 1))
    assert kinds(first) == ["BinaryRow", "ResultSetDone"]
    assert binary_rows_as_python(first, result_columns) == mine[:1]
    rest = logged_in.run(codec.build_stmt_fetch(select.statement_id, 10))
    assert binary_rows_as_python(rest, result_columns) == mine[1:]
    assert isinstance(rest[-1], codec.ResultSetDone) and rest[-1].last_row_sent
    logged_in.command(codec.build_stmt_close(select.statement_id))  # no answer
    assert kinds(logged_in.run(codec.build_stmt_reset(select.statement_id))) == [
        "ErrReply"
    ]  # closed: unknown


def test_real_long_data_and_the_other_commands(logged_in: Client, types_table: str) -> None:
    logged_in.run(codec.build_init_db(MY_DATABASE))
    head, _ = logged_in.prepare(f"INSERT INTO {types_table} (id, bl) VALUES (?, ?)")
    logged_in.command(codec.build_stmt_send_long_data(head.statement_id, 1, b"part one, "))
    logged_in.command(codec.build_stmt_send_long_data(head.statement_id, 1, b"part two"))
    params = [
        codec.Parameter(codec.MYSQL_TYPE_LONG, False, 9),
        codec.Parameter(codec.MYSQL_TYPE_BLOB, False, codec.LONG_DATA),
    ]
    payload = codec.build_stmt_execute(head.statement_id, params)
    assert codec.parse_stmt_execute(payload, 2, long_data={1}).params == tuple(params)
    assert isinstance(logged_in.run(payload)[0], codec.OkReply)
    rows = logged_in.run(codec.build_query(f"SELECT bl FROM {types_table} WHERE id = 9"))
    assert [codec.parse_text_row(e.payload, 1) for e in rows if isinstance(e, codec.TextRow)] == [
        [b"part one, part two"]
    ]

    fields = logged_in.run(bytes((codec.COM_FIELD_LIST,)) + types_table.encode() + b"\x00")
    assert kinds(fields) == ["Column"] * len(ROW_PARAMS) + ["FieldListDone"]
    assert fields[0].definition.name == b"id"  # type: ignore[union-attr]
    stats = logged_in.run(b"\x09")
    assert isinstance(stats[0], codec.StatisticsReply) and stats[0].text.startswith("Uptime:")
    assert kinds(logged_in.run(b"\x1b\x01\x00")) == ["EofReply"]  # multi-statements off
    assert kinds(logged_in.run(codec.build_query("SELECT 1; SELECT 2"))) == ["ErrReply"]
    assert kinds(logged_in.run(b"\x1b\x00\x00")) == ["EofReply"]
    assert kinds(logged_in.run(codec.build_reset_connection())) == ["OkReply"]
    unknown_db = logged_in.run(codec.build_init_db("no_such_database"))
    assert isinstance(unknown_db[0], codec.ErrReply) and unknown_db[0].err.code in (1044, 1049)


def test_real_session_tracking_oks_round_trip(logged_in: Client) -> None:
    assert logged_in.capabilities & codec.CLIENT_SESSION_TRACK
    logged_in.run(codec.build_query("SET SESSION session_track_system_variables = 'autocommit,time_zone'"))
    for sql in ("SET time_zone = '+02:00'", f"USE {MY_DATABASE}", "SET autocommit = 0", "SET autocommit = 1"):
        events = logged_in.run(codec.build_query(sql))
        assert isinstance(events[0], codec.OkReply)
        ok = events[0].ok
        if sql.startswith("SET time_zone"):
            assert ok.status & codec.SERVER_SESSION_STATE_CHANGED and ok.session_state
            assert b"+02:00" in ok.session_state
        assert codec.build_ok(ok, logged_in.capabilities) == events[0].payload


def test_real_local_infile_request(server: Client, types_table: str) -> None:
    server.CAPABILITIES |= codec.CLIENT_LOCAL_FILES  # an instance attribute: the class keeps its own
    assert isinstance(server.login(MY_USER, MY_PASSWORD.encode()), Handshake)
    reader = codec.ResponseReader(codec.COM_QUERY, server.capabilities)
    server.command(
        codec.build_query(f"LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE {MY_DATABASE}.{types_table}")
    )
    request = reader.read(server.read())
    assert request == codec.LocalInfileRequest(b"/etc/passwd", b"\xfb/etc/passwd")
    server.write(b"")  # refused: no file (an empty packet), with the next sequence id
    done = reader.read(server.read())
    assert isinstance(done, codec.OkReply) and done.ok.affected_rows == 0 and reader.done
