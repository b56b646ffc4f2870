"""CLV from the lake: one summary row per buyer, the fit, and `mart_customer_ltv`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pv

from cartpulse.models import clv
from cartpulse.models.lake import EVENTS, ModelDataError, fetch_arrow

TABLE_CUSTOMER_LTV = "mart_customer_ltv"

# A purchase occasion is a customer's day with purchases (as in the CDNOW studies): several
# items bought in one session or one day are one transaction. Refunds and free items
# (price ≤ 0) carry no spend and are left out. Money is summed in integer cents: a parallel
# sum of doubles differs in the last bits from run to run, and the fit must be reproducible.
_SUMMARY_SQL = f"""
WITH purchase_days AS (
  SELECT user_id, CAST(event_time AS DATE) AS day, sum(round(price * 100)::BIGINT) AS cents
  FROM {EVENTS}
  WHERE event_type = 'purchase' AND price > 0
  GROUP BY ALL
), observation AS (
  SELECT max(CAST(event_time AS DATE)) AS end_day FROM {EVENTS}
)
SELECT user_id,
       (count(*) - 1)::DOUBLE AS frequency,
       date_diff('day', min(day), max(day))::DOUBLE AS recency,
       date_diff('day', min(day), any_value(end_day))::DOUBLE AS T,
       coalesce((sum(cents) - arg_min(cents, day)) / nullif(count(*) - 1, 0) / 100, 0)::DOUBLE
         AS monetary_value
FROM purchase_days, observation
GROUP BY user_id
ORDER BY user_id
"""


def customer_summary(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Per buyer: frequency (repeat purchase days), recency and T in days, mean repeat spend."""
    summary = fetch_arrow(con, _SUMMARY_SQL)
    if summary.num_rows == 0:
        raise ModelDataError("the lake has no purchases with a positive price: nothing to fit")
    return summary


def summary_arrays(summary: pa.Table) -> tuple[clv.Array, clv.Array, clv.Array, clv.Array]:
    """frequency, recency, T and monetary_value as float arrays."""
    return tuple(
        summary.column(c).to_numpy().astype(np.float64)
        for c in ("frequency", "recency", "T", "monetary_value")
    )


def fit_summary(summary: pa.Table) -> clv.ClvParams:
    """Fit BG/NBD and Gamma-Gamma on a customer summary table."""
    return clv.fit_clv(*summary_arrays(summary))


def score_customers(
    summary: pa.Table,
    params: clv.ClvParams,
    months: int,
    monthly_discount: float,
    version: str,
    scored_at: datetime,
) -> pa.Table:
    """One row per buyer: P(alive), expected purchases and discounted CLV over `months`."""
    x, t_x, t, m = summary_arrays(summary)
    horizon_days = months * clv.DAYS_PER_MONTH
    expected = clv.expected_purchases(params.bgnbd, horizon_days, x, t_x, t)
    value = clv.customer_value(params, x, t_x, t, m, months, monthly_discount)
    n = summary.num_rows
    return pa.table(
        {
            "user_id": summary.column("user_id"),
            "frequency": pa.array(x.astype(np.int64)),
            "recency_days": pa.array(t_x.astype(np.int64)),
            "t_days": pa.array(t.astype(np.int64)),
            "avg_repeat_amount": pa.array(m),
            "p_alive": pa.array(clv.probability_alive(params.bgnbd, x, t_x, t)),
            "expected_purchases": pa.array(expected),
            "expected_avg_amount": pa.array(clv.expected_spend(params.gamma_gamma, x, m)),
            "clv_amount": pa.array(value),
            "horizon_months": pa.array(np.full(n, months, dtype=np.int32)),
            "model_version": pa.array([version] * n, pa.string()),
            "scored_at": pa.array([scored_at] * n, pa.timestamp("us", tz="UTC")),
        }
    )


def params_from_dict(values: dict[str, float]) -> clv.ClvParams:
    """Rebuild fitted parameters from their flat form (r, alpha, a, b, p, q, gamma)."""
    return clv.ClvParams(
        clv.BgNbdParams(values["r"], values["alpha"], values["a"], values["b"]),
        clv.GammaGammaParams(values["p"], values["q"], values["gamma"]),
        float(values.get("bgnbd_log_likelihood", float("nan"))),
        float(values.get("gamma_gamma_log_likelihood", float("nan"))),
    )


def read_summary_csv(path: Path) -> pa.Table:
    """A customer summary file: columns frequency, recency, T, monetary_value (others kept)."""
    try:
        table = pv.read_csv(path)
    except pa.ArrowInvalid as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    missing = [
        c for c in ("frequency", "recency", "T", "monetary_value") if c not in table.schema.names
    ]
    if missing:
        raise ValueError(f"{path} lacks column(s) {', '.join(missing)}")
    return table
