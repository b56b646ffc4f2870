"""Streaming CSV / CSV.gz reader: Arrow batches of text fields with exact line numbers."""

from __future__ import annotations

import csv
import io
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from cartpulse.sources.base import RawBatch, SourceError
from cartpulse.sources.columns import Header, parse_header
from cartpulse.sources.throttle import ThrottledFile

log = logging.getLogger(__name__)

# Rows longer than a block make Arrow's parser fail; the Python fallback handles them.
_MIN_BLOCK_BYTES = 1 << 20
_MAX_BLOCK_BYTES = 8 << 20
_BYTES_PER_ROW_GUESS = 48
#: How far (in bytes of text) Arrow may read ahead of the rows handed out.
_READ_AHEAD_BYTES = 128 << 20

_Skip = tuple[int, str, str]  # line, raw text, detail


def open_stream(path: Path) -> pa.NativeFile:
    """Open a file, decompressing .gz transparently."""
    compression = "gzip" if path.name.endswith(".gz") else None
    return pa.input_stream(str(path), compression=compression, buffer_size=1 << 20)


class CountedStream:
    """A (possibly gzip) input stream that knows how many bytes of the file it has consumed."""

    def __init__(self, path: Path) -> None:
        self.file = ThrottledFile(path, _READ_AHEAD_BYTES)
        self.stream = pa.PythonFile(self.file, mode="r")

    def position(self) -> int:
        """Bytes of the file read so far."""
        return self.file.position

    def consumed(self, nbytes: int) -> None:
        """The consumer took a block of about `nbytes` of text; the reader may read further."""
        self.file.consumed(nbytes)

    def close(self) -> None:
        """Close the stream and the file."""
        self.stream.close()
        self.file.close()


def read_csv(path: Path, batch_rows: int) -> Iterator[RawBatch]:
    """Yield batches of a CSV file; bad rows come back as rejects, never as exceptions."""
    header = _read_header(path)
    reader = _FastCsv(path, header, batch_rows)
    yield from reader.batches()
    if reader.failed_at is not None:
        yield from _python_csv(path, header, reader.failed_at, batch_rows)


def _read_header(path: Path) -> Header:
    with open_stream(path) as stream:
        head = stream.read(1 << 20)
    first = head.split(b"\n", 1)[0]
    if not first:
        raise SourceError(f"{path}: file is empty (expected a header line)")
    try:
        names = next(csv.reader([first.decode("utf-8-sig").rstrip("\r\n")]))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"{path}: cannot read the header line: {exc}") from None
    return parse_header(str(path), names)


class _FastCsv:
    """Arrow's streaming CSV parser; remembers where it failed so the slow path can resume.

    Arrow numbers rows logically (a quoted value spanning lines is one row); the physical line of
    a row is its logical number plus the newlines inside quoted values of the rows before it.
    """

    def __init__(self, path: Path, header: Header, batch_rows: int) -> None:
        self.path, self.header, self.batch_rows = path, header, batch_rows
        self.skipped: dict[int, tuple[str, str]] = {}  # logical row number -> text, detail
        self.next_row = 2  # logical number of the next row not yet yielded (header is 1)
        self.extra_lines = 0  # newlines inside quoted values of every row before next_row
        self.failed_at: int | None = None

    @property
    def next_line(self) -> int:
        """Physical line of the next row not yet yielded."""
        return self.next_row + self.extra_lines

    def _on_invalid(self, row: pacsv.InvalidRow) -> str:
        detail = f"expected {row.expected_columns} columns, got {row.actual_columns}"
        if row.number is not None:
            self.skipped[row.number] = (row.text, detail)
        return "skip"

    def batches(self) -> Iterator[RawBatch]:
        """Yield batches until the end of the file or the first error Arrow cannot skip."""
        names = list(self.header.file_columns)
        block = min(max(self.batch_rows * _BYTES_PER_ROW_GUESS, _MIN_BLOCK_BYTES), _MAX_BLOCK_BYTES)
        counted = CountedStream(self.path)
        try:
            with counted.stream as stream:
                reader = pacsv.open_csv(
                    stream,
                    read_options=pacsv.ReadOptions(
                        use_threads=False, block_size=block, column_names=names, skip_rows=1
                    ),
                    parse_options=pacsv.ParseOptions(
                        invalid_row_handler=self._on_invalid, ignore_empty_lines=False
                    ),
                    convert_options=pacsv.ConvertOptions(
                        column_types=dict.fromkeys(names, pa.binary()),
                        strings_can_be_null=False,
                        quoted_strings_can_be_null=False,
                    ),
                )
                # Small blocks keep Arrow's read-ahead memory low; coalescing them gives the
                # downstream steps batches of about batch_rows rows.
                block_bytes = block
                pending: list[pa.RecordBatch] = []
                rows = 0
                for block in reader:
                    counted.consumed(block_bytes)
                    pending.append(block)
                    rows += block.num_rows
                    if rows >= self.batch_rows:
                        yield self._to_raw(pa.concat_batches(pending), counted.position())
                        pending, rows = [], 0
                if pending:
                    yield self._to_raw(pa.concat_batches(pending), counted.position())
                yield from self._flush_trailing_skips()
        except pa.ArrowException as exc:
            log.info("csv_fallback source=%s line=%d reason=%r", self.path, self.next_line, exc)
            # Rows after the last yielded one (bad ones included) are read again by the slow path.
            self.skipped.clear()
            self.failed_at = self.next_line
        finally:
            counted.close()

    def _to_raw(self, batch: pa.RecordBatch, position: int) -> RawBatch:
        lines, skipped = self._assign_lines(batch)
        data, bad = _decode_utf8(batch, lines)
        return self.header.raw_batch(data, self.path, skipped + bad, position)

    def _assign_lines(self, batch: pa.RecordBatch) -> tuple[np.ndarray, list[_Skip]]:
        """Physical line of each row, and the invalid rows met before the batch's last row."""
        n = batch.num_rows
        extra = _newlines_per_row(batch)
        row, added = self.next_row, self.extra_lines
        if extra is None and not any(row <= k < row + n + len(self.skipped) for k in self.skipped):
            self.next_row += n
            return np.arange(row + added, row + added + n, dtype=np.int64), []
        # Rare path (bad rows or quoted newlines): walk row by row.
        extra_list = extra.tolist() if extra is not None else [0] * n
        lines = np.empty(n, np.int64)
        rejects: list[_Skip] = []
        for i in range(n):
            while row in self.skipped:
                text, detail = self.skipped.pop(row)
                rejects.append((row + added, text, detail))
                added += text.count("\n")
                row += 1
            lines[i] = row + added
            added += extra_list[i]
            row += 1
        self.next_row, self.extra_lines = row, added
        return lines, rejects

    def _flush_trailing_skips(self) -> Iterator[RawBatch]:
        if not self.skipped:
            return
        rejects: list[_Skip] = []
        for row in sorted(self.skipped):
            text, detail = self.skipped[row]
            rejects.append((row + self.extra_lines, text, detail))
            self.extra_lines += text.count("\n")
        self.skipped.clear()
        schema = pa.schema([(c, pa.binary()) for c in self.header.file_columns])
        empty = pa.RecordBatch.from_pylist([], schema=schema)
        data = _decode_utf8(empty, np.empty(0, np.int64))[0]
        yield self.header.raw_batch(data, self.path, rejects)


