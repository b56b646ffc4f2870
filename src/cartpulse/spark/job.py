"""`cartpulse spark stream`: the stream logic as Spark Structured Streaming queries.

- lake: source → clean (validator in `mapInArrow`) → drop duplicates → lake (per batch id),
  and the batch's `accepted` / `zero_price` counts → `dq_counts`
- quarantine: source → the rows the validator rejects → lake/quarantine and `dq_counts`
- sales: lake → 1-minute windows per product with the watermark → `product_sales_minute`
- sessions: lake → session operator per bucket (`applyInPandasWithState`) → abandoned carts
  and the outbox
- bots: lake → the bot operator on the driver → `bot_alerts` (see spark/quality.py)

The lake is the clean, deduplicated log the other two queries read, as the embedded engine
reads its event log. Each query has its own checkpoint; its sink is idempotent by batch id.
"""

from __future__ import annotations

import logging
import time
import uuid
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cartpulse.operators.sessions import ABANDONED_CARTS_SCHEMA
from cartpulse.schema import EVENT_COLUMNS
from cartpulse.settings import Settings
from cartpulse.spark.clean import EVENT_DDL, QUARANTINE_DDL, clean_files, clean_kafka_values
from cartpulse.spark.lake import write_lake_batch
from cartpulse.spark.quality import SparkBots, lake_batch_counts, write_quarantine_batch
from cartpulse.spark.sessions import (
    OUTPUT_DDL,
    SESSION_INPUT_COLUMNS,
    SESSION_INPUT_SCHEMA,
    STATE_DDL,
    advance_bucket,
    from_ipc,
)
from cartpulse.spark.source import Source, SparkReport, check_source
from cartpulse.spark.store_sink import StoreSink

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery
    from pyspark.sql.streaming.readwriter import DataStreamWriter

log = logging.getLogger(__name__)

#: A flush row: an event with nothing but `_flush` and its bucket (see request_flush).
CONTROL_SCHEMA = SESSION_INPUT_SCHEMA.append(pa.field("_flush", pa.bool_())).append(
    pa.field("_bucket", pa.int64())
)
_CONTROL_DDL = (
    "event_time TIMESTAMP, event_type STRING, product_id BIGINT, category_code STRING, "
    "brand STRING, price DOUBLE, user_id BIGINT, user_session STRING, _flush BOOLEAN, "
    "_bucket BIGINT"
)

_BINARY_FILE_DDL = "path STRING, modificationTime TIMESTAMP, length BIGINT, content BINARY"


