"""Shell command lines → the commands and programs they would run, failing closed."""

from __future__ import annotations

import json
import posixpath
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.shell_bypass_corpus import SHELL_BYPASS_CORPUS
from wardgate.operations import UnparseableOperation
from wardgate.operations.shell import FEATURES, MAX_TEXT_BYTES, ShellOperation, parse_shell


@pytest.mark.parametrize(("text", "expected"), SHELL_BYPASS_CORPUS)
def test_bypass_corpus(text: str, expected: dict[str, Any]) -> None:
    if expected.get("unparseable"):
        with pytest.raises(UnparseableOperation) as info:
            parse_shell(text)
        assert info.value.reason
    else:
        op = parse_shell(text)
        missing = set(expected["programs"]) - set(op.programs)
        assert not missing, (missing, op.programs)


def test_bypass_corpus_is_large_enough() -> None:
    assert len(SHELL_BYPASS_CORPUS) >= 15
    assert sum(1 for _, e in SHELL_BYPASS_CORPUS if e.get("unparseable")) >= 10


def shape(op: ShellOperation) -> list[tuple[Any, ...]]:
    return [(c.argv, c.operator) for c in op.commands]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ls", [(("ls",), None)]),
        ("ls -la /tmp", [(("ls", "-la", "/tmp"), None)]),
        ("  ls\t-l  ", [(("ls", "-l"), None)]),
        ("a;b", [(("a",), ";"), (("b",), None)]),
        ("a ; b ;", [(("a",), ";"), (("b",), None)]),
        ("a && b || c", [(("a",), "&&"), (("b",), "||"), (("c",), None)]),
        ("a|b|c", [(("a",), "|"), (("b",), "|"), (("c",), None)]),
        ("a |& b", [(("a",), "|"), (("b",), None)]),
        ("a & b", [(("a",), "&"), (("b",), None)]),
        ("a &", [(("a",), "&")]),
        ("a\nb\n", [(("a",), ";"), (("b",), None)]),
        ("a\n\n\nb", [(("a",), ";"), (("b",), None)]),
        ("a &&\nb", [(("a",), "&&"), (("b",), None)]),
        ("a |\n  b", [(("a",), "|"), (("b",), None)]),
        ("a \\\n b", [(("a", "b"), None)]),
        ("echo 'a b' \"c d\" e\\ f", [(("echo", "a b", "c d", "e f"), None)]),
        ("echo 'it''s' \"say \\\"hi\\\"\"", [(("echo", "its", 'say "hi"'), None)]),
        ('echo "\\a\\$x"', [(("echo", "\\a$x"), None)]),
        ("echo ''", [(("echo", ""), None)]),
        ("echo $HOME ${USER} $1 $@ $?", [(("echo", "$HOME", "${USER}", "$1", "$@", "$?"), None)]),
        ("echo '$HOME'", [(("echo", "$HOME"), None)]),
        ("echo $ 5$", [(("echo", "$", "5$"), None)]),
        ("echo a#b # comment", [(("echo", "a#b"), None)]),
        ("# only a comment", []),
        ("", []),
        ("   \n\n ", []),
        ("echo \"a;b\" 'c|d' e\\&f", [(("echo", "a;b", "c|d", "e&f"), None)]),
        ("echo $'a\\tb\\x41\\101\\u00e9'", [(("echo", "a\tbAAé"), None)]),
        ('echo $"hi $X"', [(("echo", "hi $X"), None)]),
        ("(a; b) && c", [(("a",), ";"), (("b",), "&&"), (("c",), None)]),
        ("{ a; b; }", [(("a",), ";"), (("b",), ";")]),
        ("echo $(date)", [(("date",), None), (("echo", "$(date)"), None)]),
        ('echo "$(a | b)"', [(("a",), "|"), (("b",), None), (("echo", "$(a | b)"), None)]),
        ("echo `date`", [(("date",), None), (("echo", "`date`"), None)]),
        (
            "echo `echo \\`date\\``",
            [(("date",), None), (("echo", "`date`"), None), (("echo", "`echo \\`date\\``"), None)],
        ),
        ("diff <(a) >(b)", [(("a",), None), (("b",), None), (("diff", "<(a)", ">(b)"), None)]),
        ("X=1 Y=2", [((), None)]),
        ("X=1 ls X=2", [(("ls", "X=2"), None)]),
        ('"X=1" ls', [(("X=1", "ls"), None)]),
    ],
)
def test_commands_and_operators(text: str, expected: list[tuple[Any, ...]]) -> None:
    assert shape(parse_shell(text)) == expected


