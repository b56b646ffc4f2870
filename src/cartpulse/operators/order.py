"""Row orders and integer codes the numpy operators share."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def order_rows(group: np.ndarray, t: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Row order by (group code, time, offset); `group` holds codes in 0..n_groups−1."""
    n = len(group)
    # Why not np.lexsort: two unstable sorts of unique int64 keys are about 3× faster, and
    # rows in offset order (as the log gives them) make (time, row) unique.
    if n > 1 and bool(np.all(offsets[1:] > offsets[:-1])):
        low = int(t.min())
        span = int(t.max()) - low + 1
        if span < 2**62 // n and int(group.max()) < 2**62 // n:
            by_time = np.argsort((t - low) * n + np.arange(n))
            rank = np.empty(n, np.int64)
            rank[by_time] = np.arange(n)
            return np.asarray(np.argsort(group * n + rank), np.int64)
    return np.asarray(np.lexsort((offsets, t, group)), np.int64)


def dense_codes(values: np.ndarray) -> np.ndarray:
    """0..k−1 for the k distinct values (hashing: no sort of the whole array)."""
    if len(values) == 0:
        return np.zeros(0, np.int64)
    encoded = pc.dictionary_encode(pa.array(values, pa.int64()))
    return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64)
