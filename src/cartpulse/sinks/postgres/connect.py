"""Connections to the PostgreSQL serving store (psycopg 3, an optional dependency)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import psycopg

    PgConnection: TypeAlias = psycopg.Connection[tuple[Any, ...]]

#: What to install when psycopg is missing.
INSTALL_HINT = "install the scale-out extra: pip install 'cartpulse[scale]'"


class PostgresError(Exception):
    """The PostgreSQL serving store cannot be reached or refused a write; the message says why."""


def connect_postgres(dsn: str) -> PgConnection:
    """An autocommit psycopg connection to `dsn` in UTC (group writes with `transaction()`)."""
    try:
        import psycopg
    except ImportError:
        raise PostgresError(
            f"serving.postgres_dsn is set but psycopg is missing: {INSTALL_HINT}"
        ) from None
    try:
        con = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PostgresError(
            f"cannot connect to PostgreSQL ({redact(dsn)}): {first}; check serving.postgres_dsn "
            "(CARTPULSE_SERVING__POSTGRES_DSN) and that the server runs"
        ) from None
    con.execute("SET TIME ZONE 'UTC'")
    return con


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
    except ImportError:
        return "<dsn>"
    try:
        parts = conninfo_to_dict(dsn)
    except Exception:
        return "<unparseable dsn>"
    if "password" in parts:
        parts["password"] = "***"
    return make_conninfo(**{k: str(v) for k, v in parts.items()})
