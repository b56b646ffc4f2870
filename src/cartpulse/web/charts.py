"""Chart specs of the insight pages: lines, bars and heatmaps (plotly.js figures)."""

from __future__ import annotations

from typing import Any

from cartpulse.web.pages import chart
from cartpulse.web.tables import Section

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def line(x: list[Any], y: list[Any], name: str) -> dict[str, Any]:
    """A line-and-markers trace."""
    return {"type": "scatter", "mode": "lines+markers", "x": x, "y": y, "name": name}


def bar(x: list[Any], y: list[Any], name: str = "") -> dict[str, Any]:
    """A bar trace."""
    return {"type": "bar", "x": x, "y": y, "name": name}


def heatmap(
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


def traffic_charts(
    daily: Section, funnel: Section, abandonment: Section, heat: Section
) -> dict[str, Any]:
    """The traffic page's figures: visitors per day, the funnel, abandonment by hour."""
    charts: dict[str, Any] = {}
    if daily.rows:
        days = [str(r["event_date"]) for r in daily.rows]
        charts["daily"] = chart(
            [
                line(days, [r["unique_visitors"] for r in daily.rows], "unique visitors"),
                line(days, [r["sessions"] for r in daily.rows], "sessions"),
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
                bar(hours, [r["cart_sessions"] for r in abandonment.rows], "sessions with a cart"),
                bar(hours, [r["abandoned_sessions"] for r in abandonment.rows], "abandoned"),
            ],
            "Carts without a purchase, by hour the session ended (UTC)",
            barmode="group",
        )
    if heat.rows:
        charts["abandonment_heat"] = heatmap(
            heat.rows, "weekday", "hour", "abandonment_rate", "Abandonment rate, weekday × hour"
        )
    return charts


def forecast_chart(forecast: Section) -> dict[str, Any]:
    """Forecast purchases per product with their prediction intervals."""
    ids = [str(r["product_id"]) for r in forecast.rows]
    return chart(
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
