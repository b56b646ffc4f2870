"""Rejected rows to the lake's quarantine folder, and their counts to `dq_counts`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa

from cartpulse.duck import registered
from cartpulse.schema import QUARANTINE_SCHEMA
from cartpulse.sinks.staging import parquet_bytes, write_atomic


def write_quarantine(
    quarantine_dir: Path, ingested_at: dt.datetime, name: str, rows: pa.Table, fsync: bool
) -> Path | None:
    """Write rejected rows as one Parquet file named `name` (replaced whole if it exists)."""
    if rows.num_rows == 0:
        return None
    folder = quarantine_dir / f"ingest_date={ingested_at.date().isoformat()}"
    final = folder / f"{name}.parquet"
    write_atomic(final, parquet_bytes(rows.cast(QUARANTINE_SCHEMA)), fsync=fsync)
    return final


def add_dq_counts(con: duckdb.DuckDBPyConnection, quarantine: pa.Table, dupes: pa.Table) -> None:
    """Add quarantined rows (by reason and minute of ingest) and duplicates to `dq_counts`.

    `dupes` has the duplicates' `event_time`. Runs in the caller's transaction, if any.
    """
    if quarantine.num_rows == 0 and dupes.num_rows == 0:
        return
    with registered(con, q_rows=quarantine, d_rows=dupes):
        con.execute(
            """
            INSERT INTO dq_counts
            SELECT date_trunc('minute', ingested_at), reason, count(*) FROM q_rows GROUP BY ALL
            UNION ALL
            SELECT date_trunc('minute', event_time), 'duplicate', count(*) FROM d_rows GROUP BY ALL
            ON CONFLICT (minute, reason) DO UPDATE SET rows = dq_counts.rows + excluded.rows
            """
        )
