"""What each insight page shows: queries over the marts, bound to the page's filters.

Every query is one SQL text for both serving stores (DuckDB and PostgreSQL), read through a
`ServingReader`; filter values travel only as `?` parameters.
"""

from __future__ import annotations

from typing import Any

from cartpulse.sinks.serving_read import ServingReader
from cartpulse.web.charts import bar, forecast_chart, heatmap, traffic_charts
from cartpulse.web.filters import Filters
from cartpulse.web.pages import chart
from cartpulse.web.tables import Section, section


def traffic(reader: ServingReader, f: Filters) -> dict[str, Any]:
    """Daily visitors and sessions, the funnel, and carts left without a purchase by hour."""
    days, day_values = f.where(day="event_date")
    daily = section(
        reader,
        "mart_daily_kpis",
        "SELECT event_date, unique_visitors, sessions, buyers, purchases, revenue, "
        f"conversion_rate FROM mart_daily_kpis WHERE {days} ORDER BY event_date",
        day_values,
    )
    where, values = f.where(day="event_date", brand="brand", category="category")
    funnel = section(
        reader,
        "mart_funnel",
        "SELECT sum(views)::BIGINT AS views, sum(carts)::BIGINT AS carts, "
        "sum(purchases)::BIGINT AS purchases, sum(revenue_amount) AS revenue_amount "
        f"FROM mart_funnel WHERE {where} HAVING count(*) > 0",
        values,
    )
    abandonment = section(
        reader,
        "mart_cart_abandonment",
        "SELECT hour, sum(cart_sessions)::BIGINT AS cart_sessions, "
        "sum(abandoned_sessions)::BIGINT AS abandoned_sessions, "
        "sum(abandoned_value_amount) AS abandoned_value_amount "
        "FROM mart_cart_abandonment GROUP BY hour ORDER BY hour",
    )
    heat = section(
        reader,
        "mart_cart_abandonment",
        "SELECT weekday, hour, abandonment_rate FROM mart_cart_abandonment ORDER BY weekday, hour",
    )
    return {
        "daily": daily,
        "funnel": funnel,
        "abandonment": abandonment,
        "charts": traffic_charts(daily, funnel, abandonment, heat),
    }


def categories(reader: ServingReader, f: Filters) -> dict[str, Any]:
    """Top categories by hour of day and by weekday (heatmaps) and their totals."""
    where, values = f.where(category="category")
    top = section(
        reader,
        "mart_category_time",
        "SELECT category, sum(views)::BIGINT AS views, sum(carts)::BIGINT AS carts, "
        "sum(purchases)::BIGINT AS purchases, sum(revenue_amount) AS revenue_amount "
        f"FROM mart_category_time WHERE slot_kind = 'hour' AND {where} "
        "GROUP BY category ORDER BY purchases DESC, views DESC, category LIMIT 15",
        values,
    )
    names = [r["category"] for r in top.rows]
    slots = Section()
    if names:
        marks = ", ".join("?" for _ in names)
        slots = section(
            reader,
            "mart_category_time",
            "SELECT slot_kind, slot, category, purchases, views FROM mart_category_time "
            f"WHERE category IN ({marks}) ORDER BY slot_kind, slot, category",
            names,
        )
    charts: dict[str, Any] = {}
    for kind, title in (("hour", "hour of day (UTC)"), ("weekday", "weekday")):
        cells = [r for r in slots.rows if r["slot_kind"] == kind]
        if cells:
            charts[kind] = heatmap(
                cells, "category", "slot", "purchases", f"Purchases by category × {title}", names
            )
    return {"top": top, "charts": charts}


