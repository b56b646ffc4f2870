"""Run `serve`: start the pipeline, serve HTTP until SIGTERM/SIGINT, then drain and commit."""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import uvicorn

from cartpulse.home_secrets import home_secret_file
from cartpulse.log import LogLockedError
from cartpulse.serve import ServeError
from cartpulse.serve.handle import admin_token, remove_handle, write_handle
from cartpulse.serve.pipeline import Pipeline
from cartpulse.settings import Settings
from cartpulse.web.app import create_app
from cartpulse.web.auth import dashboard_login

log = logging.getLogger(__name__)

_WRITE_KEY_FILE = "write.key"


@dataclass(frozen=True)
class Started:
    """What the start-up banner shows."""

    url: str
    home: str
    write_keys: int
    generated_key_file: str | None
    smtp: str
    dashboard_password_file: str | None
    """Where the generated dashboard password is (none: `dashboard.password_hash` is set)."""


@dataclass(frozen=True)
class Stopped:
    """What a clean shutdown did."""

    drained_events: int


def serve(settings: Settings, host: str, port: int, announce: Callable[[Started], None]) -> Stopped:
    """Serve until SIGTERM or SIGINT; the HTTP server stops first, then the engine drains."""
    settings, key_file = _with_write_keys(settings)
    sock = _bind(host, port)
    try:
        pipeline = Pipeline(settings)
    except LogLockedError:
        sock.close()
        raise ServeError(
            f"another cartpulse process (serve or replay) is writing {settings.home}; "
            "stop it first, or set CARTPULSE_HOME to another directory"
        ) from None
    app = create_app(settings, pipeline=pipeline, admin_token=admin_token(settings))
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_graceful_shutdown=30
    )
    server = _Server(config, on_exit=pipeline.commits.close)
    bound_port = sock.getsockname()[1]
    url = f"http://{_url_host(host)}:{bound_port}"
    pipeline.start()
    write_handle(settings, url)
    smtp = f"{settings.smtp.host}:{settings.smtp.port}"
    password_file = dashboard_login(settings).password_file
    keys = len(settings.collector.write_keys)
    announce(Started(url, str(settings.home), keys, key_file, smtp, password_file))
    _keep_alive_after_signals()
    try:
        server.run(sockets=[sock])
    finally:
        remove_handle(settings)
        drained = pipeline.shutdown()
    return Stopped(drained)


class _Server(uvicorn.Server):
    """uvicorn's server, which first ends the dashboard's live streams when told to stop.

    A graceful shutdown waits for open responses; an SSE stream never ends by itself.
    """

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Close the live streams, then stop as uvicorn does."""
        self._on_exit()
        super().handle_exit(sig, frame)


def _with_write_keys(settings: Settings) -> tuple[Settings, str | None]:
    """Settings with at least one write key: without configured keys, one kept in the home."""
    if settings.collector.write_keys:
        return settings, None
    path = settings.state_dir / _WRITE_KEY_FILE
    key, _ = home_secret_file(path, 24)
    collector = settings.collector.model_copy(update={"write_keys": (key,)})
    return settings.model_copy(update={"collector": collector}), str(path)


def _bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket first, so that port 0 (any free port) can be reported."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(
            f"cannot listen on {host}:{port}: {exc.strerror} (choose another --port)"
        ) from None
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _keep_alive_after_signals() -> None:
    """uvicorn re-raises the stop signal after its shutdown; the drain must still run."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: log.info("signal_ignored signum=%d", signum))
