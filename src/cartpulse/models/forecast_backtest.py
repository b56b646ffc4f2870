"""Rolling-origin backtest of the demand forecast against seasonal naive; tuning; intervals.

Origins step back one week at a time from the end of the history; at each origin the model sees
only the days before it and forecasts the next max(horizons) days. Per horizon h (days 1..h):

- WAPE = Σ|S − F| / Σ S over every product and origin, with S and F the actual and forecast
  h-day totals (what the mart reports); `wape_daily` the same over single days;
- MASE = mean over products of the daily MAE / (in-sample mean |y_t − y_{t−7}|), for products
  whose history is not constant (their scale is 0);
- dispersion: the variance-to-mean ratio φ of the prediction intervals (negative binomial,
  variance φ·mean), the smallest on a grid whose intervals hold at least the asked share of
  the backtest's h-day totals; `interval_hit_rate` is the share they hold.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cartpulse.models.forecast import (
    SEASON,
    ForecastConfig,
    Matrix,
    forecast_daily,
    interval,
    is_intermittent,
    seasonal_naive,
)

#: Fewest days of history the model gets at the earliest origin.
MIN_HISTORY_DAYS = 21
LEVEL_ALPHAS = (0.03, 0.05, 0.1, 0.2, 0.3)
TSB_ALPHAS = (0.02, 0.05, 0.1, 0.2)
#: Variance-to-mean ratios tried for the intervals (1 = Poisson).
DISPERSION_GRID = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.5, 8.0, 10.0, 13.0, 16.0, 20.0, 30.0)


class BacktestError(ValueError):
    """The history is too short for the requested horizons."""


@dataclass(frozen=True)
class HorizonScore:
    """Backtest errors of the model and of seasonal naive over days 1..horizon."""

    horizon_days: int
    wape: float
    wape_naive: float
    wape_daily: float
    wape_daily_naive: float
    mase: float
    mase_naive: float
    dispersion: float
    interval_hit_rate: float

    def as_dict(self) -> dict[str, Any]:
        """Rounded for reports."""
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in vars(self).items()}


def origins(n_days: int, horizon: int, count: int) -> list[int]:
    """Up to `count` forecast origins, one week apart, ending `horizon` days before the end."""
    last = n_days - horizon
    found = [last - SEASON * k for k in range(count) if last - SEASON * k >= MIN_HISTORY_DAYS]
    if not found:
        need = MIN_HISTORY_DAYS + horizon
        raise BacktestError(
            f"need at least {need} days of history to backtest {horizon}-day forecasts, "
            f"the lake has {n_days}"
        )
    return sorted(found)


def _mase_scale(history: Matrix) -> Matrix:
    """In-sample mean absolute seasonal difference per product (the MASE denominator)."""
    return np.asarray(np.abs(history[:, SEASON:] - history[:, :-SEASON]).mean(axis=1))


def _collect(
    history: Matrix,
    first_weekday: int,
    horizons: tuple[int, ...],
    count: int,
    config: ForecastConfig,
    rows: NDArray[np.bool_] | None = None,
) -> list[tuple[Matrix, Matrix, Matrix, Matrix]]:
    """(actual, model, naive, scale) per origin, for the chosen products that sold before it.

    A product's first sale after an origin cannot be forecast from its history, and scoring
    only ever sees products that have sold: both leave such rows out.
    """
    chosen = np.ones(history.shape[0], dtype=bool) if rows is None else rows
    longest = max(horizons)
    runs = []
    for origin in origins(history.shape[1], longest, count):
        past = history[:, :origin]
        actual = history[:, origin : origin + longest]
        model = forecast_daily(past, first_weekday, longest, config)
        keep = chosen & (past.sum(axis=1) > 0)
        naive = seasonal_naive(past, longest)
        runs.append((actual[keep], model[keep], naive[keep], _mase_scale(past)[keep]))
    return runs


def _wape(actual: Matrix, forecast: Matrix) -> float:
    return float(np.abs(actual - forecast).sum() / max(float(actual.sum()), 1e-12))


def _mase(actual: Matrix, forecast: Matrix, scale: Matrix) -> float:
    scaled = scale > 0  # a constant history has no scale
    if not scaled.any():
        return float("nan")
    return float(np.mean(np.abs(actual - forecast).mean(axis=1)[scaled] / scale[scaled]))


def _calibrate_dispersion(sums: Matrix, means: Matrix, coverage: float) -> tuple[float, float]:
    """Smallest dispersion on the grid whose intervals hold at least `coverage` of the totals."""
    hit_rate = 0.0
    for dispersion in DISPERSION_GRID:
        low, high = interval(means, dispersion, coverage)
        hit_rate = float(np.mean((sums >= low) & (sums <= high)))
        if hit_rate >= coverage:
            break
    return dispersion, hit_rate


def _score(
    runs: list[tuple[Matrix, Matrix, Matrix, Matrix]], h: int, coverage: float
) -> HorizonScore:
    actual = np.concatenate([r[0][:, :h] for r in runs])
    model = np.concatenate([r[1][:, :h] for r in runs])
    naive = np.concatenate([r[2][:, :h] for r in runs])
    scale = np.concatenate([r[3] for r in runs])
    sums, means, naive_sums = actual.sum(axis=1), model.sum(axis=1), naive.sum(axis=1)
    dispersion, hit_rate = _calibrate_dispersion(sums, means, coverage)
    return HorizonScore(
        horizon_days=h,
        wape=_wape(sums, means),
        wape_naive=_wape(sums, naive_sums),
        wape_daily=_wape(actual, model),
        wape_daily_naive=_wape(actual, naive),
        mase=_mase(actual, model, scale),
        mase_naive=_mase(actual, naive, scale),
        dispersion=dispersion,
        interval_hit_rate=hit_rate,
    )


def backtest(
    history: Matrix,
    first_weekday: int,
    horizons: tuple[int, ...],
    count: int,
    config: ForecastConfig,
    coverage: float = 0.8,
) -> list[HorizonScore]:
    """Rolling-origin scores of `config` and of seasonal naive, one per horizon."""
    runs = _collect(history, first_weekday, horizons, count, config)
    return [_score(runs, h, coverage) for h in horizons]


def tune(
    history: Matrix, first_weekday: int, horizons: tuple[int, ...], count: int
) -> ForecastConfig:
    """Smoothing constants with the lowest mean backtest WAPE on the products they apply to."""
    intermittent = is_intermittent(history)
    base = ForecastConfig()

    def wape(config: ForecastConfig, rows: NDArray[np.bool_]) -> float:
        runs = _collect(history, first_weekday, horizons, count, config, rows)
        totals = [
            _wape(
                np.concatenate([r[0][:, :h].sum(axis=1) for r in runs]),
                np.concatenate([r[1][:, :h].sum(axis=1) for r in runs]),
            )
            for h in horizons
        ]
        return float(np.mean(totals))

    level = base.level_alpha
    if (~intermittent).any():
        level = min(LEVEL_ALPHAS, key=lambda a: wape(replace(base, level_alpha=a), ~intermittent))
    tsb = base.tsb_alpha
    if intermittent.any():
        tsb = min(TSB_ALPHAS, key=lambda a: wape(replace(base, tsb_alpha=a), intermittent))
    return replace(base, level_alpha=level, tsb_alpha=tsb)
