"""`cartpulse query` over the lake and a real warehouse file."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from cartpulse.query import QueryError, run_query
from cartpulse.settings import load_settings


def test_warehouse_tables_are_queryable_next_to_lake_views(home: Path) -> None:
    settings = load_settings(home=home)
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute("CREATE TABLE dq_counts AS SELECT 'malformed' AS reason, 3 AS n")
    con.close()
    result = run_query(
        settings, "SELECT reason, n, (SELECT count(*) FROM events) AS e FROM dq_counts"
    )
    assert result.records() == [{"reason": "malformed", "n": 3, "e": 0}]


def test_warehouse_is_opened_read_only(home: Path) -> None:
    settings = load_settings(home=home)
    duckdb.connect(str(settings.warehouse_path)).close()
    with pytest.raises(QueryError, match="read-only"):
        run_query(settings, "CREATE TABLE x AS SELECT 1")
    with pytest.raises(QueryError):
        run_query(settings, "INSERT INTO warehouse.main.x VALUES (1)")


def test_quarantine_view_has_partition_column(home: Path, tmp_path: Path) -> None:
    from cartpulse.ingest import ingest_files

    bad = tmp_path / "bad.csv"
    bad.write_text(
        "event_time,event_type,product_id,price,user_id,user_session\n"
        "2019-10-01 00:00:00 UTC,view,1,abc,2,s\n"
        "2019-10-01 00:00:00 UTC,click,1,1.0,2,s\n"
    )
    settings = load_settings(home=home)
    ingest_files(settings, [bad])
    rows = run_query(
        settings,
        "SELECT reason, line, source, ingest_date IS NOT NULL AS d FROM quarantine ORDER BY line",
    ).records()
    assert [(r["reason"], r["line"], r["d"]) for r in rows] == [
        ("malformed", 2, True),
        ("unknown_event_type", 3, True),
    ]
    assert rows[0]["source"] == str(bad)
