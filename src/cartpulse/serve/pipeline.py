"""Everything `serve` runs besides HTTP: the log, the engine, the email sender, housekeeping.

One process owns the home: the event log's single writer, and the warehouse's single
read-write DuckDB connection (other threads take cursors of it). Threads:

- engine: follows the log, expires sessions on the clock, commits state + outputs + offset;
- sender: delivers queued retargeting emails;
- housekeeping: saves the collector's dedupe state and applies log retention;
- models: rebuilds the dbt marts every `warehouse.interval_s` (first run a few minutes in);
- publisher (with serving.postgres_dsn): copies changed serving-table rows to PostgreSQL every
  `serving.publish_interval_s`, and the marts after each models run.

Stopping (`shutdown`) is ordered: the HTTP server has already stopped accepting, so the log
is complete; the engine then drains it, archives it to the lake and commits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import duckdb

from cartpulse.alerts.webhook import run_webhook
from cartpulse.collector.intake import Intake
from cartpulse.engine.runner import StepReport, StreamEngine
from cartpulse.engine.store import ServingStore
from cartpulse.log import EventLog, open_event_log
from cartpulse.retarget.decide import Retargeter
from cartpulse.retarget.smtp import SendReport, run_sender
from cartpulse.serve.commits import CommitSignal
from cartpulse.settings import Settings
from cartpulse.sinks.postgres import ServingPublisher, publish_marts
from cartpulse.sinks.serving_read import (
    ServingReader,
    open_dashboard_reader,
    open_serving_reader,
)
from cartpulse.warehouse.runner import ModelsRun, run_models
from cartpulse.warehouse.schedule import start_schedule
from cartpulse.web.metrics import LiveStatus, Metrics

log = logging.getLogger(__name__)

_RETENTION_EVERY_S = 60.0
#: The first scheduled marts build waits this long (or the interval, if shorter): a fresh
#: serve has little in its lake yet, and its start-up should not compete with a build.
_FIRST_MODELS_RUN_S = 300.0


class Pipeline:
    """The stream side of one home, live."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.log: EventLog = open_event_log(settings, writable=True)
        try:
            self.store = ServingStore(
                settings.warehouse_path, checkpoint_mb=settings.engine.checkpoint_mb
            )
        except BaseException:
            self.log.close()
            raise
        self.engine = StreamEngine(
            settings, self.log, self.store, Retargeter(settings, self.store.con)
        )
        # Measured: with the engine on one DuckDB thread the collector's p99 ack drops from
        # 55-63 ms to 45-55 ms and throughput rises 10 % (2 cores, docs/benchmarks.md).
        self.engine.limit_threads(settings.engine.live_threads)
        self.intake = Intake(settings, self.log, self.store.con.cursor)
        self.metrics = Metrics(self.status)
        self.commits = CommitSignal()
        """Bumped after every engine commit: the dashboard's live stream pushes right away."""
        self.emails_sent = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.engine_error: BaseException | None = None
        self.last_models_run: ModelsRun | None = None
        self._models_thread: threading.Thread | None = None
        self._models_stop: threading.Event | None = None
        dsn = settings.serving.postgres_dsn
        self._dsn = dsn.get_secret_value() if dsn is not None else None
        self.publisher = ServingPublisher(self._dsn) if self._dsn is not None else None
        self.dashboard: ServingReader = open_dashboard_reader(settings, self.connection)
        """What the dashboard's insight pages read (dashboard.read_from); shared by requests."""

    def connection(self) -> duckdb.DuckDBPyConnection:
        """A new cursor on the warehouse for a request or a thread (close it after use)."""
        return self.store.con.cursor()

    def reader(self) -> ServingReader:
        """A reader of the serving tables and marts: PostgreSQL when configured, else DuckDB."""
        return open_serving_reader(self.settings, self.connection)

    def start(self) -> None:
        """Start the engine, sender and housekeeping threads."""
        cursor = self.store.con.cursor()
        targets: list[tuple[str, Callable[[], None]]] = [
            ("engine", self._run_engine),
            ("sender", lambda: run_sender(self.settings.smtp, cursor, self._stop, self._sent)),
            ("housekeeping", self._housekeeping),
        ]
        if self.settings.bots.webhook_url is not None:
            alerts = self.store.con.cursor()
            stop = self._stop
            targets.append(("webhook", lambda: run_webhook(self.settings.bots, alerts, stop)))
        if self.publisher is not None:
            targets.append(("publisher", self._publish_serving))
        for name, target in targets:
            thread = threading.Thread(target=target, name=f"cartpulse-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        first_delay_s = min(self.settings.warehouse.interval_s, _FIRST_MODELS_RUN_S)
        self._models_thread, self._models_stop = start_schedule(
            self.settings, self._models_ran, first_delay_s
        )

    def run_models(self, select: list[str] | None = None) -> ModelsRun:
        """Build the marts now, in this process (it owns the warehouse); waits for a running one."""
        run = run_models(self.settings, select)
        self._models_ran(run)
        return run

    def _models_ran(self, run: ModelsRun) -> None:
        self.last_models_run = run
        self.metrics.models_runs.labels(run.status).inc()
        if run.ok and self._dsn is not None:
            con = self.connection()
            try:
                done = publish_marts(con, self._dsn)
                log.info("marts_published marts=%d", len(done.published))
            except Exception:  # the next models run publishes them again
                log.exception("marts_publish_failed")
            finally:
                con.close()

    def ready(self) -> tuple[bool, str]:
        """Can the pipeline take traffic: threads alive, engine not failed?"""
        if self.engine_error is not None:
            return False, f"stream engine failed: {self.engine_error}"
        dead = [t.name for t in self._threads if not t.is_alive()]
        if dead or not self._threads:
            return False, f"not running: {', '.join(dead) or 'not started'}"
        return True, "ready"

    def lag(self) -> int:
        """Events appended to the log that the engine has not processed."""
        return max(0, self.log.end_offset() - self.engine.offset)

    def status(self) -> LiveStatus:
        """Values for /metrics and the dashboard."""
        con = self.connection()
        try:
            emails = dict(
                con.execute("SELECT status, count(*) FROM retarget_messages GROUP BY 1").fetchall()
            )
            carts = con.execute("SELECT count(*) FROM abandoned_carts").fetchone()
            alerts = con.execute(
                "SELECT count(*), count(*) FILTER (status = 'queued') FROM bot_alert_outbox"
            ).fetchone()
        finally:
            con.close()
        last = self.last_models_run
        models: dict[str, float] = {}
        if last is not None:
            models = {
                "models_last_run_ok": float(last.ok),
                "models_last_run_timestamp_seconds": last.started_at.timestamp(),
                "models_last_run_seconds": float(last.elapsed_s or 0.0),
            }
        return LiveStatus(
            log_end_offset=self.log.end_offset(),
            engine_offset=self.engine.offset,
            open_sessions=int(self.engine.state.sessions.sessions.num_rows),
            emails_by_status={str(k): int(v) for k, v in emails.items()},
            abandoned_carts=int(carts[0]) if carts else 0,
            extra={
                "bot_alerts": float(alerts[0]) if alerts else 0.0,
                "bot_alerts_undelivered": float(alerts[1]) if alerts else 0.0,
                **models,
            },
        )

    def shutdown(self) -> int:
        """Stop the threads, drain the log through the engine, archive, commit; events drained."""
        self.commits.close()
        self._stop.set()
        if self._models_stop is not None:
            self._models_stop.set()
        for thread in [*self._threads, *([self._models_thread] if self._models_thread else [])]:
            thread.join(timeout=600)  # a models build in progress finishes first
        drained = 0
        if self.engine_error is None:
            drained = self.engine.drain()
        if self.publisher is not None:
            self._publish_once(self.publisher)  # PostgreSQL gets what the drain committed
            self.publisher.close()
        self.dashboard.close()
        self.intake.close()
        self.engine.close()
        self.store.close()
        self.log.close()
        log.info("serve_stopped drained=%d", drained)
        return drained

    def _run_engine(self) -> None:
        try:
            self.engine.run_live(self._stop, on_step=self._stepped)
        except BaseException as exc:  # surfaced by /readyz; the process keeps serving
            self.engine_error = exc
            log.exception("engine_failed")

    def _stepped(self, report: StepReport) -> None:
        self.commits.notify(report.events)
        self.metrics.engine_events.inc(report.events)
        self.metrics.engine_batch_seconds.observe(report.elapsed_s)

    def _publish_serving(self) -> None:
        """Copy changed serving-table rows to PostgreSQL every `serving.publish_interval_s`."""
        assert self.publisher is not None
        while not self._stop.wait(self.settings.serving.publish_interval_s):
            self._publish_once(self.publisher)

    def _publish_once(self, publisher: ServingPublisher) -> None:
        con = self.connection()
        try:
            report = publisher.publish(con)
            if report.changed:
                log.debug("serving_published rows=%d", report.changed)
        except Exception as exc:  # transient (PostgreSQL down): retried at the next interval
            log.warning("serving_publish_failed error=%s", str(exc).splitlines()[0])
        finally:
            con.close()

    def _sent(self, report: SendReport) -> None:
        self.emails_sent += report.sent

    def _housekeeping(self) -> None:
        """Every second: data-quality counts; then and again the dedupe state and retention."""
        last_checkpoint = last_retention = time.monotonic()
        while not self._stop.wait(1.0):
            try:
                self.intake.flush_dq()
                now = time.monotonic()
                if now - last_checkpoint >= self.settings.collector.dedupe_checkpoint_s:
                    self.intake.save_checkpoint()
                    last_checkpoint = now
                if now - last_retention >= _RETENTION_EVERY_S:
                    self._apply_retention()
                    last_retention = now
            except Exception:
                log.exception("housekeeping_failed")

    def _apply_retention(self) -> None:
        """Drop log segments archived, processed and older than `log.retention_hours`."""
        con = self.connection()
        try:  # the committed offsets, not the engine's in-flight ones
            row = con.execute(
                "SELECT least(log_offset, archived_offset) FROM engine.checkpoint WHERE name = ?",
                [self.store.name],
            ).fetchone()
        finally:
            con.close()
        if row is None:
            return
        self.log.commit("engine", int(row[0]))
        self.log.apply_retention(None, self.settings.log.retention_hours * 3600)
