"""Where the dbt project is, and the profile and vars a run gives it (all derived from settings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cartpulse.settings import Settings

#: The dbt project in a source checkout or an editable install: <repo>/dbt next to <repo>/src.
SOURCE_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt"

PROFILE_NAME = "cartpulse"

#: The engines the dbt project builds on: dbt-duckdb into warehouse.duckdb, dbt-spark (session).
ENGINES = ("duckdb", "spark")


class WarehouseError(ValueError):
    """The warehouse cannot be built; the message says what to do."""


def project_dir(settings: Settings) -> Path:
    """The dbt project to run: warehouse.project_dir if set, else the one in the source tree."""
    chosen = settings.warehouse.project_dir or SOURCE_PROJECT_DIR
    if not (chosen / "dbt_project.yml").is_file():
        raise WarehouseError(
            f"no dbt project at {chosen} (dbt_project.yml missing); set warehouse.project_dir "
            "(env CARTPULSE_WAREHOUSE__PROJECT_DIR) to the dbt/ folder of a cartpulse checkout"
        )
    return chosen


def check_ready(settings: Settings) -> None:
    """Raise WarehouseError unless there is a dbt project and a lake with events to build from."""
    project_dir(settings)
    dbt_vars(settings)


def dbt_state_dir(settings: Settings, engine: str = "duckdb") -> Path:
    """dbt's target/, logs/ and profiles.yml live here, never in the project folder."""
    return settings.state_dir / ("dbt" if engine == "duckdb" else f"dbt-{engine}")


def spark_metastore_dir(settings: Settings) -> Path:
    """The Derby database of the Spark catalog that names the tables a Spark build made."""
    return settings.state_dir / "spark-metastore"


def spark_warehouse_dir(settings: Settings) -> Path:
    """Where a Spark build writes its tables: <schema>.db/<table>/ Parquet folders."""
    return settings.spark.warehouse_dir or settings.home / "spark-warehouse"


def _output(settings: Settings, engine: str) -> dict[str, Any]:
    """The profile target of one engine."""
    if engine == "duckdb":
        return {
            "type": "duckdb",
            "path": str(settings.warehouse_path.resolve()),
            "schema": "main",
            "threads": settings.warehouse.threads,
            # applied with SET on dbt's connections; DuckDB spills beyond it
            "settings": {
                "memory_limit": settings.warehouse.memory_limit,
                "preserve_insertion_order": False,
            },
        }
    if engine == "spark":
        # the session itself is started by cartpulse.spark.warehouse before dbt runs
        return {
            "type": "spark",
            "method": "session",
            "host": "NA",
            "schema": "main",
            "threads": settings.spark.dbt_threads,
        }
    raise WarehouseError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")


def write_profile(settings: Settings, engine: str = "duckdb") -> Path:
    """Write profiles.yml pointing dbt at the engine's warehouse; return its folder."""
    folder = dbt_state_dir(settings, engine)
    folder.mkdir(parents=True, exist_ok=True)
    target = "warehouse" if engine == "duckdb" else engine
    profile = {PROFILE_NAME: {"target": target, "outputs": {target: _output(settings, engine)}}}
    # JSON is YAML: no YAML writer needed
    (folder / "profiles.yml").write_text(json.dumps(profile, indent=2), encoding="utf-8")
    return folder


def has_parquet(folder: Path) -> bool:
    """Whether any Parquet file lies one partition folder below `folder`."""
    return folder.is_dir() and any(folder.glob("*/*.parquet"))


def dbt_vars(settings: Settings) -> dict[str, Any]:
    """The vars of dbt_project.yml, from settings and what the lake holds."""
    if not has_parquet(settings.events_dir):
        raise WarehouseError(
            f"the lake at {settings.events_dir} has no events yet; "
            "run `cartpulse ingest FILE` or `cartpulse replay FILE` first"
        )
    quarantine = settings.quarantine_dir.resolve()
    return {
        "lake_dir": str(settings.lake_dir.resolve()),
        "quarantine_glob": str(quarantine / "*/*.parquet") if has_parquet(quarantine) else "",
        "exclude_bots": settings.warehouse.exclude_bots,
        "session_timeout_s": settings.session.timeout_s,
    }


def dbt_args(
    settings: Settings,
    select: list[str] | None,
    full_refresh: bool,
    engine: str = "duckdb",
    extra_vars: dict[str, Any] | None = None,
    exclude: list[str] | None = None,
) -> list[str]:
    """The `dbt build` command line for this home and engine."""
    state = dbt_state_dir(settings, engine)
    args = [
        "build",
        "--project-dir",
        str(project_dir(settings)),
        "--profiles-dir",
        str(write_profile(settings, engine)),
        "--target-path",
        str(state / "target"),
        "--log-path",
        str(state / "logs"),
        "--vars",
        json.dumps(dbt_vars(settings) | (extra_vars or {})),
        # nothing on stdout (the CLI prints), no network calls, the log file still written
        "--log-level",
        "none",
        "--log-level-file",
        "info",
        "--no-send-anonymous-usage-stats",
        "--no-version-check",
    ]
    if select:
        args += ["--select", *select]
    if exclude:
        args += ["--exclude", *exclude]
    if full_refresh:
        args.append("--full-refresh")
    return args
