"""The warehouse's dbt project on Spark (`cartpulse spark build`): the same tables as DuckDB.

One home holds the real rows and a generated dataset, with bots flagged. It is built by
dbt-duckdb in this process and by `cartpulse spark build` as a user runs it, and every table
the Spark build made must equal its DuckDB twin row for row. Then more events arrive, both
engines build incrementally, and the tables must still agree.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest

from cartpulse.generate import generate_dataset
from cartpulse.ingest import ingest_files
from cartpulse.spark.warehouse import spark_tables
from tests.conftest import REAL_DATA, require_data, run_cli
from tests.dbt_parity import spark_table, warehouse_differences
from tests.warehouse_homes import Home, flag_bots, real_home

pytestmark = pytest.mark.slow

# every table the project makes (views are not written by Spark)
TABLES = {
    "int_category_hourly",
    "int_daily_activity",
    "int_lake_partitions",
    "int_product_daily",
    "int_sessions",
    "mart_brand_performance",
    "mart_cart_abandonment",
    "mart_category_time",
    "mart_daily_kpis",
    "mart_exclusions",
    "mart_funnel",
    "mart_product_performance",
    "mart_rfm",
}


def add_generated(home: Home, folder: Path, seed: int, start: dt.date) -> None:
    """Generate events, ingest them and flag their bots."""
    generate_dataset(folder, events=15_000, days=3, seed=seed, start=start)
    ingest_files(home.settings, [folder / "events.csv.gz"])
    with (folder / "bots.csv").open(newline="", encoding="utf-8") as f:
        bots = {int(row["user_id"]) for row in csv.DictReader(f)}
    flag_bots(home.settings, bots - home.bots)
    home.bots |= bots


def build_both(home: Home, spark_args: tuple[str, ...] = ()) -> int:
    """Build with `cartpulse models run` (DuckDB), then `cartpulse spark build ARGS`.

    Returns how many models the Spark build made. With a selection, the Spark build makes only
    those models and leaves out data tests; the DuckDB build always builds and tests all.
    """
    reports = []
    for command in (["models", "run"], ["spark", "build", *spark_args]):
        res = run_cli(*command, "--json", home=home.settings.home, timeout=600)
        assert res.code == 0, res.stdout + res.stderr[-3000:]
        reports.append(res.json())
        assert reports[-1]["status"] == "success" and reports[-1]["tests_failed"] == 0
    duck_run, spark_run = reports
    assert duck_run["tests_passed"] > 50
    if not spark_args:
        assert spark_run["models_ok"] == duck_run["models_ok"]
        assert spark_run["tests_passed"] == duck_run["tests_passed"]
    return int(spark_run["models_ok"])


#: The incremental models and the partition fingerprints they are built from.
INCREMENTAL = {
    "int_lake_partitions",
    "int_daily_activity",
    "int_product_daily",
    "int_category_hourly",
    "mart_funnel",
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    tmp = tmp_path_factory.mktemp("spark-dbt")
    built = real_home(require_data(REAL_DATA), tmp)
    add_generated(built, tmp / "gen-1", seed=11, start=dt.date(2019, 10, 1))
    return built


def test_a_spark_build_makes_every_table_of_the_duckdb_build_row_for_row(home: Home) -> None:
    assert build_both(home) == len(TABLES) + 5  # and five views
    assert set(spark_tables(home.settings)) == TABLES
    assert warehouse_differences(home.settings) == {}
    excluded = {
        row["exclusion"]: row for row in spark_table(spark_tables(home.settings)["mart_exclusions"])
    }
    assert excluded["bot"]["excluded_rows"] > 0 and excluded["bot"]["excluded"]
    assert excluded["quarantine"]["excluded_rows"] > 0


def test_an_incremental_spark_build_rewrites_only_the_days_that_changed(
    home: Home, tmp_path: Path
) -> None:
    daily = spark_tables(home.settings)["int_daily_activity"]
    before = {p.parent.name: p.name for p in daily.glob("event_date=*/*.parquet")}
    assert "event_date=2019-10-01" in before and "event_date=2019-10-05" not in before
    # new events on 2019-10-03 .. 2019-10-05: one day already in the lake, two new ones
    add_generated(home, tmp_path / "gen-2", seed=12, start=dt.date(2019, 10, 3))
    # only the incremental models on Spark, without data tests (a second full build would
    # double this module's time); their inputs are views over the lake and the bot list
    args = [x for name in sorted(INCREMENTAL) for x in ("--select", name)]
    assert build_both(home, (*args, "--exclude", "resource_type:test")) == len(INCREMENTAL)
    assert warehouse_differences(home.settings, INCREMENTAL) == {}
    after = {p.parent.name: p.name for p in daily.glob("event_date=*/*.parquet")}
    assert {"event_date=2019-10-04", "event_date=2019-10-05"} <= set(after)
    assert after["event_date=2019-10-03"] != before["event_date=2019-10-03"]
    # untouched days keep the files of the first build
    assert after["event_date=2019-10-01"] == before["event_date=2019-10-01"]


def test_spark_build_says_what_to_do_before_the_lake_has_events(tmp_path: Path) -> None:
    res = run_cli("spark", "build", home=tmp_path / "empty")
    assert res.code == 2
    assert "no events yet" in res.stderr and "cartpulse replay" in res.stderr
