"""The masking engine: structure kept, field rules, profiles, limits, encodings, properties."""

from __future__ import annotations

import gzip
import json
import re
import string
import zlib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from wardgate.masking import (
    BUILTIN_DETECTORS,
    FIELD,
    Detector,
    MaskingProfile,
    MaskingRefused,
    compile_path,
    mask_body,
    mask_json,
    mask_rows,
    mask_text,
)

CARD = "4242424242424242"
SSN = "123-45-6789"
EMAIL = "jane.doe@example.com"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def doc() -> dict[str, Any]:
    return {
        "users": [
            {"id": 1, "email": EMAIL, "card": CARD, "note": f"ssn {SSN}\nthanks", "active": True},
            {"id": 2, "email": "bob@example.org", "card_number": int(CARD), "score": 1.5, "tags": []},
        ],
        "meta": {"password": "hunter2", "total": 2, "next": None},
    }


# --- text ----------------------------------------------------------------------------------------


def test_mask_text_formats_and_counts() -> None:
    result = mask_text(f"card {CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:]}, mail {EMAIL}, ssn {SSN}")
    assert result.value == "card **** **** **** 4242, mail [masked:email], ssn [masked:us_ssn]"
    assert result.counts == {"card": 1, "email": 1, "us_ssn": 1}
    assert result.total == 3 and not result.truncated


def test_mask_text_leaves_clean_text_alone() -> None:
    text = "order ORD-2024-000123 shipped 2024-05-12T10:00:00Z, version 1.2.3, total 1,234.56"
    assert mask_text(text).value == text
    assert mask_text("").value == ""


def test_exempt_detectors_and_profiles() -> None:
    text = f"{EMAIL} {SSN}"
    readers = MaskingProfile(exempt=frozenset({"email"}))
    assert mask_text(text, readers).value == f"{EMAIL} [masked:us_ssn]"
    only_cards = MaskingProfile(detectors=("card",))
    assert mask_text(text, only_cards).value == text
    custom = MaskingProfile(detectors=("email", Detector.from_regex("employee", r"EMP-\d{6}")))
    assert mask_text("EMP-123456 " + EMAIL, custom).value == "[masked:employee] [masked:email]"
    with pytest.raises(ValueError, match="unknown detector"):
        MaskingProfile(detectors=("nope",))
    with pytest.raises(ValueError):
        MaskingProfile(on_limit="drop")  # type: ignore[arg-type]


def test_text_over_limit_truncates_or_refuses() -> None:
    text = "a" * 95 + " " + CARD + " tail " + "b" * 200
    with pytest.raises(MaskingRefused, match="limit"):
        mask_text(text, MaskingProfile(max_bytes=100))
    result = mask_text(text, MaskingProfile(max_bytes=100, on_limit="truncate"))
    assert result.truncated
    # the card straddles the cut: it is masked whole, nothing of it leaks
    assert result.value == "a" * 95 + " ************4242…[wardgate: truncated at 100 bytes]"
    assert result.counts == {"card": 1}


# --- JSON ----------------------------------------------------------------------------------------


def test_json_structure_kept_values_masked() -> None:
    raw = json.dumps(doc()).encode()
    result = mask_json(raw)
    out = json.loads(result.value)
    assert out["users"][0]["email"] == "[masked:email]"
    assert out["users"][0]["card"] == "************4242"
    assert out["users"][0]["note"] == "ssn [masked:us_ssn]\nthanks"
    assert out["users"][1]["card_number"] == 0  # numbers stay numbers
    assert out["users"][1]["score"] == 1.5 and out["users"][0]["active"] is True
    assert out["meta"] == {"password": "hunter2", "total": 2, "next": None}  # no field rule yet
    assert result.counts == {"email": 2, "card": 2, "us_ssn": 1}
    assert isinstance(result.value, bytes)


def test_json_accepts_str_and_objects() -> None:
    as_str = mask_json(json.dumps(doc()))
    assert isinstance(as_str.value, str)
    original = doc()
    as_obj = mask_json(original)
    assert as_obj.value["users"][1]["email"] == "[masked:email]"
    assert original["users"][1]["email"] == "bob@example.org"  # the input is not changed
    assert as_obj.value == json.loads(as_str.value)


def test_json_keys_are_never_changed() -> None:
    raw = json.dumps({EMAIL: {"card": CARD}, "by_ip": {"10.0.0.1": "10.0.0.2"}})
    out = json.loads(mask_json(raw).value)
    assert list(out) == [EMAIL, "by_ip"]
    assert out[EMAIL] == {"card": "************4242"}
    assert out["by_ip"] == {"10.0.0.1": "[masked:ipv4]"}
    spaced = '{"10.0.0.1" : "x", "y" :"10.0.0.3"}'
    assert json.loads(mask_json(spaced).value) == {"10.0.0.1": "x", "y": "[masked:ipv4]"}


