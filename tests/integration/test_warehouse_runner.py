"""The warehouse runner: incremental rebuilds, exclusions switch, shared connections, failures."""

from __future__ import annotations

import shutil
import threading
from datetime import date
from pathlib import Path

import pytest

from cartpulse import duck
from cartpulse.generate import generate_dataset
from cartpulse.ingest import ingest_files
from cartpulse.settings import Settings
from cartpulse.warehouse import NodeProgress, run_models
from cartpulse.warehouse.project import SOURCE_PROJECT_DIR
from cartpulse.warehouse.runs import ModelsRun, latest_runs
from cartpulse.warehouse.schedule import run_periodically, start_schedule
from tests import warehouse_oracle as oracle
from tests.warehouse_homes import Home, flag_bots, generated_home


def fingerprints(home: Home) -> dict[date, str]:
    """lake_fingerprint per day, as int_daily_activity last built it."""
    rows = home.rows("SELECT event_date, lake_fingerprint FROM intermediate.int_daily_activity")
    return {r["event_date"]: r["lake_fingerprint"] for r in rows}


def assert_daily_kpis_match_lake(home: Home) -> None:
    """mart_daily_kpis equals the oracle over the lake as it is now."""
    events = oracle.lake_events(home.settings.events_dir, home.bots)
    expected = oracle.daily_kpis(events, oracle.sessions(events))
    got = {r.pop("event_date"): r for r in home.rows("SELECT * FROM mart_daily_kpis")}
    assert got.keys() == expected.keys()
    for day, row in expected.items():
        assert got[day]["unique_visitors"] == row["unique_visitors"], day
        assert got[day]["purchases"] == row["purchases"], day
        assert got[day]["revenue"] == pytest.approx(row["revenue"]), day


def test_incremental_run_rebuilds_only_changed_days(tmp_path: Path) -> None:
    home = generated_home(tmp_path, events=8_000, days=3)
    progress: list[NodeProgress] = []
    first = run_models(home.settings, on_progress=progress.append)
    assert first.ok, first.message
    assert progress[-1].done == progress[-1].total == first.models_ok + first.tests_passed
    before = fingerprints(home)

    # a later file: one more day, and late events for the last existing day
    generate_dataset(tmp_path / "more", events=4_000, days=2, seed=5, start=max(before))
    ingest_files(home.settings, [tmp_path / "more" / "events.csv.gz"])
    second = run_models(home.settings)
    assert second.ok, second.message
    after = fingerprints(home)
    changed = {day for day in after if after[day] != before.get(day)}
    assert changed == {max(before), max(after)}
    assert (max(after) - max(before)).days == 1
    assert all(after[day] == before[day] for day in before if day not in changed)
    assert_daily_kpis_match_lake(home)

    # a newly flagged bot changes every day's numbers: every day is rebuilt
    busiest = home.rows(
        "SELECT user_id FROM mart_sessions GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
    )[0]["user_id"]
    flag_bots(home.settings, {busiest})
    home.bots.add(busiest)
    third = run_models(home.settings)
    assert third.ok, third.message
    assert all(fingerprints(home)[day] != after[day] for day in after)
    assert_daily_kpis_match_lake(home)


def test_bots_counted_but_kept_when_exclusion_is_off(tmp_path: Path) -> None:
    home = generated_home(tmp_path, days=2)
    settings = Settings(home=home.settings.home, fsync="never", warehouse={"exclude_bots": False})
    run = run_models(settings)
    assert run.ok, run.message
    bots = home.rows("SELECT * FROM mart_exclusions WHERE exclusion = 'bot'")[0]
    assert bots["excluded"] is False and bots["excluded_rows"] > 0
    lake_rows = len(oracle.lake_events(settings.events_dir, set()))
    assert home.rows("SELECT sum(events) AS n FROM intermediate.int_daily_activity")[0]["n"] == (
        lake_rows
    )


def test_runs_while_the_same_process_holds_the_warehouse_open(tmp_path: Path) -> None:
    home = generated_home(tmp_path, events=5_000, days=2)
    held = duck.connect(home.settings.warehouse_path)
    try:
        outcome: list[object] = []
        worker = threading.Thread(target=lambda: outcome.append(run_models(home.settings)))
        worker.start()
        worker.join(timeout=240)
        (run,) = outcome
        assert run.ok, run.message  # type: ignore[attr-defined]
        days = held.sql("SELECT count(*) FROM mart_daily_kpis").fetchall()[0][0]
        assert days == 2
        status = held.sql("SELECT status FROM models_runs").fetchall()
        assert status == [("success",)]
    finally:
        held.close()


def test_empty_lake_is_an_error_and_is_recorded(home: Path) -> None:
    settings = Settings(home=home, fsync="never")
    run = run_models(settings)
    assert run.status == "error" and not run.ok
    assert "no events yet" in (run.message or "")
    assert [r["status"] for r in latest_runs(settings.warehouse_path)] == ["error"]


def test_a_failing_data_test_fails_the_run(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(SOURCE_PROJECT_DIR, project)
    (project / "tests" / "assert_no_purchases.sql").write_text(
        "select * from {{ ref('mart_daily_kpis') }} where purchases > 0\n", encoding="utf-8"
    )
    home = generated_home(tmp_path, events=5_000, days=2)
    settings = Settings(home=home.settings.home, warehouse={"project_dir": project})
    run = run_models(settings)
    assert run.status == "failed"
    assert run.tests_failed == 1 and run.models_failed == 0 and run.models_ok > 0
    assert "assert_no_purchases" in (run.message or "")
    latest = latest_runs(settings.warehouse_path)[0]
    assert (latest["status"], latest["tests_failed"]) == ("failed", 1)


def test_schedule_rebuilds_until_stopped_and_survives_failures(tmp_path: Path) -> None:
    empty = Settings(home=tmp_path / "empty", fsync="never")
    empty.home.mkdir()
    stop = threading.Event()
    seen: list[str] = []

    def on_run(run: ModelsRun) -> None:
        seen.append(run.status)
        if len(seen) == 2:
            stop.set()

    run_periodically(empty, stop, on_run, interval_s=0.01)
    assert seen == ["error", "error"]
    assert [r["status"] for r in latest_runs(empty.warehouse_path)] == ["error", "error"]

    home = generated_home(tmp_path, events=5_000, days=2)
    thread, stop = start_schedule(home.settings)
    try:
        for _ in range(600):
            runs = latest_runs(home.settings.warehouse_path)
            if runs and runs[0]["status"] == "success":
                break
            thread.join(timeout=0.2)
        assert latest_runs(home.settings.warehouse_path)[0]["status"] == "success"
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not thread.is_alive()
