"""Stopping `serve` under load never loses an acknowledged event, nor duplicates one."""

from __future__ import annotations

import datetime as dt
import json
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.serve_process import Serve, post_events


def _batch(client: int, n: int, size: int) -> tuple[bytes, list[str]]:
    """`size` events, each with its own session id (so each can be found in the lake)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ids = [f"c{client}-b{n}-e{i}" for i in range(size)]
    lines = [
        json.dumps(
            {
                "event_time": (now - dt.timedelta(seconds=i % 50)).isoformat(),
                "event_type": "view",
                "product_id": 1000 + i,
                "price": 5.0,
                "user_id": 10_000 * client + n,
                "user_session": sid,
            }
        )
        for i, sid in enumerate(ids)
    ]
    return ("\n".join(lines) + "\n").encode(), ids


def _load(url: str, client: int, acked: list[str], stop: threading.Event) -> None:
    """Post batches until the server goes away; remember what was acknowledged."""
    n = 0
    while not stop.is_set():
        body, ids = _batch(client, n, 200)
        n += 1
        try:
            response = post_events(url, body)
        except OSError:
            return  # the server stopped listening
        if response.status == 202:
            assert response.json()["accepted"] == len(ids)
            acked.extend(ids)


def _lake_sessions(home: Path) -> dict[str, int]:
    result = run_cli(
        "query",
        "SELECT user_session, count(*) AS n FROM events GROUP BY 1",
        "--json",
        home=home,
    )
    assert result.code == 0, result.stderr
    return {r["user_session"]: r["n"] for r in result.json()}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_stop_during_load_keeps_every_acknowledged_event(tmp_path: Path, sig: int) -> None:
    home = tmp_path / "home"
    server = Serve(home).start()
    acked: list[str] = []
    stop = threading.Event()
    clients = [threading.Thread(target=_load, args=(server.url, c, acked, stop)) for c in range(3)]
    for c in clients:
        c.start()
    time.sleep(1.5)
    code = server.stop(sig)
    stop.set()
    for c in clients:
        c.join(timeout=60)
    assert len(acked) > 1000, "the load did not get going"
    if sig == signal.SIGTERM:
        assert code == 0, server.output()
        assert "stopped cleanly" in server.output()
    # Restart: a SIGKILLed serve left events in the log only; the restart archives them.
    Serve(home).start().stop()
    lake = _lake_sessions(home)
    missing = [s for s in acked if s not in lake]
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:3]}"
    doubled = {s: n for s, n in lake.items() if n > 1}
    assert not doubled, f"duplicated in the lake: {list(doubled.items())[:3]}"
