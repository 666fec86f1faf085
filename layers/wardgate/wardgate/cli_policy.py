"""``wardgate policy``: validate, diff, apply and export policy files, and dry-run a decision."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from wardgate.identity import Identity


def _store() -> Any:
    from wardgate.config import Settings
    from wardgate.policy.store import PolicyStore

    settings = Settings.from_env()
    return PolicyStore(settings.policies_table, settings.connections_table)


def _table_kinds() -> dict[str, str]:
    """The connections table's connections (name -> kind) of the stack ``target`` pointed at."""
    kinds: dict[str, str] = _store().connection_kinds()
    return kinds


def _load(
    paths: list[str],
    consequence: str = "nothing applied",
    stored_kinds: Callable[[], dict[str, str]] | None = _table_kinds,
) -> tuple[dict[str, Any], Any] | None:
    """Load policy files; files that declare no connections are checked against ``stored_kinds()``
    (apply applies them over the connections table), or not at all when it is None."""
    from wardgate.policy.files import PolicyFileError, load

    try:
        return load(paths, stored_kinds)
    except PolicyFileError as exc:
        for message in exc.messages:
            print(message, file=sys.stderr)
        print(f"wardgate: {len(exc.messages)} problem(s); {consequence}", file=sys.stderr)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    from wardgate.cli import target
    from wardgate.dev.stack import read_state

    # Offline unless there is a stack to read (--stack, or a running wardgate dev).
    stack = bool(args.stack) or read_state() is not None
    if stack:
        target(args)
    loaded = _load(args.files, stored_kinds=_table_kinds if stack else None)
    if loaded is None:
        return 1
    document, policy_set = loaded
    if not document["connections"] and not stack:
        print(
            "(the files declare no connections: the connection names they use are checked against "
            "the connections table by diff and apply, or here with --stack)",
            file=sys.stderr,
        )
    print(
        f"ok: {len(document['connections'])} connection(s), {len(document['rules'])} rule(s), "
        f"{len(document['packs'])} pack(s) ({len(policy_set.rules)} rules in all); "
        f"version {policy_set.version}"
    )
    return 0


