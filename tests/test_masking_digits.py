"""masking/digits.py: texts that differ only in their digits, masked with one scan when quiet.

``QuietTexts.masked`` must be exactly ``mask_text(text, profile).value``: on the labelled masking
corpus (values of every built-in detector and their look-alikes), on SQL statements and bound values
with sensitive values written in, and on many texts of one digit form (where one text's digits make
a valid card, SSN or address and another's do not), through one memo so that what an earlier text
taught it is what a later text gets.
"""

from __future__ import annotations

import random
import re

import pytest

from tests.masking_corpus import generate
from tests.sql_bypass_corpus import BYPASS_CORPUS
from wardgate.gate import RECORDED_REQUEST_MASKING
from wardgate.masking import BUILTIN_DETECTORS, Detector
from wardgate.masking.digits import QUIET_TEXT_BYTES, QuietTexts, digit_blind, digit_blind_pattern
from wardgate.masking.engine import MaskingProfile, MaskingRefused, mask_text

_DIGIT = re.compile(r"[0-9]")


def reshuffled(text: str, rng: random.Random) -> str:
    """``text`` with every ASCII digit replaced by a random one (same digit form)."""
    return _DIGIT.sub(lambda _: rng.choice("0123456789"), text)


def test_pattern_blindness() -> None:
    blind = [
        r"[0-9]+",
        r"\d{3}-\d{2}",
        r"\w+@\w+",
        r"[^0-9]x",
        r"[A-Za-z0-9]{4}",
        r"(?<!\d)ab\b",
        r"a.c",
        r"\S\s",
    ]
    seeing = [r"[2-7]", r"4\d{15}", r"[^0-4]", r"(?P<a>x)(?P=a)", r"[0-8a-z]", r"1?x", r"(a)(?(1)b|c)"]
    for source in blind:
        assert digit_blind_pattern(re.compile(source)), source
    for source in seeing:
        assert not digit_blind_pattern(re.compile(source)), source


def test_builtin_blindness_holds_on_texts() -> None:
    """What the analysis says of each built-in pattern holds of its searches: a blind pattern
    matches a text exactly when it matches the text with its digits changed."""
    rng = random.Random(11)
    texts = [s.text for s in generate(seed=3, per_detector=40, lookalikes=400)]
    names = {d.name for d in BUILTIN_DETECTORS.values() if digit_blind(d)}
    assert {"card", "phone", "us_ssn", "iban", "ipv4", "email", "jwt", "ipv6"} <= names
    assert "aws_secret_access_key" not in names  # a find of its own
    assert "aws_access_key_id" not in names  # base32: [A-Z2-7]
    for detector in BUILTIN_DETECTORS.values():
        if not digit_blind(detector) or detector.on_shape:
            continue
        for pattern in detector.patterns:
            for text in texts:
                other = reshuffled(text, rng)
                assert (pattern.search(text) is None) == (pattern.search(other) is None), (
                    detector.name,
                    text,
                )


def check(quiet: QuietTexts, text: str) -> None:
    assert quiet.masked(text) == mask_text(text, quiet.profile).value, text


def test_equal_to_mask_text_on_the_masking_corpus() -> None:
    rng = random.Random(5)
    quiet = QuietTexts(RECORDED_REQUEST_MASKING)
    samples = generate(seed=9, per_detector=60, lookalikes=600)
    for sample in samples:
        check(quiet, sample.text)
        for _ in range(3):  # the same digit form: the memo answers from the first text's scan
            check(quiet, reshuffled(sample.text, rng))


