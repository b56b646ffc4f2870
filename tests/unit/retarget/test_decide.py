"""Decisions: vectorised Message-IDs equal the renderer's."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa

from cartpulse.retarget.decide import Retargeter
from cartpulse.retarget.render import message_id
from cartpulse.settings import load_settings


def test_vectorised_message_ids_equal_the_renderers(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    starts = [
        dt.datetime(2019, 10, 1, 0, 0, 14, tzinfo=dt.UTC),
        dt.datetime(2019, 10, 1, 0, 0, 14, 250_000, tzinfo=dt.UTC),
        dt.datetime(2019, 10, 1, 0, 0, 14, 7, tzinfo=dt.UTC),
    ]
    carts = pa.table(
        {
            "user_session": ["a", "b-é", "c"],
            "session_start": pa.array(starts, pa.timestamp("us", tz="UTC")),
        }
    )
    got = Retargeter(settings, con)._message_ids(carts).to_pylist()
    want = [message_id(c, settings.smtp.sender) for c in carts.to_pylist()]
    assert got == want


def test_bot_flagged_users_are_never_emailed(tmp_path: Path) -> None:
    from cartpulse.engine.store import ServingStore

    settings = load_settings(home=tmp_path / "home")
    store = ServingStore(tmp_path / "w.duckdb")
    con = store.con
    csv = tmp_path / "c.csv"
    csv.write_text(
        "user_id,email,first_name,locale,consent\n1,a@example.com,A,en_US,true\n2,b@example.com,B,en_US,true\n"
    )
    from cartpulse.retarget.customers import import_customers

    now = dt.datetime(2019, 10, 2, tzinfo=dt.UTC)
    import_customers(con, csv, now)
    con.execute("INSERT INTO bot_alerts VALUES (2, ?, 'crawler', 9.5, '{}')", [now])
    start = dt.datetime(2019, 10, 1, tzinfo=dt.UTC)
    item = {"product_id": 7, "count": 1, "price": 60.0, "brand": "b", "category_code": None}
    carts = pa.table(
        {
            "user_session": ["s1", "s2"],
            "user_id": pa.array([1, 2], pa.int64()),
            "session_start": pa.array([start, start], pa.timestamp("us", tz="UTC")),
            "session_end": pa.array([start, start], pa.timestamp("us", tz="UTC")),
            "expired_at": pa.array(
                [start + dt.timedelta(minutes=30)] * 2, pa.timestamp("us", tz="UTC")
            ),
            "items": [[item], [item]],
            "item_count": pa.array([1, 1], pa.int64()),
            "cart_value": [60.0, 60.0],
        }
    )
    settings = load_settings(home=tmp_path / "home", retarget={"holdout_share": 0.0})
    rows = Retargeter(settings, con).decide(carts, now).to_pylist()
    got = {r["user_id"]: (r["status"], r["reason"]) for r in rows}
    assert got == {1: ("queued", None), 2: ("suppressed", "bot")}
    store.close()


def test_carts_of_users_not_in_the_directory_are_suppressed_as_unknown_email(
    tmp_path: Path,
) -> None:
    from cartpulse.engine.store import ServingStore
    from cartpulse.retarget.outbox import ENQUEUE_SCHEMA

    settings = load_settings(home=tmp_path / "home")
    store = ServingStore(tmp_path / "w.duckdb")
    now = dt.datetime(2019, 10, 2, 8, 30, tzinfo=dt.UTC)
    start = dt.datetime(2019, 10, 1, tzinfo=dt.UTC)
    item = {"product_id": 7, "count": 1, "price": 60.0, "brand": "b", "category_code": None}
    ts = pa.timestamp("us", tz="UTC")
    carts = pa.table(
        {
            "user_session": ["s1", "s2", "s3"],
            "user_id": pa.array([11, 12, 13], pa.int64()),
            "session_start": pa.array([start] * 3, ts),
            "session_end": pa.array([start] * 3, ts),
            "expired_at": pa.array([start + dt.timedelta(minutes=30)] * 3, ts),
            "items": [[item]] * 3,
            "item_count": pa.array([1, 1, 1], pa.int64()),
            "cart_value": [60.0, 61.0, 62.0],
        }
    )
    got = Retargeter(settings, store.con).decide(carts, now)
    assert got.schema == ENQUEUE_SCHEMA
    rows = got.to_pylist()
    assert [r["user_id"] for r in rows] == [11, 12, 13]
    assert [r["cart_value"] for r in rows] == [60.0, 61.0, 62.0]
    for r in rows:
        assert (r["status"], r["reason"], r["holdout"]) == ("suppressed", "unknown_email", False)
        assert r["queued_at"] == now
        assert r["email"] is None and r["message"] is None and r["coupon"] is None
    store.close()
