"""`cartpulse customers`, `cartpulse outbox` and `cartpulse mail-sink`: abandoned-cart emails."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from cartpulse import output
from cartpulse.cli import Context, JsonFlag, guarded

customers_app = typer.Typer(
    help="The customer directory (who may receive emails).", no_args_is_help=True
)
outbox_app = typer.Typer(
    help="Retargeting emails: the outbox and its delivery.", no_args_is_help=True
)


@customers_app.command("import")
def customers_import(
    typer_ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="CSV with user_id,email,first_name,locale,consent.")],
    json_out: JsonFlag = False,
) -> None:
    """Import (upsert) customers; invalid rows are rejected with a reason, nothing is lost.

    Unsubscribed customers stay unsubscribed whatever the file says. Example:

      cartpulse customers import demo-data/customers.csv --json
    """
    ctx: Context = typer_ctx.obj
    settings = ctx.settings()
    from cartpulse.retarget.commands import import_customer_file

    data = guarded(ctx, lambda: import_customer_file(settings, path))
    if json_out:
        output.print_json(data)
    else:
        output.print_summary(f"customers imported into {settings.warehouse_path}", data)


@outbox_app.command("send")
def outbox_send(typer_ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Deliver every queued email over SMTP and exit.

    Uses the smtp.* settings (CARTPULSE_SMTP__HOST, CARTPULSE_SMTP__PORT, …). Transient
    failures (connection refused, 4xx) are retried with backoff, 5xx fail with the server's
    reason; customers who bought after their cart expired are not emailed. Example:

      CARTPULSE_SMTP__PORT=8025 cartpulse outbox send --json
    """
    ctx: Context = typer_ctx.obj
    settings = ctx.settings()
    from cartpulse.retarget.commands import send_queued

    data = guarded(ctx, lambda: send_queued(settings)).as_dict()
    if json_out:
        output.print_json(data)
    else:
        output.print_summary(f"outbox of {settings.warehouse_path}", data)


@outbox_app.command("list")
def outbox_list(
    typer_ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option("--status", help="queued, sending, sent, failed or suppressed."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Rows to show.", min=1)] = 50,
    json_out: JsonFlag = False,
) -> None:
    """Show the outbox: each decision, its status and reason. Example:

    cartpulse outbox list --status suppressed --limit 20
    """
    ctx: Context = typer_ctx.obj
    settings = ctx.settings()
    from cartpulse.retarget.commands import list_outbox

    rows = guarded(ctx, lambda: list_outbox(settings, status, limit))
    if json_out:
        output.print_json(rows)
        return
    cols = [
        "expired_at",
        "user_id",
        "email",
        "status",
        "reason",
        "offer_kind",
        "coupon",
        "cart_value",
    ]
    output.print_table(None, cols, [[r.get(c) for c in cols] for r in rows])


def mail_sink(
    typer_ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 8025,
    maildir: Annotated[
        Path | None, typer.Option("--maildir", help="Where mail is stored. Default: HOME/mail.")
    ] = None,
) -> None:
    """Run a local SMTP server that stores every email in a Maildir (for demos and tests).

    A message whose Message-ID it already stored is accepted but not stored twice. Stop it
    with Ctrl-C. Example:

      cartpulse mail-sink --port 8025
    """
    ctx: Context = typer_ctx.obj
    settings = ctx.settings()
    from cartpulse.retarget.sink import start_sink

    folder = maildir or settings.home / "mail"
    sink = guarded(ctx, lambda: start_sink(folder, port))
    output.note(f"mail sink on 127.0.0.1:{sink.port}, storing into {folder} (Ctrl-C stops it)")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()


def register(app: typer.Typer) -> None:
    """Add these verbs to the `cartpulse` command."""
    app.add_typer(customers_app, name="customers")
    app.add_typer(outbox_app, name="outbox")
    app.command("mail-sink")(mail_sink)
