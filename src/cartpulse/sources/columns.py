"""Map a source's own columns onto the event columns: optional ones null, extras reported once."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cartpulse.schema import EVENT_COLUMNS, OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from cartpulse.sources.base import RawBatch, RawFormat, SourceError, rejects_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Header:
    """A source's columns: as named in the file, and how they map onto the event columns."""

    source: str
    file_columns: tuple[str, ...]
    canonical: tuple[str, ...]
    raw_format: RawFormat = "csv"

    @property
    def internal(self) -> tuple[str, ...]:
        """Column names used inside cartpulse: event columns, and `_extra_<i>` for the others.

        Extra columns get positional names so that any header text (empty, quotes, names like
        `_line`) is safe in SQL and cannot collide with internal columns.
        """
        return tuple(
            c if c in EVENT_COLUMNS else f"_extra_{i}" for i, c in enumerate(self.canonical)
        )

    @property
    def extras(self) -> tuple[str, ...]:
        """Internal names of the columns the event schema does not know."""
        return tuple(c for c in self.internal if c not in EVENT_COLUMNS)

    @property
    def missing_optional(self) -> tuple[str, ...]:
        """Optional event columns the file lacks (read as null)."""
        return tuple(c for c in EVENT_COLUMNS if c not in self.canonical)

    def raw_batch(
        self,
        data: pa.RecordBatch,
        path: Path | str,
        rejects: Iterable[tuple[int, str, str]],
        position: int | None = None,
        blank_lines: int = 0,
    ) -> RawBatch:
        """Rename to canonical names, add null optional columns, drop blank lines."""
        data = data.rename_columns([*self.internal, *data.schema.names[len(self.internal) :]])
        data, blank = _drop_blank_rows(data, self.internal)
        for name in self.missing_optional:
            data = data.append_column(name, pa.nulls(data.num_rows, pa.string()))
        rej = list(rejects)
        return RawBatch(
            data=data,
            source=str(path),
            raw_format=self.raw_format,
            raw_columns=self.internal,
            rejects=rejects_table([r[1] for r in rej], [r[2] for r in rej], [r[0] for r in rej]),
            extra_columns=self.extras,
            position=position,
            blank_rows=blank + blank_lines,
        )


def parse_header(source: str, names: Sequence[str], raw_format: RawFormat = "csv") -> Header:
    """Check a source's column names: required ones present, no duplicates."""
    canonical = tuple(n.strip().strip("\ufeff").lower() for n in names)
    dupes = sorted({c for c in canonical if c in EVENT_COLUMNS and canonical.count(c) > 1})
    if dupes:
        raise SourceError(f"{source}: column(s) {', '.join(dupes)} appear more than once")
    missing = [c for c in REQUIRED_COLUMNS if c not in canonical]
    if missing:
        raise SourceError(
            f"{source}: missing required column(s) {', '.join(missing)}; "
            f"expected the REES46 columns {','.join(EVENT_COLUMNS)} "
            f"({', '.join(sorted(OPTIONAL_COLUMNS))} may be absent)"
        )
    header = Header(source, tuple(names), canonical, raw_format)
    unknown = [n for n, c in zip(names, canonical, strict=True) if c not in EVENT_COLUMNS]
    if unknown:
        log.warning("unknown_columns source=%s columns=%s ignored", source, ",".join(unknown))
    if header.missing_optional:
        log.info("missing_optional source=%s columns=%s", source, ",".join(header.missing_optional))
    return header


def _drop_blank_rows(data: pa.RecordBatch, columns: tuple[str, ...]) -> tuple[pa.RecordBatch, int]:
    """Drop blank lines (Arrow reads them as rows of empty fields, like `,,,`); count them."""
    if data.num_rows == 0 or not pa.types.is_string(data.schema.field(columns[0]).type):
        return data, 0
    blank: np.ndarray | None = None
    for name in columns:
        col = data.column(name)
        empty = pc.fill_null(pc.equal(pc.binary_length(col), 0), True)
        mask = empty.to_numpy(zero_copy_only=False)
        blank = mask if blank is None else blank & mask
        if not blank.any():
            return data, 0
    assert blank is not None
    return data.filter(pa.array(~blank)), int(blank.sum())
