"""A Kafka topic as a Spark streaming source, read by confluent-kafka in Python workers.

PySpark's Python Data Source API plans the micro-batches: the offsets are a JSON object
partition → next offset, `latestOffset` asks the brokers for each partition's high watermark, and
each micro-batch has one task per Kafka partition that consumes [start, end) of it. No consumer
group is used: Spark's checkpoint holds the offsets, and the job's sinks are idempotent by batch
id, so a restarted query reads each offset range exactly once more at most and writes it once.

The rows are `value BINARY, partition INT, offset BIGINT`: what `clean_kafka_values` takes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition

if TYPE_CHECKING:
    from confluent_kafka import Consumer
    from pyspark.sql import SparkSession
    from pyspark.sql.types import StructType

#: The short name of the source: `spark.readStream.format(SOURCE_NAME)`.
SOURCE_NAME = "cartpulse_kafka"

SCHEMA_DDL = "value BINARY, partition INT, offset BIGINT"
ARROW_SCHEMA = pa.schema(
    [("value", pa.binary()), ("partition", pa.int32()), ("offset", pa.int64())]
)

_BATCH_ROWS = 10_000
_POLL_S = 0.5

#: Offsets of a topic: partition (as text, JSON keys are strings) → next offset to read.
Offsets = dict[str, int]


class KafkaSourceError(Exception):
    """The topic cannot be read as planned; the message says which partition and offsets."""


@dataclass(frozen=True)
class KafkaRange(InputPartition):
    """One task of a micro-batch: offsets [start, end) of one partition."""

    partition: int
    start: int
    end: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", (self.partition, self.start, self.end))


def plan_ranges(start: Offsets, end: Offsets, low: dict[int, int]) -> list[KafkaRange]:
    """The non-empty ranges between two offsets; a partition new in `end` starts at `low`."""
    ranges = []
    for key, stop in sorted(end.items(), key=lambda kv: int(kv[0])):
        p = int(key)
        first = start[key] if key in start else low.get(p, 0)
        if stop > first:
            ranges.append(KafkaRange(p, first, stop))
    return ranges


def _client(bootstrap: str) -> Consumer:
    from confluent_kafka import Consumer

    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "cartpulse-spark-source",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",  # offsets deleted by retention fail the read
        }
    )


class KafkaStreamReader(DataSourceStreamReader):
    """Plans micro-batches by the partitions' watermarks and reads each partition's range."""

    def __init__(self, bootstrap: str, topic: str, timeout_s: float) -> None:
        self.bootstrap, self.topic, self.timeout_s = bootstrap, topic, timeout_s
        self._meta: Consumer | None = None

    def _consumer(self) -> Consumer:
        if self._meta is None:
            self._meta = _client(self.bootstrap)
        return self._meta

    def watermarks(self) -> dict[int, tuple[int, int]]:
        """(low, high) of every partition of the topic."""
        from confluent_kafka import KafkaException, TopicPartition

        consumer = self._consumer()
        try:
            topic = consumer.list_topics(self.topic, timeout=self.timeout_s).topics[self.topic]
            if topic.error is not None:
                raise KafkaSourceError(f"Kafka topic {self.topic}: {topic.error}")
            return {
                p: consumer.get_watermark_offsets(
                    TopicPartition(self.topic, p), timeout=self.timeout_s
                )
                for p in sorted(topic.partitions)
            }
        except KafkaException as exc:
            raise KafkaSourceError(
                f"cannot read the offsets of Kafka topic {self.topic} at {self.bootstrap}: {exc}"
            ) from None

    def initialOffset(self) -> Offsets:  # noqa: N802  # pyspark's name
        """The earliest offset the brokers keep, per partition."""
        return {str(p): low for p, (low, _) in self.watermarks().items()}

    def latestOffset(self, start: Offsets, limit: Any) -> Offsets:  # noqa: N802
        """The high watermark of every partition (everything produced so far)."""
        return {str(p): high for p, (_, high) in self.watermarks().items()}

    def partitions(self, start: Offsets, end: Offsets) -> Sequence[KafkaRange]:
        """One range per partition with new messages."""
        new = [k for k in end if k not in start]
        low = {p: lh[0] for p, lh in self.watermarks().items()} if new else {}
        return plan_ranges(start, end, low)

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        """The messages of one range, as Arrow record batches."""
        assert isinstance(partition, KafkaRange)
        return read_range(self.bootstrap, self.topic, partition, self.timeout_s)

    def commit(self, end: Offsets) -> None:
        """Nothing to do: Spark's checkpoint holds the offsets."""

    def stop(self) -> None:
        """Close the watermark client."""
        if self._meta is not None:
            self._meta.close()
            self._meta = None