def test_json_escapes() -> None:
    # values after escapes, escaped slashes in secrets, escaped quotes around values
    raw = json.dumps({"a": f"x\n{EMAIL}", "b": f'say "{SSN}"', "aws_secret_access_key": AWS_SECRET})
    php_style = raw.replace("/", "\\/")
    for text in (raw, php_style):
        out = json.loads(mask_json(text).value)
        assert out == {
            "a": "x\n[masked:email]",
            "b": 'say "[masked:us_ssn]"',
            "aws_secret_access_key": "[masked:aws_secret_access_key]",
        }
    # an escaped printable character (here "@") could hide a value: decoded first
    hidden = '{"a": "jane\\u0040example.com", "b": "Jos\\u00e9 \\u00a04242424242424242"}'
    out = json.loads(mask_json(hidden).value)
    assert out == {"a": "[masked:email]", "b": "José \xa0************4242"}
    # Go's HTML escaping does not force a decode, and still masks
    go = '{"a": "\\u003cb\\u003e jane@example.com \\u0026"}'
    assert json.loads(mask_json(go).value) == {"a": "<b> [masked:email] &"}


def test_json_lone_surrogate_stays_valid() -> None:
    raw = b'{"a": "\\ud800 jane\\u0040example.com"}'
    out = mask_json(raw).value
    assert json.loads(out)["a"] == "\ud800 [masked:email]"


def test_invalid_json_is_still_masked_as_text() -> None:
    result = mask_json(b'{"a": "' + EMAIL.encode() + b'", oops')
    assert result.value == b'{"a": "[masked:email]", oops'


def test_field_rules() -> None:
    profile = MaskingProfile(fields=("$..password", "$.users[*].note", "$.meta.total", "$.users[*].tags"))
    result = mask_json(json.dumps(doc()), profile)
    out = json.loads(result.value)
    assert out["meta"]["password"] == "[masked]"
    assert out["meta"]["total"] == 0  # by type
    assert [u.get("note") for u in out["users"]] == ["[masked]", None]
    assert out["users"][1]["tags"] == []
    assert out["users"][0]["email"] == "[masked:email]"  # detectors still run
    assert result.counts[FIELD] == 4


def test_field_rules_mask_containers_by_type() -> None:
    profile = MaskingProfile(fields=("$.secret", "$..flag"))
    value = {"secret": {"a": [1, "x", True, None, 2.5, {"b": "y"}]}, "flag": True}
    assert mask_json(value, profile).value == {
        "secret": {"a": [0, "[masked]", False, None, 0.0, {"b": "[masked]"}]},
        "flag": False,
    }
    assert mask_json({"a": 1}, MaskingProfile(fields=("$",))).value == {"a": 0}


def test_field_rules_fast_path_skips_documents_without_the_key() -> None:
    profile = MaskingProfile(fields=("$..password",))
    raw = '{"a":  1,   "b": "x"}'
    assert mask_json(raw, profile).value == raw  # not parsed and serialised again


def test_field_rules_refuse_invalid_json_that_may_hold_them() -> None:
    with pytest.raises(MaskingRefused, match="not valid JSON"):
        mask_json('{"password": "x", oops', MaskingProfile(fields=("$..password",)))


def test_compile_path() -> None:
    assert compile_path("$.users[*].email") == (("child", "users"), ("any", ""), ("child", "email"))
    assert compile_path("$..password") == (("descend", "password"),)
    for bad in ("users.email", "$.a[0]", "$['a']", "$.a..", "$."):
        with pytest.raises(ValueError):
            compile_path(bad)


def test_decoded_only_detectors_run_on_decoded_strings() -> None:
    profile = MaskingProfile(detectors=("email", Detector.from_regex("line", r"^secret.*$", flags=8)))
    raw = json.dumps({"a": "hello\nsecret stuff", "b": EMAIL})
    out = json.loads(mask_json(raw, profile).value)
    assert out == {"a": "hello\n[masked:line]", "b": "[masked:email]"}


def test_from_words_runs_on_encoded_json() -> None:
    profile = MaskingProfile(detectors=(Detector.from_words("codename", ["apollo"]),))
    out = json.loads(mask_json(json.dumps({"a": "x\nApollo launch"}), profile).value)
    assert out == {"a": "x\n[masked:codename] launch"}


