"""Deliver outbox rows over SMTP: after commit, at least once, with the same Message-ID.

Crash safety: a row is marked `sending` and committed before its SMTP transaction and marked
`sent` after the server accepted it. A crash in between leaves the row in `sending`; the next
`send_due` re-sends the stored bytes unchanged, so the duplicate carries the same Message-ID and
the receiving side (the demo sink, or any store that deduplicates by Message-ID) drops it.
Only one sender may work on an outbox at a time (DuckDB allows one writer process anyway).
"""

from __future__ import annotations

import logging
import random
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import Literal, Protocol

import duckdb

from cartpulse.delivery_loop import deliver_until_stopped
from cartpulse.retarget import outbox
from cartpulse.retarget.outbox import OutboxRow, RetryPolicy
from cartpulse.settings import SmtpSettings

log = logging.getLogger(__name__)

Outcome = Literal["accepted", "transient", "permanent"]
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What happened to one message: the outcome and the server's reply (or the error)."""

    outcome: Outcome
    response: str
    connected: bool = True
    """False when the relay could not be reached at all, so the rest of a run is deferred too."""


class MessageSender(Protocol):
    """Anything that can hand one message to a mail server (SmtpSender, test doubles)."""

    def send(self, message: bytes, recipient: str) -> Delivery:
        """Deliver `message` to `recipient`; never raises for mail-server problems."""
        ...

    def close(self) -> None:
        """Release the connection held between messages of a run."""
        ...


