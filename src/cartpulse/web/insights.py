"""What each insight page shows: queries over the marts, bound to the page's filters."""

from __future__ import annotations

from typing import Any

import duckdb

from cartpulse.web.filters import Filters
from cartpulse.web.pages import chart
from cartpulse.web.tables import Section, section

_DAYS = "($start IS NULL OR event_date >= $start) AND ($end IS NULL OR event_date <= $end)"
_BRAND = "($brand IS NULL OR brand = $brand)"
_CATEGORY = "($category IS NULL OR starts_with(category, $category))"
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def traffic(con: duckdb.DuckDBPyConnection, f: Filters) -> dict[str, Any]:
    """Daily visitors and sessions, the funnel, and carts left without a purchase by hour."""
    p = f.params()
    daily = section(
        con,
        "mart_daily_kpis",
        "SELECT event_date, unique_visitors, sessions, buyers, purchases, revenue, "
        f"conversion_rate FROM mart_daily_kpis WHERE {_DAYS} ORDER BY event_date",
        p,
    )
    funnel = section(
        con,
        "mart_funnel",
        "SELECT sum(views)::BIGINT AS views, sum(carts)::BIGINT AS carts, "
        "sum(purchases)::BIGINT AS purchases, sum(revenue_amount) AS revenue_amount "
        f"FROM mart_funnel WHERE {_DAYS} AND {_BRAND} AND {_CATEGORY} HAVING count(*) > 0",
        p,
    )
    abandonment = section(
        con,
        "mart_cart_abandonment",
        "SELECT hour, sum(cart_sessions)::BIGINT AS cart_sessions, "
        "sum(abandoned_sessions)::BIGINT AS abandoned_sessions, "
        "sum(abandoned_value_amount) AS abandoned_value_amount "
        "FROM mart_cart_abandonment GROUP BY hour ORDER BY hour",
    )
    heat = section(
        con,
        "mart_cart_abandonment",
        "SELECT weekday, hour, abandonment_rate FROM mart_cart_abandonment",
    )
    return {
        "daily": daily,
        "funnel": funnel,
        "abandonment": abandonment,
        "charts": _traffic_charts(daily, funnel, abandonment, heat),
    }


def _traffic_charts(
    daily: Section, funnel: Section, abandonment: Section, heat: Section
) -> dict[str, Any]:
    charts: dict[str, Any] = {}
    if daily.rows:
        days = [str(r["event_date"]) for r in daily.rows]
        charts["daily"] = chart(
            [
                _line(days, [r["unique_visitors"] for r in daily.rows], "unique visitors"),
                _line(days, [r["sessions"] for r in daily.rows], "sessions"),
            ],
            "Unique visitors and sessions per day",
        )
    if funnel.rows:
        row = funnel.first
        stages = ["views", "carts", "purchases"]
        charts["funnel"] = chart(
            [{"type": "funnel", "y": stages, "x": [row[s] for s in stages]}],
            "view → cart → purchase (events)",
            margin={"l": 80, "r": 10, "t": 40, "b": 20},
        )
    if abandonment.rows:
        hours = [r["hour"] for r in abandonment.rows]
        charts["abandonment"] = chart(
            [
                _bar(hours, [r["cart_sessions"] for r in abandonment.rows], "sessions with a cart"),
                _bar(hours, [r["abandoned_sessions"] for r in abandonment.rows], "abandoned"),
            ],
            "Carts without a purchase, by hour the session ended (UTC)",
            barmode="group",
        )
    if heat.rows:
        charts["abandonment_heat"] = _heatmap(
            heat.rows, "weekday", "hour", "abandonment_rate", "Abandonment rate, weekday × hour"
        )
    return charts


