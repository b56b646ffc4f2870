"""Organic sessions: who visits when, what they view, cart, remove and buy, and at what pace."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cartpulse.generate import calibration as cal
from cartpulse.generate.catalog import Catalog, DayProducts, sample_categories, sample_products
from cartpulse.generate.dirty import expand_copies
from cartpulse.generate.events import (
    CART,
    PURCHASE,
    REMOVE,
    VIEW,
    EventBlock,
    IntArray,
    concat_blocks,
    group_starts,
)
from cartpulse.generate.population import Population, UserState, sample_users
from cartpulse.generate.timeline import DAY_S, HOUR_S, Window

Bools = NDArray[np.bool_]


@dataclass(frozen=True)
class WindowContext:
    """Everything a window's sessions draw from."""

    catalog: Catalog
    products: DayProducts
    population: Population
    state: UserState
    window: Window
    sale: bool
    horizon_s: int
    key_base: int  # session keys of this window start here


@dataclass(frozen=True)
class _Sessions:
    start_s: IntArray
    hour: IntArray
    user: IntArray
    focus: IntArray  # category most of the session's products come from
    buy: Bools
    views: IntArray
    carts: IntArray
    buy_only: IntArray  # purchases without a cart event in this session
    old_removes: IntArray  # removals of items carted in an earlier session


def fill_window(ctx: WindowContext, target: int, rng: np.random.Generator) -> EventBlock:
    """Exactly `target` rows of sessions starting in the window, session by session."""
    blocks: list[EventBlock] = []
    have, drawn, per_session = 0, 0, cal.ROWS_PER_SESSION
    while have < target:
        # Aim slightly low first so little is thrown away; later rounds top up the rest.
        factor = 0.98 if not blocks else 1.15
        n = int((target - have) / per_session * factor) + 1
        block = draw_sessions(ctx, rng, n, ctx.key_base + drawn)
        if len(block) and block.time_s.max() >= ctx.horizon_s:
            block = block.mask(block.time_s < ctx.horizon_s)
        per_session = max(len(block) / n, 0.5)
        blocks.append(block)
        have += len(block)
        drawn += n
    return concat_blocks(blocks).take(slice(0, target))


def draw_sessions(
    ctx: WindowContext, rng: np.random.Generator, n: int, key_base: int
) -> EventBlock:
    """`n` sessions' events, session by session, each session in time order."""
    s = _draw_session_plan(ctx, rng, n)
    sess, order_key, kind, product = _session_events(ctx, rng, s)
    # One float sort instead of a lexsort: keys are < 4, so sess * 4 + key orders by both.
    order = np.argsort(sess * 4.0 + order_key)
    sess, kind, product = sess[order], kind[order], product[order]
    time_s = _event_times(rng, s, sess, kind)
    source, resend = expand_copies(rng, kind)
    block = EventBlock(
        time_s[source] + resend,
        kind[source],
        product[source],
        ctx.products.cents[product[source]],
        s.user[sess[source]],
        key_base + sess[source],
    )
    return block


def _draw_session_plan(ctx: WindowContext, rng: np.random.Generator, n: int) -> _Sessions:
    """Start, visitor and the shape (how many of each event) of `n` sessions."""
    hours_w = ctx.window.hour_weights
    hour = rng.choice(24, size=n, p=hours_w / hours_w.sum()).astype(np.int64)
    start = ctx.window.day * DAY_S + hour * HOUR_S + rng.integers(0, HOUR_S, n)
    user = sample_users(ctx.population, rng, n)
    boost = cal.SALE_BUY_BOOST if ctx.sale else 1.0
    buy = rng.random(n) < np.minimum(ctx.population.buy_p[user] * boost, 0.95)
    cart = rng.random(n) < np.where(buy, cal.P_CART_GIVEN_BUY, cal.P_CART_GIVEN_NO_BUY)
    browse = ~buy & ~cart
    remove_only = browse & (rng.random(n) < cal.P_REMOVE_ONLY)
    p_view = np.where(cart, cal.P_VIEW_GIVEN_CART, cal.P_VIEW_GIVEN_BUY_ONLY)
    view = np.where(browse, ~remove_only, rng.random(n) < p_view)
    browse_views = np.where(
        rng.random(n) < cal.P_SINGLE_VIEW, 1, 1 + _count(rng, n, cal.BROWSE_VIEWS_LN)
    )
    views = np.where(cart, _count(rng, n, cal.CART_SESSION_VIEWS_LN), browse_views) * view
    carts_ln = np.where(buy[:, None], cal.CARTS_BUY_LN, cal.CARTS_NO_BUY_LN)
    carts = _count(rng, n, (carts_ln[:, 0], carts_ln[:, 1])) * cart
    buy_only = _count(rng, n, cal.BUY_ONLY_ITEMS_LN) * (buy & ~cart)
    old = remove_only | (browse & (rng.random(n) < cal.P_BROWSE_WITH_OLD_REMOVE))
    old_removes = _count(rng, n, cal.OLD_REMOVES_LN) * old
    focus = sample_categories(ctx.products, rng, hour)
    return _Sessions(start, hour, user, focus, buy, views, carts, buy_only, old_removes)


