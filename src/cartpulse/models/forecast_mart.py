"""Demand forecast from the lake: the daily purchase matrix and `mart_product_forecast`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa

from cartpulse.models.forecast import (
    ForecastConfig,
    Matrix,
    forecast_daily,
    interval,
    is_intermittent,
)
from cartpulse.models.lake import EVENTS, ModelDataError, fetch_arrow

TABLE_PRODUCT_FORECAST = "mart_product_forecast"

_DAILY_SQL = f"""
WITH span AS (
  SELECT min(CAST(event_time AS DATE)) AS first_day, max(CAST(event_time AS DATE)) AS last_day
  FROM {EVENTS}
)
SELECT product_id, date_diff('day', any_value(first_day), CAST(event_time AS DATE)) AS day,
       count(*) AS purchases, any_value(first_day) AS first_day, any_value(last_day) AS last_day
FROM {EVENTS}, span
WHERE event_type = 'purchase'
GROUP BY product_id, CAST(event_time AS DATE)
"""


@dataclass(frozen=True)
class DailyPurchases:
    """Purchases per product (rows) and day (columns) from `first_day` on."""

    product_ids: np.ndarray
    counts: Matrix
    first_day: date

    @property
    def first_weekday(self) -> int:
        """Weekday of the first column, 0 = Monday."""
        return self.first_day.weekday()

    @property
    def next_day(self) -> date:
        """The first day being forecast."""
        return self.first_day + timedelta(days=self.counts.shape[1])


def daily_purchases(con: duckdb.DuckDBPyConnection) -> DailyPurchases:
    """The products × days matrix of purchase counts, from the first to the last day of events."""
    rows = fetch_arrow(con, _DAILY_SQL)
    if rows.num_rows == 0:
        raise ModelDataError("the lake has no purchases: nothing to forecast")
    first_day: date = rows.column("first_day")[0].as_py()
    n_days = (rows.column("last_day")[0].as_py() - first_day).days + 1
    products, row_of = np.unique(rows.column("product_id").to_numpy(), return_inverse=True)
    counts = np.zeros((len(products), n_days))
    counts[row_of, rows.column("day").to_numpy()] = rows.column("purchases").to_numpy()
    return DailyPurchases(products, counts, first_day)


def score_products(
    data: DailyPurchases,
    config: ForecastConfig,
    dispersion: dict[int, float],
    coverage: float,
    version: str,
    scored_at: datetime,
) -> pa.Table:
    """One row per product and horizon: forecast, interval and rank (1 = sells most)."""
    horizons = sorted(dispersion)
    daily = forecast_daily(data.counts, data.first_weekday, max(horizons), config)
    method = np.where(is_intermittent(data.counts), "tsb", "seasonal_ses")
    recent = data.counts[:, -28:].sum(axis=1)
    parts = []
    for h in horizons:
        total = daily[:, :h].sum(axis=1)
        low, high = interval(total, dispersion[h], coverage)
        order = np.lexsort((data.product_ids, -total))
        rank = np.empty(len(total), dtype=np.int64)
        rank[order] = np.arange(1, len(total) + 1)
        parts.append(
            pa.table(
                {
                    "product_id": pa.array(data.product_ids, pa.int64()),
                    "horizon_days": pa.array(np.full(len(total), h, dtype=np.int32)),
                    "forecast_start": pa.array([data.next_day] * len(total), pa.date32()),
                    "forecast_purchases": pa.array(total),
                    "lower_purchases": pa.array(low),
                    "upper_purchases": pa.array(high),
                    "interval_coverage": pa.array(np.full(len(total), coverage)),
                    "rank": pa.array(rank),
                    "method": pa.array(method),
                    "purchases_last_28d": pa.array(recent.astype(np.int64)),
                    "model_version": pa.array([version] * len(total), pa.string()),
                    "scored_at": pa.array([scored_at] * len(total), pa.timestamp("us", tz="UTC")),
                }
            )
        )
    return pa.concat_tables(parts)
