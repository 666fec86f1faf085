"""Statement shapes (operations/sql_shapes.py): a text that takes its shape's analysis gets exactly
what ``parse_sql`` gives it, and so exactly the decision the uncached path makes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.sql_bypass_corpus import BYPASS_CORPUS
from tests.test_guardrail_bypasses import AGENT, POLICY
from tests.test_sql_operations import KINDS
from wardgate.connections import Connection
from wardgate.gate import decide_on, sql_operation_record
from wardgate.operations import UnparseableOperation
from wardgate.operations.sql import parse_sql
from wardgate.operations.sql_shapes import NUMBER_MARK, STRING_MARK, Shape, admit, shape_of
from wardgate.policy.document import build
from wardgate.tcp.services import ParseCache, SessionDecisions

PG = Connection("pg", "sql", "postgres://db", allowed_groups=("ci",))
MY = Connection("my", "sql", "mysql://db", allowed_groups=("ci",))
CORPUS = BYPASS_CORPUS + KINDS
SHAPED = [entry for entry in CORPUS if shape_of(entry[1]) is not None]  # the others are parsed in full
# Values chosen to reach what parse_sql reads of literals: names (coverage), tautologies, LIKE's
# '%', row-lock words, MySQL's INTO OUTFILE scan, what it refuses (NUL, lone surrogates), quotes.
STRING_VALUES = [
    "",
    "x y",
    "users",
    "t",
    "id",
    "for",
    "FOR",
    "lock",
    "update",
    "%",
    "1",
    "0",
    "t",
    "yes",
    "1abc",
    "outfile",
    "into dumpfile",
    "select",
    "drop table users",
    "a\0b",
    "a\ud800",
    "né",
    "--",
    "/*",
]
NUMBER_VALUES = ["0", "1", "2", "7", "00", "100000000000000000000000000000"]


def fill(text: str, shape: Shape, strings: Iterator[str], numbers: Iterator[str]) -> str:
    parts: list[str] = []
    pos = 0
    for start, end, is_string in shape.slots:
        parts += (text[pos:start], f"'{next(strings)}'" if is_string else next(numbers))
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def cycle(values: list[str], offset: int) -> Iterator[str]:
    i = offset
    while True:
        yield values[i % len(values)]
        i += 1


def uncached(text: str, dialect: str) -> Any:
    try:
        return parse_sql(text, dialect)  # type: ignore[arg-type]
    except UnparseableOperation as unparseable:
        return unparseable


def assert_exact(cache: ParseCache, decisions: SessionDecisions, text: str, dialect: str) -> str:
    """The cache's answer for ``text`` is parse_sql's, and so is the session's decision; returns
    the kind of key it came by ("text" or "shape")."""
    expected = uncached(text, dialect)
    key, (operation, recorded) = cache.lookup(text, dialect)  # type: ignore[arg-type]
    if isinstance(expected, UnparseableOperation):
        assert isinstance(operation, UnparseableOperation), (text, operation)
        assert operation.reason == expected.reason
    else:
        assert operation == expected, text
    assert recorded == sql_operation_record(expected, dialect)
    connection = PG if dialect == "postgres" else MY
    decision, decided_record = decisions.decide(POLICY, text)
    assert decision == decide_on(POLICY, AGENT, connection, expected), text
    assert decided_record == recorded
    return key[0]


def variants(text: str, shape: Shape) -> list[str]:
    out = [text]
    for offset in range(len(STRING_VALUES)):
        out.append(fill(text, shape, cycle(STRING_VALUES, offset), cycle(NUMBER_VALUES, offset)))
    return out


@pytest.mark.parametrize(("dialect", "sql", "expectation"), SHAPED)
def test_shapes_give_parse_sqls_answer_on_the_corpora(dialect, sql, expectation):
    """Every corpus entry with a shape, and the same statement with other values, in both orders:
    as the text that admits its shape and as a text that takes it."""
    shape = shape_of(sql)
    assert shape is not None
    texts = variants(sql, shape)
    connection = PG if dialect == "postgres" else MY
    for order in (texts, texts[::-1]):
        cache = ParseCache()
        decisions = SessionDecisions(AGENT, connection, cache, dialect)
        for text in order:
            assert_exact(cache, decisions, text, dialect)


def test_the_corpora_exercise_shapes():
    """Not vacuous: many corpus entries have shapes, some are admitted and then served by them."""
    shaped = admitted = served = 0
    for dialect, sql, _ in CORPUS:
        shape = shape_of(sql)
        if shape is None:
            continue
        shaped += 1
        cache = ParseCache()
        decisions = SessionDecisions(AGENT, PG if dialect == "postgres" else MY, cache, dialect)
        kinds = [assert_exact(cache, decisions, text, dialect) for text in variants(sql, shape)]
        admitted += "shape" in kinds
        served += kinds.count("shape")
    assert shaped >= 80 and admitted >= 12 and served >= 200, (shaped, admitted, served)


TEMPLATES = [
    ("postgres", "SELECT abalance FROM pgbench_accounts WHERE aid = {n};"),
    ("postgres", "SELECT * FROM users WHERE name = {s} AND age > {n} ORDER BY id LIMIT {n} OFFSET {n}"),
    ("postgres", "SELECT * FROM users WHERE id = -{n} OR name IN ({s}, {s}) OR age BETWEEN {n} AND {n}"),
    ("postgres", "DELETE FROM t WHERE id = {n}"),
    ("postgres", "DELETE FROM t WHERE {n} = {n}"),
    ("postgres", "DELETE FROM t WHERE id = {n} OR {s} = {s}"),
    ("postgres", "DELETE FROM t WHERE (id = {n}) = (id = {n})"),
    ("postgres", "DELETE FROM t WHERE NOT (id <> {n}) AND name LIKE {s}"),
    ("postgres", "DELETE FROM t WHERE id IN ({n}, {n}) AND id BETWEEN {n} AND {n}"),
    ("postgres", "UPDATE t SET a = {s}, b = b + {n} WHERE id = {n}"),
    ("postgres", "UPDATE t SET a = {n} WHERE ({s} = {s})"),
    ("postgres", "UPDATE t SET a = {n} WHERE a IN (SELECT b FROM u WHERE c = {n})"),
    ("postgres", "INSERT INTO t (a, b) VALUES ({n}, {s}), ({n}, {s}) RETURNING id"),
    ("postgres", "WITH d AS (DELETE FROM t WHERE id = {n} RETURNING *) SELECT * FROM d"),
    ("postgres", "SELECT {s} FROM t WHERE x = {s}"),
    ("postgres", "SELECT * FROM t WHERE x = {s} FOR UPDATE"),
    ("postgres", "SELECT * FROM t WHERE x = {s} {s}"),
    ("postgres", "SELECT * FROM t WHERE created > now() - interval {s}"),
    ("postgres", "SELECT * FROM t WHERE data -> {s} = {s} AND lower(name) = {s}"),
    ("postgres", "SELECT * FROM t WHERE id = {n}; DROP TABLE t"),
    ("postgres", "SELECT * FROM t WHERE x = E{s} AND y = {s}"),
    ("mysql", "SELECT c FROM sbtest1 WHERE id={n}"),
    ("mysql", "SELECT * FROM t WHERE x = {s} INTO OUTFILE {s}"),
    ("mysql", "DELETE FROM t WHERE id = {n} LIMIT {n}"),
    ("mysql", "UPDATE t SET a = {s} WHERE b <=> {n}"),
    ("mysql", "INSERT INTO t (a, b) VALUES ({n}, {s}) ON DUPLICATE KEY UPDATE b = {s}"),
    ("mysql", "SELECT * FROM t WHERE {s} = {n}"),
]
strings = st.one_of(st.sampled_from(STRING_VALUES), st.text(max_size=12))
numbers = st.one_of(st.sampled_from(NUMBER_VALUES), st.integers(0, 10**30).map(str))


def render(template: str, values: list[str]) -> str:
    """``template`` with ``{s}`` and ``{n}`` replaced by ``values`` in order (strings quoted)."""
    out, rest, i = [], template, 0
    while True:
        s, n = rest.find("{s}"), rest.find("{n}")
        if s < 0 and n < 0:
            return "".join(out) + rest
        at = min(p for p in (s, n) if p >= 0)
        value = values[i % len(values)] if values else "0"
        out += (rest[:at], f"'{value}'" if at == s else (value if value.isdigit() else "0"))
        rest, i = rest[at + 3 :], i + 1


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(TEMPLATES),
    st.lists(st.lists(st.one_of(strings, numbers), min_size=1, max_size=8), min_size=3, max_size=4),
)
def test_shapes_give_parse_sqls_answer_on_generated_literals(template, fillings):
    dialect, text = template
    cache = ParseCache()
    decisions = SessionDecisions(AGENT, PG if dialect == "postgres" else MY, cache, dialect)
    for values in fillings:
        assert_exact(cache, decisions, render(text, values), dialect)


@pytest.mark.parametrize(
    ("dialect", "first", "second", "then"),
    [
        # the tautology check reads the values: such shapes are never admitted
        ("postgres", "DELETE FROM t WHERE 5 = 6", "DELETE FROM t WHERE 5 = 7", "DELETE FROM t WHERE 5 = 5"),
        (
            "postgres",
            "DELETE FROM t WHERE a LIKE 'a%'",
            "DELETE FROM t WHERE a LIKE 'b%'",
            "DELETE FROM t WHERE a LIKE '%'",
        ),
        (
            "postgres",
            "DELETE FROM t WHERE (a = 1) = (a = 2)",
            "DELETE FROM t WHERE (a = 1) = (a = 3)",
            "DELETE FROM t WHERE (a = 1) = (a = 1)",
        ),
        (
            "mysql",
            "DELETE FROM t WHERE 'a' = 'b'",
            "DELETE FROM t WHERE 'a' = 'c'",
            "DELETE FROM t WHERE 'a' = 'A '",
        ),
    ],
)
def test_where_tautologies_are_decided_on_each_text(dialect, first, second, then):
    cache = ParseCache()
    decisions = SessionDecisions(AGENT, PG if dialect == "postgres" else MY, cache, dialect)
    assert [assert_exact(cache, decisions, t, dialect) for t in (first, second, then)] == ["text"] * 3
    assert parse_sql(then, dialect).statements[0].has_where is False
    assert parse_sql(first, dialect).statements[0].has_where is True


def test_a_shaped_statement_is_served_by_its_shape_from_its_third_text():
    cache = ParseCache()
    decisions = SessionDecisions(AGENT, PG, cache, "postgres")
    texts = [f"DELETE FROM t WHERE id = {i} AND name = 'n{i}'" for i in range(5)]
    assert [assert_exact(cache, decisions, t, "postgres") for t in texts] == ["text", "text"] + ["shape"] * 3
    assert len(cache._cache) == 2  # texts served by a shape are not kept one by one
    assert parse_sql(texts[4]).statements[0].has_where is True


def test_values_parse_sql_refuses_are_parsed_in_full():
    """NUL, lone surrogates, and in MySQL the words of INTO OUTFILE, in a slot of an admitted shape."""
    cache = ParseCache()
    decisions = SessionDecisions(AGENT, MY, cache, "mysql")
    for text in ("SELECT a FROM t WHERE b = 'x'", "SELECT a FROM t WHERE b = 'y'"):
        assert_exact(cache, decisions, text, "mysql")
    assert assert_exact(cache, decisions, "SELECT a FROM t WHERE b = 'z'", "mysql") == "shape"
    for odd in ("a\0b", "a\ud800", "into outfile", "DUMPFILE"):
        assert assert_exact(cache, decisions, f"SELECT a FROM t WHERE b = '{odd}'", "mysql") == "text"


def test_a_text_spelling_a_shape_key_is_not_taken_for_the_shape():
    """Keys of texts and of shapes never meet: a text equal to an admitted shape's key (it holds
    NUL, so it is unparseable and denied) gets its own decision, not the shape's allow."""
    cache = ParseCache()
    decisions = SessionDecisions(AGENT, PG, cache, "postgres")
    for i in range(3):
        assert_exact(cache, decisions, f"SELECT a FROM t WHERE id = {i}", "postgres")
    shape = shape_of("SELECT a FROM t WHERE id = 1")
    assert shape is not None and NUMBER_MARK in shape.key and STRING_MARK not in shape.key
    decision, _ = decisions.decide(POLICY, shape.key)
    assert decision.outcome == "deny" and decision.rule == "settings.unparseable"
    assert decisions.decide(POLICY, "SELECT a FROM t WHERE id = 9")[0].outcome == "allow"


