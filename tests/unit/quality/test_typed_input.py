"""Typed (Parquet) input: the Arrow path gives what the SQL rules give, row for row.

Batches mix clean rows with every kind of row a rule rejects or normalises: whitespace,
empty strings, upper-case and non-ASCII brands, missing values, negative and non-finite
prices, unknown types, times out of range and ahead of the clock.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cartpulse.quality.typed_input import split_typed
from cartpulse.quality.validate import Validated, Validator
from cartpulse.sources.base import RawBatch
from cartpulse.sources.files import read_events

UTC = dt.UTC
INGESTED_AT = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
T0_US = 1_569_888_000_000_000  # 2019-10-01


def _batch(rows: int, seed: int, tmp: Path, accents: bool, dictionary: bool) -> list[RawBatch]:
    """Typed rows of every kind; brands with non-ASCII letters only with `accents`; text
    stored dictionary-encoded (read as dictionaries) or plain."""
    rng = np.random.default_rng(seed)
    accented = 0.1 if accents else 0.0

    def pick(values: list[object], weights: list[float]) -> list[object]:
        return [values[i] for i in rng.choice(len(values), rows, p=weights)]

    times = T0_US + rng.integers(0, 10**9, rows)
    times[rng.random(rows) < 0.05] = -3_000_000_000_000_000  # year 1874: out of range
    table = pa.table(
        {
            "event_time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "event_type": pick(
                ["view", " cart ", "purchase", "VIEW", "", None], [0.5, 0.2, 0.1, 0.1, 0.05, 0.05]
            ),
            "product_id": pick([1, 2, None], [0.45, 0.5, 0.05]),
            "category_id": pick([7, None], [0.5, 0.5]),
            "category_code": pick(["a.b", " a.b", "", None], [0.4, 0.2, 0.2, 0.2]),
            "brand": pick(
                ["acme", " ACME ", "", None, "Élan", "ÉLAN"],
                [0.5 - accented, 0.2, 0.1, 0.2 - accented, accented, accented],
            ),
            "price": pick(
                [1.5, 0.0, -2.0, float("nan"), float("inf"), None], [0.6, 0.1, 0.1, 0.05, 0.05, 0.1]
            ),
            "user_id": pick([3, 4, None], [0.5, 0.45, 0.05]),
            "user_session": pick(
                ["s", " s", "", None, "s\u3000", "\u00a0s", "s\t"],
                [0.5, 0.1, 0.1, 0.2, 0.05, 0.03, 0.02],
            ),
        }
    )
    path = tmp / f"typed-{seed}-{rows}-{dictionary}.parquet"
    pq.write_table(table, path, use_dictionary=dictionary)
    return list(read_events(path, 10_000))


def _same(got: Validated, want: Validated) -> None:
    assert got.clean.to_pylist() == want.clean.to_pylist()
    assert got.keys.tolist() == want.keys.tolist()
    assert got.times_us.tolist() == want.times_us.tolist()
    assert got.quarantine.sort_by("line").to_pylist() == want.quarantine.sort_by("line").to_pylist()


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    clock=st.booleans(),
    accents=st.booleans(),
    dictionary=st.booleans(),
)
def test_the_arrow_path_gives_what_the_sql_gives(
    tmp_path_factory: pytest.TempPathFactory,
    rows: int,
    seed: int,
    clock: bool,
    accents: bool,
    dictionary: bool,
) -> None:
    tmp = tmp_path_factory.mktemp("typed")
    now = dt.datetime(2019, 10, 6, tzinfo=UTC) if clock else None
    horizon = now + dt.timedelta(minutes=5) if now else None
    validator = Validator()
    for batch in _batch(rows, seed, tmp, accents, dictionary):
        _same(
            validator.validate(batch, INGESTED_AT, now),
            validator.validate_sql(batch, INGESTED_AT, horizon),
        )
    validator.close()


def test_a_clean_typed_batch_takes_the_arrow_path(tmp_path: Path) -> None:
    table = pa.table(
        {
            "event_time": pa.array([T0_US, T0_US + 1], pa.timestamp("us", tz="UTC")),
            "event_type": ["view", "cart"],
            "product_id": pa.array([1, 2], pa.int64()),
            "category_id": pa.array([None, 5], pa.int64()),
            "category_code": [" x ", None],
            "brand": ["ACME", ""],
            "price": [1.0, 2.0],
            "user_id": pa.array([3, 4], pa.int64()),
            "user_session": ["s", "t"],
        }
    )
    pq.write_table(table, tmp_path / "c.parquet")
    (batch,) = read_events(tmp_path / "c.parquet")
    validator = Validator()
    out = validator.validate(batch, INGESTED_AT)
    assert out.clean.column("brand").to_pylist() == ["acme", None]
    assert out.clean.column("category_code").to_pylist() == ["x", None]
    _same(out, validator.validate_sql(batch, INGESTED_AT, None))
    validator.close()


def test_dictionary_columns_flag_the_rows_their_values_would() -> None:
    # Null names in a dictionary, null indices, names a rule rejects and names it does not.
    kinds = pa.DictionaryArray.from_arrays(
        pa.array([0, 1, None, 2, 3, 0, 3], pa.int32()), pa.array(["view", "VIEW", None, "cart"])
    )
    brands = pa.DictionaryArray.from_arrays(
        pa.array([2, 1, 1, 1, 0, None, 3], pa.int32()), pa.array(["Élan", "acme", None, "x"])
    )
    n = len(kinds)
    data = pa.record_batch(
        {
            "event_time": pa.array([T0_US] * n, pa.timestamp("us", tz="UTC")),
            "event_type": kinds,
            "product_id": pa.array([1] * n, pa.int64()),
            "category_id": pa.array([None] * n, pa.int64()),
            "category_code": pa.array([None] * n, pa.string()),
            "brand": brands,
            "price": [1.0] * n,
            "user_id": pa.array([3] * n, pa.int64()),
            "user_session": ["s"] * n,
        }
    )
    plain = pa.record_batch(
        [c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c for c in data.columns],
        names=data.schema.names,
    )
    got, want = split_typed(data, None), split_typed(plain, None)
    assert got is not None and want is not None
    assert got.suspect.tolist() == want.suspect.tolist()
    # unknown type (VIEW), missing type (null index, null name), non-ASCII brand (Élan)
    assert got.suspect.tolist() == [False, True, True, True, True, False, False]
