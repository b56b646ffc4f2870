"""Keep the marts fresh: rebuild them every `warehouse.interval_s` from a background thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from cartpulse.settings import Settings
from cartpulse.warehouse.runner import run_models
from cartpulse.warehouse.runs import ModelsRun

log = logging.getLogger(__name__)


def run_periodically(
    settings: Settings,
    stop: threading.Event,
    on_run: Callable[[ModelsRun], None] | None = None,
    interval_s: float | None = None,
    first_delay_s: float = 0.0,
) -> None:
    """Run the models after `first_delay_s`, then every interval until `stop` is set."""
    wait_s = settings.warehouse.interval_s if interval_s is None else interval_s
    if stop.wait(first_delay_s):
        return
    while not stop.is_set():
        run = run_models(settings)
        if not run.ok:
            # recorded in models_runs too; the loop goes on so the next run can recover
            log.warning("models_run_failed run_id=%s status=%s message=%s",
                        run.run_id, run.status, run.message)  # fmt: skip
        if on_run is not None:
            on_run(run)
        stop.wait(wait_s)


def start_schedule(
    settings: Settings,
    on_run: Callable[[ModelsRun], None] | None = None,
    first_delay_s: float = 0.0,
) -> tuple[threading.Thread, threading.Event]:
    """Start `run_periodically` in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_periodically,
        args=(settings, stop, on_run, None, first_delay_s),
        name="models-schedule",
        daemon=True,
    )
    thread.start()
    return thread, stop