def changes(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """What applying ``new`` over ``old`` changes, one line each (+ added, - removed, ~ changed)."""
    old = old or {}
    lines: list[str] = []
    for section, key in (("connections", "name"), ("rules", "name"), ("packs", "name")):
        before = {str(item.get(key)): item for item in old.get(section, [])}
        after = {str(item.get(key)): item for item in new.get(section, [])}
        if section == "connections" and not after:
            continue  # a policy without connections leaves the connections table alone
        singular = section[:-1]
        lines += [f"+ {singular} {name}" for name in after.keys() - before.keys()]
        lines += [f"- {singular} {name}" for name in before.keys() - after.keys()]
        lines += [
            f"~ {singular} {name}" for name in after.keys() & before.keys() if after[name] != before[name]
        ]
    if (old.get("settings") or {}) != (new.get("settings") or {}):
        lines.append("~ settings")
    return sorted(lines, key=lambda line: line[2:])


def _current(store: Any) -> tuple[str, dict[str, Any]]:
    """The policy in force, with the connections the table holds now (what apply would change)."""
    version = store.current_version()
    document = store.document(version) or {}
    return version, {**document, "connections": store.stored_connections()}


def cmd_diff(args: argparse.Namespace) -> int:
    from wardgate.cli import target

    target(args)
    loaded = _load(args.files)
    if loaded is None:
        return 1
    version, current = _current(_store())
    lines = changes(current, _with_stored_shape(loaded[0]))
    print("\n".join(lines) if lines else "no changes")
    print(f"(in force: {version}; these files: {loaded[1].version})", file=sys.stderr)
    return 0


def _with_stored_shape(document: dict[str, Any]) -> dict[str, Any]:
    from wardgate.policy.store import _connection_item

    return {**document, "connections": [_connection_item(c) for c in document["connections"]]}


def cmd_apply(args: argparse.Namespace) -> int:
    from wardgate.cli import target
    from wardgate.policy.document import PolicyError
    from wardgate.policy.store import ApplyConflict

    target(args)
    loaded = _load(args.files)
    if loaded is None:
        return 1
    store = _store()
    version, current = _current(store)
    lines = changes(current, _with_stored_shape(loaded[0]))
    if not lines and version == loaded[1].version:
        print(f"no changes; {version} is in force")
        return 0
    print("\n".join(lines))
    try:
        applied = store.apply(
            loaded[0], applied_by=args.by or os.environ.get("USER", "unknown"), expected_version=version
        )
    except (ApplyConflict, PolicyError, ValueError) as exc:
        print(f"wardgate: not applied: {exc}", file=sys.stderr)
        return 1
    print(f"applied {applied} (was {version})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import yaml

    from wardgate.cli import target

    target(args)
    document = _store().document(args.version)
    if document is None:
        print("wardgate: no policy has been applied", file=sys.stderr)
        return 1
    print(yaml.safe_dump(document, sort_keys=False), end="")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from wardgate.policy.files import schema

    print(json.dumps(schema(), indent=2))
    return 0


def parse_operation(protocol: str, args: argparse.Namespace) -> Any:
    """The operation the dry run decides on, parsed exactly as the live path parses it."""
    from wardgate.operations import UnparseableOperation

    try:
        if protocol == "http":
            from wardgate.operations.http import HttpOperation
            from wardgate.proxies.http import check_query, normalise_path

            method, _, target = args.http.strip().partition(" ")
            path, _, query = target.strip().partition("?")
            body = (args.body or "").encode()
            content_type = "application/json" if args.body else ""
            return HttpOperation(method.upper(), normalise_path(path), check_query(query), body, content_type)
        if protocol == "sql":
            from wardgate.operations.sql import parse_sql

            return parse_sql(args.sql, args.dialect)
        if protocol == "k8s":
            from wardgate.operations.k8s import parse_kubectl

            return parse_kubectl(args.k8s)
        from wardgate.operations.shell import parse_shell

        return parse_shell(args.shell)
    except UnparseableOperation as exc:
        return exc
    except Exception as exc:
        return UnparseableOperation(getattr(exc, "message", str(exc)))


def cmd_test(args: argparse.Namespace) -> int:
    from wardgate.cli import target
    from wardgate.operations import UnparseableOperation

    protocol = next(p for p in ("sql", "http", "k8s", "shell") if getattr(args, p) is not None)
    target(args)
    table_kinds = functools.cache(_table_kinds)  # the table is scanned once, if at all
    if args.file:
        loaded = _load(args.file, stored_kinds=table_kinds)
        if loaded is None:
            return 1
        document, policy_set = loaded
        declared = document["connections"]
        kinds = {c["name"]: c["kind"] for c in declared} if declared else table_kinds()
    else:
        policy_set = _store().current()
        kinds = table_kinds()
    kind = kinds.get(args.connection)
    if kind is not None and kind != protocol:
        print(
            f"wardgate: connection {args.connection!r} is a {kind} connection, not {protocol}",
            file=sys.stderr,
        )
        return 2
    identity = Identity(subject=args.identity, issuer="dry-run", groups=tuple(args.group or ()))
    operation = parse_operation(protocol, args)
    decision = policy_set.decide(identity, args.connection, protocol, operation)
    normalised = (
        {"protocol": protocol, "unparseable": operation.reason}
        if isinstance(operation, UnparseableOperation)
        else operation.to_record()
    )
    if args.json:
        print(json.dumps({"decision": decision.to_record(), "operation": normalised}, indent=2))
    else:
        print(f"decision:  {decision.outcome}")
        print(f"rule:      {decision.rule}")
        print(f"reason:    {decision.reason}")
        if decision.approvers:
            print(f"approvers: {', '.join(decision.approvers)}")
        print(f"policy:    {decision.policy_version}")
        print("operation: " + json.dumps(normalised, indent=2).replace("\n", "\n           "))
    return 0


MAX_EXAMPLES = 100


def _candidate_connections(document: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The connections the candidate policy would be applied over: its own when it declares any
    (apply makes the connections table match them), else the table's (apply leaves it alone)."""
    from wardgate.connections import Connection

    if document["connections"]:
        declared = [Connection.from_dict(raw) for raw in document["connections"]]
        return {c.name: c for c in declared}, "declared in the files"
    connections = {}
    for item in _store().stored_connections():
        try:
            connection = Connection.from_dict(item)
        except (KeyError, ValueError, TypeError):
            continue  # the gateway refuses an invalid item too (connections.py validates on read)
        connections[connection.name] = connection
    return connections, "from the connections table (the files declare none)"


def cmd_replay(args: argparse.Namespace) -> int:
    """What the candidate policy would have decided on the recorded operations of a window."""
    from wardgate.auditing import questions, whatif
    from wardgate.cli import target
    from wardgate.cli_recordings import UsageError, _report_sync, local_engine

    if not 0 <= args.examples <= MAX_EXAMPLES:
        raise UsageError(f"--examples {args.examples}: between 0 and {MAX_EXAMPLES}")
    since = questions.parse_when(args.since, "--since")
    until = questions.parse_when(args.until, "--until") if args.until else None
    questions.Filters(since=since, until=until, connection=args.connection)  # order, control characters
    target(args)
    loaded = _load(args.file, "nothing replayed")
    if loaded is None:
        return 1
    document, policy_set = loaded
    connections, origin = _candidate_connections(document)
    if args.connection is not None and args.connection not in connections:
        known = ", ".join(sorted(connections)) or "none"
        raise UsageError(
            f"--connection {args.connection!r}: the candidate policy has no such connection "
            f"(its connections, {origin}: {known})"
        )
    engine = local_engine(args)
    report = whatif.replay(engine, policy_set, connections, since, until, args.connection, args.examples)
    _report_sync(engine)
    if report.operations == 0:
        where = f" on connection {args.connection}" if args.connection else ""
        empty = f"no recorded operations between {whatif.when(since)} and {whatif.when(until)}{where}"
        if not args.json:
            print(f"{empty} (candidate {policy_set.version}): nothing to compare")
            return 0
        print(f"({empty})", file=sys.stderr)
    if args.json:
        print(json.dumps({**report.to_json(), "files": args.file, "connections": origin}, indent=2))
    else:
        print(whatif.render(report, f"{', '.join(args.file)} (connections {origin})"))
    return 0


def add_commands(sub: Any, with_stack: Any) -> None:
    policy = sub.add_parser("policy", help="policies as code: validate, diff, apply, export, test")
    psub = policy.add_subparsers(dest="action", required=True)

    validate = psub.add_parser("validate", help="check policy files against the schema and each other")
    validate.add_argument("files", nargs="+", help="YAML files or folders of them")
    validate.set_defaults(func=cmd_validate)
    with_stack(validate)

    for name, func, text in (
        ("diff", cmd_diff, "show what applying the files would change"),
        ("apply", cmd_apply, "make the files the policy in force (all or nothing)"),
    ):
        command = psub.add_parser(name, help=text)
        command.add_argument("files", nargs="+")
        command.set_defaults(func=func)
        with_stack(command)
    psub.choices["apply"].add_argument("--by", help="who applies (recorded with the version)")

    export = psub.add_parser("export", help="print the policy in force (or --version) as YAML")
    export.add_argument("--version")
    export.set_defaults(func=cmd_export)
    with_stack(export)

    psub.add_parser("schema", help="print the policy file JSON Schema").set_defaults(func=cmd_schema)

    test = psub.add_parser("test", help="dry run: the decision, the rule and the normalised operation")
    test.add_argument("--connection", required=True)
    test.add_argument("--identity", required=True, help="the subject")
    test.add_argument("--group", action="append")
    test.add_argument(
        "--file", action="append", help="decide with these policy files instead of the one in force"
    )
    test.add_argument("--dialect", choices=["postgres", "mysql"], default="postgres")
    test.add_argument("--body", help="JSON body for --http")
    test.add_argument("--json", action="store_true")
    what = test.add_mutually_exclusive_group(required=True)
    what.add_argument("--sql")
    what.add_argument("--http", help="'METHOD /path?query'")
    what.add_argument("--k8s", help="kubectl-style, e.g. 'delete pods -n prod web-1'")
    what.add_argument("--shell")
    test.set_defaults(func=cmd_test)
    with_stack(test)

    from wardgate.auditing.questions import WHEN_HELP
    from wardgate.cli_recordings import run as run_auditing

    replay = psub.add_parser(
        "replay",
        help="what policy files would have decided on the recorded operations (changes nothing)",
    )
    replay.add_argument(
        "--file", action="append", required=True, help="the candidate policy: YAML files or folders of them"
    )
    replay.add_argument("--since", default="7d", help=f"from: {WHEN_HELP} (default 7d)")
    replay.add_argument("--until", help="to (excluded): same forms as --since (default: now)")
    replay.add_argument("--connection", help="only the operations on this connection")
    replay.add_argument("--examples", type=int, default=5, help="examples shown of each change (default 5)")
    replay.add_argument("--json", action="store_true")
    replay.add_argument("--cache", help="the local cache folder (default: .wardgate/recordings-cache)")
    replay.add_argument(
        "--refresh", action="store_true", help="list days older than a day again (as recordings query)"
    )
    replay.set_defaults(func=lambda args: run_auditing(cmd_replay, args))
    with_stack(replay)
