"""Read-only SQL over the lake (`events`, `quarantine`) and every warehouse table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from cartpulse import duck
from cartpulse.retarget.performance import create_performance_view
from cartpulse.schema import EVENT_SCHEMA, EVENTS_VIEW, QUARANTINE_SCHEMA, QUARANTINE_VIEW
from cartpulse.settings import Settings

_READ_ONLY = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


class QueryError(Exception):
    """The SQL is not allowed or failed; the message is one line for the user."""


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of a query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        """Rows as objects keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class WarehouseBusyError(QueryError):
    """Another process (`cartpulse serve`) holds the warehouse open for writing."""


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with views over the lake and the warehouse attached read-only."""
    con = duck.connect()
    lake_views(con, settings)
    if settings.warehouse_path.exists():
        try:
            con.execute(f"ATTACH '{settings.warehouse_path}' AS warehouse (READ_ONLY)")
            con.execute("SET search_path = 'memory.main,warehouse.main'")
            create_performance_view(con)
        except duckdb.IOException as exc:
            con.close()
            message = f"cannot open {settings.warehouse_path} read-only: {_first_line(exc)}"
            if "lock" in str(exc).lower():
                raise WarehouseBusyError(message) from None
            raise QueryError(message) from None
    return con


def lake_views(con: duckdb.DuckDBPyConnection, settings: Settings, temp: bool = False) -> None:
    """Views `events` and `quarantine` over the lake (temporary ones on a live cursor)."""
    _lake_view(con, EVENTS_VIEW, settings.events_dir, "event_date", EVENT_SCHEMA.names, temp)
    _lake_view(
        con,
        QUARANTINE_VIEW,
        settings.quarantine_dir,
        "ingest_date",
        QUARANTINE_SCHEMA.names,
        temp,
    )


def live_views(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Make a cursor of the open warehouse answer what `cartpulse query` answers."""
    lake_views(con, settings, temp=True)
    create_performance_view(con, temp=True)


def check_read_only(sql: str) -> None:
    """Refuse anything but one read-only statement (SELECT, WITH, DESCRIBE, SHOW, EXPLAIN…)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(_first_line(exc)) from None
    if len(statements) != 1:
        raise QueryError(f"expected exactly one SQL statement, got {len(statements)}")
    if statements[0].type not in _READ_ONLY:
        kind = statements[0].type.name
        raise QueryError(f"only read-only queries are allowed (got a {kind} statement)")


def execute(con: duckdb.DuckDBPyConnection, sql: str) -> QueryResult:
    """Run a checked statement on `con` and return its rows."""
    try:
        # Through Arrow: DuckDB's own Python conversion of TIMESTAMPTZ needs pytz.
        relation = con.sql(sql)
        if relation is None:
            return QueryResult([], [])
        table = relation.to_arrow_table()
    except duckdb.Error as exc:
        raise QueryError(_first_line(exc)) from None
    columns = [c.to_pylist() for c in table.columns]
    return QueryResult(list(table.column_names), list(zip(*columns, strict=True)))


def run_query(settings: Settings, sql: str) -> QueryResult:
    """Run one read-only statement; while `serve` owns the warehouse, `serve` answers it."""
    check_read_only(sql)
    try:
        con = connect(settings)
    except WarehouseBusyError as busy:
        from cartpulse.serve.handle import query_running_serve

        result = query_running_serve(settings, sql)
        if result is None:
            raise busy from None
        return result
    try:
        return execute(con, sql)
    finally:
        con.close()


def _lake_view(
    con: duckdb.DuckDBPyConnection,
    name: str,
    folder: Path,
    partition: str,
    columns: list[str],
    temp: bool = False,
) -> None:
    """A view over a partitioned Parquet folder; an empty typed view when it has no files yet."""
    kind = f"OR REPLACE TEMP VIEW {name}" if temp else f"VIEW main.{name}"
    if any(folder.glob("*/*.parquet")):
        pattern = str(folder / "*" / "*.parquet")
        con.execute(
            f"CREATE {kind} AS SELECT * FROM read_parquet('{pattern}', "
            f"hive_partitioning = true, hive_types = {{'{partition}': DATE}})"
        )
        return
    schema = EVENT_SCHEMA if name == EVENTS_VIEW else QUARANTINE_SCHEMA
    cols = ", ".join(f"NULL::{_sql_type(schema.field(c).type)} AS {c}" for c in columns)
    con.execute(f"CREATE {kind} AS SELECT {cols}, NULL::DATE AS {partition} WHERE false")


def _sql_type(typ: Any) -> str:
    text = str(typ)
    if text.startswith("timestamp"):
        return "TIMESTAMPTZ"
    return {"string": "VARCHAR", "int64": "BIGINT", "double": "DOUBLE"}.get(text, "VARCHAR")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
