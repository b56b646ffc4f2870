"""Each user's events of a batch in time order, each beside the one before it (in the batch, or
the user's last event kept in the state): the bot operator's input.

Numpy over integer codes: the user's previous event is one row up after a sort by
(user, time, offset), and its type and session are compared as dictionary codes, not strings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cartpulse.operators.order import joint_codes, order_rows, unsigned_keys


@dataclass(frozen=True)
class Steps:
    """The batch's events sorted by (user, time, offset), with what came before each."""

    user: np.ndarray
    t_us: np.ndarray
    kind: np.ndarray
    """code of event_type in `kinds`"""
    product: np.ndarray
    session: np.ndarray
    """code of user_session in `sessions`, −1 for none"""
    first: np.ndarray
    """the user's first event in the batch"""
    state_row: np.ndarray
    """per row: the user's row in the state, −1 for a user the state does not hold"""
    gap_us: np.ndarray
    has_gap: np.ndarray
    repeat: np.ndarray
    new_session: np.ndarray
    kinds: pa.Array
    sessions: pa.Array

    def kind_is(self, name: str) -> np.ndarray:
        """Rows whose event_type is `name`."""
        found = np.flatnonzero(np.asarray(self.kinds.to_pylist(), dtype=object) == name)
        return self.kind == found[0] if len(found) else np.zeros(len(self.kind), bool)


def user_steps(events: pa.Table, state: pa.Table) -> Steps:
    """Sort the events per user and link each to the previous one (state users sorted by id)."""
    users = np.asarray(events.column("user_id").to_numpy(), np.int64)
    times = np.asarray(events.column("event_time").cast(pa.int64()).to_numpy(), np.int64)
    offsets = np.asarray(events.column("_offset").to_numpy(), np.int64)
    # by the ids themselves (two radix passes for ids below 2**32): users come out in id
    # order, as the state keeps them, so no dictionary is built and nothing is re-sorted
    order = order_rows(unsigned_keys(users), times, offsets)
    n, n_state = len(order), state.num_rows
    kinds, kind = joint_codes(state.column("last_type"), events.column("event_type"))
    sessions, session = joint_codes(state.column("last_session"), events.column("user_session"))
    user, t = users[order], times[order]
    product = np.asarray(events.column("product_id").to_numpy(), np.int64)[order]
    kind_rows, session_rows = kind[n_state:][order], session[n_state:][order]

    first = np.ones(n, bool)
    first[1:] = user[1:] != user[:-1]
    state_users = np.asarray(state.column("user_id").to_numpy(), np.int64)
    at = np.zeros(int(first.sum()), np.int64)
    held = np.zeros(len(at), bool)
    if n_state:
        at = np.minimum(np.searchsorted(state_users, user[first]), n_state - 1)
        held = state_users[at] == user[first]
    state_row = np.where(held, at, -1)[np.cumsum(first) - 1]

    prev_t, prev_product = _shifted(t), _shifted(product)
    prev_kind, prev_session = _shifted(kind_rows), _shifted(session_rows)
    has_prev = ~first
    from_state = first & (state_row >= 0)
    rows = state_row[from_state]
    prev_t[from_state] = np.asarray(state.column("last_us").to_numpy(), np.int64)[rows]
    prev_product[from_state] = np.asarray(
        pc.fill_null(state.column("last_product"), -1).to_numpy(), np.int64
    )[rows]
    prev_kind[from_state] = kind[:n_state][rows]
    prev_session[first] = -1
    prev_session[from_state] = session[:n_state][rows]
    has_gap = has_prev | from_state
    gap = np.where(has_gap, t - prev_t, 0)
    repeat = (
        has_gap
        & (prev_product == product)
        & (prev_kind == kind_rows)
        & (prev_kind >= 0)
        & (gap <= 1_000_000)
    )
    new_session = (session_rows >= 0) & (session_rows != prev_session)
    return Steps(
        user=user,
        t_us=t,
        kind=kind_rows,
        product=product,
        session=session_rows,
        first=first,
        state_row=state_row,
        gap_us=gap,
        has_gap=has_gap,
        repeat=repeat,
        new_session=new_session,
        kinds=kinds,
        sessions=sessions,
    )


def _shifted(values: np.ndarray) -> np.ndarray:
    """The value one row up (the first row gets −1; callers mask it)."""
    out = np.empty_like(values)
    if len(values):
        out[0] = -1
        out[1:] = values[:-1]
    return out
