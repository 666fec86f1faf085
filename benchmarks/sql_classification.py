"""Throughput of ``wardgate.operations.sql.parse_sql``: statements classified per second, one core.

The corpus is a mix of what agents send to databases, in both dialects: simple selects, joins,
aggregates, CTEs and window functions, inserts with many rows, upserts, updates, deletes, DDL,
transaction control and session statements (see ``corpus()``). Each statement is parsed on its own
(one ``parse_sql`` call per statement, as the gateway does per request); a run parses the whole
corpus ``--passes`` times, and the table shows the median of ``--runs`` runs.

    .venv/bin/python benchmarks/sql_classification.py            # print the table
    .venv/bin/python benchmarks/sql_classification.py --write    # and update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "layers" / "wardgate"))

from wardgate.operations.sql import parse_sql  # noqa: E402

MARKERS = ("<!-- sqlclass:start -->", "<!-- sqlclass:end -->")
TARGET_PER_SECOND = 5000

TABLES = ["users", "orders", "order_items", "products", "invoices", "accounts", "events", "sessions"]
COLUMNS = ["id", "name", "email", "status", "created_at", "amount", "user_id", "total"]


def _values(rows: int, offset: int = 0) -> str:
    return ", ".join(
        f"({offset + i}, 'name {offset + i}', 'user{offset + i}@example.com', {i * 3.5})" for i in range(rows)
    )


def _shared(i: int) -> list[str]:
    """Statements both dialects accept, varied by ``i``."""
    t, u = TABLES[i % len(TABLES)], TABLES[(i + 3) % len(TABLES)]
    c, d = COLUMNS[i % len(COLUMNS)], COLUMNS[(i + 1) % len(COLUMNS)]
    return [
        f"SELECT * FROM {t} WHERE id = {i}",
        f"SELECT {c}, {d} FROM {t} WHERE {c} > {i} ORDER BY {d} DESC LIMIT 50",
        f"SELECT count(*) FROM {t} WHERE status = 'active' AND created_at >= '2024-01-0{1 + i % 9}'",
        f"SELECT a.id, a.{c}, b.total FROM {t} a JOIN {u} b ON b.user_id = a.id "
        f"WHERE a.status IN ('new', 'open')",
        f"SELECT status, count(*) AS n, sum(amount) AS s FROM {t} GROUP BY status "
        f"HAVING count(*) > {i} ORDER BY n",
        f"SELECT * FROM {t} WHERE user_id IN (SELECT id FROM {u} WHERE email LIKE '%@example.com') LIMIT 10",
        f"WITH recent AS (SELECT * FROM {t} WHERE created_at > '2024-06-01') "
        f"SELECT r.id, count(o.id) FROM recent r LEFT JOIN {u} o ON o.user_id = r.id GROUP BY r.id",
        f"SELECT id, amount, row_number() OVER (PARTITION BY user_id ORDER BY created_at) AS rn FROM {t}",
        f"SELECT coalesce(max(amount), 0) FROM {t} WHERE user_id = {i} AND status <> 'void'",
        f"SELECT DISTINCT {c} FROM {t} UNION SELECT {c} FROM {u}",
        f"INSERT INTO {t} (id, name, email, amount) VALUES {_values(3, i)}",
        f"INSERT INTO {t} (id, name, email, amount) VALUES {_values(25, i * 100)}",
        f"INSERT INTO {u} ({c}) SELECT {c} FROM {t} WHERE id < {i}",
        f"UPDATE {t} SET status = 'closed', amount = amount * 1.1 WHERE id = {i}",
        f"UPDATE {t} SET {c} = NULL WHERE created_at < '2020-01-01' AND status = 'stale'",
        f"DELETE FROM {t} WHERE id = {i}",
        f"DELETE FROM {t} WHERE created_at < '2019-01-01' AND status IN ('void', 'expired')",
        f"CREATE TABLE archive_{i} (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, amount DECIMAL(10, 2))",
        f"CREATE INDEX idx_{t}_{c} ON {t} ({c})",
        f"ALTER TABLE {t} ADD COLUMN note_{i} VARCHAR(255)",
        f"DROP TABLE IF EXISTS tmp_{i}",
        "BEGIN",
        "COMMIT",
    ]


def _postgres(i: int) -> list[str]:
    t, u = TABLES[i % len(TABLES)], TABLES[(i + 5) % len(TABLES)]
    return [
        f"SELECT id, data->>'kind' AS kind FROM {t} WHERE data @> '{{\"a\": {i}}}'::jsonb",
        f"INSERT INTO {t} (id, name) VALUES ({i}, 'x') ON CONFLICT (id) DO UPDATE SET name = excluded.name",
        f"UPDATE {t} SET amount = {u}.amount FROM {u} WHERE {t}.id = {u}.id AND {u}.status = 'ok' "
        f"RETURNING {t}.id",
        f"DELETE FROM {t} USING {u} WHERE {t}.user_id = {u}.id AND {u}.status = 'banned'",
        f"MERGE INTO {t} d USING {u} s ON d.id = s.id WHEN MATCHED THEN UPDATE SET amount = s.amount "
        f"WHEN NOT MATCHED THEN INSERT (id, amount) VALUES (s.id, s.amount)",
        f"SELECT date_trunc('day', created_at) AS d, count(*) FROM {t} GROUP BY 1 ORDER BY 1",
        f"EXPLAIN SELECT * FROM {t} WHERE id = {i}",
        "SET search_path TO app, public",
        f"COPY (SELECT id, name FROM {t}) TO STDOUT WITH (FORMAT csv)",
        f"CREATE TABLE IF NOT EXISTS audit_{i} (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), "
        "payload jsonb)",
    ]


def _mysql(i: int) -> list[str]:
    t, u = TABLES[i % len(TABLES)], TABLES[(i + 5) % len(TABLES)]
    return [
        f"SELECT `id`, `name` FROM `{t}` WHERE `status` = 'active' LIMIT {i}, 20",
        f"INSERT INTO {t} (id, name) VALUES ({i}, 'x') ON DUPLICATE KEY UPDATE name = VALUES(name)",
        f"UPDATE {t} a JOIN {u} b ON a.user_id = b.id SET a.status = 'x' WHERE b.id = {i}",
        f"DELETE FROM {t} WHERE id = {i} LIMIT 1",
        f"REPLACE INTO {t} (id, name) VALUES ({i}, 'y')",
        f"SELECT DATE_FORMAT(created_at, '%Y-%m') AS m, COUNT(*) FROM {t} GROUP BY m",
        f"SELECT IFNULL(name, 'n/a'), CONCAT(name, ' <', email, '>') FROM {t} WHERE id = {i}",
        "SHOW TABLES",
        "SET NAMES utf8mb4",
        f"DESCRIBE {t}",
    ]


def corpus() -> list[tuple[str, str]]:
    """(dialect, statement) pairs; more than 200 of them, every one classifiable."""
    out: list[tuple[str, str]] = []
    for i in range(6):
        out += [("postgres", s) for s in _shared(i) + _postgres(i)]
        out += [("mysql", s) for s in _shared(i) + _mysql(i)]
    return out


def run_once(statements: list[tuple[str, str]], passes: int) -> float:
    """Statements per second over ``passes`` passes of the corpus."""
    gc.collect()
    start = time.perf_counter()
    for _ in range(passes):
        for dialect, sql in statements:
            parse_sql(sql, dialect)  # type: ignore[arg-type]
    return passes * len(statements) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()

    from common import DOC, code_version, machine, write_section

    statements = corpus()
    for dialect, sql in statements:  # the corpus must be classifiable, and this warms the caches
        parse_sql(sql, dialect)  # type: ignore[arg-type]
    by_dialect = {d: [(x, s) for x, s in statements if x == d] for d in ("postgres", "mysql")}
    rows = []
    for label, subset in [("both dialects", statements), *by_dialect.items()]:
        rates = [run_once(subset, args.passes) for _ in range(args.runs)]
        rows.append((label, len(subset), statistics.median(rates), min(rates), max(rates)))

    import sqlglot

    try:
        import sqlglot.parser as compiled_probe

        compiled = compiled_probe.__file__ is not None and compiled_probe.__file__.endswith(".so")
    except AttributeError:  # pragma: no cover
        compiled = False
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Run {when} of {code_version()} on {machine()}; sqlglot {sqlglot.__version__} "
        f"({'mypyc-compiled, sqlglot[c]' if compiled else 'pure Python'}); {len(statements)} statements, "
        f"{args.passes} passes per run, median of {args.runs} runs, one process (one core).",
        "",
        "| corpus | statements | median (statements/s) | min | max | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for label, count, median, low, high in rows:
        verdict = "met" if median >= TARGET_PER_SECOND else "missed"
        lines.append(
            f"| {label} | {count} | **{median:,.0f}** | {low:,.0f} | {high:,.0f} | "
            f">= {TARGET_PER_SECOND:,}/s: {verdict} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.write:
        if MARKERS[0] not in DOC.read_text():
            DOC.write_text(
                DOC.read_text().rstrip("\n") + f"\n\n## SQL classification\n\n{MARKERS[0]}\n{MARKERS[1]}\n"
            )
        write_section(MARKERS, text)
        print(f"updated {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
