"""The serving store (DuckDB): output tables, operator state and offsets, one transaction each."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from cartpulse import duck
from cartpulse.alerts.outbox import ensure_alert_outbox, publish_alerts
from cartpulse.operators.bots import BOT_STATE_SCHEMA, HOUR_TOTALS_SCHEMA, BotState
from cartpulse.operators.sales import SALES_SCHEMA
from cartpulse.operators.sessions import ITEM_STATE_SCHEMA, SESSION_STATE_SCHEMA, SessionState
from cartpulse.retarget import outbox
from cartpulse.sinks.quarantine import upsert_dq_counts

_DDL = """
CREATE TABLE IF NOT EXISTS abandoned_carts (
  user_session VARCHAR NOT NULL,
  user_id BIGINT NOT NULL,
  session_start TIMESTAMPTZ NOT NULL,
  session_end TIMESTAMPTZ NOT NULL,
  expired_at TIMESTAMPTZ NOT NULL,
  items STRUCT(product_id BIGINT, count BIGINT, price DOUBLE, brand VARCHAR,
               category_code VARCHAR)[] NOT NULL,
  item_count BIGINT NOT NULL,
  cart_value DOUBLE NOT NULL
);
CREATE TABLE IF NOT EXISTS product_sales_minute (
  window_start TIMESTAMPTZ NOT NULL,
  product_id BIGINT NOT NULL,
  purchases BIGINT NOT NULL,
  revenue DOUBLE NOT NULL,
  PRIMARY KEY (window_start, product_id)
);
CREATE TABLE IF NOT EXISTS bot_alerts (
  user_id BIGINT NOT NULL,
  detected_at TIMESTAMPTZ NOT NULL,
  rule VARCHAR NOT NULL,
  score DOUBLE,
  evidence VARCHAR
);
CREATE TABLE IF NOT EXISTS dq_counts (
  minute TIMESTAMPTZ NOT NULL,
  reason VARCHAR NOT NULL,
  rows BIGINT NOT NULL,
  PRIMARY KEY (minute, reason)
);
CREATE OR REPLACE VIEW product_sales_total AS
  SELECT product_id, sum(purchases)::BIGINT AS purchases, sum(revenue) AS revenue,
         max(window_start) AS last_window
  FROM product_sales_minute GROUP BY product_id;
