"""Everything the CLI shows goes through here: rich tables for people, JSON for programs."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False)


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


def print_json(data: Any) -> None:
    """Write one JSON document to stdout."""
    sys.stdout.write(json.dumps(data, default=_default, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Show rows as a table."""
    table = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        table.add_column(str(col), overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    stdout.print(table)


def print_summary(title: str, items: dict[str, Any]) -> None:
    """Show key/value results."""
    print_table(title, ["", "value"], [(k, _human(v)) for k, v in items.items()])


def _human(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_human(v)}" for k, v in value.items()) or "-"
    return str(value)


def error(message: str) -> None:
    """One line on stderr, no traceback."""
    stderr.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)


def note(message: str) -> None:
    """A hint or status line on stderr (keeps stdout clean for --json)."""
    stderr.print(message, markup=False, highlight=False)


@contextmanager
def byte_progress(description: str, total: int, quiet: bool = False) -> Iterator[Progress]:
    """A progress bar over bytes (file reading)."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=quiet,
        transient=False,
    )
    with progress:
        progress.add_task(description, total=total)
        yield progress


@contextmanager
def count_progress(description: str, total: int, quiet: bool = False) -> Iterator[Progress]:
    """A progress bar over a count of items (events generated)."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=quiet,
    )
    with progress:
        progress.add_task(description, total=total)
        yield progress
