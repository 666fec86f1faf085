"""SQL operations: statement splitting, classification, fail-closed behaviour, the bypass corpus."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot.dialects.dialect import Dialect as _GlotDialect

from tests.sql_bypass_corpus import BYPASS_CORPUS, expectation_failures
from wardgate.operations import UnparseableOperation
from wardgate.operations.sql import SqlOperation, SqlStatement, parse_sql

PG = "postgres"
MY = "mysql"


def one(sql: str, dialect: str = PG) -> SqlStatement:
    operation = parse_sql(sql, dialect)  # type: ignore[arg-type]
    assert len(operation.statements) == 1, operation
    return operation.statements[0]


def unparseable(sql: str, dialect: str = PG) -> str:
    with pytest.raises(UnparseableOperation) as caught:
        parse_sql(sql, dialect)  # type: ignore[arg-type]
    return caught.value.reason


# --------------------------------------------------------------------------------------- kinds

KINDS: list[tuple[str, str, dict[str, Any]]] = [
    # queries
    (PG, "SELECT 1", {"kind": "select", "tables_read": (), "tables_written": (), "has_where": None}),
    (
        PG,
        "SELECT a, b FROM t JOIN s.u ON t.id = u.id WHERE x = 1",
        {"kind": "select", "tables_read": ("s.u", "t")},
    ),
    (PG, "VALUES (1), (2)", {"kind": "select"}),
    (PG, "TABLE users", {"kind": "select", "tables_read": ("users",)}),
    (PG, "(SELECT 1) UNION (SELECT 2)", {"kind": "select"}),
    (PG, "SELECT * FROM users FOR UPDATE", {"kind": "select", "features": ("row_lock", "select_for_update")}),
    (MY, "SELECT `id` FROM `db`.`users` LIMIT 1, 10", {"kind": "select", "tables_read": ("db.users",)}),
    (MY, "TABLE t", {"kind": "select", "tables_read": ("t",)}),
    # DML
    (
        PG,
        "INSERT INTO s.t (a, b) VALUES (1, 2)",
        {"kind": "insert", "tables_written": ("s.t",), "has_where": None},
    ),
    (
        PG,
        "INSERT INTO t SELECT * FROM u",
        {"kind": "insert", "tables_written": ("t",), "tables_read": ("u",)},
    ),
    (PG, "INSERT INTO t DEFAULT VALUES RETURNING id", {"kind": "insert", "tables_written": ("t",)}),
    (MY, "INSERT INTO t SET a = 1", {"kind": "insert", "tables_written": ("t",)}),
    (MY, "INSERT IGNORE INTO t (a) VALUES (1)", {"kind": "insert", "tables_written": ("t",)}),
    (
        MY,
        "REPLACE INTO t (a) VALUES (1)",
        {"kind": "insert", "tables_written": ("t",), "features": ("replace",)},
    ),
    (PG, "UPDATE t SET a = 1 WHERE id = 2", {"kind": "update", "tables_written": ("t",), "has_where": True}),
    (PG, "UPDATE t SET a = b.a FROM b WHERE t.id = b.id", {"tables_written": ("t",), "tables_read": ("b",)}),
    (
        MY,
        "UPDATE users a JOIN o ON a.id = o.id SET a.x = 1",
        {"tables_written": ("users",), "tables_read": ("o",)},
    ),
    (MY, "UPDATE users a JOIN o ON a.id = o.id SET x = 1", {"tables_written": ("o", "users")}),
    (PG, "DELETE FROM t WHERE id = 1", {"kind": "delete", "tables_written": ("t",), "has_where": True}),
    (PG, "DELETE FROM t", {"kind": "delete", "has_where": False}),
    (MY, "DELETE a, b FROM a JOIN b ON a.id = b.id WHERE a.x = 1", {"tables_written": ("a", "b")}),
    (
        PG,
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET x = s.x",
        {"kind": "merge", "tables_written": ("t",), "tables_read": ("s",), "has_where": None},
    ),
    # DDL
    (
        PG,
        "CREATE TABLE t (id int REFERENCES u (id))",
        {
            "kind": "ddl",
            "ddl_action": "create",
            "object_type": "table",
            "tables_written": ("t",),
            "tables_read": ("u",),
        },
    ),
    (
        PG,
        "CREATE TEMP TABLE t (a int)",
        {"ddl_action": "create", "object_type": "table", "tables_written": ("t",)},
    ),
    (
        PG,
        "CREATE VIEW v AS SELECT * FROM t",
        {"object_type": "view", "tables_written": ("v",), "tables_read": ("t",)},
    ),
    (
        PG,
        "CREATE MATERIALIZED VIEW mv AS SELECT 1",
        {"object_type": "materialized_view", "tables_written": ("mv",)},
    ),
    (
        PG,
        "CREATE INDEX i ON s.t (lower(x))",
        {"object_type": "index", "tables_written": ("i", "s.t"), "functions": ("lower",)},
    ),
    (PG, "CREATE SCHEMA s", {"object_type": "schema", "tables_written": ("s",)}),
    (PG, "CREATE SEQUENCE q", {"object_type": "sequence", "tables_written": ("q",)}),
    (PG, "CREATE EXTENSION pgcrypto", {"kind": "ddl", "object_type": "extension", "tables_written": ()}),
    (PG, "CREATE ROLE bob LOGIN", {"object_type": "role"}),
    (PG, "CREATE USER bob WITH PASSWORD 'x'", {"object_type": "user"}),
    (PG, "CREATE TYPE mood AS ENUM ('sad', 'ok')", {"ddl_action": "create", "object_type": "type"}),
    (
        PG,
        "CREATE POLICY p ON t FOR SELECT USING (owner = current_user)",
        {"object_type": "policy", "tables_written": ("t",)},
    ),
    (
        PG,
        "ALTER TABLE t ADD COLUMN x int",
        {"ddl_action": "alter", "object_type": "table", "tables_written": ("t",)},
    ),
    (PG, "ALTER TABLE s.a RENAME TO b", {"ddl_action": "rename", "tables_written": ("s.a", "s.b")}),
    (PG, "ALTER TABLE a RENAME COLUMN x TO y", {"ddl_action": "rename", "tables_written": ("a",)}),
    (
        PG,
        "ALTER SYSTEM SET work_mem = '1GB'",
        {"ddl_action": "alter", "object_type": "system", "features": ("alter_system",)},
    ),
    (
        PG,
        "ALTER DEFAULT PRIVILEGES IN SCHEMA s GRANT SELECT ON TABLES TO ro",
        {"ddl_action": "alter", "object_type": "default_privileges"},
    ),
    (
        PG,
        "DROP TABLE IF EXISTS a, s.b",
        {"ddl_action": "drop", "object_type": "table", "tables_written": ("a", "s.b")},
    ),
    (PG, "DROP FUNCTION f(int)", {"ddl_action": "drop", "object_type": "function", "tables_written": ()}),
    (PG, "DROP TRIGGER tr ON t", {"ddl_action": "drop", "object_type": "trigger", "tables_written": ("t",)}),
    (PG, "DROP OWNED BY bob", {"ddl_action": "drop", "object_type": "owned"}),
    (
        PG,
        "TRUNCATE a, b RESTART IDENTITY",
        {"ddl_action": "truncate", "object_type": "table", "tables_written": ("a", "b")},
    ),
    (
        PG,
        "COMMENT ON TABLE t IS 'x'",
        {"ddl_action": "comment", "object_type": "table", "tables_written": ("t",)},
    ),
    (
        PG,
        "COMMENT ON COLUMN s.t.c IS 'x'",
        {"ddl_action": "comment", "object_type": "column", "tables_written": ("s.t",)},
    ),
    (
        PG,
        "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
        {"object_type": "trigger", "tables_written": ("t",), "functions": ("f",)},
    ),
    (
        PG,
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN RETURN 1; END $$",
        {"object_type": "function", "features": ("security_definer",)},
    ),
    (
        MY,
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY) ENGINE=InnoDB",
        {"ddl_action": "create", "tables_written": ("t",)},
    ),
    (MY, "CREATE TABLE t2 LIKE t", {"tables_written": ("t", "t2")}),
    (
        MY,
        "CREATE DEFINER=`root`@`%` SQL SECURITY DEFINER VIEW v AS SELECT * FROM t",
        {
            "object_type": "view",
            "tables_written": ("v",),
            "tables_read": ("t",),
            "features": ("security_definer",),
        },
    ),
    (MY, "ALTER TABLE t RENAME TO u", {"ddl_action": "rename", "tables_written": ("t", "u")}),
    (MY, "RENAME TABLE a TO b, c TO d", {"ddl_action": "rename", "tables_written": ("a", "b", "c", "d")}),
    (MY, "DROP USER u", {"ddl_action": "drop", "object_type": "user"}),
    (MY, "SET PASSWORD FOR u = 'x'", {"kind": "ddl", "ddl_action": "alter", "object_type": "user"}),
    # privileges
    (
        PG,
        "GRANT SELECT, INSERT ON TABLE users, s.o TO bob",
        {"kind": "grant", "object_type": "table", "tables_written": ("s.o", "users")},
    ),
    (
        PG,
        "GRANT USAGE ON SCHEMA s TO bob",
        {"kind": "grant", "object_type": "schema", "tables_written": ("s",)},
    ),
    (
        PG,
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO ro",
        {"object_type": "schema", "tables_written": ("public",)},
    ),
    (PG, "GRANT EXECUTE ON FUNCTION f(int) TO bob", {"object_type": "function", "tables_written": ()}),
    (PG, "GRANT admin TO bob", {"kind": "grant", "object_type": "role"}),
    (
        PG,
        "REVOKE ALL ON users FROM bob",
        {"kind": "revoke", "object_type": "table", "tables_written": ("users",)},
    ),
    (
        MY,
        "GRANT ALL ON db.* TO 'u'@'%'",
        {"kind": "grant", "object_type": "database", "tables_written": ("db.*",)},
    ),
    (MY, "GRANT ALL ON *.* TO 'u'@'%'", {"object_type": "global"}),
    (
        MY,
        "REVOKE SELECT ON db.t FROM u",
        {"kind": "revoke", "object_type": "table", "tables_written": ("db.t",)},
    ),
    # COPY and bulk loads
    (
        PG,
        "COPY t TO PROGRAM 'gzip > /tmp/t.gz'",
        {"kind": "copy", "tables_read": ("t",), "features": ("copy_program",)},
    ),
    (
        PG,
        "COPY t (a, b) FROM '/tmp/t.csv' WITH (FORMAT csv)",
        {"kind": "copy", "tables_written": ("t",), "features": ("copy_file",)},
    ),
    (
        PG,
        "COPY t FROM STDIN WHERE a > f(1)",
        {"tables_written": ("t",), "functions": ("f",), "features": ("copy_stdio",)},
    ),
    (PG, "COPY (SELECT * FROM u) TO STDOUT", {"tables_read": ("u",), "features": ("copy_stdio",)}),
    (
        MY,
        "LOAD DATA INFILE '/tmp/x' INTO TABLE db.t",
        {"kind": "copy", "tables_written": ("db.t",), "features": ("load_data_infile",)},
    ),
    # session, transactions
    (PG, "SET search_path TO app, public", {"kind": "set", "features": ("set_search_path",)}),
    (PG, "SET LOCAL ROLE admin", {"kind": "set", "features": ("set_role",)}),
    (PG, "SET SESSION AUTHORIZATION bob", {"kind": "set", "features": ("set_session_authorization",)}),
    (PG, "SET statement_timeout = 1000", {"kind": "set", "features": ()}),
    (PG, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", {"kind": "transaction"}),
    (PG, "RESET ALL", {"kind": "reset"}),
    (PG, "RESET ROLE", {"kind": "reset"}),
    (MY, "SET @a = (SELECT max(id) FROM t)", {"kind": "set", "tables_read": ("t",), "functions": ("max",)}),
    (MY, "SET @@global.max_connections = 10", {"kind": "set", "features": ("set_global",)}),
    (MY, "SET NAMES utf8mb4", {"kind": "set", "features": ()}),
    # What would make the server read later statements differently from the gateway (the MySQL
    # session refuses them): another character set, or sql_mode flags that change quoting.
    (MY, "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_ci'", {"kind": "set", "features": ()}),
    (MY, "SET NAMES latin1", {"kind": "set", "features": ("set_client_encoding",)}),
    (MY, "SET NAMES DEFAULT", {"kind": "set", "features": ("set_client_encoding",)}),
    (MY, "SET CHARACTER SET gbk", {"kind": "set", "features": ("set_client_encoding",)}),
    (MY, "SET character_set_client = latin1", {"kind": "set", "features": ("set_client_encoding",)}),
    (MY, "SET collation_connection = utf8mb4_bin", {"kind": "set", "features": ()}),
    (MY, "SET sql_mode = 'STRICT_TRANS_TABLES,NO_ZERO_DATE'", {"kind": "set", "features": ()}),
    (MY, "SET SESSION sql_mode = '', @a = 1", {"kind": "set", "features": ()}),
    (MY, "SET sql_mode = 'ANSI_QUOTES'", {"kind": "set", "features": ("set_sql_mode",)}),
    (MY, "SET @@session.sql_mode = 'NO_BACKSLASH_ESCAPES'", {"kind": "set", "features": ("set_sql_mode",)}),
    (MY, "SET sql_mode = CONCAT(@@sql_mode, ',ANSI')", {"kind": "set", "features": ("set_sql_mode",)}),
    (MY, "SET sql_mode = 4", {"kind": "set", "features": ("set_sql_mode",)}),
    (MY, "SET @x = 'sql_mode'", {"kind": "set", "features": ()}),
    (MY, "SET ROLE admin", {"kind": "set", "features": ("set_role",)}),
    (MY, "RESET MASTER", {"kind": "other"}),
    *[
        (PG, sql, {"kind": "transaction"})
        for sql in [
            "BEGIN",
            "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY",
            "START TRANSACTION",
            "COMMIT",
            "COMMIT AND NO CHAIN",
            "END",
            "ROLLBACK",
            "ABORT",
            "SAVEPOINT s1",
            "RELEASE SAVEPOINT s1",
            "ROLLBACK TO SAVEPOINT s1",
            "PREPARE TRANSACTION 'x'",
            "COMMIT PREPARED 'x'",
        ]
    ],
    *[
        (MY, sql, {"kind": "transaction"})
        for sql in [
            "BEGIN",
            "BEGIN WORK",
            "START TRANSACTION READ ONLY",
            "COMMIT",
            "ROLLBACK",
            "SAVEPOINT s",
            "RELEASE SAVEPOINT s",
            "XA START 'x'",
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        ]
    ],
    # procedures, blocks, prepared statements
    (PG, "CALL s.p(1, now())", {"kind": "call", "functions": ("current_timestamp", "now", "p", "s.p")}),
    (MY, "CALL p", {"kind": "call", "functions": ("p",)}),
    (PG, "DO $$ BEGIN RAISE NOTICE 'hi'; END $$", {"kind": "do", "features": ("do_block",)}),
    (
        PG,
        "DO $$ BEGIN PERFORM pg_sleep(1); END $$",
        {"kind": "do", "functions": ("pg_sleep",), "features": ("do_block",)},
    ),
    (MY, "DO RELEASE_LOCK('x')", {"kind": "do", "functions": ("release_lock",), "features": ()}),
    (PG, "PREPARE p (int) AS SELECT * FROM t WHERE id = $1", {"kind": "prepare", "tables_read": ("t",)}),
    (
        PG,
        "EXECUTE p(pg_sleep(1))",
        {"kind": "execute", "functions": ("pg_sleep",), "features": ("dynamic_sql",)},
    ),
    (MY, "PREPARE s FROM @sql", {"kind": "prepare", "features": ("dynamic_sql",)}),
    (MY, "EXECUTE s USING @a, @b", {"kind": "execute", "features": ("dynamic_sql",)}),
    (PG, "DEALLOCATE ALL", {"kind": "deallocate"}),
    (MY, "DEALLOCATE PREPARE s", {"kind": "deallocate"}),
    (MY, "DROP PREPARE s", {"kind": "deallocate"}),
    # explain, show, use, lock and the rest
    (PG, "EXPLAIN SELECT * FROM t", {"kind": "explain", "tables_read": ("t",), "features": ()}),
    (
        PG,
        "EXPLAIN (ANALYZE false) DELETE FROM t",
        {"kind": "explain", "tables_written": ("t",), "features": ()},
    ),
    (PG, "EXPLAIN (FORMAT json, ANALYZE) SELECT 1", {"features": ("explain_analyze",)}),
    (MY, "EXPLAIN ANALYZE SELECT * FROM t", {"kind": "explain", "features": ("explain_analyze",)}),
    (MY, "EXPLAIN FORMAT=JSON DELETE FROM t", {"kind": "explain", "tables_written": ("t",)}),
    (MY, "DESCRIBE db.t", {"kind": "explain", "tables_read": ("db.t",)}),
    (PG, "SHOW search_path", {"kind": "show"}),
    (MY, "SHOW GRANTS FOR CURRENT_USER", {"kind": "show"}),
    (MY, "USE db", {"kind": "use"}),
    (PG, "LOCK TABLE ONLY a, b IN SHARE MODE NOWAIT", {"kind": "lock", "tables_written": ("a", "b")}),
    (MY, "LOCK TABLES t WRITE, u AS x READ", {"kind": "lock", "tables_written": ("t", "u")}),
    (MY, "UNLOCK TABLES", {"kind": "lock"}),
    (PG, "VACUUM (VERBOSE, ANALYZE) s.t", {"kind": "other", "tables_written": ("s.t",)}),
    (PG, "ANALYZE t", {"kind": "other", "tables_written": ("t",)}),
    (PG, "REFRESH MATERIALIZED VIEW CONCURRENTLY mv", {"kind": "other", "tables_written": ("mv",)}),
    (PG, "REINDEX TABLE t", {"kind": "other", "tables_written": ("t",)}),
    (PG, "CHECKPOINT", {"kind": "other", "tables_written": ()}),
    (PG, "LISTEN jobs", {"kind": "other"}),
    (PG, "NOTIFY jobs, 'x'", {"kind": "other"}),
    (PG, "DECLARE c CURSOR FOR SELECT * FROM t", {"kind": "other", "tables_read": ("t",)}),
    (PG, "FETCH 10 FROM c", {"kind": "other"}),
    (MY, "OPTIMIZE TABLE t1, t2", {"kind": "other", "tables_written": ("t1", "t2")}),
    (MY, "FLUSH PRIVILEGES", {"kind": "other"}),
    (MY, "KILL 42", {"kind": "other"}),
    (MY, "HANDLER t READ FIRST", {"kind": "other", "tables_read": ("t",), "features": ("handler",)}),
]


@pytest.mark.parametrize(("dialect", "sql", "expected"), KINDS)
def test_statements_are_classified(dialect: str, sql: str, expected: dict[str, Any]) -> None:
    attributes = one(sql, dialect).attributes()
    assert {k: attributes[k] for k in expected} == expected, attributes


# ------------------------------------------------------------------------ names and functions


@pytest.mark.parametrize(
    ("dialect", "sql", "read"),
    [
        (PG, "SELECT * FROM Users", ("users",)),
        (PG, 'SELECT * FROM "Users"', ("Users",)),
        (PG, 'SELECT * FROM Sales."Q1"', ("sales.Q1",)),
        (PG, "SELECT * FROM db.s.t", ("db.s.t",)),
        (MY, "SELECT * FROM Users", ("users",)),
        (MY, "SELECT * FROM `Sales`.`Q1`", ("Sales.Q1",)),
        (PG, "WITH x AS (SELECT * FROM a) SELECT * FROM x JOIN b ON true", ("a", "b")),
        (PG, "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT * FROM r", ()),
        (PG, "WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", ("b",)),  # b in a is the real b
        (PG, "WITH s.x AS (SELECT 1) SELECT 1", None),
        (
            PG,
            "SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.uid = u.id)",
            ("orders", "users"),
        ),
        (PG, "SELECT * FROM generate_series(1, 3) g", ()),
    ],
)
def test_table_names_are_normalised(dialect: str, sql: str, read: tuple[str, ...] | None) -> None:
    if read is None:
        unparseable(sql, dialect)
        return
    assert one(sql, dialect).tables_read == read


@pytest.mark.parametrize(
    ("dialect", "sql", "functions"),
    [
        (PG, "SELECT upper(name) FROM t ORDER BY lower(name)", {"upper", "lower"}),
        (PG, "SELECT * FROM t WHERE id IN (SELECT f(x) FROM u)", {"f"}),
        (PG, "WITH c AS (SELECT g(1)) SELECT * FROM c", {"g"}),
        (PG, "CREATE TABLE t (a timestamptz DEFAULT clock_timestamp())", {"clock_timestamp"}),
        (PG, "SELECT pg_catalog.pg_read_file('x')", {"pg_read_file", "pg_catalog.pg_read_file"}),
        (PG, "SELECT \"PG_READ_FILE\"('x')", {"pg_read_file"}),
        (PG, "SELECT now()", {"now"}),
        (PG, "SELECT * FROM dblink('h', 'q') AS t(a int)", {"dblink"}),
        (PG, "INSERT INTO t VALUES (nextval('s'))", {"nextval"}),
        (MY, "SELECT IF(a, SLEEP(1), 0) FROM t", {"if", "sleep"}),
        (MY, "SELECT BENCHMARK(1000000, MD5('x'))", {"benchmark", "md5"}),
    ],
)
def test_functions_are_found_everywhere(dialect: str, sql: str, functions: set[str]) -> None:
    assert functions <= set(one(sql, dialect).functions)


@pytest.mark.parametrize(
    ("where", "has_where"),
    [
        ("", False),
        ("WHERE id = 5", True),
        ("WHERE 1=1", False),
        ("WHERE (1 = 1)", False),
        ("WHERE true", False),
        ("WHERE NOT false", False),
        ("WHERE 'a' = 'a'", False),
        ("WHERE 1 = '1'", False),
        ("WHERE 2 > 1", False),
        ("WHERE 1 + 1 = 2", False),
        ("WHERE id = id", False),
        ("WHERE name LIKE '%'", False),
        ("WHERE id = 5 OR 1 = 1", False),
        ("WHERE id = 5 AND 1 = 1", True),
        ("WHERE 1 IN (1, 2)", False),
        ("WHERE 1 BETWEEN 0 AND 2", False),
        ("WHERE NULL IS NULL", False),
        ("WHERE CAST(1 AS boolean)", False),
        ("WHERE 'yes'", False),
        ("WHERE 1 = 2", True),
        ("WHERE false", True),
        ("WHERE id IS NOT NULL", True),
        ("WHERE EXISTS (SELECT 1 FROM t)", True),
    ],
)
def test_trivially_true_where_clauses_count_as_none(where: str, has_where: bool) -> None:
    assert one(f"DELETE FROM users {where}").has_where is has_where
    assert one(f"UPDATE users SET x = 1 {where}").has_where is has_where


# --------------------------------------------------------------------------------- splitting


def test_every_statement_is_returned_in_order_with_its_text() -> None:
    operation = parse_sql("  SELECT 1;\n-- note\nDELETE FROM t WHERE id = 2 ; ;\nCOMMIT;  ")
    assert [s.kind for s in operation.statements] == ["select", "delete", "transaction"]
    assert [s.text for s in operation.statements] == ["SELECT 1", "DELETE FROM t WHERE id = 2", "COMMIT"]


@pytest.mark.parametrize(
    ("dialect", "sql", "kinds"),
    [
        (PG, "SELECT ';'; SELECT 2", ["select", "select"]),
        (PG, "SELECT $$;$$; SELECT 2", ["select", "select"]),
        (PG, "SELECT $a$ $$; $a$", ["select"]),
        (PG, 'SELECT 1 AS ";"', ["select"]),
        (PG, "SELECT 1 /* ; */", ["select"]),
        (PG, "SELECT 1 -- ;\n", ["select"]),
        (PG, "SELECT E'\\';'", ["select"]),
        (MY, "SELECT `;`", ["select"]),
        (MY, "SELECT 1 # ;", ["select"]),
        (PG, "", []),
        (PG, " ;\n; -- nothing\n", []),
    ],
)
def test_semicolons_inside_tokens_do_not_split(dialect: str, sql: str, kinds: list[str]) -> None:
    assert [s.kind for s in parse_sql(sql, dialect).statements] == kinds  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- fail closed


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        (PG, "users"),
        (PG, "1 + 1"),
        (PG, "'DELETE FROM users'"),
        (PG, "SELEC 1"),
        (PG, "SELECT FROM WHERE"),
        (PG, "SELECT (1"),
        (PG, "SELECT 1)"),
        (PG, "SELECT 'unterminated"),
        (PG, "SELECT 1 /* unterminated"),
        (PG, "SELECT a$b$; DROP TABLE t; $b$"),
        (PG, "REPLACE INTO t VALUES (1)"),  # MySQL only
        (PG, "USE db"),
        (MY, "COPY t TO STDOUT"),  # PostgreSQL only
        (MY, "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE"),
        (PG, "CREATE RULE r AS ON INSERT TO t DO ALSO (DELETE FROM a; DELETE FROM b)"),
        (PG, "SELECT * FROM t WHERE x = 'a' UESCAPE '!'"),
        (PG, "EXPLAIN"),
        (PG, "EXECUTE"),
        (PG, "COPY t"),
        (PG, "COPY t TO PROGRAM"),
        (PG, "DO"),
        (MY, "DO"),
        (PG, "CALL"),
        (PG, "PREPARE p"),
        (PG, "BEGIN ATOMIC"),
        (PG, "SELECT " + "(" * 200 + "1" + ")" * 200),
        (PG, "SELECT " + "NOT " * 3000 + "true"),
        (PG, "SELECT 1 \u2028"),
        (PG, "SELECT \ud800"),
        (PG, "SELECT 'x" + "\x00" + "'"),
    ],
)
def test_what_is_not_understood_is_refused(dialect: str, sql: str) -> None:
    assert unparseable(sql, dialect)


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        (PG, "SELECT * FROM t FOR UPDATE"),
        (PG, "SELECT * FROM u WHERE id IN (SELECT id FROM t FOR NO KEY UPDATE SKIP LOCKED)"),
        (PG, "(SELECT * FROM t) FOR KEY SHARE"),
        (MY, "SELECT * FROM t LOCK IN SHARE MODE"),
        (MY, "WITH c AS (SELECT * FROM t FOR SHARE) SELECT * FROM c"),
    ],
)
def test_a_row_lock_sqlglot_would_drop_is_refused(
    dialect: str, sql: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should a sqlglot release read a locking clause and leave it out of the tree, the statement
    must not pass as a plain read: its tokens still spell the clause, so it is refused."""
    parser_class = _GlotDialect.get_or_raise(dialect).parser_class
    read_locks = parser_class._parse_locks
    monkeypatch.setattr(parser_class, "_parse_locks", lambda self: read_locks(self) and [])
    assert "row-locking clause" in unparseable(sql, dialect)
    assert one("SELECT substring(a FROM 1 FOR share) FROM t", dialect).features == ()  # no clause: read
    monkeypatch.undo()
    assert "row_lock" in one(sql, dialect).features


