"""`cartpulse spark build`: the warehouse's dbt project built by dbt-spark (session method).

cartpulse starts the SparkSession (Hive catalog in HOME/state/spark-metastore, tables under
spark.warehouse_dir) before dbt runs; dbt-spark's session connection then picks it up.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from cartpulse import duck
from cartpulse.settings import Settings
from cartpulse.spark.session import SparkUnavailableError, build_session
from cartpulse.warehouse.project import (
    WarehouseError,
    dbt_state_dir,
    spark_metastore_dir,
    spark_warehouse_dir,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: The schemas a build writes tables to (staging is views only).
TABLE_SCHEMAS = ("main", "intermediate")


def start_build_session(settings: Settings) -> SparkSession:
    """The SparkSession a dbt-spark build runs in (raises WarehouseError when it cannot start)."""
    if importlib.util.find_spec("dbt.adapters.spark") is None:
        raise WarehouseError(
            "building the warehouse on Spark needs dbt-spark: pip install 'cartpulse[spark]'"
        )
    metastore = spark_metastore_dir(settings)
    metastore.parent.mkdir(parents=True, exist_ok=True)
    try:
        return build_session(
            settings.spark,
            app_name="cartpulse-dbt",
            warehouse_dir=spark_warehouse_dir(settings).resolve(),
            metastore_dir=metastore,
        )
    except SparkUnavailableError as exc:
        raise WarehouseError(str(exc)) from exc


def export_bot_alerts(settings: Settings) -> Path | None:
    """Copy the stream engine's bot_alerts to Parquet for Spark; None when there are none."""
    if not settings.warehouse_path.is_file():
        return None
    try:
        con = duck.connect(settings.warehouse_path, read_only=True)
    except duckdb.IOException as exc:
        raise WarehouseError(
            f"cannot read bot_alerts from {settings.warehouse_path} ({exc}); "
            "stop `cartpulse serve`, or build with warehouse.exclude_bots=false"
        ) from exc
    try:
        found = con.sql(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'main' AND table_name = 'bot_alerts'"
        ).fetchall()
        if not found[0][0]:
            return None
        path = dbt_state_dir(settings, "spark") / "bot_alerts.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        con.sql("SELECT user_id, detected_at, rule FROM bot_alerts").to_parquet(str(path))
        return path
    finally:
        con.close()


def spark_build_vars(settings: Settings) -> dict[str, Any]:
    """The vars only a Spark build needs: where the bot list's Parquet copy is."""
    path = export_bot_alerts(settings) if settings.warehouse.exclude_bots else None
    return {"bot_alerts_path": str(path.resolve()) if path else ""}


def spark_tables(settings: Settings) -> dict[str, Path]:
    """Each table a Spark build made (model name -> its Parquet folder)."""
    root = spark_warehouse_dir(settings)
    found: dict[str, Path] = {}
    for schema in TABLE_SCHEMAS:
        folder = root / f"{schema}.db"
        if folder.is_dir():
            found |= {p.name: p for p in sorted(folder.iterdir()) if p.is_dir()}
    return found
