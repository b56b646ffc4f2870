"""Operations endpoints of `serve`: readiness, Prometheus metrics, local queries."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Header, HTTPException
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cartpulse.query import QueryError, check_read_only, execute, live_views
from cartpulse.serve.pipeline import Pipeline


class QueryIn(BaseModel):
    """One read-only SQL statement."""

    sql: str = Field(max_length=100_000, examples=["SELECT count(*) FROM abandoned_carts"])


class ModelsIn(BaseModel):
    """A dbt selection (none: every model and test)."""

    select: list[str] | None = None


class QueryOut(BaseModel):
    """Column names and rows."""

    columns: list[str]
    rows: list[list[Any]]


def ops_router(pipeline: Pipeline, token: str) -> APIRouter:
    """`/readyz`, `/metrics` and `POST /v1/query` for one running pipeline."""
    router = APIRouter(tags=["ops"])

    @router.get("/readyz", responses={503: {"description": "not ready; `detail` says why"}})
    def readyz() -> JSONResponse:
        """Readiness: the engine and sender run and the engine keeps up with the log."""
        ok, why = pipeline.ready()
        lag = pipeline.lag()
        if ok and lag > pipeline.settings.collector.max_lag_events:
            ok, why = False, f"the stream engine is {lag:,} events behind"
        body = {"status": "ready" if ok else "not ready", "detail": why, "log_lag": lag}
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/metrics", response_class=Response)
    def metrics() -> Response:
        """Prometheus text format: events, quarantine reasons, latencies, lag, emails."""
        return Response(generate_latest(pipeline.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def admin(authorization: str | None) -> None:
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "this endpoint needs the home's admin token")

    @router.post("/v1/query", response_model=QueryOut, include_in_schema=False)
    async def query(body: QueryIn, authorization: str | None = Header(None)) -> JSONResponse:
        """Run a read-only query for `cartpulse query` on this machine (admin token)."""
        admin(authorization)
        try:
            check_read_only(body.sql)
            result = await run_in_threadpool(_run, pipeline, body.sql)
        except QueryError as exc:
            raise HTTPException(400, str(exc)) from None
        return JSONResponse(jsonable_encoder(result))

    @router.post("/v1/models/run", include_in_schema=False)
    async def models_run(body: ModelsIn, authorization: str | None = Header(None)) -> JSONResponse:
        """Build the marts in this process for `cartpulse models run` (admin token)."""
        admin(authorization)
        run = await run_in_threadpool(pipeline.run_models, body.select)
        return JSONResponse(jsonable_encoder(run.as_dict()))

    return router


def _run(pipeline: Pipeline, sql: str) -> dict[str, Any]:
    con = pipeline.connection()
    try:
        live_views(con, pipeline.settings)
        result = execute(con, sql)
    finally:
        con.close()
    return {"columns": result.columns, "rows": [list(r) for r in result.rows]}
