"""`cartpulse serving sync`: publish a home's serving tables and marts once, from the CLI."""

from __future__ import annotations

from typing import Any

import duckdb

from cartpulse import duck
from cartpulse.settings import Settings
from cartpulse.sinks.postgres.connect import PostgresError
from cartpulse.sinks.postgres.marts import publish_marts
from cartpulse.sinks.postgres.publisher import ServingPublisher


def require_dsn(settings: Settings) -> str:
    """The configured DSN, or an error naming the setting to set."""
    if settings.serving.postgres_dsn is None:
        raise PostgresError(
            "no PostgreSQL serving store is configured: set serving.postgres_dsn "
            "(CARTPULSE_SERVING__POSTGRES_DSN), e.g. postgresql://user@127.0.0.1:5432/shop"
        )
    return settings.serving.postgres_dsn.get_secret_value()


def sync_home(settings: Settings, tables: bool = True, marts: bool = True) -> dict[str, Any]:
    """Publish the serving tables (changes only) and the changed marts; what was written."""
    dsn = require_dsn(settings)
    if not settings.warehouse_path.exists():
        raise PostgresError(f"no warehouse at {settings.warehouse_path}: nothing to publish yet")
    try:
        con = duck.connect(settings.warehouse_path, read_only=True)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise PostgresError(
            f"{settings.warehouse_path} is in use by `cartpulse serve`, which publishes itself: "
            "serving tables every serving.publish_interval_s, marts after each models run"
        ) from None
    result: dict[str, Any] = {}
    try:
        if tables:
            publisher = ServingPublisher(dsn)
            try:
                report = publisher.publish(con)
            finally:
                publisher.close()
            result["tables"] = {
                "upserted": report.upserted,
                "deleted": report.deleted,
                "elapsed_s": round(report.elapsed_s, 3),
            }
        if marts:
            done = publish_marts(con, dsn)
            result["marts"] = {"published": done.published, "unchanged": done.unchanged}
    finally:
        con.close()
    return result
