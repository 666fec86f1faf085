"""wardgate.tcp.postgres.values: DataRow values masked in text and binary format.

The wire bytes come from a real PostgreSQL (``exec_params`` with ``result_format`` 0 or 1, values
taken raw from the result), and every masked value is sent back to it as a parameter of its type
in the same format: the server must accept it, and its text of it must not hold the secret.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import pq

from wardgate.masking import BUILTIN_DETECTORS, FIELD, Detector, MaskingProfile, MaskingRefused, mask_rows
from wardgate.tcp.postgres.values import ARRAY_ELEMENT, ResultMasker

DSN = os.environ.get(
    "WARDGATE_TEST_PG",
    "host=127.0.0.1 port=5432 dbname=wardgate_test user=wardgate password=wardgate-test-pw connect_timeout=5",
)
PROFILE = MaskingProfile()
SCANNING = MaskingProfile(detectors=(*BUILTIN_DETECTORS, Detector.from_regex("digits", r"[0-9]{3}")))
"""Every detector, and one that makes int2 and int4 values worth decoding."""
CARD = "4242424242424242"
EMAIL = "jane.doe@example.com"
PHONE = "+14155552671"
IP = "10.1.2.3"
TEXT, BINARY = 0, 1
FORMATS = pytest.mark.parametrize("fmt", [TEXT, BINARY], ids=["text", "binary"])

Columns = list[tuple[str, int, int]]
Rows = list[list[bytes | None]]


class Server:
    """Raw text and binary results from PostgreSQL, and its verdict on values sent back."""

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        self.conn = conn
        self.pgconn = conn.pgconn

    def query(self, sql: str, fmt: int) -> tuple[Columns, Rows]:
        res = self.pgconn.exec_params(sql.encode(), [], result_format=fmt)
        assert res.status == pq.ExecStatus.TUPLES_OK, res.get_error_message()
        columns = [((res.fname(c) or b"").decode(), res.ftype(c), res.fformat(c)) for c in range(res.nfields)]
        rows = [[res.get_value(r, c) for c in range(res.nfields)] for r in range(res.ntuples)]
        return columns, rows

    def accepts(self, oid: int, fmt: int, value: bytes | None) -> str | None:
        """The server's text for ``value`` sent as a parameter of type ``oid`` in format ``fmt``."""
        res = self.pgconn.exec_params(b"SELECT $1", [value], [oid], [fmt], result_format=TEXT)
        assert res.status == pq.ExecStatus.TUPLES_OK, (oid, fmt, value, res.get_error_message())
        out = res.get_value(0, 0)
        return None if out is None else out.decode()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    conn = psycopg.connect(DSN, autocommit=True)  # make test sets it up (scripts/services test-databases)
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET bytea_output = 'hex'")
    try:
        yield Server(conn)
    finally:
        conn.close()


def masked_one(
    server: Server, expression: str, fmt: int, profile: MaskingProfile = PROFILE
) -> tuple[int, bytes | None, bytes | None, dict[str, int]]:
    """``(type oid, wire value, masked value, counts)`` of ``SELECT expression``."""
    columns, rows = server.query(f"SELECT {expression} AS v", fmt)
    masker = ResultMasker(columns, profile)
    out, counts = masker.mask(rows)
    value = rows[0][0]
    return columns[0][1], value, value if out is None else out[0][0], counts


def server_text(server: Server, expression: str) -> str:
    _, rows = server.query(f"SELECT ({expression})::text", TEXT)
    value = rows[0][0]
    assert value is not None
    return value.decode()


# --- content masking, per family, checked by the server ------------------------------------------

