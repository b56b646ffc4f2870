"""Mirror the serving tables from DuckDB to PostgreSQL with idempotent, transactional upserts.

Each row carries a hash of its values (`_cartpulse_hash`). A publish compares the hashes of the
DuckDB table with those already in PostgreSQL: rows with a new hash are copied (COPY into a
temporary table, then `INSERT … ON CONFLICT (natural key) DO UPDATE`), rows whose hash is gone
are deleted. The rows and the `cartpulse_sync` record commit in one PostgreSQL transaction, and
the published hashes are read back from PostgreSQL after a restart: a crash at any point
neither loses nor duplicates a row, whichever process (the engine, the email sender, the
collector's data-quality counts) changed the DuckDB table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa

from cartpulse.duck import registered
from cartpulse.sinks.postgres.columns import (
    HASH_COLUMN,
    create_table_sql,
    csv_bytes,
    duckdb_select_list,
    quote_ident,
)
from cartpulse.sinks.postgres.connect import PostgresError, connect_postgres
from cartpulse.sinks.postgres.tables import (
    RECORD_SYNC_SQL,
    SERVING_TABLES,
    SERVING_VIEWS,
    SYNC_TABLE_DDL,
    ServingTable,
)

if TYPE_CHECKING:
    from cartpulse.sinks.postgres.connect import PgConnection

log = logging.getLogger(__name__)


@dataclass
class PublishReport:
    """Rows written and deleted per table by one publish."""

    upserted: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def changed(self) -> int:
        """Rows written or deleted in all tables."""
        return sum(self.upserted.values()) + sum(self.deleted.values())


def row_hash_sql(schema: pa.Schema) -> str:
    """A DuckDB expression hashing every mirrored column of a row into a BIGINT."""
    cols = ", ".join(quote_ident(f.name) for f in schema)
    return f"(hash({cols}) >> 1)::BIGINT"


def content_hash(hashes: np.ndarray) -> int:
    """One number for a table's content: the wrapping sum of its row hashes."""
    return int(hashes.astype(np.int64).sum(dtype=np.int64)) if hashes.size else 0


class ServingPublisher:
    """Publishes the serving tables of one warehouse to one PostgreSQL database."""

    def __init__(self, dsn: str, tables: Sequence[ServingTable] = SERVING_TABLES) -> None:
        self.dsn = dsn
        self.tables = tuple(tables)
        self._pg: PgConnection | None = None
        self._published: dict[str, np.ndarray] = {}

    def publish(self, duck: duckdb.DuckDBPyConnection) -> PublishReport:
        """Copy every change since the last publish; one PostgreSQL transaction per table."""
        started = time.perf_counter()
        pg = self._connection()
        report = PublishReport()
        duck.execute("BEGIN TRANSACTION")  # one consistent snapshot of every table
        try:
            for table in self.tables:
                up, down = self._publish_table(duck, pg, table)
                report.upserted[table.name], report.deleted[table.name] = up, down
        except Exception:
            self.reset()
            raise
        finally:
            duck.execute("ROLLBACK")
        report.elapsed_s = time.perf_counter() - started
        return report

    def reset(self) -> None:
        """Forget the connection and the published hashes (they are re-read from PostgreSQL)."""
        if self._pg is not None:
            self._pg.close()
        self._pg, self._published = None, {}

    close = reset

    def _connection(self) -> PgConnection:
        if self._pg is None or self._pg.closed:
            self._pg = connect_postgres(self.dsn)
            self._published = {}
        return self._pg

    def _publish_table(
        self, duck: duckdb.DuckDBPyConnection, pg: PgConnection, t: ServingTable
    ) -> tuple[int, int]:
        schema = t.schema(duck)
        if t.name not in self._published:
            self._published[t.name] = _prepare(pg, t, schema)
        published = self._published[t.name]
        row_hash = row_hash_sql(schema)
        current = _int64s(duck.sql(f"SELECT {row_hash} FROM {quote_ident(t.name)}"))
        with registered(
            duck,
            cartpulse_published=pa.table({"h": published}),
            cartpulse_current=pa.table({"h": current}),
        ):
            gone = _int64s(
                duck.sql("SELECT h FROM cartpulse_published ANTI JOIN cartpulse_current USING (h)")
            )
            changed = duck.sql(
                f"WITH cur AS (SELECT {t.select_list()}, {row_hash} AS {HASH_COLUMN} "
                f"FROM {quote_ident(t.name)}) "
                f"SELECT {duckdb_select_list(schema, t.json_columns)}, {HASH_COLUMN} FROM cur "
                f"ANTI JOIN cartpulse_published p ON cur.{HASH_COLUMN} = p.h"
            ).to_arrow_table()
        if changed.num_rows == 0 and gone.size == 0:
            return 0, 0
        with pg.transaction():
            if gone.size:
                pg.execute(
                    f"DELETE FROM {quote_ident(t.name)} WHERE {HASH_COLUMN} = ANY(%s)",
                    [gone.tolist()],
                )
            if changed.num_rows and published.size == 0:  # empty table: nothing to conflict with
                copy_rows(pg, t.name, changed)
            elif changed.num_rows:
                _upsert(pg, t, changed)
            pg.execute(
                RECORD_SYNC_SQL,
                [t.name, "serving", int(current.size), content_hash(current), changed.num_rows],
            )
        self._published[t.name] = current
        return int(changed.num_rows), int(gone.size)


