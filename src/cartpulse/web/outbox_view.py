"""The emails page: every outbox row with its status and reason, and a preview of each email."""

from __future__ import annotations

import datetime as dt
from email import message_from_bytes
from email.message import EmailMessage
from typing import Any

import duckdb

from cartpulse.query import live_views
from cartpulse.retarget.offers import choose_offer
from cartpulse.retarget.render import EMAIL_POLICY, render_email
from cartpulse.settings import Settings
from cartpulse.sinks.serving_read import ServingReader
from cartpulse.web.filters import Filters
from cartpulse.web.tables import Section, rows, section

#: The UTC day a cart expired (the emails page's date filter applies to it).
_EXPIRED_DAY = "CAST((expired_at AT TIME ZONE 'UTC') AS DATE)"


def outbox(reader: ServingReader, f: Filters) -> dict[str, Any]:
    """Counts by status and reason, and the newest 100 messages."""
    where, values = f.where(day=_EXPIRED_DAY)
    summary = section(
        reader,
        "retarget_messages",
        "SELECT status, coalesce(reason, '') AS reason, count(*) AS messages, "
        f"sum(cart_value) AS cart_value FROM retarget_messages WHERE {where} "
        "GROUP BY status, coalesce(reason, '') ORDER BY messages DESC, status, reason",
        values,
    )
    messages = section(
        reader,
        "retarget_messages",
        "SELECT message_id, user_id, email, status, reason, holdout, offer_kind, coupon, "
        "cart_value, expired_at, sent_at FROM retarget_messages "
        f"WHERE {where} ORDER BY expired_at DESC, message_id LIMIT 100",
        values,
    )
    return {"summary": summary, "messages": messages}


def performance(con: duckdb.DuckDBPyConnection, settings: Settings) -> Section:
    """Mailed against held-out carts (joins the lake's purchases: DuckDB only)."""
    try:
        live_views(con, settings)
        found = con.sql(
            "SELECT cohort, carts, conversions, conversion_rate, revenue_amount, "
            "recovered_revenue_amount, recovered_revenue_ci_low, recovered_revenue_ci_high "
            "FROM mart_retarget_performance"
        ).to_arrow_table()
        return Section(
            found.to_pylist(),
            empty="No mailed or held-out carts yet — emails need "
            "`cartpulse customers import FILE` and abandoned carts.",
        )
    except duckdb.Error:
        return Section(empty="No events in the lake yet — run `cartpulse replay FILE`.")


def preview(reader: ServingReader, settings: Settings, message_id: str) -> dict[str, Any]:
    """The email of one outbox row: its stored bytes, or rendered again from its cart.

    Needs the warehouse (`reader` on DuckDB): the email bytes and the customers table are
    not mirrored to PostgreSQL.
    """
    found = rows(reader, "SELECT * FROM retarget_messages WHERE message_id = ?", [message_id])
    if not found:
        return {"row": None, "html": None, "text": None, "note": "No such message."}
    row = found[0]
    stored = row.pop("message", None)
    msg = _parsed(stored) or _rendered(reader, settings, row)
    if msg is None:
        note = f"Not emailed ({row['status']}: {row['reason'] or 'no reason given'})."
        return {"row": row, "html": None, "text": None, "note": note}
    html = msg.get_body(("html",))
    text = msg.get_body(("plain",))
    return {
        "row": row,
        "subject": str(msg.get("Subject", "")),
        "html": html.get_content() if html is not None else None,
        "text": text.get_content() if text is not None else None,
        "note": None,
    }


def _parsed(stored: bytes | None) -> EmailMessage | None:
    if stored is None:
        return None
    parsed = message_from_bytes(bytes(stored), policy=EMAIL_POLICY)
    return parsed if isinstance(parsed, EmailMessage) else None


def _rendered(
    reader: ServingReader, settings: Settings, row: dict[str, Any]
) -> EmailMessage | None:
    """Sent rows drop their bytes: render the same email again from the cart and customer."""
    if not row.get("email") or row["offer_kind"] is None:
        return None
    carts = rows(
        reader,
        "SELECT * FROM abandoned_carts WHERE user_session = ? AND session_start = ?",
        [row["user_session"], row["session_start"]],
    )
    people = rows(reader, "SELECT * FROM customers WHERE user_id = ?", [row["user_id"]])
    if not carts or not people:
        return None
    when = (
        row["queued_at"] if isinstance(row["queued_at"], dt.datetime) else dt.datetime.now(dt.UTC)
    )
    offer = choose_offer(carts[0], settings.retarget, when)
    return render_email(
        carts[0],
        people[0] | {"email": row["email"]},
        offer,
        settings.retarget,
        settings.smtp.sender,
        when,
    )
