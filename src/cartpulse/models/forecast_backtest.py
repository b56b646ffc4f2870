"""Rolling-origin backtest of the demand forecast against seasonal naive; tuning; intervals.

Origins step back one week at a time from the end of the history; at each origin the model sees
only the days before it and forecasts the next max(horizons) days. Per horizon h (days 1..h):

- WAPE = Σ|actual − forecast| / Σ actual over every product, origin and day;
- MASE = mean over products of MAE / (in-sample mean |y_t − y_{t−7}|), for products whose
  history is not constant (their scale is 0);
- dispersion = mean((S − F)² / F) over product-origins, with S and F the h-day totals: the
  variance-to-mean ratio used for prediction intervals (negative binomial, variance φ·mean).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cartpulse.models.forecast import (
    SEASON,
    ForecastConfig,
    Matrix,
    forecast_daily,
    is_intermittent,
    seasonal_naive,
)

#: Fewest days of history the model gets at the earliest origin.
MIN_HISTORY_DAYS = 21
LEVEL_ALPHAS = (0.03, 0.05, 0.1, 0.2, 0.3)
TSB_ALPHAS = (0.02, 0.05, 0.1, 0.2)


class BacktestError(ValueError):
    """The history is too short for the requested horizons."""


@dataclass(frozen=True)
class HorizonScore:
    """Backtest errors of the model and of seasonal naive over days 1..horizon."""

    horizon_days: int
    wape: float
    wape_naive: float
    mase: float
    mase_naive: float
    dispersion: float

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
) -> list[tuple[Matrix, Matrix, Matrix, Matrix]]:
    """(actual, model, naive, scale) per origin."""
    longest = max(horizons)
    runs = []
    for origin in origins(history.shape[1], longest, count):
        past = history[:, :origin]
        actual = history[:, origin : origin + longest]
        model = forecast_daily(past, first_weekday, longest, config)
        runs.append((actual, model, seasonal_naive(past, longest), _mase_scale(past)))
    return runs


def _score(runs: list[tuple[Matrix, Matrix, Matrix, Matrix]], h: int, rows: Any) -> HorizonScore:
    actual = np.concatenate([r[0][rows, :h] for r in runs])
    model = np.concatenate([r[1][rows, :h] for r in runs])
    naive = np.concatenate([r[2][rows, :h] for r in runs])
    scale = np.concatenate([r[3][rows] for r in runs])
    total = max(float(actual.sum()), 1e-12)
    scaled = scale > 0
    mae = np.abs(actual - model).mean(axis=1)
    mae_naive = np.abs(actual - naive).mean(axis=1)
    sums, means = actual.sum(axis=1), model.sum(axis=1)
    positive = means > 1e-9
    dispersion = float(np.mean((sums[positive] - means[positive]) ** 2 / means[positive]))
    return HorizonScore(
        horizon_days=h,
        wape=float(np.abs(actual - model).sum() / total),
        wape_naive=float(np.abs(actual - naive).sum() / total),
        mase=float(np.mean(mae[scaled] / scale[scaled])) if scaled.any() else float("nan"),
        mase_naive=float(np.mean(mae_naive[scaled] / scale[scaled]))
        if scaled.any()
        else float("nan"),
        dispersion=max(dispersion, 1.0) if positive.any() else 1.0,
    )


def backtest(
    history: Matrix,
    first_weekday: int,
    horizons: tuple[int, ...],
    count: int,
    config: ForecastConfig,
) -> list[HorizonScore]:
    """Rolling-origin scores of `config` and of seasonal naive, one per horizon."""
    runs = _collect(history, first_weekday, horizons, count, config)
    return [_score(runs, h, slice(None)) for h in horizons]


def tune(
    history: Matrix, first_weekday: int, horizons: tuple[int, ...], count: int
) -> ForecastConfig:
    """Smoothing constants with the lowest mean backtest WAPE on the products they apply to."""
    intermittent = is_intermittent(history)
    base = ForecastConfig()

    def wape(config: ForecastConfig, rows: Any) -> float:
        runs = _collect(history, first_weekday, horizons, count, config)
        return float(np.mean([_score(runs, h, rows).wape for h in horizons]))

    level = base.level_alpha
    if (~intermittent).any():
        level = min(LEVEL_ALPHAS, key=lambda a: wape(replace(base, level_alpha=a), ~intermittent))
    tsb = base.tsb_alpha
    if intermittent.any():
        tsb = min(TSB_ALPHAS, key=lambda a: wape(replace(base, tsb_alpha=a), intermittent))
    return replace(base, level_alpha=level, tsb_alpha=tsb)
