"""Token buckets: each write key (or user) may send `rate` events per second, in bursts.

A handful of keys and a lock per call: a dependency (limits, slowapi) would bring storage
backends and decorators for what is twenty lines here.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc


class RateLimiter:
    """Token buckets keyed by name; a bucket holds at most `burst_s` seconds of tokens."""

    def __init__(
        self,
        rate_per_s: float,
        burst_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.rate = rate_per_s
        self.capacity = rate_per_s * burst_s
        self.max_keys = max_keys  # beyond this many buckets, refilled ones are forgotten
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, cost: float) -> float:
        """Spend `cost` tokens; 0.0 if allowed, else the seconds to wait before retrying.

        A request larger than the whole bucket is allowed when the bucket is full, so a big
        batch is slowed down, never refused forever.
        """
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens = self._level(key, now)
            if tokens >= min(cost, self.capacity):
                self._buckets[key] = (tokens - cost, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (min(cost, self.capacity) - tokens) / self.rate

    def take_all(self, costs: Mapping[str, float]) -> tuple[float, str | None]:
        """Spend every key's cost or none: (0.0, None), else (seconds to wait, a key over)."""
        if self.rate <= 0 or not costs:
            return 0.0, None
        now = self._clock()
        with self._lock:
            levels = {key: self._level(key, now) for key in costs}
            wait_s, worst = max(
                ((min(cost, self.capacity) - levels[key]) / self.rate, key)
                for key, cost in costs.items()
            )
            if wait_s > 0:
                return wait_s, worst
            for key, cost in costs.items():
                self._buckets[key] = (levels[key] - cost, now)
            if len(self._buckets) > self.max_keys:
                self._forget_full(now)
            return 0.0, None

    def _level(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - last) * self.rate)

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: a full bucket is the same as no bucket."""
        full = [k for k in self._buckets if self._level(k, now) >= self.capacity]
        for key in full:
            del self._buckets[key]


def events_per_user(user_ids: pa.Array | pa.ChunkedArray) -> dict[str, int]:
    """How many rows each user_id has in a request (rows without one are not counted)."""
    counts = pc.value_counts(pc.drop_null(user_ids.cast(pa.string())))
    return dict(
        zip(
            counts.field("values").to_pylist(),
            counts.field("counts").to_pylist(),
            strict=True,
        )
    )


def retry_after_header(wait_s: float) -> str:
    """`Retry-After` in whole seconds (at least 1, as the header has no fractions)."""
    return str(max(1, math.ceil(wait_s)))
