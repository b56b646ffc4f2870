"""The email outbox: one row per retargeting decision, written with the engine's state."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Final, NamedTuple

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from cartpulse.duck import registered

STATUSES: Final = ("queued", "sending", "sent", "failed", "suppressed")
"""Every status a row can have; `queued → sending → sent | queued (retry) | failed`."""

_COLUMNS = """
  message_id VARCHAR {key},
  user_session VARCHAR NOT NULL,
  session_start TIMESTAMPTZ NOT NULL,
  user_id BIGINT NOT NULL,
  email VARCHAR,
  status VARCHAR NOT NULL,  -- queued|sending|sent|failed|suppressed
  reason VARCHAR,
  holdout BOOLEAN NOT NULL,
  offer_kind VARCHAR,
  coupon VARCHAR,
  cart_value DOUBLE,
  expired_at TIMESTAMPTZ NOT NULL,
  queued_at TIMESTAMPTZ NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMPTZ,
  sent_at TIMESTAMPTZ,
  smtp_response VARCHAR,
  message BLOB  -- the rendered RFC 5322 bytes for queued rows
"""

# Decisions live in two tables read as one view. Emails (queued, then sending, sent, failed or
# suppressed when sending) are keyed by Message-ID: the sender updates them one by one, and a
# repeat is ignored. Carts suppressed when decided (`unknown_email` is most carts of an
# anonymous shop) never change and never reach SMTP: they are appended without a key, which
# costs a fifth of the keyed insert; each cart is decided once, in the transaction that emits
# it (the engine's micro-batch, Spark's batch marker).
_DDL = f"""
CREATE TABLE IF NOT EXISTS retarget_outbox ({_COLUMNS.format(key="PRIMARY KEY")});
CREATE TABLE IF NOT EXISTS retarget_suppressed ({_COLUMNS.format(key="NOT NULL")});
CREATE VIEW IF NOT EXISTS retarget_messages AS
  SELECT * FROM retarget_outbox UNION ALL SELECT * FROM retarget_suppressed;
"""

_TS = pa.timestamp("us", tz="UTC")
ENQUEUE_SCHEMA: Final = pa.schema(
    [
        pa.field("message_id", pa.string(), nullable=False),
        pa.field("user_session", pa.string(), nullable=False),
        pa.field("session_start", _TS, nullable=False),
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("email", pa.string()),
        pa.field("status", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("holdout", pa.bool_(), nullable=False),
        pa.field("offer_kind", pa.string()),
        pa.field("coupon", pa.string()),
        pa.field("cart_value", pa.float64()),
        pa.field("expired_at", _TS, nullable=False),
        pa.field("queued_at", _TS, nullable=False),
        pa.field("message", pa.binary()),
    ]
)
"""Columns `enqueue` accepts; nullable ones may be left out, `status` defaults to queued."""

_ENQUEUE_STATUSES = ("queued", "suppressed")
_LISTED = [name for name in ENQUEUE_SCHEMA.names if name != "message"] + [
    "attempts",
    "next_attempt_at",
    "sent_at",
    "smtp_response",
]


class OutboxStateError(Exception):
    """A transition the outbox state machine does not allow (or an unknown message_id)."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A message ready for delivery, as `due` hands it to the sender."""

    message_id: str
    user_id: int
    email: str | None
    status: str
    attempts: int
    holdout: bool
    message: bytes | None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter for transient delivery failures."""

    base_s: float = 5.0
    max_s: float = 600.0
    max_attempts: int = 8
    jitter: float = 0.2
    """Each delay is shortened by up to this share, so retries of many rows spread out."""

    def __post_init__(self) -> None:
        """Refuse a policy that would retry forever or never wait."""
        if not (self.base_s > 0 and self.max_s >= self.base_s):
            raise ValueError(f"need 0 < base_s <= max_s, got {self.base_s=} {self.max_s=}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be ≥ 1, got {self.max_attempts}")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    def delay_s(self, attempts: int, rand: float) -> float:
        """Seconds to wait after the `attempts`-th failed attempt; `rand` is uniform in [0, 1)."""
        exponent = min(max(attempts - 1, 0), 62)  # 2**62 s is already far past any max_s
        nominal = min(self.max_s, self.base_s * math.pow(2.0, exponent))
        return nominal * (1.0 - self.jitter * rand)

    def gives_up(self, attempts: int) -> bool:
        """True when `attempts` failed attempts are all this policy allows."""
        return attempts >= self.max_attempts


class EncodedMessage(NamedTuple):
    """A rendered email as the outbox stores it."""

    message_id: str
    data: bytes


def encode_message(msg: EmailMessage) -> EncodedMessage:
    """Serialise `msg` to wire bytes (CRLF) keyed by its Message-ID header."""
    message_id = str(msg.get("Message-ID", "")).strip()
    if not message_id:
        raise ValueError("email has no Message-ID header: the outbox needs it as idempotency key")
    for header in ("From", "To"):
        if msg.get(header) is None:
            raise ValueError(f"email {message_id} has no {header} header")
    return EncodedMessage(message_id, msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")))


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the outbox tables and their `retarget_messages` view where missing."""
    found = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_catalog = "
        "current_database() AND table_schema = 'main' AND table_name = 'retarget_messages'"
    ).fetchall()
    if found and found[0][0] == "BASE TABLE":
        # a home from before the split: its one keyed table becomes the outbox as it is
        con.execute("ALTER TABLE retarget_messages RENAME TO retarget_outbox")
    con.execute(_DDL)


