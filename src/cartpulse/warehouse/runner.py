"""Run `dbt build` over the lake in-process (dbtRunner), with progress and a recorded outcome."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cartpulse.settings import Settings
from cartpulse.warehouse import runs
from cartpulse.warehouse.project import WarehouseError, dbt_args
from cartpulse.warehouse.runs import ModelsRun

__all__ = ["ModelsRun", "NodeProgress", "WarehouseError", "run_models"]

log = logging.getLogger(__name__)

# dbt keeps global state (flags, adapters, event manager): one build at a time per process.
_ONE_BUILD = threading.Lock()

_FAILED = {"error", "fail", "runtime error"}


@dataclass(frozen=True)
class NodeProgress:
    """A model or test finished: which one, how it went, and how far the build is."""

    name: str
    resource_type: str
    status: str
    done: int
    total: int


OnProgress = Callable[[NodeProgress], None]


class _Progress:
    """Turns dbt's structured events into NodeProgress calls."""

    def __init__(self, on_progress: OnProgress | None) -> None:
        self.on_progress = on_progress
        self.total = 0
        self.done = 0

    def __call__(self, event: Any) -> None:
        name = event.info.name
        if name == "ConcurrencyLine":
            self.total = int(event.data.node_count)
        elif name == "NodeFinished" and self.on_progress is not None:
            self.done += 1
            info = event.data.node_info
            self.on_progress(
                NodeProgress(
                    info.node_name, info.resource_type, info.node_status, self.done, self.total
                )
            )


def run_models(
    settings: Settings,
    select: Sequence[str] | None = None,
    on_progress: OnProgress | None = None,
    full_refresh: bool = False,
    engine: str = "duckdb",
    exclude: Sequence[str] | None = None,
) -> ModelsRun:
    """Build the selected models and run their tests (`dbt build`) on the engine.

    DuckDB builds are recorded in the table models_runs; Spark builds write only to Spark.
    """
    run = ModelsRun(
        run_id=uuid.uuid4().hex,
        started_at=datetime.now(UTC),
        selector=" ".join([*(select or ()), *(f"--exclude {e}" for e in exclude or ())]) or None,
    )
    started = time.perf_counter()
    record = engine == "duckdb"
    with _ONE_BUILD:
        try:
            extra: dict[str, Any] = {}
            if engine == "spark":
                from cartpulse.spark.warehouse import spark_build_vars

                extra = spark_build_vars(settings)
            args = dbt_args(
                settings, list(select or ()), full_refresh, engine, extra, list(exclude or ())
            )
            if engine == "spark":
                return _run_on_spark(settings, run, started, args, on_progress)
        except WarehouseError as exc:
            return _finish(settings, run, started, "error", str(exc), record)
        runs.record(settings.warehouse_path, run)
        return _invoke(settings, run, started, args, on_progress, record)


def _run_on_spark(
    settings: Settings,
    run: ModelsRun,
    started: float,
    args: list[str],
    on_progress: OnProgress | None,
) -> ModelsRun:
    """A build in a SparkSession that cartpulse starts and stops around dbt."""
    from cartpulse.spark.warehouse import start_build_session

    session = start_build_session(settings)
    try:
        return _invoke(settings, run, started, args, on_progress, record=False)
    finally:
        session.stop()


def _invoke(
    settings: Settings,
    run: ModelsRun,
    started: float,
    args: list[str],
    on_progress: OnProgress | None,
    record: bool,
) -> ModelsRun:
    """Run dbt in this process and count what it did."""
    from dbt.cli.main import dbtRunner

    log.info("models_run_started run_id=%s select=%s", run.run_id, run.selector)
    result = dbtRunner(callbacks=[_Progress(on_progress)]).invoke(args)
    if result.exception is not None:
        return _finish(settings, run, started, "error", f"dbt failed: {result.exception}", record)
    _count(run, result.result)
    status = "success" if result.success else "failed"
    return _finish(settings, run, started, status, "; ".join(run.failures or []) or None, record)


def _count(run: ModelsRun, execution: Any) -> None:
    failures = []
    for node_result in getattr(execution, "results", None) or []:
        status = str(node_result.status)
        kind = str(node_result.node.resource_type)
        is_test = kind == "test"
        if status in _FAILED:
            failures.append(f"{node_result.node.name}: {_one_line(node_result.message)}")
            run.tests_failed += is_test
            run.models_failed += not is_test
        elif status == "skipped":
            run.skipped += 1
        elif is_test:
            run.tests_passed += 1
        else:
            run.models_ok += 1
    run.failures = failures


def _one_line(message: object) -> str:
    text = " ".join(str(message or "").split())
    return text[:300]


def _finish(
    settings: Settings,
    run: ModelsRun,
    started: float,
    status: str,
    message: str | None,
    record: bool = True,
) -> ModelsRun:
    run.status = status
    run.message = message
    run.finished_at = datetime.now(UTC)
    run.elapsed_s = round(time.perf_counter() - started, 3)
    if record and settings.warehouse_path.parent.is_dir():
        runs.record(settings.warehouse_path, run)
    log.info(
        "models_run_finished run_id=%s status=%s elapsed_s=%.3f models_ok=%d models_failed=%d "
        "tests_passed=%d tests_failed=%d",
        run.run_id, status, run.elapsed_s, run.models_ok, run.models_failed,
        run.tests_passed, run.tests_failed,
    )  # fmt: skip
    return run
