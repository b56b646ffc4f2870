"""DuckDB connections as cartpulse uses them: every TIMESTAMPTZ read and written in UTC."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb


def connect(
    database: str | Path = ":memory:", read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection (in memory by default) whose session time zone is UTC."""
    con = duckdb.connect(str(database), read_only=read_only)
    # Without this, DuckDB renders and truncates TIMESTAMPTZ in the machine's local zone.
    con.execute("SET TimeZone = 'UTC'")
    return con


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, **tables: object) -> Iterator[None]:
    """Each Arrow table (or batch) visible to `con`'s queries under its keyword's name, for
    the length of the block."""
    done: list[str] = []
    try:
        for name, data in tables.items():
            con.register(name, data)
            done.append(name)
        yield
    finally:
        for name in done:
            con.unregister(name)
