"""Token buckets per write key."""

from __future__ import annotations

import pyarrow as pa

from cartpulse.collector.ratelimit import RateLimiter, events_per_user, retry_after_header


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


def test_take_all_spends_every_users_tokens_or_none() -> None:
    clock = Clock()
    limiter = RateLimiter(10, burst_s=2.0, clock=clock)
    assert limiter.take_all({"bot": 20, "human": 3}) == (0.0, None)
    wait, user = limiter.take_all({"bot": 5, "human": 3})
    assert user == "bot" and wait == 0.5
    # The refused request cost the other user nothing: 17 tokens left, 3 taken now.
    assert limiter.take_all({"human": 17}) == (0.0, None)
    assert limiter.take_all({"human": 1})[1] == "human"


def test_refilled_buckets_are_forgotten_past_max_keys() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock, max_keys=2)
    limiter.take_all({"a": 10, "b": 10})
    clock.now = 5.0
    limiter.take_all({"c": 1})
    assert limiter.take_all({"c": 10})[1] == "c"  # c's own debt is kept
    assert limiter.take_all({"a": 10, "b": 10}) == (0.0, None)


def test_events_per_user_counts_rows_of_each_user() -> None:
    ids = pa.array(["1", "2", "1", None, "1"])
    assert events_per_user(ids) == {"1": 3, "2": 1}
    assert events_per_user(pa.array([5, 5], pa.int64())) == {"5": 2}
