"""The segments of one log in offset order: finding offsets, following the writer, deleting.

Segment `i` holds offsets [base_i, base_{i+1}); the last one holds [base, end). Readers
re-list the folder to follow rolls and retention; the writer changes the chain itself.
"""

from __future__ import annotations

import bisect
import logging
from pathlib import Path

import pyarrow as pa

from cartpulse.log.base import LogCorruptError, OffsetTruncatedError
from cartpulse.log.retention import SegmentInfo
from cartpulse.log.segment import DATA_SUFFIX, INDEX_SUFFIX, Segment, list_bases, segment_stem

log = logging.getLogger(__name__)


class SegmentChain:
    """Ordered segments with contiguous offsets."""

    def __init__(self, directory: Path, schema: pa.Schema) -> None:
        self.directory = directory
        self.schema = schema
        self.segments: list[Segment] = []

    @property
    def start(self) -> int:
        """The earliest retained offset."""
        return self.segments[0].base if self.segments else 0

    @property
    def end(self) -> int:
        """The offset after the last committed event."""
        return self.segments[-1].end if self.segments else 0

    def add_sealed(self, bases: list[int]) -> None:
        """Writer side: register segments that will not grow any more (loaded lazily)."""
        for base in bases:
            seg = Segment(self.directory, base, self.schema)
            seg.sealed = True
            self.segments.append(seg)

    def follow(self, retry: bool = True) -> None:
        """Reader side: pick up new segments, deleted segments and newly committed batches."""
        bases = list_bases(self.directory)
        if bases != [s.base for s in self.segments]:
            known = {s.base: s for s in self.segments}
            for seg in self.segments:
                if seg.base not in bases:
                    seg.release()
            self.segments = [known.get(b) or Segment(self.directory, b, self.schema) for b in bases]
            for seg in self.segments[:-1]:
                seg.seal()
        if not self.segments:
            return
        try:
            self.segments[-1].refresh()
        except FileNotFoundError:
            if not retry:
                raise
            # Listed, then rolled and deleted by retention before we looked: list again.
            self.segments.pop().release()
            self.follow(retry=False)

    def collect(self, start: int, stop: int, follow: bool) -> list[pa.RecordBatch]:
        """Zero-copy batches holding offsets [start, stop), which must lie in the chain."""
        batches: list[pa.RecordBatch] = []
        i = bisect.bisect_right([s.base for s in self.segments], start) - 1
        pos = start
        while pos < stop:
            seg = self.segments[i]
            try:
                found = seg.batches(pos, stop)
            except FileNotFoundError:
                if follow:
                    self.follow()  # retention deleted it after we listed it
                raise OffsetTruncatedError(pos, self.start) from None
            got = sum(b.num_rows for b in found)
            if got == 0:
                raise LogCorruptError(
                    f"segment {seg.data_path} ends before offset {pos}, where the next segment "
                    "starts; the log folder was modified outside cartpulse"
                )
            batches.extend(found)
            pos += got
            i += 1
        return batches

    def infos(self) -> list[SegmentInfo]:
        """Offsets, size on disk and age of every segment, for retention."""
        infos = []
        for i, seg in enumerate(self.segments):
            end = self.segments[i + 1].base if i + 1 < len(self.segments) else seg.end
            stat = seg.data_path.stat()
            size = stat.st_size + seg.index_path.stat().st_size
            infos.append(SegmentInfo(seg.base, end, size, stat.st_mtime))
        return infos

    def delete_oldest(self, count: int) -> None:
        """Writer side: delete the `count` oldest segments (the caller syncs the folder)."""
        for _ in range(count):
            seg = self.segments.pop(0)
            # Index first: a segment exists while its index does; a crash in between leaves
            # an orphan data file that the next writer deletes.
            seg.index_path.unlink()
            seg.data_path.unlink()
            seg.release()
            log.info("log_segment_deleted base=%d", seg.base)

    def release(self) -> None:
        """Drop every memory map and file handle."""
        for seg in self.segments:
            seg.release()


def remove_orphans(directory: Path) -> list[int]:
    """Delete data files whose index never got created (or was deleted); return the bases."""
    bases = list_bases(directory)
    for path in directory.glob("*" + DATA_SUFFIX):
        if path.stem.isdigit() and int(path.stem) not in bases:
            log.warning("log_orphan_segment_removed path=%s", path)
            path.unlink()
    for base in bases:
        data = directory / (segment_stem(base) + DATA_SUFFIX)
        if not data.exists():
            raise LogCorruptError(
                f"{data.with_suffix(INDEX_SUFFIX)} has no data file {data.name}; the log folder "
                "was modified outside cartpulse: restore it or move it away to start afresh"
            )
    return bases