def read_range(
    bootstrap: str, topic: str, task: KafkaRange, timeout_s: float
) -> Iterator[pa.RecordBatch]:
    """Messages [start, end) of one partition; fails if they are gone or do not arrive in time."""
    from confluent_kafka import KafkaError, TopicPartition

    consumer = _client(bootstrap)
    where = f"Kafka topic {topic} partition {task.partition}, offsets {task.start}..{task.end}"
    try:
        consumer.assign([TopicPartition(topic, task.partition, task.start)])
        values: list[bytes | None] = []
        offsets: list[int] = []
        position, waited_since = task.start, time.monotonic()
        while position < task.end:
            messages = consumer.consume(min(_BATCH_ROWS, task.end - position), _POLL_S)
            for msg in messages:
                err = msg.error()
                if err is not None and err.code() != KafkaError._PARTITION_EOF:
                    raise KafkaSourceError(f"reading {where} failed: {err}")
                offset = msg.offset()
                if err is None and offset is not None and offset < task.end:
                    values.append(msg.value())
                    offsets.append(offset)
            if offsets and offsets[-1] + 1 > position:
                position, waited_since = offsets[-1] + 1, time.monotonic()
            elif consumer.position([TopicPartition(topic, task.partition)])[0].offset >= task.end:
                break  # the range ends in offsets with no message (a transaction marker)
            elif time.monotonic() - waited_since > timeout_s:
                raise KafkaSourceError(
                    f"reading {where}: no message after offset {position - 1} "
                    f"within {timeout_s:g} s"
                )
            if len(values) >= _BATCH_ROWS or (values and position >= task.end):
                yield _batch(values, task.partition, offsets)
                values, offsets = [], []
        if values:
            yield _batch(values, task.partition, offsets)
    finally:
        consumer.close()


def _batch(values: list[bytes | None], partition: int, offsets: list[int]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [
            pa.array(values, pa.binary()),
            pa.array([partition] * len(values), pa.int32()),
            pa.array(offsets, pa.int64()),
        ],
        schema=ARROW_SCHEMA,
    )


class KafkaDataSource(DataSource):
    """Options: `bootstrap.servers`, `topic`, and `timeout.s` (per Kafka request; default 30)."""

    @classmethod
    def name(cls) -> str:
        """The format name."""
        return SOURCE_NAME

    def schema(self) -> str:
        """Message value, partition and offset."""
        return SCHEMA_DDL

    def streamReader(self, schema: StructType) -> KafkaStreamReader:  # noqa: N802
        """The micro-batch reader of the topic."""
        missing = [k for k in ("bootstrap.servers", "topic") if not self.options.get(k)]
        if missing:
            raise KafkaSourceError(f"the {SOURCE_NAME} source needs the options {missing}")
        timeout_s = float(self.options.get("timeout.s", "30"))
        return KafkaStreamReader(
            self.options["bootstrap.servers"], self.options["topic"], timeout_s
        )


def register(spark: SparkSession) -> None:
    """Make `format("cartpulse_kafka")` available in this session."""
    spark.dataSource.register(KafkaDataSource)
