"""DuckDB helpers: Arrow tables visible to queries for the length of a block."""

from __future__ import annotations

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
