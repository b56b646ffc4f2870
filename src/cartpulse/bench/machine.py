"""Describe the machine a benchmark ran on, so numbers can be compared honestly."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import duckdb
import pyarrow

from cartpulse import __version__


def machine_info() -> dict[str, object]:
    """CPU, cores, memory, Python and library versions."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "cartpulse": __version__,
        "pyarrow": pyarrow.__version__,
        "duckdb": duckdb.__version__,
    }


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None
