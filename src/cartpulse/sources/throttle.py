"""Bound how far Arrow's CSV reader reads ahead of the code consuming its batches."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pyarrow as pa

# Arrow's streaming CSV reader reads ahead on a background thread with no memory bound; when
# validation and writing are slower than parsing, a whole multi-GB file ends up buffered.
_STALL_LIMIT_S = 30.0


class ThrottledFile(io.RawIOBase):
    """A (decompressed) file whose reads wait while they are `ahead_bytes` past the consumer."""

    def __init__(self, path: Path, ahead_bytes: int) -> None:
        super().__init__()
        self._raw = pa.OSFile(str(path), "rb")
        gzip = path.name.endswith(".gz")
        self._fh = pa.CompressedInputStream(self._raw, "gzip") if gzip else self._raw
        self._ahead = ahead_bytes
        self._pos = 0
        self._consumed = 0
        self._allowed = ahead_bytes
        self._cond = threading.Condition()

    def readable(self) -> bool:
        """Always true: this is an input file."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Read once the consumer has caught up (or after a safety timeout, to never deadlock)."""
        with self._cond:
            self._cond.wait_for(lambda: self._pos < self._allowed, timeout=_STALL_LIMIT_S)
        data = self._fh.read(len(buffer))
        n = len(data)
        memoryview(buffer)[:n] = data
        with self._cond:
            self._pos += n
        return n

    def consumed(self, nbytes: int) -> None:
        """The consumer took `nbytes` of (decompressed) input: the reader may go that far ahead."""
        with self._cond:
            self._consumed += nbytes
            self._allowed = self._consumed + self._ahead
            self._cond.notify_all()

    @property
    def position(self) -> int:
        """Bytes of the file on disk read so far (compressed bytes for .gz)."""
        return int(self._raw.tell())

    def close(self) -> None:
        """Close the file and release a waiting reader."""
        with self._cond:
            self._allowed = 1 << 62
            self._cond.notify_all()
        self._fh.close()
        self._raw.close()
        super().close()
