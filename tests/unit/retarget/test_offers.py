"""Offer thresholds, expiry, the policy hook, and the deterministic holdout group."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from cartpulse.retarget.offers import (
    Offer,
    OfferContext,
    choose_offer,
    holdout_position,
    in_holdout,
    make_offer,
)
from cartpulse.retarget.tokens import verify_coupon
from cartpulse.settings import RetargetSettings, SettingsError

SECRET = "s3cr3t-key-for-tests-0123456789abcdef"
SETTINGS = RetargetSettings(
    secret_key=SECRET, free_shipping_below=50.0, coupon_percent=15, coupon_valid_days=7
)
EXPIRED = dt.datetime(2019, 10, 1, 12, 30, tzinfo=dt.UTC)
NOW = EXPIRED + dt.timedelta(seconds=2)


def cart(value: float, session: str = "s-1") -> dict[str, Any]:
    """An abandoned-cart row as the session operator emits it (only the fields offers read)."""
    return {"user_session": session, "user_id": 7, "expired_at": EXPIRED, "cart_value": value}


@pytest.mark.parametrize(
    ("value", "kind", "percent"),
    [
        (0.01, "free_shipping", None),
        (49.99, "free_shipping", None),
        (50.0, "percent_coupon", 15),
        (1234.5, "percent_coupon", 15),
    ],
)
def test_threshold(value: float, kind: str, percent: int | None) -> None:
    offer = choose_offer(cart(value), SETTINGS, NOW)
    assert (offer.kind, offer.percent) == (kind, percent)


def test_expiry_and_code() -> None:
    offer = choose_offer(cart(80.0), SETTINGS, NOW)
    assert offer.expires_at == EXPIRED + dt.timedelta(days=7)
    assert offer.code_kind == "percent_coupon:15"
    assert verify_coupon(SECRET, offer.code, "s-1", offer.code_kind, offer.expires_at.date())
    assert not verify_coupon(SECRET, offer.code, "s-2", offer.code_kind, offer.expires_at.date())
    assert choose_offer(cart(80.0), SETTINGS, NOW + dt.timedelta(hours=5)) == offer
    assert choose_offer(cart(80.0, "s-2"), SETTINGS, NOW).code != offer.code


def test_default_policy_ignores_propensity() -> None:
    plain = choose_offer(cart(80.0), SETTINGS, NOW)
    assert choose_offer(cart(80.0), SETTINGS, NOW, propensity=0.99) == plain
    with pytest.raises(ValueError, match="propensity"):
        choose_offer(cart(80.0), SETTINGS, NOW, propensity=1.5)


def test_policy_hook_sees_propensity_and_can_change_the_offer() -> None:
    seen: list[OfferContext] = []

    def cheap_when_sure(offer: Offer, ctx: OfferContext) -> Offer:
        seen.append(ctx)
        if ctx.propensity is not None and ctx.propensity > 0.8:
            return make_offer("free_shipping", ctx.cart, ctx.settings)
        if ctx.propensity is not None and ctx.propensity < 0.2:
            return make_offer("percent_coupon", ctx.cart, ctx.settings, percent=25)
        return offer

    sure = choose_offer(cart(80.0), SETTINGS, NOW, propensity=0.9, policy=cheap_when_sure)
    unsure = choose_offer(cart(80.0), SETTINGS, NOW, propensity=0.1, policy=cheap_when_sure)
    unknown = choose_offer(cart(80.0), SETTINGS, NOW, policy=cheap_when_sure)
    assert sure.kind == "free_shipping"
    assert (unsure.kind, unsure.percent) == ("percent_coupon", 25)
    assert (unknown.kind, unknown.percent) == ("percent_coupon", 15)
    assert [c.propensity for c in seen] == [0.9, 0.1, None]
    assert seen[0].now == NOW and seen[0].settings is SETTINGS
    # A richer coupon gets its own code, so the 15 % code cannot be used for 25 %.
    assert unsure.code != unknown.code
    assert verify_coupon(SECRET, unsure.code, "s-1", "percent_coupon:25", unsure.expires_at.date())


def test_offer_needs_secret_and_aware_expiry() -> None:
    with pytest.raises(SettingsError, match="secret_key"):
        choose_offer(cart(10.0), RetargetSettings(), NOW)
    naive = {**cart(10.0), "expired_at": EXPIRED.replace(tzinfo=None)}
    with pytest.raises(ValueError, match="timezone-aware"):
        choose_offer(naive, SETTINGS, NOW)
    with pytest.raises(ValueError, match="unknown offer kind"):
        make_offer("gift", cart(10.0), SETTINGS)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"1\.\.100"):
        make_offer("percent_coupon", cart(10.0), SETTINGS, percent=0)


def test_offer_is_frozen() -> None:
    offer = choose_offer(cart(10.0), SETTINGS, NOW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        offer.percent = 50  # type: ignore[misc]


def test_holdout_share_and_determinism() -> None:
    users = range(1_000_000, 1_100_000)
    held = [u for u in users if in_holdout(u, 0.10, SECRET)]
    # 100k Bernoulli(0.1) draws: σ ≈ 0.00095, so ±0.005 is > 5σ.
    assert abs(len(held) / 100_000 - 0.10) < 0.005
    assert held == [u for u in users if in_holdout(u, 0.10, SECRET)]
    other_key = {u for u in users if in_holdout(u, 0.10, "another-key-for-tests-9876543210")}
    assert 0.05 < len(other_key & set(held)) / len(held) < 0.2  # independent draw, ≈ 10 % overlap
    # Growing the share only adds users: nobody jumps from treatment to control and back.
    assert set(held) <= {u for u in users if in_holdout(u, 0.30, SECRET)}


def test_holdout_edges() -> None:
    assert not any(in_holdout(u, 0.0, SECRET) for u in range(10_000))
    assert all(in_holdout(u, 1.0, SECRET) for u in range(10_000))
    positions = [holdout_position(u, SECRET) for u in range(10_000)]
    assert all(0.0 <= p < 1.0 for p in positions)
    quartiles = [sum(q / 4 <= p < (q + 1) / 4 for p in positions) for q in range(4)]
    assert all(2_300 < n < 2_700 for n in quartiles)
