"""MySQL row masking (wardgate.tcp.mysql.values): text and binary rows, as on the wire.

Each family of column types is masked as the PostgreSQL listener and the Data API mask it; a
masked row is always a valid row of its columns (it parses, with the same types); a row with
nothing to mask is the very object that came in; malformed rows are refused with a reason. Rows
from the local MariaDB, in both protocols, are masked and read back the way PyMySQL reads them.
"""

from __future__ import annotations

import datetime
import os
import socket
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_mysql_codec import MY_DATABASE, MY_HOST, MY_PASSWORD, MY_PORT, MY_USER, Client
from wardgate.masking import BUILTIN_DETECTORS, Detector, MaskingProfile, MaskingRefused
from wardgate.tcp.mysql import codec
from wardgate.tcp.mysql.codec import ColumnDefinition, Parameter
from wardgate.tcp.mysql.values import ResultMasker, column_encoding, parameter_text, shown_parameter

CARD = "4111111111111111"
EMAIL = "ada@example.com"
DEFAULT = MaskingProfile()
LATIN1 = 8  # latin1_swedish_ci
GBK = 28  # gbk_chinese_ci: a character set the masker does not read

COLUMNS = [
    codec.column("id", codec.MYSQL_TYPE_LONG, charset=63),
    codec.column("email", codec.MYSQL_TYPE_VAR_STRING),
    codec.column("card", codec.MYSQL_TYPE_LONGLONG, charset=63),
    codec.column("amount", codec.MYSQL_TYPE_NEWDECIMAL, charset=63),
    codec.column("born", codec.MYSQL_TYPE_DATE, charset=63),
    codec.column("score", codec.MYSQL_TYPE_DOUBLE, charset=63),
    codec.column("photo", codec.MYSQL_TYPE_BLOB, charset=63),
    codec.column("doc", codec.MYSQL_TYPE_JSON, charset=63),
    codec.column("note", codec.MYSQL_TYPE_BLOB),  # a TEXT column
    codec.column("took", codec.MYSQL_TYPE_TIME, charset=63),
]
TYPES = [c.type for c in COLUMNS]


def text_row(*values: bytes | None) -> bytes:
    return codec.build_text_row(list(values))


def binary_row(values: list[bytes | None], columns: list[ColumnDefinition]) -> bytes:
    return codec.build_binary_row(values, [c.type for c in columns])


def refused(masker: ResultMasker, payload: bytes) -> str:
    with pytest.raises(MaskingRefused) as caught:
        masker.mask_row(payload)
    assert caught.value.reason
    return caught.value.reason


# --------------------------------------------------------------------------------------------------
# Text rows


def sample_text_row(card: bytes = CARD.encode(), email: bytes = EMAIL.encode()) -> bytes:
    return text_row(
        b"7",
        b"mail " + email,
        card,
        card + b".00",
        b"1815-12-10",
        b"0.5",
        b"plain bytes",
        b'{"card": ' + card + b', "who": "' + email + b'"}',
        b"call me or " + email,
        b"-838:59:59",
    )


def test_text_rows_are_masked_by_family() -> None:
    masker = ResultMasker(COLUMNS, DEFAULT, binary=False)
    assert not masker.inert
    masked, counts = masker.mask_row(sample_text_row())
    values = codec.parse_text_row(masked, len(COLUMNS))
    assert values[0] == b"7"
    assert values[1] == b"mail [masked:email]"
    assert values[2] == b"0" and values[3] == b"0"  # a card kept as a number: zero, still a number
    assert values[4:7] == [b"1815-12-10", b"0.5", b"plain bytes"]
    assert values[7] == b'{"card": 0, "who": "[masked:email]"}'  # masked as JSON, its layout kept
    assert values[8] is not None and EMAIL.encode() not in values[8]
    assert values[9] == b"-838:59:59"
    assert counts["card"] == 3 and counts["email"] == 3
    shown = masker.displayed(masked)
    assert shown[1] == "mail [masked:email]" and shown[4] == "1815-12-10"


