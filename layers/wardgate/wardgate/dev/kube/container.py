"""The cluster double's fake container: an in-memory filesystem, the pod's environment and a tiny shell.

What ``kubectl exec``, ``kubectl cp`` and ``kubectl attach`` reach in the double (``streams.py`` carries
the bytes). No real process is ever spawned: commands are interpreted here, on the in-memory files of
the pod. Enough of a POSIX shell for the tools and tests that drive a container: builtins
(``echo``, ``cat``, ``ls``, ``env``, ``tar`` as ``kubectl cp`` runs it both ways, ...), ``sh -c``
scripts with ``;``, ``&&``, ``||``, ``|``, ``>``/``>>``/``<``/``2>&1`` redirects, ``$VAR``, ``$(...)``
and ``$((...))`` expansion, ``for``/``if``/``while``/``until``, and an interactive shell that behaves
like one behind a pty when the exec asks for a tty. Not there: functions, ``case``, here-documents,
background jobs (``&`` runs in the foreground), ``set -e`` (accepted, without effect).
"""

from __future__ import annotations

import ast
import base64
import dataclasses
import fnmatch
import io
import posixpath
import re
import tarfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

Output = Callable[[bytes], None]

# Commands only a shell has: an exec cannot start them as programs.
_SHELL_BUILTINS = frozenset({"cd", "exit", "export", "read", "set", ":"})
# The binary directories a path-qualified command may name (/bin/ls, /usr/bin/env ...).
_BIN_DIRS = ("/bin", "/usr/bin", "/usr/local/bin", "/sbin", "/usr/sbin")


class ExecNotFound(Exception):
    """The exec's argv[0] is no command of the container: the runtime refuses to start it."""

    def __init__(self, command: str) -> None:
        # The message a containerd/runc node gives (kubectl prints it after "Internal error occurred").
        super().__init__(
            "failed to exec in container: failed to start exec: OCI runtime exec failed: exec failed: "
            f'unable to start container process: exec: "{command}": executable file not found in $PATH: '
            "unknown"
        )


class FileSystemError(Exception):
    """A failed file operation; the message is the strerror text (``No such file or directory``)."""


NO_ENTRY = "No such file or directory"
IS_DIRECTORY = "Is a directory"
NOT_DIRECTORY = "Not a directory"
EXISTS = "File exists"


@dataclass
class Entry:
    data: bytes | None  # None: a directory
    mode: int
    mtime: float


class MemoryFileSystem:
    """Absolute, normalised POSIX paths to files and directories, kept in memory."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._entries: dict[str, Entry] = {"/": Entry(None, 0o755, time.time())}

    @staticmethod
    def resolve(cwd: str, path: str) -> str:
        joined = posixpath.normpath(posixpath.join(cwd, path))
        return "/" + joined.lstrip("/")  # normpath keeps a leading "//"; "/.." is "/"

    def entry(self, path: str) -> Entry | None:
        with self.lock:
            return self._entries.get(path)

    def is_dir(self, path: str) -> bool:
        found = self.entry(path)
        return found is not None and found.data is None

    def is_file(self, path: str) -> bool:
        found = self.entry(path)
        return found is not None and found.data is not None

    def read(self, path: str) -> bytes:
        found = self.entry(path)
        if found is None:
            raise FileSystemError(NO_ENTRY)
        if found.data is None:
            raise FileSystemError(IS_DIRECTORY)
        return found.data

    def _parent_must_be_dir(self, path: str) -> None:
        parent = self._entries.get(posixpath.dirname(path))
        if parent is None:
            raise FileSystemError(NO_ENTRY)
        if parent.data is not None:
            raise FileSystemError(NOT_DIRECTORY)

    def write(self, path: str, data: bytes, *, append: bool = False, mode: int = 0o644) -> None:
        with self.lock:
            found = self._entries.get(path)
            if found is not None and found.data is None:
                raise FileSystemError(IS_DIRECTORY)
            self._parent_must_be_dir(path)
            if found is not None and append:
                found.data = (found.data or b"") + data
                found.mtime = time.time()
            else:
                self._entries[path] = Entry(data, found.mode if found else mode, time.time())

    def mkdir(self, path: str, *, parents: bool = False, mode: int = 0o755) -> None:
        with self.lock:
            found = self._entries.get(path)
            if found is not None:
                if parents and found.data is None:
                    return
                raise FileSystemError(EXISTS)
            if parents and posixpath.dirname(path) not in self._entries:
                self.mkdir(posixpath.dirname(path), parents=True)
            self._parent_must_be_dir(path)
            self._entries[path] = Entry(None, mode, time.time())

    def children(self, path: str) -> list[str]:
        with self.lock:
            if not self.is_dir(path):
                raise FileSystemError(NOT_DIRECTORY if path in self._entries else NO_ENTRY)
            prefix = path.rstrip("/") + "/"
            return sorted(
                name[len(prefix) :]
                for name in self._entries
                if name.startswith(prefix) and name != "/" and "/" not in name[len(prefix) :]
            )

    def walk(self, path: str) -> Iterator[str]:
        """The path and, below a directory, every path under it, parents before children."""
        yield path
        if self.is_dir(path):
            for child in self.children(path):
                yield from self.walk(posixpath.join(path, child))

    def remove(self, path: str, *, recursive: bool = False) -> None:
        with self.lock:
            found = self._entries.get(path)
            if found is None:
                raise FileSystemError(NO_ENTRY)
            if found.data is None and not recursive:
                raise FileSystemError(IS_DIRECTORY)
            if path == "/":
                raise FileSystemError("Device or resource busy")
            for name in list(self.walk(path)):
                self._entries.pop(name, None)


# -- input -------------------------------------------------------------------------------------------


class Input:
    """A process's stdin: blocking reads that end at EOF or when the session stops."""

    def read(self, size: int = 65536) -> bytes:
        raise NotImplementedError

    def read_all(self) -> bytes:
        chunks = []
        while chunk := self.read():
            chunks.append(chunk)
        return b"".join(chunks)

    def readline(self) -> bytes:
        raise NotImplementedError


class BytesInput(Input):
    """Fixed input: a pipe's buffered output, a file for ``<``, or nothing."""

    def __init__(self, data: bytes = b"") -> None:
        self._buffer = io.BytesIO(data)

    def read(self, size: int = 65536) -> bytes:
        return self._buffer.read(size)

    def readline(self) -> bytes:
        return self._buffer.readline()


