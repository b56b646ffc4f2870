"""`cartpulse bench` scenarios run end to end (small data; no timing asserted)."""

from __future__ import annotations

from pathlib import Path

from cartpulse.bench.replay import targets_met
from tests.conftest import run_cli


def test_collector_bench_reports_throughput_latency_and_soak_memory(tmp_path: Path) -> None:
    result = run_cli(
        "bench",
        "--events",
        "20000",
        "--scenario",
        "collector",
        "--soak-s",
        "3",
        "--work",
        str(tmp_path / "bench"),
        "--json",
        timeout=600,
    )
    assert result.code == 0, result.stderr
    report = result.json()["results"][0]
    assert report["scenario"] == "collector"
    assert report["rows"] == 20_000
    assert 15_000 < report["accepted"] <= 20_000  # the generated data holds some duplicates
    assert report["ack_p99_ms"] >= report["ack_p50_ms"] > 0
    soak = report["soak"]
    assert soak["rows"] > 0 and soak["rss_max_mib"] >= soak["rss_first_mib"] > 0


def test_replay_bench_reports_throughput_memory_and_state_size(tmp_path: Path) -> None:
    result = run_cli(
        "bench",
        "--events",
        "20000",
        "--scenario",
        "replay",
        "--work",
        str(tmp_path / "bench"),
        "--json",
        timeout=600,
    )
    assert result.code == 0, result.stderr
    report = result.json()["results"][0]
    assert report["scenario"] == "replay"
    assert report["events"] == 20_000
    assert report["abandoned_carts"] > 0 and report["micro_batches"] >= 1
    assert report["peak_rss_mib"] >= report["peak_anon_mib"] > 0
    assert 0 < report["bytes_per_open_session"] <= 1_000
    # target_met is the verdict on all three targets, not on throughput alone
    assert report["target_met"] == targets_met(
        report["events_per_s"], report["peak_rss_mib"], report["bytes_per_open_session"]
    )
