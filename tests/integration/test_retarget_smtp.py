"""The outbox delivered over real SMTP to the aiosmtpd sink on loopback: retries, faults, crashes."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from cartpulse.retarget import outbox
from cartpulse.retarget.outbox import RetryPolicy
from cartpulse.retarget.sink import RunningSink, start_sink
from cartpulse.retarget.smtp import Delivery, SendReport, SmtpSender, drain_outbox, send_due
from cartpulse.settings import SmtpSettings

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
NO_JITTER = RetryPolicy(base_s=5, max_s=600, max_attempts=8, jitter=0.0)


class FakeClock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = T0
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def make_email(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Cartpulse Shop <shop@example.com>"
    msg["To"] = f"Ann Müller <ann{n}@example.com>"
    msg["Subject"] = "Ihr Warenkorb wartet – 10 % Rabatt"
    msg["Message-ID"] = f"<cart-{n}.sess-{n}@cartpulse.example>"
    msg["List-Unsubscribe"] = f"<http://127.0.0.1:8000/u/token{n}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(f"Hallo Ann,\nIhr Warenkorb #{n} wartet. Grüße!\n")
    msg.add_alternative(f"<p>Hallo Ann, Warenkorb <b>#{n}</b> wartet. Grüße!</p>", subtype="html")
    return msg


def queue(
    con: duckdb.DuckDBPyConnection, emails: list[EmailMessage], to: list[str] | None = None
) -> list[str]:
    """Enqueue the emails as mailable decisions the way the engine would; returns their ids."""
    encoded = [outbox.encode_message(m) for m in emails]
    n = len(emails)
    to = to or [m["To"].addresses[0].addr_spec for m in emails]
    rows = pa.table(
        {
            "message_id": [e.message_id for e in encoded],
            "user_session": [f"sess-{i}" for i in range(n)],
            "session_start": [T0 - timedelta(minutes=40)] * n,
            "user_id": list(range(n)),
            "email": to,
            "holdout": [False] * n,
            "offer_kind": ["percent"] * n,
            "coupon": [f"CP-{i}" for i in range(n)],
            "cart_value": [59.9] * n,
            "expired_at": [T0] * n,
            "queued_at": [T0] * n,
            "message": [e.data for e in encoded],
        }
    )
    with outbox.committed(con):
        outbox.enqueue(con, rows)
    return [e.message_id for e in encoded]


def row(con: duckdb.DuckDBPyConnection, message_id: str) -> dict[str, object]:
    found = con.execute(
        "SELECT status, attempts, reason, smtp_response FROM retarget_messages "
        "WHERE message_id = ?",
        [message_id],
    ).fetchone()
    assert found is not None
    return dict(zip(("status", "attempts", "reason", "smtp_response"), found, strict=True))


@pytest.fixture
def con(tmp_path: Path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    outbox.ensure_schema(connection)
    yield connection
    connection.close()


@pytest.fixture
def sink(tmp_path: Path):
    running = start_sink(tmp_path / "maildir", 0)
    yield running
    running.stop()


def smtp_settings(sink_or_port: RunningSink | int, **extra: object) -> SmtpSettings:
    port = sink_or_port if isinstance(sink_or_port, int) else sink_or_port.port
    return SmtpSettings(host="127.0.0.1", port=port, **extra)


def test_received_mail_equals_what_was_queued_over_one_connection(con, sink):
    emails = [make_email(i) for i in range(3)]
    ids = queue(con, emails)
    report = send_due(con, SmtpSender(smtp_settings(sink), timeout_s=5), T0)
    assert report == SendReport(sent=3)
    received = sink.messages()
    assert [m["Message-ID"] for m in received] == ids
    for sent, got in zip(emails, received, strict=True):
        assert got.items() == sent.items()
        for kind in ("plain", "html"):
            got_part, sent_part = got.get_body((kind,)), sent.get_body((kind,))
            assert got_part is not None and sent_part is not None
            assert got_part.get_content() == sent_part.get_content()
    assert sink.handler.connections == 1  # the run reused one SMTP connection
    assert all(row(con, i)["status"] == "sent" for i in ids)
    assert str(row(con, ids[0])["smtp_response"]).startswith("250 OK stored as ")
    assert outbox.counts(con)["sent"] == 3


def test_server_down_then_up_is_retried_with_backoff_and_delivered_once(con, tmp_path):
    probe = start_sink(tmp_path / "maildir", 0)
    port = probe.port
    probe.stop()  # nothing listens on `port` now: connection refused
    (message_id,) = queue(con, [make_email(1)])
    clock = FakeClock()
    sinks: list[RunningSink] = []

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.slept) == 3:  # the relay comes back during the third wait
            sinks.append(start_sink(tmp_path / "maildir", port))

    sender = SmtpSender(smtp_settings(port), timeout_s=5)
    try:
        report = drain_outbox(con, sender, policy=NO_JITTER, clock=clock, sleep=sleep)
    finally:
        for running in sinks:
            running.stop()
    assert clock.slept == [5, 10, 20]
    assert report == SendReport(sent=1, retried=3)
    assert [m["Message-ID"] for m in sinks[0].messages()] == [message_id]
    assert row(con, message_id)["status"] == "sent"
    assert row(con, message_id)["attempts"] == 4


def test_421_is_retried_then_delivered_once(con, sink):
    (message_id,) = queue(con, [make_email(1)])
    sink.fail_next(421, count=2, text="4.3.2 try again later")
    clock = FakeClock()
    sender = SmtpSender(smtp_settings(sink), timeout_s=5)
    report = drain_outbox(con, sender, policy=NO_JITTER, clock=clock, sleep=clock.sleep)
    assert report == SendReport(sent=1, retried=2)
    assert clock.slept == [5, 10]
    assert len(sink.messages()) == 1
    assert row(con, message_id)["attempts"] == 3


def test_550_fails_with_the_servers_reason_and_the_run_goes_on(con, sink):
    bad, good = queue(con, [make_email(1), make_email(2)])
    sink.fail_next(550, stage="rcpt", text="5.1.1 mailbox unavailable")
    report = send_due(con, SmtpSender(smtp_settings(sink), timeout_s=5), T0)
    assert report == SendReport(sent=1, failed=1)
    assert row(con, bad) == {
        "status": "failed", "attempts": 1, "reason": "550 5.1.1 mailbox unavailable",
        "smtp_response": None,
    }  # fmt: skip
    assert [m["Message-ID"] for m in sink.messages()] == [good]
    assert sink.handler.connections == 1  # RSET after the 550 kept the connection usable


def test_gives_up_after_max_attempts_with_the_last_reason(con, tmp_path):
    probe = start_sink(tmp_path / "maildir", 0)
    port = probe.port
    probe.stop()
    (message_id,) = queue(con, [make_email(1)])
    clock = FakeClock()
    policy = RetryPolicy(base_s=5, max_attempts=3, jitter=0.0)
    report = drain_outbox(
        con, SmtpSender(smtp_settings(port)), policy=policy, clock=clock, sleep=clock.sleep
    )
    assert report == SendReport(failed=1, retried=2)
    failed = row(con, message_id)
    assert failed["status"] == "failed"
    assert str(failed["reason"]).startswith("gave up after 3 attempts: connect 127.0.0.1:")
    assert "ConnectionRefusedError" in str(failed["reason"])


def test_non_ascii_recipient_goes_out_with_smtputf8(con, sink):
    (message_id,) = queue(con, [make_email(1)], to=["jürgen@exämple.com"])
    assert send_due(con, SmtpSender(smtp_settings(sink), timeout_s=5), T0) == SendReport(sent=1)
    assert [m["Message-ID"] for m in sink.messages()] == [message_id]


class CrashError(Exception):
    """Stands for the process dying right after the server accepted a message."""


class CrashAfterSend(SmtpSender):
    def send(self, message: bytes, recipient: str) -> Delivery:
        delivery = super().send(message, recipient)
        assert delivery.outcome == "accepted"
        raise CrashError


def test_crash_between_send_and_mark_sent_resends_same_message_id_stored_once(tmp_path, sink):
    path = str(tmp_path / "crash.duckdb")
    con = duckdb.connect(path)
    outbox.ensure_schema(con)
    (message_id,) = queue(con, [make_email(7)])
    with pytest.raises(CrashError):
        send_due(con, CrashAfterSend(smtp_settings(sink), timeout_s=5), T0)
    con.close()  # the "process" is gone; what it committed is what a restart sees

    restarted = duckdb.connect(path)
    try:
        assert row(restarted, message_id)["status"] == "sending"
        report = send_due(restarted, SmtpSender(smtp_settings(sink), timeout_s=5), T0)
        assert report == SendReport(sent=1)
        assert row(restarted, message_id)["status"] == "sent"
        assert row(restarted, message_id)["attempts"] == 2
        assert str(row(restarted, message_id)["smtp_response"]) == "250 OK duplicate dropped"
    finally:
        restarted.close()
    assert [m["Message-ID"] for m in sink.messages()] == [message_id]
    assert sink.duplicates == 1


def test_sink_remembers_message_ids_across_restarts(tmp_path):
    folder = tmp_path / "maildir"
    msg = outbox.encode_message(make_email(1))
    for _ in range(2):
        con = duckdb.connect()
        outbox.ensure_schema(con)
        queue(con, [make_email(1)])
        with start_sink(folder, 0) as running:
            assert send_due(con, SmtpSender(smtp_settings(running)), T0).sent == 1
            assert len(running.messages()) == 1
        con.close()
    assert running.duplicates == 1
    assert running.messages()[0]["Message-ID"] == msg.message_id


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("TLS tests need the `openssl` command to make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def tls_contexts(certificate: tuple[Path, Path]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = certificate
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


def test_starttls_with_login_delivers(con, tmp_path, certificate):
    server_tls, client_tls = tls_contexts(certificate)
    with start_sink(
        tmp_path / "maildir", 0, tls_context=server_tls, credentials=("shop", "s3cret")
    ) as running:
        settings = smtp_settings(running, security="starttls", username="shop", password="s3cret")
        (message_id,) = queue(con, [make_email(1)])
        report = send_due(con, SmtpSender(settings, timeout_s=5, ssl_context=client_tls), T0)
        assert report == SendReport(sent=1)
        assert [m["Message-ID"] for m in running.messages()] == [message_id]


def test_wrong_password_is_retried_not_lost(con, tmp_path, certificate):
    server_tls, client_tls = tls_contexts(certificate)
    with start_sink(
        tmp_path / "maildir", 0, tls_context=server_tls, credentials=("shop", "s3cret")
    ) as running:
        settings = smtp_settings(running, security="starttls", username="shop", password="wrong")
        (message_id,) = queue(con, [make_email(1)])
        report = send_due(con, SmtpSender(settings, timeout_s=5, ssl_context=client_tls), T0)
        assert report == SendReport(retried=1)
        assert row(con, message_id)["status"] == "queued"
        assert "535" in str(row(con, message_id)["reason"])
        assert running.messages() == []


def test_implicit_tls_delivers(con, tmp_path, certificate):
    server_tls, client_tls = tls_contexts(certificate)
    with start_sink(tmp_path / "maildir", 0, tls_context=server_tls, implicit_tls=True) as running:
        settings = smtp_settings(running, security="ssl")
        queue(con, [make_email(1)])
        report = send_due(con, SmtpSender(settings, timeout_s=5, ssl_context=client_tls), T0)
        assert report == SendReport(sent=1)
        assert len(running.messages()) == 1
