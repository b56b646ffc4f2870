"""The segment being written: create it, recover it after a crash, append to it, sync it.

Write order for one append: batch bytes, (fdatasync), index records, (fdatasync). A batch is
visible to readers only once its index record exists, and under fsync `always` the record is
durable only after the bytes it points at are.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pyarrow as pa
import xxhash

from cartpulse.log import index
from cartpulse.log.segment import Segment, read_header
from cartpulse.sinks.staging import fsync_dir

log = logging.getLogger(__name__)


def message_hash(message: pa.Buffer | memoryview) -> int:
    """Checksum of one stored batch (xxh3 runs at memory speed, unlike crc32)."""
    digest: int = xxhash.xxh3_64_intdigest(message)
    return digest


class ActiveSegment:
    """Open file handles on the newest segment, owned by the one writer process."""

    def __init__(self, segment: Segment, data_fd: int, index_fd: int) -> None:
        self.segment = segment
        self.data_fd = data_fd
        self.index_fd = index_fd

    @classmethod
    def create(
        cls, directory: Path, base: int, schema: pa.Schema, header: pa.Buffer, durable: bool
    ) -> ActiveSegment:
        """Start a new, empty segment at offset `base`."""
        segment = Segment(directory, base, schema)
        segment.loaded = True
        segment.data_end = header.size
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
        # Data before index: a segment "exists" once its index does, so a crash in between
        # leaves only an orphan data file that the next writer deletes.
        data_fd = os.open(segment.data_path, flags, 0o644)
        _pwrite_all(data_fd, header, 0)
        if durable:
            os.fsync(data_fd)
        index_fd = os.open(segment.index_path, flags, 0o644)
        if durable:
            os.fsync(index_fd)
            fsync_dir(directory)
        log.info("log_segment_created base=%d path=%s", base, segment.data_path)
        return cls(segment, data_fd, index_fd)

    @classmethod
    def recover(cls, directory: Path, base: int, schema: pa.Schema, durable: bool) -> ActiveSegment:
        """Reopen the newest segment, cutting a torn tail back to the last complete append."""
        segment = Segment(directory, base, schema)
        segment.data_end = read_header(segment.data_path, schema)
        data_fd = os.open(segment.data_path, os.O_RDWR)
        index_fd = os.open(segment.index_path, os.O_RDWR)
        active = cls(segment, data_fd, index_fd)
        try:
            active._recover(durable)
        except BaseException:
            active.close(sync=False)
            raise
        return active

    def append(self, messages: list[pa.Buffer], rows: list[int], durable: bool) -> None:
        """Write serialized batches and then their index records as one atomic append."""
        seg = self.segment
        position = seg.data_end
        for message in messages:
            _pwrite_all(self.data_fd, message, position)
            position += message.size
        if durable:
            os.fdatasync(self.data_fd)
        lengths = [m.size for m in messages]
        hashes = [message_hash(m) for m in messages]
        records = index.encode(seg.end, seg.data_end, lengths, rows, hashes)
        _pwrite_all(self.index_fd, records, seg.index_bytes)
        if durable:
            os.fdatasync(self.index_fd)
        firsts = [seg.end]
        for n in rows[:-1]:
            firsts.append(firsts[-1] + n)
        positions = [seg.data_end]
        for size in lengths[:-1]:
            positions.append(positions[-1] + size)
        commits = [False] * (len(rows) - 1) + [True]
        entries = index.IndexEntries(firsts, positions, lengths, rows, hashes, commits)
        seg.extend(entries, len(records))

    def size_bytes(self) -> int:
        """Bytes of committed data and index in this segment."""
        return self.segment.data_end + self.segment.index_bytes

    def sync(self) -> None:
        """Force everything appended so far to disk."""
        os.fdatasync(self.data_fd)
        os.fdatasync(self.index_fd)

    def close(self, sync: bool) -> None:
        """Optionally sync, then close the file handles."""
        try:
            if sync:
                self.sync()
        finally:
            os.close(self.data_fd)
            os.close(self.index_fd)
            self.segment.release()

    def _recover(self, durable: bool) -> None:
        seg = self.segment
        data_size = os.fstat(self.data_fd).st_size
        raw_index = _read_all(self.index_fd)
        decoded = index.decode(raw_index, seg.base, seg.data_end)
        entries = _verified_prefix(decoded.entries, seg.data_path, data_size)
        kept_index = len(entries) * index.RECORD_SIZE
        seg.extend(entries, kept_index)
        seg.loaded = True
        dropped_index = len(raw_index) - kept_index
        dropped_data = data_size - seg.data_end
        if dropped_index or dropped_data:
            os.ftruncate(self.index_fd, kept_index)
            os.ftruncate(self.data_fd, seg.data_end)
            if durable:
                self.sync()
            log.warning(
                "log_torn_tail_truncated segment=%s kept_batches=%d end_offset=%d "
                "dropped_index_bytes=%d dropped_data_bytes=%d",
                seg.data_path.name,
                len(entries),
                seg.end,
                dropped_index,
                dropped_data,
            )


def _verified_prefix(entries: index.IndexEntries, path: Path, data_size: int) -> index.IndexEntries:
    """The longest run of whole appends whose bytes are all on disk and match their hashes."""
    if not len(entries):
        return entries
    with pa.memory_map(str(path), "r") as mapped:
        buf = mapped.read_buffer()
        whole_appends = 0
        for i in range(len(entries)):
            pos, length = entries.positions[i], entries.lengths[i]
            if pos + length > data_size:
                break
            if message_hash(buf.slice(pos, length)) != entries.data_hashes[i]:
                break
            if entries.commits[i]:
                whole_appends = i + 1
    return entries.head(whole_appends)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0) if size else b""


def _pwrite_all(fd: int, data: pa.Buffer | bytes, position: int) -> None:
    """pwrite until every byte is written (a regular-file write may be short near limits)."""
    view = memoryview(data)
    while view.nbytes:
        written = os.pwrite(fd, view, position)
        view = view[written:]
        position += written
