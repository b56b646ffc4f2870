"""The PostgreSQL serving store: serving tables and marts mirrored for BI tools."""

from cartpulse.sinks.postgres.connect import PostgresError, connect_postgres
from cartpulse.sinks.postgres.marts import MartsReport, publish_marts
from cartpulse.sinks.postgres.publisher import PublishReport, ServingPublisher
from cartpulse.sinks.postgres.tables import SERVING_TABLES, ServingTable

__all__ = [
    "SERVING_TABLES",
    "MartsReport",
    "PostgresError",
    "PublishReport",
    "ServingPublisher",
    "ServingTable",
    "connect_postgres",
    "publish_marts",
]
