"""One micro-batch folded into the open sessions, as numpy arrays over integer session codes.

Why numpy and not SQL: the rules are a sort by (session, time, offset) and sums over runs of
that order. DuckDB spent most of the engine's time here (hash joins and aggregates over the
session id strings, then copying them out); one dictionary encoding of the ids, one sort and
`reduceat` over the runs do the same work about ten times faster.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cartpulse.operators.order import joint_codes, order_rows

_INT64_MIN = np.iinfo(np.int64).min
LABELS = pa.schema([("brand", pa.string()), ("category_code", pa.string())])


@dataclass(frozen=True)
class Codes:
    """Session ids as small integers: the same id has the same code in state and batch."""

    names: pa.Array
    """code → user_session"""
    sessions: np.ndarray
    """code of each open session of the state"""
    items: np.ndarray
    """code of each carted product row of the state"""
    events: np.ndarray
    """code of each event"""

    @property
    def count(self) -> int:
        """How many distinct session ids."""
        return len(self.names)

    @cached_property
    def state_index(self) -> np.ndarray:
        """Per code: the row of its open session in the state, −1 for none."""
        index = np.full(self.count, -1, np.int64)
        index[self.sessions] = np.arange(len(self.sessions))
        return index


@dataclass(frozen=True)
class Events:
    """The batch's columns the rules read, as numpy arrays in the batch's row order."""

    times: np.ndarray
    offsets: np.ndarray
    users: np.ndarray
    products: np.ndarray
    prices: np.ndarray
    net: np.ndarray
    """+1 for a cart, −1 for a remove or a purchase, 0 for a view"""
    purchase: np.ndarray
    labels: pa.Table
    """brand and category_code of every row of the batch, sessionised or not"""
    rows: np.ndarray
    """the row in `labels` of each event"""

    @classmethod
    def of(cls, events: pa.Table, keep: np.ndarray | None = None) -> Events:
        """The arrays of an event table with an `_offset` column (only `keep` rows, if given)."""
        kinds = pc.dictionary_encode(events.column("event_type").combine_chunks())
        names = kinds.dictionary.to_pylist()
        net = np.array([{"cart": 1, "view": 0}.get(k, -1) for k in names], np.int8)
        bought = np.array([k == "purchase" for k in names], bool)
        index = kinds.indices.to_numpy(zero_copy_only=False)
        rows = np.arange(events.num_rows) if keep is None else np.flatnonzero(keep)

        def pick(values: np.ndarray) -> np.ndarray:
            return values if keep is None else values[keep]

        return cls(
            times=pick(int64_values(events.column("event_time"))),
            offsets=pick(int64_values(events.column("_offset"))),
            users=pick(int64_values(events.column("user_id"))),
            products=pick(int64_values(events.column("product_id"))),
            prices=pick(events.column("price").to_numpy().astype(np.float64, copy=False)),
            net=pick(net[index]) if len(names) else np.zeros(0, np.int8),
            purchase=pick(bought[index]) if len(names) else np.zeros(0, bool),
            labels=events.select(["brand", "category_code"]).cast(LABELS),
            rows=rows,
        )


@dataclass(frozen=True)
class Sessions:
    """Every session after the batch: the state's (updated) first, then those the batch opened."""

    code: np.ndarray
    start: np.ndarray
    end: np.ndarray
    user: np.ndarray
    purchase: np.ndarray
    last: np.ndarray
    """False for a session that a later event of the same id (after a gap) has already closed"""


@dataclass(frozen=True)
class Sorted:
    """The batch's events in (session, time, offset) order, each with its session's index."""

    order: np.ndarray
    code: np.ndarray
    session: np.ndarray


def encode(
    state_sessions: pa.Table, state_items: pa.Table, events: pa.Table, keep: np.ndarray | None
) -> Codes:
    """Give every session id of the state and the batch (its `keep` rows) one code."""
    state = pa.chunked_array(
        [
            *state_sessions.column("user_session").chunks,
            *state_items.column("user_session").chunks,
        ],
        pa.string(),
    )
    names, codes = joint_codes(state, events.column("user_session"))
    s, i = state_sessions.num_rows, state_items.num_rows
    batch = codes[s + i :] if keep is None else codes[s + i :][keep]
    return Codes(names, codes[:s], codes[s : s + i], batch)


