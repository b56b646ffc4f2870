"""Persist the dedupe state between runs, so a duplicate split across two files is still caught."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cartpulse.quality.dedupe import DedupeState

log = logging.getLogger(__name__)

_FILE = "dedupe.parquet"


@functools.cache
def hash_fingerprint() -> str:
    """The row hash of a fixed probe row: it changes if the hash function ever does."""
    con = duckdb.connect()
    try:
        row = con.sql(
            "SELECT hash(TIMESTAMPTZ '2019-10-01 00:00:00+00', 'view', 1::BIGINT, NULL::BIGINT, "
            "NULL::VARCHAR, 'b', 1.5::DOUBLE, 2::BIGINT, 's')"
        ).fetchall()
    finally:
        con.close()
    return str(row[0][0])


def save_dedupe_state(state: DedupeState, folder: Path) -> Path:
    """Write the state to `folder/dedupe.parquet` and return its path."""
    table = pa.table(
        {"key": pa.array(state.keys, pa.uint64()), "time_us": pa.array(state.times_us, pa.int64())}
    )
    meta = {
        b"fingerprint": hash_fingerprint().encode(),
        b"max_time_us": str(state.max_time_us if state.max_time_us is not None else "").encode(),
    }
    table = table.replace_schema_metadata(meta)
    path = folder / _FILE
    pq.write_table(table, str(path), compression="zstd")
    return path


def load_dedupe_state(state_dir: Path) -> DedupeState:
    """Read the saved state, or an empty one if there is none or the hash function changed."""
    path = state_dir / _FILE
    if not path.exists():
        return DedupeState.empty()
    table = pq.read_table(str(path))
    meta = table.schema.metadata or {}
    if meta.get(b"fingerprint", b"").decode() != hash_fingerprint():
        log.warning("dedupe_state_reset reason=hash_function_changed path=%s", path)
        return DedupeState.empty()
    max_time = meta.get(b"max_time_us", b"").decode()
    keys = np.asarray(table.column("key").to_numpy(), np.uint64)
    times = np.asarray(table.column("time_us").to_numpy(), np.int64)
    return DedupeState(keys, times, int(max_time) if max_time else None)
