"""Every mart checked against an independent Python computation, on real and generated rows."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from cartpulse.warehouse import run_models
from tests import warehouse_oracle as oracle
from tests.conftest import REAL_DATA, require_data
from tests.warehouse_homes import Home, generated_home, real_home


class Built:
    """A home with its marts built, and the oracle's view of the same lake."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.events = oracle.lake_events(home.settings.events_dir, home.bots)
        self.sessions = oracle.sessions(self.events)

    def mart(self, name: str) -> list[dict[str, Any]]:
        """Every row of a mart."""
        return self.home.rows(f"SELECT * FROM {name}")


@pytest.fixture(scope="module", params=["real", "generated"])
def built(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Built]:
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "real":
        home = real_home(require_data(REAL_DATA), tmp)
    else:
        home = generated_home(tmp)
    run = run_models(home.settings)
    assert run.ok, run.message
    assert run.models_failed == 0 and run.tests_failed == 0 and run.tests_passed > 50
    yield Built(home)
    shutil.rmtree(tmp, ignore_errors=True)


def assert_matches(got: dict[str, Any], expected: dict[str, Any], where: object) -> None:
    """Every expected field equal in `got`; floats (currency sums, rates) to 1e-9 relative."""
    for key, value in expected.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-9), (where, key)
        else:
            assert got[key] == value, (where, key)


def test_daily_kpis(built: Built) -> None:
    expected = oracle.daily_kpis(built.events, built.sessions)
    got = {r.pop("event_date"): r for r in built.mart("mart_daily_kpis")}
    assert got.keys() == expected.keys()
    for day, row in expected.items():
        assert_matches(got[day], row, day)


def test_sessions(built: Built) -> None:
    got = {r["session_id"]: r for r in built.mart("mart_sessions")}
    expected = {s["session_id"]: s for s in built.sessions}
    assert got.keys() == expected.keys()
    assert any(s["is_abandoned"] for s in expected.values())
    for sid, session in expected.items():
        assert_matches(got[sid], session, sid)


def test_funnel(built: Built) -> None:
    expected = oracle.funnel(built.events)
    got = {(r["event_date"], r["category"], r["brand"]): r for r in built.mart("mart_funnel")}
    assert got.keys() == expected.keys()
    for key, cell in expected.items():
        assert_matches(got[key], cell, key)


def test_cart_abandonment(built: Built) -> None:
    expected = oracle.cart_abandonment(built.sessions)
    got = {(r["weekday"], r["hour"]): r for r in built.mart("mart_cart_abandonment")}
    assert got.keys() == expected.keys()
    for slot, cell in expected.items():
        assert_matches(got[slot], cell, slot)


def test_category_time(built: Built) -> None:
    expected = oracle.category_time(built.events)
    rows = built.mart("mart_category_time")
    got = {(r["slot_kind"], r["slot"], r["category"]): r for r in rows}
    assert got.keys() == expected.keys()
    for key, cell in expected.items():
        assert_matches(got[key], cell, key)


def test_product_performance(built: Built) -> None:
    expected = oracle.product_performance(built.events)
    got = {r["product_id"]: r for r in built.mart("mart_product_performance")}
    assert got.keys() == expected.keys()
    for pid, p in expected.items():
        row = got[pid]
        assert (row["views"], row["carts"], row["removes"], row["purchases"]) == (
            p["view"],
            p["cart"],
            p["remove_from_cart"],
            p["purchase"],
        ), pid
        assert row["revenue_amount"] == pytest.approx(p["revenue_amount"])
        assert row["category"] == p["category"]
    ranks = sorted(got.values(), key=lambda r: r["revenue_rank"])
    assert [r["revenue_amount"] for r in ranks] == sorted(
        (r["revenue_amount"] for r in ranks), reverse=True
    )


def test_brand_performance(built: Built) -> None:
    expected = oracle.brand_performance(built.events)
    got = {r["brand"]: r for r in built.mart("mart_brand_performance")}
    assert got.keys() == expected.keys()
    for brand, b in expected.items():
        row = got[brand]
        assert (row["views"], row["carts"], row["purchases"]) == (
            b["view"],
            b["cart"],
            b["purchase"],
        ), brand
        assert row["revenue_amount"] == pytest.approx(b["revenue_amount"])
        assert row["marketing_reason"] == b["marketing_reason"], brand
        assert row["needs_marketing"] == (b["marketing_reason"] is not None)


def test_rfm(built: Built) -> None:
    expected = oracle.rfm(built.events)
    got = {r["user_id"]: r for r in built.mart("mart_rfm")}
    assert got.keys() == expected.keys()
    for user, b in expected.items():
        row = got[user]
        assert row["last_purchase_at"] == b["last"]
        assert row["monetary_amount"] == pytest.approx(b["money"])
        fields = ("recency_days", "frequency", "r_score", "f_score", "m_score", "segment")
        assert {k: row[k] for k in fields} == {k: b[k] for k in fields}, user


def test_exclusions_are_counted(built: Built) -> None:
    settings = built.home.settings
    lake = ds.dataset(settings.events_dir, format="parquet", partitioning="hive")
    users = lake.to_table(columns=["user_id"]).column("user_id").to_pylist()
    bot_rows = sum(u in built.home.bots for u in users)
    assert bot_rows > 0
    assert len(users) == len(built.events) + bot_rows
    quarantined: Counter[str] = Counter()
    if Path(settings.quarantine_dir).is_dir():
        q = ds.dataset(settings.quarantine_dir, format="parquet", partitioning="hive")
        quarantined.update(q.to_table(columns=["reason"]).column("reason").to_pylist())
    got = {(r["exclusion"], r["reason"]): r for r in built.mart("mart_exclusions")}
    bots = got.pop(("bot", "bot_alerts"))
    assert (bots["excluded_rows"], bots["excluded"]) == (bot_rows, True)
    assert {reason: r["excluded_rows"] for (_, reason), r in got.items()} == dict(quarantined)


def test_bots_are_in_no_mart(built: Built) -> None:
    bots = ", ".join(str(u) for u in built.home.bots)
    for mart in ("mart_sessions", "mart_rfm"):
        assert built.home.rows(f"SELECT * FROM {mart} WHERE user_id IN ({bots})") == []
