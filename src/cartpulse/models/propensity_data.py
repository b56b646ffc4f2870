"""Carted items from the lake, with what was known when the item was carted, and the label.

One row per (session, product) with a cart event. The label is whether that product was bought
in that session. Features only use what was known at the item's first cart event: the session
so far, the price, and the product's and user's history before that day or session; nothing
that happens after the cart (removals, the purchase itself) is a feature.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from cartpulse.models.lake import EVENTS, ModelDataError, fetch_arrow

FEATURES = (
    "price",
    "price_to_category_median",
    "hour_utc",
    "weekday",
    "views_before",
    "carts_before",
    "seconds_in_session",
    "user_prior_sessions",
    "user_prior_purchase_sessions",
    "product_prior_views",
    "product_prior_carts",
    "product_prior_purchases",
    "product_prior_conversion",
)

_ITEMS_SQL = f"""
WITH ev AS (
  SELECT user_session, user_id, product_id, category_id, event_type, event_time, price,
         CAST(event_time AS DATE) AS day
  FROM {EVENTS} WHERE user_session IS NOT NULL
), sessions AS (
  SELECT user_session, any_value(user_id) AS user_id, min(event_time) AS started_at,
         bool_or(event_type = 'purchase') AS bought
  FROM ev GROUP BY user_session
), user_history AS (
  SELECT user_session, started_at,
         count(*) OVER w - 1 AS user_prior_sessions,
         coalesce(sum(bought::INT) OVER w, 0) - bought::INT AS user_prior_purchase_sessions
  FROM sessions
  WINDOW w AS (PARTITION BY user_id ORDER BY started_at, user_session
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
), items AS (
  SELECT user_session, product_id, any_value(category_id) AS category_id,
         min(event_time) FILTER (event_type = 'cart') AS carted_at,
         arg_min(price, event_time) FILTER (event_type = 'cart') AS price,
         bool_or(event_type = 'purchase') AS purchased
  FROM ev GROUP BY user_session, product_id
  HAVING min(event_time) FILTER (event_type = 'cart') IS NOT NULL
), so_far AS (
  SELECT i.user_session, i.product_id,
         count(*) FILTER (e.event_type = 'view' AND e.event_time < i.carted_at) AS views_before,
         count(DISTINCT e.product_id) FILTER (e.event_type = 'cart' AND e.event_time < i.carted_at)
           AS carts_before
  FROM items i JOIN ev e USING (user_session)
  GROUP BY i.user_session, i.product_id
), product_day AS (
  SELECT product_id, day,
         sum(count(*) FILTER (event_type = 'view')) OVER p AS views,
         sum(count(*) FILTER (event_type = 'cart')) OVER p AS carts,
         sum(count(*) FILTER (event_type = 'purchase')) OVER p AS purchases
  FROM ev GROUP BY product_id, day
  WINDOW p AS (PARTITION BY product_id ORDER BY day ROWS UNBOUNDED PRECEDING)
), category_price AS (
  SELECT category_id, median(price) AS median_price FROM ev
  WHERE price > 0 AND category_id IS NOT NULL GROUP BY category_id
)
SELECT i.user_session, i.product_id, i.carted_at, i.purchased,
       i.price,
       i.price / nullif(c.median_price, 0) AS price_to_category_median,
       hour(i.carted_at) AS hour_utc,
       isodow(i.carted_at) AS weekday,
       s.views_before, s.carts_before,
       epoch(i.carted_at - u.started_at) AS seconds_in_session,
       u.user_prior_sessions, u.user_prior_purchase_sessions,
       coalesce(p.views, 0) AS product_prior_views,
       coalesce(p.carts, 0) AS product_prior_carts,
       coalesce(p.purchases, 0) AS product_prior_purchases,
       (coalesce(p.purchases, 0) + 1.0) / (coalesce(p.carts, 0) + 8.0) AS product_prior_conversion
FROM items i
JOIN so_far s USING (user_session, product_id)
JOIN user_history u USING (user_session)
LEFT JOIN category_price c USING (category_id)
ASOF LEFT JOIN product_day p
  ON i.product_id = p.product_id AND CAST(i.carted_at AS DATE) > p.day
ORDER BY i.carted_at, i.user_session, i.product_id
"""


def carted_items(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Every carted item in the lake with its features and label, in cart-time order."""
    table = fetch_arrow(con, _ITEMS_SQL)
    if table.num_rows == 0:
        raise ModelDataError("the lake has no cart events in sessions: nothing to learn from")
    return table
