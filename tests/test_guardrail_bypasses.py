"""Known guardrail bypass attempts, kept as a permanent suite: every one must be stopped.

Each attempt goes through the same parsing and the same engine as the live path, against a
policy that allows ordinary work and applies the guardrails (packs and deny rules). "Stopped"
means the decision is deny or require-approval, or the request is refused before policy
(an HTTP path the proxy will not forward).
"""

from __future__ import annotations

import pytest

from tests.k8s_bypass_corpus import K8S_BYPASS_CORPUS
from tests.shell_bypass_corpus import SHELL_BYPASS_CORPUS
from tests.sql_bypass_corpus import BYPASS_CORPUS
from wardgate.errors import BadRequest
from wardgate.identity import Identity
from wardgate.operations import UnparseableOperation
from wardgate.operations.http import HttpOperation
from wardgate.operations.k8s import parse_k8s_request
from wardgate.operations.shell import parse_shell
from wardgate.operations.sql import parse_sql
from wardgate.policy.document import build
from wardgate.proxies.http import check_query, normalise_path

AGENT = Identity("agent-1", "https://idp.example.com", ("ci",))

POLICY = build(
    {
        "connections": [
            {"name": "api", "kind": "http", "upstream_url": "https://api.example.com"},
            {"name": "pg", "kind": "sql", "upstream_url": "postgres://db"},
            {"name": "my", "kind": "sql", "upstream_url": "mysql://db"},
            {"name": "cluster", "kind": "k8s", "upstream_url": "https://k8s.example.com"},
            {"name": "host", "kind": "tcp", "upstream_url": "ssh://host"},
        ],
        "rules": [
            {
                "name": "agents use the api",
                "effect": "allow",
                "connections": ["api"],
                "identity": {"groups": ["ci"]},
            },
            {
                "name": "no admin api",
                "effect": "deny",
                "connections": ["api"],
                "match": {"http": {"paths": ["/admin", "/admin/*"]}},
            },
            {
                "name": "no deleting users",
                "effect": "deny",
                "connections": ["api"],
                "match": {"http": {"methods": ["DELETE"], "paths": ["/v1/users/*"]}},
            },
            {"name": "agents use the cluster", "effect": "allow", "connections": ["cluster"]},
            {"name": "agents use the host", "effect": "allow", "connections": ["host"]},
            {
                "name": "no destructive programs",
                "effect": "deny",
                "connections": ["host"],
                "match": {"shell": {"programs": ["rm", "dd", "mkfs*", "shutdown", "reboot", "curl", "wget"]}},
            },
        ],
        "packs": [
            {"name": "read-only-sql", "connections": ["pg", "my"]},
            {"name": "no-destructive-ddl", "connections": ["pg", "my"]},
            {"name": "no-unbounded-writes", "connections": ["pg", "my"]},
            {"name": "no-kubernetes-secret-reads", "connections": ["cluster"]},
            {"name": "no-pod-exec", "connections": ["cluster"]},
            {"name": "no-writes-to-production-namespaces", "connections": ["cluster"]},
        ],
        "settings": {},
    },
    strict=False,
)


def decide(connection: str, protocol: str, operation: object) -> str:
    return POLICY.decide(AGENT, connection, protocol, operation).outcome


# ---------------------------------------------------------------- HTTP

HTTP_ATTEMPTS = [
    ("GET", "/admin/keys"),
    ("GET", "/ADMIN/keys"),
    ("GET", "/Admin/keys"),
    ("GET", "/%61dmin/keys"),  # percent-encoded letter
    ("GET", "/%41DMIN/keys"),
    ("GET", "/admin;jsessionid=x/keys"),  # matrix parameters
    ("GET", "/admin;/keys"),
    ("GET", "/admin/keys/"),
    ("GET", "/admin"),
    ("GET", "/public/../admin/keys"),  # dot segments
    ("GET", "/public/%2e%2e/admin/keys"),
    ("GET", "/public/%2E%2E/admin/keys"),
    ("GET", "/public/..;/admin/keys"),
    ("GET", "/public%2f..%2fadmin/keys"),  # encoded slashes
    ("GET", "/public%5c..%5cadmin/keys"),  # encoded backslashes
    ("GET", "//admin/keys"),  # empty segments
    ("GET", "/%2561dmin/keys"),  # double encoding
    ("GET", "/%252e%252e/admin"),
    ("GET", "/admin%00/keys"),  # NUL
    ("DELETE", "/v1/users/7"),
    ("DELETE", "/V1/Users/7"),
    ("DELETE", "/v1/%75sers/7"),
    ("DELETE", "/v1/users;x=1/7"),
]


