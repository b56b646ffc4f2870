"""`cartpulse bench`: measure this machine."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from cartpulse import output
from cartpulse.cli import Context, JsonFlag, fail, guarded

_SCENARIOS = (
    "ingest",
    "replay",
    "email-latency",
    "collector",
    "models",
    "models-ml",
    "dashboard",
    "spark-ratio",
)
#: Run only when asked for: it needs the `spark` extra and Java, and Spark is slow on 20 M rows.
_OPT_IN = ("spark-ratio",)


def bench(
    typer_ctx: typer.Context,
    events: Annotated[
        int, typer.Option("--events", "-n", help="Rows to generate and process.", min=1000)
    ] = 20_692_840,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario",
            "-s",
            help="ingest, replay, email-latency, collector, models, models-ml, dashboard or "
            "spark-ratio (repeatable). Default: all but spark-ratio.",
        ),
    ] = None,
    work: Annotated[
        Path, typer.Option("--work", help="Folder for generated data (kept and reused).")
    ] = Path(".bench"),
    soak_s: Annotated[
        float,
        typer.Option(
            "--soak-s",
            help="collector: after the burst, keep sending this long and sample "
            "the server's memory (e.g. 300 for a 5-minute soak).",
            min=0,
        ),
    ] = 0.0,
    json_out: JsonFlag = False,
) -> None:
    """Measure cartpulse on this machine (results belong in docs/benchmarks.md).

    The data is generated once (cosmetics-sized by default) and kept in --work. Each scenario
    runs in a child process on an empty home; events/s and peak RSS are measured.

    - ingest: CSV.gz → validate → dedupe → lake (target ≤ 60 s for 20.7 M rows)

    - replay: Parquet → event log → stream engine → serving store and lake (targets:
      ≥ 1,000,000 events/s, peak RSS under 2 GB (2,048 MiB), ≤ 300 bytes per open session;
      target_met only when all three are met)

    - email-latency: 1,000 sessions expire over 20 s in live mode; time from each expiry to
      the email being accepted by a local SMTP server (target p99 ≤ 10 s)

    - collector: batched NDJSON to a real `cartpulse serve` over loopback (fsync always);
      events/s and ack latency p50/p99 (target ≥ 100,000 events/s, p99 ≤ 50 ms); with
      --soak-s, the server's memory while the load goes on

    - models: the lake of the generated data → `cartpulse models run` (every mart and data
      test, then an incremental re-run) (target ≤ 60 s for 20.7 M events)

    - models-ml: `models train` then `models score` (CLV, forecast, propensity) on a lake of the
      generated data, ingested once and kept; seconds per model and peak RSS

    - dashboard: a replayed home (at most 100,000 events) served live; 40 purchases posted to
      the collector, each timed until the live page in headless Chromium (/usr/bin/chromium,
      driven by Playwright) shows it (target p99 ≤ 1 s)

    - spark-ratio: the replay job on the embedded engine and on `cartpulse spark stream`
      (Spark local[2]) on the same Parquet file; both events/s and the ratio (target ≥ 10×;
      needs the `spark` extra; use -n 1000000)

    Example, a quick run:

      cartpulse bench --events 2000000 --scenario replay
    """
    ctx: Context = typer_ctx.obj
    from cartpulse.bench.ingest import bench_ingest
    from cartpulse.bench.machine import machine_info
    from cartpulse.bench.ml_models import bench_models as bench_ml_models
    from cartpulse.bench.models import bench_models
    from cartpulse.bench.replay import bench_replay
    from cartpulse.bench.spark_ratio import bench_spark_ratio

    chosen = scenario or [s for s in _SCENARIOS if s not in _OPT_IN]
    unknown = [s for s in chosen if s not in _SCENARIOS]
    if unknown:
        fail(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(_SCENARIOS)}")
    from cartpulse.bench.collector import bench_collector
    from cartpulse.bench.dashboard import bench_dashboard
    from cartpulse.bench.email_latency import bench_email_latency

    runners: dict[str, Callable[[Path, int], dict[str, Any]]] = {
        "ingest": bench_ingest,
        "replay": bench_replay,
        "email-latency": lambda _work, _events: bench_email_latency(),
        "collector": lambda w, n: bench_collector(w, n, soak_s=soak_s),
        "models": bench_models,
        "models-ml": bench_ml_models,
        "dashboard": bench_dashboard,
        "spark-ratio": bench_spark_ratio,
    }
    results = []
    for name in chosen:
        output.note(f"benchmarking {name} of {events:,} generated events (data kept in {work})")
        results.append(guarded(ctx, partial(runners[name], work, events)))
    machine = machine_info()
    if json_out:
        output.print_json({"machine": machine, "results": results})
        return
    output.print_summary("machine", machine)
    for result in results:
        output.print_summary(str(result["scenario"]), result)


def register(app: typer.Typer) -> None:
    """Add `bench` to the `cartpulse` command."""
    app.command()(bench)
