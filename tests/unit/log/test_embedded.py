"""The embedded event log: offsets, reads, schema checks, commits, retention, locking,
recovery and cross-process readers."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from cartpulse.log import (
    EmbeddedEventLog,
    EventLogError,
    LogLockedError,
    OffsetOutOfRangeError,
    OffsetTruncatedError,
    ReadOnlyLogError,
    SchemaMismatchError,
    open_event_log,
)
from cartpulse.log import index as log_index
from cartpulse.schema import EVENT_SCHEMA
from cartpulse.settings import Settings

from ._support import event_batch, python_child, run_python

SMALL_SEGMENT = 16 * 1024  # a few batches per segment, so rolls happen often


def writer(path: Path, **kw: object) -> EmbeddedEventLog:
    opts: dict[str, object] = {"segment_bytes": SMALL_SEGMENT, **kw}
    return EmbeddedEventLog(path, writable=True, **opts)  # type: ignore[arg-type]


def fill(log: EmbeddedEventLog, sizes: list[int]) -> pa.Table:
    """Append one batch per size (seq = position) and return what the log should hold."""
    batches = [event_batch(n, seq) for seq, n in enumerate(sizes)]
    for b in batches:
        log.append(b)
    return pa.Table.from_batches(batches, schema=EVENT_SCHEMA)


def segment_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.glob("*.arrows"))


# -- offsets and reads ------------------------------------------------------------------------


def test_offsets_are_contiguous_across_appends_and_segment_rolls(tmp_path: Path) -> None:
    with writer(tmp_path) as log:
        expected_first = 0
        for seq, n in enumerate([1, 50, 7, 300, 120, 1, 999, 64] * 3):
            result = log.append(event_batch(n, seq))
            assert (result.first_offset, result.last_offset) == (
                expected_first,
                expected_first + n - 1,
            )
            expected_first += n
        assert log.end_offset() == expected_first
        assert log.start_offset() == 0
    names = segment_files(tmp_path)
    assert len(names) > 3
    # A segment's name is its first offset, and every segment continues the previous one.
    bases = [int(n.split(".")[0]) for n in names]
    assert bases[0] == 0 and bases == sorted(set(bases))
    with writer(tmp_path) as log:
        assert log.end_offset() == expected_first
        assert log.append(event_batch(5, 99)).first_offset == expected_first


def test_read_from_any_offset(tmp_path: Path) -> None:
    with writer(tmp_path) as log:
        expected = fill(log, [100, 250, 3, 400, 77, 500, 1, 220])
        end = expected.num_rows
        assert len(segment_files(tmp_path)) > 2
        cases = [
            (0, 10),
            (0, end),
            (50, 100),
            (99, 2),
            (100, 1),
            (349, 400),
            (352, 10**9),
            (end - 1, 5),
        ]
        for start, max_rows in cases:
            got = log.read(start, max_rows)
            want = expected.slice(start, max_rows)
            assert got.start == start
            assert got.table.equals(want), (start, max_rows)
            assert got.end == start + want.num_rows
            assert got.offsets().to_pylist() == list(range(start, got.end))
        at_end = log.read(end, 10)
        assert at_end.num_rows == 0 and at_end.table.schema.equals(EVENT_SCHEMA)
        assert log.read(5, 0).num_rows == 0
        with pytest.raises(OffsetOutOfRangeError, match=f"end offset {end}"):
            log.read(end + 1, 10)


def test_table_with_many_chunks_is_one_atomic_append(tmp_path: Path) -> None:
    table = pa.Table.from_batches([event_batch(10, 1), event_batch(0, 2), event_batch(5, 3)])
    with writer(tmp_path) as log:
        result = log.append(table)
        assert (result.first_offset, result.last_offset, result.rows) == (0, 14, 15)
        assert log.read(0, 100).table.column("user_id").to_pylist() == [1] * 10 + [3] * 5


def test_empty_batch_is_a_no_op(tmp_path: Path) -> None:
    with writer(tmp_path) as log:
        log.append(event_batch(10))
        size_before = (tmp_path / f"{0:020d}.arrows").stat().st_size
        result = log.append(event_batch(0))
        assert result.rows == 0 and result.next_offset == 10
        assert log.end_offset() == 10
        assert (tmp_path / f"{0:020d}.arrows").stat().st_size == size_before


def test_reads_are_zero_copy_views_of_the_segment(tmp_path: Path) -> None:
    with writer(tmp_path, segment_bytes=1 << 20) as log:
        log.append(event_batch(1000))
        before = pa.total_allocated_bytes()
        table = log.read(0, 1000).table
        # Memory-mapped reads allocate nothing from Arrow's pool for the column data.
        assert pa.total_allocated_bytes() - before < 10_000
        assert table.column("price").to_numpy()[4] == 5.0


# -- schema ----------------------------------------------------------------------------------


def test_schema_mismatch_is_refused_with_the_column_named(tmp_path: Path) -> None:
    good = event_batch(3)
    wrong_type = good.set_column(6, "price", pa.array(["1.0", "2", "3"]))
    missing = good.drop_columns(["brand"])
    extra = good.append_column("coupon", pa.array([1, 2, 3]))
    reordered = good.select(list(reversed(good.schema.names)))
    null_user = good.set_column(7, "user_id", pa.array([1, None, 3], pa.int64()))
    with writer(tmp_path) as log:
        for bad, words in [
            (wrong_type, "column `price` is string, expected double"),
            (missing, "missing columns `brand`"),
            (extra, "unexpected columns `coupon`"),
            (reordered, "columns in order"),
            (null_user, "`user_id` has 1 nulls"),
        ]:
            with pytest.raises(SchemaMismatchError, match=words):
                log.append(bad)
        assert log.end_offset() == 0
        with pytest.raises(SchemaMismatchError, match="RecordBatch or Table"):
            log.append([1, 2, 3])


def test_same_columns_with_other_nullability_and_metadata_are_accepted(tmp_path: Path) -> None:
    loose = pa.schema([f.with_nullable(True) for f in EVENT_SCHEMA]).with_metadata({"x": "y"})
    batch = pa.RecordBatch.from_arrays(event_batch(4).columns, schema=loose)
    with writer(tmp_path) as log:
        log.append(batch)
        assert log.read(0, 4).table.schema.equals(EVENT_SCHEMA, check_metadata=True)


def test_opening_a_log_with_another_schema_is_refused(tmp_path: Path) -> None:
    with writer(tmp_path) as log:
        log.append(event_batch(3))
    other = pa.schema([pa.field("x", pa.int64())])
    with pytest.raises(SchemaMismatchError, match="opened with schema"):
        EmbeddedEventLog(tmp_path, writable=True, schema=other)
    with pytest.raises(SchemaMismatchError, match="opened with schema"):
        EmbeddedEventLog(tmp_path, schema=other)
    # The refused open must not have "recovered" (truncated) anything.
    with writer(tmp_path) as log:
        assert log.read(0, 10).table.equals(pa.Table.from_batches([event_batch(3)]))


# -- consumers --------------------------------------------------------------------------------


def test_consumer_commits_persist_across_reopen(tmp_path: Path) -> None:
    with writer(tmp_path) as log:
        fill(log, [10, 20])
        assert log.committed("archive") is None
        log.commit("archive", 10)
        log.commit("sales", 30)
        log.commit("archive", 25)
        with pytest.raises(OffsetOutOfRangeError, match="ends at 30"):
            log.commit("archive", 31)
        with pytest.raises(EventLogError, match="invalid"):
            log.commit("../etc", 1)
    with writer(tmp_path) as log:
        assert log.committed("archive") == 25
        assert log.consumers() == {"archive": 25, "sales": 30}
        log.remove_consumer("sales")
    with EmbeddedEventLog(tmp_path) as reader:
        assert reader.consumers() == {"archive": 25}
        reader.commit("dashboard", 5)  # readers may commit their own offsets
    with writer(tmp_path) as log:
        assert log.committed("dashboard") == 5


# -- retention --------------------------------------------------------------------------------


def test_retention_deletes_only_fully_consumed_old_segments(tmp_path: Path) -> None:
    with writer(tmp_path) as log:
        expected = fill(log, [200] * 12)
        bases = [int(n.split(".")[0]) for n in segment_files(tmp_path)]
        assert len(bases) >= 4
        # Nobody registered: nothing is proven read, nothing goes.
        assert log.apply_retention(max_bytes=0, max_age_s=None) == 0
        # The consumer is in the middle of the third segment: only the first two may go.
        log.commit("archive", bases[2] + 1)
        log.commit("sales", bases[3])
        sizes = sum(
            (tmp_path / f"{b:020d}{s}").stat().st_size
            for b in bases[:2]
            for s in (".arrows", ".index")
        )
        freed = log.apply_retention(max_bytes=0, max_age_s=None)
        assert freed == sizes
        assert log.start_offset() == bases[2]
        assert [int(n.split(".")[0]) for n in segment_files(tmp_path)] == bases[2:]
        with pytest.raises(
            OffsetTruncatedError, match=f"earliest available offset is {bases[2]}"
        ) as err:
            log.read(0, 10)
        assert err.value.earliest == bases[2]
        assert log.read(bases[2], 10**9).table.equals(expected.slice(bases[2]))
        # Within limits: nothing more goes even though it is consumed.
        log.commit("archive", log.end_offset())
        log.commit("sales", log.end_offset())
        assert log.apply_retention(max_bytes=10**12, max_age_s=3600) == 0
        # Old by age, all consumed: everything but the active segment goes.
        assert log.apply_retention(max_bytes=None, max_age_s=0) > 0
        assert len(segment_files(tmp_path)) == 1
        assert log.start_offset() == int(segment_files(tmp_path)[0].split(".")[0])
        assert log.read(log.start_offset(), 10**9).table.equals(expected.slice(log.start_offset()))


def test_forced_retention_ignores_consumers_but_keeps_the_active_segment(tmp_path: Path) -> None:
    with writer(tmp_path) as log:
        fill(log, [200] * 8)
        log.commit("slow", 0)
        assert log.apply_retention(max_bytes=0, max_age_s=None) == 0
        assert log.apply_retention(max_bytes=0, max_age_s=None, force=True) > 0
        assert len(segment_files(tmp_path)) == 1
        assert log.end_offset() == 1600
        assert log.append(event_batch(1)).first_offset == 1600


def test_a_reader_sees_retention_and_gets_a_clear_error(tmp_path: Path) -> None:
    with writer(tmp_path) as log, EmbeddedEventLog(tmp_path) as reader:
        fill(log, [200] * 8)
        assert reader.read(0, 10).num_rows == 10
        log.apply_retention(max_bytes=0, max_age_s=None, force=True)
        with pytest.raises(OffsetTruncatedError, match="earliest available offset"):
            reader.read(300, 10)
        assert reader.start_offset() == log.start_offset() > 0
    with pytest.raises(ReadOnlyLogError):
        EmbeddedEventLog(tmp_path).apply_retention(max_bytes=0, max_age_s=None)


# -- one writer, many readers ---------------------------------------------------------------


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    with writer(tmp_path):
        with pytest.raises(LogLockedError, match=f"by process {os.getpid()}"):
            writer(tmp_path)
        out = run_python(
            """
            import sys
            from cartpulse.log import EmbeddedEventLog, LogLockedError
            try:
                EmbeddedEventLog(sys.argv[1], writable=True)
            except LogLockedError as exc:
                print("refused", exc)
            """,
            str(tmp_path),
        )
        assert out.startswith("refused") and "only one writer" in out
    with writer(tmp_path) as log:  # the lock goes with close()
        assert log.end_offset() == 0


def test_read_only_log_refuses_writes_and_missing_folder_is_explained(tmp_path: Path) -> None:
    with writer(tmp_path):
        pass
    with (
        EmbeddedEventLog(tmp_path) as reader,
        pytest.raises(ReadOnlyLogError, match="writable=True"),
    ):
        reader.append(event_batch(1))
    with pytest.raises(EventLogError, match="no event log at"):
        EmbeddedEventLog(tmp_path / "nope")


def test_reader_in_another_process_sees_appends(tmp_path: Path) -> None:
    with writer(tmp_path) as log:
        fill(log, [100, 200, 300])
        reader = python_child(
            """
            import sys
            from cartpulse.log import EmbeddedEventLog
            with EmbeddedEventLog(sys.argv[1]) as log:
                print("ready", log.end_offset(), flush=True)
                ok = log.wait_for(int(sys.argv[2]), timeout_s=20)
                t = log.read(0, 10**9).table
                print("seen", ok, log.end_offset(), t.num_rows, sorted(set(t.column("user_id").to_pylist())), flush=True)
            """,
            str(tmp_path),
            "1099",
        )
        assert reader.stdout is not None
        assert reader.stdout.readline().split() == ["ready", "600"]
        time.sleep(0.1)
        for seq, n in [(3, 250), (4, 250)]:  # the second append crosses a segment roll
            log.append(event_batch(n, seq))
        out, err = reader.communicate(timeout=30)
    assert out.split() == ["seen", "True", "1100", "1100", "[0,", "1,", "2,", "3,", "4]"], err


def test_wait_for_wakes_up_on_append_from_another_process(tmp_path: Path) -> None:
    with writer(tmp_path):
        pass
    with EmbeddedEventLog(tmp_path) as reader:
        assert reader.wait_for(0, timeout_s=0.05) is False
        child = python_child(
            """
            import sys, time
            from cartpulse.log import EmbeddedEventLog
            sys.path.insert(0, sys.argv[2])
            from _support import event_batch
            with EmbeddedEventLog(sys.argv[1], writable=True) as log:
                time.sleep(0.3)
                log.append(event_batch(5))
                print("appended", time.monotonic(), flush=True)
                time.sleep(1)
            """,
            str(tmp_path),
            str(Path(__file__).parent),
        )
        started = time.monotonic()
        assert reader.wait_for(4, timeout_s=20) is True
        woke = time.monotonic()
        assert child.stdout is not None
        appended_at = float(child.stdout.readline().split()[1])
        child.wait(timeout=20)
        assert woke - started < 10
        assert woke - appended_at < 0.5  # polling every few ms, not seconds
        assert reader.wait_for(5, timeout_s=0.01) is False


def test_wait_for_in_the_writer_process_wakes_on_append(tmp_path: Path) -> None:
    with writer(tmp_path) as log:
        timer = threading.Timer(0.1, lambda: log.append(event_batch(3)))
        timer.start()
        assert log.wait_for(2, timeout_s=10) is True
        assert log.wait_for(3, timeout_s=0.01) is False
        timer.join()


# -- durability and recovery -------------------------------------------------------------------


def count_fdatasync(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the file handles fdatasync is called on (and still sync them)."""
    calls: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    return calls


