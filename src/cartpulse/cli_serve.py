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
    mirrored to PostgreSQL live (docs/serving-postgres.md).

    The dashboard (live sales over SSE, insight pages from the marts) is at /live; its
    password is dashboard.password_hash (see `cartpulse dashboard hash-password`) or, if unset,
    generated in HOME/state/dashboard.password. /metrics, /readyz and /docs take the dashboard
    login or the admin token in HOME/state/admin.token (Bearer). Examples:

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
        password = (
            f"in {s.dashboard_password_file}"
            if s.dashboard_password_file
            else "from dashboard.password_hash"
        )
        output.print_summary(
            "cartpulse serve is running",
            {
                "dashboard": f"{s.url}/live  (password {password})",
                "collector": f"POST {s.url}/v1/events",
                "write keys": keys,
                "API docs": f"{s.url}/docs  (dashboard login or admin token)",
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


dashboard_app = typer.Typer(help="The web dashboard's login.", no_args_is_help=True)


@dashboard_app.command("hash-password")
def hash_password_command(
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from standard input."),
    ] = False,
) -> None:
    """Print a scrypt hash of a new dashboard password, for `dashboard.password_hash`.

    The password is asked twice (not echoed), or read from stdin. Put the hash in
    cartpulse.toml ([dashboard] password_hash = "scrypt$...") or in
    CARTPULSE_DASHBOARD__PASSWORD_HASH, and restart serve: every open login ends. Example:

      printf '%s' "$NEW_PASSWORD" | cartpulse dashboard hash-password --password-stdin
    """
    import sys

    from cartpulse.cli import fail
    from cartpulse.web.auth import hash_password

    if password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    else:
        password = typer.prompt("New dashboard password", hide_input=True, confirmation_prompt=True)
    if len(password) < 10:
        fail("the password must have at least 10 characters")
    output.stdout.print(hash_password(password), markup=False)


def register(app: typer.Typer) -> None:
    """Add `serve` and `dashboard` to the `cartpulse` command."""
    app.command()(serve)
    app.add_typer(dashboard_app, name="dashboard")
