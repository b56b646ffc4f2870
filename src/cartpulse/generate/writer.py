"""Output files: events.csv.gz as gzip members compressed in parallel, customers.csv, bots.csv."""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.csv as pacsv

from cartpulse.generate.events import EventBlock, IntArray

# Level 1 keeps compression (the bottleneck) near 150 MB/s per core at ~4x smaller files.
GZIP_LEVEL = 1
PIECE_ROWS = 50_000
# The generator may run this far ahead of the compressors: enough to keep both busy across a
# whole window, bounded so memory stays flat (pieces are views of at most ~2 windows).
MAX_QUEUED_PIECES = 64
_GZIP_WBITS = 31  # zlib container = gzip, mtime 0: identical input gives identical bytes


def gzip_member(data: bytes | pa.Buffer) -> bytes:
    """One complete gzip member (concatenated members form a valid gzip file)."""
    # A compressobj, unlike zlib.compress on Python 3.11, releases the GIL while deflating.
    packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
    return packer.compress(data) + packer.flush()


class GzipCsvWriter:
    """Renders and compresses pieces in worker threads, writes them in submission order.

    Each piece becomes its own gzip member, so the bytes depend only on the pieces, never on
    thread timing. zlib and Arrow release the GIL, so the workers and the generator overlap.
    """

    def __init__(
        self,
        path: Path,
        render: Callable[[EventBlock], pa.Buffer],
        header: bytes,
        progress: Callable[[int], None] | None,
        threads: int = 2,
    ) -> None:
        # Written under a temporary name and renamed when complete: nobody reads half a file.
        self._path = path
        self._partial = path.with_name(path.name + ".part")
        self._file = self._partial.open("wb")
        self._render = render
        self._progress = progress
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gzip")
        self._pending: deque[tuple[Future[bytes], int]] = deque()
        self._max_pending = MAX_QUEUED_PIECES
        self.rows = 0
        self._file.write(gzip_member(header))

    def write(self, block: EventBlock, order: IntArray) -> None:
        """Queue the rows `order` picks from block, in that order; waits while the queue is full.

        The workers gather their piece's rows themselves, so the generating thread never
        copies a whole window just to put it in time order.
        """
        for begin in range(0, order.shape[0], PIECE_ROWS):
            rows = order[begin : begin + PIECE_ROWS]
            future = self._pool.submit(self._compress, block, rows)
            self._pending.append((future, int(rows.shape[0])))
            while len(self._pending) > self._max_pending:
                self._flush_one()

    def _compress(self, block: EventBlock, rows: IntArray) -> bytes:
        return gzip_member(self._render(block.take(rows)))

    def _flush_one(self) -> None:
        future, rows = self._pending.popleft()
        self._file.write(future.result())
        self.rows += rows
        if self._progress is not None:
            self._progress(self.rows)

    def close(self) -> None:
        """Write everything still queued, close the file and give it its final name."""
        try:
            while self._pending:
                self._flush_one()
        except BaseException:
            self.abort()
            raise
        self._pool.shutdown(wait=True)
        self._file.close()
        self._partial.replace(self._path)

    def abort(self) -> None:
        """Drop queued work and the partial file (after an error or an interrupt)."""
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._file.close()
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> GzipCsvWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_table_csv(path: Path, table: pa.Table) -> None:
    """A small CSV file with a plain header; values never contain commas or quotes."""
    with path.open("wb") as out:
        out.write((",".join(table.column_names) + "\n").encode())
        pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="none"))
