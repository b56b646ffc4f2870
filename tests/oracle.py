"""Independent computations of the stream outputs, straight from DESIGN.md, for oracle tests.

They run over the whole cleaned event stream at once (no batches, no state), so a bug in the
incremental operators cannot hide in them too.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

TIMEOUT_S = 1800


def abandoned_carts_sql(events: str, timeout_s: int = TIMEOUT_S) -> str:
    """SQL computing abandoned carts from `events` (a relation with an `_offset` arrival order)."""
    return f"""
    WITH e AS (SELECT * FROM {events} WHERE user_session IS NOT NULL),
    g AS (
      SELECT *, event_time - lag(event_time) OVER w > INTERVAL {timeout_s} SECOND AS new_session
      FROM e WINDOW w AS (PARTITION BY user_session ORDER BY event_time, _offset)
    ),
    s AS (
      SELECT *, sum(CASE WHEN new_session THEN 1 ELSE 0 END) OVER (
        PARTITION BY user_session ORDER BY event_time, _offset ROWS UNBOUNDED PRECEDING) AS part
      FROM g
    ),
    sessions AS (
      SELECT user_session, part, min(event_time) AS session_start, max(event_time) AS session_end,
             arg_max(user_id, (event_time, user_id)) AS user_id,
             count(*) FILTER (WHERE event_type = 'purchase') AS purchases
      FROM s GROUP BY ALL
    ),
    products AS (
      SELECT user_session, part, product_id,
             greatest(count(*) FILTER (WHERE event_type = 'cart')
                      - count(*) FILTER (WHERE event_type IN ('remove_from_cart', 'purchase')), 0)
               AS qty,
             arg_max(price, (event_time, _offset)) AS price,
             arg_max(brand, (event_time, _offset)) AS brand,
             arg_max(category_code, (event_time, _offset)) AS category_code
      FROM s GROUP BY ALL
    )
    SELECT ss.user_session, ss.user_id, ss.session_start, ss.session_end,
           ss.session_end + INTERVAL {timeout_s} SECOND AS expired_at,
           list(struct_pack(product_id := p.product_id, count := p.qty, price := p.price,
                            brand := p.brand, category_code := p.category_code)
                ORDER BY p.product_id) AS items,
           sum(p.qty) AS item_count, sum(p.qty * p.price) AS cart_value
    FROM sessions ss JOIN products p USING (user_session, part)
    WHERE ss.purchases = 0 AND p.qty > 0
    GROUP BY ALL
    """


def abandoned_carts(events: pa.Table, timeout_s: int = TIMEOUT_S) -> list[dict[str, Any]]:
    """Abandoned carts of an event table, sorted by (user_session, session_start)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("events_in", events)
    rows = con.sql(abandoned_carts_sql("events_in", timeout_s)).to_arrow_table().to_pylist()
    con.close()
    return sorted(rows, key=lambda r: (r["user_session"], r["session_start"]))


def product_sales_minute(events: pa.Table) -> list[dict[str, Any]]:
    """Purchases and revenue per product per minute, sorted by (window_start, product_id)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("events_in", events)
    rows = (
        con.sql(
            """
        SELECT date_trunc('minute', event_time) AS window_start, product_id,
               count(*) AS purchases, sum(price) AS revenue
        FROM events_in WHERE event_type = 'purchase'
        GROUP BY ALL ORDER BY window_start, product_id
        """
        )
        .to_arrow_table()
        .to_pylist()
    )
    con.close()
    return list(rows)
