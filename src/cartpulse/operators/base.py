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

    def drop_temp(self, *names: str) -> None:
        """Drop a batch's temporary tables so their memory is not held until the next batch."""
        for name in names:
            self._con.execute(f"DROP TABLE IF EXISTS {name}")
