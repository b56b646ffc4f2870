"""What the `customers` and `outbox` CLI verbs do, on the home's warehouse."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from cartpulse import duck
from cartpulse.retarget import customers, outbox
from cartpulse.retarget.decide import suppress_purchased
from cartpulse.retarget.smtp import SendReport, SmtpSender, send_due
from cartpulse.settings import Settings


class HomeBusyError(Exception):
    """The warehouse is open for writing by another process (a replay or `serve`)."""


def _open(settings: Settings) -> duckdb.DuckDBPyConnection:
    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        return duck.connect(settings.warehouse_path)
    except duckdb.IOException as exc:
        raise HomeBusyError(
            f"{settings.warehouse_path} is in use by another process (a replay or serve); "
            f"try again when it has finished ({str(exc).splitlines()[0]})"
        ) from None


def import_customer_file(settings: Settings, path: Path) -> dict[str, Any]:
    """`cartpulse customers import FILE`."""
    con = _open(settings)
    try:
        return customers.import_customers(con, path, dt.datetime.now(dt.UTC)).as_dict()
    finally:
        con.close()


@dataclass
class SendSummary:
    """What `cartpulse outbox send` did."""

    report: SendReport
    purchased: int
    outbox: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape."""
        r = self.report
        return {
            "sent": r.sent,
            "failed": r.failed,
            "retried": r.retried,
            "suppressed": r.suppressed + self.purchased,
            "suppressed_purchased": self.purchased,
            "outbox": self.outbox,
        }


def send_queued(settings: Settings) -> SendSummary:
    """Deliver every message due now; rows to retry later stay queued with their next time."""
    con = _open(settings)
    sender = SmtpSender(settings.smtp)
    total = SendReport()
    try:
        purchased = suppress_purchased(con, settings.events_dir)
        while True:
            report = send_due(con, sender)
            total = total + report
            if report.sent + report.failed + report.retried + report.suppressed == 0:
                break
            if report.retried and not (report.sent or report.failed or report.suppressed):
                break  # only retries left: they wait for their backoff
        return SendSummary(total, purchased, outbox.counts(con))
    finally:
        sender.close()
        con.close()


def list_outbox(settings: Settings, status: str | None, limit: int) -> list[dict[str, Any]]:
    """`cartpulse outbox list`."""
    con = _open(settings)
    try:
        outbox.ensure_schema(con)
        rows: list[dict[str, Any]] = outbox.list_messages(con, status, limit).to_pylist()
        return rows
    finally:
        con.close()