def fold_sessions(
    codes: Codes, state: pa.Table, ev: Events, timeout_us: int
) -> tuple[Sessions, Sorted]:
    """Cut the batch's events into sessions (gaps over the timeout); merge them with the state."""
    order = order_rows(codes.events, ev.times, ev.offsets)
    code, t = codes.events[order], ev.times[order]
    n, n_state = len(order), state.num_rows
    held = _state_only(codes, state)
    if n == 0:
        return held, Sorted(order, code, np.zeros(0, np.int64))
    state_of = codes.state_index

    first = np.ones(n, bool)
    first[1:] = code[1:] != code[:-1]
    prev = np.empty(n, np.int64)
    prev[1:] = t[:-1]
    st = state_of[code[first]]
    # A session id's first event in the batch follows its open session, if any.
    prev[first] = np.where(st >= 0, held.end[np.maximum(st, 0)] if n_state else 0, t[first])
    gap = t - prev > timeout_us
    starts = np.flatnonzero(first | gap)

    # segment number within its session id: the gaps since the id's first event in the batch
    gaps_so_far = np.cumsum(gap)
    id_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    seg = (gaps_so_far - gaps_so_far[id_start] + gap[id_start])[starts]
    seg_of_row = np.cumsum(first | gap) - 1
    ends = np.append(starts[1:], n) - 1
    g_code, g_t0, g_t1 = code[starts], t[starts], t[ends]
    at_end = t == g_t1[seg_of_row]
    # the user of the latest event; at equal times the greater user_id, as max((time, user))
    g_user = np.maximum.reduceat(np.where(at_end, ev.users[order], _INT64_MIN), starts)
    g_purchase = np.logical_or.reduceat(ev.purchase[order], starts)
    g_last = np.ones(len(starts), bool)
    g_last[:-1] = g_code[1:] != g_code[:-1]

    merge = (seg == 0) & (state_of[g_code] >= 0)
    k = state_of[g_code[merge]]
    start, end, user, purchase = held.start, held.end, held.user, held.purchase
    start[k] = np.minimum(start[k], g_t0[merge])
    newer = (g_t1[merge] > end[k]) | ((g_t1[merge] == end[k]) & (g_user[merge] > user[k]))
    user[k] = np.where(newer, g_user[merge], user[k])
    end[k] = np.maximum(end[k], g_t1[merge])
    purchase[k] |= g_purchase[merge]
    reopened = np.zeros(codes.count, bool)
    reopened[g_code[seg > 0]] = True

    fresh = ~merge
    index_of = np.empty(len(starts), np.int64)
    index_of[merge] = k
    index_of[fresh] = n_state + np.arange(int(fresh.sum()))
    sessions = Sessions(
        code=np.concatenate([codes.sessions, g_code[fresh]]),
        start=np.concatenate([start, g_t0[fresh]]),
        end=np.concatenate([end, g_t1[fresh]]),
        user=np.concatenate([user, g_user[fresh]]),
        purchase=np.concatenate([purchase, g_purchase[fresh]]),
        last=np.concatenate([~reopened[codes.sessions], g_last[fresh]]),
    )
    return sessions, Sorted(order, code, index_of[seg_of_row])


def _state_only(codes: Codes, state: pa.Table) -> Sessions:
    """The state's open sessions as they are (arrays the caller may update)."""
    return Sessions(
        code=codes.sessions,
        start=int64_values(state.column("session_start")),
        end=int64_values(state.column("session_end")),
        user=int64_values(state.column("user_id")),
        purchase=state.column("has_purchase").to_numpy(zero_copy_only=False).astype(bool),
        last=np.ones(state.num_rows, bool),
    )


def int64_values(column: pa.ChunkedArray) -> np.ndarray:
    """A non-null integer or timestamp column as int64 numpy (a copy: callers may write to it)."""
    values = column.cast(pa.int64()) if column.type != pa.int64() else column
    return np.array(values.to_numpy(), dtype=np.int64)
