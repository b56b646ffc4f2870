"""The dashboard's filters: validated here, then bound as query parameters (never formatted in)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from fastapi import HTTPException, Query
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

# Brands and category codes are lower-case words joined by `.`, `-`, `_`, `&`, `+`, `'` or
# spaces (e.g. `l'oreal`, `appliances.kitchen.washer`). Quotes followed by SQL, `;`, comment
# markers and control characters appear in none of them: such a value is refused (400).
_LABEL = re.compile(r"^[\w][\w .&+'/-]{0,99}$", re.UNICODE)
_SQL_SHAPES = re.compile(r"(--|/\*|\*/|;|'\s*(or|and|union|select|drop|;)\b)", re.IGNORECASE)


class Filters(BaseModel):
    """Date range (inclusive, UTC days), brand and category prefix; all optional."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: dt.date | None = None
    end: dt.date | None = None
    brand: str | None = None
    category: str | None = None

    @field_validator("brand", "category", mode="before")
    @classmethod
    def _label(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            return value
        text = value.strip().lower()
        if not _LABEL.match(text) or _SQL_SHAPES.search(text):
            raise ValueError(
                "may hold letters, digits, spaces and . - _ & + ' / only (e.g. apple, "
                "electronics.smartphone)"
            )
        return text

    @model_validator(mode="after")
    def _ordered(self) -> Filters:
        if self.start and self.end and self.start > self.end:
            raise ValueError("`start` must not be after `end`")
        return self

    def query_string(self) -> str:
        """These filters as `?…` for links between pages ('' when none)."""
        from urllib.parse import urlencode

        pairs = {k: str(v) for k, v in self.model_dump().items() if v is not None}
        return f"?{urlencode(pairs)}" if pairs else ""

    def where(
        self, day: str | None = None, brand: str | None = None, category: str | None = None
    ) -> tuple[str, list[Any]]:
        """SQL conditions on the given columns for the filters that are set, and their values.

        The columns are the caller's constants; every value is a `?` parameter. The text runs
        on DuckDB and PostgreSQL; `TRUE` when no filter applies.
        """
        parts: list[str] = []
        values: list[Any] = []
        if day is not None and self.start is not None:
            parts.append(f"{day} >= ?")
            values.append(self.start)
        if day is not None and self.end is not None:
            parts.append(f"{day} <= ?")
            values.append(self.end)
        if brand is not None and self.brand is not None:
            parts.append(f"{brand} = ?")
            values.append(self.brand)
        if category is not None and self.category is not None:
            parts.append(f"left({category}, length(?)) = ?")  # a prefix; `_` is no wildcard
            values.extend([self.category, self.category])
        return " AND ".join(parts) or "TRUE", values


def page_filters(
    start: Annotated[str | None, Query(description="first UTC day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, Query(description="last UTC day, YYYY-MM-DD")] = None,
    brand: Annotated[str | None, Query()] = None,
    category: Annotated[str | None, Query(description="category prefix")] = None,
) -> Filters:
    """FastAPI dependency: the filters of a page request, or 400 naming the bad one."""
    try:
        return Filters(
            start=start or None,
            end=end or None,
            brand=brand,
            category=category,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'filters'}: {e['msg']}" for e in exc.errors()
        )
        raise HTTPException(400, f"invalid filter: {problems}") from None
