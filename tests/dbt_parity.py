"""Compare the warehouse tables of a DuckDB build with those of a Spark build, row for row."""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path
from typing import Any

from cartpulse import duck
from cartpulse.settings import Settings
from cartpulse.spark.warehouse import spark_tables

#: Depends on the engine by design: the fingerprint hashes the bot list with its own hash.
ENGINE_SPECIFIC = {"lake_fingerprint"}

SCHEMA_OF = {"int_": "intermediate", "mart_": "main", "stg_": "staging"}


def duckdb_table(settings: Settings, name: str) -> list[dict[str, Any]]:
    """Every row of a table or view of the DuckDB warehouse."""
    schema = next(s for prefix, s in SCHEMA_OF.items() if name.startswith(prefix))
    con = duck.connect(settings.warehouse_path, read_only=True)
    try:
        return _rows(con.sql(f"SELECT * FROM {schema}.{name}"))
    finally:
        con.close()


def spark_table(folder: Path) -> list[dict[str, Any]]:
    """Every row of a table a Spark build wrote (Parquet, partition folders included)."""
    con = duck.connect()
    try:
        files = [str(p) for p in sorted(folder.rglob("*.parquet"))]
        if not files:
            return []
        return _rows(con.sql(f"SELECT * FROM read_parquet({files!r}, hive_partitioning = true)"))
    finally:
        con.close()


def _rows(relation: Any) -> list[dict[str, Any]]:
    names = [n for n in relation.columns if n not in ENGINE_SPECIFIC]
    return [dict(zip(names, row, strict=True)) for row in relation.select(*names).fetchall()]


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    """Sort key from the exact (non-float) values: None first."""
    return tuple(
        (v is not None, v if not isinstance(v, float) else 0.0)
        for _, v in sorted(row.items())
        if not isinstance(v, float)
    )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a.timestamp() == b.timestamp()
    if isinstance(a, date) and isinstance(b, date):
        return a == b
    return bool(a == b)


def table_differences(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    """What differs between two row sets (empty when equal up to float rounding)."""
    if not expected and not actual:
        return []
    columns = set(expected[0] if expected else actual[0])
    other = set(actual[0] if actual else expected[0])
    if columns != other:
        return [f"columns differ: {sorted(columns ^ other)}"]
    if len(expected) != len(actual):
        return [f"{len(expected)} rows vs {len(actual)}"]
    diffs = []
    for left, right in zip(sorted(expected, key=_key), sorted(actual, key=_key), strict=True):
        bad = [c for c in sorted(columns) if not _same(left[c], right[c])]
        if bad:
            diffs.append(f"{[(c, left[c], right[c]) for c in bad]}")
        if len(diffs) >= 5:
            break
    return diffs


def warehouse_differences(
    settings: Settings, names: set[str] | None = None
) -> dict[str, list[str]]:
    """Per table the Spark build made (or those named): how it differs from DuckDB's table."""
    tables = spark_tables(settings)
    assert tables, "the Spark build made no tables"
    assert names is None or names <= set(tables), names - set(tables)
    found = {}
    for name, folder in tables.items():
        if names is not None and name not in names:
            continue
        diffs = table_differences(duckdb_table(settings, name), spark_table(folder))
        if diffs:
            found[name] = diffs
    return found
