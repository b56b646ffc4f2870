"""`cartpulse serve` with serving.postgres_dsn: live upserts reach PostgreSQL; readers agree."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from cartpulse import duck
from cartpulse.settings import Settings
from cartpulse.sinks.serving_read import DuckDBReader, PostgresReader
from tests.integration.test_serve_http import ndjson, real_events
from tests.postgres_db import fresh_database
from tests.serve_process import Serve, post_events


def _wait_for(dsn: str, sql: str, want: int, timeout_s: float = 20) -> int:
    deadline, got = time.monotonic() + timeout_s, -1
    while time.monotonic() < deadline:
        with psycopg.connect(dsn) as pg:
            try:
                row = pg.execute(sql).fetchone()
                got = int(row[0]) if row and row[0] is not None else 0
            except psycopg.errors.UndefinedTable:
                got = -1
        if got >= want:
            return got
        time.sleep(0.2)
    return got


def test_serve_publishes_live_and_at_shutdown(real_dir: Path, tmp_path: Path) -> None:
    rows = real_events(real_dir)
    purchases = sum(r["event_type"] == "purchase" for r in rows)
    with fresh_database() as dsn:
        env = {
            "CARTPULSE_SERVING__POSTGRES_DSN": dsn,
            "CARTPULSE_SERVING__PUBLISH_INTERVAL_S": "0.2",
        }
        home = tmp_path / "home"
        with Serve(home, env) as server:
            assert post_events(server.url, ndjson(rows)).status == 202
            live = _wait_for(dsn, "SELECT sum(purchases) FROM product_sales_minute", purchases)
            assert live == purchases
        # shutdown flushed every session: the final publish carries the abandoned carts
        settings = Settings(home=home)
        con = duck.connect(settings.warehouse_path, read_only=True)
        try:
            sql = "SELECT count(*) AS n, round(sum(cart_value)::NUMERIC, 2) AS v FROM abandoned_carts WHERE item_count >= ?"
            in_duck = DuckDBReader(con.cursor).query(sql, [1]).to_pylist()
            pg_reader = PostgresReader(dsn)
            in_pg = pg_reader.query(sql, [1]).to_pylist()
            like_sql = (
                "SELECT sum(rows) AS n FROM dq_counts WHERE reason LIKE 'accep%' AND minute > ?"
            )
            like = pg_reader.query(like_sql, ["2000-01-01 00:00:00+00"]).to_pylist()
            like_duck = DuckDBReader(con.cursor).query(like_sql, ["2000-01-01 00:00:00+00"])
            pg_reader.close()
        finally:
            con.close()
    assert in_duck[0]["n"] > 0
    assert [{"n": r["n"], "v": float(r["v"])} for r in in_pg] == [
        {"n": r["n"], "v": float(r["v"])} for r in in_duck
    ]
    accepted = like_duck.to_pylist()[0]["n"]
    assert 0 < accepted <= len(rows) and [int(r["n"]) for r in like] == [accepted]
