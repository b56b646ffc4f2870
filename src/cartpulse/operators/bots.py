"""Bot detection: per-user behaviour state + events in, new state + `bot_alerts` rows out.

Each user's state holds running counts (events, views, carts, same-second repeats, session
switches), the mean and spread of the gaps between their events, and their busiest current
minute and hour. Rules compare these with thresholds; the `flood` rule also needs a robust
score: the user's events in the hour against the median and MAD of every active user's events
in that hour, so a sale day (many more users, each ordinary) raises no alert. A user gets one
alert per episode: while rules keep firing the cool-down is extended, and only activity after
a quiet cool-down opens a new episode. Users idle for longer than the state TTL are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from cartpulse.operators.base import DuckOperator
from cartpulse.operators.bots_sql import ALERTS_SQL, MERGE_SQL
from cartpulse.operators.bots_steps import user_steps
from cartpulse.settings import BotSettings

_TS = pa.timestamp("us", tz="UTC")

BOT_STATE_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("first_us", pa.int64()),
        ("last_us", pa.int64()),
        ("events", pa.int64()),
        ("views", pa.int64()),
        ("carts", pa.int64()),
        ("fast_carts", pa.int64()),
        ("purchases", pa.int64()),
        ("repeats", pa.int64()),
        ("sessions", pa.int64()),
        ("gaps", pa.int64()),
        ("gap_sum_s", pa.float64()),
        ("gap_sq_sum_s", pa.float64()),
        ("last_product", pa.int64()),
        ("last_type", pa.string()),
        ("last_session", pa.string()),
        ("minute_us", pa.int64()),
        ("minute_events", pa.int64()),
        ("peak_minute_events", pa.int64()),
        ("hour_us", pa.int64()),
        ("hour_events", pa.int64()),
        ("hour_sessions", pa.int64()),
        ("peak_hour_sessions", pa.int64()),
        ("alerted_until_us", pa.int64()),
    ]
)

HOUR_TOTALS_SCHEMA = pa.schema([("hour_us", pa.int64()), ("events", pa.int64())])

BOT_ALERTS_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("detected_at", _TS),
        ("rule", pa.string()),
        ("score", pa.float64()),
        ("evidence", pa.string()),
    ]
)


@dataclass(frozen=True)
class BotState:
    """Per-user behaviour and the recent hours' total traffic."""

    users: pa.Table
    hour_totals: pa.Table

    @classmethod
    def empty(cls) -> BotState:
        """No user seen yet."""
        return cls(BOT_STATE_SCHEMA.empty_table(), HOUR_TOTALS_SCHEMA.empty_table())

    @property
    def nbytes(self) -> int:
        """Memory held by the state's Arrow buffers."""
        return int(self.users.nbytes + self.hour_totals.nbytes)


class BotOperator(DuckOperator):
    """Runs the bot rules over Arrow tables with an in-memory DuckDB (no I/O)."""

    def __init__(self, rules: BotSettings) -> None:
        self.rules = rules
        super().__init__()

    def advance(
        self, state: BotState, events: pa.Table, now_us: int | None
    ) -> tuple[BotState, pa.Table]:
        """Fold events (with an `_offset` column) into the state; return it and new alerts.

        `now_us` (the watermark or the processing clock) drops users idle for `state_ttl_s`
        whose cool-down has passed, and hour totals older than two hours.
        """
        if events.num_rows == 0 and now_us is None:
            return state, BOT_ALERTS_SCHEMA.empty_table()
        con = self._con
        con.register("st_users", state.users)
        con.register("st_hours", state.hour_totals)
        con.register("bot_ev", user_steps(events.select(_EVENT_COLUMNS)))
        try:
            con.execute(MERGE_SQL.format(**self._params()))
            alerts = con.sql(ALERTS_SQL.format(**self._params())).to_arrow_table()
            keep = "last_us + {ttl} >= {now} OR coalesce(alerted_until_us, 0) >= {now}"
            bound = now_us if now_us is not None else -(2**62)
            users = con.sql(
                f"SELECT {_STATE_COLUMNS} FROM bot_merged "
                f"WHERE {keep.format(ttl=self.rules.state_ttl_s * 10**6, now=bound)}"
            ).to_arrow_table()
            hours = con.sql(
                f"SELECT * FROM bot_hours WHERE hour_us + 7_200_000_000 >= {bound}"
            ).to_arrow_table()
        finally:
            for name in ("st_users", "st_hours", "bot_ev"):
                con.unregister(name)
            self.drop_temp(
                "bot_steps", "bot_minutes", "bot_hours", "bot_user_hours", "bot_batch", "bot_merged"
            )
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


_STATE_COLUMNS = ", ".join(BOT_STATE_SCHEMA.names)
_EVENT_COLUMNS = ["event_time", "event_type", "product_id", "user_id", "user_session", "_offset"]
