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
    """The app for one home; with a running `pipeline` also the collector, ops and dashboard.

    With a pipeline every route needs a credential (web/access.py lists the exceptions).
    """
    app = FastAPI(title="cartpulse", version=__version__, description=_DESCRIPTION, redoc_url=None)
    if pipeline is not None:
        from cartpulse.web.access import AccessControl
        from cartpulse.web.auth import dashboard_login
        from cartpulse.web.collector import collector_router
        from cartpulse.web.dashboard import dashboard_router
        from cartpulse.web.login import login_router
        from cartpulse.web.ops import ops_router

        if not admin_token:
            raise ValueError("a running pipeline needs the home's admin token")
        login = dashboard_login(settings)
        connect = connect or _cursors(pipeline)
        app.include_router(
            collector_router(pipeline.intake, settings.collector, pipeline.metrics, pipeline.lag)
        )
        app.include_router(ops_router(pipeline, admin_token))
        app.include_router(login_router(login))
        app.include_router(dashboard_router(pipeline, login))
        app.add_middleware(AccessControl, login=login, admin_token=admin_token)
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
