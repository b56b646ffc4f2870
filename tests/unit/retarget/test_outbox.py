"""The outbox state machine, enqueue idempotency and the retry schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import duckdb
import pyarrow as pa
import pytest

from cartpulse.retarget import outbox
from cartpulse.retarget.outbox import OutboxStateError, RetryPolicy
from cartpulse.retarget.smtp import Delivery, SendReport, classify_reply, send_due

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def decisions(ids: list[str], **overrides: list[object]) -> pa.Table:
    """Outbox input rows: queued, mailable, one per id, queued at T0."""
    n = len(ids)
    columns: dict[str, list[object]] = {
        "message_id": list(ids),
        "user_session": [f"s-{i}" for i in ids],
        "session_start": [T0 - timedelta(hours=1)] * n,
        "user_id": list(range(1, n + 1)),
        "email": [f"user{i}@example.com" for i in range(n)],
        "holdout": [False] * n,
        "offer_kind": ["free_shipping"] * n,
        "coupon": [None] * n,
        "cart_value": [42.5] * n,
        "expired_at": [T0] * n,
        "queued_at": [T0] * n,
        "message": [f"Message-ID: {i}\r\n\r\nhi\r\n".encode() for i in ids],
    }
    columns.update(overrides)
    return pa.table(columns)


@pytest.fixture
def con():
    connection = duckdb.connect()
    outbox.ensure_schema(connection)
    yield connection
    connection.close()


def status_of(con: duckdb.DuckDBPyConnection, message_id: str) -> tuple[object, ...]:
    row = con.execute(
        "SELECT status, attempts, reason, message IS NOT NULL, sent_at IS NOT NULL "
        "FROM retarget_messages WHERE message_id = ?",
        [message_id],
    ).fetchone()
    assert row is not None
    return row


def test_schema_is_the_documented_contract(con):
    outbox.ensure_schema(con)  # idempotent
    columns = [r[0] for r in con.execute("DESCRIBE retarget_messages").fetchall()]
    assert columns == [
        "message_id", "user_session", "session_start", "user_id", "email", "status", "reason",
        "holdout", "offer_kind", "coupon", "cart_value", "expired_at", "queued_at", "attempts",
        "next_attempt_at", "sent_at", "smtp_response", "message",
    ]  # fmt: skip


def test_enqueue_is_idempotent_by_message_id(con):
    assert outbox.enqueue(con, decisions(["<a@x>", "<b@x>"])) == 2
    assert outbox.enqueue(con, decisions(["<b@x>", "<c@x>"])) == 1
    assert outbox.counts(con)["queued"] == 3
    assert status_of(con, "<a@x>")[:2] == ("queued", 0)


def test_enqueue_commits_or_rolls_back_with_the_callers_transaction(con):
    con.execute("BEGIN TRANSACTION")
    outbox.enqueue(con, decisions(["<a@x>"]))
    con.execute("ROLLBACK")
    assert outbox.counts(con)["queued"] == 0
    con.execute("BEGIN TRANSACTION")
    outbox.enqueue(con, decisions(["<a@x>"]))
    con.execute("COMMIT")
    assert outbox.counts(con)["queued"] == 1


def test_enqueue_records_suppressed_decisions_without_bytes(con):
    rows = decisions(
        ["<h@x>"], status=["suppressed"], reason=["holdout"], holdout=[True], message=[None]
    )
    outbox.enqueue(con, rows)
    assert status_of(con, "<h@x>")[:3] == ("suppressed", 0, "holdout")
    assert outbox.due(con, T0, 10) == []


def keyed_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' "
        "AND starts_with(table_name, 'retarget_') ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def test_emails_are_keyed_and_suppressed_decisions_appended(con):
    """Queued rows in the keyed outbox, final suppressions in the unkeyed table, one view."""
    emails = decisions(["<a@x>", "<b@x>"])
    final = decisions(
        ["<u@x>", "<v@x>"],
        status=["suppressed"] * 2,
        reason=["unknown_email"] * 2,
        email=[None] * 2,
        message=[None] * 2,
    )
    both = pa.concat_tables([emails, final], promote_options="permissive")
    assert outbox.enqueue(con, both) == 4
    assert keyed_tables(con) == ["retarget_outbox"]

    def ids(table: str) -> list[str]:
        return [r[0] for r in con.execute(f"SELECT message_id FROM {table} ORDER BY 1").fetchall()]

    assert ids("retarget_outbox") == ["<a@x>", "<b@x>"]
    assert ids("retarget_suppressed") == ["<u@x>", "<v@x>"]
    assert ids("retarget_messages") == ["<a@x>", "<b@x>", "<u@x>", "<v@x>"]
    assert outbox.counts(con) == {
        "queued": 2, "sending": 0, "sent": 0, "failed": 0, "suppressed": 2,
    }  # fmt: skip
    # a final decision is not in the sender's state machine
    with pytest.raises(OutboxStateError, match="<u@x> is suppressed"):
        outbox.mark_sending(con, "<u@x>")
    assert [r.message_id for r in outbox.due(con, T0, 10)] == ["<a@x>", "<b@x>"]


def test_a_home_with_the_old_single_table_keeps_its_rows_and_state_machine() -> None:
    """A warehouse made before the split: its table becomes the keyed outbox, rows intact."""
    con = duckdb.connect()
    old_columns = [f.name for f in outbox.ENQUEUE_SCHEMA]
    con.execute(
        "CREATE TABLE retarget_messages (message_id VARCHAR PRIMARY KEY, "
        "user_session VARCHAR NOT NULL, session_start TIMESTAMPTZ NOT NULL, "
        "user_id BIGINT NOT NULL, email VARCHAR, status VARCHAR NOT NULL, reason VARCHAR, "
        "holdout BOOLEAN NOT NULL, offer_kind VARCHAR, coupon VARCHAR, cart_value DOUBLE, "
        "expired_at TIMESTAMPTZ NOT NULL, queued_at TIMESTAMPTZ NOT NULL, "
        "attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TIMESTAMPTZ, "
        "sent_at TIMESTAMPTZ, smtp_response VARCHAR, message BLOB)"
    )
    old = decisions(["<old@x>"]).append_column("status", pa.array(["queued"]))
    old = old.append_column("reason", pa.array([None], pa.string()))
    con.register("old_rows", old.select(old_columns))
    con.execute(f"INSERT INTO retarget_messages ({', '.join(old_columns)}) SELECT * FROM old_rows")
    con.unregister("old_rows")
    outbox.ensure_schema(con)
    outbox.ensure_schema(con)  # and again: nothing more to do
    assert keyed_tables(con) == ["retarget_outbox"]
    assert outbox.enqueue(con, decisions(["<old@x>", "<new@x>"])) == 1  # still keyed
    assert outbox.mark_sending(con, "<old@x>") == 1
    assert status_of(con, "<old@x>")[:2] == ("sending", 1)
    assert outbox.counts(con)["queued"] == 1
    con.close()


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"status": ["sent"]}, "status must be one of queued, suppressed"),
        ({"message": [None]}, "queued row needs its rendered message bytes"),
        ({"user_id": [None]}, "column user_id has nulls"),
    ],
)
def test_enqueue_refuses_rows_it_could_not_handle(con, overrides, error):
    with pytest.raises(ValueError, match=error):
        outbox.enqueue(con, decisions(["<a@x>"], **overrides))


def test_enqueue_names_missing_and_unknown_columns(con):
    with pytest.raises(ValueError, match=r"missing required column.*queued_at"):
        outbox.enqueue(con, decisions(["<a@x>"]).drop_columns(["queued_at"]))
    with pytest.raises(ValueError, match=r"unknown column.*colour"):
        outbox.enqueue(con, decisions(["<a@x>"]).append_column("colour", pa.array(["red"])))


def test_state_machine_happy_path(con):
    outbox.enqueue(con, decisions(["<a@x>"]))
    assert outbox.mark_sending(con, "<a@x>") == 1
    assert status_of(con, "<a@x>")[:2] == ("sending", 1)
    outbox.mark_sent(con, "<a@x>", T0, "250 OK")
    status, attempts, reason, has_bytes, has_sent_at = status_of(con, "<a@x>")
    assert (status, attempts, reason, has_bytes, has_sent_at) == ("sent", 1, None, False, True)


def test_retry_goes_back_to_the_queue_until_due(con):
    outbox.enqueue(con, decisions(["<a@x>"]))
    outbox.mark_sending(con, "<a@x>")
    outbox.mark_retry(con, "<a@x>", T0 + timedelta(seconds=5), "421 busy")
    assert status_of(con, "<a@x>")[:3] == ("queued", 1, "421 busy")
    assert outbox.due(con, T0 + timedelta(seconds=4), 10) == []
    assert [r.message_id for r in outbox.due(con, T0 + timedelta(seconds=5), 10)] == ["<a@x>"]
    assert outbox.next_due_at(con) == T0 + timedelta(seconds=5)
    assert outbox.mark_sending(con, "<a@x>") == 2


def test_transitions_the_state_machine_forbids(con):
    outbox.enqueue(con, decisions(["<a@x>"]))
    with pytest.raises(OutboxStateError, match="<a@x> is queued; expected sending"):
        outbox.mark_sent(con, "<a@x>", T0, "250 OK")
    with pytest.raises(OutboxStateError, match="expected sending"):
        outbox.mark_retry(con, "<a@x>", T0, "x")
    outbox.mark_failed(con, "<a@x>", "550 no such user")
    with pytest.raises(OutboxStateError, match="is failed"):
        outbox.mark_sending(con, "<a@x>")
    with pytest.raises(OutboxStateError, match="<nope> does not exist"):
        outbox.mark_sending(con, "<nope>")


def test_due_puts_crash_leftovers_first_and_respects_limit(con):
    outbox.enqueue(con, decisions(["<a@x>", "<b@x>", "<c@x>"]))
    outbox.mark_sending(con, "<c@x>")  # a crash left it here
    rows = outbox.due(con, T0, 2)
    assert [(r.message_id, r.status) for r in rows] == [("<c@x>", "sending"), ("<a@x>", "queued")]
    assert rows[0].message == b"Message-ID: <c@x>\r\n\r\nhi\r\n"
    assert outbox.next_due_at(con) is not None


def test_counts_and_list_messages(con):
    outbox.enqueue(con, decisions(["<a@x>", "<b@x>"]))
    outbox.mark_failed(con, "<b@x>", "550 nope")
    assert outbox.counts(con) == {
        "queued": 1, "sending": 0, "sent": 0, "failed": 1, "suppressed": 0,
    }  # fmt: skip
    failed = outbox.list_messages(con, status="failed")
    assert failed.column("message_id").to_pylist() == ["<b@x>"]
    assert failed.column("reason").to_pylist() == ["550 nope"]
    assert "message" not in failed.schema.names
    assert outbox.list_messages(con, limit=1).num_rows == 1
    with pytest.raises(ValueError, match="unknown status 'lost'"):
        outbox.list_messages(con, status="lost")


def test_timestamps_must_carry_a_time_zone(con):
    with pytest.raises(ValueError, match="no time zone"):
        outbox.due(con, datetime(2024, 1, 1), 10)  # naive on purpose


def test_backoff_doubles_from_base_up_to_max_without_jitter():
    policy = RetryPolicy(base_s=5, max_s=600, max_attempts=10, jitter=0.0)
    schedule = [policy.delay_s(attempt, rand=0.999) for attempt in range(1, 10)]
    assert schedule == [5, 10, 20, 40, 80, 160, 320, 600, 600]


def test_jitter_only_shortens_delays_within_its_share():
    policy = RetryPolicy(base_s=5, max_s=600, jitter=0.2)
    assert policy.delay_s(3, rand=0.0) == 20
    assert policy.delay_s(3, rand=0.5) == pytest.approx(18)
    assert 16 < policy.delay_s(3, rand=0.999999) <= 20
    assert policy.delay_s(200, rand=0.0) == 600  # huge attempt counts do not overflow


def test_policy_gives_up_after_max_attempts_and_refuses_nonsense():
    policy = RetryPolicy(max_attempts=3)
    assert [policy.gives_up(a) for a in (1, 2, 3)] == [False, False, True]
    assert RetryPolicy().max_attempts == 8
    for bad in ({"base_s": 0}, {"max_s": 1}, {"max_attempts": 0}, {"jitter": 1.0}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)


def test_classify_reply():
    assert [classify_reply(c) for c in (250, 421, 450, 550, 554, -1)] == [
        "accepted", "transient", "transient", "permanent", "permanent", "transient",
    ]  # fmt: skip


def test_encode_message_keys_by_message_id_with_crlf():
    msg = EmailMessage()
    msg["From"] = "Shop <shop@example.com>"
    msg["To"] = "ann@example.com"
    msg["Message-ID"] = "<k1@cartpulse>"
    msg["Subject"] = "Ihr Warenkorb – 10 %"
    msg.set_content("Grüße\n")
    message_id, data = outbox.encode_message(msg)
    assert message_id == "<k1@cartpulse>"
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    del msg["Message-ID"]
    with pytest.raises(ValueError, match="no Message-ID"):
        outbox.encode_message(msg)


class ScriptedSender:
    """A sender that answers from a script and records what it was asked to send."""

    def __init__(self, *outcomes: Delivery) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[tuple[bytes, str]] = []
        self.closed = 0

    def send(self, message: bytes, recipient: str) -> Delivery:
        self.sent.append((message, recipient))
        return self.outcomes.pop(0)

    def close(self) -> None:
        self.closed += 1


def test_send_due_never_mails_holdout_or_addressless_rows(con):
    rows = decisions(["<h@x>", "<n@x>", "<ok@x>"], holdout=[True, False, False])
    rows = rows.set_column(
        rows.schema.get_field_index("email"), "email", pa.array(["a@x", None, "c@x"])
    )
    outbox.enqueue(con, rows)
    sender = ScriptedSender(Delivery("accepted", "250 OK"))
    report = send_due(con, sender, T0)
    assert report == SendReport(sent=1, suppressed=2)
    assert [r for _, r in sender.sent] == ["c@x"]
    assert status_of(con, "<h@x>")[:3] == ("suppressed", 0, "holdout")
    assert status_of(con, "<n@x>")[:3] == ("suppressed", 0, "no_recipient")
    assert sender.closed == 1


def test_send_due_schedules_retries_then_gives_up(con):
    outbox.enqueue(con, decisions(["<a@x>"]))
    policy = RetryPolicy(base_s=5, max_attempts=3, jitter=0.0)
    sender = ScriptedSender(*[Delivery("transient", "421 busy")] * 3)
    assert send_due(con, sender, T0, policy=policy, clock=lambda: T0) == SendReport(retried=1)
    assert outbox.next_due_at(con) == T0 + timedelta(seconds=5)
    later = T0 + timedelta(seconds=5)
    assert send_due(con, sender, later, policy=policy, clock=lambda: later).retried == 1
    assert outbox.next_due_at(con) == later + timedelta(seconds=10)
    last = later + timedelta(seconds=10)
    assert send_due(con, sender, last, policy=policy, clock=lambda: last).failed == 1
    assert status_of(con, "<a@x>")[:3] == ("failed", 3, "gave up after 3 attempts: 421 busy")
    assert outbox.next_due_at(con) is None


def test_unreachable_relay_defers_the_whole_run_with_one_dial(con):
    outbox.enqueue(con, decisions(["<a@x>", "<b@x>", "<c@x>"]))
    sender = ScriptedSender(Delivery("transient", "connect: refused", connected=False))
    report = send_due(con, sender, T0, policy=RetryPolicy(jitter=0.0), clock=lambda: T0)
    assert report == SendReport(retried=3)
    assert len(sender.sent) == 1
    assert {status_of(con, m)[:3] for m in ("<a@x>", "<b@x>", "<c@x>")} == {
        ("queued", 1, "connect: refused")
    }


class ExplodingSender(ScriptedSender):
    """Dies inside every delivery, like a process killed mid-send."""

    def send(self, message: bytes, recipient: str) -> Delivery:
        self.sent.append((message, recipient))
        raise RuntimeError("killed")


def test_a_message_that_always_crashes_the_sender_is_failed_not_retried_forever(con):
    outbox.enqueue(con, decisions(["<a@x>", "<b@x>"]))
    policy = RetryPolicy(max_attempts=2)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            send_due(con, ExplodingSender(), T0, policy=policy)
    assert status_of(con, "<a@x>")[:2] == ("sending", 2)
    sender = ScriptedSender(Delivery("accepted", "250 OK"))
    assert send_due(con, sender, T0, policy=policy) == SendReport(sent=1, failed=1)
    assert status_of(con, "<a@x>")[:3] == (
        "failed", 2, "gave up after 2 attempts: delivery never completed (left in sending)",
    )  # fmt: skip
    assert [r for _, r in sender.sent] == ["user1@example.com"]