@pytest.mark.parametrize(
    ("text", "program", "effective"),
    [
        ("rm x", "rm", ("rm",)),
        ("/usr/bin/env python3 x.py", "env", ("env", "python3")),
        ("./run.sh", "run.sh", ("run.sh",)),
        ("sudo -n -u deploy systemctl restart web", "sudo", ("sudo", "systemctl")),
        ("sudo -uroot ls", "sudo", ("sudo", "ls")),
        ("sudo --user=root ls", "sudo", ("sudo", "ls")),
        ("sudo --user root ls", "sudo", ("sudo", "ls")),
        ("sudo -l", "sudo", ("sudo",)),
        ("sudo -e /etc/hosts", "sudo", ("sudo",)),
        ("sudo", "sudo", ("sudo",)),
        ("env", "env", ("env",)),
        ('env -u HOME -C /tmp X=1 Y="$Z" ls', "env", ("env", "ls")),
        ("env -S 'rm -rf x'", "env", ("env", "rm")),
        ("xargs", "xargs", ("xargs",)),
        ("xargs -0 -n 1 -P4 rm -f", "xargs", ("xargs", "rm")),
        ("xargs -i rm {}", "xargs", ("xargs", "rm")),
        ("xargs --max-args=1 rm", "xargs", ("xargs", "rm")),
        ("timeout 10 curl x", "timeout", ("timeout", "curl")),
        ("timeout --signal=KILL -k 5 10 curl x", "timeout", ("timeout", "curl")),
        ("timeout 10", "timeout", ("timeout",)),
        ("nice curl x", "nice", ("nice", "curl")),
        ("nice -n 19 ionice -c3 tar c /", "nice", ("nice", "ionice", "tar")),
        ("nohup ./worker &", "nohup", ("nohup", "worker")),
        ("command -v rm", "command", ("command",)),
        ("command rm x", "command", ("command", "rm")),
        ("exec 3>&1", "exec", ("exec",)),
        ("chroot /mnt /bin/sh -c 'rm -rf /'", "chroot", ("chroot", "sh", "rm")),
        ("time ls", "time", ("time", "ls")),
        ("watch -x rm x", "watch", ("watch", "rm")),
        ("watch -n 5 df -h", "watch", ("watch", "df")),
        ("flock -n /tmp/l rm x", "flock", ("flock", "rm")),
        ("flock -c 'rm x' /tmp/l", "flock", ("flock", "rm")),
        ("ssh -i key -o StrictHostKeyChecking=no user@host uptime", "ssh", ("ssh", "uptime")),
        ("ssh host", "ssh", ("ssh",)),
        ("su -c 'id' deploy", "su", ("su", "id")),
        ("runuser -u x -- id", "runuser", ("runuser",)),
        ("bash script.sh", "bash", ("bash",)),
        ("bash", "bash", ("bash",)),
        ("bash -e -o pipefail -c 'a | b'", "bash", ("bash", "a", "b")),
        ("sh -xc 'a; b'", "sh", ("sh", "a", "b")),
        ("bash --norc --rcfile x -c a", "bash", ("bash", "a")),
        ("zsh -c 'echo $(id)'", "zsh", ("zsh", "id", "echo")),
        ("eval", "eval", ("eval",)),
        ("eval 'a && b'", "eval", ("eval", "a", "b")),
        (". ./env.sh", ".", (".",)),
        ("source ./env.sh", "source", ("source",)),
        ("find . -name x", "find", ("find",)),
        ("find . -exec a {} + -exec b {} \\;", "find", ("find", "a", "b")),
        ("busybox wget x", "busybox", ("busybox", "wget")),
        (
            "sudo env X=1 timeout 5 nice bash -c 'xargs rm'",
            "sudo",
            ("sudo", "env", "timeout", "nice", "bash", "xargs", "rm"),
        ),
    ],
)
def test_programs(text: str, program: str, effective: tuple[str, ...]) -> None:
    op = parse_shell(text)
    main = next(c for c in op.commands if c.context == "main")
    assert main.program == program
    assert main.effective_programs == effective


