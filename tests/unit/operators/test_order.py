"""Shared codes of the numpy operators: one dictionary for state strings and batch strings."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from cartpulse.operators.order import joint_codes, order_rows, stable_code_order, unsigned_keys

_WORDS = st.sampled_from(["a", "b", "c", "dd", "é", "session-1", "session-2", ""])


def _decoded(names: pa.Array, codes: np.ndarray) -> list[str | None]:
    return [None if c < 0 else names[int(c)].as_py() for c in codes]


def _check(state: list[str | None], batch: list[str | None]) -> None:
    state_col = pa.chunked_array([pa.array(state, pa.string())])
    plain = pa.chunked_array([pa.array(batch, pa.string())])
    encoded = pa.chunked_array([pc.dictionary_encode(plain.chunk(0))])
    for column in (plain, encoded):
        names, codes = joint_codes(state_col, column)
        assert len(codes) == len(state) + len(batch)
        # every code decodes to its string, and equal strings share one code
        assert _decoded(names, codes) == state + batch
        assert len(set(names.to_pylist())) == len(names)
        assert names.null_count == 0
    # an encoded batch keeps its own codes
    names, codes = joint_codes(state_col, encoded)
    indices = encoded.chunk(0).indices.to_numpy(zero_copy_only=False)
    assert list(codes[len(state) :]) == [
        -1 if v is None else int(i) for v, i in zip(batch, indices, strict=True)
    ]


@settings(max_examples=300, deadline=None)
@given(
    state=st.lists(st.one_of(st.none(), _WORDS), max_size=12),
    batch=st.lists(st.one_of(st.none(), _WORDS), max_size=30),
)
def test_joint_codes_decode_to_the_strings_with_one_code_each(
    state: list[str | None], batch: list[str | None]
) -> None:
    """Small and large states (both lookup directions), nulls, strings only in the state."""
    _check(state, batch)


def test_a_small_state_against_many_batch_names() -> None:
    """Open sessions (a few, some new to the batch) against a batch of many distinct ids."""
    batch: list[str | None] = [f"s{i % 5000}" for i in range(20_000)]
    state = ["s17", "gone-1", None, "s4999", "gone-1", "gone-2"]
    _check(state, batch)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 4), st.integers(-3, 3)), min_size=0, max_size=40),
    in_time_order=st.booleans(),
    gaps=st.booleans(),
    scale=st.sampled_from([1, 70_001, 2**33 + 1]),
)
def test_order_rows_sorts_by_group_then_time_then_offset(
    rows: list[tuple[int, int]], in_time_order: bool, gaps: bool, scale: int
) -> None:
    """Time-ordered and shuffled batches, ties in time, gaps in offsets; codes below 2**16,
    below 2**32 (two radix passes) and above."""
    if in_time_order:
        rows = sorted(rows, key=lambda r: r[1])
    group = np.array([r[0] * scale + r[0] % 3 for r in rows], np.int64)
    t = np.array([r[1] for r in rows], np.int64) * 1_000_000
    offsets = np.arange(len(rows), dtype=np.int64) * (3 if gaps else 1) + 10
    got = order_rows(group, t, offsets)
    assert list(got) == list(np.lexsort((offsets, t, group)))


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.integers(0, 6), max_size=60),
    width=st.sampled_from(
        [(np.int64, 1), (np.int64, 70_001), (np.int64, 2**40 + 3), (np.uint64, 2**61 + 5)]
    ),
)
def test_stable_code_order_is_numpys_stable_order(
    values: list[int], width: tuple[type[np.integer], int]
) -> None:
    """One to four radix passes, signed and unsigned codes, ties kept in row order."""
    dtype, scale = width
    codes = np.array([v * scale for v in values], dtype)
    assert list(stable_code_order(codes)) == list(np.argsort(codes, kind="stable"))
    if dtype is np.uint64 and len(values):  # the full 64 bits of a hash
        codes = codes | np.uint64(2**63)
        assert list(stable_code_order(codes)) == list(np.argsort(codes, kind="stable"))


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=30))
def test_unsigned_keys_keep_the_order_of_signed_ids(values: list[int]) -> None:
    """Negative, zero and positive ids, the extremes of int64: the same order, non-negative."""
    ids = np.array(values, np.int64)
    keys = unsigned_keys(ids)
    assert len(keys) == 0 or int(keys.min()) >= 0
    assert list(stable_code_order(keys)) == list(np.argsort(ids, kind="stable"))
