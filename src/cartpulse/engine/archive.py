"""Archive: copy a range of the event log into date-partitioned lake files (staged)."""

from __future__ import annotations

from pathlib import Path

from cartpulse.log.base import EventLog
from cartpulse.sinks.lake import events_writer, split_by_event_date

_READ_ROWS = 1_000_000


def stage_archive(
    event_log: EventLog,
    start: int,
    end: int,
    staging: Path,
    row_group_rows: int,
    compression: str,
) -> list[tuple[Path, Path]]:
    """Write events [start, end) under `staging`; return (staged file, path relative to home)."""
    writer = events_writer(staging, f"o{start:012d}-{end:012d}", row_group_rows, compression)
    offset = start
    while offset < end:
        piece = event_log.read(offset, min(_READ_ROWS, end - offset))
        if piece.num_rows == 0:
            raise RuntimeError(f"event log ends at {offset}, expected events up to {end}")
        for partition, rows in split_by_event_date(piece.table):
            writer.write(partition, rows)
        writer.end_batch()
        offset = piece.end
    return [(staging / rel, rel) for rel in writer.close()]
