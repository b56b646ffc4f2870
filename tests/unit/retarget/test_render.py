"""Rendered abandoned-cart emails: parts, personalisation, escaping, money, headers, templates."""

from __future__ import annotations

import datetime as dt
import email
import re
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pytest

from cartpulse.operators.sessions import ABANDONED_CARTS_SCHEMA, SessionOperator, SessionState
from cartpulse.retarget.offers import choose_offer
from cartpulse.retarget.render import (
    EMAIL_POLICY,
    EmailTemplateError,
    message_id,
    render_email,
)
from cartpulse.retarget.tokens import verify, verify_coupon
from cartpulse.settings import RetargetSettings

SECRET = "s3cr3t-key-for-tests-0123456789abcdef"
SETTINGS = RetargetSettings(
    secret_key=SECRET,
    base_url="https://shop.example.com/",
    shop_name="Käthes Kosmetik",
    currency="EUR",
    free_shipping_below=50.0,
    coupon_percent=10,
)
SENDER = "Käthes Kosmetik <hello@mail.shop.example.com>"
START = dt.datetime(2019, 10, 1, 12, 0, tzinfo=dt.UTC)
NOW = START + dt.timedelta(minutes=40, seconds=3)
EVIL = "<script>alert('x')</script>"


def cart(
    session: str = "9f1c2b7e-0a4d", start: dt.datetime = START, **extra: Any
) -> dict[str, Any]:
    """An ABANDONED_CARTS_SCHEMA row: two products, one without brand and category."""
    row = {
        "user_session": session,
        "user_id": 512386086,
        "session_start": start,
        "session_end": start + dt.timedelta(minutes=10),
        "expired_at": start + dt.timedelta(minutes=40),
        "items": [
            {"product_id": 5802432, "count": 2, "price": 1234.5, "brand": "runail",
             "category_code": "appliances.personal.hair_cutter"},
            {"product_id": 5700037, "count": 1, "price": 0.5, "brand": None, "category_code": None},
        ],
        "item_count": 3,
        "cart_value": 2469.5,
    }  # fmt: skip
    row.update(extra)
    return row


def customer(**extra: Any) -> dict[str, Any]:
    """A directory row as `eligibility()` returns it."""
    row = {"user_id": 512386086, "email": "anna@example.com", "first_name": "Anna",
           "locale": "en_US", "consent": True, "unsubscribed_at": None}  # fmt: skip
    row.update(extra)
    return row


def render(
    row: dict[str, Any] | None = None,
    who: dict[str, Any] | None = None,
    settings: RetargetSettings = SETTINGS,
    now: dt.datetime = NOW,
) -> EmailMessage:
    """Render with the default offer for the cart."""
    row = row or cart()
    offer = choose_offer(row, settings, now)
    return render_email(row, who or customer(), offer, settings, SENDER, now)


def parts(msg: EmailMessage) -> tuple[str, str]:
    """(plain text, HTML) bodies, decoded."""
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def test_two_alternatives() -> None:
    msg = render()
    assert msg.get_content_type() == "multipart/alternative"
    types = [part.get_content_type() for part in msg.iter_parts()]
    assert types == ["text/plain", "text/html"]


def test_personalised_content_and_links() -> None:
    msg = render()
    text, html = parts(msg)
    offer = choose_offer(cart(), SETTINGS, NOW)
    for body in (text, html):
        assert "Hi Anna," in body
        assert "runail" in body and "hair cutter" in body
        assert "€1,234.50" in body and "€2,469.00" in body  # price and line total
        assert "€0.50" in body and "Product 5700037" in body
        assert "€2,469.50" in body  # cart value
        assert "10% off" in body and offer.code in body
        assert "October 8, 2019" in body  # coupon expiry: expired_at + 7 days
    links = re.findall(r"https://shop\.example\.com/[a-z]+\?token=[A-Za-z0-9_.-]+", text)
    assert [urlsplit(link).path for link in links] == ["/cart", "/unsubscribe"]
    assert all(f'href="{link}"' in html for link in links)
    cart_token = parse_qs(urlsplit(links[0]).query)["token"][0]
    assert verify(SECRET, "cart", cart_token, NOW) == {"s": "9f1c2b7e-0a4d", "u": 512386086}
    unsub_token = parse_qs(urlsplit(links[1]).query)["token"][0]
    assert verify(SECRET, "unsubscribe", unsub_token, NOW) == {"u": 512386086}
    assert verify_coupon(
        SECRET, offer.code, "9f1c2b7e-0a4d", offer.code_kind, offer.expires_at.date()
    )


