"""Comparing two homes' stream outputs row for row: lake events, sales windows, abandoned carts."""

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
    "product_sales_minute": "SELECT * FROM {db}.product_sales_minute",
    "abandoned_carts": "SELECT * FROM {db}.abandoned_carts",
}


def output_differences(home_a: Path, home_b: Path) -> dict[str, tuple[int, int, int, int]]:
    """Per output: rows in a, rows in b, rows only in a, rows only in b (multisets)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"ATTACH '{home_a / 'warehouse.duckdb'}' AS db_a (READ_ONLY)")
    con.execute(f"ATTACH '{home_b / 'warehouse.duckdb'}' AS db_b (READ_ONLY)")
    found = {}
    for name, sql in _OUTPUTS.items():
        a, b = sql.format(home=home_a, db="db_a"), sql.format(home=home_b, db="db_b")

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
        assert rows_a > 0, f"{name}: no rows at all, nothing was compared"
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
