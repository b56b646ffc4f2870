"""Request bodies: JSON arrays, NDJSON, gzip, and bodies that are not events at all."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cartpulse.schema import EVENT_COLUMNS
from cartpulse.sources.files import ndjson_batch
from cartpulse.sources.http import (
    BodyError,
    BodyTooLargeError,
    _fast_ndjson,
    decode_body,
    parse_events,
)

_COLS = [*EVENT_COLUMNS, "_line", "_raw"]

ROW = {"event_time": "2019-10-01 00:00:00 UTC", "event_type": "view", "product_id": 1}


def test_json_array_rows_keep_their_position_and_raw_text() -> None:
    batch = parse_events(json.dumps([ROW, 5, ROW | {"price": 2.5}]).encode(), "http:k")
    assert batch.data.num_rows == 2
    assert batch.data.column("_line").to_pylist() == [1, 3]
    assert batch.data.column("product_id").to_pylist() == ["1", "1"]
    assert batch.data.column("price").to_pylist() == [None, "2.5"]
    assert batch.rejects.column("line").to_pylist() == [2]
    assert batch.rejects.column("detail").to_pylist() == ["not a JSON object"]


def test_ndjson_with_a_broken_line_and_blank_lines() -> None:
    body = json.dumps(ROW).encode() + b"\n\n{oops\n" + json.dumps(ROW).encode()
    batch = parse_events(body, "http:k")
    assert batch.data.column("_line").to_pylist() == [1, 4]
    assert batch.rejects.column("raw").to_pylist() == ["{oops"]
    assert batch.blank_rows == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"   \n ", "empty"),
        (b"[1, 2", "not valid JSON"),
        (b"hello\nworld", "no JSON event objects"),
        (b"42", "no JSON event objects"),
    ],
)
def test_bodies_without_events_are_errors(body: bytes, message: str) -> None:
    with pytest.raises(BodyError, match=message):
        parse_events(body, "http:k")


def test_gzip_is_undone_by_header_or_magic_bytes() -> None:
    packed = gzip.compress(b"[1]")
    assert decode_body(packed, "gzip", 1000) == b"[1]"
    assert decode_body(packed, None, 1000) == b"[1]"
    assert decode_body(b"[1]", "identity", 1000) == b"[1]"


def test_gzip_limits_and_errors() -> None:
    with pytest.raises(BodyTooLargeError):
        decode_body(gzip.compress(b"x" * 5000), "gzip", 1000)
    with pytest.raises(BodyError, match="truncated"):
        decode_body(gzip.compress(b"x" * 5000)[:20], "gzip", 10_000)
    with pytest.raises(BodyError, match="not valid gzip"):
        decode_body(b"\x1f\x8bnot gzip at all", None, 1000)
    with pytest.raises(BodyError, match="Content-Encoding"):
        decode_body(b"[]", "br", 1000)


def test_an_empty_array_is_an_empty_batch() -> None:
    batch = parse_events(b"[]", "http:k")
    assert (batch.data.num_rows, batch.rejects.num_rows) == (0, 0)


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.just("2019-10-01T00:00:00"),
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.dictionaries(st.sampled_from([*EVENT_COLUMNS, "extra"]), _values, max_size=10),
        min_size=1,
        max_size=8,
    ),
    blank=st.booleans(),
)
def test_fast_and_per_line_parsing_agree(rows: list[dict[str, object]], blank: bool) -> None:
    lines = [json.dumps(r).encode() for r in rows]
    if blank:
        lines.insert(1, b"  ")
    fast = parse_events(b"\n".join(lines), "s")
    slow = ndjson_batch(lines, "s")
    # A JSON number's text is not kept by Arrow (0.0 reads back as "0"): equal once typed.
    assert _typed_price(fast.data) == _typed_price(slow.data)
    assert fast.rejects.to_pylist() == slow.rejects.to_pylist()
    assert fast.blank_rows == slow.blank_rows


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "event_time": st.text(max_size=25),
                "product_id": st.integers(-(2**63), 2**63 - 1),
                "price": st.floats(allow_nan=False, allow_infinity=False),
                "user_id": st.integers(0, 2**40),
            },
            optional={"brand": st.none() | st.text(max_size=8), "category_id": st.integers(0, 9)},
        ),
        min_size=1,
        max_size=8,
    )
)
def test_well_typed_bodies_take_the_fast_path_with_the_same_rows(
    rows: list[dict[str, object]],
) -> None:
    lines = [json.dumps(r).encode() for r in rows]
    fast = _fast_ndjson(lines, "s")
    assert fast is not None
    slow = ndjson_batch(lines, "s")
    # A JSON number's text is not kept by Arrow (0.0 reads back as "0"): equal once typed.
    assert _typed_price(fast.data) == _typed_price(slow.data)


def _typed_price(data: pa.RecordBatch) -> list[dict[str, object]]:
    return [r | {"price": _number(r["price"])} for r in data.select(_COLS).to_pylist()]


def _number(text: str | None) -> object:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return text


@pytest.mark.parametrize("body", [b"null", b"null\n{}", b'{"a": 1} null', b"{} {}", b'"AAA"'])
def test_bodies_arrow_must_not_see_are_parsed_line_by_line(body: bytes) -> None:
    lines = body.split(b"\n")
    assert _fast_ndjson(lines, "s") is None
    batch = ndjson_batch(lines, "s")  # the per-line path decides, row by row
    assert batch.data.num_rows + batch.rejects.num_rows == len(lines)