def test_a_row_with_nothing_to_mask_is_the_same_object() -> None:
    masker = ResultMasker(COLUMNS, DEFAULT, binary=False)
    row = sample_text_row(card=b"12345", email=b"nobody")
    masked, counts = masker.mask_row(row)
    assert masked is row and counts == {}
    rows = [row, sample_text_row(), row]
    out, counts = masker.mask_rows(rows)
    assert out[0] is row and out[2] is row and out[1] != rows[1]
    assert counts["email"] == 3  # counted across the batch


def test_an_inert_result_is_not_parsed() -> None:
    columns = [
        codec.column("id", codec.MYSQL_TYPE_LONG, charset=63),
        codec.column("born", codec.MYSQL_TYPE_DATETIME, charset=63),
        codec.column("score", codec.MYSQL_TYPE_FLOAT, charset=63),
        codec.column("flag", codec.MYSQL_TYPE_BIT, charset=63),
    ]
    masker = ResultMasker(columns, DEFAULT, binary=False)
    assert masker.inert
    garbage = b"\xff not even a row"
    assert masker.mask_row(garbage) == (garbage, {})
    assert masker.mask_rows([garbage]) == ([garbage], {})
    assert masker.displayed(garbage) == ["<a row of 16 bytes that does not match its columns>"]
    # no detectors and no rules: text needs nothing either
    nothing = MaskingProfile(detectors=())
    assert ResultMasker([codec.column("t", codec.MYSQL_TYPE_VAR_STRING)], nothing, binary=True).inert


def test_decimals_are_masked_only_when_whole() -> None:
    masker = ResultMasker([codec.column("n", codec.MYSQL_TYPE_NEWDECIMAL, charset=63)], DEFAULT, binary=False)
    for value, expected in [
        (CARD + ".00", b"0"),
        (CARD, b"0"),
        (CARD + ".5", (CARD + ".5").encode()),
        ("12.50", b"12.50"),
    ]:
        assert codec.parse_text_row(masker.mask_row(text_row(value.encode()))[0], 1) == [expected], value
    assert "not a number" in refused(masker, text_row(b"4111111111111111x"))


def test_integer_columns_too_narrow_for_a_detector_are_not_looked_at() -> None:
    narrow = [codec.column("n", codec.MYSQL_TYPE_LONG, charset=63)]
    assert ResultMasker(narrow, DEFAULT, binary=True).inert  # an INT cannot hold 12 digits
    digits = Detector.from_regex("digits", r"\b[0-9]{3}\b")
    custom = MaskingProfile(detectors=(*BUILTIN_DETECTORS, digits))
    masker = ResultMasker(narrow, custom, binary=True)
    masked, counts = masker.mask_row(binary_row([(123).to_bytes(4, "little", signed=True)], narrow))
    assert codec.parse_binary_row(masked, [codec.MYSQL_TYPE_LONG]) == [b"\x00\x00\x00\x00"]
    assert counts == {"digits": 1}
    text = ResultMasker(narrow, custom, binary=False)
    assert "not a number" in refused(text, text_row(b"12a"))


def test_column_rules_match_the_name_or_the_original_name() -> None:
    aliased = ColumnDefinition(
        b"def", b"s", b"t", b"t", b"x", b"ssn", 45, 40, codec.MYSQL_TYPE_VAR_STRING, 0, 0
    )
    columns = [
        aliased,
        codec.column("card", codec.MYSQL_TYPE_LONGLONG, charset=63),
        codec.column("doc", codec.MYSQL_TYPE_JSON, charset=63),
        codec.column("born", codec.MYSQL_TYPE_DATE, charset=63),
        codec.column("score", codec.MYSQL_TYPE_DOUBLE, charset=63),
        codec.column("other", codec.MYSQL_TYPE_VAR_STRING),
    ]
    profile = MaskingProfile(columns=frozenset({"SSN", "card", "doc", "born", "score"}))
    row = [b"078-05-1120", b"12", b'{"a": [1, "x"], "b": null}', b"2000-01-01", b"1.5", b"free"]
    masker = ResultMasker(columns, profile, binary=False)
    masked, counts = masker.mask_row(codec.build_text_row(row))
    assert codec.parse_text_row(masked, 6) == [
        b"[masked]",
        b"0",
        b'{"a": [0, "[masked]"], "b": null}',  # the shape kept, every value masked
        None,
        b"0",
        b"free",
    ]
    assert counts == {"field": 5}
    binary = ResultMasker(columns, profile, binary=True)
    types = [c.type for c in columns]
    wire = codec.build_binary_row(
        [
            b"078-05-1120",
            (12).to_bytes(8, "little"),
            row[2],
            b"\xd0\x07\x01\x01",
            b"\x00" * 7 + b"\x3f",
            b"free",
        ],
        types,
    )
    masked, counts = binary.mask_row(wire)
    values = codec.parse_binary_row(masked, types)
    assert values[0] == b"[masked]" and values[1] == bytes(8) and values[3] is None and values[4] == bytes(8)
    assert counts == {"field": 5}
    assert binary.mask_row(codec.build_binary_row([None] * 6, types))[1] == {}  # NULL stays NULL, uncounted


