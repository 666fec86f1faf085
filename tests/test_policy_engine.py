"""The decision engine: precedence, identity, time, body fields, multi-unit operations, the index."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate.identity import Identity
from wardgate.operations import UnparseableOperation
from wardgate.operations.http import HttpOperation
from wardgate.operations.sql import parse_sql
from wardgate.policy.document import PolicyError, build

AGENT = Identity("agent-1", "https://idp.example.com", ("ci",))
MONDAY_NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CONNECTIONS = [
    {"name": "api", "kind": "http", "upstream_url": "https://api.example.com"},
    {"name": "db", "kind": "sql", "upstream_url": "postgres://db"},
]


def policy(*rules, packs=(), settings_=None):
    return build(
        {"connections": CONNECTIONS, "rules": list(rules), "packs": list(packs), "settings": settings_ or {}}
    )


def http(method, path, body=b"", content_type="application/json"):
    return HttpOperation(method, path, "", body, content_type)


def allow_all_http(**extra):
    return {"name": "allow http", "effect": "allow", "match": {"http": {"methods": ["*"]}}, **extra}


def test_nothing_matching_means_deny():
    decision = policy().decide(AGENT, "api", "http", http("GET", "/x"))
    assert decision.outcome == "deny" and decision.rule == "default-deny"
    assert "GET /x" in decision.reason


def test_deny_wins_over_allow_and_approval_over_allow():
    rules = [
        allow_all_http(),
        {"name": "no deletes", "effect": "deny", "message": "no", "match": {"http": {"methods": ["DELETE"]}}},
        {
            "name": "posts need approval",
            "effect": "require_approval",
            "approvers": ["leads"],
            "match": {"http": {"methods": ["POST"]}},
        },
    ]
    p = policy(*rules)
    assert p.decide(AGENT, "api", "http", http("GET", "/x")).outcome == "allow"
    deny = p.decide(AGENT, "api", "http", http("DELETE", "/x"))
    assert (deny.outcome, deny.rule, deny.reason) == ("deny", "no deletes", "no")
    approval = p.decide(AGENT, "api", "http", http("POST", "/x"))
    assert approval.outcome == "require_approval" and approval.approvers == ("leads",)
    assert approval.policy_version == p.version


def test_paths_are_globs_and_methods_case_insensitive():
    p = policy(
        {"name": "r", "effect": "allow", "match": {"http": {"methods": ["get"], "paths": ["/v1/users/*"]}}}
    )
    assert p.decide(AGENT, "api", "http", http("GET", "/v1/users/7")).outcome == "allow"
    assert p.decide(AGENT, "api", "http", http("GET", "/v1/orders/7")).outcome == "deny"


def test_identity_conditions():
    p = policy(allow_all_http(identity={"groups": ["ops"], "subjects": ["agent-*"]}))
    assert p.decide(AGENT, "api", "http", http("GET", "/")).outcome == "deny"
    ops = Identity("agent-2", "i", ("ops",))
    assert p.decide(ops, "api", "http", http("GET", "/")).outcome == "allow"
    assert p.decide(Identity("human", "i", ("ops",)), "api", "http", http("GET", "/")).outcome == "deny"


def test_connection_scope():
    p = policy(allow_all_http(connections=["api"]))
    assert p.decide(AGENT, "api", "http", http("GET", "/")).outcome == "allow"
    assert p.decide(AGENT, "other", "http", http("GET", "/")).outcome == "deny"


@pytest.mark.parametrize(
    ("window", "when", "expected"),
    [
        ({"days": ["mon"], "start": "09:00", "end": "17:00"}, MONDAY_NOON, "allow"),
        ({"days": ["tue"], "start": "09:00", "end": "17:00"}, MONDAY_NOON, "deny"),
        ({"start": "13:00", "end": "17:00"}, MONDAY_NOON, "deny"),
        (
            {"start": "22:00", "end": "06:00", "days": ["sun"]},
            datetime(2026, 11, 23, 3, 0, tzinfo=UTC),
            "allow",
        ),
        (
            {"start": "22:00", "end": "06:00", "days": ["mon"]},
            datetime(2026, 11, 23, 3, 0, tzinfo=UTC),
            "deny",
        ),
        ({"start": "12:30", "end": "13:30", "timezone": "Europe/Berlin"}, MONDAY_NOON, "allow"),
    ],
)
def test_time_windows(window, when, expected):
    p = policy(allow_all_http(time=window))
    assert p.decide(AGENT, "api", "http", http("GET", "/"), now=when).outcome == expected


def test_json_body_fields_with_bounds_and_values():
    refunds = {
        "name": "big refunds",
        "effect": "require_approval",
        "approvers": ["finance"],
        "match": {"http": {"methods": ["POST"], "body": {"amount": {"gt": 500}}}},
    }
    currency = {
        "name": "no crypto",
        "effect": "deny",
        "match": {"http": {"methods": ["POST"], "body": {"payment.currency": ["BTC", "ETH"]}}},
    }
    p = policy(allow_all_http(), refunds, currency)
    assert (
        p.decide(AGENT, "api", "http", http("POST", "/r", b'{"amount": 900}')).outcome == "require_approval"
    )
    assert p.decide(AGENT, "api", "http", http("POST", "/r", b'{"amount": 90}')).outcome == "allow"
    assert (
        p.decide(AGENT, "api", "http", http("POST", "/r", b'{"payment": {"currency": "BTC"}}')).outcome
        == "deny"
    )
    # A body the rules cannot read: deny and approval rules apply (fail closed), allow rules would not.
    unreadable = http("POST", "/r", b"{not json", "application/json")
    assert p.decide(AGENT, "api", "http", unreadable).outcome == "deny"
    assert (
        p.decide(AGENT, "api", "http", http("POST", "/r", b'{"amount": "900"}')).outcome == "require_approval"
    )


def test_unparseable_operations_are_never_allowed_by_accident():
    p = policy({"name": "anyone", "effect": "allow", "identity": {"groups": ["ci"]}})
    failure = UnparseableOperation("unterminated string")
    decision = p.decide(AGENT, "db", "sql", failure)
    assert decision.outcome == "deny" and "unterminated string" in decision.reason
    approval = policy(settings_={"unparseable": "require_approval"}).decide(AGENT, "db", "sql", failure)
    assert approval.outcome == "require_approval"
    explicit = policy(
        {"name": "trust", "effect": "allow", "connections": ["db"], "match": {"sql": {"unparseable": True}}}
    )
    assert explicit.decide(AGENT, "db", "sql", failure).outcome == "allow"


def test_the_read_only_pack_refuses_locking_reads():
    read_only = policy(packs=[{"name": "read-only-sql", "connections": ["db"]}])
    for sql in ("SELECT * FROM accounts", "SELECT 'FOR UPDATE' FROM accounts", "EXPLAIN SELECT 1"):
        assert read_only.decide(AGENT, "db", "sql", parse_sql(sql)).outcome == "allow", sql
    for sql, dialect in (
        ("SELECT * FROM accounts WHERE id = 1 FOR UPDATE", "postgres"),
        ("SELECT * FROM accounts FOR KEY SHARE SKIP LOCKED", "postgres"),
        ("WITH a AS (SELECT * FROM accounts FOR NO KEY UPDATE) SELECT * FROM a", "postgres"),
        ("SELECT * FROM accounts LOCK IN SHARE MODE", "mysql"),
        ("SELECT 1; SELECT * FROM accounts FOR SHARE NOWAIT", "mysql"),
    ):
        decision = read_only.decide(AGENT, "db", "sql", parse_sql(sql, dialect))
        assert decision.outcome == "deny", sql
        assert "read-only" in decision.reason and "lock rows" in decision.reason, decision.reason
    asking = policy(
        packs=[
            {
                "name": "read-only-sql",
                "connections": ["db"],
                "effect": "require_approval",
                "approvers": ["dba@example.com"],
            }
        ]
    )
    locking = parse_sql("SELECT * FROM accounts FOR UPDATE")
    assert asking.decide(AGENT, "db", "sql", locking).outcome == "require_approval"


def test_rules_that_cannot_be_enforced_are_rejected():
    with pytest.raises(PolicyError) as error:
        policy(
            {
                "name": "sql on http",
                "effect": "deny",
                "connections": ["api"],
                "match": {"sql": {"kinds": ["drop"]}},
            }
        )
    assert "could never be enforced" in str(error.value)
    with pytest.raises(PolicyError, match="unknown connection"):
        policy(allow_all_http(connections=["nope"]))
    with pytest.raises(PolicyError, match="names no approvers"):
        policy({"name": "x", "effect": "require_approval"})


def test_same_policy_same_version():
    assert policy(allow_all_http()).version == policy(allow_all_http()).version
    assert policy(allow_all_http()).version != policy(allow_all_http(connections=["api"])).version


# ---------------------------------------------------------------- the index gives the same answers as a scan

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
PATHS = ["/a", "/a/b", "/v1/users/7", "/v1/orders", "/admin"]


def random_rule(rng: random.Random, i: int) -> dict:
    rule: dict = {"name": f"r{i}", "effect": rng.choice(["allow", "allow", "deny", "require_approval"])}
    if rule["effect"] == "require_approval":
        rule["approvers"] = ["x"]
    condition: dict = {}
    if rng.random() < 0.7:
        condition["methods"] = rng.sample(METHODS, rng.randint(1, 2)) if rng.random() < 0.8 else ["P*"]
    if rng.random() < 0.5:
        condition["paths"] = [rng.choice([*PATHS, "/v1/*", "/a*"])]
    if condition:
        rule["match"] = {"http": condition}
    if rng.random() < 0.3:
        rule["identity"] = {"groups": [rng.choice(["ci", "ops"])]}
    if rng.random() < 0.3:
        rule["connections"] = [rng.choice(["api", "*"])]
    return rule


def scan_decision(p, identity, connection, operation):
    """The same decision without the index: every rule considered."""
    unit = {**operation.attributes(), "operation": operation}
    matching = [
        r
        for r in p.rules
        if (connection in r.connections or "*" in r.connections)
        and (r.protocol is None or r.matches(unit))
        and r.applies_to(identity, MONDAY_NOON)
    ]
    if not matching:
        return "deny"
    return max(matching, key=lambda r: r.severity).effect


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), method=st.sampled_from(METHODS), path=st.sampled_from(PATHS))
def test_indexed_decisions_equal_a_full_scan(seed, method, path):
    rng = random.Random(seed)
    p = policy(*[random_rule(rng, i) for i in range(40)])
    operation = http(method, path)
    for identity in (AGENT, Identity("agent-2", "i", ("ops",))):
        indexed = p.decide(identity, "api", "http", operation, now=MONDAY_NOON).outcome
        assert indexed == scan_decision(p, identity, "api", operation)


@settings(max_examples=200, deadline=None)
@given(
    method=st.text(max_size=10),
    path=st.text(max_size=40),
    body=st.binary(max_size=200),
    content_type=st.sampled_from(["application/json", "text/plain", ""]),
)
def test_the_engine_never_crashes_on_arbitrary_requests(method, path, body, content_type):
    p = policy(
        allow_all_http(),
        {"name": "body", "effect": "deny", "match": {"http": {"body": {"a.b": {"gt": 1}}, "paths": ["/x*"]}}},
        {
            "name": "vals",
            "effect": "require_approval",
            "approvers": ["x"],
            "match": {"http": {"body": {"k": ["v*"]}}},
        },
    )
    decision = p.decide(AGENT, "api", "http", HttpOperation(method, path, "", body, content_type))
    assert decision.outcome in ("allow", "deny", "require_approval")


def test_owner_rules_match_the_owner_claim():
    p = policy(
        allow_all_http(), {"name": "alice's agents", "effect": "deny", "identity": {"owners": ["alice@*"]}}
    )
    owned = Identity("agent-7", "i", ("ci",), owner="alice@example.com")
    assert p.decide(owned, "api", "http", http("GET", "/")).outcome == "deny"
    assert p.decide(AGENT, "api", "http", http("GET", "/")).outcome == "allow"


def test_default_deny_says_what_was_not_allowed():
    from wardgate.operations.sql import parse_sql

    decision = policy().decide(AGENT, "db", "sql", parse_sql("UPDATE users SET a = 1 WHERE id = 2"))
    assert decision.reason == "no rule allows an update statement on connection 'db'"