@pytest.mark.parametrize(
    ("text", "redirects"),
    [
        ("echo x > /etc/passwd", (">/etc/passwd",)),
        ("echo x>>log", (">>log",)),
        ("cmd 2>/dev/null", ("2>/dev/null",)),
        ("cmd 2>&1", ("2>&1",)),
        ("cmd >&2", (">&2",)),
        ("cmd &>all.log", ("&>all.log",)),
        ("cmd &>>all.log", ("&>>all.log",)),
        ("cmd < in > out", ("<in", ">out")),
        ("cmd >| f", (">|f",)),
        ("cmd <> f", ("<>f",)),
        ("cmd 3<&0", ("3<&0",)),
        ("cmd <<<'text'", ("<<<text",)),
        ("> /etc/passwd", (">/etc/passwd",)),
        ('cmd > "$F"', (">$F",)),
        ("cmd >'a b'", (">a b",)),
        ("cat <<'EOF'\nx\nEOF", ("<<EOF",)),
        ("cmd > >(tee log)", (">>(tee log)",)),
        ("cmd 2> /dev/null 1>&2", ("2>/dev/null", "1>&2")),
    ],
)
def test_redirects(text: str, redirects: tuple[str, ...]) -> None:
    op = parse_shell(text)
    main = next(c for c in op.commands if c.context == "main")
    assert main.redirects == redirects


def test_subshell_redirects_apply_to_its_commands() -> None:
    op = parse_shell("(a; b) > out")
    assert [c.redirects for c in op.commands] == [(">out",), (">out",)]
    assert [c.context for c in op.commands] == ["subshell", "subshell"]


@pytest.mark.parametrize(
    ("text", "features"),
    [
        ("ls", ()),
        ("echo $(id)", ("command_substitution",)),
        ("echo `id`", ("command_substitution",)),
        ("diff <(a) <(b)", ("process_substitution",)),
        ("(cd /; ls)", ("subshell",)),
        ("cat <<EOF\nhi\nEOF", ("heredoc",)),
        ("cat <<-EOF\n\thi\n\tEOF", ("heredoc",)),
        ("sleep 1 &", ("background",)),
        ("a && b", ()),
        ("echo x > f", ("redirect_write",)),
        ("echo x >> f", ("redirect_write",)),
        ("echo x &> f", ("redirect_write",)),
        ("echo x >&f", ("redirect_write",)),
        ("echo x 2>&1", ()),
        ("cat < f", ()),
        ("echo $HOME", ("variable_expansion",)),
        ('echo "${HOME}"', ("variable_expansion",)),
        ("echo '$HOME'", ()),
        ("ls *.py", ("glob",)),
        ("ls file?.txt", ("glob",)),
        ("ls [ab].txt", ("glob",)),
        ("ls '*.py'", ()),
        ("[ -f x ]", ()),
        ("echo {a,b}", ("brace_expansion",)),
        ("echo {1..5}", ("brace_expansion",)),
        ("echo '{a,b}'", ()),
        ("find . -exec ls {} \\;", ()),
        ("a\nb", ("newline_separated",)),
        ("a\n", ()),
        ("eval ls", ("eval",)),
        ("source x", ("eval",)),
        (". x", ("eval",)),
        ("sudo eval ls", ("eval",)),
        ("cat <<< hi", ("here_string",)),
        ("if a; then b; fi", ("compound_command",)),
        ("bash -c 'echo x > f'", ("redirect_write",)),
        (
            "echo $(echo `id` $X) > f &",
            ("background", "command_substitution", "redirect_write", "variable_expansion"),
        ),
    ],
)
def test_features(text: str, features: tuple[str, ...]) -> None:
    assert parse_shell(text).features == features


