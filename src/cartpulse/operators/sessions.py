"""Sessions → abandoned carts: state + events in, new state + abandoned carts out.

A session is a `user_session` value; it expires `timeout_s` after its last event. Events of the
same session id more than `timeout_s` after the previous one start a new session (the old one
is closed at once). At expiry, per product: carts − removes − purchases, floored at 0. A session
with no purchase and at least one positive product is an abandoned cart; its value is
Σ count × the product's last seen price in the session.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from cartpulse.operators.base import DuckOperator

SESSION_STATE_SCHEMA = pa.schema(
    [
        ("user_session", pa.string()),
        ("user_id", pa.int64()),
        ("session_start", pa.timestamp("us", tz="UTC")),
        ("session_end", pa.timestamp("us", tz="UTC")),
        ("has_purchase", pa.bool_()),
    ]
)

ITEM_STATE_SCHEMA = pa.schema(
    [
        ("user_session", pa.string()),
        ("product_id", pa.int64()),
        ("net", pa.int64()),
        ("seen_at", pa.timestamp("us", tz="UTC")),
        ("seen_offset", pa.int64()),
        ("price", pa.float64()),
        ("brand", pa.string()),
        ("category_code", pa.string()),
    ]
)

ITEM_TYPE = pa.struct(
    [
        ("product_id", pa.int64()),
        ("count", pa.int64()),
        ("price", pa.float64()),
        ("brand", pa.string()),
        ("category_code", pa.string()),
    ]
)

ABANDONED_CARTS_SCHEMA = pa.schema(
    [
        ("user_session", pa.string()),
        ("user_id", pa.int64()),
        ("session_start", pa.timestamp("us", tz="UTC")),
        ("session_end", pa.timestamp("us", tz="UTC")),
        ("expired_at", pa.timestamp("us", tz="UTC")),
        ("items", pa.list_(ITEM_TYPE)),
        ("item_count", pa.int64()),
        ("cart_value", pa.float64()),
    ]
)


@dataclass(frozen=True)
class SessionState:
    """Open sessions and the carted products of each."""

    sessions: pa.Table
    items: pa.Table

    @classmethod
    def empty(cls) -> SessionState:
        """No open session."""
        return cls(SESSION_STATE_SCHEMA.empty_table(), ITEM_STATE_SCHEMA.empty_table())

    @property
    def open_sessions(self) -> int:
        """How many sessions are open."""
        return int(self.sessions.num_rows)

    @property
    def nbytes(self) -> int:
        """Memory held by the state's Arrow buffers."""
        return int(self.sessions.nbytes + self.items.nbytes)