@pytest.mark.parametrize(("method", "path"), HTTP_ATTEMPTS)
def test_http_bypass_attempts_are_stopped(method, path):
    try:
        operation = HttpOperation(method, normalise_path(path), check_query(""))
    except BadRequest:
        return  # refused before policy: never forwarded
    assert decide("api", "http", operation) != "allow", operation.match_path


def test_ordinary_http_work_is_still_allowed():
    for method, path in [("GET", "/v1/users/7"), ("GET", "/public/admin-guide"), ("DELETE", "/v1/orders/7")]:
        assert decide("api", "http", HttpOperation(method, normalise_path(path), "")) == "allow"


# ------------------------------------------------ SQL, Kubernetes, shell (corpora kept with the parsers)

DENIED_PROGRAMS = {"rm", "dd", "shutdown", "reboot", "curl", "wget"}


def sql_is_attack(expectation: dict) -> bool:
    """Attacks on a read-only connection: anything but plain reads (which the corpus also holds, to
    check that reads hiding keywords in comments or strings, or reading other tables, parse as reads)."""
    kinds = set(expectation.get("kinds", ())) | ({expectation["kind"]} if "kind" in expectation else set())
    plain_read = (
        (kinds or set(expectation) <= {"reads", "no_writes"})
        and kinds <= {"select", "show", "explain", "transaction"}
        and not expectation.get("unparseable")
        and not expectation.get("writes")
        and not expectation.get("functions")
        and not expectation.get("features")
    )
    return not plain_read


def k8s_is_attack(expectation: dict) -> bool:
    return bool(
        expectation.get("unparseable")
        or (expectation.get("resource") == "secrets" and expectation.get("verb") in ("get", "list", "watch"))
        or expectation.get("subresource") in ("exec", "attach", "portforward")
    )


def shell_is_attack(expectation: dict) -> bool:
    return bool(expectation.get("unparseable") or set(expectation.get("programs", ())) & DENIED_PROGRAMS)


SQL_ATTACKS = [entry for entry in BYPASS_CORPUS if sql_is_attack(entry[2])]
SQL_LOOK_ALIKES = [entry for entry in BYPASS_CORPUS if not sql_is_attack(entry[2])]
K8S_ATTACKS = [entry for entry in K8S_BYPASS_CORPUS if k8s_is_attack(entry[3])]
K8S_LOOK_ALIKES = [entry for entry in K8S_BYPASS_CORPUS if not k8s_is_attack(entry[3])]
SHELL_ATTACKS = [entry for entry in SHELL_BYPASS_CORPUS if shell_is_attack(entry[1])]
SHELL_LOOK_ALIKES = [entry for entry in SHELL_BYPASS_CORPUS if not shell_is_attack(entry[1])]


def sql_decision(dialect: str, sql: str) -> str:
    return decide("pg" if dialect == "postgres" else "my", "sql", _unparseable_or(parse_sql, sql, dialect))


@pytest.mark.parametrize(("dialect", "sql", "expectation"), SQL_ATTACKS)
def test_sql_bypass_attempts_are_stopped(dialect, sql, expectation):
    assert sql_decision(dialect, sql) != "allow"


@pytest.mark.parametrize(("dialect", "sql", "expectation"), SQL_LOOK_ALIKES)
def test_sql_look_alikes_are_not_stopped(dialect, sql, expectation):
    """Reads that only look dangerous (a DELETE in a comment or a string) stay allowed."""
    assert sql_decision(dialect, sql) == "allow"


@pytest.mark.parametrize(("method", "raw_path", "raw_query", "expectation"), K8S_ATTACKS)
def test_kubernetes_bypass_attempts_are_stopped(method, raw_path, raw_query, expectation):
    operation = _unparseable_or(parse_k8s_request, method, raw_path, raw_query)
    assert decide("cluster", "k8s", operation) != "allow", operation


@pytest.mark.parametrize(("text", "expectation"), SHELL_ATTACKS)
def test_shell_bypass_attempts_are_stopped(text, expectation):
    operation = _unparseable_or(parse_shell, text)
    assert decide("host", "shell", operation) != "allow", operation


def test_the_corpus_is_large_enough():
    corpora = (HTTP_ATTEMPTS, BYPASS_CORPUS, K8S_BYPASS_CORPUS, SHELL_BYPASS_CORPUS)
    assert sum(len(c) for c in corpora) >= 60


def _unparseable_or(parse, *args):
    try:
        return parse(*args)
    except UnparseableOperation as exc:
        return exc
