"""The event log: ingest appends validated Arrow batches, stream processors read by offset."""

from cartpulse.log.base import (
    FSYNC_POLICIES,
    AppendResult,
    EventLog,
    EventLogError,
    FsyncPolicy,
    LogClosedError,
    LogCorruptError,
    LogLockedError,
    LogSlice,
    OffsetOutOfRangeError,
    OffsetTruncatedError,
    ReadOnlyLogError,
    SchemaMismatchError,
)
from cartpulse.log.embedded import EmbeddedEventLog, open_event_log
from cartpulse.log.memory import MemoryEventLog

__all__ = [
    "FSYNC_POLICIES",
    "AppendResult",
    "EmbeddedEventLog",
    "EventLog",
    "EventLogError",
    "FsyncPolicy",
    "LogClosedError",
    "LogCorruptError",
    "LogLockedError",
    "LogSlice",
    "MemoryEventLog",
    "OffsetOutOfRangeError",
    "OffsetTruncatedError",
    "ReadOnlyLogError",
    "SchemaMismatchError",
    "open_event_log",
]
