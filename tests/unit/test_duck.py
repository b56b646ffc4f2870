"""DuckDB helpers: Arrow tables visible to queries for the length of a block."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pyarrow as pa
import pytest

from cartpulse import duck


def visible(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    try:
        con.sql(f"SELECT * FROM {name}").fetchall()
    except duckdb.CatalogException:
        return False
    return True


def test_tables_are_visible_inside_the_block_only() -> None:
    con = duck.connect()
    with duck.registered(con, a=pa.table({"x": [1, 2]}), b=pa.table({"y": [3]})):
        assert con.sql("SELECT sum(x) + sum(y) FROM a, b").fetchall() == [(9,)]
    assert not visible(con, "a") and not visible(con, "b")


def test_an_error_in_the_block_still_unregisters() -> None:
    con = duck.connect()
    with pytest.raises(duckdb.BinderException), duck.registered(con, a=pa.table({"x": [1]})):
        con.sql("SELECT nope FROM a").fetchall()
    assert not visible(con, "a")


def test_a_failed_registration_leaves_none_behind() -> None:
    con = duck.connect()
    with (
        pytest.raises(duckdb.InvalidInputException),
        duck.registered(con, a=pa.table({"x": [1]}), b=object()),
    ):
        pass
    assert not visible(con, "a")


def test_arrow_returns_the_rows_with_positional_or_named_parameters() -> None:
    con = duck.connect()
    con.execute("CREATE TABLE runs AS SELECT range AS n FROM range(5)")
    got = duck.arrow(con, "SELECT n, ? * 2 AS twice FROM runs WHERE n = ?", [21, 3])
    assert got.to_pylist() == [{"n": 3, "twice": 42}]
    assert duck.arrow(con, "SELECT n FROM runs WHERE n > $low", {"low": 2}).num_rows == 2
    assert duck.arrow(con, "SELECT n FROM runs").equals(
        con.sql("SELECT n FROM runs").to_arrow_table()
    )


def test_arrow_shows_no_warning_even_when_warnings_are_shown_always() -> None:
    code = "from cartpulse import duck; duck.arrow(duck.connect(), 'SELECT 1')"
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stderr == ""
