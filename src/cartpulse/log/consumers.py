"""Named consumer offsets: one small JSON file per consumer under `log/consumers/`.

One file per consumer means consumers in different processes never write the same file, so
no lock is needed; each commit replaces its file atomically (write, fsync, rename, fsync dir).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from pathlib import Path

from cartpulse.log.base import EventLogError
from cartpulse.sinks.staging import fsync_dir, write_atomic

log = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_consumer_name(consumer: str) -> None:
    """Refuse names that are not safe as file names."""
    if not _NAME.fullmatch(consumer):
        raise EventLogError(
            f"consumer name {consumer!r} is invalid: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )


class ConsumerOffsets:
    """Durable committed offsets per consumer name."""

    def __init__(self, directory: Path, durable: bool) -> None:
        self.directory = directory
        self.durable = durable

    def commit(self, consumer: str, offset: int) -> None:
        """Record `offset` as where `consumer` resumes."""
        check_consumer_name(consumer)
        record = {
            "consumer": consumer,
            "offset": offset,
            "committed_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        write_atomic(self._path(consumer), json.dumps(record).encode(), fsync=self.durable)

    def committed(self, consumer: str) -> int | None:
        """The offset `consumer` committed last, or None."""
        check_consumer_name(consumer)
        return self._read(self._path(consumer))

    def all(self) -> dict[str, int]:
        """Every registered consumer and its committed offset."""
        if not self.directory.is_dir():
            return {}
        found: dict[str, int] = {}
        for path in sorted(self.directory.glob("*.json")):
            offset = self._read(path)
            if offset is not None:
                found[path.stem] = offset
        return found

    def remove(self, consumer: str) -> None:
        """Forget `consumer` (it no longer holds back retention)."""
        check_consumer_name(consumer)
        path = self._path(consumer)
        if path.exists():
            path.unlink()
            if self.durable:
                fsync_dir(self.directory)
            log.info("log_consumer_removed consumer=%s", consumer)

    def _path(self, consumer: str) -> Path:
        return self.directory / f"{consumer}.json"

    @staticmethod
    def _read(path: Path) -> int | None:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EventLogError(
                f"consumer offset file {path} is unreadable ({exc}); delete it to reset "
                "that consumer"
            ) from exc
        offset = record.get("offset") if isinstance(record, dict) else None
        if not isinstance(offset, int) or offset < 0:
            raise EventLogError(f"consumer offset file {path} has no valid `offset`")
        return offset
