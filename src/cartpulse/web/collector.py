"""`POST /v1/events`: the HTTP collector (write-key auth, limits, 202 after a durable append)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cartpulse.collector.intake import Intake
from cartpulse.collector.ratelimit import RateLimiter, events_per_user, retry_after_header
from cartpulse.settings import CollectorSettings
from cartpulse.sources.http import BodyError, BodyTooLargeError, decode_body
from cartpulse.web.metrics import Metrics


class EventIn(BaseModel):
    """One event in the REES46 schema (documentation: rows are validated by the data contract)."""

    event_time: str = Field(examples=["2019-11-01 00:00:02 UTC"])
    event_type: str = Field(examples=["cart"])
    product_id: int | str = Field(examples=[5_802_432])
    category_id: int | str | None = None
    category_code: str | None = None
    brand: str | None = Field(default=None, examples=["runail"])
    price: float | str = Field(examples=[2.62])
    user_id: int | str = Field(examples=[579_970_209])
    user_session: str | None = Field(
        default=None, examples=["26dd6e6e-4dac-4778-8d2c-92e149dab885"]
    )


class RowError(BaseModel):
    """Why one row was quarantined."""

    row: int | None = Field(description="1-based position of the row in the body")
    reason: str
    detail: str | None


class EventsAccepted(BaseModel):
    """What happened to the rows of one request."""

    accepted: int = Field(description="events durably appended to the event log")
    quarantined: int = Field(description="rows rejected, stored in quarantine with a reason")
    duplicates: int = Field(description="exact duplicates of recent events, dropped")
    errors: list[RowError]
    errors_truncated: bool


class Problem(BaseModel):
    """An error: what is wrong and what to do."""

    detail: str


_BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": "A JSON array of events, or NDJSON (`application/x-ndjson`, one event "
        "per line); gzip accepted with `Content-Encoding: gzip`.",
        "content": {
            "application/json": {"schema": {"type": "array", "items": EventIn.model_json_schema()}}
        },
    }
}

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": text}
    for code, text in {
        400: "the body is not JSON or NDJSON",
        401: "missing or unknown write key",
        413: "body larger than collector.max_body_bytes",
        429: "rate limit or backpressure: retry after `Retry-After` seconds",
    }.items()
}


_bearer = HTTPBearer(
    auto_error=False, scheme_name="writeKey", description="A key from collector.write_keys"
)


class RateLimitedError(Exception):
    """The key sent more than its share; retry after `wait_s`."""

    def __init__(self, wait_s: float, why: str) -> None:
        super().__init__(why)
        self.wait_s = wait_s


def collector_router(
    intake: Intake, cfg: CollectorSettings, metrics: Metrics, lag: Callable[[], int]
) -> APIRouter:
    """The collector's routes for one intake."""
    router = APIRouter(tags=["collector"])
    limiter = RateLimiter(cfg.rate_limit_events_per_s)
    user_limiter = RateLimiter(cfg.user_rate_limit_events_per_s, cfg.user_rate_limit_burst_s)
    keys = [(k.encode(), _key_id(k)) for k in cfg.write_keys]

    @router.post(
        "/v1/events",
        status_code=202,
        response_model=EventsAccepted,
        responses=_ERRORS,
        openapi_extra=_BODY_DOC,
        summary="Send events",
    )
    async def post_events(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> JSONResponse:
        """Append events; the 202 comes only after they are durably in the event log."""
        started = time.perf_counter()
        try:
            response = await _handle(request, credentials)
        except HTTPException as exc:
            response = _problem(exc.status_code, str(exc.detail), exc.headers)
        metrics.requests.labels(str(response.status_code)).inc()
        metrics.request_seconds.observe(time.perf_counter() - started)
        return response

    async def _handle(
        request: Request, credentials: HTTPAuthorizationCredentials | None
    ) -> JSONResponse:
        key_id = _authorise(credentials, keys)
        if lag() > cfg.max_lag_events:
            raise HTTPException(
                429,
                f"the stream engine is more than {cfg.max_lag_events:,} events behind; "
                "retry shortly",
                {"Retry-After": "1"},
            )
        body = await _read_body(request, cfg.max_body_bytes)

        def admit(rows: int) -> None:
            wait_s = limiter.take(key_id, rows)
            if wait_s > 0:
                raise RateLimitedError(wait_s, f"write key {key_id} is over its rate limit")

        def admit_users(user_ids: pa.Array | pa.ChunkedArray) -> None:
            wait_s, user = user_limiter.take_all(events_per_user(user_ids))
            if wait_s > 0:
                metrics.events_user_limited.inc(len(user_ids))
                raise RateLimitedError(wait_s, f"user_id {user} is over its rate limit")

        try:
            decoded = decode_body(body, request.headers.get("content-encoding"), cfg.max_body_bytes)
            result = await run_in_threadpool(
                intake.accept,
                decoded,
                f"http:{key_id}",
                admit,
                admit_users if user_limiter.rate > 0 else None,
            )
        except BodyTooLargeError as exc:
            raise HTTPException(413, str(exc)) from None
        except BodyError as exc:
            raise HTTPException(400, str(exc)) from None
        except RateLimitedError as exc:
            headers = {"Retry-After": retry_after_header(exc.wait_s)}
            raise HTTPException(429, f"{exc}; retry later", headers) from None
        metrics.events_accepted.inc(result.accepted)
        metrics.events_duplicate.inc(result.duplicates)
        for reason, count in result.quarantined_by_reason.items():
            metrics.events_quarantined.labels(reason).inc(count)
        return JSONResponse(result.body(), status_code=202)

    return router


def _authorise(
    credentials: HTTPAuthorizationCredentials | None, keys: list[tuple[bytes, str]]
) -> str:
    """The id of the write key in `Authorization: Bearer KEY`, or a 401."""
    challenge = {"WWW-Authenticate": 'Bearer realm="cartpulse collector"'}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "send a write key: `Authorization: Bearer KEY`", challenge)
    given = credentials.credentials.strip().encode()
    found = None
    for key, key_id in keys:  # compare with every key: the time taken tells nothing
        if hmac.compare_digest(given, key):
            found = key_id
    if found is None:
        raise HTTPException(401, "unknown write key (see collector.write_keys)", challenge)
    return found


def _key_id(key: str) -> str:
    """A short, stable name for a key that does not reveal it (logs, quarantine `source`)."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


async def _read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to be too large."""
    declared = request.headers.get("content-length")
    too_large = str(BodyTooLargeError(max_bytes))
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, too_large)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(413, too_large)
        chunks.append(chunk)
    return b"".join(chunks)


def _problem(code: int, detail: str, headers: Mapping[str, str] | None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=code, headers=headers)
