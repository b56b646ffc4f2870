"""CSV / CSV.gz reader: columns, rejects with exact line numbers, encodings, the slow path."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pytest

from cartpulse.schema import EVENT_COLUMNS, OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from cartpulse.sources.base import SourceError
from cartpulse.sources.files import read_events

from ._support import HEADER, SIX_COLUMNS, csv_text, event_row, fields, read_all

# Arrow's parser is given blocks of at least 1 MiB; a longer row sends the reader to its
# Python fallback for the rest of the file.
BIG = 3 * (1 << 20)


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_nine_columns_read_as_text_with_lines(tmp_path: Path) -> None:
    rows = [
        event_row(),
        event_row(event_type="purchase", product_id="4958", price="1.19", brand=""),
        event_row(event_time="2020-02-06 15:24:32 UTC", user_session=""),
    ]
    text, starts = csv_text(rows)
    got, rejects = read_all(write(tmp_path / "e.csv", text))
    assert rejects == []
    assert [r["_line"] for r in got] == starts == [2, 3, 4]
    assert [fields(r) for r in got] == rows  # text, untouched: empty stays "" until validation
    batch = next(iter(read_events(tmp_path / "e.csv")))
    assert batch.raw_format == "csv"
    assert batch.source == str(tmp_path / "e.csv")
    assert batch.raw_columns == tuple(HEADER)
    assert batch.extra_columns == ()


def test_six_column_schema_drift_reads_optional_columns_as_null(tmp_path: Path) -> None:
    rows = [event_row(SIX_COLUMNS), event_row(SIX_COLUMNS, price="5.4")]
    text, _ = csv_text(rows, SIX_COLUMNS)
    got, rejects = read_all(write(tmp_path / "six.csv", text))
    assert rejects == []
    assert len(got) == 2
    for row, written in zip(got, rows, strict=True):
        assert fields(row, SIX_COLUMNS) == written
        assert {c: row[c] for c in OPTIONAL_COLUMNS} == dict.fromkeys(OPTIONAL_COLUMNS)
    assert got[1]["price"] == "5.4"


def test_columns_are_matched_by_name_not_position(tmp_path: Path) -> None:
    order = list(reversed(HEADER))
    text, _ = csv_text([event_row(order)], order)
    got, _ = read_all(write(tmp_path / "rev.csv", text))
    assert fields(got[0]) == event_row()


def test_unknown_extra_columns_are_ignored_and_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cols = ["referrer", *HEADER, "ab_test"]
    text, _ = csv_text([event_row(cols), event_row(cols, product_id="7")], cols)
    with caplog.at_level(logging.WARNING):
        batches = list(read_events(write(tmp_path / "x.csv", text)))
    # extra columns get positional internal names (any header text is then safe in SQL)
    assert [b.extra_columns for b in batches] == [("_extra_0", "_extra_10")]
    rows = batches[0].data.to_pylist()
    assert [fields(r) for r in rows] == [event_row(), event_row(product_id="7")]
    warnings = [r for r in caplog.records if "unknown_columns" in r.getMessage()]
    assert len(warnings) == 1
    assert "referrer,ab_test" in warnings[0].getMessage()


@pytest.mark.parametrize("missing", REQUIRED_COLUMNS)
def test_missing_required_column_is_a_source_error_naming_it(tmp_path: Path, missing: str) -> None:
    cols = [c for c in HEADER if c != missing]
    text, _ = csv_text([event_row(cols)], cols)
    path = write(tmp_path / "m.csv", text)
    with pytest.raises(SourceError) as err:
        list(read_events(path))
    message = str(err.value)
    assert str(path) in message
    assert f"missing required column(s) {missing};" in message


def test_several_missing_required_columns_are_all_named(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.csv", "event_time,event_type,brand\n2019-10-01 00:00:00 UTC,view,x\n"
    )
    with pytest.raises(
        SourceError, match=r"missing required column\(s\) product_id, price, user_id"
    ):
        list(read_events(path))


def test_optional_columns_may_each_be_absent(tmp_path: Path) -> None:
    for absent in sorted(OPTIONAL_COLUMNS):
        cols = [c for c in HEADER if c != absent]
        text, _ = csv_text([event_row(cols)], cols)
        got, rejects = read_all(write(tmp_path / f"no_{absent}.csv", text))
        assert rejects == []
        assert got[0][absent] is None
        assert [got[0][c] for c in cols] == event_row(cols)


def test_duplicate_column_is_a_source_error(tmp_path: Path) -> None:
    cols = [*HEADER, "Brand"]
    text, _ = csv_text([event_row(cols)], cols)
    with pytest.raises(SourceError, match="brand appear more than once"):
        list(read_events(write(tmp_path / "d.csv", text)))


def test_header_with_bom_upper_case_and_spaces(tmp_path: Path) -> None:
    header = ",".join(f" {c.upper()} " if i % 2 else c.title() for i, c in enumerate(HEADER))
    text = "\ufeff" + header + "\n" + ",".join(event_row()) + "\n"
    got, rejects = read_all(write(tmp_path / "bom.csv", text))
    assert rejects == []
    assert fields(got[0]) == event_row()
    assert got[0]["_line"] == 2


def test_quoted_header_names(tmp_path: Path) -> None:
    header = ",".join(f'"{c}"' for c in HEADER)
    got, _ = read_all(write(tmp_path / "q.csv", header + "\n" + ",".join(event_row()) + "\n"))
    assert fields(got[0]) == event_row()


def test_empty_file_is_a_source_error(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.csv", "")
    with pytest.raises(SourceError, match=r"empty\.csv: file is empty"):
        list(read_events(path))


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    for name, text in [("h1.csv", ",".join(HEADER) + "\n"), ("h2.csv", ",".join(HEADER))]:
        got, rejects = read_all(write(tmp_path / name, text))
        assert (got, rejects) == ([], [])


def test_header_that_is_not_utf8_is_a_source_error(tmp_path: Path) -> None:
    path = write(
        tmp_path / "h.csv", ",".join(HEADER).replace("brand", "br\xe4nd").encode("latin-1")
    )
    with pytest.raises(SourceError, match="cannot read the header line"):
        list(read_events(path))


def test_wrong_column_counts_become_rejects_with_exact_lines(tmp_path: Path) -> None:
    good = ",".join(event_row())
    lines = [
        ",".join(HEADER),
        good,  # 2
        "2019-10-01 00:00:00 UTC,view,1",  # 3: too few
        good,  # 4
        good + ",surplus",  # 5: too many
        "x",  # 6: one field
        good,  # 7
        "  ",  # 8: whitespace is a (bad) row, not a blank line
    ]
    got, rejects = read_all(write(tmp_path / "w.csv", "\n".join(lines) + "\n"))
    assert [r["_line"] for r in got] == [2, 4, 7]
    assert [fields(r) for r in got] == [event_row()] * 3
    assert rejects == [
        {"raw": "2019-10-01 00:00:00 UTC,view,1", "detail": "expected 9 columns, got 3", "line": 3},
        {"raw": good + ",surplus", "detail": "expected 9 columns, got 10", "line": 5},
        {"raw": "x", "detail": "expected 9 columns, got 1", "line": 6},
        {"raw": "  ", "detail": "expected 9 columns, got 1", "line": 8},
    ]


def test_reject_as_the_last_line_is_not_lost(tmp_path: Path) -> None:
    text = ",".join(HEADER) + "\n" + ",".join(event_row()) + "\nonly,two"
    got, rejects = read_all(write(tmp_path / "t.csv", text))
    assert [r["_line"] for r in got] == [2]
    assert [(r["line"], r["raw"]) for r in rejects] == [(3, "only,two")]


def test_blank_lines_are_not_rows_and_do_not_shift_line_numbers(tmp_path: Path) -> None:
    good = ",".join(event_row())
    text = "\n".join([",".join(HEADER), "", good, "", "", good, "bad", "", good, "", ""]) + "\n"
    got, rejects = read_all(write(tmp_path / "b.csv", text))
    assert [r["_line"] for r in got] == [3, 6, 9]
    assert [(r["line"], r["raw"]) for r in rejects] == [(7, "bad")]


def test_crlf_line_endings(tmp_path: Path) -> None:
    good = ",".join(event_row())
    text = "\r\n".join([",".join(HEADER), good, "bad,row", "", good]) + "\r\n"
    got, rejects = read_all(write(tmp_path / "crlf.csv", text))
    assert [r["_line"] for r in got] == [2, 5]
    assert [fields(r) for r in got] == [event_row()] * 2  # no stray "\r" in the last field
    assert [(r["line"], r["raw"]) for r in rejects] == [(3, "bad,row")]


def test_quoted_commas_quotes_and_newlines_keep_values_and_later_line_numbers(
    tmp_path: Path,
) -> None:
    rows = [
        event_row(category_code="a,b,c"),
        event_row(brand='say "hi"'),
        event_row(category_code="line one\nline two\nline three"),
        event_row(brand="x\n"),
        event_row(),
    ]
    text, starts = csv_text(rows)
    assert starts == [2, 3, 4, 7, 9]
    got, rejects = read_all(write(tmp_path / "q.csv", text))
    assert rejects == []
    assert [r["_line"] for r in got] == starts
    assert [fields(r) for r in got] == rows


def test_line_numbers_after_quoted_newline_and_a_bad_row(tmp_path: Path) -> None:
    text = (
        ",".join(HEADER)
        + "\n"
        + ",".join(event_row(product_id="1"))  # line 2
        + "\n"
        + ",".join(event_row(product_id="2", category_code='"a,\nb"'))  # lines 3-4
        + "\nbad\n"  # line 5
        + ",".join(event_row(product_id="3"))  # line 6
        + "\n"
    )
    got, rejects = read_all(write(tmp_path / "q.csv", text))
    assert [(r["line"], r["raw"]) for r in rejects] == [(5, "bad")]
    assert [(r["_line"], r["product_id"]) for r in got] == [(2, "1"), (3, "2"), (6, "3")]


def test_invalid_utf8_row_is_rejected_and_the_others_kept(tmp_path: Path) -> None:
    header = ",".join(HEADER).encode()
    good = ",".join(event_row()).encode()
    bad = ",".join(event_row(brand="caf\udcff")).encode("utf-8", "surrogateescape")
    text = b"\n".join([header, good, bad, good, bad.replace(b"caf", b"\xc3(")]) + b"\n"
    got, rejects = read_all(write(tmp_path / "u.csv", text))
    assert [r["_line"] for r in got] == [2, 4]
    assert [(r["line"], r["detail"]) for r in rejects] == [
        (3, "not valid UTF-8"),
        (5, "not valid UTF-8"),
    ]
    assert rejects[0]["raw"] == ",".join(event_row(brand="caf\\xff"))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_invalid_utf8_in_a_row_with_the_wrong_column_count(tmp_path: Path) -> None:
    text = (",".join(HEADER) + "\n").encode() + b"bad\xff,x\n" + ",".join(event_row()).encode()
    got, rejects = read_all(write(tmp_path / "u.csv", text))
    assert [r["_line"] for r in got] == [3]
    assert rejects == [{"raw": "bad\\xff,x", "detail": "expected 9 columns, got 2", "line": 2}]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.xfail(
    strict=True,
    reason="BUG (performance): _FastCsv._on_invalid cannot receive a short row that is not "
    "UTF-8 (pyarrow fails decoding InvalidRow.text), so Arrow aborts and the whole rest of the "
    "file is parsed by the slow Python fallback",
)
def test_short_non_utf8_row_does_not_abandon_the_fast_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = (",".join(HEADER) + "\n").encode() + b"bad\xff,x\n"
    text += ("\n".join(",".join(event_row(product_id=str(i))) for i in range(100)) + "\n").encode()
    with caplog.at_level(logging.INFO, logger="cartpulse.sources.csv_reader"):
        got, rejects = read_all(write(tmp_path / "u.csv", text))
    assert (len(got), len(rejects)) == (100, 1)  # correct either way...
    assert not [r for r in caplog.records if "csv_fallback" in r.getMessage()]  # ...but slow


def test_field_bigger_than_a_block_goes_through_the_fallback_without_loss(tmp_path: Path) -> None:
    huge = "x" * BIG
    rows: list[list[str]] = [event_row(product_id=str(i)) for i in range(1, 6)]
    rows.append(event_row(product_id="100", category_code=huge))
    rows.append(event_row(product_id="101", category_code="multi\nline"))
    rows.append(["bad", "row"])
    rows.append(event_row(product_id="102", brand="caf\udcff"))  # not UTF-8, see below
    rows.append(event_row(product_id="103"))
    text, starts = csv_text(rows)
    text += "\n"  # a trailing blank line
    path = write(tmp_path / "big.csv", text.encode("utf-8", "surrogateescape"))
    got, rejects = read_all(path)
    ids = [r["product_id"] for r in got]
    assert ids == ["1", "2", "3", "4", "5", "100", "101", "103"]
    assert [r["_line"] for r in got] == [starts[i] for i in (0, 1, 2, 3, 4, 5, 6, 9)]
    assert got[5]["category_code"] == huge
    assert got[6]["category_code"] == "multi\nline"
    assert [(r["line"], r["detail"]) for r in rejects] == [
        (starts[7], "expected 9 columns, got 2"),
        (starts[8], "not valid UTF-8"),
    ]
    assert "caf\\xff" in rejects[1]["raw"]


def test_huge_first_row_goes_through_the_fallback(tmp_path: Path) -> None:
    rows = [event_row(brand="y" * BIG), event_row(product_id="2")]
    text, _ = csv_text(rows)
    got, rejects = read_all(write(tmp_path / "big1.csv", text))
    assert rejects == []
    assert [(r["_line"], len(r["brand"])) for r in got] == [(2, BIG), (3, len("runail"))]


def test_fallback_after_quoted_newline_and_bad_row_reads_each_row_once(tmp_path: Path) -> None:
    rows: list[list[str]] = [event_row(product_id="1"), event_row(product_id="2", brand="a\nb")]
    rows.append(["bad"])
    rows += [event_row(product_id=str(i)) for i in range(3, 12_000)]  # > 1 block before...
    rows.append(event_row(product_id="99999", category_code="x" * BIG))  # ...the huge row
    text, _ = csv_text(rows)
    written = len(rows) - 1
    got, rejects = read_all(write(tmp_path / "dup.csv", text))
    ids = [int(r["product_id"]) for r in got]
    n_rejects, n_read, n_distinct = len(rejects), len(ids), len(set(ids))
    del text, rows, got
    assert n_rejects == 1
    assert (n_read, n_distinct) == (written, written)


def test_gzip_csv_reads_the_same_as_plain_csv(tmp_path: Path) -> None:
    rows: list[list[str]] = [event_row(product_id=str(i)) for i in range(50)]
    rows[10] = ["too", "few"]
    rows[20] = event_row(brand="multi\nline")
    text, _ = csv_text(rows)
    text = text.replace(",".join(event_row(product_id="30")), "", 1)  # a blank line
    plain = write(tmp_path / "e.csv", text)
    packed = write(tmp_path / "e.csv.gz", gzip.compress(text.encode()))
    assert read_all(packed) == read_all(plain)
    got, rejects = read_all(packed)
    assert len(got) == 48
    assert len(rejects) == 1


def test_gzip_csv_with_a_huge_field(tmp_path: Path) -> None:
    rows = [event_row(product_id="1"), event_row(product_id="2", brand="z" * BIG), ["x"]]
    rows.append(event_row(product_id="3"))
    text, starts = csv_text(rows)
    packed = write(tmp_path / "big.csv.gz", gzip.compress(text.encode()))
    got, rejects = read_all(packed)
    assert [(r["_line"], r["product_id"]) for r in got] == [
        (starts[0], "1"),
        (starts[1], "2"),
        (starts[3], "3"),
    ]
    assert [(r["line"], r["raw"]) for r in rejects] == [(starts[2], "x")]


def test_many_blocks_keep_exact_line_numbers(tmp_path: Path) -> None:
    """More than one Arrow block (batch), with bad rows and blank lines spread over all of them."""
    lines = [",".join(HEADER)]
    want_rows: list[tuple[int, str]] = []
    want_rejects: list[tuple[int, str]] = []
    for i in range(40_000):
        line_no = len(lines) + 1
        if i % 997 == 5:
            lines.append(f"bad,{i}")
            want_rejects.append((line_no, f"bad,{i}"))
        elif i % 1_301 == 7:
            lines.append("")
        else:
            lines.append(",".join(event_row(product_id=str(i))))
            want_rows.append((line_no, str(i)))
    path = write(tmp_path / "many.csv", "\n".join(lines) + "\n")
    assert path.stat().st_size > 2 * (1 << 20)
    batches = list(read_events(path, 1_000))
    assert len(batches) > 1
    got, rejects = read_all(path)
    assert [(r["_line"], r["product_id"]) for r in got] == want_rows
    assert [(r["line"], r["raw"]) for r in rejects] == want_rejects


def test_every_batch_has_the_nine_event_columns_and_line(tmp_path: Path) -> None:
    text, _ = csv_text([event_row(SIX_COLUMNS)], SIX_COLUMNS)
    for batch in read_events(write(tmp_path / "s.csv", text)):
        assert set(batch.data.schema.names) >= {*EVENT_COLUMNS, "_line"}
        assert batch.rows == batch.data.num_rows + batch.rejects.num_rows


def test_rows_of_only_empty_fields_count_as_blank_lines(tmp_path: Path) -> None:
    """Arrow cannot tell `,,,,,,,,` from a blank line; both carry nothing: counted, not read."""
    good = ",".join(event_row())
    text = "\n".join([",".join(HEADER), good, ",,,,,,,,", '"","","","","","","","",""', "", good])
    batches = list(read_events(write(tmp_path / "e.csv", text + "\n")))
    assert sum(b.rows for b in batches) == 2
    assert sum(b.blank_rows for b in batches) == 3
    lines = [ln for b in batches for ln in b.data.column("_line").to_pylist()]
    assert lines == [2, 6]