CREATE SCHEMA IF NOT EXISTS engine;
CREATE TABLE IF NOT EXISTS engine.checkpoint (
  name VARCHAR PRIMARY KEY,
  log_offset BIGINT NOT NULL,
  archived_offset BIGINT NOT NULL,
  max_event_us BIGINT,
  pending_moves VARCHAR NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS engine.sessions (
  user_session VARCHAR, user_id BIGINT, session_start TIMESTAMPTZ, session_end TIMESTAMPTZ,
  has_purchase BOOLEAN
);
CREATE TABLE IF NOT EXISTS engine.items (
  user_session VARCHAR, product_id BIGINT, net BIGINT, seen_at TIMESTAMPTZ, seen_offset BIGINT,
  price DOUBLE, brand VARCHAR, category_code VARCHAR
);
CREATE TABLE IF NOT EXISTS engine.bot_users (
  user_id BIGINT, first_us BIGINT, last_us BIGINT, events BIGINT, views BIGINT, carts BIGINT,
  fast_carts BIGINT, purchases BIGINT, repeats BIGINT, sessions BIGINT, gaps BIGINT,
  gap_sum_s DOUBLE, gap_sq_sum_s DOUBLE, last_product BIGINT, last_type VARCHAR,
  last_session VARCHAR, minute_us BIGINT, minute_events BIGINT, peak_minute_events BIGINT,
  hour_us BIGINT, hour_events BIGINT, hour_sessions BIGINT, peak_hour_sessions BIGINT,
  alerted_until_us BIGINT
);
CREATE TABLE IF NOT EXISTS engine.bot_hours (hour_us BIGINT, events BIGINT);
CREATE TABLE IF NOT EXISTS engine.sales_windows (
  window_start TIMESTAMPTZ, product_id BIGINT, purchases BIGINT, revenue DOUBLE
);
"""


@dataclass
class Checkpoint:
    """Where the engine stands: next log offset to process, what the archive has written."""

    log_offset: int = 0
    archived_offset: int = 0
    max_event_us: int | None = None
    pending_moves: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class EngineState:
    """Everything the engine keeps between micro-batches."""

    checkpoint: Checkpoint
    sessions: SessionState
    sales_windows: pa.Table
    bots: BotState = field(default_factory=BotState.empty)


@dataclass
class BatchOutputs:
    """What one micro-batch publishes, committed with the state that produced it."""

    abandoned_carts: pa.Table
    sales_changed: pa.Table
    dq_counts: pa.Table
    messages: pa.Table | None = None
    """Retargeting decisions (outbox rows) for these abandoned carts."""
    bot_alerts: pa.Table | None = None
    """New `bot_alerts` rows (one per user per episode)."""


class ServingStore:
    """warehouse.duckdb, opened by the one process that runs the engine."""

    def __init__(self, path: Path, name: str = "main", checkpoint_mb: int | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.name = path, name
        self.con = duck.connect(path)
        if checkpoint_mb is not None:
            self.con.execute(f"SET checkpoint_threshold = '{int(checkpoint_mb)}MiB'")
        self.con.execute(_DDL)
        outbox.ensure_schema(self.con)
        ensure_alert_outbox(self.con)
        # Carts are unique by (user_session, session_start) because each batch's carts commit
        # with the state that emitted them (Spark: with its batch marker). Without a primary
        # key their insert costs a fifth; homes created with one keep `OR IGNORE`.
        keyed = self._keyed("abandoned_carts")
        self._insert_carts = "INSERT OR IGNORE INTO" if keyed else "INSERT INTO"

    def close(self) -> None:
        """Close the database file."""
        self.con.close()

    def load(self) -> EngineState:
        """The state as of the last commit (empty on a fresh home)."""
        row = self.con.execute(
            "SELECT log_offset, archived_offset, max_event_us, pending_moves "
            "FROM engine.checkpoint WHERE name = ?",
            [self.name],
        ).fetchall()
        cp = Checkpoint()
        if row:
            offset, archived, max_us, moves = row[0]
            cp = Checkpoint(offset, archived, max_us, [tuple(m) for m in json.loads(moves)])
        sessions = self._table("engine.sessions", SESSION_STATE_SCHEMA)
        items = self._table("engine.items", ITEM_STATE_SCHEMA)
        windows = self._table("engine.sales_windows", SALES_SCHEMA)
        bots = BotState(
            self._table("engine.bot_users", BOT_STATE_SCHEMA),
            self._table("engine.bot_hours", HOUR_TOTALS_SCHEMA),
        )
        return EngineState(cp, SessionState(sessions, items), windows, bots)

    def commit(self, state: EngineState, outputs: BatchOutputs | None) -> None:
        """Write outputs, state and offsets in one transaction."""
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            if outputs is not None:
                self.publish(outputs)
            self._replace("engine.sessions", state.sessions.sessions)
            self._replace("engine.items", state.sessions.items)
            self._replace("engine.sales_windows", state.sales_windows)
            self.replace_bot_state(state.bots)
            cp = state.checkpoint
            con.execute(
                "INSERT OR REPLACE INTO engine.checkpoint VALUES (?, ?, ?, ?, ?, now())",
                [
                    self.name,
                    cp.log_offset,
                    cp.archived_offset,
                    cp.max_event_us,
                    json.dumps(cp.pending_moves),
                ],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def publish(self, out: BatchOutputs) -> None:
        """Write a batch's outputs (inside the caller's transaction)."""
        con = self.con
        if out.abandoned_carts.num_rows:
            with duck.registered(con, new_carts=out.abandoned_carts):
                con.execute(f"{self._insert_carts} abandoned_carts SELECT * FROM new_carts")
        if out.sales_changed.num_rows:
            with duck.registered(con, new_sales=out.sales_changed):
                con.execute("INSERT OR REPLACE INTO product_sales_minute SELECT * FROM new_sales")
        if out.bot_alerts is not None and out.bot_alerts.num_rows:
            publish_alerts(con, out.bot_alerts)
        if out.messages is not None and out.messages.num_rows:
            outbox.enqueue(con, out.messages)
        upsert_dq_counts(con, out.dq_counts)

    def replace_bot_state(self, bots: BotState) -> None:
        """Store the bot detector's state (inside the caller's transaction)."""
        self._replace("engine.bot_users", bots.users)
        self._replace("engine.bot_hours", bots.hour_totals)

    def _replace(self, table: str, data: pa.Table) -> None:
        self.con.execute(f"DELETE FROM {table}")
        if data.num_rows:
            with duck.registered(self.con, replacement=data):
                self.con.execute(f"INSERT INTO {table} SELECT * FROM replacement")

    def _keyed(self, table: str) -> bool:
        """Does `table` have a primary key (homes created before carts lost theirs)?"""
        found = self.con.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
            [table],
        ).fetchall()
        return bool(found[0][0])

    def _table(self, name: str, schema: pa.Schema) -> pa.Table:
        table = self.con.sql(f"SELECT * FROM {name}").to_arrow_table()
        return table.cast(schema) if table.num_rows else schema.empty_table()

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run a read query on the store (tests, reports)."""
        return self.con.sql(sql, params=params).to_arrow_table()