def test_deep_nesting_is_refused_without_crashing() -> None:
    deep = "[" * 10_000 + "]" * 10_000
    with pytest.raises(MaskingRefused, match="deeper"):
        mask_json(deep)
    with pytest.raises(MaskingRefused, match="deeper"):
        mask_json(deep.encode(), MaskingProfile(on_limit="truncate"))
    # allowed depth but too deep for the parser (a field rule needs a parse): refused, not crashed
    nested = '{"password": ' + "[" * 5000 + "]" * 5000 + "}"
    with pytest.raises(MaskingRefused):
        mask_json(nested, MaskingProfile(max_depth=100_000, fields=("$..password",)))
    # brackets inside strings do not count
    assert mask_json(json.dumps({"a": "[" * 200})).value == json.dumps({"a": "[" * 200})
    ok = json.dumps([[[[EMAIL]]]])
    assert mask_json(ok, MaskingProfile(max_depth=4)).value == '[[[["[masked:email]"]]]]'
    with pytest.raises(MaskingRefused):
        mask_json(ok, MaskingProfile(max_depth=3))


def test_deep_objects_are_refused() -> None:
    value: Any = "x"
    for _ in range(5000):
        value = [value]
    with pytest.raises(MaskingRefused):
        mask_json(value)


def test_huge_single_string() -> None:
    big = "x" * 2_000_000 + " " + EMAIL + " " + "y" * 10
    raw = json.dumps({"log": big, "email": EMAIL})
    result = mask_json(raw, MaskingProfile(max_bytes=8_000_000, max_string=4_000_000))
    out = json.loads(result.value)
    assert out["log"].endswith("[masked:email] " + "y" * 10) and out["email"] == "[masked:email]"
    limited = MaskingProfile(max_bytes=8_000_000, max_string=1000, on_limit="truncate")
    out = json.loads(mask_json(raw, limited).value)
    assert out["log"] == "x" * 1000 + "…[wardgate: truncated at 1000 characters]"
    assert out["email"] == "[masked:email]"
    with pytest.raises(MaskingRefused, match="longer"):
        mask_json(raw, MaskingProfile(max_bytes=8_000_000, max_string=1000))


def test_long_string_cut_keeps_escapes_and_values_whole() -> None:
    value = "a" * 8 + "\n" + EMAIL + "b" * 50
    raw = json.dumps({"s": value, "t": "short"})
    profile = MaskingProfile(max_string=12, on_limit="truncate")
    out = json.loads(mask_json(raw, profile).value)
    assert out == {"s": "a" * 8 + "\n[masked:email]…[wardgate: truncated at 12 characters]", "t": "short"}


def test_json_over_max_bytes() -> None:
    raw = json.dumps([{"email": EMAIL, "pad": "z" * 50}] * 40).encode()
    with pytest.raises(MaskingRefused, match="larger"):
        mask_json(raw, MaskingProfile(max_bytes=500))
    result = mask_json(raw, MaskingProfile(max_bytes=500, on_limit="truncate"))
    assert result.truncated
    assert result.value.endswith("…[wardgate: truncated at 500 bytes]".encode())
    assert EMAIL.encode() not in result.value and b"[masked:email]" in result.value


def test_non_utf8_json_is_refused() -> None:
    with pytest.raises(MaskingRefused, match="UTF-8"):
        mask_json(b'{"a": "\xff"}')


# --- SQL rows ------------------------------------------------------------------------------------


def test_mask_rows() -> None:
    columns = ["id", "Email", "password_hash", "card", "notes", "meta", "paid", "blob"]
    rows = [
        (1, EMAIL, "$2b$12$abc", int(CARD), "call 555-123-4567", {"ip": "10.1.2.3"}, Decimal("9.50"), b"ok"),
        (2, None, None, 42, "nothing", [CARD], Decimal("1"), EMAIL.encode()),
    ]
    result = mask_rows(columns, rows, MaskingProfile(columns=frozenset({"PASSWORD_HASH"})))
    assert result.value == [
        (
            1,
            "[masked:email]",
            "[masked]",
            0,
            "call [masked:phone]",
            {"ip": "[masked:ipv4]"},
            Decimal("9.50"),
            b"ok",
        ),
        (2, None, None, 42, "nothing", ["************4242"], Decimal("1"), b"[masked:email]"),
    ]
    assert result.counts == {"email": 2, FIELD: 1, "card": 2, "phone": 1, "ipv4": 1}
    with pytest.raises(MaskingRefused, match="binary"):
        mask_rows(["b"], [(b"\xff\xfe",)])
    assert mask_rows(["b"], [(b"\xff",)], MaskingProfile(allow_binary=True)).value == [(b"\xff",)]
    with pytest.raises(ValueError):
        mask_rows(["a", "b"], [(1,)])


def test_mask_rows_long_cells() -> None:
    cell = "x" * 50 + " " + EMAIL
    with pytest.raises(MaskingRefused):
        mask_rows(["c"], [(cell,)], MaskingProfile(max_string=20))
    out = mask_rows(["c"], [(cell,)], MaskingProfile(max_string=20, on_limit="truncate")).value
    assert out == [("x" * 20 + "…[wardgate: truncated at 20 characters]",)]


# --- HTTP bodies ---------------------------------------------------------------------------------


