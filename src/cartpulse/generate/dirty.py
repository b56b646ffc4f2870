"""The dirt of a real export: repeated rows, re-sends, missing ids, shared ids, negative prices."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from cartpulse.generate import calibration as cal
from cartpulse.generate.events import NO_SESSION, PURCHASE, REMOVE, EventBlock, IntArray


def expand_copies(rng: np.random.Generator, kind: NDArray[np.int8]) -> tuple[IntArray, IntArray]:
    """Row sources with copies next to their original, and +1 s for re-sent copies.

    Removing an item with quantity > 1 logs one identical remove_from_cart row per unit
    (about a quarter of removes repeat); trackers also log a few exact duplicates and re-send
    about 2 % of events a second later.
    """
    m = kind.shape[0]
    repeat = (kind == REMOVE) & (rng.random(m) < cal.P_REMOVE_REPEAT)
    extra = np.where(repeat, rng.geometric(cal.REMOVE_REPEAT_GEOMETRIC_P, m), 0)
    extra += rng.random(m) < cal.P_EXACT_DUPLICATE
    resend = rng.random(m) < cal.P_RESEND
    copies = 1 + extra + resend
    source = np.repeat(np.arange(m, dtype=np.int64), copies)
    last_copy = np.cumsum(copies) - 1
    shift = np.zeros(source.shape[0], dtype=np.int64)
    shift[last_copy[resend]] = 1
    return source, shift


def soil_window(
    block: EventBlock,
    rng: np.random.Generator,
    shared: int,
    negative: int,
    brandless_offset: int,
) -> EventBlock:
    """Drop some session ids, let a few users share one, and add negative-price rows."""
    session = block.session.copy()
    n = len(block)
    missing = rng.random(n) < cal.P_MISSING_SESSION
    if shared and n:
        session = _share_sessions(rng, session, block.user, shared)
    session[missing] = NO_SESSION
    cents, product = block.cents, block.product
    if negative and n:
        cents, product = cents.copy(), product.copy()
        rows = _negative_rows(rng, block.kind, negative)
        # Refund-like corrections: negative amounts on rows whose brand was not exported.
        cents[rows] = -rng.integers(100, 7_938, rows.shape[0])
        product[rows] += brandless_offset
    return replace(block, session=session, cents=cents, product=product)


def _share_sessions(
    rng: np.random.Generator, session: IntArray, user: IntArray, count: int
) -> IntArray:
    """Give `count` sessions the id of another user's session (shared devices / accounts)."""
    base = int(session.min())
    local = session - base
    first_row = np.full(int(local.max()) + 1, -1, dtype=np.int64)
    first_row[local[::-1]] = np.arange(local.shape[0] - 1, -1, -1)
    present = np.flatnonzero(first_row >= 0)
    pairs = min(count, present.shape[0] // 2)
    if pairs == 0:
        return session
    picks = rng.choice(present, size=2 * pairs, replace=False)
    donors, takers = picks[0::2], picks[1::2]
    other_user = user[first_row[donors]] != user[first_row[takers]]
    remap = np.arange(first_row.shape[0], dtype=np.int64)
    remap[takers[other_user]] = donors[other_user]
    return base + remap[local]


def count_sessions(block: EventBlock) -> int:
    """Distinct session ids of a window's organic rows (their keys form one dense range)."""
    keys = block.session[block.session != NO_SESSION]
    if keys.shape[0] == 0:
        return 0
    seen = np.zeros(int(keys.max() - keys.min()) + 1, dtype=bool)
    seen[keys - keys.min()] = True
    return int(seen.sum())


def _negative_rows(rng: np.random.Generator, kind: NDArray[np.int8], count: int) -> IntArray:
    """Rows to turn negative: almost all of them purchases, as in the real export."""
    purchases = np.flatnonzero(kind == PURCHASE)
    others = np.flatnonzero(kind != PURCHASE)
    want_buy = round(count * cal.NEGATIVE_PRICE_PURCHASE_SHARE)
    take_buy = min(want_buy, purchases.shape[0])
    take_other = min(count - take_buy, others.shape[0])
    rows = np.concatenate([
        rng.choice(purchases, size=take_buy, replace=False),
        rng.choice(others, size=take_other, replace=False),
    ])  # fmt: skip
    return rows.astype(np.int64)
