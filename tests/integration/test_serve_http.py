"""`cartpulse serve` over real HTTP: auth, limits, bad bodies, mixed rows, gzip, ops endpoints."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.serve_process import WRITE_KEY, Serve, post_events, request


def real_events(
    real_dir: Path, name: str = "multicategory_2019-10_head.csv"
) -> list[dict[str, Any]]:
    """Rows of a real file as JSON-ready dicts (every field text, as a shop would send)."""
    with (real_dir / name).open(newline="") as fh:
        return list(csv.DictReader(fh))


def ndjson(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def event(
    session: str, event_type: str = "view", price: Any = "9.99", **extra: Any
) -> dict[str, Any]:
    return {
        "event_time": "2019-10-01 10:00:00 UTC",
        "event_type": event_type,
        "product_id": "5802432",
        "brand": "runail",
        "price": price,
        "user_id": "579970209",
        "user_session": session,
    } | extra


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    home = tmp_path_factory.mktemp("serve") / "home"
    with Serve(home, {"CARTPULSE_COLLECTOR__MAX_BODY_BYTES": "65536"}) as s:
        yield s


def test_write_key_is_required_and_checked(server: Serve) -> None:
    body = ndjson([event("auth")])
    missing = request(f"{server.url}/v1/events", body, {}, "POST")
    assert missing.status == 401
    assert "Bearer" in missing.headers["www-authenticate"]
    assert "Authorization: Bearer" in missing.json()["detail"]
    assert post_events(server.url, body, key="not-a-key").status == 401
    basic = request(f"{server.url}/v1/events", body, {"Authorization": "Basic eDp5"}, "POST")
    assert basic.status == 401


def test_oversized_bodies_get_413(server: Serve) -> None:
    big = ndjson([event(f"big-{i}") for i in range(2000)])
    assert len(big) > 65536
    response = post_events(server.url, big)
    assert response.status == 413
    assert "max_body_bytes" in response.json()["detail"]
    # A small gzip body that inflates past the limit is refused too (no gzip bombs).
    bomb = gzip.compress(b"\n" * 10_000_000)
    assert post_events(server.url, bomb, Content_Encoding="gzip").status == 413


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"this is not json", "no JSON event objects"),
        (b'[{"event_type": ', "not valid JSON"),
        (b"", "empty"),
        (b'{"a": 1', "no JSON event objects"),
    ],
)
def test_bodies_that_are_not_json_get_400(server: Serve, body: bytes, words: str) -> None:
    response = post_events(server.url, body)
    assert response.status == 400
    assert words in response.json()["detail"]


def test_mixed_rows_are_split_and_bad_ones_quarantined(server: Serve) -> None:
    good = [event("mixed", "cart"), event("mixed", "view", product_id="2"), event("mixed")]
    body = (
        ndjson(good[:2])
        + ndjson([event("mixed", "clicked")])
        + b"{broken json\n"
        + ndjson([event("mixed", price="-3")])
        + b"\n"
        + ndjson(good[2:] + good[:1])  # the last row repeats the first: a duplicate
    )
    response = post_events(server.url, body)
    assert response.status == 202, response.body
    result = response.json()
    assert (result["accepted"], result["quarantined"], result["duplicates"]) == (3, 3, 1)
    reasons = {(e["row"], e["reason"]) for e in result["errors"]}
    assert reasons == {(3, "unknown_event_type"), (4, "malformed"), (5, "negative_price")}
    # Nothing is lost: the rejected rows are in quarantine with their raw text (served live).
    q = run_cli(
        "query",
        "SELECT reason, raw FROM quarantine WHERE source LIKE 'http:%' AND raw LIKE '%mixed%' "
        "OR raw = '{broken json' ORDER BY reason",
        "--json",
        home=server.home,
    )
    assert q.code == 0, q.stderr
    assert [r["reason"] for r in q.json()] == ["malformed", "negative_price", "unknown_event_type"]


def test_gzip_json_array_is_accepted(server: Serve, real_dir: Path) -> None:
    rows = real_events(real_dir, "cosmetics_9col_rows.csv")
    body = gzip.compress(json.dumps(rows).encode())
    response = post_events(
        server.url, body, Content_Encoding="gzip", Content_Type="application/json"
    )
    assert response.status == 202, response.body
    assert response.json()["accepted"] == len(rows)
    # The same rows again: those within the dedupe window (1 h of event time before the
    # latest event seen) are duplicates; older ones are beyond the window and accepted.
    times = [
        dt.datetime.strptime(r["event_time"].replace("UTC", "+0000"), "%Y-%m-%d %H:%M:%S %z")
        for r in rows
    ]
    recent = sum(t >= max(times) - dt.timedelta(hours=1) for t in times)
    again = post_events(server.url, gzip.compress(json.dumps(rows).encode()))
    assert again.json()["duplicates"] == recent
    assert again.json()["accepted"] == len(rows) - recent


def test_ops_endpoints(server: Serve) -> None:
    assert request(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = server.get("/readyz")
    assert ready.status == 200 and ready.json()["status"] == "ready"
    post_events(server.url, ndjson([event("ops", "view", price="")]))
    text = server.get("/metrics").body.decode()
    for name in (
        "cartpulse_events_accepted_total",
        'cartpulse_events_quarantined_total{reason="missing_price"}',
        "cartpulse_collector_request_seconds_bucket",
        "cartpulse_engine_batch_seconds_bucket",
        "cartpulse_log_lag_events",
        "cartpulse_open_sessions",
    ):
        assert name in text, name
    spec = server.get("/openapi.json").json()
    assert "/v1/events" in spec["paths"]
    assert server.get("/docs").status == 200
    # Without a credential, or with a collector write key, operations stay closed.
    for path in ("/readyz", "/metrics", "/openapi.json", "/docs"):
        assert request(f"{server.url}{path}").status == 401, path
        keyed = request(f"{server.url}{path}", headers={"Authorization": f"Bearer {WRITE_KEY}"})
        assert keyed.status == 401, path


def test_query_is_answered_by_the_running_serve(server: Serve) -> None:
    post_events(server.url, ndjson([event("q1", "cart")]))
    result = run_cli("query", "SELECT count(*) AS n FROM dq_counts", "--json", home=server.home)
    assert result.code == 0, result.stderr
    refused = run_cli("query", "DELETE FROM abandoned_carts", home=server.home)
    assert refused.code == 2
    assert "read-only" in refused.stderr


def test_rate_limit_sheds_with_retry_after(tmp_path: Path) -> None:
    env = {"CARTPULSE_COLLECTOR__RATE_LIMIT_EVENTS_PER_S": "100"}
    with Serve(tmp_path / "home", env) as server:
        first = post_events(server.url, ndjson([event(f"rl-{i}") for i in range(80)]))
        assert first.status == 202
        second = post_events(server.url, ndjson([event(f"rl2-{i}") for i in range(80)]))
        assert second.status == 429
        assert int(second.headers["retry-after"]) >= 1
        assert "rate limit" in second.json()["detail"]


def test_a_second_serve_on_the_same_home_is_refused(server: Serve) -> None:
    result = run_cli("serve", "--port", "0", home=server.home, timeout=60)
    assert result.code == 2
    assert "another cartpulse process" in result.stderr
