"""The PostgreSQL wire codec (wardgate.tcp.postgres.codec): framing, payload parsers and builders.

Every builder is read back through :class:`MessageReader` (split at every byte boundary) and the
matching parser; malformed input of every kind must end in :class:`ProtocolViolation` and nothing else;
and one conversation with the local PostgreSQL checks the codec against the real thing.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate.tcp.postgres import codec
from wardgate.tcp.postgres.codec import (
    Bind,
    CancelRequest,
    Column,
    GSSENCRequest,
    MessageReader,
    Parse,
    ProtocolViolation,
    SSLRequest,
    StartupMessage,
)


def read_back(message: bytes, *, startup: bool = False) -> tuple[int, bytes]:
    """Feed ``message`` split at every byte boundary (and byte by byte); it must come back whole."""
    results: set[tuple[int, bytes, bytes]] = set()
    splits = [[message[:i], message[i:]] for i in range(len(message) + 1)]
    splits.append([message[i : i + 1] for i in range(len(message))])
    for pieces in splits:
        pieces = [piece for piece in pieces if piece]
        reader = MessageReader(startup=startup)
        got = None
        for piece in pieces:
            assert got is None  # nothing before the last byte arrived
            reader.feed(piece)
            got = reader.next_raw()
        assert got is not None
        assert reader.next() is None
        assert reader.buffered == 0
        results.add(got)
    assert len(results) == 1
    kind, payload, raw = results.pop()
    assert raw == message
    reader = MessageReader(startup=startup)
    reader.feed(message)
    chunk, spans = reader.take_messages()
    assert chunk == message
    assert spans == [(kind, 0, len(message))]
    return kind, payload


def violation(function: Callable[..., Any], *args: Any) -> ProtocolViolation:
    with pytest.raises(ProtocolViolation) as caught:
        function(*args)
    assert caught.value.message == str(caught.value)
    return caught.value


# --------------------------------------------------------------------------------------------------
# Round trips: builder -> MessageReader -> parser


def test_error_response_round_trip() -> None:
    message = codec.error_response(
        "42501", "permission denied\0for table", severity="FATAL", detail="by policy", hint="ask"
    )
    kind, payload = read_back(message)
    assert kind == codec.ERROR_RESPONSE
    fields = codec.parse_error_fields(payload)
    assert fields == {
        "S": "FATAL",
        "V": "FATAL",
        "C": "42501",
        "M": "permission denied\ufffdfor table",
        "D": "by policy",
        "H": "ask",
    }
    assert codec.error_from_fields(fields) == message
    assert codec.parse_error_fields(read_back(codec.error_response("XX000", "boom"))[1]) == {
        "S": "ERROR",
        "V": "ERROR",
        "C": "XX000",
        "M": "boom",
    }


def test_notice_response_round_trip() -> None:
    kind, payload = read_back(codec.notice_response("masked 2 columns", detail="ssn, email"))
    assert kind == codec.NOTICE_RESPONSE
    assert codec.parse_error_fields(payload) == {
        "S": "NOTICE",
        "V": "NOTICE",
        "C": "00000",
        "M": "masked 2 columns",
        "D": "ssn, email",
    }
    fields = {"S": "WARNING", "M": "é", "P": "12", "\x7f": "future field"}
    kind, payload = read_back(codec.error_from_fields(fields, codec.NOTICE_RESPONSE))
    assert (kind, codec.parse_error_fields(payload)) == (codec.NOTICE_RESPONSE, fields)


def test_error_fields_are_decoded_leniently() -> None:
    assert codec.parse_error_fields(b"SFATAL\0Mfehlgeschlagen f\xfcr\0\0")["M"] == "fehlgeschlagen f\ufffdr"


def test_authentication_round_trips() -> None:
    cases: list[tuple[bytes, tuple[int, bytes]]] = [
        (codec.authentication_ok(), (codec.AUTH_OK, b"")),
        (codec.authentication_cleartext_password(), (codec.AUTH_CLEARTEXT_PASSWORD, b"")),
        (codec.authentication_md5_password(b"salt"), (codec.AUTH_MD5_PASSWORD, b"salt")),
        (codec.authentication_sasl_continue(b"r=abc,s=xyz,i=4096"), (11, b"r=abc,s=xyz,i=4096")),
        (codec.authentication_sasl_final(b"v=signature"), (codec.AUTH_SASL_FINAL, b"v=signature")),
    ]
    for message, expected in cases:
        kind, payload = read_back(message)
        assert kind == codec.AUTHENTICATION
        assert codec.parse_authentication(payload) == expected
    kind, payload = read_back(codec.authentication_sasl(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]))
    code, rest = codec.parse_authentication(payload)
    assert code == codec.AUTH_SASL
    assert codec.parse_sasl_mechanisms(rest) == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]


def test_session_setup_round_trips() -> None:
    kind, payload = read_back(codec.parameter_status("application_name", "psql ✓"))
    assert (kind, codec.parse_parameter_status(payload)) == (
        codec.PARAMETER_STATUS,
        ("application_name", "psql ✓"),
    )
    for secret in (b"\x00\x01\x02\x03", bytes(range(32)), bytes(256)):
        kind, payload = read_back(codec.backend_key_data(4242, secret))
        assert (kind, codec.parse_backend_key_data(payload)) == (codec.BACKEND_KEY_DATA, (4242, secret))
    for status in (b"I", b"T", b"E"):
        kind, payload = read_back(codec.ready_for_query(status))
        assert (kind, codec.parse_ready_for_query(payload)) == (codec.READY_FOR_QUERY, status)
    kind, payload = read_back(codec.negotiate_protocol_version(0, ["_pq_.compression", "_pq_.x"]))
    assert kind == codec.NEGOTIATE_PROTOCOL_VERSION
    assert codec.parse_negotiate_protocol_version(payload) == (0, ["_pq_.compression", "_pq_.x"])
    assert codec.parse_negotiate_protocol_version(read_back(codec.negotiate_protocol_version(2, []))[1]) == (
        2,
        [],
    )


def test_result_round_trips() -> None:
    columns = (
        Column("id", 16384, 1, 23, 4, -1, 0),
        Column("ssn ✓", 16384, 2, 25, -1, -1, 1),
        Column("?column?", 0, 0, 1043, -1, 68, 0),
    )
    kind, payload = read_back(codec.row_description(columns))
    assert (kind, codec.parse_row_description(payload)) == (codec.ROW_DESCRIPTION, columns)
    assert codec.parse_row_description(read_back(codec.row_description([]))[1]) == ()
    for values in ([b"1", None, b"", b"\x00\xff" * 1000], [], [None]):
        kind, payload = read_back(codec.data_row(values))
        assert (kind, codec.parse_data_row(payload)) == (codec.DATA_ROW, values)
    assert codec.data_row((b"a", None)) == codec.data_row([b"a", None])
    kind, payload = read_back(codec.command_complete("INSERT 0 3"))
    assert (kind, codec.parse_command_complete(payload)) == (codec.COMMAND_COMPLETE, "INSERT 0 3")
    kind, payload = read_back(codec.parameter_description([23, 25, 4294967295]))
    assert kind == codec.PARAMETER_DESCRIPTION
    assert codec.parse_parameter_description(payload) == (23, 25, 4294967295)
    assert codec.parse_parameter_description(read_back(codec.parameter_description(()))[1]) == ()
    for builder, expected in [
        (codec.parse_complete, codec.PARSE_COMPLETE),
        (codec.bind_complete, codec.BIND_COMPLETE),
        (codec.close_complete, codec.CLOSE_COMPLETE),
        (codec.no_data, codec.NO_DATA),
        (codec.empty_query_response, codec.EMPTY_QUERY_RESPONSE),
        (codec.portal_suspended, codec.PORTAL_SUSPENDED),
    ]:
        assert read_back(builder()) == (expected, b"")


def test_startup_round_trips() -> None:
    parameters = {"user": "agent ✓", "database": "billing", "application_name": "psql", "options": "-c x=1"}
    kind, payload = read_back(codec.startup_message(parameters), startup=True)
    assert kind == 0
    startup = codec.parse_startup(payload)
    assert startup == StartupMessage(codec.PROTOCOL_3_0, parameters)
    assert isinstance(startup, StartupMessage)
    assert list(startup.parameters) == list(parameters)  # the client's order
    kind, payload = read_back(codec.startup_message({"user": "u"}, codec.PROTOCOL_3_2), startup=True)
    assert codec.parse_startup(payload) == StartupMessage(codec.PROTOCOL_3_2, {"user": "u"})
    assert codec.parse_startup(read_back(codec.ssl_request(), startup=True)[1]) == SSLRequest()
    assert codec.parse_startup(read_back(codec.gssenc_request(), startup=True)[1]) == GSSENCRequest()
    for secret in (b"abcd", bytes(range(256))):
        payload = read_back(codec.cancel_request(77, secret), startup=True)[1]
        assert codec.parse_startup(payload) == CancelRequest(77, secret)


def test_frontend_round_trips() -> None:
    kind, payload = read_back(codec.query("SELECT 'é' AS one; SELECT 2"))
    assert (kind, codec.parse_query(payload)) == (codec.QUERY, "SELECT 'é' AS one; SELECT 2")
    assert codec.parse_query(read_back(codec.query(""))[1]) == ""
    kind, payload = read_back(codec.parse("s1", "SELECT $1::int, $2", (23, 0)))
    assert (kind, codec.parse_parse(payload)) == (codec.PARSE, Parse("s1", "SELECT $1::int, $2", (23, 0)))
    assert codec.parse_parse(read_back(codec.parse("", "SELECT 1"))[1]) == Parse("", "SELECT 1", ())
    for bind in (
        Bind("p1", "s1", (1, 0), (b"\x00\x00\x00\x01", None), (1,)),
        Bind("", "", (), (), ()),
        Bind("", "s", (0,), (b"x", b"", None), (0, 1, 1)),
    ):
        message = codec.bind(
            bind.portal, bind.statement, bind.params, bind.param_formats, bind.result_formats
        )
        kind, payload = read_back(message)
        assert (kind, codec.parse_bind(payload)) == (codec.BIND, bind)
    for target in ("S", "P"):
        assert read_back(codec.describe(target, "s1")) == (codec.FRONTEND_DESCRIBE, target.encode() + b"s1\0")
        assert codec.parse_describe(read_back(codec.describe(target, "s1"))[1]) == (target, "s1")
        assert codec.parse_close(read_back(codec.close(target))[1]) == (target, "")
        assert read_back(codec.close(target))[0] == codec.FRONTEND_CLOSE
    kind, payload = read_back(codec.execute("p1", 100))
    assert (kind, codec.parse_execute(payload)) == (codec.EXECUTE, ("p1", 100))
    assert codec.parse_execute(read_back(codec.execute())[1]) == ("", 0)
    kind, payload = read_back(codec.password_message(b"s3cr\xc3\xa9t\0"))
    assert (kind, codec.parse_password(payload)) == (codec.PASSWORD, "s3crét")
    kind, payload = read_back(codec.sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=nonce"))
    assert (kind, codec.parse_sasl_initial_response(payload)) == (
        codec.PASSWORD,
        ("SCRAM-SHA-256", b"n,,n=,r=nonce"),
    )
    assert codec.parse_sasl_initial_response(read_back(codec.sasl_initial_response("X", None))[1]) == (
        "X",
        None,
    )
    assert read_back(codec.sasl_response(b"c=biws,r=nonce,p=proof")) == (
        codec.PASSWORD,
        b"c=biws,r=nonce,p=proof",
    )
    kind, payload = read_back(codec.copy_fail("client gave up\0"))
    assert (kind, codec.parse_copy_fail(payload)) == (codec.COPY_FAIL, "client gave up\ufffd")
    assert read_back(codec.copy_data(b"1\tx\n")) == (codec.COPY_DATA, b"1\tx\n")
    assert read_back(codec.copy_done()) == (codec.COPY_DONE, b"")
    assert read_back(codec.sync()) == (codec.SYNC, b"")
    assert read_back(codec.flush()) == (codec.FLUSH, b"")
    assert read_back(codec.terminate()) == (codec.TERMINATE, b"")
    assert {codec.QUERY, codec.SYNC, codec.COPY_FAIL} <= codec.FRONTEND_TYPES
    assert codec.DATA_ROW not in codec.FRONTEND_TYPES - {codec.DESCRIBE}


def test_backend_only_parsers() -> None:
    assert codec.parse_copy_response(b"\x00\x00\x02\x00\x00\x00\x01") == (0, (0, 1))
    assert codec.parse_copy_response(b"\x01\x00\x00") == (1, ())
    assert codec.parse_notification_response(b"\x00\x00\x00\x07jobs\0done\0") == (7, "jobs", "done")


def test_builders_refuse_nul_where_it_would_truncate() -> None:
    builds: list[Callable[[], bytes]] = [
        lambda: codec.query("SELECT 1\0; DROP TABLE t"),
        lambda: codec.parse("s\0", "SELECT 1"),
        lambda: codec.startup_message({"user": "a\0b"}),
        lambda: codec.startup_message({"": "x"}),
        lambda: codec.parameter_status("a", "b\0"),
        lambda: codec.command_complete("SELECT\0"),
        lambda: codec.describe("X", "s"),
        lambda: codec.ready_for_query(b"Q"),
        lambda: codec.backend_key_data(1, b"abc"),
        lambda: codec.cancel_request(1, bytes(257)),
        lambda: codec.authentication_md5_password(b"12345"),
        lambda: codec.error_from_fields({"MM": "x"}),
        lambda: codec.error_from_fields({"\0": "x"}),
    ]
    for build in builds:
        with pytest.raises(ValueError):
            build()


# --------------------------------------------------------------------------------------------------
# Malformed payloads


def test_protocol_violation_carries_sqlstate() -> None:
    error = ProtocolViolation("bad")
    assert (error.message, error.sqlstate) == ("bad", "08P01")
    assert ProtocolViolation("x", "0A000").sqlstate == "0A000"


STARTUP_MALFORMED: list[tuple[bytes, str, str]] = [
    (b"", "invalid length of startup packet", "08P01"),
    (b"\x00\x03", "invalid length of startup packet", "08P01"),
    (codec.ssl_request()[4:] + b"x", "SSL/GSS encryption request", "08P01"),
    (codec.gssenc_request()[4:] + b"\0", "SSL/GSS encryption request", "08P01"),
    (codec.cancel_request(1, b"abcd")[4:-1], "invalid length of cancel request", "08P01"),
    (codec.cancel_request(1, bytes(256))[4:] + b"x", "invalid length of cancel request", "08P01"),
    (b"\x00\x02\x00\x00user\0u\0\0", "unsupported frontend protocol 2.0", "0A000"),
    (b"\x00\x04\x00\x00user\0u\0\0", "unsupported frontend protocol 4.0", "0A000"),
    (b"\x00\x03\x00\x00user\0u\0", "expected terminator as last byte", "08P01"),
    (b"\x00\x03\x00\x00user\0u", "not NUL-terminated", "08P01"),
    (b"\x00\x03\x00\x00user", "not NUL-terminated", "08P01"),
    (b"\x00\x03\x00\x00user\0u\0\0\0", "bytes after the terminator", "08P01"),
    (b"\x00\x03\x00\x00user\0\xff\0\0", "not valid UTF-8", "08P01"),
    (b"\x00\x03\x00\x00user\0a\0user\0b\0\0", "'user' given twice", "08P01"),
    (b"\x00\x03\x00\x00database\0d\0\0", "no PostgreSQL user name", "28000"),
    (b"\x00\x03\x00\x00user\0\0\0", "no PostgreSQL user name", "28000"),
    (b"\x00\x03\x00\x00\0", "no PostgreSQL user name", "28000"),
]


@pytest.mark.parametrize(("body", "text", "sqlstate"), STARTUP_MALFORMED)
def test_malformed_startup(body: bytes, text: str, sqlstate: str) -> None:
    error = violation(codec.parse_startup, body)
    assert text in error.message
    assert error.sqlstate == sqlstate


MALFORMED: list[tuple[Callable[[bytes], object], bytes, str]] = [
    (codec.parse_query, b"", "not NUL-terminated"),
    (codec.parse_query, b"SELECT 1", "not NUL-terminated"),
    (codec.parse_query, b"SELECT 1\0; DROP TABLE t\0", "bytes after its string"),
    (codec.parse_query, b"SELECT '\xc3'\0", "not valid UTF-8"),
    (codec.parse_parse, b"s\0SELECT 1\0", "Parse message: truncated"),
    (codec.parse_parse, b"s\0SELECT 1\0\x00\x01", "1 parameter types do not fit"),
    (codec.parse_parse, b"s\0SELECT 1\0\xff\xff", "negative parameter types count"),
    (codec.parse_parse, b"s\0SELECT 1\0\x00\x00\x00", "1 unexpected bytes"),
    (codec.parse_parse, b"s\0SELECT 1", "not NUL-terminated"),
    (codec.parse_bind, b"\0\0\x00\x00\x00\x01\x00\x00\x00\x05ab\x00\x00", "past its end"),
    (codec.parse_bind, b"\0\0\x00\x00\x00\x01\xff\xff\xff\xfe\x00\x00", "parameter length -2"),
    (codec.parse_bind, b"\0\0\x00\x00\x00\x02\x00\x00\x00\x00", "2 parameters do not fit"),
    (
        codec.parse_bind,
        b"\0\0\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00",
        "2 parameter formats but 0 parameters",
    ),
    (codec.parse_bind, b"\0\0\x00\x00\x00\x00", "Bind message: truncated"),
    (codec.parse_bind, b"\0\0\x00\x00\x00\x02\x00\x00\x00\x04abcd", "truncated parameter"),
    (codec.parse_bind, b"\0\0\x00\x00\x00\x00\x00\x01", "1 result formats do not fit"),
    (codec.parse_bind, b"\0\0\x00\x00\x00\x00\x00\x00!", "1 unexpected bytes"),
    (codec.parse_bind, b"\0\0\x80\x00", "negative parameter formats count"),
    (codec.parse_bind, b"\0", "not NUL-terminated"),
    (codec.parse_describe, b"", "subtype missing"),
    (codec.parse_describe, b"Xname\0", "subtype 'X'"),
    (codec.parse_describe, b"Sname", "not NUL-terminated"),
    (codec.parse_close, b"Pname\0\0", "bytes after its string"),
    (codec.parse_execute, b"p\0\x00\x00", "Execute message: truncated"),
    (codec.parse_execute, b"p\0\x00\x00\x00\x00\x00", "1 unexpected bytes"),
    (codec.parse_execute, b"", "not NUL-terminated"),
    (codec.parse_password, b"secret", "not NUL-terminated"),
    (codec.parse_password, b"\xff\0", "not valid UTF-8"),
    (codec.parse_sasl_initial_response, b"SCRAM\0\x00\x00\x00\x05abc", "data length 5"),
    (codec.parse_sasl_initial_response, b"SCRAM\0\xff\xff\xff\xfe", "data length -2"),
    (codec.parse_sasl_initial_response, b"SCRAM\0\xff\xff\xff\xffx", "1 unexpected bytes"),
    (codec.parse_sasl_initial_response, b"SCRAM\0", "truncated"),
    (codec.parse_copy_fail, b"why", "not NUL-terminated"),
    (codec.parse_row_description, b"\x00", "RowDescription message: truncated"),
    (codec.parse_row_description, b"\x00\x01" + bytes(10), "1 fields do not fit"),
    (codec.parse_row_description, b"\x00\x01id\0" + bytes(17), "truncated field"),
    (codec.parse_row_description, b"\x00\x01" + b"x" * 19, "not NUL-terminated"),
    (codec.parse_row_description, b"\x00\x01\xffx\0" + bytes(18), "not valid UTF-8"),
    (codec.parse_row_description, b"\x00\x02a\0" + bytes(18) + b"b\0" + bytes(17), "truncated field"),
    (codec.parse_row_description, b"\x00\x01id\0" + bytes(19), "1 unexpected bytes"),
    (codec.parse_row_description, b"\xff\xff", "negative fields count"),
    (codec.parse_data_row, b"", "DataRow message: truncated"),
    (codec.parse_data_row, b"\x00\x01\x00\x00", "1 columns do not fit"),
    (codec.parse_data_row, b"\xff\xff", "-1 columns do not fit"),
    (codec.parse_data_row, b"\x00\x01\x00\x00\x00\x02a", "column of 2 bytes past its end"),
    (codec.parse_data_row, b"\x00\x01\xff\xff\xff\xfd", "column length -3"),
    (codec.parse_data_row, b"\x00\x02\x00\x00\x00\x04abcd", "truncated column"),
    (codec.parse_data_row, b"\x00\x01\xff\xff\xff\xff!", "1 unexpected bytes"),
    (codec.parse_error_fields, b"", "missing its terminator"),
    (codec.parse_error_fields, b"Mboom\0", "missing its terminator"),
    (codec.parse_error_fields, b"Mboom", "not NUL-terminated"),
    (codec.parse_error_fields, b"Mboom\0\0\0", "bytes after its terminator"),
    (codec.parse_command_complete, b"SELECT 1", "not NUL-terminated"),
    (codec.parse_authentication, b"\x00\x00", "Authentication message: truncated"),
    (codec.parse_authentication, b"\x00\x00\x00\x00x", "1 unexpected bytes"),
    (codec.parse_authentication, b"\x00\x00\x00\x05abc", "MD5 salt is not 4 bytes"),
    (codec.parse_sasl_mechanisms, b"", "missing its terminator"),
    (codec.parse_sasl_mechanisms, b"SCRAM-SHA-256\0", "missing its terminator"),
    (codec.parse_sasl_mechanisms, b"SCRAM-SHA-256", "not NUL-terminated"),
    (codec.parse_sasl_mechanisms, b"\0\0", "bytes after its terminator"),
    (codec.parse_backend_key_data, b"\x00\x00\x00\x01abc", "BackendKeyData message: 7 bytes"),
    (codec.parse_backend_key_data, bytes(4 + 257), "BackendKeyData message: 261 bytes"),
    (codec.parse_parameter_status, b"name\0value", "not NUL-terminated"),
    (codec.parse_parameter_status, b"name\0value\0\0", "1 unexpected bytes"),
    (codec.parse_parameter_description, b"\x00\x01\x00\x00\x00", "1 parameters do not fit"),
    (codec.parse_parameter_description, b"\x00\x00\x00", "1 unexpected bytes"),
    (codec.parse_ready_for_query, b"", "status b''"),
    (codec.parse_ready_for_query, b"X", "status b'X'"),
    (codec.parse_ready_for_query, b"II", "status b'II'"),
    (codec.parse_negotiate_protocol_version, b"\x00\x00\x00\x00", "truncated"),
    (codec.parse_negotiate_protocol_version, b"\x00\x00\x00\x00\x00\x00\x00\x03a\0", "3 options"),
    (codec.parse_negotiate_protocol_version, b"\x00\x00\x00\x00\xff\xff\xff\xff", "-1 options"),
    (codec.parse_negotiate_protocol_version, b"\x00\x00\x00\x00\x00\x00\x00\x01a\0b", "1 unexpected"),
    (codec.parse_copy_response, b"", "CopyResponse message: truncated"),
    (codec.parse_copy_response, b"\x00\x00\x01", "1 column formats do not fit"),
    (codec.parse_notification_response, b"\x00\x00\x00\x01chan\0", "not NUL-terminated"),
    (codec.parse_notification_response, b"\x00\x00", "truncated"),
]


@pytest.mark.parametrize(("parser", "body", "text"), MALFORMED)
def test_malformed_payloads(parser: Callable[[bytes], object], body: bytes, text: str) -> None:
    error = violation(parser, body)
    assert text in error.message, error.message
    assert error.sqlstate == "08P01"


# --------------------------------------------------------------------------------------------------
# Framing: limits, the start-up phase, take_messages


def test_reader_rejects_bad_lengths() -> None:
    reader = MessageReader()
    reader.feed(b"Q\x00\x00\x00\x03")
    assert violation(reader.next).message == "invalid message length 3"
    reader = MessageReader()
    reader.feed(b"Q\xff\xff\xff\xff")
    assert violation(reader.take_messages).message == "invalid message length -1"
    reader = MessageReader(max_message=100)
    reader.feed(b"D\x00\x00\x00\x65")  # the header alone is enough to refuse: nothing is buffered first
    assert violation(reader.next_raw).message == "message of 101 bytes exceeds the limit of 100"
    reader = MessageReader(max_message=100)
    reader.feed(codec.data_row([bytes(90)]))
    assert reader.next() is not None
    reader = MessageReader(startup=True)
    reader.feed(b"\x00\x00\x00\x07abc")
    assert violation(reader.next).message == "invalid length of startup packet: 7"
    reader = MessageReader(startup=True)
    reader.feed(b"\x00\x00\x27\x11")
    assert violation(reader.take_messages).message == "invalid length of startup packet: 10001"
    reader = MessageReader(startup=True)
    reader.feed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a TLS ClientHello (direct SSL)
    assert "invalid length of startup packet" in violation(reader.next).message


def test_startup_phase_then_typed() -> None:
    """SSLRequest, (TLS), StartupMessage untyped; then the session switches to typed messages."""
    reader = MessageReader(startup=True)
    assert not reader.typed
    reader.feed(codec.ssl_request())
    assert reader.next() == (0, codec.ssl_request()[4:])
    assert reader.buffered == 0  # nothing smuggled ahead of the TLS handshake
    startup = codec.startup_message({"user": "u", "database": "d"})
    reader.feed(startup + codec.query("SELECT 1")[:3])
    assert reader.next() == (0, startup[4:])
    reader.expect_typed()
    assert reader.typed
    assert reader.next() is None
    assert reader.buffered == 3
    reader.feed(codec.query("SELECT 1")[3:] + codec.sync())
    assert reader.next() == (codec.QUERY, b"SELECT 1\0")
    assert reader.next() == (codec.SYNC, b"")
    assert reader.next() is None


def test_startup_take_messages() -> None:
    first, second = codec.ssl_request(), codec.startup_message({"user": "u"})
    reader = MessageReader(startup=True)
    reader.feed(first + second + second[:5])
    chunk, spans = reader.take_messages()
    assert chunk == first + second
    assert spans == [(0, 0, 8), (0, 8, 8 + len(second))]
    assert reader.buffered == 5
    assert reader.take_messages() == (b"", [])
    reader.feed(second[5:])
    assert reader.take_messages() == (second, [(0, 0, len(second))])


def test_take_messages_spans_and_tail() -> None:
    messages = [codec.row_description([Column("a", 0, 0, 23, 4, -1, 0)])]
    messages += [codec.data_row([str(i).encode()]) for i in range(100)]
    messages += [codec.command_complete("SELECT 100"), codec.ready_for_query(b"I")]
    stream = b"".join(messages)
    reader = MessageReader()
    reader.feed(stream)
    chunk, spans = reader.take_messages()
    assert chunk is stream  # a fed chunk ending on a message boundary is handed back without a copy
    assert [chunk[start:end] for _, start, end in spans] == messages
    assert [kind for kind, _, _ in spans] == [codec.ROW_DESCRIPTION] + [codec.DATA_ROW] * 100 + [
        codec.COMMAND_COMPLETE,
        codec.READY_FOR_QUERY,
    ]
    assert codec.parse_data_row(chunk[spans[7][1] + 5 : spans[7][2]]) == [b"6"]
    assert reader.take_messages() == (b"", [])
    assert reader.buffered == 0

    for cut in range(len(stream)):  # any split: every message exactly once, in order, tails kept
        reader = MessageReader()
        taken: list[bytes] = []
        for piece in (stream[:cut], stream[cut : cut + 7], stream[cut + 7 :]):
            reader.feed(piece)
            chunk, spans = reader.take_messages()
            assert (chunk == b"") == (not spans)
            if spans:
                assert spans[0][1] == 0 and spans[-1][2] == len(chunk)
            taken += [chunk[start:end] for _, start, end in spans]
        assert taken == messages
        assert reader.buffered == 0


def test_readers_methods_mix() -> None:
    stream = codec.parse_complete() + codec.bind_complete() + codec.data_row([b"x"]) + codec.no_data()
    reader = MessageReader()
    reader.feed(stream + codec.command_complete("SELECT 1")[:4])
    assert reader.next() == (codec.PARSE_COMPLETE, b"")
    assert reader.next_raw() == (codec.BIND_COMPLETE, b"", codec.bind_complete())
    messages, chunk = reader.drain_complete()
    assert messages == [(codec.DATA_ROW, b"\x00\x01\x00\x00\x00\x01x"), (codec.NO_DATA, b"")]
    assert chunk == codec.data_row([b"x"]) + codec.no_data()
    assert reader.buffered == 4
    reader.feed(bytearray(codec.command_complete("SELECT 1")[4:]))
    reader.feed(memoryview(codec.ready_for_query(b"T")))
    assert reader.next() == (codec.COMMAND_COMPLETE, b"SELECT 1\0")
    assert reader.take_messages() == (codec.ready_for_query(b"T"), [(codec.READY_FOR_QUERY, 0, 6)])


def test_messages_fed_separately() -> None:
    messages = [codec.parse_complete(), codec.data_row([b"1"]), codec.command_complete("SELECT 1")]
    reader = MessageReader()
    for message in messages:
        reader.feed(message)
    assert reader.buffered == sum(map(len, messages))
    assert [reader.next_raw() for _ in messages] == [(m[0], m[5:], m) for m in messages]
    for message in messages[:2]:
        reader.feed(message)
    assert reader.next() == (codec.PARSE_COMPLETE, b"")
    assert reader.next() == (codec.DATA_ROW, messages[1][5:])
    for message in messages:
        reader.feed(message)
    assert reader.next() == (codec.PARSE_COMPLETE, b"")
    assert reader.take_messages() == (
        b"".join(messages[1:]),
        [(codec.DATA_ROW, 0, 12), (codec.COMMAND_COMPLETE, 12, 26)],
    )
    assert reader.buffered == 0


def test_feeding_a_mutable_buffer_copies_it() -> None:
    buffer = bytearray(codec.query("SELECT 1")[:6])
    reader = MessageReader()
    reader.feed(buffer)
    buffer[:] = b"\0" * 6  # the session reuses its receive buffer
    reader.feed(codec.query("SELECT 1")[6:])
    assert reader.next() == (codec.QUERY, b"SELECT 1\0")


def test_large_message_in_small_pieces() -> None:
    row = codec.data_row([bytes(range(256)) * 4096, None])  # ~1 MiB
    message = row + codec.command_complete("SELECT 1")
    reader = MessageReader()
    for start in range(0, len(message), 1000):
        reader.feed(message[start : start + 1000])
        if start + 1000 < len(row):
            assert reader.take_messages() == (b"", [])
            assert reader.next() is None
    assert reader.buffered == len(message)
    chunk, spans = reader.take_messages()
    assert chunk == message
    assert codec.parse_data_row(chunk[5 : spans[0][2]]) == [bytes(range(256)) * 4096, None]


# --------------------------------------------------------------------------------------------------
# Properties: nothing but ProtocolViolation escapes, whatever the bytes


PARSERS: list[Callable[[bytes], object]] = [
    codec.parse_startup,
    codec.parse_query,
    codec.parse_parse,
    codec.parse_bind,
    codec.parse_describe,
    codec.parse_execute,
    codec.parse_close,
    codec.parse_password,
    codec.parse_sasl_initial_response,
    codec.parse_copy_fail,
    codec.parse_row_description,
    codec.parse_data_row,
    codec.parse_error_fields,
    codec.parse_command_complete,
    codec.parse_authentication,
    codec.parse_sasl_mechanisms,
    codec.parse_backend_key_data,
    codec.parse_parameter_status,
    codec.parse_parameter_description,
    codec.parse_ready_for_query,
    codec.parse_negotiate_protocol_version,
    codec.parse_copy_response,
    codec.parse_notification_response,
]

VALID_PAYLOADS = [
    message[5:]
    for message in (
        codec.bind("p", "s", (b"\x00\x01", None, b"x"), (1,), (0, 1)),
        codec.parse("s", "SELECT $1", (23, 25)),
        codec.row_description([Column("a", 1, 2, 23, 4, -1, 0), Column("b", 0, 0, 25, -1, -1, 1)]),
        codec.data_row([b"abc", None, b""]),
        codec.error_response("42000", "m", detail="d", hint="h"),
        codec.execute("p", 5),
        codec.negotiate_protocol_version(0, ["_pq_.a"]),
        codec.authentication_sasl(["SCRAM-SHA-256"]),
        codec.sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=x"),
        codec.parameter_description([23, 25]),
    )
] + [codec.startup_message({"user": "u", "database": "d"})[4:], codec.cancel_request(1, b"abcd")[4:]]


def only_violations(parser: Callable[[bytes], object], body: bytes) -> None:
    try:
        parser(body)
    except ProtocolViolation as error:
        assert error.message and error.sqlstate


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_parsers_take_any_bytes(body: bytes) -> None:
    for parser in PARSERS:
        only_violations(parser, body)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID_PAYLOADS), st.data())
def test_parsers_take_damaged_messages(payload: bytes, data: st.DataObject) -> None:
    """Flipped bytes and cuts in real payloads reach much deeper than random bytes."""
    damaged = bytearray(payload)
    for _ in range(data.draw(st.integers(0, 3))):
        if damaged:
            damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))
    for body in (bytes(damaged), bytes(damaged[:cut]), bytes(damaged) + b"\0"):
        for parser in PARSERS:
            only_violations(parser, body)


def frame(kind: int, payload: bytes, *, typed: bool) -> bytes:
    if typed:
        return bytes([kind]) + (len(payload) + 4).to_bytes(4, "big") + payload
    return (len(payload) + 8).to_bytes(4, "big") + kind.to_bytes(4, "big") + payload


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Random bytes, or real framing (typed and untyped, some too long) with a few bytes overwritten."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    messages = draw(
        st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=60), st.booleans()), max_size=10)
    )
    stream = bytearray(b"".join(frame(kind, payload, typed=typed) for kind, payload, typed in messages))
    for _ in range(draw(st.integers(0, 2))):
        if stream:
            stream[draw(st.integers(0, len(stream) - 1))] = draw(st.integers(0, 255))
    return bytes(stream)


@settings(max_examples=500, deadline=None)
@given(
    streams(),
    st.lists(st.integers(1, 40), max_size=20),
    st.booleans(),
    st.lists(st.sampled_from(["next", "next_raw", "take", "typed"]), min_size=1, max_size=30),
)
def test_reader_takes_any_bytes(stream: bytes, cuts: list[int], startup: bool, calls: list[str]) -> None:
    reader = MessageReader(max_message=200, startup=startup)
    taken = 0
    pos = 0
    try:
        for index, call in enumerate(calls):
            if pos < len(stream):
                size = cuts[index % len(cuts)] if cuts else len(stream)
                reader.feed(stream[pos : pos + size])
                pos += size
            if call == "typed":
                reader.expect_typed()
            elif call == "take":
                chunk, spans = reader.take_messages()
                assert chunk == stream[taken : taken + len(chunk)]
                assert sum(end - start for _, start, end in spans) == len(chunk)
                taken += len(chunk)
            else:
                got = reader.next_raw()
                if got is not None:
                    assert stream[taken : taken + len(got[2])] == got[2]
                    assert got[2].endswith(got[1])
                    taken += len(got[2])
            assert reader.buffered == min(pos, len(stream)) - taken
    except ProtocolViolation as error:
        assert error.message


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=50)), max_size=10),
    st.lists(st.integers(1, 30), min_size=1, max_size=10),
)
def test_reader_returns_what_was_framed(messages: list[tuple[int, bytes]], cuts: list[int]) -> None:
    stream = b"".join(frame(kind, payload, typed=True) for kind, payload in messages)
    reader = MessageReader()
    got: list[tuple[int, bytes]] = []
    pos = 0
    index = 0
    while pos < len(stream):
        size = cuts[index % len(cuts)]
        reader.feed(stream[pos : pos + size])
        pos += size
        index += 1
        if index % 2:
            while (message := reader.next()) is not None:
                got.append(message)
        else:
            got += reader.drain_complete()[0]
    got += reader.drain_complete()[0]
    assert got == messages
    assert reader.buffered == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.binary(max_size=20)), max_size=20))
def test_data_row_property(values: list[bytes | None]) -> None:
    message = codec.data_row(values)
    assert codec.parse_data_row(message[5:]) == values


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.characters(min_codepoint=1, max_codepoint=255), st.text(), max_size=8))
def test_error_fields_property(fields: dict[str, str]) -> None:
    message = codec.error_from_fields(fields)
    assert codec.parse_error_fields(message[5:]) == {
        code: value.replace("\0", "\ufffd").encode("utf-8", "replace").decode()
        for code, value in fields.items()
    }


# --------------------------------------------------------------------------------------------------
# Against a real server


def test_against_local_postgres() -> None:
    with socket.create_connection(("127.0.0.1", 5432), timeout=10) as sock:
        sock.sendall(
            codec.startup_message({"user": "postgres", "database": "postgres", "client_encoding": "UTF8"})
            + codec.query("SELECT 1 AS one")
            + codec.terminate()
        )
        reader = MessageReader()
        messages: list[tuple[int, bytes]] = []
        while data := sock.recv(7):  # tiny reads: messages straddle them; Terminate ends it
            reader.feed(data)
            while (message := reader.next()) is not None:
                messages.append(message)
    assert reader.buffered == 0
    errors = [codec.parse_error_fields(body) for kind, body in messages if kind == codec.ERROR_RESPONSE]
    assert not errors
    kinds = [kind for kind, _ in messages]
    assert codec.parse_authentication(messages[0][1]) == (codec.AUTH_OK, b"")
    assert messages[0][0] == codec.AUTHENTICATION
    parameters = dict(
        codec.parse_parameter_status(body) for kind, body in messages if kind == codec.PARAMETER_STATUS
    )
    assert parameters["client_encoding"] == "UTF8"
    assert "server_version" in parameters
    (key_data,) = [body for kind, body in messages if kind == codec.BACKEND_KEY_DATA]
    pid, secret = codec.parse_backend_key_data(key_data)
    assert pid > 0
    assert len(secret) == 4
    first_ready = kinds.index(codec.READY_FOR_QUERY)
    assert codec.parse_ready_for_query(messages[first_ready][1]) == b"I"
    rest = messages[first_ready + 1 :]
    assert [kind for kind, _ in rest] == [
        codec.ROW_DESCRIPTION,
        codec.DATA_ROW,
        codec.COMMAND_COMPLETE,
        codec.READY_FOR_QUERY,
    ]
    (column,) = codec.parse_row_description(rest[0][1])
    assert (column.name, column.type_oid, column.format) == ("one", 23, 0)
    assert codec.parse_data_row(rest[1][1]) == [b"1"]
    assert codec.parse_command_complete(rest[2][1]) == "SELECT 1"
    assert codec.parse_ready_for_query(rest[3][1]) == b"I"
