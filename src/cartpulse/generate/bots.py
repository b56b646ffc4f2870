"""Bot users hidden among real ones: crawlers, cart stuffers, replayers and slow scrapers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cartpulse.generate import calibration as cal
from cartpulse.generate.catalog import Catalog, DayProducts, sample_products
from cartpulse.generate.events import CART, VIEW, EventBlock, IntArray, concat_blocks, sort_by_time
from cartpulse.generate.timeline import DAY_S, HOUR_S

BOT_KINDS = ("crawler", "cart_stuffer", "replayer", "slow_scraper")
# Share of the bot traffic each kind sends.
_KIND_SHARE = {"crawler": 0.4, "cart_stuffer": 0.25, "replayer": 0.15, "slow_scraper": 0.2}
_BOT_KEY_BASE = 1 << 62


@dataclass(frozen=True)
class Bot:
    """One bot: a population member with a kind and a steady pace."""

    index: int
    user: int  # population row
    kind: str
    interval_s: float  # seconds between requests (crawler, slow_scraper)
    walk_start: int  # where its walk through the catalog starts (crawler, slow_scraper)
    walk_per_day: int  # how far the walk moves on each day, so days cover new products
    active: tuple[bool, ...]  # per day
    rows_per_day: float  # on an active day of average traffic


def bots_per_kind(events: int) -> int:
    """A handful of each kind, more for bigger files; none in tiny files."""
    if events < cal.BOT_MIN_EVENTS:
        return 0
    wanted = round(cal.BOTS_PER_KIND_AT_1M * math.sqrt(events / 1_000_000))
    return int(min(cal.MAX_BOTS_PER_KIND, max(1, wanted)))


def plan_bots(
    rng: np.random.Generator, users: IntArray, days: int, mean_day_rows: float
) -> tuple[Bot, ...]:
    """Give each bot row of the population a kind, a pace and the days it is active."""
    per_kind = users.shape[0] // len(BOT_KINDS)
    bots = []
    for i, user in enumerate(users.tolist()):
        kind = BOT_KINDS[min(i // max(per_kind, 1), len(BOT_KINDS) - 1)]
        share = cal.BOT_SHARE * _KIND_SHARE[kind] * mean_day_rows / max(per_kind, 1)
        # On thin days a bot shows up on fewer days, with enough requests to be a pattern.
        p_active = min(0.85, share / cal.BOT_MIN_ROWS_PER_DAY)
        active = rng.random(days) < p_active
        active[rng.integers(0, days)] = True  # every listed bot shows up at least once
        daily = share / p_active * float(rng.uniform(0.7, 1.3))
        if kind == "slow_scraper":  # low but metronome-regular, all day long
            interval = float(np.clip(DAY_S / daily, 20.0, 3_600.0))
        else:
            interval = float(rng.uniform(2.0, 6.0))
        walk = int(rng.integers(0, 1 << 30))
        stride = int(daily * 1.4) + 1
        bots.append(Bot(i, int(user), kind, interval, walk, stride, tuple(active.tolist()), daily))
    return tuple(bots)


def bot_day(
    bots: tuple[Bot, ...],
    rng: np.random.Generator,
    day: int,
    traffic: float,
    catalog: Catalog,
    products: DayProducts,
) -> EventBlock:
    """All bot events of one day (`traffic`: the day's rows over an average day's), in order."""
    blocks = []
    for bot in bots:  # a handful of bots: one loop turn per bot
        if not bot.active[day]:
            continue
        target = max(int(bot.rows_per_day * traffic), 10)
        make = _MAKERS[bot.kind]
        time_s, kind, product, local = make(bot, rng, target, catalog, products, day)
        key = _BOT_KEY_BASE + (bot.index << 40) + (day << 24) + local
        blocks.append(
            EventBlock(
                day * DAY_S + time_s,
                kind,
                product,
                products.cents[product],
                np.full(time_s.shape[0], bot.user, dtype=np.int64),
                key,
            )
        )
    return sort_by_time(concat_blocks(blocks))


_Made = tuple[IntArray, np.ndarray, IntArray, IntArray]  # seconds of day, kind, product, session


def _crawler(
    bot: Bot,
    rng: np.random.Generator,
    target: int,
    catalog: Catalog,
    products: DayProducts,
    day: int,
) -> _Made:
    """Many views of distinct products at a fast, regular pace, for a few hours."""
    n = min(target, int(20 * HOUR_S / bot.interval_s))
    begin = rng.uniform(0, DAY_S - n * bot.interval_s)
    time_s = begin + np.arange(n) * bot.interval_s + rng.normal(0.0, 0.25, n)
    # It walks the catalog in order and picks up the next day where it stopped.
    product = (bot.walk_start + day * bot.walk_per_day + np.arange(n)) % catalog.size
    local = np.arange(n) // int(rng.integers(300, 1500))
    return _clip_day(time_s), np.full(n, VIEW, np.int8), product.astype(np.int64), local


def _slow_scraper(
    bot: Bot,
    rng: np.random.Generator,
    target: int,
    catalog: Catalog,
    products: DayProducts,
    day: int,
) -> _Made:
    """Views at a low, metronome-regular pace all day; a new session every few dozen views."""
    n = int(DAY_S / bot.interval_s)
    begin = rng.uniform(0, bot.interval_s)
    time_s = begin + np.arange(n) * bot.interval_s + rng.integers(-1, 2, n)
    step = 7919  # a prime stride hops around the catalog, one product after another
    product = ((bot.walk_start + day * n + np.arange(n)) * step) % catalog.size
    local = np.arange(n) // int(rng.integers(20, 40))
    return _clip_day(time_s), np.full(n, VIEW, np.int8), product.astype(np.int64), local


def _cart_stuffer(
    bot: Bot,
    rng: np.random.Generator,
    target: int,
    catalog: Catalog,
    products: DayProducts,
    day: int,
) -> _Made:
    """Sessions that cart dozens of items in quick succession, with no views and no purchase."""
    sizes = rng.integers(30, 150, max(1, target // 90))
    n = int(sizes.sum())
    local = np.repeat(np.arange(sizes.shape[0]), sizes)
    begin = rng.integers(0, DAY_S - 900, int(sizes.shape[0]))
    time_s = begin[local] + _elapsed(rng.integers(1, 5, n), sizes)
    product = sample_products(products, rng, np.full(n, -1), catalog.category_bounds)
    return time_s.astype(np.int64), np.full(n, CART, np.int8), product, local.astype(np.int64)


def _replayer(
    bot: Bot,
    rng: np.random.Generator,
    target: int,
    catalog: Catalog,
    products: DayProducts,
    day: int,
) -> _Made:
    """Ordinary-looking sessions whose every event arrives in a burst of identical copies."""
    bursts = max(1, target // 15)
    burst = rng.integers(5, 25, bursts)
    sessions = max(1, bursts // 10)
    sizes = rng.multinomial(bursts, np.full(sessions, 1.0 / sessions))
    local = np.repeat(np.arange(sessions), sizes)
    begin = rng.integers(0, DAY_S - 3 * HOUR_S, sessions)
    clock = begin[local] + _elapsed(rng.integers(5, 60, bursts), sizes)
    product = sample_products(products, rng, np.full(bursts, -1), catalog.category_bounds)
    kind = np.where(rng.random(bursts) < 0.7, VIEW, CART).astype(np.int8)
    src = np.repeat(np.arange(burst.shape[0]), burst)
    within = np.arange(src.shape[0]) - np.repeat(np.cumsum(burst) - burst, burst)
    time_s = clock[src] + (within >= burst[src] // 2)  # re-sent within the same second or next
    return _clip_day(time_s), kind[src], product[src], local[src].astype(np.int64)


def _elapsed(steps: IntArray, sizes: IntArray) -> IntArray:
    """Time since each group's first row, for consecutive groups of `sizes` rows."""
    before = np.cumsum(steps) - steps  # sum of all earlier steps
    first = np.minimum(np.cumsum(sizes) - sizes, max(before.shape[0] - 1, 0))
    elapsed: IntArray = (before - np.repeat(before[first], sizes)).astype(np.int64)
    return elapsed


def _clip_day(time_s: np.ndarray) -> IntArray:
    return np.clip(np.round(time_s), 0, DAY_S - 1).astype(np.int64)


_MAKERS = {
    "crawler": _crawler,
    "slow_scraper": _slow_scraper,
    "cart_stuffer": _cart_stuffer,
    "replayer": _replayer,
}
