"""The Spark runner's quarantine, data-quality counts and bot detector.

- quarantine query: the source again, keeping only the rows the validator rejects; each
  micro-batch becomes one quarantine file (replaced whole when a batch is redone) and its
  counts by reason and minute of ingest go to `dq_counts` once per batch id.
- lake counts: after a lake batch lands, `accepted` and `zero_price` per minute of event time,
  from the batch's own files, with the embedded engine's function.
- bots query: the lake stream into the embedded engine's bot operator on the driver. The flood
  rule compares each user with every active user of the hour, so the detector needs all of a
  batch's events in one place; its state is committed with the alerts once per batch id.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cartpulse.operators.bots import BotOperator
from cartpulse.operators.dq import DQ_SCHEMA, event_dq_counts
from cartpulse.settings import Settings
from cartpulse.sinks.quarantine import write_quarantine
from cartpulse.spark.lake import batch_file_prefix
from cartpulse.spark.store_sink import StoreSink

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: The columns the bot detector reads, and their order for ties at one microsecond.
BOT_COLUMNS = ["event_time", "user_id", "user_session", "event_type", "product_id"]


def quarantine_file_name(batch_id: int) -> str:
    """Name (without .parquet) of one quarantine micro-batch's file."""
    return f"spark-q{batch_id:012d}"


def write_quarantine_batch(
    rows: pa.Table, batch_id: int, quarantine_dir: Path, fsync: bool
) -> pa.Table:
    """Write one batch's rejected rows (idempotent by batch id); return their dq counts."""
    name = quarantine_file_name(batch_id)
    for stale in quarantine_dir.glob(f"ingest_date=*/{name}.parquet"):
        stale.unlink()  # an earlier attempt of this batch, maybe on another day
    if rows.num_rows == 0:
        return DQ_SCHEMA.empty_table()
    ingested_at = rows.column("ingested_at")
    first = pc.min(ingested_at).as_py()
    write_quarantine(quarantine_dir, first, name, rows, fsync)
    minutes = pc.floor_temporal(ingested_at, unit="minute")
    counted = (
        pa.table({"minute": minutes, "reason": rows.column("reason")})
        .group_by(["minute", "reason"])
        .aggregate([("reason", "count")])
    )
    return pa.table(
        [counted["minute"], counted["reason"], counted["reason_count"]], schema=DQ_SCHEMA
    )


def lake_batch_counts(events_dir: Path, batch_id: int) -> pa.Table:
    """`accepted` and `zero_price` counts per minute of one lake batch's events."""
    prefix = batch_file_prefix(batch_id)
    files = sorted(events_dir.glob(f"event_date=*/{prefix}*.parquet"))
    if not files:
        return DQ_SCHEMA.empty_table()
    events = pa.concat_tables(pq.read_table(f, columns=["event_time", "price"]) for f in files)
    return event_dq_counts(events, DQ_SCHEMA.empty_table())


class SparkBots:
    """The bot operator fed by the lake stream's micro-batches, on the driver."""

    def __init__(self, settings: Settings, sink: StoreSink) -> None:
        self.operator = BotOperator(settings.bots)
        self.lateness_us = settings.session.allowed_lateness_s * 1_000_000
        self.sink = sink
        self.alerts = 0

    def batch(self, frame: DataFrame, batch_id: int) -> None:
        """foreachBatch body: fold the batch's events in, publish alerts with the new state."""
        if self.sink.done("bots", batch_id):
            return
        events = frame.select(*BOT_COLUMNS).toArrow()
        self.advance(events, batch_id)

    def advance(self, events: pa.Table, batch_id: int) -> None:
        """Run the detector over one batch of events (any order) and publish its outcome."""
        events = events.sort_by([(c, "ascending") for c in BOT_COLUMNS])
        events = events.append_column(
            "_offset", pa.array(np.arange(events.num_rows, dtype=np.int64))
        )
        now_us = None
        if events.num_rows:
            latest = pc.max(events.column("event_time")).cast(pa.int64()).as_py()
            now_us = latest - self.lateness_us
        state, alerts = self.operator.advance(self.sink.load_bots(), events, now_us)
        if self.sink.publish_bots(batch_id, state, alerts):
            self.alerts += alerts.num_rows
