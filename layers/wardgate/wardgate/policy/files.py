"""Policy files: YAML in, one checked document out, with every problem located by file, line and field.

Each file is checked against the published JSON Schema (``schema.json``) on its own, then the
files are merged (their connections, rules and packs lists concatenated) and built, so both
schema and semantic problems point at the line that caused them. Nothing is applied unless
every file is clean.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path as FilePath
from typing import Any

import yaml

from wardgate.policy.document import PolicyError, Problem, build
from wardgate.policy.engine import PolicySet

Path = tuple[str | int, ...]
LISTS = ("connections", "rules", "packs")
MAX_DEPTH = 64  # nesting of mappings and lists; a policy needs about 8
MAX_NODES = 200_000  # values once aliases are expanded: the checks walk the expanded document


def schema() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        resources.files("wardgate.policy").joinpath("schema.json").read_text()
    )
    return document


class PolicyFileError(ValueError):
    """Every problem found, each as ``file:line: field: message``."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


def field_name(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


@dataclass
class PolicyFile:
    name: str
    document: dict[str, Any]
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)


def _positions(node: yaml.Node, path: Path, lines: dict[Path, int], problems: list[str], name: str) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                problems.append(
                    f"{name}:{key_node.start_mark.line + 1}: {field_name((*path, key))}: duplicate key"
                )
            seen.add(key)
            _positions(value_node, (*path, key), lines, problems, name)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _positions(item, (*path, index), lines, problems, name)


def _check_size(root: yaml.Node, name: str) -> None:
    """Refuse a recursive alias (``&a [*a]``: an endless document) and alias fan-out ("billion
    laughs": a few lines that expand to millions of values), which every later step would walk."""
    stack = [(root, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            line = node.start_mark.line + 1
            raise PolicyFileError([f"{name}:{line}: nested over {MAX_DEPTH} levels (a recursive alias?)"])
        if count > MAX_NODES:
            raise PolicyFileError([f"{name}: more than {MAX_NODES} values once its aliases are expanded"])
        if isinstance(node, yaml.MappingNode):
            stack.extend((child, depth + 1) for pair in node.value for child in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)


def parse(text: str, name: str) -> PolicyFile:
    """One file's document and the line of every field in it."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_size(node, name)
            document = loader.construct_document(node) if node is not None else {}
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise PolicyFileError([f"{name}{line}: invalid YAML: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise PolicyFileError([f"{name}: invalid YAML: {exc}"]) from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise PolicyFileError([f"{name}: invalid YAML: nested too deeply"]) from None
    problems: list[str] = []
    lines: dict[Path, int] = {}
    if node is not None:
        _positions(node, (), lines, problems, name)
    if not isinstance(document, dict):
        problems.append(f"{name}:1: the file must hold a mapping (connections, rules, packs, settings)")
    if problems:
        raise PolicyFileError(problems)
    return PolicyFile(name, document, lines)


def check_schema(policy_file: PolicyFile) -> list[str]:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema())
    problems = []
    for error in sorted(
        validator.iter_errors(policy_file.document), key=lambda e: list(map(str, e.absolute_path))
    ):
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set(error.schema.get("properties", {}))
            for key in sorted(set(error.instance) - known, key=str):  # YAML keys may be 1, true, null
                where = (*path, key)
                problems.append(
                    f"{policy_file.name}:{policy_file.line(where)}: {field_name(where)}: unknown field"
                )
            continue
        problems.append(f"{policy_file.name}:{policy_file.line(path)}: {field_name(path)}: {error.message}")
    return problems


@dataclass
class Merged:
    document: dict[str, Any]
    origins: dict[Path, tuple[PolicyFile, Path]]  # merged list item or setting -> (file, path in that file)

    def locate(self, problem: Problem) -> str:
        for length in range(len(problem.path), 0, -1):
            origin = self.origins.get(problem.path[:length])
            if origin is not None:
                policy_file, local = origin
                path = (*local, *problem.path[length:])
                return f"{policy_file.name}:{policy_file.line(path)}: {field_name(path)}: {problem.message}"
        return f"{field_name(problem.path)}: {problem.message}"


def merge(files: list[PolicyFile]) -> Merged:
    document: dict[str, Any] = {"version": 1, "connections": [], "rules": [], "packs": [], "settings": {}}
    origins: dict[Path, tuple[PolicyFile, Path]] = {}
    problems = []
    for policy_file in files:
        for key in LISTS:
            for index, item in enumerate(policy_file.document.get(key) or []):
                origins[(key, len(document[key]))] = (policy_file, (key, index))
                document[key].append(item)
        for key, value in (policy_file.document.get("settings") or {}).items():
            if key in document["settings"]:
                line = policy_file.line(("settings", key))
                problems.append(f"{policy_file.name}:{line}: settings.{key}: already set by another file")
            document["settings"][key] = value
            origins[("settings", key)] = (policy_file, ("settings", key))
    if problems:
        raise PolicyFileError(problems)
    return Merged(document, origins)


def load(
    paths: list[str], stored_connections: Callable[[], dict[str, str]] | None = None
) -> tuple[dict[str, Any], PolicySet]:
    """Read, check and build policy files (or every *.yaml/*.yml in a folder); raise PolicyFileError.

    Files that declare no connections are applied over the connections table as it is, so their
    rules are checked against ``stored_connections()`` (name -> kind) when it is given, and their
    connection names are left unchecked when it is not (``validate`` with no stack to read).
    """
    files: list[PolicyFile] = []
    problems: list[str] = []
    for path in _expand(paths):
        try:
            text = FilePath(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot read: {exc}")
            continue
        try:
            policy_file = parse(text, path)
        except PolicyFileError as exc:
            problems.extend(exc.messages)
            continue
        problems.extend(check_schema(policy_file))
        files.append(policy_file)
    if problems:
        raise PolicyFileError(problems)
    merged = merge(files)
    try:
        if merged.document.get("connections"):
            policy_set = build(merged.document)
        elif stored_connections is not None:
            policy_set = build(merged.document, known_connections=stored_connections())
        else:
            policy_set = build(merged.document, strict=False)
    except PolicyError as exc:
        # A pack expands to several rules that share its location: say each problem once.
        raise PolicyFileError(list(dict.fromkeys(merged.locate(p) for p in exc.problems))) from None
    return merged.document, policy_set


def _expand(paths: list[str]) -> list[str]:
    found: list[str] = []
    for path in paths:
        folder = FilePath(path)
        if folder.is_dir():
            found.extend(sorted(str(p) for p in folder.iterdir() if p.suffix in (".yaml", ".yml")))
        else:
            found.append(path)
    if not found:
        raise PolicyFileError([f"no policy files in {', '.join(paths)}"])
    return found