def brands(reader: ServingReader, f: Filters) -> dict[str, Any]:
    """Brands by revenue, and the brands that need marketing (views/carts, low conversion)."""
    where, values = f.where(brand="brand")
    columns = (
        "brand, products, views, carts, purchases, revenue_amount, view_to_cart_rate, "
        "cart_to_purchase_rate, conversion_rate, needs_marketing, marketing_reason"
    )
    top = section(
        reader,
        "mart_brand_performance",
        f"SELECT {columns} FROM mart_brand_performance WHERE {where} "
        "ORDER BY revenue_amount DESC, brand LIMIT 25",
        values,
    )
    marketing = section(
        reader,
        "mart_brand_performance",
        f"SELECT {columns} FROM mart_brand_performance WHERE needs_marketing AND {where} "
        "ORDER BY views DESC, brand LIMIT 25",
        values,
    )
    charts = {}
    if top.rows:
        names = [r["brand"] for r in top.rows[:15]]
        charts["brands"] = chart(
            [
                bar(names, [r["views"] for r in top.rows[:15]], "views"),
                bar(names, [r["carts"] for r in top.rows[:15]], "carts"),
                bar(names, [r["purchases"] for r in top.rows[:15]], "purchases"),
            ],
            "Top brands by revenue: views, carts, purchases",
            barmode="group",
        )
    return {"top": top, "marketing": marketing, "charts": charts}


def customers(reader: ServingReader, f: Filters) -> dict[str, Any]:
    """RFM segments, the distribution of lifetime value, and the most valuable customers."""
    segments = section(
        reader,
        "mart_rfm",
        "SELECT segment, count(*) AS customers, sum(monetary_amount) AS monetary_amount, "
        "CAST(avg(recency_days) AS DOUBLE PRECISION) AS avg_recency_days, "
        "CAST(avg(frequency) AS DOUBLE PRECISION) AS avg_frequency "
        "FROM mart_rfm GROUP BY segment ORDER BY customers DESC, segment",
    )
    histogram = section(
        reader,
        "mart_customer_ltv",
        "WITH b AS (SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY clv_amount) AS hi "
        "FROM mart_customer_ltv), "
        "v AS (SELECT least(clv_amount, hi) AS x, hi FROM mart_customer_ltv, b) "
        "SELECT floor(x / (greatest(hi, 1e-9) / 30)) AS bin, count(*) AS customers, "
        "min(x) AS low, max(x) AS high FROM v GROUP BY bin ORDER BY bin",
    )
    top = section(
        reader,
        "mart_customer_ltv",
        "SELECT user_id, clv_amount, p_alive, expected_purchases, frequency, recency_days "
        "FROM mart_customer_ltv ORDER BY clv_amount DESC, user_id LIMIT 20",
    )
    charts = {}
    if segments.rows:
        charts["segments"] = chart(
            [bar([r["segment"] for r in segments.rows], [r["customers"] for r in segments.rows])],
            "Customers per RFM segment",
        )
    if histogram.rows:
        labels = [f"{r['low']:.0f}–{r['high']:.0f}" for r in histogram.rows]
        charts["clv"] = chart(
            [bar(labels, [r["customers"] for r in histogram.rows])],
            "Customer lifetime value (top 1 % in the last bar)",
        )
    return {"segments": segments, "top": top, "charts": charts}


def products(reader: ServingReader, f: Filters) -> dict[str, Any]:
    """Products forecast to sell most, purchase probability of carted products, top sellers."""
    where, values = f.where(brand="pp.brand", category="pp.category")
    described = f"LEFT JOIN mart_product_performance pp USING (product_id) WHERE {where}"
    forecast = section(
        reader,
        "mart_product_forecast",
        "SELECT product_id, pp.brand, pp.category, horizon_days, forecast_purchases, "
        "lower_purchases, upper_purchases, purchases_last_28d, method "
        f"FROM mart_product_forecast {described} AND horizon_days = "
        "(SELECT min(horizon_days) FROM mart_product_forecast) "
        "ORDER BY rank, product_id LIMIT 20",
        values,
    )
    propensity = section(
        reader,
        "mart_purchase_propensity",
        "SELECT product_id, pp.brand, pp.category, carted_items, avg_purchase_probability, "
        f"expected_purchases, bought_items FROM mart_purchase_propensity {described} "
        "ORDER BY rank, product_id LIMIT 20",
        values,
    )
    where, values = f.where(brand="brand", category="category")
    sellers = section(
        reader,
        "mart_product_performance",
        "SELECT product_id, brand, category, views, carts, purchases, revenue_amount, "
        f"conversion_rate FROM mart_product_performance WHERE {where} "
        "ORDER BY revenue_amount DESC, product_id LIMIT 20",
        values,
    )
    charts = {"forecast": forecast_chart(forecast)} if forecast.rows else {}
    return {"forecast": forecast, "propensity": propensity, "sellers": sellers, "charts": charts}
