"""Fuzz the shell command-line parser, ``wardgate.operations.shell.parse_shell``.

Input: one command line as an agent would send it over SSH.

A crash is any exception but ``UnparseableOperation``, a hang (the lexer, here-documents and
``-c`` strings recurse), or an operation policy could misread: a command whose program is not
among its ``effective_programs``, an effective program that is empty, a feature outside the
documented ``FEATURES``, or no JSON recording form.
"""

from __future__ import annotations

import json

import atheris
from _harness import Finding, fuzz, text

with atheris.instrument_imports(include=["wardgate"]):
    from wardgate.operations import UnparseableOperation
    from wardgate.operations.shell import FEATURES, parse_shell


def test_one_input(data: bytes) -> None:
    command_line = text(data)
    try:
        operation = parse_shell(command_line)
    except UnparseableOperation as refused:
        if not refused.reason:
            raise Finding("UnparseableOperation without a reason") from None
        return
    unknown = set(operation.features) - set(FEATURES)
    if unknown:
        raise Finding(f"undocumented features {sorted(unknown)}")
    for command in operation.commands:
        if command.program and command.program not in command.effective_programs:
            raise Finding(f"program {command.program!r} not in {command.effective_programs}")
        if any(not program for program in command.effective_programs):
            raise Finding(f"an empty effective program in {command.effective_programs}")
    json.dumps(operation.to_record())


if __name__ == "__main__":
    fuzz("shell_parser", test_one_input)
