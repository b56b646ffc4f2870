"""The bot operator as it was first written, in DuckDB SQL: a reference the numpy operator must match.

Kept for tests only: both implement the same rules, so any row where they differ is a bug in one.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cartpulse.operators.bots import (
    BOT_ALERTS_SCHEMA,
    BOT_STATE_SCHEMA,
    HOUR_TOTALS_SCHEMA,
    BotState,
)
from cartpulse.settings import BotSettings

STEPS_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("t_us", pa.int64()),
        ("event_type", pa.string()),
        ("product_id", pa.int64()),
        ("user_session", pa.string()),
        ("prev_us", pa.int64()),
        ("prev_product", pa.int64()),
        ("prev_type", pa.string()),
        ("prev_session", pa.string()),
        ("is_last", pa.bool_()),
    ]
)


def user_steps(events: pa.Table) -> pa.Table:
    """Events with a user, ordered by (user_id, event_time, _offset), with the previous event's
    time, product, type and session (null for a user's first event in the batch)."""
    events = events.filter(pc.is_valid(events.column("user_id")))
    n = events.num_rows
    if n == 0:
        return STEPS_SCHEMA.empty_table()
    users = _int64(events.column("user_id"))
    times = _int64(events.column("event_time").cast(pa.timestamp("us", tz="UTC")))
    offsets = _int64(events.column("_offset"))
    order = np.lexsort((offsets, times, users))
    users, times = users[order], times[order]
    picked = events.select(["event_type", "product_id", "user_session"]).take(pa.array(order))
    first = np.ones(n, dtype=bool)
    first[1:] = users[1:] != users[:-1]
    last = np.ones(n, dtype=bool)
    last[:-1] = first[1:]
    columns = {
        "user_id": pa.array(users),
        "t_us": pa.array(times),
        "event_type": picked.column("event_type"),
        "product_id": picked.column("product_id"),
        "user_session": picked.column("user_session"),
        "prev_us": _previous(pa.chunked_array([times]), first),
        "prev_product": _previous(picked.column("product_id"), first),
        "prev_type": _previous(picked.column("event_type"), first),
        "prev_session": _previous(picked.column("user_session"), first),
        "is_last": pa.array(last),
    }
    return pa.table(columns, schema=STEPS_SCHEMA)


def _int64(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.cast(pa.int64()).to_numpy(), dtype=np.int64)


def _previous(column: pa.ChunkedArray, first: np.ndarray) -> pa.Array:
    """The value one row up; null where a new user starts."""
    values = column.combine_chunks()
    shifted = pa.concat_arrays([pa.nulls(1, values.type), values.slice(0, len(values) - 1)])
    return pc.if_else(pa.array(first), pa.scalar(None, values.type), shifted)


# Steps of each user's events in order (`bot_ev`, from `bots_steps.user_steps`), each with what
# came just before it (in the batch, or the user's last event from the state): gap, same-second
# repeat, session switch.
_STEPS_SQL = """
CREATE OR REPLACE TEMP TABLE bot_steps AS
SELECT e.user_id, e.t_us, e.event_type, e.product_id, e.user_session, e.is_last,
       e.t_us // 60_000_000 * 60_000_000 AS minute_us,
       e.t_us // 3_600_000_000 * 3_600_000_000 AS hour_us,
       e.t_us - coalesce(e.prev_us, s.last_us) AS gap_us,
       coalesce(coalesce(e.prev_product, s.last_product) = e.product_id
                AND coalesce(e.prev_type, s.last_type) = e.event_type
                AND e.t_us - coalesce(e.prev_us, s.last_us) <= 1_000_000, false) AS is_repeat,
       e.user_session IS NOT NULL AND e.user_session IS DISTINCT FROM
         (CASE WHEN e.prev_us IS NULL THEN s.last_session ELSE e.prev_session END) AS new_session
FROM bot_ev e LEFT JOIN st_users s USING (user_id);
"""

# Per user and minute / hour: this batch's events plus the state's count of the same bucket.
_BUCKETS_SQL = """
CREATE OR REPLACE TEMP TABLE bot_minutes AS  -- a checkout logs one purchase per item at once
SELECT b.user_id, b.minute_us,
       count(*) FILTER (event_type <> 'purchase')
         + coalesce(any_value(CASE WHEN s.minute_us = b.minute_us THEN s.minute_events END), 0)
         AS events
FROM bot_steps b LEFT JOIN st_users s USING (user_id) GROUP BY b.user_id, b.minute_us;

CREATE OR REPLACE TEMP TABLE bot_hours AS
SELECT hour_us, sum(events)::BIGINT AS events FROM (
  SELECT hour_us, events FROM st_hours
  UNION ALL SELECT hour_us, count(*) FROM bot_steps GROUP BY hour_us
) GROUP BY hour_us;

CREATE OR REPLACE TEMP TABLE bot_user_hours AS
WITH counted AS (
  SELECT b.user_id, b.hour_us,
         count(*) + coalesce(any_value(CASE WHEN s.hour_us = b.hour_us
                                            THEN s.hour_events END), 0) AS events,
         count(*) FILTER (new_session)
           + coalesce(any_value(CASE WHEN s.hour_us = b.hour_us
                                     THEN s.hour_sessions END), 0) AS sessions
  FROM bot_steps b LEFT JOIN st_users s USING (user_id) GROUP BY b.user_id, b.hour_us
), pool AS (  -- every user of the hour: this batch's, and the state's quiet since
  SELECT hour_us, events FROM counted
  UNION ALL
  SELECT s.hour_us, s.hour_events FROM st_users s
  ANTI JOIN counted c ON c.user_id = s.user_id AND c.hour_us = s.hour_us
  WHERE s.hour_us IN (SELECT DISTINCT hour_us FROM counted)
), centre AS (
  SELECT hour_us, median(events) AS med FROM pool GROUP BY hour_us
), spread AS (
  SELECT p.hour_us, any_value(m.med) AS med, median(abs(p.events - m.med)) AS mad
  FROM pool p JOIN centre m USING (hour_us) GROUP BY p.hour_us
)
SELECT c.*, (c.events - p.med) / (1.4826 * p.mad + 1) AS robust_z,
       c.events / h.events AS traffic_share
FROM counted c JOIN spread p USING (hour_us) JOIN bot_hours h USING (hour_us);
"""

_BATCH_SQL = """
CREATE OR REPLACE TEMP TABLE bot_batch AS
WITH steps AS (
  SELECT user_id, min(t_us) AS first_new_us, max(t_us) AS last_us, count(*) AS events,
         count(*) FILTER (event_type = 'view') AS views,
         count(*) FILTER (event_type = 'cart') AS carts,
         count(*) FILTER (event_type = 'cart' AND gap_us <= {fast_cart_us}) AS fast_carts,
         count(*) FILTER (event_type = 'purchase') AS purchases,
         count(*) FILTER (is_repeat) AS repeats, count(*) FILTER (new_session) AS sessions,
         count(*) FILTER (gap_us BETWEEN 0 AND {max_gap_us}) AS gaps,
         coalesce(sum(gap_us / 1e6) FILTER (gap_us BETWEEN 0 AND {max_gap_us}), 0) AS gap_sum_s,
         coalesce(sum((gap_us / 1e6) ** 2) FILTER (gap_us BETWEEN 0 AND {max_gap_us}), 0)
           AS gap_sq_sum_s,
         any_value(product_id) FILTER (is_last) AS last_product,
         any_value(event_type) FILTER (is_last) AS last_type,
         any_value(user_session) FILTER (is_last) AS last_session
  FROM bot_steps GROUP BY user_id
), minutes AS (
  SELECT user_id, max(minute_us) AS minute_us, arg_max(events, minute_us) AS minute_events,
         max(events) AS peak_minute_events
  FROM bot_minutes GROUP BY user_id
), hours AS (
  SELECT user_id, max(hour_us) AS hour_us, arg_max(events, hour_us) AS hour_events,
         arg_max(sessions, hour_us) AS hour_sessions, max(sessions) AS peak_hour_sessions,
         arg_max(robust_z, events) AS robust_z, arg_max(traffic_share, events) AS traffic_share,
         max(events) AS peak_hour_events,
         bool_or(events >= {min_hour_events} AND traffic_share >= {max_share}
                 AND robust_z >= {min_z}) AS floods
  FROM bot_user_hours GROUP BY user_id
)
SELECT * FROM steps JOIN minutes USING (user_id) JOIN hours USING (user_id);
"""

_MERGED_SQL = """
CREATE OR REPLACE TEMP TABLE bot_merged AS
WITH joined AS (
  SELECT coalesce(n.user_id, s.user_id) AS user_id,
         coalesce(s.first_us, n.first_new_us) AS first_us,
         coalesce(n.last_us, s.last_us) AS last_us,
         coalesce(s.events, 0) + coalesce(n.events, 0) AS events,
         coalesce(s.views, 0) + coalesce(n.views, 0) AS views,
         coalesce(s.carts, 0) + coalesce(n.carts, 0) AS carts,
         coalesce(s.fast_carts, 0) + coalesce(n.fast_carts, 0) AS fast_carts,
         coalesce(s.purchases, 0) + coalesce(n.purchases, 0) AS purchases,
         coalesce(s.repeats, 0) + coalesce(n.repeats, 0) AS repeats,
         coalesce(s.sessions, 0) + coalesce(n.sessions, 0) AS sessions,
         coalesce(s.gaps, 0) + coalesce(n.gaps, 0) AS gaps,
         coalesce(s.gap_sum_s, 0) + coalesce(n.gap_sum_s, 0) AS gap_sum_s,
         coalesce(s.gap_sq_sum_s, 0) + coalesce(n.gap_sq_sum_s, 0) AS gap_sq_sum_s,
         coalesce(n.last_product, s.last_product) AS last_product,
         CASE WHEN n.user_id IS NULL THEN s.last_type ELSE n.last_type END AS last_type,
         CASE WHEN n.user_id IS NULL THEN s.last_session ELSE n.last_session END AS last_session,
         coalesce(n.minute_us, s.minute_us) AS minute_us,
         coalesce(n.minute_events, s.minute_events) AS minute_events,
         greatest(s.peak_minute_events, n.peak_minute_events) AS peak_minute_events,
         coalesce(n.hour_us, s.hour_us) AS hour_us,
         coalesce(n.hour_events, s.hour_events) AS hour_events,
         coalesce(n.hour_sessions, s.hour_sessions) AS hour_sessions,
         greatest(s.peak_hour_sessions, n.peak_hour_sessions) AS peak_hour_sessions,
         s.alerted_until_us, n.first_new_us, n.robust_z, n.traffic_share, n.floods,
         n.peak_minute_events AS batch_minute_peak, n.peak_hour_sessions AS batch_session_peak
  FROM st_users s FULL OUTER JOIN bot_batch n USING (user_id)
), measured AS (
  SELECT *, gap_sum_s / nullif(gaps, 0) AS mean_gap_s,
         sqrt(greatest(gap_sq_sum_s / nullif(gaps, 0) - (gap_sum_s / nullif(gaps, 0)) ** 2, 0))
           / nullif(gap_sum_s / nullif(gaps, 0), 0) AS gap_cv
  FROM joined
), checked AS (  -- rules are checked only for users with events in this batch
  SELECT *, first_new_us IS NOT NULL AND batch_minute_peak >= {max_epm} AS r_epm,
         first_new_us IS NOT NULL AND batch_session_peak >= {max_sph} AS r_sph,
         first_new_us IS NOT NULL AND gaps >= {min_gaps} AND gap_cv <= {max_cv} AS r_pace,
         first_new_us IS NOT NULL AND fast_carts >= {min_carts} AND fast_carts >= 0.5 * carts
           AND events - carts <= {max_other} * carts AS r_carts,
         first_new_us IS NOT NULL AND repeats >= {min_repeats}
           AND repeats >= {max_repeat_share} * events AS r_repeats,
         first_new_us IS NOT NULL AND coalesce(floods, false) AS r_share
  FROM measured
), fired AS (
  SELECT *, concat_ws(',', CASE WHEN r_epm THEN 'events_per_minute' END,
                      CASE WHEN r_sph THEN 'sessions_per_hour' END,
                      CASE WHEN r_pace THEN 'regular_pace' END,
                      CASE WHEN r_carts THEN 'carts_without_views' END,
                      CASE WHEN r_repeats THEN 'replayed_events' END,
                      CASE WHEN r_share THEN 'traffic_share' END) AS fired_rules
  FROM checked
)
SELECT * EXCLUDE (alerted_until_us, floods, batch_minute_peak, batch_session_peak),
       CASE WHEN fired_rules <> '' THEN last_us + {cooldown_us}
            ELSE alerted_until_us END AS alerted_until_us,
       greatest(  -- how far past its threshold the strongest fired rule is
         CASE WHEN r_epm THEN batch_minute_peak / {max_epm} END,
         CASE WHEN r_sph THEN batch_session_peak / {max_sph} END,
         CASE WHEN r_pace THEN least({max_cv} / greatest(gap_cv, 1e-3), 100) END,
         CASE WHEN r_carts THEN fast_carts / {min_carts} END,
         CASE WHEN r_repeats THEN repeats / events / {max_repeat_share} END,
         CASE WHEN r_share THEN robust_z / {min_z} END) AS strength
FROM fired;
"""

MERGE_SQL = _STEPS_SQL + _BUCKETS_SQL + _BATCH_SQL + _MERGED_SQL

# A new alert when rules fire and the user's last episode (if any) had cooled down before this
# batch's first event of theirs: the state's alerted_until_us is the one before the batch.
ALERTS_SQL = """
SELECT m.user_id, make_timestamp(m.last_us)::TIMESTAMPTZ AS detected_at,
       m.fired_rules AS rule, round(m.strength, 3) AS score,
       json_object(
         'events', m.events, 'views', m.views, 'carts', m.carts, 'fast_carts', m.fast_carts,
         'purchases', m.purchases, 'sessions', m.sessions, 'repeats', m.repeats,
         'gap_cv', round(m.gap_cv, 3),
         'mean_gap_s', round(m.mean_gap_s, 2), 'peak_events_per_minute', m.peak_minute_events,
         'peak_sessions_per_hour', m.peak_hour_sessions,
         'traffic_share', round(m.traffic_share, 4), 'robust_z', round(m.robust_z, 1),
         'first_seen', strftime(make_timestamp(m.first_us), '%Y-%m-%dT%H:%M:%SZ'),
         'last_seen', strftime(make_timestamp(m.last_us), '%Y-%m-%dT%H:%M:%SZ')
       )::VARCHAR AS evidence
FROM bot_merged m LEFT JOIN st_users s USING (user_id)
WHERE m.fired_rules <> ''
  AND (s.alerted_until_us IS NULL OR m.first_new_us > s.alerted_until_us)
ORDER BY m.user_id
"""


class ReferenceBotOperator:
    """The SQL bot operator (in-memory DuckDB, one thread)."""

    def __init__(self, rules: BotSettings) -> None:
        self.rules = rules
        self._con = duckdb.connect()
        self._con.execute("SET threads = 1")

    def advance(
        self, state: BotState, events: pa.Table, now_us: int | None
    ) -> tuple[BotState, pa.Table]:
        """Fold events into the state; return it and new alerts."""
        if events.num_rows == 0 and now_us is None:
            return state, BOT_ALERTS_SCHEMA.empty_table()
        con = self._con
        con.register("st_users", state.users)
        con.register("st_hours", state.hour_totals)
        columns = ["event_time", "event_type", "product_id", "user_id", "user_session", "_offset"]
        con.register("bot_ev", user_steps(events.select(columns)))
        con.execute(MERGE_SQL.format(**self._params()))
        alerts = con.sql(ALERTS_SQL.format(**self._params())).to_arrow_table()
        bound = now_us if now_us is not None else -(2**62)
        ttl = self.rules.state_ttl_s * 10**6
        users = con.sql(
            f"SELECT {', '.join(BOT_STATE_SCHEMA.names)} FROM bot_merged "
            f"WHERE last_us + {ttl} >= {bound} OR coalesce(alerted_until_us, 0) >= {bound} "
            "ORDER BY user_id"
        ).to_arrow_table()
        hours = con.sql(
            f"SELECT * FROM bot_hours WHERE hour_us + 7_200_000_000 >= {bound} ORDER BY hour_us"
        ).to_arrow_table()
        for name in ("st_users", "st_hours", "bot_ev"):
            con.unregister(name)
        return (
            BotState(users.cast(BOT_STATE_SCHEMA), hours.cast(HOUR_TOTALS_SCHEMA)),
            alerts.cast(BOT_ALERTS_SCHEMA),
        )

    def _params(self) -> dict[str, float | int]:
        r = self.rules
        return {
            "max_epm": r.max_events_per_minute,
            "max_sph": r.max_sessions_per_hour,
            "min_gaps": r.min_gaps,
            "max_cv": r.max_gap_cv,
            "max_gap_us": r.max_gap_s * 10**6,
            "min_carts": r.min_carts,
            "fast_cart_us": r.fast_cart_s * 10**6,
            "max_other": r.max_other_per_cart,
            "min_repeats": r.min_repeats,
            "max_repeat_share": r.max_repeat_share,
            "min_hour_events": r.min_hour_events,
            "max_share": r.max_traffic_share,
            "min_z": r.min_robust_z,
            "cooldown_us": r.cooldown_s * 10**6,
        }
