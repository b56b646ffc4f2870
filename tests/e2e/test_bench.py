"""`cartpulse bench` scenarios run end to end (small data; no timing asserted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cartpulse.bench.replay import targets_met
from tests.conftest import run_cli


def bench(tmp_path: Path, scenario: str, *options: str) -> dict[str, Any]:
    """Run one scenario on 20,000 generated events; its JSON result."""
    result = run_cli(
        "bench",
        *("--events", "20000", "--scenario", scenario, *options),
        *("--work", str(tmp_path / "bench"), "--json"),
        timeout=600,
    )
    assert result.code == 0, result.stderr
    report: dict[str, Any] = result.json()["results"][0]
    return report


def test_collector_bench_reports_throughput_latency_and_soak_memory(tmp_path: Path) -> None:
    report = bench(tmp_path, "collector", "--soak-s", "3")
    assert report["scenario"] == "collector"
    assert report["rows"] == 20_000
    assert 15_000 < report["accepted"] <= 20_000  # the generated data holds some duplicates
    assert report["ack_p99_ms"] >= report["ack_p50_ms"] > 0
    soak = report["soak"]
    assert soak["rows"] > 0 and soak["rss_max_mib"] >= soak["rss_first_mib"] > 0


def test_replay_bench_reports_throughput_memory_and_state_size(tmp_path: Path) -> None:
    report = bench(tmp_path, "replay")
    assert report["scenario"] == "replay"
    assert report["events"] == 20_000
    assert report["abandoned_carts"] > 0 and report["micro_batches"] >= 1
    assert report["peak_rss_mib"] >= report["peak_anon_mib"] > 0
    assert 0 < report["bytes_per_open_session"] <= 1_000
    # target_met is the verdict on all three targets, not on throughput alone
    assert report["target_met"] == targets_met(
        report["events_per_s"], report["peak_rss_mib"], report["bytes_per_open_session"]
    )
