"""Shell command lines (as sent over SSH), parsed into the commands they would run.

Why a tokenizer of our own and not ``shlex``: ``shlex.shlex(posix=True, punctuation_chars=True)``
loses exactly what a security decision needs. It drops newlines (so ``a\\nrm x`` looks like one
command), treats ``#`` inside a word as a comment (``a#b``), splits ``$(`` into ``$`` and
``(`` without tracking nesting, removes quotes without saying whether a ``$`` was quoted (a
literal) or not (an expansion), and reads the ``2`` of ``2>&1`` as an argument. The lexer below
follows the POSIX shell grammar (with the bash extensions agents use: ``&>``, ``|&``, ``<<<``,
``$'...'``, process substitution) for the parts that decide *which programs run*:

* quoting (``'...'``, ``"..."``, backslash, line continuation) and quote removal, so ``r''m``,
  ``"rm"`` and ``\\rm`` are all ``rm``; ``$'\\x72m'`` is decoded to ``rm`` too;
* separators ``;`` ``&&`` ``||`` ``|`` ``|&`` ``&`` and newlines (a newline separates commands
  like ``;``), subshells ``( ... )``, ``{ ...; }``, ``if``/``while``/``until``/``for`` bodies;
* redirections (with their file descriptor, ``2>/dev/null``), here-documents (whose bodies are
  scanned for substitutions unless the delimiter is quoted) and here-strings;
* command substitution ``$(...)``/backticks and process substitution ``<(...)``/``>(...)``:
  recorded as features *and* parsed recursively, their commands added to ``commands`` before
  the command that contains them (so ``echo $(rm -rf /)`` exposes ``rm``);
* wrappers (``sudo``, ``env``, ``xargs``, ``timeout``, ``nice``, ``nohup``, ``find -exec``,
  ``bash -c``, ``eval``, ``ssh host cmd``, ...) stay visible as ``program`` while
  ``effective_programs`` lists every program the command would run, parsing ``-c`` strings
  recursively.

Fail-closed choices (each raises ``UnparseableOperation`` with a reason):

* Input over 64 KiB, NUL bytes or any control character other than tab and newline (including
  ``\\r``), unbalanced quotes, a trailing backslash, an unterminated substitution, subshell,
  compound command or here-document, and syntax errors (``a &&``, ``| b``, ``;;``).
* Variables are never expanded: ``$X`` stays literal in ``argv`` and the feature is recorded.
  But when the *program* is a variable, a substitution, a glob or a brace expansion
  (``$CMD -rf /``, ``"$(echo rm)" x``, ``/bin/r? x``, ``{rm,-rf,/}``), the program that would
  run cannot be known, so the command is unparseable. The same holds for the program a wrapper
  runs, and for an unquoted expansion before it (``sudo $OPTS rm``: word splitting could move
  the program), and for an option of a wrapper we do not know (it might take a value).
* Constructs whose commands we do not model: arithmetic ``$((...))``/``((...))``,
  ``case``, ``select``, ``function``, ``coproc``, function definitions ``f() {...}``, and
  ``${...}`` containing quotes, substitutions or nested braces.
* Nesting deeper than ``MAX_DEPTH`` (substitutions, subshells, ``-c`` strings).
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from wardgate.operations import UnparseableOperation

MAX_TEXT_BYTES = 64 * 1024
MAX_DEPTH = 24
FEATURES = (
    "background",
    "brace_expansion",
    "command_substitution",
    "compound_command",
    "eval",
    "glob",
    "heredoc",
    "here_string",
    "newline_separated",
    "process_substitution",
    "redirect_write",
    "subshell",
    "variable_expansion",
)
_METACHARS = frozenset(" \t\n;&|()<>")
_REDIRECT_OPS = ("&>>", "&>", "<<<", "<<-", "<<", "<>", "<&", ">&", ">>", ">|", "<", ">")
_WRITE_OPS = frozenset({">", ">>", ">|", "&>", "&>>", "<>"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])?\+?=")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACE = re.compile(r"\{[^{}]*(?:,|\.\.)[^{}]*\}")
_OPENING_KEYWORDS = frozenset({"!", "{", "if", "then", "elif", "else", "while", "until", "do"})
_UNSUPPORTED_KEYWORDS = frozenset({"case", "esac", "select", "function", "coproc"})
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "yash", "fish", "rbash"})
_EVAL = frozenset({"eval"})
_SOURCE = frozenset({"source", "."})
_QUOTED = "\x00"  # stands for a quoted or expanded character in a word's skeleton


@dataclass(frozen=True)
class ShellCommand:
    argv: tuple[str, ...]
    program: str  # "" for a command of assignments and/or redirections only
    effective_programs: tuple[str, ...]
    operator: str | None
    redirects: tuple[str, ...]
    assignments: tuple[str, ...] = ()
    context: str = "main"  # "main", "subshell" or "substitution"

    def attributes(self) -> dict[str, Any]:
        return {
            "argv": list(self.argv),
            "program": self.program,
            "effective_programs": list(self.effective_programs),
            "operator": self.operator,
            "redirects": list(self.redirects),
            "assignments": list(self.assignments),
            "context": self.context,
        }


@dataclass(frozen=True)
class ShellOperation:
    text: str
    commands: tuple[ShellCommand, ...]
    features: tuple[str, ...]

    def to_record(self) -> dict[str, Any]:
        return {
            "protocol": "shell",
            "text": self.text,
            "commands": [c.attributes() for c in self.commands],
            "features": list(self.features),
        }

    @property
    def programs(self) -> tuple[str, ...]:
        """Every effective program of every command, in order, without repeats."""
        return tuple(dict.fromkeys(p for c in self.commands for p in c.effective_programs))


def parse_shell(text: str) -> ShellOperation:
    return _parse(text, 0)


def _parse(text: str, depth: int) -> ShellOperation:
    if not isinstance(text, str):
        raise UnparseableOperation("shell command must be text")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise UnparseableOperation("shell command is not valid Unicode text") from None
    if size > MAX_TEXT_BYTES:
        raise UnparseableOperation(f"shell command is longer than {MAX_TEXT_BYTES} bytes")
    for ch in text:
        if ch not in "\t\n" and unicodedata.category(ch) == "Cc":
            raise UnparseableOperation(f"control character U+{ord(ch):04X} in shell command")
    state = _State()
    parser = _Parser(text, state, depth)
    try:
        parser.parse_all("main")
        commands = tuple(_finish(d, state, depth) for d in state.drafts)
    except RecursionError:
        raise UnparseableOperation("shell command is nested too deeply") from None
    return ShellOperation(text=text, commands=commands, features=tuple(sorted(state.features)))


# ---------------------------------------------------------------------------------------------
# lexing and parsing


@dataclass
class _Word:
    value: str  # after quote removal; expansions and substitutions kept as written
    raw: str  # as written
    quoted: bool  # some part was quoted or escaped
    opaque: bool  # contains an expansion or substitution: the value is not what runs
    splittable: bool  # an unquoted expansion or pattern: may become several words, or none
    pattern: bool  # an unquoted glob or brace expansion


@dataclass
class _Draft:
    context: str
    words: list[_Word] = field(default_factory=list)
    assignments: list[str] = field(default_factory=list)
    redirects: list[str] = field(default_factory=list)
    operator: str | None = None


@dataclass
class _State:
    drafts: list[_Draft] = field(default_factory=list)
    features: set[str] = field(default_factory=set)


@dataclass
class _Heredoc:
    delimiter: str
    strip_tabs: bool
    expand: bool


class _WordBuilder:
    def __init__(self) -> None:
        self.value: list[str] = []
        self.skeleton: list[str] = []
        self.quoted = False
        self.opaque = False
        self.unquoted_expansion = False

    def literal(self, text: str, quoted: bool) -> None:
        self.value.append(text)
        self.skeleton.append(_QUOTED * len(text) if quoted else text)
        self.quoted = self.quoted or quoted

    def expansion(self, text: str, quoted: bool) -> None:
        self.value.append(text)
        self.skeleton.append(_QUOTED)
        self.opaque = True
        if not quoted:
            self.unquoted_expansion = True


class _Parser:
    def __init__(self, text: str, state: _State, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise UnparseableOperation("shell command is nested too deeply")
        self.s = text
        self.n = len(text)
        self.i = 0
        self.state = state
        self.depth = depth
        self.heredocs: list[_Heredoc] = []

    # -- helpers ---------------------------------------------------------------------------

    def peek(self, offset: int = 0) -> str:
        j = self.i + offset
        return self.s[j] if j < self.n else ""

    def skip_blanks(self) -> None:
        while self.i < self.n:
            c = self.s[self.i]
            if c in " \t":
                self.i += 1
            elif c == "\\" and self.peek(1) == "\n":
                self.i += 2
            else:
                return

    def skip_comment(self) -> None:
        end = self.s.find("\n", self.i)
        self.i = self.n if end == -1 else end

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise UnparseableOperation("shell command is nested too deeply")

    # -- lists -----------------------------------------------------------------------------

    def parse_all(self, context: str) -> None:
        self.parse_list(context, closer=False)
        if self.heredocs:
            raise UnparseableOperation(f"here-document {self.heredocs[0].delimiter!r} has no body")

    def parse_list(self, context: str, closer: bool) -> None:
        """Commands up to the end of the text or, if ``closer``, up to the matching ``)``."""
        drafts = self.state.drafts
        features = self.state.features
        need_command = False  # after && || |
        have_item = False  # a command (or keyword) since the last separator
        newline_pending = False
        last: _Draft | None = None
        stack: list[str] = []
        while True:
            self.skip_blanks()
            if self.i >= self.n:
                if closer:
                    raise UnparseableOperation("unterminated '(' or '$(' in shell command")
                break
            c = self.s[self.i]
            if c == "#":
                self.skip_comment()
                continue
            if c == "\n":
                self.i += 1
                self.read_heredocs()
                if have_item and not need_command:
                    if last is not None:
                        last.operator = ";"
                    newline_pending = True
                    have_item = False
                continue
            if c == ")":
                if not closer:
                    raise UnparseableOperation("unexpected ')' in shell command")
                self.i += 1
                break
            if c in ";|" or (c == "&" and self.peek(1) != ">"):
                op = self.read_operator()
                if not have_item:
                    raise UnparseableOperation(f"syntax error near {op!r}: no command before it")
                if op in (";;", ";&", ";;&"):
                    raise UnparseableOperation("'case' syntax is not supported")
                if op == "&":
                    features.add("background")
                if last is not None:
                    last.operator = "|" if op == "|&" else op
                need_command = op in ("&&", "||", "|", "|&")
                have_item = False
                newline_pending = False
                continue
            if have_item:
                raise UnparseableOperation(f"syntax error near {c!r}: missing ';' or operator")
            if newline_pending:
                features.add("newline_separated")
                newline_pending = False
            before = len(drafts)
            if c == "(":
                if self.peek(1) == "(":
                    raise UnparseableOperation("arithmetic commands '((...))' are not supported")
                features.add("subshell")
                self.i += 1
                self.nested()
                self.parse_list("substitution" if context == "substitution" else "subshell", closer=True)
                self.depth -= 1
                redirects = self.read_trailing_redirects()
                for draft in drafts[before:]:
                    draft.redirects.extend(redirects)
                have_item = True
            else:
                # `then`, `do`, `{`... expect a command next: `then (a)` is fine, `then;` is not
                have_item = self.read_command(context, stack)
            if len(drafts) > before:
                last = drafts[-1]
            need_command = False
        if need_command:
            raise UnparseableOperation("shell command ends with an operator that needs a command after it")
        if stack:
            raise UnparseableOperation(f"compound command is missing its {stack[-1]!r}")
        if last is not None and not have_item and last.operator == ";":
            last.operator = None

    def read_operator(self) -> str:
        for op in (";;&", ";;", ";&", "&&", "||", "|&", ";", "|", "&"):
            if self.s.startswith(op, self.i):
                self.i += len(op)
                return op
        raise AssertionError("unreachable")  # pragma: no cover

    def read_trailing_redirects(self) -> list[str]:
        redirects: list[str] = []
        while True:
            self.skip_blanks()
            c = self.peek()
            if self.at_redirect() and not (c in "<>" and self.peek(1) == "("):
                redirects.append(self.read_redirect())
            else:
                return redirects

    # -- simple commands -------------------------------------------------------------------

    def at_redirect(self) -> bool:
        c = self.peek()
        if not c:
            return False
        if c in "<>":
            return True
        if c == "&" and self.peek(1) == ">":
            return True
        if c.isdigit():
            j = self.i
            while j < self.n and self.s[j].isdigit():
                j += 1
            return j < self.n and self.s[j] in "<>"
        return False

    def read_command(self, context: str, stack: list[str]) -> bool:
        """One simple command; False if only reserved words that expect a command were read."""
        draft = _Draft(context=context)
        at_start = True
        opened = False
        while True:
            self.skip_blanks()
            if self.i >= self.n:
                break
            c = self.s[self.i]
            if c == "#":
                break
            if c in "<>" and self.peek(1) == "(":
                draft.words.append(self.read_process_substitution())
                at_start = False
                continue
            if self.at_redirect():
                draft.redirects.append(self.read_redirect())
                at_start = False
                continue
            if c in _METACHARS:
                break
            word = self.read_word()
            if at_start and not word.quoted and not word.opaque:
                if self.keyword(word.value, stack):
                    if word.value == "for":
                        return True
                    opened = word.value in _OPENING_KEYWORDS
                    continue
                if word.value in _UNSUPPORTED_KEYWORDS:
                    raise UnparseableOperation(f"'{word.value}' is not supported")
            if not draft.words and _ASSIGNMENT.match(word.raw):
                draft.assignments.append(word.value)
                at_start = False
                continue
            draft.words.append(word)
            at_start = False
        if draft.words or draft.assignments or draft.redirects:
            self.state.drafts.append(draft)
            return True
        return not opened

    def keyword(self, word: str, stack: list[str]) -> bool:
        """Consume a reserved word at the start of a command; False if ``word`` is not one."""
        features = self.state.features
        if word == "!":
            return True
        if word in ("{", "if", "while", "until"):
            stack.append({"{": "}", "if": "fi"}.get(word, "done"))
        elif word in ("then", "elif", "else"):
            if not stack or stack[-1] != "fi":
                raise UnparseableOperation(f"'{word}' without 'if'")
        elif word == "do":
            if not stack or stack[-1] != "done":
                raise UnparseableOperation("'do' without 'while', 'until' or 'for'")
        elif word in ("}", "fi", "done"):
            if not stack or stack[-1] != word:
                raise UnparseableOperation(f"unexpected '{word}'")
            stack.pop()
        elif word == "for":
            self.read_for_header()
            stack.append("done")
        else:
            return False
        features.add("compound_command")
        return True

    def read_for_header(self) -> None:
        """``for NAME [in WORDS]``: the words are read for their substitutions; nothing runs."""
        self.skip_blanks()
        if self.peek() == "(":
            raise UnparseableOperation("arithmetic 'for ((...))' loops are not supported")
        name = self.read_word()
        if name.quoted or name.opaque or not _NAME.fullmatch(name.value):
            raise UnparseableOperation("'for' needs a variable name")
        while True:
            self.skip_blanks()
            c = self.peek()
            if c == "" or c in ";\n" or c == "#":
                return
            if c in _METACHARS:
                raise UnparseableOperation(f"syntax error near {c!r} in 'for'")
            self.read_word()

    def read_redirect(self) -> str:
        start = self.i
        while self.i < self.n and self.s[self.i].isdigit():
            self.i += 1
        fd = self.s[start : self.i]
        op = next(o for o in _REDIRECT_OPS if self.s.startswith(o, self.i))
        self.i += len(op)
        self.skip_blanks()
        c = self.peek()
        process = c in ("<", ">") and self.peek(1) == "("  # > >(tee log)
        if not process and (c == "" or c in _METACHARS):
            raise UnparseableOperation(f"redirection {fd + op!r} has no target")
        features = self.state.features
        if op in ("<<", "<<-"):
            word = self.read_word()
            features.add("heredoc")
            self.heredocs.append(_Heredoc(word.value, op == "<<-", expand=not word.quoted))
            return fd + op + word.value
        target = self.read_process_substitution() if process else self.read_word()
        if op == "<<<":
            features.add("here_string")
        if op in _WRITE_OPS or (op == ">&" and not re.fullmatch(r"[0-9]+-?|-", target.value)):
            features.add("redirect_write")
        return fd + op + target.value

    def read_heredocs(self) -> None:
        pending, self.heredocs = self.heredocs, []
        for doc in pending:
            body: list[str] = []
            while True:
                if self.i >= self.n:
                    raise UnparseableOperation(f"here-document not terminated by {doc.delimiter!r}")
                end = self.s.find("\n", self.i)
                line = self.s[self.i : end] if end != -1 else self.s[self.i :]
                self.i = end + 1 if end != -1 else self.n
                if (line.lstrip("\t") if doc.strip_tabs else line) == doc.delimiter:
                    break
                body.append(line)
            if doc.expand:
                _Parser("\n".join(body), self.state, self.depth + 1).scan_expansions()

    def scan_expansions(self) -> None:
        """A here-document body: only ``$`` and backquotes are special (and ``\\`` before them)."""
        sink = _WordBuilder()
        while self.i < self.n:
            c = self.s[self.i]
            if c == "\\":
                self.i += 2
            elif c == "$":
                self.read_dollar(sink, quoted=True)
            elif c == "`":
                self.read_backticks(sink, quoted=True)
            else:
                self.i += 1

    # -- words -----------------------------------------------------------------------------

    def read_process_substitution(self) -> _Word:
        start = self.i
        self.i += 2
        self.state.features.add("process_substitution")
        self.nested()
        self.parse_list("substitution", closer=True)
        self.depth -= 1
        raw = self.s[start : self.i]
        return _Word(raw, raw, quoted=False, opaque=True, splittable=False, pattern=False)

    def read_word(self) -> _Word:
        start = self.i
        b = _WordBuilder()
        while self.i < self.n:
            c = self.s[self.i]
            if c in _METACHARS:
                break
            if c == "\\":
                if self.i + 1 >= self.n:
                    raise UnparseableOperation("shell command ends with a backslash")
                nxt = self.s[self.i + 1]
                self.i += 2
                if nxt != "\n":
                    b.literal(nxt, quoted=True)
            elif c == "'":
                end = self.s.find("'", self.i + 1)
                if end == -1:
                    raise UnparseableOperation("unbalanced single quote in shell command")
                b.literal(self.s[self.i + 1 : end], quoted=True)
                b.quoted = True
                self.i = end + 1
            elif c == '"':
                self.i += 1
                self.read_double_quoted(b)
            elif c == "$":
                self.read_dollar(b, quoted=False)
            elif c == "`":
                self.read_backticks(b, quoted=False)
            else:
                b.literal(c, quoted=False)
                self.i += 1
        skeleton = "".join(b.skeleton)
        glob = any(ch in skeleton for ch in "*?") or ("[" in skeleton and "]" in skeleton.split("[", 1)[1])
        brace = bool(_BRACE.search(skeleton))
        if glob:
            self.state.features.add("glob")
        if brace:
            self.state.features.add("brace_expansion")
        pattern = glob or brace
        return _Word(
            value="".join(b.value),
            raw=self.s[start : self.i],
            quoted=b.quoted,
            opaque=b.opaque,
            splittable=b.unquoted_expansion or pattern,
            pattern=pattern,
        )

    def read_double_quoted(self, b: _WordBuilder) -> None:
        b.quoted = True
        while True:
            if self.i >= self.n:
                raise UnparseableOperation("unbalanced double quote in shell command")
            c = self.s[self.i]
            if c == '"':
                self.i += 1
                return
            if c == "\\":
                nxt = self.peek(1)
                if nxt == "":
                    raise UnparseableOperation("unbalanced double quote in shell command")
                if nxt in '$`"\\':
                    b.literal(nxt, quoted=True)
                    self.i += 2
                elif nxt == "\n":
                    self.i += 2
                else:
                    b.literal("\\", quoted=True)
                    self.i += 1
            elif c == "$":
                self.read_dollar(b, quoted=True)
            elif c == "`":
                self.read_backticks(b, quoted=True)
            else:
                b.literal(c, quoted=True)
                self.i += 1

    def read_dollar(self, b: _WordBuilder, quoted: bool) -> None:
        start = self.i
        nxt = self.peek(1)
        features = self.state.features
        if nxt == "(":
            if self.peek(2) == "(":
                raise UnparseableOperation("arithmetic expansion '$((...))' is not supported")
            features.add("command_substitution")
            self.i += 2
            self.nested()
            self.parse_list("substitution", closer=True)
            self.depth -= 1
            b.expansion(self.s[start : self.i], quoted)
        elif nxt == "{":
            end = self.i + 2
            while end < self.n and self.s[end] != "}":
                if self.s[end] in "$`'\"\\{\n":
                    raise UnparseableOperation("parameter expansion '${...}' is too complex to parse safely")
                end += 1
            if end >= self.n:
                raise UnparseableOperation("unterminated '${' in shell command")
            self.i = end + 1
            features.add("variable_expansion")
            b.expansion(self.s[start : self.i], quoted)
        elif nxt == "'" and not quoted:
            self.i += 2
            b.literal(self.read_ansi_c(), quoted=True)
        elif nxt == '"' and not quoted:
            self.i += 2  # $"..." (locale translation) is a double-quoted string
            self.read_double_quoted(b)
        elif nxt and (nxt.isascii() and (nxt.isalpha() or nxt == "_")):
            match = _NAME.match(self.s, self.i + 1)
            assert match is not None
            self.i = match.end()
            features.add("variable_expansion")
            b.expansion(self.s[start : self.i], quoted)
        elif nxt and (nxt in "@*#?$!-" or (nxt.isascii() and nxt.isdigit())):
            self.i += 2
            features.add("variable_expansion")
            b.expansion(self.s[start : self.i], quoted)
        else:
            b.literal("$", quoted)
            self.i += 1

    def read_ansi_c(self) -> str:
        """The body of ``$'...'`` (opening quote consumed), decoded as bash does."""
        simple = {
            "a": "\a",
            "b": "\b",
            "e": "\x1b",
            "E": "\x1b",
            "f": "\f",
            "n": "\n",
            "r": "\r",
            "t": "\t",
            "v": "\v",
            "\\": "\\",
            "'": "'",
            '"': '"',
            "?": "?",
        }
        backslash = "\\"
        out: list[str] = []
        while True:
            if self.i >= self.n:
                raise UnparseableOperation("unbalanced $'...' quote in shell command")
            c = self.s[self.i]
            if c == "'":
                self.i += 1
                text = "".join(out)
                # bash ends the string at the first NUL it decodes: r$'m\0x' is "rm"
                return text.split("\x00", 1)[0]
            if c != "\\":
                out.append(c)
                self.i += 1
                continue
            esc = self.peek(1)
            self.i += 2
            if esc in simple:
                out.append(simple[esc])
            elif esc and esc in "01234567":
                digits = re.match(r"[0-7]{1,3}", self.s[self.i - 1 :])
                assert digits is not None
                self.i += len(digits.group()) - 1
                out.append(chr(int(digits.group(), 8) & 0xFF))
            elif esc in ("x", "u", "U"):
                width = {"x": 2, "u": 4, "U": 8}[esc]
                digits = re.match(rf"[0-9a-fA-F]{{1,{width}}}", self.s[self.i :])
                if digits is None:
                    raise UnparseableOperation(f"unsupported escape '\\{esc}' in $'...'")
                self.i += len(digits.group())
                code = int(digits.group(), 16)
                if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    raise UnparseableOperation("invalid code point in $'...'")
                out.append(chr(code))
            else:
                raise UnparseableOperation(f"unsupported escape {backslash + esc!r} in $'...'")

    def read_backticks(self, b: _WordBuilder, quoted: bool) -> None:
        start = self.i
        j = self.i + 1
        inner: list[str] = []
        while True:
            if j >= self.n:
                raise UnparseableOperation("unbalanced backquote in shell command")
            c = self.s[j]
            if c == "`":
                break
            if c == "\\" and j + 1 < self.n and self.s[j + 1] in "$`\\":
                inner.append(self.s[j + 1])
                j += 2
                continue
            inner.append(c)
            j += 1
        self.i = j + 1
        self.state.features.add("command_substitution")
        sub = _Parser("".join(inner), self.state, self.depth + 1)
        sub.parse_all("substitution")
        b.expansion(self.s[start : self.i], quoted)


# ---------------------------------------------------------------------------------------------
# programs


def _finish(draft: _Draft, state: _State, depth: int) -> ShellCommand:
    argv = tuple(w.value for w in draft.words)
    program = ""
    effective: tuple[str, ...] = ()
    if draft.words:
        program = _program_name(draft.words[0], "the command")
        effective = tuple(_effective(draft.words, state, depth))
    if any(p in _EVAL or p in _SOURCE for p in effective):
        state.features.add("eval")
    return ShellCommand(
        argv=argv,
        program=program,
        effective_programs=effective,
        operator=draft.operator,
        redirects=tuple(draft.redirects),
        assignments=tuple(draft.assignments),
        context=draft.context,
    )


def _program_name(word: _Word, what: str) -> str:
    if word.opaque:
        raise UnparseableOperation(
            f"the program of {what} is a variable or substitution ({word.raw[:60]!r}):"
            " what runs cannot be known"
        )
    if word.pattern:
        raise UnparseableOperation(
            f"the program of {what} is a glob or brace pattern ({word.raw[:60]!r}): what runs cannot be known"
        )
    name = posixpath.basename(word.value)
    if not name:
        raise UnparseableOperation(f"the program of {what} is empty or a directory ({word.raw[:60]!r})")
    return name


@dataclass(frozen=True)
class _Wrapper:
    """How a program that runs another program takes its options."""

    short_value: str = ""  # short options with a value
    short_flags: str = ""  # short options without one
    short_optional: str = ""  # short options whose value, if any, is attached (xargs -i[R])
    long_value: frozenset[str] = frozenset()
    long_flags: frozenset[str] = frozenset()
    positionals: int = 0  # arguments before the command (timeout DURATION, chroot NEWROOT)
    assignments: bool = False  # NAME=VALUE words may precede the command
    numeric: bool = False  # nice -10
    shell_option: str = ""  # a short option whose value is a shell command (flock -c)
    shell_long: str = ""
    stop_flags: str = ""  # flags meaning no command runs (command -v)
    join_as_shell: bool = False  # the rest is joined and run by a shell (watch, ssh)
    exec_flag: str = ""  # ... unless this flag is given (watch -x)


def _fs(names: str) -> frozenset[str]:
    return frozenset(names.split())


_WRAPPERS: dict[str, _Wrapper] = {
    "sudo": _Wrapper(
        short_value="ugCDhprtTU",
        short_flags="AbEeHiKklnPSsVvB",
        stop_flags="eKlVv",  # edit files, list, validate, version: no command runs
        long_value=_fs(
            "--user --group --close-from --chdir --host --prompt --role --type --command-timeout --other-user"
        ),
        long_flags=_fs(
            "--askpass --background --bell --preserve-env --edit --set-home --login --remove-timestamp "
            "--reset-timestamp --list --non-interactive --preserve-groups --stdin --shell --validate "
            "--version --help"
        ),
        assignments=True,
    ),
    "doas": _Wrapper(short_value="uC", short_flags="Lns"),
    "env": _Wrapper(
        short_value="uCS",
        short_flags="i0v",
        long_value=_fs("--unset --chdir --split-string"),
        long_flags=_fs(
            "--ignore-environment --null --debug --default-signal --ignore-signal --block-signal "
            "--list-signal-handling"
        ),
        assignments=True,
        shell_option="S",
        shell_long="--split-string",
    ),
    "xargs": _Wrapper(
        short_value="adEILnPs",
        short_flags="0prtx",
        short_optional="eil",
        long_value=_fs("--arg-file --delimiter --max-args --max-procs --max-chars --process-slot-var"),
        long_flags=_fs(
            "--null --no-run-if-empty --interactive --verbose --exit --open-tty --show-limits --eof "
            "--replace --max-lines --help --version"
        ),
    ),
    "timeout": _Wrapper(
        short_value="ks",
        short_flags="v",
        long_value=_fs("--kill-after --signal"),
        long_flags=_fs("--preserve-status --foreground --verbose"),
        positionals=1,
    ),
    "nice": _Wrapper(short_value="n", long_value=_fs("--adjustment"), numeric=True),
    "nohup": _Wrapper(),
    "stdbuf": _Wrapper(short_value="ioe", long_value=_fs("--input --output --error")),
    "ionice": _Wrapper(short_value="cnpPu", short_flags="t", long_value=_fs("--class --classdata")),
    "chroot": _Wrapper(long_value=_fs("--userspec --groups"), long_flags=_fs("--skip-chdir"), positionals=1),
    "setsid": _Wrapper(short_flags="cfw", long_flags=_fs("--ctty --fork --wait")),
    "exec": _Wrapper(short_value="a", short_flags="cl"),
    "command": _Wrapper(short_flags="pVv", stop_flags="vV"),
    "builtin": _Wrapper(),
    "time": _Wrapper(
        short_value="fo",
        short_flags="apqv",
        long_value=_fs("--format --output"),
        long_flags=_fs("--append --portability --quiet --verbose"),
    ),
    "watch": _Wrapper(
        short_value="nq",
        short_flags="bcegptxhrw",
        short_optional="d",
        long_value=_fs("--interval --equexit"),
        long_flags=_fs(
            "--beep --color --no-color --errexit --chgexit --no-title --precise --exec --no-wrap --no- "
            "rerun --differences"
        ),
        join_as_shell=True,
        exec_flag="x",
    ),
    "flock": _Wrapper(
        short_value="wEc",
        short_flags="sxunohFv",
        long_value=_fs("--timeout --conflict-exit-code --command"),
        long_flags=_fs("--shared --exclusive --unlock --nonblock --close --no-fork --verbose"),
        positionals=1,
        shell_option="c",
        shell_long="--command",
    ),
    "ssh": _Wrapper(
        short_value="BbcDEeFIiJLlmOoPpQRSWw",
        short_flags="46AaCfGgKkMNnqsTtVvXxYy",
        positionals=1,
        join_as_shell=True,
    ),
    "unbuffer": _Wrapper(short_flags="p"),
    "busybox": _Wrapper(),
    "toybox": _Wrapper(),
}
_SHELL_LONG_VALUE = _fs("--rcfile --init-file")


def _effective(words: list[_Word], state: _State, depth: int) -> list[str]:
    if depth > MAX_DEPTH:
        raise UnparseableOperation("shell command is nested too deeply")
    program = _program_name(words[0], "the command")
    out = [program]
    rest = words[1:]
    if program in _SHELLS:
        text = _shell_c_string(program, rest)
        if text is not None:
            out.extend(_effective_of_text(text, state, depth))
    elif program in ("su", "runuser"):
        text = _su_command(rest)
        if text is not None:
            out.extend(_effective_of_text(text, state, depth))
    elif program in _EVAL:
        if rest:
            out.extend(_effective_of_text(_joined(rest, program), state, depth))
    elif program == "find":
        for inner in _find_exec(rest):
            out.extend(_effective(inner, state, depth + 1))
    elif program in _WRAPPERS:
        kind, inner_words, text = _unwrap(program, _WRAPPERS[program], rest)
        if kind == "argv" and inner_words:
            if "{}" in inner_words[0].value:  # xargs -I{} {}: the program comes from the input
                raise UnparseableOperation(f"the program {program} runs comes from its input")
            out.extend(_effective(inner_words, state, depth + 1))
        elif kind == "shell" and text is not None:
            out.extend(_effective_of_text(text, state, depth))
    return out


def _effective_of_text(text: str, state: _State, depth: int) -> list[str]:
    inner = _parse(text, depth + 1)
    state.features.update(inner.features)
    return [p for c in inner.commands for p in c.effective_programs]


def _joined(words: list[_Word], program: str) -> str:
    for w in words:
        if w.splittable:
            raise UnparseableOperation(f"{program} runs a string built from an expansion: cannot be known")
    return " ".join(w.value for w in words)


def _unwrap(program: str, spec: _Wrapper, rest: list[_Word]) -> tuple[str, list[_Word], str | None]:
    """Skip a wrapper's options: ("argv", command words, None) or ("shell", [], text)."""
    i = 0
    exec_mode = False

    def unknown(option: str) -> UnparseableOperation:
        return UnparseableOperation(
            f"unknown option {option[:40]!r} for {program}: cannot tell which program it runs"
        )

    def take_value(index: int) -> _Word:
        if index >= len(rest):
            raise UnparseableOperation(f"{program}: option is missing its value")
        word = rest[index]
        if word.splittable:
            raise UnparseableOperation(f"{program}: an unquoted expansion may shift the command it runs")
        return word

    while i < len(rest):
        word = rest[i]
        v = word.value
        looks_like_option = v.startswith("-") and len(v) > 1
        # Only an assignment's value (FOO="$X") may be an expansion here: anything else could be
        # an option, the program, or (unquoted) split into several words.
        if (word.opaque or word.pattern) and (
            word.splittable or not (spec.assignments and _ASSIGNMENT.match(word.raw))
        ):
            raise UnparseableOperation(
                f"{program}: {word.raw[:60]!r} is an expansion where an option or the program is expected"
            )
        if v == "--":
            i += 1
            break
        if v.startswith("--") and len(v) > 2:
            name, eq, _ = v.partition("=")
            if name in spec.long_value:
                if not eq:
                    value = take_value(i + 1)
                    i += 1
                    if name == spec.shell_long:
                        return "shell", [], value.value
                elif name == spec.shell_long:
                    return "shell", [], v.partition("=")[2]
            elif name not in spec.long_flags:
                raise unknown(name)
            if name == "--exec" and spec.exec_flag:
                exec_mode = True
            i += 1
            continue
        if looks_like_option:
            if spec.numeric and v[1:].isdigit():
                i += 1
                continue
            j = 1
            while j < len(v):
                ch = v[j]
                if ch in spec.short_value:
                    attached = v[j + 1 :]
                    if not attached:
                        attached = take_value(i + 1).value
                        i += 1
                    if ch == spec.shell_option and spec.shell_option:
                        return "shell", [], attached
                    break
                if ch in spec.short_optional:
                    break
                if ch in spec.stop_flags and spec.stop_flags:
                    return "none", [], None
                if ch not in spec.short_flags:
                    raise unknown(f"-{ch}")
                if ch == spec.exec_flag and spec.exec_flag:
                    exec_mode = True
                j += 1
            i += 1
            continue
        if spec.assignments and _ASSIGNMENT.match(word.raw):
            i += 1
            continue
        break
    for _ in range(spec.positionals):
        if i >= len(rest):
            return "none", [], None
        take_value(i)
        i += 1
    inner = rest[i:]
    if not inner:
        return "none", [], None
    if spec.shell_option and inner[0].value == f"-{spec.shell_option}":  # flock LOCKFILE -c CMD
        if len(inner) < 2:
            raise UnparseableOperation(f"{program} -{spec.shell_option} without a command string")
        return "shell", [], inner[1].value
    if spec.join_as_shell and not exec_mode:
        return "shell", [], _joined(inner, program)
    return "argv", inner, None


