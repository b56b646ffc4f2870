"""Group commit: concurrent appends share log appends, and each gets its own offsets."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pyarrow as pa

from cartpulse.collector.group_append import GroupAppender
from cartpulse.log import AppendResult, EmbeddedEventLog, MemoryEventLog
from cartpulse.schema import EVENT_SCHEMA


def _events(tag: int, n: int) -> pa.Table:
    return pa.table(
        {
            "event_time": pa.array([1_570_000_000_000_000 + i for i in range(n)], pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "event_type": ["view"] * n,
            "product_id": [tag] * n,
            "category_id": pa.nulls(n, pa.int64()),
            "category_code": pa.nulls(n, pa.string()),
            "brand": pa.nulls(n, pa.string()),
            "price": [1.0] * n,
            "user_id": list(range(n)),
            "user_session": [f"t{tag}"] * n,
        },
        schema=EVENT_SCHEMA,
    )


class SlowLog(MemoryEventLog):
    """An in-memory log whose appends take as long as an fsync, so callers pile up."""

    def append(self, batch: pa.RecordBatch | pa.Table) -> AppendResult:
        time.sleep(0.02)
        return super().append(batch)


def test_concurrent_callers_get_their_own_rows_back_and_share_appends() -> None:
    log = SlowLog()
    appender = GroupAppender(log)
    firsts: dict[int, int | None] = {}

    def call(tag: int) -> None:
        firsts[tag] = appender.append(_events(tag, 10 + tag))

    threads = [threading.Thread(target=call, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert appender.appends < 16
    table = log.read(0, 10_000).table
    for tag, first in firsts.items():
        assert first is not None
        rows = table.slice(first, 10 + tag)
        assert set(rows.column("product_id").to_pylist()) == {tag}


def test_empty_tables_are_not_appended(tmp_path: Path) -> None:
    log = EmbeddedEventLog(tmp_path / "log", writable=True)
    try:
        appender = GroupAppender(log)
        assert appender.append(_events(1, 0)) is None
        assert appender.append(_events(1, 3)) == 0
        assert log.end_offset() == 3
    finally:
        log.close()
