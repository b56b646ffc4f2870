"""The serving-store sink of the Spark runner: sales, abandoned carts, outbox, dq, bots.

Each micro-batch's outputs are committed once per (query, batch id): the batch id is recorded
in the same transaction, so a batch that Spark runs again after a crash changes nothing.
The Spark driver is the only writer of the store while the job runs.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pyarrow as pa

from cartpulse.engine.store import BatchOutputs, ServingStore
from cartpulse.operators.bots import BOT_ALERTS_SCHEMA, BotState
from cartpulse.operators.dq import DQ_SCHEMA
from cartpulse.operators.sales import SALES_SCHEMA
from cartpulse.operators.sessions import ABANDONED_CARTS_SCHEMA
from cartpulse.retarget.decide import Retargeter
from cartpulse.settings import Settings

_DDL = """
CREATE SCHEMA IF NOT EXISTS engine;
CREATE TABLE IF NOT EXISTS engine.spark_batches (
  query VARCHAR NOT NULL, batch_id BIGINT NOT NULL, committed_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (query, batch_id)
);
"""


class StoreSink:
    """Publishes the Spark runner's outputs into the serving store (DuckDB)."""

    def __init__(self, settings: Settings, path: Path | None = None) -> None:
        self.store = ServingStore(
            path or settings.warehouse_path, checkpoint_mb=settings.engine.checkpoint_mb
        )
        self.store.con.execute(_DDL)
        self.retargeter = Retargeter(settings, self.store.con)
        # foreachBatch callbacks of concurrent queries arrive on different driver threads.
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def publish_sales(self, batch_id: int, changed: pa.Table) -> bool:
        """Upsert changed `product_sales_minute` rows (running totals) of one batch."""
        outputs = BatchOutputs(
            ABANDONED_CARTS_SCHEMA.empty_table(),
            changed.cast(SALES_SCHEMA),
            DQ_SCHEMA.empty_table(),
        )
        return self._publish_once("sales", batch_id, outputs, with_messages=False)

    def publish_carts(self, batch_id: int, carts: pa.Table) -> bool:
        """Insert one batch's abandoned carts and queue their retargeting decisions."""
        outputs = BatchOutputs(
            carts.cast(ABANDONED_CARTS_SCHEMA), SALES_SCHEMA.empty_table(), DQ_SCHEMA.empty_table()
        )
        return self._publish_once("sessions", batch_id, outputs, with_messages=True)

    def publish_dq(self, query: str, batch_id: int, counts: pa.Table) -> bool:
        """Add one batch's data-quality counts (minute, reason, rows) to `dq_counts`."""
        outputs = BatchOutputs(
            ABANDONED_CARTS_SCHEMA.empty_table(), SALES_SCHEMA.empty_table(), counts.cast(DQ_SCHEMA)
        )
        return self._publish_once(query, batch_id, outputs, with_messages=False)

    def done(self, query: str, batch_id: int) -> bool:
        """Whether the query's batch has already been committed."""
        with self._lock:
            rows = self.store.con.execute(
                "SELECT count(*) FROM engine.spark_batches WHERE query = ? AND batch_id = ?",
                [query, batch_id],
            ).fetchall()
        return bool(rows[0][0])

    def load_bots(self) -> BotState:
        """The bot detector's state as the last committed bots batch left it."""
        with self._lock:
            return self.store.load().bots

    def publish_bots(self, batch_id: int, state: BotState, alerts: pa.Table) -> bool:
        """Insert one batch's bot alerts and commit the detector's state with them."""
        outputs = BatchOutputs(
            ABANDONED_CARTS_SCHEMA.empty_table(),
            SALES_SCHEMA.empty_table(),
            DQ_SCHEMA.empty_table(),
            bot_alerts=alerts.cast(BOT_ALERTS_SCHEMA),
        )
        return self._publish_once("bots", batch_id, outputs, with_messages=False, bots=state)

    def _publish_once(
        self,
        query: str,
        batch_id: int,
        outputs: BatchOutputs,
        with_messages: bool,
        bots: BotState | None = None,
    ) -> bool:
        if self.done(query, batch_id):
            return False
        with self._lock:
            con = self.store.con
            if with_messages and outputs.abandoned_carts.num_rows:
                now = dt.datetime.now(dt.UTC)
                outputs.messages = self.retargeter.decide(outputs.abandoned_carts, now)
            con.execute("BEGIN TRANSACTION")
            try:
                self.store.publish(outputs)
                if bots is not None:
                    self.store.replace_bot_state(bots)
                con.execute(
                    "INSERT INTO engine.spark_batches VALUES (?, ?, now())", [query, batch_id]
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return True
