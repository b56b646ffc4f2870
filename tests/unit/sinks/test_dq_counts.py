"""Quarantined rows and duplicates counted into `dq_counts`, against DuckDB's own grouping."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa

from cartpulse import duck
from cartpulse.engine.store import ServingStore
from cartpulse.schema import QUARANTINE_SCHEMA, Reason
from cartpulse.sinks.quarantine import add_dq_counts, rejected_dq_counts

UTC = dt.UTC
T0 = dt.datetime(2019, 10, 1, 12, 0, tzinfo=UTC)


def quarantine(rows: list[tuple[str, dt.datetime]]) -> pa.Table:
    n = len(rows)
    return pa.table(
        {
            "raw": ["x"] * n,
            "reason": [reason for reason, _ in rows],
            "detail": [None] * n,
            "source": ["f.csv"] * n,
            "line": list(range(n)),
            "ingested_at": [at for _, at in rows],
        },
        schema=QUARANTINE_SCHEMA,
    )


def dupes(times: list[dt.datetime]) -> pa.Table:
    return pa.table({"event_time": pa.array(times, pa.timestamp("us", tz="UTC"))})


QUARANTINE = quarantine(
    [
        (Reason.MALFORMED.value, T0),
        (Reason.MALFORMED.value, T0 + dt.timedelta(seconds=59, microseconds=999_999)),
        (Reason.NEGATIVE_PRICE.value, T0 + dt.timedelta(seconds=30)),
        (Reason.MALFORMED.value, T0 + dt.timedelta(minutes=1)),
        (Reason.UNKNOWN_EVENT_TYPE.value, T0 + dt.timedelta(days=3)),
    ]
)
DUPES = dupes(
    [
        T0,
        T0 + dt.timedelta(seconds=1),
        # before 1970: the minute is the one the time falls in, not the one after it
        dt.datetime(1969, 12, 31, 23, 59, 30, tzinfo=UTC),
        dt.datetime(1969, 12, 31, 23, 59, 0, tzinfo=UTC),
        dt.datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC),
    ]
)


def sql_counts(q: pa.Table, d: pa.Table) -> list[tuple[Any, ...]]:
    """The grouping as DuckDB does it (the rule the counts follow)."""
    con = duck.connect()
    with duck.registered(con, q_rows=q, d_rows=d):
        return con.execute(
            "SELECT date_trunc('minute', ingested_at), reason, count(*) FROM q_rows GROUP BY ALL "
            "UNION ALL "
            "SELECT date_trunc('minute', event_time), 'duplicate', count(*) FROM d_rows "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()


def test_counts_equal_duckdbs_grouping_by_minute_and_reason() -> None:
    got = rejected_dq_counts(QUARANTINE, DUPES)
    rows = sorted(tuple(r.values()) for r in got.to_pylist())
    assert rows == sql_counts(QUARANTINE, DUPES)
    assert (dt.datetime(1969, 12, 31, 23, 59, tzinfo=UTC), "duplicate", 2) in rows


def test_nothing_rejected_counts_nothing() -> None:
    assert rejected_dq_counts(quarantine([]), dupes([])).num_rows == 0
    only_dupes = rejected_dq_counts(quarantine([]), dupes([T0, T0]))
    assert only_dupes.to_pylist() == [{"minute": T0, "reason": "duplicate", "rows": 2}]


def test_counts_add_up_in_the_store(tmp_path: Path) -> None:
    store = ServingStore(tmp_path / "warehouse.duckdb")
    try:
        add_dq_counts(store.con, QUARANTINE, DUPES)
        add_dq_counts(store.con, QUARANTINE.slice(0, 2), dupes([T0]))
        add_dq_counts(store.con, quarantine([]), dupes([]))
        stored = store.con.execute("SELECT * FROM dq_counts ORDER BY ALL").fetchall()
    finally:
        store.close()
    expected: dict[tuple[Any, Any], int] = {}
    for minute, reason, rows in [
        *sql_counts(QUARANTINE, DUPES),
        *sql_counts(QUARANTINE.slice(0, 2), dupes([T0])),
    ]:
        expected[(minute, reason)] = expected.get((minute, reason), 0) + rows
    assert stored == sorted((m, r, n) for (m, r), n in expected.items())
    assert (T0, Reason.MALFORMED.value, 4) in stored
