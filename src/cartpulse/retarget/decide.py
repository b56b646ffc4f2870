"""For every abandoned cart, one decision: an email with an offer, or the reason for none."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import SecretStr

from cartpulse.duck import arrow, registered
from cartpulse.home_secrets import home_secret_file
from cartpulse.retarget import customers, outbox
from cartpulse.retarget.offers import choose_offer, in_holdout
from cartpulse.retarget.outbox import ENQUEUE_SCHEMA, encode_message
from cartpulse.retarget.render import message_id, render_email
from cartpulse.settings import RetargetSettings, Settings

log = logging.getLogger(__name__)

#: Why a cart got no email (the `reason` of a suppressed row).
SUPPRESSION_REASONS = (
    "unknown_email",
    "bot",
    "unsubscribed",
    "no_consent",
    "frequency_cap",
    "holdout",
)

_KEY_FILE = "retarget.key"


def home_secret(settings: Settings) -> SecretStr:
    """The configured secret, or one generated once for this home (state/retarget.key, 0600)."""
    if settings.retarget.secret_key is not None:
        return settings.retarget.secret_key
    path = settings.state_dir / _KEY_FILE
    secret, created = home_secret_file(path)
    if created:
        log.warning("retarget_secret_generated path=%s (set retarget.secret_key to own it)", path)
    return SecretStr(secret)


class Retargeter:
    """Turns abandoned carts into outbox rows; runs on the engine's store connection."""

    def __init__(self, settings: Settings, con: duckdb.DuckDBPyConnection) -> None:
        self.settings = settings
        self.con = con
        self.retarget: RetargetSettings = settings.retarget.model_copy(
            update={"secret_key": home_secret(settings)}
        )
        customers.ensure_schema(con)
        outbox.ensure_schema(con)

    def decide(self, carts: pa.Table, now: dt.datetime) -> pa.Table:
        """One ENQUEUE_SCHEMA row per cart (call before the engine's transaction commits)."""
        if carts.num_rows == 0:
            return ENQUEUE_SCHEMA.empty_table()
        directory = customers.eligibility(self.con, carts.column("user_id"))
        known = pc.is_in(carts.column("user_id"), value_set=directory.column("user_id"))
        known_mask = known.to_numpy(zero_copy_only=False)
        rows = [self._unknown(carts.filter(pa.array(~known_mask)), now)]
        people = {r["user_id"]: r for r in directory.to_pylist()}
        bots = self._bots(directory.column("user_id"))
        for user_id in bots:
            people[user_id] = {**people[user_id], "bot": True}
        candidates = carts.filter(known).sort_by([("expired_at", "ascending")]).to_pylist()
        last_mail = self._last_mailed({c["user_id"] for c in candidates})
        decided = [self._decide_one(c, people[c["user_id"]], last_mail, now) for c in candidates]
        if decided:
            rows.append(pa.Table.from_pylist(decided, schema=ENQUEUE_SCHEMA))
        return pa.concat_tables(rows)

    def _decide_one(
        self,
        cart: dict[str, Any],
        person: dict[str, Any],
        last_mail: dict[int, dt.datetime],
        now: dt.datetime,
    ) -> dict[str, Any]:
        reason = self._suppression(cart, person, last_mail)
        row = self._row(cart, person.get("email"), now)
        if reason == "holdout":
            # A held-out cart counts for the frequency cap like a mailed one, so both groups
            # follow the same rules and can be compared (see mart_retarget_performance).
            last_mail[cart["user_id"]] = cart["expired_at"]
        if reason is not None:
            return {**row, "status": "suppressed", "reason": reason, "holdout": reason == "holdout"}
        offer = choose_offer(cart, self.retarget, now)
        sender = self.settings.smtp.sender
        encoded = encode_message(render_email(cart, person, offer, self.retarget, sender, now))
        last_mail[cart["user_id"]] = cart["expired_at"]
        return {
            **row,
            "message_id": encoded.message_id,
            "status": "queued",
            "offer_kind": offer.kind,
            "coupon": offer.code,
            "message": encoded.data,
        }

    def _suppression(
        self, cart: dict[str, Any], person: dict[str, Any], last_mail: dict[int, dt.datetime]
    ) -> str | None:
        """The first reason not to email, in the documented order, or None."""
        secret = self.retarget.secret_key
        assert secret is not None
        checks: tuple[tuple[str, Callable[[], bool]], ...] = (
            ("unknown_email", lambda: not person.get("email")),
            ("bot", lambda: bool(person.get("bot"))),
            ("unsubscribed", lambda: person.get("unsubscribed_at") is not None),
            ("no_consent", lambda: not person.get("consent")),
            ("frequency_cap", lambda: self._capped(cart, last_mail)),
            ("holdout", lambda: in_holdout(cart["user_id"], self.retarget.holdout_share, secret)),
        )
        return next((reason for reason, applies in checks if applies()), None)

    def _capped(self, cart: dict[str, Any], last_mail: dict[int, dt.datetime]) -> bool:
        cap = dt.timedelta(days=self.retarget.frequency_cap_days)
        previous = last_mail.get(cart["user_id"])
        return bool(cap) and previous is not None and cart["expired_at"] - previous < cap

    def _row(self, cart: dict[str, Any], email: str | None, now: dt.datetime) -> dict[str, Any]:
        return {
            "message_id": message_id(cart, self.settings.smtp.sender),
            "user_session": cart["user_session"],
            "session_start": cart["session_start"],
            "user_id": cart["user_id"],
            "email": email,
            "holdout": False,
            "cart_value": cart["cart_value"],
            "expired_at": cart["expired_at"],
            "queued_at": now,
        }

    def _unknown(self, carts: pa.Table, now: dt.datetime) -> pa.Table:
        """Carts of users not in the directory, vectorised (most carts in a big replay).

        Constant columns come from `pa.repeat`: a Python list of 18k values per micro-batch
        took 0.5 s of a 20.7 M-event replay, all of it holding the GIL.
        """
        n = carts.num_rows
        return pa.table(
            {
                "message_id": self._message_ids(carts),
                "user_session": carts.column("user_session"),
                "session_start": carts.column("session_start"),
                "user_id": carts.column("user_id"),
                "email": pa.nulls(n, pa.string()),
                "status": pa.repeat(pa.scalar("suppressed", pa.string()), n),
                "reason": pa.repeat(pa.scalar("unknown_email", pa.string()), n),
                "holdout": pa.repeat(pa.scalar(False, pa.bool_()), n),
                "offer_kind": pa.nulls(n, pa.string()),
                "coupon": pa.nulls(n, pa.string()),
                "cart_value": carts.column("cart_value"),
                "expired_at": carts.column("expired_at"),
                "queued_at": pa.repeat(pa.scalar(now, pa.timestamp("us", tz="UTC")), n),
                "message": pa.nulls(n, pa.binary()),
            },
            schema=ENQUEUE_SCHEMA,
        )

    def _message_ids(self, carts: pa.Table) -> pa.ChunkedArray:
        """render.message_id for many carts at once (the same ids, computed in DuckDB)."""
        probe = {"user_session": "", "session_start": ""}
        domain = message_id(probe, self.settings.smtp.sender).split("@", 1)[1].rstrip(">")
        with registered(self.con, id_carts=carts.select(["user_session", "session_start"])):
            ids = arrow(
                self.con,
                """
                SELECT '<' || left(sha256(user_session || '|' || CASE
                         WHEN microsecond(session_start) % 1000000 = 0
                         THEN strftime(session_start, '%Y-%m-%dT%H:%M:%S+00:00')
                         ELSE strftime(session_start, '%Y-%m-%dT%H:%M:%S.%f+00:00') END), 32)
                       || '@' || $domain || '>' AS message_id
                FROM id_carts
                """,
                {"domain": domain},
            )
        return ids.column(0)

    def _bots(self, user_ids: pa.ChunkedArray) -> set[int]:
        """Users with a bot alert (written by bot detection): never emailed."""
        exists = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'bot_alerts' "
            "AND database_name = current_database()"
        ).fetchall()[0][0]
        if not exists or len(user_ids) == 0:
            return set()
        with registered(self.con, bot_users=pa.table({"user_id": user_ids})):
            found = arrow(
                self.con,
                "SELECT DISTINCT user_id FROM bot_alerts SEMI JOIN bot_users USING (user_id)",
            )
        return set(found.column("user_id").to_pylist())

    def _last_mailed(self, user_ids: set[int]) -> dict[int, dt.datetime]:
        """When each user was last chosen for an email (mailed or held out), for the cap."""
        if not user_ids:
            return {}
        cap_users = pa.table({"user_id": pa.array(sorted(user_ids), pa.int64())})
        with registered(self.con, cap_users=cap_users):
            rows = arrow(
                self.con,
                "SELECT user_id, max(expired_at) AS last FROM retarget_messages "
                "SEMI JOIN cap_users USING (user_id) "
                "WHERE status IN ('queued', 'sending', 'sent', 'failed') "
                "OR reason IN ('holdout', 'purchased') GROUP BY user_id",
            )
        return dict(
            zip(rows.column("user_id").to_pylist(), rows.column("last").to_pylist(), strict=True)
        )


def suppress_purchased(con: duckdb.DuckDBPyConnection, events_dir: Path) -> int:
    """Queued emails of users who bought after their cart expired: suppressed (`purchased`)."""
    outbox.ensure_schema(con)
    if not any(events_dir.glob("*/*.parquet")):
        return 0
    events_glob = str(events_dir / "*" / "*.parquet")
    rows = con.sql(
        f"""
        SELECT m.message_id FROM retarget_outbox m
        WHERE m.status = 'queued' AND EXISTS (
          SELECT 1 FROM read_parquet('{events_glob}', hive_partitioning = true) e
          WHERE e.user_id = m.user_id AND e.event_type = 'purchase'
            AND e.event_time > m.expired_at)
        """
    ).fetchall()
    for (mid,) in rows:
        outbox.mark_suppressed(con, mid, "purchased")
    return len(rows)
