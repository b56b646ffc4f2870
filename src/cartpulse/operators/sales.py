"""Live sales: purchases and revenue per product per 1-minute window of event time.

A window [start, start + 1 min) stays open until the watermark passes its end; purchases for it
arriving before then update it, later ones are counted as late and left out of live sales (they
are still archived). Revenue is the sum of purchase prices, added exactly (as decimals with 6
places) so that the result does not depend on how the stream was cut into batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from cartpulse.duck import arrow, registered
from cartpulse.operators.base import DuckOperator

WINDOW_US = 60_000_000

SALES_SCHEMA = pa.schema(
    [
        ("window_start", pa.timestamp("us", tz="UTC")),
        ("product_id", pa.int64()),
        ("purchases", pa.int64()),
        ("revenue", pa.float64()),
    ]
)


@dataclass(frozen=True)
class SalesUpdate:
    """What one batch changed: windows with their new totals, and purchases too late to count."""

    changed: pa.Table
    late_purchases_by_minute: pa.Table
    """Late purchases as (minute, reason='late_purchase', rows)."""

    @property
    def late_purchases(self) -> int:
        """Purchases that arrived after their window closed."""
        return int(pc.sum(self.late_purchases_by_minute.column("rows")).as_py() or 0)


def purchases(events: pa.Table) -> pa.Table:
    """Time, product and price of the batch's purchases (all that live sales read)."""
    # the engine encodes event_type once per batch (this is then a no-op): compare its few
    # names, not every row
    kinds = pc.dictionary_encode(events.column("event_type").combine_chunks())
    bought = pc.take(pc.equal(kinds.dictionary, "purchase"), kinds.indices)
    return events.select(["event_time", "product_id", "price"]).filter(bought)


class SalesOperator(DuckOperator):
    """Folds purchases into open windows (in-memory DuckDB, no I/O)."""

    def advance(
        self, windows: pa.Table, events: pa.Table, closed_before_us: int | None
    ) -> tuple[pa.Table, SalesUpdate]:
        """Add a batch's purchases to `windows`; windows ending at or before the bound close.

        `closed_before_us` is the watermark before this batch: purchases in windows that ended
        by then are late. Returns the still-open windows and the update to publish.
        """
        bound = -(2**62) if closed_before_us is None else closed_before_us
        con = self._con
        with registered(con, w=windows, ev=purchases(events)):
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE p AS
                SELECT time_bucket(INTERVAL 1 MINUTE, event_time) AS window_start,
                       product_id, price,
                       epoch_us(time_bucket(INTERVAL 1 MINUTE, event_time)) + {WINDOW_US} <= {bound}
                         AS late
                FROM ev
                """
            )
            late = arrow(
                con,
                "SELECT window_start AS minute, 'late_purchase' AS reason, "
                "count(*)::BIGINT AS rows "
                "FROM p WHERE late GROUP BY 1",
            )
            changed = arrow(
                con,
                """
                WITH b AS (
                  SELECT window_start, product_id, count(*) AS purchases,
                         sum(price::DECIMAL(38, 6)) AS revenue
                  FROM p WHERE NOT late GROUP BY ALL
                )
                SELECT b.window_start, b.product_id,
                       b.purchases + coalesce(w.purchases, 0) AS purchases,
                       (b.revenue + coalesce(w.revenue::DECIMAL(38, 6), 0))::DOUBLE AS revenue
                FROM b LEFT JOIN w USING (window_start, product_id)
                ORDER BY window_start, product_id
                """,
            )
        changed = changed.cast(SALES_SCHEMA)
        return self._open_windows(windows, changed), SalesUpdate(changed, late)

    def close_windows(self, windows: pa.Table, watermark_us: int | None) -> pa.Table:
        """Drop windows that end at or before the watermark (they can no longer change)."""
        if watermark_us is None or windows.num_rows == 0:
            return windows
        con = self._con
        with registered(con, w=windows):
            kept = arrow(
                con, f"SELECT * FROM w WHERE epoch_us(window_start) + {WINDOW_US} > {watermark_us}"
            )
        return kept.cast(SALES_SCHEMA)

    def _open_windows(self, windows: pa.Table, changed: pa.Table) -> pa.Table:
        if changed.num_rows == 0:
            return windows
        con = self._con
        with registered(con, w=windows, c=changed):
            merged = arrow(
                con,
                """
                SELECT * FROM c
                UNION ALL
                SELECT w.* FROM w ANTI JOIN c USING (window_start, product_id)
                """,
            )
        return merged.cast(SALES_SCHEMA)