def test_body_json_and_text() -> None:
    body = json.dumps({"e": EMAIL}).encode()
    result = mask_body(body, "application/json; charset=utf-8", None)
    assert json.loads(result.value) == {"e": "[masked:email]"}
    assert result.content_encoding is None and result.content_type == "application/json; charset=utf-8"
    problem = mask_body(body, "application/problem+json", "identity")
    assert json.loads(problem.value) == {"e": "[masked:email]"}
    text = mask_body(f"hello {EMAIL}".encode(), "text/plain", None)
    assert text.value == b"hello [masked:email]"
    latin = mask_body(f"café {EMAIL}".encode("latin-1"), "text/plain; charset=ISO-8859-1", None)
    assert latin.value == "café [masked:email]".encode("latin-1")
    unknown = mask_body(f"x {EMAIL}".encode(), None, None)
    assert unknown.value == b"x [masked:email]"
    assert mask_body(b"", "application/json", None).value == b""


def test_body_compressed() -> None:
    body = json.dumps({"e": EMAIL}).encode()
    for encoding, data in [
        ("gzip", gzip.compress(body)),
        ("deflate", zlib.compress(body)),
        ("deflate", zlib.compress(body, wbits=-15) if False else _raw_deflate(body)),
        ("gzip", gzip.compress(body[:5]) + gzip.compress(body[5:])),  # two members
    ]:
        result = mask_body(data, "application/json", encoding)
        assert json.loads(result.value) == {"e": "[masked:email]"}, encoding
        assert result.content_encoding is None
    with pytest.raises(MaskingRefused, match="gzip"):
        mask_body(b"not gzip", "application/json", "gzip")
    with pytest.raises(MaskingRefused, match="compress"):
        mask_body(body, "application/json", "compress")
    try:
        import brotli  # noqa: F401
    except ImportError:
        with pytest.raises(MaskingRefused, match="brotli"):
            mask_body(body, "application/json", "br")


def _raw_deflate(data: bytes) -> bytes:
    engine = zlib.compressobj(wbits=-15)
    return engine.compress(data) + engine.flush()


def test_body_decompression_bomb_is_bounded() -> None:
    bomb = gzip.compress(b"a" * 20_000_000)
    with pytest.raises(MaskingRefused, match="larger"):
        mask_body(bomb, "text/plain", "gzip", MaskingProfile(max_bytes=1_000_000))
    result = mask_body(bomb, "text/plain", "gzip", MaskingProfile(max_bytes=1000, on_limit="truncate"))
    assert result.truncated and result.value == b"a" * 1000 + "…[wardgate: truncated at 1000 bytes]".encode()


def test_body_binary_and_invalid_utf8() -> None:
    with pytest.raises(MaskingRefused, match="binary"):
        mask_body(b"\x89PNG\r\n", "image/png", None)
    passed = mask_body(b"\x89PNG\r\n", "image/png", "gzip", MaskingProfile(allow_binary=True))
    assert passed.value == b"\x89PNG\r\n" and passed.content_encoding == "gzip"
    with pytest.raises(MaskingRefused, match="UTF-8"):
        mask_body(b'{"a": "\xff"}', "application/json", None)
    with pytest.raises(MaskingRefused, match="UTF-8"):
        mask_body(b"caf\xe9", "text/plain", None)
    with pytest.raises(MaskingRefused, match="binary"):
        mask_body(b"\x00\x01\x02abc", None, None)
    with pytest.raises(MaskingRefused, match="binary"):
        mask_body(b"\xff\xfe\x00", "application/x-unknown", None)
    with pytest.raises(MaskingRefused, match="charset"):
        mask_body(b"abc", "text/plain; charset=klingon", None)


def test_body_json_over_limit_becomes_text() -> None:
    body = json.dumps([EMAIL] * 100).encode()
    result = mask_body(body, "application/json", None, MaskingProfile(max_bytes=100, on_limit="truncate"))
    assert result.truncated and result.content_type == "text/plain; charset=utf-8"
    assert EMAIL.encode() not in result.value


# --- properties ----------------------------------------------------------------------------------

SENSITIVE = st.sampled_from(
    [
        CARD,
        "4242 4242 4242 4242",
        SSN,
        EMAIL,
        "10.0.0.1",
        "fe80::1",
        "+1 415 555 2671",
        "AKIAIOSFODNN7EXAMPLE",
    ]
)
TEXTS = st.lists(st.one_of(st.text(max_size=20), SENSITIVE), max_size=8).map("".join)
SEPARATED = st.lists(st.one_of(st.text(max_size=20), SENSITIVE), max_size=8).map(" | ".join)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXTS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXTS, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_mask_text_never_crashes(text: str) -> None:
    result = mask_text(text)
    assert isinstance(result.value, str)
    mask_text(result.value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SEPARATED)