SENSITIVE = [
    # (expression, secret that must be gone, what the server must show for the masked value or None)
    (f"'mail {EMAIL} today'::text", EMAIL, "mail [masked:email] today"),
    (f"'card {CARD}'::varchar(40)", CARD, "card ************4242"),
    (f"'call {PHONE}'::bpchar(30)", PHONE, None),
    (f"'{EMAIL}'::name", EMAIL, "[masked:email]"),
    (f"'<a>{EMAIL}</a>'::xml", EMAIL, "<a>[masked:email]</a>"),
    (f"'ip {IP}'::text", IP, "ip [masked:ipv4]"),
    (f"{CARD}::int8", CARD, "0"),
    (f"-{CARD}::int8 * -1", CARD, "0"),
    (f"{CARD}::numeric", CARD, "0"),
    (f"{CARD}.00::numeric(20,2)", CARD, "0"),
    (f"'{IP}'::inet", IP, "0.0.0.0"),
    (f"'{IP}/24'::inet", IP, "0.0.0.0"),
    ("'10.0.0.0/8'::cidr", "10.0.0.0", "0.0.0.0/32"),
    ("'2001:db8::1'::inet", "2001:db8::1", "::"),
    ("'2001:db8::/32'::cidr", "2001:db8::", "::/128"),
    ("'::ffff:10.1.2.3'::inet", IP, "::"),
    (f"convert_to('to {EMAIL}', 'UTF8')", "6a616e65", "\\x746f205b6d61736b65643a656d61696c5d"),
    (f'\'{{"a": {CARD}, "e": "{EMAIL}"}}\'::jsonb', EMAIL, '{"a": 0, "e": "[masked:email]"}'),
    (f'\'{{"a": {CARD}, "e": "{EMAIL}"}}\'::json', CARD, '{"a": 0, "e": "[masked:email]"}'),
    (f"'\"{CARD}\"'::jsonb", CARD, '"************4242"'),
    (f"ARRAY['x', '{EMAIL}', NULL, 'a b']::text[]", EMAIL, '{x,[masked:email],NULL,"a b"}'),
    (f"ARRAY['card {CARD}']::varchar[]", CARD, '{"card ************4242"}'),
    (f"ARRAY['{EMAIL}']::bpchar(25)[]", EMAIL, None),
    (f"ARRAY['{EMAIL}']::name[]", EMAIL, "{[masked:email]}"),
    (f"ARRAY[1, {CARD}, NULL]::int8[]", CARD, "{1,0,NULL}"),
    (f"ARRAY[[1, {CARD}], [3, 4]]::int8[]", CARD, "{{1,0},{3,4}}"),
    (f"'[0:1]={{{CARD},7}}'::int8[]", CARD, "[0:1]={0,7}"),
    (f"ARRAY[{CARD}.00, 1.5]::numeric[]", CARD, "{0,1.5}"),
    (f"ARRAY['{IP}', '127.0.0.1']::inet[]", IP, "{0.0.0.0,127.0.0.1}"),
    ("ARRAY['10.1.0.0/16']::cidr[]", "10.1.0.0", "{0.0.0.0/32}"),
    (f"ARRAY[convert_to('{EMAIL}', 'UTF8')]", "6a616e65", None),
    (f"ARRAY['{{\"n\": {CARD}}}']::jsonb[]", CARD, '{"{\\"n\\": 0}"}'),
    (f'ARRAY[\'{{"e": "{EMAIL}"}}\']::json[]', EMAIL, '{"{\\"e\\": \\"[masked:email]\\"}"}'),
    (f"'{EMAIL}'::tsvector", EMAIL, "'[masked:email]'"),  # text only: binary tsvectors are refused
    (f"'{{\"{EMAIL}\"}}'::text[]", EMAIL, "{[masked:email]}"),
]


SENSITIVE_CASES = [
    pytest.param(fmt, *case, id=f"{case[0][:40]}-{'binary' if fmt else 'text'}")
    for case in SENSITIVE
    for fmt in (TEXT, BINARY)
    if not (fmt == BINARY and "tsvector" in case[0])  # binary tsvectors are refused (see below)
]


@pytest.mark.parametrize(("fmt", "expression", "secret", "shown"), SENSITIVE_CASES)
def test_sensitive_values_are_masked_validly(
    server: Server, fmt: int, expression: str, secret: str, shown: str | None
) -> None:
    oid, original, masked, counts = masked_one(server, expression, fmt)
    assert secret in server_text(server, expression)
    assert masked != original and counts
    text = server.accepts(oid, fmt, masked)  # (b) the server takes the masked bytes as that type
    assert text is not None and secret not in text  # (a)
    if shown is not None:
        assert text == shown


