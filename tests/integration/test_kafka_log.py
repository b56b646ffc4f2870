"""The Kafka event log against a real Kafka-protocol broker: contract, keys, partitions, engine."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, TopicPartition

from cartpulse import duck
from cartpulse.engine.replay import replay_files
from cartpulse.log import OffsetOutOfRangeError
from cartpulse.log.kafka import KafkaEventLog, KafkaLogError
from cartpulse.schema import EVENT_SCHEMA
from cartpulse.settings import KafkaSettings, Settings
from tests.kafka_broker import create_mock_topic, mock_cluster, running_broker

REAL_FILE = "multicategory_2019-10_head.csv"


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    """A real Kafka-protocol broker (Tansu)."""
    with running_broker() as address:
        yield address


@pytest.fixture(scope="module")
def mock() -> Iterator[str]:
    """librdkafka's mock cluster (topics get 4 partitions)."""
    with mock_cluster() as address:
        yield address


def kafka(broker: str, **extra: object) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=broker, topic=f"events-{uuid.uuid4().hex[:8]}", timeout_s=10, **extra
    )


def mock_topic(mock: str) -> KafkaSettings:
    settings = kafka(mock, partitions=4)
    create_mock_topic(mock, settings.topic)
    return settings


def of_users(events: pa.Table, users: set[int]) -> pa.Table:
    return events.filter(pa.array([u in users for u in events.column("user_id").to_pylist()]))