def test_a_literal_that_covers_a_name_does_not_admit_its_shape():
    """parse_sql counts a literal's words as seen when it checks every name made it into
    sqlglot's tree: a shape is admitted only if its names are covered without the values."""
    text = "SELECT a FROM t WHERE b = 'x'"
    shape = shape_of(text)
    assert shape is not None
    operation = parse_sql(text)
    assert admit(text, shape, operation, "postgres") is not None
    # the same check, made to fail for the neutral text only: a covered name, uncovered without it
    import wardgate.operations.sql_shapes as shapes

    real = shapes.parse_sql

    def neutral_refused(sql: str, dialect: str) -> Any:
        raise UnparseableOperation("part of the statement was not understood (near 'x')")

    shapes.parse_sql = neutral_refused  # type: ignore[assignment]
    try:
        assert admit(text, shape, operation, "postgres") is None
    finally:
        shapes.parse_sql = real


@pytest.mark.parametrize(
    "text",
    [
        'SELECT "a" FROM t WHERE b = 1',
        "SELECT a FROM t WHERE b = $1 AND c = 1",
        "SELECT a FROM t WHERE b = 1 -- note",
        "SELECT a FROM t /* x */ WHERE b = 1",
        "SELECT a FROM t WHERE b = 'it''s'",
        "SELECT a FROM t WHERE b = 'a\\'",
        "SELECT a FROM t WHERE b = 'unterminated",
        "SELECT `a` FROM t WHERE b = 1",
        "SELECT a FROM t WHERE b = 1 # mysql comment",
        "SELECT a FROM t WHERE b = 'x'y",
        "SELECT a FROM t",
        "SELECT a FROM t1 WHERE c = 1.5 AND d = 1e5 AND e = x1 AND f = @1 AND g = :1 AND h = 0x1F",
    ],
)
def test_texts_that_cannot_be_shaped_safely_have_no_shape(text):
    assert shape_of(text) is None


