"""release_before: dropping memory maps of segments a consumer has passed."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from cartpulse.log import EmbeddedEventLog
from cartpulse.schema import EVENT_SCHEMA


def batch(n: int, first: int) -> pa.Table:
    table = EVENT_SCHEMA.empty_table()
    rows = {
        "event_time": pa.array(
            [1_570_000_000_000_000 + i for i in range(n)], pa.timestamp("us", tz="UTC")
        ),
        "event_type": ["view"] * n,
        "product_id": pa.array(range(first, first + n), pa.int64()),
        "category_id": pa.nulls(n, pa.int64()),
        "category_code": pa.nulls(n, pa.string()),
        "brand": pa.nulls(n, pa.string()),
        "price": pa.array([1.0] * n),
        "user_id": pa.array([1] * n, pa.int64()),
        "user_session": pa.nulls(n, pa.string()),
    }
    return pa.table(rows, schema=table.schema)


def test_released_segments_are_mapped_again_on_read(tmp_path: Path) -> None:
    log = EmbeddedEventLog(tmp_path / "log", writable=True, fsync="never", segment_bytes=4096)
    for i in range(10):
        log.append(batch(50, i * 50))
    first = log.read(0, 500).table.column("product_id").to_pylist()
    log.release_before(400)
    again = log.read(0, 500).table.column("product_id").to_pylist()
    assert first == again == list(range(500))
    log.close()
