"""The ASGI application (`cartpulse serve` will mount the collector and dashboard here too)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
from fastapi import FastAPI

from cartpulse import __version__, duck
from cartpulse.retarget.decide import home_secret
from cartpulse.settings import Settings
from cartpulse.web.unsubscribe import ConnectionFactory, unsubscribe_router


def create_app(settings: Settings, connect: ConnectionFactory | None = None) -> FastAPI:
    """The app for one home; `connect` gives a warehouse connection per request."""
    app = FastAPI(title="cartpulse", version=__version__)
    app.include_router(unsubscribe_router(home_secret(settings), connect or _opener(settings)))

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    return app


def _opener(settings: Settings) -> ConnectionFactory:
    @contextmanager
    def connect() -> Iterator[duckdb.DuckDBPyConnection]:
        con = duck.connect(settings.warehouse_path)
        try:
            yield con
        finally:
            con.close()

    return connect
