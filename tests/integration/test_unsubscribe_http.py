"""One-click unsubscribe over real HTTP (uvicorn on a free loopback port)."""

from __future__ import annotations

import datetime as dt
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import uvicorn

from cartpulse.retarget.customers import import_customers
from cartpulse.retarget.decide import home_secret
from cartpulse.retarget.tokens import sign
from cartpulse.settings import Settings, load_settings
from cartpulse.web.app import create_app
from tests.serve_process import free_port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    settings = load_settings(home=tmp_path / "home")
    settings.home.mkdir(parents=True)
    csv = tmp_path / "c.csv"
    csv.write_text("user_id,email,first_name,locale,consent\n42,kim@example.com,Kim,en_US,true\n")
    con = duckdb.connect(str(settings.warehouse_path))
    import_customers(con, csv, dt.datetime.now(dt.UTC))
    con.close()
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", settings
    srv.should_exit = True
    thread.join(timeout=10)


def request(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def unsubscribed_at(settings: Settings) -> object:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return con.execute(
            "SELECT epoch_us(unsubscribed_at) FROM customers WHERE user_id = 42"
        ).fetchall()[0][0]
    finally:
        con.close()


def test_one_click_post_unsubscribes_and_get_only_asks(server: tuple[str, Settings]) -> None:
    base, settings = server
    token = sign(home_secret(settings), "unsubscribe", {"u": 42})
    status, page = request(f"{base}/unsubscribe?token={token}")
    assert status == 200 and "<form" in page and unsubscribed_at(settings) is None
    status, page = request(
        f"{base}/unsubscribe?token={token}", "POST", b"List-Unsubscribe=One-Click"
    )
    assert status == 200 and "unsubscribed" in page
    first = unsubscribed_at(settings)
    assert first is not None
    assert (
        request(f"{base}/unsubscribe?token={token}", "POST", b"List-Unsubscribe=One-Click")[0]
        == 200
    )
    assert unsubscribed_at(settings) == first  # a second click changes nothing


@pytest.mark.parametrize("tamper", ["forged", "altered"])
def test_forged_or_altered_tokens_are_rejected(server: tuple[str, Settings], tamper: str) -> None:
    base, settings = server
    if tamper == "forged":
        token = sign("another-key-that-is-long-enough-for-hmac-123", "unsubscribe", {"u": 42})
    else:
        good = sign(home_secret(settings), "unsubscribe", {"u": 42})
        token = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    status, page = request(
        f"{base}/unsubscribe?token={token}", "POST", b"List-Unsubscribe=One-Click"
    )
    assert status == 400 and "not valid" in page
    assert unsubscribed_at(settings) is None
    assert request(f"{base}/healthz")[0] == 200


def test_the_link_in_a_rendered_email_works(server: tuple[str, Settings]) -> None:
    import email
    from urllib.parse import urlsplit

    import pyarrow as pa

    from cartpulse.retarget.decide import Retargeter

    base, settings = server
    settings = load_settings(home=settings.home, retarget={"holdout_share": 0.0})
    start = dt.datetime(2019, 10, 1, tzinfo=dt.UTC)
    item = {"product_id": 7, "count": 1, "price": 9.5, "brand": "b", "category_code": None}
    carts = pa.table(
        {
            "user_session": ["s"],
            "user_id": pa.array([42], pa.int64()),
            "session_start": pa.array([start], pa.timestamp("us", tz="UTC")),
            "session_end": pa.array([start], pa.timestamp("us", tz="UTC")),
            "expired_at": pa.array(
                [start + dt.timedelta(minutes=30)], pa.timestamp("us", tz="UTC")
            ),
            "items": [[item]],
            "item_count": pa.array([1], pa.int64()),
            "cart_value": [9.5],
        }
    )
    con = duckdb.connect(str(settings.warehouse_path))
    rows = Retargeter(settings, con).decide(carts, dt.datetime.now(dt.UTC)).to_pylist()
    con.close()
    msg = email.message_from_bytes(rows[0]["message"])
    link = urlsplit(str(msg["List-Unsubscribe"]).strip("<>"))
    status, _ = request(f"{base}{link.path}?{link.query}", "POST", b"List-Unsubscribe=One-Click")
    assert status == 200 and unsubscribed_at(settings) is not None
