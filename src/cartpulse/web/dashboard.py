"""The dashboard's pages: live (SSE) and insights from the marts, behind the login."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import duckdb
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.concurrency import run_in_threadpool

from cartpulse.sinks.serving_read import DuckDBReader, ServingReader
from cartpulse.web import insights
from cartpulse.web.auth import SESSION_COOKIE, DashboardLogin
from cartpulse.web.filters import Filters, page_filters
from cartpulse.web.live import LiveFeed
from cartpulse.web.outbox_view import outbox, performance, preview
from cartpulse.web.pages import render, static_files
from cartpulse.web.tables import section

if TYPE_CHECKING:
    from cartpulse.serve.pipeline import Pipeline

FiltersDep = Annotated[Filters, Depends(page_filters)]
_Page = Callable[[ServingReader, Filters], dict[str, Any]]

#: Insight pages: path → (template, title, which filters apply, the query function).
_INSIGHTS: dict[str, tuple[str, str, tuple[str, ...], _Page]] = {
    "/traffic": (
        "traffic.html",
        "Traffic & funnel",
        ("dates", "brand", "category"),
        insights.traffic,
    ),
    "/categories": ("categories.html", "Categories", ("category",), insights.categories),
    "/brands": ("brands.html", "Brands", ("brand",), insights.brands),
    "/customers": ("customers.html", "Customers", (), insights.customers),
    "/products": ("products.html", "Products", ("brand", "category"), insights.products),
}


def dashboard_router(pipeline: Pipeline, login: DashboardLogin) -> APIRouter:
    """Every dashboard page, its live stream and its static assets.

    Insight, emails and health pages read `pipeline.dashboard` (dashboard.read_from); the live
    page, the lake-backed email performance and email previews read the warehouse in-process.
    """
    router = APIRouter(tags=["dashboard"], include_in_schema=False)
    feed = LiveFeed(pipeline)
    reader = pipeline.dashboard
    local = DuckDBReader(pipeline.connection)

    def common(request: Request, f: Filters | None = None) -> dict[str, Any]:
        cookie = request.cookies.get(SESSION_COOKIE, "")
        return {
            "path": request.url.path,
            "filters": f or Filters(),
            "logout_token": login.token_for(cookie, "logout"),
        }

    def on_cursor(fn: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        con = pipeline.connection()
        try:
            return fn(con)
        finally:
            con.close()

    @router.get("/")
    def home() -> Response:
        """The live page is the start page."""
        return RedirectResponse("/live", status_code=303)

    @router.get("/live")
    async def live(request: Request) -> Response:
        """Sales, carts, emails, bots, data quality and health, updated by SSE."""
        snapshot = await run_in_threadpool(feed.snapshot)
        return render("live.html", title="Live", snapshot=snapshot, **common(request))

    @router.get("/live/stream")
    def stream(request: Request) -> StreamingResponse:
        """Server-sent events: `snapshot` after every engine commit, at least every 5 s."""
        return StreamingResponse(
            feed.stream(request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @router.get("/live/snapshot")
    async def snapshot() -> JSONResponse:
        """The live page's data as JSON (what the stream sends)."""
        return JSONResponse(await run_in_threadpool(feed.snapshot))

    for path, (template, title, applies, query) in _INSIGHTS.items():
        router.add_api_route(
            path, _insight_page(reader, common, template, title, applies, query), methods=["GET"]
        )

    @router.get("/emails")
    async def emails(request: Request, f: FiltersDep) -> Response:
        """The outbox: each email, its status and reason; recovered revenue."""
        data = await run_in_threadpool(outbox, reader, f)
        data["performance"] = await run_in_threadpool(
            on_cursor, lambda con: performance(con, pipeline.settings)
        )
        return render(
            "emails.html", title="Emails", applies=("dates",), **data, **common(request, f)
        )

    @router.get("/emails/preview")
    async def email_preview(
        request: Request, message_id: Annotated[str, Query(alias="id")]
    ) -> Response:
        """One email as the customer sees it (HTML in a sandboxed frame, and plain text)."""
        data = await run_in_threadpool(preview, local, pipeline.settings, message_id)
        if data["row"] is None:
            raise HTTPException(404, "no such message in the outbox")
        return render("email_preview.html", title="Email preview", **data, **common(request))

    @router.get("/health")
    async def health(request: Request) -> Response:
        """Pipeline health, warehouse builds (failures first) and model versions."""
        data = await run_in_threadpool(health_sections, reader, local)
        status = await run_in_threadpool(pipeline.status)
        ready, why = pipeline.ready()
        return render(
            "health.html",
            title="Health",
            status=status,
            ready=ready,
            ready_detail=why,
            events_per_s=pipeline.commits.events_per_s(),
            **data,
            **common(request),
        )

    @router.get("/static/{name}")
    def asset(name: str) -> Response:
        """CSS, JS and plotly.js (from the installed `plotly` package: no internet needed)."""
        path = static_files().get(name)
        if path is None:
            raise HTTPException(404, "no such asset")
        return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})

    return router


def _insight_page(
    reader: ServingReader,
    common: Callable[[Request, Filters | None], dict[str, Any]],
    template: str,
    title: str,
    applies: tuple[str, ...],
    query: _Page,
) -> Callable[..., Any]:
    async def page(request: Request, f: FiltersDep) -> Response:
        data = await run_in_threadpool(query, reader, f)
        return render(template, title=title, applies=applies, **data, **common(request, f))

    page.__doc__ = f"The {title} page."
    return page


def health_sections(reader: ServingReader, local: ServingReader) -> dict[str, Any]:
    """Warehouse builds, model versions, data-quality counts and mart exclusions.

    Builds and model versions are this home's own records, not mirrored to PostgreSQL:
    `local` (the warehouse) answers for them; `reader` for the rest.
    """
    runs = section(
        local,
        "models_runs",
        "SELECT started_at AS started, status, selector, models_ok, models_failed, "
        "tests_passed, tests_failed, elapsed_s, message FROM models_runs "
        "ORDER BY (status NOT IN ('success', 'running')) DESC, started_at DESC, run_id LIMIT 20",
    )
    versions = section(
        local,
        "model_versions_latest",
        "SELECT name, version, trained_at, CAST(metrics AS VARCHAR) AS metrics "
        "FROM model_versions_latest ORDER BY name",
    )
    for row in runs.rows:
        row["started"] = _utc(row["started"])
    for row in versions.rows:
        row["trained_at"] = _utc(row["trained_at"])
    quality = section(
        reader,
        "dq_counts",
        "SELECT reason, sum(rows)::BIGINT AS rows FROM dq_counts GROUP BY reason "
        "ORDER BY rows DESC, reason",
    )
    exclusions = section(
        reader,
        "mart_exclusions",
        "SELECT exclusion, reason, excluded_rows, excluded_users, excluded FROM mart_exclusions "
        "ORDER BY exclusion, reason",
    )
    return {"runs": runs, "versions": versions, "quality": quality, "exclusions": exclusions}


def _utc(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