class StreamInput(Input):
    """Bytes arriving from the client (the exec's stdin channel), fed by the stream's reader thread."""

    def __init__(self, stopped: threading.Event) -> None:
        self._buffer = bytearray()
        self._eof = False
        self._changed = threading.Condition()
        self._stopped = stopped
        self.interrupted = threading.Event()  # a ^C arrived on a tty (ends a running sleep)

    def feed(self, data: bytes, *, tty: bool = False) -> None:
        with self._changed:
            self._buffer += data
            if tty and b"\x03" in data:
                self.interrupted.set()
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def wake(self) -> None:
        """Ends every blocked read (the session stopped)."""
        with self._changed:
            self._changed.notify_all()

    def _wait(self, ready: Callable[[], bool]) -> None:
        with self._changed:
            while not ready() and not self._eof and not self._stopped.is_set():
                self._changed.wait(timeout=1.0)

    def read(self, size: int = 65536) -> bytes:
        self._wait(lambda: bool(self._buffer))
        with self._changed:
            chunk = bytes(self._buffer[:size])
            del self._buffer[:size]
            return chunk

    def readline(self) -> bytes:
        self._wait(lambda: b"\n" in self._buffer)
        with self._changed:
            end = self._buffer.find(b"\n")
            end = len(self._buffer) if end < 0 else end + 1
            line = bytes(self._buffer[:end])
            del self._buffer[:end]
            return line


