"""Live mode end to end: sessions expire on the clock, emails reach a real SMTP server."""

from __future__ import annotations

from cartpulse.bench.email_latency import bench_email_latency


def test_every_expiring_cart_is_emailed_in_live_mode() -> None:
    result = bench_email_latency(carts=50, spread_s=2.0)
    assert result["delivered"] == 50
    assert result["p50_s"] is not None and result["p50_s"] >= 0  # never before its expiry
