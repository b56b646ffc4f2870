"""Per-key token buckets: each write key may send `rate` events per second, in bursts.

A handful of keys and a lock per call: a dependency (limits, slowapi) would bring storage
backends and decorators for what is twenty lines here.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Token buckets keyed by name; a bucket holds at most `burst_s` seconds of tokens."""

    def __init__(
        self, rate_per_s: float, burst_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate_per_s
        self.capacity = rate_per_s * burst_s
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
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= min(cost, self.capacity):
                self._buckets[key] = (tokens - cost, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (min(cost, self.capacity) - tokens) / self.rate


def retry_after_header(wait_s: float) -> str:
    """`Retry-After` in whole seconds (at least 1, as the header has no fractions)."""
    return str(max(1, math.ceil(wait_s)))
