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
from cartpulse.web.filters import Filters
from cartpulse.web.tables import Section, rows, section

_DAYS = (
    "($start IS NULL OR (expired_at AT TIME ZONE 'UTC')::DATE >= $start) AND "
    "($end IS NULL OR (expired_at AT TIME ZONE 'UTC')::DATE <= $end)"
)


def outbox(con: duckdb.DuckDBPyConnection, settings: Settings, f: Filters) -> dict[str, Any]:
    """Counts by status and reason, recovered revenue, and the newest 100 messages."""
    p = f.params()
    summary = section(
        con,
        "retarget_messages",
        "SELECT status, coalesce(reason, '') AS reason, count(*) AS messages, "
        f"sum(cart_value) AS cart_value FROM retarget_messages WHERE {_DAYS} "
        "GROUP BY ALL ORDER BY messages DESC, status, reason",
        p,
    )
    messages = section(
        con,
        "retarget_messages",
        "SELECT message_id, user_id, email, status, reason, holdout, offer_kind, coupon, "
        "cart_value, expired_at, sent_at FROM retarget_messages "
        f"WHERE {_DAYS} ORDER BY expired_at DESC, message_id LIMIT 100",
        p,
    )
    return {"summary": summary, "messages": messages, "performance": _performance(con, settings)}


def _performance(con: duckdb.DuckDBPyConnection, settings: Settings) -> Section:
    """Mailed against held-out carts (needs the lake: purchases after the email)."""
    try:
        live_views(con, settings)
        return Section(
            rows(
                con,
                "SELECT cohort, carts, conversions, conversion_rate, revenue_amount, "
                "recovered_revenue_amount, recovered_revenue_ci_low, recovered_revenue_ci_high "
                "FROM mart_retarget_performance",
            )
            or [],
            empty="No mailed or held-out carts yet — emails need "
            "`cartpulse customers import FILE` and abandoned carts.",
        )
    except duckdb.Error:
        return Section(empty="No events in the lake yet — run `cartpulse replay FILE`.")


def preview(con: duckdb.DuckDBPyConnection, settings: Settings, message_id: str) -> dict[str, Any]:
    """The email of one outbox row: its stored bytes, or rendered again from its cart."""
    found = rows(con, "SELECT * FROM retarget_messages WHERE message_id = $id", {"id": message_id})
    if not found:
        return {"row": None, "html": None, "text": None, "note": "No such message."}
    row = found[0]
    row.pop("message", None)
    msg = _stored(con, message_id) or _rendered(con, settings, row)
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


def _stored(con: duckdb.DuckDBPyConnection, message_id: str) -> EmailMessage | None:
    found = con.execute(
        "SELECT message FROM retarget_messages WHERE message_id = ?", [message_id]
    ).fetchone()
    if not found or found[0] is None:
        return None
    parsed = message_from_bytes(bytes(found[0]), policy=EMAIL_POLICY)
    return parsed if isinstance(parsed, EmailMessage) else None


def _rendered(
    con: duckdb.DuckDBPyConnection, settings: Settings, row: dict[str, Any]
) -> EmailMessage | None:
    """Sent rows drop their bytes: render the same email again from the cart and customer."""
    if not row.get("email") or row["offer_kind"] is None:
        return None
    carts = rows(
        con,
        "SELECT * FROM abandoned_carts WHERE user_session = $s AND session_start = $t",
        {"s": row["user_session"], "t": row["session_start"]},
    )
    people = rows(con, "SELECT * FROM customers WHERE user_id = $u", {"u": row["user_id"]})
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
