"""The marts computed again in plain Python from the lake's rows, straight from docs/warehouse.md.

No SQL and no DuckDB: a mistake in the dbt models cannot hide in these too.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

Row = dict[str, Any]
TIMEOUT_S = 1800


def lake_events(events_dir: Path, bot_users: set[int]) -> list[Row]:
    """Every clean event in the lake except those of `bot_users`, with calendar fields."""
    rows = ds.dataset(events_dir, format="parquet", partitioning="hive").to_table().to_pylist()
    out = []
    for row in rows:
        if row["user_id"] in bot_users:
            continue
        t: datetime = row["event_time"]
        row["date"] = t.date()
        row["hour"] = t.hour
        row["weekday"] = t.isoweekday()
        code, cid = row["category_code"], row["category_id"]
        row["category"] = (
            code if code is not None else (f"id:{cid}" if cid is not None else "unknown")
        )
        out.append(row)
    return out


def sessions(events: list[Row], timeout_s: int = TIMEOUT_S) -> list[Row]:
    """One row per session: a user_session split where consecutive events are > timeout apart."""
    by_id: dict[str, list[Row]] = defaultdict(list)
    for e in events:
        if e["user_session"] is not None:
            by_id[e["user_session"]].append(e)
    out = []
    for sid, evs in by_id.items():
        evs.sort(key=lambda e: e["event_time"])
        seq, part = 0, [evs[0]]
        for prev, cur in itertools.pairwise(evs):
            if (cur["event_time"] - prev["event_time"]).total_seconds() > timeout_s:
                out.append(_session(sid, seq, part))
                seq, part = seq + 1, []
            part.append(cur)
        out.append(_session(sid, seq, part))
    return out


def _session(sid: str, seq: int, evs: list[Row]) -> Row:
    latest = max(evs, key=lambda e: (e["event_time"], e["user_id"]))
    net: dict[int, int] = defaultdict(int)
    last: dict[int, tuple[datetime, float]] = {}
    carted: set[int] = set()
    for e in evs:
        pid, kind = e["product_id"], e["event_type"]
        net[pid] += {"cart": 1, "view": 0}.get(kind, -1)
        if kind != "view":
            carted.add(pid)
        last[pid] = max(last.get(pid, (e["event_time"], e["price"])), (e["event_time"], e["price"]))
    left = {p: net[p] for p in carted if net[p] > 0}
    purchases = sum(e["event_type"] == "purchase" for e in evs)
    return {
        "session_id": f"{sid}#{seq}",
        "user_id": latest["user_id"],
        "session_start": min(e["event_time"] for e in evs),
        "session_end": max(e["event_time"] for e in evs),
        "events": len(evs),
        "carts": sum(e["event_type"] == "cart" for e in evs),
        "purchases": purchases,
        "revenue_amount": sum(e["price"] for e in evs if e["event_type"] == "purchase"),
        "cart_item_count": sum(left.values()),
        "cart_value_amount": sum(n * last[p][1] for p, n in left.items()),
        "is_abandoned": purchases == 0 and bool(left),
    }


def daily_kpis(events: list[Row], sess: list[Row]) -> dict[date, Row]:
    """Per UTC day: unique visitors, sessions started, buyers, purchases, revenue, conversion."""
    days: dict[date, Row] = {}
    for e in events:
        d = days.setdefault(
            e["date"],
            {"visitors": set(), "buyers": set(), "purchases": 0, "revenue": 0.0, "sessions": 0},
        )
        d["visitors"].add(e["user_id"])
        if e["event_type"] == "purchase":
            d["buyers"].add(e["user_id"])
            d["purchases"] += 1
            d["revenue"] += e["price"]
    for s in sess:
        days[s["session_start"].date()]["sessions"] += 1
    return {
        day: {
            "unique_visitors": len(d["visitors"]),
            "sessions": d["sessions"],
            "buyers": len(d["buyers"]),
            "purchases": d["purchases"],
            "revenue": d["revenue"],
            "conversion_rate": len(d["buyers"]) / len(d["visitors"]),
        }
        for day, d in days.items()
    }


def funnel(events: list[Row]) -> dict[tuple[date, str, str], Row]:
    """Per day, category and brand: distinct viewers, carters, buyers and purchase revenue."""
    cells: dict[tuple[date, str, str], Row] = {}
    for e in events:
        key = (e["date"], e["category"], e["brand"] or "unknown")
        c = cells.setdefault(
            key,
            {
                "view": set(),
                "cart": set(),
                "purchase": set(),
                "remove_from_cart": set(),
                "revenue_amount": 0.0,
            },
        )
        c[e["event_type"]].add(e["user_id"])
        if e["event_type"] == "purchase":
            c["revenue_amount"] += e["price"]
    return {
        k: {
            "viewers": len(c["view"]),
            "carters": len(c["cart"]),
            "buyers": len(c["purchase"]),
            "revenue_amount": c["revenue_amount"],
        }
        for k, c in cells.items()
    }


def cart_abandonment(sess: list[Row]) -> dict[tuple[int, int], Row]:
    """Per weekday and hour of session end: sessions, abandoned ones and the value left."""
    slots: dict[tuple[int, int], Row] = {}
    for s in sess:
        end = s["session_end"]
        slot = slots.setdefault(
            (end.isoweekday(), end.hour),
            {
                "sessions": 0,
                "cart_sessions": 0,
                "abandoned_sessions": 0,
                "abandoned_value_amount": 0.0,
            },
        )
        slot["sessions"] += 1
        slot["cart_sessions"] += s["carts"] > 0
        if s["is_abandoned"]:
            slot["abandoned_sessions"] += 1
            slot["abandoned_value_amount"] += s["cart_value_amount"]
    return slots


def category_time(events: list[Row]) -> dict[tuple[str, int, str], Row]:
    """Per slot (hour of day, weekday) and category: views, purchases, revenue and rank."""
    cells: dict[tuple[str, int, str], Row] = {}
    for e in events:
        for kind, slot in (("hour", e["hour"]), ("weekday", e["weekday"])):
            c = cells.setdefault(
                (kind, slot, e["category"]), {"views": 0, "purchases": 0, "revenue_amount": 0.0}
            )
            c["views"] += e["event_type"] == "view"
            if e["event_type"] == "purchase":
                c["purchases"] += 1
                c["revenue_amount"] += e["price"]
    by_slot: dict[tuple[str, int], list[tuple[str, Row]]] = defaultdict(list)
    for (kind, slot, cat), c in cells.items():
        by_slot[(kind, slot)].append((cat, c))
    for members in by_slot.values():
        members.sort(key=lambda m: (-m[1]["purchases"], -m[1]["views"], m[0]))
        for rank, (_, c) in enumerate(members, start=1):
            c["slot_rank"] = rank
    return cells


def _counts(events: list[Row], key: str) -> dict[Any, Row]:
    out: dict[Any, Row] = {}
    for e in events:
        if e[key] is None:
            continue
        c = out.setdefault(
            e[key],
            {"view": 0, "cart": 0, "remove_from_cart": 0, "purchase": 0, "revenue_amount": 0.0},
        )
        c[e["event_type"]] += 1
        if e["event_type"] == "purchase":
            c["revenue_amount"] += e["price"]
    return out


def product_performance(events: list[Row]) -> dict[int, Row]:
    """Per product: event counts, revenue and the category it was last seen with."""
    out = _counts(events, "product_id")
    for e in sorted(events, key=lambda e: (e["event_time"], e["category"])):
        out[e["product_id"]]["category"] = e["category"]
    return out


def brand_performance(events: list[Row]) -> dict[str, Row]:
    """Per brand: event counts, revenue, and the marketing flag's reason (None when fine)."""
    brands = _counts(events, "brand")
    views = [b["view"] for b in brands.values()]
    carts = [b["cart"] for b in brands.values()]
    total = {k: sum(b[k] for b in brands.values()) for k in ("view", "cart", "purchase")}
    shop_conv = total["purchase"] / total["view"] if total["view"] else None
    shop_c2p = total["purchase"] / total["cart"] if total["cart"] else None
    med_views, med_carts = statistics.median(views), statistics.median(carts)
    p25 = _quantile(sorted(views), 0.25)
    for b in brands.values():
        conv = b["purchase"] / b["view"] if b["view"] else None
        c2p = b["purchase"] / b["cart"] if b["cart"] else None
        reason = None
        if b["view"] >= med_views and b["purchase"] == 0:
            reason = "no_sales"
        elif b["view"] >= med_views and _lt(conv, 0.5, shop_conv):
            reason = "low_conversion"
        elif b["cart"] >= med_carts and b["cart"] > 0 and _lt(c2p, 0.5, shop_c2p):
            reason = "cart_drop"
        elif b["view"] < p25 and _lt(shop_conv, 1.0, conv):
            reason = "low_visibility"
        b["marketing_reason"] = reason
    return brands