@pytest.fixture(scope="module")
def embedded_home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The real rows replayed on the embedded log: the reference outputs and clean events."""
    from tests.conftest import REAL_DATA, require_data

    require_data(REAL_DATA / REAL_FILE)
    settings = Settings(home=tmp_path_factory.mktemp("embedded") / "home", fsync="never")
    replay_files(settings, [REAL_DATA / REAL_FILE])
    return settings


@pytest.fixture(scope="module")
def events(embedded_home: Settings) -> pa.Table:
    lake = ds.dataset(embedded_home.events_dir, format="parquet", partitioning="hive")
    table = lake.to_table(columns=EVENT_SCHEMA.names).cast(EVENT_SCHEMA)
    return table.sort_by([("event_time", "ascending"), ("user_id", "ascending")])


def test_each_partition_reads_back_its_users_events_at_contiguous_offsets(
    mock: str, events: pa.Table
) -> None:
    settings = mock_topic(mock)
    with KafkaEventLog(settings) as writer:
        first = writer.append(events.slice(0, 1000))
        rest = writer.append(events.slice(1000))
        end0 = writer.end_offset()
    parts = []
    for p in range(4):
        with KafkaEventLog(settings.model_copy(update={"partition": p})) as log:
            assert log.start_offset() == 0
            parts.append(log.read(0, events.num_rows))
            if p == 0:
                middle = log.read(100, 50)
                backwards = log.read(10, 5)
                with pytest.raises(OffsetOutOfRangeError):
                    log.read(end0 + 1, 10)
                assert log.read(end0, 10).num_rows == 0
    assert (first.first_offset, rest.next_offset) == (
        0,
        end0,
    ) and first.next_offset == rest.first_offset
    users = [set(s.table.column("user_id").to_pylist()) for s in parts]
    assert sum(s.num_rows for s in parts) == events.num_rows and all(users)
    assert all(not users[i] & users[j] for i in range(4) for j in range(i + 1, 4))
    for p, piece in enumerate(parts):  # each partition keeps the append order of its users
        assert piece.start == 0 and piece.table.equals(of_users(events, users[p]))
    assert parts[0].num_rows == end0
    assert middle.start == 100 and middle.table.equals(parts[0].table.slice(100, 50))
    assert backwards.table.equals(parts[0].table.slice(10, 5))


def test_waiting_sees_new_events_and_commits_go_to_kafka_groups(
    mock: str, events: pa.Table
) -> None:
    settings = mock_topic(mock)
    with KafkaEventLog(settings) as log:
        assert log.committed("engine") is None and log.end_offset() == 0
        assert not log.wait_for(0, 0.1)
        appended = log.append(events.slice(0, 200))
        assert log.wait_for(appended.last_offset, 5) and not log.wait_for(appended.next_offset, 0.1)
        log.commit("engine", 7)
        assert log.committed("engine") == 7 and log.consumers() == {"engine": 7}
        assert log.apply_retention(None, 0, force=True) == 0 and log.start_offset() == 0


def test_on_a_real_broker_messages_are_keyed_by_user_and_a_user_stays_in_one_partition(
    broker: str, events: pa.Table
) -> None:
    settings = kafka(broker, partitions=3)
    with KafkaEventLog(settings) as log:
        log.append(events)
        log.commit("engine", 5)
        assert log.committed("engine") == 5
    consumer = Consumer(
        {"bootstrap.servers": broker, "group.id": "inspect", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(settings.topic, p, 0) for p in range(3)])
    seen: dict[bytes, set[int]] = {}
    offsets: dict[int, list[int]] = {}
    deadline = time.monotonic() + 20
    while sum(map(len, offsets.values())) < events.num_rows and time.monotonic() < deadline:
        for msg in consumer.consume(10_000, timeout=1):
            assert msg.error() is None
            partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
            seen.setdefault(msg.key() or b"", set()).add(partition)
            offsets.setdefault(partition, []).append(offset)
    consumer.close()
    users = set(events.column("user_id").to_pylist())
    assert set(seen) == {str(u).encode() for u in users}  # every event arrived once
    assert all(len(parts) == 1 for parts in seen.values()) and len(offsets) == 3
    assert all(o == list(range(len(o))) for o in offsets.values())  # contiguous, no duplicate


def test_unreachable_brokers_and_missing_partitions_are_clear_errors(broker: str) -> None:
    with pytest.raises(KafkaLogError, match=r"log\.kafka\.bootstrap_servers"):
        KafkaEventLog(KafkaSettings(bootstrap_servers="127.0.0.1:1", timeout_s=1))
    settings = kafka(broker, partitions=2)
    KafkaEventLog(settings).close()
    with pytest.raises(KafkaLogError, match="has 2 partitions"):
        KafkaEventLog(settings.model_copy(update={"partition": 4}))


def test_replay_on_kafka_gives_the_outputs_of_the_embedded_log_for_the_same_events(
    mock: str, tmp_path: Path
) -> None:
    from tests.conftest import REAL_DATA, require_data

    require_data(REAL_DATA / REAL_FILE)
    settings = Settings(
        home=tmp_path / "kafka", fsync="never", log={"backend": "kafka", "kafka": mock_topic(mock)}
    )
    report = replay_files(settings, [REAL_DATA / REAL_FILE])
    # This instance processed partition 0: replay exactly those events on the embedded log.
    mine = ds.dataset(settings.events_dir, format="parquet", partitioning="hive").to_table(
        columns=EVENT_SCHEMA.names
    )
    assert 0 < report.events == mine.num_rows
    pq.write_table(mine.sort_by("event_time"), tmp_path / "mine.parquet")
    reference = Settings(home=tmp_path / "embedded", fsync="never")
    replay_files(reference, [tmp_path / "mine.parquet"])
    sql = [
        "SELECT * EXCLUDE (expired_at) FROM abandoned_carts ORDER BY ALL",
        "SELECT * FROM product_sales_minute ORDER BY ALL",
    ]
    results = []
    for home in (reference, settings):
        con = duck.connect(home.warehouse_path, read_only=True)
        try:
            results.append([con.sql(q).fetchall() for q in sql])
        finally:
            con.close()
    assert results[0] == results[1] and results[1][0] and results[1][1]


def test_serve_on_kafka_acknowledges_after_the_brokers_and_the_engine_reads_its_partition(
    mock: str, tmp_path: Path
) -> None:
    from tests.conftest import REAL_DATA, require_data
    from tests.integration.test_serve_http import ndjson, real_events
    from tests.serve_process import Serve, post_events

    settings = mock_topic(mock)
    env = {
        "CARTPULSE_LOG__BACKEND": "kafka",
        "CARTPULSE_LOG__KAFKA__BOOTSTRAP_SERVERS": mock,
        "CARTPULSE_LOG__KAFKA__TOPIC": settings.topic,
    }
    rows = real_events(require_data(REAL_DATA))
    home = tmp_path / "home"
    with Serve(home, env) as server:
        assert post_events(server.url, ndjson(rows[:5000])).status == 202
        assert post_events(server.url, ndjson(rows[5000:])).status == 202
    with KafkaEventLog(settings) as log:
        mine = log.read(0, len(rows)).table
    total = mine.num_rows
    for p in (1, 2, 3):
        with KafkaEventLog(settings.model_copy(update={"partition": p})) as other:
            total += other.end_offset()
    con = duck.connect(home / "warehouse.duckdb", read_only=True)
    try:
        offset = con.sql("SELECT log_offset FROM engine.checkpoint").fetchall()
        accepted = con.sql("SELECT sum(rows) FROM dq_counts WHERE reason = 'accepted'").fetchall()
    finally:
        con.close()
    lake = ds.dataset(home / "lake" / "events", format="parquet", partitioning="hive")
    assert 0 < mine.num_rows < total <= len(rows)
    assert offset == [(mine.num_rows,)] and lake.count_rows() == mine.num_rows
    assert accepted == [(mine.num_rows,)]
