"""Data-quality counts per minute of event time: accepted events, zero prices, late purchases."""

from __future__ import annotations

import duckdb
import pyarrow as pa

DQ_SCHEMA = pa.schema(
    [
        ("minute", pa.timestamp("us", tz="UTC")),
        ("reason", pa.string()),
        ("rows", pa.int64()),
    ]
)


def event_dq_counts(events: pa.Table, late_purchases: pa.Table) -> pa.Table:
    """Counts by (minute, reason) for a batch of clean events plus its late purchases."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("ev", events)
        con.register("late", late_purchases)
        table = con.sql(
            """
            SELECT date_trunc('minute', event_time) AS minute, 'accepted' AS reason,
                   count(*)::BIGINT AS rows
            FROM ev GROUP BY 1
            UNION ALL
            SELECT date_trunc('minute', event_time), 'zero_price', count(*)::BIGINT
            FROM ev WHERE price = 0 GROUP BY 1
            UNION ALL
            SELECT minute, 'late_purchase', rows FROM late
            """
        ).to_arrow_table()
    finally:
        con.close()
    return table.cast(DQ_SCHEMA)
