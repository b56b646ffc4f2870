"""The ASGI application: unsubscribe pages always; collector and ops endpoints under `serve`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import duckdb
from fastapi import FastAPI

from cartpulse import __version__, duck
from cartpulse.retarget.decide import home_secret
from cartpulse.settings import Settings
from cartpulse.web.unsubscribe import ConnectionFactory, unsubscribe_router

if TYPE_CHECKING:
    from cartpulse.serve.pipeline import Pipeline

_DESCRIPTION = """
Send a shop's clickstream to `POST /v1/events` (JSON array or NDJSON, gzip accepted) with
`Authorization: Bearer WRITE_KEY`. A 202 means the events are durably in the event log.
"""


def create_app(
    settings: Settings,
    connect: ConnectionFactory | None = None,
    pipeline: Pipeline | None = None,
    admin_token: str | None = None,
) -> FastAPI:
    """The app for one home; with a running `pipeline` it also collects events and reports."""
    app = FastAPI(title="cartpulse", version=__version__, description=_DESCRIPTION)
    if pipeline is not None:
        from cartpulse.web.collector import collector_router
        from cartpulse.web.ops import ops_router

        connect = connect or _cursors(pipeline)
        app.include_router(
            collector_router(pipeline.intake, settings.collector, pipeline.metrics, pipeline.lag)
        )
        app.include_router(ops_router(pipeline, admin_token or ""))
    app.include_router(unsubscribe_router(home_secret(settings), connect or _opener(settings)))

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    return app


def _opener(settings: Settings) -> ConnectionFactory:
    return _factory(lambda: duck.connect(settings.warehouse_path))


def _cursors(pipeline: Pipeline) -> ConnectionFactory:
    """Cursors of the warehouse `serve` already holds open (another open would fail)."""
    return _factory(pipeline.connection)


def _factory(open_con: Callable[[], duckdb.DuckDBPyConnection]) -> ConnectionFactory:
    @contextmanager
    def connect() -> Iterator[duckdb.DuckDBPyConnection]:
        con = open_con()
        try:
            yield con
        finally:
            con.close()

    return connect
