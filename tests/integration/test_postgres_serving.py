"""The PostgreSQL serving store against the real server: parity, idempotence, crash safety."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cartpulse import duck
from cartpulse.engine.replay import replay_files
from cartpulse.generate import generate_dataset
from cartpulse.settings import Settings
from cartpulse.sinks.postgres import SERVING_TABLES, ServingPublisher, publish_marts
from cartpulse.sinks.postgres.tables import ServingTable
from tests.conftest import REAL_DATA, run_cli
from tests.postgres_db import fresh_database


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A home after replaying the real rows and a small generated dataset with customers."""
    tmp = tmp_path_factory.mktemp("pg-home")
    generate_dataset(tmp / "gen", events=20_000, days=3, seed=5)
    settings = Settings(home=tmp / "home", fsync="never")
    files = [tmp / "gen" / "events.csv.gz"]
    if (REAL_DATA / "multicategory_2019-10_head.csv").is_file():
        files.insert(0, REAL_DATA / "multicategory_2019-10_head.csv")
    replay_files(settings, files, customers_file=tmp / "gen" / "customers.csv")
    return settings


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_database() as value:
        yield value


def duck_rows(settings: Settings, t: ServingTable) -> list[dict[str, Any]]:
    con = duck.connect(settings.warehouse_path, read_only=True)
    try:
        rows = con.sql(f"SELECT {t.select_list()} FROM {t.name}").to_arrow_table().to_pylist()
    finally:
        con.close()
    return sorted((_normal(r, t) for r in rows), key=lambda r: [str(r[k]) for k in t.keys])


def pg_rows(dsn: str, t: ServingTable) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as con, con.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute(f"SELECT * FROM {t.name}").fetchall()
    for r in rows:
        del r["_cartpulse_hash"]
    return sorted((_normal(r, t) for r in rows), key=lambda r: [str(r[k]) for k in t.keys])


def _normal(row: dict[str, Any], t: ServingTable) -> dict[str, Any]:
    for col in t.json_columns:
        if isinstance(row[col], str):
            row[col] = json.loads(row[col])
    return row


def copy_home(replayed: Settings, tmp_path: Path) -> Settings:
    """A new home holding a copy of the replayed warehouse."""
    settings = Settings(home=tmp_path / "home", fsync="never")
    settings.home.mkdir()
    settings.warehouse_path.write_bytes(replayed.warehouse_path.read_bytes())
    return settings


def assert_parity(settings: Settings, dsn: str) -> dict[str, int]:
    sizes = {}
    for t in SERVING_TABLES:
        expected = duck_rows(settings, t)
        assert pg_rows(dsn, t) == expected, t.name
        sizes[t.name] = len(expected)
    return sizes


def test_every_serving_table_equals_duckdb_row_for_row(replayed: Settings, dsn: str) -> None:
    publisher = ServingPublisher(dsn)
    con = duck.connect(replayed.warehouse_path, read_only=True)
    try:
        first = publisher.publish(con)
        again = publisher.publish(con)
    finally:
        con.close()
        publisher.close()
    sizes = assert_parity(replayed, dsn)
    assert all(sizes[name] > 0 for name in ("abandoned_carts", "product_sales_minute", "dq_counts"))
    assert sizes["retarget_messages"] > 0 and sizes["bot_alerts"] > 0
    assert first.upserted == sizes and again.changed == 0
    with psycopg.connect(dsn) as pg:
        total = pg.execute(
            "SELECT sum(purchases), round(sum(revenue)::numeric, 2) FROM product_sales_total"
        ).fetchone()
        synced: dict[str, int] = dict(
            pg.execute("SELECT table_name, row_count FROM cartpulse_sync").fetchall()
        )
    assert synced == sizes
    assert total is not None and total[0] > 0


def test_updates_and_deletes_follow_and_a_restart_rereads_what_was_published(
    replayed: Settings, tmp_path: Path, dsn: str
) -> None:
    settings = copy_home(replayed, tmp_path)
    con = duck.connect(settings.warehouse_path)
    try:
        ServingPublisher(dsn).publish(con)
        con.execute(
            "UPDATE retarget_outbox SET status = 'sent', sent_at = TIMESTAMPTZ '2026-01-02 03:04:05+00' "
            "WHERE message_id IN (SELECT message_id FROM retarget_outbox LIMIT 3)"
        )
        con.execute("DELETE FROM dq_counts WHERE rowid IN (SELECT rowid FROM dq_counts LIMIT 2)")
        con.execute("UPDATE product_sales_minute SET revenue = revenue + 1 WHERE rowid < 5")
        restarted = ServingPublisher(dsn)  # a new process: knows only what PostgreSQL holds
        report = restarted.publish(con)
        restarted.close()
    finally:
        con.close()
    assert report.upserted["retarget_messages"] == 3 and report.deleted["dq_counts"] == 2
    assert report.upserted["product_sales_minute"] == 5
    assert report.upserted["abandoned_carts"] == 0
    assert_parity(settings, dsn)


_PUBLISH_FOREVER = textwrap.dedent(
    """
    import sys
    from cartpulse import duck
    from cartpulse.sinks.postgres import ServingPublisher
    con = duck.connect(sys.argv[1], read_only=True)
    publisher = ServingPublisher(sys.argv[2])
    print("ready", flush=True)
    while True:
        publisher.reset()  # each round re-reads PostgreSQL, as after a restart
        publisher.publish(con)
        print("published", flush=True)
    """
)