def test_heredoc_body_is_scanned_unless_the_delimiter_is_quoted() -> None:
    op = parse_shell("cat <<EOF > out\nhello $(id) `whoami` \\$(not)\nEOF\necho done")
    assert op.programs == ("cat", "id", "whoami", "echo")
    quoted = parse_shell("cat <<'EOF'\n$(id)\nEOF")
    assert quoted.programs == ("cat",)
    assert parse_shell('cat <<"EOF"\n$(id)\nEOF').programs == ("cat",)
    assert parse_shell("a <<X; b <<Y\nx\nX\ny\nY\nc").programs == ("a", "b", "c")


def test_substitution_commands_come_first_and_are_marked() -> None:
    op = parse_shell("echo $(rm -rf /) && ls")
    assert [(c.program, c.context, c.operator) for c in op.commands] == [
        ("rm", "substitution", None),
        ("echo", "main", "&&"),
        ("ls", "main", None),
    ]


def test_assignments_are_kept_apart() -> None:
    op = parse_shell("LD_PRELOAD=/tmp/x.so PATH=/tmp:$PATH ls -l")
    (cmd,) = op.commands
    assert cmd.assignments == ("LD_PRELOAD=/tmp/x.so", "PATH=/tmp:$PATH")
    assert cmd.argv == ("ls", "-l")
    assert cmd.program == "ls"


def test_record() -> None:
    op = parse_shell("sudo rm -rf / > log 2>&1 &")
    record = op.to_record()
    assert record == {
        "protocol": "shell",
        "text": "sudo rm -rf / > log 2>&1 &",
        "commands": [
            {
                "argv": ["sudo", "rm", "-rf", "/"],
                "program": "sudo",
                "effective_programs": ["sudo", "rm"],
                "operator": "&",
                "redirects": [">log", "2>&1"],
                "assignments": [],
                "context": "main",
            }
        ],
        "features": ["background", "redirect_write"],
    }
    assert json.loads(json.dumps(record)) == record


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a" * (MAX_TEXT_BYTES + 1), "longer than"),
        ("é" * (MAX_TEXT_BYTES // 2 + 1), "longer than"),
        ("ls\x00", "U+0000"),
        ("ls\x7f", "U+007F"),
        ("ls\x85", "U+0085"),
        ("ls\ud800", "not valid Unicode"),
        ("echo 'x", "unbalanced single quote"),
        ('echo "x', "unbalanced double quote"),
        ('echo "x\\', "unbalanced double quote"),
        ("echo `x", "unbalanced backquote"),
        ("echo $'x", "unbalanced $'...'"),
        ("echo $'\\cA'", "unsupported escape"),
        ("echo $'\\U110000'", "invalid code point"),
        ("echo x\\", "ends with a backslash"),
        ("echo $(x", "unterminated"),
        ("(x", "unterminated"),
        ("echo <(x", "unterminated"),
        ("x)", "unexpected ')'"),
        ("echo ${x", "unterminated '${'"),
        ('echo ${x:-"y"}', "too complex"),
        ("a ||", "ends with an operator"),
        ("a |", "ends with an operator"),
        ("&& a", "no command before"),
        ("a;;", "'case' syntax"),
        ("a & & b", "no command before"),
        ("a; ;", "no command before"),
        ("a > ", "has no target"),
        ("a >", "has no target"),
        ("a > ;", "has no target"),
        ("cat <<EOF", "has no body"),
        ("cat <<EOF\nx", "not terminated"),
        ("((x++))", "arithmetic"),
        ("for ((i=0;i<3;i++)); do x; done", "arithmetic"),
        ("for 1 in a; do x; done", "variable name"),
        ("if a; then b", "missing its 'fi'"),
        ("while a; do b", "missing its 'done'"),
        ("{ a", "missing its '}'"),
        ("fi", "unexpected 'fi'"),
        ("then a", "without 'if'"),
        ("do a", "'do' without"),
        ("select x in a; do b; done", "'select' is not supported"),
        ("coproc x", "'coproc' is not supported"),
        ("a (b)", "missing ';'"),
        ("(a) b", "missing ';'"),
        ("'' -rf /", "empty"),
        ("/bin/ x", "empty or a directory"),
        ("$(echo rm) x", "variable or substitution"),
        ("<(echo rm) x", "variable or substitution"),
        ("~/bin/r* x", "glob"),
        ("bash -c", "without a command string"),
        ("su -c", "without a command string"),
        ("flock x -c", "without a command string"),
        ("find . -exec", "without a command"),
        ("sudo -u", "missing its value"),
        ("timeout $T rm", "is an expansion where"),
        ("xargs -I{} {} x", "comes from its input"),
        ("sudo -Z ls", "unknown option '-Z'"),
        ("ssh $HOST rm", "is an expansion where"),
        ("timeout -s $SIG 5 rm", "may shift the command"),
        ("watch -n 1 ls $X", "built from an expansion"),
        ("echo " + "$(" * 40 + ")" * 40, "nested too deeply"),
        ("( " * 40, "nested too deeply"),
        ("eval " * 40 + "ls", "nested too deeply"),
        ("sudo " * 40 + "ls", "nested too deeply"),
    ],
)
def test_unparseable(text: str, reason: str) -> None:
    with pytest.raises(UnparseableOperation) as info:
        parse_shell(text)
    assert reason in info.value.reason