def enqueue(con: duckdb.DuckDBPyConnection, rows: pa.Table) -> int:
    """Insert new decisions; returns rows inserted.

    Queued emails go to `retarget_outbox`, where a message_id already present is ignored.
    Suppressed decisions go to `retarget_suppressed` as they are: decide each cart once.
    Runs no BEGIN/COMMIT of its own so the engine commits it with its state and offsets.
    """
    table = _conform(rows)
    if table.num_rows == 0:
        return 0
    final = pc.equal(table.column("status"), "suppressed")
    parts = (
        ("INSERT INTO retarget_suppressed", table.filter(final)),
        ("INSERT OR IGNORE INTO retarget_outbox", table.filter(pc.invert(final))),
    )
    columns = ", ".join(table.schema.names)
    inserted = 0
    for verb, part in parts:
        if part.num_rows == 0:
            continue
        with registered(con, _retarget_enqueue=part):
            result = con.execute(
                f"{verb} ({columns}) SELECT {columns} FROM _retarget_enqueue"
            ).fetchone()
        inserted += int(result[0]) if result else 0
    return inserted


def due(con: duckdb.DuckDBPyConnection, now: datetime, limit: int = 100) -> list[OutboxRow]:
    """Rows to deliver now: leftovers in `sending` first, then queued rows whose time has come."""
    _require_aware(now)
    found = con.execute(
        """
        SELECT message_id, user_id, email, status, attempts, holdout, message
        FROM retarget_outbox
        WHERE status = 'sending'
           OR (status = 'queued' AND (next_attempt_at IS NULL OR next_attempt_at <= ?))
        ORDER BY status = 'sending' DESC, coalesce(next_attempt_at, queued_at), message_id
        LIMIT ?
        """,
        [now, limit],
    ).fetchall()
    return [OutboxRow(*row) for row in found]


def next_due_at(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """When the next queued or sending row becomes due; None when nothing is left to deliver."""
    row = con.execute(
        """
        SELECT min(CASE WHEN status = 'sending' THEN 0
                        ELSE epoch_us(coalesce(next_attempt_at, queued_at)) END)
        FROM retarget_outbox WHERE status IN ('queued', 'sending')
        """
    ).fetchone()
    if row is None or row[0] is None:
        return None
    # Fetched as epoch microseconds: TIMESTAMPTZ values would need pytz on the Python side.
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(row[0]))


def mark_sending(con: duckdb.DuckDBPyConnection, message_id: str) -> int:
    """Start a delivery attempt (commit before talking SMTP); returns the attempt number."""
    return _transition(
        con,
        message_id,
        ("queued", "sending"),
        "status = 'sending', attempts = attempts + 1",
        [],
    )


def mark_sent(
    con: duckdb.DuckDBPyConnection, message_id: str, sent_at: datetime, smtp_response: str
) -> None:
    """Record an accepted delivery; the stored bytes are dropped to keep the warehouse small."""
    _require_aware(sent_at)
    _transition(
        con,
        message_id,
        ("sending",),
        "status = 'sent', sent_at = ?, smtp_response = ?, reason = NULL, "
        "next_attempt_at = NULL, message = NULL",
        [sent_at, smtp_response],
    )


def mark_retry(
    con: duckdb.DuckDBPyConnection, message_id: str, next_attempt_at: datetime, reason: str
) -> None:
    """Put a row back in the queue after a transient failure, due again at `next_attempt_at`."""
    _require_aware(next_attempt_at)
    _transition(
        con,
        message_id,
        ("sending",),
        "status = 'queued', next_attempt_at = ?, reason = ?",
        [next_attempt_at, reason],
    )


