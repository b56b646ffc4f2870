"""Drop exact duplicates (all nine fields equal) seen within a window of event time."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from cartpulse.schema import EVENT_COLUMNS

#: DuckDB expression: a 64-bit hash of the nine event fields.
ROW_KEY_SQL = f"hash({', '.join(EVENT_COLUMNS)})"

_US_PER_S = 1_000_000


@dataclass(frozen=True)
class DedupeState:
    """Row keys and event times (µs) of recent events, sorted by key."""

    keys: np.ndarray
    times_us: np.ndarray
    max_time_us: int | None = None

    @classmethod
    def empty(cls) -> DedupeState:
        """A state that has seen nothing."""
        return cls(np.empty(0, np.uint64), np.empty(0, np.int64))

    def __len__(self) -> int:
        return len(self.keys)


def row_keys(table: pa.Table) -> np.ndarray:
    """The dedupe key of each clean event (the same hash the validator computes)."""
    con = duckdb.connect()
    try:
        con.register("t", table)
        keys = con.sql(f"SELECT {ROW_KEY_SQL} AS k FROM t").to_arrow_table().column(0)
        return np.asarray(keys.to_numpy(), np.uint64)
    finally:
        con.close()


def event_times_us(table: pa.Table) -> np.ndarray:
    """Event times of a clean table as int64 microseconds since the epoch."""
    col = table.column("event_time").combine_chunks()
    return np.asarray(col.cast(pa.int64()).to_numpy(zero_copy_only=False), np.int64)


def dedupe(
    keys: np.ndarray, times_us: np.ndarray, state: DedupeState, window_s: int
) -> tuple[np.ndarray, DedupeState]:
    """Mask of rows to keep (first sight of each key) and the state after this batch.

    Rows whose key is already in the state, or repeats a row earlier in the batch, are
    duplicates. The state keeps keys whose event time is within `window_s` of the latest
    event time seen, so a duplicate arriving up to `window_s` late is still caught.
    """
    n = len(keys)
    keep = np.zeros(n, dtype=bool)
    if n:
        # First occurrence of each key: an unstable sort plus the smallest index per run of
        # equal keys is several times faster than np.unique(return_index=True).
        order = np.argsort(keys)
        ordered = keys[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        first = np.minimum.reduceat(order, starts)
        keep[first] = True
        if len(state):
            pos = np.searchsorted(state.keys, keys[first])
            pos[pos == len(state.keys)] = 0
            seen = state.keys[pos] == keys[first]
            keep[first[seen]] = False
    return keep, _advance(state, keys[keep], times_us[keep], window_s)


def _advance(
    state: DedupeState, keys: np.ndarray, times_us: np.ndarray, window_s: int
) -> DedupeState:
    all_keys = np.concatenate([state.keys, keys])
    all_times = np.concatenate([state.times_us, times_us])
    if not len(all_keys):
        return state
    latest = int(all_times.max())
    if state.max_time_us is not None:
        latest = max(latest, state.max_time_us)
    recent = all_times >= latest - window_s * _US_PER_S
    all_keys, all_times = all_keys[recent], all_times[recent]
    order = np.argsort(all_keys, kind="stable")
    return DedupeState(all_keys[order], all_times[order], latest)