def test_fsync_always_syncs_before_append_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_fdatasync(monkeypatch)
    with writer(tmp_path, fsync="always") as log:
        calls.clear()
        log.append(event_batch(10))
        assert len(calls) == 2  # data, then index


def test_fsync_batch_syncs_in_the_background_within_the_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_fdatasync(monkeypatch)
    with writer(tmp_path, fsync="batch", fsync_interval_ms=20) as log:
        calls.clear()
        log.append(event_batch(10))
        assert calls == []  # the append itself does not wait for the disk
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(calls) >= 2
    with writer(tmp_path, fsync="never") as log:
        calls.clear()
        log.append(event_batch(10))
        time.sleep(0.05)
        assert calls == []


def _active_paths(path: Path) -> tuple[Path, Path]:
    data = sorted(path.glob("*.arrows"))[-1]
    return data, data.with_suffix(".index")


def test_torn_tail_is_truncated_and_readers_never_see_it(tmp_path: Path) -> None:
    with writer(tmp_path, segment_bytes=1 << 20) as log:
        expected = fill(log, [100, 200, 300])
    data, idx = _active_paths(tmp_path)
    good_data, good_idx = data.stat().st_size, idx.stat().st_size
    # A crash mid-append: half a batch written, and part of its index record.
    partial = event_batch(50, 9).serialize().to_pybytes()
    with data.open("ab") as fh:
        fh.write(partial[: len(partial) // 2])
    with idx.open("ab") as fh:
        fh.write(b"\xff" * (log_index.RECORD_SIZE // 2))
    with EmbeddedEventLog(tmp_path) as reader:
        assert reader.end_offset() == 600
        assert reader.read(0, 10**9).table.equals(expected)
    with writer(tmp_path) as log:
        assert (data.stat().st_size, idx.stat().st_size) == (good_data, good_idx)
        assert log.read(0, 10**9).table.equals(expected)
        assert log.append(event_batch(1, 3)).first_offset == 600


def test_an_append_without_its_commit_record_is_dropped_whole(tmp_path: Path) -> None:
    with writer(tmp_path, segment_bytes=1 << 20) as log:
        fill(log, [100])
        log.append(pa.Table.from_batches([event_batch(10, 1), event_batch(20, 1)]))
    _, idx = _active_paths(tmp_path)
    # Crash between the two index records of the second append: drop its last record.
    raw = idx.read_bytes()
    idx.write_bytes(raw[: -log_index.RECORD_SIZE])
    with EmbeddedEventLog(tmp_path) as reader:
        assert reader.end_offset() == 100
    with writer(tmp_path) as log:
        assert log.end_offset() == 100
        assert log.read(0, 10**9).table.column("user_id").to_pylist() == [0] * 100


def test_batch_whose_bytes_never_reached_disk_is_dropped_on_recovery(tmp_path: Path) -> None:
    with writer(tmp_path, segment_bytes=1 << 20) as log:
        fill(log, [100, 200])
    data, _ = _active_paths(tmp_path)
    # Power loss with fsync "batch": the index reached disk but the last batch's bytes did not.
    raw = bytearray(data.read_bytes())
    raw[-200:] = bytes(200)
    data.write_bytes(bytes(raw))
    with writer(tmp_path) as log:
        assert log.end_offset() == 100
        assert log.read(0, 10**9).table.equals(pa.Table.from_batches([event_batch(100, 0)]))


def test_orphan_data_file_from_a_crash_during_roll_is_removed(tmp_path: Path) -> None:
    with writer(tmp_path, segment_bytes=1 << 20) as log:
        fill(log, [100])
    orphan = tmp_path / f"{100:020d}.arrows"
    orphan.write_bytes(b"half a header")
    with writer(tmp_path) as log:
        assert not orphan.exists()
        assert log.end_offset() == 100


def test_open_event_log_uses_the_home_and_fsync_setting(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, fsync="never")
    with open_event_log(settings, writable=True) as log:
        log.append(event_batch(2))
    assert (tmp_path / "log" / f"{0:020d}.index").exists()
    with open_event_log(settings) as reader:
        assert reader.end_offset() == 2


def test_records_detect_tearing(tmp_path: Path) -> None:
    raw = log_index.encode(0, 8, [16, 24], [3, 4], [1, 2])
    assert len(log_index.decode(raw, 0, 8).entries) == 2
    torn = bytearray(raw)
    torn[-3] ^= 0xFF
    assert len(log_index.decode(bytes(torn), 0, 8).entries) == 0  # whole append dropped
    assert len(log_index.decode(raw, 1, 8).entries) == 0  # does not continue the offsets
    assert np.frombuffer(raw, log_index.RECORD_DTYPE)["flags"].tolist() == [0, 1]


def test_close_is_idempotent_and_a_closed_log_says_so(tmp_path: Path) -> None:
    log = writer(tmp_path)
    log.append(event_batch(1))
    log.close()
    log.close()
    with pytest.raises(EventLogError, match="is closed"):
        log.read(0, 1)
    with pytest.raises(EventLogError, match="is closed"):
        log.append(event_batch(1))
    assert log.wait_for(5, timeout_s=0.01) is False


def test_invalid_options_name_the_option(tmp_path: Path) -> None:
    with pytest.raises(EventLogError, match="fsync='sometimes' is invalid"):
        EmbeddedEventLog(tmp_path, writable=True, fsync="sometimes")  # type: ignore[arg-type]
    with pytest.raises(EventLogError, match="segment_bytes=0"):
        EmbeddedEventLog(tmp_path, writable=True, segment_bytes=0)
    dict_schema = pa.schema([pa.field("t", pa.dictionary(pa.int32(), pa.string()))])
    with pytest.raises(SchemaMismatchError, match="dictionary-encoded"):
        EmbeddedEventLog(tmp_path, writable=True, schema=dict_schema)
