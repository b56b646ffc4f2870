"""Benchmark: the same replay job on the embedded engine and on Spark local[2], and the ratio."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from cartpulse.bench.child import run_child
from cartpulse.bench.replay import bench_replay, ensure_parquet

TARGET_RATIO = 10.0


def bench_spark_ratio(
    work: Path, events: int, seed: int = 42, master: str = "local[2]"
) -> dict[str, Any]:
    """Replay one generated Parquet file embedded, then with `cartpulse spark stream`."""
    embedded = bench_replay(work, events, seed)
    source = ensure_parquet(work, events, seed)
    inputs = work / "spark-input"
    shutil.rmtree(inputs, ignore_errors=True)
    inputs.mkdir(parents=True)
    os.link(source, inputs / source.name)
    home = work / "home-spark"
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "CARTPULSE_HOME": str(home), "CARTPULSE_FSYNC": "batch"}
    cmd = [sys.executable, "-m", "cartpulse", "spark", "stream", "--source", f"files:{inputs}"]
    run = run_child([*cmd, "--master", master, "--json"], env)
    shutil.rmtree(inputs, ignore_errors=True)
    if run.returncode != 0:
        raise RuntimeError(f"spark stream failed: {run.stderr.strip()[-2000:]}")
    report = json.loads(run.stdout)
    shutil.rmtree(home, ignore_errors=True)
    # Both rates count the rows of the same input file (embedded "events" are rows read).
    spark_eps = embedded["events"] / run.elapsed_s
    ratio = embedded["events_per_s"] / spark_eps if spark_eps else 0.0
    return {
        "scenario": "spark-ratio",
        "master": master,
        "events": embedded["events"],
        "lake_events": report["events"],
        "embedded_events_per_s": embedded["events_per_s"],
        "embedded_elapsed_s": embedded["elapsed_s"],
        "spark_events_per_s": round(spark_eps),
        "spark_elapsed_s": round(run.elapsed_s, 2),
        "spark_job_elapsed_s": report["elapsed_s"],
        "spark_micro_batches": report["micro_batches"],
        "spark_state_bytes_per_open_session": (
            round(report["state_bytes"] / report["open_sessions"]) if report["open_sessions"] else 0
        ),
        "ratio": round(ratio, 1),
        "target": f"embedded ≥ {TARGET_RATIO:g}× Spark {master}",
        "target_met": ratio >= TARGET_RATIO,
    }