def _newlines_per_row(batch: pa.RecordBatch) -> np.ndarray | None:
    """Newlines inside quoted values per row, or None when there are none (the common case)."""
    total: np.ndarray | None = None
    for col in batch.columns:
        data = col.buffers()[2]
        if data is None or not np.any(np.frombuffer(data, np.uint8) == 10):
            continue
        counts = np.array([(v or b"").count(b"\n") for v in col.to_pylist()], np.int64)
        total = counts if total is None else total + counts
    return total


def _decode_utf8(
    batch: pa.RecordBatch, lines: np.ndarray
) -> tuple[pa.RecordBatch, list[tuple[int, str, str]]]:
    """Cast binary fields to text; rows that are not valid UTF-8 become rejects."""
    lines_arr = pa.array(lines, pa.int64())
    try:
        cols = [c.cast(pa.string()) for c in batch.columns]
        return pa.RecordBatch.from_arrays([*cols, lines_arr], [*batch.schema.names, "_line"]), []
    except pa.ArrowInvalid:
        pass
    bad = np.zeros(batch.num_rows, bool)
    for col in batch.columns:
        for i, v in enumerate(col.to_pylist()):
            if v is not None and not _is_utf8(v):
                bad[i] = True
    rejects = []
    for i in np.flatnonzero(bad).tolist():
        fields = [(c[i].as_py() or b"").decode("utf-8", "backslashreplace") for c in batch.columns]
        rejects.append((int(lines[i]), _join_csv(fields), "not valid UTF-8"))
    keep = pa.array(~bad)
    good = batch.filter(keep)
    cols = [c.cast(pa.string()) for c in good.columns]
    lines_kept = pa.array(lines[~bad], pa.int64())
    return pa.RecordBatch.from_arrays([*cols, lines_kept], [*batch.schema.names, "_line"]), rejects


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _join_csv(fields: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


def _python_csv(path: Path, header: Header, start_line: int, batch_rows: int) -> Iterator[RawBatch]:
    """Slow, forgiving reader for the rest of a file Arrow could not parse (e.g. huge fields)."""
    csv.field_size_limit(sys.maxsize)
    width = len(header.file_columns)
    with open_stream(path) as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline="")
        reader = csv.reader(text, strict=False)
        rows: list[list[str]] = []
        lines: list[int] = []
        rejects: list[tuple[int, str, str]] = []
        blank = 0
        line = 1
        for fields in reader:
            row_line, line = line, reader.line_num + 1
            if row_line < start_line:
                continue
            bad = _python_row_problem(fields, width)
            if not fields:  # an empty line is not a row
                blank += 1
            elif bad is not None:
                rejects.append((row_line, _join_csv([_printable(f) for f in fields]), bad))
            else:
                rows.append(fields)
                lines.append(row_line)
            if len(rows) + len(rejects) >= batch_rows:
                yield _python_batch(header, path, rows, lines, rejects, blank)
                rows, lines, rejects, blank = [], [], [], 0
        if rows or rejects or blank:
            yield _python_batch(header, path, rows, lines, rejects, blank)


def _python_row_problem(fields: list[str], width: int) -> str | None:
    if len(fields) != width:
        return f"expected {width} columns, got {len(fields)}"
    if any(_has_surrogates(f) for f in fields):
        return "not valid UTF-8"
    return None


def _has_surrogates(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _printable(value: str) -> str:
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _python_batch(
    header: Header,
    path: Path,
    rows: list[list[str]],
    lines: list[int],
    rejects: list[tuple[int, str, str]],
    blank: int,
) -> RawBatch:
    names = list(header.file_columns)
    arrays = [pa.array([r[i] for r in rows], pa.string()) for i in range(len(names))]
    data = pa.RecordBatch.from_arrays([*arrays, pa.array(lines, pa.int64())], [*names, "_line"])
    return header.raw_batch(data, path, rejects, blank_lines=blank)
