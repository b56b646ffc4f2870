"""The dbt command line, profile and vars derived from settings."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cartpulse.settings import Settings
from cartpulse.warehouse.project import (
    SOURCE_PROJECT_DIR,
    WarehouseError,
    dbt_args,
    dbt_vars,
    project_dir,
    spark_warehouse_dir,
    write_profile,
)


def lake_file(folder: Path) -> None:
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), folder / "part-0.parquet")


def test_vars_come_from_settings_and_the_lake(home: Path) -> None:
    settings = Settings(home=home, session={"timeout_s": 600}, warehouse={"exclude_bots": False})
    lake_file(settings.events_dir / "event_date=2019-10-01")
    found = dbt_vars(settings)
    assert found == {
        "lake_dir": str(settings.lake_dir.resolve()),
        "quarantine_glob": "",
        "exclude_bots": False,
        "session_timeout_s": 600,
    }
    lake_file(settings.quarantine_dir / "ingest_date=2026-01-01")
    assert dbt_vars(settings)["quarantine_glob"].endswith("quarantine/*/*.parquet")


def test_an_empty_lake_is_refused_with_what_to_do(home: Path) -> None:
    with pytest.raises(WarehouseError, match="run `cartpulse ingest FILE`"):
        dbt_vars(Settings(home=home))


def test_profile_points_at_the_warehouse_under_state(home: Path) -> None:
    settings = Settings(home=home, warehouse={"threads": 3})
    folder = write_profile(settings)
    assert folder == settings.state_dir / "dbt"
    output = json.loads((folder / "profiles.yml").read_text())["cartpulse"]["outputs"]
    assert output["warehouse"] == {
        "type": "duckdb",
        "path": str(settings.warehouse_path.resolve()),
        "schema": "main",
        "threads": 3,
        "settings": {"memory_limit": "8GB", "preserve_insertion_order": False},
    }


def test_build_arguments_keep_dbt_files_out_of_the_project(home: Path) -> None:
    settings = Settings(home=home)
    lake_file(settings.events_dir / "event_date=2019-10-01")
    args = dbt_args(settings, ["+mart_rfm", "mart_funnel"], full_refresh=True)
    assert args[0] == "build"
    assert args[args.index("--project-dir") + 1] == str(SOURCE_PROJECT_DIR)
    assert args[args.index("--target-path") + 1] == str(settings.state_dir / "dbt" / "target")
    assert args[args.index("--log-path") + 1] == str(settings.state_dir / "dbt" / "logs")
    assert args[args.index("--select") + 1 :][:2] == ["+mart_rfm", "mart_funnel"]
    assert "--full-refresh" in args and "--no-send-anonymous-usage-stats" in args


def test_a_project_dir_without_dbt_project_is_refused(home: Path) -> None:
    settings = Settings(home=home, warehouse={"project_dir": home})
    with pytest.raises(WarehouseError, match="CARTPULSE_WAREHOUSE__PROJECT_DIR"):
        project_dir(settings)


def test_spark_profile_uses_the_session_cartpulse_starts(home: Path) -> None:
    settings = Settings(home=home, spark={"dbt_threads": 3})
    folder = write_profile(settings, "spark")
    assert folder == settings.state_dir / "dbt-spark"
    profile = json.loads((folder / "profiles.yml").read_text())["cartpulse"]
    assert profile["target"] == "spark"
    assert profile["outputs"]["spark"] == {
        "type": "spark",
        "method": "session",
        "host": "NA",
        "schema": "main",
        "threads": 3,
    }
    assert spark_warehouse_dir(settings) == home / "spark-warehouse"


def test_unknown_engine_is_refused(home: Path) -> None:
    with pytest.raises(WarehouseError, match="unknown engine 'trino'"):
        write_profile(Settings(home=home), "trino")
