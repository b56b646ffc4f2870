"""Rendering dashboard pages: the Jinja environment, static assets, and chart specs."""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path
from typing import Any

import jinja2
from fastapi.responses import HTMLResponse

#: Pages in the navigation bar: path, title.
NAV = (
    ("/live", "Live"),
    ("/traffic", "Traffic & funnel"),
    ("/categories", "Categories"),
    ("/brands", "Brands"),
    ("/customers", "Customers"),
    ("/products", "Products"),
    ("/emails", "Emails"),
    ("/health", "Health"),
)


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cartpulse.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _number
    env.filters["money"] = lambda v: "–" if v is None else f"{float(v):,.2f}"
    env.filters["pct"] = lambda v: "–" if v is None else f"{100 * float(v):.1f} %"
    return env


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page from `templates/`, with the navigation."""
    html = _environment().get_template(template).render(nav=NAV, **context)
    return HTMLResponse(html, status_code=status_code, headers=_SECURITY_HEADERS)


# No inline scripts run (data travels in JSON script tags), no framing, no foreign origins.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


@functools.cache
def static_files() -> dict[str, Path]:
    """Assets the pages load: our CSS/JS and plotly.js from the installed `plotly` package."""
    own = importlib.resources.files("cartpulse.web") / "static"
    plotly = importlib.resources.files("plotly") / "package_data" / "plotly.min.js"
    files = {p.name: Path(str(p)) for p in own.iterdir() if p.is_file()}
    return files | {"plotly.min.js": Path(str(plotly))}


def chart(data: list[dict[str, Any]], title: str, **layout: Any) -> dict[str, Any]:
    """A plotly.js figure spec (the page's script draws it)."""
    base = {
        "title": {"text": title, "font": {"size": 15}},
        "margin": {"l": 50, "r": 10, "t": 40, "b": 40},
        "legend": {"orientation": "h"},
        "autosize": True,
    }
    return {"data": data, "layout": base | layout}