class SparkStreamJob:
    """Builds the three streaming queries over one SparkSession and runs them."""

    def __init__(self, spark: SparkSession, settings: Settings, source: Source) -> None:
        self.spark, self.settings, self.source = spark, settings, source
        self.cfg = settings.spark
        self.checkpoints = settings.spark_checkpoint_dir
        self.control_dir = self.checkpoints / "control"
        self.report = SparkReport(self.cfg.master)
        check_source(settings, source)
        for folder in (self.settings.events_dir, self.control_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.sink = StoreSink(settings)
        self.bots = SparkBots(settings, self.sink) if settings.bots.enabled else None

    def close(self) -> None:
        """Close the serving store."""
        self.sink.close()

    def run_backfill(self, flush: bool = True) -> SparkReport:
        """Process everything available now, then (with `flush`) expire every open session."""
        start = time.perf_counter()
        self._await(
            [
                self._start(self.lake_query(), "lake", once=True),
                self._start(self.quarantine_query(), "quarantine", once=True),
            ]
        )
        self._await([self._start(q, name, once=True) for name, q in self._lake_readers()])
        if flush:
            self.request_flush()
            self._await([self._start(self.sessions_query(), "sessions", once=True)])
        self.report.elapsed_s = time.perf_counter() - start
        return self.report

    def run_continuous(self, timeout_s: float | None = None, drain: bool = False) -> SparkReport:
        """Run all queries on the trigger interval until one fails or `timeout_s` passes.

        With `drain`, stop instead once every query has processed what the source holds now.
        """
        start = time.perf_counter()
        writers = [("lake", self.lake_query()), ("quarantine", self.quarantine_query())]
        queries = [self._start(q, name, once=False) for name, q in writers + self._lake_readers()]
        try:
            if drain:
                for q in queries:  # the writers first: the readers then see the whole lake
                    q.processAllAvailable()
            else:
                self.spark.streams.awaitAnyTermination(
                    None if timeout_s is None else int(timeout_s * 1000)
                )
        finally:
            for q in queries:
                q.stop()
        self.report.elapsed_s = time.perf_counter() - start
        return self.report

    def request_flush(self) -> None:
        """Queue one flush row per session bucket: the next sessions batch expires them all."""
        n = self.cfg.session_buckets
        rows = {name: pa.nulls(n, CONTROL_SCHEMA.field(name).type) for name in CONTROL_SCHEMA.names}
        rows["_flush"] = pa.array([True] * n)
        rows["_bucket"] = pa.array(np.arange(n, dtype=np.int64))
        tmp = self.control_dir / f".flush-{uuid.uuid4().hex}.parquet"
        pq.write_table(pa.table(rows, schema=CONTROL_SCHEMA), tmp)
        tmp.rename(self.control_dir / tmp.name.removeprefix("."))

    # -- the queries -------------------------------------------------------------------------

    def _lake_readers(self) -> list[tuple[str, DataStreamWriter]]:
        """The queries that read the lake: sales, sessions and (when enabled) bots."""
        readers = [("sales", self.sales_query()), ("sessions", self.sessions_query())]
        if self.bots is not None:
            readers.append(("bots", self.bots_query()))
        return readers

    def clean_stream(self, rejected: bool = False) -> DataFrame:
        """Raw events from the source, validated (not yet deduplicated); or the rejected rows."""
        ddl = QUARANTINE_DDL if rejected else EVENT_DDL
        if self.source.kind == "files":
            reader = self.spark.readStream.format("binaryFile").schema(_BINARY_FILE_DDL)
            if self.cfg.max_files_per_trigger:
                reader = reader.option("maxFilesPerTrigger", self.cfg.max_files_per_trigger)
            raw = reader.load(str(self.source.path))
            return raw.select("path", "content").mapInArrow(
                partial(clean_files, rejected=rejected), ddl
            )
        if self.cfg.kafka_reader == "python":
            from cartpulse.spark.kafka_source import SOURCE_NAME, register

            register(self.spark)
            raw = (
                self.spark.readStream.format(SOURCE_NAME)
                .option("bootstrap.servers", self.cfg.kafka_bootstrap_servers)
                .option("topic", self.cfg.kafka_topic)
                .load()
            )
        else:
            raw = (
                self.spark.readStream.format("kafka")
                .option("kafka.bootstrap.servers", self.cfg.kafka_bootstrap_servers)
                .option("subscribe", self.cfg.kafka_topic)
                .option("startingOffsets", "earliest")
                .load()
            )
        return raw.select("value").mapInArrow(partial(clean_kafka_values, rejected=rejected), ddl)

    def lake_query(self) -> DataStreamWriter:
        """Clean → exact duplicates dropped within the dedupe window → lake."""
        window_s = self.settings.ingest.dedupe_window_s
        deduped = self.clean_stream().withWatermark("event_time", f"{window_s} seconds")
        deduped = deduped.dropDuplicatesWithinWatermark(list(EVENT_COLUMNS))
        staging = self.settings.state_dir / "spark-staging"
        fsync = self.settings.fsync != "never"
        events_dir = self.settings.events_dir

        def write(frame: DataFrame, batch_id: int) -> None:
            write_lake_batch(frame, batch_id, events_dir, staging, fsync)
            counts = lake_batch_counts(events_dir, batch_id)
            if self.sink.publish_dq("lake", batch_id, counts):
                # every event of the batch's files is counted once as `accepted`
                accepted = counts.filter(pc.equal(counts.column("reason"), "accepted"))
                self.report.events += int(pc.sum(accepted.column("rows")).as_py() or 0)

        return deduped.writeStream.foreachBatch(write)

    def quarantine_query(self) -> DataStreamWriter:
        """The rows the validator rejects → lake/quarantine and `dq_counts`, per batch id."""
        quarantine_dir = self.settings.quarantine_dir
        fsync = self.settings.fsync != "never"

        def write(frame: DataFrame, batch_id: int) -> None:
            rows = frame.toArrow()
            counts = write_quarantine_batch(rows, batch_id, quarantine_dir, fsync)
            if self.sink.publish_dq("quarantine", batch_id, counts):
                self.report.quarantined += rows.num_rows

        return self.clean_stream(rejected=True).writeStream.foreachBatch(write)

    def bots_query(self) -> DataStreamWriter:
        """The lake's events into the bot detector (on the driver) → `bot_alerts`."""
        assert self.bots is not None
        bots = self.bots

        def detect(frame: DataFrame, batch_id: int) -> None:
            before = bots.alerts
            bots.batch(frame, batch_id)
            self.report.bot_alerts += bots.alerts - before

        return self.lake_stream().writeStream.foreachBatch(detect)

    def lake_stream(self) -> DataFrame:
        """The lake's clean events as a stream: every file landed since the last batch.

        Never a file at a time: one lake batch writes a file per event date, and reading
        them one by one would move the watermark past the older dates' events. The partition
        column is in the schema, so a query started on an empty lake (a continuous run) gets the
        same columns as its later batches.
        """
        ddl = f"{EVENT_DDL}, event_date DATE"
        return self.spark.readStream.schema(ddl).parquet(str(self.settings.events_dir))

    def sales_query(self) -> DataStreamWriter:
        """Purchases per product per 1-minute window; windows close with the watermark."""
        from pyspark.sql import functions as F  # noqa: N812

        lateness_s = self.settings.session.allowed_lateness_s
        events = self.lake_stream().withWatermark("event_time", f"{lateness_s} seconds")
        sales = (
            events.where(F.col("event_type") == "purchase")
            .groupBy(F.window("event_time", "1 minute"), "product_id")
            .agg(
                F.count("*").alias("purchases"),
                F.sum(F.col("price").cast("decimal(38,6)")).alias("revenue"),
            )
            .select(
                F.col("window.start").alias("window_start"),
                "product_id",
                "purchases",
                F.col("revenue").cast("double").alias("revenue"),
            )
        )

        def publish(frame: DataFrame, batch_id: int) -> None:
            changed = frame.toArrow()
            if self.sink.publish_sales(batch_id, changed):
                self.report.sales_rows += changed.num_rows

        return sales.writeStream.outputMode("update").foreachBatch(publish)

    def sessions_query(self) -> DataStreamWriter:
        """Sessions → abandoned carts, the session operator once per bucket and batch."""
        from pyspark.sql import functions as F  # noqa: N812
        from pyspark.sql.streaming.state import GroupStateTimeout

        buckets = self.cfg.session_buckets
        events = (
            self.lake_stream()
            .where(F.col("user_session").isNotNull())
            .select(*SESSION_INPUT_COLUMNS)
            .withColumn("_flush", F.lit(False))
            .withColumn("_bucket", F.pmod(F.xxhash64("user_session"), F.lit(buckets)))
        )
        control = self.spark.readStream.schema(_CONTROL_DDL).parquet(str(self.control_dir))
        lateness_s = self.settings.session.allowed_lateness_s
        carts = (
            events.unionByName(control)
            .withWatermark("event_time", f"{lateness_s} seconds")
            .groupBy("_bucket")
            .applyInPandasWithState(
                partial(advance_bucket, self.settings.session.timeout_s),
                OUTPUT_DDL,
                STATE_DDL,
                "append",
                GroupStateTimeout.EventTimeTimeout,
            )
        )
        return carts.writeStream.outputMode("append").foreachBatch(self._publish_carts)

    def _publish_carts(self, frame: DataFrame, batch_id: int) -> None:
        rows = frame.toArrow()
        blobs = [b for b in rows.column("carts").to_pylist() if b is not None]
        tables = [from_ipc(b, ABANDONED_CARTS_SCHEMA) for b in blobs]
        carts = pa.concat_tables(tables) if tables else ABANDONED_CARTS_SCHEMA.empty_table()
        if self.sink.publish_carts(batch_id, carts):
            self.report.abandoned_carts += carts.num_rows
        self.report.open_sessions = max(
            self.report.open_sessions,
            int(pc.sum(rows.column("open_sessions")).as_py() or 0),
        )
        self.report.state_bytes = max(
            self.report.state_bytes, int(pc.sum(rows.column("state_bytes")).as_py() or 0)
        )

    # -- running -------------------------------------------------------------------------------

    def _start(self, writer: DataStreamWriter, name: str, once: bool) -> StreamingQuery:
        writer = writer.queryName(name).option("checkpointLocation", str(self.checkpoints / name))
        if once:
            writer = writer.trigger(availableNow=True)
        else:
            writer = writer.trigger(processingTime=f"{self.cfg.trigger_interval_s} seconds")
        return writer.start()

    def _await(self, queries: list[StreamingQuery]) -> None:
        started = time.perf_counter()
        for q in queries:
            q.awaitTermination()
            log.info(
                "spark_query_done name=%s elapsed_s=%.1f", q.name, time.perf_counter() - started
            )
            batches = len([p for p in q.recentProgress if p.numInputRows])
            self.report.micro_batches[str(q.name)] = (
                self.report.micro_batches.get(str(q.name), 0) + batches
            )


def run_stream(
    settings: Settings,
    source: Source,
    follow: bool = False,
    flush: bool = True,
    timeout_s: float | None = None,
) -> SparkReport:
    """Run the Spark job: a directory once (backfill), or Kafka / --follow continuously."""
    from cartpulse.spark.session import build_session

    spark = build_session(settings.spark, warehouse_dir=settings.state_dir / "spark-warehouse")
    job = SparkStreamJob(spark, settings, source)
    try:
        if source.kind == "files" and not follow:
            return job.run_backfill(flush=flush)
        return job.run_continuous(timeout_s)
    finally:
        job.close()