def test_separated_values_are_always_masked(text: str) -> None:
    masked = mask_text(text).value
    for piece in masked.split(" | "):
        assert piece not in (
            CARD,
            "4242 4242 4242 4242",
            SSN,
            EMAIL,
            "10.0.0.1",
            "fe80::1",
            "AKIAIOSFODNN7EXAMPLE",
        )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON_VALUES, st.booleans(), st.booleans())
def test_mask_json_output_always_parses(value: Any, ensure_ascii: bool, indent: bool) -> None:
    encoded = json.dumps(value, ensure_ascii=ensure_ascii, indent=2 if indent else None)
    for document in (encoded, encoded.encode("utf-8", "surrogatepass")):
        try:
            result = mask_json(document)
        except MaskingRefused:
            continue  # lone surrogates in bytes are not UTF-8: refused, fine
        out = json.loads(result.value)
        assert type(out) is type(value)
        if isinstance(value, dict):
            assert list(out) == list(value)  # keys unchanged, in order
    masked = mask_json(value).value
    assert json.loads(json.dumps(masked)) == masked


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(["application/json", "text/plain", None, "image/png"]))
def test_mask_body_never_crashes(body: bytes, content_type: str | None) -> None:
    try:
        result = mask_body(body, content_type, None)
    except MaskingRefused as refused:
        assert refused.reason
    else:
        assert isinstance(result.value, bytes)


def test_rows_masked_in_one_pass_equal_cell_by_cell() -> None:
    """mask_rows scans all short cells at once; the result must be what each cell alone gives."""
    import random

    from tests import masking_corpus as corpus

    rng = random.Random(11)
    makers = [corpus.card, corpus.email, corpus.phone, corpus.ssn, corpus.aws_key_id, corpus.aws_secret]
    makers += [corpus.jwt, corpus.pem, corpus.api_token, corpus.ipv4, corpus.ipv6, corpus.lookalike]
    pieces = ["", " ", "-", "4242", "version ", "x", "\n", "é", ":", "12", "@", "\x00"]

    def cell() -> str:
        parts = [
            rng.choice(makers)(rng) if rng.random() < 0.5 else rng.choice(pieces)
            for _ in range(rng.randint(1, 3))
        ]
        return rng.choice(["", " ", "-", "\n"]).join(parts)

    for _ in range(40):
        rows = [[cell() for _ in range(6)] for _ in range(rng.randint(1, 30))]
        result = mask_rows([f"c{i}" for i in range(6)], rows)
        expected_counts: dict[str, int] = {}
        expected = []
        for row in rows:
            out = []
            for value in row:
                alone = mask_text(value)
                out.append(alone.value)
                for name, n in alone.counts.items():
                    expected_counts[name] = expected_counts.get(name, 0) + n
            expected.append(tuple(out))
        assert result.value == expected
        assert result.counts == expected_counts


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(alphabet="0123456789 -.:@abcxyz\n\x00", max_size=40), min_size=1, max_size=12))
def test_rows_in_one_pass_equal_cell_by_cell_on_any_text(cells: list[str]) -> None:
    result = mask_rows(["c"], [[c] for c in cells])
    assert [row[0] for row in result.value] == [mask_text(c).value for c in cells]


def test_a_value_across_two_cells_is_not_a_value_in_either() -> None:
    spanning = Detector.from_regex("spanning", r"x[^y]*z")  # would match across cells if joined
    profile = MaskingProfile(detectors=(spanning,))
    result = mask_rows(["c"], [["x1"], ["2z"], ["x3z"]], profile)
    assert result.value == [("x1",), ("2z",), ("[masked:spanning]",)]
    assert result.counts == {"spanning": 1}


def test_only_the_number_detectors_match_bare_numbers() -> None:
    """engine.NUMBER_DETECTORS lets bare numbers skip the other built-in detectors: check it holds."""
    import random

    from wardgate.masking import BUILTIN_DETECTORS
    from wardgate.masking.engine import NUMBER_DETECTORS

    rng = random.Random(3)
    shortest: dict[str, int] = {}
    for digits in range(1, 21):
        numbers = [str(rng.randint(10 ** (digits - 1), 10**digits - 1)) for _ in range(2000)]
        numbers += ["078051120", "4155550100", "14155550100", "4242424242424242", "5555555555554444"]
        for name, detector in BUILTIN_DETECTORS.items():
            if any(detector.matches(n) for n in numbers if len(n) == digits):
                shortest[name] = min(shortest.get(name, digits), digits)
    assert set(shortest) <= set(NUMBER_DETECTORS)
    assert all(shortest[name] >= NUMBER_DETECTORS[name] for name in shortest)
    rows = mask_rows(["id", "card"], [(7, 4242424242424242), (8, 42)])
    assert rows.value == [(7, 0), (8, 42)] and rows.counts == {"card": 1}


# --- values among other numbers (issue 15) -------------------------------------------------------