def categories(con: duckdb.DuckDBPyConnection, f: Filters) -> dict[str, Any]:
    """Top categories by hour of day and by weekday (heatmaps) and their totals."""
    p = f.params()
    top = section(
        con,
        "mart_category_time",
        "SELECT category, sum(views)::BIGINT AS views, sum(carts)::BIGINT AS carts, "
        "sum(purchases)::BIGINT AS purchases, sum(revenue_amount) AS revenue_amount "
        f"FROM mart_category_time WHERE slot_kind = 'hour' AND {_CATEGORY} "
        "GROUP BY category ORDER BY purchases DESC, views DESC, category LIMIT 15",
        p,
    )
    names = [r["category"] for r in top.rows]
    slots = Section()
    if names:
        slots = section(
            con,
            "mart_category_time",
            "SELECT slot_kind, slot, category, purchases, views FROM mart_category_time "
            "WHERE list_contains($names::VARCHAR[], category)",
            {"names": names},
        )
    charts: dict[str, Any] = {}
    for kind, title in (("hour", "hour of day (UTC)"), ("weekday", "weekday")):
        cells = [r for r in slots.rows if r["slot_kind"] == kind]
        if cells:
            charts[kind] = _heatmap(
                cells, "category", "slot", "purchases", f"Purchases by category × {title}", names
            )
    return {"top": top, "charts": charts}


def brands(con: duckdb.DuckDBPyConnection, f: Filters) -> dict[str, Any]:
    """Brands by revenue, and the brands that need marketing (views/carts, low conversion)."""
    p = f.params()
    columns = (
        "brand, products, views, carts, purchases, revenue_amount, view_to_cart_rate, "
        "cart_to_purchase_rate, conversion_rate, needs_marketing, marketing_reason"
    )
    top = section(
        con,
        "mart_brand_performance",
        f"SELECT {columns} FROM mart_brand_performance WHERE {_BRAND} "
        "ORDER BY revenue_amount DESC, brand LIMIT 25",
        p,
    )
    marketing = section(
        con,
        "mart_brand_performance",
        f"SELECT {columns} FROM mart_brand_performance WHERE needs_marketing AND {_BRAND} "
        "ORDER BY views DESC, brand LIMIT 25",
        p,
    )
    charts = {}
    if top.rows:
        names = [r["brand"] for r in top.rows[:15]]
        charts["brands"] = chart(
            [
                _bar(names, [r["views"] for r in top.rows[:15]], "views"),
                _bar(names, [r["carts"] for r in top.rows[:15]], "carts"),
                _bar(names, [r["purchases"] for r in top.rows[:15]], "purchases"),
            ],
            "Top brands by revenue: views, carts, purchases",
            barmode="group",
        )
    return {"top": top, "marketing": marketing, "charts": charts}


def customers(con: duckdb.DuckDBPyConnection, f: Filters) -> dict[str, Any]:
    """RFM segments, the distribution of lifetime value, and the most valuable customers."""
    segments = section(
        con,
        "mart_rfm",
        "SELECT segment, count(*) AS customers, sum(monetary_amount) AS monetary_amount, "
        "avg(recency_days) AS avg_recency_days, avg(frequency) AS avg_frequency "
        "FROM mart_rfm GROUP BY segment ORDER BY customers DESC, segment",
    )
    histogram = section(
        con,
        "mart_customer_ltv",
        "WITH b AS (SELECT quantile_cont(clv_amount, 0.99) AS hi FROM mart_customer_ltv), "
        "v AS (SELECT least(clv_amount, hi) AS x, hi FROM mart_customer_ltv, b) "
        "SELECT floor(x / (greatest(hi, 1e-9) / 30)) AS bin, count(*) AS customers, "
        "min(x) AS low, max(x) AS high FROM v GROUP BY bin ORDER BY bin",
    )
    top = section(
        con,
        "mart_customer_ltv",
        "SELECT user_id, clv_amount, p_alive, expected_purchases, frequency, recency_days "
        "FROM mart_customer_ltv ORDER BY clv_amount DESC, user_id LIMIT 20",
    )
    charts = {}
    if segments.rows:
        charts["segments"] = chart(
            [_bar([r["segment"] for r in segments.rows], [r["customers"] for r in segments.rows])],
            "Customers per RFM segment",
        )
    if histogram.rows:
        labels = [f"{r['low']:.0f}–{r['high']:.0f}" for r in histogram.rows]
        charts["clv"] = chart(
            [_bar(labels, [r["customers"] for r in histogram.rows])],
            "Customer lifetime value (top 1 % in the last bar)",
        )
    return {"segments": segments, "top": top, "charts": charts}


