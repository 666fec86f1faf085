"""The MySQL wire codec (wardgate.tcp.mysql.codec) and the authentication scrambles (tcp.mysql.auth).

Packets are checked byte for byte against the protocol's documented layouts, read back through
:class:`PacketReader` split at every byte boundary, and round-tripped through their parsers; every
kind of malformed input must end in :class:`ProtocolViolation` (with the MySQL error it maps to)
and nothing else. The scrambles are compared with PyMySQL's independent implementation, and a
blocking client built only on this codec logs in to the local MariaDB and runs queries, multi-
statements and prepared statements there, its decoded binary rows compared with PyMySQL's.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Iterator
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