ISSUE_15 = [
    ("ref 12345 4242 4242 4242 4242", "ref 12345 **** **** **** 4242"),
    ("+1 212-555-9479 2026-01-05T10:44:00Z", "[masked:phone] 2026-01-05T10:44:00Z"),
    ("+44 20 7946 5167 978-2-294-30623-0", "[masked:phone] 978-2-294-30623-0"),
    ("+1 415 555 2671 2024", "[masked:phone] 2024"),
    ("2026 4242 4242 4242 4242 4000 0566 5566 5556 7", "2026 **** **** **** 4242 **** **** **** 5556 7"),
    ("ssn 078 05 1120 2026 v1.2", "ssn [masked:us_ssn] 2026 v1.2"),
]


@pytest.mark.parametrize(("text", "expected"), ISSUE_15)
def test_values_next_to_other_numbers(text: str, expected: str) -> None:
    assert mask_text(text).value == expected
    assert json.loads(mask_json(json.dumps({"note": text})).value) == {"note": expected}
    rows = mask_rows(["a", "b"], [(text, "x " + text)])
    assert rows.value == [(expected, "x " + expected)]


AMBIGUOUS = [
    # "5009 4242 4242 4242" is a valid card too: nothing of either may show
    ("5009 4242 4242 4242 4242", "[masked:card]"),
    ("4953 5726 7937 9807 2023", "[masked:card]"),  # so is "5726 7937 9807 2023"
    ("paid with 4242 4242 4242 4242 2 times", "paid with **** **** **** 4242 2 times"),  # not 4-4-4-1
]


@pytest.mark.parametrize(("text", "expected"), AMBIGUOUS)
def test_overlapping_cards_are_masked_as_one(text: str, expected: str) -> None:
    assert mask_text(text).value == expected


DIGIT = "0123456789"
# brands and lengths (tests/masking_corpus.py); a card grouped by spaces is drawn only with 15, 16
# or 19 digits: "4222 2222 2222 2 123" may be a 16-digit Visa, "3000 000000 0000 2026" an 18-digit
# Diners card, so a number after a card of another length may be part of it
CARD_PREFIXES = [("4", 16), ("4", 13), ("51", 16), ("2720", 16), ("34", 15), ("37", 15), ("6011", 16)]
CARD_PREFIXES += [("65", 16), ("3528", 16), ("3589", 19), ("36", 14), ("62", 19), ("50", 16), ("67", 18)]
CARD_LAYOUTS = {13: [4, 4, 4, 1], 14: [4, 6, 4], 15: [4, 6, 5], 16: [4, 4, 4, 4], 17: [4, 4, 4, 4, 1]}
CARD_LAYOUTS |= {18: [4, 4, 4, 4, 2], 19: [4, 4, 4, 4, 3]}
IBAN_COUNTRIES = ["DE", "GB", "FR", "NL", "ES", "IT", "CH", "BE", "NO", "PL", "SE", "IE"]


def _grouped(number: str, sizes: list[int], sep: str) -> str:
    out, at = [], 0
    for size in sizes:
        out.append(number[at : at + size])
        at += size
    return sep.join(out)


@st.composite
def card_values(draw: st.DrawFn) -> tuple[str, str]:
    from wardgate.masking import luhn

    prefix, length = draw(st.sampled_from(CARD_PREFIXES))
    body = prefix + draw(st.text(DIGIT, min_size=length - len(prefix) - 1, max_size=length - len(prefix) - 1))
    number = body + next(c for c in DIGIT if luhn(body + c))
    style = draw(st.sampled_from(["plain", "dash", "space"] if length in (15, 16, 19) else ["plain", "dash"]))
    if style != "plain":
        number = _grouped(number, CARD_LAYOUTS[length], " " if style == "space" else "-")
    return "card", number


@st.composite
def phone_values(draw: st.DrawFn) -> tuple[str, str]:
    def digits(n: int) -> str:
        return draw(st.text(DIGIT, min_size=n, max_size=n))

    area = str(draw(st.integers(2, 9))) + digits(2)
    exchange, line = digits(3), digits(4)
    # international numbers have the count of digits their country's numbers have at most, so
    # a number after them is never part of them (+49 has no fixed count: not drawn)
    forms = [
        f"+1 {area} {exchange} {line}",
        f"+1 ({area}) {exchange}-{line}",
        f"+1 {area}-{exchange}-{line}",
        f"+1.{area}.{exchange}.{line}",
        f"+1{area}{exchange}{line}",
        f"+44 20 {digits(4)} {digits(4)}",
        f"+33 6 {digits(2)} {digits(2)} {digits(2)} {digits(2)}",
        f"+91 {digits(5)} {digits(5)}",
        f"({area}) {exchange}-{line}",
        f"{area}-{exchange}-{line}",
        f"{area}.{exchange}.{line}",
        f"{area} {exchange} {line}",
    ]
    return "phone", draw(st.sampled_from(forms))


