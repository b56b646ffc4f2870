"""Sessions → abandoned carts: state + events in, new state + abandoned carts out.

A session is a `user_session` value; it expires `timeout_s` after its last event. Events of the
same session id more than `timeout_s` after the previous one start a new session (the old one
is closed at once). At expiry, per product: carts − removes − purchases, floored at 0. A session
with no purchase and at least one positive product is an abandoned cart; its value is
Σ count × the product's last seen price in the session.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cartpulse.operators.session_fold import Codes, Events, Sessions, encode, fold_sessions
from cartpulse.operators.session_items import Items, fold_items

SESSION_STATE_SCHEMA = pa.schema(
    [
        ("user_session", pa.string()),
        ("user_id", pa.int64()),
        ("session_start", pa.timestamp("us", tz="UTC")),
        ("session_end", pa.timestamp("us", tz="UTC")),
        ("has_purchase", pa.bool_()),
    ]
)

ITEM_STATE_SCHEMA = pa.schema(
    [
        ("user_session", pa.string()),
        ("product_id", pa.int64()),
        ("net", pa.int64()),
        ("seen_at", pa.timestamp("us", tz="UTC")),
        ("seen_offset", pa.int64()),
        ("price", pa.float64()),
        ("brand", pa.string()),
        ("category_code", pa.string()),
    ]
)

ITEM_TYPE = pa.struct(
    [
        ("product_id", pa.int64()),
        ("count", pa.int64()),
        ("price", pa.float64()),
        ("brand", pa.string()),
        ("category_code", pa.string()),
    ]
)

ABANDONED_CARTS_SCHEMA = pa.schema(
    [
        ("user_session", pa.string()),
        ("user_id", pa.int64()),
        ("session_start", pa.timestamp("us", tz="UTC")),
        ("session_end", pa.timestamp("us", tz="UTC")),
        ("expired_at", pa.timestamp("us", tz="UTC")),
        ("items", pa.list_(ITEM_TYPE)),
        ("item_count", pa.int64()),
        ("cart_value", pa.float64()),
    ]
)


@dataclass(frozen=True)
class SessionState:
    """Open sessions and the carted products of each."""

    sessions: pa.Table
    items: pa.Table

    @classmethod
    def empty(cls) -> SessionState:
        """No open session."""
        return cls(SESSION_STATE_SCHEMA.empty_table(), ITEM_STATE_SCHEMA.empty_table())

    @property
    def open_sessions(self) -> int:
        """How many sessions are open."""
        return int(self.sessions.num_rows)

    @property
    def nbytes(self) -> int:
        """Memory held by the state's Arrow buffers."""
        return int(self.sessions.nbytes + self.items.nbytes)


