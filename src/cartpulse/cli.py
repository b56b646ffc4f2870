"""The `cartpulse` command: parse arguments, call one function per verb, print the result."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from cartpulse import __version__, output
from cartpulse.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    name="cartpulse",
    help=(
        "Turn a shop's clickstream into recovered sales and live insight.\n\n"
        "Typical first run:\n\n"
        "  cartpulse generate --out demo-data --events 1000000\n\n"
        "  cartpulse ingest demo-data/events.csv.gz\n\n"
        '  cartpulse query "SELECT event_type, count(*) FROM events GROUP BY 1"\n\n'
        "Data lands in CARTPULSE_HOME (default ./cartpulse-home). Settings come from "
        "--config FILE or ./cartpulse.toml, overridden by CARTPULSE_* environment variables "
        "(nested keys with __, e.g. CARTPULSE_SMTP__HOST)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)

T = TypeVar("T")

#: Exit code for errors the user can fix (bad input, bad setting, bad SQL).
EXIT_USER_ERROR = 2


@dataclass
class Context:
    """Options given before the verb."""

    config: Path | None
    home: Path | None
    debug: bool

    def settings(self) -> Settings:
        """Load and validate settings, or exit with a one-line error."""
        overrides: dict[str, Any] = {"home": self.home} if self.home else {}
        return guarded(self, lambda: load_settings(self.config, **overrides))


def fail(message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    """Print one error line and exit."""
    output.error(message)
    raise typer.Exit(code)


def guarded(ctx: Context, action: Callable[[], T]) -> T:
    """Run `action`, turning expected errors into one-line messages (tracebacks with --debug)."""
    from cartpulse.collector.client import SendError
    from cartpulse.engine.replay import ReplayError
    from cartpulse.ingest import IngestError
    from cartpulse.query import QueryError
    from cartpulse.serve import ServeError
    from cartpulse.sinks.postgres.connect import PostgresError
    from cartpulse.sources.base import SourceError

    try:
        return action()
    except (
        SettingsError,
        SourceError,
        IngestError,
        QueryError,
        ReplayError,
        ServeError,
        SendError,
        PostgresError,
        ValueError,
        OSError,
    ) as exc:
        if ctx.debug:
            raise
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; nothing partial was left visible", 130)
    except Exception as exc:
        if ctx.debug:
            raise
        fail(f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)", 1)


@app.callback(invoke_without_command=True)
def main(
    typer_ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Settings file (TOML). Default: ./cartpulse.toml if present."
        ),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home", help="Home directory (lake, warehouse, log). Overrides CARTPULSE_HOME."
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """cartpulse: clickstream → recovered sales and live insight."""
    if version:
        typer.echo(f"cartpulse {__version__}")
        raise typer.Exit(0)
    if typer_ctx.invoked_subcommand is None:
        typer.echo(typer_ctx.get_help())
        raise typer.Exit(0)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    typer_ctx.obj = Context(config=config, home=home, debug=debug)


JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


@app.command()
def generate(
    typer_ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the files into.")],
    events: Annotated[
        int, typer.Option("--events", "-n", help="Rows in events.csv.gz.", min=1)
    ] = 1_000_000,
    days: Annotated[
        int, typer.Option("--days", "-d", help="Days of traffic, from --start.", min=1)
    ] = 7,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same files.")] = 42,
    json_out: JsonFlag = False,
) -> None:
    """Write realistic synthetic data: events.csv.gz, customers.csv and bots.csv.

    The data is calibrated on the published statistics of the REES46 cosmetics shop (event
    mix, prices, duplicates, sessions, conversion, bots). Example:

      cartpulse generate --out demo-data --events 2000000 --days 14
    """
    ctx: Context = typer_ctx.obj
    from cartpulse.generate import generate_dataset

    with output.count_progress("generating", events, quiet=json_out) as bar:
        task = bar.task_ids[0]
        report = guarded(
            ctx,
            lambda: generate_dataset(
                out,
                events=events,
                days=days,
                seed=seed,
                progress=lambda n: bar.update(task, completed=n),
            ),
        )
    data = {
        "events": report.events,
        "users": report.users,
        "sessions": report.sessions,
        "customers": report.customers,
        "bots": report.bots,
        "days": report.days,
        "start": report.start.isoformat(),
        "out_dir": str(report.out_dir),
        "elapsed_s": round(report.elapsed_s, 3),
        "events_per_s": round(report.events / report.elapsed_s) if report.elapsed_s else 0,
    }
    if json_out:
        output.print_json(data)
    else:
        output.print_summary(f"generated into {report.out_dir}", data)


@app.command()
def ingest(
    typer_ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="CSV, CSV.gz, Parquet or NDJSON files.")],
    json_out: JsonFlag = False,
) -> None:
    """Load event files into the Parquet lake: validate, quarantine, dedupe.

    Clean events go to lake/events/event_date=YYYY-MM-DD/, rejected rows with their reason to
    lake/quarantine/ingest_date=YYYY-MM-DD/. A file whose content was ingested before is
    skipped, and a crash leaves nothing half-written. Always: read = clean + quarantined +
    duplicates. Example:

      cartpulse ingest demo-data/events.csv.gz --json
    """
    ctx: Context = typer_ctx.obj
    settings = ctx.settings()
    from cartpulse.ingest import ingest_files

    total = sum(p.stat().st_size for p in paths if p.is_file())
    with output.byte_progress("ingesting", total, quiet=json_out) as bar:
        task = bar.task_ids[0]
        done: dict[Path, int] = {}

        def on_progress(position: int, _size: int, path: Path) -> None:
            done[path] = position
            bar.update(task, completed=sum(done.values()))

        report = guarded(ctx, lambda: ingest_files(settings, paths, on_progress))
    data = report.as_dict()
    if json_out:
        output.print_json(data)
        return
    data.pop("files")
    output.print_summary(f"ingested into {settings.home}", data)
    for f in report.files:
        if f.status == "skipped":
            output.note(f"skipped {f.path}: the same content was ingested before")


def _parse_speed(value: str) -> float | None:
    if value == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        speed = -1.0
    if speed <= 0:
        raise typer.BadParameter(f"{value!r} is not 'max' or a positive number like 60 or 1000")
    return speed


@app.command()
def replay(
    typer_ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="CSV, CSV.gz, Parquet or NDJSON files.")],
    speed: Annotated[
        str,
        typer.Option(
            "--speed", help="'max' (as fast as possible) or N: N× real time by event time."
        ),
    ] = "max",
    customers: Annotated[
        Path | None,
        typer.Option(
            "--customers",
            help="Customer directory CSV (user_id,email,first_name,locale,consent) to import "
            "first: abandoned carts of consenting customers are then queued as emails.",
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="URL of a running `cartpulse serve`: send the files to its collector as "
            "live HTTP traffic instead of replaying into the local home.",
        ),
    ] = None,
    write_key: Annotated[
        str | None,
        typer.Option(
            "--write-key", envvar="CARTPULSE_WRITE_KEY", help="Write key for --to (or env)."
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            help="--to: requests in flight. 1 keeps file order; more is faster but reorders "
            "batches, which a historic file's sessions feel as late events.",
            min=1,
            max=64,
        ),
    ] = 1,
    batch_events: Annotated[
        int,
        typer.Option("--batch-events", help="--to: events per request.", min=1, max=1_000_000),
    ] = 5_000,
    gzip: Annotated[bool, typer.Option("--gzip", help="--to: gzip the request bodies.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Feed files through the event log and the stream engine, as a live stream.

    Events are validated, deduplicated and appended to the event log; the engine computes live
    sales per product and minute (product_sales_minute), sessions and abandoned carts
    (abandoned_carts), data-quality counts (dq_counts) and archives every event to the lake.
    At the end every open session is flushed. Interrupted? Run the same command again: it
    resumes where it stopped, with no loss and no duplicates. Every abandoned cart gets one
    decision in retarget_messages: a queued email, or the reason why not. Examples:

      cartpulse replay demo-data/events.csv.gz --customers demo-data/customers.csv --json

      cartpulse replay demo-data/events.csv.gz --speed 1000

      cartpulse replay demo-data/events.csv.gz --to http://127.0.0.1:8000 --write-key KEY
    """
    ctx: Context = typer_ctx.obj
    rate = _parse_speed(speed)
    if to is not None:
        _replay_to(ctx, paths, to, write_key, rate, concurrency, batch_events, gzip, json_out)
        return
    settings = ctx.settings()
    from cartpulse.engine.replay import replay_files

    with output.count_progress("replaying rows", 0, quiet=json_out) as bar:
        task = bar.task_ids[0]
        bar.update(task, total=None)
        report = guarded(
            ctx,
            lambda: replay_files(
                settings,
                paths,
                rate,
                on_rows=lambda n: bar.advance(task, n),
                customers_file=customers,
            ),
        )
    data = report.as_dict()
    if json_out:
        output.print_json(data)
        return
    output.print_summary(f"replayed into {settings.home}", data)


