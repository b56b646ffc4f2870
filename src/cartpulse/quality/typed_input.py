"""Typed input (Parquet): the rows no rule can reject, normalised with Arrow compute.

Why: a typed row that passes every rule needs no parsing, only the normalisation (trim, empty →
null, brand lower-cased) and the checks; Arrow does both a column at a time, where the SQL of
`validate` costs about three times as much. The few rows a rule might reject (a missing value,
a negative price, an unknown type, a time out of range, a brand with non-ASCII case rules) go
to the SQL, which says why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cartpulse.schema import EVENT_SCHEMA, EVENT_TYPES

#: The event schema with every field nullable (rejected rows are kept in `typed` until filtered).
NULLABLE_EVENTS = pa.schema([f.with_nullable(True) for f in EVENT_SCHEMA])
_TEXT = ("event_type", "category_code", "brand", "user_session")
_REQUIRED = ("event_time", "event_type", "product_id", "price", "user_id")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _epoch_us(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // dt.timedelta(microseconds=1)


#: Event times outside [1900, 2200) are malformed (the SQL rules' range, in µs).
_MIN_US = _epoch_us(dt.datetime(1900, 1, 1, tzinfo=dt.UTC))
_MAX_US = _epoch_us(dt.datetime(2200, 1, 1, tzinfo=dt.UTC))
_KINDS = pa.array(EVENT_TYPES, pa.string())
#: A text column read as a dictionary (Parquet files store such columns so): kept as one.
_NAMES = pa.dictionary(pa.int32(), pa.string())


@dataclass(frozen=True)
class TypedSplit:
    """A typed batch split into rows that pass (normalised) and rows the SQL must judge."""

    table: pa.Table
    """every row, normalised (suspect rows as they are: only the others are clean)"""
    suspect: np.ndarray
    """mask over the batch's rows: the rows left to the SQL"""


def split_typed(data: pa.RecordBatch, horizon: dt.datetime | None) -> TypedSplit | None:
    """Split a batch of typed input; None when a column is not of the event schema's type.

    `horizon`: times after it are ahead of the clock (live mode), none without a clock.
    """
    if "_raw" in data.schema.names or not _typed(data.schema):
        return None
    text = {name: _trimmed(data.column(name)) for name in _TEXT}
    times = data.column("event_time").cast(pa.int64())
    price = data.column("price")
    missing = [pc.is_null(data.column(c)) for c in _REQUIRED if data.column(c).null_count]
    checks = [
        *missing,
        pc.less(times, _MIN_US),
        pc.greater_equal(times, _MAX_US),
        pc.invert(pc.is_finite(price)),
        pc.less(price, 0.0),
    ]
    if horizon is not None:
        checks.append(pc.greater(times, _epoch_us(horizon)))
    suspect = _rows_flagged(text["event_type"], _unknown_kind, nulls=True)
    # case rules beyond ASCII are the SQL's lower()
    suspect |= _rows_flagged(text["brand"], _not_ascii, nulls=False)
    for check in checks:
        suspect |= _true(check)
    text["brand"] = _per_value(text["brand"], pc.ascii_lower)
    columns = {
        "event_time": data.column("event_time").cast(pa.timestamp("us", tz="UTC")),
        **{name: data.column(name) for name in ("product_id", "category_id", "price", "user_id")},
        **text,
    }
    fields = [f.with_type(columns[f.name].type) if f.name in text else f for f in NULLABLE_EVENTS]
    table = pa.table({f.name: columns[f.name] for f in fields}, schema=pa.schema(fields))
    return TypedSplit(table, suspect)


def _true(check: pa.Array) -> np.ndarray:
    """Mask of a boolean array's true values (null is not true)."""
    filled = pc.fill_null(check, False) if check.null_count else check
    return np.asarray(filled.to_numpy(zero_copy_only=False), bool)


def _unknown_kind(names: pa.Array) -> pa.Array:
    return pc.invert(pc.is_in(names, value_set=_KINDS))


def _not_ascii(names: pa.Array) -> pa.Array:
    return pc.invert(pc.string_is_ascii(names))


def _rows_flagged(
    column: pa.Array, flag: Callable[[pa.Array], pa.Array], nulls: bool
) -> np.ndarray:
    """Mask of the rows whose value `flag` marks; a null counts as `nulls`.

    A dictionary's names are flagged once each, and its rows looked up only when a name is:
    Parquet text columns hold a handful of names for 200k rows.
    """
    if not isinstance(column, pa.DictionaryArray):
        return _true(pc.fill_null(flag(column), nulls))
    names = _true(pc.fill_null(flag(column.dictionary), nulls))
    indices = column.indices
    if names.any():
        codes = np.asarray(pc.fill_null(indices, 0).to_numpy(), np.intp)
        rows = names[codes]
    else:
        rows = np.zeros(len(column), bool)
    if indices.null_count:
        rows[np.asarray(indices.is_null().to_numpy(zero_copy_only=False), bool)] = nulls
    return rows


def _typed(schema: pa.Schema) -> bool:
    """Every event column has the type the event schema gives it (any zone for times)."""
    for field in EVENT_SCHEMA:
        if field.name not in schema.names:
            return False
        have = schema.field(field.name).type
        if field.name == "event_time":
            if not (pa.types.is_timestamp(have) and have.unit == "us" and have.tz):
                return False
        elif have != field.type and not (field.name in _TEXT and have == _NAMES):
            return False
    return True


def _trimmed(column: pa.Array) -> pa.Array:
    """Whitespace trimmed; an empty string becomes null. A dictionary stays one when no name
    in it trims to empty (each name is trimmed once, not once per row)."""
    if isinstance(column, pa.DictionaryArray):
        names = _trimmed(column.dictionary)
        if names.null_count == column.dictionary.null_count:
            return pa.DictionaryArray.from_arrays(column.indices, names)
        column = column.cast(pa.string())
    if not _may_need_trim(column):
        return column
    trimmed = pc.utf8_trim_whitespace(column)
    empty = pc.equal(trimmed, "")
    if not pc.any(empty).as_py():
        return trimmed
    return pc.if_else(empty, pa.scalar(None, pa.string()), trimmed)


def _may_need_trim(column: pa.Array) -> bool:
    """Could trimming change a value: an empty one, or one whose first or last byte is not a
    printable ASCII character (ASCII whitespace, or the first or last byte of a multi-byte
    character, which may be a Unicode space)?

    Why by hand: identifiers such as user_session are seldom padded, and looking at two bytes
    of each value is about ten times cheaper than running the trim over every one.
    """
    n = len(column)
    if n == column.null_count:
        return False
    _, offsets_buf, data_buf = column.buffers()
    offsets = np.frombuffer(offsets_buf, np.int32, n + 1, column.offset * 4)
    starts, ends = offsets[:-1], offsets[1:]
    if column.null_count:
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        starts, ends = starts[valid], ends[valid]
    if bool((ends <= starts).any()):
        return True
    data = np.frombuffer(data_buf, np.uint8)
    edges = np.concatenate([data[starts], data[ends - 1]])
    return bool(((edges <= 0x20) | (edges >= 0x7F)).any())


def _per_value(column: pa.Array, fn: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """`fn` (text → text) applied to each value: to a dictionary's names only, when the column
    is one."""
    if isinstance(column, pa.DictionaryArray):
        return pa.DictionaryArray.from_arrays(column.indices, fn(column.dictionary))
    return fn(column)
