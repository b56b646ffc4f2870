"""Real REES46 rows through ingest_files, checked against an independent reading with `csv`."""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cartpulse.schema import EVENT_COLUMNS

from ._support import ingest, read_lake

UTC = dt.UTC
FILES = [
    "multicategory_2019-10_head.csv",
    "cosmetics_9col_rows.csv",
    "cosmetics_6col_2019_oct_head.csv",
    "cosmetics_6col_2019_nov_head.csv",
    "cosmetics_6col_2019_dec_head.csv",
]
EVENT_TYPES = {"view", "cart", "remove_from_cart", "purchase"}

Event = tuple[Any, ...]


def _int(text: str) -> int | None:
    return int(text) if text.strip() else None


def _text(text: str) -> str | None:
    return text.strip() or None


def normalise(record: dict[str, str]) -> Event:
    """The nine fields as the data contract says they are stored, from a csv.DictReader row."""
    get = lambda c: record.get(c, "")  # noqa: E731
    when = dt.datetime.strptime(get("event_time"), "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)
    brand = _text(get("brand"))
    return (
        when,
        get("event_type").strip(),
        _int(get("product_id")),
        _int(get("category_id")),
        _text(get("category_code")),
        brand.lower() if brand else None,
        float(get("price")),
        _int(get("user_id")),
        _text(get("user_session")),
    )


def reason(record: dict[str, str]) -> str | None:
    """Which rule a real row breaks, if any (these files only ever have clean values)."""
    if any(not record.get(c, "").strip() for c in ("event_time", "product_id", "user_id")):
        return "missing_required"
    if record["event_type"].strip() not in EVENT_TYPES:
        return "unknown_event_type"
    if not record["price"].strip():
        return "missing_price"
    if float(record["price"]) < 0:
        return "negative_price"
    return None


class Expected:
    """What ingesting one file must give, computed from the file with the csv module alone."""

    def __init__(self, path: Path) -> None:
        with path.open(newline="", encoding="utf-8") as fh:
            records = list(csv.DictReader(fh))
        self.rows = len(records)
        self.by_reason = Counter(r for r in map(reason, records) if r is not None)
        self.accepted = [normalise(r) for r in records if reason(r) is None]
        self.distinct = Counter(self.accepted)
        self.duplicates = len(self.accepted) - len(self.distinct)

    def purchase_sum(self) -> float:
        return math.fsum(e[6] for e in self.distinct if e[1] == "purchase")


def query(sql: str, *params: object) -> tuple[Any, ...]:
    """The one row a DuckDB query returns (a fresh in-memory connection, UTC session)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        rows = con.execute(sql, list(params)).fetchall()
    finally:
        con.close()
    assert len(rows) == 1
    return tuple(rows[0])


def lake_events(home: Path) -> list[Event]:
    return [tuple(r[c] for c in EVENT_COLUMNS) for r in read_lake(home).to_pylist()]


@pytest.mark.parametrize("name", FILES)
def test_real_file_counts_and_values(real_dir: Path, tmp_path: Path, name: str) -> None:
    path = real_dir / name
    want = Expected(path)
    report = ingest(tmp_path / "home", path)

    assert report["read"] == want.rows
    assert report["quarantined"] == sum(want.by_reason.values())
    assert report["by_reason"] == dict(want.by_reason)
    assert report["duplicates"] == want.duplicates
    assert report["clean"] == len(want.distinct)
    assert report["read"] == report["clean"] + report["quarantined"] + report["duplicates"]

    lake = lake_events(tmp_path / "home")
    assert len(lake) == report["clean"]
    assert Counter(lake) == Counter(want.distinct.keys())  # every value, each event once


@pytest.mark.parametrize("name", FILES)
def test_real_file_purchase_revenue_in_the_lake(real_dir: Path, tmp_path: Path, name: str) -> None:
    path = real_dir / name
    want = Expected(path)
    ingest(tmp_path / "home", path)
    pattern = str(tmp_path / "home" / "lake" / "events" / "**" / "*.parquet")
    revenue, purchases = query(
        "SELECT coalesce(sum(price), 0), count(*) FROM read_parquet(?) "
        "WHERE event_type = 'purchase'",
        pattern,
    )
    assert purchases == sum(1 for e in want.distinct if e[1] == "purchase")
    assert revenue == pytest.approx(want.purchase_sum(), abs=1e-6)


def test_known_values_of_the_multicategory_head(real_dir: Path, tmp_path: Path) -> None:
    ingest(tmp_path / "home", real_dir / "multicategory_2019-10_head.csv")
    events = read_lake(tmp_path / "home").to_pylist()
    by_key = {(e["user_id"], e["product_id"], e["event_time"]): e for e in events}
    first = by_key[(541312140, 44600062, dt.datetime(2019, 10, 1, tzinfo=UTC))]
    assert first == {
        "event_time": dt.datetime(2019, 10, 1, tzinfo=UTC),
        "event_type": "view",
        "product_id": 44600062,
        "category_id": 2103807459595387724,
        "category_code": None,  # empty in the file
        "brand": "shiseido",
        "price": 35.79,
        "user_id": 541312140,
        "user_session": "72d76fde-8bb3-4e00-8c23-a032dfed738c",
    }
    sofa = by_key[(519107250, 17200506, dt.datetime(2019, 10, 1, 0, 0, 1, tzinfo=UTC))]
    assert (sofa["category_code"], sofa["brand"], sofa["price"]) == (
        "furniture.living_room.sofa",
        None,
        543.10,
    )
    # The file covers 00:00–02:50 UTC of one day, so one partition.
    parts = sorted(p.name for p in (tmp_path / "home" / "lake" / "events").iterdir())
    assert parts == ["event_date=2019-10-01"]


def test_nine_column_rows_land_in_one_partition_per_day(real_dir: Path, tmp_path: Path) -> None:
    path = real_dir / "cosmetics_9col_rows.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        days = {r["event_time"][:10] for r in csv.DictReader(fh)}
    ingest(tmp_path / "home", path)
    parts = sorted(p.name for p in (tmp_path / "home" / "lake" / "events").iterdir())
    assert parts == sorted(f"event_date={d}" for d in days)
    for part in parts:
        day = part.removeprefix("event_date=")
        pattern = str(tmp_path / "home" / "lake" / "events" / part / "*.parquet")
        (outside,) = query(
            "SELECT count(*) FROM read_parquet(?) WHERE strftime(event_time, '%Y-%m-%d') <> ?",
            pattern,
            day,
        )
        assert outside == 0


def test_schema_drift_six_columns_match_the_nine_column_originals(
    real_dir: Path, tmp_path: Path
) -> None:
    """The 6-column redistribution and the original rows agree on every shared column."""
    home = tmp_path / "home"
    names = ["cosmetics_9col_rows.csv", "cosmetics_6col_2019_oct_head.csv"]
    ingest(home, *(real_dir / n for n in names))
    ingest(home, real_dir / "cosmetics_6col_2019_dec_head.csv")
    events = read_lake(home).to_pylist()
    shared = ("event_time", "event_type", "product_id", "price", "user_id", "user_session")
    full = Counter(tuple(e[c] for c in shared) for e in events if e["category_id"] is not None)
    drift = [e for e in events if e["category_id"] is None]
    assert all(e["brand"] is None and e["category_code"] is None for e in drift)
    drift_keys = Counter(tuple(e[c] for c in shared) for e in drift)
    # Oct: the 5 rows 00:00:00-00:00:15; Dec: the 10 rows 00:00:00-00:00:34 are in both.
    assert sum((full & drift_keys).values()) == 15
    five_forty = [e for e in drift if e["product_id"] == 5588608]
    assert [e["price"] for e in five_forty] == [5.4]  # "5.4" in the 6-col file, "5.40" originally


def test_all_real_files_in_one_run(real_dir: Path, tmp_path: Path) -> None:
    paths = [real_dir / n for n in FILES]
    wants = [Expected(p) for p in paths]
    report = ingest(tmp_path / "home", *paths)
    # No event is shared between files (6-column rows lack brand and category), so the totals
    # are the per-file expectations added up.
    all_distinct = Counter(e for w in wants for e in w.distinct)
    assert all(n == 1 for n in all_distinct.values())
    assert report["read"] == sum(w.rows for w in wants) == 20_451
    assert report["duplicates"] == sum(w.duplicates for w in wants)
    assert report["clean"] == len(all_distinct)
    assert report["quarantined"] == 0
    assert Counter(lake_events(tmp_path / "home")) == all_distinct
    files = report["files"]
    assert [f["status"] for f in files] == ["ingested"] * 5
    assert [f["read"] for f in files] == [w.rows for w in wants]
