"""Abandoned carts → decisions → emails, end to end with a real SMTP server on loopback."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cartpulse.generate import generate_dataset
from cartpulse.retarget.decide import SUPPRESSION_REASONS
from cartpulse.retarget.sink import start_sink
from tests.conftest import run_cli

#: A fixed secret key: the hold-out draw (HMAC of the user id) is the same on every run.
FIXED_KEY = {"CARTPULSE_RETARGET__SECRET_KEY": "t3st-Key_for-reproducible-holdout-2Qx9"}


def rows(home: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    "batch_rows",
    [None, 20_000],
    ids=["one-micro-batch", "five-micro-batches"],  # five: the frequency cap across batches
)
def test_every_abandoned_cart_gets_one_email_or_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_rows: int | None
) -> None:
    data, home = tmp_path / "data", tmp_path / "home"
    generate_dataset(data, events=100_000, days=1, seed=3)
    batching = {} if batch_rows is None else {"CARTPULSE_INGEST__BATCH_ROWS": str(batch_rows)}
    res = run_cli(
        "replay",
        str(data / "events.csv.gz"),
        "--customers",
        str(data / "customers.csv"),
        "--json",
        home=home,
        extra_env=FIXED_KEY | batching,
    )
    assert res.code == 0, res.stderr
    report = res.json()
    outbox = report["outbox"]
    assert sum(outbox.values()) == report["abandoned_carts"] > 1000
    assert outbox["queued"] > 100 and outbox["suppressed"] > 100

    # one decision per cart, keyed by the cart
    assert rows(
        home,
        "SELECT count(*) FROM abandoned_carts a ANTI JOIN retarget_messages m USING (user_session, session_start)",
    ) == [(0,)]
    reasons = {
        r
        for (r,) in rows(
            home, "SELECT DISTINCT reason FROM retarget_messages WHERE status = 'suppressed'"
        )
    }
    assert (
        reasons <= set(SUPPRESSION_REASONS)
        and {"unknown_email", "no_consent", "holdout"} <= reasons
    )
    # queued only for known, consenting, subscribed customers
    assert rows(
        home,
        "SELECT count(*) FROM retarget_messages m LEFT JOIN customers c USING (user_id) "
        "WHERE m.status = 'queued' AND (c.user_id IS NULL OR NOT c.consent OR c.unsubscribed_at IS NOT NULL)",
    ) == [(0,)]
    # at most one email per user per 7 days (a day of data: one per user)
    assert rows(
        home,
        "SELECT max(n) FROM (SELECT count(*) AS n FROM retarget_messages WHERE status = 'queued' GROUP BY user_id)",
    ) == [(1,)]

    # Both cohorts follow the same rules: at most one cart per user per cap window, in the
    # mailed cohort and in the hold-out alike (held-out users once piled up repeat carts).
    per_user = rows(
        home,
        "SELECT max(n) FROM (SELECT count(*) AS n FROM retarget_messages "
        "WHERE status = 'queued' OR reason IN ('holdout', 'purchased') GROUP BY user_id)",
    )
    assert per_user == [(1,)]
    perf = run_cli("query", "SELECT * FROM mart_retarget_performance", "--json", home=home).json()
    cohorts = {r["cohort"]: r for r in perf}
    assert set(cohorts) == {"mailed", "holdout"}
    mailed, held = cohorts["mailed"], cohorts["holdout"]
    assert 0.07 < held["carts"] / (held["carts"] + mailed["carts"]) < 0.13
    assert mailed["carts"] == outbox["queued"]
    expected = (mailed["revenue_per_cart"] - held["revenue_per_cart"]) * mailed["carts"]
    assert math.isclose(mailed["recovered_revenue_amount"], expected, rel_tol=1e-9)
    assert mailed["recovered_revenue_ci_low"] < expected < mailed["recovered_revenue_ci_high"]

    sink = start_sink(tmp_path / "mail")
    try:
        sent = send_outbox(home, sink.port)
        assert sent["sent"] + sent["suppressed_purchased"] == outbox["queued"]
        assert sent["failed"] == 0
        received = sink.messages()
        assert len(received) == sent["sent"]
        ids = {m["Message-ID"] for m in received}
        assert ids == {
            mid
            for (mid,) in rows(
                home, "SELECT message_id FROM retarget_messages WHERE status = 'sent'"
            )
        }
        assert all(m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for m in received)
        again = send_outbox(home, sink.port)
        assert again["sent"] == 0 and len(sink.messages()) == len(received)
    finally:
        sink.stop()


def send_outbox(home: Path, port: int) -> dict[str, Any]:
    """`cartpulse outbox send --json` against the SMTP server on `port`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTPULSE_")}
    env |= {"CARTPULSE_HOME": str(home), "CARTPULSE_SMTP__PORT": str(port)}
    proc = subprocess.run(
        [sys.executable, "-m", "cartpulse", "outbox", "send", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_customers_import_cli_reports_rejects(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        "user_id,email,first_name,locale,consent\n1,a@example.com,A,en_US,true\n2,not-an-email,B,en_US,true\n"
    )
    res = run_cli("customers", "import", str(path), "--json", home=tmp_path / "home")
    assert res.code == 0, res.stderr
    assert res.json()["read"] == 2 and res.json()["rejected"] == 1
    assert res.json()["by_reason"] == {"invalid_email": 1}
