"""Statement shapes: SQL texts that differ only in plain literals get one analysis.

An agent speaking PostgreSQL's simple protocol (psql, pgbench -M simple, many scripts) or MySQL's
text protocol sends each statement with its values written in: ``... WHERE aid = 48213``, then
``... WHERE aid = 9170``. ``parse_sql`` costs about a hundred microseconds a statement, most of a
decision. A *shape* is such a text with every plain literal (a run of decimal digits, a string in
single quotes) replaced by a marker; texts of one shape are parsed once, and later texts of that
shape take its analysis, with their own text, **only where that provably gives what ``parse_sql``
gives them**:

* **Lexing** (``shape_of``). A text has a shape only if nothing in it outside the literals can
  open another lexical context: no ``"``, backquote, ``$``, backslash, ``#``, ``--``, ``/*``,
  NUL, unbalanced quote. So every ``'`` delimits a string; a string slot holds no ``'`` and no
  backslash, a number slot is digits with no letter, digit, ``_``, ``.``, ``$``, ``'`` next to
  it. The tokenizer's reading of the rest then cannot depend on what a slot holds, and slots
  end where the shape says. (A string with a prefix, ``E'..'``, ``N'..'``, ``_utf8'..'``, is
  not a slot: it is part of the shape, compared as written.)
* **Parsing** (``admit``, once per shape, on the second text of that shape seen). The text's own
  tokens and sqlglot tree must show each slot as exactly one ``STRING``/``NUMBER`` token (not
  followed by ``(``) and one ``exp.Literal`` with that span, sitting directly (or under a unary
  minus) in a position whose reading does not look at the value: compared with a column
  (``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``, ``<=>``), in a column's ``IN`` list or
  ``BETWEEN`` bounds, arithmetic with a column, ``LIMIT``/``OFFSET``, a row of ``INSERT ...
  VALUES``; and under no function call (sqlglot's function builders read arguments: intervals,
  date formats). sqlglot makes a ``Literal`` from a ``STRING``/``NUMBER`` token by its type
  alone; the value-reading parses (``INTERVAL '1 day'``, typed literals, JSON paths, adjacent
  strings) all leave the literal under another node, which is refused here.
* **Classification.** Only single ``SELECT``, ``INSERT``, ``UPDATE``, ``DELETE`` statements
  (``WITH`` too). In ``parse_sql`` a literal's value reaches the result in three places only:
  the coverage check (a literal's words count as seen), which ``admit`` shows does not need the
  slots' values by parsing the shape with neutral values (``''`` and ``0``, which no name can
  equal) and getting the same analysis; the ``has_where`` tautology check of an ``UPDATE`` or
  ``DELETE`` (``WHERE 1 = 1``), against which every slot inside that ``WHERE`` must sit in a
  comparison with a column reached from the ``WHERE`` through ``AND``/``OR``/``NOT``/parentheses
  only (so its truth is unknown whatever the value, and no enclosing node compares it); and the
  input checks (NUL, valid Unicode, and MySQL's ``INTO OUTFILE`` scan of the text), repeated on
  each text by ``instantiate``, which hands such a text back to ``parse_sql``.

Whatever is not proven is parsed in full as before. ``tests/test_sql_shapes.py`` checks that the
shapes give ``parse_sql``'s answer on the bypass corpora and on generated literals.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from sqlglot import exp
from sqlglot.tokenizer_core import Token, TokenType

from wardgate.operations import UnparseableOperation
from wardgate.operations.sql import Dialect, SqlOperation, SqlStatement, _glot, parse_sql

STRING_MARK: Final = "\0s"  # NUL is never in a text with a shape: markers cannot be forged
NUMBER_MARK: Final = "\0n"
SHAPED_KINDS: Final = frozenset({"select", "insert", "update", "delete"})
_FIRST_WORDS: Final = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"})
# A string in quotes, or digits alone (not part of a name, a decimal, a parameter or a variable).
_LEXEME: Final = re.compile(r"'[^']*'|[0-9](?<![\w.$@:'][0-9])[0-9]*(?![\w.$'])")
# What may not appear outside the slots: another lexical context could hide or move a token.
_UNSHAPED: Final = re.compile(r"[\"`$\\#\0']|--|/\*|\*/")
_PREFIX_CHARS: Final = re.compile(r"[\w&]")
_COMPARISONS: Final = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ)
_ARITHMETIC: Final = (exp.Add, exp.Sub, exp.Mul, exp.Div)
_WHERE_PATH: Final = (exp.And, exp.Or, exp.Not, exp.Paren)
_MYSQL_FILE_WORDS: Final = ("outfile", "dumpfile")


@dataclass(frozen=True, slots=True)
class Shape:
    """A text's shape: ``key`` (the text with each slot replaced by a marker) and the slots, as
    ``(start, end, is_string)`` offsets in the text (a string slot spans its quotes)."""

    key: str
    slots: tuple[tuple[int, int, bool], ...]


@dataclass(frozen=True, slots=True)
class Template:
    """An admitted shape: the analysis every text of the shape shares, and where the statement's
    own text starts and ends in a text (``parse_sql`` trims what surrounds the statement)."""

    statement: SqlStatement
    dialect: Dialect
    lead: int
    trail: int
    recorded: dict[str, object]  # the statement's attributes as ``SqlOperation.to_record`` gives them


def shape_of(text: str) -> Shape | None:
    """The text's shape, or None when it has no slot or cannot be shaped safely."""
    parts: list[str] = []
    slots: list[tuple[int, int, bool]] = []
    pos = 0
    for match in _LEXEME.finditer(text):
        start, end = match.span()
        fixed = text[pos:start]
        if _UNSHAPED.search(fixed):
            return None
        is_string = text[start] == "'"
        if is_string:
            if start == pos and pos and text[pos - 1] == "'":
                return None  # 'it''s': a quote inside a string
            if "\\" in text[start:end] or (end < len(text) and _PREFIX_CHARS.match(text, end)):
                return None
            if start and _PREFIX_CHARS.match(text, start - 1):  # E'..', N'..', U&'..', _utf8'..'
                parts += (fixed, text[start:end])
                pos = end
                continue
        parts += (fixed, STRING_MARK if is_string else NUMBER_MARK)
        slots.append((start, end, is_string))
        pos = end
    tail = text[pos:]
    if not slots or _UNSHAPED.search(tail):
        return None
    parts.append(tail)
    return Shape("".join(parts), tuple(slots))


