"""Purchase propensity per product: `mart_purchase_propensity` from scored carted items."""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa

from cartpulse import duck

TABLE_PURCHASE_PROPENSITY = "mart_purchase_propensity"


def propensity_by_product(
    items: pa.Table, probability: np.ndarray, scored_at: datetime, version: str
) -> pa.Table:
    """Per product: carted items, mean purchase probability, expected and observed purchases."""
    scored = items.select(["product_id", "carted_at", "purchased"]).append_column(
        "p", pa.array(probability)
    )
    con = duck.connect()
    con.register("scored", scored)
    try:
        return _per_product(con, version, scored_at)
    finally:
        con.close()


def _per_product(con: duckdb.DuckDBPyConnection, version: str, scored_at: datetime) -> pa.Table:
    return con.sql(
        """
        SELECT product_id, count(*) AS carted_items,
               avg(p) AS avg_purchase_probability, sum(p) AS expected_purchases,
               count(*) FILTER (purchased) AS bought_items,
               min(carted_at) AS window_start, max(carted_at) AS window_end,
               rank() OVER (ORDER BY sum(p) DESC, product_id) AS rank,
               $version AS model_version, $scored_at::TIMESTAMPTZ AS scored_at
        FROM scored GROUP BY product_id ORDER BY rank
        """,
        params={"version": version, "scored_at": scored_at},
    ).to_arrow_table()
