"""The Spark runner against the embedded engine: same lake rows, sales windows and carts.

All Spark tests live in this one module so that `pytest -n 2 --dist loadfile` runs them on one
worker with one SparkSession.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyspark")

from cartpulse.generate import generate_dataset
from cartpulse.settings import Settings
from cartpulse.spark.job import SparkStreamJob, parse_source
from cartpulse.spark.session import build_session
from tests.conftest import REPO
from tests.spark_parity import (
    assert_same_outputs,
    combine_real_rows,
    embedded_replay,
    output_differences,
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
    from tests.conftest import REAL_DATA

    if not REAL_DATA.is_dir():
        pytest.skip(f"real rows not found at {REAL_DATA} (set CARTPULSE_REAL_DATA)")
    folder = tmp_path_factory.mktemp("real-input")
    combine_real_rows(REAL_DATA, folder / "real.csv")
    return folder


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


def test_generated_events_give_the_same_outputs_as_the_embedded_engine(
    spark: Any, generated_input: Path, tmp_path: Path
) -> None:
    embedded_replay(tmp_path / "embedded", sorted(generated_input.iterdir()))
    run_spark(spark, tmp_path / "spark", generated_input)
    rows = assert_same_outputs(tmp_path / "embedded", tmp_path / "spark")
    assert rows["lake"] > 35_000


def test_rerun_on_the_same_checkpoint_adds_nothing(
    spark: Any, real_input: Path, tmp_path: Path
) -> None:
    first = run_spark(spark, tmp_path / "spark", real_input)
    again = run_spark(spark, tmp_path / "spark", real_input)
    assert first["events"] > 0
    assert (again["events"], again["abandoned_carts"], again["sales_rows"]) == (0, 0, 0)


def split_csv(source: Path, folder: Path, parts: int) -> list[Path]:
    """Cut a CSV file into `parts` files of consecutive rows (names sort in order)."""
    lines = source.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    size = -(-len(rows) // parts)
    folder.mkdir(parents=True)
    paths = []
    for n in range(parts):
        path = folder / f"part-{n:02d}.csv"
        path.write_text(header + "".join(rows[n * size : (n + 1) * size]))
        paths.append(path)
    return paths


def spark_cli(home: Path, inputs: Path, *args: str) -> subprocess.Popen[str]:
    """`cartpulse spark stream` on a directory, one file per micro-batch, in its own group."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTPULSE_")}
    env |= {
        "CARTPULSE_HOME": str(home),
        "CARTPULSE_FSYNC": "batch",
        "CARTPULSE_SPARK__MAX_FILES_PER_TRIGGER": "1",
        "CARTPULSE_SPARK__SHUFFLE_PARTITIONS": "2",
        "CARTPULSE_SPARK__SESSION_BUCKETS": "4",
    }
    cmd = [sys.executable, "-m", "cartpulse", "spark", "stream", "--source", f"files:{inputs}"]
    return subprocess.Popen(
        [*cmd, *args, "--json"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the JVM and Python workers die with the group
    )


def test_killed_job_restarts_from_its_checkpoint_without_loss_or_duplicates(
    real_input: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs"
    paths = split_csv(real_input / "real.csv", inputs, 3)
    embedded_replay(tmp_path / "embedded", paths)
    home = tmp_path / "spark"
    proc = spark_cli(home, inputs)
    deadline = time.monotonic() + 240
    lake = home / "lake" / "events"
    while not list(lake.glob("*/part-s000000000000-*.parquet")):
        assert proc.poll() is None, "the job ended before its first batch reached the lake"
        assert time.monotonic() < deadline, "no lake file within 240 s"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-way: batch 0 is in the lake, the rest is not
    proc.wait()
    committed = len(list(lake.glob("*/*.parquet")))
    restarted = spark_cli(home, inputs)
    out, err = restarted.communicate(timeout=600)
    assert restarted.returncode == 0, err[-3000:]
    assert json.loads(out)["events"] > 0 or committed > 0
    diffs = output_differences(tmp_path / "embedded", home)
    rows, spark_rows, lost, duplicated = diffs["lake"]
    assert (spark_rows, lost, duplicated) == (rows, 0, 0)
    carts = diffs["abandoned_carts"]
    assert carts[0] > 0 and carts[1:] == (carts[0], 0, 0)


def test_local_cluster_with_separate_executors_gives_the_same_outputs(
    real_input: Path, tmp_path: Path
) -> None:
    """local-cluster[2,1,1024]: two executor JVMs, so state and workers cross processes."""
    embedded_replay(tmp_path / "embedded", sorted(real_input.iterdir()))
    proc = spark_cli(tmp_path / "spark", real_input, "--master", "local-cluster[2,1,1024]")
    out, err = proc.communicate(timeout=600)
    if proc.returncode != 0 and not (tmp_path / "spark" / "lake").exists():
        # The job makes the lake folder right after the SparkSession has started.
        pytest.skip(f"local-cluster did not start here: {err.strip().splitlines()[-1]}")
    assert proc.returncode == 0, err[-3000:]
    assert json.loads(out)["master"] == "local-cluster[2,1,1024]"
    assert_same_outputs(tmp_path / "embedded", tmp_path / "spark")