def test_sigkill_during_publishing_then_restart_gives_equal_tables(
    replayed: Settings, tmp_path: Path, dsn: str
) -> None:
    settings = copy_home(replayed, tmp_path)
    con = duck.connect(settings.warehouse_path)
    try:  # a big table makes every publish long enough to be killed in the middle
        con.execute(
            "INSERT INTO product_sales_minute SELECT TIMESTAMPTZ '2030-01-01' + to_minutes(i), "
            "i % 977, 1 + i % 3, (i % 1000) / 7.0 FROM range(120000) t(i)"
        )
    finally:
        con.close()
    script = tmp_path / "publish.py"
    script.write_text(_PUBLISH_FOREVER, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    kills, mid = 0, 0
    for delay_s in (0.3, 0.8, 1.2, 1.6):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(settings.warehouse_path), dsn],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(delay_s)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        with psycopg.connect(dsn) as pg:
            exists = pg.execute("SELECT to_regclass('cartpulse_sync') IS NOT NULL").fetchone()
            row = (
                pg.execute("SELECT count(*) FROM cartpulse_sync").fetchone()
                if exists and exists[0]
                else (0,)
            )
        mid += row is not None and row[0] < len(SERVING_TABLES)
    assert kills == 4
    publisher = ServingPublisher(dsn)
    con = duck.connect(settings.warehouse_path, read_only=True)
    try:
        report = publisher.publish(con)
    finally:
        con.close()
        publisher.close()
    assert mid >= 1 or report.changed > 0, "no kill landed before publishing finished"
    sizes = assert_parity(settings, dsn)
    with psycopg.connect(dsn) as pg:
        keys = pg.execute(
            "SELECT count(*), count(DISTINCT (window_start, product_id)) FROM product_sales_minute"
        ).fetchone()
    assert keys == (sizes["product_sales_minute"], sizes["product_sales_minute"])


def test_marts_are_replaced_when_they_change_and_left_alone_otherwise(
    tmp_path: Path, dsn: str
) -> None:
    path = tmp_path / "warehouse.duckdb"
    con = duck.connect(path)
    try:
        con.execute(
            "CREATE TABLE mart_daily_kpis AS SELECT DATE '2019-10-01' + i::INTEGER AS event_date, "
            "i * 10 AS visitors, (i / 3.0)::DECIMAL(12, 2) AS revenue_amount, "
            "i / 7 AS conversion, CASE WHEN i % 2 = 0 THEN 'even' END AS label, "
            "[i, i + 1] AS ids, TIMESTAMPTZ '2019-10-01 00:00:00+00' + to_hours(i) AS at "
            "FROM range(50) t(i)"
        )
        con.execute("CREATE TABLE mart_rfm AS SELECT 1::BIGINT AS user_id, 'champions' AS segment")
        con.execute("CREATE TABLE not_a_mart AS SELECT 1 AS x")
        first = publish_marts(con, dsn)
        second = publish_marts(con, dsn)
        con.execute("UPDATE mart_rfm SET segment = 'at risk'")
        third = publish_marts(con, dsn)
        expected = con.sql("SELECT * FROM mart_daily_kpis ORDER BY event_date").fetchall()
    finally:
        con.close()
    assert first.published == {"mart_daily_kpis": 50, "mart_rfm": 1}
    assert sorted(second.unchanged) == ["mart_daily_kpis", "mart_rfm"] and not second.published
    assert third.published == {"mart_rfm": 1} and third.unchanged == ["mart_daily_kpis"]
    with psycopg.connect(dsn) as pg:
        got = pg.execute("SELECT * FROM mart_daily_kpis ORDER BY event_date").fetchall()
        segment = pg.execute("SELECT segment FROM mart_rfm").fetchone()
        other = pg.execute("SELECT to_regclass('not_a_mart')").fetchone()
    assert got == [(*r[:5], list(r[5]), r[6]) for r in expected]
    assert segment == ("at risk",) and other == (None,)
    assert isinstance(got[0][6], dt.datetime) and got[0][6].tzinfo is not None


def test_cli_serving_sync_publishes_then_finds_nothing_new(
    replayed: Settings, tmp_path: Path, dsn: str
) -> None:
    home = copy_home(replayed, tmp_path).home
    env = {"CARTPULSE_SERVING__POSTGRES_DSN": dsn}
    first = run_cli("serving", "sync", "--json", home=home, extra_env=env)
    assert first.code == 0, first.stderr
    again = run_cli("serving", "sync", "--no-marts", "--json", home=home, extra_env=env).json()
    assert first.json()["tables"]["upserted"]["abandoned_carts"] > 0
    assert sum(again["tables"]["upserted"].values()) == 0 and "marts" not in again
    missing = run_cli("serving", "sync", home=home)
    assert missing.code == 2 and "serving.postgres_dsn" in missing.stderr
    down = run_cli(
        "serving",
        "sync",
        home=home,
        extra_env={"CARTPULSE_SERVING__POSTGRES_DSN": "postgresql://u:hunter2@127.0.0.1:1/x"},
    )
    assert down.code == 2 and "cannot connect to PostgreSQL" in down.stderr
    assert "hunter2" not in down.stderr