class SessionOperator(DuckOperator):
    """Runs the session rules over Arrow tables with an in-memory DuckDB (no I/O)."""

    def __init__(self, timeout_s: int) -> None:
        self.timeout_us = timeout_s * 1_000_000
        super().__init__()

    def advance(
        self, state: SessionState, events: pa.Table, expire_before_us: int | None
    ) -> tuple[SessionState, pa.Table]:
        """Fold events (with an `_offset` column) into the state; close gaps and expired sessions.

        Sessions whose last event is at or before `expire_before_us − timeout` (µs since the epoch:
        the watermark, or the processing clock in live mode) are expired. Returns the new state
        and the abandoned carts of every session closed by this call.
        """
        con = self._con
        con.register("st_sessions", state.sessions)
        con.register("st_items", state.items)
        con.register("ev", events)
        try:
            con.execute(_MERGE_SQL.format(timeout=self.timeout_us))
            expire = expire_before_us if expire_before_us is not None else None
            return self._split(expire)
        finally:
            for name in ("st_sessions", "st_items", "ev"):
                con.unregister(name)
            self.drop_temp(*_TEMP_TABLES)

    def flush(self, state: SessionState) -> tuple[SessionState, pa.Table]:
        """Expire every open session (end of a finite replay)."""
        empty = pa.table(
            {
                **{f.name: pa.array([], f.type) for f in _EVENT_FIELDS},
                "_offset": pa.array([], pa.int64()),
            }
        )
        return self.advance(state, empty, 2**62)

    def _split(self, expire_before_us: int | None) -> tuple[SessionState, pa.Table]:
        con = self._con
        limit = "NULL" if expire_before_us is None else str(expire_before_us - self.timeout_us)
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE closing AS
            SELECT user_session, seg FROM merged_sessions
            WHERE NOT is_last OR epoch_us(session_end) <= coalesce({limit}, -1)
            """
        )
        abandoned = con.sql(_ABANDONED_SQL.format(timeout=self.timeout_us)).to_arrow_table()
        sessions = con.sql(
            """
            SELECT m.user_session, m.user_id, m.session_start, m.session_end, m.has_purchase
            FROM merged_sessions m ANTI JOIN closing c USING (user_session, seg)
            """
        ).to_arrow_table()
        items = con.sql(
            """
            SELECT i.user_session, i.product_id, i.net, i.seen_at, i.seen_offset, i.price,
                   i.brand, i.category_code
            FROM merged_items i ANTI JOIN closing c USING (user_session, seg)
            """
        ).to_arrow_table()
        state = SessionState(sessions.cast(SESSION_STATE_SCHEMA), items.cast(ITEM_STATE_SCHEMA))
        return state, abandoned.cast(ABANDONED_CARTS_SCHEMA)


#: The temporary tables one call builds (dropped at its end).
_TEMP_TABLES = ("b_sess", "long_sessions", "seg_map", "merged_sessions", "merged_items", "closing")

_EVENT_FIELDS = [
    pa.field("event_time", pa.timestamp("us", tz="UTC")),
    pa.field("event_type", pa.string()),
    pa.field("product_id", pa.int64()),
    pa.field("category_id", pa.int64()),
    pa.field("category_code", pa.string()),
    pa.field("brand", pa.string()),
    pa.field("price", pa.float64()),
    pa.field("user_id", pa.int64()),
    pa.field("user_session", pa.string()),
]

# Segment 0 of a session continues its open state (if any); each later segment starts after a
# gap longer than the timeout. Only sessions whose events could hold such a gap (they span more
# than the timeout, or start more than the timeout after their state) are segmented with window
# functions; every other session is one segment. Items are only tracked for products that were
# carted, removed or bought: views only refresh their last seen price.
_MERGE_SQL = """
CREATE OR REPLACE TEMP TABLE b_sess AS
SELECT user_session, min(event_time) AS t0, max(event_time) AS t1,
       max(struct_pack(t := event_time, u := user_id)) AS latest,
       bool_or(event_type = 'purchase') AS has_purchase
FROM ev WHERE user_session IS NOT NULL GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE long_sessions AS
SELECT b.user_session, s.session_end AS state_end
FROM b_sess b LEFT JOIN st_sessions s USING (user_session)
WHERE epoch_us(b.t1) - epoch_us(b.t0) > {timeout}
   OR epoch_us(b.t0) - epoch_us(s.session_end) > {timeout};

CREATE OR REPLACE TEMP TABLE seg_map AS
WITH e AS (
  SELECT ev._offset, ev.user_session, ev.event_time, l.state_end
  FROM ev JOIN long_sessions l USING (user_session)
),
g AS (
  SELECT *, coalesce(
      lag(event_time) OVER (PARTITION BY user_session ORDER BY event_time, _offset), state_end
    ) AS prev
  FROM e
)
SELECT _offset, user_session,
       sum(CASE WHEN epoch_us(event_time) - epoch_us(prev) > {timeout} THEN 1 ELSE 0 END)
         OVER (PARTITION BY user_session ORDER BY event_time, _offset ROWS UNBOUNDED PRECEDING)
       AS seg
FROM g;

