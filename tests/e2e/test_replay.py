"""`cartpulse replay` end to end: oracle equality, crash safety, speed independence."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from cartpulse.generate import generate_dataset
from cartpulse.schema import Reason
from tests import oracle
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One million generated events (3 days), shared by the tests of this module."""
    out = tmp_path_factory.mktemp("gen")
    generate_dataset(out, events=1_000_000, days=3, seed=11)
    return out / "events.csv.gz"


def lake_events(home: Path) -> pa.Table:
    """Clean events from the lake, with `_offset` in arrival order (file, then row)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con.sql(
        f"""
        SELECT * EXCLUDE (filename, file_row_number, event_date),
               row_number() OVER (ORDER BY event_time, filename, file_row_number) - 1 AS _offset
        FROM read_parquet('{home}/lake/events/*/*.parquet', filename = true,
                          file_row_number = true, hive_partitioning = true)
        """
    ).to_arrow_table()


def warehouse(home: Path, sql: str) -> list[dict[str, Any]]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    rows: list[dict[str, Any]] = con.sql(sql).to_arrow_table().to_pylist()
    con.close()
    return rows


def carts(home: Path) -> list[dict[str, Any]]:
    return warehouse(home, "SELECT * FROM abandoned_carts ORDER BY user_session, session_start")


def sales(home: Path) -> list[dict[str, Any]]:
    return warehouse(home, "SELECT * FROM product_sales_minute ORDER BY window_start, product_id")


def assert_matches_oracle(home: Path) -> int:
    events = lake_events(home)
    want, got = oracle.abandoned_carts(events), carts(home)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert (g["user_session"], g["user_id"], g["session_start"], g["session_end"]) == (
            w["user_session"],
            w["user_id"],
            w["session_start"],
            w["session_end"],
        )
        assert (g["expired_at"], g["item_count"]) == (w["expired_at"], w["item_count"])
        assert math.isclose(g["cart_value"], w["cart_value"], rel_tol=1e-9)
        assert [(i["product_id"], i["count"], i["price"], i["brand"]) for i in g["items"]] == [
            (i["product_id"], i["count"], i["price"], i["brand"]) for i in w["items"]
        ]
    want_sales, got_sales = oracle.product_sales_minute(events), sales(home)
    assert [(s["window_start"], s["product_id"], s["purchases"]) for s in got_sales] == [
        (s["window_start"], s["product_id"], s["purchases"]) for s in want_sales
    ]
    assert all(
        math.isclose(g["revenue"], w["revenue"], rel_tol=1e-9)
        for g, w in zip(got_sales, want_sales, strict=True)
    )
    return len(got)


@pytest.mark.parametrize(
    "name",
    [
        "multicategory_2019-10_head.csv",
        "cosmetics_9col_rows.csv",
        "cosmetics_6col_2019_oct_head.csv",
        "cosmetics_6col_2019_nov_head.csv",
        "cosmetics_6col_2019_dec_head.csv",
    ],
)
def test_real_rows_replay_matches_the_oracle(real_dir: Path, home: Path, name: str) -> None:
    """Each real file is one stream in time order (together they are different shops)."""
    res = run_cli("replay", str(real_dir / name), "--json", home=home)
    assert res.code == 0, res.stderr
    report = res.json()
    assert report["read"] == report["clean"] + report["quarantined"] + report["duplicates"]
    assert report["events"] == report["clean"] == lake_events(home).num_rows
    assert report["abandoned_carts"] == assert_matches_oracle(home)
    if name.startswith("multicategory"):
        assert report["abandoned_carts"] > 50
    sql = "SELECT reason, sum(rows)::BIGINT AS rows FROM dq_counts GROUP BY 1"
    dq = {r["reason"]: r["rows"] for r in warehouse(home, sql)}
    assert dq["accepted"] == report["clean"]
    assert dq.get("duplicate", 0) == report["duplicates"]


@pytest.mark.slow
def test_generated_million_events_match_the_oracle(generated: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    res = run_cli("replay", str(generated), "--json", home=home)
    assert res.code == 0, res.stderr
    report = res.json()
    assert report["read"] == 1_000_000
    assert report["abandoned_carts"] == assert_matches_oracle(home) > 10_000
    again = run_cli("replay", str(generated), "--json", home=home).json()
    assert again["skipped_files"] == [str(generated)] and again["events"] == 0
    assert len(carts(home)) == report["abandoned_carts"]


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_gives_identical_outputs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate_dataset(data, events=300_000, days=2, seed=5)
    source = data / "events.csv.gz"
    reference = tmp_path / "reference"
    assert run_cli("replay", str(source), "--json", home=reference).code == 0

    crashed = tmp_path / "crashed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTPULSE_")}
    env |= {"CARTPULSE_HOME": str(crashed), "CARTPULSE_INGEST__BATCH_ROWS": "50000"}
    # Paced at 8000x, the 2 days of events take ~22 s, so every kill lands mid-replay
    # however much earlier runs already did; the last run finishes at full speed.
    rng = random.Random(3)
    kills = 0
    for _ in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-m", "cartpulse", "replay", str(source), "--speed", "8000"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.5, 1.8))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 10, "the replay finished before most kills; the test proved too little"
    final = run_cli("replay", str(source), "--json", home=crashed)
    assert final.code == 0, final.stderr
    ref_events, got_events = lake_events(reference), lake_events(crashed)
    assert got_events.num_rows == ref_events.num_rows
    assert got_events.sort_by("_offset").equals(ref_events.sort_by("_offset"))
    assert carts(crashed) == carts(reference)
    assert sales(crashed) == sales(reference)
    # Quarantined rows count in the minute they were ingested (wall clock), which differs
    # between the two homes when their runs straddle a minute: those compare per reason.
    quarantine = ", ".join(f"'{r.value}'" for r in Reason)
    by_event_time = f"SELECT minute, reason, rows FROM dq_counts WHERE reason NOT IN ({quarantine})"
    totals = "SELECT reason, sum(rows)::BIGINT AS rows FROM dq_counts GROUP BY 1"
    for dq in (by_event_time, totals):
        assert warehouse(crashed, dq + " ORDER BY ALL") == warehouse(
            reference, dq + " ORDER BY ALL"
        )


@pytest.mark.slow
def test_speed_max_and_1000x_give_identical_outputs(real_dir: Path, tmp_path: Path) -> None:
    source = real_dir / "multicategory_2019-10_head.csv"  # 2 h 50 min of events: ~10 s at 1000x
    fast, paced = tmp_path / "fast", tmp_path / "paced"
    assert run_cli("replay", str(source), "--json", home=fast).code == 0
    started = time.monotonic()
    res = run_cli("replay", str(source), "--speed", "1000", "--json", home=paced)
    assert res.code == 0, res.stderr
    assert time.monotonic() - started > 8  # it really was paced by event time
    assert carts(paced) == carts(fast)
    assert sales(paced) == sales(fast)
    assert lake_events(paced).equals(lake_events(fast))


def test_bad_speed_and_missing_file_are_clear_errors(home: Path, tmp_path: Path) -> None:
    res = run_cli("replay", str(tmp_path / "none.csv"), home=home)
    assert res.code == 2 and "no such file" in res.stderr
    bad = run_cli("replay", str(tmp_path / "none.csv"), "--speed", "fast", home=home)
    assert bad.code == 2 and "'fast' is not 'max' or a positive number" in bad.stderr
