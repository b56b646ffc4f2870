"""The Spark job's input and output descriptions: where events come from, what a run did."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cartpulse.settings import Settings


class SparkJobError(Exception):
    """The Spark job cannot run as configured."""


@dataclass(frozen=True)
class Source:
    """Where raw events come from: a directory of event files, or the Kafka topic."""

    kind: Literal["files", "kafka"]
    path: Path | None = None


def parse_source(text: str) -> Source:
    """`files:DIR` or `kafka`."""
    if text == "kafka":
        return Source("kafka")
    if text.startswith("files:") and len(text) > len("files:"):
        path = Path(text.removeprefix("files:"))
        if not path.is_dir():
            raise SparkJobError(f"--source {text}: {path} is not a directory")
        return Source("files", path)
    raise SparkJobError(f"--source {text!r}: expected files:DIR or kafka")


def check_source(settings: Settings, source: Source) -> None:
    """Fail before Spark starts when the source lacks a setting."""
    if source.kind == "kafka" and not settings.spark.kafka_bootstrap_servers:
        raise SparkJobError(
            "--source kafka needs spark.kafka_bootstrap_servers "
            "(CARTPULSE_SPARK__KAFKA_BOOTSTRAP_SERVERS=host:9092)"
        )
    if source.kind == "kafka" and settings.spark.kafka_reader == "python":
        try:
            import confluent_kafka  # noqa: F401
        except ImportError:
            raise SparkJobError(
                "spark.kafka_reader = 'python' needs confluent-kafka on the driver and the "
                "executors: pip install 'cartpulse[scale]' (or set it to 'connector')"
            ) from None


@dataclass
class SparkReport:
    """What a Spark run did."""

    master: str
    events: int = 0
    quarantined: int = 0
    bot_alerts: int = 0
    abandoned_carts: int = 0
    sales_rows: int = 0
    micro_batches: dict[str, int] = field(default_factory=dict)
    open_sessions: int = 0
    state_bytes: int = 0
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, object]:
        """The JSON shape."""
        return {
            "master": self.master,
            "events": self.events,
            "quarantined": self.quarantined,
            "bot_alerts": self.bot_alerts,
            "abandoned_carts": self.abandoned_carts,
            "sales_rows": self.sales_rows,
            "micro_batches": self.micro_batches,
            "open_sessions": self.open_sessions,
            "state_bytes": self.state_bytes,
            "elapsed_s": round(self.elapsed_s, 3),
            "events_per_s": round(self.events / self.elapsed_s) if self.elapsed_s > 0 else 0,
        }
