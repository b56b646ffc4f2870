"""Events posted over HTTP: a JSON array or NDJSON body (optionally gzip) as one raw batch."""

from __future__ import annotations

import gzip
import io
import json
import zlib

import pyarrow as pa
import pyarrow.json as pa_json

from cartpulse.schema import EVENT_COLUMNS
from cartpulse.sources.base import RawBatch
from cartpulse.sources.files import ndjson_batch

_GZIP_MAGIC = b"\x1f\x8b"

_TEXT = (pa.string(), pa.null())
_INTEGER = (*_TEXT, pa.int64())
#: Text fields stay text (Arrow would otherwise turn ISO times into timestamps).
_PARSE = pa_json.ParseOptions(
    explicit_schema=pa.schema(
        [(c, pa.string()) for c in ("event_time", "event_type", "category_code", "brand")]
        + [("user_session", pa.string())]
    )
)
#: Types Arrow may infer for a field that the slow path would read as the same text.
_ALLOWED_TYPES = {
    "product_id": _INTEGER,
    "category_id": _INTEGER,
    "user_id": _INTEGER,
    "price": (*_INTEGER, pa.float64()),
}


class BodyError(ValueError):
    """The body cannot be read as events at all (the client gets a 400 with this message)."""


def decode_body(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """The request body, gunzipped when it says so (or starts with the gzip magic bytes)."""
    encoding = (content_encoding or "").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip"):
        raise BodyError(f"unsupported Content-Encoding `{encoding}` (use gzip or none)")
    if encoding in ("gzip", "x-gzip") or body.startswith(_GZIP_MAGIC):
        return _gunzip(body, max_bytes)
    return body


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    """Decompress, refusing gzip bombs: the inflated body obeys the same size limit."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BodyError(f"body is not valid gzip: {exc}") from None
    if len(out) > max_bytes:
        raise BodyTooLargeError(max_bytes)
    if not inflater.eof:
        raise BodyError("body is not valid gzip: the stream is truncated")
    return out


class BodyTooLargeError(ValueError):
    """The (inflated) body is larger than the collector accepts."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"body is larger than {max_bytes:,} bytes (collector.max_body_bytes)")
        self.max_bytes = max_bytes


def parse_events(body: bytes, source: str) -> RawBatch:
    """A JSON array of event objects or NDJSON lines → one raw batch (bad rows are rejects).

    Row numbers (`line`) are 1-based: the element's position in an array, or the line number
    in NDJSON. A body with no JSON in it at all is a `BodyError`, not a batch of rejects.
    """
    text = body.lstrip()
    if not text:
        raise BodyError("body is empty: send a JSON array of events or NDJSON (one per line)")
    if text.startswith(b"["):
        elements = _array_elements(text)
        return _fast_ndjson(elements, source) or ndjson_batch(elements, source)
    lines = body.split(b"\n")
    fast = _fast_ndjson(lines, source)
    if fast is not None:
        return fast
    batch = ndjson_batch(lines, source)
    if batch.data.num_rows == 0 and batch.rejects.num_rows == len(
        [ln for ln in lines if ln.strip()]
    ):
        first = batch.rejects.column("detail")[0].as_py() if batch.rejects.num_rows else ""
        raise BodyError(f"body holds no JSON event objects (line 1: {first})")
    return batch


def _array_elements(text: bytes) -> list[bytes]:
    """Each element of a JSON array, re-serialised on one line (the raw kept for quarantine)."""
    try:
        items = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BodyError(f"body is not valid JSON: {exc}") from None
    if not isinstance(items, list):
        raise BodyError("body must be a JSON array of events or NDJSON")
    return [json.dumps(item, ensure_ascii=False).encode() for item in items]


def _fast_ndjson(lines: list[bytes], source: str) -> RawBatch | None:
    """Arrow's JSON reader when every line is a clean event object; None sends it the slow way.

    Arrow parses a body about 20× faster than per-line SQL, but fails a whole block on one bad
    line and infers types per column. So it is only trusted when it parses everything and
    each field came as text, or as a number where a number is expected; anything else takes
    the per-line path, which quarantines bad lines one by one. Both give the same rows.
    """
    kept = [i for i, line in enumerate(lines) if line.strip()]
    # Arrow is only given one object per line: a bare `null` line crashes pyarrow 26's reader.
    if not kept or not all(_one_object(lines[i]) for i in kept):
        return None
    try:
        table = pa_json.read_json(
            io.BytesIO(b"\n".join(lines[i] for i in kept)),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=1 << 26),
            parse_options=_PARSE,
        )
        raw = pa.array([lines[i].decode("utf-8").rstrip("\r") for i in kept], pa.string())
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if table.num_rows != len(kept):
        return None
    columns = {}
    for name in EVENT_COLUMNS:
        if name not in table.column_names:
            columns[name] = pa.nulls(table.num_rows, pa.string())
            continue
        col = table.column(name)
        if col.type not in _ALLOWED_TYPES.get(name, _TEXT):
            return None
        columns[name] = col.cast(pa.string())
    columns["_line"] = pa.array([i + 1 for i in kept], pa.int64())
    columns["_raw"] = raw
    data = pa.table(columns).combine_chunks().to_batches()[0]
    return RawBatch(data=data, source=source, raw_format="json", blank_rows=len(lines) - len(kept))


def _one_object(line: bytes) -> bool:
    text = line.strip()
    return text.startswith(b"{") and text.endswith(b"}")


def gzip_body(data: bytes) -> bytes:
    """Compress a request body the way the collector accepts it (fast level)."""
    return gzip.compress(data, compresslevel=1)
