"""DuckDB connections as cartpulse uses them: every TIMESTAMPTZ read and written in UTC."""

from __future__ import annotations

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
