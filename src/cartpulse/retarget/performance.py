"""`mart_retarget_performance`: did the emails recover sales? Mailed carts against the hold-out."""

from __future__ import annotations

import duckdb

#: Purchases count as recovered when made within this many days after the cart expired.
ATTRIBUTION_DAYS = 7

# One row per group (mailed, holdout). The recovered revenue is the difference in revenue per
# cart between the groups times the mailed carts, with a 95 % normal-approximation interval
# (Welch standard error of the difference in means); the same values stand on both rows.
_VIEW = f"""
CREATE OR REPLACE {{kind}} mart_retarget_performance AS
WITH decisions AS (
  -- intent to treat: every cart chosen for an email (even if the customer bought before it
  -- went out) against every cart held out; comparing only delivered emails would be biased
  SELECT message_id, user_id, expired_at,
         CASE WHEN reason = 'holdout' THEN 'holdout' ELSE 'mailed' END AS cohort
  FROM retarget_messages
  WHERE status IN ('queued', 'sending', 'sent', 'failed')
     OR (status = 'suppressed' AND reason IN ('holdout', 'purchased'))
),
outcome AS (
  SELECT d.message_id, d.cohort,
         count(e.event_time) > 0 AS converted,
         coalesce(sum(e.price), 0) AS revenue
  FROM decisions d
  LEFT JOIN events e
    ON e.user_id = d.user_id AND e.event_type = 'purchase'
   AND e.event_time > d.expired_at
   AND e.event_time <= d.expired_at + INTERVAL {ATTRIBUTION_DAYS} DAY
  GROUP BY ALL
),
per_cohort AS (
  SELECT cohort, count(*) AS carts, count(*) FILTER (WHERE converted) AS conversions,
         avg(converted::INTEGER) AS conversion_rate, sum(revenue) AS revenue_amount,
         avg(revenue) AS revenue_per_cart, coalesce(var_samp(revenue), 0) AS revenue_variance
  FROM outcome GROUP BY cohort
),
lift AS (
  SELECT m.carts AS mailed_carts,
         m.revenue_per_cart - h.revenue_per_cart AS diff,
         sqrt(m.revenue_variance / m.carts + h.revenue_variance / h.carts) AS se
  FROM per_cohort m, per_cohort h WHERE m.cohort = 'mailed' AND h.cohort = 'holdout'
)
SELECT p.cohort, p.carts, p.conversions, p.conversion_rate, p.revenue_amount,
       p.revenue_per_cart,
       l.diff * l.mailed_carts AS recovered_revenue_amount,
       (l.diff - 1.96 * l.se) * l.mailed_carts AS recovered_revenue_ci_low,
       (l.diff + 1.96 * l.se) * l.mailed_carts AS recovered_revenue_ci_high
FROM per_cohort p LEFT JOIN lift l ON true
ORDER BY p.cohort DESC
"""


def create_performance_view(con: duckdb.DuckDBPyConnection, temp: bool = False) -> None:
    """Create the view on a connection that sees `events` and the warehouse's outbox.

    `temp` makes it a temporary view (a live cursor of the warehouse, inside `serve`).
    """
    has_outbox = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'retarget_messages'"
    ).fetchall()[0][0]
    if has_outbox:
        con.execute(_VIEW.replace("{kind}", "TEMP VIEW" if temp else "VIEW"))
