"""`cartpulse spark`: the stream logic on Spark Structured Streaming and the warehouse on
dbt-spark (extra `spark`)."""

from __future__ import annotations

from typing import Annotated

import typer

from cartpulse import output
from cartpulse.cli import Context, JsonFlag, fail, guarded
from cartpulse.cli_warehouse import FullRefreshFlag, SelectOption
from cartpulse.settings import Settings

spark_app = typer.Typer(
    help=(
        "Run the stream logic on Spark Structured Streaming and build the warehouse with "
        "dbt-spark (pip install 'cartpulse[spark]', Java 17). See docs/scale-out.md."
    ),
    no_args_is_help=True,
)


MasterOption = Annotated[
    str | None,
    typer.Option("--master", help="Spark master, e.g. local[2] (default: spark.master)."),
]


@spark_app.command("stream")
def stream(
    typer_ctx: typer.Context,
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="files:DIR (a directory of CSV, CSV.gz, Parquet or NDJSON event files) or "
            "kafka (spark.kafka_bootstrap_servers, spark.kafka_topic; NDJSON values; read by "
            "spark.kafka_reader: python, the default, or Spark's Kafka connector).",
        ),
    ],
    master: MasterOption = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", help="files: keep watching the directory for new files."),
    ] = False,
    flush: Annotated[
        bool,
        typer.Option(
            "--flush/--no-flush",
            help="files: at the end, expire every open session (like `cartpulse replay`).",
        ),
    ] = True,
    timeout_s: Annotated[
        float | None,
        typer.Option("--timeout-s", help="Continuous runs: stop after this many seconds."),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Clean, archive, count live sales, find abandoned carts and bots with Spark.

    Five streaming queries, each with its checkpoint under HOME/state/spark: lake (validate,
    drop duplicates, write the Parquet lake once per batch, dq_counts), quarantine (rejected
    rows to lake/quarantine, dq_counts), sales (product_sales_minute), sessions
    (abandoned_carts and the outbox) and bots (bot_alerts), all into the serving store. A
    directory is processed once and its open sessions flushed; Kafka runs until stopped. Run
    it again to resume from the checkpoints. Examples:

      cartpulse spark stream --source files:demo-data --master 'local[2]' --json

      CARTPULSE_SPARK__KAFKA_BOOTSTRAP_SERVERS=kafka:9092 cartpulse spark stream --source kafka
    """
    ctx: Context = typer_ctx.obj
    settings = _with_master(ctx.settings(), master)
    from cartpulse.spark.job import run_stream
    from cartpulse.spark.session import SparkUnavailableError
    from cartpulse.spark.source import SparkJobError, check_source, parse_source

    try:
        spec = parse_source(source)
        check_source(settings, spec)
        report = guarded(ctx, lambda: run_stream(settings, spec, follow, flush, timeout_s))
    except (SparkJobError, SparkUnavailableError) as exc:
        fail(str(exc))
    data = report.as_dict()
    if json_out:
        output.print_json(data)
        return
    output.print_summary(f"spark stream into {settings.home}", data)


@spark_app.command("build")
def build(
    typer_ctx: typer.Context,
    select: SelectOption = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            help="dbt selection to leave out, e.g. resource_type:test (models only) or "
            "mart_rfm; repeatable.",
        ),
    ] = None,
    full_refresh: FullRefreshFlag = False,
    master: MasterOption = None,
    json_out: JsonFlag = False,
) -> None:
    """Build the warehouse's dbt project on Spark (dbt-spark, session method) over the lake.

    The same models and data tests as `cartpulse models run`, from the same SQL: the staging,
    intermediate and mart tables land as Parquet tables under spark.warehouse_dir (default
    HOME/spark-warehouse: main.db/mart_*, intermediate.db/int_*), named in a Hive catalog
    kept in HOME/state/spark-metastore. Daily models are incremental: a build overwrites only
    the event_date partitions whose lake files changed. Bot-flagged users are left out as in
    DuckDB: their list is read from warehouse.duckdb (stop `cartpulse serve` first). Examples:

      cartpulse spark build

      cartpulse spark build --select +mart_rfm --master 'local[4]' --json

      cartpulse spark build --exclude resource_type:test   # models only: no data tests
    """
    from cartpulse.cli_warehouse import build_with_progress, report_build
    from cartpulse.warehouse.project import spark_warehouse_dir

    ctx: Context = typer_ctx.obj
    settings = _with_master(ctx.settings(), master)
    run = build_with_progress(ctx, settings, select, full_refresh, json_out, "spark", exclude)
    data = run.as_dict() | {"spark_warehouse": str(spark_warehouse_dir(settings))}
    report_build(data, json_out, f"spark build {data['status']} in {data['spark_warehouse']}")


def _with_master(settings: Settings, master: str | None) -> Settings:
    """The settings with --master, when given, as spark.master."""
    if master is None:
        return settings
    return settings.model_copy(
        update={"spark": settings.spark.model_copy(update={"master": master})}
    )


def register(app: typer.Typer) -> None:
    """Add `cartpulse spark …` to the CLI."""
    app.add_typer(spark_app, name="spark")