def _int64s(relation: duckdb.DuckDBPyRelation) -> np.ndarray:
    column = relation.to_arrow_table().column(0)
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)


def _prepare(pg: PgConnection, t: ServingTable, schema: pa.Schema) -> np.ndarray:
    """Create (or, when its columns changed, recreate) the table; return its row hashes."""
    wanted = [*schema.names, HASH_COLUMN]
    with pg.transaction():
        pg.execute(SYNC_TABLE_DDL)
        have = [
            str(r[0])
            for r in pg.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "AND table_schema = current_schema() ORDER BY ordinal_position",
                [t.name],
            ).fetchall()
        ]
        if have and have != wanted:
            log.warning("postgres_table_recreated table=%s reason=columns_changed", t.name)
            pg.execute(f"DROP TABLE {quote_ident(t.name)} CASCADE")
        pg.execute(create_table_sql(t.name, schema, t.keys, t.json_columns, with_hash=True))
        for view, sql in SERVING_VIEWS.items():
            if t.name in sql:
                pg.execute(f"CREATE OR REPLACE VIEW {quote_ident(view)} AS {sql}")
        rows = pg.execute(f"SELECT {HASH_COLUMN} FROM {quote_ident(t.name)}").fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64)


def copy_rows(pg: PgConnection, table: str, rows: pa.Table) -> None:
    """COPY rows into `table` (CSV, one round trip per 64 KiB)."""
    cols = ", ".join(quote_ident(c) for c in rows.column_names)
    with pg.cursor().copy(f"COPY {quote_ident(table)} ({cols}) FROM STDIN (FORMAT csv)") as copy:
        copy.write(csv_bytes(rows))


def _upsert(pg: PgConnection, t: ServingTable, rows: pa.Table) -> None:
    """COPY rows into a temporary table, then insert them, replacing rows with the same key."""
    name = quote_ident(t.name)
    cols = ", ".join(quote_ident(c) for c in rows.column_names)
    pg.execute(f"CREATE TEMPORARY TABLE cartpulse_stage (LIKE {name}) ON COMMIT DROP")
    copy_rows(pg, "cartpulse_stage", rows)
    updates = ", ".join(
        f"{quote_ident(c)} = excluded.{quote_ident(c)}"
        for c in rows.column_names
        if c not in t.keys
    )
    keys = ", ".join(quote_ident(k) for k in t.keys)
    pg.execute(
        f"INSERT INTO {name} ({cols}) SELECT {cols} FROM cartpulse_stage "
        f"ON CONFLICT ({keys}) DO UPDATE SET {updates}"
    )


__all__ = ["PostgresError", "PublishReport", "ServingPublisher", "connect_postgres"]
