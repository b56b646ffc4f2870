"""Group commit: concurrent requests share one durable append (one pair of fsyncs).

An fsync costs about as much as validating a thousand events, so a request must not pay for
one of its own when others are waiting. The first request to take the lead appends every
batch queued so far in one go; the others find their offsets assigned when they get the lock.
Each batch is still durable before its request is answered.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pyarrow as pa

from cartpulse.log.base import EventLog


@dataclass
class _Pending:
    table: pa.Table
    first: int | None = None
    error: BaseException | None = None
    done: bool = False


class GroupAppender:
    """Appends tables to an event log, batching concurrent callers into one append."""

    def __init__(self, event_log: EventLog) -> None:
        self.log = event_log
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._leader = threading.Lock()
        self.appends = 0
        """Log appends made (fewer than calls when requests were grouped)."""

    def append(self, table: pa.Table) -> int | None:
        """Append durably; the first offset given to `table` (None when it is empty)."""
        if table.num_rows == 0:
            return None
        item = _Pending(table)
        with self._queue_lock:
            self._queue.append(item)
        with self._leader:
            if not item.done:
                self._lead()
        if item.error is not None:
            raise item.error
        return item.first

    def _lead(self) -> None:
        with self._queue_lock:
            group, self._queue = self._queue, []
        try:
            result = self.log.append(pa.concat_tables([p.table for p in group]))
        except BaseException as exc:
            for p in group:
                p.error, p.done = exc, True
            raise
        self.appends += 1
        offset = result.first_offset
        for p in group:
            p.first, p.done = offset, True
            offset += p.table.num_rows
