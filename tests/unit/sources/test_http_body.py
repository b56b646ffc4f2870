"""Request bodies: JSON arrays, NDJSON, gzip, and bodies that are not events at all."""

from __future__ import annotations

import gzip
import json

import pytest

from cartpulse.sources.http import BodyError, BodyTooLargeError, decode_body, parse_events

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
