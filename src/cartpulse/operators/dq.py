"""Data-quality counts per minute of event time: accepted events, zero prices, late purchases."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DQ_SCHEMA = pa.schema(
    [
        ("minute", pa.timestamp("us", tz="UTC")),
        ("reason", pa.string()),
        ("rows", pa.int64()),
    ]
)

_US_PER_MINUTE = 60_000_000


def event_dq_counts(events: pa.Table, late_purchases: pa.Table) -> pa.Table:
    """Counts by (minute, reason) for a batch of clean events plus its late purchases."""
    if events.num_rows == 0:
        return late_purchases.cast(DQ_SCHEMA)
    times = events.column("event_time").cast(pa.int64()).to_numpy()
    zero = pc.fill_null(pc.equal(events.column("price"), 0.0), False).to_numpy(zero_copy_only=False)
    parts = [
        per_minute_counts(times, "accepted"),
        per_minute_counts(times[zero], "zero_price"),
        late_purchases.cast(DQ_SCHEMA),
    ]
    return pa.concat_tables(parts)


def per_minute_counts(times_us: np.ndarray, reason: str) -> pa.Table:
    """Rows per minute of `times_us` (µs since the epoch, UTC), as (minute, reason, rows)."""
    if len(times_us) == 0:
        return DQ_SCHEMA.empty_table()
    minutes = times_us // _US_PER_MINUTE
    low, high = int(minutes.min()), int(minutes.max())
    if high - low < max(1_000_000, 4 * len(minutes)):
        # A batch usually spans few minutes for its size: counting avoids a sort.
        counts = np.bincount(minutes - low)
        present = np.flatnonzero(counts)
        keys = present + low
        counts = counts[present]
    else:  # a stray far-off timestamp: a dense count array would be huge
        unique = np.unique(minutes, return_counts=True)
        keys = unique[0]
        counts = unique[1]
    return pa.table(
        {
            "minute": pa.array(keys * _US_PER_MINUTE, pa.timestamp("us", tz="UTC")),
            "reason": pa.array([reason] * len(keys), pa.string()),
            "rows": pa.array(counts, pa.int64()),
        },
        schema=DQ_SCHEMA,
    )
