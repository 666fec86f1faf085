"""masking/prefilter.py and the IPv4 check: the fast paths find exactly what the plain path finds.

The prefilter tells apart, before any pattern scans a text, the patterns that cannot match it
(a character every match needs is missing) and searches patterns sharing a literal prefix once
together. ``_candidates(text, detectors, prefilter=False)`` is the plain path: every pattern
searches the whole text. Both must give the same candidates, and the engine the same masked
output, on generated texts, on the labelled masking corpus and on a Kubernetes pod list.

The IPv4 check folds the version-word, loopback and unspecified tests into the one search that
finds the first octet; ``_plain_valid_ipv4`` below is the check as it was (three searches),
kept here as the reference it must agree with.
"""

from __future__ import annotations

import json
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.masking_corpus import generate
from wardgate.masking import BUILTIN_DETECTORS, Detector, engine
from wardgate.masking.detectors import IPV4, Span, shape
from wardgate.masking.engine import DEFAULT_PROFILE, MaskingProfile, mask_body, mask_json, mask_text
from wardgate.masking.prefilter import known_matches, pattern_facts, scan_plan

# --- the reference: the IPv4 check as it was --------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_STRICT = re.compile(
    rf"(?:(?<![\w.])|(?<=\\[nrtbf])|(?<=\\u[0-9A-Fa-f]{{4}}))(?:{_OCTET}\.){{3}}{_OCTET}\Z"
)
_VERSION_CONTEXT = re.compile(r"(?:version|release|build|firmware)[\s\"':=#v_-]{0,4}\Z", re.IGNORECASE)


def _plain_valid_ipv4(text: str, start: int, end: int) -> Span | None:
    m = _IPV4_STRICT.search(text, max(0, start - 3), end)
    if m is None or m.start() >= start:
        return None
    first = m.start()
    if first > 0 and _VERSION_CONTEXT.search(text, max(0, first - 16), first) is not None:
        return None
    if text.startswith("127.", first) or text.startswith(("0.0.0.0", "000.000.000.000"), first):
        return None
    return first, end


PLAIN_IPV4 = Detector("ipv4", list(IPV4.patterns), validate=_plain_valid_ipv4, on_shape=True)

# --- texts ---------------------------------------------------------------------------------------

CUSTOM = (
    Detector.from_words("codename", ["blue falcon", "Nightjar"]),
    Detector.from_regex("ticket", r"TCK-[0-9]{6}"),
    Detector.from_regex("shout", r"(?i)secret-[a-z]+"),
)
PROFILES = [
    DEFAULT_PROFILE,
    MaskingProfile(detectors=(*BUILTIN_DETECTORS, *CUSTOM)),
    MaskingProfile(exempt=frozenset({"email", "phone"})),
]
SNIPPETS = [
    "4242 4242 4242 4242",
    "4000-0566-5566-5556",
    "4242424242424242",
    "+1 (415) 555-2671",
    "(555) 123-4567",
    "555.123.4567",
    "555 123 4567",
    "123-45-6789",
    "078 05 1120",
    "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "jane.doe@example.com",
    "10.244.0.53",
    "127.0.0.1",
    "0.0.0.0",
    "version 10.0.0.1",
    '"build": "10.1.2.3"',
    "\\u00411.2.3.4",
    "\\n10.0.0.1",
    "fe80::1ff:fe23:4567:890a",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
    "-----BEGIN RSA PRIVATE KEY-----\\nMIIBOgIBAAJBAK\\n-----END RSA PRIVATE KEY-----",
    "ghp_" + "a1B2" * 9,
    "github_pat_" + "x" * 30,
    "xoxb-123456789012-abcdefABCDEF",
    "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "blue falcon",
    "TCK-123456",
    "SECRET-word",
    "2026-12-05T10:21:49Z",
    "5f82f518-649c-4653-8742-a6feb8fb55d4",
]
PIECES = st.one_of(
    st.sampled_from(SNIPPETS),
    st.text(alphabet="0123456789 .-:+()@_/\\\"',{}[]AZaekxgJvn\n", max_size=12),
    st.text(max_size=6),
)
TEXTS = st.lists(PIECES, max_size=40).map("".join)


