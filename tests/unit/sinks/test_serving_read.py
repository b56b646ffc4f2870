"""The store-neutral reader: placeholders and percent signs for PostgreSQL, DuckDB as is."""

from __future__ import annotations

import pytest

from cartpulse import duck
from cartpulse.settings import Settings
from cartpulse.sinks.serving_read import (
    DuckDBReader,
    PostgresReader,
    open_dashboard_reader,
    open_serving_reader,
    to_pyformat,
)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM t WHERE a = ? AND b > ?", "SELECT * FROM t WHERE a = %s AND b > %s"),
        (
            "SELECT '?' AS q, a % 2 FROM t WHERE a = ?",
            "SELECT '?' AS q, a %% 2 FROM t WHERE a = %s",
        ),
        (
            "SELECT x FROM t WHERE b LIKE 'ab%' AND c = ?",
            "SELECT x FROM t WHERE b LIKE 'ab%%' AND c = %s",
        ),
        (
            "SELECT \"we?ird\" FROM t WHERE s = 'it''s ?'",
            "SELECT \"we?ird\" FROM t WHERE s = 'it''s ?'",
        ),
    ],
)
def test_placeholders_become_pyformat_outside_quotes(sql: str, expected: str) -> None:
    assert to_pyformat(sql) == expected


def test_duckdb_reader_binds_parameters() -> None:
    con = duck.connect()
    con.execute("CREATE TABLE t AS SELECT range AS a FROM range(5)")
    reader = DuckDBReader(con.cursor)
    assert reader.query("SELECT a FROM t WHERE a >= ? ORDER BY a", [3]).to_pylist() == [
        {"a": 3},
        {"a": 4},
    ]
    reader.close()
    con.close()


def test_the_reader_follows_the_serving_setting() -> None:
    con = duck.connect()
    assert open_serving_reader(Settings(), con.cursor).backend == "duckdb"
    pg = open_serving_reader(
        Settings(serving={"postgres_dsn": "postgresql://bi@127.0.0.1:5432/shop"}), con.cursor
    )
    assert isinstance(pg, PostgresReader) and pg.backend == "postgres"
    con.close()


def test_the_dashboard_reader_follows_dashboard_read_from() -> None:
    con = duck.connect()
    dsn = {"postgres_dsn": "postgresql://bi@127.0.0.1:5432/shop"}
    assert open_dashboard_reader(Settings(serving=dsn), con.cursor).backend == "duckdb"
    both = Settings(serving=dsn, dashboard={"read_from": "postgres"})
    assert isinstance(open_dashboard_reader(both, con.cursor), PostgresReader)
    con.close()
