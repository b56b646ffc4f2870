"""Read the serving tables and marts from whichever store holds them: DuckDB or PostgreSQL.

The dashboard and other readers write one SQL text with `?` placeholders, which runs on both
stores for the tables and columns they share (the names are identical in both).
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import pyarrow as pa

from cartpulse.settings import Settings
from cartpulse.sinks.postgres.connect import connect_postgres

if TYPE_CHECKING:
    from cartpulse.sinks.postgres.connect import PgConnection

#: A quoted string or identifier, or a placeholder / percent sign outside them.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|%")


class ServingReader(Protocol):
    """Runs a parameterised SELECT on the serving store and returns an Arrow table."""

    backend: str

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Rows of `sql` (with `?` placeholders bound to `params`)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class DuckDBReader:
    """Reads warehouse.duckdb through a cursor of the process's DuckDB connection."""

    backend = "duckdb"

    def __init__(self, cursor: Callable[[], duckdb.DuckDBPyConnection]) -> None:
        self._cursor = cursor

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Rows of `sql` as Arrow."""
        con = self._cursor()
        try:
            return con.sql(sql, params=list(params)).to_arrow_table()
        finally:
            con.close()

    def close(self) -> None:
        """Nothing held between queries."""


class PostgresReader:
    """Reads the PostgreSQL serving store (one connection, reconnected when it drops).

    Safe to share between threads: queries take turns on the one connection.
    """

    backend = "postgres"

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._con: PgConnection | None = None
        self._lock = threading.Lock()

    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Rows of `sql` as Arrow (JSONB columns as lists / structs)."""
        with self._lock:
            try:
                return self._query(sql, params)
            except Exception as exc:
                if not _operational(exc) or (self._con is not None and not self._con.closed):
                    raise  # a real error, not a dropped connection
                self._con = None  # dropped (server restart, idle timeout): once more, anew
                return self._query(sql, params)

    def _query(self, sql: str, params: Sequence[Any]) -> pa.Table:
        if self._con is None or self._con.closed:
            self._con = connect_postgres(self._dsn)
        cur = self._con.execute(to_pyformat(sql), list(params))
        names = [c.name for c in cur.description or []]
        rows = cur.fetchall()
        return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None


def _operational(exc: BaseException) -> bool:
    psycopg = sys.modules.get("psycopg")  # loaded by connect_postgres when in use
    return psycopg is not None and isinstance(exc, psycopg.OperationalError)


def to_pyformat(sql: str) -> str:
    """`?` placeholders (outside quoted text) to psycopg's `%s`; every literal `%` to `%%`."""

    def swap(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        return token.replace("%", "%%")  # psycopg reads `%` even inside quoted text

    return _TOKENS.sub(swap, sql)


def open_serving_reader(
    settings: Settings, duckdb_cursor: Callable[[], duckdb.DuckDBPyConnection]
) -> ServingReader:
    """PostgreSQL when serving.postgres_dsn is set, else the DuckDB warehouse."""
    if settings.serving.postgres_dsn is not None:
        return PostgresReader(settings.serving.postgres_dsn.get_secret_value())
    return DuckDBReader(duckdb_cursor)


def open_dashboard_reader(
    settings: Settings, duckdb_cursor: Callable[[], duckdb.DuckDBPyConnection]
) -> ServingReader:
    """The store the dashboard's insight pages read: dashboard.read_from."""
    if settings.dashboard.read_from == "postgres" and settings.serving.postgres_dsn is not None:
        return PostgresReader(settings.serving.postgres_dsn.get_secret_value())
    return DuckDBReader(duckdb_cursor)
