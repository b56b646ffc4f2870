"""The alert outbox: each new `bot_alerts` row is also queued for the webhook, in one commit.

The alert id (user and detection time in µs) is the idempotency key the receiver sees: a
delivery retried after a crash or a timeout carries the same key, so at-least-once delivery
never turns into two alerts for one episode on the receiver's side.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from cartpulse.duck import registered

_DDL = """
CREATE TABLE IF NOT EXISTS bot_alert_outbox (
  alert_id VARCHAR PRIMARY KEY,
  user_id BIGINT NOT NULL,
  detected_at TIMESTAMPTZ NOT NULL,
  rule VARCHAR NOT NULL,
  score DOUBLE,
  evidence VARCHAR,
  status VARCHAR NOT NULL,  -- queued|delivered|failed
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMPTZ,
  delivered_at TIMESTAMPTZ,
  last_error VARCHAR
)
"""


@dataclass(frozen=True)
class QueuedAlert:
    """One alert waiting for delivery."""

    alert_id: str
    user_id: int
    detected_at: str
    rule: str
    score: float | None
    evidence: str | None
    attempts: int


def ensure_alert_outbox(con: duckdb.DuckDBPyConnection) -> None:
    """Create the outbox table if missing."""
    con.execute(_DDL)


def publish_alerts(con: duckdb.DuckDBPyConnection, alerts: pa.Table) -> None:
    """Insert alerts into `bot_alerts` and queue them (inside the caller's transaction)."""
    with registered(con, new_alerts=alerts):
        con.execute("INSERT INTO bot_alerts SELECT * FROM new_alerts")
        con.execute(
            "INSERT OR IGNORE INTO bot_alert_outbox (alert_id, user_id, detected_at, rule, score, "
            "evidence, status) SELECT user_id::VARCHAR || '-' || epoch_us(detected_at)::VARCHAR, "
            "user_id, detected_at, rule, score, evidence, 'queued' FROM new_alerts"
        )


def due_alerts(con: duckdb.DuckDBPyConnection, now: dt.datetime, limit: int) -> list[QueuedAlert]:
    """Queued alerts whose next attempt is due, oldest first."""
    rows = con.execute(
        "SELECT alert_id, user_id, strftime(detected_at, '%Y-%m-%dT%H:%M:%S.%fZ'), rule, score, "
        "evidence, attempts FROM bot_alert_outbox WHERE status = 'queued' "
        "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY detected_at LIMIT ?",
        [now, limit],
    ).fetchall()
    return [QueuedAlert(*row) for row in rows]


def mark_delivered(con: duckdb.DuckDBPyConnection, alert_id: str, now: dt.datetime) -> None:
    """The receiver accepted the alert."""
    con.execute(
        "UPDATE bot_alert_outbox SET status = 'delivered', attempts = attempts + 1, "
        "delivered_at = ?, last_error = NULL WHERE alert_id = ?",
        [now, alert_id],
    )


def mark_retry(
    con: duckdb.DuckDBPyConnection, alert: QueuedAlert, error: str, at: dt.datetime, failed: bool
) -> None:
    """The attempt failed: try again at `at`, or give up (`failed`)."""
    con.execute(
        "UPDATE bot_alert_outbox SET attempts = attempts + 1, next_attempt_at = ?, "
        "last_error = ?, status = ? WHERE alert_id = ?",
        [at, error[:500], "failed" if failed else "queued", alert.alert_id],
    )


def suppress_new_bots(messages: pa.Table | None, alerts: pa.Table | None) -> pa.Table | None:
    """Carts decided in the same micro-batch as their user's first alert are not mailed either."""
    if messages is None or alerts is None or not messages.num_rows or not alerts.num_rows:
        return messages
    bot = pc.and_(
        pc.is_in(messages.column("user_id"), value_set=alerts.column("user_id")),
        pc.not_equal(messages.column("reason").fill_null(""), "unknown_email"),
    )
    if not pc.any(bot).as_py():
        return messages
    replace = {
        "status": pc.if_else(bot, "suppressed", messages.column("status")),
        "reason": pc.if_else(bot, "bot", messages.column("reason")),
        "holdout": pc.if_else(bot, False, messages.column("holdout")),
        "message": pc.if_else(bot, pa.scalar(None, pa.binary()), messages.column("message")),
    }
    for name, column in replace.items():
        index = messages.schema.get_field_index(name)
        messages = messages.set_column(index, messages.schema.field(name), column)
    return messages
