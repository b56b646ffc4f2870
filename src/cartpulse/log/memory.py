"""An in-memory `EventLog` for tests of ingest and stream processors: same contract, no files.

Each append plays the role of a segment for retention. Nothing is durable; `sync` is a no-op.
"""

from __future__ import annotations

import bisect
import threading
import time

import pyarrow as pa

from cartpulse.log.base import (
    AppendResult,
    ClosesOnExit,
    LogClosedError,
    LogSlice,
    OffsetOutOfRangeError,
    OffsetTruncatedError,
)
from cartpulse.log.conform import check_log_schema, conform
from cartpulse.log.consumers import check_consumer_name
from cartpulse.log.retention import SegmentInfo, segments_to_delete
from cartpulse.schema import EVENT_SCHEMA


class MemoryEventLog(ClosesOnExit):
    """The event log contract held in a list of batches."""

    def __init__(self, schema: pa.Schema = EVENT_SCHEMA) -> None:
        check_log_schema(schema)
        self._schema = schema
        self._firsts: list[int] = []
        self._batches: list[pa.RecordBatch] = []
        self._appended_at: list[float] = []
        self._start = 0
        self._end = 0
        self._offsets: dict[str, int] = {}
        self._closed = False
        self._cond = threading.Condition()

    @property
    def schema(self) -> pa.Schema:
        """The schema every stored event has."""
        return self._schema

    def append(self, batch: pa.RecordBatch | pa.Table) -> AppendResult:
        """Append events atomically."""
        batches = conform(batch, self._schema)
        with self._cond:
            self._check_open()
            first = self._end
            for b in batches:
                self._firsts.append(self._end)
                self._batches.append(b)
                self._appended_at.append(time.time())
                self._end += b.num_rows
            self._cond.notify_all()
            return AppendResult(first, self._end - 1)

    def read(self, start: int, max_rows: int) -> LogSlice:
        """Events with offsets in [start, start + max_rows), as far as they exist."""
        if start < 0 or max_rows < 0:
            raise ValueError(f"read needs start >= 0 and max_rows >= 0, got {start}, {max_rows}")
        with self._cond:
            self._check_open()
            if start < self._start:
                raise OffsetTruncatedError(start, self._start)
            if start > self._end:
                raise OffsetOutOfRangeError(f"offset {start} is beyond the end offset {self._end}")
            stop = min(start + max_rows, self._end)
            pos = start
            out: list[pa.RecordBatch] = []
            i = bisect.bisect_right(self._firsts, start) - 1
            while pos < stop:
                b, first = self._batches[i], self._firsts[i]
                lo, hi = pos - first, min(stop - first, b.num_rows)
                out.append(b.slice(lo, hi - lo))
                pos = first + hi
                i += 1
        return LogSlice(start, pa.Table.from_batches(out, self._schema))

    def start_offset(self) -> int:
        """The earliest offset still retained."""
        return self._start

    def release_before(self, offset: int) -> None:
        """Nothing to release: the in-memory log keeps its batches until retention."""
        del offset

    def end_offset(self) -> int:
        """The offset the next appended event will get."""
        return self._end

    def wait_for(self, offset: int, timeout_s: float) -> bool:
        """Block until end_offset() > offset or the timeout passes."""
        with self._cond:
            return self._cond.wait_for(lambda: self._end > offset, timeout_s)

    def commit(self, consumer: str, offset: int) -> None:
        """Record where `consumer` resumes."""
        check_consumer_name(consumer)
        if not 0 <= offset <= self._end:
            raise OffsetOutOfRangeError(f"cannot commit {offset}: the log ends at {self._end}")
        self._offsets[consumer] = offset

    def committed(self, consumer: str) -> int | None:
        """The offset `consumer` committed last, or None."""
        return self._offsets.get(consumer)

    def consumers(self) -> dict[str, int]:
        """Committed offset of every registered consumer."""
        return dict(self._offsets)

    def remove_consumer(self, consumer: str) -> None:
        """Forget a consumer."""
        self._offsets.pop(consumer, None)

    def apply_retention(
        self, max_bytes: int | None, max_age_s: float | None, *, force: bool = False
    ) -> int:
        """Drop whole old appends beyond the limits that every consumer has read."""
        with self._cond:
            ends = [*self._firsts[1:], self._end]
            infos = [
                SegmentInfo(f, e, int(b.nbytes), t)
                for f, e, b, t in zip(
                    self._firsts, ends, self._batches, self._appended_at, strict=True
                )
            ]
            floor = min(self._offsets.values()) if self._offsets else None
            chosen = segments_to_delete(
                infos,
                max_bytes=max_bytes,
                max_age_s=max_age_s,
                min_committed=floor,
                now=time.time(),
                force=force,
            )
            n = len(chosen)
            del self._firsts[:n], self._batches[:n], self._appended_at[:n]
            if n:
                self._start = chosen[-1].end
            return sum(c.size_bytes for c in chosen)

    def sync(self) -> None:
        """Nothing to do: memory is as durable as it gets."""

    def close(self) -> None:
        """Refuse further use."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError("the in-memory event log is closed")
