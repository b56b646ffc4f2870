"""How a DuckDB table's columns become PostgreSQL columns, and how rows travel (CSV COPY)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.csv as pacsv

#: Extra column of every mirrored serving table: a hash of the row, for change detection.
HASH_COLUMN = "_cartpulse_hash"


def quote_ident(name: str) -> str:
    """A SQL identifier in double quotes (valid in DuckDB and PostgreSQL)."""
    return '"' + name.replace('"', '""') + '"'


def is_nested(dtype: pa.DataType) -> bool:
    """Lists, structs and maps: stored as JSONB in PostgreSQL."""
    return bool(
        pa.types.is_list(dtype)
        or pa.types.is_large_list(dtype)
        or pa.types.is_struct(dtype)
        or pa.types.is_map(dtype)
    )


def postgres_type(dtype: pa.DataType) -> str:
    """The PostgreSQL column type for an Arrow type (as DuckDB exports its columns)."""
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMPTZ" if dtype.tz is not None else "TIMESTAMP"
    simple: list[tuple[bool, str]] = [
        (pa.types.is_boolean(dtype), "BOOLEAN"),
        (pa.types.is_int8(dtype) or pa.types.is_int16(dtype), "SMALLINT"),
        (pa.types.is_int32(dtype) or pa.types.is_uint8(dtype), "INTEGER"),
        (
            pa.types.is_int64(dtype) or pa.types.is_uint16(dtype) or pa.types.is_uint32(dtype),
            "BIGINT",
        ),
        (pa.types.is_uint64(dtype), "NUMERIC(20, 0)"),
        (pa.types.is_float32(dtype), "REAL"),
        (pa.types.is_float64(dtype), "DOUBLE PRECISION"),
        (pa.types.is_date(dtype), "DATE"),
        (pa.types.is_time(dtype), "TIME"),
        (pa.types.is_duration(dtype), "INTERVAL"),
        (pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype), "BYTEA"),
        (is_nested(dtype), "JSONB"),
    ]
    for matches, name in simple:
        if matches:
            return name
    if pa.types.is_decimal(dtype):
        return f"NUMERIC({dtype.precision}, {dtype.scale})"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or _is_string_view(dtype):
        return "TEXT"
    raise ValueError(f"no PostgreSQL type for Arrow type {dtype}")


def _is_string_view(dtype: pa.DataType) -> bool:
    return bool(getattr(pa.types, "is_string_view", lambda _t: False)(dtype))


def create_table_sql(
    table: str,
    schema: pa.Schema,
    keys: Sequence[str] = (),
    json_columns: Sequence[str] = (),
    with_hash: bool = False,
) -> str:
    """`CREATE TABLE IF NOT EXISTS` for a DuckDB table's Arrow schema (keys become the PK)."""
    cols = []
    for field in schema:
        kind = "JSONB" if field.name in json_columns else postgres_type(field.type)
        null = " NOT NULL" if field.name in keys else ""
        cols.append(f"{quote_ident(field.name)} {kind}{null}")
    if with_hash:
        cols.append(f"{HASH_COLUMN} BIGINT NOT NULL")
    if keys:
        cols.append(f"PRIMARY KEY ({', '.join(quote_ident(k) for k in keys)})")
    return f"CREATE TABLE IF NOT EXISTS {quote_ident(table)} (\n  " + ",\n  ".join(cols) + "\n)"


def duckdb_select_list(schema: pa.Schema, json_columns: Sequence[str] = ()) -> str:
    """The DuckDB select list that exports a table for COPY: nested columns as JSON text."""
    items = []
    for field in schema:
        col = quote_ident(field.name)
        if is_nested(field.type):
            items.append(f"to_json({col})::VARCHAR AS {col}")
        elif pa.types.is_timestamp(field.type):
            # Formatted by DuckDB: Arrow's CSV writer is ~40x slower on zoned timestamps.
            zone = "+00" if field.type.tz is not None else ""
            items.append(f"strftime({col}, '%Y-%m-%d %H:%M:%S.%f{zone}') AS {col}")
        elif field.name in json_columns:
            # JSON text columns stay as they are when valid, otherwise become a JSON string.
            items.append(
                f"CASE WHEN json_valid({col}) THEN {col} ELSE to_json({col})::VARCHAR END AS {col}"
            )
        else:
            items.append(col)
    return ", ".join(items)


def csv_bytes(table: pa.Table) -> bytes:
    """Rows as CSV for `COPY … (FORMAT csv)`: nulls unquoted and empty, strings quoted."""
    out = io.BytesIO()
    if table.num_rows:
        pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False))
    return out.getvalue()