class SessionOperator:
    """Runs the session rules over Arrow tables (pure: no I/O, no clock)."""

    def __init__(self, timeout_s: int) -> None:
        self.timeout_us = timeout_s * 1_000_000

    def advance(
        self, state: SessionState, events: pa.Table, expire_before_us: int | None
    ) -> tuple[SessionState, pa.Table]:
        """Fold events (with an `_offset` column) into the state; close gaps and expired sessions.

        Sessions whose last event is at or before `expire_before_us − timeout` (µs since the epoch:
        the watermark, or the processing clock in live mode) are expired. Returns the new state
        and the abandoned carts of every session closed by this call.
        """
        ids = events.column("user_session")
        # events without a session count in sales, not here
        keep = pc.is_valid(ids).to_numpy(zero_copy_only=False) if ids.null_count else None
        codes = encode(state.sessions, state.items, events, keep)
        ev = Events.of(events, keep)
        sessions, batch = fold_sessions(codes, state.sessions, ev, self.timeout_us)
        items = fold_items(codes, state.items, sessions, batch, ev)
        closing = ~sessions.last
        if expire_before_us is not None:
            closing |= sessions.end <= expire_before_us - self.timeout_us
        carts = self._abandoned(codes, sessions, items, closing)
        return _state(codes, sessions, items, ~closing), carts

    def flush(self, state: SessionState) -> tuple[SessionState, pa.Table]:
        """Expire every open session (end of a finite replay)."""
        empty = pa.table(
            {
                **{f.name: pa.array([], f.type) for f in _EVENT_FIELDS},
                "_offset": pa.array([], pa.int64()),
            }
        )
        return self.advance(state, empty, 2**62)

    def _abandoned(
        self, codes: Codes, sessions: Sessions, items: Items, closing: np.ndarray
    ) -> pa.Table:
        """Closed sessions without a purchase that leave products with a positive count."""
        candidate = closing & ~sessions.purchase
        left = items.take(candidate[items.session] & (items.net > 0))
        if len(left.session) == 0:
            return ABANDONED_CARTS_SCHEMA.empty_table()
        left = left.take(np.lexsort((left.product, left.session)))
        starts = np.flatnonzero(np.concatenate([[True], left.session[1:] != left.session[:-1]]))
        owner = left.session[starts]
        # exact sum in millionths (as DECIMAL(38, 6)): the value must not depend on the order
        micros = np.rint(left.price * 1e6).astype(np.int64)
        value = np.add.reduceat(left.net * micros, starts) / 1e6
        end = sessions.end[owner]
        struct = pa.StructArray.from_arrays(
            [
                pa.array(left.product, pa.int64()),
                pa.array(left.net, pa.int64()),
                pa.array(left.price, pa.float64()),
                left.labels.column("brand").combine_chunks().cast(pa.string()),
                left.labels.column("category_code").combine_chunks().cast(pa.string()),
            ],
            fields=list(ITEM_TYPE),
        )
        offsets = pa.array(np.append(starts, len(left.session)), pa.int32())
        carts = pa.table(
            [
                codes.names.take(pa.array(sessions.code[owner])),
                pa.array(sessions.user[owner], pa.int64()),
                _timestamps(sessions.start[owner]),
                _timestamps(end),
                _timestamps(end + self.timeout_us),
                pa.ListArray.from_arrays(offsets, struct, type=pa.list_(ITEM_TYPE)),
                pa.array(np.add.reduceat(left.net, starts), pa.int64()),
                pa.array(value, pa.float64()),
            ],
            schema=ABANDONED_CARTS_SCHEMA,
        )
        return carts.sort_by([("expired_at", "ascending"), ("user_session", "ascending")])


def _state(codes: Codes, sessions: Sessions, items: Items, keep: np.ndarray) -> SessionState:
    """The sessions left open and their items, as the state's tables."""
    index = np.flatnonzero(keep)
    names = codes.names.take(pa.array(sessions.code[index]))
    open_sessions = pa.table(
        [
            names,
            pa.array(sessions.user[index], pa.int64()),
            _timestamps(sessions.start[index]),
            _timestamps(sessions.end[index]),
            pa.array(sessions.purchase[index], pa.bool_()),
        ],
        schema=SESSION_STATE_SCHEMA,
    )
    kept = items.take(keep[items.session])
    position = np.cumsum(keep) - 1  # a kept session's row in open_sessions
    open_items = pa.table(
        [
            names.take(pa.array(position[kept.session], pa.int64())),
            pa.array(kept.product, pa.int64()),
            pa.array(kept.net, pa.int64()),
            _timestamps(kept.seen_at),
            pa.array(kept.seen_offset, pa.int64()),
            pa.array(kept.price, pa.float64()),
            kept.labels.column("brand").combine_chunks().cast(pa.string()),
            kept.labels.column("category_code").combine_chunks().cast(pa.string()),
        ],
        schema=ITEM_STATE_SCHEMA,
    )
    return SessionState(open_sessions, open_items)


def _timestamps(values: np.ndarray) -> pa.Array:
    return pa.array(values, pa.int64()).cast(pa.timestamp("us", tz="UTC"))


_EVENT_FIELDS = [
    pa.field("event_time", pa.timestamp("us", tz="UTC")),
    pa.field("event_type", pa.string()),
    pa.field("product_id", pa.int64()),
    pa.field("category_id", pa.int64()),
    pa.field("category_code", pa.string()),
    pa.field("brand", pa.string()),
    pa.field("price", pa.float64()),
    pa.field("user_id", pa.int64()),
    pa.field("user_session", pa.string()),
]
