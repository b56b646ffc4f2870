"""What every source yields: raw Arrow batches with their lines, plus rows it could not parse."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

from cartpulse.schema import EVENT_COLUMNS

RawFormat = Literal["csv", "json"]

#: Rows that could not even be split into fields: raw text, why, line number.
REJECT_SCHEMA = pa.schema(
    [
        pa.field("raw", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("line", pa.int64()),
    ]
)


class SourceError(Exception):
    """A whole input cannot be read (missing file, missing required column, unknown format)."""


@dataclass(frozen=True)
class RawBatch:
    """Rows read from one source, not yet validated.

    `data` has the nine event columns (text for CSV/JSON, typed for Parquet; missing optional
    columns are null), `_line` (1-based line or row number in the source) and, where the source
    keeps it, `_raw` (the row exactly as read). `raw_columns` lists the file's own columns, in
    file order, used to rebuild the raw row of CSV input when it is quarantined.
    """

    data: pa.RecordBatch
    source: str
    raw_format: RawFormat
    raw_columns: tuple[str, ...] = EVENT_COLUMNS
    rejects: pa.Table = field(default_factory=REJECT_SCHEMA.empty_table)
    extra_columns: tuple[str, ...] = ()
    position: int | None = None
    """Bytes of the file on disk consumed so far (for progress), when the reader knows."""
    blank_rows: int = 0
    """Blank lines and rows whose fields are all empty: they carry nothing and are not rows."""

    @property
    def rows(self) -> int:
        """Rows read in this batch, parsed or not."""
        return int(self.data.num_rows + self.rejects.num_rows)


def empty_rejects() -> pa.Table:
    """A table of no rejected rows."""
    return REJECT_SCHEMA.empty_table()


def rejects_table(raw: list[str], detail: list[str], line: list[int | None]) -> pa.Table:
    """Rows rejected by a reader, as a table."""
    return pa.table(
        {
            "raw": pa.array(raw, pa.string()),
            "detail": pa.array(detail, pa.string()),
            "line": pa.array(line, pa.int64()),
        },
        schema=REJECT_SCHEMA,
    )
