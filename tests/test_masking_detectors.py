"""Masking detectors: each finds its values and leaves look-alikes alone (table-driven)."""

from __future__ import annotations

import json
import re

import pytest

from tests.masking_corpus import STRUCTURED, evaluate, generate, report
from wardgate.masking import BUILTIN_DETECTORS, Detector, card_brand, find_values, luhn, shape

FOUND = [
    # (detector, text, value that must be found exactly)
    ("card", "card 4242424242424242 ok", "4242424242424242"),
    ("card", "card 4242 4242 4242 4242.", "4242 4242 4242 4242"),
    ("card", "4000-0566-5566-5556", "4000-0566-5566-5556"),
    ("card", "amex 3782 822463 10005", "3782 822463 10005"),
    ("card", "mc 5555555555554444", "5555555555554444"),
    ("card", "mc2 2223003122003222", "2223003122003222"),
    ("card", "discover 6011111111111117", "6011111111111117"),
    ("card", "jcb 3530111333300000", "3530111333300000"),
    ("card", "diners 36227206271667", "36227206271667"),
    ("card", "unionpay 6200000000000005", "6200000000000005"),
    ("card", "visa13 4222222222222", "4222222222222"),
    ("card", "paid with 4242 4242 4242 4242 2 times", "4242 4242 4242 4242"),
    ("card", "ref 12345 4242 4242 4242 4242", "4242 4242 4242 4242"),  # after other numbers
    ("card", "2026 12 4242 4242 4242 4242 1.2.3", "4242 4242 4242 4242"),
    ("card", "ORD-2024 4242 4242 4242 4242 2026-01-05", "4242 4242 4242 4242"),
    ("card", "card 4242 4242 4242 4242 12/26", "4242 4242 4242 4242"),
    ("card", "2026 3782 822463 10005 2026", "3782 822463 10005"),
    ("card", "ref 12345 4000-0566-5566-5556 978-2-294-30623-0", "4000-0566-5566-5556"),
    ("card", '{"n":"line\\n4242424242424242"}', "4242424242424242"),
    ("card", '{"n":"\\u00a04242424242424242"}', "4242424242424242"),
    ("email", "mail john.doe+x@example.co.uk now", "john.doe+x@example.co.uk"),
    ("email", "end of sentence a@b.io.", "a@b.io"),
    ("email", '{"e":"line\\njane@example.com"}', "jane@example.com"),
    ("email", "<mailto:ops@mail.example.org>", "ops@mail.example.org"),
    ("phone", "call +1 (415) 555-2671 today", "+1 (415) 555-2671"),
    ("phone", "uk +44 20 7946 0958", "+44 20 7946 0958"),
    ("phone", "de +4915123456789", "+4915123456789"),
    ("phone", "(555) 123-4567", "(555) 123-4567"),
    ("phone", "tel 555-123-4567", "555-123-4567"),
    ("phone", "tel 555.123.4567", "555.123.4567"),
    ("phone", "tel 555 123 4567", "555 123 4567"),
    ("phone", "+1 415 555 2671 2024 x", "+1 415 555 2671"),  # +1 and ten digits: the year is not
    ("phone", "+1 415 555 2671 12345", "+1 415 555 2671"),
    ("phone", "+1 212-555-9479 2026-01-05T10:44:00Z", "+1 212-555-9479"),
    ("phone", "+44 20 7946 5167 978-2-294-30623-0", "+44 20 7946 5167"),  # not into the ISBN
    ("phone", "+44 20 7946 5167 2026", "+44 20 7946 5167"),
    ("phone", "+33 6 12 34 56 78 10:44:00", "+33 6 12 34 56 78"),
    ("phone", "+44 (0)20 7946 0958 12 items", "+44 (0)20 7946 0958"),  # (0): a trunk prefix
    ("phone", "ref 12345 +1 (212) 555-9479 1.2.3", "+1 (212) 555-9479"),
    ("phone", "+49 30 1234567 12345678", "+49 30 1234567"),  # no fixed length: 8 to 15 digits
    ("phone", "2026 212 555 9479 2026", "212 555 9479"),
    ("us_ssn", "ssn 123-45-6789", "123-45-6789"),
    ("us_ssn", "ssn 078 05 1120", "078 05 1120"),
    ("us_ssn", "ssn 12 078 05 1120 2026", "078 05 1120"),
    ("iban", "DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00"),
    ("iban", "iban GB82WEST12345698765432,", "GB82WEST12345698765432"),
    ("iban", "NO9386011117947", "NO9386011117947"),
    ("iban", "FR1420041010050500013M02606 and more", "FR1420041010050500013M02606"),
    ("iban", "12345 DE89 3704 0044 0532 0130 00 2026-01-05", "DE89 3704 0044 0532 0130 00"),
    ("aws_access_key_id", "id AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_access_key_id", '"ASIAY34FZKBOKMUTVV7A"', "ASIAY34FZKBOKMUTVV7A"),
    (
        "aws_secret_access_key",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (
        "aws_secret_access_key",
        '{"SecretAccessKey": "wJalrXUtnFEMI\\/K7MDENG\\/bPxRfiCYEXAMPLEKEY"}',
        "wJalrXUtnFEMI\\/K7MDENG\\/bPxRfiCYEXAMPLEKEY",
    ),
    (
        "jwt",
        "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",  # noqa: E501
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ),
    ("jwt", "none eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."),
    (
        "pem_private_key",
        "k: -----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\nabc=\n-----END EC PRIVATE KEY----- done",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\nabc=\n-----END EC PRIVATE KEY-----",
    ),
    (
        "pem_private_key",
        '{"k": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADAN\\nBgkqhkiG9w0=\\n-----END PRIVATE KEY-----\\n"}',
        "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADAN\\nBgkqhkiG9w0=\\n-----END PRIVATE KEY-----",
    ),
    (
        "pem_private_key",
        "cut: -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAK",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAK",
    ),
    ("api_token", "t ghp_16C7e42F292c6912E7710c838347Ae178B4a x", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    (
        "api_token",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv",
    ),
    (
        "api_token",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    ),
    ("api_token", "key=sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("api_token", "rk_test_4eC39HqLyjWDarjtT1zdp7dc", "rk_test_4eC39HqLyjWDarjtT1zdp7dc"),
    ("ipv4", "from 192.168.1.10, then", "192.168.1.10"),
    ("ipv4", "ip=100.64.0.0", "100.64.0.0"),
    ("ipv4", "VERSION | 10.0.0.1", "10.0.0.1"),  # a version word, but not about this value
    ("ipv4", "end 10.0.0.255.", "10.0.0.255"),
    ("ipv6", "addr 2001:db8::8a2e:370:7334 up", "2001:db8::8a2e:370:7334"),
    ("ipv6", "fe80::1", "fe80::1"),
    ("ipv6", "full 2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:0db8:0000:0000:0000:ff00:0042:8329"),
    ("ipv6", "mapped ::ffff:192.0.2.128", "::ffff:192.0.2.128"),
]

NOT_FOUND = [
    ("ipv4", "listening on 127.0.0.1:8080 and 0.0.0.0:80"),  # loopback and unspecified: nothing to hide
    ("ipv6", "listening on [::1]:8080 and [::]:80, also 0:0:0:0:0:0:0:1"),
    ("card", "order 4242424242424241"),  # Luhn fails
    ("card", "ts 1716200000000"),  # epoch milliseconds
    ("card", "id 1234567890123456789"),  # snowflake
    ("card", "ref 9999999999999995"),  # no network
    ("card", "visa of 15 digits 424242424242428"),  # wrong length for Visa
    ("card", "order ORD-4242424242424242"),
    ("card", "token 4242424242424242abc"),
    ("card", "id 2026-4242-4242-4242-4242"),  # the end of a chain of numbers
    ("card", "iban ES00 3585 4242 4242 4242 4242"),  # the groups of a code with letters
    ("card", "4242 4242 4242 4242-01"),
    ("card", "4242 4242 4242 4242:12"),
    ("email", "icon@2x.png"),
    ("email", "@mention"),
    ("email", "admin@localhost"),
    ("email", "npm @babel/core"),
    ("phone", "date 2024-05-12"),
    ("phone", "version 1.2.3"),
    ("phone", "ip 192.168.100.200"),
    ("phone", "order 5551234567"),
    ("phone", "123-456-7890"),  # area code 1xx
    ("phone", "+12345"),
    ("phone", "tz +05:30"),
    ("phone", "555-123-45678"),
    ("phone", "+12125559479abc"),
    ("us_ssn", "000-12-3456"),
    ("us_ssn", "666-12-3456"),
    ("us_ssn", "900-12-3456"),
    ("us_ssn", "123-00-4567"),
    ("us_ssn", "123-45-0000"),
    ("us_ssn", "123-45-67890"),
    ("us_ssn", "2024-05-12"),
    ("us_ssn", "123 45 6789-12"),
    ("iban", "DE89 3704 0044 0532 0130 01"),  # checksum
    ("iban", "GB82WEST12345698765433"),
    ("iban", "XX89370400440532013000"),  # no such country
    ("iban", "DE8937040044053201300099"),  # too long for DE
    ("aws_access_key_id", "AKIA1234"),
    ("aws_access_key_id", "XAKIAIOSFODNN7EXAMPLE"),
    ("aws_secret_access_key", "commit da39a3ee5e6b4b0d3255bfef95601890afd80709 secret"),  # hex
    ("aws_secret_access_key", "blob wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY here"),  # no context
    ("aws_secret_access_key", "aws\nwJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),  # another line
    ("aws_secret_access_key", '{"key": "x", "note": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}'),
    ("jwt", "eyJub3QiOiJqd3QifQ.eyJhIjoxfQ.c2ln"),  # header without alg
    ("jwt", "eyJhbGciOiJIUzI1NiJ9"),  # one part
    ("pem_private_key", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"),
    ("pem_private_key", "-----BEGIN CERTIFICATE-----"),
    ("api_token", "pk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("api_token", "pk_test_4eC39HqLyjWDarjtT1zdp7dc"),
    ("api_token", "ghp_short"),
    ("api_token", "mysk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("api_token", "xoxb-123"),
    ("ipv4", "999.1.1.1"),
    ("ipv4", "256.1.1.1"),
    ("ipv4", "1.2.3.4.5"),
    ("ipv4", "v1.2.3.4"),
    ("ipv4", "version 1.2.3.4"),
    ("ipv4", '{"version": "10.1.0.3", "build":"1.0.0.7"}'),
    ("ipv4", "01.02.03.04"),
    ("ipv4", "oid 1.3.6.1.4.1"),
    ("ipv4", "price 1.5"),
    ("ipv6", "std::string"),
    ("ipv6", "items[::2]"),
    ("ipv6", "time 12:30:45"),
    ("ipv6", "mac 00:1a:2b:3c:4d:5e"),
    ("ipv6", "a::"),
]


def spans(name: str, text: str) -> list[str]:
    return [text[s:e] for s, e in BUILTIN_DETECTORS[name].find(text)]


@pytest.mark.parametrize(("name", "text", "value"), FOUND)
def test_finds(name: str, text: str, value: str) -> None:
    assert spans(name, text) == [value]


@pytest.mark.parametrize(("name", "text"), NOT_FOUND)
def test_leaves_lookalikes(name: str, text: str) -> None:
    assert spans(name, text) == []


@pytest.mark.parametrize("text", [t for _, t in NOT_FOUND if "AKIA" not in t and "ghp_" not in t])
def test_no_builtin_detector_fires_on_plain_lookalikes(text: str) -> None:
    # look-alikes of one kind must not be taken for another kind either, except where the
    # look-alike is a value of that kind (an email in a sentence, ...)
    allowed = {"email", "ipv4", "phone", "card", "us_ssn", "aws_secret_access_key", "iban"}
    found = {d.name for _, _, d, _ in find_values(text, list(BUILTIN_DETECTORS.values()))}
    assert not found - allowed, (text, found)


def test_luhn_and_brands() -> None:
    assert luhn("4242424242424242") and not luhn("4242424242424241")
    assert card_brand("4242424242424242") == "visa"
    assert card_brand("378282246310005") == "amex"
    assert card_brand("2720999999999996") == "mastercard"
    assert card_brand("2721000000000000") is None
    assert card_brand("3530111333300000") == "jcb"
    assert card_brand("1111111111111117") is None


def test_shape_keeps_indices() -> None:
    text = "Añb 12 ZZ9 é"
    shaped = shape(text)
    assert len(shaped) == len(text)
    assert shaped == "A?b 00 AA0 ?"
    assert shape("AKIA 42") == "AAAA 00"


def test_from_regex_and_from_words() -> None:
    emp = Detector.from_regex("employee_id", r"EMP-\d{6}")
    assert emp.find("id EMP-123456 and EMP-12") == [(3, 13)]
    grouped = Detector.from_regex("ticket", r"ticket #(?P<value>\d+)")
    assert grouped.find("see ticket #42") == [(12, 14)]
    assert not emp.raw_json_safe
    words = Detector.from_words("codename", ["Project Apollo", "hermes"])
    text = "the project apollo and Hermes, not hermeses"
    assert [text[s:e] for s, e in words.find(text)] == ["project apollo", "Hermes"]
    assert words.raw_json_safe
    strict = Detector.from_words("codename", ["hermes"], case_insensitive=False)
    assert strict.find("Hermes hermes") == [(7, 13)]
    with pytest.raises(ValueError):
        Detector.from_regex("Bad Name", "x")
    with pytest.raises(ValueError):
        Detector.from_regex("empty", "x*")
    with pytest.raises(ValueError):
        Detector.from_words("none", [])


def test_masks_never_break_json() -> None:
    for det in BUILTIN_DETECTORS.values():
        mask = det.mask("4242 4242 4242 4242")
        assert '"' not in mask and "\\" not in mask
        json.loads(json.dumps(mask))
    assert BUILTIN_DETECTORS["card"].mask("4242 4242 4242 4242") == "**** **** **** 4242"
    assert BUILTIN_DETECTORS["card"].mask("378282246310005") == "***********0005"
    assert BUILTIN_DETECTORS["email"].mask("a@b.co") == "[masked:email]"


def test_patterns_start_with_a_literal() -> None:
    # what keeps scanning fast: re can search for a literal prefix instead of trying every position
    for det in BUILTIN_DETECTORS.values():
        for pattern in det.patterns:
            if det.name in ("aws_secret_access_key",):
                continue  # searched only in small windows around context words
            assert re.match(r"\\?[\w@:.\-+(]", pattern.pattern), (det.name, pattern.pattern)


def test_corpus_precision_and_recall() -> None:
    scores = evaluate(generate(seed=7))
    print("\n" + report(scores))
    for name in STRUCTURED:
        sc = scores[name]
        assert sc.recall >= 0.99, (name, sc.recall, sc.misses[:5])
        assert sc.precision >= 0.98, (name, sc.precision, sc.false_positives[:5])
    assert scores["phone"].recall >= 0.95 and scores["phone"].precision >= 0.95
