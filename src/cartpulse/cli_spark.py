"""`cartpulse spark stream`: the stream logic on Spark Structured Streaming (extra `spark`)."""

from __future__ import annotations

from typing import Annotated

import typer

from cartpulse import output
from cartpulse.cli import Context, JsonFlag, fail, guarded

spark_app = typer.Typer(
    help=(
        "Run the stream logic on Spark Structured Streaming (pip install 'cartpulse[spark]', "
        "Java 17). See docs/scale-out.md."
    ),
    no_args_is_help=True,
)


@spark_app.command("stream")
def stream(
    typer_ctx: typer.Context,
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="files:DIR (a directory of CSV, CSV.gz, Parquet or NDJSON event files) or "
            "kafka (spark.kafka_bootstrap_servers, spark.kafka_topic; NDJSON values).",
        ),
    ],
    master: Annotated[
        str | None,
        typer.Option("--master", help="Spark master, e.g. local[2] (default: spark.master)."),
    ] = None,
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
    """Clean, archive, count live sales and find abandoned carts with Spark.

    Three streaming queries, each with its checkpoint under HOME/state/spark: lake (validate,
    drop duplicates, write the Parquet lake once per batch), sales (product_sales_minute) and
    sessions (abandoned_carts and the outbox, in the serving store). A directory is processed
    once and its open sessions flushed; Kafka runs until stopped. Run it again to resume from
    the checkpoints. Examples:

      cartpulse spark stream --source files:demo-data --master 'local[2]' --json

      CARTPULSE_SPARK__KAFKA_BOOTSTRAP_SERVERS=kafka:9092 cartpulse spark stream --source kafka
    """
    ctx: Context = typer_ctx.obj
    settings = ctx.settings()
    if master is not None:
        settings = settings.model_copy(
            update={"spark": settings.spark.model_copy(update={"master": master})}
        )
    from cartpulse.spark.job import SparkJobError, check_source, parse_source, run_stream
    from cartpulse.spark.session import SparkUnavailableError

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


def register(app: typer.Typer) -> None:
    """Add `cartpulse spark …` to the CLI."""
    app.add_typer(spark_app, name="spark")
