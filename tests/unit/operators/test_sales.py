"""Live sales: purchases per product and minute, with plain or dictionary-encoded event types."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cartpulse.operators.sales import SALES_SCHEMA, SalesOperator, purchases

_T0 = dt.datetime(2019, 10, 1, tzinfo=dt.UTC)


def events(rows: list[tuple[int, str, int, float]]) -> pa.Table:
    """(second, type, product, price) → events."""
    return pa.table(
        {
            "event_time": pa.array(
                [_T0 + dt.timedelta(seconds=r[0]) for r in rows], pa.timestamp("us", tz="UTC")
            ),
            "event_type": [r[1] for r in rows],
            "product_id": pa.array([r[2] for r in rows], pa.int64()),
            "price": [r[3] for r in rows],
        }
    )


def encoded(table: pa.Table) -> pa.Table:
    """The events with event_type dictionary-encoded, as the engine hands them on."""
    kinds = pc.dictionary_encode(table.column("event_type").combine_chunks())
    return table.set_column(1, "event_type", kinds)


BATCH = events(
    [
        (0, "view", 1, 9.0),
        (5, "purchase", 1, 2.5),
        (10, "cart", 2, 4.0),
        (30, "purchase", 1, 2.25),
        (70, "purchase", 2, 4.0),
        (80, "remove_from_cart", 2, 4.0),
    ]
)


@pytest.mark.parametrize("shape", [lambda t: t, encoded], ids=["plain", "encoded"])
def test_only_purchases_reach_the_windows(shape) -> None:
    op = SalesOperator()
    try:
        windows, update = op.advance(SALES_SCHEMA.empty_table(), shape(BATCH), None)
    finally:
        op.close()
    assert purchases(shape(BATCH)).column("product_id").to_pylist() == [1, 1, 2]
    assert update.changed.to_pylist() == [
        {"window_start": _T0, "product_id": 1, "purchases": 2, "revenue": 4.75},
        {
            "window_start": _T0 + dt.timedelta(minutes=1),
            "product_id": 2,
            "purchases": 1,
            "revenue": 4.0,
        },
    ]
    assert windows.num_rows == 2
    assert update.late_purchases == 0


def test_a_batch_without_purchases_changes_nothing() -> None:
    op = SalesOperator()
    try:
        batch = encoded(events([(0, "view", 1, 1.0), (1, "cart", 1, 1.0)]))
        windows, update = op.advance(SALES_SCHEMA.empty_table(), batch, None)
    finally:
        op.close()
    assert windows.num_rows == 0
    assert update.changed.num_rows == 0
