"""The live page's data: one snapshot of the serving tables, pushed after every engine commit."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import duckdb
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from cartpulse.query import live_views

if TYPE_CHECKING:
    from cartpulse.serve.pipeline import Pipeline

log = logging.getLogger(__name__)

#: Without commits, a snapshot still goes out this often (lag, events/s, DQ counts move).
HEARTBEAT_S = 5.0
#: Recovered revenue joins the lake: computed at most this often.
_RECOVERED_EVERY_S = 30.0
_NOW_MINUTES = 15
#: The per-minute chart shows this many of the newest minutes with sales.
_CHART_MINUTES = 60
_PARAM = re.compile(r"\$([a-z_]+)")


def rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Rows as dicts; only the `$name` parameters the SQL uses are bound (DuckDB only)."""
    used = {name: (params or {})[name] for name in set(_PARAM.findall(sql))}
    result = con.execute(sql, used) if used else con.execute(sql)
    names = [d[0] for d in result.description or []]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


class LiveFeed:
    """Builds live snapshots for one running pipeline."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._recovered: tuple[float, float | None] | None = None

    def snapshot(self, refresh_slow: bool = True) -> dict[str, Any]:
        """Sales, carts, emails, bots, data quality and pipeline health, JSON-ready.

        Without `refresh_slow` the recovered revenue (a join with the lake) is the cached one.
        """
        con = self.pipeline.connection()
        try:
            data = _sales(con) | _carts_and_emails(con) | _bots_and_quality(con)
        finally:
            con.close()
        data["recovered_revenue"] = self._recovered_revenue(refresh_slow)
        data["health"] = {
            "log_lag": self.pipeline.lag(),
            "events_per_s": round(self.pipeline.commits.events_per_s(), 1),
            "engine_offset": self.pipeline.engine.offset,
            "ready": self.pipeline.ready()[0],
        }
        data["generated_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        return data

    async def stream(self, request: Request) -> AsyncIterator[str]:
        """Server-sent events: a snapshot now, then one after each commit (or heartbeat)."""
        commits = self.pipeline.commits
        seen, heartbeat = -1, True
        while not commits.closed and not await request.is_disconnected():
            generation = commits.generation
            if generation != seen:
                seen = generation
                # After a commit, speed matters: the slow figure is refreshed on heartbeats.
                payload = await run_in_threadpool(self.snapshot, heartbeat)
                yield f"event: snapshot\ndata: {json.dumps(payload, default=str)}\n\n"
            heartbeat = await commits.wait(seen, HEARTBEAT_S) == seen
            if heartbeat:
                seen = -1  # no commit for a while: send a fresh snapshot anyway

    def _recovered_revenue(self, refresh: bool) -> float | None:
        now = time.monotonic()
        cached = self._recovered
        if cached is not None and (not refresh or now - cached[0] < _RECOVERED_EVERY_S):
            return cached[1]
        con = self.pipeline.connection()
        try:
            live_views(con, self.pipeline.settings)
            found = con.execute(
                "SELECT max(recovered_revenue_amount) FROM mart_retarget_performance"
            ).fetchone()
            value = float(found[0]) if found and found[0] is not None else None
        except duckdb.Error as exc:  # no lake yet, or no outbox rows: nothing to measure
            log.debug("recovered_revenue_unavailable error=%s", exc)
            value = None
        finally:
            con.close()
        self._recovered = (now, value)
        return value


def _sales(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    newest = con.execute("SELECT max(window_start) FROM product_sales_minute").fetchone()
    latest = newest[0] if newest else None
    totals = rows(
        con,
        "SELECT coalesce(sum(purchases), 0)::BIGINT AS purchases, "
        "coalesce(sum(revenue), 0) AS revenue FROM product_sales_minute",
    )[0]
    if latest is None:
        return {
            "sales": totals,
            "latest_minute": None,
            "day": None,
            "minutes": [],
            "top_now": [],
            "top_day": [],
        }
    at = {"latest": latest}
    minutes = rows(
        con,
        "SELECT * FROM (SELECT strftime(window_start AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:00Z') "
        "AS minute, sum(purchases)::BIGINT AS purchases, sum(revenue) AS revenue "
        f"FROM product_sales_minute GROUP BY window_start ORDER BY window_start DESC "
        f"LIMIT {_CHART_MINUTES}) ORDER BY minute",
    )
    top = (
        "SELECT product_id, sum(purchases)::BIGINT AS purchases, sum(revenue) AS revenue "
        "FROM product_sales_minute WHERE {where} "
        "GROUP BY product_id ORDER BY purchases DESC, revenue DESC, product_id LIMIT 10"
    )
    now_rows = rows(
        con, top.format(where=f"window_start > $latest - INTERVAL {_NOW_MINUTES} MINUTE"), at
    )
    day_rows = rows(
        con,
        top.format(
            where="(window_start AT TIME ZONE 'UTC')::DATE = ($latest AT TIME ZONE 'UTC')::DATE"
        ),
        at,
    )
    day = rows(con, "SELECT strftime($latest AT TIME ZONE 'UTC', '%Y-%m-%d') AS d", at)[0]["d"]
    return {
        "sales": totals,
        "latest_minute": minutes[-1]["minute"] if minutes else None,
        "day": day,
        "minutes": minutes,
        "top_now": now_rows,
        "top_day": day_rows,
    }


def _carts_and_emails(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    carts = rows(
        con,
        "SELECT count(*) AS carts, coalesce(sum(cart_value), 0) AS value FROM abandoned_carts",
    )[0]
    emails = dict(
        con.execute("SELECT status, count(*) FROM retarget_messages GROUP BY 1").fetchall()
    )
    return {"abandoned": carts, "emails": {str(k): int(v) for k, v in emails.items()}}


def _bots_and_quality(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    alerts = rows(
        con,
        "SELECT user_id, strftime(detected_at AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S') "
        "AS detected_at, rule, score FROM bot_alerts ORDER BY detected_at DESC LIMIT 10",
    )
    count = con.execute("SELECT count(*) FROM bot_alerts").fetchone()
    quality = rows(
        con,
        "SELECT reason, sum(rows)::BIGINT AS rows FROM dq_counts GROUP BY reason "
        "ORDER BY rows DESC, reason",
    )
    return {"bot_alerts": alerts, "bot_alert_count": count[0] if count else 0, "dq": quality}
