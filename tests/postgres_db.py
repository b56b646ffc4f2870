"""A fresh database on the machine's real PostgreSQL server (started if it is down)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

#: The server every PostgreSQL test uses; override with CARTPULSE_TEST_POSTGRES.
ADMIN_DSN = os.environ.get(
    "CARTPULSE_TEST_POSTGRES", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)


def _reachable() -> bool:
    try:
        psycopg.connect(ADMIN_DSN, connect_timeout=3).close()
    except psycopg.OperationalError:
        return False
    return True


def ensure_server() -> None:
    """Start the local cluster when nothing answers (pg_ctlcluster, as on this machine)."""
    if _reachable():
        return
    versions = (
        sorted(p.name for p in Path("/etc/postgresql").glob("*"))
        if Path("/etc/postgresql").is_dir()
        else []
    )
    if versions:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
            check=False,
            capture_output=True,
            timeout=60,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _reachable():
            return
        time.sleep(0.5)
    raise RuntimeError(f"PostgreSQL does not answer at {ADMIN_DSN!r} and could not be started")


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create `cartpulse_test_<random>`, yield its DSN, drop it afterwards."""
    ensure_server()
    name = f"cartpulse_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield psycopg.conninfo.make_conninfo(ADMIN_DSN, dbname=name)
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
