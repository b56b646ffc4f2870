"""The engine's commit signal wakes the live stream's waiters."""

from __future__ import annotations

import asyncio
import threading

from cartpulse.serve.commits import CommitSignal


def test_a_commit_in_another_thread_wakes_a_waiter() -> None:
    signal = CommitSignal()

    async def wait() -> int:
        threading.Timer(0.05, signal.notify, kwargs={"events": 7}).start()
        return await signal.wait(0, timeout_s=30)

    assert asyncio.run(wait()) == 1
    assert signal.events_per_s() == 7 / 10


def test_a_waiter_times_out_without_commits_and_close_releases_everyone() -> None:
    signal = CommitSignal()
    assert asyncio.run(signal.wait(0, timeout_s=0.01)) == 0

    async def wait_then_close() -> int:
        threading.Timer(0.05, signal.close).start()
        return await signal.wait(0, timeout_s=30)

    assert asyncio.run(wait_then_close()) == 1
    assert signal.closed
    assert asyncio.run(signal.wait(1, timeout_s=30)) == 1  # closed: never waits again