def test_free_shipping_offer_and_name_fallback() -> None:
    small = cart(cart_value=20.0, items=[{"product_id": 1, "count": 1, "price": 20.0,
                                          "brand": "masura", "category_code": None}])  # fmt: skip
    for name in (None, "", "   "):
        text, html = parts(render(small, customer(first_name=name)))
        assert "Hi there," in text and "Hi there," in html
        assert "shipping is on us" in text and "shipping is on us" in html
        assert "% off" not in text


def test_html_escapes_customer_and_catalog_text() -> None:
    evil_brand = '<img src=x onerror="alert(1)">'
    row = cart()
    row["items"][0]["brand"] = evil_brand
    text, html = parts(render(row, customer(first_name=EVIL)))
    assert EVIL not in html and evil_brand not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    assert f"Hi {EVIL}," in text  # plain text is not HTML: shown as typed


@pytest.mark.parametrize(
    ("locale", "price", "total", "expiry"),
    [
        ("en_US", "€1,234.50", "€2,469.50", "October 8, 2019"),
        ("de_DE", "1.234,50\xa0€", "2.469,50\xa0€", "8. Oktober 2019"),
        (None, "€1,234.50", "€2,469.50", "October 8, 2019"),
        ("xx_YY", "€1,234.50", "€2,469.50", "October 8, 2019"),
    ],
)
def test_money_and_dates_follow_the_customer_locale(
    locale: str | None, price: str, total: str, expiry: str
) -> None:
    text, html = parts(render(who=customer(locale=locale)))
    for body in (text, html):
        assert price in body and total in body and expiry in body


def test_other_currency() -> None:
    usd = SETTINGS.model_copy(update={"currency": "USD"})
    text, _ = parts(render(settings=usd, who=customer(locale="de_DE")))
    assert "2.469,50\xa0$" in text


def test_headers() -> None:
    msg = render()
    assert msg["From"] == SENDER
    assert msg["To"] == "anna@example.com"
    assert "Käthes Kosmetik" in msg["Subject"]
    assert parsedate_to_datetime(msg["Date"]) == NOW.replace(microsecond=0)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = msg["List-Unsubscribe"]
    assert re.fullmatch(
        r"<https://shop\.example\.com/unsubscribe\?token=[A-Za-z0-9_.-]+>", unsubscribe
    )
    assert re.fullmatch(r"<[0-9a-f]{32}@mail\.shop\.example\.com>", msg["Message-ID"])
    # On the wire: RFC 8058 values exact, the URL not hidden in RFC 2047 encoded words.
    wire = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in wire
    assert b"\r\nList-Unsubscribe: " + unsubscribe.encode() + b"\r\n" in wire
    assert max(len(line) for line in wire.split(b"\r\n")) <= 998
    # Parsing the stored bytes with the same policy and writing them again changes nothing.
    assert (
        email.message_from_bytes(wire, policy=EMAIL_POLICY.clone(linesep="\r\n")).as_bytes() == wire
    )


def test_message_id_is_stable_per_cart() -> None:
    first = render()["Message-ID"]
    assert render(now=NOW + dt.timedelta(hours=3))["Message-ID"] == first  # a resend
    assert render(who=customer(first_name="Ann"))["Message-ID"] == first
    assert message_id(cart(), SENDER) == first
    assert render(cart("another-session"))["Message-ID"] != first
    later = START + dt.timedelta(hours=2)
    assert render(cart(start=later))["Message-ID"] != first  # same id, a later session
    with pytest.raises(ValueError, match="domain"):
        message_id(cart(), "Shop")


