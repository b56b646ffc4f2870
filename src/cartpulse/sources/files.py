"""Read event files (CSV, CSV.gz, Parquet, NDJSON) as a stream of raw Arrow batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cartpulse.schema import EVENT_COLUMNS
from cartpulse.sources.base import RawBatch, SourceError, rejects_table
from cartpulse.sources.columns import parse_header
from cartpulse.sources.csv_reader import open_stream, read_csv

FileFormat = Literal["csv", "parquet", "ndjson"]

_SUFFIXES: dict[str, FileFormat] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".ndjson.gz": "ndjson",
    ".jsonl.gz": "ndjson",
}


def detect_format(path: Path) -> FileFormat:
    """The format of an event file, from its name."""
    name = path.name.lower()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return _SUFFIXES[suffix]
    allowed = ", ".join(sorted(_SUFFIXES))
    raise SourceError(f"{path}: unknown file type; expected one of {allowed}")


def read_events(path: Path, batch_rows: int = 1_000_000) -> Iterator[RawBatch]:
    """Yield raw batches of at most about `batch_rows` rows from an event file."""
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    fmt = detect_format(path)
    if fmt == "csv":
        return read_csv(path, batch_rows)
    if fmt == "parquet":
        return read_parquet(path, batch_rows)
    return read_ndjson(path, batch_rows)


def read_parquet(path: Path, batch_rows: int) -> Iterator[RawBatch]:
    """Yield batches of a Parquet file, keeping its column types; row numbers stand for lines."""
    try:
        plain = pq.ParquetFile(str(path))
        pf = pq.ParquetFile(str(path), read_dictionary=_dictionary_columns(plain))
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path}: not a readable Parquet file: {exc}") from None
    header = parse_header(str(path), pf.schema_arrow.names, raw_format="json")
    wanted = [
        n for n, c in zip(header.file_columns, header.canonical, strict=True) if c in EVENT_COLUMNS
    ]
    first = 1
    for batch in _rebatched(pf.iter_batches(batch_size=batch_rows, columns=wanted), batch_rows):
        lines = pa.array(np.arange(first, first + batch.num_rows, dtype=np.int64))
        first += batch.num_rows
        names = [header.canonical[header.file_columns.index(n)] for n in batch.schema.names]
        data = pa.RecordBatch.from_arrays([*batch.columns, lines], [*names, "_line"])
        for name in header.missing_optional:
            data = data.append_column(name, pa.nulls(data.num_rows, pa.string()))
        yield RawBatch(data=data, source=str(path), raw_format="json", raw_columns=tuple(names))


def _dictionary_columns(pf: pq.ParquetFile) -> list[str]:
    """Text columns the file stores dictionary-encoded: read as dictionaries, they are not
    expanded into one string per row (a column of a few distinct names, such as event_type or
    brand, reads several times faster, and validation looks at each name once)."""
    if pf.metadata.num_row_groups == 0:
        return []
    group = pf.metadata.row_group(0)
    schema = pf.schema_arrow
    return [
        group.column(i).path_in_schema
        for i in range(group.num_columns)
        if group.column(i).has_dictionary_page
        and group.column(i).path_in_schema in schema.names
        and pa.types.is_string(schema.field(group.column(i).path_in_schema).type)
    ]


def _rebatched(pieces: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of exactly `rows` rows (the last one shorter) from pieces of any size.

    Read as dictionaries, a file's batches end at each row group; the feeder resumes a file by
    batch number, so the batches must be cut where a plain read cuts them.
    """
    pending: list[pa.RecordBatch] = []
    have = 0
    for piece in pieces:
        at = 0
        while at < piece.num_rows:
            take = min(rows - have, piece.num_rows - at)
            pending.append(piece.slice(at, take))
            have += take
            at += take
            if have == rows:
                yield _joined(pending)
                pending, have = [], 0
    if have:
        yield _joined(pending)


def _joined(pieces: list[pa.RecordBatch]) -> pa.RecordBatch:
    """One batch of the pieces (dictionaries unified)."""
    if len(pieces) == 1:
        return pieces[0]
    return pa.Table.from_batches(pieces).combine_chunks().to_batches()[0]


def read_ndjson(path: Path, batch_rows: int) -> Iterator[RawBatch]:
    """Yield batches of an NDJSON file; each row keeps its original line as `_raw`."""
    with open_stream(path) as stream:
        first_line = 1
        pending = b""
        while True:
            chunk = stream.read(max(batch_rows, 1000) * 200)
            if not chunk:
                break
            data = pending + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                pending = data
                continue
            pending = data[cut + 1 :]
            lines = data[:cut].split(b"\n")
            yield ndjson_batch(lines, str(path), first_line)
            first_line += len(lines)
        if pending.strip():
            yield ndjson_batch([pending], str(path), first_line)


def ndjson_batch(lines: list[bytes], source: str, first_line: int = 1) -> RawBatch:
    """Turn NDJSON lines into a raw batch; lines that are not JSON objects become rejects."""
    raw, utf8_ok = _decode_lines(lines)
    table = pa.table(
        {
            "_raw": pa.array(raw, pa.string()),
            "_line": pa.array(np.arange(first_line, first_line + len(lines), dtype=np.int64)),
            "_utf8": pa.array(utf8_ok, pa.bool_()),
        }
    )
    fields = ", ".join(f"json_extract_string(j, '$.{c}') AS {c}" for c in EVENT_COLUMNS)
    con = duckdb.connect()
    con.register("ndjson_lines", table)
    parsed = con.sql(
        f"""
        WITH src AS (SELECT _raw, _line, _utf8, try(json(_raw)) AS j FROM ndjson_lines)
        SELECT {fields}, _line, _raw,
               CASE WHEN NOT _utf8 THEN 'not valid UTF-8'
                    WHEN j IS NULL THEN 'not valid JSON'
                    WHEN json_type(j) <> 'OBJECT' THEN 'not a JSON object'
               END AS _problem
        FROM src WHERE trim(_raw) <> ''
        """
    ).to_arrow_table()
    con.close()
    problem = parsed.column("_problem")
    bad = parsed.filter(problem.is_valid())
    good = parsed.filter(problem.is_null()).drop_columns(["_problem"])
    rejects = rejects_table(
        bad.column("_raw").to_pylist(),
        bad.column("_problem").to_pylist(),
        bad.column("_line").to_pylist(),
    )
    batch = good.combine_chunks().to_batches()[0] if good.num_rows else _empty_ndjson()
    blank = len(lines) - parsed.num_rows
    return RawBatch(data=batch, source=source, raw_format="json", rejects=rejects, blank_rows=blank)


def _empty_ndjson() -> pa.RecordBatch:
    fields = [*(pa.field(c, pa.string()) for c in EVENT_COLUMNS)]
    schema = pa.schema([*fields, ("_line", pa.int64()), ("_raw", pa.string())])
    return pa.RecordBatch.from_pylist([], schema=schema)


def _decode_lines(lines: list[bytes]) -> tuple[list[str], list[bool]]:
    """Decode lines as UTF-8; a line that is not valid UTF-8 keeps its bytes escaped."""
    if not lines:
        return [], []
    try:
        text = b"\n".join(lines).decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return [ln.rstrip("\r") for ln in text.split("\n")], [True] * len(lines)
    raw, ok = [], []
    for ln in lines:
        try:
            raw.append(ln.decode("utf-8").rstrip("\r"))
            ok.append(True)
        except UnicodeDecodeError:
            raw.append(ln.decode("utf-8", "backslashreplace").rstrip("\r"))
            ok.append(False)
    return raw, ok