CLEAN = [
    "'nothing to see here'::text",
    "'order 1234 shipped'::varchar",
    "42::int8",
    f"{CARD}5::int8",  # 17 digits failing Luhn: not a card
    "-4242424242424242::int8",
    "12.50::numeric",
    f"{CARD}.5::numeric",  # not a whole number
    "'NaN'::numeric",
    "'Infinity'::numeric",
    "'127.0.0.1'::inet",
    "'::1'::inet",
    "'0.0.0.0/0'::cidr",
    "convert_to('plain bytes', 'UTF8')",
    '\'{"a": 1, "b": [true, null, "x"]}\'::jsonb',
    "'{\"a\": 1}'::json",
    "ARRAY['a', NULL, 'b c', '']::text[]",
    "ARRAY[1, 2, NULL]::int8[]",
    "ARRAY['127.0.0.1']::inet[]",
    "'{}'::text[]",
    "'{}'::int8[]",
]


@FORMATS
@pytest.mark.parametrize("expression", CLEAN)
def test_values_without_secrets_are_untouched(server: Server, fmt: int, expression: str) -> None:
    columns, rows = server.query(f"SELECT {expression} AS v, 'x'::text AS w", fmt)
    out, counts = ResultMasker(columns, PROFILE).mask(rows)
    assert out is None and counts == {}


PASSING = [
    "true",
    "1.5::float4",
    f"{CARD}::float8",
    "'2024-01-02'::date",
    "'12:34:56'::time",
    "'12:34:56+02'::timetz",
    "'2024-01-02 03:04:05'::timestamp",
    "'2024-01-02 03:04:05+00'::timestamptz",
    "'1 day'::interval",
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
    "42::oid",
    "'pg_class'::regclass",
    "'int4'::regtype",
    "'now'::regproc",
    "'1/0'::pg_lsn",
    "'08:00:2b:01:02:03'::macaddr",
    f"'{CARD}'::money",
    "'x'::\"char\"",
    "42::int4",
    "42::int2",
    "ARRAY[true]",
    "ARRAY[1.5]::float8[]",
    "ARRAY['2024-01-02'::date]",
    "ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid]",
    "ARRAY[now()]",
    "ARRAY[now()::timestamp]",
    "ARRAY[42::oid]",
    f"ARRAY[{CARD}::float8]",
    "ARRAY[7::int4]",
]


@FORMATS
@pytest.mark.parametrize("expression", PASSING)
def test_types_that_cannot_carry_secrets_pass_unscanned(server: Server, fmt: int, expression: str) -> None:
    columns, rows = server.query(f"SELECT {expression} AS v", fmt)
    masker = ResultMasker(columns, PROFILE)
    assert masker.inert
    assert masker.mask(rows) == (None, {})


def test_unchanged_values_and_rows_stay_byte_identical(server: Server) -> None:
    sql = f"SELECT n, 'row ' || n AS note, CASE WHEN n = 2 THEN '{EMAIL}' ELSE 'none' END AS mail, true AS b "
    for fmt in (TEXT, BINARY):
        columns, rows = server.query(sql + "FROM generate_series(1, 3) AS n", fmt)
        out, counts = ResultMasker(columns, PROFILE).mask(rows)
        assert out is not None and counts == {"email": 1}
        assert out[0] is rows[0] and out[2] is rows[2]
        assert out[1] is not rows[1] and out[1][:2] == rows[1][:2] and out[1][3] == rows[1][3]
        assert out[1][2] == b"[masked:email]"
        assert rows[1][2] == EMAIL.encode()  # the caller's rows are not changed


def test_integers_are_scanned_only_when_they_can_hold_a_detected_number(server: Server) -> None:
    assert ResultMasker([("a", 23, TEXT), ("b", 21, BINARY)], PROFILE).inert  # a card has 12+ digits
    assert not ResultMasker([("a", 20, TEXT)], PROFILE).inert
    employee = MaskingProfile(detectors=(Detector.from_regex("employee", r"77[0-9]{4}"),))
    for fmt in (TEXT, BINARY):
        for expression in ("770012::int4", "770012::int8", "770012::numeric", "ARRAY[770012, 5]::int4[]"):
            oid, original, masked, counts = masked_one(server, expression, fmt, employee)
            assert counts == {"employee": 1}
            assert "770012" not in (server.accepts(oid, fmt, masked) or "")
        oid, original, masked, counts = masked_one(server, "-770012::int4", fmt, employee)
        assert masked == original and counts == {}


