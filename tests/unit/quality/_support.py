"""Helpers for quality tests: raw batches from plain rows, fresh homes, reading the lake back."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cartpulse.ingest import ingest_files
from cartpulse.schema import EVENT_COLUMNS, EVENT_SCHEMA, QUARANTINE_SCHEMA
from cartpulse.settings import Settings, load_settings
from cartpulse.sources.base import RawBatch

HEADER = list(EVENT_COLUMNS)

BASE = {
    "event_time": "2019-10-01 00:00:00 UTC",
    "event_type": "view",
    "product_id": "5773203",
    "category_id": "1487580005134238553",
    "category_code": "appliances.environment",
    "brand": "runail",
    "price": "2.62",
    "user_id": "463240011",
    "user_session": "26dd6e6e-4dac-4778-8d2c-92e149dab885",
}


def raw_row(**values: str | None) -> dict[str, str | None]:
    """A raw (text) event, BASE unless overridden."""
    return {**BASE, **values}


def raw_batch(
    rows: list[dict[str, str | None]], source: str = "events.csv", first_line: int = 2
) -> RawBatch:
    """A CSV-like raw batch: nine text columns and `_line`."""
    arrays = {c: pa.array([r.get(c) for r in rows], pa.string()) for c in EVENT_COLUMNS}
    lines = pa.array(range(first_line, first_line + len(rows)), pa.int64())
    data = pa.RecordBatch.from_pydict({**arrays, "_line": lines})
    return RawBatch(data=data, source=source, raw_format="csv")


def csv_line(row: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(row)
    return out.getvalue()


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    path.write_text("".join(csv_line(r) for r in [header, *rows]), encoding="utf-8")
    return path


def settings_for(home: Path) -> Settings:
    """Settings for a fresh home, ignoring any cartpulse.toml in the working directory."""
    config = home.parent / f"{home.name}.toml"
    config.write_text("")
    return load_settings(config, home=home, fsync="never")


def ingest(home: Path, *paths: Path) -> dict[str, Any]:
    """Ingest files into `home`; the report as `cartpulse ingest --json` prints it."""
    return ingest_files(settings_for(home), list(paths)).as_dict()


def read_lake(home: Path, what: str = "events") -> pa.Table:
    """Every row of the lake's events or quarantine, in one table."""
    schema = EVENT_SCHEMA if what == "events" else QUARANTINE_SCHEMA
    files = sorted((home / "lake" / what).rglob("*.parquet"))
    tables = [pq.read_table(f) for f in files]
    for path, table in zip(files, tables, strict=True):
        assert table.schema.equals(schema), f"{path} does not have the contract's schema"
    return pa.concat_tables(tables) if tables else schema.empty_table()
