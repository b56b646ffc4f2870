"""Events posted to the collector: parse, validate, dedupe, quarantine, append durably.

An accepted event is in the event log (fsynced under the default `fsync = "always"`) before
`Intake.accept` returns; a rejected row is in a quarantine file, also fsynced, with its reason.
Only then does the client get its 202, so an acknowledged event is never lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from cartpulse.collector.dedupe_checkpoint import DedupeCheckpoint
from cartpulse.collector.group_append import GroupAppender
from cartpulse.log.base import EventLog
from cartpulse.quality.dedupe import DedupeState, dedupe
from cartpulse.quality.validate import Validated, Validator
from cartpulse.settings import Settings
from cartpulse.sinks.quarantine import add_dq_counts, write_quarantine
from cartpulse.sources.http import parse_events

log = logging.getLogger(__name__)

_DQ_RETRIES = 20


@dataclass
class Accepted:
    """What the collector did with one request's rows (the body of the 202)."""

    accepted: int
    quarantined: int
    duplicates: int
    errors: list[dict[str, Any]] = field(default_factory=list)
    errors_truncated: bool = False
    first_offset: int | None = None
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The JSON response."""
        return {
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "duplicates": self.duplicates,
            "errors": self.errors,
            "errors_truncated": self.errors_truncated,
        }


class Intake:
    """The collector's write path into one home's event log (thread-safe)."""

    def __init__(
        self,
        settings: Settings,
        event_log: EventLog,
        dq_connection: Callable[[], duckdb.DuckDBPyConnection],
    ) -> None:
        self.settings = settings
        self.log = event_log
        self._dq_connection = dq_connection
        self._lock = threading.Lock()
        self._local = threading.local()
        self._validators: list[Validator] = []
        self.checkpoint = DedupeCheckpoint(
            settings.state_dir / "collector-dedupe.parquet", settings.ingest.dedupe_window_s
        )
        self._state: DedupeState = self.checkpoint.restore(event_log)
        self._fsync = settings.fsync != "never"
        self._appender = GroupAppender(event_log)
        self._poisoned: BaseException | None = None
        self._dq_lock = threading.Lock()
        self._dq_pending: list[tuple[pa.Table, pa.Table]] = []

    def close(self) -> None:
        """Save the dedupe state and counts, and release the validators."""
        self.flush_dq()
        if self._poisoned is None:
            self.save_checkpoint()
        for validator in self._validators:
            validator.close()

    def save_checkpoint(self) -> None:
        """Persist the duplicate-detection state with the log offset it covers."""
        with self._lock:
            state, end = self._state, self.log.end_offset()
        self.checkpoint.save(state, end)
        self.log_commit(end)

    def log_commit(self, offset: int) -> None:
        """Retention must keep the log from `offset` on: the dedupe state is rebuilt from it."""
        self.log.commit("collector-dedupe", offset)

    def accept(
        self,
        body: bytes,
        source: str,
        admit: Callable[[int], None] | None = None,
        admit_users: Callable[[pa.Array | pa.ChunkedArray], None] | None = None,
    ) -> Accepted:
        """Take one decoded request body; raises `BodyError` when it holds no JSON at all.

        `admit(rows)` and `admit_users(user_id column)` are called once the rows are parsed
        and may raise to refuse them (rate limits) before anything is stored.
        """
        batch = parse_events(body, source)
        if admit_users is not None:
            admit_users(batch.data.column("user_id"))
        if admit is not None:
            admit(batch.rows)
        now = dt.datetime.now(dt.UTC)
        checked = self._validator().validate(batch, now, now=now)
        with self._lock:
            if self._poisoned is not None:
                raise self._poisoned
            keep, self._state = dedupe(
                checked.keys, checked.times_us, self._state, self.settings.ingest.dedupe_window_s
            )
        clean = checked.clean_subset(keep)
        name = f"part-http-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        write_quarantine(self.settings.quarantine_dir, now, name, checked.quarantine, self._fsync)
        try:
            first = self._appender.append(clean)
        except BaseException as exc:
            # The dedupe state now holds keys that never reached the log: stop, so that it
            # is never saved; a restart rebuilds it from the log, which is the truth.
            self._poisoned = exc
            raise
        dupe_times = checked.times_us[~keep]
        self._count_dq(checked.quarantine, dupe_times)
        return self._result(checked, clean.num_rows, len(dupe_times), first)

    def _validator(self) -> Validator:
        """One validator (one DuckDB connection) per worker thread."""
        validator: Validator | None = getattr(self._local, "validator", None)
        if validator is None:
            validator = Validator(self.settings.ingest.future_tolerance_s)
            self._local.validator = validator
            with self._lock:
                self._validators.append(validator)
        return validator

    def _count_dq(self, quarantine: pa.Table, dupe_times: np.ndarray) -> None:
        """Keep the rows' data-quality counts for the next `flush_dq`."""
        if quarantine.num_rows == 0 and len(dupe_times) == 0:
            return
        dupes = pa.table({"event_time": pa.array(dupe_times, pa.timestamp("us", tz="UTC"))})
        with self._dq_lock:
            self._dq_pending.append((quarantine, dupes))

    def flush_dq(self) -> None:
        """Add the counts kept since the last flush to `dq_counts`, in one transaction.

        Counting per request would cost a database commit per request; the rows themselves
        are durable (log, quarantine files) before the 202, only their counts wait here.
        """
        with self._dq_lock:
            pending, self._dq_pending = self._dq_pending, []
        if not pending:
            return
        quarantine = pa.concat_tables([q for q, _ in pending])
        dupes = pa.concat_tables([d for _, d in pending])
        con = self._dq_connection()
        try:
            for attempt in range(_DQ_RETRIES):
                try:
                    add_dq_counts(con, quarantine, dupes)
                    return
                except (duckdb.TransactionException, duckdb.ConstraintException):
                    # The engine wrote the same (minute, reason) row at the same time.
                    time.sleep(0.005 * (attempt + 1))
            log.warning("dq_counts_conflict rows=%d", quarantine.num_rows + dupes.num_rows)
        finally:
            con.close()

    def _result(
        self, checked: Validated, accepted: int, duplicates: int, first: int | None
    ) -> Accepted:
        q = checked.quarantine
        cap = self.settings.collector.max_errors
        errors = [
            {"row": line, "reason": reason, "detail": detail}
            for line, reason, detail in zip(
                q.column("line").slice(0, cap).to_pylist(),
                q.column("reason").slice(0, cap).to_pylist(),
                q.column("detail").slice(0, cap).to_pylist(),
                strict=True,
            )
        ]
        return Accepted(
            accepted=accepted,
            quarantined=q.num_rows,
            duplicates=duplicates,
            errors=errors,
            errors_truncated=q.num_rows > cap,
            first_offset=first,
            quarantined_by_reason=checked.counts,
        )
