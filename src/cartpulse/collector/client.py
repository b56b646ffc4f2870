"""Send event files to a running collector as live traffic: batched NDJSON, concurrent.

Built on `http.client` with one keep-alive connection per worker thread: a plain POST loop
needs nothing more, and the load generator must cost less CPU than the server it measures.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cartpulse.duck import registered
from cartpulse.engine.feeder import Pacer
from cartpulse.schema import EVENT_COLUMNS
from cartpulse.sources.files import read_events
from cartpulse.sources.http import gzip_body

_RETRIES = 8
_MAX_THROTTLED = 600


class SendError(Exception):
    """The collector refused the traffic for a reason retrying cannot fix."""


@dataclass
class SendReport:
    """Totals of a send, as the collector acknowledged them."""

    requests: int = 0
    rows: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    throttled: int = 0
    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, float | int | None]:
        """The report for --json (latencies as p50/p99 in ms)."""
        lat = np.array(self.latencies_s) * 1000
        return {
            "requests": self.requests,
            "rows": self.rows,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "duplicates": self.duplicates,
            "throttled": self.throttled,
            "elapsed_s": round(self.elapsed_s, 3),
            "events_per_s": round(self.rows / self.elapsed_s) if self.elapsed_s else None,
            "ack_p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "ack_p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
        }


@dataclass(frozen=True)
class Target:
    """Where and how to send."""

    url: str
    write_key: str
    concurrency: int = 1
    batch_events: int = 5_000
    gzip: bool = False


def send_files(
    paths: list[Path],
    target: Target,
    speed: float | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> SendReport:
    """Post every row of `paths` to `target` (paced to `speed`× real time when given)."""
    return post_bodies(target, _bodies(paths, target.batch_events, speed), on_rows)


def post_bodies(
    target: Target,
    bodies: Iterable[tuple[bytes, int]],
    on_rows: Callable[[int], None] | None = None,
) -> SendReport:
    """Post NDJSON bodies (with their row counts) over `target.concurrency` connections."""
    report = SendReport()
    lock = threading.Lock()
    work: queue.Queue[bytes | None] = queue.Queue(maxsize=target.concurrency * 2)
    errors: list[BaseException] = []
    workers = [
        threading.Thread(target=_worker, args=(target, work, report, lock, errors), daemon=True)
        for _ in range(target.concurrency)
    ]
    started = time.perf_counter()
    for w in workers:
        w.start()
    try:
        for body, rows in bodies:
            if errors:
                break
            work.put(body)
            if on_rows is not None:
                on_rows(rows)
    finally:
        for _ in workers:
            work.put(None)
        for w in workers:
            w.join()
    report.elapsed_s = time.perf_counter() - started
    if errors:
        raise errors[0]
    return report


def _bodies(
    paths: list[Path], batch_events: int, speed: float | None
) -> Iterator[tuple[bytes, int]]:
    """NDJSON request bodies of at most `batch_events` rows, in file order, paced."""
    con = duckdb.connect()
    pacer = Pacer(speed)
    try:
        for path in paths:
            for batch in read_events(path, max(batch_events, 1_000)):
                lines = ndjson_lines(con, batch.data)
                lines += [r.as_py() for r in batch.rejects.column("raw")]
                table = pa.table({"line": pa.array(lines, pa.string())})
                times = _times(con, batch.data, table.num_rows)
                table = table.append_column("event_time", times)
                for start in range(0, table.num_rows, batch_events):
                    piece = table.slice(start, batch_events)
                    for chunk in pacer.chunks(piece):
                        pacer.wait(chunk)
                        text = "\n".join(chunk.column("line").to_pylist()) + "\n"
                        yield text.encode(), chunk.num_rows
    finally:
        con.close()


def ndjson_lines(con: duckdb.DuckDBPyConnection, data: pa.RecordBatch) -> list[str]:
    """Each row as one JSON object of the nine event fields (text, as read)."""
    fields = ", ".join(f"{c} := CAST({c} AS VARCHAR)" for c in EVENT_COLUMNS)
    with registered(con, rows_out=data):
        out = con.sql(f"SELECT to_json(struct_pack({fields}))::VARCHAR FROM rows_out")
        return [str(v) for v in out.to_arrow_table().column(0).to_pylist()]


def _times(con: duckdb.DuckDBPyConnection, data: pa.RecordBatch, total: int) -> pa.Array:
    """Event times for pacing; rows without a readable time take the one before them."""
    with registered(con, rows_out=data):
        out = con.sql(
            "SELECT epoch_us(TRY_CAST(CAST(event_time AS VARCHAR) AS TIMESTAMPTZ)) FROM rows_out"
        ).to_arrow_table()
    times = out.column(0).combine_chunks()
    times = pa.concat_arrays([times, pa.nulls(total - len(times), pa.int64())])
    times = pc.fill_null_forward(times)
    times = pc.fill_null(times, 0)
    return times.cast(pa.timestamp("us", tz="UTC"))


def _worker(
    target: Target,
    work: queue.Queue[bytes | None],
    report: SendReport,
    lock: threading.Lock,
    errors: list[BaseException],
) -> None:
    parts = urllib.parse.urlsplit(target.url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
    headers = {
        "Authorization": f"Bearer {target.write_key}",
        "Content-Type": "application/x-ndjson",
    }
    if target.gzip:
        headers["Content-Encoding"] = "gzip"
    path = parts.path.rstrip("/") + "/v1/events"
    try:
        while (body := work.get()) is not None:
            if errors:
                continue
            payload = gzip_body(body) if target.gzip else body
            try:
                result, elapsed, throttled = _post(conn, path, payload, headers)
            except BaseException as exc:
                errors.append(exc)
                continue
            with lock:
                report.requests += 1
                report.rows += body.count(b"\n")
                report.accepted += result["accepted"]
                report.quarantined += result["quarantined"]
                report.duplicates += result["duplicates"]
                report.throttled += throttled
                report.latencies_s.append(elapsed)
    finally:
        conn.close()


def _post(
    conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
) -> tuple[dict[str, int], float, int]:
    """POST until acknowledged: 429/503 wait `Retry-After`, connection errors back off."""
    throttled = failures = 0
    while True:
        started = time.perf_counter()
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            failures += 1
            if failures == _RETRIES:
                raise SendError(f"collector unreachable: {exc}") from None
            time.sleep(min(0.1 * 2**failures, 5.0))
            continue
        elapsed = time.perf_counter() - started
        if response.status == 202:
            return json.loads(data), elapsed, throttled
        if response.status in (429, 503) and throttled < _MAX_THROTTLED:
            throttled += 1
            time.sleep(float(response.getheader("Retry-After") or 1))
            continue
        raise SendError(f"collector answered {response.status}: {_detail(data)}")


def _detail(data: bytes) -> str:
    """The `detail` of an error response, or the start of a body that is not JSON."""
    try:
        return str(json.loads(data)["detail"])
    except (ValueError, KeyError, TypeError):
        return data[:200].decode(errors="replace")
