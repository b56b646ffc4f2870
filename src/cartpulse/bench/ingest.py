"""Benchmark: batch ingest of a generated file into a fresh lake, in a child process."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from cartpulse.bench.child import run_child

COSMETICS_ROWS = 20_692_840  # the 5-month cosmetics dataset


def ensure_dataset(work: Path, events: int, seed: int) -> Path:
    """Generate (once) a dataset of `events` rows under `work` and return its events file."""
    from cartpulse.generate import generate_dataset

    folder = work / f"data-{events}-{seed}"
    target = folder / "events.csv.gz"
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        days = max(7, min(150, events // 140_000))
        generate_dataset(folder, events=events, days=days, seed=seed)
        (folder / ".complete").touch()
    return target


def bench_ingest(work: Path, events: int, seed: int = 42) -> dict[str, Any]:
    """Ingest a generated file into an empty home; time it and measure the child's peak RSS."""
    source = ensure_dataset(work, events, seed)
    home = work / "home-ingest"
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "CARTPULSE_HOME": str(home)}
    run = run_child([sys.executable, "-m", "cartpulse", "ingest", str(source), "--json"], env)
    if run.returncode != 0:
        raise RuntimeError(f"ingest failed: {run.stderr.strip()}")
    report = json.loads(run.stdout)
    elapsed = run.elapsed_s
    lake_bytes = sum(f.stat().st_size for f in (home / "lake").rglob("*.parquet"))
    shutil.rmtree(home, ignore_errors=True)
    return {
        "scenario": "ingest",
        "events": report["read"],
        "clean": report["clean"],
        "quarantined": report["quarantined"],
        "duplicates": report["duplicates"],
        "input_bytes": source.stat().st_size,
        "lake_bytes": lake_bytes,
        "elapsed_s": round(elapsed, 2),
        "events_per_s": round(report["read"] / elapsed),
        "peak_rss_mib": round(run.peak_rss_mib),
        "peak_anon_mib": round(run.peak_anon_mib),
        "target": "≤ 60 s for 20.7 M rows on 2 cores",
        "target_met": elapsed <= 60 * report["read"] / COSMETICS_ROWS,
    }