def _count(
    rng: np.random.Generator, n: int, ln: tuple[float, float] | tuple[IntArray, IntArray]
) -> IntArray:
    """1 + floor(lognormal): at least one, with a heavy tail."""
    mu, sigma = ln
    counts: IntArray = np.minimum(1 + np.floor(rng.lognormal(mu, sigma, n)), 400).astype(np.int64)
    return counts


def _browsed(
    ctx: WindowContext, rng: np.random.Generator, s: _Sessions, sess: IntArray
) -> IntArray:
    """Products for events of sessions `sess`: mostly from the session's focus category."""
    focused = rng.random(sess.shape[0]) < cal.FOCUS_SHARE
    focus = np.where(focused, s.focus[sess], -1)
    return sample_products(ctx.products, rng, focus, ctx.catalog.category_bounds)


def _cheaper(
    ctx: WindowContext, rng: np.random.Generator, s: _Sessions, sess: IntArray
) -> IntArray:
    """Products ordered without a cart event: of two candidates, the likelier buy."""
    first, second = _browsed(ctx, rng, s, sess), _browsed(ctx, rng, s, sess)
    affinity = ctx.catalog.buy_affinity
    return np.where(affinity[second] > affinity[first], second, first)


def _session_events(
    ctx: WindowContext, rng: np.random.Generator, s: _Sessions
) -> tuple[IntArray, NDArray[np.float64], NDArray[np.int8], IntArray]:
    """Every event's session, order key within the session, kind and product."""
    idx = np.arange(s.user.shape[0], dtype=np.int64)
    v_sess = np.repeat(idx, s.views)
    v_key = rng.random(v_sess.shape[0])
    v_prod = _browsed(ctx, rng, s, v_sess)

    c_sess = np.repeat(idx, s.carts)
    m = c_sess.shape[0]
    # Many carts follow a view of the same product in the session; the rest come from lists.
    from_view = (s.views[c_sess] > 0) & (rng.random(m) < cal.P_CART_FROM_VIEW)
    vi = group_starts(s.views)[c_sess] + np.floor(rng.random(m) * s.views[c_sess]).astype(np.int64)
    vi = np.where(from_view, vi, 0)
    c_prod = np.where(from_view, v_prod[vi] if v_prod.size else 0, _browsed(ctx, rng, s, c_sess))
    base_key = v_key[vi] if v_key.size else np.zeros(m)
    c_key = np.where(from_view, base_key + rng.random(m) * (1.0 - base_key), rng.random(m))

    bought, removed = _cart_outcomes(ctx, rng, s, c_sess, c_prod)
    r_key = c_key[removed] + rng.random(int(removed.sum())) * (1.0 - c_key[removed])

    b_sess = np.repeat(idx, s.buy_only)
    candidates = _cheaper(ctx, rng, s, b_sess)
    b_prod = _remembered(ctx, s, b_sess, candidates)
    # A free sample left in a cart is not ordered on its own.
    b_prod = np.where(ctx.catalog.buy_affinity[b_prod] > 0, b_prod, candidates)
    o_sess = np.repeat(idx, s.old_removes)
    o_prod = _remembered(ctx, s, o_sess, _browsed(ctx, rng, s, o_sess))

    sess = np.concatenate([v_sess, c_sess, c_sess[removed], c_sess[bought], b_sess, o_sess])
    # Checkout comes last (keys >= 2), purchases in the order their items were carted.
    key = np.concatenate([
        v_key, c_key, r_key, 2.0 + c_key[bought] / 10, 2.0 + rng.random(b_sess.shape[0]) / 10,
        rng.random(o_sess.shape[0]),
    ])  # fmt: skip
    kind = np.concatenate([
        np.full(v_sess.shape[0], VIEW), np.full(m, CART), np.full(int(removed.sum()), REMOVE),
        np.full(int(bought.sum()), PURCHASE), np.full(b_sess.shape[0], PURCHASE),
        np.full(o_sess.shape[0], REMOVE),
    ]).astype(np.int8)  # fmt: skip
    product = np.concatenate([v_prod, c_prod, c_prod[removed], c_prod[bought], b_prod, o_prod])
    return sess, key, kind, product


