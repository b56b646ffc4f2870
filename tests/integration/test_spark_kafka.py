"""The Spark job's Kafka source (the Python reader) against librdkafka's mock cluster.

The real rows go to a topic as the Kafka event log writes them (one NDJSON object per message,
key = user_id, 4 partitions) and to an NDJSON file the embedded engine replays. A Kafka run never
flushes open sessions, while a replay flushes them all at its end: the lake, the sales windows
and the accepted-event counts must be equal, and every cart Spark found must be one the embedded
engine found too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

pytest.importorskip("pyspark")

from confluent_kafka import Producer

from cartpulse.schema import EVENT_COLUMNS
from cartpulse.settings import Settings
from cartpulse.spark.job import SparkStreamJob
from cartpulse.spark.kafka_source import (
    KafkaRange,
    KafkaSourceError,
    KafkaStreamReader,
    plan_ranges,
    read_range,
)
from cartpulse.spark.session import build_session
from cartpulse.spark.source import parse_source
from tests.kafka_broker import create_mock_topic, mock_cluster
from tests.spark_parity import embedded_replay, output_differences, real_rows_folder

pytestmark = pytest.mark.slow

#: The share of the (time-ordered) rows the first run reads; the second run reads the rest.
FIRST_SHARE = 0.7

#: Messages the validator rejects, produced between the two runs.
BAD_MESSAGES = [(b"1", b"not json"), (b"2", b'{"event_time":"yesterday","event_type":"view"}')]


def spark_settings(home: Path, address: str, topic: str) -> Settings:
    """Small partitions and buckets, a short trigger: the inputs are small."""
    spark = {
        "shuffle_partitions": 2,
        "session_buckets": 4,
        "trigger_interval_s": 0.5,
        "kafka_bootstrap_servers": address,
        "kafka_topic": topic,
    }
    return Settings(home=home, fsync="never", spark=spark)


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local[2] SparkSession for the module."""
    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    settings = Settings(home=warehouse, spark={"shuffle_partitions": 2})
    session = build_session(settings.spark, "cartpulse-kafka-tests", warehouse)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def messages(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[bytes, bytes]]:
    """The real rows in event-time order as (key, value) messages: user_id, NDJSON object."""
    folder = real_rows_folder(tmp_path_factory)
    as_text = {name: pa.string() for name in EVENT_COLUMNS}
    options = pacsv.ConvertOptions(column_types=as_text, strings_can_be_null=True)
    rows = pacsv.read_csv(folder / "real.csv", convert_options=options).to_pylist()
    return [
        (str(row["user_id"]).encode(), json.dumps(row, separators=(",", ":")).encode())
        for row in rows
    ]


def produce(address: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    """Send the messages keyed by user_id, as the Kafka event log does."""
    producer = Producer({"bootstrap.servers": address, "partitioner": "murmur2_random"})
    for key, value in messages:
        producer.produce(topic, value=value, key=key)
        producer.poll(0)
    assert producer.flush(30) == 0


def run_kafka(spark: Any, settings: Settings) -> dict[str, Any]:
    job = SparkStreamJob(spark, settings, parse_source("kafka"))
    try:
        return job.run_continuous(drain=True).as_dict()
    finally:
        job.close()


def test_kafka_source_gives_the_embedded_outputs_and_resumes_from_its_checkpoint(
    spark: Any, messages: list[tuple[bytes, bytes]], tmp_path: Path
) -> None:
    split = int(len(messages) * FIRST_SHARE)
    messages = [*messages[:split], *BAD_MESSAGES, *messages[split:]]
    ndjson = tmp_path / "events.ndjson"
    ndjson.write_bytes(b"\n".join(value for _, value in messages) + b"\n")
    embedded_replay(tmp_path / "embedded", [ndjson])

    with mock_cluster() as address:
        topic = f"events-{uuid.uuid4().hex[:8]}"
        create_mock_topic(address, topic)
        settings = spark_settings(tmp_path / "spark", address, topic)
        produce(address, topic, messages[:split])
        first = run_kafka(spark, settings)
        produce(address, topic, messages[split:])
        second = run_kafka(spark, settings)
        again = run_kafka(spark, settings)

    diffs = output_differences(tmp_path / "embedded", tmp_path / "spark")
    exact = ("lake", "product_sales_minute", "dq_counts (event minutes)", "bot_alerts")
    for name in (*exact, "dq_counts (quarantine)"):
        rows, spark_rows, only_embedded, only_spark = diffs[name]
        assert rows > 0 and (spark_rows, only_embedded, only_spark) == (rows, 0, 0), (name, diffs)
    lake_rows = diffs["lake"][0]
    assert first["events"] > 0 and second["events"] > 0
    assert first["events"] + second["events"] == lake_rows  # nothing read twice
    assert (again["events"], again["sales_rows"], again["quarantined"]) == (0, 0, 0)
    embedded_carts, spark_carts, _, carts_only_in_spark = diffs["abandoned_carts"]
    assert 0 < spark_carts <= embedded_carts and carts_only_in_spark == 0, diffs
    # line numbers differ (the embedded engine counts the file's lines, Kafka each batch's)
    assert diffs["quarantine"][:2] == (len(BAD_MESSAGES),) * 2
    assert second["quarantined"] == len(BAD_MESSAGES)


def test_offsets_are_planned_per_partition_from_the_watermarks(
    messages: list[tuple[bytes, bytes]],
) -> None:
    assert plan_ranges({"0": 5, "1": 7}, {"0": 9, "1": 7, "2": 4}, {2: 1}) == [
        KafkaRange(0, 5, 9),
        KafkaRange(2, 1, 4),
    ]
    with mock_cluster() as address:
        topic = f"events-{uuid.uuid4().hex[:8]}"
        create_mock_topic(address, topic)
        reader = KafkaStreamReader(address, topic, timeout_s=10)
        try:
            assert reader.initialOffset() == {str(p): 0 for p in range(4)}
            produce(address, topic, messages[:500])
            end = reader.latestOffset(reader.initialOffset(), None)
            assert sum(end.values()) == 500
            ranges = reader.partitions(reader.initialOffset(), end)
            assert {r.partition for r in ranges} == {int(p) for p, n in end.items() if n}
            read = [b for r in ranges for b in reader.read(r)]
            beyond = KafkaRange(0, end["0"], end["0"] + 5)  # not produced (yet)
            with pytest.raises(KafkaSourceError, match="partition 0, offsets"):
                list(read_range(address, topic, beyond, timeout_s=1))
        finally:
            reader.stop()
    assert sum(b.num_rows for b in read) == 500
    assert sorted(v.as_py() for b in read for v in b.column("value")) == sorted(
        value for _, value in messages[:500]
    )
    for batch, task in zip(read, ranges, strict=True):  # 500 rows: one batch per partition
        assert batch.column("offset").to_pylist() == list(range(task.start, task.end))