def test_input_is_capped_at_one_mebibyte() -> None:
    assert "1 MiB" in unparseable("SELECT 1;" * 120_000)
    assert "1 MiB" in unparseable("SELECT '" + "é" * 600_000 + "'")  # bytes, not characters


def test_other_inputs_are_refused() -> None:
    for bad in (None, b"SELECT 1", 42):
        with pytest.raises(UnparseableOperation):
            parse_sql(bad)  # type: ignore[arg-type]
    with pytest.raises(UnparseableOperation):
        parse_sql("SELECT 1", "oracle")  # type: ignore[arg-type]


def test_a_large_bulk_insert_is_classified() -> None:
    rows = ", ".join(f"({i}, 'name {i}')" for i in range(5000))
    statement = one(f"INSERT INTO t (id, name) VALUES {rows}")
    assert (statement.kind, statement.tables_written) == ("insert", ("t",))


# ------------------------------------------------------------------------------ the contract


def test_attributes_and_record() -> None:
    operation = parse_sql("WITH d AS (DELETE FROM users RETURNING *) SELECT count(*) FROM d; SELECT 1")
    statement = operation.statements[0]
    assert statement.attributes() == {
        "kind": "select",
        "ddl_action": None,
        "object_type": None,
        "tables_read": (),
        "tables_written": ("users",),
        "has_where": None,
        "functions": ("count",),
        "features": ("writes_in_cte",),
    }
    record = operation.to_record()
    assert json.loads(json.dumps(record)) == record
    assert record["protocol"] == "sql" and record["dialect"] == "postgres"
    assert record["statements"][0]["text"].startswith("WITH d AS")
    assert record["statements"][0]["tables_written"] == ["users"]
    assert isinstance(operation, SqlOperation) and len(record["statements"]) == 2


