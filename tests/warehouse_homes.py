"""Homes with a lake, bot alerts and built marts, for the warehouse tests."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from cartpulse import duck
from cartpulse.engine.store import ServingStore
from cartpulse.generate import generate_dataset
from cartpulse.ingest import ingest_files
from cartpulse.settings import Settings


@dataclass
class Home:
    """A home whose lake holds `files` and whose bot_alerts flag `bots`."""

    settings: Settings
    bots: set[int]

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """Rows of a query on the warehouse."""
        con = duck.connect(self.settings.warehouse_path)
        try:
            return list(con.sql(sql).to_arrow_table().to_pylist())
        finally:
            con.close()


def real_home(real_data: Path, tmp: Path) -> Home:
    """The real REES46 rows ingested; the two busiest users flagged as bots."""
    files = [shutil.copy(f, tmp / f.name) for f in sorted(real_data.glob("*.csv"))]
    settings = Settings(home=tmp / "home", fsync="never")
    ingest_files(settings, [Path(f) for f in files])
    users = ds.dataset(settings.events_dir, format="parquet", partitioning="hive")
    counts = Counter(users.to_table(columns=["user_id"]).column("user_id").to_pylist())
    bots = {user for user, _ in counts.most_common(2)}
    flag_bots(settings, bots)
    return Home(settings, bots)


def generated_home(tmp: Path, events: int = 20_000, days: int = 4, seed: int = 11) -> Home:
    """A small generated dataset ingested; its bots (bots.csv) flagged."""
    generate_dataset(tmp / "gen", events=events, days=days, seed=seed)
    settings = Settings(home=tmp / "home", fsync="never")
    ingest_files(settings, [tmp / "gen" / "events.csv.gz"])
    with (tmp / "gen" / "bots.csv").open(newline="", encoding="utf-8") as f:
        bots = {int(row["user_id"]) for row in csv.DictReader(f)}
    flag_bots(settings, bots)
    return Home(settings, bots)


def flag_bots(settings: Settings, users: set[int]) -> None:
    """Write bot alerts for `users`, as the bot detector would."""
    store = ServingStore(settings.warehouse_path)
    try:
        for user in sorted(users):
            store.con.execute(
                "INSERT INTO bot_alerts VALUES (?, ?, 'test', 1.0, NULL)",
                [user, datetime.now(UTC)],
            )
    finally:
        store.close()
