"""Benchmark: train and score the three models on a lake of generated traffic."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from cartpulse.bench.child import ChildRun, run_child
from cartpulse.bench.ingest import ensure_dataset


def ensure_lake(work: Path, events: int, seed: int) -> Path:
    """A home whose lake holds the generated dataset, ingested once and kept (not timed)."""
    source = ensure_dataset(work, events, seed)
    home = work / f"home-models-{events}-{seed}"
    if not (home / ".lake-complete").exists():
        shutil.rmtree(home, ignore_errors=True)
        env = {**os.environ, "CARTPULSE_HOME": str(home), "CARTPULSE_FSYNC": "never"}
        _checked(
            "ingest", run_child([sys.executable, "-m", "cartpulse", "ingest", str(source)], env)
        )
        (home / ".lake-complete").touch()
    return home


def _checked(step: str, run: ChildRun) -> ChildRun:
    if run.returncode != 0:
        raise RuntimeError(f"{step} failed: {run.stderr.strip()}")
    return run


def _models_run(home: Path, verb: str) -> tuple[ChildRun, list[dict[str, Any]]]:
    env = {**os.environ, "CARTPULSE_HOME": str(home)}
    cmd = [sys.executable, "-m", "cartpulse", "models", verb, "--json"]
    run = _checked(f"models {verb}", run_child(cmd, env))
    return run, json.loads(run.stdout)


def bench_models(work: Path, events: int, seed: int = 42) -> dict[str, Any]:
    """`models train` then `models score` in child processes: seconds per model, peak RSS."""
    home = ensure_lake(work, events, seed)
    shutil.rmtree(home / "models", ignore_errors=True)
    (home / "warehouse.duckdb").unlink(missing_ok=True)
    train, trained = _models_run(home, "train")
    score, scored = _models_run(home, "score")
    result: dict[str, Any] = {"scenario": "models-ml", "events": events}
    for t, s in zip(trained, scored, strict=True):
        name = t["model"]
        # `train` also scores once; its fit time is the part before scoring.
        result[f"{name}_fit_s"] = t["train_s"]
        result[f"{name}_score_s"] = s["score_s"]
        result[f"{name}_mart_rows"] = s["mart_rows"]
    propensity = next(t["metrics"] for t in trained if t["model"] == "propensity")
    forecast = next(t["metrics"] for t in trained if t["model"] == "forecast")
    result |= {
        "propensity_auc": propensity["auc"],
        "propensity_brier": propensity["brier"],
        "forecast_wape_7d": forecast["horizons"][0]["wape"],
        "forecast_wape_7d_naive": forecast["horizons"][0]["wape_naive"],
        "train_process_s": round(train.elapsed_s, 2),
        "score_process_s": round(score.elapsed_s, 2),
        "train_peak_rss_mib": round(train.peak_rss_mib),
        "score_peak_rss_mib": round(score.peak_rss_mib),
    }
    return result
