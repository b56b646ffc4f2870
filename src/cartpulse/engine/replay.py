"""`cartpulse replay`: feed files through the event log and the stream engine, as live traffic."""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from cartpulse.engine.feeder import Feeder, FeedReport
from cartpulse.engine.runner import StreamEngine
from cartpulse.engine.store import ServingStore
from cartpulse.log import EventLogError, LogLockedError, open_event_log
from cartpulse.retarget import outbox
from cartpulse.retarget.customers import import_customers
from cartpulse.retarget.decide import Retargeter
from cartpulse.settings import Settings

#: Python's thread switch interval during a full-speed replay (its default is 5 ms). The
#: feeder, the engine and its operator and commit threads all take the GIL between their
#: Arrow, numpy and DuckDB calls; handing it over four times less often made a 20.7 M-event
#: replay 4-5 % faster (22.7 against 23.9 s, mean of seven alternating pairs) with less CPU.
#: Only for the replay: `serve` keeps the default, for its HTTP latency.
REPLAY_SWITCH_INTERVAL_S = 0.02


class ReplayError(Exception):
    """The replay cannot run (home in use, unreadable input)."""


@dataclass
class ReplayReport:
    """What a replay did, as `cartpulse replay --json` prints it."""

    files: list[FeedReport] = field(default_factory=list)
    events: int = 0
    abandoned_carts: int = 0
    late_purchases: int = 0
    micro_batches: int = 0
    elapsed_s: float = 0.0
    peak_open_sessions: int = 0
    peak_state_bytes: int = 0
    outbox: dict[str, int] = field(default_factory=dict)
    customers: dict[str, object] | None = None

    def as_dict(self) -> dict[str, object]:
        """The JSON shape."""
        read = sum(f.read for f in self.files)
        return {
            "events": self.events,
            "abandoned_carts": self.abandoned_carts,
            "late_purchases": self.late_purchases,
            "micro_batches": self.micro_batches,
            "read": read,
            "clean": sum(f.clean for f in self.files),
            "quarantined": sum(f.quarantined for f in self.files),
            "duplicates": sum(f.duplicates for f in self.files),
            "skipped_files": [f.path for f in self.files if f.skipped],
            "peak_open_sessions": self.peak_open_sessions,
            "bytes_per_open_session": (
                round(self.peak_state_bytes / self.peak_open_sessions)
                if self.peak_open_sessions
                else 0
            ),
            "outbox": self.outbox,
            "customers": self.customers,
            "elapsed_s": round(self.elapsed_s, 3),
            "events_per_s": round(read / self.elapsed_s) if self.elapsed_s > 0 else 0,
        }


def replay_files(
    settings: Settings,
    paths: list[Path],
    speed: float | None = None,
    on_rows: Callable[[int], None] | None = None,
    customers_file: Path | None = None,
) -> ReplayReport:
    """Replay files end to end; on return every session is flushed and every event archived.

    With `customers_file`, the customer directory is imported first, so abandoned carts of
    consenting customers are queued as emails (`cartpulse outbox send` delivers them).
    """
    missing = [
        p for p in [*paths, *([customers_file] if customers_file else [])] if not p.is_file()
    ]
    if missing:
        raise ReplayError(f"no such file: {', '.join(map(str, missing))}")
    start = time.perf_counter()
    try:
        event_log = open_event_log(settings, writable=True)
    except LogLockedError as exc:
        raise ReplayError(f"{exc} (is `cartpulse serve` running on this home?)") from None
    try:
        store = ServingStore(settings.warehouse_path, checkpoint_mb=settings.engine.checkpoint_mb)
    except duckdb.IOException as exc:
        event_log.close()
        raise ReplayError(f"cannot open {settings.warehouse_path}: {exc}") from None
    report = ReplayReport()
    try:
        if customers_file is not None:
            imported = import_customers(store.con, customers_file, dt.datetime.now(dt.UTC))
            report.customers = imported.as_dict()
        retargeter = Retargeter(settings, store.con)
        engine = StreamEngine(settings, event_log, store, retargeter)
        feeder = Feeder(settings, event_log, store.con.cursor())
        try:
            with _switch_interval(REPLAY_SWITCH_INTERVAL_S if speed is None else None):
                _run(settings, paths, speed, feeder, engine, report, on_rows)
            report.outbox = outbox.counts(store.con)
        finally:
            feeder.close()
            engine.close()
    except EventLogError as exc:
        raise ReplayError(str(exc)) from None
    finally:
        store.close()
        event_log.close()
    report.elapsed_s = time.perf_counter() - start
    return report


@contextmanager
def _switch_interval(seconds: float | None) -> Iterator[None]:
    """Python's thread switch interval set to `seconds` (None: unchanged) until the block ends."""
    before = sys.getswitchinterval()
    if seconds is not None:
        sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _run(
    settings: Settings,
    paths: list[Path],
    speed: float | None,
    feeder: Feeder,
    engine: StreamEngine,
    report: ReplayReport,
    on_rows: Callable[[int], None] | None,
) -> None:
    done = threading.Event()
    stop = threading.Event()
    failure: list[BaseException] = []

    def feed_all() -> None:
        try:
            for path in paths:
                report.files.append(feeder.feed(path, speed, on_rows, stop))
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=feed_all, name="replay-feeder", daemon=True)
    worker.start()
    batch_rows = settings.ingest.batch_rows
    try:
        while True:
            finished = done.is_set()
            ahead = engine.log.end_offset() - engine.offset
            if speed is None and not finished and ahead < batch_rows:
                # At full speed the engine takes whole micro-batches of log offsets, so its
                # batches (and what depends on them, such as the bot rules' view of an hour) do
                # not depend on how far ahead the feeder happens to be.
                engine.log.wait_for(engine.offset + batch_rows - 1, 0.05)
                continue
            step = engine.step(batch_rows, overlap_commit=speed is None)
            report.events += step.events
            report.abandoned_carts += step.abandoned_carts
            report.late_purchases += step.late_purchases
            report.micro_batches += 1 if step.events else 0
            sessions = engine.state.sessions
            if sessions.open_sessions > report.peak_open_sessions:
                report.peak_open_sessions = sessions.open_sessions
                report.peak_state_bytes = sessions.nbytes
            if failure:
                raise failure[0]
            if step.events == 0:
                if finished and engine.offset >= engine.log.end_offset():
                    break
                engine.log.wait_for(engine.offset, 0.05)
        report.abandoned_carts += engine.flush()
    finally:
        stop.set()
        worker.join()
