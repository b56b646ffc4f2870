"""Cleaning inside Spark: raw files or Kafka values in, validated events out (Arrow batches).

The same readers and validator as the embedded ingest run in Spark's Python workers through
`mapInArrow`, so a file is parsed, typed and normalised exactly as `cartpulse replay` does it.
The same functions, with `rejected=True`, emit the rows the validator rejected instead
(the quarantine's columns), for the quarantine query.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from cartpulse.quality.validate import Validator
from cartpulse.schema import EVENT_SCHEMA, QUARANTINE_SCHEMA
from cartpulse.sources.base import RawBatch
from cartpulse.sources.files import ndjson_batch, read_events

#: Clean events as Spark's Arrow batches carry them (every field nullable).
SPARK_EVENT_SCHEMA = pa.schema([f.with_nullable(True) for f in EVENT_SCHEMA])

#: Spark DDL of a clean event (the lake's columns, in order).
EVENT_DDL = (
    "event_time TIMESTAMP, event_type STRING, product_id BIGINT, category_id BIGINT, "
    "category_code STRING, brand STRING, price DOUBLE, user_id BIGINT, user_session STRING"
)

#: Rejected rows as Spark's Arrow batches carry them.
SPARK_QUARANTINE_SCHEMA = pa.schema([f.with_nullable(True) for f in QUARANTINE_SCHEMA])

#: Spark DDL of a quarantine row (the quarantine files' columns, in order).
QUARANTINE_DDL = (
    "raw STRING, reason STRING, detail STRING, source STRING, line BIGINT, ingested_at TIMESTAMP"
)

_READ_ROWS = 500_000


def _checked_batch(
    validator: Validator, raw: RawBatch, now: dt.datetime | None, rejected: bool
) -> pa.RecordBatch:
    checked = validator.validate(raw, dt.datetime.now(dt.UTC), now)
    if rejected:
        table, schema = checked.quarantine.cast(SPARK_QUARANTINE_SCHEMA), SPARK_QUARANTINE_SCHEMA
    else:
        table, schema = checked.clean.cast(SPARK_EVENT_SCHEMA), SPARK_EVENT_SCHEMA
    if table.num_rows:
        return table.combine_chunks().to_batches()[0]
    return pa.RecordBatch.from_pylist([], schema=schema)


def clean_files(
    batches: Iterator[pa.RecordBatch], rejected: bool = False
) -> Iterator[pa.RecordBatch]:
    """Binary-file rows (`path`, `content`) → clean events, or with `rejected` the rejected rows."""
    validator = Validator()
    try:
        for batch in batches:
            for path, content in zip(
                batch.column("path").to_pylist(), batch.column("content").to_pylist(), strict=True
            ):
                yield from _clean_file(validator, str(path), content, rejected)
    finally:
        validator.close()


def _clean_file(
    validator: Validator, uri: str, content: bytes, rejected: bool
) -> Iterator[pa.RecordBatch]:
    name = Path(uri.removeprefix("file:")).name
    with tempfile.TemporaryDirectory(prefix="cartpulse-spark-") as tmp:
        # The readers detect the format (csv, csv.gz, parquet, ndjson) from the file name.
        local = Path(tmp) / name
        local.write_bytes(content)
        for raw in read_events(local, _READ_ROWS):
            yield _checked_batch(validator, raw, None, rejected)


def clean_kafka_values(
    batches: Iterator[pa.RecordBatch], rejected: bool = False
) -> Iterator[pa.RecordBatch]:
    """Kafka record values (NDJSON objects) → clean events as live traffic, or rejected rows."""
    validator = Validator()
    try:
        for batch in batches:
            values = [v if v is not None else b"" for v in batch.column("value").to_pylist()]
            if values:
                raw = ndjson_batch(values, "kafka")
                yield _checked_batch(validator, raw, dt.datetime.now(dt.UTC), rejected)
    finally:
        validator.close()