def _replay_to(
    ctx: Context,
    paths: list[Path],
    url: str,
    write_key: str | None,
    speed: float | None,
    concurrency: int,
    batch_events: int,
    gzip: bool,
    json_out: bool,
) -> None:
    """Send files to a collector over HTTP and print what it acknowledged."""
    if not write_key:
        fail("--to needs --write-key KEY (or CARTPULSE_WRITE_KEY): a key the server accepts")
    if not url.startswith(("http://", "https://")):
        fail(f"--to expects a URL like http://127.0.0.1:8000, got {url!r}")
    from cartpulse.collector.client import Target, send_files

    target = Target(url, write_key, concurrency, batch_events, gzip)
    with output.count_progress("sending rows", 0, quiet=json_out) as bar:
        task = bar.task_ids[0]
        bar.update(task, total=None)
        report = guarded(
            ctx, lambda: send_files(paths, target, speed, on_rows=lambda n: bar.advance(task, n))
        )
    if json_out:
        output.print_json(report.as_dict())
        return
    output.print_summary(f"sent to {url}", report.as_dict())


@app.command()
def query(
    typer_ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="One read-only SQL statement (DuckDB dialect).")],
    json_out: JsonFlag = False,
    limit: Annotated[int, typer.Option("--limit", help="Rows to show in the table view.")] = 200,
) -> None:
    """Run read-only SQL over the lake and the warehouse.

    Views: events (clean events, with event_date), quarantine (rejected rows with reason,
    detail, source, line, ingest_date) and every warehouse table. Examples:

      cartpulse query "SELECT event_type, count(*) AS n FROM events GROUP BY 1 ORDER BY n DESC"

      cartpulse query "SELECT reason, count(*) FROM quarantine GROUP BY 1" --json
    """
    ctx: Context = typer_ctx.obj
    settings = ctx.settings()
    from cartpulse.query import run_query

    result = guarded(ctx, lambda: run_query(settings, sql))
    if json_out:
        output.print_json(result.records())
        return
    output.print_table(None, result.columns, result.rows[:limit])
    if len(result.rows) > limit:
        output.note(f"{len(result.rows) - limit:,} more rows not shown (use --limit or --json)")


# Verbs that live in their own modules register themselves on `app`.
from cartpulse import (  # noqa: E402  (they need `app` defined above)
    cli_bench,
    cli_email,
    cli_help,
    cli_models,
    cli_serve,
    cli_serving,
    cli_spark,
)

cli_email.register(app)
cli_bench.register(app)
cli_serve.register(app)
cli_models.register(app)
cli_serving.register(app)
cli_spark.register(app)
cli_help.reflow_help(app)

if __name__ == "__main__":  # pragma: no cover
    app()
