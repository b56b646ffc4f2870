"""A block of generated events as parallel numpy columns (no per-event objects)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

VIEW, CART, REMOVE, PURCHASE = 0, 1, 2, 3  # codes into schema.EVENT_TYPES
NO_SESSION = -1

IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class EventBlock:
    """Events as columns; `product` indexes the render table (brandless variants follow)."""

    time_s: IntArray  # seconds since the first generated day's midnight (UTC)
    kind: NDArray[np.int8]  # VIEW / CART / REMOVE / PURCHASE
    product: IntArray
    cents: IntArray
    user: IntArray  # row in the population
    session: IntArray  # 64-bit session key, NO_SESSION when the id is missing
    sid: NDArray[np.void] | None = None  # rendered session ids (36 bytes a row), once known

    def __len__(self) -> int:
        return int(self.time_s.shape[0])

    def take(self, index: IntArray | slice) -> EventBlock:
        """Rows selected by an index array or slice, in that order."""
        return EventBlock(
            self.time_s[index],
            self.kind[index],
            self.product[index],
            self.cents[index],
            self.user[index],
            self.session[index],
            None if self.sid is None else _take_items(self.sid, index),
        )

    def mask(self, keep: NDArray[np.bool_]) -> EventBlock:
        """Rows where keep is true."""
        return self.take(np.flatnonzero(keep))


def _take_items(items: NDArray[np.void], index: IntArray | slice) -> NDArray[np.void]:
    """np.take gathers fixed-width byte items about 1.5x faster than fancy indexing."""
    if isinstance(index, slice):
        return items[index]
    return np.take(items, index)


def empty_block() -> EventBlock:
    """A block with no rows."""
    i64 = np.zeros(0, dtype=np.int64)
    return EventBlock(i64, np.zeros(0, dtype=np.int8), i64, i64, i64, i64, np.zeros(0, "V36"))


def concat_blocks(blocks: list[EventBlock]) -> EventBlock:
    """Blocks one after the other (session ids kept only if every block has them)."""
    if not blocks:
        return empty_block()
    sids = [b.sid for b in blocks if b.sid is not None]
    return EventBlock(
        np.concatenate([b.time_s for b in blocks]),
        np.concatenate([b.kind for b in blocks]),
        np.concatenate([b.product for b in blocks]),
        np.concatenate([b.cents for b in blocks]),
        np.concatenate([b.user for b in blocks]),
        np.concatenate([b.session for b in blocks]),
        np.concatenate(sids) if len(sids) == len(blocks) else None,
    )


def sort_by_time(block: EventBlock) -> EventBlock:
    """Rows in time order; ties keep their order, so a duplicate stays right after its original."""
    return block.take(np.argsort(block.time_s, kind="stable"))


def time_order(time_s: IntArray, origin: int, end: int) -> tuple[IntArray, int]:
    """Stable time order of the rows before `end`, then the others in their original order.

    Returns the order and how many rows fall before `end`. Windows are shorter than 18 h,
    so rows sort by a 16-bit offset, which numpy sorts with a linear-time radix sort.
    """
    offset = np.clip(time_s - origin, 0, (1 << 16) - 1)
    later = time_s >= end
    offset[later] = (1 << 16) - 1
    order: IntArray = np.argsort(offset.astype(np.uint16), kind="stable")
    return order, int(time_s.shape[0] - np.count_nonzero(later))


def group_starts(counts: IntArray) -> IntArray:
    """Offset of each group's first row when groups of `counts` rows are laid end to end."""
    starts = np.zeros(counts.shape[0], dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return starts
