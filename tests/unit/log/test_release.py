"""release_before: dropping memory maps of segments a consumer has passed."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

import pyarrow as pa
import pytest

from cartpulse.log import EmbeddedEventLog
from cartpulse.schema import EVENT_SCHEMA


def batch(n: int, first: int) -> pa.Table:
    table = EVENT_SCHEMA.empty_table()
    rows = {
        "event_time": pa.array(
            [1_570_000_000_000_000 + i for i in range(n)], pa.timestamp("us", tz="UTC")
        ),
        "event_type": ["view"] * n,
        "product_id": pa.array(range(first, first + n), pa.int64()),
        "category_id": pa.nulls(n, pa.int64()),
        "category_code": pa.nulls(n, pa.string()),
        "brand": pa.nulls(n, pa.string()),
        "price": pa.array([1.0] * n),
        "user_id": pa.array([1] * n, pa.int64()),
        "user_session": pa.nulls(n, pa.string()),
    }
    return pa.table(rows, schema=table.schema)


def test_released_segments_are_mapped_again_on_read(tmp_path: Path) -> None:
    log = EmbeddedEventLog(tmp_path / "log", writable=True, fsync="never", segment_bytes=4096)
    for i in range(10):
        log.append(batch(50, i * 50))
    first = log.read(0, 500).table.column("product_id").to_pylist()
    log.release_before(400)
    again = log.read(0, 500).table.column("product_id").to_pylist()
    assert first == again == list(range(500))
    log.close()


def _cached_pages(path: Path) -> int:
    """How many pages of the file are in the OS file cache (mincore on a fresh mapping)."""
    size = path.stat().st_size
    page = mmap.PAGESIZE
    with path.open("rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as mapped:
        libc = ctypes.CDLL(None, use_errno=True)
        vector = (ctypes.c_ubyte * ((size + page - 1) // page))()
        start = ctypes.addressof(ctypes.c_char.from_buffer(mapped))
        if libc.mincore(ctypes.c_void_p(start), ctypes.c_size_t(size), vector) != 0:
            raise OSError(ctypes.get_errno(), "mincore failed")
        return sum(v & 1 for v in vector)


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise on this OS")
def test_the_writer_lets_the_os_drop_pages_of_segments_every_consumer_passed(
    tmp_path: Path,
) -> None:
    log = EmbeddedEventLog(tmp_path / "log", writable=True, fsync="always", segment_bytes=65536)
    for i in range(40):
        log.append(batch(200, i * 200))
    segments = sorted((tmp_path / "log").glob("*.arrows"))
    assert len(segments) >= 3
    first, last = segments[0], segments[-1]
    assert _cached_pages(first) > 0  # just written
    log.release_before(log.end_offset())
    assert _cached_pages(first) == 0
    assert _cached_pages(last) > 0  # the active segment is still being written
    assert log.read(0, 8000).table.column("product_id").to_pylist() == list(range(8000))
    log.close()


def test_a_reader_leaves_the_file_cache_alone(tmp_path: Path) -> None:
    writer = EmbeddedEventLog(tmp_path / "log", writable=True, fsync="always", segment_bytes=65536)
    for i in range(40):
        writer.append(batch(200, i * 200))
    reader = EmbeddedEventLog(tmp_path / "log")
    first = sorted((tmp_path / "log").glob("*.arrows"))[0]
    cached = _cached_pages(first)
    reader.release_before(reader.end_offset())
    assert _cached_pages(first) == cached > 0
    reader.close()
    writer.close()
