"""The Data API's ``:name`` placeholders, rewritten into the drivers' ``%(name)s`` paramstyle.

psycopg and PyMySQL both take ``%(name)s`` and read ``%%`` as a literal ``%``. The scanner
leaves alone what is not a placeholder: string literals (``'...'`` with ``''``; backslash
escapes in MySQL and in PostgreSQL ``E'...'``), quoted identifiers (``"..."``; MySQL
backticks), comments (``--``, ``/* */`` nested in PostgreSQL, ``#`` in MySQL), PostgreSQL
dollar-quoted strings (``$$...$$``, ``$tag$...$tag$``) and ``::`` casts. Every literal ``%``
is doubled, wherever it is, because the drivers interpolate the whole text.

One statement per call, as the Data API runs it: a ``;`` followed by another statement is a
BadRequestException (psycopg would run stacked statements and return only the first result;
PyMySQL refuses them). A trailing ``;`` is fine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from wardgate.dataapi.errors import bad_request

Dialect = Literal["postgres", "mysql"]
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True)
class TranslatedSql:
    text: str  # in %(name)s paramstyle, literal % doubled
    names: tuple[str, ...]  # placeholders in order of first use


def translate(sql: str, dialect: Dialect) -> TranslatedSql:
    """Rewrite ``:name`` placeholders; raises BadRequestException on an unterminated quote or comment."""
    mysql = dialect == "mysql"
    out: list[str] = []
    names: list[str] = []
    i, n = 0, len(sql)
    ended = False  # a top-level ";" was seen: only whitespace and comments may follow
    while i < n:
        c = sql[i]
        if ended and not (c.isspace() or c == ";" or _line_comment(sql, i, mysql) or sql.startswith("/*", i)):
            raise bad_request("send one SQL statement per call (a ';' is followed by another statement)")
        if c == ";":
            ended = True
            out.append(c)
            i += 1
        elif c == "%":
            out.append("%%")
            i += 1
        elif c == "'":
            backslash = mysql or (i > 0 and sql[i - 1] in "eE" and not _word_char(sql, i - 2))
            i = _copy_quoted(sql, i, "'", backslash, out)
        elif c == '"':
            i = _copy_quoted(sql, i, '"', mysql, out)
        elif c == "`" and mysql:
            i = _copy_quoted(sql, i, "`", False, out)
        elif _line_comment(sql, i, mysql):
            end = sql.find("\n", i)
            i = _copy(sql, i, n if end < 0 else end, out)
        elif c == "/" and sql.startswith("/*", i):
            i = _copy(sql, i, _comment_end(sql, i, nested=not mysql), out)
        elif c == "$" and not mysql and not _word_char(sql, i - 1) and (tag := _DOLLAR_TAG.match(sql, i)):
            end = sql.find(tag.group(), tag.end())
            if end < 0:
                raise bad_request(f"unterminated dollar-quoted string starting at character {i + 1}")
            i = _copy(sql, i, end + len(tag.group()), out)
        elif c == ":":
            if sql.startswith("::", i):
                out.append("::")
                i += 2
            elif (name := _NAME.match(sql, i + 1)) and not _word_char(sql, i - 1):
                if name.group() not in names:
                    names.append(name.group())
                out.append(f"%({name.group()})s")
                i = name.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return TranslatedSql("".join(out), tuple(names))


def bind(sql: str, parameters: Sequence[Any], dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """The driver text and parameter dict for ``sql`` and its ``SqlParameter``s.

    A placeholder without a parameter, or a parameter no placeholder uses, is a
    BadRequestException naming them: a typo should not run a different statement.
    """
    translated = translate(sql, dialect)
    values: Mapping[str, Any] = {p.name: p.value for p in parameters}
    missing = [name for name in translated.names if name not in values]
    unused = [name for name in values if name not in translated.names]
    if missing:
        raise bad_request(f"no value given for parameter(s): {', '.join(missing)}")
    if unused:
        raise bad_request(f"parameter(s) not used in the SQL: {', '.join(unused)}")
    return translated.text, dict(values)


def _line_comment(sql: str, i: int, mysql: bool) -> bool:
    if mysql and sql[i] == "#":
        return True
    # MySQL needs whitespace (or the end) after "--"; PostgreSQL does not.
    return sql.startswith("--", i) and (not mysql or i + 2 >= len(sql) or sql[i + 2] in " \t\r\n")


def _word_char(sql: str, i: int) -> bool:
    return 0 <= i < len(sql) and (sql[i].isalnum() or sql[i] in "_$")


def _copy(sql: str, start: int, end: int, out: list[str]) -> int:
    out.append(sql[start:end].replace("%", "%%"))
    return end


def _copy_quoted(sql: str, start: int, quote: str, backslash: bool, out: list[str]) -> int:
    i = start + 1
    while i < len(sql):
        c = sql[i]
        if backslash and c == "\\":
            i += 2
        elif c == quote:
            if sql.startswith(quote * 2, i):  # doubled quote: an escaped quote, still inside
                i += 2
            else:
                return _copy(sql, start, i + 1, out)
        else:
            i += 1
    kind = "quoted identifier" if quote in '"`' else "string literal"
    raise bad_request(f"unterminated {kind} starting at character {start + 1}")


def _comment_end(sql: str, start: int, *, nested: bool) -> int:
    depth, i = 0, start
    while i < len(sql):
        if sql.startswith("/*", i):
            depth = depth + 1 if nested or depth == 0 else depth
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    raise bad_request(f"unterminated comment starting at character {start + 1}")
