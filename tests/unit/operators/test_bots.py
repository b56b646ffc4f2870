"""The bot operator on small hand-made traffic: each rule, episodes, batching, peaks, TTL."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from cartpulse.operators.bots import BotOperator, BotState
from cartpulse.settings import BotSettings

T0_US = 1_569_888_000_000_000  # 2019-10-01 00:00 UTC
HOUR_S = 3_600


def traffic(
    user: int, times_s: np.ndarray, kinds: list[str], products: np.ndarray, sessions: list[str]
) -> pa.Table:
    """One user's events (seconds after T0) as an event table."""
    return pa.table(
        {
            "event_time": pa.array(T0_US + (times_s * 1e6).astype(np.int64)).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "event_type": pa.array(kinds, pa.string()),
            "product_id": pa.array(products.astype(np.int64)),
            "user_id": pa.array(np.full(len(kinds), user, np.int64)),
            "user_session": pa.array(sessions, pa.string()),
        }
    )


def human(user: int, rng: np.random.Generator, start_s: float = 0.0, n: int = 40) -> pa.Table:
    """A shopper: irregular gaps, views then a few carts and removes, a new session per visit."""
    gaps = rng.lognormal(3.0, 1.3, n)
    gaps[n // 3 :: n // 3] += rng.uniform(HOUR_S, 3 * HOUR_S)  # comes back later
    times = start_s + np.cumsum(gaps)
    kinds = rng.choice(["view", "view", "view", "cart", "remove_from_cart"], n).tolist()
    visit = np.cumsum(np.isin(np.arange(n), np.arange(n // 3, n, n // 3)))
    return traffic(user, times, kinds, rng.integers(1, 50, n), [f"s{user}-{v}" for v in visit])


def crawler(user: int, rng: np.random.Generator, start_s: float = 0.0, n: int = 600) -> pa.Table:
    """Views of products in catalog order, one every 3 s give or take a quarter second."""
    times = start_s + np.arange(n) * 3.0 + rng.normal(0, 0.25, n)
    return traffic(user, times, ["view"] * n, np.arange(n), [f"c{user}"] * n)


def cart_stuffer(user: int, rng: np.random.Generator) -> pa.Table:
    """Carts 1–4 s apart, nothing else."""
    times = np.cumsum(rng.integers(1, 5, 80)).astype(float)
    return traffic(user, times, ["cart"] * 80, rng.integers(1, 500, 80), [f"k{user}"] * 80)


def replayer(user: int, rng: np.random.Generator) -> pa.Table:
    """Ordinary events, each arriving twice a second apart."""
    base = np.cumsum(rng.integers(5, 60, 40)).astype(float)
    times = np.repeat(base, 2) + np.tile([0.0, 1.0], 40)
    products = np.repeat(rng.integers(1, 500, 40), 2)
    return traffic(user, times, ["view"] * 80, products, [f"r{user}"] * 80)


def in_order(*tables: pa.Table) -> pa.Table:
    """Tables merged in event-time order, with log offsets."""
    merged = pa.concat_tables(tables).sort_by("event_time")
    return merged.append_column("_offset", pa.array(np.arange(merged.num_rows, dtype=np.int64)))


def run(
    events: pa.Table, batch_rows: int, settings: BotSettings | None = None
) -> tuple[list[dict[str, Any]], BotState]:
    """Feed the events in batches (clock = newest event), return every alert and the state."""
    op = BotOperator(settings or BotSettings())
    state, alerts = BotState.empty(), []
    for start in range(0, events.num_rows, batch_rows):
        batch = events.slice(start, batch_rows)
        now = int(batch.column("event_time").cast(pa.int64()).to_numpy().max())
        state, new = op.advance(state, batch, now)
        alerts.extend(new.to_pylist())
    return alerts, state


def flagged(alerts: list[dict[str, Any]]) -> dict[int, str]:
    """User → rules of their alerts."""
    return {a["user_id"]: a["rule"] for a in alerts}


def test_each_bot_kind_is_flagged_by_its_rule_and_shoppers_are_not() -> None:
    rng = np.random.default_rng(1)
    shoppers = [human(100 + u, rng) for u in range(60)]
    events = in_order(
        *shoppers, crawler(1, rng), cart_stuffer(2, rng), replayer(3, rng), human(4, rng)
    )
    alerts, _ = run(events, 500)
    rules = flagged(alerts)
    assert set(rules) == {1, 2, 3}, rules
    assert "regular_pace" in rules[1]
    assert "carts_without_views" in rules[2]
    assert "replayed_events" in rules[3]
    evidence = json.loads(next(a["evidence"] for a in alerts if a["user_id"] == 1))
    assert evidence["views"] >= 30 and evidence["gap_cv"] <= 0.3


def test_one_alert_per_episode_however_the_stream_is_cut() -> None:
    rng = np.random.default_rng(2)
    events = in_order(crawler(1, rng), *[human(100 + u, rng) for u in range(20)])
    for batch_rows in (60, 450, 10_000):
        alerts, _ = run(events, batch_rows)
        assert [a["user_id"] for a in alerts] == [1], (batch_rows, alerts)


def test_a_new_episode_after_a_quiet_cooldown() -> None:
    rng = np.random.default_rng(3)
    settings = BotSettings(cooldown_s=2 * HOUR_S)
    again = 6 * HOUR_S  # the first run lasts 30 min, then 5.5 h of silence
    events = in_order(crawler(1, rng), crawler(1, rng, start_s=again))
    alerts, _ = run(events, 50, settings)
    assert [a["user_id"] for a in alerts] == [1, 1]
    close_again = in_order(crawler(1, rng), crawler(1, rng, start_s=HOUR_S))
    alerts, _ = run(close_again, 50, settings)
    assert len(alerts) == 1  # back within the cool-down: the same episode


def test_a_peak_of_many_ordinary_users_raises_no_alert() -> None:
    rng = np.random.default_rng(4)
    quiet = [human(1_000 + u, rng, start_s=0) for u in range(40)]
    peak = [human(2_000 + u, rng, start_s=2 * HOUR_S, n=60) for u in range(400)]
    alerts, _ = run(in_order(*quiet, *peak), 2_000)
    assert alerts == []


def test_traffic_share_uses_a_robust_score_against_the_hour() -> None:
    rng = np.random.default_rng(5)
    # A fast, irregular scraper: no other rule fits, its share of the hour does.
    gaps = rng.uniform(0.2, 6.0, 1_500)
    scraper = traffic(
        9,
        np.cumsum(gaps),
        ["view"] * 1_500,
        np.arange(1_500),
        [f"x{i // 300}" for i in range(1_500)],
    )
    shoppers = [human(100 + u, rng, n=30) for u in range(200)]
    alerts, _ = run(in_order(scraper, *shoppers), 1_000)
    assert flagged(alerts) == {9: "traffic_share"}
    evidence = json.loads(alerts[0]["evidence"])
    assert evidence["robust_z"] >= 10 and evidence["traffic_share"] >= 0.05


def test_idle_users_are_forgotten_but_not_during_their_cooldown() -> None:
    rng = np.random.default_rng(6)
    bot, shopper = crawler(1, rng), human(2, rng, start_s=-6 * HOUR_S)
    events = in_order(bot, shopper)
    op = BotOperator(BotSettings())
    state, _ = op.advance(BotState.empty(), events, None)
    assert sorted(state.users.column("user_id").to_pylist()) == [1, 2]
    last = int(bot.column("event_time").cast(pa.int64()).to_numpy().max())
    later = last + 4 * HOUR_S * 1_000_000  # past the TTL, inside the crawler's cool-down
    state, _ = op.advance(state, events.slice(0, 0), later)
    assert state.users.column("user_id").to_pylist() == [1]
    state, _ = op.advance(state, events.slice(0, 0), later + 7 * HOUR_S * 1_000_000)
    assert state.users.num_rows == 0 and state.hour_totals.num_rows == 0
