"""`cartpulse models train|score|list` and `cartpulse clv fit`: the models over the lake."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cartpulse import output
from cartpulse.cli import Context, JsonFlag, fail, guarded

models_app = typer.Typer(
    help=(
        "Batch models over the lake: the dbt marts, customer lifetime value, demand forecast "
        "and purchase propensity.\n\n"
        "- run: build the dbt marts (KPIs, funnel, abandonment, categories, brands, products, "
        "RFM, sessions) and run their data tests (docs/warehouse.md)\n\n"
        "- train: fit every model, save a new version with its metrics, score\n\n"
        "- score: write mart_customer_ltv, mart_product_forecast, mart_purchase_propensity\n\n"
        "- list: the latest version of each model and its metrics\n\n"
        "Versions live in HOME/models/<name>/<version>/ (params.json, metrics.json, model.pkl) "
        "and in the warehouse table model_versions. See docs/models.md."
    ),
    no_args_is_help=True,
)
clv_app = typer.Typer(
    help="Fit BG/NBD + Gamma-Gamma on a customer summary file.", no_args_is_help=True
)

_MODELS = ("clv", "forecast", "propensity")

ModelOption = Annotated[
    list[str] | None,
    typer.Option(
        "--model", "-m", help="clv, forecast or propensity (repeatable). Default: all three."
    ),
]


def _chosen(model: list[str] | None) -> list[str]:
    names = model or list(_MODELS)
    unknown = [n for n in names if n not in _MODELS]
    if unknown:
        fail(f"unknown model {', '.join(unknown)}; choose from {', '.join(_MODELS)}")
    return names


def _run(typer_ctx: typer.Context, model: list[str] | None, train: bool, json_out: bool) -> None:
    ctx: Context = typer_ctx.obj
    settings = ctx.settings()
    names = _chosen(model)
    from cartpulse.models.runner import run_models

    verb = "training" if train else "scoring"
    with output.count_progress(f"{verb} models", len(names), quiet=json_out) as bar:
        task = bar.task_ids[0]
        reports = guarded(
            ctx,
            lambda: run_models(
                settings, names, train=train, score=True, on_done=lambda _n: bar.advance(task)
            ),
        )
    if json_out:
        output.print_json(reports)
        return
    for report in reports:
        _show(report)


def _show(report: dict[str, Any]) -> None:
    metrics = dict(report.pop("metrics", {}))
    horizons = metrics.pop("horizons", [])
    calibration = metrics.pop("calibration", [])
    output.print_summary(f"{report['model']} {report.get('version', '')}", report | metrics)
    if horizons:
        columns = list(horizons[0])
        output.print_table("backtest (days 1..h)", columns, [list(h.values()) for h in horizons])
    if calibration:
        columns = list(calibration[0])
        output.print_table(
            "calibration (validation)", columns, [list(c.values()) for c in calibration]
        )


@models_app.command("train")
def train(typer_ctx: typer.Context, model: ModelOption = None, json_out: JsonFlag = False) -> None:
    """Fit models on the lake, save a new version of each with its metrics, then score.

    - clv: BG/NBD + Gamma-Gamma on every buyer's purchase days (metrics: log-likelihoods)

    - forecast: smoothing tuned by rolling-origin backtest; WAPE, MASE vs seasonal naive

    - propensity: boosted trees, calibrated, split by time; AUC, Brier, calibration table

    Same lake, same settings (models.seed): same models. Examples:

      cartpulse models train

      cartpulse models train --model forecast --json
    """
    _run(typer_ctx, model, train=True, json_out=json_out)


@models_app.command("score")
def score(typer_ctx: typer.Context, model: ModelOption = None, json_out: JsonFlag = False) -> None:
    """Apply the latest version of each model to the lake and replace its mart.

    mart_customer_ltv (one row per buyer), mart_product_forecast (one row per product and
    horizon, ranked) and mart_purchase_propensity (one row per product carted in the last
    models.propensity_score_days days). Example:

      cartpulse models score && cartpulse query "SELECT * FROM mart_product_forecast
      WHERE horizon_days = 7 ORDER BY rank LIMIT 10"
    """
    _run(typer_ctx, model, train=False, json_out=json_out)


@models_app.command("list")
def list_models(typer_ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Show the latest trained version of each model and its headline metrics."""
    ctx: Context = typer_ctx.obj
    settings = ctx.settings()
    from cartpulse.models.registry import ModelNotTrainedError, latest_version

    rows: list[dict[str, Any]] = []
    for name in _MODELS:
        try:
            version = latest_version(settings.models_dir, name)
        except ModelNotTrainedError:
            continue
        rows.append(
            {
                "model": name,
                "version": version.version,
                "trained_at": version.trained_at,
                "path": str(version.path),
                "metrics": version.metrics,
            }
        )
    if json_out:
        output.print_json(rows)
        return
    if not rows:
        output.note(f"no trained models in {settings.models_dir}: run `cartpulse models train`")
    table = [(r["model"], r["version"], r["trained_at"].isoformat(), r["path"]) for r in rows]
    output.print_table("models", ["model", "version", "trained_at", "path"], table)


@clv_app.command("fit")
def clv_fit(
    typer_ctx: typer.Context,
    summary: Annotated[
        Path, typer.Argument(help="CSV with columns frequency, recency, T, monetary_value.")
    ],
    json_out: JsonFlag = False,
) -> None:
    """Fit BG/NBD and Gamma-Gamma on one row per customer; print r, alpha, a, b, p, q, gamma.

    frequency = repeat purchases, recency = time from first to last purchase, T = time from
    first purchase to the end of observation (any one unit: days, weeks), monetary_value =
    mean value of the repeat purchases. Example, the CDNOW sample of Fader, Hardie & Lee:

      cartpulse clv fit cdnow_summary.csv --json
    """
    ctx: Context = typer_ctx.obj
    from cartpulse.models.clv_mart import fit_summary, read_summary_csv

    params = guarded(ctx, lambda: fit_summary(read_summary_csv(summary)))
    if json_out:
        output.print_json(params.as_dict())
        return
    output.print_summary(
        f"fitted on {summary}",
        params.as_dict()
        | {
            "bgnbd_log_likelihood": params.bgnbd_log_likelihood,
            "gamma_gamma_log_likelihood": params.gamma_gamma_log_likelihood,
        },
    )


def register(app: typer.Typer) -> None:
    """Add `models` and `clv` to the `cartpulse` command."""
    from cartpulse import cli_warehouse  # noqa: F401  (adds `models run` to models_app)

    app.add_typer(models_app, name="models")
    app.add_typer(clv_app, name="clv")