def test_only_plain_literals_are_slots():
    text = "SELECT a2 FROM t1 WHERE b = 2 AND c = 'x' AND d = E'y' AND e = 1.5"
    shape = shape_of(text)
    assert shape is not None
    assert [text[start:end] for start, end, _ in shape.slots] == ["2", "'x'"]
    assert (
        shape.key
        == f"SELECT a2 FROM t1 WHERE b = {NUMBER_MARK} AND c = {STRING_MARK} AND d = E'y' AND e = 1.5"
    )


def test_shapes_are_bounded_and_refusals_remembered():
    cache = ParseCache(entries=4, shapes=3)
    for table in range(6):
        for i in range(2):
            cache.lookup(f"SELECT a FROM t{table} WHERE id = {i}", "postgres")
    assert len(cache._shapes) == 3 and len(cache._cache) == 4
    for i in range(3):  # a shape whose tautology check reads values: refused once, then parsed in full
        assert cache.lookup(f"DELETE FROM u WHERE {i} = {i + 1}", "postgres")[0][0] == "text"
    assert "refused" in cache._shapes.values()


def test_a_new_policy_version_decides_a_shape_anew():
    cache = ParseCache()
    decisions = SessionDecisions(AGENT, PG, cache, "postgres")
    for i in range(3):
        # the read-only pack
        assert decisions.decide(POLICY, f"DELETE FROM t WHERE id = {i}")[0].outcome == "deny"
    permissive = build(
        {
            "connections": [{"name": "pg", "kind": "sql", "upstream_url": "postgres://db"}],
            "rules": [{"name": "anything", "effect": "allow", "connections": ["pg"]}],
        }
    )
    assert decisions.decide(permissive, "DELETE FROM t WHERE id = 4")[0].outcome == "allow"
    assert decisions.decide(POLICY, "DELETE FROM t WHERE id = 5")[0].outcome == "deny"
