"""The event log on Kafka (confluent-kafka): the `EventLog` contract over one topic partition.

Design (docs/kafka.md): one message per event, key = user_id, so a user's events stay ordered
in one partition and Kafka's message offsets *are* the log's event offsets. An instance
appends to the whole topic (librdkafka's Java-compatible murmur2 partitioner places each user)
and reads one partition, `log.kafka.partition`: one engine instance per partition, each with
its own home. The engine's resume offset stays in its DuckDB store, committed with its state;
`commit()` also records it in the Kafka group `<group_prefix>-<consumer>` for monitoring.
Retention is the broker's (`retention.ms`, set from `log.retention_hours` on topic creation).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from cartpulse.log.base import (
    AppendResult,
    ClosesOnExit,
    EventLogError,
    LogClosedError,
    LogCorruptError,
    LogSlice,
    OffsetOutOfRangeError,
    OffsetTruncatedError,
)
from cartpulse.log.conform import check_log_schema, conform
from cartpulse.log.consumers import check_consumer_name
from cartpulse.log.kafka_codec import decode_events, encode_events
from cartpulse.schema import EVENT_SCHEMA

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Message, Producer

    from cartpulse.settings import KafkaSettings

INSTALL_HINT = "install the scale-out extra: pip install 'cartpulse[scale]'"
_POLL_S = 0.02
_MAX_CONSUME = 50_000


class KafkaLogError(EventLogError):
    """The Kafka cluster refused or failed an operation; the message says what to change."""


def _kafka() -> Any:
    try:
        import confluent_kafka
        import confluent_kafka.admin
    except ImportError:
        raise KafkaLogError(
            f"log.backend = 'kafka' needs confluent-kafka: {INSTALL_HINT}"
        ) from None
    return confluent_kafka


class KafkaEventLog(ClosesOnExit):
    """Appends to a Kafka topic and reads one of its partitions by event offset."""

    def __init__(
        self,
        kafka: KafkaSettings,
        retention_hours: float | None = None,
        schema: pa.Schema = EVENT_SCHEMA,
    ) -> None:
        check_log_schema(schema)
        self._ck = _kafka()
        self._settings, self._schema = kafka, schema
        self._topic, self._partition = kafka.topic, kafka.partition
        self._base = {"bootstrap.servers": kafka.bootstrap_servers, **kafka.client}
        self._ensure_topic(retention_hours)
        self._producer: Producer = self._ck.Producer(
            {
                **self._base,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "partitioner": "murmur2_random",
                "queue.buffering.max.messages": 1_000_000,
            }
        )
        self._reader = self._consumer("reader")
        self._meta = self._consumer("meta")
        self._committers: dict[str, Consumer] = {}
        self._read_lock, self._meta_lock, self._append_lock = (threading.Lock() for _ in range(3))
        self._next: int | None = None
        self._buffer: list[Message] = []
        self._closed = False

    @property
    def schema(self) -> pa.Schema:
        """The schema every stored event has."""
        return self._schema

    def append(self, batch: pa.RecordBatch | pa.Table) -> AppendResult:
        """Produce every event and wait until the brokers acknowledged all of them."""
        self._check_open()
        table = pa.Table.from_batches(conform(batch, self._schema), self._schema)
        if table.num_rows == 0:
            end = self.end_offset()
            return AppendResult(end, end - 1)
        keys, values = encode_events(table)
        mine: list[int] = []
        failures: list[str] = []

        def delivered(err: Any, msg: Message) -> None:
            if err is not None:
                failures.append(str(err))
            elif msg.partition() == self._partition:
                mine.append(int(msg.offset()))  # type: ignore[arg-type]

        with self._append_lock:  # one append's events stay contiguous per partition
            produce, topic = self._producer.produce, self._topic
            for key, value in zip(keys, values, strict=True):
                while True:
                    try:
                        produce(topic, value, key, on_delivery=delivered)
                        break
                    except BufferError:  # the local queue is full: let deliveries drain it
                        self._producer.poll(0.05)
            left = self._producer.flush(self._settings.timeout_s)
        if left or failures:
            raise KafkaLogError(
                f"Kafka did not acknowledge {left + len(failures)} of {len(values)} events "
                f"({failures[0] if failures else 'timed out'}); nothing is acknowledged to the "
                f"sender: check log.kafka.bootstrap_servers ({self._settings.bootstrap_servers})"
            )
        if not mine:
            end = self.end_offset()
            return AppendResult(end, end - 1)
        return AppendResult(min(mine), max(mine))

    def read(self, start: int, max_rows: int) -> LogSlice:
        """Events with offsets in [start, start + max_rows), as far as they exist."""
        if start < 0 or max_rows < 0:
            raise ValueError(f"read needs start >= 0 and max_rows >= 0, got {start}, {max_rows}")
        self._check_open()
        low, high = self._watermarks()
        if start < low:
            raise OffsetTruncatedError(start, low)
        if start > high:
            raise OffsetOutOfRangeError(f"offset {start} is beyond the end offset {high}")
        stop = min(start + max_rows, high)
        with self._read_lock:
            messages = self._take(start, stop)
        values = [m.value() or b"" for m in messages]
        return LogSlice(start, decode_events(values, self._schema))

    def _take(self, start: int, stop: int) -> list[Message]:
        """Messages start..stop-1 of the partition, from the buffer and the consumer."""
        if self._next != start:
            self._seek(start)
        out: list[Message] = []
        deadline = time.monotonic() + self._settings.timeout_s
        while len(out) < stop - start:
            if not self._buffer:
                self._buffer = self._fetch(min(_MAX_CONSUME, stop - start - len(out)), 0.5)
                if not self._buffer and time.monotonic() > deadline:
                    raise KafkaLogError(
                        f"reading {self._topic}[{self._partition}] from offset {start} timed out"
                    )
            take = min(len(self._buffer), stop - start - len(out))
            out.extend(self._buffer[:take])
            del self._buffer[:take]
        for i, msg in enumerate(out):
            if msg.offset() != start + i:
                raise LogCorruptError(
                    f"{self._topic}[{self._partition}] skips from offset {start + i} to "
                    f"{msg.offset()}: the event log needs a plain topic (not compacted, not "
                    "written by transactions)"
                )
        self._next = start + len(out)
        return out

    def _seek(self, offset: int) -> None:
        tp = self._ck.TopicPartition(self._topic, self._partition, offset)
        self._reader.assign([tp])
        self._buffer, self._next = [], offset

    def _fetch(self, n: int, timeout_s: float) -> list[Message]:
        messages = self._reader.consume(num_messages=n, timeout=timeout_s)
        for msg in messages:
            err = msg.error()
            if err is not None and not err.code() == self._ck.KafkaError._PARTITION_EOF:
                raise KafkaLogError(f"reading {self._topic}[{self._partition}] failed: {err}")
        return [m for m in messages if m.error() is None]

    def start_offset(self) -> int:
        """The earliest offset the brokers still keep."""
        return self._watermarks()[0]

    def end_offset(self) -> int:
        """The offset the next event appended to this partition will get."""
        return self._watermarks()[1]

    def _watermarks(self) -> tuple[int, int]:
        self._check_open()
        tp = self._ck.TopicPartition(self._topic, self._partition)
        try:
            with self._meta_lock:
                low, high = self._meta.get_watermark_offsets(tp, timeout=self._settings.timeout_s)
        except self._ck.KafkaException as exc:
            raise KafkaLogError(f"cannot read the offsets of {self._topic}: {exc}") from None
        return int(low), int(high)

    def release_before(self, offset: int) -> None:
        """Nothing to release: the brokers keep the data."""
        del offset

    def wait_for(self, offset: int, timeout_s: float) -> bool:
        """Block until `offset` exists or the timeout passes."""
        deadline = time.monotonic() + timeout_s
        while self.end_offset() <= offset:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(_POLL_S, left))
        return True

    def commit(self, consumer: str, offset: int) -> None:
        """Record `offset` in the Kafka group of `consumer` (monitoring; the store decides)."""
        check_consumer_name(consumer)
        tp = self._ck.TopicPartition(self._topic, self._partition, offset)
        try:
            self._committer(consumer).commit(offsets=[tp], asynchronous=False)
        except self._ck.KafkaException as exc:
            raise KafkaLogError(f"cannot commit offset {offset} for {consumer}: {exc}") from None

    def committed(self, consumer: str) -> int | None:
        """The offset the Kafka group of `consumer` holds, or None."""
        tp = self._ck.TopicPartition(self._topic, self._partition)
        got = self._committer(consumer).committed([tp], timeout=self._settings.timeout_s)
        offset = int(got[0].offset)
        return offset if offset >= 0 else None

    def consumers(self) -> dict[str, int]:
        """Committed offsets of the consumers this process committed for or asked about."""
        found = {name: self.committed(name) for name in list(self._committers)}
        return {name: offset for name, offset in found.items() if offset is not None}

    def remove_consumer(self, consumer: str) -> None:
        """Delete the consumer's Kafka group."""
        group = self._group(consumer)
        admin = self._ck.admin.AdminClient(self._base)
        futures = admin.delete_consumer_groups([group], request_timeout=self._settings.timeout_s)
        try:
            futures[group].result()
        except self._ck.KafkaException as exc:
            if "GROUP_ID_NOT_FOUND" not in str(exc):
                raise KafkaLogError(f"cannot delete Kafka group {group}: {exc}") from None
        committer = self._committers.pop(consumer, None)
        if committer is not None:
            committer.close()

    def apply_retention(
        self, max_bytes: int | None, max_age_s: float | None, *, force: bool = False
    ) -> int:
        """Nothing to do here: the brokers apply the topic's retention.ms / retention.bytes."""
        del max_bytes, max_age_s, force
        return 0

    def sync(self) -> None:
        """Wait until every produced event is acknowledged."""
        self._producer.flush(self._settings.timeout_s)

    def close(self) -> None:
        """Flush the producer and close the consumers; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._producer.flush(self._settings.timeout_s)
        for consumer in [self._reader, self._meta, *self._committers.values()]:
            consumer.close()
        self._committers.clear()

    def _group(self, consumer: str) -> str:
        return f"{self._settings.group_prefix}-{consumer}"

    def _consumer(self, role: str) -> Consumer:
        consumer: Consumer = self._ck.Consumer(
            {
                **self._base,
                "group.id": f"{self._settings.group_prefix}-{role}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "error",
            }
        )
        return consumer

    def _committer(self, consumer: str) -> Consumer:
        if consumer not in self._committers:
            self._committers[consumer] = self._ck.Consumer(
                {**self._base, "group.id": self._group(consumer), "enable.auto.commit": False}
            )
        return self._committers[consumer]

    def _ensure_topic(self, retention_hours: float | None) -> None:
        """Create the topic when missing; check that the partition to read exists."""
        admin = self._ck.admin.AdminClient(self._base)
        timeout = self._settings.timeout_s
        try:
            meta = admin.list_topics(timeout=timeout)
        except self._ck.KafkaException as exc:
            raise KafkaLogError(
                f"cannot reach Kafka at {self._settings.bootstrap_servers}: {exc}; check "
                "log.kafka.bootstrap_servers (CARTPULSE_LOG__KAFKA__BOOTSTRAP_SERVERS)"
            ) from None
        if self._topic not in meta.topics:
            config = {}
            if retention_hours is not None:
                config["retention.ms"] = str(int(retention_hours * 3_600_000))
            new = self._ck.admin.NewTopic(
                self._topic, num_partitions=self._settings.partitions, config=config
            )
            try:
                admin.create_topics([new], request_timeout=timeout)[self._topic].result()
            except self._ck.KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise KafkaLogError(f"cannot create topic {self._topic}: {exc}") from None
            meta = admin.list_topics(topic=self._topic, timeout=timeout)
        partitions = len(meta.topics[self._topic].partitions)
        if self._partition >= partitions:
            raise KafkaLogError(
                f"topic {self._topic} has {partitions} partitions; log.kafka.partition = "
                f"{self._partition} does not exist (partitions are numbered from 0)"
            )

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError("the Kafka event log is closed")
