"""The micro-batch engine: log → operators → serving store, state and offsets in one commit."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute

from cartpulse.alerts.outbox import suppress_new_bots
from cartpulse.engine.archive import stage_archive
from cartpulse.engine.store import BatchOutputs, Checkpoint, EngineState, ServingStore
from cartpulse.log.base import EventLog
from cartpulse.operators.bots import BotOperator
from cartpulse.operators.dq import DQ_SCHEMA, event_dq_counts
from cartpulse.operators.order import encode_shared
from cartpulse.operators.sales import SalesOperator
from cartpulse.operators.sessions import SessionOperator
from cartpulse.retarget.decide import Retargeter
from cartpulse.settings import Settings
from cartpulse.sinks.staging import apply_moves

log = logging.getLogger(__name__)

_FLUSH_ALL_US = 2**62
_T = TypeVar("_T")


@dataclass
class StepReport:
    """What one micro-batch did."""

    events: int
    abandoned_carts: int
    late_purchases: int
    elapsed_s: float


class StreamEngine:
    """Runs the stream operators over the event log, one micro-batch at a time.

    Each micro-batch reads events from the log at the committed offset, folds them into the
    session and sales state, and commits outputs, state and the new offset in one DuckDB
    transaction. The archive writes the log's events to the lake in large files; its files
    are staged, listed in the same commit, and renamed into place after it, so a crash at any
    point neither loses nor duplicates a row.
    """

    def __init__(
        self,
        settings: Settings,
        event_log: EventLog,
        store: ServingStore,
        retargeter: Retargeter | None = None,
    ) -> None:
        self.settings = settings
        self.log = event_log
        self.store = store
        self.retargeter = retargeter
        self.sessions = SessionOperator(settings.session.timeout_s)
        self.sales = SalesOperator()
        self.bots = BotOperator(settings.bots) if settings.bots.enabled else None
        self.lateness_us = settings.session.allowed_lateness_s * 1_000_000
        self.staging_root = settings.state_dir / "engine-staging"
        self.state: EngineState = store.load()
        self._last_archive = time.monotonic()
        self._clock_anchor: tuple[int, float] | None = None
        # Bot rules and archive encoding run beside the session operator: each works on its own
        # DuckDB connection or file, and DuckDB and Arrow release the GIL while they compute.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="engine-op")
        # At most one commit in flight (`step(..., overlap_commit=True)`), on its own thread.
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-commit")
        self._committing: Future[list[tuple[str, str]]] | None = None
        self._parallel = True
        self._recover()

    def close(self) -> None:
        """Finish a commit in flight; release operator resources (the store and log are closed
        by their owner)."""
        try:
            self.wait_committed()
        finally:
            self._committer.shutdown(wait=True)
            self._pool.shutdown(wait=True)
        self.sales.close()

    def limit_threads(self, threads: int) -> None:
        """Cap the DuckDB threads of the engine's connections (under `serve`, to share cores).

        With one thread, the operators also run one after the other instead of side by side.
        """
        self._parallel = threads > 1
        for con in (self.store.con, self.sales.connection):
            con.execute(f"SET threads = {int(threads)}")

    @property
    def offset(self) -> int:
        """The next log offset to process."""
        return self.state.checkpoint.log_offset

    def watermark_us(self) -> int | None:
        """Max event time seen minus the allowed lateness (µs), or None before any event."""
        top = self.state.checkpoint.max_event_us
        return None if top is None else top - self.lateness_us

    def step(
        self, max_rows: int, now_us: int | None = None, overlap_commit: bool = False
    ) -> StepReport:
        """Process up to `max_rows` events; `now_us` (live mode) also expires idle sessions.

        With `overlap_commit` (a replay at full speed) the batch's commit runs in the
        background while the next batch is computed: its outputs are in the store only after
        the next `step`, `flush`, `drain` or `wait_committed`. Crash safety is the same: a
        restart resumes from the last commit that finished.
        """
        start = time.perf_counter()
        cp = self.state.checkpoint
        piece = self.log.read(cp.log_offset, max_rows)
        if piece.num_rows == 0 and (now_us is None or not self._due(now_us)):
            self.wait_committed()
            return StepReport(0, 0, 0, 0.0)
        events = piece.table.append_column("_offset", piece.offsets())
        before = self.watermark_us()
        if piece.num_rows:
            top = int(np.max(events.column("event_time").cast(pa.int64()).to_numpy()))
            cp.max_event_us = top if cp.max_event_us is None else max(cp.max_event_us, top)
        archive_due = now_us is not None and self._archive_due()
        archived = self._start_archive(piece.end, force=archive_due)
        outputs, late = self._run_operators(events, before, now_us)
        # the retargeting decisions see every earlier batch's messages (frequency cap)
        self.wait_committed()
        outputs.messages = suppress_new_bots(
            self._decide(outputs.abandoned_carts), outputs.bot_alerts
        )
        cp.log_offset = piece.end
        if archived is not None:
            self._finish_archive(archived.result(), piece.end)
        snapshot = dataclasses.replace(
            self.state,
            checkpoint=dataclasses.replace(cp, pending_moves=list(cp.pending_moves)),
        )
        self._committing = self._committer.submit(self._commit, snapshot, outputs)
        if not overlap_commit:
            self.wait_committed()
        return StepReport(
            piece.num_rows, outputs.abandoned_carts.num_rows, late, time.perf_counter() - start
        )

    def wait_committed(self) -> None:
        """Block until the commit in flight (if any) is durable and its files are in the lake."""
        if self._committing is None:
            return
        done, self._committing = self._committing, None
        applied = done.result()
        live = self.state.checkpoint
        live.pending_moves = [m for m in live.pending_moves if m not in applied]

    def _commit(self, state: EngineState, outputs: BatchOutputs) -> list[tuple[str, str]]:
        """Commit a batch's state and outputs; move its archive files; return the moves."""
        self.store.commit(state, outputs)
        moves = list(state.checkpoint.pending_moves)
        self._apply_moves(state.checkpoint)
        return moves

    def run_live(
        self,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
        on_step: Callable[[StepReport], None] | None = None,
    ) -> None:
        """Follow the log until `stop` is set: new events, and idle sessions on the clock.

        This is how `serve` runs the engine: a quiet shop still gets its sessions expired
        (and its carts emailed) on time, because the processing clock advances expiry too.
        """
        tick_s = self.settings.engine.tick_ms / 1000
        batch_rows = self.settings.ingest.batch_rows
        while not stop.is_set():
            if self.log.end_offset() <= self.offset:
                self.log.wait_for(self.offset, tick_s)
            started = time.monotonic()
            report = self.step(batch_rows, self._event_clock_us(clock()))
            if self.log.end_offset() - self.offset < batch_rows:
                # At most one micro-batch per tick unless far behind: each costs a commit, and
                # many tiny ones would take the CPU from the collector under steady traffic.
                stop.wait(max(0.0, tick_s - (time.monotonic() - started)))
            if on_step is not None and (report.events or report.abandoned_carts):
                on_step(report)

    def _event_clock_us(self, wall_s: float) -> int | None:
        """The processing clock in event time: the newest event time plus the wall time since.

        Live traffic carries the current time, so this is "now". Older traffic sent live (a
        file replayed through the collector) keeps its own timeline: its sessions expire when
        its events say so, or when it goes quiet for longer than the session timeout — never
        merely because its timestamps are old.
        """
        top = self.state.checkpoint.max_event_us
        if top is None:
            return None  # no event yet: nothing to expire, no timeline to follow
        if self._clock_anchor is None or self._clock_anchor[0] != top:
            self._clock_anchor = (top, wall_s)
        event_us, seen_at = self._clock_anchor
        return event_us + int((wall_s - seen_at) * 1_000_000)

    def drain(self, now_us: int | None = None) -> int:
        """Process every event already in the log and archive it: a clean stop (`serve`).

        Open sessions stay open (they are state, committed): a restart carries on with them.
        """
        done = 0
        while self.offset < self.log.end_offset():
            done += self.step(self.settings.ingest.batch_rows, now_us).events
        self.wait_committed()
        self._maybe_archive(force=True)
        self.store.commit(self.state, None)
        self._apply_moves(self.state.checkpoint)
        return done

    def _due(self, now_us: int) -> bool:
        """Is there anything for the clock to do: a session to expire or events to archive?"""
        sessions = self.state.sessions.sessions
        if sessions.num_rows:
            oldest_end = pa.compute.min(sessions.column("session_end")).cast(pa.int64()).as_py()
            if oldest_end is not None and oldest_end + self.sessions.timeout_us <= now_us:
                return True
        return self._archive_due()

    def _archive_due(self) -> bool:
        cp = self.state.checkpoint
        if cp.log_offset <= cp.archived_offset:
            return False
        interval = self.settings.engine.archive_interval_s
        return time.monotonic() - self._last_archive >= interval

    def flush(self) -> int:
        """End of a finite stream: expire every open session and archive what is left."""
        self.wait_committed()
        state, carts = self.sessions.flush(self.state.sessions)
        self.state.sessions = state
        self.state.sales_windows = self.sales.close_windows(self.state.sales_windows, _FLUSH_ALL_US)
        outputs = BatchOutputs(
            carts,
            self.state.sales_windows.slice(0, 0),
            DQ_SCHEMA.empty_table(),
            self._decide(carts),
        )
        self._maybe_archive(force=True)
        self.store.commit(self.state, outputs)
        self._apply_moves(self.state.checkpoint)
        return int(carts.num_rows)

    def _decide(self, carts: pa.Table) -> pa.Table | None:
        """Retargeting decisions for new abandoned carts, committed with them."""
        if self.retargeter is None or carts.num_rows == 0:
            return None
        return self.retargeter.decide(carts, dt.datetime.now(dt.UTC))

    def _run_operators(
        self, events: pa.Table, before_us: int | None, now_us: int | None
    ) -> tuple[BatchOutputs, int]:
        watermark = self.watermark_us()
        expire = watermark if now_us is None else max(watermark or now_us, now_us)
        # the session and bot operators both group by these: encode them once
        events = encode_shared(events, ("user_session", "event_type"))
        bots = None
        if self.bots is not None:
            bots = self._spawn(self.bots.advance, self.state.bots, events, expire)
        sessions, carts = self.sessions.advance(self.state.sessions, events, expire)
        windows, update = self.sales.advance(self.state.sales_windows, events, before_us)
        self.state.sessions = sessions
        self.state.sales_windows = self.sales.close_windows(windows, watermark)
        dq = event_dq_counts(events, update.late_purchases_by_minute)
        alerts = None
        if bots is not None:
            self.state.bots, alerts = bots.result()
        return BatchOutputs(carts, update.changed, dq, None, alerts), update.late_purchases

    def _maybe_archive(self, force: bool) -> None:
        staged = self._start_archive(self.state.checkpoint.log_offset, force)
        if staged is not None:
            self._finish_archive(staged.result(), self.state.checkpoint.log_offset)

    def _start_archive(self, end: int, force: bool) -> Future[list[tuple[Path, Path]]] | None:
        """Stage events up to `end` in the background when a file's worth (or `force`) is due."""
        cp = self.state.checkpoint
        pending = end - cp.archived_offset
        if pending <= 0 or (not force and pending < self.settings.ingest.row_group_rows):
            return None
        staging = self.staging_root / uuid.uuid4().hex[:12]
        cfg = self.settings.ingest
        return self._spawn(
            stage_archive,
            self.log,
            cp.archived_offset,
            end,
            staging,
            cfg.row_group_rows,
            cfg.compression,
        )

    def _spawn(self, fn: Callable[..., _T], *args: Any) -> Future[_T]:
        """Run `fn` on the operator pool, or at once when the engine is limited to one thread."""
        if self._parallel:
            return self._pool.submit(fn, *args)
        done: Future[_T] = Future()
        try:
            done.set_result(fn(*args))
        except BaseException as exc:  # raised again by .result(), in the caller's thread
            done.set_exception(exc)
        return done

    def _finish_archive(self, moves: list[tuple[Path, Path]], end: int) -> None:
        """Record staged files as moves for the next commit."""
        cp = self.state.checkpoint
        cp.pending_moves = [(str(s), str(self.settings.home / rel)) for s, rel in moves]
        cp.archived_offset = end
        self._last_archive = time.monotonic()

    def _apply_moves(self, cp: Checkpoint) -> None:
        """Rename committed archive files into the lake (idempotent; also run at recovery)."""
        if not cp.pending_moves:
            return
        moves = [(Path(s), Path(d)) for s, d in cp.pending_moves]
        apply_moves(moves, fsync=self.settings.fsync != "never")
        cp.pending_moves = []
        # Everything below the archived offset has been read by both the engine and the archive.
        self.log.release_before(min(cp.archived_offset, cp.log_offset))
        # only these moves' staging folders: the next batch may be staging its own already
        for source, _ in moves:
            if self.staging_root in source.parents:
                folder = self.staging_root / source.relative_to(self.staging_root).parts[0]
                shutil.rmtree(folder, ignore_errors=True)

    def _recover(self) -> None:
        unfinished = [s for s, _ in self.state.checkpoint.pending_moves if Path(s).exists()]
        if unfinished:
            log.warning("archive_recovered files=%d", len(unfinished))
        self._apply_moves(self.state.checkpoint)
        if self.staging_root.is_dir():  # staged before a crash, never committed
            for leftover in self.staging_root.iterdir():
                shutil.rmtree(leftover, ignore_errors=True)
