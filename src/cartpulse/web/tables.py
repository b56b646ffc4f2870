"""Reading dashboard sections from the warehouse: parameterised SQL and empty states."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import duckdb

_PARAM = re.compile(r"\$([a-z_]+)")

#: What to run when a table is missing or empty, by table.
HOW_TO_FILL = {
    "mart_": "cartpulse models run",
    "mart_customer_ltv": "cartpulse models train --model clv",
    "mart_product_forecast": "cartpulse models train --model forecast (needs ≥ 49 days)",
    "mart_purchase_propensity": "cartpulse models train --model propensity",
    "product_sales_minute": "cartpulse replay FILE (or send events to POST /v1/events)",
    "retarget_messages": "cartpulse customers import FILE, then cartpulse replay FILE",
}


@dataclass
class Section:
    """Rows for one part of a page, or why there are none and what to run."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    empty: str | None = None

    @property
    def first(self) -> dict[str, Any]:
        """The first row (a one-row summary), or {} when there is none."""
        return self.rows[0] if self.rows else {}


def rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Rows as dicts; only the `$name` parameters the SQL uses are bound."""
    used = {name: (params or {})[name] for name in set(_PARAM.findall(sql))}
    result = con.execute(sql, used) if used else con.execute(sql)
    names = [d[0] for d in result.description or []]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Is there a table or view of this name in the warehouse's main schema?"""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_name = ? AND table_schema = 'main'",
        [table],
    ).fetchone()
    return bool(found and found[0])


def section(
    con: duckdb.DuckDBPyConnection,
    table: str,
    sql: str,
    params: dict[str, Any] | None = None,
    filtered: bool = True,
) -> Section:
    """Rows of `sql` over `table`, or an empty state naming the command that fills it."""
    if not exists(con, table):
        return Section(empty=f"No {table} yet — run `{_fill(table)}`.")
    found = rows(con, sql, params)
    if found:
        return Section(found)
    # `table` is one of this package's constants, never a request value.
    if con.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is None:
        return Section(empty=f"{table} is empty — run `{_fill(table)}`.")
    return Section(empty="Nothing matches these filters." if filtered else "Nothing here yet.")


def _fill(table: str) -> str:
    return HOW_TO_FILL.get(table) or HOW_TO_FILL["mart_"]
