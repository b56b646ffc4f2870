"""Events posted over HTTP: a JSON array or NDJSON body (optionally gzip) as one raw batch."""

from __future__ import annotations

import gzip
import json
import zlib

from cartpulse.sources.base import RawBatch
from cartpulse.sources.files import ndjson_batch

_GZIP_MAGIC = b"\x1f\x8b"


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
        return ndjson_batch(_array_elements(text), source)
    lines = body.split(b"\n")
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


def gzip_body(data: bytes) -> bytes:
    """Compress a request body the way the collector accepts it (fast level)."""
    return gzip.compress(data, compresslevel=1)
