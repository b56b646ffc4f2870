"""`cartpulse serving sync`: copy the serving tables and marts to PostgreSQL for BI tools."""

from __future__ import annotations

from typing import Annotated

import typer

from cartpulse import output
from cartpulse.cli import Context, JsonFlag, guarded

serving_app = typer.Typer(
    help=(
        "The PostgreSQL serving store (serving.postgres_dsn): every serving table and mart "
        "mirrored for BI tools (Superset, Metabase, Grafana, Tableau). See "
        "docs/serving-postgres.md."
    ),
    no_args_is_help=True,
)


@serving_app.command("sync")
def sync(
    typer_ctx: typer.Context,
    tables: Annotated[
        bool, typer.Option("--tables/--no-tables", help="Publish the serving tables.")
    ] = True,
    marts: Annotated[
        bool, typer.Option("--marts/--no-marts", help="Publish the mart_* tables.")
    ] = True,
    json_out: JsonFlag = False,
) -> None:
    """Publish what changed in warehouse.duckdb to PostgreSQL, idempotently.

    Serving tables (product_sales_minute, abandoned_carts, retarget_messages, bot_alerts,
    dq_counts, and the view product_sales_total) get the rows that changed since the last
    publish, upserted by their natural key; marts (mart_*) that changed are replaced in one
    transaction each. Tables are created on first use. `cartpulse serve` does this by itself
    (serving tables every serving.publish_interval_s, marts after each models run); use this
    command when serve is not running, e.g. after `cartpulse replay`. Examples:

      CARTPULSE_SERVING__POSTGRES_DSN=postgresql://bi@127.0.0.1/shop cartpulse serving sync

      cartpulse serving sync --no-tables --json
    """
    ctx: Context = typer_ctx.obj
    settings = ctx.settings()
    from cartpulse.sinks.postgres.sync import sync_home

    result = guarded(ctx, lambda: sync_home(settings, tables, marts))
    if json_out:
        output.print_json(result)
        return
    if "tables" in result:
        written = result["tables"]["upserted"]
        deleted = result["tables"]["deleted"]
        output.print_summary(
            f"serving tables published in {result['tables']['elapsed_s']} s",
            {name: f"{written[name]:,} upserted, {deleted[name]:,} deleted" for name in written},
        )
    if "marts" in result:
        published = result["marts"]["published"]
        output.print_summary(
            "marts published",
            {
                **{name: f"{rows:,} rows" for name, rows in published.items()},
                **{name: "unchanged" for name in result["marts"]["unchanged"]},
            },
        )


def register(app: typer.Typer) -> None:
    """Add `serving` to the `cartpulse` command."""
    app.add_typer(serving_app, name="serving")
