"""A batch folded into the bot detector's per-user state, in numpy over the sorted steps.

Why numpy and not SQL: every quantity is a count or a sum over a run of the (user, time)
order — of a user, of a user's minute, of a user's hour — so one sort and `reduceat` over the
runs replace DuckDB's joins and group-bys over the batch and the whole state (5× faster).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cartpulse.operators.bots_steps import Steps
from cartpulse.settings import BotSettings

_MINUTE_US = 60_000_000
_HOUR_US = 3_600_000_000

#: Per-user state columns that a batch adds its own counts to.
COUNTED = ("events", "views", "carts", "fast_carts", "purchases", "repeats", "sessions", "gaps")


@dataclass(frozen=True)
class Runs:
    """Runs of equal keys in the sorted steps: where each starts, and whose user it is."""

    starts: np.ndarray
    user: np.ndarray
    """index of the run's user among the batch's users"""
    rows: int
    """rows of the steps the runs cut"""

    @classmethod
    def of(cls, first: np.ndarray, key: np.ndarray | None = None) -> Runs:
        """Runs of `key` within each user (a new user always starts a new run); without a
        key, one run per user."""
        cut = first.copy()
        if key is not None:
            cut[1:] |= key[1:] != key[:-1]
        starts = np.flatnonzero(cut)
        return cls(starts, (np.cumsum(first) - 1)[starts], len(first))

    @property
    def lengths(self) -> np.ndarray:
        """Rows per run."""
        return np.diff(np.append(self.starts, self.rows))

    @cached_property
    def user_first(self) -> np.ndarray:
        """Per user, the index of its first run."""
        return np.flatnonzero(np.diff(np.append(-1, self.user)) != 0)

    @property
    def user_last(self) -> np.ndarray:
        """Per user, the index of its last run."""
        return np.append(self.user_first[1:], len(self.starts)) - 1

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Per run, the sum of `values`."""
        return np.add.reduceat(values, self.starts) if len(self.starts) else values[:0]

    def per_user(self, reduce: np.ufunc, values: np.ndarray) -> np.ndarray:
        """Per user, `reduce` over the values of its runs (e.g. np.maximum: the peak)."""
        first = self.user_first
        return reduce.reduceat(values, first) if len(first) else values[:0]


def batch_users(
    steps: Steps, state: dict[str, np.ndarray], rules: BotSettings
) -> dict[str, np.ndarray]:
    """Per user of the batch: its counts, gaps, last event, and minute and hour buckets."""
    users = Runs.of(steps.first)
    last = users.starts + users.lengths - 1
    cart, purchase = steps.kind_is("cart"), steps.kind_is("purchase")
    gap = steps.gap_us
    counted_gap = steps.has_gap & (gap >= 0) & (gap <= rules.max_gap_s * 10**6)
    seconds = np.where(counted_gap, gap / 1e6, 0.0)
    out: dict[str, np.ndarray] = {
        "user_id": steps.user[users.starts],
        "state_row": steps.state_row[users.starts],
        "first_new_us": steps.t_us[users.starts],
        "last_us": steps.t_us[last],
        "events": users.lengths,
        "views": users.sum(steps.kind_is("view").astype(np.int64)),
        "carts": users.sum(cart.astype(np.int64)),
        "fast_carts": users.sum(
            (cart & steps.has_gap & (gap <= rules.fast_cart_s * 10**6)).astype(np.int64)
        ),
        "purchases": users.sum(purchase.astype(np.int64)),
        "repeats": users.sum(steps.repeat.astype(np.int64)),
        "sessions": users.sum(steps.new_session.astype(np.int64)),
        "gaps": users.sum(counted_gap.astype(np.int64)),
        "gap_sum_s": users.sum(seconds),
        "gap_sq_sum_s": users.sum(seconds**2),
        "last_product": steps.product[last],
        "last_kind": steps.kind[last],
        "last_session": steps.session[last],
    }
    out.update(_minutes(steps, state, ~purchase))
    return out