# --------------------------------------------------------------------------------------------------
# Character sets and binary strings


def test_character_sets() -> None:
    assert column_encoding(45) == column_encoding(255) == column_encoding(33) == "utf-8"
    assert column_encoding(1069) == "utf-8"  # MariaDB's utf8mb4_general_nopad_ci
    assert column_encoding(2305) == "utf-8"  # MariaDB's utf8mb4 UCA 14.0 collations
    assert column_encoding(LATIN1) == column_encoding(11) == "latin-1"
    assert column_encoding(63) == "binary"
    assert column_encoding(GBK) is None and column_encoding(35) is None  # gbk, ucs2


def test_latin1_columns_keep_their_bytes() -> None:
    masker = ResultMasker(
        [codec.column("t", codec.MYSQL_TYPE_VAR_STRING, charset=LATIN1)], DEFAULT, binary=False
    )
    row = text_row("Zoë: ".encode("latin-1") + EMAIL.encode() + b" \x80\x81")
    masked, _ = masker.mask_row(row)
    assert codec.parse_text_row(masked, 1) == ["Zoë: ".encode("latin-1") + b"[masked:email] \x80\x81"]
    truncating = MaskingProfile(max_string=8, on_limit="truncate")
    cut = ResultMasker(
        [codec.column("t", codec.MYSQL_TYPE_VAR_STRING, charset=LATIN1)], truncating, binary=False
    )
    assert "character set" in refused(cut, text_row(b"x" * 20))  # the marker's "…" is not latin1


def test_text_that_is_not_in_its_character_set_is_refused() -> None:
    utf8 = ResultMasker([codec.column("t", codec.MYSQL_TYPE_VAR_STRING)], DEFAULT, binary=False)
    assert "not valid utf-8" in refused(utf8, text_row(b"\xff\xfe"))
    gbk = ResultMasker([codec.column("t", codec.MYSQL_TYPE_VAR_STRING, charset=GBK)], DEFAULT, binary=False)
    assert "character set (collation 28)" in refused(gbk, text_row(b"\xc4\xe3"))
    assert gbk.mask_row(text_row(None))[1] == {}  # a NULL needs no reading


def test_binary_strings_follow_the_bytea_rule() -> None:
    columns = [codec.column("b", codec.MYSQL_TYPE_BLOB, charset=63)]
    masker = ResultMasker(columns, DEFAULT, binary=True)
    masked, counts = masker.mask_row(binary_row([EMAIL.encode()], columns))
    assert codec.parse_binary_row(masked, [codec.MYSQL_TYPE_BLOB]) == [b"[masked:email]"] and counts == {
        "email": 1
    }
    png = b"\x89PNG\r\n\x1a\n\x00"
    assert "binary value of column 'b'" in refused(masker, binary_row([png], columns))
    allowed = ResultMasker(columns, MaskingProfile(allow_binary=True), binary=True)
    row = binary_row([png], columns)
    assert allowed.mask_row(row)[0] is row
    assert allowed.displayed(row) == ["0x" + png.hex()]
    assert ResultMasker(columns, MaskingProfile(allow_binary=True, detectors=()), binary=True).inert


