"""The serving tables mirrored to PostgreSQL: names, natural keys and JSON columns."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from cartpulse.sinks.postgres.columns import quote_ident


@dataclass(frozen=True)
class ServingTable:
    """One DuckDB serving table and how it is keyed in PostgreSQL."""

    name: str
    keys: tuple[str, ...]
    json_columns: tuple[str, ...] = ()
    """VARCHAR columns holding JSON text, stored as JSONB."""
    exclude: tuple[str, ...] = ()
    """Columns not mirrored (e.g. rendered email bytes)."""

    def schema(self, con: duckdb.DuckDBPyConnection) -> pa.Schema:
        """The mirrored columns, as DuckDB exports them to Arrow."""
        sql = f"SELECT {self.select_list()} FROM {quote_ident(self.name)} LIMIT 0"
        return con.sql(sql).to_arrow_table().schema

    def select_list(self) -> str:
        """`*` without the excluded columns."""
        if not self.exclude:
            return "*"
        return "* EXCLUDE (" + ", ".join(quote_ident(c) for c in self.exclude) + ")"


#: Every stream output that BI tools read; `retarget_messages` without the rendered message.
SERVING_TABLES: tuple[ServingTable, ...] = (
    ServingTable("product_sales_minute", ("window_start", "product_id")),
    ServingTable("abandoned_carts", ("user_session", "session_start")),
    ServingTable("retarget_messages", ("message_id",), exclude=("message",)),
    ServingTable("bot_alerts", ("user_id", "detected_at", "rule"), json_columns=("evidence",)),
    ServingTable("dq_counts", ("minute", "reason")),
)

#: Views created in PostgreSQL over the mirrored tables, as in DuckDB.
SERVING_VIEWS: dict[str, str] = {
    "product_sales_total": (
        "SELECT product_id, sum(purchases)::BIGINT AS purchases, sum(revenue) AS revenue, "
        "max(window_start) AS last_window FROM product_sales_minute GROUP BY product_id"
    ),
}

#: Where the publisher records what it published, in the same transaction as the rows.
SYNC_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS cartpulse_sync (
  table_name TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  row_count BIGINT NOT NULL,
  content_hash BIGINT NOT NULL,
  rows_written BIGINT NOT NULL,
  published_at TIMESTAMPTZ NOT NULL
)
"""

RECORD_SYNC_SQL = """
INSERT INTO cartpulse_sync AS s
  (table_name, kind, row_count, content_hash, rows_written, published_at)
VALUES (%s, %s, %s, %s, %s, now())
ON CONFLICT (table_name) DO UPDATE SET kind = excluded.kind, row_count = excluded.row_count,
  content_hash = excluded.content_hash, rows_written = s.rows_written + excluded.rows_written,
  published_at = excluded.published_at
"""


def existing_tables(con: duckdb.DuckDBPyConnection, prefix: str = "") -> list[str]:
    """Base tables of DuckDB's main schema whose name starts with `prefix`."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "AND table_catalog = current_database() AND table_type = 'BASE TABLE' "
        "AND starts_with(table_name, ?) ORDER BY table_name",
        [prefix],
    ).fetchall()
    return [str(r[0]) for r in rows]
