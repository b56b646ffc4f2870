"""The data contract in code: the event schema, reason codes and table names."""

from __future__ import annotations

from enum import StrEnum

import pyarrow as pa

#: The nine REES46 columns, in file order.
EVENT_COLUMNS: tuple[str, ...] = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)

#: Columns a file may lack; they are read as null.
OPTIONAL_COLUMNS: frozenset[str] = frozenset({"category_id", "category_code", "brand"})

#: Columns every input must carry (a file without one of them cannot be ingested).
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c for c in EVENT_COLUMNS if c not in OPTIONAL_COLUMNS)

EVENT_TYPES: tuple[str, ...] = ("view", "cart", "remove_from_cart", "purchase")

#: A clean event, as it is stored in the lake. Timestamps are UTC, microseconds.
EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("product_id", pa.int64(), nullable=False),
        pa.field("category_id", pa.int64()),
        pa.field("category_code", pa.string()),
        pa.field("brand", pa.string()),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("user_session", pa.string()),
    ]
)

#: Input as read from a source, before validation: every field is text.
RAW_SCHEMA = pa.schema([pa.field(c, pa.string()) for c in EVENT_COLUMNS])


class Reason(StrEnum):
    """Why a row was quarantined (DESIGN.md, validation rules)."""

    MALFORMED = "malformed"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    MISSING_REQUIRED = "missing_required"
    MISSING_PRICE = "missing_price"
    NEGATIVE_PRICE = "negative_price"
    FUTURE_TIMESTAMP = "future_timestamp"


#: A rejected row: the raw input, why, and where it came from.
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("raw", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("source", pa.string(), nullable=False),
        pa.field("line", pa.int64()),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)

#: Stable table and view names (BI tools and users depend on them).
EVENTS_VIEW = "events"
QUARANTINE_VIEW = "quarantine"
TABLE_ABANDONED_CARTS = "abandoned_carts"
TABLE_RETARGET_MESSAGES = "retarget_messages"
TABLE_PRODUCT_SALES_MINUTE = "product_sales_minute"
TABLE_BOT_ALERTS = "bot_alerts"
TABLE_DQ_COUNTS = "dq_counts"
