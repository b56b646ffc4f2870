"""What every operator shares: an in-memory DuckDB connection of its own (no I/O)."""

from __future__ import annotations

import duckdb

from cartpulse import duck


class DuckOperator:
    """Owns one in-memory DuckDB connection; subclasses run their SQL on `self._con`."""

    def __init__(self) -> None:
        self._con = duck.connect()

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The operator's own DuckDB connection (settings such as threads apply to it)."""
        return self._con

    def close(self) -> None:
        """Release the DuckDB connection."""
        self._con.close()
