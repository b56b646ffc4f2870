"""Marts inside `serve`: `cartpulse models run` is built by the running serve, reported in /metrics."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import run_cli
from tests.serve_process import WRITE_KEY, Serve


def test_models_run_while_serve_owns_the_warehouse(tmp_path: Path, real_dir: Path) -> None:
    files = [str(real_dir / "multicategory_2019-10_head.csv")]
    with Serve(tmp_path / "home", {"CARTPULSE_ENGINE__ARCHIVE_INTERVAL_S": "1"}) as server:
        sent = run_cli("replay", *files, "--to", server.url, "--write-key", WRITE_KEY, "--json")
        assert sent.code == 0, sent.stderr
        accepted = sent.json()["accepted"]

        def lake_rows() -> int:
            r = run_cli("query", "SELECT count(*) AS n FROM events", "--json", home=server.home)
            return int(r.json()[0]["n"])

        deadline = time.monotonic() + 60
        while lake_rows() < accepted and time.monotonic() < deadline:
            time.sleep(0.5)
        assert lake_rows() == accepted

        built = run_cli("models", "run", "--json", home=server.home, timeout=600)
        assert built.code == 0, built.stderr + built.stdout
        assert built.json()["status"] == "success"
        revenue = run_cli(
            "query",
            "SELECT (SELECT round(sum(revenue), 2) FROM mart_daily_kpis) AS mart, "
            "(SELECT round(sum(price), 2) FROM events WHERE event_type = 'purchase') AS lake",
            "--json",
            home=server.home,
        ).json()[0]
        assert revenue["mart"] == revenue["lake"] > 0
        metrics = server.get("/metrics").body.decode()
        assert 'cartpulse_models_runs_total{status="success"} 1.0' in metrics
        assert "cartpulse_models_last_run_ok 1.0" in metrics
