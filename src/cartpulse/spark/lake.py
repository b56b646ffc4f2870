"""The lake sink of the Spark runner: each micro-batch's events, written once per batch id.

Spark writes the batch's files (in parallel) into a staging folder; they are renamed into
`lake/events/event_date=…/part-s<batch id>-<n>.parquet`. A batch redone after a crash first
deletes the files its earlier attempt may have left, then renames the new ones, so with the
query's checkpoint each event lands in the lake exactly once.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from cartpulse.sinks.staging import apply_moves

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def batch_file_prefix(batch_id: int) -> str:
    """File name prefix of one micro-batch's lake files."""
    return f"part-s{batch_id:012d}-"


def write_lake_batch(
    frame: DataFrame, batch_id: int, events_dir: Path, staging_root: Path, fsync: bool
) -> None:
    """Write one micro-batch of clean events into the lake (idempotent by batch id)."""
    from pyspark.sql import functions as F  # noqa: N812

    staging = staging_root / f"b{batch_id:012d}"
    shutil.rmtree(staging, ignore_errors=True)
    (
        frame.withColumn("event_date", F.to_date("event_time"))
        .sortWithinPartitions("event_time")
        .write.partitionBy("event_date")
        .parquet(str(staging))
    )
    prefix = batch_file_prefix(batch_id)
    staged = sorted(staging.glob("event_date=*/*.parquet"))
    moves = [
        (path, events_dir / path.parent.name / f"{prefix}{n:04d}.parquet")
        for n, path in enumerate(staged)
    ]
    for stale in events_dir.glob(f"event_date=*/{prefix}*.parquet"):
        stale.unlink()  # left by an attempt of this batch that did not commit
    apply_moves(moves, fsync)
    shutil.rmtree(staging, ignore_errors=True)
