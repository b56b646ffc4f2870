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

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cartpulse.operators.bots_fold import (
    COUNTED,
    batch_users,
    hour_buckets,
    hour_totals_of,
    state_columns,
)
from cartpulse.operators.bots_steps import Steps, user_steps
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


class BotOperator:
    """Runs the bot rules over Arrow tables (pure: no I/O, no clock)."""

    def __init__(self, rules: BotSettings) -> None:
        self.rules = rules

    def advance(
        self, state: BotState, events: pa.Table, now_us: int | None
    ) -> tuple[BotState, pa.Table]:
        """Fold events (with an `_offset` column) into the state; return it and new alerts.

        `now_us` (the watermark or the processing clock) drops users idle for `state_ttl_s`
        whose cool-down has passed, and hour totals older than two hours.
        """
        if events.num_rows == 0 and now_us is None:
            return state, BOT_ALERTS_SCHEMA.empty_table()
        if events.column("user_id").null_count:
            events = events.filter(pc.is_valid(events.column("user_id")))
        users = state.users.sort_by("user_id")
        if events.num_rows == 0:
            totals = hour_totals_of(state.hour_totals)
            return self._expire(users, totals, now_us), BOT_ALERTS_SCHEMA.empty_table()
        steps = user_steps(events, users)
        before = state_columns(users)
        batch = batch_users(steps, before, self.rules)
        hours, totals = hour_buckets(steps, before, hour_totals_of(state.hour_totals), self.rules)
        batch.update(hours)
        merged = _merge(before, batch)
        fired, strength = self._rules(merged, batch)
        alerts = _alerts(merged, batch, fired, strength)
        if len(fired):
            hit = fired != ""
            merged["alerted_until_us"][hit] = merged["last_us"][hit] + self.rules.cooldown_s * 10**6
        # most of a batch's users are idle past the TTL by its end: drop them before their
        # state rows are built, not after
        live = self._live(merged["last_us"], np.maximum(merged["alerted_until_us"], 0), now_us)
        new_users = _state_table(merged, users, steps, live)
        return self._expire(new_users, totals, now_us), alerts

    def _rules(
        self, merged: dict[str, np.ndarray], batch: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per batch user: the names of the rules that fire (comma-separated) and the strength
        of the strongest (how far past its threshold)."""
        r = self.rules
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = merged["gap_sum_s"] / merged["gaps"]
            cv = np.sqrt(np.maximum(merged["gap_sq_sum_s"] / merged["gaps"] - mean**2, 0)) / mean
        merged["mean_gap_s"], merged["gap_cv"] = mean, np.where(mean == 0, np.nan, cv)
        events, carts, fast = merged["events"], merged["carts"], merged["fast_carts"]
        repeats, cv = merged["repeats"], merged["gap_cv"]
        checks = {
            "events_per_minute": (
                batch["peak_minute_events"] >= r.max_events_per_minute,
                batch["peak_minute_events"] / r.max_events_per_minute,
            ),
            "sessions_per_hour": (
                batch["peak_hour_sessions"] >= r.max_sessions_per_hour,
                batch["peak_hour_sessions"] / r.max_sessions_per_hour,
            ),
            "regular_pace": (
                (merged["gaps"] >= r.min_gaps) & (cv <= r.max_gap_cv),
                np.minimum(r.max_gap_cv / np.maximum(cv, 1e-3), 100),
            ),
            "carts_without_views": (
                (fast >= r.min_carts)
                & (fast >= 0.5 * carts)
                & (events - carts <= r.max_other_per_cart * carts),
                fast / r.min_carts,
            ),
            "replayed_events": (
                (repeats >= r.min_repeats) & (repeats >= r.max_repeat_share * events),
                repeats / np.maximum(events, 1) / r.max_repeat_share,
            ),
            "traffic_share": (batch["floods"], batch["robust_z"] / r.min_robust_z),
        }
        n = len(events)
        fired = np.full(n, "", dtype=object)
        strength = np.full(n, -np.inf)
        for name, (check, score) in checks.items():
            hit = np.asarray(check, bool)
            fired[hit] = np.where(fired[hit] == "", name, fired[hit] + "," + name)
            strength[hit] = np.maximum(strength[hit], score[hit])
        return fired, strength

    def _expire(
        self, users: pa.Table, totals: tuple[np.ndarray, np.ndarray], now_us: int | None
    ) -> BotState:
        """Forget users idle past the TTL and out of cool-down, and hours older than two."""
        bound = now_us if now_us is not None else -(2**62)
        last = np.asarray(users.column("last_us").to_numpy(), np.int64)
        until = np.asarray(pc.fill_null(users.column("alerted_until_us"), 0).to_numpy(), np.int64)
        keep = self._live(last, until, now_us)
        recent = totals[0] + 7_200_000_000 >= bound
        hours = pa.table(
            {"hour_us": totals[0][recent], "events": totals[1][recent]}, schema=HOUR_TOTALS_SCHEMA
        )
        return BotState(users.filter(pa.array(keep)), hours)

    def _live(self, last_us: np.ndarray, until_us: np.ndarray, now_us: int | None) -> np.ndarray:
        """Users to keep at `now_us`: active within the TTL, or still in cool-down."""
        if now_us is None:
            return np.ones(len(last_us), bool)
        return (last_us + self.rules.state_ttl_s * 10**6 >= now_us) | (until_us >= now_us)


def _merge(before: dict[str, np.ndarray], batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The batch's users with their state (if any) added: counts summed, latest values taken."""
    row = batch["state_row"]
    held = row >= 0
    at = np.where(held, row, 0)

    def old(name: str, missing: float) -> np.ndarray:
        values = before[name][at] if len(before[name]) else np.zeros(len(row), before[name].dtype)
        return np.where(held, values, missing)

    merged = dict(batch)
    merged["first_us"] = np.where(held, old("first_us", 0), batch["first_new_us"])
    for name in (*COUNTED, "gap_sum_s", "gap_sq_sum_s"):
        merged[name] = old(name, 0) + batch[name]
    for name in ("peak_minute_events", "peak_hour_sessions"):
        merged[name] = np.where(held, np.maximum(old(name, 0), batch[name]), batch[name])
    merged["alerted_until_us"] = old("alerted_until_us", -1).astype(np.int64)
    return merged


def _alerts(
    merged: dict[str, np.ndarray],
    batch: dict[str, np.ndarray],
    fired: np.ndarray,
    strength: np.ndarray,
) -> pa.Table:
    """A new alert where rules fire and the user's last episode had cooled down before this
    batch's first event of theirs (one alert per episode)."""
    until = merged["alerted_until_us"]
    new = (fired != "") & ((until < 0) | (batch["first_new_us"] > until))
    rows = np.flatnonzero(new)
    rows = rows[np.argsort(merged["user_id"][rows], kind="stable")]
    # alerts are rare (a few per batch): building their JSON in Python costs nothing
    evidence = [json.dumps(_evidence(merged, int(i)), separators=(",", ":")) for i in rows]
    return pa.table(
        {
            "user_id": pa.array(merged["user_id"][rows], pa.int64()),
            "detected_at": pa.array(merged["last_us"][rows], pa.int64()).cast(_TS),
            "rule": pa.array(fired[rows].tolist(), pa.string()),
            "score": pa.array(rounded(strength[rows], 3), pa.float64()),
            "evidence": pa.array(evidence, pa.string()),
        },
        schema=BOT_ALERTS_SCHEMA,
    )


def _evidence(m: dict[str, np.ndarray], i: int) -> dict[str, object]:
    def at(name: str, digits: int) -> float | None:
        value = float(m[name][i])
        return None if np.isnan(value) else float(rounded(np.array([value]), digits)[0])

    counts = ("events", "views", "carts", "fast_carts", "purchases", "sessions", "repeats")
    return {
        **{name: int(m[name][i]) for name in counts},
        "gap_cv": at("gap_cv", 3),
        "mean_gap_s": at("mean_gap_s", 2),
        "peak_events_per_minute": int(m["peak_minute_events"][i]),
        "peak_sessions_per_hour": int(m["peak_hour_sessions"][i]),
        "traffic_share": at("traffic_share", 4),
        "robust_z": at("robust_z", 1),
        "first_seen": _iso(int(m["first_us"][i])),
        "last_seen": _iso(int(m["last_us"][i])),
    }


def rounded(values: np.ndarray, digits: int) -> np.ndarray:
    """Rounded to `digits` decimals, halves away from zero (as SQL's round, not numpy's)."""
    scaled = values * 10.0**digits
    whole = np.trunc(scaled)
    whole += np.where(np.abs(scaled - whole) >= 0.5, np.sign(scaled), 0)
    return np.asarray(whole / 10.0**digits)


def _iso(us: int) -> str:
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def _state_table(
    merged: dict[str, np.ndarray],
    users: pa.Table,
    steps: Steps,
    live: np.ndarray,
) -> pa.Table:
    """The state's users the batch left alone, then the batch's `live` users, sorted by
    user_id."""
    state_row = merged["state_row"]
    untouched = np.ones(users.num_rows, bool)
    untouched[state_row[state_row >= 0]] = False
    kept = users.filter(pa.array(untouched))
    needed = (*BOT_STATE_SCHEMA.names, "last_kind", "last_session")
    merged = {name: merged[name][live] for name in needed if name in merged}
    names = BOT_STATE_SCHEMA.names
    strings = {
        "last_type": steps.kinds.take(_codes(merged["last_kind"])),
        "last_session": steps.sessions.take(_codes(merged["last_session"])),
    }
    columns = []
    for field in BOT_STATE_SCHEMA:
        if field.name in strings:
            columns.append(strings[field.name])
        elif field.name == "alerted_until_us":
            until = merged[field.name]
            columns.append(pa.array(until, pa.int64(), mask=until < 0))
        else:
            columns.append(pa.array(merged[field.name], field.type))
    fresh = pa.table(columns, names=names)
    table = pa.concat_tables([kept.cast(BOT_STATE_SCHEMA), fresh.cast(BOT_STATE_SCHEMA)])
    ids = np.concatenate(
        [np.asarray(kept.column("user_id").to_numpy(), np.int64), merged["user_id"]]
    )
    # two runs sorted by user_id (the state's, the batch's): numpy's stable sort (timsort)
    # merges them in one pass, where Arrow's sort_by sorts from scratch
    return table.take(pa.array(np.argsort(ids, kind="stable")))


def _codes(values: np.ndarray) -> pa.Array:
    """Dictionary codes as Arrow take indices (−1: null)."""
    return pa.array(values, pa.int64(), mask=values < 0)
