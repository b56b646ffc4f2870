"""Reading dashboard sections from the serving store: parameterised SQL and empty states.

The SQL runs on DuckDB and on PostgreSQL alike (see cartpulse.sinks.serving_read): `?`
placeholders only, and functions both stores have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cartpulse.sinks.serving_read import ServingReader

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


def rows(reader: ServingReader, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Rows of `sql` as dicts, its `?` placeholders bound to `params` in order."""
    result: list[dict[str, Any]] = reader.query(sql, params).to_pylist()
    return result


def exists(reader: ServingReader, table: str) -> bool:
    """Is there a table or view of this name where the store keeps its serving tables?

    That is the schema `main` of warehouse.duckdb, and the connection's current schema in
    PostgreSQL (where the publisher creates its tables): `current_schema()` in both.
    """
    found = rows(
        reader,
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = ? "
        "AND table_schema = current_schema() AND table_catalog = current_database()",
        [table],
    )
    return bool(found and found[0]["n"])


def section(
    reader: ServingReader,
    table: str,
    sql: str,
    params: Sequence[Any] = (),
    filtered: bool = True,
) -> Section:
    """Rows of `sql` over `table`, or an empty state naming the command that fills it."""
    if not exists(reader, table):
        return Section(empty=f"No {table} yet — run `{_fill(table)}`.")
    found = rows(reader, sql, params)
    if found:
        return Section(found)
    # `table` is one of this package's constants, never a request value.
    if not rows(reader, f"SELECT 1 AS one FROM {table} LIMIT 1"):
        return Section(empty=f"{table} is empty — run `{_fill(table)}`.")
    return Section(empty="Nothing matches these filters." if filtered else "Nothing here yet.")


def _fill(table: str) -> str:
    return HOW_TO_FILL.get(table) or HOW_TO_FILL["mart_"]