def test_json_values() -> None:
    columns = [codec.column("j", codec.MYSQL_TYPE_JSON, charset=63)]
    masker = ResultMasker(columns, DEFAULT, binary=True)
    masked, counts = masker.mask_row(binary_row([b"[" + CARD.encode() + b', "x"]'], columns))
    assert codec.parse_binary_row(masked, [codec.MYSQL_TYPE_JSON]) == [b'[0, "x"]'] and counts == {"card": 1}
    small = ResultMasker(columns, MaskingProfile(max_bytes=16, on_limit="truncate"), binary=True)
    assert "masking limit" in refused(small, binary_row([b'["' + b"y" * 40 + b'"]'], columns))
    assert "UTF-8" in refused(masker, binary_row([b"\xff"], columns))


# --------------------------------------------------------------------------------------------------
# Binary rows


def sample_binary_values(card: int = int(CARD), email: str = EMAIL) -> list[bytes | None]:
    return [
        (7).to_bytes(4, "little"),
        f"mail {email}".encode(),
        card.to_bytes(8, "little"),
        f"{card}.00".encode(),
        b"\x0f\x07\x0c\x0a",
        b"\x00\x00\x00\x00\x00\x00\xe0\x3f",
        None,
        b'{"who": "' + email.encode() + b'"}',
        b"note",
        b"\x01\x22\x00\x00\x00\x16\x3b\x3b",
    ]


def test_binary_rows_are_masked_and_stay_valid() -> None:
    masker = ResultMasker(COLUMNS, DEFAULT, binary=True)
    masked, counts = masker.mask_row(codec.build_binary_row(sample_binary_values(), TYPES))
    values = codec.parse_binary_row(masked, TYPES)
    assert values[1] == b"mail [masked:email]" and values[2] == bytes(8) and values[3] == b"0"
    assert values[6] is None and values[7] == b'{"who": "[masked:email]"}'
    assert counts == {"email": 2, "card": 2}
    assert masker.displayed(masked) == [
        "7",
        "mail [masked:email]",
        "0",
        "0",
        "1807-12-10",
        "0.5",
        None,
        '{"who": "[masked:email]"}',
        "note",
        "-838:59:59",
    ]
    clean = codec.build_binary_row(sample_binary_values(card=42, email="nobody"), TYPES)
    assert masker.mask_row(clean)[0] is clean


def test_displayed_binary_values() -> None:
    columns = [
        codec.column("f", codec.MYSQL_TYPE_FLOAT, charset=63),
        codec.column("d", codec.MYSQL_TYPE_DOUBLE, charset=63),
        codec.column("dt", codec.MYSQL_TYPE_DATETIME, charset=63),
        codec.column("z", codec.MYSQL_TYPE_DATE, charset=63),
        codec.column("u", codec.MYSQL_TYPE_LONGLONG, charset=63, flags=codec.UNSIGNED_FLAG),
        codec.column("t", codec.MYSQL_TYPE_TIME, charset=63),
    ]
    row = codec.build_binary_row(
        [
            codec.encode_binary_value(codec.MYSQL_TYPE_FLOAT, False, 0.1),
            codec.encode_binary_value(codec.MYSQL_TYPE_DOUBLE, False, 2.0),
            codec.encode_binary_value(
                codec.MYSQL_TYPE_DATETIME, False, datetime.datetime(2024, 1, 2, 3, 4, 5, 6)
            ),
            b"",
            b"\xff" * 8,
            codec.encode_binary_value(
                codec.MYSQL_TYPE_TIME, False, datetime.timedelta(hours=25, microseconds=5)
            ),
        ],
        [c.type for c in columns],
    )
    shown = ResultMasker(columns, DEFAULT, binary=True).displayed(row)
    assert shown == [
        "0.1",
        "2",
        "2024-01-02 03:04:05.000006",
        "0000-00-00",
        str(2**64 - 1),
        "25:00:00.000005",
    ]


def test_malformed_rows_are_refused() -> None:
    text = ResultMasker(COLUMNS, DEFAULT, binary=False)
    good = sample_text_row()
    for bad in (good[:-1], good + b"\x00", b"", b"\xff"):
        assert "does not match" in refused(text, bad)
    binary = ResultMasker(COLUMNS, DEFAULT, binary=True)
    wire = codec.build_binary_row(sample_binary_values(), TYPES)
    for bad in (wire[:-1], wire + b"\x00", b"\x01" + wire[1:], b""):
        assert "does not match" in refused(binary, bad)
    unknown = [codec.column("x", 99, charset=63), codec.column("t", codec.MYSQL_TYPE_VAR_STRING)]
    assert not ResultMasker(unknown, MaskingProfile(detectors=()), binary=True).inert
    assert "type 99" in refused(ResultMasker(unknown, DEFAULT, binary=True), b"\x00\x00")
    as_text = ResultMasker(unknown, DEFAULT, binary=False)  # a type not known here, in text: a string
    assert as_text.mask_row(text_row(EMAIL.encode(), b"x"))[1] == {"email": 1}


