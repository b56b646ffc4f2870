"""Reading the lake for the models, and writing their marts, through one DuckDB connection."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from cartpulse.duck import registered

#: Temporary view over the lake's clean events; never stored in the warehouse file.
EVENTS = "model_events"


class ModelDataError(ValueError):
    """The lake has no usable data for a model; the message says what to load first."""


def attach_lake(con: duckdb.DuckDBPyConnection, events_dir: Path) -> None:
    """Create the temporary view `model_events` over HOME/lake/events (Hive-partitioned)."""
    if not any(events_dir.glob("*/*.parquet")):
        raise ModelDataError(
            f"no events in {events_dir}: load some first with `cartpulse ingest FILE`"
        )
    pattern = str(events_dir / "*" / "*.parquet").replace("'", "''")
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {EVENTS} AS SELECT * FROM read_parquet('{pattern}', "
        "hive_partitioning = true, hive_types = {'event_date': DATE})"
    )


def fetch_arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """Run a query and return its result as an Arrow table (TIMESTAMPTZ-safe)."""
    return con.sql(sql).to_arrow_table()


def run_in_transaction(con: duckdb.DuckDBPyConnection, statements: list[str]) -> None:
    """Run SQL statements in one transaction: all of them take effect, or none."""
    con.execute("BEGIN")
    try:
        for sql in statements:
            con.execute(sql)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def replace_table(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> int:
    """Replace warehouse table `name` with `table` in one transaction; return its row count."""
    with registered(con, _model_output=table):
        run_in_transaction(con, [f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _model_output"])
    return int(table.num_rows)