def neutral(text: str, shape: Shape) -> str:
    """The text of the shape with every string slot empty and every number slot 0."""
    parts: list[str] = []
    pos = 0
    for start, end, is_string in shape.slots:
        parts += (text[pos:start], "''" if is_string else "0")
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def admit(text: str, shape: Shape, operation: SqlOperation, dialect: Dialect) -> Template | None:
    """The shape's template when ``text`` (whose ``parse_sql`` result is ``operation``) shows that
    every text of the shape parses as it does but for its own text; None when it does not."""
    if len(operation.statements) != 1 or not _values_are_plain(text, shape, dialect):
        return None
    statement = operation.statements[0]
    if statement.kind not in SHAPED_KINDS:
        return None
    glot = _glot(dialect)
    try:
        tokens = glot.tokenize(text)
        while tokens and tokens[-1].token_type == TokenType.SEMICOLON:
            tokens.pop()
        if not tokens or any(t.token_type == TokenType.SEMICOLON for t in tokens):
            return None
        first = tokens[0]
        if first.token_type == TokenType.L_PAREN or first.text.upper() not in _FIRST_WORDS:
            return None
        if not _slots_are_literal_tokens(tokens, shape):
            return None
        tree = glot.parse(tokens, text)
    except UnparseableOperation:
        return None
    if not _slots_are_inert(tree, shape, statement.kind):
        return None
    try:
        again = parse_sql(neutral(text, shape), dialect)
    except UnparseableOperation:
        return None
    if len(again.statements) != 1 or again.statements[0].attributes() != statement.attributes():
        return None
    lead = tokens[0].start
    trail = len(text) - tokens[-1].end - 1
    if text[lead : len(text) - trail] != statement.text:  # pragma: no cover - parse_sql's own trim
        return None
    recorded = operation.to_record()["statements"][0]
    del recorded["text"]
    return Template(statement, dialect, lead, trail, recorded)