@dataclass(slots=True)
class SendReport:
    """Counts of one or more `send_due` runs."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    suppressed: int = 0

    def __add__(self, other: SendReport) -> SendReport:
        """Sum two reports."""
        return SendReport(
            self.sent + other.sent,
            self.failed + other.failed,
            self.retried + other.retried,
            self.suppressed + other.suppressed,
        )


def classify_reply(code: int) -> Outcome:
    """2xx accepted, 5xx permanent; 4xx and anything odd (e.g. -1, a dropped line) transient."""
    if 200 <= code < 300:
        return "accepted"
    if 500 <= code < 600:
        return "permanent"
    return "transient"


class SmtpSender:
    """Sends messages through the configured relay, reusing one connection per run."""

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        timeout_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Prepare a sender; nothing connects until the first message."""
        self.settings = settings
        self.timeout_s = timeout_s
        self._ssl_context = ssl_context
        self._envelope_from = parseaddr(settings.sender)[1]
        if not self._envelope_from:
            raise ValueError(f"setting smtp.sender = {settings.sender!r} has no email address")
        self._smtp: smtplib.SMTP | None = None
        if settings.username and settings.security == "none" and not _is_loopback(settings.host):
            log.warning("smtp_plaintext_login host=%s hint=set smtp.security", settings.host)

    def send(self, message: bytes, recipient: str) -> Delivery:
        """Run one SMTP transaction; classify the outcome instead of raising."""
        try:
            smtp = self._connection()
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            level = logging.ERROR if _is_config_error(exc) else logging.WARNING
            log.log(level, "smtp_connect_failed host=%s error=%r", self._where(), _describe(exc))
            return Delivery("transient", f"connect {self._where()}: {_describe(exc)}", False)
        try:
            return self._transaction(smtp, message, recipient)
        except smtplib.SMTPResponseException as exc:
            return self._refused(smtp, exc.smtp_code, exc.smtp_error)
        except (OSError, smtplib.SMTPException) as exc:
            # Dropped line, reset, timeout: the connection state is unknown, start afresh.
            self.close()
            return Delivery("transient", _describe(exc))

    def close(self) -> None:
        """Say QUIT (or just drop the socket when the line is already broken)."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            self._smtp = self._open()
        return self._smtp

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        smtp: smtplib.SMTP
        if s.security == "ssl":
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=self.timeout_s, context=self._tls())
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=self.timeout_s)
        try:
            smtp.ehlo_or_helo_if_needed()
            if s.security == "starttls":
                smtp.starttls(context=self._tls())
                smtp.ehlo_or_helo_if_needed()
            if s.username:
                smtp.login(s.username, s.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _transaction(self, smtp: smtplib.SMTP, message: bytes, recipient: str) -> Delivery:
        options = []
        if not (recipient.isascii() and self._envelope_from.isascii()):
            if not smtp.has_extn("smtputf8"):
                return Delivery(
                    "permanent", f"non-ASCII address {recipient!r}: relay lacks SMTPUTF8"
                )
            options.append("SMTPUTF8")  # makes smtplib send the commands as UTF-8
        if smtp.has_extn("size"):
            options.append(f"SIZE={len(message)}")
        if not message.isascii() and smtp.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        code, reply = smtp.mail(self._envelope_from, options)
        if code != 250:
            return self._refused(smtp, code, reply)
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            return self._refused(smtp, code, reply)
        code, reply = smtp.data(message)
        if code != 250:
            return self._refused(smtp, code, reply)
        return Delivery("accepted", _reply_text(code, reply))

    def _refused(self, smtp: smtplib.SMTP, code: int, reply: bytes | str) -> Delivery:
        """The server said no: reset the transaction so the connection serves the next row."""
        if code == 421:  # "service closing": the server hangs up; the next message reconnects
            self.close()
        elif self._smtp is not None:
            try:
                smtp.rset()
            except (OSError, smtplib.SMTPException):
                self.close()
        return Delivery(classify_reply(code), _reply_text(code, reply))

    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"


def send_due(
    con: duckdb.DuckDBPyConnection,
    sender: MessageSender,
    now: datetime | None = None,
    *,
    limit: int = 100,
    policy: RetryPolicy | None = None,
    clock: Clock | None = None,
    rand: Callable[[], float] = random.random,
) -> SendReport:
    """Deliver the rows due at `now` (leftovers in `sending` first); call outside a transaction."""
    clock = clock or _utc_now
    policy = policy or RetryPolicy()
    rows = outbox.due(con, now or clock(), limit)
    report = SendReport()
    try:
        for index, row in enumerate(rows):
            if _suppress_if_unmailable(con, row, report) or _abandon_poison(
                con, row, policy, report
            ):
                continue
            with outbox.committed(con):  # committed before SMTP: a crash after DATA re-sends
                attempt = outbox.mark_sending(con, row.message_id)
            assert row.message is not None and row.email is not None  # checked just above
            delivery = sender.send(row.message, row.email)
            with outbox.committed(con):
                _record(con, row, attempt, delivery, policy, clock(), rand, report)
            if not delivery.connected:
                _defer(con, rows[index + 1 :], delivery, policy, clock(), rand, report)
                break
    finally:
        sender.close()
    return report


def drain_outbox(
    con: duckdb.DuckDBPyConnection,
    sender: MessageSender,
    *,
    policy: RetryPolicy | None = None,
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
) -> SendReport:
    """Send until nothing is queued or sending, sleeping until each retry is due."""
    clock = clock or _utc_now
    total = SendReport()
    while True:
        total += send_due(con, sender, clock(), policy=policy, clock=clock, rand=rand)
        wake = outbox.next_due_at(con)
        if wake is None:
            return total
        wait_s = (wake - clock()).total_seconds()
        if wait_s > 0:
            sleep(wait_s)


def _suppress_if_unmailable(
    con: duckdb.DuckDBPyConnection, row: OutboxRow, report: SendReport
) -> bool:
    """Last guard before the wire: the control group and rows without address are never mailed."""
    reason = _unmailable_reason(row)
    if reason is None:
        return False
    with outbox.committed(con):
        outbox.mark_suppressed(con, row.message_id, reason)
    report.suppressed += 1
    log.warning("retarget_suppressed message_id=%s reason=%s", row.message_id, reason)
    return True


def _abandon_poison(
    con: duckdb.DuckDBPyConnection, row: OutboxRow, policy: RetryPolicy, report: SendReport
) -> bool:
    """A row left in `sending` is re-sent, unless it has crashed the sender too often already."""
    if row.status != "sending":
        return False
    if not policy.gives_up(row.attempts):
        log.warning("retarget_resend message_id=%s reason=left_in_sending", row.message_id)
        return False
    # Without this, a message that kills the sender every time would block the outbox forever.
    reason = f"gave up after {row.attempts} attempts: delivery never completed (left in sending)"
    with outbox.committed(con):
        outbox.mark_failed(con, row.message_id, reason)
    report.failed += 1
    log.error("retarget_failed message_id=%s reason=%r", row.message_id, reason)
    return True


def _unmailable_reason(row: OutboxRow) -> str | None:
    if row.holdout:
        return "holdout"
    if not row.email:
        return "no_recipient"
    if row.message is None:
        return "no_message"
    return None


def _record(
    con: duckdb.DuckDBPyConnection,
    row: OutboxRow,
    attempt: int,
    delivery: Delivery,
    policy: RetryPolicy,
    now: datetime,
    rand: Callable[[], float],
    report: SendReport,
) -> None:
    """Turn a delivery outcome into the row's next state and count it."""
    mid = row.message_id
    if delivery.outcome == "accepted":
        outbox.mark_sent(con, mid, now, delivery.response)
        report.sent += 1
        log.info("retarget_sent message_id=%s attempt=%d reply=%r", mid, attempt, delivery.response)
    elif delivery.outcome == "permanent":
        outbox.mark_failed(con, mid, delivery.response)
        report.failed += 1
        log.error("retarget_failed message_id=%s reason=%r", mid, delivery.response)
    elif policy.gives_up(attempt):
        reason = f"gave up after {attempt} attempts: {delivery.response}"
        outbox.mark_failed(con, mid, reason)
        report.failed += 1
        log.error("retarget_failed message_id=%s reason=%r", mid, reason)
    else:
        retry_at = now + timedelta(seconds=policy.delay_s(attempt, rand()))
        outbox.mark_retry(con, mid, retry_at, delivery.response)
        report.retried += 1
        log.warning(
            "retarget_retry message_id=%s attempt=%d retry_at=%s reason=%r",
            mid,
            attempt,
            retry_at.isoformat(),
            delivery.response,
        )


