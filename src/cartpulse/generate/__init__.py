"""Realistic synthetic shop data: a REES46 clickstream, its customer directory and its bots.

The generator is calibrated on the published statistics of the cosmetics-shop dataset
(docs/generator.md), vectorised (numpy/Arrow, no Python loop per event or session) and
deterministic: the same arguments give byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from cartpulse.generate import calibration as cal
from cartpulse.generate.arrow import int_array, string_array
from cartpulse.generate.bots import BOT_KINDS, Bot, bot_day, bots_per_kind, plan_bots
from cartpulse.generate.catalog import Catalog, build_catalog, day_products
from cartpulse.generate.customers import build_customers
from cartpulse.generate.dirty import count_sessions, soil_window
from cartpulse.generate.events import EventBlock, concat_blocks, empty_block, time_order
from cartpulse.generate.ids import with_session_ids
from cartpulse.generate.population import SEEN, Population, UserState, build_population, new_state
from cartpulse.generate.render import HEADER, CsvRenderer
from cartpulse.generate.sessions import WindowContext, fill_window
from cartpulse.generate.timeline import Plan, apportion, plan_timeline
from cartpulse.generate.writer import GzipCsvWriter, write_table_csv

__all__ = ["GenerateReport", "generate_dataset"]

MAX_EVENTS = 2_000_000_000
MAX_DAYS = 3_660
EVENTS_FILE = "events.csv.gz"
CUSTOMERS_FILE = "customers.csv"
BOTS_FILE = "bots.csv"
# Independent random streams, so one part's draws never shift another's.
_PLAN, _CATALOG, _USERS, _BOTS, _BOT_DAY, _WINDOW, _DIRT, _CUSTOMERS, _SALT = range(9)


@dataclass(frozen=True)
class GenerateReport:
    """What generate_dataset wrote."""

    events: int  # rows written to events.csv.gz (including injected duplicates / dirty rows)
    users: int
    sessions: int
    customers: int  # rows in customers.csv
    bots: int  # rows in bots.csv
    days: int
    start: dt.date
    out_dir: Path
    elapsed_s: float


@dataclass(frozen=True)
class _World:
    plan: Plan
    catalog: Catalog
    population: Population
    bots: tuple[Bot, ...]
    state: UserState
    seed: int
    salt: np.ndarray  # mixes the seed into session ids


def generate_dataset(
    out_dir: Path,
    *,
    events: int = 1_000_000,
    days: int = 7,
    seed: int = 42,
    start: dt.date = dt.date(2019, 10, 1),
    progress: Callable[[int], None] | None = None,
) -> GenerateReport:
    """Write a synthetic shop clickstream, its customer directory and its bot list to out_dir."""
    _check_arguments(out_dir, events, days, seed, start)
    began = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    world = _build_world(events, days, seed, start)
    renderer = CsvRenderer(world.catalog, world.population.user_id, start, days)
    with GzipCsvWriter(out_dir / EVENTS_FILE, renderer.render, HEADER, progress) as writer:
        sessions = _generate_events(world, writer)
    flags = world.state.flags
    customers = build_customers(_rng(seed, _CUSTOMERS), world.population.user_id, flags)
    write_table_csv(out_dir / CUSTOMERS_FILE, customers)
    bots = _bots_table(world)
    write_table_csv(out_dir / BOTS_FILE, bots)
    return GenerateReport(
        events=writer.rows,
        users=int(np.count_nonzero(flags & SEEN)),
        sessions=sessions,
        customers=customers.num_rows,
        bots=bots.num_rows,
        days=days,
        start=start,
        out_dir=out_dir,
        elapsed_s=time.perf_counter() - began,
    )


def _check_arguments(out_dir: Path, events: int, days: int, seed: int, start: dt.date) -> None:
    """Reject arguments that cannot make a dataset, saying what is allowed."""
    for name, value, low, high in (
        ("events", events, 1, MAX_EVENTS),
        ("days", days, 1, MAX_DAYS),
        ("seed", seed, 0, 2**63 - 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"{name} must be between {low:,} and {high:,}, got {value:,}")
    if isinstance(start, dt.datetime) or not isinstance(start, dt.date):
        raise ValueError(f"start must be a datetime.date (a day, no time), got {start!r}")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(f"out_dir {out_dir} exists and is not a directory")


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))


def _build_world(events: int, days: int, seed: int, start: dt.date) -> _World:
    """Plan, catalog, users and bots: everything drawn before the first event."""
    plan = plan_timeline(events, days, start, _rng(seed, _PLAN))
    catalog = build_catalog(_rng(seed, _CATALOG), events, days)
    n_bots = bots_per_kind(events) * len(BOT_KINDS)
    sessions = events / cal.ROWS_PER_SESSION
    population = build_population(_rng(seed, _USERS), sessions, n_bots)
    bots = plan_bots(_rng(seed, _BOTS), population.bots, days, events / days)
    salt = _rng(seed, _SALT).integers(0, 2**63, 2).astype(np.uint64)
    return _World(plan, catalog, population, bots, new_state(population.size), seed, salt)


def _generate_events(world: _World, writer: GzipCsvWriter) -> int:
    """Generate window after window, write rows in time order; returns the session count."""
    plan, catalog, seed = world.plan, world.catalog, world.seed
    weights = np.array([w.rows for w in plan.windows], dtype=np.float64)
    negative = apportion(weights, _negative_prices(sum(w.rows for w in plan.windows)))
    sessions_expected = weights.sum() / cal.ROWS_PER_SESSION
    shared = apportion(weights, _shared_sessions(int(weights.sum()), sessions_expected))
    carry, total_sessions = empty_block(), 0
    for day in range(plan.days):
        sale = day in plan.sale_days
        products = day_products(catalog, day, plan.weekday(day), sale)
        traffic = float(plan.day_rows[day]) * plan.days / max(1, int(plan.day_rows.sum()))
        bot_rows = bot_day(world.bots, _rng(seed, _BOT_DAY, day), day, traffic, catalog, products)
        bot_rows = with_session_ids(bot_rows, world.salt)
        kept_bots = []
        for window in (w for w in plan.windows if w.day == day):
            in_window = (bot_rows.time_s >= window.start_s) & (bot_rows.time_s < window.end_s)
            bots_w = bot_rows.mask(in_window).take(slice(0, window.rows))
            organic = empty_block()
            if window.rows > len(bots_w):
                ctx = WindowContext(catalog, products, world.population, world.state, window,
                                    sale, plan.horizon_s, (window.index + 1) << 32)  # fmt: skip
                organic = fill_window(
                    ctx, window.rows - len(bots_w), _rng(seed, _WINDOW, window.index)
                )
                organic = soil_window(organic, _rng(seed, _DIRT, window.index),
                                      int(shared[window.index]), int(negative[window.index]),
                                      catalog.size)  # fmt: skip
                organic = with_session_ids(organic, world.salt)
            total_sessions += count_sessions(organic)
            kept_bots.append(bots_w)
            world.state.record(organic)
            world.state.record(bots_w)
            merged = concat_blocks([carry, bots_w, organic])
            # Rows after the window wait (in their order) for the window they fall in.
            order, now = time_order(merged.time_s, window.start_s, window.end_s)
            writer.write(merged, order[:now])
            carry = merged.take(order[now:])
        total_sessions += _distinct_sessions(concat_blocks(kept_bots))
    return total_sessions


def _distinct_sessions(block: EventBlock) -> int:
    return int(np.unique(block.session[block.session >= 0]).shape[0])


def _negative_prices(events: int) -> int:
    """~131 per 20.7 M rows, but at least a few in any file big enough to notice them."""
    if events < 1_000:
        return 0
    return max(cal.MIN_NEGATIVE_PRICES, round(events * cal.NEGATIVE_PRICE_RATE))


def _shared_sessions(events: int, sessions: float) -> int:
    """~272 session ids shared by several users per 4.5 M sessions, at least a couple."""
    if events < 10_000:
        return 0
    return max(cal.MIN_SHARED_SESSIONS, round(sessions * cal.SHARED_SESSION_RATE))


def _bots_table(world: _World) -> pa.Table:
    """`user_id,kind` of the bots that made it into the file."""
    seen = [b for b in world.bots if world.state.flags[b.user] & SEEN]
    ids = np.array([world.population.user_id[b.user] for b in seen], dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    return pa.table({
        "user_id": int_array(ids[order]),
        "kind": string_array([seen[i].kind for i in order.tolist()]),
    })  # fmt: skip
