"""Cleaning inside Spark: raw files or Kafka values in, validated events out (Arrow batches).

The same readers and validator as the embedded ingest run in Spark's Python workers through
`mapInArrow`, so a file is parsed, typed and normalised exactly as `cartpulse replay` does it.
Rejected rows are counted here; they do not reach the lake.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from cartpulse.quality.validate import Validator
from cartpulse.schema import EVENT_SCHEMA
from cartpulse.sources.base import RawBatch
from cartpulse.sources.files import ndjson_batch, read_events

log = logging.getLogger(__name__)

#: Clean events as Spark's Arrow batches carry them (every field nullable).
SPARK_EVENT_SCHEMA = pa.schema([f.with_nullable(True) for f in EVENT_SCHEMA])

#: Spark DDL of a clean event (the lake's columns, in order).
EVENT_DDL = (
    "event_time TIMESTAMP, event_type STRING, product_id BIGINT, category_id BIGINT, "
    "category_code STRING, brand STRING, price DOUBLE, user_id BIGINT, user_session STRING"
)

_READ_ROWS = 500_000


def _clean_batch(validator: Validator, raw: RawBatch, now: dt.datetime | None) -> pa.RecordBatch:
    checked = validator.validate(raw, dt.datetime.now(dt.UTC), now)
    if checked.quarantine.num_rows:
        log.warning("spark_quarantined source=%s rows=%d", raw.source, checked.quarantine.num_rows)
    table = checked.clean.cast(SPARK_EVENT_SCHEMA)
    return table.combine_chunks().to_batches()[0] if table.num_rows else _empty()


def _empty() -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=SPARK_EVENT_SCHEMA)


def clean_files(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Binary-file rows (`path`, `content`) → clean events, read as `cartpulse replay` reads."""
    validator = Validator()
    try:
        for batch in batches:
            for path, content in zip(
                batch.column("path").to_pylist(), batch.column("content").to_pylist(), strict=True
            ):
                yield from _clean_file(validator, str(path), content)
    finally:
        validator.close()


def _clean_file(validator: Validator, uri: str, content: bytes) -> Iterator[pa.RecordBatch]:
    name = Path(uri.removeprefix("file:")).name
    with tempfile.TemporaryDirectory(prefix="cartpulse-spark-") as tmp:
        # The readers detect the format (csv, csv.gz, parquet, ndjson) from the file name.
        local = Path(tmp) / name
        local.write_bytes(content)
        for raw in read_events(local, _READ_ROWS):
            yield _clean_batch(validator, raw, None)


def clean_kafka_values(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Kafka record values (one NDJSON event object each) → clean events, checked as live."""
    validator = Validator()
    try:
        for batch in batches:
            values = [v if v is not None else b"" for v in batch.column("value").to_pylist()]
            if values:
                raw = ndjson_batch(values, "kafka")
                yield _clean_batch(validator, raw, dt.datetime.now(dt.UTC))
    finally:
        validator.close()
