"""Alert delivery to a real local HTTP receiver: retries while it is down, one alert per episode."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from cartpulse.alerts.outbox import publish_alerts
from cartpulse.alerts.webhook import WebhookSender, deliver_due
from cartpulse.engine.store import ServingStore
from cartpulse.operators.bots import BOT_ALERTS_SCHEMA
from tests.serve_process import free_port
from tests.webhook_receiver import Receiver

SECRET = "receiver-shared-secret"
T0 = dt.datetime(2019, 10, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ServingStore]:
    """A serving store with two alerts committed, as the engine commits them."""
    store = ServingStore(tmp_path / "warehouse.duckdb")
    alerts = pa.Table.from_pylist(
        [
            {"user_id": 7, "detected_at": T0, "rule": "regular_pace", "score": 3.5,
             "evidence": json.dumps({"events": 900, "gap_cv": 0.08})},
            {"user_id": 8, "detected_at": T0, "rule": "carts_without_views,traffic_share",
             "score": 12.0, "evidence": json.dumps({"events": 400, "carts": 400})},
        ],
        schema=BOT_ALERTS_SCHEMA,
    )  # fmt: skip
    store.con.execute("BEGIN TRANSACTION")
    publish_alerts(store.con, alerts)
    store.con.execute("COMMIT")
    yield store
    store.close()


def outbox(store: ServingStore) -> list[dict[str, Any]]:
    """The outbox rows, by user."""
    rows: list[dict[str, Any]] = store.query(
        "SELECT user_id, status, attempts, last_error FROM bot_alert_outbox ORDER BY user_id"
    ).to_pylist()
    return rows


def test_receiver_down_then_up_gets_each_alert_once_signed(store: ServingStore) -> None:
    port = free_port()
    sender = WebhookSender(f"http://127.0.0.1:{port}/hook", SECRET, timeout_s=2)
    down = deliver_due(store.con, sender, max_attempts=5, now=T0)
    assert (down.delivered, down.retried) == (0, 2)
    assert [(r["status"], r["attempts"]) for r in outbox(store)] == [("queued", 1)] * 2
    assert "cannot reach" in outbox(store)[0]["last_error"]
    # Not due yet: the backoff keeps the sender from hammering a receiver that is down.
    assert deliver_due(store.con, sender, 5, now=T0).retried == 0

    receiver = Receiver(port)
    receiver.start()
    try:
        later = T0 + dt.timedelta(minutes=5)
        assert deliver_due(store.con, sender, 5, now=later).delivered == 2
        assert deliver_due(store.con, sender, 5, now=later + dt.timedelta(hours=1)).delivered == 0
    finally:
        receiver.stop()
    assert [r["status"] for r in outbox(store)] == ["delivered"] * 2
    keys = [h["Idempotency-Key"] for h, _ in receiver.received]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 2
    for headers, body in receiver.received:
        want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Cartpulse-Signature"] == want
        payload = json.loads(body)
        assert payload["alert_id"] == headers["Idempotency-Key"]
        assert payload["evidence"]["events"] in (900, 400)
    by_user = {json.loads(b)["user_id"]: json.loads(b) for _, b in receiver.received}
    assert by_user[8]["rules"] == ["carts_without_views", "traffic_share"]


def test_the_same_episode_committed_again_is_not_sent_again(store: ServingStore) -> None:
    port = free_port()
    receiver = Receiver(port)
    receiver.start()
    try:
        sender = WebhookSender(f"http://127.0.0.1:{port}/hook", None)
        assert deliver_due(store.con, sender, 5, now=T0).delivered == 2
        # The outbox holds each alert id once: publishing the same alert again sends nothing.
        again = store.query("SELECT * FROM bot_alerts WHERE user_id = 7")
        store.con.execute("BEGIN TRANSACTION")
        publish_alerts(store.con, again)
        store.con.execute("COMMIT")
        assert deliver_due(store.con, sender, 5, now=T0).delivered == 0
    finally:
        receiver.stop()
    assert len(receiver.received) == 2


def test_server_errors_retry_and_a_rejection_gives_up(store: ServingStore) -> None:
    port = free_port()
    receiver = Receiver(port)
    receiver.start()
    try:
        sender = WebhookSender(f"http://127.0.0.1:{port}/hook", None)
        receiver.status = 503
        assert deliver_due(store.con, sender, 5, now=T0).retried == 2
        receiver.status = 400
        report = deliver_due(store.con, sender, 5, now=T0 + dt.timedelta(minutes=1))
        assert report.failed == 2
    finally:
        receiver.stop()
    assert [(r["status"], r["attempts"]) for r in outbox(store)] == [("failed", 2)] * 2
    assert outbox(store)[0]["last_error"].startswith("HTTP 400")