@st.composite
def ssn_values(draw: st.DrawFn) -> tuple[str, str]:
    area = draw(st.integers(1, 899).filter(lambda a: a != 666))
    sep = draw(st.sampled_from("- "))
    return "us_ssn", f"{area:03d}{sep}{draw(st.integers(1, 99)):02d}{sep}{draw(st.integers(1, 9999)):04d}"


@st.composite
def iban_values(draw: st.DrawFn) -> tuple[str, str]:
    from wardgate.masking.detectors import IBAN_LENGTHS

    country = draw(st.sampled_from(IBAN_COUNTRIES))
    size = IBAN_LENGTHS[country] - 4
    letters = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=4)
    bank = draw(letters) if country in ("GB", "NL", "IE") else ""
    bban = bank + draw(st.text(DIGIT, min_size=size - len(bank), max_size=size - len(bank)))
    numeric = "".join(str(ord(c) - 55) if c.isalpha() else c for c in bban + country + "00")
    compact = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    if draw(st.booleans()):
        return "iban", " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return "iban", compact


IPV4_VALUES = st.tuples(st.integers(1, 223).filter(lambda o: o != 127), *[st.integers(0, 255)] * 3).map(
    lambda octets: ("ipv4", ".".join(map(str, octets)))
)
VALUES = st.one_of(card_values(), phone_values(), ssn_values(), iban_values(), IPV4_VALUES)

YEARS = st.integers(1900, 2099).map(str)
TIMESTAMPS = st.builds(
    lambda form, y, mo, d, h, mi, s: form.format(y=y, mo=mo, d=d, h=h, mi=mi, s=s),
    st.sampled_from(
        [
            "{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z",
            "{y}-{mo:02d}-{d:02d}",
            "{h:02d}:{mi:02d}:{s:02d}",
            "{d:02d}.{mo:02d}.{y}",
            "{d:02d}/{mo:02d}/{y}",
            "{y}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}",
        ]
    ),
    st.integers(1970, 2099),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
)
HYPHENATED = st.lists(st.text(DIGIT, min_size=1, max_size=5), min_size=2, max_size=5).map("-".join)
VERSIONS = st.tuples(st.sampled_from(["", "v"]), st.lists(st.integers(0, 30), min_size=2, max_size=3)).map(
    lambda v: v[0] + ".".join(map(str, v[1]))
)
CHAINS = st.one_of(TIMESTAMPS, HYPHENATED, VERSIONS)


def _benign(text: str) -> bool:
    return mask_text(text).total == 0  # a neighbour is not a value itself (123-45-6789, 1.2.3.4)


# Which neighbours are drawn keeps every draw unambiguous. A card grouped by spaces starts at a
# group of four digits and takes groups of at most six: before a value, a group of two to four
# digits could start a card, a phone (555 123 ...) or an SSN with the value's first group; after
# it, a group of up to six digits could end a card that starts in the value, and so could a year
# after a card grouped 4-4-4-4 ("4242 4242 4242 4242 2026": "4242 4242 4242 2026" may be the card)
# or two years after a phone ("+44 20 5946 5167 2026 2027": "5946 5167 2026 2027"), and 555-0100
# after a last group of three (an IBAN's, "... 0000 200 555-0100": "200 555-0100" is a phone).
# Those draws are real ambiguities, not misses; the next property checks that the value is masked.
LEFT = st.one_of(
    YEARS, st.text(DIGIT, min_size=5, max_size=12), st.text(DIGIT, min_size=1, max_size=1), CHAINS
).filter(_benign)
RIGHT = st.one_of(YEARS, st.text(DIGIT, min_size=7, max_size=12), CHAINS).filter(
    lambda n: _benign(n) and not re.fullmatch(r"[0-9]{3}-[0-9]{4}", n)
)
SEPARATORS = st.sampled_from([" ", " ", " ", ", ", "\n", "; ", "\t"])


def _masked(name: str, value: str) -> str:
    from wardgate.masking import BUILTIN_DETECTORS

    return BUILTIN_DETECTORS[name].mask(value)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    VALUES,
    st.lists(LEFT, max_size=3),
    st.lists(RIGHT, max_size=2).filter(lambda r: sum(n.isdigit() and len(n) == 4 for n in r) <= 1),
    SEPARATORS,
)
def test_a_value_among_numbers_is_masked_and_they_are_not(
    value: tuple[str, str], left: list[str], right: list[str], sep: str
) -> None:
    name, raw = value
    assume(not (name == "card" and len(raw) == 19 and raw[4] == " " and right and len(right[0]) == 4))
    text = sep.join([*left, raw, *right])
    expected = sep.join([*left, _masked(name, raw), *right])
    result = mask_text(text)
    assert (result.value, result.counts) == (expected, {name: 1})
    in_json = mask_json(json.dumps({"note": text}))
    assert (json.loads(in_json.value), in_json.counts) == ({"note": expected}, {name: 1})


