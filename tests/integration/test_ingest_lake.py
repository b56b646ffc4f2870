"""Batch ingest into a real Parquet lake: idempotency, atomic commits, crash safety."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from cartpulse.ingest import IngestError, ingest_files
from cartpulse.settings import load_settings
from tests.conftest import run_cli


def lake_fingerprint(home: Path) -> tuple[int, int]:
    """Row count and an order-independent checksum of every clean event in the lake."""
    files = list((home / "lake" / "events").glob("*/*.parquet"))
    if not files:
        return (0, 0)
    con = duckdb.connect()
    row = con.sql(
        f"SELECT count(*), sum(hash(COLUMNS(*)) % 1000000007) FROM read_parquet({[str(f) for f in files]})"
    ).fetchall()[0]
    return int(row[0]), int(row[1] or 0)


def make_big_csv(real_dir: Path, out: Path, copies: int) -> Path:
    """Repeat the real multi-category rows, shifted 3 h per copy, into one CSV.gz."""
    src = real_dir / "multicategory_2019-10_head.csv"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"""
        COPY (
          SELECT strftime(CAST(replace(event_time, ' UTC', '+00') AS TIMESTAMPTZ) + INTERVAL (3 * c) HOUR,
                          '%Y-%m-%d %H:%M:%S UTC') AS event_time,
                 event_type, product_id, category_id, category_code, brand, price, user_id, user_session
          FROM read_csv('{src}', all_varchar = true), range({copies}) AS r(c)
          ORDER BY c
        ) TO '{out}' (HEADER, COMPRESSION gzip)
        """
    )
    return out


def test_real_files_land_in_date_partitions(real_dir: Path, home: Path) -> None:
    settings = load_settings(home=home)
    report = ingest_files(settings, sorted(real_dir.glob("*.csv")))
    totals = {k: report.total(k) for k in ("read", "clean", "quarantined", "duplicates")}
    assert totals["read"] == 999 * 3 + 20 + 17434
    assert totals["read"] == totals["clean"] + totals["quarantined"] + totals["duplicates"]
    dates = sorted(p.name for p in (home / "lake" / "events").iterdir())
    assert "event_date=2019-10-01" in dates and "event_date=2020-02-06" in dates
    for f in (home / "lake" / "events").glob("*/*.parquet"):
        meta = pq.ParquetFile(f).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
        # event times are nearly unique: stored plain; the repetitive columns by dictionary
        assert not any("DICTIONARY" in e for e in meta.row_group(0).column(0).encodings)
        assert any("DICTIONARY" in e for e in meta.row_group(0).column(1).encodings)
        day = f.parent.name.split("=")[1]
        times = pq.read_table(f).column("event_time").to_pylist()
        assert {t.date().isoformat() for t in times} == {day}
    assert not any((home / "state" / "staging").iterdir())
    assert lake_fingerprint(home)[0] == totals["clean"]


def test_same_content_twice_adds_nothing(real_dir: Path, home: Path, tmp_path: Path) -> None:
    settings = load_settings(home=home)
    path = real_dir / "multicategory_2019-10_head.csv"
    first = ingest_files(settings, [path])
    before = lake_fingerprint(home)
    renamed = tmp_path / "same-content-other-name.csv"
    renamed.write_bytes(path.read_bytes())
    again = ingest_files(settings, [path, renamed])
    assert [f.status for f in again.files] == ["skipped", "skipped"]
    assert again.total("read") == 0
    assert lake_fingerprint(home) == before
    assert first.files[0].clean == before[0]


def test_concurrent_ingest_is_refused(real_dir: Path, home: Path) -> None:
    import fcntl

    settings = load_settings(home=home)
    settings.state_dir.mkdir(parents=True)
    with (settings.state_dir / "ingest.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(IngestError, match="another ingest"):
            ingest_files(settings, [real_dir / "cosmetics_9col_rows.csv"])


def test_duplicates_across_files_are_caught(real_dir: Path, home: Path, tmp_path: Path) -> None:
    """The dedupe state survives between runs: the tail of one file repeated in the next."""
    lines = (real_dir / "multicategory_2019-10_head.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("\n".join([header, *rows[:10_000]]) + "\n")
    b.write_text("\n".join([header, *rows[9_000:]]) + "\n")  # 1,000 rows overlap
    settings = load_settings(home=home)
    ingest_files(settings, [a])
    second = ingest_files(settings, [b])
    in_a = len(set(rows[:10_000]))
    expected_new = len(set(rows[9_000:]) - set(rows[:10_000]))
    assert second.files[0].clean == expected_new
    assert lake_fingerprint(home)[0] == in_a + expected_new


@pytest.mark.slow
def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    real_dir: Path, tmp_path: Path
) -> None:
    big = make_big_csv(real_dir, tmp_path / "big.csv.gz", copies=40)  # ~700k rows
    reference = tmp_path / "reference"
    started = time.monotonic()
    assert run_cli("ingest", str(big), "--json", home=reference).code == 0
    # kill points are drawn within the time an uninterrupted run takes on this machine
    duration = time.monotonic() - started
    expected = lake_fingerprint(reference)

    crashed = tmp_path / "crashed"
    rng = random.Random(7)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTPULSE_")}
    env["CARTPULSE_HOME"] = str(crashed)
    kills = 0
    for _ in range(10):
        proc = subprocess.Popen(
            [sys.executable, "-m", "cartpulse", "ingest", str(big), "--json"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.1, 0.8) * duration)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        count, _ = lake_fingerprint(crashed)
        # After any crash the lake holds nothing of the file or all of it, unless the kill hit
        # the commit itself: then a commit record is there for the next run to roll forward.
        pending = list((crashed / "state" / "commits").glob("*.json"))
        assert count in (0, expected[0]) or pending
    assert kills >= 5, "most kills landed after the ingest finished; the test proved too little"
    final = run_cli("ingest", str(big), "--json", home=crashed)
    assert final.code == 0, final.stderr
    assert lake_fingerprint(crashed) == expected
    assert not any((crashed / "state" / "staging").iterdir())