@st.composite
def results(draw: st.DrawFn) -> tuple[list[ColumnDefinition], list[list[Any]]]:
    kinds = [
        (codec.MYSQL_TYPE_VAR_STRING, 45, st.sampled_from(["", "x", EMAIL, f"card {CARD}", "é✓"])),
        (codec.MYSQL_TYPE_BLOB, 63, st.sampled_from(["", EMAIL, "bytes"])),
        (codec.MYSQL_TYPE_LONGLONG, 63, st.sampled_from([0, -1, int(CARD), 2**63 - 1])),
        (codec.MYSQL_TYPE_NEWDECIMAL, 63, st.sampled_from(["0", CARD + ".00", "-1.50"])),
        (codec.MYSQL_TYPE_JSON, 63, st.sampled_from(["null", f"[{CARD}]", f'{{"e": "{EMAIL}"}}'])),
        (codec.MYSQL_TYPE_DATE, 63, st.dates()),
        (codec.MYSQL_TYPE_DOUBLE, 63, st.floats(allow_nan=False)),
        (codec.MYSQL_TYPE_TINY, 63, st.integers(-128, 127)),
    ]
    picked = draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=6))
    names = draw(
        st.lists(st.sampled_from(["a", "ssn", "card", "b"]), min_size=len(picked), max_size=len(picked))
    )
    columns = [codec.column(n, t, charset=c) for n, (t, c, _) in zip(names, picked, strict=True)]
    rows = draw(
        st.lists(
            st.tuples(*[st.one_of(st.none(), s) for _, _, s in picked]).map(list), min_size=1, max_size=5
        )
    )
    return columns, rows


@given(
    results(), st.booleans(), st.sampled_from([DEFAULT, MaskingProfile(columns=frozenset({"ssn", "card"}))])
)
@settings(max_examples=60, deadline=None)
def test_masked_rows_still_decode_with_their_types(
    result: tuple[list[ColumnDefinition], list[list[Any]]], binary: bool, profile: MaskingProfile
) -> None:
    columns, rows = result
    types = [c.type for c in columns]
    payloads = []
    for row in rows:
        if binary:
            cells = [
                None if v is None else codec.encode_binary_value(t, False, v)
                for v, t in zip(row, types, strict=True)
            ]
            payloads.append(codec.build_binary_row(cells, types))
        else:
            cells = [None if v is None else str(v).encode() for v in row]
            payloads.append(codec.build_text_row(cells))
    masker = ResultMasker(columns, profile, binary=binary)
    out, counts = masker.mask_rows(payloads)
    assert len(out) == len(payloads) and all(n > 0 for n in counts.values())
    for before, after in zip(payloads, out, strict=True):
        cells = codec.parse_binary_row(after, types) if binary else codec.parse_text_row(after, len(types))
        for raw, t, c in zip(cells, types, columns, strict=True):
            if raw is not None and binary:
                codec.decode_binary_value(t, c.unsigned, raw)  # still a value of its type
        assert len(masker.displayed(after)) == len(columns)
        assert CARD not in "".join(v for v in masker.displayed(after) if v)  # every card masked, any type


# --------------------------------------------------------------------------------------------------
# Statement parameters


