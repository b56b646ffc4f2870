"""Crash safety of the embedded event log with real processes and kill -9.

A child process appends numbered batches in a loop (fsync "always") and reports every
acknowledged append; the parent SIGKILLs it at random points, checks what a reader sees in
the crashed state, restarts it, and at the end checks after recovery that every acknowledged
batch is there, whole, once, in order, with contiguous offsets.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from cartpulse.log import EmbeddedEventLog

ROUNDS = 12
SEGMENT_BYTES = 1 << 20

# Batch `seq` has rows_for(seq) events with user_id = seq and product_id = 0..n-1, so any torn,
# duplicated, reordered or missing batch shows up in the data itself. Every third append is a
# two-chunk table, to kill inside multi-batch (atomic) appends too.
CHILD = """
import sys
import numpy as np
import pyarrow as pa
from cartpulse.log import EmbeddedEventLog
from cartpulse.schema import EVENT_SCHEMA

def rows_for(seq):
    return 1 + (seq * 7919) % 800

def batch(seq, first, n):
    idx = np.arange(first, first + n, dtype=np.int64)
    return pa.RecordBatch.from_arrays(
        [
            pa.array(1_569_888_000_000_000 + idx, pa.timestamp("us", tz="UTC")),
            pa.array(np.where(idx % 2 == 0, "view", "cart")),
            pa.array(idx),
            pa.array(idx * 3),
            pa.array(np.where(idx % 3 == 0, None, "appliances.kitchen.washer").tolist(), pa.string()),
            pa.array(np.where(idx % 5 == 0, None, "samsung").tolist(), pa.string()),
            pa.array(idx * 0.5),
            pa.array(np.full(n, seq, dtype=np.int64)),
            pa.array([f"s-{seq}"] * n, pa.string()),
        ],
        schema=EVENT_SCHEMA,
    )

with EmbeddedEventLog(sys.argv[1], writable=True, fsync="always", segment_bytes=int(sys.argv[2])) as log:
    end = log.end_offset()
    seq = 0 if end == 0 else log.read(end - 1, 1).table.column("user_id")[0].as_py() + 1
    print("start", seq, end, flush=True)
    while True:
        n = rows_for(seq)
        if seq % 3 == 0 and n > 1:
            data = pa.Table.from_batches([batch(seq, 0, n // 2), batch(seq, n // 2, n - n // 2)])
        else:
            data = batch(seq, 0, n)
        result = log.append(data)
        print("ack", seq, result.first_offset, result.last_offset, flush=True)
        seq += 1
"""


def rows_for(seq: np.ndarray) -> np.ndarray:
    return 1 + (seq * 7919) % 800


def check_log(
    path: Path, acked: dict[int, tuple[int, int]], writable: bool, live: bool = False
) -> int:
    """Assert the log holds batches 0..k whole, once, in order, including every acked one."""
    with EmbeddedEventLog(path, writable=writable) as log:
        assert log.start_offset() == 0
        table = log.read(0, 10**9).table
        end = log.end_offset()
        assert table.num_rows <= end if live else table.num_rows == end
    user = table.column("user_id").to_numpy()
    product = table.column("product_id").to_numpy()
    starts = np.r_[0, np.flatnonzero(np.diff(user)) + 1] if len(user) else np.array([], int)
    seqs = user[starts]
    lengths = np.diff(np.r_[starts, len(user)])
    assert (seqs == np.arange(len(seqs))).all(), "batches missing, duplicated or out of order"
    assert (lengths == rows_for(seqs)).all(), "a batch is torn (wrong number of events)"
    within = np.arange(len(user)) - np.repeat(starts, lengths)
    assert (product == within).all(), "events inside a batch are missing or reordered"
    for seq, (first, last) in acked.items():
        assert seq < len(seqs), f"acknowledged batch {seq} was lost"
        assert (int(starts[seq]), int(starts[seq] + lengths[seq] - 1)) == (first, last)
    return len(seqs)


def start_child(path: Path) -> tuple[subprocess.Popen[str], list[str], threading.Thread]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(SEGMENT_BYTES)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    lines: list[str] = []

    def collect() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends at EOF, i.e. when the child dies
            lines.append(line)

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    return proc, lines, reader


def test_kill_9_at_random_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    path = tmp_path / "log"
    acked: dict[int, tuple[int, int]] = {}
    torn_tails = 0
    started = time.monotonic()
    for round_no in range(ROUNDS):
        proc, lines, collector = start_child(path)
        deadline = time.monotonic() + 30
        while not any(line.startswith("ack") for line in lines):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "child made no progress"
            time.sleep(0.005)
        time.sleep(rng.uniform(0.01, 0.3))
        if round_no % 3 == 1:
            check_log(
                path, dict(acked), writable=False, live=True
            )  # a live reader, while appends go on
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        collector.join(timeout=10)
        assert proc.stderr is not None
        torn_tails += "log_torn_tail_truncated" in proc.stderr.read()
        kind, first_seq, _ = lines[0].split()
        assert kind == "start"
        # The next run resumes right after the last durable batch: at most one unreported append.
        last_acked = max(acked, default=-1)
        assert last_acked + 1 <= int(first_seq) <= last_acked + 2, (seed, lines[0])
        for line in lines[1:]:
            if not line.endswith("\n"):
                continue  # killed while reporting: never acknowledged to anyone
            _, seq, first, last = line.split()
            acked[int(seq)] = (int(first), int(last))
        # What a reader sees in the crashed state (torn tail still on disk) is consistent.
        check_log(path, acked, writable=False)
    batches = check_log(path, acked, writable=True)  # recovery, then the same checks
    assert batches >= len(acked) >= ROUNDS, f"seed={seed}"
    assert len(list(path.glob("*.arrows"))) > 1  # the kills spanned segment rolls
    # Restarts found half-written appends to cut off (about half do), so recovery was exercised.
    assert torn_tails >= 1, f"seed={seed}"
    assert time.monotonic() - started < 60
