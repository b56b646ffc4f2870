"""Throughput of the embedded event log: append and read, per fsync policy and batch size.

`cartpulse bench` can call `bench_event_log`; the numbers in docs/event-log.md come from it.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cartpulse.log.base import FsyncPolicy
from cartpulse.log.embedded import DEFAULT_SEGMENT_BYTES, EmbeddedEventLog
from cartpulse.schema import EVENT_SCHEMA

_CODES = np.array(["electronics.smartphone", "appliances.kitchen.washer", "apparel.shoes", None])
_BRANDS = np.array(["samsung", "apple", "xiaomi", "runail", None])
_TYPES = np.array(["view", "view", "view", "cart", "remove_from_cart", "purchase"])


@dataclass(frozen=True)
class LogBenchResult:
    """One measurement: events/s appending (fsync included) and reading back."""

    fsync: str
    batch_rows: int
    events: int
    bytes_per_event: float
    append_events_per_s: float
    append_p50_ms: float
    append_p99_ms: float
    read_events_per_s: float
    """read() in chunks of `batch_rows` from a separate reader instance (zero-copy)."""
    read_sum_events_per_s: float
    """The same, also summing `price` over every chunk, so each value is actually touched."""

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON output."""
        return asdict(self)


def sample_batch(rows: int, seed: int = 0) -> pa.RecordBatch:
    """Realistic clean events (REES46-like strings and value ranges)."""
    rng = np.random.default_rng(seed)
    sessions = np.array([f"{i:08x}-4dac-4778-8d2c-92e149dab885" for i in range(max(rows // 8, 1))])
    return pa.RecordBatch.from_arrays(
        [
            pa.array(
                1_569_888_000_000_000 + np.arange(rows) * 10_000, pa.timestamp("us", tz="UTC")
            ),
            pa.array(_TYPES[rng.integers(0, len(_TYPES), rows)]),
            pa.array(rng.integers(1_000_000, 100_000_000, rows)),
            pa.array(rng.integers(2_053_013_552_000_000_000, 2_053_013_560_000_000_000, rows)),
            pa.array(_CODES[rng.integers(0, len(_CODES), rows)].tolist(), pa.string()),
            pa.array(_BRANDS[rng.integers(0, len(_BRANDS), rows)].tolist(), pa.string()),
            pa.array(np.round(rng.gamma(2.0, 60.0, rows), 2)),
            pa.array(rng.integers(500_000_000, 600_000_000, rows)),
            pa.array(sessions[rng.integers(0, len(sessions), rows)]),
        ],
        schema=EVENT_SCHEMA,
    )


def bench_event_log(
    fsync: FsyncPolicy,
    batch_rows: int,
    events: int,
    directory: Path | None = None,
    segment_bytes: int = DEFAULT_SEGMENT_BYTES,
) -> LogBenchResult:
    """Append `events` in batches of `batch_rows` to a fresh log, then read them all back."""
    batch = sample_batch(batch_rows)
    appends = max(events // batch_rows, 1)
    work = Path(tempfile.mkdtemp(prefix="cartpulse-log-bench-", dir=directory))
    try:
        latencies = np.empty(appends)
        with EmbeddedEventLog(work, writable=True, fsync=fsync, segment_bytes=segment_bytes) as log:
            started = time.perf_counter()
            for i in range(appends):
                t0 = time.perf_counter()
                log.append(batch)
                latencies[i] = time.perf_counter() - t0
            log.sync()  # count the last fsync in the total: durable means durable
            append_s = time.perf_counter() - started
        total = appends * batch_rows
        size = sum(p.stat().st_size for p in work.glob("*.arrows"))
        read_s = _read_all(work, batch_rows, touch=False)
        read_sum_s = _read_all(work, batch_rows, touch=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return LogBenchResult(
        fsync=fsync,
        batch_rows=batch_rows,
        events=total,
        bytes_per_event=round(size / total, 1),
        append_events_per_s=round(total / append_s),
        append_p50_ms=round(float(np.percentile(latencies, 50)) * 1e3, 3),
        append_p99_ms=round(float(np.percentile(latencies, 99)) * 1e3, 3),
        read_events_per_s=round(total / read_s),
        read_sum_events_per_s=round(total / read_sum_s),
    )


def _read_all(directory: Path, chunk_rows: int, touch: bool) -> float:
    """Seconds to read the whole log like a consumer does, chunk by chunk."""
    with EmbeddedEventLog(directory) as log:
        started = time.perf_counter()
        offset, end = log.start_offset(), log.end_offset()
        while offset < end:
            part = log.read(offset, chunk_rows)
            if touch:
                pc.sum(part.table.column("price"))
            offset = part.end
        return time.perf_counter() - started
