"""Sessions → abandoned carts, against the DESIGN.md definition computed independently."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from cartpulse.ingest import ingest_files
from cartpulse.operators.order import encode_shared
from cartpulse.operators.sessions import SessionOperator, SessionState
from cartpulse.query import connect
from cartpulse.settings import load_settings
from tests import oracle

UTC = dt.UTC
T0 = dt.datetime(2019, 10, 1, tzinfo=UTC)


def events(rows: list[tuple[int, str, int, float, int, str | None]]) -> pa.Table:
    """(seconds after T0, type, product, price, user, session) → an event table with offsets."""
    return pa.table(
        {
            "event_time": pa.array(
                [T0 + dt.timedelta(seconds=r[0]) for r in rows], pa.timestamp("us", tz="UTC")
            ),
            "event_type": [r[1] for r in rows],
            "product_id": pa.array([r[2] for r in rows], pa.int64()),
            "category_id": pa.array([None] * len(rows), pa.int64()),
            "category_code": pa.array([None] * len(rows), pa.string()),
            "brand": pa.array(["b"] * len(rows), pa.string()),
            "price": pa.array([r[3] for r in rows], pa.float64()),
            "user_id": pa.array([r[4] for r in rows], pa.int64()),
            "user_session": pa.array([r[5] for r in rows], pa.string()),
            "_offset": pa.array(range(len(rows)), pa.int64()),
        }
    )


def run(
    table: pa.Table, batch_rows: int, lateness_s: int = 60, encoded: bool = False
) -> list[dict[str, Any]]:
    """Feed the table in batches with a watermark, flush at the end, return sorted carts.

    `encoded`: session ids and event types dictionary-encoded, as the engine passes them.
    """
    op = SessionOperator(1800)
    state, out = SessionState.empty(), []
    top = None
    for start in range(0, table.num_rows, batch_rows):
        batch = table.slice(start, batch_rows)
        if encoded:
            batch = encode_shared(batch, ("user_session", "event_type"))
        times = batch.column("event_time").cast(pa.int64()).to_pylist()
        top = max([*times, top or -(2**62)])
        state, carts = op.advance(state, batch, top - lateness_s * 1_000_000)
        out.extend(carts.to_pylist())
    state, carts = op.flush(state)
    out.extend(carts.to_pylist())
    assert state.open_sessions == 0
    return sorted(out, key=lambda r: (r["user_session"], r["session_start"]))


def assert_same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        for key in (
            "user_session",
            "user_id",
            "session_start",
            "session_end",
            "expired_at",
            "item_count",
        ):
            assert g[key] == w[key], (key, g, w)
        assert math.isclose(g["cart_value"], w["cart_value"], rel_tol=1e-9), (g, w)
        assert [(i["product_id"], i["count"], i["price"]) for i in g["items"]] == [
            (i["product_id"], i["count"], i["price"]) for i in w["items"]
        ]


def test_cart_minus_removes_and_last_seen_price() -> None:
    t = events(
        [
            (0, "view", 1, 5.0, 7, "s1"),
            (10, "cart", 1, 5.0, 7, "s1"),
            (20, "cart", 1, 5.0, 7, "s1"),
            (30, "cart", 2, 3.0, 7, "s1"),
            (40, "remove_from_cart", 2, 3.0, 7, "s1"),
            (50, "remove_from_cart", 2, 3.0, 7, "s1"),  # floored at 0 at expiry
            (60, "view", 1, 4.5, 7, "s1"),  # last seen price of product 1
            (0, "cart", 9, 1.0, 8, "bought"),
            (5, "purchase", 3, 1.0, 8, "bought"),  # a purchase: not abandoned
            (0, "cart", 9, 1.0, 9, None),  # no session: not sessionised
        ]
    )
    carts = run(t, batch_rows=3)
    assert [(c["user_session"], c["item_count"], c["cart_value"]) for c in carts] == [
        ("s1", 2, 9.0)
    ]
    assert carts[0]["expired_at"] == T0 + dt.timedelta(seconds=60 + 1800)
    assert carts[0]["items"] == [
        {"product_id": 1, "count": 2, "price": 4.5, "brand": "b", "category_code": None}
    ]


def test_gap_longer_than_timeout_starts_a_new_session() -> None:
    t = events(
        [
            (0, "cart", 1, 2.0, 7, "s"),
            (1801, "cart", 2, 3.0, 7, "s"),
            (1802, "purchase", 2, 3.0, 7, "s"),
        ]
    )
    for batch_rows in (1, 2, 3):
        carts = run(t, batch_rows)
        assert [(c["session_end"], c["cart_value"]) for c in carts] == [(T0, 2.0)], batch_rows


def test_session_expires_only_after_watermark_passes() -> None:
    op = SessionOperator(1800)
    state, carts = op.advance(SessionState.empty(), events([(0, "cart", 1, 2.0, 7, "s")]), None)
    assert carts.num_rows == 0 and state.open_sessions == 1
    almost = int((T0 + dt.timedelta(seconds=1799)).timestamp() * 1e6)
    state, carts = op.advance(state, events([]), almost)
    assert carts.num_rows == 0
    state, carts = op.advance(state, events([]), almost + 1_000_000)
    assert carts.num_rows == 1 and state.open_sessions == 0


@pytest.mark.parametrize("batch_rows", [1_000, 7_777, 100_000])
def test_real_rows_match_the_oracle(real_dir: Path, tmp_path: Path, batch_rows: int) -> None:
    settings = load_settings(home=tmp_path / "home")
    ingest_files(
        settings,
        [
            real_dir / "multicategory_2019-10_head.csv",
            real_dir / "cosmetics_6col_2019_oct_head.csv",
        ],
    )
    con = connect(settings)
    table = con.sql(
        "SELECT * EXCLUDE (event_date), row_number() OVER (ORDER BY event_time, user_session, product_id, event_type, price) - 1 AS _offset "
        "FROM events ORDER BY _offset"
    ).to_arrow_table()
    want = oracle.abandoned_carts(table)
    assert len(want) > 50  # the real rows do hold abandoned carts
    assert_same(run(table, batch_rows), want)
    assert_same(run(table, batch_rows, encoded=True), want)
