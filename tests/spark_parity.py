"""Comparing two homes' stream outputs row for row: lake, quarantine, sales, carts, dq, bots."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from cartpulse.engine.replay import replay_files
from cartpulse.settings import Settings

_OUTPUTS = {
    "lake": "SELECT * FROM read_parquet('{home}/lake/events/*/*.parquet')",
    # where a row came from is the file path each engine read (Spark: a local copy)
    "quarantine": (
        "SELECT raw, reason, detail, line FROM read_parquet('{home}/lake/quarantine/*/*.parquet')"
    ),
    "product_sales_minute": "SELECT * FROM {db}.product_sales_minute",
    "abandoned_carts": "SELECT * FROM {db}.abandoned_carts",
    "dq_counts (event minutes)": (
        "SELECT * FROM {db}.dq_counts WHERE reason IN ('accepted', 'zero_price')"
    ),
    # counted by minute of ingest, which differs between two runs: compare the totals
    "dq_counts (quarantine)": (
        "SELECT reason, sum(rows) AS rows FROM {db}.dq_counts "
        "WHERE reason NOT IN ('accepted', 'zero_price', 'duplicate', 'late_purchase') "
        "GROUP BY reason"
    ),
    "bot_alerts": "SELECT user_id, detected_at, rule, score, evidence FROM {db}.bot_alerts",
}

#: Outputs that may be empty in both homes (a dataset with no bots, or no bad rows).
MAY_BE_EMPTY = {"bot_alerts", "quarantine", "dq_counts (quarantine)"}

_NO_QUARANTINE = (
    "SELECT NULL::VARCHAR AS raw, NULL::VARCHAR AS reason, NULL::VARCHAR AS detail, "
    "NULL::BIGINT AS line WHERE false"
)


def _query(name: str, sql: str, home: Path, db: str) -> str:
    if name == "quarantine" and not any((home / "lake" / "quarantine").glob("*/*.parquet")):
        return _NO_QUARANTINE
    return sql.format(home=home, db=db)


def output_differences(home_a: Path, home_b: Path) -> dict[str, tuple[int, int, int, int]]:
    """Per output: rows in a, rows in b, rows only in a, rows only in b (multisets)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"ATTACH '{home_a / 'warehouse.duckdb'}' AS db_a (READ_ONLY)")
    con.execute(f"ATTACH '{home_b / 'warehouse.duckdb'}' AS db_b (READ_ONLY)")
    found = {}
    for name, sql in _OUTPUTS.items():
        a, b = _query(name, sql, home_a, "db_a"), _query(name, sql, home_b, "db_b")

        def count(query: str) -> int:
            return int(con.sql(f"SELECT count(*) FROM ({query})").fetchall()[0][0])

        found[name] = (
            count(a),
            count(b),
            count(f"({a}) EXCEPT ALL ({b})"),
            count(f"({b}) EXCEPT ALL ({a})"),
        )
    con.close()
    return found


def assert_same_outputs(home_a: Path, home_b: Path) -> dict[str, int]:
    """Both homes hold the same rows in every output (and each output has rows)."""
    diffs = output_differences(home_a, home_b)
    for name, (rows_a, rows_b, only_a, only_b) in diffs.items():
        assert rows_a > 0 or name in MAY_BE_EMPTY, f"{name}: no rows at all, nothing compared"
        assert (rows_a, only_a, only_b) == (rows_b, 0, 0), f"{name}: {diffs[name]}"
    return {name: d[0] for name, d in diffs.items()}


def embedded_replay(home: Path, inputs: list[Path]) -> None:
    """The reference: `cartpulse replay` of the inputs on the embedded engine."""
    replay_files(Settings(home=home, fsync="never"), inputs)


def combine_real_rows(real_dir: Path, out: Path) -> Path:
    """Every real file as one 9-column CSV in event-time order (6-column files: null extras)."""
    con = duckdb.connect()
    parts = []
    for path in sorted(real_dir.glob("*.csv")):
        parts.append(
            f"SELECT * FROM read_csv('{path}', all_varchar = true, union_by_name = true, "
            "header = true)"
        )
    union = " UNION ALL BY NAME ".join(parts)
    table = con.sql(
        f"SELECT event_time, event_type, product_id, category_id, category_code, brand, price, "
        f"user_id, user_session FROM ({union}) ORDER BY event_time"
    ).to_arrow_table()
    con.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(table.cast(pa.schema([(n, pa.string()) for n in table.schema.names])), out)
    return out


def real_rows_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the real rows as one time-ordered CSV file (skips without them)."""
    from tests.conftest import REAL_DATA, require_data

    require_data(REAL_DATA)
    folder = tmp_path_factory.mktemp("real-input")
    combine_real_rows(REAL_DATA, folder / "real.csv")
    return folder