def products(con: duckdb.DuckDBPyConnection, f: Filters) -> dict[str, Any]:
    """Products forecast to sell most, purchase probability of carted products, top sellers."""
    p = f.params()
    described = (
        "LEFT JOIN mart_product_performance pp USING (product_id) "
        "WHERE ($brand IS NULL OR pp.brand = $brand) "
        "AND ($category IS NULL OR starts_with(pp.category, $category))"
    )
    forecast = section(
        con,
        "mart_product_forecast",
        "SELECT product_id, pp.brand, pp.category, horizon_days, forecast_purchases, "
        "lower_purchases, upper_purchases, purchases_last_28d, method "
        f"FROM mart_product_forecast {described} AND horizon_days = "
        "(SELECT min(horizon_days) FROM mart_product_forecast) "
        "ORDER BY rank LIMIT 20",
        p,
    )
    propensity = section(
        con,
        "mart_purchase_propensity",
        "SELECT product_id, pp.brand, pp.category, carted_items, avg_purchase_probability, "
        f"expected_purchases, bought_items FROM mart_purchase_propensity {described} "
        "ORDER BY rank LIMIT 20",
        p,
    )
    sellers = section(
        con,
        "mart_product_performance",
        "SELECT product_id, brand, category, views, carts, purchases, revenue_amount, "
        f"conversion_rate FROM mart_product_performance WHERE {_BRAND} AND {_CATEGORY} "
        "ORDER BY revenue_amount DESC, product_id LIMIT 20",
        p,
    )
    charts = {}
    if forecast.rows:
        ids = [str(r["product_id"]) for r in forecast.rows]
        charts["forecast"] = chart(
            [
                {
                    "type": "bar",
                    "x": ids,
                    "y": [r["forecast_purchases"] for r in forecast.rows],
                    "error_y": {
                        "type": "data",
                        "symmetric": False,
                        "array": [
                            r["upper_purchases"] - r["forecast_purchases"] for r in forecast.rows
                        ],
                        "arrayminus": [
                            r["forecast_purchases"] - r["lower_purchases"] for r in forecast.rows
                        ],
                    },
                }
            ],
            f"Forecast purchases, next {forecast.first['horizon_days']} days",
            xaxis={"type": "category"},
        )
    return {"forecast": forecast, "propensity": propensity, "sellers": sellers, "charts": charts}


def _line(x: list[Any], y: list[Any], name: str) -> dict[str, Any]:
    return {"type": "scatter", "mode": "lines+markers", "x": x, "y": y, "name": name}


def _bar(x: list[Any], y: list[Any], name: str = "") -> dict[str, Any]:
    return {"type": "bar", "x": x, "y": y, "name": name}


def _heatmap(
    cells: list[dict[str, Any]],
    row_key: str,
    col_key: str,
    value_key: str,
    title: str,
    row_order: list[Any] | None = None,
) -> dict[str, Any]:
    """A heatmap figure from long-format cells (missing cells are 0)."""
    row_labels = row_order or sorted({c[row_key] for c in cells})
    cols = sorted({c[col_key] for c in cells})
    grid = {(c[row_key], c[col_key]): c[value_key] for c in cells}
    z = [[grid.get((r, c), 0) for c in cols] for r in row_labels]
    y = [_WEEKDAYS[r - 1] if row_key == "weekday" else r for r in row_labels]
    x = [_WEEKDAYS[c - 1] if col_key == "slot" and len(cols) == 7 else c for c in cols]
    return chart(
        [{"type": "heatmap", "z": z, "x": x, "y": y, "colorscale": "YlOrRd"}],
        title,
        margin={"l": 160, "r": 10, "t": 40, "b": 40},
        yaxis={"automargin": True, "type": "category"},
        xaxis={"type": "category"},
    )
