"""`cartpulse models run` as a user runs it: a fresh home, `dbt build` passing, failures shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli


def test_models_run_after_replay_builds_marts_that_agree_with_the_stream(
    real_dir: Path, home: Path
) -> None:
    replay = run_cli(
        "replay", str(real_dir / "multicategory_2019-10_head.csv"), "--json", home=home
    )
    assert replay.code == 0, replay.stderr

    run = run_cli("models", "run", "--json", home=home)
    assert run.code == 0, run.stderr
    report = run.json()
    assert report["status"] == "success"
    assert report["models_failed"] == report["tests_failed"] == 0
    assert report["models_ok"] >= 18 and report["tests_passed"] >= 70

    # the batch sessions find the stream engine's abandoned carts, with the same value
    sql = (
        "SELECT user_session, session_start, round(cart_value, 6) AS value FROM abandoned_carts "
        "{op} SELECT user_session, session_start, round(cart_value_amount, 6) FROM mart_sessions "
        "WHERE is_abandoned"
    )
    for op in ("EXCEPT", "INTERSECT"):
        rows = run_cli("query", sql.format(op=op), "--json", home=home)
        assert rows.code == 0, rows.stderr
        if op == "EXCEPT":
            assert rows.json() == []
        else:
            assert len(rows.json()) > 0
    marts = run_cli(
        "query", "SELECT count(*) AS n FROM mart_daily_kpis WHERE revenue > 0", "--json", home=home
    )
    assert marts.json()[0]["n"] > 0
    runs = run_cli("query", "SELECT status FROM models_runs", "--json", home=home).json()
    assert runs == [{"status": "success"}]


def test_models_run_on_an_empty_home_says_what_to_do(home: Path) -> None:
    run = run_cli("models", "run", home=home)
    assert run.code == 2
    assert run.stderr.startswith("error: the lake at")
    assert "run `cartpulse ingest FILE`" in " ".join(run.stderr.split())
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("args", [("models", "--help"), ("models", "run", "--help")])
def test_models_help_teaches(args: tuple[str, ...]) -> None:
    run = run_cli(*args)
    assert run.code == 0
    assert "mart" in run.stdout