@pytest.mark.parametrize(("dialect", "sql", "expected"), KINDS[:40])
def test_attributes_are_sorted_and_unique(dialect: str, sql: str, expected: dict[str, Any]) -> None:
    for statement in parse_sql(sql, dialect).statements:  # type: ignore[arg-type]
        for field in ("tables_read", "tables_written", "functions", "features"):
            values = getattr(statement, field)
            assert isinstance(values, tuple) and list(values) == sorted(set(values))


# ---------------------------------------------------------------------------- bypass corpus


def test_the_bypass_corpus_is_large_and_covers_both_dialects() -> None:
    assert len(BYPASS_CORPUS) >= 40
    assert {dialect for dialect, _, _ in BYPASS_CORPUS} == {PG, MY}
    assert sum(1 for _, _, e in BYPASS_CORPUS if e.get("unparseable")) >= 10


@pytest.mark.parametrize(("dialect", "sql", "expectation"), BYPASS_CORPUS)
def test_bypass_attempts_are_seen(dialect: str, sql: str, expectation: dict[str, Any]) -> None:
    assert expectation_failures(sql, dialect, expectation) == []


def test_the_benchmark_corpus_is_classified() -> None:
    from benchmarks.sql_classification import corpus

    statements = corpus()
    assert len(statements) >= 200
    for dialect, sql in statements:
        parse_sql(sql, dialect)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------- properties

