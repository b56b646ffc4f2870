"""The carted products of each session: net counts and the last seen price, brand and category.

Only products that were carted, removed or bought in a session are tracked; its views of them
(before or after) only refresh the last seen values. Numpy over the sorted batch, like
`session_fold`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from cartpulse.operators.order import dense_codes
from cartpulse.operators.session_fold import (
    LABELS,
    Codes,
    Events,
    Sessions,
    Sorted,
    int64_values,
)


@dataclass(frozen=True)
class Items:
    """One row per (session, carted product), `session` indexing `Sessions`."""

    session: np.ndarray
    product: np.ndarray
    net: np.ndarray
    seen_at: np.ndarray
    seen_offset: np.ndarray
    price: np.ndarray
    labels: pa.Table
    """brand and category_code of each row"""

    @classmethod
    def empty(cls) -> Items:
        """No item."""
        none = np.zeros(0, np.int64)
        return cls(none, none, none, none, none, np.zeros(0, np.float64), LABELS.empty_table())

    def take(self, rows: np.ndarray) -> Items:
        """The items at `rows` (indices or a mask)."""
        index = np.flatnonzero(rows) if rows.dtype == bool else rows
        return Items(
            self.session[index],
            self.product[index],
            self.net[index],
            self.seen_at[index],
            self.seen_offset[index],
            self.price[index],
            self.labels.take(pa.array(index, pa.int64())),
        )


def fold_items(
    codes: Codes, state: pa.Table, sessions: Sessions, batch: Sorted, ev: Events
) -> Items:
    """Merge the batch's events of carted products into the state's items (state rows first)."""
    n_state = state.num_rows
    # Only ids with a cart, remove or purchase (here or in the state) can have items.
    net_sorted = ev.net[batch.order]
    carted_id = np.zeros(codes.count, bool)
    carted_id[batch.code[net_sorted != 0]] = True
    carted_id[codes.items] = True
    positions = np.flatnonzero(carted_id[batch.code])
    rows = batch.order[positions]

    products = np.concatenate([int64_values(state.column("product_id")), ev.products[rows]])
    session = np.concatenate([codes.state_index[codes.items], batch.session[positions]])
    group = dense_codes(_pair_keys(session, products))
    groups = int(group.max()) + 1 if len(group) else 0
    net = np.concatenate(
        [int64_values(state.column("net")), net_sorted[positions].astype(np.int64)]
    )
    seen_at = np.concatenate([int64_values(state.column("seen_at")), ev.times[rows]])
    seen_offset = np.concatenate([int64_values(state.column("seen_offset")), ev.offsets[rows]])
    carted = np.zeros(groups, bool)
    carted[group[:n_state]] = True
    carted[group[n_state:][net[n_state:] != 0]] = True
    last = _last_seen(group, groups, n_state, seen_at, seen_offset)[carted]
    if len(last) == 0:
        return Items.empty()
    from_state = last < n_state
    labels = pa.concat_tables(
        [
            state.select(["brand", "category_code"]),
            ev.labels.take(pa.array(ev.rows[rows[last[~from_state] - n_state]], pa.int64())),
        ]
    )
    label_row = np.where(from_state, last, n_state + np.cumsum(~from_state) - 1)
    prices = np.concatenate([state.column("price").to_numpy(), ev.prices[rows]])
    totals = np.bincount(group, weights=net, minlength=groups)[carted]
    return Items(
        session=session[last],
        product=products[last],
        net=np.rint(totals).astype(np.int64),
        seen_at=seen_at[last],
        seen_offset=seen_offset[last],
        price=prices[last].astype(np.float64, copy=False),
        labels=labels.take(pa.array(label_row, pa.int64())),
    )


def _last_seen(
    group: np.ndarray, groups: int, n_state: int, seen_at: np.ndarray, seen_offset: np.ndarray
) -> np.ndarray:
    """Per group, the row of its latest (time, offset): the state's row or the batch's."""
    # The batch's rows of one group are in (time, offset) order: the last one is the latest.
    last = np.full(groups, -1, np.int64)
    np.maximum.at(last, group[n_state:], np.arange(n_state, len(group)))
    kept = np.full(groups, -1, np.int64)
    kept[group[:n_state]] = np.arange(n_state)
    b, s = np.maximum(last, 0), np.maximum(kept, 0)
    older = (seen_at[b] < seen_at[s]) | (
        (seen_at[b] == seen_at[s]) & (seen_offset[b] < seen_offset[s])
    )
    return np.asarray(np.where((last < 0) | ((kept >= 0) & older), kept, last), np.int64)


def _pair_keys(session: np.ndarray, products: np.ndarray) -> np.ndarray:
    """One int64 per (session, product): packed bits when they fit, else via product codes."""
    if len(products) and products.min() >= 0 and products.max() < 2**40 and session.max() < 2**23:
        return np.asarray((session << 40) | products, np.int64)
    codes = dense_codes(products)
    width = int(codes.max()) + 1 if len(codes) else 1
    return np.asarray(session * width + codes, np.int64)