def test_custom_template_dir(tmp_path: Path) -> None:
    (tmp_path / "email.txt.j2").write_text(
        "Moin {{ first_name }}! {{ cart_value }} · {{ offer.code }} · {{ unsubscribe_url }}\n"
    )
    custom = SETTINGS.model_copy(update={"template_dir": tmp_path})
    text, html = parts(render(settings=custom, who=customer(first_name=EVIL)))
    assert text.startswith(f"Moin {EVIL}! €2,469.50 · ")
    assert "Back to your cart" in html  # the built-in HTML template fills the gap
    assert EVIL not in html

    (tmp_path / "email.html.j2").write_text("<p>Hallo {{ first_name }}</p>\n")
    _, html = parts(render(settings=custom, who=customer(first_name=EVIL)))
    assert html == "<p>Hallo &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</p>\n"


def test_template_errors_name_the_template(tmp_path: Path) -> None:
    custom = SETTINGS.model_copy(update={"template_dir": tmp_path})
    html = tmp_path / "email.html.j2"
    html.write_text("<p>{% if first_name %}unclosed</p>\n")
    with pytest.raises(EmailTemplateError, match=r"email\.html\.j2 line \d"):
        render(settings=custom)
    html.write_text("<p>ok</p>\n<p>{{ frist_name }}</p>\n")
    with pytest.raises(EmailTemplateError, match=r"email\.html\.j2 line 2 failed: .*frist_name"):
        render(settings=custom)
    missing = SETTINGS.model_copy(update={"template_dir": tmp_path / "nope"})
    with pytest.raises(EmailTemplateError, match="template_dir"):
        render(settings=missing)


def test_refuses_what_cannot_be_mailed() -> None:
    with pytest.raises(ValueError, match="no email"):
        render(who=customer(email=None))
    with pytest.raises(ValueError, match="timezone-aware"):
        render_email(cart(), customer(), choose_offer(cart(), SETTINGS, NOW), SETTINGS, SENDER,
                     dt.datetime(2019, 10, 1))  # fmt: skip


def test_renders_a_cart_from_the_session_operator() -> None:
    """The operator's own output (Arrow → Python rows) is what render_email accepts."""
    t0 = dt.datetime(2019, 10, 1, tzinfo=dt.UTC)
    rows = [  # seconds after t0, type, product, price, brand, category_code
        (0, "cart", 5802432, 3.97, "runail", "appliances.personal.hair_cutter"),
        (60, "cart", 5802432, 4.10, "runail", "appliances.personal.hair_cutter"),
        (90, "cart", 5700037, 0.4, None, None),
        (120, "remove_from_cart", 5700037, 0.4, None, None),
        (150, "cart", 5856186, 9.5, "<b>grattol</b>", None),
    ]
    events = pa.table({
        "event_time": pa.array([t0 + dt.timedelta(seconds=r[0]) for r in rows], pa.timestamp("us", tz="UTC")),
        "event_type": [r[1] for r in rows],
        "product_id": pa.array([r[2] for r in rows], pa.int64()),
        "category_id": pa.array([None] * len(rows), pa.int64()),
        "category_code": pa.array([r[5] for r in rows], pa.string()),
        "brand": pa.array([r[4] for r in rows], pa.string()),
        "price": pa.array([r[3] for r in rows], pa.float64()),
        "user_id": pa.array([512386086] * len(rows), pa.int64()),
        "user_session": pa.array(["26dd6e6e-4dac-4778-8d2c-92e149dab885"] * len(rows), pa.string()),
        "_offset": pa.array(range(len(rows)), pa.int64()),
    })  # fmt: skip
    op = SessionOperator(1800)
    state, _ = op.advance(SessionState.empty(), events, None)
    _, carts = op.flush(state)
    assert carts.schema.equals(ABANDONED_CARTS_SCHEMA)
    row = carts.to_pylist()[0]
    now = row["expired_at"] + dt.timedelta(seconds=1)
    offer = choose_offer(row, SETTINGS, now)
    assert offer.kind == "free_shipping"  # 2 × 4.10 + 9.50 = 17.70 < 50
    text, html = parts(render_email(row, customer(locale="de_DE"), offer, SETTINGS, SENDER, now))
    assert "2 × runail · hair cutter: 4,10\xa0€ each, 8,20\xa0€" in text
    assert "Cart total: 17,70\xa0€" in text
    assert "Product 5700037" not in text  # removed again
    assert "&lt;b&gt;grattol&lt;/b&gt;" in html
