"""The serving store on a real DuckDB file: carts of new homes and of homes made with a key."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa

from cartpulse.engine.store import BatchOutputs, ServingStore
from cartpulse.operators.dq import DQ_SCHEMA
from cartpulse.operators.sales import SALES_SCHEMA
from cartpulse.operators.sessions import ABANDONED_CARTS_SCHEMA

_T0 = dt.datetime(2019, 10, 1, tzinfo=dt.UTC)


def carts(*sessions: str) -> pa.Table:
    """One abandoned cart per session id, each with one item."""
    n = len(sessions)
    item = {"product_id": 1, "count": 2, "price": 3.5, "brand": "b", "category_code": None}
    return pa.table(
        {
            "user_session": list(sessions),
            "user_id": [7] * n,
            "session_start": [_T0] * n,
            "session_end": [_T0 + dt.timedelta(minutes=1)] * n,
            "expired_at": [_T0 + dt.timedelta(minutes=31)] * n,
            "items": [[item]] * n,
            "item_count": [2] * n,
            "cart_value": [7.0] * n,
        },
        schema=ABANDONED_CARTS_SCHEMA,
    )


def publish(store: ServingStore, table: pa.Table) -> None:
    """Publish carts in a transaction of their own, as a micro-batch commit does."""
    store.con.execute("BEGIN TRANSACTION")
    store.publish(BatchOutputs(table, SALES_SCHEMA.empty_table(), DQ_SCHEMA.empty_table()))
    store.con.execute("COMMIT")


def primary_keys(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' "
            "AND table_name = 'abandoned_carts'"
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def test_a_new_home_stores_carts_without_a_primary_key(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    store = ServingStore(path)
    publish(store, carts("s1", "s2"))
    publish(store, carts("s3"))
    got = store.query("SELECT user_session, cart_value FROM abandoned_carts ORDER BY 1")
    store.close()
    assert got.to_pylist() == [{"user_session": s, "cart_value": 7.0} for s in ("s1", "s2", "s3")]
    assert primary_keys(path) == []


def test_a_home_made_with_the_cart_key_keeps_ignoring_repeats(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    # the table as homes created before the key was dropped have it
    con.execute(
        "CREATE TABLE abandoned_carts (user_session VARCHAR NOT NULL, user_id BIGINT NOT NULL, "
        "session_start TIMESTAMPTZ NOT NULL, session_end TIMESTAMPTZ NOT NULL, "
        "expired_at TIMESTAMPTZ NOT NULL, items STRUCT(product_id BIGINT, count BIGINT, "
        "price DOUBLE, brand VARCHAR, category_code VARCHAR)[] NOT NULL, "
        "item_count BIGINT NOT NULL, cart_value DOUBLE NOT NULL, "
        "PRIMARY KEY (user_session, session_start))"
    )
    con.close()
    store = ServingStore(path)
    publish(store, carts("s1", "s2"))
    publish(store, carts("s2", "s3"))
    got = store.query("SELECT user_session FROM abandoned_carts ORDER BY 1")
    store.close()
    assert got.column("user_session").to_pylist() == ["s1", "s2", "s3"]
    assert primary_keys(path) == ["abandoned_carts"]
