"""The dashboard reads either serving store: the same figures from DuckDB and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import http.cookiejar
import math
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cartpulse import duck
from cartpulse.engine.replay import replay_files
from cartpulse.generate import generate_dataset
from cartpulse.settings import Settings
from cartpulse.sinks.postgres.sync import sync_home
from cartpulse.sinks.serving_read import DuckDBReader, PostgresReader, ServingReader
from cartpulse.web import insights
from cartpulse.web.dashboard import health_sections
from cartpulse.web.filters import Filters
from cartpulse.web.outbox_view import outbox
from cartpulse.web.tables import Section
from tests.conftest import REAL_DATA, run_cli
from tests.postgres_db import fresh_database
from tests.serve_process import Serve

_SECRET = "k7Qm2vX9pL4sT8wZ1nR6yB3cF5hJ0dG2aE9uI4oP"
_Page = Callable[[ServingReader], dict[str, Any]]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    """A home with marts and model scores, published once to a fresh PostgreSQL database."""
    root = tmp_path_factory.mktemp("dash-pg")
    generate_dataset(root / "gen", events=20_000, days=50, seed=5)
    home = root / "home"
    local = Settings(home=home, fsync="never", retarget={"secret_key": _SECRET})
    files = [root / "gen" / "events.csv.gz"]
    if (REAL_DATA / "multicategory_2019-10_head.csv").is_file():  # real category codes
        files.insert(0, REAL_DATA / "multicategory_2019-10_head.csv")
    replay_files(local, files, customers_file=root / "gen" / "customers.csv")
    for step in (["models", "run"], ["models", "train"]):
        done = run_cli(*step, home=home, extra_env={"CARTPULSE_FSYNC": "never"})
        assert done.code == 0, done.stderr[-2000:]
    with fresh_database() as dsn:
        settings = Settings(
            home=home,
            fsync="never",
            retarget={"secret_key": _SECRET},
            serving={"postgres_dsn": dsn},
        )
        synced = sync_home(settings)
        assert "mart_brand_performance" in synced["marts"]["published"]
        yield settings, dsn


def _filters(settings: Settings) -> list[Filters]:
    """No filter; the top brand over a date range; the top category code's first word."""
    con = duck.connect(settings.warehouse_path, read_only=True)
    try:
        days = con.execute("SELECT min(event_date) FROM mart_daily_kpis").fetchone()
        assert days is not None
        start = days[0] + dt.timedelta(days=10)
        end = start + dt.timedelta(days=14)
        brand = con.execute(
            "SELECT brand FROM mart_funnel WHERE event_date BETWEEN ? AND ? AND brand <> 'unknown' "
            "GROUP BY brand ORDER BY sum(revenue_amount) DESC, brand LIMIT 1",
            [start, end],
        ).fetchone()
        category = con.execute(
            "SELECT category FROM mart_product_performance WHERE category LIKE '%.%' "
            "ORDER BY purchases DESC, category LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    assert brand is not None
    return [
        Filters(),
        Filters(brand=brand[0], start=start, end=end),
        # generated rows have no category codes, only `id:…`: every one starts with `id`
        Filters(category=category[0].split(".")[0] if category else "id"),
    ]


def _pages(f: Filters, local: ServingReader) -> dict[str, _Page]:
    return {
        "traffic": lambda r: insights.traffic(r, f),
        "categories": lambda r: insights.categories(r, f),
        "brands": lambda r: insights.brands(r, f),
        "customers": lambda r: insights.customers(r, f),
        "products": lambda r: insights.products(r, f),
        "emails": lambda r: outbox(r, f),
        "health": lambda r: health_sections(r, local),
    }


def _normal(value: Any) -> Any:
    """Sections as dicts, timestamps in UTC, dates as text, decimals as floats."""
    if isinstance(value, Section):
        value = asdict(value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC)
    if isinstance(value, dt.date):
        return value.isoformat()
    return float(value) if isinstance(value, Decimal) else value


def _assert_same(got: Any, want: Any, where: str) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for k in want:
            _assert_same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert isinstance(got, int | float), where
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), (where, got, want)
    else:
        assert got == want, (where, got, want)


def _rows(data: dict[str, Any]) -> int:
    return sum(len(v.rows) for v in data.values() if isinstance(v, Section))


def test_every_page_shows_the_same_figures_from_duckdb_and_postgresql(
    published: tuple[Settings, str],
) -> None:
    settings, dsn = published
    con = duck.connect(settings.warehouse_path, read_only=True)
    in_duck, in_pg = DuckDBReader(con.cursor), PostgresReader(dsn)
    try:
        for i, f in enumerate(_filters(settings)):
            for name, page in _pages(f, in_duck).items():
                want, got = page(in_duck), page(in_pg)
                if i == 0:  # unfiltered, every page has something to compare
                    assert _rows(want) > 0, name
                _assert_same(_normal(got), _normal(want), f"{name}{f.query_string()}")
    finally:
        in_pg.close()
        con.close()


