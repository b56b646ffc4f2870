"""Data-quality counts per minute."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from cartpulse.operators.dq import DQ_SCHEMA, event_dq_counts

T0 = dt.datetime(2019, 10, 1, tzinfo=dt.UTC)


def table(seconds: list[int], prices: list[float]) -> pa.Table:
    times = [T0 + dt.timedelta(seconds=s) for s in seconds]
    return pa.table({"event_time": pa.array(times, pa.timestamp("us", tz="UTC")), "price": prices})


def test_counts_accepted_and_zero_prices_per_minute() -> None:
    got = event_dq_counts(table([0, 59, 60, 3600], [1.0, 0.0, 0.0, 2.0]), DQ_SCHEMA.empty_table())
    rows = sorted((r["minute"], r["reason"], r["rows"]) for r in got.to_pylist())
    assert rows == [
        (T0, "accepted", 2),
        (T0, "zero_price", 1),
        (T0 + dt.timedelta(minutes=1), "accepted", 1),
        (T0 + dt.timedelta(minutes=1), "zero_price", 1),
        (T0 + dt.timedelta(hours=1), "accepted", 1),
    ]


def test_a_far_off_timestamp_does_not_need_a_dense_array() -> None:
    far = int((dt.datetime(2199, 1, 1, tzinfo=dt.UTC) - T0).total_seconds())
    got = event_dq_counts(table([0, far], [1.0, 1.0]), DQ_SCHEMA.empty_table())
    assert sorted(r["rows"] for r in got.to_pylist()) == [1, 1]
