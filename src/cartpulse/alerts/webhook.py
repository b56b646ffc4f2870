"""Deliver queued bot alerts to a webhook: JSON POST, HMAC signature, retries with backoff.

Delivery is at least once: an alert is marked delivered only after a 2xx answer. A receiver
that sees the same `Idempotency-Key` twice (a retry after a lost answer) must treat it as
one alert; the key is the same however often the alert is sent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass

import duckdb

from cartpulse.alerts.outbox import QueuedAlert, due_alerts, mark_delivered, mark_retry
from cartpulse.delivery_loop import deliver_until_stopped
from cartpulse.settings import BotSettings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Cartpulse-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_MAX_BACKOFF_S = 300
# A receiver that answers these will not change its mind on a retry.
_TERMINAL_STATUSES = frozenset(range(400, 500)) - {408, 425, 429}


@dataclass
class DeliveryReport:
    """What one pass over the outbox did."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0


class WebhookError(Exception):
    """The receiver did not accept an alert; `terminal` if retrying cannot help."""

    def __init__(self, message: str, terminal: bool = False) -> None:
        super().__init__(message)
        self.terminal = terminal


def alert_payload(alert: QueuedAlert) -> bytes:
    """The JSON body of one alert."""
    body = {
        "alert_id": alert.alert_id,
        "user_id": alert.user_id,
        "detected_at": alert.detected_at,
        "rules": alert.rule.split(","),
        "score": alert.score,
        "evidence": json.loads(alert.evidence) if alert.evidence else None,
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def sign(body: bytes, secret: str) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of the exact body bytes with the shared secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """POSTs alerts to one URL."""

    def __init__(self, url: str, secret: str | None, timeout_s: float = 5.0) -> None:
        self.url, self.secret, self.timeout_s = url, secret, timeout_s

    def post(self, alert: QueuedAlert) -> None:
        """Send one alert; raises WebhookError unless the receiver answers 2xx."""
        body = alert_payload(alert)
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: alert.alert_id}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(body, self.secret)
        request = urllib.request.Request(self.url, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                answer.read()
        except urllib.error.HTTPError as exc:
            terminal = exc.code in _TERMINAL_STATUSES
            raise WebhookError(f"HTTP {exc.code} from {self.url}", terminal) from None
        except (urllib.error.URLError, OSError) as exc:
            raise WebhookError(f"cannot reach {self.url}: {exc}") from None


def deliver_due(
    con: duckdb.DuckDBPyConnection,
    sender: WebhookSender,
    max_attempts: int,
    now: dt.datetime | None = None,
    limit: int = 100,
) -> DeliveryReport:
    """Send every due alert once; failures are retried later with exponential backoff."""
    report = DeliveryReport()
    for alert in due_alerts(con, now or dt.datetime.now(dt.UTC), limit):
        try:
            sender.post(alert)
        except WebhookError as exc:
            give_up = exc.terminal or alert.attempts + 1 >= max_attempts
            wait_s = min(2**alert.attempts, _MAX_BACKOFF_S)
            at = (now or dt.datetime.now(dt.UTC)) + dt.timedelta(seconds=wait_s)
            mark_retry(con, alert, str(exc), at, failed=give_up)
            report.failed += give_up
            report.retried += not give_up
            log.warning(
                "alert_webhook_failed alert=%s error=%s final=%s", alert.alert_id, exc, give_up
            )
            continue
        mark_delivered(con, alert.alert_id, now or dt.datetime.now(dt.UTC))
        report.delivered += 1
    return report


def run_webhook(
    settings: BotSettings,
    con: duckdb.DuckDBPyConnection,
    stop: threading.Event,
    idle_s: float = 0.5,
) -> None:
    """Deliver alerts until `stop` is set (`serve` runs this in its own thread)."""
    if settings.webhook_url is None:
        return
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    sender = WebhookSender(settings.webhook_url, secret)

    def deliver_once() -> int:
        report = deliver_due(con, sender, settings.webhook_max_attempts)
        return report.delivered + report.retried + report.failed

    deliver_until_stopped("alert_webhook", stop, deliver_once, idle_s)
