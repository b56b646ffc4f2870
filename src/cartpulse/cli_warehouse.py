"""`cartpulse models`: build the warehouse marts from the lake with dbt."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cartpulse import output
from cartpulse.cli import Context, JsonFlag, fail, guarded
from cartpulse.cli_models import models_app  # `models run` joins train/score/list
from cartpulse.settings import Settings
from cartpulse.warehouse.runs import ModelsRun

#: `--select` of a dbt build (models run, spark build).
SelectOption = Annotated[
    list[str] | None,
    typer.Option(
        "--select",
        "-s",
        help="dbt selection, e.g. mart_rfm, +mart_daily_kpis (with what it needs) or "
        "marts (a folder); repeatable. Default: every model and test.",
    ),
]

#: `--full-refresh` of a dbt build.
FullRefreshFlag = Annotated[
    bool, typer.Option("--full-refresh", help="Rebuild incremental models from the whole lake.")
]


@models_app.command("run")
def models_run(
    typer_ctx: typer.Context,
    select: SelectOption = None,
    full_refresh: FullRefreshFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Build the marts from the lake and run every data test (`dbt build`).

    Marts land in warehouse.duckdb (schema main): mart_daily_kpis, mart_funnel,
    mart_cart_abandonment, mart_category_time, mart_brand_performance,
    mart_product_performance, mart_rfm, mart_sessions and mart_exclusions. Events of
    bot-flagged users are left out (setting warehouse.exclude_bots) and counted, like
    quarantined rows, in mart_exclusions. Daily models are incremental: only lake partitions
    that changed are rebuilt. Each run is recorded in the table models_runs. With
    serving.postgres_dsn set, the marts that changed are then published to PostgreSQL. While
    `cartpulse serve` runs, it owns the warehouse: this command asks it to build, and it also
    rebuilds the marts every warehouse.interval_s. Examples:

      cartpulse models run

      cartpulse models run --select +mart_rfm --json

      cartpulse query "SELECT * FROM mart_daily_kpis ORDER BY event_date"
    """
    ctx: Context = typer_ctx.obj
    settings = ctx.settings()
    if running := guarded(ctx, lambda: _run_in_serve(settings, select)):
        _report(settings, running, json_out)
        return
    run = build_with_progress(ctx, settings, select, full_refresh, json_out)
    data = run.as_dict()
    if run.ok and settings.serving.postgres_dsn is not None:
        from cartpulse.sinks.postgres.sync import sync_home

        data["postgres"] = guarded(ctx, lambda: sync_home(settings, tables=False))["marts"]
    _report(settings, data, json_out)


def build_with_progress(
    ctx: Context,
    settings: Settings,
    select: list[str] | None,
    full_refresh: bool,
    json_out: bool,
    engine: str = "duckdb",
    exclude: list[str] | None = None,
) -> ModelsRun:
    """Run `dbt build` on the engine with a progress bar (none with --json)."""
    from cartpulse.warehouse import NodeProgress, run_models
    from cartpulse.warehouse.project import check_ready

    guarded(ctx, lambda: check_ready(settings))
    with output.count_progress(f"building models and tests on {engine}", 0, quiet=json_out) as bar:
        task = bar.task_ids[0]

        def on_progress(node: NodeProgress) -> None:
            bar.update(
                task,
                total=node.total or None,
                completed=node.done,
                description=f"{node.resource_type} {node.name}: {node.status}",
            )

        return guarded(
            ctx, lambda: run_models(settings, select, on_progress, full_refresh, engine, exclude)
        )


def _run_in_serve(settings: Settings, select: list[str] | None) -> dict[str, Any] | None:
    """While `serve` owns the warehouse, it builds the marts (None when no serve runs)."""
    from cartpulse.serve.handle import call_running_serve

    return call_running_serve(settings, "/v1/models/run", {"select": select}, timeout_s=3600)


def _report(settings: Settings, data: dict[str, Any], json_out: bool) -> None:
    """Print a run and exit 1 when it did not succeed."""
    report_build(data, json_out, f"models run {data['status']} in {settings.warehouse_path}")


def report_build(data: dict[str, Any], json_out: bool, title: str) -> None:
    """Print a build's outcome (failures in full) and exit 1 when it did not succeed."""
    failures = data.pop("failures", None)
    if json_out:
        output.print_json(data | {"failures": failures})
    else:
        output.print_summary(title, data)
    if data["status"] != "success":
        fail(data.get("message") or f"models run {data['status']}", code=1)
