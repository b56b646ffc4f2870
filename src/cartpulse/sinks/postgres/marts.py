"""Publish the dbt and model marts (`mart_*`) to PostgreSQL, each replaced atomically."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import duckdb
import numpy as np

from cartpulse.sinks.postgres.columns import (
    create_table_sql,
    duckdb_select_list,
    quote_ident,
)
from cartpulse.sinks.postgres.connect import connect_postgres
from cartpulse.sinks.postgres.publisher import content_hash, copy_rows, row_hash_sql
from cartpulse.sinks.postgres.tables import RECORD_SYNC_SQL, SYNC_TABLE_DDL, existing_tables

if TYPE_CHECKING:
    from cartpulse.sinks.postgres.connect import PgConnection

log = logging.getLogger(__name__)

#: Tables published as marts: everything dbt and `models score` write with this prefix.
MART_PREFIX = "mart_"


@dataclass
class MartsReport:
    """Marts replaced (with their rows) and marts left alone because they had not changed."""

    published: dict[str, int] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)


def publish_marts(duck: duckdb.DuckDBPyConnection, dsn: str) -> MartsReport:
    """Replace every changed `mart_*` table in PostgreSQL, one transaction per mart."""
    report = MartsReport()
    pg = connect_postgres(dsn)
    try:
        with pg.transaction():
            pg.execute(SYNC_TABLE_DDL)
        duck.execute("BEGIN TRANSACTION")
        try:
            for name in existing_tables(duck, MART_PREFIX):
                rows = _publish_mart(duck, pg, name)
                if rows is None:
                    report.unchanged.append(name)
                else:
                    report.published[name] = rows
        finally:
            duck.execute("ROLLBACK")
    finally:
        pg.close()
    return report


def _publish_mart(duck: duckdb.DuckDBPyConnection, pg: PgConnection, name: str) -> int | None:
    """Replace one mart unless its row count and content hash are those published last."""
    schema = duck.sql(f"SELECT * FROM {quote_ident(name)} LIMIT 0").to_arrow_table().schema
    hashes = duck.sql(f"SELECT {row_hash_sql(schema)} FROM {quote_ident(name)}").to_arrow_table()
    values = np.asarray(hashes.column(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    fingerprint = (int(values.size), content_hash(values))
    last = pg.execute(
        "SELECT row_count, content_hash FROM cartpulse_sync WHERE table_name = %s", [name]
    ).fetchone()
    if last is not None and (int(last[0]), int(last[1])) == fingerprint and _exists(pg, name):
        return None
    rows = duck.sql(
        f"SELECT {duckdb_select_list(schema)} FROM {quote_ident(name)}"
    ).to_arrow_table()
    with pg.transaction():
        pg.execute(f"DROP TABLE IF EXISTS {quote_ident(name)}")
        pg.execute(create_table_sql(name, schema))
        copy_rows(pg, name, rows)
        pg.execute(RECORD_SYNC_SQL, [name, "mart", *fingerprint, rows.num_rows])
    log.info("mart_published table=%s rows=%d", name, rows.num_rows)
    return int(rows.num_rows)


def _exists(pg: PgConnection, name: str) -> bool:
    row = pg.execute("SELECT to_regclass(%s) IS NOT NULL", [quote_ident(name)]).fetchone()
    return bool(row and row[0])
