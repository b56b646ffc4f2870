"""Helpers for reader tests: write event files and read them back as plain Python values."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from cartpulse.schema import EVENT_COLUMNS
from cartpulse.sources.files import read_events

HEADER = list(EVENT_COLUMNS)
SIX_COLUMNS = ["event_time", "event_type", "product_id", "price", "user_id", "user_session"]

BASE_ROW = {
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


def event_row(columns: list[str] = HEADER, **values: str) -> list[str]:
    """One row of field values in `columns` order, BASE_ROW unless overridden."""
    merged = {**BASE_ROW, **values}
    return [merged.get(c, f"extra-{c}") for c in columns]


def csv_line(row: list[str]) -> str:
    """One CSV record as written by Python's csv module (LF line end, minimal quoting)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(row)
    return out.getvalue()


def csv_text(rows: list[list[str]], header: list[str] = HEADER) -> tuple[str, list[int]]:
    """CSV text (LF line ends, minimal quoting) and the physical line where each row starts."""
    parts = [csv_line(header)]
    line = 1 + parts[0].count("\n")
    starts = []
    for row in rows:
        starts.append(line)
        parts.append(csv_line(row))
        line += parts[-1].count("\n")
    return "".join(parts), starts


def read_all(
    path: Path, batch_rows: int = 1_000
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every parsed row and every reject of a file, each sorted by line."""
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    for batch in read_events(path, batch_rows):
        rows.extend(batch.data.to_pylist())
        rejects.extend(batch.rejects.to_pylist())
    return sorted(rows, key=lambda r: r["_line"]), sorted(rejects, key=lambda r: r["line"])


def fields(row: dict[str, Any], columns: list[str] = HEADER) -> list[Any]:
    """The event fields of a parsed row, in `columns` order."""
    return [row[c] for c in columns]
