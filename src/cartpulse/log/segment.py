"""One segment as any process reads it: an Arrow IPC stream file plus its index.

`<base>.arrows` is a plain Arrow IPC *stream*: the schema message, then one record-batch
message per stored batch, appended in place (a stream needs no footer, so the active segment
is valid and appendable at all times, and `pyarrow.ipc.open_stream` reads any closed segment).
`<base>.index` holds one record per batch (see `index.py`); `<base>` is the segment's first
offset, zero-padded to 20 digits so names sort by offset.
"""

from __future__ import annotations

import bisect
import logging
import os
from pathlib import Path

import pyarrow as pa

from cartpulse.log import index
from cartpulse.log.base import LogCorruptError, SchemaMismatchError

log = logging.getLogger(__name__)

DATA_SUFFIX = ".arrows"
INDEX_SUFFIX = ".index"


def segment_stem(base: int) -> str:
    """File name (without suffix) of the segment starting at offset `base`."""
    return f"{base:020d}"


def list_bases(directory: Path) -> list[int]:
    """First offsets of the segments in `directory`; a segment exists once its index does."""
    bases = []
    with os.scandir(directory) as entries:
        names = [e.name for e in entries]
    for name in names:
        stem, dot, suffix = name.partition(".")
        if dot and "." + suffix == INDEX_SUFFIX and stem.isdigit():
            bases.append(int(stem))
    bases.sort()
    return bases


class Segment:
    """The committed batches of one segment, readable zero-copy through a memory map."""

    def __init__(self, directory: Path, base: int, schema: pa.Schema) -> None:
        self.base = base
        self.data_path = directory / (segment_stem(base) + DATA_SUFFIX)
        self.index_path = directory / (segment_stem(base) + INDEX_SUFFIX)
        self.schema = schema
        self.sealed = False
        """True once a newer segment exists: the index will not grow any more."""
        self.loaded = False
        self.first_offsets: list[int] = []
        self.positions: list[int] = []
        self.lengths: list[int] = []
        self.end = base
        """Offset after the last committed batch."""
        self.data_end = 0
        """Byte position after the last committed batch (after the header when empty)."""
        self.index_bytes = 0
        self.pages_dropped = False
        self._index_fd: int | None = None
        self._buf: pa.Buffer | None = None

    def extend(self, entries: index.IndexEntries, index_bytes: int) -> None:
        """Add committed batches (decoded from `index_bytes` more bytes of index)."""
        if not len(entries):
            return
        self.first_offsets.extend(entries.first_offsets)
        self.positions.extend(entries.positions)
        self.lengths.extend(entries.lengths)
        self.end = entries.first_offsets[-1] + entries.rows[-1]
        self.data_end = entries.positions[-1] + entries.lengths[-1]
        self.index_bytes += index_bytes

    def refresh(self) -> None:
        """Pick up batches committed by the writer since the last look (reader side)."""
        if self.loaded and self.sealed:
            return
        if self._index_fd is None:
            self._index_fd = os.open(self.index_path, os.O_RDONLY)
        if self.data_end == 0:
            self.data_end = read_header(self.data_path, self.schema)
        size = os.fstat(self._index_fd).st_size
        if size > self.index_bytes:
            raw = os.pread(self._index_fd, size - self.index_bytes, self.index_bytes)
            decoded = index.decode(raw, self.end, self.data_end)
            self.extend(decoded.entries, decoded.consumed_bytes)
        self.loaded = True
        if self.sealed:
            self._close_index()

    def seal(self) -> None:
        """The writer moved on to a newer segment: read this index one last time."""
        if self.sealed:
            return
        # Called after listing the newer segment, so this read sees the final index.
        if self.loaded:
            self.refresh()
        self.sealed = True
        self._close_index()

    def batches(self, start: int, stop: int) -> list[pa.RecordBatch]:
        """Committed events of this segment with offsets in [start, stop), as zero-copy slices."""
        if not self.loaded:
            self.refresh()
        stop = min(stop, self.end)
        if start >= stop:
            return []
        i = bisect.bisect_right(self.first_offsets, start) - 1
        last = bisect.bisect_left(self.first_offsets, stop) - 1
        buf = self._mapped(self.positions[last] + self.lengths[last])
        out: list[pa.RecordBatch] = []
        for j in range(i, last + 1):
            message = buf.slice(self.positions[j], self.lengths[j])
            batch = pa.ipc.read_record_batch(message, self.schema)
            first = self.first_offsets[j]
            lo = max(start - first, 0)
            hi = min(stop - first, batch.num_rows)
            out.append(batch if (lo, hi) == (0, batch.num_rows) else batch.slice(lo, hi - lo))
        return out

    def release(self) -> None:
        """Drop the memory map and file handle (tables already read stay valid)."""
        self._close_index()
        self._buf = None

    def drop_cached_pages(self) -> None:
        """Let the OS drop this sealed segment's pages from its file cache.

        Called once every consumer in this process has read the segment: its pages are freed
        for the writes to come instead of lingering until memory runs short. Pages still
        mapped (an Arrow table that still uses them) or not yet written back are kept. A
        later read goes to the disk.
        """
        if self.pages_dropped or not self.sealed or not hasattr(os, "posix_fadvise"):
            return
        try:
            fd = os.open(self.data_path, os.O_RDONLY)
        except FileNotFoundError:  # deleted by retention
            return
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        self.pages_dropped = True

    def _mapped(self, needed_bytes: int) -> pa.Buffer:
        """The data file mapped at least up to `needed_bytes`, remapped when it has grown."""
        if self._buf is None or self._buf.size < needed_bytes:
            # Buffers sliced from an old map keep it alive, so earlier reads stay valid.
            with pa.memory_map(str(self.data_path), "r") as mm:
                self._buf = mm.read_buffer()
            if self._buf.size < needed_bytes:
                raise LogCorruptError(
                    f"{self.data_path} is {self._buf.size} bytes but its index refers to byte "
                    f"{needed_bytes}; the segment was truncated outside the event log"
                )
        buf: pa.Buffer = self._buf
        return buf

    def _close_index(self) -> None:
        if self._index_fd is not None:
            os.close(self._index_fd)
            self._index_fd = None


def read_header(path: Path, schema: pa.Schema) -> int:
    """Length of the segment's schema message; raise unless it holds `schema`."""
    try:
        with pa.memory_map(str(path), "r") as mm:
            message = pa.ipc.read_message(mm)
            stored = pa.ipc.read_schema(message)
            header_bytes = int(mm.tell())
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        # Segments get their index only after their header is complete (and synced), so a
        # bad header here is damage from outside, not a crash: refuse rather than guess.
        raise LogCorruptError(
            f"{path} does not start with an Arrow schema ({exc}); restore the log folder "
            "from a backup or move it away to start afresh"
        ) from exc
    if not stored.equals(schema):
        raise SchemaMismatchError(
            f"the event log at {path.parent} stores events of schema\n{stored}\nbut was opened "
            f"with schema\n{schema}\nopen it with the schema it was created with"
        )
    return header_bytes
