"""The `EventLog` contract, checked on every implementation (embedded on disk, in memory)."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cartpulse.log import (
    EmbeddedEventLog,
    EventLog,
    MemoryEventLog,
    OffsetTruncatedError,
)
from cartpulse.log.retention import SegmentInfo, segments_to_delete
from cartpulse.schema import EVENT_SCHEMA

from ._support import event_batch

LogFactory = Callable[..., AbstractContextManager[EventLog]]


@contextmanager
def embedded(segment_bytes: int = 4096) -> Iterator[EventLog]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedEventLog(
            Path(tmp), writable=True, segment_bytes=segment_bytes, fsync="never"
        ) as log,
    ):
        yield log


@contextmanager
def memory(segment_bytes: int = 0) -> Iterator[EventLog]:
    with MemoryEventLog() as log:
        yield log


IMPLEMENTATIONS = pytest.mark.parametrize(
    "make_log", [embedded, memory], ids=["embedded", "memory"]
)


@IMPLEMENTATIONS
def test_implements_the_protocol(make_log: LogFactory) -> None:
    with make_log() as log:
        assert isinstance(log, EventLog)
        assert log.schema.equals(EVENT_SCHEMA)


@IMPLEMENTATIONS
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=12),
    reads=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 2000)), min_size=1, max_size=8),
    segment_bytes=st.sampled_from([1, 4096, 40_000, 1 << 20]),
)
def test_reads_return_exactly_the_appended_events(
    make_log: LogFactory,
    sizes: list[int],
    reads: list[tuple[float, int]],
    segment_bytes: int,
) -> None:
    batches = [event_batch(n, seq) for seq, n in enumerate(sizes)]
    expected = pa.Table.from_batches(batches, schema=EVENT_SCHEMA)
    with make_log(segment_bytes) as log:
        next_offset = 0
        for b in batches:
            result = log.append(b)
            assert result.first_offset == next_offset
            next_offset += b.num_rows
            assert result.next_offset == next_offset
        assert log.end_offset() == expected.num_rows
        for where, max_rows in reads:
            start = int(where * expected.num_rows)
            got = log.read(start, max_rows)
            assert got.start == start
            assert got.table.equals(expected.slice(start, max_rows))


@IMPLEMENTATIONS
def test_retention_respects_the_slowest_consumer(
    make_log: LogFactory,
) -> None:
    with make_log(4096) as log:
        for seq in range(10):
            log.append(event_batch(100, seq))
        log.commit("fast", 1000)
        log.commit("slow", 450)
        assert log.apply_retention(max_bytes=0, max_age_s=None) > 0
        start = log.start_offset()
        assert 0 < start <= 450
        with pytest.raises(OffsetTruncatedError) as err:
            log.read(start - 1, 1)
        assert err.value.earliest == start
        assert log.read(450, 10).table.column("user_id").to_pylist() == [4] * 10


def test_segments_to_delete_stops_at_the_first_segment_that_must_stay() -> None:
    segs = [SegmentInfo(i * 10, i * 10 + 10, 100, modified_at=float(i)) for i in range(5)]

    def bases(**kw: object) -> list[int]:
        opts: dict[str, object] = {"max_bytes": None, "max_age_s": None, "now": 10.0, **kw}
        return [s.base for s in segments_to_delete(segs, **opts)]  # type: ignore[arg-type]

    assert bases(max_bytes=0, min_committed=None) == []  # no consumer: nothing proven read
    assert bases(max_bytes=0, min_committed=25) == [0, 10]  # the consumer is inside 20..30
    assert bases(max_bytes=350, min_committed=50) == [0, 10]  # 500 bytes, keep at most 350
    assert bases(max_age_s=9.5, min_committed=50) == [0]  # only segment 0 is older than 9.5 s
    assert bases(max_bytes=10**6, max_age_s=100, min_committed=50) == []  # within limits
    assert bases(max_bytes=0, min_committed=0, force=True) == [0, 10, 20, 30]  # never the newest


@IMPLEMENTATIONS
def test_wait_for_wakes_when_another_thread_appends(
    make_log: LogFactory,
) -> None:
    with make_log() as log:
        assert log.wait_for(0, timeout_s=0.01) is False
        timer = threading.Timer(0.05, lambda: log.append(event_batch(2)))
        timer.start()
        assert log.wait_for(1, timeout_s=10) is True
        timer.join()
        assert log.wait_for(2, timeout_s=0.01) is False