def _shell_c_string(program: str, rest: list[_Word]) -> str | None:
    """The command string of ``sh -c STRING`` (options may be combined: ``bash -lc``)."""
    has_c = False
    i = 0
    while i < len(rest):
        word = rest[i]
        v = word.value
        if word.opaque and (word.splittable or v.startswith(("-", "+"))):
            raise UnparseableOperation(f"{program}: an expansion where an option is expected")
        if v in ("--", "-"):
            i += 1
            break
        if v.startswith("--") and len(v) > 2:
            if v.partition("=")[0] in _SHELL_LONG_VALUE and "=" not in v:
                i += 1
            i += 1
            continue
        if v[:1] in "-+" and len(v) > 1:
            for ch in v[1:]:
                if ch == "c":
                    has_c = True
                elif ch in "oO":
                    i += 1  # -o option / -O shopt take a value
            i += 1
            continue
        break
    if not has_c:
        return None  # a script file, or commands from standard input
    if i >= len(rest):
        raise UnparseableOperation(f"{program} -c without a command string")
    return rest[i].value


def _su_command(rest: list[_Word]) -> str | None:
    for i, word in enumerate(rest):
        v = word.value
        if v.startswith("--command="):
            return v.partition("=")[2]
        if v == "--command" or (v.startswith("-") and not v.startswith("--") and v.endswith("c")):
            if i + 1 >= len(rest):
                raise UnparseableOperation("su -c without a command string")
            return rest[i + 1].value
    return None


def _find_exec(rest: list[_Word]) -> list[list[_Word]]:
    commands: list[list[_Word]] = []
    i = 0
    while i < len(rest):
        if rest[i].value in ("-exec", "-execdir", "-ok", "-okdir"):
            j = i + 1
            while j < len(rest) and rest[j].value not in (";", "+"):
                j += 1
            inner = rest[i + 1 : j]
            if not inner:
                raise UnparseableOperation("find -exec without a command")
            if "{}" in inner[0].value:
                raise UnparseableOperation("the program find -exec runs comes from the files it finds")
            commands.append(inner)
            i = j
        i += 1
    return commands
