"""Token buckets per write key."""

from __future__ import annotations

from cartpulse.collector.ratelimit import RateLimiter, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(100, burst_s=1.0, clock=clock)
    assert limiter.take("a", 100) == 0.0
    wait = limiter.take("a", 50)
    assert wait == 0.5
    clock.now = 0.5
    assert limiter.take("a", 50) == 0.0
    assert limiter.take("b", 100) == 0.0  # keys have their own buckets


def test_a_batch_bigger_than_the_bucket_passes_when_full_and_then_waits() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)
    assert limiter.take("a", 25) == 0.0
    assert limiter.take("a", 1) > 1.0  # in debt: 15 tokens short, plus the one asked


def test_zero_rate_means_no_limit() -> None:
    assert RateLimiter(0).take("a", 10**9) == 0.0


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(2.2) == "3"
