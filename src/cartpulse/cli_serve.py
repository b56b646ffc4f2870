"""`cartpulse serve`: the live system in one process."""

from __future__ import annotations

from typing import Annotated

import typer

from cartpulse import output
from cartpulse.cli import Context, guarded


def serve(
    typer_ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (collector.host).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", help="Port (collector.port); 0 picks a free one.", min=0),
    ] = None,
) -> None:
    """Run the live system: HTTP collector, stream engine, email sender and web app.

    Events posted to /v1/events (write key in `Authorization: Bearer`) are appended durably to
    the event log and acknowledged with 202; the stream engine turns them into live sales,
    abandoned carts and queued emails, which the sender delivers over SMTP. Write keys come
    from collector.write_keys (CARTPULSE_COLLECTOR__WRITE_KEYS=key1,key2); without one, a key
    is generated in HOME/state/write.key. Stop with Ctrl-C or SIGTERM: the server stops
    accepting, the engine drains what was acknowledged, archives it and commits. While serve
    runs, `cartpulse query` is answered by it. With log.backend = "kafka" the event log is a
    Kafka topic (docs/kafka.md); with serving.postgres_dsn set, serving tables and marts are
    mirrored to PostgreSQL live (docs/serving-postgres.md). Examples:

      CARTPULSE_COLLECTOR__WRITE_KEYS=s3cret cartpulse serve --port 8000

      cartpulse replay demo-data/events.csv.gz --to http://127.0.0.1:8000 --write-key s3cret
    """
    ctx: Context = typer_ctx.obj
    settings = ctx.settings()
    from cartpulse.serve.run import Started
    from cartpulse.serve.run import serve as run_serve

    def announce(s: Started) -> None:
        keys = (
            f"generated: {s.generated_key_file}"
            if s.generated_key_file
            else f"{s.write_keys} from collector.write_keys"
        )
        output.print_summary(
            "cartpulse serve is running",
            {
                "collector": f"POST {s.url}/v1/events",
                "write keys": keys,
                "API docs": f"{s.url}/docs",
                "metrics": f"{s.url}/metrics",
                "health": f"{s.url}/healthz  {s.url}/readyz",
                "emails via SMTP": s.smtp,
                "home": s.home,
            },
        )
        output.note("Stop with Ctrl-C or SIGTERM: acknowledged events are drained and committed.")

    stopped = guarded(
        ctx,
        lambda: run_serve(
            settings,
            host if host is not None else settings.collector.host,
            port if port is not None else settings.collector.port,
            announce,
        ),
    )
    output.note(f"stopped cleanly; {stopped.drained_events:,} events drained at shutdown")


def register(app: typer.Typer) -> None:
    """Add `serve` to the `cartpulse` command."""
    app.command()(serve)
