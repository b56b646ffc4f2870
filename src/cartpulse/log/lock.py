"""The one-writer rule: an exclusive `flock` on `writer.lock`, dropped by the kernel when the
writer process exits or dies, so a crashed writer never leaves a stale lock behind."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from cartpulse.log.base import LogLockedError

LOCK_FILE = "writer.lock"


def acquire_writer_lock(directory: Path) -> int:
    """Take the writer lock of the log in `directory`; return the handle that holds it."""
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise LogLockedError(
            f"the event log at {directory} is already open for writing by process {holder}; "
            "only one writer is allowed: stop that process, or open the log read-only "
            "(writable=False)"
        ) from None
    # The pid is only for the error message above; the flock is what excludes.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def release_writer_lock(fd: int) -> None:
    """Give the lock up (closing the handle releases the flock)."""
    os.close(fd)