def mark_failed(con: duckdb.DuckDBPyConnection, message_id: str, reason: str) -> None:
    """Give up on a row for good; the bytes stay so an operator can inspect or requeue it."""
    _transition(
        con,
        message_id,
        ("queued", "sending"),
        "status = 'failed', next_attempt_at = NULL, reason = ?",
        [reason],
    )


def mark_suppressed(con: duckdb.DuckDBPyConnection, message_id: str, reason: str) -> None:
    """Withdraw a row that must not be mailed (holdout, no address) without sending it."""
    _transition(
        con,
        message_id,
        ("queued", "sending"),
        "status = 'suppressed', next_attempt_at = NULL, reason = ?, message = NULL",
        [reason],
    )


def counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows per status, every status present (zero when none)."""
    found = dict(
        con.execute("SELECT status, count(*) FROM retarget_messages GROUP BY status").fetchall()
    )
    return {status: int(found.get(status, 0)) for status in STATUSES}


def list_messages(
    con: duckdb.DuckDBPyConnection, status: str | None = None, limit: int = 100
) -> pa.Table:
    """The newest rows (optionally of one status), without the message bytes."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
    where = "WHERE status = ?" if status is not None else ""
    params: list[object] = [status] if status is not None else []
    return con.sql(
        f"SELECT {', '.join(_LISTED)} FROM retarget_messages {where} "
        "ORDER BY queued_at DESC, message_id LIMIT ?",
        params=[*params, limit],
    ).to_arrow_table()


@contextmanager
def committed(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in its own transaction: committed on success, rolled back on error."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _transition(
    con: duckdb.DuckDBPyConnection,
    message_id: str,
    allowed_from: tuple[str, ...],
    assignments: str,
    params: list[object],
) -> int:
    """Apply one state-machine step to one row; returns its attempts after the step."""
    placeholders = ", ".join("?" for _ in allowed_from)
    row = con.execute(
        f"UPDATE retarget_outbox SET {assignments} "
        f"WHERE message_id = ? AND status IN ({placeholders}) RETURNING attempts",
        [*params, message_id, *allowed_from],
    ).fetchone()
    if row is None:
        current = con.execute(
            "SELECT status FROM retarget_messages WHERE message_id = ?", [message_id]
        ).fetchone()
        state = "does not exist" if current is None else f"is {current[0]}"
        raise OutboxStateError(
            f"outbox message {message_id} {state}; expected {' or '.join(allowed_from)}"
        )
    return int(row[0])


def _conform(rows: pa.Table) -> pa.Table:
    """Check `rows` against ENQUEUE_SCHEMA: required columns, statuses, bytes for queued rows."""
    missing = [f.name for f in ENQUEUE_SCHEMA if not f.nullable and f.name not in rows.schema.names]
    if missing:
        raise ValueError(f"enqueue: missing required column(s) {', '.join(missing)}")
    unknown = [name for name in rows.schema.names if name not in ENQUEUE_SCHEMA.names]
    if unknown:
        raise ValueError(f"enqueue: unknown column(s) {', '.join(unknown)}")
    n = rows.num_rows
    columns = [
        rows.column(f.name).cast(f.type) if f.name in rows.schema.names else pa.nulls(n, f.type)
        for f in ENQUEUE_SCHEMA
    ]
    table = pa.table(columns, names=ENQUEUE_SCHEMA.names)
    status = pc.fill_null(table.column("status"), "queued")
    table = table.set_column(ENQUEUE_SCHEMA.get_field_index("status"), "status", status)
    _check_rows(table)
    return table


def _check_rows(table: pa.Table) -> None:
    """Refuse rows that could never be delivered or would break the state machine."""
    for f in ENQUEUE_SCHEMA:
        if not f.nullable and table.column(f.name).null_count:
            raise ValueError(f"enqueue: column {f.name} has nulls")
    status = table.column("status")
    bad_status = pc.invert(pc.is_in(status, value_set=pa.array(_ENQUEUE_STATUSES)))
    no_bytes = pc.and_(pc.equal(status, "queued"), pc.is_null(table.column("message")))
    for mask, problem in (
        (bad_status, f"status must be one of {', '.join(_ENQUEUE_STATUSES)}"),
        (no_bytes, "a queued row needs its rendered message bytes"),
    ):
        offenders = pc.filter(table.column("message_id"), mask)
        if len(offenders):
            raise ValueError(
                f"enqueue: {problem} (message_id {offenders[0].as_py()!r}, {len(offenders)} rows)"
            )


def _require_aware(value: datetime) -> None:
    if value.tzinfo is None:
        raise ValueError(f"timestamp {value.isoformat()} has no time zone; pass a UTC datetime")
