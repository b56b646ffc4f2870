"""The event log contract: what ingest appends to and what stream processors read from.

Offsets count events, start at 0 and are contiguous, like one Kafka partition. The embedded
implementation (`embedded.py`) and a later Kafka-backed one both satisfy `EventLog`, so
ingest and the stream engine never depend on where the log lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol, Self, runtime_checkable

import numpy as np
import pyarrow as pa

#: When appends are forced to disk (the `fsync` setting).
FsyncPolicy = Literal["always", "batch", "never"]
FSYNC_POLICIES: tuple[FsyncPolicy, ...] = ("always", "batch", "never")


class EventLogError(Exception):
    """Anything the event log refuses or cannot do; the message says what to change."""


class SchemaMismatchError(EventLogError, ValueError):
    """An appended batch does not have the log's schema."""


class OffsetTruncatedError(EventLogError):
    """The requested offset was deleted by retention."""

    def __init__(self, offset: int, earliest: int) -> None:
        super().__init__(
            f"offset {offset} is no longer in the event log (deleted by retention); "
            f"the earliest available offset is {earliest}: resume from there or rebuild "
            "the consumer from the lake"
        )
        self.offset = offset
        self.earliest = earliest


class OffsetOutOfRangeError(EventLogError, ValueError):
    """The requested offset lies beyond the end of the log."""


class LogLockedError(EventLogError):
    """Another process already holds the log open for writing."""


class ReadOnlyLogError(EventLogError):
    """A write operation was called on a log opened for reading."""


class LogCorruptError(EventLogError):
    """The files on disk are damaged beyond what crash recovery repairs."""


class LogClosedError(EventLogError):
    """The log was used after close()."""


@dataclass(frozen=True)
class AppendResult:
    """Offsets given to one append: `first_offset`..`last_offset` inclusive."""

    first_offset: int
    last_offset: int

    @property
    def rows(self) -> int:
        """Events appended (0 for an empty batch, whose range is empty)."""
        return self.last_offset - self.first_offset + 1

    @property
    def next_offset(self) -> int:
        """The offset the next append will start at."""
        return self.last_offset + 1


@dataclass(frozen=True)
class LogSlice:
    """Events read from the log; row i of `table` has offset `start + i`."""

    start: int
    table: pa.Table

    @property
    def num_rows(self) -> int:
        """Events in this slice."""
        return int(self.table.num_rows)

    @property
    def end(self) -> int:
        """The offset after the last event of this slice (where the next read starts)."""
        return self.start + self.num_rows

    def offsets(self) -> pa.Array:
        """The offset of every row, as an int64 array (computed, not stored)."""
        arr: pa.Array = pa.array(np.arange(self.start, self.end, dtype=np.int64))
        return arr


class ClosesOnExit:
    """`with log:` closes the log when the block ends; for the `EventLog` implementations."""

    def close(self) -> None:
        """Release the log (each implementation says what that means)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@runtime_checkable
class EventLog(Protocol):
    """A durable, append-only, offset-addressed log of Arrow event batches."""

    @property
    def schema(self) -> pa.Schema:
        """The schema every stored event has."""
        ...

    def append(self, batch: pa.RecordBatch | pa.Table) -> AppendResult:
        """Append events atomically; durable on return when the fsync policy is `always`."""
        ...

    def read(self, start: int, max_rows: int) -> LogSlice:
        """Events with offsets in [start, start + max_rows), as far as they exist."""
        ...

    def start_offset(self) -> int:
        """The earliest offset still retained."""
        ...

    def release_before(self, offset: int) -> None:
        """Hint: this process no longer reads offsets below `offset` (memory may be freed)."""
        ...

    def end_offset(self) -> int:
        """The offset the next appended event will get."""
        ...

    def wait_for(self, offset: int, timeout_s: float) -> bool:
        """Block until `offset` exists (end_offset() > offset) or the timeout passes."""
        ...

    def commit(self, consumer: str, offset: int) -> None:
        """Durably record that `consumer` will resume at `offset` (the next one to read)."""
        ...

    def committed(self, consumer: str) -> int | None:
        """The offset `consumer` committed last, or None if it never did."""
        ...

    def consumers(self) -> dict[str, int]:
        """Committed offset of every registered consumer."""
        ...

    def remove_consumer(self, consumer: str) -> None:
        """Forget a consumer so that it no longer holds back retention."""
        ...

    def apply_retention(
        self, max_bytes: int | None, max_age_s: float | None, *, force: bool = False
    ) -> int:
        """Delete whole old segments beyond the limits; return the bytes freed."""
        ...

    def sync(self) -> None:
        """Make every append so far durable, whatever the fsync policy."""
        ...

    def close(self) -> None:
        """Flush, release the writer lock and free resources; idempotent."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
