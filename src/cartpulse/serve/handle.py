"""How other commands find a running `serve`: `state/serve.json` and a local admin token.

DuckDB lets one process open a database file for writing and no other process open it at
all meanwhile, so while `serve` owns `warehouse.duckdb`, `cartpulse query` sends its SQL to
`serve` instead. The token is a file readable only by the home's owner: whoever can read
the home can query it, nobody else.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from cartpulse.home_secrets import home_secret_file
from cartpulse.query import QueryError, QueryResult
from cartpulse.settings import Settings

_HANDLE = "serve.json"
_TOKEN = "admin.token"


def admin_token(settings: Settings) -> str:
    """The home's local admin token (created on first use, mode 0600)."""
    return home_secret_file(settings.state_dir / _TOKEN)[0]


def write_handle(settings: Settings, url: str) -> None:
    """Announce this process as the home's `serve`."""
    path = settings.state_dir / _HANDLE
    path.write_text(json.dumps({"pid": os.getpid(), "url": url}))


def remove_handle(settings: Settings) -> None:
    """Withdraw the announcement (clean shutdown)."""
    (settings.state_dir / _HANDLE).unlink(missing_ok=True)


def running_serve(settings: Settings) -> dict[str, Any] | None:
    """`{"pid", "url"}` of the `serve` that owns this home, if one is alive."""
    path = settings.state_dir / _HANDLE
    try:
        handle: dict[str, Any] = json.loads(path.read_text())
        os.kill(int(handle["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return handle


def query_running_serve(settings: Settings, sql: str) -> QueryResult | None:
    """Ask the running `serve` to run a read-only query; None if no `serve` runs."""
    body = call_running_serve(settings, "/v1/query", {"sql": sql}, timeout_s=300)
    if body is None:
        return None
    return QueryResult(body["columns"], [tuple(r) for r in body["rows"]])


def call_running_serve(
    settings: Settings, path: str, payload: dict[str, Any], timeout_s: float
) -> dict[str, Any] | None:
    """POST to the running `serve` with the admin token; None if no `serve` runs."""
    handle = running_serve(settings)
    if handle is None:
        return None
    request = urllib.request.Request(
        f"{handle['url']}{path}",
        data=json.dumps(payload).encode(),
        headers={
            "Authorization": f"Bearer {admin_token(settings)}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("detail", str(exc))
        raise QueryError(str(detail)) from None
    except urllib.error.URLError as exc:
        raise QueryError(f"cartpulse serve at {handle['url']} did not answer: {exc}") from None
    return body
