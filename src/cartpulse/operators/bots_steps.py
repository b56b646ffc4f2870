"""Each user's events in time order, each beside the one before it: the bot operator's input.

This is a window function (`lag … OVER (PARTITION BY user_id ORDER BY event_time, _offset)`)
written with one numpy sort and shifted slices: DuckDB's window operator spent most of the bot
detector's time here, sorting and copying the string columns once per `lag`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

STEPS_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("t_us", pa.int64()),
        ("event_type", pa.string()),
        ("product_id", pa.int64()),
        ("user_session", pa.string()),
        ("prev_us", pa.int64()),
        ("prev_product", pa.int64()),
        ("prev_type", pa.string()),
        ("prev_session", pa.string()),
        ("is_last", pa.bool_()),
    ]
)


def user_steps(events: pa.Table) -> pa.Table:
    """Events with a user, ordered by (user_id, event_time, _offset), with the previous event's
    time, product, type and session (null for a user's first event in the batch)."""
    events = events.filter(pc.is_valid(events.column("user_id")))
    n = events.num_rows
    if n == 0:
        return STEPS_SCHEMA.empty_table()
    users = _int64(events.column("user_id"))
    times = _int64(events.column("event_time").cast(pa.timestamp("us", tz="UTC")))
    offsets = _int64(events.column("_offset"))
    order = np.lexsort((offsets, times, users))
    users, times = users[order], times[order]
    picked = events.select(["event_type", "product_id", "user_session"]).take(pa.array(order))
    first = np.ones(n, dtype=bool)
    first[1:] = users[1:] != users[:-1]
    last = np.ones(n, dtype=bool)
    last[:-1] = first[1:]
    columns = {
        "user_id": pa.array(users),
        "t_us": pa.array(times),
        "event_type": picked.column("event_type"),
        "product_id": picked.column("product_id"),
        "user_session": picked.column("user_session"),
        "prev_us": _previous(pa.chunked_array([times]), first),
        "prev_product": _previous(picked.column("product_id"), first),
        "prev_type": _previous(picked.column("event_type"), first),
        "prev_session": _previous(picked.column("user_session"), first),
        "is_last": pa.array(last),
    }
    return pa.table(columns, schema=STEPS_SCHEMA)


def _int64(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.cast(pa.int64()).to_numpy(), dtype=np.int64)


def _previous(column: pa.ChunkedArray, first: np.ndarray) -> pa.Array:
    """The value one row up; null where a new user starts."""
    values = column.combine_chunks()
    shifted = pa.concat_arrays([pa.nulls(1, values.type), values.slice(0, len(values) - 1)])
    return pc.if_else(pa.array(first), pa.scalar(None, values.type), shifted)
