"""Demand forecast: methods, backtest and intervals on data with known weekly seasonality."""

from __future__ import annotations

import numpy as np
import pytest

from cartpulse.models import forecast as fc
from cartpulse.models import forecast_backtest as bt

# Busy Saturday, quiet Sunday: the shape every product shares, with its own level.
WEEKLY = np.array([0.9, 0.9, 1.0, 1.0, 1.1, 1.5, 0.6])


def _seasonal_counts(products: int, days: int, seed: int) -> np.ndarray:
    """Poisson purchases: heavy-tailed product levels × the weekly profile × a mild trend."""
    rng = np.random.default_rng(seed)
    level = rng.pareto(1.2, products) * 0.4 + 0.02
    trend = 1 + 0.3 * np.linspace(0, 1, days)
    profile = WEEKLY / WEEKLY.mean()
    rate = level[:, None] * profile[np.arange(days) % 7][None, :] * trend[None, :]
    return np.asarray(rng.poisson(rate), dtype=np.float64)


def test_forecasts_beat_seasonal_naive_on_every_horizon() -> None:
    counts = _seasonal_counts(2_000, 112, seed=7)
    config = bt.tune(counts, 0, (7, 14, 28), 4)
    scores = bt.backtest(counts, 0, (7, 14, 28), 4, config)
    assert [s.horizon_days for s in scores] == [7, 14, 28]
    for s in scores:
        assert s.wape < 0.9 * s.wape_naive, s
        assert s.wape_daily < 0.9 * s.wape_daily_naive, s
        assert s.mase < s.mase_naive, s
        # the interval width is calibrated on these same origins to hold at least 80 %
        assert 0.8 <= s.interval_hit_rate < 0.95, s


def test_weekday_index_recovers_the_weekly_profile_of_a_busy_product() -> None:
    rate = 50 * WEEKLY[np.arange(700) % 7] / WEEKLY.mean()
    counts = np.random.default_rng(2).poisson(rate)[None, :].astype(np.float64)
    index = fc.weekday_index(counts, 0, prior=20.0)
    assert index.mean() == pytest.approx(1.0)
    assert index[0] == pytest.approx(WEEKLY / WEEKLY.mean(), rel=0.03)


def test_a_product_with_few_sales_borrows_the_shops_profile() -> None:
    counts = np.zeros((2, 28))
    counts[0] = 40 * (np.arange(28) % 7 == 5)  # busy product sells on Saturdays only
    counts[1, 3] = 1  # one sale, on a Thursday
    index = fc.weekday_index(counts, 0, prior=20.0)
    assert index[1].argmax() == 5
    assert index[1, 3] < index[1, 5]


def test_intermittent_products_follow_syntetos_boylan() -> None:
    counts = np.zeros((2, 20))
    counts[0] = 1  # sells every day
    counts[1, ::3] = 2  # a sale every third day: ADI 3
    assert fc.is_intermittent(counts).tolist() == [False, True]


def test_tsb_forecast_fades_when_a_product_stops_selling() -> None:
    counts = np.zeros((2, 84))
    counts[:, :42:2] = 3  # both sold every other day for six weeks...
    counts[1, 42::2] = 3  # ...but only the second kept selling
    daily = fc.forecast_daily(counts, 0, 7, fc.ForecastConfig(tsb_alpha=0.1))
    assert daily[0].sum() < 0.25 * daily[1].sum()
    assert daily[1].sum() == pytest.approx(7 * 1.5, rel=0.2)


def test_seasonal_naive_repeats_last_week() -> None:
    counts = np.arange(14, dtype=np.float64)[None, :]
    assert fc.seasonal_naive(counts, 10).tolist() == [[7, 8, 9, 10, 11, 12, 13, 7, 8, 9]]


def test_origins_step_back_a_week_and_need_enough_history() -> None:
    assert bt.origins(100, 28, 4) == [51, 58, 65, 72]
    assert bt.origins(55, 28, 4) == [27]
    with pytest.raises(bt.BacktestError, match="need at least 49 days"):
        bt.origins(40, 28, 4)


@pytest.mark.parametrize("dispersion", [1.0, 3.0])
def test_intervals_cover_about_the_asked_share(dispersion: float) -> None:
    rng = np.random.default_rng(3)
    mean = np.full(20_000, 6.0)
    if dispersion == 1.0:
        draws = rng.poisson(mean)
    else:
        draws = rng.negative_binomial(mean / (dispersion - 1), 1 / dispersion)
    low, high = fc.interval(mean, dispersion, 0.8)
    covered = float(((draws >= low) & (draws <= high)).mean())
    # Discrete quantiles include their end points, so coverage is at least the asked share.
    assert 0.8 <= covered <= 0.93
