"""SQL operations: one string an agent sends to a database, split into statements and classified.

Why sqlglot: it reads both dialects wardgate speaks (PostgreSQL and MySQL) with one API, it is
pure Python (its optional mypyc build, ``sqlglot[c]``, which we install, is about 2.5x faster end
to end and has wheels for the Lambda's arm64), and it yields a typed syntax tree (``exp.Select``,
``exp.Delete``, ``exp.Table``, ``exp.Func``...) to walk for tables and functions. pglast would
give PostgreSQL's own parser, but only for PostgreSQL, and as a C extension.

sqlglot is a transpiler, not the server's grammar, so it is used under supervision and
``parse_sql`` fails closed (``UnparseableOperation``) wherever its reading could differ:

* Lexing is checked: everything between two tokens must be ASCII whitespace or a comment as the
  server lexes it (PostgreSQL nests ``/* */``; MySQL does not, and ends ``--``/``#`` comments at
  ``\n`` only). NUL bytes, lone surrogates, other whitespace and input over 1 MiB are refused.
  MySQL executable comments (``/*! ... */``, ``/*M! ... */``) are code: unwrapped and parsed.
  Literals whose extent depends on server settings (an odd run of backslashes before a quote:
  ``standard_conforming_strings``, ``NO_BACKSLASH_ESCAPES``, ``ANSI_QUOTES``) are refused, as are
  ``U&"..."`` identifiers and ``UESCAPE`` (sqlglot misreads them), a ``;`` inside parentheses,
  ``BEGIN`` blocks (``BEGIN ATOMIC``, procedure bodies, MariaDB ``BEGIN NOT ATOMIC``) and nesting
  deeper than the parser can take.
* Statements are split at sqlglot's ``;`` tokens, as its own parser does (strings, comments,
  quoted names and dollar-quoted bodies are single tokens, so a ``;`` inside them never splits),
  then classified by their leading keyword *first*; an unknown keyword (or a quoted name or a
  literal in its place) is refused, so nothing is ever assumed to be a ``select``. Queries, DML,
  DDL and MySQL ``SET`` go to sqlglot's parser (``ErrorLevel.RAISE``); its tree must be of the
  class the keyword announces, must contain no opaque ``exp.Command``, and every quoted name,
  string literal, call and name in a table position of the statement must be found again in it,
  so a clause sqlglot drops or mangles is refused. DDL that sqlglot leaves opaque (``CREATE
  ROLE``, ``ALTER SYSTEM``, ``RENAME TABLE``...) is read from its tokens, and refused if it embeds
  a statement that cannot be parsed. ``COPY``, ``EXPLAIN``, ``PREPARE``, ``EXECUTE``, ``DO``,
  ``CALL``, ``GRANT``/``REVOKE``, ``LOCK``, ``LOAD``, transaction control (every word checked)
  and maintenance commands are read from tokens, recursing into the statement they wrap.
* What cannot be known is flagged, not guessed: ``EXECUTE`` and ``PREPARE ... FROM @var`` are
  ``dynamic_sql``; ``DO`` blocks and procedural function bodies are opaque except for ``EXECUTE``
  (``dynamic_sql``), calls written in them, and their language (``untrusted_language``, and
  ``dynamic_sql`` for languages other than SQL and PL/pgSQL). SQL-language bodies and MySQL
  ``PREPARE ... FROM 'string'`` are parsed like any statement.

Conservative choices (policies see more, never less): ``EXPLAIN`` exposes the wrapped
statement's tables and functions even without ``ANALYZE`` (``explain_analyze`` says it runs);
DDL, ``GRANT``/``REVOKE``, ``LOCK`` and maintenance commands (``VACUUM``, ``ANALYZE``,
``REINDEX``, ``REFRESH``, ``OPTIMIZE``...: kind ``other``) put the relations, schemas and
databases they name in ``tables_written``; a MySQL multi-table ``UPDATE`` whose ``SET`` columns
are not all qualified writes every table it joins; ``has_where`` is ``False`` for a condition that
is constant true by PostgreSQL's or MySQL's reading (``1``, ``'t'``, ``'1abc'``, ``1 = '1'``),
compares an expression with itself, or is ``LIKE '%'`` (other tautologies are not detected);
known functions are reported under the name written and sqlglot's name (``now`` and
``current_timestamp``). MySQL unquoted names are lower-cased like PostgreSQL's, quoted ones keep
their case: a server with case-insensitive table names needs case-insensitive rules.

Other kinds: ``LOAD DATA`` is ``copy`` (``load_data_infile``, ``load_data_local``); ``REPLACE`` is
``insert`` (``replace``); MySQL ``DO expr`` is ``do`` without ``do_block``; ``SET TRANSACTION`` is
``transaction``; MySQL ``SET PASSWORD``/``SET DEFAULT ROLE`` are ``ddl`` ``alter`` ``user``;
``DESCRIBE`` is ``explain``; ``DECLARE ... CURSOR FOR`` is ``other`` with the query's tables;
``LISTEN``/``NOTIFY``/``FETCH``/``CHECKPOINT``/MySQL ``RESET``, ``FLUSH``, ``KILL``... are ``other``.
Features besides those of the contract: ``copy_stdio``, ``nested_write``, ``upsert``,
``replace``, ``row_lock``, ``explain_analyze``, ``set_role``,
``set_session_authorization``, ``set_search_path``, ``set_global``, ``set_sql_mode`` (MySQL),
``alter_system``,
``security_definer``, ``untrusted_language``, ``load_library`` (PostgreSQL ``LOAD``), ``handler``,
``binlog``, ``mysql_executable_comment``. ``row_lock`` is a locking read (``FOR UPDATE``, ``FOR NO KEY
UPDATE``, ``FOR SHARE``, ``FOR KEY SHARE``, MySQL ``LOCK IN SHARE MODE``) anywhere in the statement
(also reported as ``select_for_update``, its former name); a query or DML statement whose tokens
spell such a clause that sqlglot's tree lacks is refused.
"""

from __future__ import annotations

import enum
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect as _GlotDialect
from sqlglot.errors import ErrorLevel, ParseError, TokenError
from sqlglot.tokenizer_core import Token, TokenType
from sqlglot.tokens import Tokenizer

from wardgate.operations import UnparseableOperation

__all__ = ["Dialect", "SqlOperation", "SqlStatement", "parse_sql"]

Dialect = Literal["postgres", "mysql"]

MAX_INPUT_BYTES: Final = 1 << 20
_MAX_NESTING: Final = 128  # parentheses/brackets; sqlglot's parser recurses per level
_MAX_DEPTH: Final = 4  # statements inside statements (EXPLAIN PREPARE ..., PREPARE FROM '...')

# sqlglot logs a warning each time it falls back to an opaque Command; we handle those ourselves.
logging.getLogger("sqlglot").setLevel(logging.ERROR)


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


KINDS: Final = _names(
    "select insert update delete merge ddl grant revoke copy set reset transaction call do execute "
    "prepare deallocate explain show use lock other"
)


@dataclass(frozen=True)
class SqlStatement:
    """One statement, as policy rules see it. ``text`` is the statement as sent, trimmed."""

    text: str
    kind: str
    ddl_action: str | None = None
    object_type: str | None = None
    tables_read: tuple[str, ...] = ()
    tables_written: tuple[str, ...] = ()
    has_where: bool | None = None
    functions: tuple[str, ...] = ()
    features: tuple[str, ...] = ()

    def attributes(self) -> dict[str, Any]:
        """Every field except ``text``, as plain values."""
        return {
            "kind": self.kind,
            "ddl_action": self.ddl_action,
            "object_type": self.object_type,
            "tables_read": self.tables_read,
            "tables_written": self.tables_written,
            "has_where": self.has_where,
            "functions": self.functions,
            "features": self.features,
        }


@dataclass(frozen=True)
class SqlOperation:
    """Every statement of one SQL string, in order (empty statements dropped)."""

    dialect: Dialect
    statements: tuple[SqlStatement, ...]

    def to_record(self) -> dict[str, Any]:
        """JSON-able form for recordings."""
        return {
            "protocol": "sql",
            "dialect": self.dialect,
            "statements": [
                {
                    "text": s.text,
                    **{k: list(v) if isinstance(v, tuple) else v for k, v in s.attributes().items()},
                }
                for s in self.statements
            ],
        }


def parse_sql(text: str, dialect: Dialect = "postgres") -> SqlOperation:
    """Split ``text`` into statements and classify each; ``UnparseableOperation`` when not confident.

    Never raises anything else, whatever ``text`` holds.
    """
    if dialect not in _DIALECT_NAMES:
        raise UnparseableOperation(f"unsupported SQL dialect {dialect!r}")
    try:
        statements = _parse(text, dialect, 0)
    except UnparseableOperation:
        raise
    except RecursionError:
        raise UnparseableOperation("SQL is nested too deeply to analyse") from None
    except Exception as exc:  # fail closed on anything sqlglot or we did not foresee
        raise UnparseableOperation(f"SQL could not be analysed ({type(exc).__name__})") from None
    return SqlOperation(dialect=dialect, statements=tuple(statements))


# ---------------------------------------------------------------------------------------------
# Dialect plumbing

_DIALECT_NAMES: Final[dict[str, str]] = {"postgres": "postgres", "mysql": "mysql"}
_PG_SPACE: Final = frozenset(" \t\n\r\f")
_MYSQL_SPACE: Final = frozenset(" \t\n\r\f\v")


