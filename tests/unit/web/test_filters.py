"""Dashboard filters: every real brand and category passes; SQL shapes are refused."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest
from fastapi import HTTPException

from cartpulse.web.filters import Filters, page_filters


def test_every_brand_and_category_in_the_real_rows_is_accepted(real_dir: Path) -> None:
    labels: set[str] = set()
    for path in real_dir.glob("*.csv"):
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                labels |= {
                    v for k in ("brand", "category_code") if (v := (row.get(k) or "").strip())
                }
    assert len(labels) > 100
    for label in labels:
        assert page_filters(brand=label, category=label).brand == label.lower()


@pytest.mark.parametrize(
    "value",
    [
        "x'; DROP TABLE mart_funnel; --",
        "apple' OR '1'='1",
        "apple' UNION SELECT * FROM customers",
        "a/* comment */b",
        "apple--",
        "apple;",
        '"apple"',
        "apple\x00",
        "a" * 101,
    ],
)
def test_sql_shaped_values_are_refused_with_400(value: str) -> None:
    for field in ("brand", "category"):
        with pytest.raises(HTTPException) as err:
            page_filters(**{field: value})
        assert err.value.status_code == 400
        assert field in str(err.value.detail)


def test_dates_are_parsed_and_ordered() -> None:
    f = page_filters(start="2019-10-01", end="2019-10-31", brand=" Apple ")
    assert f == Filters(start=dt.date(2019, 10, 1), end=dt.date(2019, 10, 31), brand="apple")
    assert f.query_string() == "?start=2019-10-01&end=2019-10-31&brand=apple"
    for bad in ({"start": "yesterday"}, {"start": "2019-11-01", "end": "2019-10-01"}):
        with pytest.raises(HTTPException):
            page_filters(**bad)
    assert page_filters(brand="", category="  ") == Filters()


def test_conditions_bind_every_value_and_skip_unset_filters() -> None:
    assert Filters().where(day="d", brand="b", category="c") == ("TRUE", [])
    f = Filters(start=dt.date(2019, 10, 1), brand="l'oreal", category="beauty.nail_polish")
    sql, values = f.where(day="d", brand="b", category="c")
    assert sql == "d >= ? AND b = ? AND left(c, length(?)) = ?"
    assert values == [dt.date(2019, 10, 1), "l'oreal", "beauty.nail_polish", "beauty.nail_polish"]
    assert f.where(brand="b") == ("b = ?", ["l'oreal"])
