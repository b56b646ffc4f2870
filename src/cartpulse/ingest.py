"""Batch ingest: files → validate → dedupe → Parquet lake, one atomic commit per file."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import xxhash

from cartpulse.quality.dedupe import DedupeState, dedupe
from cartpulse.quality.dedupe_store import load_dedupe_state, save_dedupe_state
from cartpulse.quality.validate import Validator
from cartpulse.settings import Settings
from cartpulse.sinks.lake import events_writer, quarantine_writer, split_by_event_date
from cartpulse.sinks.staging import Commits
from cartpulse.sources.files import read_events
from cartpulse.sources.prefetch import prefetch

log = logging.getLogger(__name__)

#: progress(bytes_done_in_this_file, file_size, file_path)
Progress = Callable[[int, int, Path], None]


class IngestError(Exception):
    """An ingest cannot run (locked home, unreadable file); nothing was written."""


@dataclass
class FileReport:
    """What happened to one input file."""

    path: str
    content_hash: str
    status: str  # "ingested" or "skipped" (same content already in the lake)
    read: int = 0
    clean: int = 0
    quarantined: int = 0
    duplicates: int = 0
    blank_rows: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    ingested_at: str = ""


@dataclass
class IngestReport:
    """Totals over every file of one `cartpulse ingest` run."""

    files: list[FileReport]
    elapsed_s: float

    def total(self, name: str) -> int:
        """Sum of a counter over the ingested files."""
        return sum(int(getattr(f, name)) for f in self.files)

    def by_reason(self) -> dict[str, int]:
        """Quarantined rows per reason over every file."""
        out: dict[str, int] = {}
        for f in self.files:
            for reason, n in f.by_reason.items():
                out[reason] = out.get(reason, 0) + n
        return dict(sorted(out.items()))

    def as_dict(self) -> dict[str, object]:
        """The JSON shape printed by `cartpulse ingest --json`."""
        read = self.total("read")
        return {
            "read": read,
            "clean": self.total("clean"),
            "quarantined": self.total("quarantined"),
            "duplicates": self.total("duplicates"),
            "blank_rows": self.total("blank_rows"),
            "by_reason": self.by_reason(),
            "files": [asdict(f) for f in self.files],
            "elapsed_s": round(self.elapsed_s, 3),
            "rows_per_s": round(read / self.elapsed_s) if self.elapsed_s > 0 else 0,
        }


def ingest_files(
    settings: Settings, paths: list[Path], progress: Progress | None = None
) -> IngestReport:
    """Load event files into the lake; a file whose content was ingested before is skipped."""
    start = time.perf_counter()
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise IngestError(f"no such file: {', '.join(map(str, missing))}")
    reports = []
    with _home_lock(settings):
        commits = Commits(settings.state_dir, fsync=settings.fsync != "never")
        commits.recover()
        state = load_dedupe_state(settings.state_dir)
        for path in paths:
            report, state = _ingest_one(settings, commits, path, state, progress)
            reports.append(report)
    return IngestReport(reports, time.perf_counter() - start)


def _ingest_one(
    settings: Settings,
    commits: Commits,
    path: Path,
    state: DedupeState,
    progress: Progress | None,
) -> tuple[FileReport, DedupeState]:
    digest = content_hash(path)
    manifest = settings.state_dir / "manifest" / f"{digest}.json"
    if manifest.exists():
        log.info("ingest_skipped path=%s content_hash=%s reason=already_ingested", path, digest)
        if progress is not None:
            progress(path.stat().st_size, path.stat().st_size, path)
        return FileReport(str(path), digest, "skipped"), state
    size = path.stat().st_size
    commit_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    staging = commits.staging_dir(commit_id)
    try:
        report, state = _stage_file(settings, staging, commit_id, path, digest, state, progress)
        moves = [(staging / f, settings.home / f) for f in report.files]
        moves.append((save_dedupe_state(state, staging), settings.state_dir / "dedupe.parquet"))
        manifest_staged = staging / "manifest.json"
        manifest_staged.write_text(json.dumps(asdict(report), indent=1))
        moves.append((manifest_staged, manifest))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    commits.commit(commit_id, moves, {"path": str(path), "content_hash": digest})
    if progress is not None:
        progress(size, size, path)
    log.info(
        "ingested path=%s read=%d clean=%d quarantined=%d duplicates=%d",
        path,
        report.read,
        report.clean,
        report.quarantined,
        report.duplicates,
    )
    return report, state


def _stage_file(
    settings: Settings,
    staging: Path,
    commit_id: str,
    path: Path,
    digest: str,
    state: DedupeState,
    progress: Progress | None,
) -> tuple[FileReport, DedupeState]:
    """Read, validate and dedupe one file into the staging folder."""
    size = path.stat().st_size
    ingested_at = dt.datetime.now(dt.UTC)
    cfg = settings.ingest
    events = events_writer(staging, commit_id, cfg.row_group_rows, cfg.compression)
    quarantine = quarantine_writer(staging, commit_id, cfg.compression)
    report = FileReport(str(path), digest, "ingested", ingested_at=ingested_at.isoformat())
    validator = Validator(cfg.future_tolerance_s)
    try:
        for batch in prefetch(read_events(path, cfg.batch_rows)):
            checked = validator.validate(batch, ingested_at)
            keep, state = dedupe(checked.keys, checked.times_us, state, cfg.dedupe_window_s)
            clean = checked.clean_subset(keep)
            for partition, rows in split_by_event_date(clean):
                events.write(partition, rows)
            quarantine.write(f"ingest_date={ingested_at.date().isoformat()}", checked.quarantine)
            events.end_batch()
            _count(report, batch.rows, clean.num_rows, checked.counts, len(keep) - clean.num_rows)
            report.blank_rows += batch.blank_rows
            if progress is not None and batch.position is not None:
                progress(batch.position, size, path)
        report.files = [str(f) for f in events.close() + quarantine.close()]
    finally:
        validator.close()
    _check_invariant(report)
    return report, state


def _count(report: FileReport, read: int, clean: int, reasons: dict[str, int], dupes: int) -> None:
    report.read += read
    report.clean += clean
    report.duplicates += dupes
    for reason, n in reasons.items():
        report.by_reason[reason] = report.by_reason.get(reason, 0) + n
        report.quarantined += n


def _check_invariant(report: FileReport) -> None:
    """read = clean + quarantined + duplicates, or the ingest must not commit."""
    if report.read != report.clean + report.quarantined + report.duplicates:
        raise AssertionError(
            f"{report.path}: read {report.read} != clean {report.clean} + quarantined "
            f"{report.quarantined} + duplicates {report.duplicates}; nothing was committed"
        )


def content_hash(path: Path) -> str:
    """A hash of the file's bytes (xxh3-128), the key of the ingest manifest."""
    h = xxhash.xxh3_128()
    with path.open("rb") as fh:
        while chunk := fh.read(8 << 20):
            h.update(chunk)
    return str(h.hexdigest())


@contextmanager
def _home_lock(settings: Settings) -> Iterator[None]:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with (settings.state_dir / "ingest.lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IngestError(
                f"another ingest is writing to {settings.home}; wait for it to finish"
            ) from None
        yield