CREATE OR REPLACE TEMP TABLE merged_sessions AS
WITH long_e AS (
  SELECT ev.*, m.seg FROM ev JOIN seg_map m USING (_offset)
),
last_seg AS (SELECT user_session, max(seg) AS max_seg FROM seg_map GROUP BY ALL),
b AS (
  -- one segment per short session: its batch aggregates are already in b_sess
  SELECT user_session, 0::BIGINT AS seg, t0 AS session_start, t1 AS session_end, latest,
         has_purchase
  FROM b_sess ANTI JOIN long_sessions USING (user_session)
  UNION ALL
  SELECT user_session, seg, min(event_time), max(event_time),
         max(struct_pack(t := event_time, u := user_id)), bool_or(event_type = 'purchase')
  FROM long_e GROUP BY ALL
),
s AS (
  SELECT user_session, 0::BIGINT AS seg, session_start, session_end,
         struct_pack(t := session_end, u := user_id) AS latest, has_purchase
  FROM st_sessions
),
u AS (SELECT * FROM b UNION ALL SELECT * FROM s),
m AS (
  SELECT user_session, seg, min(session_start) AS session_start, max(session_end) AS session_end,
         max(latest).u AS user_id, bool_or(has_purchase) AS has_purchase
  FROM u GROUP BY ALL
)
-- only long sessions can have several segments: no window over every session
SELECT m.*, m.seg = coalesce(l.max_seg, 0) AS is_last
FROM m LEFT JOIN last_seg l USING (user_session);

CREATE OR REPLACE TEMP TABLE merged_items AS
WITH keys AS (
  SELECT DISTINCT user_session, product_id FROM ev
  WHERE event_type <> 'view' AND user_session IS NOT NULL
  UNION SELECT user_session, product_id FROM st_items
),
e AS (
  SELECT ev.*, coalesce(m.seg, 0) AS seg
  FROM ev SEMI JOIN keys USING (user_session, product_id)
  LEFT JOIN (SELECT _offset, seg FROM seg_map) m USING (_offset)
),
b AS (
  SELECT user_session, seg, product_id,
         sum(CASE event_type WHEN 'cart' THEN 1 WHEN 'view' THEN 0 ELSE -1 END) AS net,
         bool_or(event_type <> 'view') AS carted,
         max(struct_pack(t := event_time, o := _offset, price := price, brand := brand,
                         category_code := category_code)) AS seen
  FROM e GROUP BY ALL
),
s AS (
  SELECT user_session, 0::BIGINT AS seg, product_id, net, true AS carted,
         struct_pack(t := seen_at, o := seen_offset, price := price, brand := brand,
                     category_code := category_code) AS seen
  FROM st_items
),
u AS (SELECT * FROM b UNION ALL SELECT * FROM s),
m AS (
  SELECT user_session, seg, product_id, sum(net)::BIGINT AS net, bool_or(carted) AS carted,
         max(seen) AS seen
  FROM u GROUP BY ALL
)
SELECT user_session, seg, product_id, net, seen.t AS seen_at, seen.o AS seen_offset,
       seen.price AS price, seen.brand AS brand, seen.category_code AS category_code
FROM m WHERE carted;
"""

_ABANDONED_SQL = """
WITH closed AS (
  SELECT m.* FROM merged_sessions m JOIN closing c USING (user_session, seg)
  WHERE NOT m.has_purchase
),
pos AS (
  SELECT i.* FROM merged_items i JOIN closed c USING (user_session, seg) WHERE i.net > 0
),
carts AS (
  SELECT user_session, seg,
         -- product_id leads the struct and is unique in a cart: sorting the structs orders by
         -- it, at half the cost of an ordered aggregate
         list_sort(list(struct_pack(product_id := product_id, count := net, price := price,
                                    brand := brand, category_code := category_code))) AS items,
         sum(net)::BIGINT AS item_count,
         -- exact decimal sum: the value must not depend on aggregation order
         sum(net * price::DECIMAL(38, 6))::DOUBLE AS cart_value
  FROM pos GROUP BY ALL
)
SELECT c.user_session, c.user_id, c.session_start, c.session_end,
       c.session_end + to_microseconds({timeout}) AS expired_at,
       k.items, k.item_count, k.cart_value
FROM closed c JOIN carts k USING (user_session, seg)
ORDER BY expired_at, user_session
"""
