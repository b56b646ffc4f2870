"""The models_runs table: one row per `dbt build`, so the dashboard and /metrics see failures."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cartpulse import duck

TABLE_MODELS_RUNS = "models_runs"

_DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE_MODELS_RUNS} (
  run_id VARCHAR PRIMARY KEY,
  started_at TIMESTAMPTZ NOT NULL,
  finished_at TIMESTAMPTZ,
  status VARCHAR NOT NULL,
  selector VARCHAR,
  models_ok BIGINT,
  models_failed BIGINT,
  tests_passed BIGINT,
  tests_failed BIGINT,
  skipped BIGINT,
  elapsed_s DOUBLE,
  message VARCHAR
)
"""


@dataclass
class ModelsRun:
    """The outcome of one `dbt build`: status is running, success, failed or error."""

    run_id: str
    started_at: datetime
    status: str = "running"
    selector: str | None = None
    finished_at: datetime | None = None
    models_ok: int = 0
    models_failed: int = 0
    tests_passed: int = 0
    tests_failed: int = 0
    skipped: int = 0
    elapsed_s: float = 0.0
    message: str | None = None
    failures: list[str] | None = None
    """Nodes that errored or failed, with dbt's message (not stored in the table)."""

    @property
    def ok(self) -> bool:
        """Whether every model built and every test passed."""
        return self.status == "success"

    def as_dict(self) -> dict[str, Any]:
        """The run as plain values (for --json)."""
        return asdict(self)


def record(warehouse: Path, run: ModelsRun) -> None:
    """Insert or update the run's row."""
    row = {k: v for k, v in run.as_dict().items() if k != "failures"}
    con = duck.connect(warehouse)
    try:
        con.execute(_DDL)
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        con.execute(
            f"INSERT OR REPLACE INTO {TABLE_MODELS_RUNS} ({columns}) VALUES ({marks})",
            list(row.values()),
        )
    finally:
        con.close()


def latest_runs(warehouse: Path, limit: int = 10) -> list[dict[str, Any]]:
    """The most recent runs, newest first (empty before the first run)."""
    if not warehouse.is_file():
        return []
    con = duck.connect(warehouse)
    try:
        # read only: DDL here could conflict with a run recording itself on another connection
        exists = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
            [TABLE_MODELS_RUNS],
        ).fetchall()[0][0]
        if not exists:
            return []
        table = con.sql(
            f"SELECT * FROM {TABLE_MODELS_RUNS} ORDER BY started_at DESC LIMIT {int(limit)}"
        ).to_arrow_table()
    finally:
        con.close()
    return [dict(r) for r in table.to_pylist()]
