"""The event log in a local folder: one writer process, any number of reader processes.

Layout (see docs/event-log.md): `<base>.arrows` + `<base>.index` per segment, `writer.lock`,
`consumers/<name>.json`. The writer holds an exclusive `flock` on `writer.lock`, recovers the
newest segment on open and appends to it; readers take no lock and only trust batches that
have a committed index record, so they never see a torn or half-written batch.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from cartpulse.log.active import ActiveSegment
from cartpulse.log.base import (
    FSYNC_POLICIES,
    AppendResult,
    ClosesOnExit,
    EventLog,
    EventLogError,
    FsyncPolicy,
    LogClosedError,
    LogSlice,
    OffsetOutOfRangeError,
    OffsetTruncatedError,
    ReadOnlyLogError,
)
from cartpulse.log.chain import SegmentChain, remove_orphans
from cartpulse.log.conform import check_log_schema, conform
from cartpulse.log.consumers import ConsumerOffsets
from cartpulse.log.lock import acquire_writer_lock, release_writer_lock
from cartpulse.log.retention import segments_to_delete
from cartpulse.log.syncer import PeriodicSync
from cartpulse.schema import EVENT_SCHEMA
from cartpulse.sinks.staging import fsync_dir

if TYPE_CHECKING:
    from cartpulse.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 256 * 1024 * 1024
DEFAULT_SYNC_INTERVAL_MS = 100
CONSUMERS_DIR = "consumers"
_POLL_MIN_S = 0.0005
_POLL_MAX_S = 0.005


class EmbeddedEventLog(ClosesOnExit):
    """A durable event log in `directory`; `writable=True` makes this process its one writer."""

    def __init__(
        self,
        directory: Path | str,
        *,
        writable: bool = False,
        schema: pa.Schema = EVENT_SCHEMA,
        fsync: FsyncPolicy = "always",
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync_interval_ms: int = DEFAULT_SYNC_INTERVAL_MS,
    ) -> None:
        _check_options(fsync, segment_bytes, fsync_interval_ms)
        check_log_schema(schema)
        self.directory = Path(directory)
        self.writable = writable
        self._schema = schema
        self._header: pa.Buffer = schema.serialize()
        self._fsync: FsyncPolicy = fsync
        self._segment_bytes = segment_bytes
        self._lock = threading.RLock()
        self._appended = threading.Condition(self._lock)
        self._chain = SegmentChain(self.directory, schema)
        self._active: ActiveSegment | None = None
        self._lock_fd: int | None = None
        self._syncer: PeriodicSync | None = None
        self._failed: BaseException | None = None
        self._closed = False
        self._offsets = ConsumerOffsets(self.directory / CONSUMERS_DIR, fsync != "never")
        if writable:
            self._open_writer(fsync_interval_ms / 1000)
        elif not self.directory.is_dir():
            raise EventLogError(
                f"no event log at {self.directory}: start the writer (ingest or serve) first, "
                "or check CARTPULSE_HOME"
            )
        else:
            self._chain.follow()
        log.info(
            "log_opened path=%s mode=%s fsync=%s start_offset=%d end_offset=%d segments=%d",
            self.directory,
            "write" if writable else "read",
            fsync,
            self.start_offset(),
            self.end_offset(),
            len(self._chain.segments),
        )

    @property
    def schema(self) -> pa.Schema:
        """The schema every stored event has."""
        return self._schema

    def append(self, batch: pa.RecordBatch | pa.Table) -> AppendResult:
        """Append events atomically; durable on return when fsync is `always`."""
        batches = conform(batch, self._schema)
        messages: list[pa.Buffer] = [b.serialize() for b in batches]
        rows = [int(b.num_rows) for b in batches]
        with self._lock:
            active = self._writer()
            first = active.segment.end
            if not messages:
                return AppendResult(first, first - 1)
            try:
                if active.segment.end > active.segment.base and (
                    active.size_bytes() + sum(m.size for m in messages) > self._segment_bytes
                ):
                    active = self._roll(active)
                active.append(messages, rows, durable=self._fsync == "always")
            except OSError as exc:
                # After a failed write or fsync the file state is unknown: stop acknowledging.
                self._failed = exc
                log.error("log_append_failed path=%s error=%s", self.directory, exc)
                raise EventLogError(
                    f"cannot append to the event log at {self.directory}: {exc}; fix the disk "
                    "problem and reopen the log (recovery keeps every acknowledged event)"
                ) from exc
            if self._syncer is not None:
                self._syncer.mark_dirty()
            self._appended.notify_all()
            return AppendResult(first, active.segment.end - 1)

    def read(self, start: int, max_rows: int) -> LogSlice:
        """Events with offsets in [start, start + max_rows), as far as they exist (zero-copy)."""
        if start < 0 or max_rows < 0:
            raise ValueError(f"read needs start >= 0 and max_rows >= 0, got {start}, {max_rows}")
        with self._lock:
            self._check_open()
            if not self.writable:
                self._chain.follow()
            first, end = self._chain.start, self._chain.end
            if start < first:
                raise OffsetTruncatedError(start, first)
            if start > end:
                raise OffsetOutOfRangeError(
                    f"offset {start} is beyond the end of the event log at {self.directory} "
                    f"(end offset {end}); was the log folder replaced?"
                )
            batches = self._chain.collect(start, min(start + max_rows, end), not self.writable)
        return LogSlice(start, pa.Table.from_batches(batches, schema=self._schema))

    def release_before(self, offset: int) -> None:
        """Drop the memory maps of sealed segments that end at or before `offset`.

        A hint from a consumer that has moved past them: their pages stop counting in this
        process's resident memory, and the writer lets the OS drop them from its file cache
        (a 20.7 M-event replay writes 2 GB of log; fresh cache pages cost more than reused
        ones). A later read of those offsets maps them again, from the disk.
        """
        with self._lock:
            self._check_open()
            for seg in self._chain.segments[:-1]:
                if seg.end <= offset:
                    seg.release()
                    if self.writable:
                        seg.drop_cached_pages()

    def start_offset(self) -> int:
        """The earliest offset still retained."""
        with self._lock:
            self._check_open()
            if not self.writable:
                self._chain.follow()
            return self._chain.start

    def end_offset(self) -> int:
        """The offset the next appended event will get."""
        with self._lock:
            self._check_open()
            if not self.writable:
                self._chain.follow()
            return self._chain.end

    def wait_for(self, offset: int, timeout_s: float) -> bool:
        """Block until end_offset() > offset or `timeout_s` passes; True if it exists."""
        if self.writable:
            with self._appended:
                self._appended.wait_for(lambda: self._closed or self._chain.end > offset, timeout_s)
                return self._chain.end > offset
        # Another process writes: poll the index (a few µs per look), backing off to 5 ms.
        deadline = time.monotonic() + timeout_s
        delay = _POLL_MIN_S
        while self.end_offset() <= offset:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, _POLL_MAX_S)
        return True

    def commit(self, consumer: str, offset: int) -> None:
        """Durably record that `consumer` resumes at `offset` (the next one to read)."""
        end = self.end_offset()
        if not 0 <= offset <= end:
            raise OffsetOutOfRangeError(
                f"cannot commit offset {offset} for consumer `{consumer}`: the event log ends at "
                f"{end}; commit the offset after the last event processed"
            )
        self._offsets.commit(consumer, offset)

    def committed(self, consumer: str) -> int | None:
        """The offset `consumer` committed last, or None if it never did."""
        return self._offsets.committed(consumer)

    def consumers(self) -> dict[str, int]:
        """Committed offset of every registered consumer."""
        return self._offsets.all()

    def remove_consumer(self, consumer: str) -> None:
        """Forget a consumer so that it no longer holds back retention."""
        self._offsets.remove(consumer)

    def apply_retention(
        self, max_bytes: int | None, max_age_s: float | None, *, force: bool = False
    ) -> int:
        """Delete whole old segments beyond the limits that every consumer has read."""
        with self._lock:
            self._writer()
            committed = self._offsets.all()
            min_committed = min(committed.values()) if committed else None
            chosen = segments_to_delete(
                self._chain.infos(),
                max_bytes=max_bytes,
                max_age_s=max_age_s,
                min_committed=min_committed,
                now=time.time(),
                force=force,
            )
            self._chain.delete_oldest(len(chosen))
            if chosen and self._fsync != "never":
                fsync_dir(self.directory)
            freed = sum(info.size_bytes for info in chosen)
            log.info(
                "log_retention_applied deleted_segments=%d freed_bytes=%d start_offset=%d "
                "min_committed=%s consumers=%d forced=%s",
                len(chosen),
                freed,
                self._chain.start,
                min_committed,
                len(committed),
                force,
            )
            return freed

    def sync(self) -> None:
        """Make every append so far durable, whatever the fsync policy (readers: no-op)."""
        with self._lock:
            self._check_open()
            if self._active is not None:
                self._active.sync()

    def close(self) -> None:
        """Stop background syncing, sync (unless fsync is `never`), release the writer lock."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._appended.notify_all()
        if self._syncer is not None:
            self._syncer.stop()  # outside the lock: the sync thread takes it
        with self._lock:
            try:
                if self._active is not None:
                    self._active.close(sync=self._fsync != "never" and self._failed is None)
            finally:
                self._chain.release()
                if self._lock_fd is not None:
                    release_writer_lock(self._lock_fd)
                    self._lock_fd = None
        log.info("log_closed path=%s", self.directory)

    # -- internals -------------------------------------------------------------------------

    def _open_writer(self, sync_interval_s: float) -> None:
        durable = self._fsync != "never"
        if not self.directory.is_dir():
            self.directory.mkdir(parents=True)
            if durable:
                fsync_dir(self.directory.parent)
        self._lock_fd = acquire_writer_lock(self.directory)
        try:
            if not self._offsets.directory.is_dir():
                # Created here, durably, so that a first commit cannot vanish with its folder.
                self._offsets.directory.mkdir()
                if durable:
                    fsync_dir(self.directory)
            bases = remove_orphans(self.directory)
            self._chain.add_sealed(bases[:-1])
            if bases:
                active = ActiveSegment.recover(self.directory, bases[-1], self._schema, durable)
            else:
                active = ActiveSegment.create(
                    self.directory, 0, self._schema, self._header, durable
                )
            self._chain.segments.append(active.segment)
            self._active = active
            if self._fsync == "batch":
                self._syncer = PeriodicSync(self._sync_in_background, sync_interval_s, "log-sync")
        except BaseException:
            release_writer_lock(self._lock_fd)
            self._lock_fd = None
            raise

    def _roll(self, old: ActiveSegment) -> ActiveSegment:
        durable = self._fsync != "never"
        old.close(sync=durable)
        old.segment.sealed = True
        new = ActiveSegment.create(
            self.directory, old.segment.end, self._schema, self._header, durable
        )
        self._chain.segments.append(new.segment)
        self._active = new
        return new

    def _sync_in_background(self) -> None:
        with self._lock:
            if self._closed or self._active is None:
                return
            # Duplicated handles stay valid even if the segment rolls while we fsync.
            fds = (os.dup(self._active.data_fd), os.dup(self._active.index_fd))
        try:
            for fd in fds:
                os.fdatasync(fd)
        finally:
            for fd in fds:
                os.close(fd)

    def _writer(self) -> ActiveSegment:
        self._check_open()
        if self._active is None:
            raise ReadOnlyLogError(
                f"the event log at {self.directory} was opened read-only; open it with "
                "writable=True in the one process that appends"
            )
        failed = self._failed or (self._syncer.error if self._syncer else None)
        if failed is not None:
            raise EventLogError(
                f"the event log writer at {self.directory} failed earlier ({failed}); "
                "close and reopen the log"
            )
        return self._active

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"the event log at {self.directory} is closed")


def open_event_log(settings: Settings, *, writable: bool = False) -> EventLog:
    """The configured event log: embedded under the home's `log/`, or Kafka (`log.backend`)."""
    if settings.log.backend == "kafka":
        from cartpulse.log.kafka import KafkaEventLog

        return KafkaEventLog(settings.log.kafka, settings.log.retention_hours)
    return EmbeddedEventLog(settings.home / "log", writable=writable, fsync=settings.fsync)


def _check_options(fsync: str, segment_bytes: int, fsync_interval_ms: int) -> None:
    if fsync not in FSYNC_POLICIES:
        raise EventLogError(f"fsync={fsync!r} is invalid: use one of {', '.join(FSYNC_POLICIES)}")
    if segment_bytes < 1:
        raise EventLogError(f"segment_bytes={segment_bytes} is invalid: it must be positive")
    if fsync_interval_ms < 1:
        raise EventLogError(f"fsync_interval_ms={fsync_interval_ms} is invalid: use >= 1")
