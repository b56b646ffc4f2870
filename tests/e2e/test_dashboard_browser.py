"""The dashboard in headless Chromium: login, every page with real data, filters, live updates.

A home is built as a user would (generate → replay with customers → models run → models
train), served with a local mail sink, and driven by Playwright with Debian's Chromium.
Screenshots of every page are saved to build/screenshots/ (the run's artifact); with
CARTPULSE_UPDATE_SCREENSHOTS=1 (`make screenshots`) they also replace the committed ones in
docs/img/ that the README shows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from cartpulse.bench.dashboard import (
    CHROMIUM,
    browser_page,
    log_in,
    open_live,
    purchase_to_dom_s,
    purchases_shown,
)
from tests.conftest import REPO, run_cli
from tests.serve_process import WRITE_KEY, Serve, free_port, request

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is missing: `make test` installs it when run as root "
    "(apt-get install chromium)",
)

IMG = REPO / "docs" / "img"
ARTIFACTS = REPO / "build" / "screenshots"
PAGES = ("live", "traffic", "categories", "brands", "customers", "products", "emails", "health")
_SECRET = {"CARTPULSE_RETARGET__SECRET_KEY": "k7Qm2vX9pL4sT8wZ1nR6yB3cF5hJ0dG2aE9uI4oP"}
EVIL = ("x'; DROP TABLE mart_funnel; --", "apple' OR '1'='1", "a/**/UNION/**/SELECT")


@dataclass
class Served:
    """A running serve on a built home, and how to reach it."""

    server: Serve
    password: str
    artifacts: Path

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows of a read-only query, answered by serve (admin token)."""
        res = request(
            f"{self.server.url}/v1/query",
            json.dumps({"sql": sql}).encode(),
            self.server.admin_headers() | {"Content-Type": "application/json"},
            "POST",
        )
        assert res.status == 200, res.body
        body = res.json()
        return [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]

    def scalar(self, sql: str) -> Any:
        """The one value of a one-row, one-column query."""
        return next(iter(self.query(sql)[0].values()))