def test_equal_to_mask_text_on_statements_and_values() -> None:
    rng = random.Random(6)
    quiet = QuietTexts(RECORDED_REQUEST_MASKING)
    statements = [sql for sql, _, _ in BYPASS_CORPUS]
    values = [
        "4111111111111111",  # a card (Luhn, Visa), then the same form failing Luhn
        "4111111111111112",
        "4111 1111 1111 1111",
        "078-05-1120",
        "000-05-1120",
        "+1 212-555-9479",
        "(555) 123-4567",
        "10.1.2.3",
        "999.1.2.3",
        "127.0.0.1",
        "2001:db8::1",
        "GB82WEST12345698765432",
        "ana@example.com",
        "AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "ghp_" + "a1" * 18,
        "48213",
        "-1234",
        "",
        "2026-12-05 10:21:00+00",
        "é 4111111111111111 ü",
        "\ud800 4111111111111111",
    ]
    for value in values:
        statements += [
            f"SELECT abalance FROM pgbench_accounts WHERE aid = {value}",
            f"SELECT c FROM sbtest1 WHERE id='{value}'",
            f"INSERT INTO t (a, b) VALUES (1, '{value}'), (2, '{value}')",
        ]
    for text in [*values, *statements]:
        check(quiet, text)
        for _ in range(4):
            check(quiet, reshuffled(text, rng))
    assert True in quiet._quiet.values() and False in quiet._quiet.values()  # both kinds of form seen
    # one form, both ways: a valid card after a quiet-looking number of its form, and the reverse
    for first, second in [("4111111111111112", "4111111111111111"), ("4111111111111111", "4111111111111112")]:
        fresh = QuietTexts(RECORDED_REQUEST_MASKING)
        for text in (f"WHERE aid = {first}", f"WHERE aid = {second}"):
            check(fresh, text)
    assert (
        QuietTexts(RECORDED_REQUEST_MASKING).masked("WHERE aid = 4111111111111111")
        == "WHERE aid = ************1111"
    )


def test_long_texts_and_limits_go_to_mask_text() -> None:
    quiet = QuietTexts(RECORDED_REQUEST_MASKING)
    long = "SELECT 1 WHERE x = '" + "y" * QUIET_TEXT_BYTES + " ana@example.com'"
    check(quiet, long)
    tight = MaskingProfile(max_bytes=20, on_limit="truncate")
    check(QuietTexts(tight), "SELECT 12345 FROM a_rather_long_table_name")
    refusing = QuietTexts(MaskingProfile(max_bytes=20))
    with pytest.raises(MaskingRefused):
        refusing.masked("SELECT 12345 FROM a_rather_long_table_name")


def test_policy_detectors() -> None:
    """A policy's own detectors: a blind one is memoised, one that tells digits apart is run on
    every text."""
    pin = Detector.from_regex("pin", r"PIN [2-7]{4}\b")
    account = Detector.from_regex("account", r"ACCT-\d{6}\b")
    words = Detector.from_words("codename", ["bluebird"])
    unit = Detector.from_words("unit", ["k9 unit"])
    profile = MaskingProfile(detectors=(*BUILTIN_DETECTORS, pin, account, words, unit))
    assert not digit_blind(pin) and digit_blind(account) and digit_blind(words) and not digit_blind(unit)
    quiet = QuietTexts(profile)
    texts = [
        "PIN 1111 here",
        "PIN 2345 here",
        "PIN 8888 here",
        "ACCT-123456",
        "k8 unit",
        "k9 unit",
        "bluebird 7",
    ]
    for text in texts:
        check(quiet, text)
    assert quiet.masked("PIN 2345 here") == "[masked:pin] here"
    assert quiet.masked("PIN 1111 here") == "PIN 1111 here"
    assert quiet.masked("k9 unit") == "[masked:unit]" and quiet.masked("k8 unit") == "k8 unit"
    assert quiet.masked("ACCT-654321 1") == "[masked:account] 1"


def test_memo_is_bounded() -> None:
    quiet = QuietTexts(RECORDED_REQUEST_MASKING, entries=16)
    for i in range(100):
        check(quiet, f"SELECT x{'a' * (i % 50)} FROM t WHERE id = {i}")
    assert len(quiet._quiet) <= 16