def test_bytea_in_escape_format(server: Server) -> None:
    server.conn.execute("SET bytea_output = 'escape'")
    try:
        for expression in (f"convert_to('é {EMAIL}\\', 'UTF8')", f"ARRAY[convert_to('é {EMAIL}', 'UTF8')]"):
            oid, _, masked, counts = masked_one(server, expression, TEXT)
            assert counts == {"email": 1}
            assert masked is not None and not masked.startswith((b"\\x", b'{"\\\\x'))  # still escape format
            text = server.accepts(oid, TEXT, masked)
            assert text is not None and EMAIL not in text and "[masked:email]" in text
    finally:
        server.conn.execute("SET bytea_output = 'hex'")


@FORMATS
def test_binary_bytes_are_refused_unless_allowed(server: Server, fmt: int) -> None:
    for expression in ("'\\xff00'::bytea", "ARRAY['\\xff00'::bytea]"):
        with pytest.raises(MaskingRefused, match=r"binary \(bytea\)"):
            masked_one(server, expression, fmt)
        _, original, masked, counts = masked_one(server, expression, fmt, MaskingProfile(allow_binary=True))
        assert masked == original and counts == {}


@pytest.mark.parametrize(
    "expression",
    ["ROW(1, 'x')", "int4range(1, 5)", "point(1, 2)", "'a b'::tsvector", "B'101'", "'{}'::int4range[]"],
)
def test_binary_values_of_unknown_types_are_refused(server: Server, expression: str) -> None:
    columns, rows = server.query(f"SELECT {expression} AS v, NULL::int4range AS n", BINARY)
    masker = ResultMasker(columns, PROFILE)
    assert not masker.inert
    with pytest.raises(MaskingRefused, match=r"column 'v'\) cannot be masked: ask for text results"):
        masker.mask(rows)
    assert masker.mask([[None, None]]) == (None, {})  # NULL reveals nothing
    columns, rows = server.query(f"SELECT {expression} AS v", TEXT)
    assert ResultMasker(columns, PROFILE).mask(rows) == (None, {})  # text: scanned as text


# --- column rules --------------------------------------------------------------------------------

RULES = [
    # (expression, the server's text of the masked value)
    ("'secret'::text", "[masked]"),
    ("'secret'::varchar(3)", "[masked]"),
    ("'secret'::bpchar(3)", "[masked]"),
    ("'secret'::name", "[masked]"),
    ("'<a/>'::xml", "[masked]"),
    ("42::int2", "0"),
    ("42::int4", "0"),
    ("42::int8", "0"),
    ("42.5::numeric", "0"),
    ("42.5::float4", "0"),
    ("42.5::float8", "0"),
    ("42::oid", "0"),
    ("true", "f"),
    ("convert_to('x', 'UTF8')", "\\x5b6d61736b65645d"),
    ("'\\xff'::bytea", "\\x5b6d61736b65645d"),
    (
        '\'{"a": 1, "b": ["x", true, null], "c": {"d": 2.5}}\'::jsonb',
        '{"a": 0, "b": ["[masked]", false, null], "c": {"d": 0.0}}',
    ),
    ("'\"x\"'::json", '"[masked]"'),
    ("'2024-01-02'::date", None),
    ("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", None),
    ("'10.1.2.3'::inet", None),
    ("'x'::\"char\"", None),
    ("12::money", None),
    ("ARRAY[1, NULL, 3]::int8[]", "{0,NULL,0}"),
    ("'[0:1]={1,2}'::int4[]", "[0:1]={0,0}"),
    ("ARRAY['a', 'b c']::text[]", "{[masked],[masked]}"),
    ("ARRAY['{\"a\": 1}']::jsonb[]", '{"{\\"a\\": 0}"}'),
    ("ARRAY[true, false]", "{f,f}"),
    ("ARRAY['2024-01-02'::date]", "{NULL}"),
    ("ARRAY['10.1.2.3'::inet]", "{NULL}"),
]