def _check(args: list[str], home: Path) -> None:
    res = run_cli(*args, home=home, extra_env={"CARTPULSE_FSYNC": "never", **_SECRET})
    assert res.code == 0, res.stderr[-2000:]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("dashboard")
    home, gen = root / "home", root / "gen"
    _check(["generate", "--out", str(gen), "--events", "20000", "--days", "50"], home)
    events = str(gen / "events.csv.gz")
    _check(["replay", events, "--customers", str(gen / "customers.csv")], home)
    _check(["models", "run"], home)
    _check(["models", "train"], home)
    smtp_port = free_port()
    sink = subprocess.Popen(
        [sys.executable, "-m", "cartpulse", "mail-sink", "--port", str(smtp_port)],
        env={k: v for k, v in os.environ.items() if not k.startswith("CARTPULSE_")}
        | {"CARTPULSE_HOME": str(root / "sink-home")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Serve(home, env={"CARTPULSE_SMTP__PORT": str(smtp_port)})
    try:
        server.start()
        password = (home / "state" / "dashboard.password").read_text().strip()
        yield Served(server, password, ARTIFACTS)
    finally:
        if server.proc is not None:
            server.stop()
        sink.terminate()
        sink.wait(timeout=30)


@pytest.fixture(scope="module")
def page(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    with browser_page(tmp_path_factory.mktemp("chromium-profile")) as p:
        yield p


def _shot(served: Served, page: Page, name: str) -> None:
    """Save a full-page screenshot to the artifact folder (and docs/img/ when asked to)."""
    served.artifacts.mkdir(parents=True, exist_ok=True)
    path = served.artifacts / f"dashboard-{name}.png"
    height = min(int(page.evaluate("document.documentElement.scrollHeight")), 2400)
    width = int(page.viewport_size["width"]) if page.viewport_size else 1280
    clip = {"x": 0, "y": 0, "width": width, "height": height}
    page.screenshot(path=str(path), full_page=True, clip=clip)  # type: ignore[arg-type]
    if os.environ.get("CARTPULSE_UPDATE_SCREENSHOTS") == "1":
        IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, IMG / path.name)


def _text(page: Page, selector: str) -> str:
    return str(page.text_content(selector)).strip()


def _int(page: Page, selector: str) -> int:
    return int(_text(page, selector).replace(",", ""))


def test_login_is_needed_and_works(served: Served, page: Page) -> None:
    url = served.server.url
    page.goto(f"{url}/traffic")
    assert page.url.startswith(f"{url}/login?next=")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert "Wrong password" in _text(page, ".error")
    log_in(page, url, served.password, "/traffic")
    assert page.url == f"{url}/traffic"
    cookie = next(c for c in page.context.cookies() if c["name"] == "cartpulse_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"


def test_every_page_shows_the_warehouse_figures(served: Served, page: Page) -> None:
    url, q = served.server.url, served.scalar
    expected = {
        "live": ("#kpi-purchases", q("SELECT sum(purchases) FROM product_sales_minute")),
        "traffic": ("#funnel-views", q("SELECT sum(views) FROM mart_funnel")),
        "categories": (
            "#category-table tbody tr:first-child td:first-child",
            q(
                "SELECT category FROM mart_category_time WHERE slot_kind = 'hour' GROUP BY 1 "
                "ORDER BY sum(purchases) DESC, sum(views) DESC, category LIMIT 1"
            ),
        ),
        "brands": (
            "#brand-table tbody tr:first-child td:first-child",
            q(
                "SELECT brand FROM mart_brand_performance ORDER BY revenue_amount DESC, brand LIMIT 1"
            ),
        ),
        "customers": (
            "#clv-table tbody tr:first-child td:first-child",
            q("SELECT user_id FROM mart_customer_ltv ORDER BY clv_amount DESC, user_id LIMIT 1"),
        ),
        "products": (
            "#forecast-table tbody tr:first-child td:first-child",
            q(
                "SELECT product_id FROM mart_product_forecast WHERE horizon_days = "
                "(SELECT min(horizon_days) FROM mart_product_forecast) ORDER BY rank LIMIT 1"
            ),
        ),
        "emails": (
            "#outbox-table tbody tr:first-child td:nth-child(2)",
            q("SELECT user_id FROM retarget_messages ORDER BY expired_at DESC, message_id LIMIT 1"),
        ),
        "health": ("#versions-table tbody tr:first-child td:first-child", "clv"),
    }
    assert expected["live"][1] > 0 and expected["traffic"][1] > 0
    for name in PAGES:
        response = page.goto(f"{url}/{name}")
        assert response is not None and response.status == 200, name
        selector, value = expected[name]
        shown = _text(page, selector).replace(",", "")
        assert shown == str(value), (name, shown, value)
        assert page.locator(".empty").count() == 0 or name in ("emails", "health"), name
        charts = page.locator("[data-chart], #chart-minutes")
        if charts.count():  # plotly.js, served by cartpulse itself, drew every chart
            page.wait_for_function(
                "[...document.querySelectorAll('[data-chart], #chart-minutes')]"
                ".every(el => el.querySelector('.main-svg'))"
            )
        _shot(served, page, name)
    page.set_viewport_size({"width": 390, "height": 844})
    for name in ("live", "traffic"):
        page.goto(f"{url}/{name}")
        page.wait_for_selector("#chart-minutes .main-svg, [data-chart] .main-svg")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (name, width)  # readable on a phone: no sideways scrolling
        _shot(served, page, f"{name}-phone")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_an_email_preview_renders_the_message(served: Served, page: Page) -> None:
    page.goto(f"{served.server.url}/emails")
    page.click("#outbox-table a >> nth=0")
    page.wait_for_url("**/emails/preview?id=*")
    row = served.query(
        "SELECT message_id, status, reason FROM retarget_messages "
        "ORDER BY expired_at DESC, message_id LIMIT 1"
    )[0]
    assert row["message_id"] in _text(page, ".facts")
    if page.locator("iframe.email").count():
        assert "Cartpulse Shop" in _text(page, "#email-subject")
    else:
        assert row["reason"] in _text(page, ".empty")
    _shot(served, page, "email-preview")


def test_filters_change_the_page(served: Served, page: Page) -> None:
    url = served.server.url
    brand = served.scalar(
        "SELECT brand FROM mart_funnel WHERE brand <> 'unknown' GROUP BY 1 "
        "ORDER BY sum(views) DESC LIMIT 1"
    )
    first, last = (
        str(d)
        for d in served.query(
            "SELECT min(event_date) + 7 AS a, min(event_date) + 13 AS b FROM mart_daily_kpis"
        )[0].values()
    )
    page.goto(f"{url}/traffic")
    everything = _int(page, "#funnel-views")
    page.fill("input[name=brand]", brand)
    page.fill("input[name=start]", first)
    page.fill("input[name=end]", last)
    page.click("#filters button[type=submit]")
    page.wait_for_url("**/traffic?*brand=*")
    expected = served.scalar(
        f"SELECT sum(views) FROM mart_funnel WHERE brand = '{brand}' "
        f"AND event_date BETWEEN DATE '{first}' AND DATE '{last}'"
    )
    assert _int(page, "#funnel-views") == expected < everything
    assert page.locator("#daily-table tbody tr").count() == 7
    assert page.input_value("input[name=brand]") == brand
    _shot(served, page, "traffic-filtered")


def _table_counts(served: Served) -> list[dict[str, Any]]:
    """How many tables there are, and the rows of those an injection would aim at."""
    return served.query(
        "SELECT (SELECT count(*) FROM information_schema.tables) AS tables, "
        "(SELECT count(*) FROM mart_funnel) AS funnel, "
        "(SELECT count(*) FROM mart_brand_performance) AS brands, "
        "(SELECT count(*) FROM retarget_messages) AS outbox, "
        "(SELECT count(*) FROM customers) AS customers"
    )


def test_sql_in_a_filter_is_refused_and_changes_nothing(served: Served, page: Page) -> None:
    url = served.server.url
    before = _table_counts(served)
    page.goto(f"{url}/traffic")
    page.fill("input[name=brand]", EVIL[0])
    with page.expect_navigation() as navigation:
        page.click("#filters button[type=submit]")
    assert navigation.value is not None and navigation.value.status == 400
    cookie = next(c for c in page.context.cookies() if c["name"] == "cartpulse_session")
    session = {"Cookie": f"cartpulse_session={cookie['value']}"}
    for name in PAGES:
        for field in ("brand", "category", "start"):
            for value in EVIL:
                query = urllib.parse.urlencode({field: value})
                res = request(f"{url}/{name}?{query}", headers=session)
                expected_status = 200 if name in ("live", "health") else 400
                assert res.status == expected_status, (name, field, value, res.status)
    assert _table_counts(served) == before


def test_the_live_page_shows_a_posted_purchase_without_reloading(
    served: Served, page: Page
) -> None:
    url = served.server.url
    open_live(page, url)
    page.evaluate("window.__sameDocument = true")
    start = purchases_shown(page)
    for n in range(5):
        assert purchase_to_dom_s(page, url, WRITE_KEY, n) > 0
        assert str(990_000_000 + n) in _text(page, "#top-now")
    assert purchases_shown(page) == start + 5
    assert page.evaluate("window.__sameDocument") is True  # updated in place, not reloaded
    assert served.scalar("SELECT sum(purchases) FROM product_sales_minute") == start + 5
    _shot(served, page, "live-after-purchases")
    # Serve stops cleanly while a browser holds the live stream open.
    assert served.server.stop(timeout=25) == 0
