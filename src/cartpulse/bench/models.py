"""Benchmark: build every mart from a generated lake with `cartpulse models run`, in a child."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from cartpulse.bench.child import ChildRun, run_child
from cartpulse.bench.ingest import COSMETICS_ROWS, ensure_dataset


def ensure_lake(work: Path, events: int, seed: int) -> Path:
    """Ingest (once) the generated dataset into a home kept under `work`; return the home."""
    home = work / f"home-models-{events}-{seed}"
    if (home / ".complete").exists():
        return home
    shutil.rmtree(home, ignore_errors=True)
    source = ensure_dataset(work, events, seed)
    run = _cartpulse(home, "ingest", str(source), "--json")
    if run.returncode != 0:
        raise RuntimeError(f"ingest failed: {run.stderr.strip()}")
    (home / ".complete").touch()
    return home


def _cartpulse(home: Path, *args: str) -> ChildRun:
    env = {**os.environ, "CARTPULSE_HOME": str(home)}
    return run_child([sys.executable, "-m", "cartpulse", *args], env)


def bench_models(work: Path, events: int, seed: int = 42) -> dict[str, Any]:
    """Full build of every model and test from the lake, then an incremental run with no change."""
    home = ensure_lake(work, events, seed)
    (home / "warehouse.duckdb").unlink(missing_ok=True)
    full = _cartpulse(home, "models", "run", "--json")
    if full.returncode != 0:
        raise RuntimeError(f"models run failed: {full.stderr.strip()}")
    report = json.loads(full.stdout)
    again = _cartpulse(home, "models", "run", "--json")
    if again.returncode != 0:
        raise RuntimeError(f"incremental models run failed: {again.stderr.strip()}")
    lake_rows = _lake_rows(home)
    return {
        "scenario": "models",
        "lake_events": lake_rows,
        "models_ok": report["models_ok"],
        "tests_passed": report["tests_passed"],
        "elapsed_s": round(full.elapsed_s, 2),
        "dbt_build_s": report["elapsed_s"],
        "incremental_rerun_s": round(again.elapsed_s, 2),
        "peak_rss_mib": round(full.peak_rss_mib),
        "events_per_s": round(lake_rows / full.elapsed_s),
        "target": "≤ 60 s for a 20.7 M-event lake on 2 cores",
        "target_met": full.elapsed_s <= 60 * events / COSMETICS_ROWS,
    }


def _lake_rows(home: Path) -> int:
    import pyarrow.parquet as pq

    return sum(
        pq.ParquetFile(f).metadata.num_rows for f in (home / "lake/events").rglob("*.parquet")
    )
