"""read_events: format detection, NDJSON (plain and gzip) and Parquet sources."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cartpulse.schema import EVENT_COLUMNS
from cartpulse.sources.base import SourceError
from cartpulse.sources.files import detect_format, read_events

from ._support import BASE_ROW, HEADER, csv_text, event_row, fields, read_all

UTC = dt.UTC


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("events.csv", "csv"),
        ("EVENTS.CSV", "csv"),
        ("2019-Oct.csv.gz", "csv"),
        ("e.parquet", "parquet"),
        ("e.pq", "parquet"),
        ("e.ndjson", "ndjson"),
        ("e.jsonl", "ndjson"),
        ("e.ndjson.gz", "ndjson"),
        ("e.JSONL.GZ", "ndjson"),
    ],
)
def test_detect_format_from_the_name(name: str, fmt: str) -> None:
    assert detect_format(Path(name)) == fmt


@pytest.mark.parametrize("name", ["events.txt", "events.json", "events.csv.bz2", "events", "csv"])
def test_unknown_extension_is_a_source_error_listing_the_allowed_ones(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    path.write_text(",".join(HEADER) + "\n")
    with pytest.raises(SourceError) as err:
        read_events(path)
    assert str(err.value) == (
        f"{path}: unknown file type; expected one of "
        ".csv, .csv.gz, .jsonl, .jsonl.gz, .ndjson, .ndjson.gz, .parquet, .pq"
    )


def test_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nope\.csv: no such file"):
        read_events(tmp_path / "nope.csv")


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(SourceError, match="no such file"):
        read_events(tmp_path / "dir.csv")


def test_csv_gz_through_read_events_equals_csv(tmp_path: Path) -> None:
    text, _ = csv_text([event_row(product_id=str(i)) for i in range(10)] + [["x", "y"]])
    (tmp_path / "a.csv").write_text(text)
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(text.encode()))
    assert read_all(tmp_path / "a.csv.gz") == read_all(tmp_path / "a.csv")


# --- NDJSON -----------------------------------------------------------------------------------


def ndjson_event(**values: object) -> dict[str, object]:
    """A JSON event with typed values, as a collector would send it."""
    event: dict[str, object] = {
        "event_time": "2019-10-01 00:00:00 UTC",
        "event_type": "view",
        "product_id": 5773203,
        "category_id": 1487580005134238553,
        "category_code": None,
        "brand": "runail",
        "price": 2.62,
        "user_id": 463240011,
        "user_session": "26dd6e6e-4dac-4778-8d2c-92e149dab885",
    }
    event.update(values)
    return event


def write_lines(path: Path, lines: Sequence[str | bytes], end: bytes = b"\n") -> Path:
    raw = [ln.encode() if isinstance(ln, str) else ln for ln in lines]
    data = end.join(raw) + end
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def test_ndjson_objects_become_text_fields_with_raw_and_line(tmp_path: Path) -> None:
    as_numbers = json.dumps(ndjson_event())
    as_strings = json.dumps(
        ndjson_event(product_id="5773203", category_id="1487580005134238553", price="2.62")
    )
    path = write_lines(tmp_path / "e.ndjson", [as_numbers, as_strings])
    rows, rejects = read_all(path)
    assert rejects == []
    expected: list[str | None] = list(event_row())
    expected[HEADER.index("category_code")] = None  # JSON null stays null
    assert [fields(r) for r in rows] == [expected, expected]
    assert [r["_line"] for r in rows] == [1, 2]
    assert [r["_raw"] for r in rows] == [as_numbers, as_strings]
    batch = next(iter(read_events(path)))
    assert batch.raw_format == "json"


def test_ndjson_missing_fields_are_null_and_unknown_keys_ignored(tmp_path: Path) -> None:
    line = json.dumps({"event_type": "cart", "product_id": 1, "referrer": "x", "Brand": "B"})
    rows, rejects = read_all(write_lines(tmp_path / "m.jsonl", [line]))
    assert rejects == []
    assert rows[0]["event_type"] == "cart"
    assert rows[0]["product_id"] == "1"
    assert [rows[0][c] for c in EVENT_COLUMNS if c not in ("event_type", "product_id")] == [
        None
    ] * 7


def test_ndjson_number_formats(tmp_path: Path) -> None:
    lines = [
        '{"price": 5.40, "product_id": 2053013552326770905, "user_id": 1e3}',
        '{"price": -0.5, "product_id": "007", "user_id": true}',
        '{"price": {"amount": 1}, "product_id": [1], "user_id": null}',
    ]
    rows, _ = read_all(write_lines(tmp_path / "n.ndjson", lines))
    got = [(r["price"], r["product_id"], r["user_id"]) for r in rows]
    assert got[0][:2] == ("5.4", "2053013552326770905")  # big ids keep every digit
    assert float(got[0][2]) == 1000
    assert got[1] == ("-0.5", "007", "true")
    assert json.loads(got[2][0]) == {"amount": 1}
    assert json.loads(got[2][1]) == [1]
    assert got[2][2] is None


def test_ndjson_bad_lines_become_rejects_with_lines(tmp_path: Path) -> None:
    good = json.dumps(ndjson_event())
    lines: list[str | bytes] = [
        good,  # 1
        "{not json",  # 2
        "[1, 2, 3]",  # 3
        "",  # 4 blank: not a row
        "42",  # 5
        '"a string"',  # 6
        "null",  # 7
        b'{"brand": "caf\xe9"}',  # 8 latin-1, not UTF-8
        "   ",  # 9 blank
        good,  # 10
        '{"a": 1} trailing',  # 11
    ]
    rows, rejects = read_all(write_lines(tmp_path / "bad.ndjson", lines))
    assert [r["_line"] for r in rows] == [1, 10]
    assert [(r["line"], r["detail"]) for r in rejects] == [
        (2, "not valid JSON"),
        (3, "not a JSON object"),
        (5, "not a JSON object"),
        (6, "not a JSON object"),
        (7, "not a JSON object"),
        (8, "not valid UTF-8"),
        (11, "not valid JSON"),
    ]
    assert rejects[0]["raw"] == "{not json"
    assert rejects[5]["raw"] == '{"brand": "caf\\xe9"}'


def test_ndjson_without_final_newline_and_with_crlf(tmp_path: Path) -> None:
    good = json.dumps(ndjson_event())
    (tmp_path / "a.ndjson").write_text(good + "\r\n{oops\r\n" + good)
    rows, rejects = read_all(tmp_path / "a.ndjson")
    assert [r["_line"] for r in rows] == [1, 3]
    assert [r["_raw"] for r in rows] == [good, good]  # no stray "\r"
    assert [(r["line"], r["raw"]) for r in rejects] == [(2, "{oops")]


def test_ndjson_gz_equals_plain(tmp_path: Path) -> None:
    lines: list[str | bytes] = [json.dumps(ndjson_event(product_id=i)) for i in range(20)]
    lines[7] = "not json"
    plain = write_lines(tmp_path / "a.ndjson", lines)
    packed = write_lines(tmp_path / "a.ndjson.gz", lines)
    assert read_all(packed) == read_all(plain)
    assert read_all(write_lines(tmp_path / "a.jsonl.gz", lines)) == read_all(plain)


def test_ndjson_lines_stay_exact_across_many_chunks(tmp_path: Path) -> None:
    lines: list[str | bytes] = []
    want_rows, want_rejects = [], []
    for i in range(6_000):
        if i % 101 == 3:
            lines.append(f"broken {i}")
            want_rejects.append(i + 1)
        elif i % 211 == 5:
            lines.append("")
        else:
            lines.append(json.dumps(ndjson_event(product_id=i, brand="é" * (i % 40))))
            want_rows.append((i + 1, str(i)))
    path = write_lines(tmp_path / "big.ndjson", lines)
    assert path.stat().st_size > 3 * 200_000  # several reads of the file
    assert len(list(read_events(path, 1_000))) > 1
    rows, rejects = read_all(path, 1_000)
    assert [(r["_line"], r["product_id"]) for r in rows] == want_rows
    assert [r["line"] for r in rejects] == want_rejects


def test_empty_ndjson_has_no_rows(tmp_path: Path) -> None:
    (tmp_path / "e.ndjson").write_bytes(b"")
    (tmp_path / "b.ndjson").write_bytes(b"\n\n  \n")
    assert read_all(tmp_path / "e.ndjson") == ([], [])
    assert read_all(tmp_path / "b.ndjson") == ([], [])


# --- Parquet ----------------------------------------------------------------------------------


def typed_table(n: int = 3) -> pa.Table:
    start = dt.datetime(2019, 10, 1, tzinfo=UTC)
    return pa.table(
        {
            "event_time": pa.array(
                [start + dt.timedelta(seconds=i) for i in range(n)], pa.timestamp("us", tz="UTC")
            ),
            "event_type": pa.array(["view", "cart", "purchase"] * (n // 3) + ["view"] * (n % 3)),
            "product_id": pa.array(range(100, 100 + n), pa.int64()),
            "category_id": pa.array([1487580005134238553] * n, pa.int64()),
            "category_code": pa.array([None] * n, pa.string()),
            "brand": pa.array(["runail"] * n),
            "price": pa.array([2.62] * n, pa.float64()),
            "user_id": pa.array([463240011] * n, pa.int64()),
            "user_session": pa.array(["s"] * n),
        }
    )


@pytest.mark.parametrize("dictionary", [True, False], ids=["dictionary", "plain"])
def test_parquet_keeps_column_types_and_numbers_rows(tmp_path: Path, dictionary: bool) -> None:
    table = typed_table(7)
    # row groups of 2 against batches of 3: batches still hold 3 rows, as a plain read cuts them
    pq.write_table(table, tmp_path / "e.parquet", use_dictionary=dictionary, row_group_size=2)
    batches = list(read_events(tmp_path / "e.parquet", 3))
    assert [b.data.num_rows for b in batches] == [3, 3, 1]
    data = pa.Table.from_batches([b.data for b in batches])
    for name in EVENT_COLUMNS:
        typ = data.schema.field(name).type
        if pa.types.is_dictionary(typ):  # text the file stores dictionary-encoded
            assert dictionary and typ.value_type == table.schema.field(name).type == pa.string()
        else:
            assert typ == table.schema.field(name).type
        assert data.column(name).to_pylist() == table.column(name).to_pylist()
    text = {n for n in EVENT_COLUMNS if table.schema.field(n).type == pa.string()}
    kept = {n for n in EVENT_COLUMNS if pa.types.is_dictionary(data.schema.field(n).type)}
    assert kept == (text if dictionary else set())
    assert data.column("_line").to_pylist() == list(range(1, 8))
    assert all(b.raw_format == "json" and b.rejects.num_rows == 0 for b in batches)


def test_parquet_with_naive_timestamps_is_read_as_is(tmp_path: Path) -> None:
    table = typed_table().set_column(
        0, "event_time", pa.array([dt.datetime(2019, 10, 1, 0, 0, i) for i in range(3)])
    )
    pq.write_table(table, tmp_path / "n.parquet")
    batch = next(iter(read_events(tmp_path / "n.parquet")))
    assert batch.data.schema.field("event_time").type == pa.timestamp("us")


def test_parquet_missing_optional_columns_are_null_extra_columns_dropped(tmp_path: Path) -> None:
    table = typed_table().drop_columns(["category_id", "category_code", "brand"])
    table = table.append_column("Referrer", pa.array(["a", "b", "c"]))
    pq.write_table(table, tmp_path / "six.parquet")
    batch = next(iter(read_events(tmp_path / "six.parquet")))
    for name in ("category_id", "category_code", "brand"):
        assert batch.data.column(name).null_count == 3
    assert "referrer" not in batch.data.schema.names
    assert "Referrer" not in batch.data.schema.names
    assert batch.data.column("product_id").to_pylist() == [100, 101, 102]


def test_parquet_column_names_are_case_insensitive(tmp_path: Path) -> None:
    table = typed_table()
    table = table.rename_columns([c.upper() for c in table.schema.names])
    pq.write_table(table, tmp_path / "upper.parquet")
    batch = next(iter(read_events(tmp_path / "upper.parquet")))
    assert batch.data.column("user_id").to_pylist() == [463240011] * 3


def test_parquet_missing_required_column_is_a_source_error(tmp_path: Path) -> None:
    pq.write_table(typed_table().drop_columns(["user_id"]), tmp_path / "m.parquet")
    with pytest.raises(SourceError, match=r"missing required column\(s\) user_id"):
        list(read_events(tmp_path / "m.parquet"))


def test_file_that_is_not_parquet_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "fake.parquet").write_text(",".join(HEADER) + "\n")
    with pytest.raises(SourceError, match="not a readable Parquet file"):
        list(read_events(tmp_path / "fake.parquet"))


def test_parquet_text_columns_are_passed_through(tmp_path: Path) -> None:
    table = pa.table({c: pa.array([v]) for c, v in BASE_ROW.items()})
    pq.write_table(table, tmp_path / "text.parquet")
    rows = next(iter(read_events(tmp_path / "text.parquet"))).data.to_pylist()
    assert fields(rows[0]) == event_row()
