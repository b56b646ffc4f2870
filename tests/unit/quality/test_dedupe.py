"""Exact duplicates: within a batch, across batches and files, and the event-time window."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cartpulse.quality.dedupe import DedupeState, dedupe, event_times_us, row_keys
from cartpulse.quality.validate import Validator

from ._support import BASE, HEADER, ingest, raw_batch, raw_row, read_lake, write_csv

S = 1_000_000  # µs per second
HOUR = 3_600
T0 = 1_569_888_000 * S  # 2019-10-01 00:00:00 UTC
INGESTED_AT = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def keys(*values: int) -> np.ndarray:
    return np.array(values, np.uint64)


def times(*seconds: float) -> np.ndarray:
    return np.array([T0 + int(s * S) for s in seconds], np.int64)


def test_duplicates_within_a_batch_keep_the_first_occurrence() -> None:
    keep, state = dedupe(keys(7, 8, 7, 9, 8, 7), times(0, 1, 0, 2, 1, 0), DedupeState.empty(), HOUR)
    assert keep.tolist() == [True, True, False, True, False, False]
    assert sorted(state.keys.tolist()) == [7, 8, 9]
    assert state.max_time_us == T0 + 2 * S


@settings(max_examples=200, deadline=None)
@given(
    batches=st.lists(
        st.lists(
            st.sampled_from(
                [0, 1, 7, 2**63, 2**64 - 1, 2**64 - 2, 12345, (5 << 16) + 3, (5 << 16) + 9]
            ),
            max_size=25,
        ),
        max_size=4,
    )
)
def test_a_key_is_kept_at_its_first_sight_only(batches: list[list[int]]) -> None:
    """Against a set: repeats within and across batches (all inside the window) are dropped;
    distinct keys that share their top 48 bits stay distinct."""
    state = DedupeState.empty()
    seen: set[int] = set()
    for i, batch in enumerate(batches):
        expected = []
        for key in batch:
            expected.append(key not in seen)
            seen.add(key)
        keep, state = dedupe(keys(*batch), times(*[i] * len(batch)), state, HOUR)
        assert keep.tolist() == expected


def test_duplicates_across_batches() -> None:
    keep1, state = dedupe(keys(1, 2), times(0, 1), DedupeState.empty(), HOUR)
    keep2, state = dedupe(keys(2, 3, 1, 3), times(1, 5, 0, 5), state, HOUR)
    keep3, state = dedupe(keys(3, 4), times(5, 6), state, HOUR)
    assert keep1.tolist() == [True, True]
    assert keep2.tolist() == [False, True, False, False]
    assert keep3.tolist() == [False, True]
    assert state.keys.tolist() == [1, 2, 3, 4]  # sorted, each once


def test_keys_at_both_ends_of_the_uint64_range() -> None:
    big = np.iinfo(np.uint64).max
    _, state = dedupe(keys(0, big, 2**63), times(0, 0, 0), DedupeState.empty(), HOUR)
    keep, _ = dedupe(keys(big, 2**63 + 1, 0, 1), times(0, 0, 0, 0), state, HOUR)
    assert keep.tolist() == [False, True, False, True]


@pytest.mark.parametrize(
    ("later_s", "caught"),
    [
        (HOUR - 1, True),
        (HOUR, True),  # exactly window_s of event time since: still remembered
        (HOUR + 1, False),  # more than window_s: forgotten
        (5 * HOUR, False),
    ],
)
def test_window_eviction_by_event_time(later_s: int, caught: bool) -> None:
    _, state = dedupe(keys(42), times(0), DedupeState.empty(), HOUR)
    # Event time moves on (other events), then the duplicate of key 42 arrives late.
    _, state = dedupe(keys(43), times(later_s), state, HOUR)
    keep, _ = dedupe(keys(42), times(0), state, HOUR)
    assert keep.tolist() == [not caught]


def test_window_is_measured_from_the_latest_event_time_ever_seen() -> None:
    _, state = dedupe(keys(1), times(0), DedupeState.empty(), HOUR)
    _, state = dedupe(keys(2), times(HOUR + 10), state, HOUR)  # 1 is forgotten here
    _, state = dedupe(keys(3), times(5), state, HOUR)  # an old event does not bring it back
    assert 1 not in state.keys.tolist()
    assert state.max_time_us == T0 + (HOUR + 10) * S
    keep, _ = dedupe(keys(1), times(0), state, HOUR)
    assert keep.tolist() == [True]


def test_larger_window_remembers_longer() -> None:
    _, state = dedupe(keys(42), times(0), DedupeState.empty(), 2 * HOUR)
    _, state = dedupe(keys(43), times(HOUR + 600), state, 2 * HOUR)
    keep, _ = dedupe(keys(42), times(0), state, 2 * HOUR)
    assert keep.tolist() == [False]


def test_all_duplicate_and_empty_batches_keep_the_state() -> None:
    _, state = dedupe(keys(5, 6), times(0, 1), DedupeState.empty(), HOUR)
    keep, after = dedupe(keys(5, 6, 5), times(0, 1, 0), state, HOUR)
    assert keep.tolist() == [False, False, False]
    assert after.keys.tolist() == [5, 6]
    keep, after = dedupe(keys(), times(), after, HOUR)
    assert keep.tolist() == []
    assert after.keys.tolist() == [5, 6]
    assert len(after) == 2


def test_row_keys_of_a_clean_table_match_the_validators() -> None:
    v = Validator()
    try:
        out = v.validate(raw_batch([raw_row(), raw_row(price="3")]), INGESTED_AT)
    finally:
        v.close()
    assert row_keys(out.clean).tolist() == out.keys.tolist()
    assert event_times_us(out.clean).tolist() == [T0, T0]


# --- through ingest_files: what a user sees ---------------------------------------------------


def row(**values: str) -> list[str]:
    merged = {**BASE, **values}
    return [merged[c] for c in HEADER]


def test_exact_and_near_duplicates_in_a_file(tmp_path: Path) -> None:
    rows = [
        row(),  # kept
        row(),  # exact duplicate
        row(event_time="2019-10-01 00:00:01 UTC"),  # 1 s later: kept
        row(price="2.63"),  # one field different: kept
        row(user_session=""),  # null session vs a session: kept
        row(brand=" RUNAIL "),  # equal after normalisation: duplicate
        row(event_time="2019-10-01T02:00:00+02:00"),  # same instant, other style: duplicate
        row(price="2.620"),  # same number: duplicate
        row(event_type="cart"),  # kept
        row(event_type="cart"),  # duplicate
    ]
    report = ingest(tmp_path / "home", write_csv(tmp_path / "d.csv", rows))
    assert (report["read"], report["clean"], report["duplicates"]) == (10, 5, 5)
    lake = read_lake(tmp_path / "home")
    got = sorted(
        (r["event_time"].second, r["event_type"], r["price"], r["user_session"] is None)
        for r in lake.to_pylist()
    )
    assert got == [
        (0, "cart", 2.62, False),
        (0, "view", 2.62, False),
        (0, "view", 2.62, True),
        (0, "view", 2.63, False),
        (1, "view", 2.62, False),
    ]


def test_rejected_rows_are_never_counted_as_duplicates(tmp_path: Path) -> None:
    rows = [row(price="-1"), row(price="-1"), row(), row()]
    report = ingest(tmp_path / "home", write_csv(tmp_path / "r.csv", rows))
    assert (report["clean"], report["quarantined"], report["duplicates"]) == (1, 2, 1)


def test_duplicates_across_files_and_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = write_csv(tmp_path / "a.csv", [row(product_id="1"), row(product_id="2")])
    second = write_csv(tmp_path / "b.csv", [row(product_id="2"), row(product_id="3")])
    third = write_csv(tmp_path / "c.csv", [row(product_id="3"), row(product_id="1")])
    report = ingest(home, first, second)
    assert (report["clean"], report["duplicates"]) == (3, 1)
    report = ingest(home, third)  # a later run remembers the earlier ones
    assert (report["read"], report["clean"], report["duplicates"]) == (2, 0, 2)
    assert sorted(read_lake(home).column("product_id").to_pylist()) == [1, 2, 3]


@pytest.mark.parametrize(("gap", "caught"), [("00:59:59", True), ("01:00:01", False)])
def test_window_through_ingest(tmp_path: Path, gap: str, caught: bool) -> None:
    home = tmp_path / "home"
    a = write_csv(tmp_path / "a.csv", [row(product_id="1")])
    later = write_csv(tmp_path / "b.csv", [row(product_id="2", event_time=f"2019-10-01 {gap} UTC")])
    again = write_csv(tmp_path / "c.csv", [row(product_id="1"), row(product_id="3")])
    report = ingest(home, a, later, again)
    assert report["duplicates"] == (1 if caught else 0)
    assert report["read"] == report["clean"] + report["duplicates"] == 4


def test_the_same_file_twice_is_skipped_not_deduplicated(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = write_csv(tmp_path / "a.csv", [row(), row(product_id="9")])
    ingest(home, path)
    report = ingest(home, path)
    assert report["read"] == report["duplicates"] == 0
    assert [f["status"] for f in report["files"]] == ["skipped"]
    assert read_lake(home).num_rows == 2
