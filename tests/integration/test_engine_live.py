"""The engine in live mode: follows appends, expires idle sessions on the processing clock."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

from cartpulse.engine.runner import StreamEngine
from cartpulse.engine.store import ServingStore
from cartpulse.log import open_event_log
from cartpulse.schema import EVENT_SCHEMA
from cartpulse.settings import load_settings


def events(rows: list[tuple[dt.datetime, str, int, str]]) -> pa.Table:
    """(time, type, product, session) → clean events of user 7."""
    n = len(rows)
    return pa.table(
        {
            "event_time": pa.array([r[0] for r in rows], pa.timestamp("us", tz="UTC")),
            "event_type": [r[1] for r in rows],
            "product_id": pa.array([r[2] for r in rows], pa.int64()),
            "category_id": pa.array([None] * n, pa.int64()),
            "category_code": pa.array([None] * n, pa.string()),
            "brand": pa.array(["b"] * n, pa.string()),
            "price": pa.array([2.5] * n, pa.float64()),
            "user_id": pa.array([7] * n, pa.int64()),
            "user_session": pa.array([r[3] for r in rows], pa.string()),
        },
        schema=EVENT_SCHEMA,
    )


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CARTPULSE_ENGINE__ARCHIVE_INTERVAL_S", "1")
    monkeypatch.setenv("CARTPULSE_ENGINE__TICK_MS", "50")
    monkeypatch.setenv("CARTPULSE_SESSION__TIMEOUT_S", "60")
    settings = load_settings(home=tmp_path / "home")
    log = open_event_log(settings, writable=True)
    store = ServingStore(settings.warehouse_path)
    engine = StreamEngine(settings, log, store)
    stop = threading.Event()
    worker = threading.Thread(target=engine.run_live, args=(stop,), daemon=True)
    worker.start()
    yield settings, log, store
    stop.set()
    worker.join(timeout=10)
    engine.close()
    store.close()
    log.close()


def wait_until(predicate, timeout_s: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"not true after {timeout_s} s")


def test_quiet_shop_still_gets_idle_sessions_expired(live) -> None:
    _, log, store = live
    now = dt.datetime.now(dt.UTC)
    # idle for 59 s of a 60 s timeout: expires in ~1 s of processing time, while the watermark
    # (latest event time − 60 s lateness) is far from its expiry
    log.append(
        events([(now - dt.timedelta(seconds=59), "cart", 1, "idle"), (now, "cart", 2, "active")])
    )
    reader = store.con.cursor()  # another thread's connection to the same database

    def carts() -> list[str]:
        return [r[0] for r in reader.execute("SELECT user_session FROM abandoned_carts").fetchall()]

    waited = wait_until(lambda: carts() == ["idle"], 30)
    assert waited > 0.5, "expired before its time"  # 59 s idle of a 60 s timeout
    time.sleep(0.5)
    assert carts() == ["idle"]  # the active session is not expired early


def test_live_events_reach_the_lake_within_the_archive_interval(live) -> None:
    settings, log, _ = live
    log.append(events([(dt.datetime.now(dt.UTC), "view", 1, "s")]))
    wait_until(lambda: any(settings.events_dir.glob("*/*.parquet")), 5)


def test_old_traffic_sent_live_keeps_its_own_timeline(live) -> None:
    """A 2019 file sent through the collector: its sessions are not cut by today's clock."""
    _, log, store = live
    t0 = dt.datetime(2019, 10, 1, 10, 0, tzinfo=dt.UTC)
    log.append(events([(t0, "cart", 1, "old")]))
    time.sleep(0.5)  # several engine ticks between the two parts of the session
    log.append(events([(t0 + dt.timedelta(seconds=40), "cart", 2, "old")]))
    time.sleep(0.3)
    reader = store.con.cursor()
    assert reader.execute("SELECT count(*) FROM abandoned_carts").fetchone() == (0,)
    log.append(events([(t0 + dt.timedelta(hours=2), "view", 3, "later")]))

    def carts() -> list[tuple[str, int]]:
        rows = reader.execute("SELECT user_session, item_count FROM abandoned_carts").fetchall()
        return [(str(s), int(n)) for s, n in rows]

    wait_until(lambda: carts() != [], 10)
    assert carts() == [("old", 2)]


def test_the_store_checkpoints_at_the_configured_wal_size(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    store = ServingStore(settings.warehouse_path, checkpoint_mb=settings.engine.checkpoint_mb)
    try:
        row = store.con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()
        assert row == ("256.0 MiB",)
    finally:
        store.close()