def test_parameter_text_and_what_people_see() -> None:
    cases: list[tuple[Parameter, str | None, str | None]] = [
        (Parameter(codec.MYSQL_TYPE_LONGLONG, False, int(CARD)), CARD, "0"),
        (Parameter(codec.MYSQL_TYPE_LONGLONG, False, 42), "42", "42"),
        (Parameter(codec.MYSQL_TYPE_NEWDECIMAL, False, CARD + ".00"), CARD + ".00", "0"),
        (Parameter(codec.MYSQL_TYPE_NEWDECIMAL, False, "12.50"), "12.50", "12.50"),
        (Parameter(codec.MYSQL_TYPE_VAR_STRING, False, f"to {EMAIL}"), f"to {EMAIL}", "to [masked:email]"),
        (Parameter(codec.MYSQL_TYPE_BLOB, False, EMAIL.encode()), EMAIL, "[masked:email]"),
        (Parameter(codec.MYSQL_TYPE_BLOB, False, b"\xff\x00"), "0xff00", "0xff00"),
        (Parameter(codec.MYSQL_TYPE_DOUBLE, False, 0.5), "0.5", "0.5"),
        (Parameter(codec.MYSQL_TYPE_DATE, False, datetime.date(2024, 2, 29)), "2024-02-29", "2024-02-29"),
        (Parameter(codec.MYSQL_TYPE_TIME, False, -datetime.timedelta(hours=1)), "-01:00:00", "-01:00:00"),
        (Parameter(codec.MYSQL_TYPE_DATETIME, False, "0000-00-00 00:00:00"), "0000-00-00 00:00:00", None),
        (Parameter(codec.MYSQL_TYPE_VAR_STRING, False, None), None, None),
        (Parameter(codec.MYSQL_TYPE_BLOB, False, codec.LONG_DATA), "[long data]", "[long data]"),
    ]
    for param, text, shown in cases:
        assert parameter_text(param.value) == text
        assert shown_parameter(param, DEFAULT) == (shown if shown is not None or text is None else text)


# --------------------------------------------------------------------------------------------------
# Rows from the real server


@pytest.fixture
def people() -> Iterator[str]:
    name = f"values_people_{os.getpid()}_{os.urandom(3).hex()}"
    with pymysql.connect(
        host=MY_HOST, port=MY_PORT, user=MY_USER, password=MY_PASSWORD, database=MY_DATABASE
    ) as conn:
        with conn.cursor() as cursor:
            cursor.execute(
                f"CREATE TABLE {name} (id INT PRIMARY KEY, email VARCHAR(80), card BIGINT, ssn CHAR(11),"
                " note TEXT CHARACTER SET latin1, raw VARBINARY(16), amount DECIMAL(20, 2), born DATE)"
            )
            cursor.execute(
                f"INSERT INTO {name} VALUES (1, %s, %s, '078-05-1120', %s, %s, %s, '1815-12-10'),"
                " (2, 'nobody', 42, NULL, 'café', 'abc', 1.50, NULL)",
                (EMAIL, int(CARD), f"Zoë {EMAIL}", b"ok", int(CARD)),
            )
        conn.commit()
        try:
            yield name
        finally:
            with conn.cursor() as cursor:
                cursor.execute(f"DROP TABLE {name}")


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_real_rows_are_masked_in_both_protocols(people: str, binary: bool) -> None:
    with socket.create_connection((MY_HOST, MY_PORT), timeout=10) as sock:
        client = Client(sock)
        assert isinstance(client.login(MY_USER, MY_PASSWORD.encode()), codec.Handshake)
        client.run(codec.build_query("SET character_set_results = latin1"))  # text comes in latin1
        sql = f"SELECT id, email, card, ssn AS x, note, raw, amount, born FROM {people} ORDER BY id"
        if binary:
            head, _ = client.prepare(sql)
            events = client.run(codec.build_stmt_execute(head.statement_id, []))
        else:
            events = client.run(codec.build_query(sql))
    columns = [e.definition for e in events if isinstance(e, codec.Column)]
    payloads = [e.payload for e in events if isinstance(e, codec.TextRow | codec.BinaryRow)]
    assert len(payloads) == 2 and {columns[1].charset, columns[4].charset} == {LATIN1}
    masker = ResultMasker(columns, MaskingProfile(columns=frozenset({"ssn"})), binary=binary)
    out, counts = masker.mask_rows(payloads)
    assert out[1] is payloads[1]  # nothing to mask in the second row
    assert counts == {"email": 2, "card": 2, "field": 1}
    shown = masker.displayed(out[0])
    assert shown == ["1", "[masked:email]", "0", "[masked]", "Zoë [masked:email]", "ok", "0", "1815-12-10"]
    assert masker.displayed(out[1]) == ["2", "nobody", "42", None, "café", "abc", "1.50", None]
