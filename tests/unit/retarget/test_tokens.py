"""Signed link tokens and HMAC coupon codes: round trips, tampering, purposes, expiry."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from pydantic import SecretStr

from cartpulse.retarget.tokens import (
    COUPON_ALPHABET,
    InvalidToken,
    coupon_code,
    require_secret,
    sign,
    verify,
    verify_coupon,
)
from cartpulse.settings import RetargetSettings, SettingsError

SECRET = SecretStr("s3cr3t-key-for-tests-0123456789abcdef")
OTHER = SecretStr("another-key-for-tests-9876543210fedcba")
NOW = dt.datetime(2019, 10, 1, 12, tzinfo=dt.UTC)
DAY = dt.date(2019, 10, 8)


def reason_of(token: str, purpose: str = "cart", secret: SecretStr = SECRET) -> str:
    """The InvalidToken reason verify() gives, failing the test if it accepts the token."""
    with pytest.raises(InvalidToken) as info:
        verify(secret, purpose, token, NOW)  # type: ignore[arg-type]
    return info.value.reason


def test_round_trip_is_url_safe_and_compact() -> None:
    payload = {"s": "9f1c2b7e-0a4d-4c51-8d0e-5b7e1f9a3c21", "u": 512386086}
    token = sign(SECRET, "cart", payload, NOW + dt.timedelta(days=7))
    assert verify(SECRET, "cart", token, NOW) == payload
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)
    assert len(token) < 140
    assert len(sign(SECRET, "unsubscribe", {"u": 512386086})) < 80


def test_string_and_bytes_secrets_match_secretstr() -> None:
    token = sign(SECRET, "unsubscribe", {"u": 1})
    assert verify(SECRET.get_secret_value(), "unsubscribe", token, NOW) == {"u": 1}
    assert verify(SECRET.get_secret_value().encode(), "unsubscribe", token, NOW) == {"u": 1}


def test_tampered_body_or_signature_is_rejected() -> None:
    token = sign(SECRET, "unsubscribe", {"u": 1})
    body, mac = token.split(".")
    forged_body = sign(SECRET, "unsubscribe", {"u": 2}).split(".")[0]
    assert reason_of(f"{forged_body}.{mac}", "unsubscribe") == "bad_signature"
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    assert reason_of(f"{body}.{flipped}", "unsubscribe") == "bad_signature"
    assert reason_of(token, "unsubscribe", secret=OTHER) == "bad_signature"


def test_wrong_purpose_is_rejected() -> None:
    token = sign(SECRET, "unsubscribe", {"u": 1})
    assert reason_of(token, "cart") == "wrong_purpose"


def test_expiry() -> None:
    expires = NOW + dt.timedelta(hours=1)
    token = sign(SECRET, "cart", {"u": 1}, expires)
    assert verify(SECRET, "cart", token, expires - dt.timedelta(seconds=1)) == {"u": 1}
    with pytest.raises(InvalidToken) as info:
        verify(SECRET, "cart", token, expires)
    assert info.value.reason == "expired"
    assert "expired" in str(info.value)
    # Without an expiry a token stays valid (unsubscribe links must keep working).
    forever = sign(SECRET, "unsubscribe", {"u": 1})
    assert verify(SECRET, "unsubscribe", forever, NOW + dt.timedelta(days=3650)) == {"u": 1}


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "!!!.???", "eyJ9.", ".AAAA", "é.AAAAAAAAAAAAAAAAAAAAAA", "A" * 5000],
)
def test_malformed_tokens(token: str) -> None:
    assert reason_of(token) == "malformed"


def test_naive_clock_and_unknown_purpose_are_programming_errors() -> None:
    token = sign(SECRET, "cart", {"u": 1}, NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(SECRET, "cart", token, dt.datetime(2019, 10, 1))
    with pytest.raises(ValueError, match="purpose"):
        sign(SECRET, "login", {})  # type: ignore[arg-type]


def test_coupon_format_has_no_ambiguous_characters() -> None:
    code = coupon_code(SECRET, "session-1", "percent_coupon:10", DAY)
    assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", code)
    assert not set(COUPON_ALPHABET) & set("01OI")
    assert len(set(COUPON_ALPHABET)) == 32


def test_coupons_unique_per_cart_and_deterministic() -> None:
    codes = {coupon_code(SECRET, f"session-{i}", "free_shipping", DAY) for i in range(20_000)}
    assert len(codes) == 20_000
    again = coupon_code(SECRET, "session-7", "free_shipping", DAY)
    assert again == coupon_code(SECRET, "session-7", "free_shipping", DAY)
    assert again in codes
    assert again != coupon_code(OTHER, "session-7", "free_shipping", DAY)
    assert again != coupon_code(SECRET, "session-7", "percent_coupon:10", DAY)
    assert again != coupon_code(SECRET, "session-7", "free_shipping", DAY + dt.timedelta(days=1))


def test_verify_coupon() -> None:
    code = coupon_code(SECRET, "session-1", "free_shipping", DAY)
    assert verify_coupon(SECRET, code, "session-1", "free_shipping", DAY)
    assert verify_coupon(SECRET, code.lower().replace("-", " "), "session-1", "free_shipping", DAY)
    tampered = ("B" if code[0] != "B" else "C") + code[1:]
    assert not verify_coupon(SECRET, tampered, "session-1", "free_shipping", DAY)
    assert not verify_coupon(SECRET, code, "session-2", "free_shipping", DAY)
    assert not verify_coupon(SECRET, code, "session-1", "percent_coupon:10", DAY)
    assert not verify_coupon(OTHER, code, "session-1", "free_shipping", DAY)
    assert not verify_coupon(SECRET, "", "session-1", "free_shipping", DAY)


def test_require_secret_says_how_to_set_it() -> None:
    with pytest.raises(SettingsError, match="CARTPULSE_RETARGET__SECRET_KEY"):
        require_secret(RetargetSettings())
    assert require_secret(RetargetSettings(secret_key=SECRET)) == SECRET