def _minutes(
    steps: Steps, state: dict[str, np.ndarray], counted: np.ndarray
) -> dict[str, np.ndarray]:
    """Per user: the latest minute, its events, and the busiest minute (purchases not counted:
    a checkout logs one purchase per item at once)."""
    minute = steps.t_us // _MINUTE_US * _MINUTE_US
    runs = Runs.of(steps.first, minute)
    events = runs.sum(counted.astype(np.int64)) + _carried(
        runs, steps, minute, state["minute_us"], state["minute_events"]
    )
    latest = runs.user_last
    return {
        "minute_us": minute[runs.starts][latest],
        "minute_events": events[latest],
        "peak_minute_events": runs.per_user(np.maximum, events),
    }


def _carried(
    runs: Runs, steps: Steps, key: np.ndarray, state_key: np.ndarray, state_value: np.ndarray
) -> np.ndarray:
    """Per run: the state's count for the same user and bucket, else 0."""
    row = steps.state_row[runs.starts]
    held = row >= 0
    same = np.zeros(len(row), bool)
    same[held] = state_key[row[held]] == key[runs.starts][held]
    out = np.zeros(len(row), np.int64)
    out[same] = state_value[row[same]]
    return out


def hour_buckets(
    steps: Steps,
    state: dict[str, np.ndarray],
    hour_totals: tuple[np.ndarray, np.ndarray],
    rules: BotSettings,
) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Per user: the latest hour's events and sessions, the busiest hour's robust score and
    traffic share, whether any hour floods; and the hour totals with this batch added."""
    hour = steps.t_us // _HOUR_US * _HOUR_US
    runs = Runs.of(steps.first, hour)
    run_hour = hour[runs.starts]
    length = runs.lengths
    events = length + _carried(runs, steps, hour, state["hour_us"], state["hour_events"])
    sessions = runs.sum(steps.new_session.astype(np.int64)) + _carried(
        runs, steps, hour, state["hour_us"], state["hour_sessions"]
    )
    totals, total_row = _add_totals(hour_totals, run_hour, length)
    median, mad = _hour_spread(run_hour, events, runs, steps, state)
    z = (events - median) / (1.4826 * mad + 1)
    share = events / totals[1][total_row]
    latest = runs.user_last
    peak = runs.per_user(np.maximum, events)
    # the busiest hour's score; at equal events the earliest such hour
    busiest = np.flatnonzero(events == peak[runs.user])
    owner = runs.user[busiest]  # runs are in user order: keep each user's first
    busiest = busiest[np.flatnonzero(np.diff(owner, prepend=-1) != 0)]
    floods = (events >= rules.min_hour_events) & (share >= rules.max_traffic_share)
    floods &= z >= rules.min_robust_z
    per_user = {
        "hour_us": run_hour[latest],
        "hour_events": events[latest],
        "hour_sessions": sessions[latest],
        "peak_hour_sessions": runs.per_user(np.maximum, sessions),
        "robust_z": z[busiest],
        "traffic_share": share[busiest],
        "floods": runs.per_user(np.logical_or, floods),
    }
    return per_user, totals


def _add_totals(
    totals: tuple[np.ndarray, np.ndarray], hours: np.ndarray, events: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Hour totals (sorted by hour) plus `events` at `hours`, and each of `hours`' row in them."""
    keys, inverse = hour_groups(np.concatenate([totals[0], hours]))
    sums = np.bincount(inverse, weights=np.concatenate([totals[1], events]), minlength=len(keys))
    return (keys, np.rint(sums).astype(np.int64)), inverse[len(totals[0]) :]


