"""The synthetic generator: calibration against the published statistics, files, determinism.

One ~300k-row dataset is generated per module; every statistic is recomputed here with
DuckDB from the files on disk (never taken from the generator), so a drifting model fails.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.csv as pacsv
import pytest

from cartpulse.generate import GenerateReport, generate_dataset
from cartpulse.generate.events import EventBlock
from cartpulse.generate.render import CsvRenderer
from cartpulse.generate.sampling import draw, guided
from cartpulse.schema import EVENT_COLUMNS

EVENTS = 300_000
COLUMN_TYPES = (
    "{'event_time': 'VARCHAR', 'event_type': 'VARCHAR', 'product_id': 'BIGINT', "
    "'category_id': 'VARCHAR', 'category_code': 'VARCHAR', 'brand': 'VARCHAR', "
    "'price': 'VARCHAR', 'user_id': 'VARCHAR', 'user_session': 'VARCHAR'}"
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> GenerateReport:
    return generate_dataset(tmp_path_factory.mktemp("gen") / "out", events=EVENTS, seed=42)


@pytest.fixture(scope="module")
def db(dataset: GenerateReport) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    out = dataset.out_dir
    con.execute(
        f"""create table raw as select * from read_csv('{out}/events.csv.gz', header = true,
            columns = {COLUMN_TYPES}, nullstr = '', quote = '', escape = '')"""
    )
    con.execute(
        """create table e as select *, price::double as amount, user_id::bigint as uid,
           strptime(event_time, '%Y-%m-%d %H:%M:%S UTC') as ts from raw"""
    )
    con.execute(
        """create table s as select user_session, min(ts) as t0, max(ts) as t1,
           count(distinct uid) as users,
           bool_or(event_type = 'view') as v, bool_or(event_type = 'cart') as c,
           bool_or(event_type = 'purchase') as p
           from e where user_session is not null group by 1"""
    )
    con.execute(
        f"create table cust as select * from read_csv('{out}/customers.csv', all_varchar = true)"
    )
    con.execute(
        f"create table bots as select * from read_csv('{out}/bots.csv', all_varchar = true)"
    )
    yield con
    con.close()


def one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    rows = con.execute(sql).fetchall()
    assert len(rows) == 1
    return rows[0][0] if len(rows[0]) == 1 else rows[0]


def pct(con: duckdb.DuckDBPyConnection, sql: str) -> float:
    return 100.0 * float(one(con, sql))


# --- the file itself ------------------------------------------------------------------------


def test_exact_row_count_header_and_format(dataset: GenerateReport) -> None:
    with gzip.open(dataset.out_dir / "events.csv.gz", "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines[0] == ",".join(EVENT_COLUMNS)
    assert len(lines) - 1 == EVENTS == dataset.events
    row = re.compile(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC,(view|cart|remove_from_cart|purchase),\d+,\d{19},"
        r"[a-z_.]*,[a-z0-9_.&-]*,-?\d+\.\d\d,\d{9},"
        r"([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})?"
    )
    bad = [line for line in lines[1:] if not row.fullmatch(line)]
    assert not bad, bad[:3]


def test_readable_by_pyarrow_despite_gzip_members(dataset: GenerateReport) -> None:
    table = pacsv.read_csv(dataset.out_dir / "events.csv.gz")
    assert table.num_rows == EVENTS
    assert table.column_names == list(EVENT_COLUMNS)


def test_sorted_by_time_within_requested_days(db: duckdb.DuckDBPyConnection) -> None:
    assert (
        one(db, "select count(*) from (select ts < lag(ts) over () as back from e) where back") == 0
    )
    first, last = one(db, "select min(ts)::date, max(ts)::date from e")
    assert first == dt.date(2019, 10, 1)
    assert last == dt.date(2019, 10, 7)


def test_report_matches_files(dataset: GenerateReport, db: duckdb.DuckDBPyConnection) -> None:
    assert dataset.users == one(db, "select count(distinct uid) from e")
    assert dataset.sessions == one(db, "select count(*) from s")
    assert dataset.customers == one(db, "select count(*) from cust")
    assert dataset.bots == one(db, "select count(*) from bots")
    assert (dataset.days, dataset.start) == (7, dt.date(2019, 10, 1))


# --- published statistics (README: view 46.7 / cart 27.9 / remove 19.2 / purchase 6.2 ...) --


@pytest.mark.parametrize(
    ("event_type", "published"),
    [("view", 46.7), ("cart", 27.9), ("remove_from_cart", 19.2), ("purchase", 6.2)],
)
def test_event_mix(db: duckdb.DuckDBPyConnection, event_type: str, published: float) -> None:
    share = pct(db, f"select avg((event_type = '{event_type}')::int) from e")
    assert share == pytest.approx(published, abs=1.5)


def test_missing_values(db: duckdb.DuckDBPyConnection) -> None:
    assert pct(db, "select avg((category_code is null)::int) from e") == pytest.approx(
        98.3, abs=1.0
    )
    assert pct(db, "select avg((brand is null)::int) from e") == pytest.approx(42.3, abs=4.0)
    missing_sessions = one(db, "select count(*) from e where user_session is null")
    assert 0.005 <= 100 * missing_sessions / EVENTS <= 0.06  # published 0.022 %
    required = ("event_time", "event_type", "product_id", "category_id", "price", "user_id")
    nulls = one(db, f"select count(*) from e where {' or '.join(f'{c} is null' for c in required)}")
    assert nulls == 0


def test_price_distribution(db: duckdb.DuckDBPyConnection) -> None:
    p25, median, p75, mean, top = one(
        db,
        """select quantile_cont(amount, 0.25), median(amount), quantile_cont(amount, 0.75),
           avg(amount), max(amount) from e""",
    )
    assert p25 == pytest.approx(2.06, abs=0.3)
    assert median == pytest.approx(4.05, abs=0.4)
    assert p75 == pytest.approx(7.06, abs=0.7)
    assert mean == pytest.approx(8.53, abs=1.2)
    assert 100 < top < 500
    assert pct(db, "select avg((amount = 0)::int) from e") == pytest.approx(0.5, abs=0.3)


def test_negative_prices_are_few_brandless_and_mostly_purchases(
    db: duckdb.DuckDBPyConnection,
) -> None:
    count, brandless, purchases = one(
        db,
        """select count(*), count(*) filter (where brand is null),
           count(*) filter (where event_type = 'purchase') from e where amount < 0""",
    )
    assert 3 <= count <= 10
    assert brandless == count
    assert purchases >= count - 1


def test_exact_duplicates_resends_and_repeated_removes(db: duckdb.DuckDBPyConnection) -> None:
    distinct = one(db, f"select count(*) from (select distinct {', '.join(EVENT_COLUMNS)} from e)")
    assert 100 * (EVENTS - distinct) / EVENTS == pytest.approx(5.4, abs=1.0)
    resent = one(
        db,
        """select count(*) from e a where exists (select 1 from e b
           where b.ts = a.ts - interval 1 second and b.event_type = a.event_type
           and b.product_id = a.product_id and b.uid = a.uid and b.price = a.price
           and b.user_session is not distinct from a.user_session)""",
    )
    assert 100 * resent / EVENTS == pytest.approx(2.0, abs=0.7)
    removes, keys = one(
        db,
        """select count(*), count(distinct (user_session, event_time, product_id)) from e
           where event_type = 'remove_from_cart'""",
    )
    assert 100 * (removes - keys) / removes == pytest.approx(25.0, abs=4.0)


def test_duplicates_sit_next_to_their_original(db: duckdb.DuckDBPyConnection) -> None:
    cols = ", ".join(EVENT_COLUMNS)
    apart = one(
        db,
        f"""with numbered as (select row_number() over () as n, {cols} from e),
            groups as (select max(n) - min(n) + 1 as span, count(*) as k from numbered
                       group by all having count(*) > 1)
            select count(*) filter (where span > k + 50) from groups""",
    )
    assert apart == 0


def test_sessions_per_user_and_duration(db: duckdb.DuckDBPyConnection) -> None:
    mean, median = one(
        db,
        """select avg(k), median(k) from (select uid, count(distinct user_session) as k
           from e where user_session is not null group by 1)""",
    )
    assert mean == pytest.approx(2.76, abs=0.4)
    assert median == 1
    med, p75, over_day = one(
        db,
        """select median(m), quantile_cont(m, 0.75), avg((m > 1440)::int)
           from (select epoch(t1 - t0) / 60 as m from s)""",
    )
    assert med == 0
    assert p75 == pytest.approx(1.6, abs=0.6)
    assert 100 * over_day == pytest.approx(0.8, abs=0.5)
    p95 = one(
        db, "select quantile_cont(epoch(t1 - t0) / 60, 0.95) from s where t1 - t0 <= interval 1 day"
    )
    assert p95 == pytest.approx(34.6, abs=12)


def test_session_funnel(db: duckdb.DuckDBPyConnection) -> None:
    view, cart, purchase, cart_to_buy, buy_without_cart = one(
        db,
        """select avg(v::int), avg(c::int), avg(p::int),
           sum((c and p)::int) / sum(c::int), sum((p and not c)::int) / sum(p::int) from s""",
    )
    assert 100 * view == pytest.approx(94.4, abs=2.0)
    assert 100 * cart == pytest.approx(21.7, abs=2.0)
    assert 100 * purchase == pytest.approx(3.43, abs=0.6)
    assert 100 * cart_to_buy == pytest.approx(12.8, abs=2.5)
    assert 100 * buy_without_cart == pytest.approx(18.9, abs=5.0)


def test_buyers_and_repeat_buyers(db: duckdb.DuckDBPyConnection) -> None:
    buyers, repeat = one(
        db,
        """select count(*), count(*) filter (where k >= 2) from (select uid,
           count(distinct user_session) as k from e where event_type = 'purchase' group by 1)""",
    )
    users = one(db, "select count(distinct uid) from e")
    assert 100 * buyers / users == pytest.approx(6.7, abs=1.2)
    assert 100 * repeat / buyers == pytest.approx(21.0, abs=5.0)


def test_abandoned_carts_are_common(db: duckdb.DuckDBPyConnection) -> None:
    """Cart sessions without a purchase that still hold an item when they end."""
    left = one(
        db,
        """with per_item as (select user_session, product_id, sum(case event_type
               when 'cart' then 1 when 'remove_from_cart' then -1 else 0 end) as k
               from e where user_session is not null group by all),
           held as (select user_session, bool_or(k > 0) as holds from per_item group by 1)
           select avg(holds::int) from held join s using (user_session) where c and not p""",
    )
    assert left > 0.5


def test_shared_session_ids(db: duckdb.DuckDBPyConnection) -> None:
    assert 1 <= one(db, "select count(*) from s where users > 1") <= 20


def test_catalog_shape(db: duckdb.DuckDBPyConnection) -> None:
    products, brands, top_share = one(
        db,
        """select count(distinct product_id), count(distinct brand),
           max(k) / sum(k) from (select product_id, any_value(brand) as brand, count(*) as k
           from e group by 1)""",
    )
    assert 2_000 < products < 20_000
    assert 30 < brands <= 273
    assert top_share < 0.05  # heavy-tailed, but no product dominates
    assert one(db, "select count(*) from e where brand <> lower(brand)") == 0
    # A product keeps its price most of the time (occasional changes, sale-day discounts).
    stable = one(
        db,
        """select avg((n = 1)::int) from (select product_id, count(distinct price) as n
           from e where amount > 0 group by 1)""",
    )
    assert stable > 0.8


def test_weekly_sale_day_and_hour_of_day(db: duckdb.DuckDBPyConnection) -> None:
    days = [
        r[0]
        for r in db.sql("select count(*) from e group by ts::date order by ts::date").fetchall()
    ]
    ordinary = sorted(days)[len(days) // 2]
    assert max(days) > 1.3 * ordinary  # the sale day's organic peak
    night, evening = one(
        db,
        """select count(*) filter (where hour(ts) between 0 and 2),
           count(*) filter (where hour(ts) between 15 and 17) from e""",
    )
    assert evening > 3 * night


# --- customers and bots ---------------------------------------------------------------------


def test_customer_directory(db: duckdb.DuckDBPyConnection) -> None:
    assert [c[0] for c in db.sql("describe cust").fetchall()] == [
        "user_id", "email", "first_name", "locale", "consent",
    ]  # fmt: skip
    total = one(db, "select count(*) from cust")
    valid = r"[a-z0-9._]+@example\.(com|org|net)"
    invalid = one(db, f"select count(*) from cust where not regexp_full_match(email, '{valid}')")
    assert 0 < invalid / total < 0.02
    assert pct(db, "select avg((consent = 'false')::int) from cust") == pytest.approx(25, abs=5)
    locales = {r[0] for r in db.sql("select distinct locale from cust").fetchall()}
    assert locales == {"en_US", "de_DE", "fr_FR", "ru_RU", "en_GB"}
    assert one(db, "select count(*) - count(distinct email) from cust") == 0
    strangers = one(
        db, "select count(*) from cust where user_id::bigint not in (select uid from e)"
    )
    assert strangers == 0
    carted_with_account = one(
        db,
        """select avg((uid in (select user_id::bigint from cust))::int) from
           (select distinct uid from e where event_type in ('cart', 'purchase'))""",
    )
    assert carted_with_account > 0.7


def test_bots_listed_present_and_hidden_among_users(db: duckdb.DuckDBPyConnection) -> None:
    kinds = {r[0] for r in db.sql("select distinct kind from bots").fetchall()}
    assert kinds == {"crawler", "cart_stuffer", "replayer", "slow_scraper"}
    absent = one(db, "select count(*) from bots where user_id::bigint not in (select uid from e)")
    assert absent == 0
    low, high = one(
        db, "select min(uid), max(uid) from e where uid not in (select user_id::bigint from bots)"
    )
    assert (
        one(db, f"select count(*) from bots where user_id::bigint not between {low} and {high}")
        == 0
    )


def bot_rows(db: duckdb.DuckDBPyConnection, kind: str) -> str:
    return f"(select e.* from e join bots on e.uid = bots.user_id::bigint where kind = '{kind}')"


def test_bot_behaviours(db: duckdb.DuckDBPyConnection) -> None:
    views, distinct = one(
        db, f"select count(*), count(distinct product_id) from {bot_rows(db, 'crawler')}"
    )
    assert views > 500 and distinct / views > 0.9
    kinds = one(db, f"select list(distinct event_type) from {bot_rows(db, 'cart_stuffer')}")
    assert kinds == ["cart"]
    rows, unique_rows = one(
        db,
        f"""select count(*), count(distinct (event_time, event_type, product_id, user_session))
            from {bot_rows(db, "replayer")}""",
    )
    assert unique_rows < 0.3 * rows
    sessions, gap_cv = one(
        db,
        f"""select count(distinct user_session), stddev(gap) / avg(gap) from (
            select user_session, epoch(ts - lag(ts) over (partition by uid order by ts)) as gap
            from {bot_rows(db, "slow_scraper")}) where gap < 3600""",
    )
    assert sessions >= 10 and gap_cv < 0.1


# --- determinism and arguments --------------------------------------------------------------


def digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    runs = [("a", 3), ("b", 3), ("c", 4)]
    for name, seed in runs:
        generate_dataset(tmp_path / name, events=40_000, days=3, seed=seed)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    other = digests(tmp_path / "c")
    assert all(other[k] != v for k, v in digests(tmp_path / "a").items())


def test_progress_reports_rows_written(tmp_path: Path) -> None:
    seen: list[int] = []
    generate_dataset(tmp_path, events=120_000, days=2, progress=seen.append)
    assert seen == sorted(seen)
    assert seen[-1] == 120_000
    assert len(seen) > 1


def test_tiny_files_are_exact(tmp_path: Path) -> None:
    for events in (1, 7, 999):
        report = generate_dataset(tmp_path / str(events), events=events, days=3)
        with gzip.open(report.out_dir / "events.csv.gz", "rt") as f:
            assert sum(1 for _ in f) == events + 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"events": 0}, "events must be between 1"),
        ({"events": -5}, "events must be between 1"),
        ({"events": 2.5}, "events must be an integer"),
        ({"events": True}, "events must be an integer"),
        ({"days": 0}, "days must be between 1"),
        ({"days": 100_000}, "days must be between 1"),
        ({"seed": -1}, "seed must be between 0"),
        ({"start": dt.datetime(2019, 10, 1, tzinfo=dt.UTC)}, "start must be a datetime.date"),
        ({"start": "2019-10-01"}, "start must be a datetime.date"),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_dataset(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_out_dir_must_not_be_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        generate_dataset(target, events=10)


def test_failed_run_leaves_no_partial_events_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = iter(range(1_000))

    def failing_render(self: CsvRenderer, block: EventBlock) -> Any:
        if next(calls) == 2:
            raise RuntimeError("disk full")
        return real_render(self, block)

    real_render = CsvRenderer.render
    monkeypatch.setattr(CsvRenderer, "render", failing_render)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_dataset(tmp_path, events=300_000)
    assert list(tmp_path.iterdir()) == []


def test_guided_draw_matches_binary_search() -> None:
    rng = np.random.default_rng(5)
    weights = rng.pareto(1.0, 50_000)
    weights[rng.integers(0, 50_000, 5_000)] = 0.0  # items that must never be drawn
    dist = guided(weights)
    u = rng.random(200_000)
    expected = np.searchsorted(dist.cdf, u, side="right") - 1
    assert np.array_equal(draw(dist, u), expected)
    assert (weights[draw(dist, u)] > 0).all()