@FORMATS
@pytest.mark.parametrize(("expression", "shown"), RULES, ids=[r[0][:40] for r in RULES])
def test_column_rules_mask_values_whole(server: Server, fmt: int, expression: str, shown: str | None) -> None:
    profile = MaskingProfile(columns=frozenset({"Secret"}), allow_binary=True)
    columns, rows = server.query(f'SELECT {expression} AS "SECRET", {expression} AS other', fmt)
    masker = ResultMasker(columns, profile)
    assert not masker.inert
    out, counts = masker.mask(rows)
    assert out is not None and counts.get(FIELD) == 1
    assert server.accepts(columns[0][1], fmt, out[0][0]) == shown
    content, _ = ResultMasker(columns[1:], MaskingProfile(allow_binary=True)).mask([rows[0][1:]])
    assert out[0][1] == (rows[0][1] if content is None else content[0][0])  # no rule there: content only
    assert masker.mask([[None, None]]) == (None, {})  # NULL stays NULL, uncounted


def test_rules_and_detectors_are_counted_like_mask_rows(server: Server) -> None:
    profile = MaskingProfile(columns=frozenset({"ssn"}))
    sql = f"SELECT n, '123-45-6789'::text AS ssn, 'to {EMAIL}' AS note FROM generate_series(1, 3) AS n"
    expected = mask_rows(
        ["n", "ssn", "note"], [(n, "123-45-6789", f"to {EMAIL}") for n in (1, 2, 3)], profile
    )
    for fmt in (TEXT, BINARY):
        columns, rows = server.query(sql, fmt)
        out, counts = ResultMasker(columns, profile).mask(rows)
        assert out is not None and counts == expected.counts == {FIELD: 3, "email": 3}
        assert [row[1:] for row in out] == [[b"[masked]", b"to [masked:email]"]] * 3


def test_json_field_rules_apply_to_json_columns(server: Server) -> None:
    profile = MaskingProfile(fields=("$..password",))
    for fmt in (TEXT, BINARY):
        oid, _, masked, counts = masked_one(
            server, '\'{"user": {"password": "hunter2"}}\'::jsonb', fmt, profile
        )
        assert counts == {FIELD: 1}
        assert server.accepts(oid, fmt, masked) == '{"user": {"password": "[masked]"}}'
    assert not ResultMasker([("j", 3802, TEXT)], MaskingProfile(detectors=(), fields=("$.a",))).inert
    assert ResultMasker([("j", 3802, TEXT), ("t", 25, BINARY)], MaskingProfile(detectors=())).inert


# --- refusals ------------------------------------------------------------------------------------

MALFORMED = [
    (20, b"\x00\x00\x00"),  # int8 of 3 bytes
    (21, b"\x00"),
    (1700, b"\x00\x01\x00\x00"),  # numeric header cut
    (1700, b"\x00\x01\x00\x00\x00\x00\x00\x00"),  # one digit announced, none sent
    (1700, b"\x00\x01\x00\x00\x00\x00\x00\x00\x27\x10"),  # digit 10000
    (1700, b"\x00\x00\x00\x00\x12\x34\x00\x00"),  # unknown sign
    (869, b"\x02\x20\x00\x04\x0a\x01\x02"),  # inet address cut
    (869, b"\x09\x20\x00\x04\x0a\x01\x02\x03"),  # unknown family
    (650, b"\x02\x21\x01\x04\x0a\x01\x02\x03"),  # 33 bits
    (3802, b"\x02{}"),  # jsonb version 2
    (25, b"\xff\xfe"),  # not UTF-8
    (1009, b"\x00\x00\x00\x01"),  # array header cut
    (1009, struct.pack(">iiIii", 1, 0, 23, 1, 1) + struct.pack(">i", 1) + b"x"),  # int4 elements in text[]
    (1009, struct.pack(">iiIii", 1, 0, 25, 2, 1) + struct.pack(">i", 1) + b"x"),  # one of two elements
    (1009, struct.pack(">iiIii", 1, 0, 25, 1, 1) + struct.pack(">i", 5) + b"x"),  # element cut
    (1009, struct.pack(">iiIii", 1, 0, 25, 1, 1) + struct.pack(">i", -2)),  # length -2
    (1009, struct.pack(">iiIii", 1, 0, 25, 1, 1) + struct.pack(">i", 1) + b"xy"),  # bytes left over
    (1009, struct.pack(">iiIii", 7, 0, 25, 1, 1)),  # 7 dimensions
    (1009, struct.pack(">iiIii", 1, 0, 25, -1, 1)),  # negative dimension
    (1016, struct.pack(">iiIii", 1, 0, 20, 2**30, 1)),  # a billion elements announced
    (1016, struct.pack(">iiIii", 1, 0, 20, 1, 1) + struct.pack(">i", 4) + b"\x00" * 4),  # int8 of 4 bytes
]


