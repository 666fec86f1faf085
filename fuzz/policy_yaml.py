"""Fuzz the policy loader: YAML files -> schema -> merge -> ``document.build`` -> decisions.

Input: one to three policy files, separated by a line ``#---`` (so the merge of several files,
and its conflicts, are fuzzed too). Each is put in an in-memory file (``memfd``, nothing on disk)
and loaded with ``wardgate.policy.files.load``, exactly as ``wardgate policy validate|test|apply``
loads files.

A crash is any exception but ``PolicyFileError`` (every problem, located by file and line): a
``TypeError``, ``KeyError``, ``RecursionError``... out of the YAML reader, the schema check,
the merge or ``build``; or a hang (YAML aliases make a small file a large graph). A policy that
loads must then decide: an HTTP, SQL, Kubernetes and shell operation on each of its
connections, for two identities, and give each caller a masking profile, without raising.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import atheris
from _harness import Finding, Known, fuzz, known

with atheris.instrument_imports(include=["wardgate"]):
    from wardgate.identity import Identity
    from wardgate.operations import UnparseableOperation
    from wardgate.operations.http import HttpOperation
    from wardgate.operations.k8s import parse_k8s_request
    from wardgate.operations.shell import parse_shell
    from wardgate.operations.sql import parse_sql
    from wardgate.policy.files import PolicyFileError, load

SEPARATOR = b"\n#---\n"
KNOWN: tuple[Known, ...] = ()  # nothing reported and unfixed
IDENTITIES = (
    Identity("agent-1", "https://issuer.example", groups=("ci", "billing-agents")),
    Identity("agent-2", "https://issuer.example", groups=(), owner="alice@example.com", registered=True),
)
NOW = datetime(2026, 3, 4, 12, 30, tzinfo=UTC)
OPERATIONS = (
    ("http", HttpOperation("POST", "/v1/refunds", "", b'{"amount": 900}', "application/json")),
    ("http", HttpOperation("GET", "/v1/invoices/7", "a=1")),
    ("sql", parse_sql("DELETE FROM users; SELECT * FROM invoices WHERE id = 1")),
    ("k8s", parse_k8s_request("GET", "/api/v1/namespaces/kube-system/secrets")),
    ("shell", parse_shell("sudo rm -rf /var/log && echo $(id)")),
    ("sql", UnparseableOperation("fuzz")),
)


def test_one_input(data: bytes) -> None:
    files = []
    try:
        for index, content in enumerate(data.split(SEPARATOR)[:3]):
            files.append(os.memfd_create(f"{index}.yaml"))
            os.write(files[-1], content)
        try:
            document, policy_set = load([f"/proc/self/fd/{fd}" for fd in files])
        except PolicyFileError as refused:
            if not refused.messages or not all(isinstance(m, str) and m for m in refused.messages):
                raise Finding(f"PolicyFileError without messages: {refused.messages!r}") from None
            return
    finally:
        for fd in files:
            os.close(fd)
    names = {c["name"] for c in document.get("connections") or []} | {"demo"}
    for connection in sorted(names):
        for identity in IDENTITIES:
            for protocol, operation in OPERATIONS:
                decision = policy_set.decide(identity, connection, protocol, operation, now=NOW)
                if decision.outcome not in ("allow", "deny", "require_approval"):
                    raise Finding(f"decision outcome {decision.outcome!r}")
                decision.to_record()
            try:
                policy_set.masking.for_caller(connection, identity.groups)
            except Exception as exc:
                if not known(exc, KNOWN):
                    raise


if __name__ == "__main__":
    fuzz("policy_yaml", test_one_input)