ANY_NUMBER = st.one_of(YEARS, st.text(DIGIT, min_size=1, max_size=12), CHAINS).filter(_benign)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES, st.lists(ANY_NUMBER, max_size=4), st.lists(ANY_NUMBER, max_size=4))
def test_a_value_among_any_numbers_is_never_left_whole(
    value: tuple[str, str], left: list[str], right: list[str]
) -> None:
    """With any numbers around it (some may make a value with it: see above), the value is masked
    whole: either alone or with the numbers that may be part of it, never in part."""
    from wardgate.masking import BUILTIN_DETECTORS, find_values

    raw = value[1]
    text = " ".join([*left, raw, *right])
    at = len(" ".join([*left, ""]))
    found = find_values(text, list(BUILTIN_DETECTORS.values()))
    assert any(s <= at and at + len(raw) <= e for s, e, _, _ in found), (text, found)
    assert raw not in mask_text(text).value


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(VALUES, st.lists(ANY_NUMBER, max_size=3), st.lists(ANY_NUMBER, max_size=3)).map(
            lambda v: " ".join([*v[1], v[0][1], *v[2]])
        )
        | ANY_NUMBER,
        min_size=1,
        max_size=8,
    )
)
def test_rows_of_numbers_in_one_pass_equal_cell_by_cell(cells: list[str]) -> None:
    result = mask_rows(["c", "d"], [(c, c[::-1]) for c in cells])
    expected = [(mask_text(c), mask_text(c[::-1])) for c in cells]
    assert result.value == [(a.value, b.value) for a, b in expected]
    counts: dict[str, int] = {}
    for pair in expected:
        for one in pair:
            for name, n in one.counts.items():
                counts[name] = counts.get(name, 0) + n
    assert result.counts == counts


def test_a_json_document_that_is_one_scalar_is_masked_with_custom_detectors_too():
    """Found by fuzz/pg_values.py: a custom detector sent scalars down the string path."""
    from wardgate.masking import BUILTIN_DETECTORS

    profile = MaskingProfile(detectors=(*BUILTIN_DETECTORS, Detector.from_regex("digits", r"[0-9]{3}")))
    assert mask_json("5", profile).value == "5"
    assert mask_json("true", profile).value == "true"
    assert mask_json("4242424242424242", profile).value == "0"


# Short texts skip the detectors that cannot match them (engine._widths): never a value lost.
_SHORT_ALPHABET = string.digits + "+-.:@ ()/_AaZz" + "eyJ" + "ghp_sk_live_xoxb-AKIA"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_SHORT_ALPHABET, max_size=24))
def test_a_detector_finds_nothing_in_text_shorter_than_its_shortest_match(text: str) -> None:
    from wardgate.masking.detectors import shape
    from wardgate.masking.engine import _widths

    detectors = tuple(BUILTIN_DETECTORS.values())
    widths, shortest = _widths(detectors)
    assert shortest == min(widths) and all(w >= 1 for w in widths)
    for det, width in zip(detectors, widths, strict=True):
        if len(text) < width:
            assert det.find(text, shape(text)) == []


def test_the_known_widths_are_the_built_in_patterns_parsed_widths() -> None:
    """The table that spares parsing the built-in patterns on a cold start: one entry for every
    built-in pattern, each exactly what parsing it gives, none for a pattern that is gone; a
    pattern without an entry (a policy's own) is parsed."""
    from wardgate.masking.engine import _KNOWN_WIDTHS, _parsed_width, _pattern_width, _width_key

    patterns = [p for det in BUILTIN_DETECTORS.values() for p in det.patterns]
    assert {_width_key(p): _parsed_width(p) for p in patterns} == _KNOWN_WIDTHS
    assert all(_pattern_width(p) == _parsed_width(p) for p in patterns)
    own = Detector.from_regex("order", r"ORD-[0-9]{6}")
    assert _width_key(own.patterns[0]) not in _KNOWN_WIDTHS
    assert _pattern_width(own.patterns[0]) == 10


def test_the_shortest_values_of_the_corpus_still_fit_their_detectors() -> None:
    from tests.masking_corpus import generate
    from wardgate.masking.engine import _widths

    detectors = tuple(BUILTIN_DETECTORS.values())
    widths = dict(zip((d.name for d in detectors), _widths(detectors)[0], strict=True))
    shortest: dict[str, int] = {}
    for sample in generate(7):
        for start, end, name in sample.spans:
            shortest[name] = min(shortest.get(name, 10**9), end - start)
    assert shortest and all(shortest[name] >= widths[name] for name in shortest)
    assert mask_text("+14155552671").counts == {"phone": 1}  # a value at its detector's width
