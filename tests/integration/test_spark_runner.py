"""The Spark runner against the embedded engine: same lake rows, sales windows and carts.

The tests here share one in-process SparkSession; the ones that run `cartpulse spark stream` as
processes of their own (killed and restarted, local-cluster) are in test_spark_processes.py, so
that `pytest -n 2 --dist loadfile` runs the two groups side by side.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyspark")

from cartpulse.generate import generate_dataset
from cartpulse.settings import Settings
from cartpulse.spark.job import SparkStreamJob
from cartpulse.spark.session import build_session
from cartpulse.spark.source import parse_source
from tests.spark_parity import (
    assert_same_outputs,
    embedded_replay,
    real_rows_folder,
)

pytestmark = pytest.mark.slow


def spark_settings(home: Path, **spark: Any) -> Settings:
    """Small partitions and buckets: the inputs are small and the machine has 2 cores."""
    values = {"shuffle_partitions": 2, "session_buckets": 4, **spark}
    return Settings(home=home, fsync="never", spark=values)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local[2] SparkSession for the module (UI off, warehouse in a temporary folder)."""
    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    session = build_session(spark_settings(warehouse).spark, "cartpulse-tests", warehouse)
    yield session
    session.stop()


def run_spark(spark: Any, home: Path, inputs: Path, **cfg: Any) -> dict[str, Any]:
    job = SparkStreamJob(spark, spark_settings(home, **cfg), parse_source(f"files:{inputs}"))
    try:
        return job.run_backfill().as_dict()
    finally:
        job.close()


@pytest.fixture(scope="module")
def real_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_rows_folder(tmp_path_factory)


@pytest.fixture(scope="module")
def generated_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 40k generated events (with the generator's dirty rows and duplicates)."""
    gen = tmp_path_factory.mktemp("generated")
    generate_dataset(gen, events=40_000, days=2, seed=7)
    folder = gen / "input"
    folder.mkdir()
    (gen / "events.csv.gz").rename(folder / "events.csv.gz")
    return folder


def test_real_rows_give_the_same_outputs_as_the_embedded_engine(
    spark: Any, real_input: Path, tmp_path: Path
) -> None:
    embedded_replay(tmp_path / "embedded", sorted(real_input.iterdir()))
    report = run_spark(spark, tmp_path / "spark", real_input)
    rows = assert_same_outputs(tmp_path / "embedded", tmp_path / "spark")
    assert report["events"] == rows["lake"]
    assert report["abandoned_carts"] == rows["abandoned_carts"]
    assert report["quarantined"] == rows["quarantine"]


def test_generated_events_give_the_same_outputs_as_the_embedded_engine(
    spark: Any, generated_input: Path, tmp_path: Path
) -> None:
    embedded_replay(tmp_path / "embedded", sorted(generated_input.iterdir()))
    run_spark(spark, tmp_path / "spark", generated_input)
    rows = assert_same_outputs(tmp_path / "embedded", tmp_path / "spark")
    assert rows["lake"] > 35_000
    assert rows["quarantine"] > 0 and rows["bot_alerts"] > 0


def test_rerun_on_the_same_checkpoint_adds_nothing(
    spark: Any, real_input: Path, tmp_path: Path
) -> None:
    first = run_spark(spark, tmp_path / "spark", real_input)
    again = run_spark(spark, tmp_path / "spark", real_input)
    assert first["events"] > 0
    assert (again["events"], again["abandoned_carts"], again["sales_rows"]) == (0, 0, 0)
    assert (again["quarantined"], again["bot_alerts"]) == (0, 0)
