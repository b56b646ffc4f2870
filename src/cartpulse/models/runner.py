"""The CLI's way to run the models: compute in memory, then publish to the warehouse briefly.

DuckDB lets one process write a database file at a time, and `cartpulse query` opens it too.
So the models read the lake and build their marts in an in-memory database, and the warehouse
is attached only to copy each finished mart and version row into it, in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import duckdb

from cartpulse import duck
from cartpulse.models.jobs import MART_OF, SCORERS, TRAINERS
from cartpulse.models.lake import ModelDataError, attach_lake, run_in_transaction
from cartpulse.models.registry import TABLE_MODEL_VERSIONS, VERSIONS_DDL, latest_version
from cartpulse.settings import Settings


def _sql_path(path: object) -> str:
    return str(path).replace("'", "''")


def open_workspace(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached, spilling to HOME/state/models-tmp."""
    con = duck.connect()
    spill = settings.state_dir / "models-tmp"
    spill.mkdir(parents=True, exist_ok=True)
    con.execute(f"SET temp_directory = '{_sql_path(spill)}'")
    con.execute(VERSIONS_DDL)
    attach_lake(con, settings.events_dir)
    return con


def publish(con: duckdb.DuckDBPyConnection, settings: Settings, mart: str | None) -> None:
    """Copy `mart` (if built) and the new version rows into HOME/warehouse.duckdb atomically."""
    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        con.execute(f"ATTACH '{_sql_path(settings.warehouse_path)}' AS warehouse")
    except duckdb.Error as exc:
        raise ModelDataError(
            f"cannot open {settings.warehouse_path} for writing ({str(exc).splitlines()[0]}); "
            "is another cartpulse process writing to it?"
        ) from None
    statements = [
        VERSIONS_DDL,
        f"INSERT OR REPLACE INTO {TABLE_MODEL_VERSIONS} "
        f"SELECT * FROM memory.main.{TABLE_MODEL_VERSIONS}",
    ]
    if mart is not None:
        statements.append(f"CREATE OR REPLACE TABLE {mart} AS SELECT * FROM memory.main.{mart}")
    try:
        con.execute("USE warehouse")
        run_in_transaction(con, statements)
    finally:
        con.execute("USE memory")
        con.execute("DETACH warehouse")
    con.execute(f"DELETE FROM {TABLE_MODEL_VERSIONS}")


def run_models(
    settings: Settings,
    names: list[str],
    train: bool,
    score: bool,
    on_done: Callable[[str], None] = lambda _name: None,
) -> list[dict[str, Any]]:
    """Train and/or score each named model; one report per model."""
    con = open_workspace(settings)
    reports = []
    try:
        for name in names:
            started = time.perf_counter()
            report: dict[str, Any] = {"model": name}
            if train:
                version = TRAINERS[name](con, settings)
                report |= {
                    "version": version.version,
                    "path": str(version.path),
                    "metrics": version.metrics,
                    "train_s": round(time.perf_counter() - started, 3),
                }
            if score:
                scored = time.perf_counter()
                report |= {
                    "mart": MART_OF[name],
                    "mart_rows": SCORERS[name](con, settings),
                    "score_s": round(time.perf_counter() - scored, 3),
                }
                if not train:
                    report["version"] = latest_version(settings.models_dir, name).version
            publish(con, settings, MART_OF[name] if score else None)
            reports.append(report)
            on_done(name)
    finally:
        con.close()
    return reports
