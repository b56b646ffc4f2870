"""Validation rules → reason codes, and normalisation of the rows that pass."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cartpulse import duck
from cartpulse.quality.dedupe import ROW_KEY_SQL, row_keys
from cartpulse.quality.typed_input import NULLABLE_EVENTS, split_typed
from cartpulse.schema import EVENT_SCHEMA, EVENT_TYPES, QUARANTINE_SCHEMA, Reason
from cartpulse.sources.base import RawBatch

# Why DuckDB: TRY_CAST gives vectorised "parse or null" for every type, including time zone
# names and offsets, which pyarrow's cast (all-or-error) cannot do row by row.

# A zone must follow a time of day: `2019-10-01` alone has no zone (its `-01` is not an offset).
_TZ_SUFFIX = (
    r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*"
    r"(Z|UTC|GMT|[+-]\d{1,2}(:?\d{2})?|[A-Za-z]+/[A-Za-z_]+(/[A-Za-z_]+)?)$"
)
#: Event times outside this range are malformed (and would not fit a date partition).
_MIN_TIME, _MAX_TIME = "1900-01-01 00:00:00+00", "2200-01-01 00:00:00+00"


@dataclass(frozen=True)
class Validated:
    """Rows that passed (typed, normalised) and rows that did not (with reason)."""

    typed: pa.Table
    """Every row of the batch, typed (rejected rows hold nulls where they failed)."""
    passed: np.ndarray
    """Which rows of `typed` passed every rule."""
    quarantine: pa.Table
    keys: np.ndarray
    """Row hash of each clean row (same order), used to drop exact duplicates."""

    @functools.cached_property
    def clean(self) -> pa.Table:
        """The rows that passed."""
        return self.typed.filter(pa.array(self.passed)).cast(EVENT_SCHEMA)

    @functools.cached_property
    def times_us(self) -> np.ndarray:
        """Event time of each clean row, µs since the epoch."""
        times = self.typed.column("event_time").cast(pa.int64()).to_numpy(zero_copy_only=False)
        return np.asarray(times[self.passed], np.int64)

    def clean_subset(self, keep: np.ndarray) -> pa.Table:
        """The clean rows where `keep` (a mask over clean rows) is true, in one copy."""
        mask = self.passed.copy()
        mask[np.flatnonzero(self.passed)[~keep]] = False
        return self.typed.filter(pa.array(mask)).cast(EVENT_SCHEMA)

    @property
    def counts(self) -> dict[str, int]:
        """Quarantined rows per reason code."""
        if self.quarantine.num_rows == 0:
            return {}
        grouped = self.quarantine.group_by("reason").aggregate([("reason", "count")])
        return dict(
            zip(
                grouped.column("reason").to_pylist(),
                grouped.column("reason_count").to_pylist(),
                strict=True,
            )
        )


class Validator:
    """Applies the data contract's rules to raw batches (one DuckDB connection, reused)."""

    def __init__(self, future_tolerance_s: int = 300) -> None:
        self._con = duck.connect()
        self._future_tolerance = dt.timedelta(seconds=future_tolerance_s)

    def close(self) -> None:
        """Release the DuckDB connection."""
        self._con.close()

    def validate(
        self, batch: RawBatch, ingested_at: dt.datetime, now: dt.datetime | None = None
    ) -> Validated:
        """Split a raw batch into clean events and quarantine rows; `now` enables live checks."""
        horizon = now + self._future_tolerance if now is not None else None
        split = split_typed(batch.data, horizon)
        if split is None:
            return self.validate_sql(batch, ingested_at, horizon)
        if not split.suspect.any() and not batch.rejects.num_rows:
            return self._with_keys(split.table, ~split.suspect, None)
        judged = self.validate_sql(
            dataclasses.replace(batch, data=batch.data.filter(pa.array(split.suspect))),
            ingested_at,
            horizon,
        )
        if judged.passed.any():
            # A suspect row passed (a brand with non-ASCII case rules): the SQL takes the whole
            # batch, so its rows keep their order.
            return self.validate_sql(batch, ingested_at, horizon)
        return self._with_keys(split.table, ~split.suspect, judged.quarantine)

    def validate_sql(
        self, batch: RawBatch, ingested_at: dt.datetime, horizon: dt.datetime | None
    ) -> Validated:
        """Every rule in one SQL pass: typed values, the reason of each rejected row."""
        data = _decoded(batch.data)
        with duck.registered(self._con, raw_batch=_with_trimmed_text(data)):
            sql = _checked_sql(data.schema, _raw_expr(batch, data.schema))
            checked = duck.arrow(self._con, sql, [horizon])
        reason = checked.column("_reason")
        passed = reason.is_null().to_numpy(zero_copy_only=False)
        typed = checked.select(EVENT_SCHEMA.names).cast(NULLABLE_EVENTS)
        keys = np.asarray(checked.column("_key").to_numpy(), np.uint64)[passed]
        rejected = checked.filter(reason.is_valid())
        quarantine = self._quarantine_rows(batch, rejected, ingested_at)
        return Validated(typed=typed, passed=passed, quarantine=quarantine, keys=keys)

    def _with_keys(
        self, typed: pa.Table, passed: np.ndarray, quarantine: pa.Table | None
    ) -> Validated:
        """Typed rows (all of them, with `passed` marking the clean ones) and the row keys of
        the clean ones."""
        return Validated(
            typed=typed,
            passed=passed,
            quarantine=QUARANTINE_SCHEMA.empty_table() if quarantine is None else quarantine,
            keys=row_keys(typed, self._con)[passed],
        )

    def _quarantine_rows(
        self, batch: RawBatch, rejected: pa.Table, ingested_at: dt.datetime
    ) -> pa.Table:
        parts = []
        if rejected.num_rows:
            names = {"_rawrow": "raw", "_reason": "reason", "_detail": "detail", "_line": "line"}
            parts.append(rejected.select(list(names)).rename_columns(list(names.values())))
        if batch.rejects.num_rows:
            rej = batch.rejects
            parts.append(
                pa.table(
                    {
                        "raw": rej.column("raw"),
                        "reason": pa.array([Reason.MALFORMED.value] * rej.num_rows, pa.string()),
                        "detail": rej.column("detail"),
                        "line": rej.column("line"),
                    }
                )
            )
        if not parts:
            return QUARANTINE_SCHEMA.empty_table()
        table = pa.concat_tables([p.cast(parts[0].schema) for p in parts])
        n = table.num_rows
        table = table.append_column("source", pa.array([batch.source] * n, pa.string()))
        table = table.append_column(
            "ingested_at", pa.array([ingested_at] * n, pa.timestamp("us", tz="UTC"))
        )
        return table.select(QUARANTINE_SCHEMA.names).cast(QUARANTINE_SCHEMA)