def test_nested_shells_are_followed_to_the_limit() -> None:
    text = "rm -rf /"
    for _ in range(8):
        text = "sh -c " + _quote(text)
    assert "rm" in parse_shell(text).programs


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


# -- properties ----------------------------------------------------------------------------

SHELLISH = st.lists(
    st.sampled_from([*"abrm -/\\'\"$`(){}[]*?;&|<>#=~!\n\t0123456789", "EOF", "sudo ", "bash -c "]),
    max_size=40,
).map("".join)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _invariants(op: ShellOperation) -> None:
    assert set(op.features) <= set(FEATURES)
    assert list(op.features) == sorted(set(op.features))
    for cmd in op.commands:
        if cmd.argv:
            assert cmd.program == posixpath.basename(cmd.argv[0])
            assert cmd.effective_programs[0] == cmd.program
        else:
            assert cmd.program == "" and cmd.effective_programs == ()
        assert cmd.operator in (None, "|", "&&", "||", ";", "&")
        assert cmd.context in ("main", "subshell", "substitution")
    json.dumps(op.to_record())


@SETTINGS
@given(text=st.text(max_size=80))
def test_property_arbitrary_text(text: str) -> None:
    try:
        op = parse_shell(text)
    except UnparseableOperation as exc:
        assert exc.reason
        return
    _invariants(op)


@SETTINGS
@given(text=SHELLISH)
def test_property_shell_like_text(text: str) -> None:
    try:
        op = parse_shell(text)
    except UnparseableOperation as exc:
        assert exc.reason
        return
    _invariants(op)


@SETTINGS
@given(
    words=st.lists(
        st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), max_size=8)
    )
)
def test_property_quoted_words_round_trip(words: list[str]) -> None:
    """Words quoted the POSIX way come back exactly: quote removal is right."""
    op = parse_shell("echo " + " ".join(_quote(w) for w in words))
    assert [c.argv for c in op.commands] == [("echo", *words)]
