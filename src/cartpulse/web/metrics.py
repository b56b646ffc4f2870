"""Prometheus metrics of a running `serve`: counters updated in place, gauges read at scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


@dataclass
class LiveStatus:
    """Values read from the running pipeline when Prometheus scrapes."""

    log_end_offset: int = 0
    engine_offset: int = 0
    open_sessions: int = 0
    emails_by_status: dict[str, int] = field(default_factory=dict)
    abandoned_carts: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def log_lag(self) -> int:
        """Events in the log the engine has not processed yet."""
        return max(0, self.log_end_offset - self.engine_offset)


class Metrics:
    """Every metric `serve` exports, in a registry of its own."""

    def __init__(self, status: Callable[[], LiveStatus]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_accepted = Counter(
            "cartpulse_events_accepted", "Events accepted by the collector", registry=r
        )
        self.events_quarantined = Counter(
            "cartpulse_events_quarantined",
            "Rows the collector quarantined, by reason",
            ["reason"],
            registry=r,
        )
        self.events_duplicate = Counter(
            "cartpulse_events_duplicate", "Exact duplicates the collector dropped", registry=r
        )
        self.events_user_limited = Counter(
            "cartpulse_events_user_limited",
            "Rows refused with 429 because a user_id was over its rate limit",
            registry=r,
        )
        self.requests = Counter(
            "cartpulse_collector_requests",
            "Collector requests by status code",
            ["code"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "cartpulse_collector_request_seconds",
            "Time from request to acknowledgement (durable append)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.engine_batch_seconds = Histogram(
            "cartpulse_engine_batch_seconds",
            "Time to process and commit one micro-batch",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.engine_events = Counter(
            "cartpulse_engine_events", "Events processed by the stream engine", registry=r
        )
        self.models_runs = Counter(
            "cartpulse_models_runs",
            "Warehouse (dbt) builds by outcome: success, failed, error",
            ["status"],
            registry=r,
        )
        r.register(_StatusCollector(status))


class _StatusCollector(Collector):
    """Gauges that are cheaper to read on scrape than to keep up to date."""

    def __init__(self, status: Callable[[], LiveStatus]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        s = self._status()
        yield GaugeMetricFamily(
            "cartpulse_log_lag_events", "Events appended but not yet processed", s.log_lag
        )
        yield GaugeMetricFamily(
            "cartpulse_log_end_offset", "Offset the next appended event gets", s.log_end_offset
        )
        yield GaugeMetricFamily(
            "cartpulse_open_sessions", "Sessions open in the stream engine", s.open_sessions
        )
        yield GaugeMetricFamily(
            "cartpulse_abandoned_carts", "Abandoned carts detected so far", s.abandoned_carts
        )
        emails = GaugeMetricFamily(
            "cartpulse_emails", "Retargeting messages by outbox status", labels=["status"]
        )
        for status, count in sorted(s.emails_by_status.items()):
            emails.add_metric([status], count)
        yield emails
        for name, value in sorted(s.extra.items()):
            yield GaugeMetricFamily(f"cartpulse_{name}", name.replace("_", " "), value)
