"""Shared fixtures: the real REES46 rows, fresh homes, and running the CLI as a user would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    """The reference data folder: CARTPULSE_SHARED_DATA, else `shared/data` beside the checkout."""
    if env := os.environ.get("CARTPULSE_SHARED_DATA"):
        return Path(env)
    for parent in REPO.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return REPO.parent / "shared" / "data"


SHARED_DATA = _shared_data()
REAL_DATA = Path(os.environ.get("CARTPULSE_REAL_DATA", SHARED_DATA / "real"))
CDNOW_SUMMARY = SHARED_DATA / "cdnow" / "cdnow_summary.csv"


def require_data(path: Path) -> Path:
    """The given reference data path; skips the test when it is missing, fails under CI."""
    if path.exists():
        return path
    message = (
        f"reference data not found at {path}: set CARTPULSE_SHARED_DATA to the folder"
        " holding real/ and cdnow/ (or CARTPULSE_REAL_DATA to the real rows)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def real_dir(tmp_path: Path) -> Path:
    """A copy of the real REES46 rows (never touch the originals)."""
    require_data(REAL_DATA)
    dest = tmp_path / "real"
    shutil.copytree(REAL_DATA, dest)
    return dest


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty cartpulse home directory."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@dataclass
class CliResult:
    """What a CLI run printed and returned."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as JSON."""
        return json.loads(self.stdout)


def run_cli(
    *args: str,
    home: Path | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
    extra_env: dict[str, str] | None = None,
) -> CliResult:
    """Run `cartpulse ARGS` in a subprocess, as a user would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTPULSE_")}
    if home is not None:
        env["CARTPULSE_HOME"] = str(home)
    env |= extra_env or {}
    proc = subprocess.run(
        [sys.executable, "-m", "cartpulse", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
