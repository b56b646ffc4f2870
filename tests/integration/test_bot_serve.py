"""`cartpulse serve` against a flood: per-user 429s, other users flow, one alert on the webhook."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from tests.serve_process import Serve, free_port, post_events
from tests.webhook_receiver import Receiver


def carts(user: int, count: int, start: dt.datetime) -> bytes:
    """NDJSON: `count` carts by one user, 2 s apart in event time, no views."""
    rows: list[dict[str, Any]] = [
        {
            "event_time": (start + dt.timedelta(seconds=2 * i)).isoformat(),
            "event_type": "cart",
            "product_id": str(1_000 + i),
            "price": "4.50",
            "user_id": str(user),
            "user_session": f"flood-{user}",
        }
        for i in range(count)
    ]
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def test_flooding_user_is_shed_others_flow_and_one_alert_is_posted(tmp_path: Path) -> None:
    receiver = Receiver(free_port())
    receiver.start()
    env = {
        "CARTPULSE_COLLECTOR__USER_RATE_LIMIT_EVENTS_PER_S": "5",
        "CARTPULSE_COLLECTOR__USER_RATE_LIMIT_BURST_S": "10",
        "CARTPULSE_BOTS__WEBHOOK_URL": f"http://127.0.0.1:{receiver.port}/alerts",
        "CARTPULSE_BOTS__WEBHOOK_SECRET": "a-shared-webhook-secret",
    }
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    try:
        with Serve(tmp_path / "home", env) as server:
            # A full bucket lets one big request through (slowed down, never refused forever)...
            assert post_events(server.url, carts(66, 60, start)).status == 202
            # ...then the same user is over budget: 429 with a Retry-After, nothing stored.
            shed = post_events(server.url, carts(66, 5, start + dt.timedelta(minutes=3)))
            assert shed.status == 429
            assert int(shed.headers["retry-after"]) >= 1
            assert "user_id 66" in shed.json()["detail"]
            # Other users keep flowing, under the same write key.
            assert post_events(server.url, carts(77, 5, start)).status == 202
            deadline = time.monotonic() + 30
            while not receiver.received and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)  # room for a duplicate to show up, if there were one
            metrics = server.get("/metrics").body.decode()
    finally:
        receiver.stop()
    assert len(receiver.received) == 1, receiver.received
    headers, body = receiver.received[0]
    alert = json.loads(body)
    assert alert["user_id"] == 66 and "carts_without_views" in alert["rules"]
    assert alert["evidence"]["carts"] == 60
    assert headers["Idempotency-Key"] == alert["alert_id"]
    assert headers["X-Cartpulse-Signature"].startswith("sha256=")
    assert "cartpulse_bot_alerts 1.0" in metrics
    assert "cartpulse_bot_alerts_undelivered 0.0" in metrics
    assert "cartpulse_events_user_limited_total 5.0" in metrics
