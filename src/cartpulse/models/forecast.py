"""Daily purchases per product: forecasts for every product at once, as numpy matrices.

Input is a matrix `history[product, day]` of purchase counts. Two textbook methods, chosen per
product by its demand pattern (Syntetos & Boylan: average interval between demand days > 1.32
is intermittent):

- smooth demand: simple exponential smoothing of the deseasonalised series (level), times a
  weekday index; each product's weekday profile is shrunk towards the shop's, so a product with
  a handful of sales borrows the shape of the whole shop;
- intermittent demand (the long tail): TSB (Teunter, Syntetos & Babai 2011), which smooths the
  probability of a demand day and the size of a demand separately, so the forecast decays
  when a product stops selling (Croston's method never does), times the same weekday index.

Why not statsforecast: it fits one series at a time (tens of thousands of Python-level fits for
a shop's catalogue) behind a numba JIT that costs seconds on every cold start. Here each
smoothing step is one vector operation over all products, so the whole catalogue is one loop
over days. Seasonal naive (same weekday last week) is the baseline every method must beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.stats import nbinom, poisson

Matrix = NDArray[np.float64]

#: Syntetos-Boylan cut-off on the average demand interval (days per day with a sale).
INTERMITTENT_ADI = 1.32
SEASON = 7


@dataclass(frozen=True)
class ForecastConfig:
    """Smoothing constants; `models train` picks them by rolling-origin backtest."""

    level_alpha: float = 0.1
    """SES constant of the deseasonalised level (smooth products)."""
    tsb_alpha: float = 0.1
    """TSB constant of both the demand probability and the demand size (intermittent products)."""
    season_prior: float = 20.0
    """Pseudo-purchases pulling a product's weekday profile towards the shop's."""


def weekday_index(history: Matrix, first_weekday: int, prior: float) -> Matrix:
    """Per product and weekday (0 = Monday), a multiplicative index averaging 1."""
    weekdays = (first_weekday + np.arange(history.shape[1])) % SEASON
    sums = np.stack([history[:, weekdays == d].sum(axis=1) for d in range(SEASON)], axis=1)
    days_per_weekday = np.bincount(weekdays, minlength=SEASON).astype(np.float64)
    per_day = sums / np.maximum(days_per_weekday, 1.0)
    shop = per_day.sum(axis=0)
    shop_share = shop / shop.sum() if shop.sum() > 0 else np.full(SEASON, 1.0 / SEASON)
    own_share = per_day / np.maximum(per_day.sum(axis=1, keepdims=True), 1e-12)
    weight = history.sum(axis=1, keepdims=True)
    share = (weight * own_share + prior * shop_share) / (weight + prior)
    return np.asarray(share * SEASON, dtype=np.float64)


def is_intermittent(history: Matrix) -> NDArray[np.bool_]:
    """True for products whose average interval between sale days exceeds 1.32 days."""
    demand_days = (history > 0).sum(axis=1)
    adi = history.shape[1] / np.maximum(demand_days, 1)
    return np.asarray(adi > INTERMITTENT_ADI)


def _ses(series: Matrix, alpha: float) -> NDArray[np.float64]:
    """Last SES level of each row, started at the mean of the first two weeks."""
    level = np.asarray(series[:, : 2 * SEASON].mean(axis=1), dtype=np.float64)
    for day in range(series.shape[1]):
        level += alpha * (series[:, day] - level)
    return level


def _tsb(history: Matrix, alpha: float) -> NDArray[np.float64]:
    """TSB demand rate per day: P(demand day) × size of a demand."""
    occurred = history > 0
    prob = occurred.mean(axis=1)
    size = np.where(occurred.any(axis=1), history.sum(axis=1) / np.maximum(occurred.sum(1), 1), 0)
    for day in range(history.shape[1]):
        hit = occurred[:, day]
        prob += alpha * (hit - prob)
        size = np.where(hit, size + alpha * (history[:, day] - size), size)
    return np.asarray(prob * size, dtype=np.float64)


def forecast_daily(
    history: Matrix, first_weekday: int, horizon: int, config: ForecastConfig
) -> Matrix:
    """Expected purchases per product for each of the next `horizon` days."""
    index = weekday_index(history, first_weekday, config.season_prior)
    weekdays = (first_weekday + np.arange(history.shape[1])) % SEASON
    future = (first_weekday + history.shape[1] + np.arange(horizon)) % SEASON
    level = _ses(history / np.maximum(index[:, weekdays], 1e-6), config.level_alpha)
    rate = np.where(is_intermittent(history), _tsb(history, config.tsb_alpha), level)
    return np.asarray(np.maximum(rate, 0)[:, None] * index[:, future], dtype=np.float64)


def seasonal_naive(history: Matrix, horizon: int) -> Matrix:
    """The baseline: each future day repeats the same weekday of the last week."""
    last_week = history[:, -SEASON:]
    reps = -(-horizon // SEASON)
    return np.asarray(np.tile(last_week, reps)[:, :horizon], dtype=np.float64)


def interval(mean: np.ndarray, dispersion: float, coverage: float) -> tuple[Matrix, Matrix]:
    """Central prediction interval of a count with this mean and variance = dispersion × mean."""
    low_q, high_q = (1 - coverage) / 2, 1 - (1 - coverage) / 2
    safe = np.maximum(mean, 1e-9)
    if dispersion <= 1.0 + 1e-9:
        return poisson.ppf(low_q, safe), poisson.ppf(high_q, safe)
    n, p = safe / (dispersion - 1), 1 / dispersion
    return nbinom.ppf(low_q, n, p), nbinom.ppf(high_q, n, p)
