"""The segment index: one fixed-size record per stored batch, written after the batch's bytes.

Readers only trust batches that have a valid index record, so a batch being written (or torn
by a crash) is invisible. A record is valid when its magic and check word are right and it
continues the previous record exactly (offsets and byte positions contiguous). An append of
several batches is atomic: only its last record carries `FLAG_COMMIT`, and everything after
the last committed record is ignored by readers and cut off by recovery.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: 64 bytes, so records never straddle a page and a torn write is at worst a torn record.
RECORD_DTYPE = np.dtype(
    [
        ("magic", "<u8"),
        ("first_offset", "<u8"),
        ("position", "<u8"),
        ("length", "<u8"),
        ("rows", "<u8"),
        ("flags", "<u8"),
        ("data_hash", "<u8"),
        ("check", "<u8"),
    ]
)
RECORD_SIZE = RECORD_DTYPE.itemsize
MAGIC = 0x3158444950435043  # b"CPCPIDX1" little-endian
FLAG_COMMIT = 1

_CHECKED_FIELDS = ("magic", "first_offset", "position", "length", "rows", "flags", "data_hash")
_SEED = np.uint64(0x9E3779B97F4A7C15)
_PRIME = np.uint64(0xFF51AFD7ED558CCD)
_SHIFT = np.uint64(33)


@dataclass(frozen=True)
class IndexEntries:
    """Decoded, validated records: batch i holds offsets first_offsets[i] .. +rows[i]."""

    first_offsets: list[int]
    positions: list[int]
    lengths: list[int]
    rows: list[int]
    data_hashes: list[int]
    commits: list[bool]
    """True where a batch is the last of its append."""

    def __len__(self) -> int:
        return len(self.first_offsets)

    def head(self, n: int) -> IndexEntries:
        """The first `n` entries."""
        return IndexEntries(
            self.first_offsets[:n],
            self.positions[:n],
            self.lengths[:n],
            self.rows[:n],
            self.data_hashes[:n],
            self.commits[:n],
        )


def encode(
    first_offset: int,
    position: int,
    lengths: list[int],
    rows: list[int],
    data_hashes: list[int],
) -> bytes:
    """Records for one atomic append of consecutive batches; the last one commits it."""
    n = len(lengths)
    rec = np.zeros(n, dtype=RECORD_DTYPE)
    rec["magic"] = MAGIC
    length_arr = np.asarray(lengths, dtype=np.uint64)
    row_arr = np.asarray(rows, dtype=np.uint64)
    rec["length"] = length_arr
    rec["rows"] = row_arr
    rec["position"] = position + np.concatenate(([0], np.cumsum(length_arr)[:-1]))
    rec["first_offset"] = first_offset + np.concatenate(([0], np.cumsum(row_arr)[:-1]))
    rec["data_hash"] = np.asarray(data_hashes, dtype=np.uint64)
    rec["flags"][-1] = FLAG_COMMIT
    rec["check"] = _check_words(rec)
    return rec.tobytes()


@dataclass(frozen=True)
class Decoded:
    """Committed entries decoded from index bytes and how many bytes of index they used."""

    entries: IndexEntries
    consumed_bytes: int


def decode(raw: bytes, next_offset: int, next_position: int) -> Decoded:
    """Validated, committed entries at the start of `raw`, continuing the given offset/position."""
    usable = len(raw) - len(raw) % RECORD_SIZE
    rec = np.frombuffer(raw, dtype=RECORD_DTYPE, count=usable // RECORD_SIZE)
    good = _valid_prefix(rec, next_offset, next_position)
    committed = np.flatnonzero(rec["flags"][:good] & FLAG_COMMIT)
    n = int(committed[-1]) + 1 if committed.size else 0
    rec = rec[:n]
    entries = IndexEntries(
        first_offsets=rec["first_offset"].tolist(),
        positions=rec["position"].tolist(),
        lengths=rec["length"].tolist(),
        rows=rec["rows"].tolist(),
        data_hashes=rec["data_hash"].tolist(),
        commits=(rec["flags"] & FLAG_COMMIT).astype(bool).tolist(),
    )
    return Decoded(entries, n * RECORD_SIZE)


def _valid_prefix(rec: np.ndarray, next_offset: int, next_position: int) -> int:
    """How many leading records are intact and contiguous with what precedes them."""
    if rec.size == 0:
        return 0
    expected_offset = np.empty(rec.size, dtype=np.uint64)
    expected_offset[0] = next_offset
    expected_offset[1:] = rec["first_offset"][:-1] + rec["rows"][:-1]
    expected_position = np.empty(rec.size, dtype=np.uint64)
    expected_position[0] = next_position
    expected_position[1:] = rec["position"][:-1] + rec["length"][:-1]
    ok = (
        (rec["magic"] == MAGIC)
        & (rec["check"] == _check_words(rec))
        & (rec["first_offset"] == expected_offset)
        & (rec["position"] == expected_position)
        & (rec["rows"] > 0)
        & (rec["length"] > 0)
    )
    bad = np.flatnonzero(~ok)
    return int(bad[0]) if bad.size else int(rec.size)


def _check_words(rec: np.ndarray) -> np.ndarray:
    """A vectorised mix of every field: catches torn and zero-filled records, not attacks."""
    h = np.full(rec.size, _SEED, dtype=np.uint64)
    for name in _CHECKED_FIELDS:
        # uint64 array arithmetic wraps silently, which is exactly the mixing we want.
        h = (h ^ rec[name]) * _PRIME
        h ^= h >> _SHIFT
    return h
