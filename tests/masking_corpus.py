"""A labelled corpus for the masking detectors: valid values and look-alikes, in JSON rows and prose.

``generate(seed)`` builds samples with a seeded RNG: each sample is a text (an encoded JSON row
or a sentence) and the spans of the sensitive values placed in it, labelled with the detector
that must find them. Look-alikes (Luhn-failing numbers, order ids, timestamps, versions, git
SHAs, ``pk_live_`` keys, never-issued SSNs, IBANs with a wrong checksum, ``999.1.1.1``, ...) are
placed unlabelled: any finding on them is a false positive. ``evaluate(samples, detectors)``
runs the detectors the way the engine does (``find_values`` over the encoded text) and returns
precision and recall per detector.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from wardgate.masking import BUILTIN_DETECTORS, Detector, find_values, luhn
from wardgate.masking.detectors import IBAN_LENGTHS, iban_checksum_ok

STRUCTURED = (
    "card",
    "email",
    "us_ssn",
    "iban",
    "aws_access_key_id",
    "aws_secret_access_key",
    "jwt",
    "pem_private_key",
    "api_token",
    "ipv4",
    "ipv6",
)

ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
WORDS = [
    "order",
    "shipped",
    "pending",
    "refund",
    "customer",
    "note",
    "please",
    "update",
    "invoice",
    "account",
    "review",
    "team",
    "delivery",
    "address",
    "billing",
    "support",
]
NAMES = ["Ana Lima", "Bo Chen", "Carla Diaz", "Dmitri Orlov", "Eve Adams", "Farid Haddad", "Gina Rossi"]


@dataclass
class Sample:
    text: str
    spans: list[tuple[int, int, str]] = field(default_factory=list)


# --- valid values --------------------------------------------------------------------------------


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _luhn_complete(rng: random.Random, prefix: str, length: int, valid: bool = True) -> str:
    body = prefix + _digits(rng, length - len(prefix) - 1)
    for check in string.digits:
        if luhn(body + check) == valid:
            return body + check
    raise AssertionError("unreachable")


CARD_BRANDS = [
    ("4", 16),
    ("4", 13),
    ("51", 16),
    ("55", 16),
    ("2221", 16),
    ("2720", 16),
    ("34", 15),
    ("37", 15),
    ("6011", 16),
    ("65", 16),
    ("644", 16),
    ("3528", 16),
    ("3589", 19),
    ("300", 14),
    ("36", 14),
    ("62", 16),
    ("62", 19),
    ("50", 16),
    ("67", 18),
]


def card(rng: random.Random) -> str:
    prefix, length = rng.choice(CARD_BRANDS)
    number = _luhn_complete(rng, prefix, length)
    style = rng.choice(["plain", "plain", "space", "dash"])
    if style == "plain":
        return number
    sep = " " if style == "space" else "-"
    groups = [4, 6, 5] if length == 15 else [4, 6, 4] if length == 14 else [4] * (length // 4)
    if sum(groups) < length:
        groups.append(length - sum(groups))
    out, pos = [], 0
    for g in groups:
        out.append(number[pos : pos + g])
        pos += g
    return sep.join(out)


def email(rng: random.Random) -> str:
    local = rng.choice(["john.doe", "a.b+tag", "x_y", "support", "anna-maria", "u" + _digits(rng, 5)])
    domain = rng.choice(["example.com", "mail.example.org", "corp.co.uk", "example.io", "sub.domain.dev"])
    return f"{local}@{domain}"


def phone(rng: random.Random) -> str:
    area = str(rng.randint(2, 9)) + _digits(rng, 2)
    line = _digits(rng, 3) + "-" + _digits(rng, 4)
    return rng.choice(
        [
            f"+1 {area} {line[:3]} {line[4:]}",
            f"+44 20 {_digits(rng, 4)} {_digits(rng, 4)}",
            f"+49{_digits(rng, 10)}",
            f"+33 6 {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
            f"({area}) {line}",
            f"{area}-{line}",
            f"{area}.{line.replace('-', '.')}",
            f"+1 ({area}) {line}",
        ]
    )


def ssn(rng: random.Random) -> str:
    area = rng.choice([rng.randint(1, 665), rng.randint(667, 899)])
    sep = rng.choice(["-", "-", " "])
    return f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"


def iban_value(rng: random.Random, valid: bool = True) -> str:
    country = rng.choice(["DE", "GB", "FR", "NL", "ES", "IT", "CH", "BE", "NO", "PL", "SE", "IE"])
    length = IBAN_LENGTHS[country]
    if country in ("GB", "NL", "IE"):
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + _digits(rng, length - 8)
    else:
        bban = _digits(rng, length - 4)
    numeric = "".join(str(ord(c) - 55) if c.isalpha() else c for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    if not valid:
        check = (check + rng.randint(1, 96)) % 97 or 1
    compact = f"{country}{check:02d}{bban}"
    if not valid and iban_checksum_ok(compact):
        compact = compact[:-1] + str((int(compact[-1]) + 1) % 10)
    if rng.random() < 0.5:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


def aws_key_id(rng: random.Random) -> str:
    prefix = rng.choice(["AKIA", "ASIA", "AIDA", "AROA"])
    return prefix + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16))


def aws_secret(rng: random.Random) -> str:
    while True:
        value = "".join(rng.choice(B64) for _ in range(40))
        if any(c.isupper() for c in value) and any(c.islower() for c in value):
            return value


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng: random.Random) -> str:
    header = _b64url(json.dumps({"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}).encode())
    payload = _b64url(json.dumps({"sub": _digits(rng, 8), "iat": 1700000000}).encode())
    signature = "".join(rng.choice(B64URL) for _ in range(43))
    return f"{header}.{payload}.{signature}"


def pem(rng: random.Random, newline: str = "\n") -> str:
    label = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    lines = ["".join(rng.choice(B64) for _ in range(64)) for _ in range(rng.randint(3, 8))]
    return f"-----BEGIN {label}-----{newline}{newline.join(lines)}{newline}-----END {label}-----"


def api_token(rng: random.Random) -> str:
    kind = rng.choice(["ghp", "gho", "ghs", "pat", "xoxb", "xoxp", "sk_live", "sk_test", "rk_live"])
    if kind.startswith("gh"):
        return f"{kind}_" + "".join(rng.choice(ALNUM) for _ in range(36))
    if kind == "pat":
        return "github_pat_" + "".join(rng.choice(ALNUM + "_") for _ in range(82))
    if kind.startswith("xox"):
        tail = "".join(rng.choice(ALNUM) for _ in range(24))
        return f"{kind}-{_digits(rng, 12)}-{_digits(rng, 13)}-{tail}"
    return f"{kind}_" + "".join(rng.choice(ALNUM) for _ in range(24))


def ipv4(rng: random.Random) -> str:
    return ".".join(str(rng.randint(0, 255)) for _ in range(4))


def ipv6(rng: random.Random) -> str:
    addr = ipaddress.IPv6Address(rng.getrandbits(128))
    if rng.random() < 0.5:
        groups = addr.exploded.split(":")
        groups[2:5] = ["0", "0", "0"]
        addr = ipaddress.IPv6Address(":".join(groups))
    return rng.choice([addr.compressed, addr.exploded, "fe80::" + format(rng.getrandbits(16), "x")])


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "card": card,
    "email": email,
    "phone": phone,
    "us_ssn": ssn,
    "iban": iban_value,
    "aws_access_key_id": aws_key_id,
    "jwt": jwt,
    "pem_private_key": pem,
    "api_token": api_token,
    "ipv4": ipv4,
    "ipv6": ipv6,
}

# --- look-alikes (must not be found) -------------------------------------------------------------


def lookalike(rng: random.Random) -> str:
    prefix, length = rng.choice(CARD_BRANDS)
    return rng.choice(
        [
            _luhn_complete(rng, prefix, length, valid=False),  # Luhn fails
            "1" + _digits(rng, 12),  # epoch milliseconds
            "1" + _digits(rng, 18),  # snowflake id
            f"ORD-{rng.randint(2000, 2030)}-{_digits(rng, 6)}",
            f"{rng.randint(2000, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:20:30Z",
            f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.{rng.randint(2000, 2030)}",
            f"{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}",
            ".".join(str(rng.randint(0, 9)) for _ in range(5)),  # longer dotted number
            f"version {rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 99)}",
            "".join(rng.choice("0123456789abcdef") for _ in range(40)),  # git SHA
            "pk_live_" + "".join(rng.choice(ALNUM) for _ in range(24)),
            "pk_test_" + "".join(rng.choice(ALNUM) for _ in range(24)),
            f"{rng.choice(['000', '666', str(rng.randint(900, 999))])}-{_digits(rng, 2)}-{_digits(rng, 4)}",
            f"{rng.randint(100, 665)}-00-{rng.randint(1000, 9999)}",
            f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-0000",
            iban_value(rng, valid=False),
            f"{rng.randint(256, 999)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}",
            f"icon@{rng.randint(2, 3)}x.png",
            f"@{rng.choice(WORDS)}",
            "admin@localhost",
            "ghp_" + "".join(rng.choice(ALNUM) for _ in range(8)),
            _digits(rng, 10),  # a plain 10-digit number
            f"1{_digits(rng, 2)}-{_digits(rng, 3)}-{_digits(rng, 4)}",  # area code 1xx
            f"+{_digits(rng, 5)}",
            f"{rng.randint(1, 9)},{_digits(rng, 3)}.{_digits(rng, 2)}",
            str(__import__("uuid").UUID(int=rng.getrandbits(128))),
            ":".join(f"{rng.randint(0, 255):02x}" for _ in range(6)),  # MAC address
            "std::string",
            "items[::2]",
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
            "".join(rng.choice(B64) for _ in range(40)),  # base64 without AWS context
            "eyJub3QiOiJqd3QifQ.eyJhIjoxfQ.c2ln",  # a header without alg
            "-----BEGIN PUBLIC KEY-----",
            "AKIA" + "".join(rng.choice(string.ascii_uppercase) for _ in range(8)),
        ]
    )


# --- samples -------------------------------------------------------------------------------------

PROSE = [
    "Customer {name} wrote: please update my details to {value} before the next invoice.",
    "{value} was seen in the support ticket opened by {name}.",
    "Note from {name}: ({value}) - delivery pending.",
    "{name} asked us to use {value}\nthanks",
]
CONTEXT_PROSE = [
    "aws secret: {value}",
    "AWS_SECRET_ACCESS_KEY={value}",
    "the secret key is {value} for {name}",
]
FILLER_KEYS = ["status", "created_at", "amount", "order_id", "sku", "version", "comment"]


def _filler(rng: random.Random) -> dict[str, object]:
    return {
        "id": rng.randrange(10**9),
        "name": rng.choice(NAMES),
        "status": rng.choice(["new", "paid", "shipped", "refunded"]),
        "created_at": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:15Z",
        "amount": round(rng.random() * 1000, 2),
        "version": f"{rng.randint(1, 5)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
    }


def _json_sample(rng: random.Random, items: Sequence[tuple[str | None, str]]) -> Sample:
    """A JSON row holding each ``(detector or None, value)`` under its own key."""
    row = _filler(rng)
    marks = []
    for i, (det, value) in enumerate(items):
        key = "aws_secret_access_key" if det == "aws_secret_access_key" else f"field_{i}"
        marker = f"<<<MARK{i}>>>"
        row[key] = marker
        marks.append((marker, det, value))
    text = json.dumps(row)
    sample = Sample("")
    for marker, det, value in marks:
        encoded = json.dumps(value)[1:-1]  # as the encoder writes it (\n, \/ ...)
        at = text.index(marker)
        text = text.replace(marker, encoded, 1)
        if det is not None:
            sample.spans.append((at, at + len(encoded), det))
    sample.text = text
    return sample


def _prose_sample(rng: random.Random, det: str | None, value: str) -> Sample:
    template = rng.choice(CONTEXT_PROSE if det == "aws_secret_access_key" else PROSE)
    head, tail = template.split("{value}")
    head = head.replace("{name}", rng.choice(NAMES))
    tail = tail.replace("{name}", rng.choice(NAMES))
    sample = Sample(head + value + tail)
    if det is not None:
        sample.spans.append((len(head), len(head) + len(value), det))
    return sample


def generate(seed: int = 7, per_detector: int = 300, lookalikes: int = 3000) -> list[Sample]:
    """Valid values of every detector (half in JSON rows, half in prose) and look-alikes."""
    rng = random.Random(seed)
    samples: list[Sample] = []
    kinds = [*GENERATORS, "aws_secret_access_key"]
    for det in kinds:
        for i in range(per_detector):
            value = aws_secret(rng) if det == "aws_secret_access_key" else GENERATORS[det](rng)
            if i % 2 == 0:
                extra: list[tuple[str | None, str]] = [(None, lookalike(rng))]
                samples.append(_json_sample(rng, [(det, value), *extra]))
            else:
                samples.append(_prose_sample(rng, det, value))
    for i in range(lookalikes):
        value = lookalike(rng)
        samples.append(_json_sample(rng, [(None, value)]) if i % 2 else _prose_sample(rng, None, value))
    rng.shuffle(samples)
    return samples


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    false_positives: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def evaluate(samples: Sequence[Sample], detectors: Sequence[Detector] | None = None) -> dict[str, Score]:
    """Precision and recall per detector: a finding is right when it covers a labelled span of
    its detector; a labelled span no finding of its detector covers is a miss."""
    dets = list(detectors) if detectors is not None else list(BUILTIN_DETECTORS.values())
    scores = {d.name: Score() for d in dets}
    for sample in samples:
        found = find_values(sample.text, dets)
        covered: set[int] = set()
        for start, end, det, _ in found:
            hit = next(
                (
                    i
                    for i, (s, e, name) in enumerate(sample.spans)
                    if name == det.name and start <= s and e <= end
                ),
                None,
            )
            if hit is None:
                scores[det.name].fp += 1
                scores[det.name].false_positives.append(sample.text[max(0, start - 20) : end + 20])
            elif hit not in covered:
                covered.add(hit)
                scores[det.name].tp += 1
        for i, (s, e, name) in enumerate(sample.spans):
            if i not in covered and name in scores:
                scores[name].fn += 1
                scores[name].misses.append(sample.text[max(0, s - 20) : e + 20])
    return scores


def report(scores: dict[str, Score]) -> str:
    lines = ["| detector | values | precision | recall |", "|---|---:|---:|---:|"]
    for name, sc in scores.items():
        lines.append(f"| {name} | {sc.tp + sc.fn} | {sc.precision:.4f} | {sc.recall:.4f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(evaluate(generate())))
