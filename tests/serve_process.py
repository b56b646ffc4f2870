"""Run `cartpulse serve` as a subprocess on a free loopback port, as a user would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WRITE_KEY = "test-write-key-1"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Response:
    """Status, headers and body of one HTTP exchange."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def request(
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
    timeout: float = 30,
) -> Response:
    """One HTTP request that returns error statuses instead of raising."""
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, dict(e.headers), e.read())


def post_events(url: str, body: bytes, key: str = WRITE_KEY, **headers: str) -> Response:
    """POST a body to the collector with a write key."""
    hdrs = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    hdrs |= {k.replace("_", "-"): v for k, v in headers.items()}
    return request(f"{url}/v1/events", body, hdrs, "POST")


class Serve:
    """A `cartpulse serve` process for one home."""

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("CARTPULSE_")}
        self.env = (
            base
            | {
                "CARTPULSE_HOME": str(home),
                "CARTPULSE_COLLECTOR__WRITE_KEYS": WRITE_KEY,
                "CARTPULSE_ENGINE__TICK_MS": "50",
                "CARTPULSE_RETARGET__SECRET_KEY": "k7Qm2vX9pL4sT8wZ1nR6yB3cF5hJ0dG2aE9uI4oP",
            }
            | (env or {})
        )
        self.proc: subprocess.Popen[str] | None = None

    def admin_headers(self) -> dict[str, str]:
        """`Authorization` with the home's admin token (what /readyz, /metrics, /docs need)."""
        token = (self.home / "state" / "admin.token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def get(self, path: str, timeout: float = 30) -> Response:
        """GET an operations endpoint with the admin token."""
        return request(f"{self.url}{path}", headers=self.admin_headers(), timeout=timeout)

    def start(self, timeout: float = 60) -> Serve:
        """Start and wait until /readyz answers 200."""
        log = (self.home.parent / f"serve-{self.port}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cartpulse", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}: {self.output()}")
            try:
                if self.get("/readyz", timeout=2).status == 200:
                    return self
            except OSError:  # not listening yet, or the admin token not written yet
                pass
            time.sleep(0.1)
        raise RuntimeError(f"serve did not become ready: {self.output()}")

    def output(self) -> str:
        """What the process printed so far."""
        return (self.home.parent / f"serve-{self.port}.log").read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        """Send `sig` and wait for the exit code."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        return code

    def __enter__(self) -> Serve:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.stop()