@pytest.fixture
def always_prefilter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Texts of every length go through the prefilter (not only the long ones)."""
    monkeypatch.setattr(engine, "PREFILTER_FROM", 0)


def both_paths(text: str, profile: MaskingProfile) -> None:
    detectors = profile.active
    fast = engine._candidates(text, detectors, prefilter=True)
    plain = engine._candidates(text, detectors, prefilter=False)
    assert fast == plain


# --- the prefilter -------------------------------------------------------------------------------


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(TEXTS, st.sampled_from(range(len(PROFILES))))
def test_prefiltered_candidates_equal_plain_ones(always_prefilter: None, text: str, which: int) -> None:
    both_paths(text, PROFILES[which])
    both_paths(json.dumps({"k": text, "list": [text, 1]}), PROFILES[which])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SNIPPETS), min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_long_texts_mask_alike_either_way(snippets: list[str], rng: random.Random) -> None:
    """Whole engine, long texts (over PREFILTER_FROM): text and JSON masked alike either way."""
    filler = "".join(rng.choice('abcdef0123 .-:"') for _ in range(engine.PREFILTER_FROM))
    text = filler.join(snippets) + filler
    document = json.dumps({f"k{i}": s + filler[: rng.randrange(200)] for i, s in enumerate(snippets)})
    for profile in PROFILES:
        fast = (mask_text(text, profile), mask_json(document, profile))
        saved = engine.PREFILTER_FROM
        engine.PREFILTER_FROM = 10**12
        try:
            plain = (mask_text(text, profile), mask_json(document, profile))
        finally:
            engine.PREFILTER_FROM = saved
        assert [(r.value, r.counts) for r in fast] == [(r.value, r.counts) for r in plain]


def test_corpus_candidates_equal_plain_ones(always_prefilter: None) -> None:
    samples = generate(seed=13, per_detector=80, lookalikes=800)
    for profile in PROFILES:
        for sample in samples:
            both_paths(sample.text, profile)
        joined = "\n".join(sample.text for sample in samples)  # one long text, every kind in it
        both_paths(joined, profile)
        both_paths(joined.replace(" ", ""), profile)  # no spaces: every spaced pattern skipped


def pod_list(count: int = 100) -> bytes:
    """A PodList shaped as the cluster double serves it (IPs, emails, timestamps, uids, hashes)."""
    rng = random.Random(5)
    items = []
    for i in range(count):
        uid = "-".join("".join(rng.choice("0123456789abcdef") for _ in range(n)) for n in (8, 4, 4, 4, 12))
        items.append(
            {
                "metadata": {
                    "name": f"api-{i}",
                    "namespace": "bench",
                    "uid": uid,
                    "resourceVersion": str(400 + i),
                },
                "spec": {
                    "containers": [
                        {
                            "name": "api",
                            "image": "registry.example.com/shop/api:2.14.1",
                            "env": [{"name": "ONCALL_EMAIL", "value": "web-oncall@example.com"}],
                        }
                    ]
                },
                "status": {
                    "phase": "Running",
                    "hostIP": "10.0.0.10",
                    "hostIPs": [{"ip": "10.0.0.10"}],
                    "podIP": f"10.244.{i // 250}.{i % 250 + 1}",
                    "podIPs": [{"ip": f"10.244.{i // 250}.{i % 250 + 1}"}],
                    "startTime": "2026-12-05T10:21:49Z",
                    "containerStatuses": [
                        {"imageID": "sha256:" + "".join(rng.choice("0123456789abcdef") for _ in range(64))}
                    ],
                },
            }
        )
    return json.dumps({"kind": "PodList", "apiVersion": "v1", "items": items}, separators=(",", ":")).encode()


def test_a_pod_list_is_masked_alike_either_way() -> None:
    body = pod_list()
    fast = mask_body(body, "application/json", None, DEFAULT_PROFILE)
    saved = engine.PREFILTER_FROM
    engine.PREFILTER_FROM = 10**12
    try:
        plain = mask_body(body, "application/json", None, DEFAULT_PROFILE)
    finally:
        engine.PREFILTER_FROM = saved
    assert fast.value == plain.value and fast.counts == plain.counts
    assert fast.counts == {"email": 100, "ipv4": 400}
    # what makes it fast: no spaces, no '+', no '(' and no 'J' in it, and the digit patterns
    # sharing "000" searched once
    text = body.decode()
    shaped = shape(text)
    raw_known, shaped_known = known_matches(scan_plan(DEFAULT_PROFILE.active), text, shaped)
    skipped = {p.pattern for p, at in {**raw_known, **shaped_known}.items() if at < 0}
    for name in ("card", "phone", "us_ssn", "jwt", "pem_private_key"):
        assert set(BUILTIN_DETECTORS[name].patterns) <= {re.compile(p) for p in skipped}, name


def test_pattern_facts() -> None:
    facts = pattern_facts(re.compile(r"ab(?:xc|yc)e?(?=xy)(?!z)[q]"))
    assert facts.required == "abcqxy" and facts.prefix == "ab" and facts.joinable
    assert pattern_facts(re.compile(r"abc", re.IGNORECASE)).required == ""
    assert pattern_facts(re.compile(r"(?i)abc")).required == ""
    assert pattern_facts(re.compile(r"x(?i:abc)")).required == "x"
    assert pattern_facts(re.compile(r"(a)b+c*")).required == "ab"
    assert not pattern_facts(re.compile(r"(a)b")).joinable  # groups: never in an alternation
    assert pattern_facts(re.compile(r"a{0,3}b|c")).required == ""
    shaped = {p: pattern_facts(p).required for p in BUILTIN_DETECTORS["card"].patterns}
    assert set(shaped.values()) == {"0", " 0", "-0"}


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_required_characters_are_in_every_match(text: str) -> None:
    """What pattern_facts says a match needs is in the text wherever a pattern matches."""
    shaped = shape(text)
    for detector in (*BUILTIN_DETECTORS.values(), *CUSTOM):
        subject = shaped if detector.on_shape else text
        for pattern in detector.patterns:
            if pattern.search(subject) is not None:
                assert all(c in subject for c in pattern_facts(pattern).required), pattern.pattern


# --- IPv4 ----------------------------------------------------------------------------------------

IPV4_PIECES = st.one_of(
    st.sampled_from(
        [
            "10.0.0.1",
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3.4.5",
            "version",
            "Version ",
            "RELEASE: ",
            '"build":"',
            "firmware v",
            "firmwarev_",
            "\\u0041",
            "\\n",
            "\\t",
            "\\",
            '"',
            ".",
            "\u017f",  # long s: "s" under IGNORECASE
            "\u212a",  # Kelvin sign: "k" under IGNORECASE
        ]
    ),
    st.text(alphabet="0123456789.", min_size=1, max_size=12),
    st.text(alphabet=" \t\"':=#v_-xbuildVERSIONrelasfmw\\u0A\u00a0\u2028", max_size=8),
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(IPV4_PIECES, max_size=12).map("".join))
def test_ipv4_check_equals_the_plain_one(text: str) -> None:
    assert IPV4.find(text) == PLAIN_IPV4.find(text)


def test_ipv4_check_equals_the_plain_one_on_the_corpus() -> None:
    for sample in generate(seed=21, per_detector=60, lookalikes=1200):
        assert IPV4.find(sample.text) == PLAIN_IPV4.find(sample.text)
    body = pod_list().decode()
    assert IPV4.find(body) == PLAIN_IPV4.find(body) and len(IPV4.find(body)) == 400
    for text in ("version 10.0.0.1", "Build: 10.0.0.1", "127.0.0.1", "0.0.0.0", "\\u00411.2.3.4"):
        assert IPV4.find(text) == PLAIN_IPV4.find(text)
