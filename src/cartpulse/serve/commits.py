"""Tell waiting readers (the dashboard's live stream) that the engine committed a micro-batch."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque


class CommitSignal:
    """A generation counter bumped after each commit; asyncio tasks can await the next one."""

    def __init__(self, rate_window_s: float = 10.0) -> None:
        self.generation = 0
        self.closed = False
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._recent: deque[tuple[float, int]] = deque()
        self._window_s = rate_window_s

    def notify(self, events: int = 0) -> None:
        """A commit happened (called by the engine thread, after the commit)."""
        now = time.monotonic()
        with self._lock:
            self.generation += 1
            self._recent.append((now, events))
            self._trim(now)
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                loop.call_soon_threadsafe(event.set)

    def close(self) -> None:
        """The server is stopping: wake every waiter, and let none wait again."""
        self.closed = True
        self.notify()

    async def wait(self, after: int, timeout_s: float) -> int:
        """The generation, once it is past `after` (or the timeout passed, or closed)."""
        if self.generation != after or self.closed:
            return self.generation
        event = asyncio.Event()
        key = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiters.add(key)
        try:
            if self.generation == after and not self.closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout_s)
        finally:
            with self._lock:
                self._waiters.discard(key)
        return self.generation

    def events_per_s(self) -> float:
        """Events the engine processed per second over the last few seconds."""
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            total = sum(n for _, n in self._recent)
        return total / self._window_s

    def _trim(self, now: float) -> None:
        while self._recent and now - self._recent[0][0] > self._window_s:
            self._recent.popleft()
