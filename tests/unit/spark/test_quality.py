"""The Spark runner's quarantine files, lake counts and bot step, without a JVM."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cartpulse.schema import QUARANTINE_SCHEMA
from cartpulse.settings import Settings
from cartpulse.spark.lake import batch_file_prefix
from cartpulse.spark.quality import (
    SparkBots,
    lake_batch_counts,
    quarantine_file_name,
    write_quarantine_batch,
)
from cartpulse.spark.store_sink import StoreSink

T0 = dt.datetime(2019, 10, 1, 23, 59, 30, tzinfo=dt.UTC)


def rejected(n: int, at: dt.datetime, reason: str = "bad_price") -> pa.Table:
    return pa.table(
        {
            "raw": [f"row {i}" for i in range(n)],
            "reason": [reason] * n,
            "detail": [None] * n,
            "source": ["events.csv"] * n,
            "line": list(range(n)),
            "ingested_at": [at] * n,
        },
        schema=QUARANTINE_SCHEMA,
    )


def quarantine_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.glob("*/*.parquet"))


def test_a_redone_batch_replaces_its_quarantine_file_even_on_another_day(tmp_path: Path) -> None:
    counts = write_quarantine_batch(rejected(3, T0), 7, tmp_path, fsync=False)
    assert counts.to_pylist() == [
        {"minute": T0.replace(second=0), "reason": "bad_price", "rows": 3}
    ]
    # the batch is redone after midnight: one file, on the new day, with the new attempt's rows
    later = T0 + dt.timedelta(minutes=1)
    write_quarantine_batch(rejected(2, later), 7, tmp_path, fsync=False)
    name = quarantine_file_name(7)
    assert quarantine_files(tmp_path) == [f"ingest_date=2019-10-02/{name}.parquet"]
    assert pq.read_table(tmp_path / f"ingest_date=2019-10-02/{name}.parquet").num_rows == 2


def test_a_batch_without_rejects_leaves_no_file(tmp_path: Path) -> None:
    write_quarantine_batch(rejected(1, T0), 3, tmp_path, fsync=False)
    assert write_quarantine_batch(rejected(0, T0), 3, tmp_path, fsync=False).num_rows == 0
    assert quarantine_files(tmp_path) == []


def test_lake_counts_read_only_the_batchs_own_files(tmp_path: Path) -> None:
    day = tmp_path / "event_date=2019-10-01"
    day.mkdir()
    times = [T0, T0, T0 + dt.timedelta(seconds=40)]
    events = pa.table(
        {"event_time": pa.array(times, pa.timestamp("us", tz="UTC")), "price": [0.0, 5.0, 1.0]}
    )
    pq.write_table(events, day / f"{batch_file_prefix(4)}0000.parquet")
    pq.write_table(events, day / f"{batch_file_prefix(5)}0000.parquet")
    rows = {
        (r["minute"].minute, r["reason"]): r["rows"]
        for r in lake_batch_counts(tmp_path, 4).to_pylist()
    }
    assert rows == {(59, "accepted"): 2, (0, "accepted"): 1, (59, "zero_price"): 1}
    assert lake_batch_counts(tmp_path, 6).num_rows == 0


def test_bot_step_commits_state_and_alerts_once_per_batch(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    sink = StoreSink(settings)
    bots = SparkBots(settings, sink)
    try:
        # one user viewing 400 products in two minutes: the events-per-minute rule fires
        n = 400
        times = [T0 + dt.timedelta(milliseconds=300 * i) for i in range(n)]
        events = pa.table(
            {
                "event_time": pa.array(times, pa.timestamp("us", tz="UTC")),
                "user_id": [42] * n,
                "user_session": ["s"] * n,
                "event_type": ["view"] * n,
                "product_id": list(range(n)),
            }
        )
        bots.advance(events, 0)
        assert bots.alerts >= 1
        assert sink.load_bots().users.column("user_id").to_pylist() == [42]
        bots.advance(events, 0)  # the same batch again (a restart): nothing more
        alerts = sink.store.query("SELECT user_id, rule FROM bot_alerts")
        assert alerts.num_rows == bots.alerts and set(alerts.column("user_id").to_pylist()) == {42}
    finally:
        sink.close()
