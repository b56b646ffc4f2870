"""The bot fold's counting shortcuts agree with numpy's sorting definitions."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cartpulse.operators.bots_fold import _group_median, hour_groups

_HOUR = 3_600_000_000


@settings(max_examples=200, deadline=None)
@given(
    hours=st.lists(st.integers(-5, 40), max_size=50),
    base=st.sampled_from([0, 1_569_888_000 // 3600, -(10**6)]),
    far=st.booleans(),
    off_hour=st.booleans(),
)
def test_hour_groups_is_np_unique_with_inverse(
    hours: list[int], base: int, far: bool, off_hour: bool
) -> None:
    """A batch's few hours (counted), hours centuries apart and values off the hour (sorted)."""
    values = (np.array(hours, np.int64) + base) * _HOUR
    if far and len(values):
        values[0] += (1 << 21) * _HOUR
    if off_hour and len(values):
        values[-1] += 17
    distinct, group = hour_groups(values)
    want, inverse = np.unique(values, return_inverse=True)
    assert list(distinct) == list(want)
    assert list(group) == list(inverse.ravel())


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 60)), min_size=1, max_size=60),
    halves=st.booleans(),
    huge=st.booleans(),
    fraction=st.booleans(),
)
def test_group_median_is_each_groups_np_median(
    rows: list[tuple[int, int]], halves: bool, huge: bool, fraction: bool
) -> None:
    """Counts and half-counts (counted), one huge count or a non-half value (sorted)."""
    present = sorted({g for g, _ in rows})
    group = np.array([present.index(g) for g, _ in rows], np.int64)
    values = np.array([v for _, v in rows], np.float64) / (2 if halves else 1)
    if huge:
        values[0] = 3.0e6
    if fraction:
        values[-1] += 0.3
    got = _group_median(group, values, len(present))
    want = [np.median(values[group == g]) for g in range(len(present))]
    assert list(got) == want
