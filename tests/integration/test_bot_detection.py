"""Bot detection end to end: generated bots found per user, their carts never mailed, real rows."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cartpulse.engine.replay import replay_files
from cartpulse.engine.store import ServingStore
from cartpulse.generate import generate_dataset
from cartpulse.settings import Settings

RULES = {
    "events_per_minute",
    "sessions_per_hour",
    "regular_pace",
    "carts_without_views",
    "replayed_events",
    "traffic_share",
}


def replayed(home: Path, files: list[Path], customers: Path | None = None) -> ServingStore:
    """Replay files into a fresh home; the warehouse, opened for reading results."""
    settings = Settings(home=home, fsync="never")
    replay_files(settings, files, customers_file=customers)
    return ServingStore(settings.warehouse_path)


def rows(store: ServingStore, sql: str) -> list[dict[str, Any]]:
    """A query's rows as dicts."""
    result: list[dict[str, Any]] = store.query(sql).to_pylist()
    return result


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ServingStore]]:
    """2 M generated events over a week (3 bots of each kind, a sale day), replayed."""
    out = tmp_path_factory.mktemp("bots-gen")
    generate_dataset(out, events=2_000_000, days=7, seed=5)
    store = replayed(out / "home", [out / "events.csv.gz"])
    yield out, store
    store.close()


def show(capsys: pytest.CaptureFixture[str], lines: list[str]) -> None:
    """Write a report to the terminal even when pytest captures output."""
    with capsys.disabled():
        sys.stdout.write("\n" + "\n".join(lines) + "\n")


def test_injected_bots_are_found_per_user(
    generated: tuple[Path, ServingStore], capsys: pytest.CaptureFixture[str]
) -> None:
    out, store = generated
    with (out / "bots.csv").open() as f:
        truth = {int(r["user_id"]): r["kind"] for r in csv.DictReader(f)}
    alerts = rows(store, "SELECT user_id, rule, evidence FROM bot_alerts")
    found = {a["user_id"] for a in alerts}
    hits = found & set(truth)
    precision = len(hits) / max(len(found), 1)
    recall = len(hits) / len(truth)
    missed = {u: truth[u] for u in set(truth) - found}
    show(
        capsys,
        [
            f"bots: {len(truth)} injected, {len(found)} flagged; precision={precision:.3f} "
            f"recall={recall:.3f}; missed={missed}; false={sorted(found - set(truth))}"
        ],
    )
    assert all(set(a["rule"].split(",")) <= RULES for a in alerts)
    assert all(json.loads(a["evidence"])["events"] > 0 for a in alerts)
    assert precision >= 0.95, f"precision {precision:.3f}, false: {sorted(found - set(truth))}"
    assert recall >= 0.90, f"recall {recall:.3f}, missed: {missed}"


def write_cart_stuffers(folder: Path) -> tuple[Path, Path]:
    """Two consenting customers who cart 60 products each, 2 s apart, and a shopper.

    Stuffer 1's session expires in the same micro-batch that flags it (the shopper's event two
    hours later moves the watermark); stuffer 2's expires at the end, after its alert committed.
    """
    header = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,"
    lines = []
    for user, start in ((1, 0), (2, 3 * 3_600)):
        for i in range(60):
            at = dt.datetime(2019, 10, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=start + 2 * i)
            lines.append(f"{at:%Y-%m-%d %H:%M:%S} UTC,cart,{100 + i},,,,5.0,{user},s{user}")
    lines.append("2019-10-01 02:00:00 UTC,view,7,,,,5.0,3,s3")
    events = folder / "stuffers.csv"
    events.write_text("\n".join([header + "user_session", *sorted(lines)]) + "\n")
    customers = folder / "customers.csv"
    customers.write_text(
        "user_id,email,first_name,locale,consent\n"
        "1,one@example.com,One,en_US,true\n2,two@example.com,Two,en_US,true\n"
    )
    return events, customers


def test_bot_carts_are_suppressed_with_reason_bot(tmp_path: Path) -> None:
    events, customers = write_cart_stuffers(tmp_path)
    store = replayed(tmp_path / "home", [events], customers)
    try:
        alerts = rows(store, "SELECT user_id, rule FROM bot_alerts ORDER BY user_id")
        mails = rows(
            store, "SELECT user_id, status, reason FROM retarget_messages ORDER BY user_id"
        )
    finally:
        store.close()
    assert [a["user_id"] for a in alerts] == [1, 2]
    assert all("carts_without_views" in a["rule"] for a in alerts)
    assert mails == [
        {"user_id": 1, "status": "suppressed", "reason": "bot"},
        {"user_id": 2, "status": "suppressed", "reason": "bot"},
    ]


def test_alerts_wait_in_the_outbox_with_their_idempotency_key(
    generated: tuple[Path, ServingStore],
) -> None:
    _, store = generated
    queued = rows(store, "SELECT alert_id, user_id, status FROM bot_alert_outbox")
    alerts = rows(store, "SELECT user_id FROM bot_alerts")
    assert len(queued) == len(alerts) and {q["status"] for q in queued} == {"queued"}
    assert all(q["alert_id"].startswith(f"{q['user_id']}-") for q in queued)


def test_report_of_flagged_users_in_the_real_rows(
    real_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = sorted(real_dir.glob("*.csv"))
    store = replayed(tmp_path / "home", files)
    try:
        alerts = rows(
            store,
            "SELECT user_id, detected_at, rule, score, evidence FROM bot_alerts ORDER BY user_id",
        )
        lake = tmp_path / "home" / "lake" / "events" / "*" / "*.parquet"
        users = rows(store, f"SELECT count(DISTINCT user_id) AS n FROM read_parquet('{lake}')")
    finally:
        store.close()
    report = [f"real rows: {len(files)} files, {users[0]['n']} users, {len(alerts)} alerts"]
    for a in alerts:
        report.append(f"  user {a['user_id']} at {a['detected_at']:%Y-%m-%d %H:%M:%S}Z")
        report.append(f"    rule={a['rule']} score={a['score']} evidence={a['evidence']}")
    show(capsys, report)
    assert all(set(a["rule"].split(",")) <= RULES for a in alerts)
    # Bots are rare: a detector flagging more than 1 % of the users is broken, not vigilant.
    assert len({a["user_id"] for a in alerts}) <= max(1, users[0]["n"] // 100)


def write_views(path: Path, first: int, count: int) -> Path:
    """A crawler's views number first … first+count−1, exactly 4 s apart, as one CSV file."""
    header = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,"
    lines = [header + "user_session"]
    for i in range(first, first + count):
        at = dt.datetime(2019, 10, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=4 * i)
        lines.append(f"{at:%Y-%m-%d %H:%M:%S} UTC,view,{i},,,,1.0,5,crawl")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_detector_state_survives_restarts_and_alerts_once(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", fsync="never")
    counts = []
    for part in range(3):  # each replay is a new engine that loads the committed state
        replay_files(settings, [write_views(tmp_path / f"part{part}.csv", 20 * part, 20)])
        store = ServingStore(settings.warehouse_path)
        try:
            counts.append(rows(store, "SELECT count(*) AS n FROM bot_alerts")[0]["n"])
        finally:
            store.close()
    # 19 gaps after the first file (below min_gaps), 39 after the second, one episode in all.
    assert counts == [0, 1, 1]
