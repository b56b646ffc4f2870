"""Which old segments retention may delete: a pure decision, so it is easy to test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SegmentInfo:
    """What retention needs to know about a segment: offsets [base, end), size and age."""

    base: int
    end: int
    size_bytes: int
    modified_at: float
    """Unix time of the segment's last append."""


def segments_to_delete(
    segments: Sequence[SegmentInfo],
    *,
    max_bytes: int | None,
    max_age_s: float | None,
    min_committed: int | None,
    now: float,
    force: bool = False,
) -> list[SegmentInfo]:
    """The oldest segments to delete, in order; never the newest one.

    A segment goes when the log is over `max_bytes` or the segment is older than `max_age_s`,
    and only if every registered consumer has committed past it (`min_committed`, None when
    there is no consumer: then nothing is proven read and nothing goes) — unless `force`.
    Deletion stops at the first segment that must stay, so the log remains one contiguous run.
    """
    total = sum(s.size_bytes for s in segments)
    chosen: list[SegmentInfo] = []
    for seg in segments[:-1]:
        too_big = max_bytes is not None and total > max_bytes
        too_old = max_age_s is not None and now - seg.modified_at > max_age_s
        consumed = min_committed is not None and seg.end <= min_committed
        if not (too_big or too_old) or not (consumed or force):
            break
        chosen.append(seg)
        total -= seg.size_bytes
    return chosen