FRAGMENTS = [
    "SELECT", "*", "FROM", "users", "WHERE", "1=1", ";", "DELETE", "UPDATE", "SET", "x", "=", "INSERT",
    "INTO", "VALUES", "(", ")", ",", "'a'", "'", '"', "`", "$$", "$a$", "--", "\n", "/*", "*/", "/*!", "#",
    "DROP", "TABLE", "CREATE", "ALTER", "GRANT", "ON", "TO", "COPY", "PROGRAM", "STDIN", "EXPLAIN", "ANALYZE",
    "PREPARE", "AS", "EXECUTE", "DO", "CALL", "f(", "pg_sleep(1)", "WITH", "RETURNING", "LOCK", "BEGIN",
    "END", "COMMIT", "LOAD", "DATA", "INFILE", "OUTFILE", "HANDLER", "MERGE", "USING", "WHEN", "MATCHED",
    "THEN", "E'\\''", "U&", "\\", "@", "@@", "?", "$1", "::", "JOIN", "UNION", "SHOW", "VACUUM", "DECLARE",
    "CURSOR", "FOR", "\t", "\x0c", "\u00a0", "LANGUAGE", "sql", "RETURNS", "REPLACE", "CONFLICT", "0x41",
]  # fmt: skip
sqlish = st.lists(st.sampled_from(FRAGMENTS), max_size=16).map(" ".join) | st.lists(
    st.sampled_from(FRAGMENTS), max_size=12
).map("".join)
dialects = st.sampled_from([PG, MY])


