"""The loop every outbox deliverer runs in `serve`: deliver what is due, idle when nothing was."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

#: After an unexpected error the loop waits this long before trying again.
_ERROR_PAUSE_S = 1.0


def deliver_until_stopped(
    name: str, stop: threading.Event, deliver_once: Callable[[], int], idle_s: float
) -> None:
    """Call `deliver_once` (rows handled) until `stop` is set; wait `idle_s` after idle passes.

    An exception (a bad row, a database hiccup) is logged and retried after a pause: it must
    never end delivery for the life of the process.
    """
    while not stop.is_set():
        try:
            handled = deliver_once()
        except Exception:
            log.exception("%s_loop_error", name)
            stop.wait(_ERROR_PAUSE_S)
            continue
        if handled == 0:
            stop.wait(idle_s)
