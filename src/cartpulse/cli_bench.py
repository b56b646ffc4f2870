"""`cartpulse bench`: measure this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cartpulse import output
from cartpulse.cli import Context, JsonFlag, fail, guarded

_SCENARIOS = ("ingest", "replay", "email-latency", "models-ml")


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
            help="ingest, replay, email-latency or models-ml (repeatable). Default: all.",
        ),
    ] = None,
    work: Annotated[
        Path, typer.Option("--work", help="Folder for generated data (kept and reused).")
    ] = Path(".bench"),
    json_out: JsonFlag = False,
) -> None:
    """Measure cartpulse on this machine (results belong in docs/benchmarks.md).

    The data is generated once (cosmetics-sized by default) and kept in --work. Each scenario
    runs in a child process on an empty home; events/s and peak RSS are measured.

    - ingest: CSV.gz → validate → dedupe → lake (target ≤ 60 s for 20.7 M rows)

    - replay: Parquet → event log → stream engine → serving store and lake
      (target ≥ 1,000,000 events/s; also peak RSS and bytes per open session)

    - email-latency: 1,000 sessions expire over 20 s in live mode; time from each expiry to
      the email being accepted by a local SMTP server (target p99 ≤ 10 s)

    - models-ml: `models train` then `models score` (CLV, forecast, propensity) on a lake of the
      generated data, ingested once and kept; seconds per model and peak RSS

    Example, a quick run:

      cartpulse bench --events 2000000 --scenario replay
    """
    ctx: Context = typer_ctx.obj
    from cartpulse.bench.ingest import bench_ingest
    from cartpulse.bench.machine import machine_info
    from cartpulse.bench.ml_models import bench_models
    from cartpulse.bench.replay import bench_replay

    chosen = scenario or list(_SCENARIOS)
    unknown = [s for s in chosen if s not in _SCENARIOS]
    if unknown:
        fail(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(_SCENARIOS)}")
    from cartpulse.bench.email_latency import bench_email_latency

    runners = {
        "ingest": bench_ingest,
        "replay": bench_replay,
        "email-latency": lambda _work, _events: bench_email_latency(),
        "models-ml": bench_models,
    }
    results = []
    for name in chosen:
        output.note(f"benchmarking {name} of {events:,} generated events (data kept in {work})")
        results.append(guarded(ctx, lambda name=name: runners[name](work, events)))  # type: ignore[misc]
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