def _classify_or_refuse(text: str, dialect: str) -> None:
    try:
        operation = parse_sql(text, dialect)  # type: ignore[arg-type]
    except UnparseableOperation as exc:
        assert isinstance(exc.reason, str) and exc.reason
        return
    assert isinstance(operation, SqlOperation)
    json.dumps(operation.to_record())
    for statement in operation.statements:
        assert statement.kind and statement.text.strip() == statement.text and statement.text


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(), dialects)
def test_any_text_is_classified_or_refused(text: str, dialect: str) -> None:
    _classify_or_refuse(text, dialect)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(sqlish, dialects)
def test_sql_like_text_is_classified_or_refused(text: str, dialect: str) -> None:
    _classify_or_refuse(text, dialect)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(sqlish, dialects)
def test_a_stacked_statement_is_never_swallowed(text: str, dialect: str) -> None:
    """Whatever classifiable text comes first, a DROP stacked after it is seen (or all is refused)."""
    try:
        before = parse_sql(text, dialect)  # type: ignore[arg-type]
    except UnparseableOperation:
        return
    try:
        after = parse_sql(f"{text}\n; DROP TABLE victim", dialect)  # type: ignore[arg-type]
    except UnparseableOperation:
        return
    assert [s.kind for s in after.statements] == [s.kind for s in before.statements] + ["ddl"]
    assert after.statements[-1].tables_written == ("victim",)
