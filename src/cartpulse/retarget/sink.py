"""The demo SMTP sink: stores mail in a Maildir, once per Message-ID, with fault injection."""

from __future__ import annotations

import asyncio
import logging
import mailbox
import re
import ssl
import threading
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path
from typing import Any, Literal, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

log = logging.getLogger(__name__)

Stage = Literal["rcpt", "data"]


@dataclass(slots=True)
class _Fault:
    stage: Stage
    reply: str
    remaining: int


class MaildirHandler:
    """aiosmtpd handler: one Maildir file per new Message-ID; repeats answered 250 and dropped."""

    def __init__(self, folder: Path) -> None:
        """Open (or create) the Maildir and remember the Message-IDs it already holds."""
        for sub in ("tmp", "new", "cur"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        self.maildir = mailbox.Maildir(folder, factory=None, create=False)
        self._lock = threading.Lock()
        known = (_message_id(self.maildir.get_bytes(key)) for key in self.maildir.iterkeys())
        self._seen: set[str] = {message_id for message_id in known if message_id is not None}
        self._fault: _Fault | None = None
        self.stored = 0
        self.duplicates = 0
        self.connections = 0
        """Connections that delivered at least one message (shows connection reuse)."""

    def fail_next(
        self, code: int, count: int = 1, *, stage: Stage = "data", text: str | None = None
    ) -> None:
        """Answer `code` instead of accepting the next `count` messages, at RCPT or DATA."""
        if not 400 <= code < 600:
            raise ValueError(f"fault code must be 4xx or 5xx, got {code}")
        default = "4.3.0 try again later" if code < 500 else "5.7.1 rejected"
        with self._lock:
            self._fault = _Fault(stage, f"{code} {text or default}", count)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        """Accept the recipient unless a RCPT fault is armed."""
        fault = self._take_fault("rcpt")
        if fault is not None:
            return fault
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        """Store the message unless its Message-ID is known (then drop it, still 250)."""
        fault = self._take_fault("data")
        if fault is not None:
            return fault
        if not getattr(session, "cartpulse_counted", False):
            session.cartpulse_counted = True
            self.connections += 1
        content = cast(bytes, envelope.original_content)
        message_id = _message_id(content)
        with self._lock:
            if message_id is not None and message_id in self._seen:
                self.duplicates += 1
                log.info("sink_duplicate_dropped message_id=%s", message_id)
                return "250 OK duplicate dropped"
            # Maildir files use the local line ending; SMTP delivers CRLF.
            key = self.maildir.add(content.replace(b"\r\n", b"\n"))
            if message_id is not None:
                self._seen.add(message_id)
            self.stored += 1
        log.info("sink_stored message_id=%s key=%s", message_id, key)
        return f"250 OK stored as {key}"

    def _take_fault(self, stage: Stage) -> str | None:
        with self._lock:
            fault = self._fault
            if fault is None or fault.stage != stage:
                return None
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._fault = None
        log.info("sink_fault_injected stage=%s reply=%r", stage, fault.reply)
        return fault.reply


class _SinkController(Controller):
    """Controller that can listen on port 0 and report the port the OS picked."""

    def _trigger_server(self) -> None:
        # aiosmtpd's readiness probe connects to `self.port`, which would be 0: learn the real
        # port from the bound socket first (a free port without a bind race).
        if self.port == 0 and isinstance(self.server, asyncio.Server):
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class RunningSink:
    """A started sink: where it listens, what it stored, how to stop it."""

    def __init__(self, controller: Controller, handler: MaildirHandler, folder: Path) -> None:
        """Wrap a started controller."""
        self._controller = controller
        self.handler = handler
        self.folder = folder

    @property
    def host(self) -> str:
        """Address the sink listens on."""
        return str(self._controller.hostname)

    @property
    def port(self) -> int:
        """Port the sink listens on (the real one when started with port 0)."""
        return int(self._controller.port)

    @property
    def duplicates(self) -> int:
        """Messages answered 250 but dropped because their Message-ID was already stored."""
        return self.handler.duplicates

    def fail_next(
        self, code: int, count: int = 1, *, stage: Stage = "data", text: str | None = None
    ) -> None:
        """Answer `code` for the next `count` messages (see MaildirHandler.fail_next)."""
        self.handler.fail_next(code, count, stage=stage, text=text)

    def messages(self) -> list[EmailMessage]:
        """Stored messages, parsed, oldest first."""
        parser = BytesParser(policy=policy.default)
        maildir = self.handler.maildir
        return [
            parser.parsebytes(maildir.get_bytes(key))
            for key in sorted(maildir.iterkeys(), key=_delivery_order)
        ]

    def stop(self) -> None:
        """Stop listening; stored mail stays in the folder."""
        self._controller.stop()
        log.info("sink_stopped port=%d stored=%d", self.port, self.handler.stored)

    def __enter__(self) -> RunningSink:
        """Use as a context manager that stops the sink on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the sink."""
        self.stop()


def start_sink(
    folder: Path,
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    tls_context: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    credentials: tuple[str, str] | None = None,
) -> RunningSink:
    """Start the sink on `host:port` (0 = a free port) storing mail under `folder`.

    `tls_context` offers STARTTLS, or wraps the socket from the first byte with `implicit_tls`;
    `credentials` requires AUTH with that login and password.
    """
    handler = MaildirHandler(folder)
    smtp_kwargs: dict[str, Any] = {"server_hostname": "cartpulse-sink"}
    if tls_context is not None and not implicit_tls:
        smtp_kwargs["tls_context"] = tls_context
    if credentials is not None:
        smtp_kwargs.update(
            authenticator=_Authenticator(*credentials),
            auth_required=True,
            # Plain AUTH stays possible on a loopback demo without TLS; with TLS it is required.
            auth_require_tls=tls_context is not None and not implicit_tls,
        )
    controller = _SinkController(
        handler,
        hostname=host,
        port=port,
        ssl_context=tls_context if implicit_tls else None,
        **smtp_kwargs,
    )
    controller.start()
    sink = RunningSink(controller, handler, folder)
    log.info("sink_started host=%s port=%d folder=%s", host, sink.port, folder)
    return sink


class _Authenticator:
    """Accepts exactly one login/password pair."""

    def __init__(self, login: str, password: str) -> None:
        self._expected = LoginPassword(login.encode(), password.encode())

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data == self._expected
        return AuthResult(success=ok, handled=False)


def _delivery_order(key: str) -> tuple[int, int, int, str]:
    """Maildir keys start `seconds.M<micros>P<pid>Q<counter>`; plain sorting misorders them."""
    found = _KEY.match(key)
    if found is None:
        return (2**63, 0, 0, key)
    return (int(found[1]), int(found[2]), int(found[3]), key)


_KEY = re.compile(r"^(\d+)\.M(\d+)P\d+Q(\d+)")


def _message_id(content: bytes) -> str | None:
    """The Message-ID header of raw message bytes, or None when it has none."""
    headers = BytesHeaderParser(policy=policy.default).parsebytes(content)
    value = headers.get("Message-ID")
    return str(value).strip() or None if value is not None else None
