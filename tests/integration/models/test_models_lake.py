"""The three models trained and scored on a real lake made from generated traffic."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cartpulse import duck
from cartpulse.generate import generate_dataset
from cartpulse.ingest import ingest_files
from cartpulse.models.jobs import MODEL_NAMES
from cartpulse.models.lake import ModelDataError
from cartpulse.models.runner import run_models
from cartpulse.settings import Settings, load_settings

# Nine weeks: enough history for three weekly backtest origins of the 28-day horizon.
EVENTS, DAYS = 60_000, 63


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A home whose lake holds nine weeks of generated traffic (seed 42)."""
    root = tmp_path_factory.mktemp("models")
    generate_dataset(root / "data", events=EVENTS, days=DAYS, seed=42)
    settings = load_settings(home=root / "home")
    ingest_files(settings, [root / "data" / "events.csv.gz"])
    return settings


@pytest.fixture(scope="module")
def trained(settings: Settings) -> list[dict[str, Any]]:
    return run_models(settings, list(MODEL_NAMES), train=True, score=True)


@pytest.fixture
def warehouse(
    settings: Settings, trained: list[dict[str, Any]]
) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duck.connect(settings.warehouse_path)
    pattern = settings.events_dir / "*" / "*.parquet"
    con.execute(f"CREATE TEMP VIEW lake AS SELECT * FROM read_parquet('{pattern}')")
    yield con
    con.close()


def _report(trained: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(r for r in trained if r["model"] == name)


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    return con.execute(sql).fetchone()[0]  # type: ignore[index]


def test_customer_ltv_has_one_sane_row_per_buyer(warehouse: duckdb.DuckDBPyConnection) -> None:
    buyers = _one(
        warehouse,
        "SELECT count(DISTINCT user_id) FROM lake WHERE event_type = 'purchase' AND price > 0",
    )
    assert _one(warehouse, "SELECT count(*) FROM mart_customer_ltv") == buyers
    bad = _one(
        warehouse,
        """SELECT count(*) FROM mart_customer_ltv WHERE NOT (p_alive BETWEEN 0 AND 1)
           OR expected_purchases < 0 OR clv_amount < 0 OR recency_days > t_days
           OR horizon_months <> 12 OR model_version <> 'v0001'""",
    )
    assert bad == 0
    # Repeat buyers are worth more on average than one-time buyers.
    repeat, once = warehouse.execute(
        "SELECT avg(clv_amount) FILTER (frequency > 0), avg(clv_amount) FILTER (frequency = 0) "
        "FROM mart_customer_ltv"
    ).fetchone()  # type: ignore[misc]
    assert repeat > once


def test_forecast_beats_seasonal_naive_on_generated_traffic(trained: list[dict[str, Any]]) -> None:
    # The generator gives every product a weekly cycle and a trend: smoothing must win.
    horizons = _report(trained, "forecast")["metrics"]["horizons"]
    assert [h["horizon_days"] for h in horizons] == [7, 14, 28]
    for h in horizons:
        assert h["wape"] < h["wape_naive"], h
        assert h["wape_daily"] < h["wape_daily_naive"], h
        assert h["mase"] < h["mase_naive"], h
        assert h["interval_hit_rate"] >= 0.8, h


def test_forecast_mart_ranks_every_selling_product(warehouse: duckdb.DuckDBPyConnection) -> None:
    products = _one(
        warehouse, "SELECT count(DISTINCT product_id) FROM lake WHERE event_type = 'purchase'"
    )
    per_horizon = warehouse.execute(
        """SELECT horizon_days, count(*), min(rank), max(rank), count(DISTINCT rank),
                  count(*) FILTER (lower_purchases > upper_purchases)
           FROM mart_product_forecast GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    assert per_horizon == [(h, products, 1, products, products, 0) for h in (7, 14, 28)]
    shrinking = _one(
        warehouse,
        """SELECT count(*) FROM mart_product_forecast a JOIN mart_product_forecast b
           USING (product_id) WHERE a.horizon_days < b.horizon_days
           AND a.forecast_purchases > b.forecast_purchases + 1e-9""",
    )
    assert shrinking == 0
    top = warehouse.execute(
        "SELECT rank FROM mart_product_forecast WHERE horizon_days = 7 "
        "ORDER BY forecast_purchases DESC, product_id LIMIT 3"
    ).fetchall()
    assert top == [(1,), (2,), (3,)]


def test_propensity_auc_is_well_above_chance(trained: list[dict[str, Any]]) -> None:
    metrics = _report(trained, "propensity")["metrics"]
    # The generator makes a few "shoppers" buy in half their sessions and everyone else
    # rarely, and cheap items convert better: user history and price separate the outcomes.
    # With ~2,500 validation items at a ~20 % base rate, the AUC of a useless model has a
    # standard error of ~0.014 around 0.5, so 0.6 is a margin of 0.1 (> 7 standard errors).
    assert metrics["auc"] >= 0.6
    assert metrics["brier"] < metrics["brier_base_rate"]
    assert len(metrics["calibration"]) == 10


def test_propensity_mart_covers_products_carted_in_the_last_week(
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    expected = _one(
        warehouse,
        """SELECT count(DISTINCT product_id) FROM lake WHERE event_type = 'cart'
           AND user_session IS NOT NULL
           AND event_time > (SELECT max(event_time) FROM lake WHERE event_type = 'cart')
                            - INTERVAL 7 DAY""",
    )
    assert _one(warehouse, "SELECT count(*) FROM mart_purchase_propensity") == expected
    assert (
        _one(
            warehouse,
            """SELECT count(*) FROM mart_purchase_propensity WHERE NOT
           (avg_purchase_probability BETWEEN 0 AND 1) OR expected_purchases > carted_items""",
        )
        == 0
    )


def test_versions_are_recorded_and_retraining_reproduces_them(
    settings: Settings, trained: list[dict[str, Any]]
) -> None:
    again = run_models(settings, list(MODEL_NAMES), train=True, score=False)
    for first, second in zip(trained, again, strict=True):
        assert second["version"] == "v0002"
        assert second["metrics"] == first["metrics"]
        params = [
            json.loads((Path(r["path"]) / "params.json").read_text()) for r in (first, second)
        ]
        for p in params:
            p.pop("trained_at"), p.pop("version")
        assert params[0] == params[1]
    con = duck.connect(settings.warehouse_path)
    try:
        rows = con.execute("SELECT name, version FROM model_versions ORDER BY ALL").fetchall()
    finally:
        con.close()
    assert rows == [(n, v) for n in sorted(MODEL_NAMES) for v in ("v0001", "v0002")]


def test_a_warehouse_held_by_another_process_is_a_clear_error(
    settings: Settings, trained: list[dict[str, Any]]
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WAREHOUSE, str(settings.warehouse_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with pytest.raises(ModelDataError, match="is another cartpulse process writing"):
            run_models(settings, ["clv"], train=False, score=True)
    finally:
        holder.communicate("")
    # Once it is released, the same run publishes.
    assert run_models(settings, ["clv"], train=False, score=True)[0]["mart_rows"] > 0


# A second process keeping the warehouse open for writing, as `cartpulse serve` does.
HOLD_WAREHOUSE = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.read()
"""
