"""Run a benchmark step as a child process and measure its wall time and peak memory."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ChildRun:
    """What a child process printed, how long it took and its peak resident memory."""

    stdout: str
    stderr: str
    returncode: int
    elapsed_s: float
    peak_rss_mib: float
    """Peak resident memory, file-backed pages included (the event log is memory-mapped)."""
    peak_anon_mib: float
    """Peak anonymous memory: what the process allocated, without mapped files."""


def run_child(cmd: list[str], env: dict[str, str]) -> ChildRun:
    """Run `cmd`, sampling the kernel's high-water mark of its resident memory (VmHWM)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    status = Path(f"/proc/{proc.pid}/status")
    peak_kib = peak_anon_kib = 0
    while proc.poll() is None:
        fields = status_kib(status)
        peak_kib = max(peak_kib, fields.get("VmHWM", 0))
        peak_anon_kib = max(peak_anon_kib, fields.get("RssAnon", 0))
        time.sleep(0.05)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    return ChildRun(out, err, proc.returncode, elapsed, peak_kib / 1024, peak_anon_kib / 1024)


def status_kib(status: Path) -> dict[str, int]:
    """Memory fields (kB) of /proc/PID/status."""
    out: dict[str, int] = {}
    try:
        for line in status.read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS", "RssAnon"):
                out[name] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out