@pytest.mark.parametrize(("oid", "value"), MALFORMED)
def test_malformed_binary_values_are_refused(oid: int, value: bytes) -> None:
    with pytest.raises(MaskingRefused):
        ResultMasker([("v", oid, BINARY)], SCANNING).mask([[value]])


def test_malformed_text_values_are_refused() -> None:
    for oid, value in (
        (20, b"4242424242424242x"),
        (1700, b"4242424242424242e3"),
        (17, b"\\xzz"),
        (17, b"\\q"),
    ):
        with pytest.raises(MaskingRefused):
            ResultMasker([("v", oid, TEXT)], PROFILE).mask([[value]])


def test_limits_and_row_shape() -> None:
    long = (f"{EMAIL} " + "x" * 200).encode()
    masker = ResultMasker([("v", 25, TEXT)], MaskingProfile(max_string=100))
    with pytest.raises(MaskingRefused, match="limit"):
        masker.mask([[long]])
    out, counts = ResultMasker([("v", 25, TEXT)], MaskingProfile(max_string=100, on_limit="truncate")).mask(
        [[long]]
    )
    assert out is not None and counts == {"email": 1}
    assert out[0][0] is not None and out[0][0].startswith(b"[masked:email] xxx")
    assert b"truncated at 100 characters" in out[0][0]
    with pytest.raises(MaskingRefused, match="2 values"):
        ResultMasker([("a", 25, TEXT), ("b", 25, TEXT)], PROFILE).mask([[b"x"]])
    assert ResultMasker([("a", 25, TEXT)], PROFILE).mask([]) == (None, {})


# --- the same strings as mask_rows ---------------------------------------------------------------

FRAGMENTS = [
    EMAIL,
    CARD,
    "4242 4242 4242 4242",
    PHONE,
    "(415) 555-2671",
    IP,
    "127.0.0.1",
    "123-45-6789",
    "2001:db8::1",
    "AKIAIOSFODNN7EXAMPLE",
    "GB82WEST12345698765432",
    "version 1.2.3.4",
]
cells = st.one_of(
    st.none(),
    st.lists(
        st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8), st.sampled_from(" ,\n-@.")), max_size=6
    ).map("".join),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(cells, cells, cells), min_size=1, max_size=12))
def test_text_format_masks_like_mask_rows(rows: list[tuple[str | None, str | None, str | None]]) -> None:
    columns = [("a", 25, TEXT), ("b", 1043, TEXT), ("c", 705, TEXT)]
    wire: Rows = [[None if v is None else v.encode() for v in row] for row in rows]
    out, counts = ResultMasker(columns, PROFILE).mask(wire)
    expected = mask_rows(["a", "b", "c"], rows, PROFILE)
    got = [tuple(None if v is None else v.decode() for v in row) for row in (wire if out is None else out)]
    assert got == expected.value
    assert counts == expected.counts
    assert (out is None) == (expected.value == [tuple(row) for row in rows])


# --- any bytes: MaskingRefused or a result, nothing else -----------------------------------------

OIDS = sorted(set(ARRAY_ELEMENT) | set(ARRAY_ELEMENT.values()) | {3904, 600, 2249, 3614, 1560, 22, 30, 4072})
PROFILES = [
    PROFILE,
    MaskingProfile(columns=frozenset({"v"})),
    MaskingProfile(allow_binary=True, fields=("$..a",)),
    MaskingProfile(detectors=("card", Detector.from_regex("digits", r"[0-9]{3}"))),
]


def _binary_array(draw: st.DrawFn) -> bytes:
    oid = draw(st.sampled_from(sorted(set(ARRAY_ELEMENT.values()))))
    elements = draw(st.lists(st.one_of(st.none(), st.binary(max_size=20)), max_size=4))
    parts = [struct.pack(">iiIii", 1, draw(st.integers(0, 1)), oid, len(elements), draw(st.integers(-3, 3)))]
    for element in elements:
        parts.append(struct.pack(">i", -1) if element is None else struct.pack(">i", len(element)) + element)
    raw = b"".join(parts)
    return raw[: draw(st.integers(0, len(raw)))] if draw(st.booleans()) else raw


