"""Benchmark: batched NDJSON to `serve` over loopback — events/s, ack latency, memory over time.

The server runs as its own process with the default, crash-safe `fsync = "always"`: every 202
is a durable append. Bodies are built before the clock starts, so the load generator spends
its CPU on HTTP, not on JSON; it still shares the machine's cores with the server.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq

from cartpulse.bench.child import status_kib
from cartpulse.bench.replay import ensure_parquet
from cartpulse.collector.client import SendReport, Target, ndjson_lines, post_bodies

TARGET_EVENTS_PER_S = 100_000
TARGET_P99_MS = 50.0
BENCH_WRITE_KEY = "bench-write-key"


def bench_collector(
    work: Path,
    events: int,
    seed: int = 42,
    soak_s: float = 0.0,
    concurrency: int = 1,
    batch_events: int = 4_000,
) -> dict[str, Any]:
    """Send up to 1 M generated events (then loop them for `soak_s` seconds) to a fresh serve."""
    source = ensure_parquet(work, events, seed)
    bodies = _bodies(source, min(events, 1_000_000), batch_events)
    root = work / "collector-run"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    server, url = start_serve(root)
    try:
        target = Target(url, BENCH_WRITE_KEY, concurrency, batch_events)
        burst = post_bodies(target, bodies)
        soak = _soak(target, bodies, soak_s, server.pid) if soak_s > 0 else None
    except Exception as exc:
        log_tail = (root / "serve.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{exc}; serve's log ends with:\n{log_tail}") from exc
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=600)
    shutil.rmtree(root / "home", ignore_errors=True)
    result: dict[str, Any] = {
        "scenario": "collector",
        "fsync": "always",
        "concurrency": concurrency,
        "batch_events": batch_events,
        **_summary(burst),
        "target": f"≥ {TARGET_EVENTS_PER_S:,} events/s, p99 ack ≤ {TARGET_P99_MS:.0f} ms",
    }
    result["target_met"] = bool(
        burst.rows / burst.elapsed_s >= TARGET_EVENTS_PER_S
        and result["ack_p99_ms"] <= TARGET_P99_MS
    )
    if soak is not None:
        result["soak"] = soak
    return result


def _summary(report: SendReport) -> dict[str, Any]:
    data = report.as_dict()
    return {k: data[k] for k in ("rows", "accepted", "elapsed_s", "events_per_s")} | {
        "ack_p50_ms": data["ack_p50_ms"],
        "ack_p99_ms": data["ack_p99_ms"],
        "throttled": data["throttled"],
    }


def _bodies(source: Path, events: int, batch_events: int) -> list[tuple[bytes, int]]:
    """NDJSON bodies of the first `events` events, as a shop's tracker would send them."""
    con = duckdb.connect()
    out: list[tuple[bytes, int]] = []
    sent = 0
    for batch in pq.ParquetFile(source).iter_batches(batch_size=batch_events):
        if sent >= events:
            break
        lines = ndjson_lines(con, batch)
        out.append((("\n".join(lines) + "\n").encode(), len(lines)))
        sent += len(lines)
    con.close()
    return out


def start_serve(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A fresh `serve` on a free port; returns once /readyz answers."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTPULSE_")} | {
        "CARTPULSE_HOME": str(root / "home"),
        "CARTPULSE_COLLECTOR__WRITE_KEYS": BENCH_WRITE_KEY,
        "CARTPULSE_COLLECTOR__RATE_LIMIT_EVENTS_PER_S": "0",
    }
    cmd = [sys.executable, "-m", "cartpulse", "serve", "--port", str(port)]
    log = (root / "serve.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    token_file = root / "home" / "state" / "admin.token"
    for _ in range(600):
        try:  # /readyz takes the admin token, which serve writes at start
            ready = urllib.request.Request(
                f"{url}/readyz",
                headers={"Authorization": f"Bearer {token_file.read_text().strip()}"},
            )
            with urllib.request.urlopen(ready, timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"serve did not start: {(root / 'serve.log').read_text()[-2000:]}")


def _soak(
    target: Target, bodies: list[tuple[bytes, int]], soak_s: float, pid: int
) -> dict[str, Any]:
    """Loop the bodies for `soak_s` seconds; the server's memory, sampled every few seconds."""
    samples: list[tuple[float, float]] = []
    started = time.monotonic()

    def timed() -> Iterator[tuple[bytes, int]]:
        last = 0.0
        for body in itertools.cycle(bodies):
            now = time.monotonic() - started
            if now >= soak_s:
                return
            if now - last >= 5.0 or not samples:
                rss = status_kib(Path(f"/proc/{pid}/status")).get("VmRSS", 0) / 1024
                samples.append((now, rss))
                last = now
            yield body

    report = post_bodies(target, timed())
    rss = np.array([r for _, r in samples])
    half = len(rss) // 2
    return {
        "duration_s": round(report.elapsed_s, 1),
        **_summary(report),
        "rss_first_mib": round(float(rss[0]), 1),
        "rss_max_mib": round(float(rss.max()), 1),
        "rss_last_mib": round(float(rss[-1]), 1),
        "rss_median_first_half_mib": round(float(np.median(rss[:half])), 1) if half else None,
        "rss_median_second_half_mib": round(float(np.median(rss[half:])), 1),
    }