def _lt(a: float | None, factor: float, b: float | None) -> bool:
    return a is not None and b is not None and a < factor * b


def _quantile(values: list[int], q: float) -> float:
    pos = (len(values) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (pos - low)


def rfm(events: list[Row]) -> dict[int, Row]:
    """Per buyer: recency in days, purchase days, money spent, 1-5 scores and segment."""
    as_of = max(e["event_time"] for e in events)
    buyers: dict[int, Row] = {}
    for e in events:
        if e["event_type"] != "purchase":
            continue
        b = buyers.setdefault(e["user_id"], {"last": e["event_time"], "days": set(), "money": 0.0})
        b["last"] = max(b["last"], e["event_time"])
        b["days"].add(e["date"])
        b["money"] += e["price"]
    for b in buyers.values():
        b["recency_days"] = (as_of - b["last"]) // timedelta(days=1)
        b["frequency"] = len(b["days"])
    for score, field, best_high in (
        ("r", "recency_days", False),
        ("f", "frequency", True),
        ("m", "money", True),
    ):
        values = [b[field] for b in buyers.values()]
        for b in buyers.values():
            below = sum((v < b[field]) if best_high else (v > b[field]) for v in values)
            pct = below / (len(values) - 1) if len(values) > 1 else 0.0
            b[f"{score}_score"] = min(5, 1 + math.floor(5 * pct))
    for b in buyers.values():
        b["segment"] = _segment(b["r_score"], b["f_score"])
    return buyers


def _segment(r: int, f: int) -> str:
    rules = [
        (r >= 4 and f >= 4, "champions"),
        (r >= 3 and f >= 4, "loyal"),
        (r >= 4 and f >= 2, "potential_loyalist"),
        (r >= 4, "new_customer"),
        (r <= 2 and f >= 4, "cannot_lose"),
        (r <= 2 and f >= 2, "at_risk"),
        (r == 1, "lost"),
        (r == 2, "hibernating"),
    ]
    return next((name for hit, name in rules if hit), "needs_attention")