@st.composite
def wire_values(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=40))
    if kind == 1:  # numeric-shaped
        digits = draw(st.lists(st.integers(0, 10001), max_size=5))
        head = struct.pack(
            ">hhHH",
            len(digits),
            draw(st.integers(-3, 6)),
            draw(st.sampled_from([0, 0x4000, 0xC000, 7])),
            draw(st.integers(0, 20)),
        )
        return head + struct.pack(f">{len(digits)}H", *digits)
    if kind == 2:
        return _binary_array(draw)
    return draw(
        st.sampled_from(
            [
                b"{a,b}",
                b'{"x\\"",NULL}',
                b"[0:1]={1,2}",
                b"{{1},{2}}",
                b"\\x4142",
                b"1.5",
                b"\x01{}",
                b"{",
                b"}",
                b"{}}",
                CARD.encode(),
                b"\x02\x20\x00\x04\x0a\x01\x02\x03",
            ]
        )
    )


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(OIDS),
    st.sampled_from([TEXT, BINARY]),
    st.sampled_from(range(len(PROFILES))),
    st.lists(st.one_of(st.none(), wire_values()), min_size=1, max_size=4),
)
def test_any_bytes_give_a_result_or_a_refusal(
    oid: int, fmt: int, which: int, values: list[bytes | None]
) -> None:
    masker = ResultMasker([("v", oid, fmt), ("w", 25, TEXT)], PROFILES[which])
    rows: Rows = [[value, b"x"] for value in values]
    try:
        out, _ = masker.mask(rows)
    except MaskingRefused:
        out = None
    for row in out or rows:
        assert all(isinstance(v, str | None) for v in masker.displayed(row))


# --- recording -----------------------------------------------------------------------------------

DISPLAYED = [
    "true",
    "42::int2",
    "-42::int4",
    "9000000000::int8",
    "1.5::float4",
    "0.1::float4",
    "0.1::float8",
    "1e20::float8",
    "100::float8",
    "'NaN'::float8",
    "1.50::numeric",
    "-0.001::numeric",
    "12345678.9::numeric",
    "0::numeric",
    "10000::numeric",
    "0.00012::numeric",
    "'NaN'::numeric",
    "'-Infinity'::numeric",
    "'héllo'::text",
    "'a'::\"char\"",
    "'\\x00ff'::bytea",
    '\'{"a": [1, "x"]}\'::jsonb',
    "'{\"a\":1}'::json",
    "'10.1.2.3'::inet",
    "'10.1.2.3/24'::inet",
    "'10.0.0.0/8'::cidr",
    "'2001:db8::1'::inet",
    "'::ffff:10.1.2.3'::inet",
    "'::10.1.2.3'::inet",
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
    "'2024-02-29'::date",
    "'infinity'::date",
    "'2024-01-02 03:04:05.25'::timestamp",
    "'2024-01-02 03:04:05+00'::timestamptz",
    "'12:34:56.5'::time",
    "42::oid",
    "ARRAY[[1, 2], [3, NULL]]::int8[]",
    "'[0:1]={a,b}'::text[]",
    "ARRAY['a b', '', 'NULL', 'q\"\\']",
    "'{}'::int4[]",
    "ARRAY['10.1.2.3'::inet]",
    "ARRAY[1.5]::numeric[]",
]


@pytest.mark.parametrize("expression", DISPLAYED)
def test_binary_values_are_displayed_as_the_server_writes_them(server: Server, expression: str) -> None:
    text_columns, text_rows = server.query(f"SELECT {expression} AS v", TEXT)
    columns, rows = server.query(f"SELECT {expression} AS v", BINARY)
    assert ResultMasker(columns, PROFILE).displayed(rows[0]) == ResultMasker(text_columns, PROFILE).displayed(
        text_rows[0]
    )


def test_undecoded_binary_values_are_displayed_by_size(server: Server) -> None:
    columns, rows = server.query(
        "SELECT int4range(1, 5) AS r, NULL::text AS n, '1 day'::interval AS i", BINARY
    )
    assert ResultMasker(columns, PROFILE).displayed(rows[0]) == [
        "<binary 17 bytes>",
        None,
        "<binary 16 bytes>",
    ]
