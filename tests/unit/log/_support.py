"""Helpers for event log tests: event batches that say which append they came from, and
Python child processes that use the log."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa

from cartpulse.schema import EVENT_SCHEMA

_TYPES = np.array(["view", "cart", "remove_from_cart", "purchase"])
_BRANDS = np.array(["runail", "grattol", "irisk", None], dtype=object)


def event_batch(rows: int, seq: int = 0) -> pa.RecordBatch:
    """`rows` events of append number `seq`: user_id = seq, product_id = 0..rows-1."""
    idx = np.arange(rows, dtype=np.int64)
    return pa.RecordBatch.from_arrays(
        [
            pa.array(1_569_888_000_000_000 + idx * 1_000_000, pa.timestamp("us", tz="UTC")),
            pa.array(_TYPES[idx % 4]),
            pa.array(idx),
            pa.array(np.full(rows, 1_487_580_005_134_238_553, dtype=np.int64)),
            pa.array([None if i % 3 == 0 else "appliances.environment" for i in range(rows)]),
            pa.array(_BRANDS[idx % 4].tolist(), pa.string()),
            pa.array((idx % 100) * 1.25),
            pa.array(np.full(rows, seq, dtype=np.int64)),
            pa.array([f"session-{seq}-{i % 7}" for i in range(rows)], pa.string()),
        ],
        schema=EVENT_SCHEMA,
    )


def python_child(code: str, *args: str) -> subprocess.Popen[str]:
    """Start `python -c code args...` with stdout piped as text (one line per report)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def run_python(code: str, *args: str, timeout: float = 60) -> str:
    """Run `python -c code args...` to completion and return its stdout; fail on error."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