def _cart_outcomes(
    ctx: WindowContext, rng: np.random.Generator, s: _Sessions, c_sess: IntArray, c_prod: IntArray
) -> tuple[Bools, Bools]:
    """Which carted items are bought (cheap ones more often) and which are removed."""
    m = c_sess.shape[0]
    affinity = ctx.catalog.buy_affinity[c_prod]
    p_buy = np.where(affinity > 0, np.clip(cal.P_ITEM_BOUGHT * affinity, 0.02, 0.98), 0.0)
    in_buy = s.buy[c_sess]
    # An order lists a product once: only a product's first cart in the session can be bought.
    pair = c_sess * (ctx.catalog.size * 2) + c_prod
    first_of_pair = np.zeros(m, dtype=bool)
    first_of_pair[np.unique(pair, return_index=True)[1]] = True
    bought = in_buy & first_of_pair & (rng.random(m) < p_buy)
    # A purchase session buys at least one carted item: its first cart if nothing else (unless
    # that is a free sample, which nobody orders on its own).
    none_bought = (np.bincount(c_sess, weights=bought, minlength=s.user.shape[0]) == 0) & s.buy
    first = group_starts(s.carts)[none_bought & (s.carts > 0)]
    bought[first[affinity[first] > 0]] = True
    p_remove = np.where(in_buy, cal.P_REMOVE_IN_BUY, cal.P_REMOVE_NO_BUY)
    removed = ~bought & (rng.random(m) < p_remove)
    return bought, removed


def _remembered(ctx: WindowContext, s: _Sessions, sess: IntArray, drawn: IntArray) -> IntArray:
    """The item a user left in a cart earlier, for the first such event of a session."""
    if sess.shape[0] == 0:
        return drawn
    first = np.ones(sess.shape[0], dtype=bool)
    first[1:] = sess[1:] != sess[:-1]
    left = ctx.state.last_cart[s.user[sess]]
    return np.where(first & (left >= 0), left, drawn)


def _event_times(
    rng: np.random.Generator, s: _Sessions, sess: IntArray, kind: NDArray[np.int8]
) -> IntArray:
    """Event times: session start plus lognormal gaps; a checkout's rows share one second."""
    m = int(sess.shape[0])
    speed = rng.lognormal(0.0, cal.SESSION_SPEED_SD, int(s.user.shape[0]))
    gap = rng.lognormal(*cal.GAP_LN, m) * speed[sess]
    pause = np.flatnonzero(rng.random(m) < cal.PAUSE_P)
    gap[pause] = rng.lognormal(*cal.PAUSE_LN, pause.shape[0])
    first = np.ones(m, dtype=bool)
    first[1:] = sess[1:] != sess[:-1]
    buy = kind == PURCHASE
    after_buy = np.zeros(m, dtype=bool)
    after_buy[1:] = buy[:-1] & ~first[1:]
    gap[after_buy] = 0.0
    checkout = np.flatnonzero(buy & ~after_buy)
    gap[checkout] = rng.lognormal(*cal.CHECKOUT_LN, checkout.shape[0])
    gap[first] = 0.0
    # A few sessions are resumed a day or more later under the same id.
    per_session = np.bincount(sess, minlength=s.user.shape[0])
    starts = group_starts(per_session)
    long = (per_session > 1) & (rng.random(per_session.shape[0]) < cal.P_LONG_SESSION)
    at = starts[long] + 1 + np.floor(rng.random(int(long.sum())) * (per_session[long] - 1))
    gap[at.astype(np.int64)] += rng.uniform(*cal.LONG_GAP_DAYS, at.shape[0]) * DAY_S
    elapsed = np.cumsum(gap)
    elapsed -= elapsed[np.flatnonzero(first)][np.cumsum(first) - 1]
    return s.start_s[sess] + elapsed.astype(np.int64)
