"""Ready-made rule packs: guardrails most connections want, named in policy files.

A pack entry names the pack and the connections it covers, and may turn its denials into
approvals (``effect: require_approval`` with ``approvers``) or pass parameters::

    packs:
      - name: no-writes-to-production-namespaces
        connections: [prod-cluster]
        params: {namespaces: ["prod*", "payments"]}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DANGEROUS_SQL_FUNCTIONS = [
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import", "lo_export",
    "dblink", "dblink_exec", "dblink_connect", "load_file", "sys_exec", "sys_eval", "pg_sleep", "sleep",
    "benchmark", "pg_terminate_backend", "pg_cancel_backend", "set_config",
]  # fmt: skip
DANGEROUS_SQL_FEATURES = [
    "copy_program", "copy_file", "into_outfile", "into_dumpfile", "load_data_infile", "load_data_local",
    "dynamic_sql", "do_block", "untrusted_language", "load_library", "alter_system", "set_role",
    "set_session_authorization", "set_global", "security_definer",
]  # fmt: skip
WRITE_KINDS = [
    "insert", "update", "delete", "merge", "ddl", "grant", "revoke", "copy", "call", "do", "execute",
    "prepare", "lock",
]  # fmt: skip


def read_only_sql(params: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": "read-only-sql: reads",
            "effect": "allow",
            "match": {"sql": {"kinds": ["select", "show", "explain", "transaction"]}},
        },
        {
            "name": "read-only-sql: writes",
            "effect": "deny",
            "message": "this connection is read-only",
            "match": {"sql": {"kinds": WRITE_KINDS}},
        },
        {
            "name": "read-only-sql: hidden writes",
            "effect": "deny",
            "message": "this connection is read-only (the statement writes a table)",
            "match": {"sql": {"tables_written": ["*"]}},
        },
        {
            "name": "read-only-sql: row locks",
            "effect": "deny",
            "message": "this connection is read-only "
            "(SELECT ... FOR UPDATE, FOR SHARE and LOCK IN SHARE MODE lock rows)",
            "match": {"sql": {"features": ["row_lock"]}},
        },
        {
            "name": "read-only-sql: file, network and server functions",
            "effect": "deny",
            "message": "functions that reach files, the network or the server are not allowed here",
            "match": {"sql": {"functions": DANGEROUS_SQL_FUNCTIONS}},
        },
        {
            "name": "read-only-sql: file and program access",
            "effect": "deny",
            "message": "COPY to programs or files, INTO OUTFILE and dynamic SQL are not allowed here",
            "match": {"sql": {"features": DANGEROUS_SQL_FEATURES}},
        },
    ]


def no_destructive_ddl(params: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": "no-destructive-ddl",
            "effect": "deny",
            "message": "DROP and TRUNCATE are not allowed on this connection",
            "match": {"sql": {"kinds": ["ddl"], "ddl_actions": ["drop", "truncate"]}},
        }
    ]


def no_unbounded_writes(params: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": "no-unbounded-writes",
            "effect": "deny",
            "message": "UPDATE and DELETE need a WHERE clause",
            "match": {"sql": {"kinds": ["update", "delete"], "where_missing": True}},
        }
    ]


def no_secret_reads(params: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": "no-kubernetes-secret-reads",
            "effect": "deny",
            "message": "reading Kubernetes Secrets is not allowed",
            "match": {"k8s": {"verbs": ["get", "list", "watch"], "resources": ["secrets"]}},
        }
    ]


def no_pod_exec(params: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": "no-pod-exec",
            "effect": "deny",
            "message": "exec, attach and port-forward into pods are not allowed",
            "match": {"k8s": {"resources": ["pods"], "subresources": ["exec", "attach", "portforward"]}},
        }
    ]


def no_production_writes(params: dict[str, Any]) -> list[dict[str, Any]]:
    namespaces = params.get("namespaces") or ["prod", "prod-*", "production", "production-*"]
    return [
        {
            "name": "no-writes-to-production-namespaces",
            "effect": "deny",
            "message": "writes to production namespaces are not allowed",
            "match": {
                "k8s": {
                    "verbs": ["create", "update", "patch", "delete", "deletecollection"],
                    "namespaces": namespaces,
                }
            },
        }
    ]


PACKS: dict[str, tuple[str, Callable[[dict[str, Any]], list[dict[str, Any]]], tuple[str, ...]]] = {
    # name: (protocol, rules, accepted params)
    "read-only-sql": ("sql", read_only_sql, ()),
    "no-destructive-ddl": ("sql", no_destructive_ddl, ()),
    "no-unbounded-writes": ("sql", no_unbounded_writes, ()),
    "no-kubernetes-secret-reads": ("k8s", no_secret_reads, ()),
    "no-pod-exec": ("k8s", no_pod_exec, ()),
    "no-writes-to-production-namespaces": ("k8s", no_production_writes, ("namespaces",)),
}


def expand(pack: dict[str, Any]) -> list[dict[str, Any]]:
    """The rules of one pack entry, scoped to its connections, with its effect override applied."""
    _, make, _ = PACKS[pack["name"]]
    rules = []
    for rule in make(pack.get("params") or {}):
        rule = {**rule, "connections": pack["connections"]}
        if pack.get("effect") == "require_approval" and rule["effect"] == "deny":
            rule.update(effect="require_approval", approvers=pack.get("approvers", []))
        rules.append(rule)
    return rules
