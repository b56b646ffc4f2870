"""Sessions → abandoned carts in Spark: the session operator per bucket of sessions.

Sessions are hashed into buckets; each bucket is one key of `applyInPandasWithState`, whose
state holds that bucket's `SessionState` (two Arrow tables, as IPC bytes). Every micro-batch
calls the operator once per bucket with all of the bucket's new events — vectorised, like the
embedded engine — instead of once per session. The state's event-time timeout fires when the
watermark passes the bucket's oldest session end plus the session timeout, so idle buckets
expire too. A flush row (`_flush` true) expires every session of its bucket (end of a run).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cartpulse.operators.sessions import (
    ABANDONED_CARTS_SCHEMA,
    ITEM_STATE_SCHEMA,
    SESSION_STATE_SCHEMA,
    SessionOperator,
    SessionState,
)

#: What the session operator reads of an event (category_id is not needed and would lose
#: precision in pandas, as a float once it has nulls).
SESSION_INPUT_SCHEMA = pa.schema(
    [
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("event_type", pa.string()),
        ("product_id", pa.int64()),
        ("category_code", pa.string()),
        ("brand", pa.string()),
        ("price", pa.float64()),
        ("user_id", pa.int64()),
        ("user_session", pa.string()),
    ]
)
SESSION_INPUT_COLUMNS: tuple[str, ...] = tuple(SESSION_INPUT_SCHEMA.names)

#: Spark DDL of the operator's output: new abandoned carts of one bucket, and its state size.
OUTPUT_DDL = "carts BINARY, cart_rows BIGINT, open_sessions BIGINT, state_bytes BIGINT"
#: Spark DDL of one bucket's state.
STATE_DDL = "sessions BINARY, items BINARY"


class BucketState(Protocol):
    """What the session step uses of pyspark's `GroupState`."""

    @property
    def exists(self) -> bool:
        """Whether the bucket has state."""

    @property
    def get(self) -> tuple[Any, ...]:
        """The bucket's state row."""

    def update(self, value: tuple[Any, ...], /) -> None:
        """Replace the state row."""

    def remove(self) -> None:
        """Drop the state."""

    def getCurrentWatermarkMs(self) -> int:  # noqa: N802 (pyspark's names)
        """The watermark of this micro-batch (ms since the epoch)."""

    def setTimeoutTimestamp(self, ms: int, /) -> None:  # noqa: N802
        """Call again (timed out) once the watermark passes this time (ms)."""


_operators: dict[int, SessionOperator] = {}


def _operator(timeout_s: int) -> SessionOperator:
    """One operator per Python worker and timeout."""
    op = _operators.get(timeout_s)
    if op is None:
        op = _operators[timeout_s] = SessionOperator(timeout_s)
    return op


def to_ipc(table: pa.Table) -> bytes:
    """An Arrow table as IPC stream bytes."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def from_ipc(data: bytes, schema: pa.Schema) -> pa.Table:
    """IPC stream bytes back into a table of `schema`."""
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all().cast(schema)


def _load(state: BucketState) -> SessionState:
    if not state.exists:
        return SessionState.empty()
    sessions, items = state.get
    return SessionState(
        from_ipc(sessions, SESSION_STATE_SCHEMA), from_ipc(items, ITEM_STATE_SCHEMA)
    )


def _events(frames: Iterator[Any]) -> tuple[pa.Table, bool]:
    """The bucket's new events (pandas frames) with an `_offset`, and whether to flush."""
    parts, flush = [], False
    for frame in frames:
        flags = frame["_flush"].fillna(False).astype(bool)
        flush = flush or bool(flags.any())
        rows = frame.loc[~flags, list(SESSION_INPUT_COLUMNS)]
        if len(rows):
            table = pa.Table.from_pandas(rows, preserve_index=False)
            table = table.set_column(
                0, "event_time", pc.assume_timezone(table.column(0).cast(pa.timestamp("us")), "UTC")
            )
            parts.append(table.cast(SESSION_INPUT_SCHEMA))
    events = pa.concat_tables(parts) if parts else SESSION_INPUT_SCHEMA.empty_table()
    # Ties at the same microsecond are broken by value, the same on every run and engine.
    events = events.sort_by([(c, "ascending") for c in SESSION_INPUT_COLUMNS])
    return events.append_column(
        "_offset", pa.array(np.arange(events.num_rows, dtype=np.int64))
    ), flush


def advance_bucket(
    timeout_s: int, key: tuple[Any, ...], frames: Iterator[Any], state: BucketState
) -> Iterator[Any]:
    """applyInPandasWithState body: fold a bucket's events into its sessions, emit closed carts."""
    import pandas as pd  # type: ignore[import-untyped]

    op = _operator(timeout_s)
    current = _load(state)
    events, flush = _events(frames)
    watermark_ms = state.getCurrentWatermarkMs()
    expire_us = watermark_ms * 1000 if watermark_ms > 0 else None
    current, carts = op.advance(current, events, expire_us)
    if flush:
        current, flushed = op.flush(current)
        carts = pa.concat_tables([carts, flushed])
    if current.open_sessions:
        state.update((to_ipc(current.sessions), to_ipc(current.items)))
        oldest_us = pc.min(current.sessions.column("session_end")).cast(pa.int64()).as_py()
        # Fires once the watermark passes the oldest session's expiry (ms, rounded up).
        state.setTimeoutTimestamp((oldest_us + op.timeout_us) // 1000 + 1)
    elif state.exists:
        state.remove()
    yield pd.DataFrame(
        {
            "carts": [to_ipc(carts.cast(ABANDONED_CARTS_SCHEMA)) if carts.num_rows else None],
            "cart_rows": [int(carts.num_rows)],
            "open_sessions": [current.open_sessions],
            "state_bytes": [current.nbytes],
        }
    )
