"""Validation rules → reason codes, normalisation, and what a quarantine row carries."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cartpulse.quality.validate import Validated, Validator
from cartpulse.schema import EVENT_SCHEMA, QUARANTINE_SCHEMA, Reason
from cartpulse.sources.files import read_events

from ._support import BASE, HEADER, ingest, raw_batch, raw_row, read_lake, write_csv

UTC = dt.UTC
INGESTED_AT = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
T0 = dt.datetime(2019, 10, 1, tzinfo=UTC)


@pytest.fixture
def validator() -> Iterator[Validator]:
    v = Validator()
    yield v
    v.close()


def check(
    validator: Validator, *, now: dt.datetime | None = None, **values: str | None
) -> Validated:
    return validator.validate(raw_batch([raw_row(**values)]), INGESTED_AT, now)


def verdict_of(
    validator: Validator, values: dict[str, str | None], now: dt.datetime | None = None
) -> tuple[str, str | None]:
    """('clean', None) or (reason, detail) for one row."""
    out = validator.validate(raw_batch([raw_row(**values)]), INGESTED_AT, now)
    assert out.clean.num_rows + out.quarantine.num_rows == 1
    if out.clean.num_rows:
        return ("clean", None)
    row = out.quarantine.to_pylist()[0]
    return (row["reason"], row["detail"])


def verdict(
    validator: Validator, *, now: dt.datetime | None = None, **values: str | None
) -> tuple[str, str | None]:
    return verdict_of(validator, values, now)


def test_valid_row_is_typed_exactly(validator: Validator) -> None:
    out = check(validator)
    assert out.quarantine.num_rows == 0
    assert out.clean.schema == EVENT_SCHEMA
    assert out.clean.to_pylist() == [
        {
            "event_time": T0,
            "event_type": "view",
            "product_id": 5773203,
            "category_id": 1487580005134238553,  # all 19 digits, no float rounding
            "category_code": "appliances.environment",
            "brand": "runail",
            "price": 2.62,
            "user_id": 463240011,
            "user_session": "26dd6e6e-4dac-4778-8d2c-92e149dab885",
        }
    ]
    assert len(out.keys) == 1


@pytest.mark.parametrize(
    ("values", "reason", "detail"),
    [
        (
            {"event_time": "yesterday"},
            Reason.MALFORMED,
            "event_time 'yesterday' is not a timestamp with a time zone",
        ),
        (
            {"event_time": "2019-02-30 00:00:00 UTC"},
            Reason.MALFORMED,
            "event_time '2019-02-30 00:00:00 UTC' is not a timestamp with a time zone",
        ),
        ({"product_id": "5.5"}, Reason.MALFORMED, "product_id '5.5' is not an integer"),
        ({"product_id": "abc"}, Reason.MALFORMED, "product_id 'abc' is not an integer"),
        ({"user_id": "12x"}, Reason.MALFORMED, "user_id '12x' is not an integer"),
        (
            {"user_id": "99999999999999999999"},
            Reason.MALFORMED,
            "user_id '99999999999999999999' is not an integer",
        ),
        ({"category_id": "n/a"}, Reason.MALFORMED, "category_id 'n/a' is not an integer"),
        ({"price": "abc"}, Reason.MALFORMED, "price 'abc' is not a finite number"),
        ({"price": "nan"}, Reason.MALFORMED, "price 'nan' is not a finite number"),
        ({"price": "NaN"}, Reason.MALFORMED, "price 'NaN' is not a finite number"),
        ({"price": "inf"}, Reason.MALFORMED, "price 'inf' is not a finite number"),
        ({"price": "-Infinity"}, Reason.MALFORMED, "price '-Infinity' is not a finite number"),
        ({"price": "1e400"}, Reason.MALFORMED, "price '1e400' is not a finite number"),
        ({"price": "1,50"}, Reason.MALFORMED, "price '1,50' is not a finite number"),
        ({"event_time": ""}, Reason.MISSING_REQUIRED, "event_time missing"),
        ({"product_id": ""}, Reason.MISSING_REQUIRED, "product_id missing"),
        ({"user_id": None}, Reason.MISSING_REQUIRED, "user_id missing"),
        ({"user_id": "   "}, Reason.MISSING_REQUIRED, "user_id missing"),
        (
            {"event_time": "", "product_id": "", "user_id": ""},
            Reason.MISSING_REQUIRED,
            "event_time, product_id, user_id missing",
        ),
        (
            {"event_type": "click"},
            Reason.UNKNOWN_EVENT_TYPE,
            "event_type 'click' is not one of view, cart, remove_from_cart, purchase",
        ),
        (
            {"event_type": "View"},
            Reason.UNKNOWN_EVENT_TYPE,
            "event_type 'View' is not one of view, cart, remove_from_cart, purchase",
        ),
        (
            {"event_type": ""},
            Reason.UNKNOWN_EVENT_TYPE,
            "event_type '' is not one of view, cart, remove_from_cart, purchase",
        ),
        ({"price": ""}, Reason.MISSING_PRICE, "price missing"),
        ({"price": None}, Reason.MISSING_PRICE, "price missing"),
        ({"price": "-0.01"}, Reason.NEGATIVE_PRICE, "price -0.01 is negative"),
        ({"price": "-79.37"}, Reason.NEGATIVE_PRICE, "price -79.37 is negative"),
    ],
)
def test_each_rule_has_its_reason_code(
    validator: Validator, values: dict[str, str | None], reason: Reason, detail: str
) -> None:
    assert verdict_of(validator, values) == (reason.value, detail)


@pytest.mark.parametrize("event_type", ["view", "cart", "remove_from_cart", "purchase"])
def test_the_four_event_types_pass(validator: Validator, event_type: str) -> None:
    assert verdict(validator, event_type=event_type) == ("clean", None)


def test_future_timestamp_only_when_a_clock_is_given(validator: Validator) -> None:
    now = T0
    at_limit = "2019-10-01 00:05:00 UTC"  # exactly the 5 min tolerance
    beyond = "2019-10-01 00:05:01 UTC"
    assert verdict(validator, now=now, event_time=at_limit) == ("clean", None)
    assert verdict(validator, now=now, event_time=beyond) == (
        "future_timestamp",
        "event_time 2019-10-01 00:05:01 UTC is ahead of the clock",
    )
    assert verdict(validator, event_time=beyond) == ("clean", None)
    assert verdict(validator, event_time="2099-01-01 00:00:00 UTC") == ("clean", None)
    assert verdict(validator, now=now, event_time="2019-09-01 00:00:00 UTC") == ("clean", None)


def test_future_tolerance_is_configurable() -> None:
    v = Validator(future_tolerance_s=0)
    try:
        assert verdict(v, now=T0, event_time="2019-10-01 00:00:01 UTC")[0] == "future_timestamp"
        assert verdict(v, now=T0, event_time="2019-10-01 00:00:00 UTC") == ("clean", None)
    finally:
        v.close()


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        # A field that cannot be typed wins over everything else.
        ({"event_time": "bad", "price": "-1", "event_type": "click"}, Reason.MALFORMED),
        ({"product_id": "", "price": "abc"}, Reason.MALFORMED),
        ({"event_time": "", "event_type": "click", "price": ""}, Reason.MISSING_REQUIRED),
        ({"user_id": "", "price": "-5"}, Reason.MISSING_REQUIRED),
        ({"event_type": "click", "price": ""}, Reason.UNKNOWN_EVENT_TYPE),
        ({"event_type": "click", "price": "-5"}, Reason.UNKNOWN_EVENT_TYPE),
        ({"price": "-5", "event_time": "2099-01-01 00:00:00 UTC"}, Reason.NEGATIVE_PRICE),
    ],
)
def test_precedence_when_a_row_breaks_several_rules(
    validator: Validator, values: dict[str, str], reason: Reason
) -> None:
    assert verdict_of(validator, dict(values), T0)[0] == reason.value


def test_malformed_detail_names_the_first_bad_field(validator: Validator) -> None:
    got = verdict(validator, product_id="x", user_id="y", price="z")
    assert got == ("malformed", "product_id 'x' is not an integer")


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2019-10-01 00:00:00 UTC", dt.datetime(2019, 10, 1, tzinfo=UTC)),
        ("2019-10-01T02:00:00+02:00", dt.datetime(2019, 10, 1, tzinfo=UTC)),
        ("2019-09-30T19:00:00-05:00", dt.datetime(2019, 10, 1, tzinfo=UTC)),
        ("2019-10-01T00:00:00Z", dt.datetime(2019, 10, 1, tzinfo=UTC)),
        ("2019-10-01T05:30:00+0530", dt.datetime(2019, 10, 1, tzinfo=UTC)),
        ("2019-10-01 00:00:00.123456 UTC", dt.datetime(2019, 10, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2020-02-29 23:59:59 UTC", dt.datetime(2020, 2, 29, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_timestamp_styles_give_the_same_utc_instant(
    validator: Validator, text: str, utc: dt.datetime
) -> None:
    out = check(validator, event_time=text)
    assert out.clean.column("event_time").to_pylist() == [utc]


def test_both_styles_of_the_same_instant_are_exact_duplicates(validator: Validator) -> None:
    out = validator.validate(
        raw_batch(
            [
                raw_row(event_time="2019-10-01 00:00:00 UTC"),
                raw_row(event_time="2019-10-01T02:00:00+02:00"),
            ]
        ),
        INGESTED_AT,
    )
    assert out.clean.num_rows == 2
    assert out.keys[0] == out.keys[1]


@pytest.mark.parametrize(
    "text",
    [
        "2019-10-01 00:00:00",
        "2019-10-01T00:00:00",
        "2019-10-01 00:00",
        "2019-10-01 00:00:00 utc+",
        "1569888000",
        "2019-10-01 25:00:00 UTC",
        "2019-10-01 23:59:60 UTC",  # leap seconds are not representable: rejected, not shifted
    ],
)
def test_timestamp_without_zone_or_impossible_is_malformed(validator: Validator, text: str) -> None:
    assert verdict(validator, event_time=text)[0] == "malformed"


@pytest.mark.parametrize("text", ["2019-10-01", "2019-10-31"])
def test_date_without_zone_is_malformed(validator: Validator, text: str) -> None:
    assert verdict(validator, event_time=text)[0] == "malformed"


def test_large_non_integer_id_is_malformed(validator: Validator) -> None:
    assert verdict(validator, category_id="2053013552326770905.5")[0] == "malformed"


def test_normalisation_of_clean_rows(validator: Validator) -> None:
    rows = [
        raw_row(brand="  RuNail ", category_code="", user_session=""),
        raw_row(brand="", category_code="   ", user_session=None, price="0"),
        raw_row(brand=None, category_id="", price="5.40", event_type=" cart "),
        raw_row(brand="ÉCLAT", price="0.00"),
    ]
    out = validator.validate(raw_batch(rows), INGESTED_AT)
    assert out.quarantine.num_rows == 0
    got = out.clean.select(
        ["brand", "category_code", "category_id", "user_session", "price", "event_type"]
    ).to_pylist()
    assert got == [
        {
            "brand": "runail",
            "category_code": None,
            "category_id": 1487580005134238553,
            "user_session": None,
            "price": 2.62,
            "event_type": "view",
        },
        {
            "brand": None,
            "category_code": None,
            "category_id": 1487580005134238553,
            "user_session": None,
            "price": 0.0,
            "event_type": "view",
        },
        {
            "brand": None,
            "category_code": "appliances.environment",
            "category_id": None,
            "user_session": "26dd6e6e-4dac-4778-8d2c-92e149dab885",
            "price": 5.4,
            "event_type": "cart",
        },
        {
            "brand": "éclat",
            "category_code": "appliances.environment",
            "category_id": 1487580005134238553,
            "user_session": "26dd6e6e-4dac-4778-8d2c-92e149dab885",
            "price": 0.0,
            "event_type": "view",
        },
    ]


def test_rows_equal_after_normalisation_have_equal_keys(validator: Validator) -> None:
    rows = [
        raw_row(brand="Runail", price="2.62"),
        raw_row(brand=" runail ", price="2.620"),
        raw_row(brand="runail", price="2.63"),
        raw_row(brand="", user_session=""),
        raw_row(brand=None, user_session=None),
    ]
    keys = validator.validate(raw_batch(rows), INGESTED_AT).keys.tolist()
    assert keys[0] == keys[1]
    assert keys[2] != keys[0]
    assert keys[3] == keys[4]
    assert len({keys[0], keys[2], keys[3]}) == 3


def test_quarantine_rows_carry_raw_reason_detail_source_and_line(validator: Validator) -> None:
    rows = [
        raw_row(),
        raw_row(price="-3", brand='say "hi", ok'),
        raw_row(event_type="click", category_code="a\nb"),
        raw_row(price=""),
    ]
    out = validator.validate(raw_batch(rows, source="/data/oct.csv", first_line=10), INGESTED_AT)
    assert out.clean.num_rows == 1
    assert out.quarantine.schema == QUARANTINE_SCHEMA
    q = sorted(out.quarantine.to_pylist(), key=lambda r: r["line"])
    base = [BASE[c] for c in HEADER]
    assert [(r["line"], r["reason"]) for r in q] == [
        (11, "negative_price"),
        (12, "unknown_event_type"),
        (13, "missing_price"),
    ]
    assert all(r["source"] == "/data/oct.csv" for r in q)
    assert all(r["ingested_at"] == INGESTED_AT for r in q)
    assert q[0]["detail"] == "price -3.0 is negative"
    raw0 = base.copy()
    raw0[HEADER.index("brand")] = '"say ""hi"", ok"'
    raw0[HEADER.index("price")] = "-3"
    assert q[0]["raw"] == ",".join(raw0)
    raw1 = base.copy()
    raw1[HEADER.index("event_type")] = "click"
    raw1[HEADER.index("category_code")] = '"a\nb"'
    assert q[1]["raw"] == ",".join(raw1)
    raw2 = base.copy()
    raw2[HEADER.index("price")] = ""
    assert q[2]["raw"] == ",".join(raw2)
    assert out.counts == {"negative_price": 1, "unknown_event_type": 1, "missing_price": 1}


def test_raw_keeps_the_original_text_not_the_normalised_one(validator: Validator) -> None:
    out = check(validator, brand="  MiXeD  ", price=" -1 ")
    raw = out.quarantine.column("raw").to_pylist()[0]
    assert "  MiXeD  " in raw
    assert ", -1 ," in raw


def test_reader_rejects_are_quarantined_as_malformed(tmp_path: Path, validator: Validator) -> None:
    good = ",".join(BASE[c] for c in HEADER)
    path = tmp_path / "r.csv"
    path.write_bytes(
        (",".join(HEADER) + "\n" + good + "\nonly,three,fields\n").encode()
        + b"2019-10-01 00:00:00 UTC,view,1,2,x,caf\xe9,1,2,s\n"
    )
    out = [validator.validate(b, INGESTED_AT) for b in read_events(path)]
    q = [r for o in out for r in o.quarantine.to_pylist()]
    assert sum(o.clean.num_rows for o in out) == 1
    assert sorted((r["line"], r["reason"], r["detail"]) for r in q) == [
        (3, "malformed", "expected 9 columns, got 3"),
        (4, "malformed", "not valid UTF-8"),
    ]
    assert {r["source"] for r in q} == {str(path)}
    assert sorted(r["raw"] for r in q) == [
        "2019-10-01 00:00:00 UTC,view,1,2,x,caf\\xe9,1,2,s",
        "only,three,fields",
    ]


def test_raw_of_a_six_column_file_with_extras_is_the_files_own_row(
    tmp_path: Path, validator: Validator
) -> None:
    cols = ["user_id", "event_time", "event_type", "product_id", "price", "user_session", "note"]
    row = ["463240011", "2019-10-01 00:00:00 UTC", "view", "1", "-2", "s", "hello, world"]
    path = write_csv(tmp_path / "six.csv", [row], cols)
    out = [validator.validate(b, INGESTED_AT) for b in read_events(path)]
    q = out[0].quarantine.to_pylist()
    assert [(r["reason"], r["line"]) for r in q] == [("negative_price", 2)]
    assert q[0]["raw"] == '463240011,2019-10-01 00:00:00 UTC,view,1,-2,s,"hello, world"'
    assert out[0].clean.num_rows == 0


def test_ndjson_quarantine_raw_is_the_original_line(tmp_path: Path, validator: Validator) -> None:
    line = json.dumps({"event_time": "2019-10-01 00:00:00 UTC", "event_type": "buy", "x": [1]})
    path = tmp_path / "e.ndjson"
    path.write_text(line + "\n{broken\n")
    out = [validator.validate(b, INGESTED_AT) for b in read_events(path)]
    q = sorted((r for o in out for r in o.quarantine.to_pylist()), key=lambda r: r["line"])
    assert [(r["line"], r["reason"], r["raw"]) for r in q] == [
        (1, "missing_required", line),
        (2, "malformed", "{broken"),
    ]
    assert q[0]["detail"] == "product_id, user_id missing"


def test_parquet_typed_input_is_validated_and_raw_is_json(
    tmp_path: Path, validator: Validator
) -> None:
    table = pa.table(
        {
            "event_time": pa.array(
                [dt.datetime(2019, 10, 1, 2, 0), dt.datetime(2019, 10, 1, 3, 0)],
                pa.timestamp("us"),
            ),
            "event_type": ["view", "purchase"],
            "product_id": pa.array([1, 2], pa.int64()),
            "price": pa.array([1.5, -2.0]),
            "user_id": pa.array([3, 4], pa.int32()),
            "user_session": ["s", None],
            "brand": [" ACME ", ""],
        }
    )
    pq.write_table(table, tmp_path / "e.parquet")
    out = [validator.validate(b, INGESTED_AT) for b in read_events(tmp_path / "e.parquet")]
    clean = out[0].clean.to_pylist()
    assert clean == [
        {
            "event_time": dt.datetime(2019, 10, 1, 2, 0, tzinfo=UTC),  # naive is taken as UTC
            "event_type": "view",
            "product_id": 1,
            "category_id": None,
            "category_code": None,
            "brand": "acme",
            "price": 1.5,
            "user_id": 3,
            "user_session": "s",
        }
    ]
    q = out[0].quarantine.to_pylist()
    assert [(r["reason"], r["line"]) for r in q] == [("negative_price", 2)]
    assert json.loads(q[0]["raw"]) == {
        "event_time": "2019-10-01 03:00:00",
        "event_type": "purchase",
        "product_id": 2,
        "price": -2.0,
        "user_id": 4,
        "user_session": None,
        "brand": "",
    }


def test_parquet_with_zone_is_converted_to_utc(tmp_path: Path, validator: Validator) -> None:
    tz = dt.timezone(dt.timedelta(hours=2))
    table = pa.table(
        {
            "event_time": pa.array(
                [dt.datetime(2019, 10, 1, 2, 0, tzinfo=tz)], pa.timestamp("us", "+02:00")
            ),
            "event_type": ["view"],
            "product_id": [1],
            "price": [1.0],
            "user_id": [3],
            "user_session": ["s"],
        }
    )
    pq.write_table(table, tmp_path / "z.parquet")
    out = [validator.validate(b, INGESTED_AT) for b in read_events(tmp_path / "z.parquet")]
    assert out[0].clean.column("event_time").to_pylist() == [T0]


@pytest.mark.parametrize("unit", ["ms", "ns"])
def test_parquet_naive_timestamps_in_other_units(
    tmp_path: Path, validator: Validator, unit: str
) -> None:
    seconds = int(T0.timestamp())
    scale = {"ms": 1_000, "ns": 1_000_000_000}[unit]
    table = pa.table(
        {
            "event_time": pa.array([seconds * scale], pa.timestamp(unit)),
            "event_type": ["view"],
            "product_id": [1],
            "price": [1.0],
            "user_id": [3],
            "user_session": ["s"],
        }
    )
    pq.write_table(table, tmp_path / f"{unit}.parquet")
    out = [validator.validate(b, INGESTED_AT) for b in read_events(tmp_path / f"{unit}.parquet")]
    assert out[0].clean.column("event_time").to_pylist() == [T0]


def test_empty_batch(validator: Validator) -> None:
    out = validator.validate(raw_batch([]), INGESTED_AT)
    assert (out.clean.num_rows, out.quarantine.num_rows, len(out.keys)) == (0, 0, 0)
    assert out.counts == {}


def test_extra_columns_never_reach_the_lake(tmp_path: Path) -> None:
    cols = ["referrer", *HEADER, "Ab Test"]
    good = [BASE[c] for c in HEADER]
    bad = good.copy()
    bad[HEADER.index("price")] = "-1"
    path = write_csv(tmp_path / "x.csv", [["r1", *good, "A"], ["r2", *bad, "B"]], cols)
    report = ingest(tmp_path / "home", path)
    assert (report["read"], report["clean"], report["by_reason"]) == (2, 1, {"negative_price": 1})
    lake = read_lake(tmp_path / "home")  # checks every file has exactly the event schema
    assert lake.column("price").to_pylist() == [2.62]
    raws = read_lake(tmp_path / "home", "quarantine").column("raw").to_pylist()
    assert raws == ["r2," + ",".join(bad) + ",B"]


@pytest.mark.parametrize("extra", ["", 'a"b', "_line", "_raw", "s_price"])
def test_any_extra_column_name_is_ignored(tmp_path: Path, extra: str) -> None:
    good = [BASE[c] for c in HEADER]
    bad = good.copy()
    bad[HEADER.index("price")] = "-1"
    path = write_csv(tmp_path / "x.csv", [[*good, "X"], [*bad, "Y"]], [*HEADER, extra])
    report = ingest(tmp_path / "home", path)
    assert (report["clean"], report["by_reason"]) == (1, {"negative_price": 1})
    raws = read_lake(tmp_path / "home", "quarantine").column("raw").to_pylist()
    assert raws == [",".join(bad) + ",Y"]


@pytest.mark.parametrize("when", ["10000-01-01 00:00:00 UTC", "-2019-10-01 00:00:00 UTC"])
def test_out_of_range_year_does_not_crash_the_ingest(tmp_path: Path, when: str) -> None:
    good = [BASE[c] for c in HEADER]
    odd = good.copy()
    odd[HEADER.index("event_time")] = when
    path = write_csv(tmp_path / "y.csv", [good, odd])
    report = ingest(tmp_path / "home", path)
    assert (report["read"], report["clean"], report["quarantined"]) == (2, 1, 1)


def test_trimming_removes_tabs_and_newlines(validator: Validator) -> None:
    out = check(validator, brand="\tRunail\n", user_session="\t")
    assert out.clean.select(["brand", "user_session"]).to_pylist() == [
        {"brand": "runail", "user_session": None}
    ]
