"""Carted items from the lake, with what was known when the item was carted, and the label.

One row per (session, product) with a cart event. The label is whether that product was bought
in that session. Features only use what was known at the item's first cart event: the session
so far, the price, and the product's and user's history before that day or session; nothing
that happens after the cart (removals, the purchase itself) is a feature.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from cartpulse.models.lake import EVENTS, ModelDataError

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
), cart_and_buy AS (
  -- views strictly before each event of the session: views sort after other events of the
  -- same second, so a cart row counts only earlier views
  SELECT user_session, product_id, category_id, event_type, event_time, price,
         count(*) FILTER (event_type = 'view') OVER (
           PARTITION BY user_session ORDER BY event_time, event_type = 'view'
           ROWS UNBOUNDED PRECEDING) AS views_before
  FROM ev
  WHERE user_session IN (SELECT user_session FROM ev WHERE event_type = 'cart')
), items AS (
  SELECT user_session, product_id, any_value(category_id) AS category_id,
         min(event_time) FILTER (event_type = 'cart') AS carted_at,
         arg_min(price, (event_time, price)) FILTER (event_type = 'cart') AS price,
         arg_min(views_before, event_time) FILTER (event_type = 'cart') AS views_before,
         bool_or(event_type = 'purchase') AS purchased
  FROM cart_and_buy WHERE event_type IN ('cart', 'purchase')
  GROUP BY user_session, product_id
  HAVING min(event_time) FILTER (event_type = 'cart') IS NOT NULL
), items_so_far AS (
  SELECT *,
         rank() OVER (PARTITION BY user_session ORDER BY carted_at) - 1 AS carts_before
  FROM items
), product_day AS (
  -- totals of the days before: a carted product always has a row on the day it was carted
  SELECT product_id, day,
         sum(count(*) FILTER (event_type = 'view')) OVER p AS views,
         sum(count(*) FILTER (event_type = 'cart')) OVER p AS carts,
         sum(count(*) FILTER (event_type = 'purchase')) OVER p AS purchases
  FROM ev GROUP BY product_id, day
  WINDOW p AS (PARTITION BY product_id ORDER BY day
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
), category_price AS (
  SELECT category_id, median(price) AS median_price FROM ev
  WHERE price > 0 AND category_id IS NOT NULL GROUP BY category_id
)
SELECT i.user_session, i.product_id, i.carted_at, i.purchased,
       i.price,
       i.price / nullif(c.median_price, 0) AS price_to_category_median,
       hour(i.carted_at) AS hour_utc,
       isodow(i.carted_at) AS weekday,
       i.views_before, i.carts_before,
       epoch(i.carted_at - u.started_at) AS seconds_in_session,
       u.user_prior_sessions, u.user_prior_purchase_sessions,
       coalesce(p.views, 0) AS product_prior_views,
       coalesce(p.carts, 0) AS product_prior_carts,
       coalesce(p.purchases, 0) AS product_prior_purchases,
       -- smoothed towards 1 in 8, about the shop's cart-to-purchase rate
       (coalesce(p.purchases, 0) + 1.0) / (coalesce(p.carts, 0) + 8.0) AS product_prior_conversion
FROM items_so_far i
JOIN user_history u USING (user_session)
LEFT JOIN category_price c USING (category_id)
LEFT JOIN product_day p
  ON i.product_id = p.product_id AND CAST(i.carted_at AS DATE) = p.day
WHERE i.carted_at > $since
ORDER BY i.carted_at, i.user_session, i.product_id
"""


def carted_items(con: duckdb.DuckDBPyConnection, since: datetime | None = None) -> pa.Table:
    """Carted items (after `since`, default all) with features and label, in cart-time order."""
    after = since or datetime(1970, 1, 1, tzinfo=UTC)
    table = con.sql(_ITEMS_SQL, params={"since": after}).to_arrow_table()
    if table.num_rows == 0:
        raise ModelDataError("the lake has no cart events in sessions: nothing to learn from")
    return table