@dataclass
class ProcessIO:
    """Where a command reads and writes, and whether it must stop (the client left, the double stops)."""

    stdin: Input
    stdout: Output
    stderr: Output
    stopped: threading.Event
    tty: bool = False
    interrupted: threading.Event = field(default_factory=threading.Event)
    # [columns, rows] of the client's terminal: the resize channel updates it in place.
    terminal: list[int] = field(default_factory=lambda: [80, 24])

    def pause(self, seconds: float) -> bool:
        """Sleeps; False when interrupted (^C on a tty) or stopped first."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.stopped.wait(min(left, 0.05)) or self.interrupted.is_set():
                return False
        return True


# -- the shell's syntax ------------------------------------------------------------------------------


class ShellSyntaxError(Exception):
    pass


class ShellExit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True)
class Word:
    # (text, how): "lit" is taken as is (single quotes, escapes); "exp" gets $VAR expansion; "glob" also
    # marks unquoted text, where * and ? match files; "sub" is a $(...) script, replaced by its output.
    parts: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Operator:
    text: str


Token = Word | Operator
_FD_OPERATORS = ("2>&1", "1>&2", ">&2", "2>")  # only where a word starts: "a2>b" is a word and ">"
_PLAIN_OPERATORS = ("&&", "||", ">>", ";", "|", ">", "<", "&", "\n")  # longest first; "2>" is a word's


def tokenize(text: str) -> list[Token]:
    """Words and operators of a script, quotes resolved (POSIX shell token rules, simplified)."""
    tokens: list[Token] = []
    parts: list[tuple[str, str]] = []
    current: list[str] = []
    started = False  # a word is open (even an empty quoted one: "")

    def flush_text(how: str) -> None:
        if current:
            parts.append(("".join(current), how))
            current.clear()

    def end_word() -> None:
        nonlocal started
        flush_text("glob")
        if started:
            tokens.append(Word(tuple(parts)))
        parts.clear()
        started = False

    i = 0
    while i < len(text):
        char = text[i]
        if char == "#" and not started:
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        if char in " \t":
            end_word()
            i += 1
            continue
        fd_operator = "" if started else next((op for op in _FD_OPERATORS if text.startswith(op, i)), "")
        if fd_operator:
            end_word()
            tokens.append(Operator(">&2" if fd_operator == "1>&2" else fd_operator))
            i += len(fd_operator)
            continue
        operator = next((op for op in _PLAIN_OPERATORS if text.startswith(op, i)), "")
        if operator:
            end_word()
            tokens.append(Operator(operator))
            i += len(operator)
            continue
        started = True
        if text.startswith("$(", i):
            flush_text("glob")
            part, i = _substitution(text, i)
            parts.append(part)
        elif char == "'":
            flush_text("glob")
            end = text.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("Unterminated quoted string")
            parts.append((text[i + 1 : end], "lit"))
            i = end + 1
        elif char == '"':
            flush_text("glob")
            i += 1
            quoted: list[str] = []
            while i < len(text) and text[i] != '"':
                if text.startswith("$(", i):
                    if quoted:
                        parts.append(("".join(quoted), "exp"))
                        quoted.clear()
                    part, i = _substitution(text, i)
                    parts.append(part)
                    continue
                if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in '"\\$`\n':
                    if quoted:
                        parts.append(("".join(quoted), "exp"))
                        quoted.clear()
                    parts.append((text[i + 1], "lit"))
                    i += 2
                    continue
                quoted.append(text[i])
                i += 1
            if i >= len(text):
                raise ShellSyntaxError("Unterminated quoted string")
            parts.append(("".join(quoted), "exp"))
            i += 1
        elif char == "\\" and i + 1 < len(text):
            flush_text("glob")
            if text[i + 1] != "\n":
                parts.append((text[i + 1], "lit"))
            i += 2
        else:
            current.append(char)
            i += 1
    end_word()
    return tokens


_ARITHMETIC: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.FloorDiv: lambda a, b: int(a / b),  # C division: truncates toward zero
    ast.Div: lambda a, b: int(a / b),
    ast.Mod: lambda a, b: a - b * int(a / b),
}


def _evaluate(node: ast.expr, env: dict[str, str]) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name):  # a bare variable name counts as its value, 0 when unset or not a number
        value = env.get(node.id, "0").strip()
        return int(value) if value.lstrip("-").isdigit() else 0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _evaluate(node.operand, env)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _evaluate(node.left, env), _evaluate(node.right, env)
        if abs(left) > 1 << 64 or abs(right) > 1 << 64:
            raise ValueError("out of range")
        return int(_ARITHMETIC[type(node.op)](left, right))
    raise ValueError("not an arithmetic expression")


def _substitution(text: str, start: int) -> tuple[tuple[str, str], int]:
    """The ``$((arithmetic))`` or ``$(script)`` at ``start``, as a word part, and where it ends."""
    if text.startswith("$((", start):
        end = _closing_paren(text, start + 3)
        if not text.startswith(")", end + 1):
            raise ShellSyntaxError("Syntax error: Missing '))'")
        return (text[start + 3 : end], "math"), end + 2
    end = _closing_paren(text, start + 2)
    return (text[start + 2 : end], "sub"), end + 1


def _closing_paren(text: str, start: int) -> int:
    """The index of the ``)`` closing a ``$(`` whose body starts at ``start`` (quotes and nesting kept)."""
    depth, i = 1, start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char in "'\"":
            end = text.find(char, i + 1)
            if end < 0:
                break
            i = end + 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ShellSyntaxError('Syntax error: end of file unexpected (expecting ")")')


@dataclass
class SimpleCommand:
    """One stage of a pipeline: words, or a compound command (for, if, while), with its redirects."""

    words: list[Word] = field(default_factory=list)
    redirects: list[tuple[str, Word | None]] = field(default_factory=list)
    compound: ForLoop | IfClause | WhileLoop | None = None


Pipeline = list[SimpleCommand]


@dataclass
class ForLoop:
    name: str
    items: list[Word] | None  # None: "for NAME; do" loops over the positional parameters
    body: ScriptList


@dataclass
class IfClause:
    branches: list[tuple[ScriptList, ScriptList]]  # (condition, body) of the if and each elif
    otherwise: ScriptList | None


@dataclass
class WhileLoop:
    condition: ScriptList
    body: ScriptList
    until: bool


ScriptList = list[tuple[str, Pipeline]]  # (connector before each pipeline: ";", "&&" or "||", pipeline)
_SEPARATORS = (";", "\n", "&")
_REDIRECTS = (">", ">>", "<", "2>", "2>&1", ">&2")


def _reserved(token: Token | None) -> str | None:
    """The reserved word a token is, if it is one (only unquoted words are)."""
    if isinstance(token, Word) and len(token.parts) == 1 and token.parts[0][1] == "glob":
        text = token.parts[0][0]
        if text in ("for", "in", "do", "done", "if", "then", "elif", "else", "fi", "while", "until"):
            return text
    return None


class _Parser:
    """Recursive descent over tokens: lists, pipelines, and for/if/while/until compound commands."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self) -> Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> Token | None:
        token = self.peek()
        self.position += 1
        return token

    @staticmethod
    def unexpected(token: Token | None) -> ShellSyntaxError:
        if token is None:
            return ShellSyntaxError("Syntax error: end of file unexpected")
        text = token.text if isinstance(token, Operator) else "".join(part for part, _ in token.parts)
        return ShellSyntaxError(f'Syntax error: "{text.strip() or "newline"}" unexpected')

    def parse_list(self, stops: tuple[str, ...] = ()) -> tuple[ScriptList, str | None]:
        """Nodes until one of ``stops`` starts a command (consumed and returned) or the tokens end."""
        items: ScriptList = []
        connector = ";"
        while True:
            token = self.peek()
            word = _reserved(token)
            if token is None or (word is not None and word in stops):
                if connector in ("&&", "||"):
                    raise self.unexpected(token)
                if token is None and stops:
                    raise ShellSyntaxError(f'Syntax error: end of file unexpected (expecting "{stops[-1]}")')
                self.take()
                return items, word
            if isinstance(token, Operator) and token.text in _SEPARATORS:
                # A newline may follow && or || and start a list; ; and & need a command before them.
                if token.text != "\n" and (connector in ("&&", "||") or not items):
                    raise self.unexpected(token)
                self.take()
                continue
            if isinstance(token, Operator) and token.text in ("&&", "||", "|"):
                raise self.unexpected(token)
            items.append((connector, self.parse_pipeline()))
            connector = ";"
            after = self.peek()
            if isinstance(after, Operator) and after.text in ("&&", "||"):
                connector = after.text
                self.take()
            elif isinstance(after, Operator) and after.text in _SEPARATORS:
                self.take()
            elif after is not None and _reserved(after) not in stops:
                raise self.unexpected(after)

    def body(self, stops: tuple[str, ...]) -> ScriptList:
        items, _ = self.parse_list(stops)
        if not items:
            raise self.unexpected(self.tokens[self.position - 1])
        return items

    def parse_for(self) -> ForLoop:
        self.take()
        name = self.take()
        if not isinstance(name, Word) or len(name.parts) != 1 or not name.parts[0][0].isidentifier():
            raise ShellSyntaxError("Syntax error: Bad for loop variable")
        while isinstance(self.peek(), Operator) and self.peek() == Operator("\n"):
            self.take()
        items: list[Word] | None = None
        if _reserved(self.peek()) == "in":
            self.take()
            items = []
            while isinstance(self.peek(), Word):
                word = self.take()
                assert isinstance(word, Word)
                items.append(word)
        while isinstance(self.peek(), Operator) and self.peek() in (Operator(";"), Operator("\n")):
            self.take()
        if _reserved(self.take()) != "do":
            raise ShellSyntaxError('Syntax error: "do" expected')
        return ForLoop(name.parts[0][0], items, self.body(("done",)))

    def parse_if(self) -> IfClause:
        self.take()
        branches: list[tuple[ScriptList, ScriptList]] = []
        otherwise: ScriptList | None = None
        while True:
            condition = self.body(("then",))
            items, stop = self.parse_list(("elif", "else", "fi"))
            if not items:
                raise self.unexpected(self.tokens[self.position - 1])
            branches.append((condition, items))
            if stop == "elif":
                continue
            if stop == "else":
                otherwise = self.body(("fi",))
            return IfClause(branches, otherwise)

    def parse_pipeline(self) -> Pipeline:
        pipeline = [self.parse_stage()]
        while self.peek() == Operator("|"):
            self.take()
            while self.peek() == Operator("\n"):  # a pipeline may continue on the next line
                self.take()
            pipeline.append(self.parse_stage())
        return pipeline

    def parse_stage(self) -> SimpleCommand:
        stage = SimpleCommand()
        word = _reserved(self.peek())
        if word == "for":
            stage.compound = self.parse_for()
        elif word == "if":
            stage.compound = self.parse_if()
        elif word in ("while", "until"):
            self.take()
            condition = self.body(("do",))
            stage.compound = WhileLoop(condition, self.body(("done",)), until=word == "until")
        elif word is not None:
            raise self.unexpected(self.peek())
        while (token := self.peek()) is not None:
            if isinstance(token, Word):
                if stage.compound is not None:
                    raise self.unexpected(token)
                stage.words.append(token)
            elif token.text in (">", ">>", "<", "2>"):
                self.take()
                target = self.peek()
                if not isinstance(target, Word):
                    raise ShellSyntaxError('Syntax error: newline unexpected (expecting "word")')
                stage.redirects.append((token.text, target))
            elif token.text in ("2>&1", ">&2"):
                stage.redirects.append((token.text, None))
            else:
                break
            self.take()
        if stage.compound is None and not (stage.words or stage.redirects):
            raise self.unexpected(self.peek())
        return stage


def parse(tokens: list[Token]) -> ScriptList:
    """A script's nodes, each with the connector before it (``;``, ``&&`` or ``||``)."""
    items, _ = _Parser(tokens).parse_list()
    return items


_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*)|([0-9?#$]))")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


# -- the container -----------------------------------------------------------------------------------


def _os_release() -> bytes:
    return (
        b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
        b'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
        b'HOME_URL="https://www.debian.org/"\n'
    )


class Container:
    """One container of a pod in the double: its files, environment and the commands it runs."""

    def __init__(self, namespace: str, pod: str, name: str, env: dict[str, str]) -> None:
        self.namespace = namespace
        self.pod = pod
        self.name = name
        self.fs = MemoryFileSystem()
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME": pod,
            "HOME": "/root",
            "KUBERNETES_SERVICE_HOST": "10.96.0.1",
            "KUBERNETES_SERVICE_PORT": "443",
            **env,
        }
        for directory in ("/app", "/bin", "/etc", "/root", "/tmp", "/usr/bin", "/var/log"):  # noqa: S108
            self.fs.mkdir(directory, parents=True)
        self.fs.write("/etc/hostname", f"{pod}\n".encode())
        self.fs.write("/etc/os-release", _os_release())
        self.fs.write(
            "/app/config.yaml",
            b"# application settings\nlisten: 0.0.0.0:8080\ndatabase:\n  host: db.prod.svc\n"
            b"  user: app\n  password: s3cr3t-Passw0rd!\n",
        )

    def exec(self, argv: list[str], process: ProcessIO) -> int:
        """Runs an exec's argv (no shell in between unless argv names one). Raises ExecNotFound."""
        if not argv:
            raise ExecNotFound("")
        env = dict(self.env)
        if process.tty:
            env.setdefault("TERM", "xterm")
            # A pty merges stderr into stdout and turns each "\n" into "\r\n" (the onlcr line discipline).
            terminal = process.stdout

            def to_terminal(data: bytes) -> None:
                terminal(data.replace(b"\n", b"\r\n"))

            process = dataclasses.replace(process, stdout=to_terminal, stderr=to_terminal)
        shell = Shell(self, env, process)
        name = _command_name(argv[0])
        if name is None or name not in shell.commands or name in _SHELL_BUILTINS:
            raise ExecNotFound(argv[0])
        try:
            return shell.run_argv([name, *argv[1:]], process)
        except ShellExit as done:
            return done.status


def _discard(data: bytes) -> None:
    pass


def _command_name(argv0: str) -> str | None:
    if "/" not in argv0:
        return argv0
    directory, name = posixpath.split(argv0)
    return name if directory in _BIN_DIRS else None


class Shell:
    """A tiny POSIX-ish shell over a container's files: the interpreter for scripts and commands."""

    def __init__(self, container: Container, env: dict[str, str], process: ProcessIO) -> None:
        self.container = container
        self.fs = container.fs
        self.env = env
        self.cwd = "/"
        self.status = 0
        self.positional: list[str] = ["sh"]
        self.process = process
        self.commands: dict[str, Callable[[list[str], ProcessIO], int]] = {
            "echo": self._echo,
            "cat": self._cat,
            "ls": self._ls,
            "env": self._env,
            "printenv": self._printenv,
            "hostname": lambda args, p: self._say(p, self.container.pod),
            "id": lambda args, p: self._say(p, "uid=0(root) gid=0(root) groups=0(root)"),
            "whoami": lambda args, p: self._say(p, "root"),
            "pwd": lambda args, p: self._say(p, self.cwd),
            "uname": self._uname,
            "date": lambda args, p: self._say(p, time.strftime("%a %b %e %H:%M:%S UTC %Y", time.gmtime())),
            "sleep": self._sleep,
            "stty": self._stty,
            "read": self._read,
            "true": lambda args, p: 0,
            ":": lambda args, p: 0,
            "false": lambda args, p: 1,
            "exit": self._exit,
            "cd": self._cd,
            "export": self._export,
            "set": self._set,
            "mkdir": self._mkdir,
            "rm": self._rm,
            "touch": self._touch,
            "test": self._test,
            "[": self._test,
            "tar": self._tar,
            "grep": self._grep,
            "head": self._head,
            "tail": self._tail,
            "wc": self._wc,
            "sh": self._sh,
            "bash": self._sh,
        }

    # -- running -------------------------------------------------------------------------------------

    def run_argv(self, argv: list[str], process: ProcessIO) -> int:
        command = self.commands.get(argv[0])
        if command is None:
            process.stderr(f"sh: 1: {argv[0]}: not found\n".encode())
            return 127
        try:
            return command(argv, process)
        except FileSystemError as error:  # a path the command did not check itself
            return self._fail(process, f"{argv[0]}: {error}")
        except ValueError:  # a malformed number or option the command did not check itself
            return self._fail(process, f"{argv[0]}: invalid argument", 2)

    def run_script(self, script: str, process: ProcessIO) -> int:
        """Runs a script; ``exit`` raises ShellExit to the caller that owns the shell."""
        try:
            items = parse(tokenize(script))
        except ShellSyntaxError as error:
            process.stderr(f"sh: 1: {error}\n".encode())
            self.status = 2
            return 2
        try:
            return self._run_list(items, process)
        except ShellSyntaxError as error:  # a bad expansion ends a non-interactive script, as in dash
            process.stderr(f"sh: 1: {error}\n".encode())
            self.status = 2
            return 2

    def _run_list(self, items: ScriptList, process: ProcessIO) -> int:
        for connector, node in items:
            if process.stopped.is_set() or process.interrupted.is_set():
                break
            if (connector == "&&" and self.status != 0) or (connector == "||" and self.status == 0):
                continue
            self.status = self._run_pipeline(node, process)
        return self.status

    def _run_compound(self, node: ForLoop | IfClause | WhileLoop, process: ProcessIO) -> int:
        if isinstance(node, IfClause):
            for condition, body in node.branches:
                if self._run_list(condition, process) == 0:
                    return self._run_list(body, process)
            return self._run_list(node.otherwise, process) if node.otherwise else 0
        status = 0
        if isinstance(node, ForLoop):
            values = (
                self.positional[1:]
                if node.items is None
                else [value for word in node.items for value in self._expand(word, process)]
            )
            for value in values:
                if process.stopped.is_set() or process.interrupted.is_set():
                    break
                self.env[node.name] = value
                status = self._run_list(node.body, process)
            return status
        # while/until: a loop the client can end (^C on a tty, leaving), never the double's own thread
        while not (process.stopped.is_set() or process.interrupted.is_set()):
            if (self._run_list(node.condition, process) == 0) == node.until:
                break
            status = self._run_list(node.body, process)
        return status

    def _run_pipeline(self, pipeline: Pipeline, process: ProcessIO) -> int:
        stdin = process.stdin
        status = 0
        for index, command in enumerate(pipeline):
            last = index == len(pipeline) - 1
            captured = bytearray()
            stdout: Output = process.stdout if last else captured.extend
            stage = dataclasses.replace(process, stdin=stdin, stdout=stdout)
            status = self._run_simple(command, stage)
            if not last:
                stdin = BytesInput(bytes(captured))
        return status

    def _expand(self, word: Word, process: ProcessIO) -> list[str]:
        text: list[str] = []
        globbed = False
        for part, how in word.parts:
            if how == "lit":
                text.append(part)
                continue
            if how == "sub":
                text.append(self._substitute(part, process))
                continue
            if how == "math":
                text.append(str(self._arithmetic(part)))
                continue
            text.append(_VARIABLE.sub(self._variable, part))
            globbed = globbed or (how == "glob" and any(c in part for c in "*?"))
        value = "".join(text)
        if globbed:
            matches = self._glob(value)
            if matches:
                return matches
        return [value]

    def _substitute(self, script: str, process: ProcessIO) -> str:
        """``$(script)``: its output without trailing newlines; it runs in a subshell (its ``cd``,
        variables and ``exit`` stay there), its status becomes ``$?``."""
        captured = bytearray()
        child = Shell(self.container, dict(self.env), process)
        child.cwd, child.positional = self.cwd, self.positional
        try:
            self.status = child.run_script(script, dataclasses.replace(process, stdout=captured.extend))
        except ShellExit as done:
            self.status = done.status
        return captured.decode(errors="replace").rstrip("\n")

    def _arithmetic(self, expression: str) -> int:
        """``$((expression))``: integers, variables, + - * / % and parentheses (a bad one is an error)."""
        expanded = _VARIABLE.sub(self._variable, expression)
        try:
            return _evaluate(ast.parse(expanded.strip() or "0", mode="eval").body, self.env)
        except (SyntaxError, ValueError, ZeroDivisionError, RecursionError) as error:
            raise ShellSyntaxError(f"arithmetic expression: {expression.strip()}") from error

    def _variable(self, match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name == "?":
            return str(self.status)
        if name == "$":
            return "1"
        if name == "#":
            return str(len(self.positional) - 1)
        if name.isdigit():
            index = int(name)
            return self.positional[index] if index < len(self.positional) else ""
        return self.env.get(name, "")

    def _glob(self, pattern: str) -> list[str]:
        directory, leaf = posixpath.split(pattern)
        base = self.fs.resolve(self.cwd, directory or ".")
        try:
            names = self.fs.children(base)
        except FileSystemError:
            return []
        return [
            posixpath.join(directory, name) if directory else name
            for name in names
            if fnmatch.fnmatchcase(name, leaf) and not (name.startswith(".") and not leaf.startswith("."))
        ]

    def _run_simple(self, command: SimpleCommand, process: ProcessIO) -> int:
        """A stage of a pipeline: assignments, redirects, then the command (or compound command)."""
        argv = [value for word in command.words for value in self._expand(word, process)]
        assignments: dict[str, str] = {}
        while argv and _ASSIGNMENT.match(argv[0]):
            name, _, value = argv.pop(0).partition("=")
            assignments[name] = value
        if not argv and command.compound is None:
            self.env.update(assignments)
            if not command.redirects:
                return 0
        stdout, stderr, stdin = process.stdout, process.stderr, process.stdin
        files: list[tuple[str, bytearray, bool]] = []  # (path, captured, append): written at the end
        for operator, target in command.redirects:
            if target is None:
                if operator == "2>&1":
                    stderr = stdout
                else:  # >&2
                    stdout = stderr
                continue
            path = self.fs.resolve(self.cwd, " ".join(self._expand(target, process)))
            if path == "/dev/null":
                if operator == "<":
                    stdin = BytesInput()
                elif operator == "2>":
                    stderr = _discard
                else:
                    stdout = _discard
                continue
            try:
                if operator == "<":
                    stdin = BytesInput(self.fs.read(path))
                    continue
                captured = bytearray()
                append = operator == ">>"
                self.fs.write(path, b"", append=True)  # creates it (or fails) before the command runs
                if not append:
                    self.fs.write(path, b"")
                files.append((path, captured, append))
                if operator == "2>":
                    stderr = captured.extend
                else:
                    stdout = captured.extend
            except FileSystemError as error:
                process.stderr(f"sh: 1: cannot open {path}: {error}\n".encode())
                return 2
        if not argv and command.compound is None:
            return 0
        saved = dict(self.env)
        self.env.update(assignments)
        try:
            redirected = dataclasses.replace(process, stdin=stdin, stdout=stdout, stderr=stderr)
            if command.compound is not None:
                status = self._run_compound(command.compound, redirected)
            else:
                status = self.run_argv(argv, redirected)
        finally:
            if assignments:
                self.env.clear()
                self.env.update(saved)
            for path, captured, _append in files:
                self.fs.write(path, bytes(captured), append=True)
        return status

    def interactive(self, process: ProcessIO) -> int:
        """A shell reading commands from stdin: a prompt, echo and CRLF on a tty, as a pty gives."""
        if not process.tty:
            while not process.stopped.is_set():
                command_line = process.stdin.readline()
                if not command_line:
                    return self.status
                self.run_script(command_line.decode(errors="replace"), process)
            return self.status
        process.stdout(b"# ")
        line = bytearray()
        escape = False
        while not process.stopped.is_set():
            chunk = process.stdin.read(4096)
            if not chunk:
                return self.status
            for byte in chunk:
                if escape:  # skip a CSI sequence (arrow keys): ESC [ ... final byte
                    escape = not (0x40 <= byte <= 0x7E and byte != ord("["))
                    continue
                if byte == 0x1B:
                    escape = True
                elif byte in (0x0D, 0x0A):
                    process.stdout(b"\n")
                    # A ^C already typed after this line (still unread here) interrupts it at once.
                    self.run_script(line.decode(errors="replace"), process)
                    line.clear()
                    process.stdout(b"# ")
                elif byte in (0x7F, 0x08):
                    if line:
                        line.pop()
                        process.stdout(b"\b \b")
                elif byte == 0x03:
                    line.clear()
                    process.interrupted.clear()  # this ^C is spent
                    process.stdout(b"^C\n# ")
                elif byte == 0x04:
                    if not line:
                        process.stdout(b"exit\n")
                        return self.status
                elif byte >= 0x20 or byte == 0x09:
                    line.append(byte)
                    process.stdout(bytes([byte]))
        return self.status

    # -- commands ------------------------------------------------------------------------------------

    @staticmethod
    def _say(process: ProcessIO, text: str) -> int:
        process.stdout(f"{text}\n".encode())
        return 0

    @staticmethod
    def _fail(process: ProcessIO, text: str, status: int = 1) -> int:
        process.stderr(f"{text}\n".encode())
        return status

    def _path(self, name: str) -> str:
        return self.fs.resolve(self.cwd, name)

    def _sh(self, args: list[str], process: ProcessIO) -> int:
        child = Shell(self.container, dict(self.env), process)
        child.cwd = self.cwd
        rest = args[1:]
        while rest and rest[0] in ("-e", "-x", "-i", "-l", "--login", "-s"):
            rest = rest[1:]
        try:
            if rest and rest[0] == "-c":
                if len(rest) < 2:
                    return self._fail(process, f"{args[0]}: -c: option requires an argument", 2)
                child.positional = rest[2:] or [args[0]]
                return child.run_script(rest[1], process)
            if rest:
                try:
                    script = self.fs.read(self._path(rest[0])).decode(errors="replace")
                except FileSystemError:
                    return self._fail(process, f"{args[0]}: 0: cannot open {rest[0]}: No such file", 2)
                child.positional = rest
                return child.run_script(script, process)
            return child.interactive(process)
        except ShellExit as done:
            return done.status

    def _exit(self, args: list[str], process: ProcessIO) -> int:
        try:
            raise ShellExit(int(args[1]) & 0xFF if len(args) > 1 else self.status)
        except ValueError:
            raise ShellExit(2) from None

    def _echo(self, args: list[str], process: ProcessIO) -> int:
        newline = True
        words = args[1:]
        if words and words[0] == "-n":
            newline, words = False, words[1:]
        process.stdout((" ".join(words) + ("\n" if newline else "")).encode())
        return 0

    def _cat(self, args: list[str], process: ProcessIO) -> int:
        status = 0
        for name in args[1:] or ["-"]:
            if name == "-":
                while chunk := process.stdin.read():
                    process.stdout(chunk)
                continue
            try:
                process.stdout(self.fs.read(self._path(name)))
            except FileSystemError as error:
                status = self._fail(process, f"cat: {name}: {error}")
        return status

    def _ls(self, args: list[str], process: ProcessIO) -> int:
        flags = "".join(a[1:] for a in args[1:] if a.startswith("-") and len(a) > 1)
        names = [a for a in args[1:] if not a.startswith("-") or a == "-"] or ["."]
        status = 0
        lines: list[str] = []
        for index, name in enumerate(names):
            path = self._path(name)
            entry = self.fs.entry(path)
            if entry is None:
                status = self._fail(process, f"ls: cannot access '{name}': {NO_ENTRY}", 2)
                continue
            if entry.data is not None or "d" in flags:
                lines.append(self._ls_line(path, name, flags))
                continue
            listing = self.fs.children(path)
            if "a" in flags:
                listing = [".", "..", *listing]
            else:
                listing = [child for child in listing if not child.startswith(".")]
            if len(names) > 1:
                lines.append(("\n" if index else "") + f"{name}:")
            lines.extend(self._ls_line(posixpath.join(path, child), child, flags) for child in listing)
        if lines:
            process.stdout(("\n".join(lines) + "\n").encode())
        return status

    def _ls_line(self, path: str, name: str, flags: str) -> str:
        if "l" not in flags:
            return name
        entry = self.fs.entry(posixpath.normpath(path)) or Entry(None, 0o755, time.time())
        kind = "d" if entry.data is None else "-"
        permissions = "".join(
            letter if entry.mode & (1 << (8 - bit)) else "-" for bit, letter in enumerate("rwxrwxrwx")
        )
        size = 4096 if entry.data is None else len(entry.data)
        stamp = time.strftime("%b %e %H:%M", time.gmtime(entry.mtime))
        return f"{kind}{permissions} 1 root root {size:>5} {stamp} {name}"

    def _env(self, args: list[str], process: ProcessIO) -> int:
        if len(args) > 1:  # env NAME=value ... command
            rest = args[1:]
            extra: dict[str, str] = {}
            while rest and _ASSIGNMENT.match(rest[0]):
                name, _, value = rest.pop(0).partition("=")
                extra[name] = value
            if rest:
                child = Shell(self.container, {**self.env, **extra}, process)
                child.cwd = self.cwd
                return child.run_argv(rest, process)
            process.stdout("".join(f"{k}={v}\n" for k, v in {**self.env, **extra}.items()).encode())
            return 0
        process.stdout("".join(f"{k}={v}\n" for k, v in self.env.items()).encode())
        return 0

    def _printenv(self, args: list[str], process: ProcessIO) -> int:
        if len(args) == 1:
            return self._env(args[:1], process)
        status = 0
        for name in args[1:]:
            if name in self.env:
                process.stdout(f"{self.env[name]}\n".encode())
            else:
                status = 1
        return status

    def _uname(self, args: list[str], process: ProcessIO) -> int:
        if "-a" in args:
            return self._say(process, f"Linux {self.container.pod} 6.1.0-wardgate #1 SMP x86_64 GNU/Linux")
        return self._say(process, "Linux")

    def _sleep(self, args: list[str], process: ProcessIO) -> int:
        try:
            seconds = sum(float(a.rstrip("s")) for a in args[1:])
        except ValueError:
            return self._fail(process, f"sleep: invalid time interval '{args[1]}'")
        if not args[1:]:
            return self._fail(process, "sleep: missing operand")
        return 0 if process.pause(seconds) else 130

    def _read(self, args: list[str], process: ProcessIO) -> int:
        """``read [-r] NAME...``: one line of stdin into variables (on a tty, CR ends it: icrnl)."""
        names = [a for a in args[1:] if not a.startswith("-")] or ["REPLY"]
        line = bytearray()
        ended = False
        while not process.stopped.is_set():
            byte = process.stdin.read(1)
            if not byte:
                break
            if byte == b"\n" or (process.tty and byte == b"\r"):
                ended = True
                break
            line += byte
        words = line.decode(errors="replace").split(maxsplit=len(names) - 1)
        for index, name in enumerate(names):
            self.env[name] = words[index] if index < len(words) else ""
        return 0 if ended else 1

    def _stty(self, args: list[str], process: ProcessIO) -> int:
        if not process.tty:
            return self._fail(process, "stty: 'standard input': Inappropriate ioctl for device")
        if args[1:] == ["size"]:
            columns, rows = process.terminal
            return self._say(process, f"{rows} {columns}")
        return 0  # settings (raw, -echo ...) are accepted and change nothing here

    def _cd(self, args: list[str], process: ProcessIO) -> int:
        target = args[1] if len(args) > 1 else self.env.get("HOME", "/")
        path = self._path(target)
        if not self.fs.is_dir(path):
            return self._fail(process, f"sh: 1: cd: can't cd to {target}", 2)
        self.cwd = path
        return 0

    def _export(self, args: list[str], process: ProcessIO) -> int:
        for assignment in args[1:]:
            name, equals, value = assignment.partition("=")
            if equals:
                self.env[name] = value
        return 0

    def _set(self, args: list[str], process: ProcessIO) -> int:
        """``set -- ARGS`` sets the positional parameters; options (``-e``, ``-u``, ``-x`` ...) are accepted
        and change nothing here; ``set`` alone lists the variables."""
        if len(args) == 1:
            process.stdout("".join(f"{k}='{v}'\n" for k, v in sorted(self.env.items())).encode())
        elif "--" in args:
            self.positional = [self.positional[0], *args[args.index("--") + 1 :]]
        return 0

    def _mkdir(self, args: list[str], process: ProcessIO) -> int:
        parents = any(a.startswith("-") and "p" in a for a in args[1:])
        status = 0
        for name in (a for a in args[1:] if not a.startswith("-")):
            try:
                self.fs.mkdir(self._path(name), parents=parents)
            except FileSystemError as error:
                status = self._fail(process, f"mkdir: cannot create directory '{name}': {error}")
        return status

    def _rm(self, args: list[str], process: ProcessIO) -> int:
        flags = "".join(a[1:] for a in args[1:] if a.startswith("-"))
        recursive, force = "r" in flags.lower(), "f" in flags
        status = 0
        for name in (a for a in args[1:] if not a.startswith("-")):
            try:
                self.fs.remove(self._path(name), recursive=recursive)
            except FileSystemError as error:
                if not (force and str(error) == NO_ENTRY):
                    status = self._fail(process, f"rm: cannot remove '{name}': {error}")
        return status

    def _touch(self, args: list[str], process: ProcessIO) -> int:
        status = 0
        for name in (a for a in args[1:] if not a.startswith("-")):
            try:
                self.fs.write(self._path(name), b"", append=True)
            except FileSystemError as error:
                status = self._fail(process, f"touch: cannot touch '{name}': {error}")
        return status

    def _test(self, args: list[str], process: ProcessIO) -> int:
        operands = args[1:]
        if args[0] == "[":
            if not operands or operands[-1] != "]":
                return self._fail(process, "sh: 1: [: missing ]", 2)
            operands = operands[:-1]
        negate = bool(operands) and operands[0] == "!"
        if negate:
            operands = operands[1:]
        result: bool
        if not operands:
            result = False
        elif len(operands) == 1:
            result = operands[0] != ""
        elif len(operands) == 2 and operands[0] in ("-d", "-f", "-e", "-s", "-z", "-n"):
            flag, value = operands
            path = self._path(value) if value else ""
            entry = self.fs.entry(path) if path else None
            result = {
                "-d": entry is not None and entry.data is None,
                "-f": entry is not None and entry.data is not None,
                "-e": entry is not None,
                "-s": entry is not None and bool(entry.data),
                "-z": value == "",
                "-n": value != "",
            }[flag]
        elif len(operands) == 3 and operands[1] in ("=", "==", "!="):
            result = (operands[0] == operands[2]) != (operands[1] == "!=")
        else:
            return self._fail(process, f"sh: 1: {args[0]}: unexpected operator", 2)
        return 0 if result != negate else 1

    def _grep(self, args: list[str], process: ProcessIO) -> int:
        options = [a for a in args[1:] if a.startswith("-") and len(a) > 1]
        rest = [a for a in args[1:] if not (a.startswith("-") and len(a) > 1)]
        if not rest:
            return self._fail(process, "Usage: grep [OPTION]... PATTERNS [FILE]...", 2)
        flags = "".join(o[1:] for o in options)
        try:
            pattern = re.compile(
                rest[0] if "F" not in flags else re.escape(rest[0]), re.I if "i" in flags else 0
            )
        except re.error as error:
            return self._fail(process, f"grep: {error}", 2)
        sources = rest[1:] or ["-"]
        matched = False
        for name in sources:
            try:
                data = process.stdin.read_all() if name == "-" else self.fs.read(self._path(name))
            except FileSystemError as error:
                self._fail(process, f"grep: {name}: {error}", 2)
                continue
            for line in data.decode(errors="replace").splitlines():
                if bool(pattern.search(line)) != ("v" in flags):
                    matched = True
                    prefix = f"{name}:" if len(sources) > 1 else ""
                    process.stdout(f"{prefix}{line}\n".encode())
        return 0 if matched else 1

    def _head(self, args: list[str], process: ProcessIO) -> int:
        count, names, rest = 10, [], args[1:]
        while rest:
            item = rest.pop(0)
            if item == "-n" and rest:
                count = int(rest.pop(0))
            elif item.startswith("-") and item[1:].isdigit():
                count = int(item[1:])
            else:
                names.append(item)
        try:
            data = process.stdin.read_all() if not names else self.fs.read(self._path(names[0]))
        except FileSystemError as error:
            return self._fail(process, f"head: cannot open '{names[0]}' for reading: {error}")
        process.stdout(b"".join(data.splitlines(keepends=True)[:count]))
        return 0

    def _tail(self, args: list[str], process: ProcessIO) -> int:
        """``tail -c+N`` (what ``kubectl cp --retries`` pipes tar into), ``-c N``, ``-n N``, ``-n +N``."""
        unit, count, names, rest = "n", "10", [], list(args[1:])
        while rest:
            item = rest.pop(0)
            if item[:2] in ("-c", "-n"):
                unit, count = item[1], item[2:] or (rest.pop(0) if rest else "")
            else:
                names.append(item)
        try:
            number = int(count.lstrip("+"))
            data = process.stdin.read_all() if not names else self.fs.read(self._path(names[0]))
        except ValueError:
            return self._fail(process, f"tail: invalid number: '{count}'")
        except FileSystemError as error:
            return self._fail(process, f"tail: cannot open '{names[0]}' for reading: {error}")
        if unit == "c":
            process.stdout(data[number - 1 :] if count.startswith("+") else data[-number:] if number else b"")
        else:
            lines = data.splitlines(keepends=True)
            chosen = lines[number - 1 :] if count.startswith("+") else lines[-number:] if number else []
            process.stdout(b"".join(chosen))
        return 0

    def _wc(self, args: list[str], process: ProcessIO) -> int:
        data = process.stdin.read_all()
        if "-l" in args:
            return self._say(process, str(data.count(b"\n")))
        if "-c" in args:
            return self._say(process, str(len(data)))
        lines = data.count(b"\n")
        return self._say(process, f"{lines} {len(data.split())} {len(data)}")

    # -- tar, as kubectl cp runs it: "tar cf - <path>" from the pod, "tar -xmf - -C <dir>" into it --------

    def _tar(self, args: list[str], process: ProcessIO) -> int:
        mode = ""
        archive = "-"
        directory = self.cwd
        verbose = gzip = False
        names: list[str] = []
        rest = list(args[1:])
        first = True
        while rest:
            item = rest.pop(0)
            if item.startswith("--"):
                if item.startswith("--directory="):
                    directory = self._path(item.partition("=")[2])
                elif item.startswith("--file="):
                    archive = item.partition("=")[2]
                continue  # --no-same-owner, --no-same-permissions ...: no meaning in memory
            if item.startswith("-") or (first and item and not item.startswith("/")):
                letters = item.lstrip("-")
                for index, letter in enumerate(letters):
                    if letter in "cxt":
                        mode = letter
                    elif letter == "v":
                        verbose = True
                    elif letter == "z":
                        gzip = True
                    elif letter in "fC":
                        value = letters[index + 1 :] or (rest.pop(0) if rest else "")
                        if letter == "f":
                            archive = value
                        else:
                            directory = self._path(value)
                        break
                    elif letter in "mpo":
                        pass  # mtimes, permissions, ownership: not kept
                    else:
                        return self._fail(process, f"tar: invalid option -- '{letter}'", 2)
            else:
                names.append(item)
            first = False
        if not mode:
            return self._fail(process, "tar: You must specify one of the '-Acdtrux' options", 2)
        if not self.fs.is_dir(directory):
            return self._fail(process, f"tar: {directory}: Cannot open: {NO_ENTRY}", 2)
        if mode == "c":
            return self._tar_create(names, archive, directory, verbose, gzip, process)
        return self._tar_read(mode, archive, directory, verbose, gzip, process)

    def _tar_create(
        self, names: list[str], archive: str, directory: str, verbose: bool, gzip: bool, process: ProcessIO
    ) -> int:
        if not names:
            return self._fail(process, "tar: Cowardly refusing to create an empty archive", 2)
        buffer = io.BytesIO()
        status = 0
        warned = False
        # Verbose names go to stderr when the archive itself is written to stdout, as GNU tar does.
        report = process.stderr if archive == "-" else process.stdout
        with tarfile.open(fileobj=buffer, mode="w:gz" if gzip else "w", format=tarfile.GNU_FORMAT) as out:
            for name in names:
                root = self.fs.resolve(directory, name)
                if not self.fs.entry(root):
                    status = self._fail(process, f"tar: {name}: Cannot stat: {NO_ENTRY}", 2)
                    continue
                if name.startswith("/") and not warned:
                    process.stderr(b"tar: Removing leading `/' from member names\n")
                    warned = True
                for path in self.fs.walk(root):
                    member = posixpath.normpath(posixpath.join(name, posixpath.relpath(path, root)))
                    member = member.lstrip("/")
                    entry = self.fs.entry(path)
                    if entry is None:
                        continue
                    info = tarfile.TarInfo(member + ("/" if entry.data is None else ""))
                    info.mode, info.mtime, info.uname, info.gname = (
                        entry.mode,
                        int(entry.mtime),
                        "root",
                        "root",
                    )
                    if entry.data is None:
                        info.type = tarfile.DIRTYPE
                        out.addfile(info)
                    else:
                        info.size = len(entry.data)
                        out.addfile(info, io.BytesIO(entry.data))
                    if verbose:
                        report(f"{info.name}\n".encode())
        data = buffer.getvalue()
        if archive == "-":
            process.stdout(data)
        else:
            try:
                self.fs.write(self._path(archive), data)
            except FileSystemError as error:
                return self._fail(process, f"tar: {archive}: Cannot open: {error}", 2)
        if status:
            self._fail(process, "tar: Exiting with failure status due to previous errors", status)
        return status

    def _tar_read(
        self, mode: str, archive: str, directory: str, verbose: bool, gzip: bool, process: ProcessIO
    ) -> int:
        try:
            data = process.stdin.read_all() if archive == "-" else self.fs.read(self._path(archive))
        except FileSystemError as error:
            return self._fail(process, f"tar: {archive}: Cannot open: {error}", 2)
        if not data:
            return self._fail(process, "tar: This does not look like a tar archive", 2)
        status = 0
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as source:
                for member in source:
                    if verbose or mode == "t":
                        process.stdout(f"{member.name}{'/' if member.isdir() else ''}\n".encode())
                    if mode == "t":
                        continue
                    target = self.fs.resolve(directory, member.name.lstrip("/"))
                    if not _within(directory, target):
                        status = self._fail(process, f"tar: {member.name}: Member name contains '..'", 2)
                        continue
                    try:
                        if member.isdir():
                            self.fs.mkdir(target, parents=True)
                        elif member.isfile():
                            self.fs.mkdir(posixpath.dirname(target), parents=True)
                            extracted = source.extractfile(member)
                            content = extracted.read() if extracted else b""
                            self.fs.write(target, content, mode=member.mode & 0o7777)
                        else:
                            status = self._fail(process, f"tar: {member.name}: Cannot create: unsupported", 2)
                    except FileSystemError as error:
                        status = self._fail(process, f"tar: {member.name}: Cannot open: {error}", 2)
        except tarfile.TarError:
            self._fail(process, "tar: This does not look like a tar archive", 2)
            return self._fail(process, "tar: Exiting with failure status due to previous errors", 2)
        return status


def _within(directory: str, path: str) -> bool:
    return directory == "/" or path == directory or path.startswith(directory.rstrip("/") + "/")


# -- containers of the double's pods -----------------------------------------------------------------

_containers: weakref.WeakKeyDictionary[Any, dict[tuple[str, str, str, str], Container]] = (
    weakref.WeakKeyDictionary()
)
_containers_lock = threading.Lock()


def _data_of(obj: Any, kind: str) -> dict[str, str]:
    """A ConfigMap's ``data``, or a Secret's ``data`` decoded (a value that is not base64 is skipped)."""
    data: dict[str, str] = {}
    for key, value in ((obj or {}).get("data") or {}).items():
        if kind != "Secret":
            data[key] = str(value)
            continue
        try:
            data[key] = base64.b64decode(str(value), validate=True).decode(errors="replace")
        except ValueError:
            continue
    return data


def container_env(
    pod: dict[str, Any], spec: dict[str, Any], lookup: Callable[[str, str], Any]
) -> dict[str, str]:
    """A container's environment from its spec, as the kubelet builds it: ``envFrom`` sources first, then
    ``env`` (``value``, or ``valueFrom`` a Secret or ConfigMap key or a pod field). ``lookup(kind, name)``
    returns a ConfigMap or Secret of the pod's namespace, or None (the variable is then left out)."""
    env: dict[str, str] = {}
    for source in spec.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        for kind, field_name in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(field_name)
            if ref:
                values = _data_of(lookup(kind, ref.get("name", "")), kind)
                env.update({prefix + key: value for key, value in values.items()})
    metadata, status = pod.get("metadata", {}), pod.get("status", {})
    fields = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": pod.get("spec", {}).get("nodeName", ""),
        "spec.serviceAccountName": pod.get("spec", {}).get("serviceAccountName", ""),
        "status.podIP": status.get("podIP", ""),
        "status.hostIP": status.get("hostIP", ""),
    }
    for item in spec.get("env") or []:
        name = item.get("name")
        if not name:
            continue
        if "value" in item:
            env[name] = str(item.get("value") or "")
            continue
        source = item.get("valueFrom") or {}
        for kind, field_name in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            ref = source.get(field_name)
            if ref:
                value = _data_of(lookup(kind, ref.get("name", "")), kind).get(ref.get("key", ""))
                if value is not None:
                    env[name] = value
        field_ref = source.get("fieldRef")
        if field_ref:
            env[name] = str(fields.get(field_ref.get("fieldPath", ""), ""))
    return env


def container_for(
    owner: object, pod: dict[str, Any], name: str, lookup: Callable[[str, str], Any] | None = None
) -> Container:
    """The container ``name`` of ``pod`` in the double ``owner`` (its store): made on first use and kept,
    so files written by one exec (``kubectl cp``) are there for the next, until the pod is replaced."""
    metadata = pod.get("metadata", {})
    namespace, pod_name = metadata.get("namespace", ""), metadata.get("name", "")
    key = (namespace, pod_name, metadata.get("uid", ""), name)
    with _containers_lock:
        known = _containers.setdefault(owner, {})
        found = known.get(key)
        if found is None:
            specs: list[dict[str, Any]] = pod.get("spec", {}).get("containers", [])
            spec = next((c for c in specs if c.get("name") == name), {})
            env = container_env(pod, spec, lookup or (lambda kind, ref: None))
            found = known[key] = Container(namespace, pod_name, name, env)
        return found