def _decoded(data: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with dictionary columns (Parquet text) as plain values, as the rules expect."""
    for i, field in enumerate(data.schema):
        if pa.types.is_dictionary(field.type):
            column = data.column(i).cast(field.type.value_type)
            data = data.set_column(i, field.with_type(column.type), column)
    return data


def _is_text(typ: pa.DataType) -> bool:
    return bool(pa.types.is_string(typ) or pa.types.is_large_string(typ))


def _text(col: str, schema: pa.Schema) -> str:
    """SQL for a column as trimmed text, empty → NULL (what the rules and messages look at)."""
    if _is_text(schema.field(col).type):
        return f"NULLIF(_trimmed_{col}, '')"
    if EVENT_SCHEMA.field(col).type == pa.string():
        return f"CAST(r_{col} AS VARCHAR)"
    # A typed value (Parquet) is used as it is: casting it to text only to parse it back would
    # cost more than the rest of the validation.
    return f"r_{col}"


def _with_trimmed_text(data: pa.RecordBatch) -> pa.RecordBatch:
    """Add `_trimmed_<col>` for text event columns.

    Why pyarrow: its whitespace trim (spaces, tabs, newlines) is an order of magnitude faster
    than DuckDB's trim(x, chars), and DuckDB re-evaluates inlined CTE expressions per reference.
    """
    for col in EVENT_SCHEMA.names:
        if _is_text(data.schema.field(col).type):
            data = data.append_column(f"_trimmed_{col}", pc.utf8_trim_whitespace(data.column(col)))
    return data


def _parsed_timestamp(schema: pa.Schema) -> str:
    typ = schema.field("event_time").type
    if pa.types.is_timestamp(typ):
        # Any unit becomes µs; a typed timestamp without a zone is taken as UTC (Parquet writers
        # such as pandas often drop the zone).
        if typ.tz:
            return "CAST(CAST(r_event_time AS TIMESTAMPTZ) AS TIMESTAMPTZ)"
        return "timezone('UTC', CAST(r_event_time AS TIMESTAMP))"
    if not _is_text(typ):
        return "NULL::TIMESTAMPTZ"
    s = "s_event_time"
    return (
        f"CASE WHEN {s} LIKE '% UTC' OR regexp_matches({s}, '{_TZ_SUFFIX}') "
        f"THEN TRY_CAST({s} AS TIMESTAMPTZ) END"
    )


def _integer(col: str, schema: pa.Schema) -> str:
    """Parsed integer, or NULL when the value is not a whole number."""
    typ = schema.field(col).type
    if pa.types.is_integer(typ):
        return f"TRY_CAST(r_{col} AS BIGINT)"
    s = f"s_{col}"
    # Digits only (the real data) take the cheap cast; `5.0` is still an integer, `5.5`,
    # `1e3`, `0x10` or `1_000` are not (DuckDB's cast alone would round or accept them).
    return (
        f"CASE WHEN NOT ({s} GLOB '*[!0-9]*') THEN TRY_CAST({s} AS BIGINT) "
        f"WHEN regexp_full_match({s}, '[+-][0-9]+') THEN TRY_CAST({s} AS BIGINT) "
        f"WHEN regexp_full_match({s}, '[+-]?[0-9]+\\.0*') "
        f"THEN TRY_CAST(split_part({s}, '.', 1) AS BIGINT) END"
    )


def _price(schema: pa.Schema) -> str:
    src = "r_price" if pa.types.is_floating(schema.field("price").type) else "s_price"
    return f"CASE WHEN isfinite(TRY_CAST({src} AS DOUBLE)) THEN TRY_CAST({src} AS DOUBLE) END"


def _checked_sql(schema: pa.Schema, raw_expr: str) -> str:
    """One pass: typed columns, the verdict, and the raw row for rejected rows only."""
    texts = ",\n".join(f"{_text(c, schema)} AS s_{c}" for c in EVENT_SCHEMA.names)
    originals = ", ".join(f"{c} AS r_{c}" for c in EVENT_SCHEMA.names)
    types = ", ".join(f"'{t}'" for t in EVENT_TYPES)
    reason = f"""
      CASE
        WHEN p_event_time IS NOT NULL AND event_time IS NULL
          THEN ['{Reason.MALFORMED}', format('event_time ''{{}}'' is out of range (years 1900 to 2199)', s_event_time)]
        WHEN s_event_time IS NOT NULL AND event_time IS NULL
          THEN ['{Reason.MALFORMED}', format('event_time ''{{}}'' is not a timestamp with a time zone', s_event_time)]
        WHEN s_product_id IS NOT NULL AND product_id IS NULL
          THEN ['{Reason.MALFORMED}', format('product_id ''{{}}'' is not an integer', s_product_id)]
        WHEN s_user_id IS NOT NULL AND user_id IS NULL
          THEN ['{Reason.MALFORMED}', format('user_id ''{{}}'' is not an integer', s_user_id)]
        WHEN s_category_id IS NOT NULL AND category_id IS NULL
          THEN ['{Reason.MALFORMED}', format('category_id ''{{}}'' is not an integer', s_category_id)]
        WHEN s_price IS NOT NULL AND price IS NULL
          THEN ['{Reason.MALFORMED}', format('price ''{{}}'' is not a finite number', s_price)]
        WHEN event_time IS NULL OR product_id IS NULL OR user_id IS NULL
          THEN ['{Reason.MISSING_REQUIRED}', concat_ws(', ',
                CASE WHEN event_time IS NULL THEN 'event_time' END,
                CASE WHEN product_id IS NULL THEN 'product_id' END,
                CASE WHEN user_id IS NULL THEN 'user_id' END) || ' missing']
        WHEN event_type IS NULL OR event_type NOT IN ({types})
          THEN ['{Reason.UNKNOWN_EVENT_TYPE}',
                format('event_type ''{{}}'' is not one of {types.replace("'", "")}', coalesce(event_type, ''))]
        WHEN price IS NULL THEN ['{Reason.MISSING_PRICE}', 'price missing']
        WHEN price < 0 THEN ['{Reason.NEGATIVE_PRICE}', 'price ' || price || ' is negative']
        WHEN $1::TIMESTAMPTZ IS NOT NULL AND event_time > $1::TIMESTAMPTZ
          THEN ['{Reason.FUTURE_TIMESTAMP}', 'event_time ' || strftime(event_time, '%Y-%m-%d %H:%M:%S UTC') || ' is ahead of the clock']
      END"""
    return f"""
    WITH originals AS (SELECT * RENAME ({originals}) FROM raw_batch),
    texts AS (SELECT *, {texts} FROM originals),
    typed AS (
      SELECT texts.*,
        {_parsed_timestamp(schema)} AS p_event_time,
        s_event_type AS t_event_type,
        {_integer("product_id", schema)} AS t_product_id,
        {_integer("category_id", schema)} AS t_category_id,
        s_category_code AS t_category_code,
        lower(s_brand) AS t_brand,
        {_price(schema)} AS t_price,
        {_integer("user_id", schema)} AS t_user_id,
        s_user_session AS t_user_session
      FROM texts
    ),
    ranged AS (
      SELECT *, CASE WHEN p_event_time >= TIMESTAMPTZ '{_MIN_TIME}'
                      AND p_event_time < TIMESTAMPTZ '{_MAX_TIME}' THEN p_event_time END AS t_event_time
      FROM typed
    ),
    renamed AS (
      SELECT * RENAME ({", ".join(f"t_{c} AS {c}" for c in EVENT_SCHEMA.names)}) FROM ranged
    ),
    judged AS (SELECT *, {reason} AS _verdict FROM renamed)
    SELECT {", ".join(EVENT_SCHEMA.names)}, _line,
           _verdict[1] AS _reason, _verdict[2] AS _detail,
           CASE WHEN _verdict IS NOT NULL THEN {raw_expr} END AS _rawrow,
           {ROW_KEY_SQL} AS _key
    FROM judged
    """


def _csv_field(col: str) -> str:
    return (
        f"CASE WHEN {col} IS NULL THEN '' "
        f"WHEN regexp_matches({col}, '[,\"\\n\\r]') THEN '\"' || replace({col}, '\"', '\"\"') || '\"' "
        f"ELSE {col} END"
    )


def _raw_expr(batch: RawBatch, schema: pa.Schema) -> str:
    """SQL rebuilding the row as it was read: the original line or the file's own columns."""
    if "_raw" in schema.names:
        return "_raw"
    cols = [f'"{c}"' if c in batch.extra_columns else f"r_{c}" for c in batch.raw_columns]
    if batch.raw_format == "csv":
        return "concat_ws(',', " + ", ".join(_csv_field(c) for c in cols) + ")"
    pairs = ", ".join(f"'{name}', {col}" for name, col in zip(batch.raw_columns, cols, strict=True))
    return f"CAST(json_object({pairs}) AS VARCHAR)"
