"""The Spark session step (one bucket of sessions) without a JVM: a fake GroupState."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute
import pytest

pd = pytest.importorskip("pandas")

from cartpulse.operators.sessions import ABANDONED_CARTS_SCHEMA, SessionOperator  # noqa: E402
from cartpulse.spark.sessions import SESSION_INPUT_COLUMNS, advance_bucket, from_ipc  # noqa: E402

T0 = dt.datetime(2019, 10, 1, tzinfo=dt.UTC)
TIMEOUT_S = 1_800


class FakeGroupState:
    """The part of pyspark's GroupState the session step uses."""

    def __init__(self, watermark_ms: int = 0) -> None:
        self.value: tuple[Any, ...] | None = None
        self.watermark_ms = watermark_ms
        self.timeout_ms: int | None = None

    @property
    def exists(self) -> bool:
        return self.value is not None

    @property
    def get(self) -> tuple[Any, ...]:
        assert self.value is not None
        return self.value

    def update(self, value: tuple[Any, ...]) -> None:
        self.value = value

    def remove(self) -> None:
        self.value = None

    def getCurrentWatermarkMs(self) -> int:  # noqa: N802  (pyspark's name)
        return self.watermark_ms

    def setTimeoutTimestamp(self, ms: int) -> None:  # noqa: N802
        assert ms > self.watermark_ms, "Spark refuses a timeout at or before the watermark"
        self.timeout_ms = ms


def frame(rows: list[tuple[int, str, int, float, str]], flush: bool = False) -> Any:
    """(seconds after T0, type, product, price, session) rows as the pandas frame Spark passes."""
    records: list[dict[str, Any]] = [
        {
            "event_time": (T0 + dt.timedelta(seconds=r[0])).replace(tzinfo=None),
            "event_type": r[1],
            "product_id": r[2],
            "category_code": None,
            "brand": "b",
            "price": r[3],
            "user_id": 7,
            "user_session": r[4],
            "_flush": False,
            "_bucket": 0,
        }
        for r in rows
    ]
    if flush:
        records.append({"event_time": None, "_flush": True, "_bucket": 0})
    return pd.DataFrame.from_records(records, columns=_COLUMNS)


_COLUMNS = [*SESSION_INPUT_COLUMNS, "_flush", "_bucket"]


def run(state: FakeGroupState, frames: list[Any]) -> tuple[pa.Table, dict[str, Any]]:
    out: Iterator[Any] = advance_bucket(TIMEOUT_S, (0,), iter(frames), state)
    (result,) = list(out)
    row = result.iloc[0].to_dict()
    carts = row["carts"]
    table = from_ipc(carts, ABANDONED_CARTS_SCHEMA) if carts is not None else None
    return (table if table is not None else ABANDONED_CARTS_SCHEMA.empty_table()), row


def test_open_cart_is_kept_in_state_with_a_timeout_after_its_expiry() -> None:
    state = FakeGroupState()
    carts, row = run(state, [frame([(0, "cart", 1, 2.5, "s1"), (10, "view", 2, 1.0, "s1")])])
    assert carts.num_rows == 0
    assert row["open_sessions"] == 1 and row["state_bytes"] > 0
    expiry_ms = int((T0.timestamp() + 10 + TIMEOUT_S) * 1000)
    assert state.timeout_ms == expiry_ms + 1


def test_timeout_with_the_watermark_past_expiry_emits_the_cart_and_clears_state() -> None:
    state = FakeGroupState()
    run(state, [frame([(0, "cart", 1, 2.5, "s1"), (5, "cart", 1, 3.0, "s1")])])
    state.watermark_ms = int((T0.timestamp() + 5 + TIMEOUT_S) * 1000) + 1
    carts, row = run(state, [])
    assert carts.column("item_count").to_pylist() == [2]
    assert carts.column("cart_value").to_pylist() == [6.0]  # 2 × the last seen price
    assert not state.exists and row["open_sessions"] == 0


def test_flush_row_expires_every_session_like_the_embedded_flush() -> None:
    rows = [(0, "cart", 1, 2.5, "s1"), (1, "cart", 2, 4.0, "s2"), (2, "purchase", 2, 4.0, "s2")]
    state = FakeGroupState()
    carts, _ = run(state, [frame(rows, flush=True)])
    op = SessionOperator(TIMEOUT_S)
    table = pa.Table.from_pandas(frame(rows).drop(columns=["_flush", "_bucket"]))
    table = table.set_column(
        0,
        "event_time",
        pa.compute.assume_timezone(table.column(0).cast(pa.timestamp("us")), "UTC"),
    ).append_column("_offset", pa.array(range(len(rows)), pa.int64()))
    expected = op.flush(op.advance(_empty(), table, None)[0])[1]
    assert carts.to_pylist() == expected.to_pylist()
    assert carts.column("user_session").to_pylist() == ["s1"]  # s2 bought: not abandoned
    assert not state.exists


def _empty() -> Any:
    from cartpulse.operators.sessions import SessionState

    return SessionState.empty()
