"""Traffic over time: day weights (weekday, sale days), hour-of-day profiles, generation windows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cartpulse.generate import calibration as cal

DAY_S = 86_400
HOUR_S = 3_600

# Share of a day's sessions starting in each local hour (Moscow, UTC+3: the cosmetics shop's
# customers): a night trough, a working-day plateau and an evening peak.
_LOCAL_WEEKDAY = (
    0.35, 0.22, 0.14, 0.10, 0.08, 0.10, 0.20, 0.40, 0.62, 0.80, 0.92, 0.98,
    1.00, 1.00, 0.98, 0.97, 0.98, 1.02, 1.08, 1.15, 1.20, 1.12, 0.90, 0.60,
)  # fmt: skip
# Weekends start later and stay flatter through the afternoon.
_LOCAL_WEEKEND = (
    0.45, 0.30, 0.18, 0.12, 0.09, 0.09, 0.13, 0.24, 0.40, 0.60, 0.80, 0.95,
    1.05, 1.08, 1.08, 1.06, 1.04, 1.04, 1.06, 1.10, 1.12, 1.05, 0.88, 0.65,
)  # fmt: skip
_UTC_OFFSET_H = 3
# A sale's newsletter goes out at 07:00 UTC: an organic surge from many different users.
_SALE_SURGE = {7: 2.4, 8: 2.0, 9: 1.6, 10: 1.3, 17: 1.3, 18: 1.4}
# At least two windows a day: rows of a window then sort by a 16-bit offset (< 18.2 h).
_WINDOWS_PER_DAY = (2, 3, 4, 6, 8, 12, 24)


@dataclass(frozen=True)
class Window:
    """Sessions starting in [start_s, end_s) produce exactly `rows` rows (bots included)."""

    index: int
    day: int
    start_s: int
    end_s: int
    rows: int
    hour_weights: NDArray[np.float64]  # 24 weights of the window's day, zero outside the window


@dataclass(frozen=True)
class Plan:
    """How the requested rows spread over days and windows."""

    start: dt.date
    days: int
    windows: tuple[Window, ...]
    day_rows: NDArray[np.int64]
    sale_days: frozenset[int]

    @property
    def horizon_s(self) -> int:
        """End of the last day, in seconds since the start."""
        return self.days * DAY_S

    def weekday(self, day: int) -> int:
        """Weekday of a day index, Monday = 0."""
        return (self.start + dt.timedelta(days=day)).weekday()


def hour_profile(weekday: int, sale: bool) -> NDArray[np.float64]:
    """Relative session starts per UTC hour for a day."""
    local = _LOCAL_WEEKEND if weekday >= 5 else _LOCAL_WEEKDAY
    utc = np.roll(np.asarray(local, dtype=np.float64), -_UTC_OFFSET_H)
    if sale:
        for hour, factor in _SALE_SURGE.items():
            utc[hour] *= factor
    return utc


def sale_days(days: int) -> frozenset[int]:
    """One sale day in a short range, two in a range of three weeks or more."""
    if days < 3:
        return frozenset()
    if days < 21:
        return frozenset({int(days * 0.6)})
    return frozenset({int(days * 0.3), int(days * 0.8)})


def apportion(weights: NDArray[np.float64], total: int) -> NDArray[np.int64]:
    """Integers proportional to weights that sum to exactly total (largest remainder)."""
    quota = weights / weights.sum() * total
    counts: NDArray[np.int64] = np.floor(quota).astype(np.int64)
    short = total - int(counts.sum())
    if short > 0:
        order = np.argsort(-(quota - counts), kind="stable")
        counts[order[:short]] += 1
    return counts


def plan_timeline(events: int, days: int, start: dt.date, rng: np.random.Generator) -> Plan:
    """Spread `events` rows over days (weekday, sale days) and hour windows."""
    sales = sale_days(days)
    weekdays = [(start + dt.timedelta(days=d)).weekday() for d in range(days)]
    noise = np.exp(rng.normal(0.0, cal.DAY_NOISE_SD, days))
    day_weight = np.array(
        [cal.WEEKDAY_WEIGHTS[w] * (cal.SALE_DAY_TRAFFIC if d in sales else 1.0) for d, w in
         enumerate(weekdays)]
    ) * noise  # fmt: skip
    profiles = np.stack([hour_profile(w, d in sales) for d, w in enumerate(weekdays)])
    cells = day_weight[:, None] * profiles / profiles.sum(axis=1, keepdims=True)
    per_day = np.ceil(cells.sum(axis=1) / cells.sum() * events)
    # Bound the rows one window holds in memory; windows split days on hour boundaries.
    wpd = next(w for w in _WINDOWS_PER_DAY if per_day.max() * 1.6 / w <= cal.MAX_WINDOW_ROWS)
    hours = 24 // wpd
    window_cells = cells.reshape(days, wpd, hours).sum(axis=2).reshape(-1)
    rows = apportion(window_cells, events)
    windows = []
    for index, count in enumerate(rows):
        day, part = divmod(index, wpd)
        weights = np.zeros(24)
        span = slice(part * hours, (part + 1) * hours)
        weights[span] = profiles[day, span]
        begin = day * DAY_S + part * hours * HOUR_S
        windows.append(Window(index, day, begin, begin + hours * HOUR_S, int(count), weights))
    day_rows = rows.reshape(days, wpd).sum(axis=1)
    return Plan(start, days, tuple(windows), day_rows, sales)