def test_filtered_sections_are_non_empty_and_narrower(published: tuple[Settings, str]) -> None:
    settings, dsn = published
    none, branded, category = _filters(settings)
    reader = PostgresReader(dsn)
    try:
        everything = insights.traffic(reader, none)
        dated = insights.traffic(reader, branded)
        prefixed = insights.products(reader, category)
    finally:
        reader.close()
    assert 0 < len(dated["daily"].rows) == 15 < len(everything["daily"].rows)
    assert 0 < dated["funnel"].first["views"] < everything["funnel"].first["views"]
    assert prefixed["sellers"].rows
    assert all(r["category"].startswith(category.category or "") for r in prefixed["sellers"].rows)


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )


def _get(opener: urllib.request.OpenerDirector, url: str) -> tuple[int, str]:
    try:
        with opener.open(url, timeout=60) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _log_in(opener: urllib.request.OpenerDirector, server: Serve) -> None:
    password = (server.home / "state" / "dashboard.password").read_text().strip()
    status, form = _get(opener, f"{server.url}/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert status == 200 and csrf is not None
    body = urllib.parse.urlencode({"password": password, "csrf": csrf.group(1), "next": "/live"})
    with opener.open(f"{server.url}/login", body.encode(), timeout=60) as r:
        assert r.status == 200 and r.url.endswith("/live")


#: Per page, a change made only in PostgreSQL: its text on the page proves where it read.
_MARKERS = {
    "/traffic": (
        "UPDATE mart_daily_kpis SET unique_visitors = 987654 "
        "WHERE event_date = (SELECT max(event_date) FROM mart_daily_kpis)",
        "987,654",
    ),
    "/categories": (
        "UPDATE mart_category_time SET category = 'pgonly.category' WHERE category = "
        "(SELECT category FROM mart_category_time ORDER BY purchases DESC, category LIMIT 1)",
        "pgonly.category",
    ),
    "/brands": (
        "UPDATE mart_brand_performance SET brand = 'pgonlybrand' WHERE brand = "
        "(SELECT brand FROM mart_brand_performance ORDER BY revenue_amount DESC LIMIT 1)",
        "pgonlybrand",
    ),
    "/customers": ("UPDATE mart_rfm SET segment = 'pgonly segment'", "pgonly segment"),
    "/products": (
        "UPDATE mart_product_performance SET brand = 'pgonlyseller' WHERE product_id = "
        "(SELECT product_id FROM mart_product_performance ORDER BY revenue_amount DESC LIMIT 1)",
        "pgonlyseller",
    ),
}


def test_serve_renders_every_page_from_postgresql(
    published: tuple[Settings, str], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(published[0].home, home)
    with fresh_database() as dsn:
        sync_home(Settings(home=home, serving={"postgres_dsn": dsn}))
        with psycopg.connect(dsn, autocommit=True) as pg:
            for sql, _marker in _MARKERS.values():
                pg.execute(sql)
            emails = pg.execute(
                "SELECT count(*) FROM retarget_messages GROUP BY status, coalesce(reason, '') "
                "ORDER BY 1 DESC LIMIT 1"
            ).fetchone()
            dq = pg.execute(
                "SELECT reason, sum(rows) FROM dq_counts GROUP BY reason ORDER BY 2 DESC LIMIT 1"
            ).fetchone()
        assert emails and dq
        env = {
            "CARTPULSE_SERVING__POSTGRES_DSN": dsn,
            "CARTPULSE_DASHBOARD__READ_FROM": "postgres",
            "CARTPULSE_FSYNC": "never",
        }
        with Serve(home, env) as server:
            opener = _opener()
            _log_in(opener, server)
            for path, (_sql, marker) in _MARKERS.items():
                status, html = _get(opener, f"{server.url}{path}")
                assert status == 200 and marker in html, path
            status, html = _get(opener, f"{server.url}/emails")
            assert status == 200 and f">{int(emails[0]):,}<" in html
            status, html = _get(opener, f"{server.url}/health")
            assert status == 200 and dq[0] in html and f">{int(dq[1]):,}<" in html
            evil = urllib.parse.quote("x'; DROP TABLE mart_funnel; --")
            status, _ = _get(opener, f"{server.url}/brands?brand={evil}")
            assert status == 400
        with psycopg.connect(dsn) as pg:  # the refused value reached no SQL
            assert pg.execute("SELECT to_regclass('mart_funnel')").fetchone() != (None,)


def test_the_shared_reader_reconnects_after_the_server_drops_it(
    published: tuple[Settings, str],
) -> None:
    _, dsn = published
    reader = PostgresReader(dsn)
    try:
        pid = reader.query("SELECT pg_backend_pid() AS pid").to_pylist()[0]["pid"]
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        again = reader.query("SELECT pg_backend_pid() AS pid").to_pylist()[0]["pid"]
        assert again != pid
        with pytest.raises(psycopg.errors.UndefinedTable):  # a real error is not retried
            reader.query("SELECT * FROM no_such_table")
        assert reader.query("SELECT 1 AS one").to_pylist() == [{"one": 1}]
    finally:
        reader.close()


def test_requests_in_parallel_share_one_reader(published: tuple[Settings, str]) -> None:
    _, dsn = published
    reader = PostgresReader(dsn)
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            pages = list(pool.map(lambda _: _normal(insights.brands(reader, Filters())), range(12)))
    finally:
        reader.close()
    assert pages[0]["top"]["rows"] and all(p == pages[0] for p in pages)
