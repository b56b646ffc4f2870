"""fsync `batch`: a background thread makes appends durable at most `interval_s` after them.

Appends only mark the log dirty; the thread waits out the interval (coalescing every append
made meanwhile into one fsync) and then syncs. fsync runs outside the writer's lock, so
appends keep going while the disk flushes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PeriodicSync:
    """Calls `sync()` at most `interval_s` after the first unsynced append."""

    def __init__(self, sync: Callable[[], None], interval_s: float, name: str) -> None:
        self._sync = sync
        self._interval_s = interval_s
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self.error: BaseException | None = None
        """Set when a background sync failed; the writer refuses further appends."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def mark_dirty(self) -> None:
        """Note that an append happened; it will be synced within the interval."""
        self._dirty.set()

    def stop(self) -> None:
        """Stop the thread (the caller does the final sync)."""
        self._stop.set()
        self._dirty.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self._dirty.wait()
            if self._stop.wait(self._interval_s):
                return
            self._dirty.clear()
            try:
                self._sync()
            except Exception as exc:  # a failed fsync must not pass silently (fsyncgate)
                log.exception("log_background_sync_failed error=%s", exc)
                self.error = exc
                return