def instantiate(template: Template, text: str, shape: Shape) -> SqlOperation | None:
    """``parse_sql(text)`` for a text of the template's shape, from the template; None when a
    slot's value reaches what ``parse_sql`` checks (the caller then parses the text in full)."""
    if not _values_are_plain(text, shape, template.dialect):
        return None
    s = template.statement
    own = text[template.lead : len(text) - template.trail]
    statement = SqlStatement(
        own,
        s.kind,
        s.ddl_action,
        s.object_type,
        s.tables_read,
        s.tables_written,
        s.has_where,
        s.functions,
        s.features,
    )
    return SqlOperation(template.dialect, (statement,))


def _values_are_plain(text: str, shape: Shape, dialect: Dialect) -> bool:
    """What ``parse_sql`` checks of the whole text that a slot's value could change."""
    if "\0" in text:
        return False
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return False
    if dialect == "mysql":  # its INTO OUTFILE scan reads the text, strings included
        lowered = text.lower()
        if any(word in lowered for word in _MYSQL_FILE_WORDS):
            return False
    return True


def _slots_are_literal_tokens(tokens: list[Token], shape: Shape) -> bool:
    by_start = {t.start: k for k, t in enumerate(tokens)}
    for start, end, is_string in shape.slots:
        k = by_start.get(start)
        if k is None:
            return False
        token = tokens[k]
        wanted = TokenType.STRING if is_string else TokenType.NUMBER
        if token.token_type != wanted or token.end != end - 1:
            return False
        if k + 1 < len(tokens) and tokens[k + 1].token_type == TokenType.L_PAREN:
            return False  # a "call": parse_sql remembers names written before a parenthesis
    return True


def _slots_are_inert(tree: exp.Expr, shape: Shape, kind: str) -> bool:
    literals: dict[tuple[int, int], list[exp.Literal]] = {}
    for node in tree.walk():
        if isinstance(node, exp.Literal):
            meta = node.meta
            if "start" in meta and "end" in meta:
                literals.setdefault((meta["start"], meta["end"]), []).append(node)
    where = tree.args.get("where") if kind in ("update", "delete") else None
    for start, end, is_string in shape.slots:
        found = literals.get((start, end - 1), [])
        if len(found) != 1:
            return False
        literal = found[0]
        if bool(literal.is_string) != is_string:
            return False
        if not _inert_position(literal, is_string, where):
            return False
    return True


def _inert_position(literal: exp.Literal, is_string: bool, where: object) -> bool:
    operand: exp.Expr = literal
    parent = literal.parent
    if isinstance(parent, exp.Neg) and not is_string:
        operand, parent = parent, parent.parent
    if parent is None:
        return False
    if isinstance(parent, (*_COMPARISONS, *_ARITHMETIC)):
        other = parent.expression if parent.this is operand else parent.this
        if not isinstance(other, exp.Column):
            return False
    elif isinstance(parent, exp.In):
        if parent.args.get("query") is not None or not isinstance(parent.this, exp.Column):
            return False
        if not any(item is operand for item in parent.expressions):
            return False
    elif isinstance(parent, exp.Between):
        if not isinstance(parent.this, exp.Column) or parent.this is operand:
            return False
    elif isinstance(parent, (exp.Limit, exp.Offset)):
        if parent.args.get("expression") is not operand:
            return False
    elif isinstance(parent, exp.Tuple):
        values = parent.parent
        if not (isinstance(values, exp.Values) and isinstance(values.parent, exp.Insert)):
            return False
    else:
        return False
    for ancestor in _ancestors(parent):
        if isinstance(ancestor, exp.Func) and not isinstance(ancestor, (exp.And, exp.Or)):
            return False  # a function's builder may read its arguments' values
    if where is not None and any(a is where for a in _ancestors(parent)):
        # UPDATE/DELETE: parse_sql evaluates the WHERE for tautologies. A comparison with a column
        # (or a column's IN/BETWEEN) is unknown whatever the literal, and AND/OR/NOT/parentheses
        # above it only combine truths; anything else could compare or compute the value.
        if isinstance(parent, _ARITHMETIC) or not isinstance(parent, (*_COMPARISONS, exp.In, exp.Between)):
            return False
        for ancestor in _ancestors(parent):
            if ancestor is where:
                break
            if not isinstance(ancestor, _WHERE_PATH):
                return False
    return True


def _ancestors(node: exp.Expr) -> Iterator[exp.Expr]:
    current = node.parent
    while current is not None:
        yield current
        current = current.parent