def _defer(
    con: duckdb.DuckDBPyConnection,
    rows: list[OutboxRow],
    delivery: Delivery,
    policy: RetryPolicy,
    now: datetime,
    rand: Callable[[], float],
    report: SendReport,
) -> None:
    """The relay is unreachable: schedule the rest of the run without dialling it per row."""
    for row in rows:
        if _suppress_if_unmailable(con, row, report):
            continue
        with outbox.committed(con):
            attempt = outbox.mark_sending(con, row.message_id)
            _record(con, row, attempt, delivery, policy, now, rand, report)


def _reply_text(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return f"{code} {' '.join(text.split())}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply_text(exc.smtp_code, exc.smtp_error)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _is_config_error(exc: BaseException) -> bool:
    """Errors a retry will not fix until someone changes smtp.* settings."""
    return isinstance(
        exc, smtplib.SMTPAuthenticationError | smtplib.SMTPNotSupportedError | ssl.SSLError
    )


def _is_loopback(host: str) -> bool:
    return host in {"localhost", "127.0.0.1", "::1"}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def run_sender(
    settings: SmtpSettings,
    con: duckdb.DuckDBPyConnection,
    stop: threading.Event,
    on_report: Callable[[SendReport], None] | None = None,
    idle_s: float = 0.1,
) -> None:
    """Deliver due messages until `stop` is set (live mode: `serve` and the latency bench)."""
    sender = SmtpSender(settings)

    def send_once() -> int:
        report = send_due(con, sender, limit=500)
        if on_report is not None:
            on_report(report)
        return report.sent + report.failed + report.retried

    try:
        deliver_until_stopped("sender", stop, send_once, idle_s)
    finally:
        sender.close()