class _Glot:
    """sqlglot objects for one dialect. The tokenizer keeps the tokens of statements sqlglot
    would otherwise swallow into one string (EXPLAIN, EXECUTE, CALL...): we classify those."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dialect = _GlotDialect.get_or_raise(name)
        base: type[Tokenizer] = self.dialect.tokenizer_class
        self.tokenizer_class: type[Tokenizer] = type(
            f"_Wardgate{base.__name__}", (base,), {"COMMANDS": set()}
        )
        parser = self.dialect.parser_class
        self.functions = frozenset(parser.FUNCTIONS) | frozenset(parser.FUNCTION_PARSERS)
        self._local = threading.local()

    def tokenize(self, text: str) -> list[Token]:
        tokenizer: Tokenizer | None = getattr(self._local, "tokenizer", None)
        if tokenizer is None:
            tokenizer = self.tokenizer_class(dialect=self.dialect)
            self._local.tokenizer = tokenizer
        try:
            return tokenizer.tokenize(text)
        except TokenError as exc:
            raise UnparseableOperation(f"SQL could not be tokenized: {_first_line(exc)}") from None

    def parse(self, tokens: Sequence[Token], text: str) -> exp.Expr:
        parser = self.dialect.parser(error_level=ErrorLevel.RAISE)
        try:
            trees = parser.parse(list(tokens), text)
        except ParseError as exc:
            errors = exc.errors[0] if exc.errors else {}
            where = f" at line {errors['line']}, column {errors['col']}" if "line" in errors else ""
            reason = errors.get("description") or _first_line(exc)
            raise UnparseableOperation(f"SQL syntax not understood{where}: {reason}") from None
        except TokenError as exc:
            raise UnparseableOperation(f"SQL could not be tokenized: {_first_line(exc)}") from None
        except RecursionError:
            raise UnparseableOperation("SQL is nested too deeply to analyse") from None
        except Exception as exc:  # sqlglot failing in an unforeseen way on odd input
            raise UnparseableOperation(f"SQL syntax not understood ({type(exc).__name__})") from None
        if len(trees) != 1 or trees[0] is None:
            raise UnparseableOperation("SQL statement not understood")
        return trees[0]


_GLOT: dict[str, _Glot] = {}
_GLOT_LOCK = threading.Lock()


def _glot(name: str) -> _Glot:
    glot = _GLOT.get(name)
    if glot is None:
        with _GLOT_LOCK:
            glot = _GLOT.get(name) or _Glot(name)
            _GLOT[name] = glot
    return glot


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Tokens

_T = TokenType
_STRINGS: Final = frozenset(
    {
        _T.STRING,
        _T.NATIONAL_STRING,
        _T.HEREDOC_STRING,
        _T.BYTE_STRING,
        _T.UNICODE_STRING,
        _T.RAW_STRING,
        _T.NATIONAL_RAW_STRING,
    }
)
_NOT_WORDS: Final = _STRINGS | {
    _T.IDENTIFIER,
    _T.NUMBER,
    _T.BIT_STRING,
    _T.HEX_STRING,
    _T.PARAMETER,
    _T.SESSION_PARAMETER,
    _T.PLACEHOLDER,
}
_OPEN: Final = frozenset({_T.L_PAREN, _T.L_BRACKET, _T.L_BRACE})
_CLOSE: Final = frozenset({_T.R_PAREN, _T.R_BRACKET, _T.R_BRACE})
_NAME_TOKENS: Final = frozenset({_T.VAR, _T.IDENTIFIER})


def _word(tok: Token) -> str:
    """The upper-cased keyword or bare word a token is, or '' for quoted names and literals."""
    if tok.token_type in _NOT_WORDS:
        return ""
    text = tok.text
    if not text or not (text[0].isalpha() or text[0] == "_"):
        return ""
    if " " in text or "\t" in text or "\n" in text:  # multi-word keywords: GROUP BY, LOCK TABLES
        return " ".join(text.split()).upper()
    return text.upper()


def _words(toks: Sequence[Token]) -> list[str]:
    return [_word(t) for t in toks]


def _depths(toks: Sequence[Token]) -> list[int]:
    """Parenthesis depth before each token."""
    depth = 0
    out = []
    for tok in toks:
        if tok.token_type in _CLOSE:
            depth -= 1
        out.append(depth)
        if tok.token_type in _OPEN:
            depth += 1
    return out


def _matching(toks: Sequence[Token], i: int) -> int:
    """Index of the bracket closing the one at ``i``."""
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].token_type in _OPEN:
            depth += 1
        elif toks[j].token_type in _CLOSE:
            depth -= 1
            if depth == 0:
                return j
    raise UnparseableOperation("unbalanced parentheses")


def _ident(tok: Token) -> str:
    """A name token, normalised: quoted keeps its case, unquoted is lower-cased."""
    return tok.text if tok.token_type == _T.IDENTIFIER else tok.text.lower()


def _is_name(tok: Token) -> bool:
    return tok.token_type in _NAME_TOKENS or bool(_word(tok))


def _read_name(toks: Sequence[Token], i: int) -> tuple[str, int]:
    """A possibly qualified name starting at ``i``; returns it and the index after it."""
    if i >= len(toks) or not (_is_name(toks[i]) or toks[i].token_type == _T.STAR):
        raise UnparseableOperation("a name was expected")
    parts = [_ident(toks[i]) if toks[i].token_type != _T.STAR else "*"]
    i += 1
    while i + 1 < len(toks) and toks[i].token_type == _T.DOT and toks[i].end + 1 == toks[i + 1].start:
        nxt = toks[i + 1]
        if nxt.token_type == _T.STAR:
            parts.append("*")
        elif _is_name(nxt):
            parts.append(_ident(nxt))
        else:
            break
        i += 2
    return ".".join(parts), i


def _read_names(toks: Sequence[Token], i: int, stop: Iterable[str] = ()) -> tuple[list[str], int]:
    """Comma-separated names (each optionally followed by a parenthesised list) until ``stop``."""
    stops = set(stop)
    names: list[str] = []
    while i < len(toks) and _word(toks[i]) not in stops:
        name, i = _read_name(toks, i)
        names.append(name)
        if i < len(toks) and toks[i].token_type == _T.STAR:  # PostgreSQL `name *` (with descendants)
            i += 1
        if i < len(toks) and toks[i].token_type == _T.L_PAREN:
            i = _matching(toks, i) + 1
        if i < len(toks) and toks[i].token_type == _T.COMMA:
            i += 1
            continue
        break
    return names, i


def _call_names(toks: Sequence[Token]) -> set[str]:
    """Names written as calls (``name(`` or ``schema.name(``) in tokens sqlglot did not parse."""
    out: set[str] = set()
    for i in range(len(toks) - 1):
        if toks[i + 1].token_type == _T.L_PAREN and toks[i].token_type in _NAME_TOKENS:
            bare = toks[i].text.lower()
            out.add(bare)
            if i >= 2 and toks[i - 1].token_type == _T.DOT and toks[i - 2].token_type in _NAME_TOKENS:
                out.add(f"{toks[i - 2].text.lower()}.{bare}")
    return out


# ---------------------------------------------------------------------------------------------
# Lexical supervision: what lies between tokens, literals whose extent depends on server settings


def _check_gaps(text: str, toks: Sequence[Token], mysql: bool) -> list[tuple[int, int, int]]:
    """Raise unless everything between tokens is whitespace or comments; return MySQL executable
    comments as (start, code start, end) spans."""
    executable: list[tuple[int, int, int]] = []
    pos = 0
    for tok in toks:
        start = tok.start
        if start > pos:
            if start - pos != 1 or text[pos] != " ":  # the common case: one space
                _scan_gap(text, pos, start, mysql, executable)
        elif start < pos or tok.end < start:
            raise UnparseableOperation("SQL tokens overlap")
        pos = tok.end + 1
    if pos < len(text):
        _scan_gap(text, pos, len(text), mysql, executable)
    return executable


def _scan_gap(text: str, i: int, end: int, mysql: bool, executable: list[tuple[int, int, int]]) -> None:
    space = _MYSQL_SPACE if mysql else _PG_SPACE
    while i < end:
        c = text[i]
        if c in space:
            i += 1
        elif text.startswith("--", i) or (mysql and c == "#"):
            if mysql and c == "-":
                after = text[i + 2] if i + 2 < len(text) else "\n"
                if not (after in space or ord(after) < 32 or ord(after) == 127):
                    raise UnparseableOperation("unexpected text between SQL tokens")
            if mysql:
                newline = text.find("\n", i)
                j = len(text) if newline < 0 else newline
                if "\r" in text[i:j]:
                    raise UnparseableOperation("carriage return inside a MySQL comment")
            else:
                match = re.compile(r"[\r\n]").search(text, i)
                j = len(text) if match is None else match.start()
            if j > end:
                raise UnparseableOperation("SQL comment boundaries are ambiguous")
            i = j
        elif text.startswith("/*", i):
            if mysql:
                j = text.find("*/", i + 2)
                if j < 0 or j + 2 > end:
                    raise UnparseableOperation("SQL comment boundaries are ambiguous")
                m = re.compile(r"/\*M?!\d*").match(text, i)
                if m is not None:
                    executable.append((i, m.end(), j))
                i = j + 2
            else:
                depth, j = 1, i + 2
                while depth:
                    opening, closing = text.find("/*", j, end), text.find("*/", j, end)
                    if closing < 0:
                        raise UnparseableOperation("SQL comment boundaries are ambiguous")
                    if 0 <= opening < closing:
                        depth, j = depth + 1, opening + 2
                    else:
                        depth, j = depth - 1, closing + 2
                i = j
        else:
            what = "unusual whitespace" if c.isspace() else "unexpected text"
            raise UnparseableOperation(f"{what} between SQL tokens (character U+{ord(c):04X})")


def _unwrap_executable(text: str, spans: Sequence[tuple[int, int, int]]) -> str:
    """Replace MySQL ``/*!NNNNN`` and its ``*/`` by spaces, keeping every offset."""
    chars = list(text)
    for start, code, end in spans:
        chars[start:code] = " " * (code - start)
        chars[end : end + 2] = "  "
    return "".join(chars)


def _check_literals(text: str, toks: Sequence[Token], mysql: bool) -> None:
    for k, tok in enumerate(toks):
        tt = tok.token_type
        if tt == _T.STRING or tt == _T.NATIONAL_STRING:
            raw = text[tok.start : tok.end + 1]
            if "\\" not in raw:
                continue
            quote = raw[-1:]
            opening = raw.find(quote)
            if quote not in ("'", '"') or opening < 0:
                continue
            if not mysql and raw[:opening].upper() not in ("", "N"):
                continue
            if _escape_ambiguous(raw[opening + 1 : -1], quote):
                raise UnparseableOperation(
                    "a backslash before a quote makes this literal depend on server settings"
                )
        elif not mysql and tt == _T.VAR and len(tok.text) in (1, 7):
            upper = tok.text.upper()
            if upper == "UESCAPE":
                raise UnparseableOperation("UESCAPE is not supported")
            if (
                upper == "U"
                and k + 2 < len(toks)
                and toks[k + 1].token_type == _T.AMP
                and toks[k + 1].start == tok.end + 1
                and toks[k + 2].start == toks[k + 1].end + 1
            ):
                raise UnparseableOperation('Unicode-escaped identifiers (U&"...") are not supported')


def _escape_ambiguous(inner: str, quote: str) -> bool:
    """Whether a quote (or the closing one) follows an odd run of backslashes: where the literal
    ends then depends on whether backslash escapes (PostgreSQL's standard_conforming_strings,
    MySQL's NO_BACKSLASH_ESCAPES and ANSI_QUOTES)."""
    i = inner.find("\\")
    while i >= 0:
        j = i
        while j < len(inner) and inner[j] == "\\":
            j += 1
        if (j - i) % 2 and (j == len(inner) or inner[j] == quote):
            return True
        i = inner.find("\\", j)
    return False


def _split(toks: Sequence[Token]) -> list[list[Token]]:
    """Statements (token lists) at top-level semicolons; empty statements dropped."""
    chunks: list[list[Token]] = []
    current: list[Token] = []
    depth = 0
    for tok in toks:
        tt = tok.token_type
        if tt == _T.SEMICOLON:
            if depth:
                raise UnparseableOperation("a semicolon inside parentheses is not supported")
            if current:
                chunks.append(current)
            current = []
            continue
        if tt in _OPEN:
            depth += 1
            if depth > _MAX_NESTING:
                raise UnparseableOperation("SQL is nested too deeply to analyse")
        elif tt in _CLOSE:
            depth -= 1
            if depth < 0:
                raise UnparseableOperation("unbalanced parentheses")
        current.append(tok)
    if current:
        chunks.append(current)
    return chunks


# ---------------------------------------------------------------------------------------------
# Classification


@dataclass
class _Acc:
    """What one statement does, as it is being worked out."""

    kind: str
    ddl_action: str | None = None
    object_type: str | None = None
    reads: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)
    has_where: bool | None = None
    functions: set[str] = field(default_factory=set)
    features: set[str] = field(default_factory=set)

    def absorb(self, inner: _Acc) -> None:
        """Take in the effects of a statement this one wraps (EXPLAIN, PREPARE, COPY (query)...)."""
        self.reads |= inner.reads
        self.writes |= inner.writes
        self.functions |= inner.functions
        self.features |= inner.features

    def statement(self, text: str) -> SqlStatement:
        return SqlStatement(
            text=text,
            kind=self.kind,
            ddl_action=self.ddl_action,
            object_type=self.object_type,
            tables_read=tuple(sorted(self.reads)),
            tables_written=tuple(sorted(self.writes)),
            has_where=self.has_where if self.kind in ("update", "delete") else None,
            functions=tuple(sorted(self.functions)),
            features=tuple(sorted(self.features)),
        )


class _Ctx:
    __slots__ = ("depth", "features", "glot", "mysql", "text")

    def __init__(self, text: str, glot: _Glot, depth: int) -> None:
        self.text = text
        self.glot = glot
        self.mysql = glot.name == "mysql"
        self.depth = depth
        self.features: set[str] = set()

    def sql(self, toks: Sequence[Token]) -> str:
        if not toks:
            raise UnparseableOperation("a statement is incomplete")
        return self.text[toks[0].start : toks[-1].end + 1]


def _parse(text: object, dialect: str, depth: int) -> list[SqlStatement]:
    if not isinstance(text, str):
        raise UnparseableOperation("SQL must be text")
    if len(text) > MAX_INPUT_BYTES:
        raise UnparseableOperation("SQL is larger than 1 MiB")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise UnparseableOperation("SQL is not valid Unicode") from None
    if size > MAX_INPUT_BYTES:
        raise UnparseableOperation("SQL is larger than 1 MiB")
    if "\x00" in text:
        raise UnparseableOperation("SQL contains a NUL byte")
    glot = _glot(dialect)
    mysql = glot.name == "mysql"
    ctx = _Ctx(text, glot, depth)
    toks = glot.tokenize(text)
    executable = _check_gaps(text, toks, mysql)
    for _ in range(4):
        if not executable:
            break
        ctx.features.add("mysql_executable_comment")
        ctx.text = _unwrap_executable(ctx.text, executable)
        toks = glot.tokenize(ctx.text)
        executable = _check_gaps(ctx.text, toks, mysql)
    else:
        if executable:
            raise UnparseableOperation("MySQL executable comments nested too deeply")
    _check_literals(ctx.text, toks, mysql)
    statements = []
    for chunk in _split(toks):
        acc = _classify(ctx, chunk)
        acc.features |= ctx.features
        if acc.kind not in KINDS:  # pragma: no cover - a programming error, still fail closed
            raise UnparseableOperation(f"internal: unknown kind {acc.kind}")
        statements.append(acc.statement(text[chunk[0].start : chunk[-1].end + 1]))
    return statements


def _classify(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    first = toks[0]
    keyword = "(" if first.token_type == _T.L_PAREN else _word(first).split(" ")[0]
    handler = _HANDLERS.get(keyword)
    if handler is None:
        shown = first.text if keyword else "a quoted name or literal"
        raise UnparseableOperation(f"not a SQL statement wardgate understands (starts with {shown[:40]!r})")
    return handler(ctx, toks)


def _sub(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    """Classify a statement wrapped in another one."""
    if not toks:
        raise UnparseableOperation("a wrapped statement is missing")
    if ctx.depth >= _MAX_DEPTH:
        raise UnparseableOperation("statements nested too deeply")
    ctx.depth += 1
    try:
        return _classify(ctx, toks)
    finally:
        ctx.depth -= 1


def _expressions(ctx: _Ctx, sql: str) -> _Acc:
    """Tables and functions of a list of expressions (arguments of CALL, EXECUTE, DO ...)."""
    text = "SELECT " + sql
    toks = ctx.glot.tokenize(text)
    tree = ctx.glot.parse(toks, text)
    if not isinstance(tree, exp.Select):
        raise UnparseableOperation("expressions not understood")
    acc = _Acc("select")
    _analyse_tree(ctx, tree, toks, text, acc)
    return acc


# --- queries and DML: sqlglot's tree ----------------------------------------------------------

_QUERY_CLASSES: Final = (exp.Query, exp.Values)
_DML_CLASSES: Final = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
_DML_KIND: Final[dict[type, str]] = {
    exp.Insert: "insert",
    exp.Update: "update",
    exp.Delete: "delete",
    exp.Merge: "merge",
}
_EXPECTED: Final[dict[str, tuple[type, ...]]] = {
    "SELECT": _QUERY_CLASSES,
    "VALUES": _QUERY_CLASSES,
    "TABLE": _QUERY_CLASSES,
    "(": _QUERY_CLASSES,
    "WITH": (*_QUERY_CLASSES, *_DML_CLASSES),
    "INSERT": (exp.Insert,),
    "UPDATE": (exp.Update,),
    "DELETE": (exp.Delete,),
    "MERGE": (exp.Merge,),
}
_OUTFILE_STOP: Final = frozenset(
    {"FROM", "WHERE", "GROUP BY", "HAVING", "ORDER BY", "LIMIT", "FOR", "LOCK", "UNION", "WINDOW", "INTO"}
)


def _query_or_dml(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    keyword = "(" if toks[0].token_type == _T.L_PAREN else _word(toks[0])
    features: set[str] = set()
    text, toks = ctx.text, list(toks)
    if ctx.mysql:
        text, toks, features = _strip_mysql_outfile(ctx, toks)
    tree = ctx.glot.parse(toks, text)
    if not isinstance(tree, _EXPECTED[keyword]):
        raise UnparseableOperation(f"{keyword} statement not understood")
    kind = "select" if isinstance(tree, _QUERY_CLASSES) else _DML_KIND[type(tree)]
    acc = _Acc(kind, features=features)
    _analyse_tree(ctx, tree, toks, text, acc)
    if isinstance(tree, (exp.Update, exp.Delete)):
        where = tree.args.get("where")
        acc.has_where = isinstance(where, exp.Where) and _truth(where.this) is not True
    return acc


def _strip_mysql_outfile(ctx: _Ctx, toks: list[Token]) -> tuple[str, list[Token], set[str]]:
    """MySQL ``INTO OUTFILE/DUMPFILE 'file' ...`` (which sqlglot does not parse): flag and blank it."""
    lowered = ctx.text[toks[0].start : toks[-1].end + 1].lower()
    if "outfile" not in lowered and "dumpfile" not in lowered:
        return ctx.text, toks, set()
    words = _words(toks)
    features: set[str] = set()
    text = ctx.text
    for i in range(len(toks) - 1):
        if words[i] != "INTO" or words[i + 1] not in ("OUTFILE", "DUMPFILE"):
            continue
        features.add("into_outfile" if words[i + 1] == "OUTFILE" else "into_dumpfile")
        depth = 0
        j = i + 2
        while j < len(toks):
            tt = toks[j].token_type
            if tt in _OPEN:
                depth += 1
            elif tt in _CLOSE:
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and j > i + 2 and words[j] in _OUTFILE_STOP:
                break
            j += 1
        start, end = toks[i].start, toks[j - 1].end + 1
        text = text[:start] + " " * (end - start) + text[end:]
    return text, _retokenize(ctx, text, toks), features


def _retokenize(ctx: _Ctx, text: str, toks: Sequence[Token]) -> list[Token]:
    """The tokens of the statement ``toks`` spans after ``text`` was edited in place (same offsets)."""
    retoks = [t for t in ctx.glot.tokenize(text[: toks[-1].end + 1]) if t.start >= toks[0].start]
    if not retoks:
        raise UnparseableOperation("statement could not be re-read")
    return retoks


def _mysql_replace(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    """MySQL ``REPLACE INTO``: an INSERT that first deletes conflicting rows."""
    if not ctx.mysql:
        raise UnparseableOperation("REPLACE is not a PostgreSQL statement")
    first = toks[0]
    text = ctx.text[: first.start] + "INSERT " + ctx.text[first.end + 1 :]
    sub = _Ctx(text, ctx.glot, ctx.depth)
    acc = _query_or_dml(sub, _retokenize(sub, text, toks))
    if acc.kind != "insert":
        raise UnparseableOperation("REPLACE statement not understood")
    acc.features.add("replace")
    return acc


# --- walking sqlglot's tree ------------------------------------------------------------------

_RELATION_TYPES: Final = _names(
    "table view materialized_view index sequence foreign_table schema database statistics"
)
# Objects that live on a table: the table is written, their own name is not a relation.
_ATTACHED_TYPES: Final = frozenset({"trigger", "rule", "policy"})
_SKIP_FUNCTION_CLASSES: Final = (exp.Cast, exp.TryCast, exp.Case)


def _analyse_tree(
    ctx: _Ctx,
    tree: exp.Expr,
    toks: Sequence[Token],
    text: str,
    acc: _Acc,
    *,
    ddl_object: str | None = None,
) -> None:
    tables: list[exp.Table] = []
    dml: list[exp.Expr] = []
    intos: list[exp.Into] = []
    seen: set[str] = set()
    calls = {toks[k].text.lower() for k in range(len(toks) - 1) if toks[k + 1].token_type == _T.L_PAREN}
    for k in range(len(toks) - 1):
        # known functions as written (sqlglot may model now() as CURRENT_TIMESTAMP)
        tok = toks[k]
        if (
            tok.token_type == _T.VAR
            and toks[k + 1].token_type == _T.L_PAREN
            and tok.text.upper() in ctx.glot.functions
            and not (k and _word(toks[k - 1]) in ("INTO", "TABLE", "UPDATE", "REFERENCES"))
        ):
            acc.functions.add(tok.text.lower())
    for node in tree.walk():
        role = _ROLES.get(type(node))
        if role is None:
            role = _ROLES[type(node)] = _role(type(node))
        if role is _Role.OTHER:
            continue
        if role is _Role.NAME:
            value = node.args.get("this")
            if isinstance(value, str):
                seen.add(value.lower())
                if " " in value:
                    seen.update(value.lower().split())
        elif role is _Role.TABLE:
            tables.append(node)  # type: ignore[arg-type]
        elif role is _Role.FUNCTION:
            if not (isinstance(node, exp.If) and isinstance(node.parent, exp.Case)):
                _add_function(node, calls, acc.functions)  # type: ignore[arg-type]
            if isinstance(node, exp.Anonymous):
                _remember(seen, node.this if isinstance(node.this, str) else node.name)
        elif role is _Role.DML:
            dml.append(node)
        elif role is _Role.INTO:
            intos.append(node)  # type: ignore[arg-type]
        elif role is _Role.LOCK:  # wherever it sits: a SELECT, a parenthesised query, VALUES
            acc.features.update(_ROW_LOCK_FEATURES)
        elif role is _Role.CONFLICT:
            action = node.args.get("action")
            if node.args.get("duplicate") or (
                isinstance(action, exp.Var) and "UPDATE" in action.name.upper()
            ):
                acc.features.add("upsert")
        elif role is _Role.TYPE:
            kind = node.args.get("this")
            _remember(seen, getattr(kind, "value", kind))
            _remember(seen, node.args.get("kind"))
        elif role is _Role.COMMAND:
            raise UnparseableOperation("part of the statement was not understood")
    _check_coverage(toks, seen, ctx.glot.functions, strings=ddl_object is not None)
    if ddl_object is None and "row_lock" not in acc.features and _row_lock_words(toks):
        raise UnparseableOperation("a row-locking clause (FOR UPDATE, FOR SHARE ...) was not understood")

    targets: dict[int, str] = {}
    ignored: set[int] = set()
    for node in dml:
        if _under(node, exp.When):
            continue  # WHEN MATCHED THEN UPDATE / INSERT: the MERGE's own action
        for table, name in _dml_targets(node):
            targets[id(table)] = name
        if node is not tree:
            acc.features.add("writes_in_cte" if _under(node, exp.CTE) else "nested_write")
    for into in intos:
        into_table = into.this
        if (
            isinstance(into_table, exp.Table)
            and not ctx.mysql
            and isinstance(into_table.this, exp.Identifier)
        ):
            into_name = _table_name(into_table)
            if into_name is not None:
                targets[id(into_table)] = into_name
                acc.features.add("select_into")
        elif isinstance(into_table, exp.Table):
            ignored.add(id(into_table))  # MySQL INTO @variable / local variable
    if ddl_object is not None:
        for table in tables:
            if id(table) in targets or _under(table, exp.Query) or _under(table, exp.Reference):
                continue
            own_name = table.parent is tree and ddl_object in _ATTACHED_TYPES
            if (
                own_name
                or _under(table, exp.UserDefinedFunction)
                or not (ddl_object in _RELATION_TYPES or ddl_object in _ATTACHED_TYPES)
            ):
                ignored.add(id(table))
            else:
                ddl_name = _table_name(table)
                if ddl_name is not None:
                    targets[id(table)] = ddl_name
    for table in tables:
        if id(table) in ignored:
            continue
        written = targets.get(id(table))
        if written is not None:
            acc.writes.add(written)
            continue
        read = _table_name(table)
        if read is None or _is_cte_reference(table, read):
            continue
        acc.reads.add(read)


# Features of a row-locking clause: ``select_for_update`` is row_lock's older name, still reported.
_ROW_LOCK_FEATURES: Final = ("row_lock", "select_for_update")
_ROW_LOCK_CLAUSES: Final = (
    ("FOR", "UPDATE"),
    ("FOR", "NO", "KEY", "UPDATE"),
    ("FOR", "SHARE"),
    ("FOR", "KEY", "SHARE"),
    ("LOCK", "IN", "SHARE", "MODE"),
)
_QUERY_STARTS: Final = _names("SELECT WITH VALUES TABLE")


def _row_lock_words(toks: Sequence[Token]) -> bool:
    """Whether the tokens of a query or DML statement spell a row-locking clause, so that a tree
    without one means sqlglot dropped it. A clause belongs to a query: one written inside a
    parenthesis that does not open a query (``substring(a FROM 1 FOR share)``) is an argument."""
    if not any(len(tok.text) in (3, 4) and tok.text.upper() in ("FOR", "LOCK") for tok in toks):
        return False
    words = _words(toks)
    opened: list[int] = []  # indexes of the open parentheses around the current token
    for k, tok in enumerate(toks):
        if tok.token_type in _OPEN:
            opened.append(k)
            continue
        if tok.token_type in _CLOSE:
            if opened:
                opened.pop()
            continue
        if words[k] not in ("FOR", "LOCK"):
            continue
        if opened:
            first = opened[-1] + 1
            if toks[first].token_type not in _OPEN and words[first] not in _QUERY_STARTS:
                continue
        if any(tuple(words[k : k + len(clause)]) == clause for clause in _ROW_LOCK_CLAUSES):
            return True
    return False


class _Role(enum.Enum):
    OTHER = 0
    NAME = 1
    TABLE = 2
    FUNCTION = 3
    DML = 4
    INTO = 5
    LOCK = 6
    CONFLICT = 7
    TYPE = 8
    COMMAND = 9


_ROLES: dict[type, _Role] = {}


def _role(cls: type) -> _Role:
    """What ``_analyse_tree`` does with nodes of class ``cls`` (cached per class)."""
    for kind, role in (
        (exp.Command, _Role.COMMAND),
        (exp.Table, _Role.TABLE),
        (exp.Func, _Role.FUNCTION),
        (_DML_CLASSES, _Role.DML),
        (exp.Into, _Role.INTO),
        (exp.Lock, _Role.LOCK),
        (exp.OnConflict, _Role.CONFLICT),
        (
            (
                exp.Identifier,
                exp.Literal,
                exp.Var,
                exp.ByteString,
                exp.RawString,
                exp.Heredoc,
                exp.National,
                exp.UnicodeString,
            ),
            _Role.NAME,
        ),
        ((exp.DataType, exp.SessionParameter), _Role.TYPE),
    ):
        if issubclass(cls, kind):
            return role
    return _Role.OTHER


def _remember(seen: set[str], value: object) -> None:
    if isinstance(value, str):
        seen.add(value.lower())
        if " " in value:
            seen.update(value.lower().split())
    elif isinstance(value, exp.Identifier):
        seen.add(value.this.lower())


def _check_coverage(
    toks: Sequence[Token], seen: set[str], functions: frozenset[str], *, strings: bool
) -> None:
    """Every quoted name, call and name in a table position (and, for DDL, every string: function
    bodies) must appear in the tree: a clause sqlglot parsed and dropped or mangled is refused.
    Strings of queries are not checked: sqlglot rewrites date formats and JSON paths."""
    last = len(toks) - 1
    covered = _COVERED if strings else _NAME_TOKENS
    for k, tok in enumerate(toks):
        tt = tok.token_type
        if tt not in covered:
            continue
        if tt == _T.VAR:
            after = toks[k + 1].token_type if k < last else None
            before = toks[k - 1] if k else None
            call = after == _T.L_PAREN
            if call and (tok.text.upper() in functions or tok.text.upper() in _KEYWORDS_BEFORE_PAREN):
                continue  # a function sqlglot knows, maybe by another name (now() -> CURRENT_TIMESTAMP)
            if not (
                call
                or after == _T.DOT
                or (
                    before is not None
                    and (before.token_type in (_T.DOT, _T.COMMA) or _word(before) in _NAME_CONTEXT)
                )
            ):
                continue  # a word sqlglot matched as a keyword (MATCHED, CONFLICT, NOTHING...)
        value = tok.text.lower()
        if value in seen or (tt in _STRINGS and all(part in seen for part in value.split())):
            continue
        shown = tok.text if len(tok.text) <= 40 else tok.text[:37] + "..."
        raise UnparseableOperation(f"part of the statement was not understood (near {shown!r})")


_NAME_CONTEXT: Final = _names("FROM JOIN INTO TABLE USING ONLY")
_COVERED: Final = _STRINGS | _NAME_TOKENS
# Words sqlglot reads as keywords although they come before a parenthesis like a call does.
_KEYWORDS_BEFORE_PAREN: Final = _names(
    "CONFLICT KEY RANGE LIST HASH BTREE GIST GIN BRIN SPGIST INCLUDE PARTITION PARTITIONS SUBPARTITION "
    "INDEX COLUMNS ROW OPTIONS STORAGE MATERIALIZED AGAINST"
)


def _under(node: exp.Expr, kind: type | tuple[type, ...]) -> bool:
    parent = node.parent
    while parent is not None:
        if isinstance(parent, kind):
            return True
        parent = parent.parent
    return False


def _ident_text(node: object) -> str | None:
    if isinstance(node, exp.Identifier):
        name: str = node.this
        return name if node.args.get("quoted") else name.lower()
    if isinstance(node, exp.Star):
        return "*"
    return None


def _dot_parts(node: object) -> list[object]:
    """``a.b.c`` (nested exp.Dot) as its parts, left to right."""
    out: list[object] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, exp.Dot):
            stack.append(item.expression)
            stack.append(item.this)
        else:
            out.append(item)
    return out


def _table_name(table: exp.Table) -> str | None:
    """``catalog.schema.name`` normalised, or None when the 'table' is a function or variable."""
    parts = []
    for key in ("catalog", "db", "this"):
        part = table.args.get(key)
        if part is None:
            continue
        if isinstance(part, exp.Dot):
            for sub in _dot_parts(part):
                text = _ident_text(sub)
                if text is None:
                    return None
                parts.append(text)
            continue
        text = _ident_text(part)
        if text is None:
            return None
        parts.append(text)
    return ".".join(parts) if parts else None


def _is_cte_reference(table: exp.Table, name: str) -> bool:
    if "." in name:
        return False
    child: exp.Expr = table
    grandchild: exp.Expr | None = None
    node = table.parent
    while node is not None:
        with_ = node.args.get("with_")
        if isinstance(with_, exp.With) and with_ is not child:
            if _cte_names(with_.expressions) & {name}:
                return True
        elif isinstance(with_, exp.With) and isinstance(grandchild, exp.CTE):
            ctes = with_.expressions
            visible = ctes if with_.args.get("recursive") else ctes[: ctes.index(grandchild)]
            if name in _cte_names(visible):
                return True
        grandchild, child, node = child, node, node.parent
    return False


def _cte_names(ctes: Iterable[exp.Expr]) -> set[str]:
    out = set()
    for cte in ctes:
        alias = cte.args.get("alias")
        name = _ident_text(alias.this) if isinstance(alias, exp.TableAlias) else None
        if name is not None:
            out.add(name)
    return out


def _relation_tables(node: object) -> list[exp.Table]:
    """A table reference and the tables joined to it (not those inside subqueries)."""
    if not isinstance(node, exp.Table):
        return []
    out = [node]
    for join in node.args.get("joins") or ():
        if isinstance(join, exp.Join) and isinstance(join.this, exp.Table):
            out.append(join.this)
    return out


def _alias_map(tables: Iterable[exp.Table]) -> dict[str, tuple[exp.Table, str]]:
    out: dict[str, tuple[exp.Table, str]] = {}
    for table in tables:
        name = _table_name(table)
        if name is None:
            continue
        alias = table.args.get("alias")
        key = _ident_text(alias.this) if isinstance(alias, exp.TableAlias) else None
        out[key or name] = (table, name)
        out.setdefault(name, (table, name))
        out.setdefault(name.rsplit(".", 1)[-1], (table, name))
    return out


def _dml_targets(node: exp.Expr) -> list[tuple[exp.Table, str]]:
    target = node.this
    if isinstance(target, exp.Schema):
        target = target.this
    related = _relation_tables(target)
    if isinstance(node, exp.Delete) and node.args.get("tables"):
        # MySQL multi-table DELETE: the targets name tables (or their aliases) of FROM/USING.
        candidates = list(related)
        for using in node.args.get("using") or ():
            candidates.extend(_relation_tables(using))
        aliases = _alias_map(candidates)
        out = []
        for table in node.args["tables"]:
            name = _table_name(table)
            if name is None:
                continue
            match = aliases.get(name)
            out.append((table, match[1] if match else name))
            if match:
                out.append(match)
        return out
    if isinstance(node, exp.Update) and len(related) > 1:
        # MySQL multi-table UPDATE: the tables whose columns are set; all of them if unqualified.
        aliases = _alias_map(related)
        out = []
        for assignment in node.expressions:
            column = assignment.this if isinstance(assignment, exp.EQ) else None
            qualifier = _ident_text(column.args.get("table")) if isinstance(column, exp.Column) else None
            match = aliases.get(qualifier) if qualifier else None
            if match is None:
                return [(t, n) for t in related if (n := _table_name(t)) is not None]
            out.append(match)
        return out
    if isinstance(target, exp.Table):
        name = _table_name(target)
        return [(target, name)] if name is not None else []
    return []


def _add_function(node: exp.Func, calls: set[str], out: set[str]) -> None:
    """``node``'s name as written (``calls``: names written before a parenthesis), lower case,
    and qualified when it is (``pg_catalog.pg_read_file``)."""
    if isinstance(node, _SKIP_FUNCTION_CLASSES):
        return
    if isinstance(node, exp.Anonymous):
        raw = node.this
        names = [(raw if isinstance(raw, str) else node.name).lower()]
    else:
        known = [n.lower() for n in type(node).sql_names()]
        names = [n for n in known if n in calls] or known[:1]
    out.update(names)
    parent = node.parent
    if isinstance(parent, exp.Dot) and parent.expression is node:
        parts = [_ident_text(p) for p in _dot_parts(parent.this)]
        if all(parts):
            qualifier = ".".join(p.lower() for p in parts if p)
            out.update(f"{qualifier}.{name}" for name in names)


# --- has_where: is the condition trivially true? ----------------------------------------------

_UNKNOWN: Final = object()
_NUMERIC_PREFIX: Final = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_PG_TRUE: Final = ("true", "yes", "on", "1")


def _truth(node: object) -> bool | None:
    """Whether ``node`` holds for every row: constant true (also by MySQL's or PostgreSQL's reading
    of strings and numbers), an expression compared with itself, ``LIKE '%'``. None when unknown."""
    value = _value(node)
    if value is _UNKNOWN or value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word and (
            word == "t" or word == "y" or any(t.startswith(word) for t in _PG_TRUE if len(word) >= 2)
        ):
            return True
        number = _number(value)
        return True if number is not None and number != 0 else None
    return None


def _number(value: object) -> float | None:
    """A value as a number, the way MySQL converts strings (leading numeric prefix)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        match = _NUMERIC_PREFIX.match(value)
        return float(match.group()) if match else None
    return None


def _value(node: object) -> object:
    if isinstance(node, (exp.Paren, exp.Cast, exp.TryCast)):
        return _value(node.this)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Literal):
        if node.is_string:
            return str(node.this)
        try:
            return float(node.this)
        except ValueError:
            return _UNKNOWN
    if isinstance(node, exp.Neg):
        inner = _number(_value(node.this))
        return -inner if inner is not None else _UNKNOWN
    if isinstance(node, exp.Not):
        negated = _truth(node.this)
        return _UNKNOWN if negated is None else not negated
    if isinstance(node, exp.And):
        left, right = _truth(node.this), _truth(node.expression)
        return True if left is True and right is True else _UNKNOWN
    if isinstance(node, exp.Or):
        left, right = _truth(node.this), _truth(node.expression)
        return True if left is True or right is True else _UNKNOWN
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul)):
        a, b = _number(_value(node.this)), _number(_value(node.expression))
        if a is None or b is None:
            return _UNKNOWN
        return a + b if isinstance(node, exp.Add) else a - b if isinstance(node, exp.Sub) else a * b
    if isinstance(node, (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ)):
        return _compare(node)
    if isinstance(node, (exp.Like, exp.ILike)):
        pattern = _value(node.expression)
        if isinstance(pattern, str) and pattern and set(pattern) == {"%"}:
            return True
        return _UNKNOWN
    if isinstance(node, exp.In) and not node.args.get("query"):
        if any(node.this == e for e in node.expressions):
            return True
        member = _number(_value(node.this))
        if member is not None and any(_number(_value(e)) == member for e in node.expressions):
            return True
        return _UNKNOWN
    if isinstance(node, exp.Between):
        if node.this == node.args.get("low") or node.this == node.args.get("high"):
            return True
        x, low, high = (_number(_value(node.args.get(k))) for k in ("this", "low", "high"))
        if x is not None and low is not None and high is not None:
            return low <= x <= high
        return _UNKNOWN
    if isinstance(node, exp.Is):
        subject = _value(node.this)
        if isinstance(node.expression, exp.Null) and subject is not _UNKNOWN:
            return subject is None
        return _UNKNOWN
    return _UNKNOWN


def _compare(node: exp.Expr) -> object:
    if node.this == node.expression:  # x = x: true wherever x is not null
        return isinstance(node, (exp.EQ, exp.GTE, exp.LTE, exp.NullSafeEQ))
    a, b = _value(node.this), _value(node.expression)
    if a is _UNKNOWN or b is _UNKNOWN:
        return _UNKNOWN
    if a is None or b is None:
        return (a is None and b is None) if isinstance(node, exp.NullSafeEQ) else None
    if isinstance(a, str) and isinstance(b, str):
        same = a == b or a.rstrip().lower() == b.rstrip().lower()  # MySQL's default collation
        if isinstance(node, (exp.EQ, exp.NullSafeEQ, exp.GTE, exp.LTE)) and same:
            return True
        return _UNKNOWN
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return _UNKNOWN
    if isinstance(node, (exp.EQ, exp.NullSafeEQ)):
        return x == y
    if isinstance(node, exp.NEQ):
        return x != y
    if isinstance(node, exp.GT):
        return x > y
    if isinstance(node, exp.GTE):
        return x >= y
    if isinstance(node, exp.LT):
        return x < y
    return x <= y


# --- DDL -------------------------------------------------------------------------------------

_DDL_ACTION: Final = {
    "CREATE": "create",
    "ALTER": "alter",
    "DROP": "drop",
    "TRUNCATE": "truncate",
    "COMMENT": "comment",
    "RENAME": "rename",
}
_DDL_CLASSES: Final[dict[str, tuple[type, ...]]] = {
    "CREATE": (exp.Create,),
    "ALTER": (exp.Alter,),
    "DROP": (exp.Drop,),
    "TRUNCATE": (exp.TruncateTable,),
    "COMMENT": (exp.Comment,),
}
_DDL_MODIFIERS: Final = _names(
    "OR REPLACE TEMP TEMPORARY UNLOGGED GLOBAL LOCAL UNIQUE TRUSTED PROCEDURAL CONSTRAINT RECURSIVE "
    "ONLINE OFFLINE IGNORE FULLTEXT SPATIAL"
)
# Multi-word object types first; every value is the object_type reported.
_OBJECT_TYPES: Final[tuple[tuple[tuple[str, ...], str], ...]] = (
    (("FOREIGN", "DATA", "WRAPPER"), "foreign_data_wrapper"),
    (("FOREIGN", "TABLE"), "foreign_table"),
    (("MATERIALIZED", "VIEW"), "materialized_view"),
    (("EVENT", "TRIGGER"), "event_trigger"),
    (("ACCESS", "METHOD"), "access_method"),
    (("USER", "MAPPING"), "user_mapping"),
    (("OPERATOR", "CLASS"), "operator_class"),
    (("OPERATOR", "FAMILY"), "operator_family"),
    (("DEFAULT", "PRIVILEGES"), "default_privileges"),
    (("TEXT", "SEARCH"), "text_search"),
    (("LARGE", "OBJECT"), "large_object"),
    (("RESOURCE", "GROUP"), "resource_group"),
    (("LOGFILE", "GROUP"), "logfile_group"),
    (("SPATIAL", "REFERENCE"), "spatial_reference_system"),
    (("OWNED",), "owned"),
)
_SIMPLE_OBJECT_TYPES: Final = _names(
    "TABLE VIEW INDEX SCHEMA DATABASE FUNCTION PROCEDURE TRIGGER SEQUENCE ROLE USER GROUP EXTENSION "
    "TYPE DOMAIN LANGUAGE RULE POLICY PUBLICATION SUBSCRIPTION SERVER TABLESPACE COLLATION CONVERSION "
    "CAST AGGREGATE OPERATOR STATISTICS TRANSFORM EVENT ROUTINE SYSTEM INSTANCE"
)
_MYSQL_VIEW_PREFIX: Final = frozenset({"ALGORITHM", "DEFINER", "SQL", "SQL SECURITY"})
_EMBEDDED: Final = _names("SELECT INSERT UPDATE DELETE MERGE VALUES CALL DO EXECUTE")
_EVENT_CONTEXT: Final = _names("ON FOR OR AFTER BEFORE OF")
_NO_EMBEDDED_CHECK: Final = frozenset({"default_privileges", "role", "user", "group", "system"})


def _ddl_header(ctx: _Ctx, toks: Sequence[Token], words: Sequence[str]) -> tuple[str | None, int]:
    """The object type a DDL statement is about and the index of the token after it."""
    n = len(toks)
    i = 1
    while i < n and words[i] in _DDL_MODIFIERS:
        i += 1
    if ctx.mysql and i < n and words[i] in _MYSQL_VIEW_PREFIX:
        # CREATE [ALGORITHM = x] [DEFINER = user] [SQL SECURITY x] VIEW/PROCEDURE/...
        while i < n and words[i] not in _SIMPLE_OBJECT_TYPES:
            i += 1
    if words[0] == "TRUNCATE":
        if i < n and words[i] == "DATABASE":
            return "database", i + 1
        return "table", i + 1 if i < n and words[i] == "TABLE" else i
    if words[0] == "COMMENT" and i < n and words[i] == "ON":
        i += 1
    for sequence, name in _OBJECT_TYPES:
        if tuple(words[i : i + len(sequence)]) == sequence:
            return name, i + len(sequence)
    if i < n and words[i]:
        return words[i].lower(), i + 1
    return None, i


def _ddl(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    words = _words(toks)
    keyword = words[0]
    if keyword == "DROP" and ctx.mysql and words[1:2] == ["PREPARE"]:
        return _Acc("deallocate")
    if keyword == "RENAME" and not ctx.mysql:
        raise UnparseableOperation("RENAME is not a PostgreSQL statement")
    object_type, after = _ddl_header(ctx, toks, words)
    acc = _Acc("ddl", ddl_action=_DDL_ACTION[keyword], object_type=object_type)
    if keyword == "CREATE" and "BEGIN" in words[after:]:
        raise UnparseableOperation("BEGIN ... END bodies inside CREATE are not supported")
    if object_type == "system":
        acc.features.add("alter_system")
    if any(words[k] == "SECURITY" and words[k + 1] == "DEFINER" for k in range(len(words) - 1)) or any(
        words[k] == "SQL SECURITY" and words[k + 1] == "DEFINER" for k in range(len(words) - 1)
    ):
        acc.features.add("security_definer")
    depths = _depths(toks)
    if keyword == "ALTER" and any(w == "RENAME" and d == 0 for w, d in zip(words, depths, strict=True)):
        acc.ddl_action = "rename"
    tree: exp.Expr | None = None
    expected = _DDL_CLASSES.get(keyword)
    if expected is not None and object_type not in ("system", "default_privileges", "owned"):
        text, parse_toks = ctx.text, toks
        prefix = [k for k in range(1, after) if words[k] in _MYSQL_VIEW_PREFIX]
        if ctx.mysql and prefix:
            # CREATE DEFINER = user ALGORITHM = x SQL SECURITY y VIEW ...: sqlglot reads the view without them
            start, end = toks[prefix[0]].start, toks[after - 2].end + 1
            text = text[:start] + " " * (end - start) + text[end:]
            parse_toks = _retokenize(ctx, text, toks)
        try:
            tree = ctx.glot.parse(parse_toks, text)
        except UnparseableOperation:
            tree = None
        if tree is not None and not isinstance(tree, expected):
            tree = None  # a Command or a misreading: fall back to the tokens
    if tree is not None:
        try:
            _analyse_tree(ctx, tree, parse_toks, text, acc, ddl_object=object_type or "table")
        except UnparseableOperation:
            tree = None
            acc = _Acc("ddl", ddl_action=acc.ddl_action, object_type=object_type, features=acc.features)
    if tree is not None:
        if isinstance(tree, exp.Create):
            _ddl_create_extras(ctx, tree, acc)
        if isinstance(tree, exp.Comment) and isinstance(tree.this, exp.Column) and tree.this.table:
            acc.writes.add(".".join(p for p in (_ident_text(x) for x in tree.this.parts[:-1]) if p))
        if isinstance(tree, exp.Alter):
            renames = [a for a in tree.actions if isinstance(a, (exp.AlterRename, exp.RenameColumn))]
            acc.ddl_action = "rename" if renames and len(renames) == len(tree.actions) else "alter"
            old_name = _table_name(tree.this) if isinstance(tree.this, exp.Table) else None
            for action in renames:
                new = action.this
                new_name = _table_name(new) if isinstance(new, exp.Table) else None
                if old_name and new_name and not ctx.mysql:  # PostgreSQL keeps the schema
                    acc.writes.discard(new_name)
                    acc.writes.add(_sibling(old_name, new_name))
        return acc
    _ddl_from_tokens(ctx, toks, words, after, acc)
    return acc


def _ddl_create_extras(ctx: _Ctx, tree: exp.Create, acc: _Acc) -> None:
    target = tree.this
    if isinstance(target, exp.Index):
        name = _ident_text(target.this)
        if name is not None:
            acc.writes.add(name)
    if isinstance(target, exp.UserDefinedFunction):
        body = tree.expression
        language = None
        properties = tree.args.get("properties")
        for prop in properties.expressions if isinstance(properties, exp.Properties) else ():
            if isinstance(prop, exp.LanguageProperty):
                language = prop.name.lower()
        if language is not None and (language in _UNTRUSTED_LANGUAGES or language.endswith("u")):
            acc.features.add("untrusted_language")
        if isinstance(body, (exp.Heredoc, exp.Literal)) and isinstance(body.this, str):
            _routine_body(ctx, body.this, language or ("sql" if ctx.mysql else None), acc)
        elif body is not None and not isinstance(body, (exp.Heredoc, exp.Literal)):
            inner = _Acc("select")
            _analyse_tree(ctx, body, [], ctx.text, inner)
            acc.absorb(inner)


_UNTRUSTED_LANGUAGES: Final = _names(
    "c internal plpythonu plpython2u plpython3u plperlu pltclu plsh plr pllua plluau plv8 pljava"
)


def _routine_body(ctx: _Ctx, body: str, language: str | None, acc: _Acc) -> None:
    """What can be told about a DO block or a function body without running PL/pgSQL."""
    language = (language or "plpgsql").lower()
    if language in _UNTRUSTED_LANGUAGES or language.endswith("u"):
        acc.features.add("untrusted_language")
    if language == "sql":
        if ctx.depth >= _MAX_DEPTH:
            raise UnparseableOperation("statements nested too deeply")
        for inner in _parse(body, ctx.glot.name, ctx.depth + 1):
            acc.reads |= set(inner.tables_read)
            acc.writes |= set(inner.tables_written)
            acc.functions |= set(inner.functions)
            acc.features |= set(inner.features)
        return
    if language != "plpgsql":
        acc.features.add("dynamic_sql")  # other languages run SQL through their own APIs
        return
    toks = ctx.glot.tokenize(body)
    words = _words(toks)
    if "EXECUTE" in words:
        acc.features.add("dynamic_sql")
    acc.functions |= _call_names(toks)


def _ddl_from_tokens(ctx: _Ctx, toks: Sequence[Token], words: Sequence[str], after: int, acc: _Acc) -> None:
    """DDL sqlglot does not model (CREATE ROLE, ALTER SYSTEM, RENAME TABLE...): names from tokens."""
    n = len(toks)
    depths = _depths(toks)
    body = next((k for k in range(after, n) if words[k] == "DO" and depths[k] == 0), n)
    if body < n and acc.object_type in ("rule", "event"):
        # CREATE RULE ... DO [ALSO | INSTEAD] { NOTHING | command }, MySQL CREATE EVENT ... DO statement
        k = body + 1
        while k < n and words[k] in ("ALSO", "INSTEAD"):
            k += 1
        command = toks[k:]
        if command and command[0].token_type == _T.L_PAREN and _matching(command, 0) == len(command) - 1:
            command = command[1:-1]
        if [_word(t) for t in command] != ["NOTHING"]:
            acc.absorb(_sub(ctx, command))
        toks, words, n = toks[:body], words[:body], body
    elif acc.object_type not in _NO_EMBEDDED_CHECK:
        for k in range(after, n):
            if (
                words[k] not in _EMBEDDED
                or _word(toks[k - 1]) in _EVENT_CONTEXT
                or toks[k - 1].token_type == _T.COMMA
            ):
                continue
            if words[k] == "EXECUTE" and words[k + 1 : k + 2] in (["FUNCTION"], ["PROCEDURE"]):
                continue
            raise UnparseableOperation("DDL with an embedded statement that could not be parsed")
    acc.functions |= _call_names(toks)
    if acc.object_type in ("function", "procedure") and words[0] in ("CREATE", "ALTER"):
        _routine_from_tokens(ctx, toks, words, acc)
    attached = acc.object_type in _ATTACHED_TYPES
    if not (attached or acc.object_type in _RELATION_TYPES):
        return
    i = after
    while i < n and words[i] in ("IF", "NOT", "EXISTS", "CONCURRENTLY", "ONLY"):
        i += 1
    if i >= n or not (_is_name(toks[i]) or toks[i].token_type == _T.STAR):
        return
    if words[0] == "RENAME":  # MySQL RENAME TABLE a TO b, c TO d
        while i < n:
            name, i = _read_name(toks, i)
            acc.writes.add(name)
            if i < n and (words[i] == "TO" or toks[i].token_type == _T.COMMA):
                i += 1
        return
    if words[0] in ("DROP", "TRUNCATE"):
        names, i = _read_names(toks, i, stop=("CASCADE", "RESTRICT", "ON"))
    else:
        name, i = _read_name(toks, i)
        names = [name]
    if not attached:
        acc.writes.update(names)
    for k in range(i, n):
        if depths[k] != 0:
            continue
        if words[k] == "RENAME" and k + 2 < n and words[k + 1] in ("TO", "AS") and not attached:
            acc.writes.add(_sibling(names[0], _read_name(toks, k + 2)[0]))
        elif words[k] == "ON" and (attached or acc.object_type == "index"):
            j = k + 1
            while j < n and words[j] in ("TABLE", "ONLY", "INSERT", "UPDATE", "DELETE", "SELECT", "TO"):
                j += 1
            if j < n and _is_name(toks[j]):
                acc.writes.add(_read_name(toks, j)[0])
            break


def _routine_from_tokens(ctx: _Ctx, toks: Sequence[Token], words: Sequence[str], acc: _Acc) -> None:
    """A function sqlglot could not parse: its language, and its body when it is one string."""
    language = None
    bodies: list[str] = []
    for k in range(1, len(toks) - 1):
        if words[k] == "LANGUAGE":
            language = toks[k + 1].text.lower()
        elif words[k] == "AS":
            j = k + 1
            while j < len(toks) and toks[j].token_type in _STRINGS:
                bodies.append(toks[j].text)
                j += 1
                if j < len(toks) and toks[j].token_type == _T.COMMA:
                    j += 1
    if language is not None and (language in _UNTRUSTED_LANGUAGES or language.endswith("u")):
        acc.features.add("untrusted_language")
    if len(bodies) == 1:
        _routine_body(ctx, bodies[0], language or ("sql" if ctx.mysql else None), acc)
    elif bodies and language not in _UNTRUSTED_LANGUAGES:
        raise UnparseableOperation("function body not understood")


def _sibling(old: str, new: str) -> str:
    """PostgreSQL renames keep the schema: ``s.a RENAME TO b`` is ``s.b``."""
    if "." in new or "." not in old:
        return new
    return f"{old.rsplit('.', 1)[0]}.{new}"


# --- GRANT / REVOKE --------------------------------------------------------------------------

_GRANT_OBJECTS: Final = _names(
    "TABLE SEQUENCE DATABASE SCHEMA FUNCTION PROCEDURE ROUTINE LANGUAGE TABLESPACE TYPE DOMAIN SERVER "
    "PARAMETER"
)


def _grant(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    words = _words(toks)
    acc = _Acc("grant" if words[0] == "GRANT" else "revoke")
    depths = _depths(toks)
    on = next((k for k in range(1, len(toks)) if words[k] == "ON" and depths[k] == 0), None)
    if on is None:
        acc.object_type = "role"
        return acc
    i = on + 1
    n = len(toks)
    stop = ("TO", "FROM")
    if words[i : i + 1] == ["ALL"] and i + 3 < n and words[i + 2] == "IN" and words[i + 3] == "SCHEMA":
        acc.object_type = "schema"
        i += 4
    elif words[i : i + 2] == ["LARGE", "OBJECT"]:
        acc.object_type = "large_object"
        return acc
    elif words[i : i + 3] == ["FOREIGN", "DATA", "WRAPPER"]:
        acc.object_type, i = "foreign_data_wrapper", i + 3
    elif words[i : i + 2] == ["FOREIGN", "SERVER"]:
        acc.object_type, i = "server", i + 2
    elif i < n and words[i] in _GRANT_OBJECTS and i + 1 < n and words[i + 1] not in stop:
        acc.object_type, i = words[i].lower(), i + 1
    else:
        acc.object_type = "table"
    names, _ = _read_names(toks, i, stop=stop)
    if ctx.mysql and acc.object_type == "table":
        if names == ["*.*"] or names == ["*"]:
            acc.object_type = "global"
        elif names and names[0].endswith(".*"):
            acc.object_type = "database"
    if acc.object_type in ("table", "schema", "database", "sequence", "global"):
        acc.writes.update(names)
    return acc


# --- COPY, LOAD DATA --------------------------------------------------------------------------


def _copy(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    if ctx.mysql:
        raise UnparseableOperation("COPY is not a MySQL statement")
    words = _words(toks)
    acc = _Acc("copy")
    n = len(toks)
    i = 1
    if i < n and words[i] == "BINARY":
        i += 1
    table: str | None = None
    if i < n and toks[i].token_type == _T.L_PAREN:
        end = _matching(toks, i)
        acc.absorb(_sub(ctx, toks[i + 1 : end]))
        i = end + 1
    else:
        table, i = _read_name(toks, i)
        if i < n and toks[i].token_type == _T.L_PAREN:
            i = _matching(toks, i) + 1
    if i >= n or words[i] not in ("FROM", "TO"):
        raise UnparseableOperation("COPY without FROM or TO")
    direction = words[i]
    i += 1
    if i < n and words[i] == "PROGRAM":
        acc.features.add("copy_program")
        i += 1
        if i >= n or toks[i].token_type not in _STRINGS:
            raise UnparseableOperation("COPY PROGRAM without a command string")
        i += 1
    elif i < n and toks[i].token_type in _STRINGS:
        acc.features.add("copy_file")
        i += 1
    elif i < n and words[i] in ("STDIN", "STDOUT"):
        acc.features.add("copy_stdio")
        i += 1
    else:
        raise UnparseableOperation("COPY source or destination not understood")
    if table is not None:
        (acc.writes if direction == "FROM" else acc.reads).add(table)
    elif direction == "FROM":
        raise UnparseableOperation("COPY (query) FROM is not valid")
    depths = _depths(toks)
    for k in range(i, n):
        if words[k] == "WHERE" and depths[k] == 0 and k + 1 < n:
            inner = _expressions(ctx, ctx.sql(toks[k + 1 :]))
            acc.absorb(inner)
            break
    return acc


def _load(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    words = _words(toks)
    if not ctx.mysql:
        acc = _Acc("other")
        acc.features.add("load_library")  # PostgreSQL LOAD 'library'
        return acc
    if words[1:2] in (["DATA"], ["XML"]):
        acc = _Acc("copy")
        acc.features.add("load_data_infile")
        if "LOCAL" in words[:6]:
            acc.features.add("load_data_local")
        depths = _depths(toks)
        for k in range(2, len(toks) - 1):
            if words[k] == "INTO" and words[k + 1] == "TABLE" and depths[k] == 0:
                name, _ = _read_name(toks, k + 2)
                acc.writes.add(name)
                break
        else:
            raise UnparseableOperation("LOAD DATA without INTO TABLE")
        acc.functions |= _call_names(toks)
        return acc
    if words[1:2] == ["INDEX"]:
        return _other(ctx, toks)
    raise UnparseableOperation("LOAD statement not understood")


# --- SET, RESET, transaction control -----------------------------------------------------------


def _set(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    words = _words(toks)
    if ctx.mysql:
        return _mysql_set(ctx, toks, words)
    # PostgreSQL: SET [SESSION | LOCAL] name {TO | =} value, and the special forms. Setting names
    # are case-insensitive and may be quoted.
    names = [t.text.lower() for t in toks[1:4]]
    if names[:1] in (["session"], ["local"]) and names[1:2] != ["authorization"]:
        names = names[1:]
    if names[:1] == ["transaction"] or names[:2] == ["session", "characteristics"]:
        return _Acc("transaction")
    acc = _Acc("set")
    if names[:1] == ["role"]:
        acc.features.add("set_role")
    elif names[:2] == ["session", "authorization"] or names[:1] == ["session_authorization"]:
        acc.features.add("set_session_authorization")
    elif names[:1] == ["search_path"]:
        acc.features.add("set_search_path")
    elif names[:1] in (["client_encoding"], ["names"]):
        acc.features.add("set_client_encoding")  # changes how the server reads later statements
    return acc


# Session variables that change how the server reads the statements that follow (the gateway reads
# them in MySQL's default quoting and in UTF-8): ANSI_QUOTES turns "x" into a name,
# NO_BACKSLASH_ESCAPES ends a string earlier than the gateway would.
_MYSQL_READING_VARIABLES: Final = {
    "SQL_MODE": "set_sql_mode",
    "CHARACTER_SET_CLIENT": "set_client_encoding",
    "CHARACTER_SET_CONNECTION": "set_client_encoding",
    "COLLATION_CONNECTION": "set_client_encoding",
    "CHARACTER_SET_RESULTS": "set_client_encoding",
}


# sql_mode flags that leave the statement's tokens as the gateway reads them. Not among them:
# ANSI_QUOTES, NO_BACKSLASH_ESCAPES, ANSI, MariaDB's ORACLE/MSSQL/DB2/POSTGRESQL/MAXDB...
_NEUTRAL_MODE_WORDS: Final = (
    "STRICT_TRANS_TABLES STRICT_ALL_TABLES ERROR_FOR_DIVISION_BY_ZERO NO_ZERO_DATE NO_ZERO_IN_DATE "
    "NO_ENGINE_SUBSTITUTION NO_AUTO_CREATE_USER ONLY_FULL_GROUP_BY TRADITIONAL ALLOW_INVALID_DATES "
    "NO_AUTO_VALUE_ON_ZERO NO_DIR_IN_CREATE NO_FIELD_OPTIONS NO_KEY_OPTIONS NO_TABLE_OPTIONS "
    "NO_UNSIGNED_SUBTRACTION PAD_CHAR_TO_FULL_LENGTH REAL_AS_FLOAT SIMULTANEOUS_ASSIGNMENT "
    "TIME_ROUND_FRACTIONAL EMPTY_STRING_IS_NULL"
)
_LEXING_NEUTRAL_SQL_MODES: Final = frozenset(_NEUTRAL_MODE_WORDS.split())


def _utf8_name(tok: Token) -> bool:
    """A character set or collation name (bare or quoted) of the UTF-8 family, or ASCII."""
    name = tok.text.strip("`'\"").lower()
    return tok.token_type in (_T.STRING, _T.VAR, _T.IDENTIFIER) and name.startswith(("utf8", "ascii"))


def _harmless_reading_value(reading: str, after: Sequence[Token], depths: Sequence[int]) -> bool:
    """Whether the value assigned right after a reading variable (``= 'x'``) keeps statements read
    as the gateway reads them: one literal, a UTF-8 character set, or sql_mode flags from the
    neutral list. Anything computed is not harmless: its value is unknown here."""
    if len(after) < 2 or after[0].token_type not in (_T.EQ, _T.COLON_EQ):
        return False
    value = [t for t, d in zip(after[1:], depths[1:], strict=False) if not d]
    end = next((i for i, t in enumerate(value) if t.token_type == _T.COMMA), len(value))
    if end != 1:
        return False
    tok = value[0]
    if reading == "set_client_encoding":
        return _utf8_name(tok)
    if tok.token_type != _T.STRING:
        return False
    flags = {f.strip().upper() for f in tok.text.split(",")} - {""}
    return flags <= _LEXING_NEUTRAL_SQL_MODES


def _mysql_set(ctx: _Ctx, toks: Sequence[Token], words: Sequence[str]) -> _Acc:
    scope = words[1:2]
    if words[1:2] == ["TRANSACTION"] or (
        scope in (["GLOBAL"], ["SESSION"], ["LOCAL"]) and words[2:3] == ["TRANSACTION"]
    ):
        return _Acc("transaction")
    if words[1:2] in (["PASSWORD"], ["DEFAULT"]):
        return _Acc("ddl", ddl_action="alter", object_type="user")
    acc = _Acc("set")
    depths = _depths(toks)
    for k, tok in enumerate(toks):
        if depths[k]:
            continue
        if tok.token_type != _T.STRING:
            reading = _MYSQL_READING_VARIABLES.get(tok.text.strip("`").upper())
            if reading and not _harmless_reading_value(reading, toks[k + 1 :], depths[k + 1 :]):
                acc.features.add(reading)
        if words[k] in ("GLOBAL", "PERSIST", "PERSIST_ONLY"):
            acc.features.add("set_global")
        if (
            tok.token_type == _T.SESSION_PARAMETER
            and k + 2 < len(toks)
            and toks[k + 2].token_type == _T.DOT
            and _word(toks[k + 1]) in ("GLOBAL", "PERSIST", "PERSIST_ONLY")
        ):
            acc.features.add("set_global")
    if words[1:2] == ["ROLE"]:
        acc.features.add("set_role")
        return acc
    if words[1:2] in (["NAMES"], ["CHARACTER"], ["CHARSET"]):
        named = [t for t in toks[2:] if _word(t) not in ("SET", "COLLATE")]
        if not all(_utf8_name(t) for t in named):
            acc.features.add("set_client_encoding")  # changes how the server reads later statements
        return acc
    if words[1:2] == ["RESOURCE"]:
        return acc
    tree = ctx.glot.parse(toks, ctx.text)
    if not isinstance(tree, exp.Set):
        raise UnparseableOperation("SET statement not understood")
    inner = _Acc("set")
    _analyse_tree(ctx, tree, toks, ctx.text, inner)
    acc.absorb(inner)
    return acc


def _reset(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    return _Acc("other") if ctx.mysql else _Acc("reset")


def _transaction(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    """Transaction control. Every word must belong to the statement's own grammar: MariaDB's
    ``BEGIN NOT ATOMIC ... END`` is a block of statements, not a transaction start."""
    words = _words(toks)
    keyword = words[0]
    if keyword == "START" and words[1:2] != ["TRANSACTION"]:
        if not ctx.mysql:
            raise UnparseableOperation("START statement not understood")
        return _other(ctx, toks)  # MySQL START REPLICA / SLAVE / GROUP_REPLICATION
    if keyword in ("ABORT", "END") and ctx.mysql:
        raise UnparseableOperation(f"{keyword} is not a MySQL statement")
    named = keyword in ("SAVEPOINT", "RELEASE") or (keyword == "ROLLBACK" and "TO" in words)
    if keyword in ("SAVEPOINT", "RELEASE") and len(toks) < 2:
        raise UnparseableOperation(f"{keyword} without a name")
    for k in range(1, len(toks)):
        tok = toks[k]
        if words[k] in _TRANSACTION_WORDS or tok.token_type == _T.COMMA:
            continue
        if named and k == len(toks) - 1 and _is_name(tok):
            continue  # the savepoint's name
        if words[k - 1] == "PREPARED" and tok.token_type == _T.STRING and k == len(toks) - 1:
            continue  # COMMIT / ROLLBACK PREPARED 'id'
        raise UnparseableOperation(f"{keyword} statement not understood")
    return _Acc("transaction")


_TRANSACTION_WORDS: Final = _names(
    "WORK TRANSACTION ISOLATION LEVEL SERIALIZABLE REPEATABLE READ COMMITTED UNCOMMITTED WRITE ONLY NOT "
    "DEFERRABLE WITH CONSISTENT SNAPSHOT AND NO CHAIN RELEASE TO SAVEPOINT PREPARED"
)


def _prepare(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    words = _words(toks)
    if words[1:2] == ["TRANSACTION"]:
        return _Acc("transaction")  # PostgreSQL two-phase commit
    acc = _Acc("prepare")
    if len(toks) < 3:
        raise UnparseableOperation("PREPARE without a statement")
    if ctx.mysql:
        if words[2] != "FROM" or len(toks) < 4:
            raise UnparseableOperation("MySQL PREPARE must be PREPARE name FROM ...")
        acc.features.add("dynamic_sql")
        source = toks[3:]
        if source[0].token_type == _T.INTRODUCER:
            source = source[1:]
        if len(source) == 2 and source[0].token_type == _T.PARAMETER and _is_name(source[1]):
            return acc  # FROM @variable: unknowable here
        if len(source) != 1:
            raise UnparseableOperation("PREPARE ... FROM must name a string or a @variable")
        literal = source[0]
        if literal.token_type in (_T.STRING, _T.NATIONAL_STRING):
            body = literal.text
        elif literal.token_type == _T.HEX_STRING:
            try:
                body = bytes.fromhex(literal.text).decode("utf-8")
            except ValueError:
                raise UnparseableOperation("PREPARE ... FROM hexadecimal text is not UTF-8") from None
        else:
            raise UnparseableOperation("PREPARE ... FROM must name a string or a @variable")
        if ctx.depth >= _MAX_DEPTH:
            raise UnparseableOperation("statements nested too deeply")
        for inner in _parse(body, "mysql", ctx.depth + 1):
            acc.reads |= set(inner.tables_read)
            acc.writes |= set(inner.tables_written)
            acc.functions |= set(inner.functions)
            acc.features |= set(inner.features)
        return acc
    i = 2
    if toks[i].token_type == _T.L_PAREN:
        i = _matching(toks, i) + 1
    if i >= len(toks) or words[i] != "AS":
        raise UnparseableOperation("PREPARE without AS")
    acc.absorb(_sub(ctx, toks[i + 1 :]))
    return acc


def _execute(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    acc = _Acc("execute")
    acc.features.add("dynamic_sql")
    if len(toks) < 2 or not _is_name(toks[1]):
        raise UnparseableOperation("EXECUTE without a prepared statement name")
    if ctx.mysql:
        if len(toks) > 2 and _word(toks[2]) != "USING":
            raise UnparseableOperation("EXECUTE statement not understood")
        return acc
    if len(toks) > 2:
        if toks[2].token_type != _T.L_PAREN or _matching(toks, 2) != len(toks) - 1:
            raise UnparseableOperation("EXECUTE statement not understood")
        if len(toks) > 4:
            acc.absorb(_expressions(ctx, ctx.sql(toks[3:-1])))
    return acc


def _deallocate(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    return _Acc("deallocate")


def _call(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    if len(toks) < 2:
        raise UnparseableOperation("CALL without a procedure")
    acc = _Acc("call")
    if len(toks) == 2 or (ctx.mysql and toks[-1].token_type != _T.R_PAREN):
        name, end = _read_name(toks, 1)
        if end != len(toks):
            raise UnparseableOperation("CALL statement not understood")
        acc.functions.add(name.lower())
        acc.functions.add(name.rsplit(".", 1)[-1].lower())
        return acc
    inner = _expressions(ctx, ctx.sql(toks[1:]))
    acc.absorb(inner)
    acc.kind = "call"
    return acc


def _do(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    acc = _Acc("do")
    if ctx.mysql:
        if len(toks) < 2:
            raise UnparseableOperation("DO without expressions")
        acc.absorb(_expressions(ctx, ctx.sql(toks[1:])))  # MySQL DO expr, ...: evaluates expressions
        return acc
    acc.features.add("do_block")
    words = _words(toks)
    language = None
    body: str | None = None
    i = 1
    while i < len(toks):
        if words[i] == "LANGUAGE" and i + 1 < len(toks):
            language = toks[i + 1].text
            i += 2
        elif toks[i].token_type in _STRINGS and body is None:
            body = toks[i].text
            i += 1
        else:
            raise UnparseableOperation("DO statement not understood")
    if body is None:
        raise UnparseableOperation("DO without a body")
    _routine_body(ctx, body, language, acc)
    return acc


# --- EXPLAIN / DESCRIBE ------------------------------------------------------------------------

_EXPLAINABLE: Final = _names(
    "SELECT WITH VALUES TABLE INSERT UPDATE DELETE MERGE REPLACE CREATE EXECUTE DECLARE ("
)


def _explain(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    words = _words(toks)
    if words[0] in ("DESCRIBE", "DESC") and not ctx.mysql:
        raise UnparseableOperation(f"{words[0]} is not a PostgreSQL statement")
    acc = _Acc("explain")
    n = len(toks)
    i = 1
    analyze = False
    if not ctx.mysql and i < n and toks[i].token_type == _T.L_PAREN:
        end = _matching(toks, i)
        option: list[Token] = []
        for tok in [*toks[i + 1 : end], None]:
            if tok is not None and tok.token_type != _T.COMMA:
                option.append(tok)
                continue
            if option and _word(option[0]) in ("ANALYZE", "ANALYSE"):
                value = [t.text.lower() for t in option[1:]]
                analyze = analyze or value not in (["false"], ["off"], ["0"])
            option = []
        i = end + 1
    while i < n:
        w = words[i]
        if w in ("ANALYZE", "ANALYSE"):
            analyze = True
            i += 1
        elif w in ("VERBOSE", "EXTENDED", "PARTITIONS"):
            i += 1
        elif ctx.mysql and w == "FORMAT":
            i += 3 if i + 1 < n and toks[i + 1].token_type == _T.EQ else 2
        else:
            break
    if analyze:
        acc.features.add("explain_analyze")
    rest = toks[i:]
    if not rest:
        raise UnparseableOperation("EXPLAIN without a statement")
    first = "(" if rest[0].token_type == _T.L_PAREN else _word(rest[0])
    if first in _EXPLAINABLE:
        acc.absorb(_sub(ctx, rest))
    elif ctx.mysql and words[i : i + 2] == ["FOR", "CONNECTION"]:
        pass
    elif ctx.mysql and _is_name(rest[0]):
        name, end = _read_name(rest, 0)
        if end < len(rest) - 1:
            raise UnparseableOperation("DESCRIBE statement not understood")
        acc.reads.add(name)
    else:
        raise UnparseableOperation("EXPLAIN of this statement is not supported")
    return acc


# --- the rest ----------------------------------------------------------------------------------


def _show(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    return _Acc("show")


def _use(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    if not ctx.mysql:
        raise UnparseableOperation("USE is not a PostgreSQL statement")
    return _Acc("use")


def _lock(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    words = _words(toks)
    if words[0] in ("LOCK TABLES", "UNLOCK TABLES"):  # one token in sqlglot's MySQL tokenizer
        head, _, tail = words[0].partition(" ")
        words = [head, tail, *words[1:]]
        toks = [toks[0], toks[0], *toks[1:]]
    acc = _Acc("lock")
    if words[0] == "UNLOCK":
        if not ctx.mysql:
            raise UnparseableOperation("UNLOCK is not a PostgreSQL statement")
        return acc
    i = 1
    if ctx.mysql:
        if words[1:2] == ["INSTANCE"]:
            return acc
        if words[1:2] not in (["TABLES"], ["TABLE"]):
            raise UnparseableOperation("LOCK statement not understood")
        i = 2
        n = len(toks)
        while i < n:
            name, i = _read_name(toks, i)
            acc.writes.add(name)
            while i < n and toks[i].token_type != _T.COMMA:
                i += 1
            i += 1
        return acc
    while i < len(toks) and words[i] in ("TABLE", "ONLY"):
        i += 1
    names, _ = _read_names(toks, i, stop=("IN", "NOWAIT"))
    if not names:
        raise UnparseableOperation("LOCK without a table")
    acc.writes.update(names)
    return acc


def _handler(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    if not ctx.mysql:
        raise UnparseableOperation("HANDLER is not a PostgreSQL statement")
    acc = _Acc("other")
    acc.features.add("handler")
    name, _ = _read_name(toks, 1)
    acc.reads.add(name)
    acc.functions |= _call_names(toks)
    return acc


def _declare(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    words = _words(toks)
    if ctx.mysql:
        raise UnparseableOperation("DECLARE outside a stored program is not a MySQL statement")
    acc = _Acc("other")
    for k in range(2, len(toks) - 1):
        if words[k] == "FOR" and words[k - 1] in ("CURSOR", "HOLD"):
            acc.absorb(_sub(ctx, toks[k + 1 :]))
            return acc
    raise UnparseableOperation("DECLARE statement not understood")


_MAINTENANCE_OPTIONS: Final = _names(
    "FULL FREEZE VERBOSE ANALYZE ANALYSE SKIP_LOCKED INDEX_CLEANUP TRUNCATE PARALLEL TABLE INDEX SCHEMA "
    "DATABASE SYSTEM CONCURRENTLY MATERIALIZED VIEW WITH DATA NO NO_WRITE_TO_BINLOG LOCAL QUICK EXTENDED "
    "USE_FRM FOR UPGRADE FAST MEDIUM CHANGED ON USING CLUSTER ALL PROCESS_TOAST DISABLE_PAGE_SKIPPING "
    "BUFFER_USAGE_LIMIT PROCESS_MAIN ONLY_DATABASE_STATS TABLESPACE UPDATE HISTOGRAM DROP BUCKETS"
)
_MAINTENANCE: Final = _names("VACUUM ANALYZE ANALYSE CLUSTER REINDEX REFRESH OPTIMIZE REPAIR CHECK CHECKSUM")


def _other(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
    words = _words(toks)
    acc = _Acc("other")
    keyword = words[0]
    if keyword in _MAINTENANCE:
        depths = _depths(toks)
        i = 1
        n = len(toks)
        while i < n:
            if depths[i] == 0 and words[i] not in _MAINTENANCE_OPTIONS and _is_name(toks[i]):
                name, i = _read_name(toks, i)
                acc.writes.add(name)
            else:
                i += 1
    elif keyword == "BINLOG":
        acc.features.add("binlog")
    acc.functions |= _call_names(toks)
    return acc


def _mysql_only(handler: Callable[[_Ctx, Sequence[Token]], _Acc]) -> Callable[[_Ctx, Sequence[Token]], _Acc]:
    def only(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
        if not ctx.mysql:
            raise UnparseableOperation(f"{toks[0].text.upper()} is not a PostgreSQL statement")
        return handler(ctx, toks)

    return only


def _postgres_only(
    handler: Callable[[_Ctx, Sequence[Token]], _Acc],
) -> Callable[[_Ctx, Sequence[Token]], _Acc]:
    def only(ctx: _Ctx, toks: Sequence[Token]) -> _Acc:
        if ctx.mysql:
            raise UnparseableOperation(f"{toks[0].text.upper()} is not a MySQL statement")
        return handler(ctx, toks)

    return only


_HANDLERS: Final[dict[str, Callable[[_Ctx, Sequence[Token]], _Acc]]] = {
    **dict.fromkeys(("SELECT", "WITH", "VALUES", "TABLE", "(", "INSERT", "UPDATE", "DELETE"), _query_or_dml),
    "MERGE": _postgres_only(_query_or_dml),
    "REPLACE": _mysql_replace,
    **dict.fromkeys(("CREATE", "ALTER", "DROP", "TRUNCATE", "COMMENT", "RENAME"), _ddl),
    "GRANT": _grant,
    "REVOKE": _grant,
    "COPY": _copy,
    "LOAD": _load,
    "SET": _set,
    "RESET": _reset,
    **dict.fromkeys(
        ("BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "ABORT", "END"), _transaction
    ),
    "XA": _mysql_only(lambda ctx, toks: _Acc("transaction")),
    "PREPARE": _prepare,
    "EXECUTE": _execute,
    "DEALLOCATE": _deallocate,
    "CALL": _call,
    "DO": _do,
    **dict.fromkeys(("EXPLAIN", "DESCRIBE", "DESC"), _explain),
    "SHOW": _show,
    "USE": _use,
    "LOCK": _lock,
    "UNLOCK": _lock,
    "HANDLER": _handler,
    "DECLARE": _declare,
    **dict.fromkeys(
        (
            "VACUUM",
            "CLUSTER",
            "REINDEX",
            "REFRESH",
            "CHECKPOINT",
            "DISCARD",
            "LISTEN",
            "UNLISTEN",
            "NOTIFY",
            "FETCH",
            "MOVE",
            "CLOSE",
            "REASSIGN",
            "SECURITY",
            "IMPORT",
        ),
        _postgres_only(_other),
    ),
    "ANALYZE": _other,
    "ANALYSE": _postgres_only(_other),
    **dict.fromkeys(
        (
            "OPTIMIZE",
            "REPAIR",
            "CHECK",
            "CHECKSUM",
            "FLUSH",
            "KILL",
            "PURGE",
            "INSTALL",
            "UNINSTALL",
            "SHUTDOWN",
            "RESTART",
            "CHANGE",
            "STOP",
            "BINLOG",
            "HELP",
            "CACHE",
            "CLONE",
        ),
        _mysql_only(_other),
    ),
}
