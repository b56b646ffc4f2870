"""The collector's duplicate-detection state, saved now and then and completed from the log.

Saving the state with every request would cost more than the request itself, so it is saved
every few seconds with the log offset it covers. At start the state is loaded and the events
appended after that offset are read back from the log and folded in: the log is the truth,
the file only a shortcut. Retention keeps those events (the collector commits the offset).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cartpulse.log.base import EventLog
from cartpulse.quality.dedupe import DedupeState, dedupe, event_times_us, row_keys
from cartpulse.sinks.staging import parquet_bytes, write_atomic

log = logging.getLogger(__name__)

_READ_ROWS = 500_000


class DedupeCheckpoint:
    """One Parquet file: keys, times, the latest event time and the log offset covered."""

    def __init__(self, path: Path, window_s: int = 3_600) -> None:
        self.path = path
        self.window_s = window_s

    def save(self, state: DedupeState, offset: int) -> None:
        """Write the state atomically (temp file, fsync, rename, fsync of the folder)."""
        table = pa.table({"key": state.keys, "time_us": state.times_us})
        meta = {b"offset": str(offset).encode(), b"max_time_us": str(state.max_time_us).encode()}
        write_atomic(self.path, parquet_bytes(table.replace_schema_metadata(meta)))

    def restore(self, event_log: EventLog) -> DedupeState:
        """The saved state plus every event appended to the log after it."""
        state, start = self._load()
        log_start = event_log.start_offset()
        if log_start > start:
            log.warning(
                "collector_dedupe_gap saved_offset=%d log_start=%d: duplicates of events sent "
                "before the gap are not detected",
                start,
                log_start,
            )
            start = log_start
        end = event_log.end_offset()
        folded = 0
        while start < end:
            piece = event_log.read(start, _READ_ROWS)
            state = _fold(state, piece.table, self.window_s)
            folded += piece.num_rows
            start = piece.end
        if folded:
            log.info("collector_dedupe_restored keys=%d replayed=%d", len(state), folded)
        return state

    def _load(self) -> tuple[DedupeState, int]:
        if not self.path.exists():
            return DedupeState.empty(), 0
        table = pq.read_table(self.path)
        meta = table.schema.metadata or {}
        raw_max = meta.get(b"max_time_us", b"None").decode()
        keys = np.asarray(table.column("key").to_numpy(), np.uint64)
        times = np.asarray(table.column("time_us").to_numpy(), np.int64)
        max_time = None if raw_max == "None" else int(raw_max)
        return DedupeState(keys, times, max_time), int(meta.get(b"offset", b"0").decode())


def _fold(state: DedupeState, events: pa.Table, window_s: int) -> DedupeState:
    """Add the keys of events that are already in the log (they are unique by construction)."""
    if events.num_rows == 0:
        return state
    _, state = dedupe(row_keys(events), event_times_us(events), state, window_s)
    return state