def _hour_spread(
    run_hour: np.ndarray,
    events: np.ndarray,
    runs: Runs,
    steps: Steps,
    state: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Per run: the median and the median absolute deviation of the events of every user active
    in its hour (this batch's, and the state's users last active in that hour)."""
    row = steps.state_row[runs.starts]
    matched = np.zeros(len(state["hour_us"]), bool)
    held = row >= 0
    matched[row[held][state["hour_us"][row[held]] == run_hour[held]]] = True
    quiet = ~matched & np.isin(state["hour_us"], hour_groups(run_hour)[0])
    pool_hour = np.concatenate([run_hour, state["hour_us"][quiet]])
    pool_events = np.concatenate([events, state["hour_events"][quiet]]).astype(np.float64)
    hours, group = hour_groups(pool_hour)
    median = _group_median(group, pool_events, len(hours))
    mad = _group_median(group, np.abs(pool_events - median[group]), len(hours))
    at = group[: len(run_hour)]  # the pool starts with the runs
    return median[at], mad[at]


#: Cells (hours × distinct doubled values) up to which `_group_median` counts instead of sorting.
_MAX_HISTOGRAM = 1 << 20
#: Hours a batch may span for `hour_groups` to count them in an array (114 years).
_MAX_HOUR_SPAN = 1 << 20


def hour_groups(hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct hours (µs, whole hours), sorted, and each value's index among them.

    Why not np.unique: a batch spans a few hours, so counting hours since the first is a
    linear pass where np.unique sorts every value (6 ms per 100k users).
    """
    if len(hours) == 0:
        return hours[:0], np.zeros(0, np.int64)
    first = int(hours.min())
    since = (hours - first) // _HOUR_US
    if int(since.max()) >= _MAX_HOUR_SPAN or bool(np.any(hours % _HOUR_US)):
        distinct, inverse = np.unique(hours, return_inverse=True)
        return distinct, np.asarray(inverse, np.int64).ravel()
    present = np.bincount(since) > 0
    index = np.cumsum(present) - 1
    return first + np.flatnonzero(present) * _HOUR_US, index[since]


def _group_median(group: np.ndarray, values: np.ndarray, groups: int) -> np.ndarray:
    """Per group, the median of its values (the mean of the two middle ones for an even count).

    Why a histogram and not a sort: the values are event counts or their distances from a
    median (whole or halves), mostly small, and the groups are a batch's few hours; counting
    them takes a tenth of the time of np.lexsort.
    """
    if len(values) == 0:
        return np.zeros(groups)
    doubled = values * 2
    top = float(doubled.max())
    if (
        float(doubled.min()) < 0
        or groups * (top + 1) >= _MAX_HISTOGRAM
        or not np.array_equal(doubled, np.floor(doubled))
    ):
        return _sorted_group_median(group, values, groups)
    width = int(top) + 1
    cells = group.astype(np.int64) * width + doubled.astype(np.int64)
    at_most = np.cumsum(np.bincount(cells, minlength=groups * width).reshape(groups, width), axis=1)
    count = at_most[:, -1]
    # the value of rank r is the first one with more than r values at or below it
    low = (at_most <= ((count - 1) // 2)[:, None]).sum(axis=1)
    high = (at_most <= (count // 2)[:, None]).sum(axis=1)
    return np.asarray((low + high) / 4.0)


def _sorted_group_median(group: np.ndarray, values: np.ndarray, groups: int) -> np.ndarray:
    """`_group_median` for any values: sorted within each group."""
    order = np.lexsort((values, group))
    ordered = values[order]
    count = np.bincount(group, minlength=groups)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    return np.asarray((ordered[start + (count - 1) // 2] + ordered[start + count // 2]) / 2)


def state_columns(users: pa.Table) -> dict[str, np.ndarray]:
    """The state's numeric columns as numpy (alerted_until_us: −1 for none)."""
    out = {}
    for field in users.schema:
        if pa.types.is_string(field.type):
            continue
        column = users.column(field.name)
        if field.name in ("alerted_until_us", "last_product"):
            column = pc.fill_null(column, -1)
        kind = np.float64 if pa.types.is_floating(field.type) else np.int64
        out[field.name] = np.asarray(column.to_numpy(), kind)
    return out


def hour_totals_of(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Hour totals as (hours, events), sorted by hour."""
    hours = np.asarray(table.column("hour_us").to_numpy(), np.int64)
    events = np.asarray(table.column("events").to_numpy(), np.int64)
    order = np.argsort(hours)
    return hours[order], events[order]
