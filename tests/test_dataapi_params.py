"""``:name`` placeholders -> ``%(name)s``: what is and is not a placeholder, in each dialect."""

from __future__ import annotations

import pytest

from wardgate.dataapi.errors import DataApiError
from wardgate.dataapi.params import bind, translate
from wardgate.dataapi.requests import SqlParameter


def test_named_placeholders_become_pyformat_in_order_of_first_use() -> None:
    out = translate("SELECT * FROM t WHERE a = :a AND b = :b_2 OR a = :a", "postgres")
    assert out.text == "SELECT * FROM t WHERE a = %(a)s AND b = %(b_2)s OR a = %(a)s"
    assert out.names == ("a", "b_2")


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_string_literals_are_left_alone(dialect: str) -> None:
    out = translate("SELECT ':no', 'it''s :no' , :yes", dialect)  # type: ignore[arg-type]
    assert out.text == "SELECT ':no', 'it''s :no' , %(yes)s"
    assert out.names == ("yes",)


def test_mysql_backslash_escapes_inside_strings() -> None:
    out = translate(r"SELECT 'a\':no', :yes", "mysql")
    assert out.names == ("yes",)
    # In standard PostgreSQL strings a backslash is an ordinary character: the quote ends it.
    assert translate(r"SELECT 'a\', :yes", "postgres").names == ("yes",)


def test_postgres_escape_strings_honour_backslashes() -> None:
    assert translate(r"SELECT E'a\':no', :yes", "postgres").names == ("yes",)


def test_quoted_identifiers_are_left_alone() -> None:
    assert translate('SELECT ":no" FROM t WHERE x = :yes', "postgres").names == ("yes",)
    assert translate("SELECT `:no` FROM t WHERE x = :yes", "mysql").names == ("yes",)


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("SELECT 1 -- :no\n, :yes", "postgres"),
        ("SELECT 1 /* :no */ , :yes", "postgres"),
        ("SELECT 1 /* outer /* :no */ still :no */ , :yes", "postgres"),
        ("SELECT 1 # :no\n, :yes", "mysql"),
        ("SELECT 1 -- :no\n, :yes", "mysql"),
        ("SELECT 1 /* :no */ , :yes", "mysql"),
    ],
)
def test_comments_are_left_alone(sql: str, dialect: str) -> None:
    out = translate(sql, dialect)  # type: ignore[arg-type]
    assert out.names == ("yes",)
    assert ":no" in out.text


def test_mysql_double_dash_needs_a_space_to_be_a_comment() -> None:
    assert translate("SELECT 1--:yes", "mysql").names == ("yes",)


@pytest.mark.parametrize("quote", ["$$", "$body$", "$_x1$"])
def test_dollar_quoted_strings_are_left_alone(quote: str) -> None:
    sql = f"SELECT {quote} :no ' :no {quote}, :yes"
    out = translate(sql, "postgres")
    assert out.names == ("yes",)
    assert f"{quote} :no ' :no {quote}" in out.text


def test_dollar_in_an_identifier_is_not_a_quote() -> None:
    assert translate("SELECT a$b$ FROM t WHERE x = :yes", "postgres").names == ("yes",)


def test_casts_and_other_colons_are_not_placeholders() -> None:
    out = translate("SELECT :v::int, '1'::text, arr[1:2], x:=1", "postgres")
    assert out.text == "SELECT %(v)s::int, '1'::text, arr[1:2], x:=1"
    assert out.names == ("v",)


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_every_literal_percent_is_doubled(dialect: str) -> None:
    out = translate("SELECT '50%', 7 % 2, :p /* 5% */ -- 9%\n", dialect)  # type: ignore[arg-type]
    assert out.text == "SELECT '50%%', 7 %% 2, %(p)s /* 5%% */ -- 9%%\n"


@pytest.mark.parametrize(
    ("sql", "what"),
    [
        ("SELECT 'open", "string literal"),
        ('SELECT "open', "quoted identifier"),
        ("SELECT /* open", "comment"),
    ],
)
def test_unterminated_quotes_and_comments_are_bad_requests(sql: str, what: str) -> None:
    with pytest.raises(DataApiError) as caught:
        translate(sql, "postgres")
    assert caught.value.error_type == "BadRequestException"
    assert what in caught.value.message


def test_unterminated_dollar_quote_is_a_bad_request() -> None:
    with pytest.raises(DataApiError, match="dollar-quoted"):
        translate("SELECT $x$ never closed", "postgres")


def test_bind_refuses_missing_and_unused_parameters_by_name() -> None:
    with pytest.raises(DataApiError) as missing:
        bind("SELECT :a, :b", [SqlParameter("a", 1)], "postgres")
    assert missing.value.error_type == "BadRequestException"
    assert "b" in missing.value.message and "no value" in missing.value.message
    with pytest.raises(DataApiError) as unused:
        bind("SELECT :a", [SqlParameter("a", 1), SqlParameter("zz", 2)], "mysql")
    assert "zz" in unused.value.message and "not used" in unused.value.message


def test_bind_returns_the_values_by_name() -> None:
    text, values = bind("SELECT :a, :a", [SqlParameter("a", 5)], "postgres")
    assert text == "SELECT %(a)s, %(a)s"
    assert values == {"a": 5}


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_stacked_statements_are_refused(dialect: str) -> None:
    with pytest.raises(DataApiError, match="one SQL statement per call"):
        translate("SELECT 1; DROP TABLE t", dialect)  # type: ignore[arg-type]
    # A ';' inside a literal, an identifier or a comment, and a trailing ';', are fine.
    translate("SELECT ';', \"a;b\" /* ; */ FROM t; -- done\n ;", dialect)  # type: ignore[arg-type]
