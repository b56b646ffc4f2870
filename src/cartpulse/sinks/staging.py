"""Make a set of files visible all at once: stage, write a commit record, move, forget the record.

A crash before the commit record exists leaves only a staging folder, which recovery deletes;
a crash after it is rolled forward by recovery. Readers never see a partially written file,
because files are only ever renamed into place once complete.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, fsync: bool = True) -> None:
    """Replace `path` with `data` so that readers see the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    tmp.replace(path)
    if fsync:
        fsync_dir(path.parent)


def parquet_bytes(table: pa.Table) -> bytes:
    """A table as the bytes of a zstd Parquet file (for `write_atomic`)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


class Commits:
    """Commit records under `state/commits`, and the staging folders they refer to."""

    def __init__(self, state_dir: Path, fsync: bool = True) -> None:
        self.records = state_dir / "commits"
        self.staging = state_dir / "staging"
        self.fsync = fsync

    def staging_dir(self, commit_id: str) -> Path:
        """A fresh staging folder for one commit."""
        path = self.staging / commit_id
        path.mkdir(parents=True, exist_ok=False)
        return path

    def commit(self, commit_id: str, moves: list[tuple[Path, Path]], meta: dict[str, Any]) -> None:
        """Durably record the moves, apply them, then drop the record."""
        if self.fsync:
            for src, _ in moves:
                _fsync_file(src)
        record = {"moves": [[str(s), str(d)] for s, d in moves], "meta": meta}
        write_atomic(self.records / f"{commit_id}.json", json.dumps(record).encode(), self.fsync)
        self._apply(commit_id, record)

    def recover(self) -> list[dict[str, Any]]:
        """Finish interrupted commits and delete abandoned staging folders; return their meta."""
        finished = []
        if self.records.is_dir():
            for rec_path in sorted(self.records.glob("*.json")):
                record = json.loads(rec_path.read_text())
                log.warning("commit_recovered id=%s moves=%d", rec_path.stem, len(record["moves"]))
                self._apply(rec_path.stem, record)
                finished.append(record["meta"])
        if self.staging.is_dir():
            for leftover in self.staging.iterdir():
                log.warning("staging_discarded path=%s", leftover)
                shutil.rmtree(leftover, ignore_errors=True)
        return finished

    def _apply(self, commit_id: str, record: dict[str, Any]) -> None:
        apply_moves([(Path(s), Path(d)) for s, d in record["moves"]], self.fsync)
        (self.records / f"{commit_id}.json").unlink(missing_ok=True)
        shutil.rmtree(self.staging / commit_id, ignore_errors=True)


def apply_moves(moves: list[tuple[Path, Path]], fsync: bool) -> None:
    """Rename staged files into place; moves already done are skipped (safe to repeat)."""
    dirs: set[Path] = set()
    for src, dst in moves:
        if src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            src.replace(dst)
            dirs.add(dst.parent)
        elif not dst.exists():
            raise RuntimeError(f"{src} vanished before it reached {dst}")
    if fsync:
        for d in dirs:
            fsync_dir(d)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())
