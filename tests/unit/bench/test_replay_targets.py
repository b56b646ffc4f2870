"""The replay benchmark's verdict: throughput, peak RSS and state size must all meet their targets."""

from __future__ import annotations

import pytest

from cartpulse.bench.replay import targets_met


@pytest.mark.parametrize(
    ("events_per_s", "rss_mib", "bytes_per_session", "met"),
    [
        (1_000_000, 2047.9, 300, True),
        (999_999, 1000, 200, False),  # too slow
        (1_200_000, 2048, 200, False),  # 2 GiB is not under 2 GiB
        (1_200_000, 1800, 301, False),  # state too large per open session
    ],
)
def test_every_target_counts(
    events_per_s: float, rss_mib: float, bytes_per_session: int, met: bool
) -> None:
    assert targets_met(events_per_s, rss_mib, bytes_per_session) is met
