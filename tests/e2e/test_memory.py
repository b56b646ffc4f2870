"""The `cartpulse` command keeps freed memory for reuse (see cartpulse/memory.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _mimalloc_options(command: list[str], **env: str) -> str:
    """What pyarrow's allocator reports about its settings when `command` starts."""
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        env={
            **{k: v for k, v in os.environ.items() if k != "MIMALLOC_PURGE_DELAY"},
            "MIMALLOC_VERBOSE": "1",
            **env,
        },
    )
    return done.stderr


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "cartpulse", "query", "--help"],
        [str(Path(sys.executable).with_name("cartpulse")), "query", "--help"],
    ],
    ids=["python -m cartpulse", "cartpulse"],
)
def test_the_command_keeps_freed_pages(command: list[str]) -> None:
    assert "option 'purge_delay': -1" in _mimalloc_options(command)


def test_a_users_own_allocator_setting_is_kept() -> None:
    command = [sys.executable, "-m", "cartpulse", "query", "--help"]
    got = _mimalloc_options(command, MIMALLOC_PURGE_DELAY="250")
    assert "option 'purge_delay': 250" in got


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc settings are Linux-only")
def test_glibc_takes_the_malloc_settings() -> None:
    code = "from cartpulse.memory import keep_freed_memory; print(keep_freed_memory())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
