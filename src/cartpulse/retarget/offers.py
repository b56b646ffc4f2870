"""Which offer an abandoned cart gets, and which users form the holdout (control) group.

The default rule: carts worth less than `free_shipping_below` get free shipping, others a
`coupon_percent` coupon; both carry a coupon code and expire `coupon_valid_days` after the
session expired (event time, so a replay gives the same offers as live).

An `OfferPolicy` may change that choice. It receives the default offer and an `OfferContext`
with the cart, the settings, the clock and — when a model provides one — the probability that
the cart is bought anyway. Example: give the richer coupon only where it can change the outcome::

    def coupon_only_when_unsure(offer: Offer, ctx: OfferContext) -> Offer:
        if ctx.propensity is not None and ctx.propensity > 0.8:  # buys anyway: cheapest offer
            return make_offer("free_shipping", ctx.cart, ctx.settings)
        return offer

    choose_offer(cart, settings, now, propensity=p, policy=coupon_only_when_unsure)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from cartpulse.retarget.tokens import Secret, coupon_code, derive_key, require_secret
from cartpulse.settings import RetargetSettings

OfferKind = Literal["free_shipping", "percent_coupon"]
OFFER_KINDS: tuple[OfferKind, ...] = ("free_shipping", "percent_coupon")


@dataclass(frozen=True)
class Offer:
    """What the email offers: free shipping or `percent` off, redeemable with `code`."""

    kind: OfferKind
    percent: int | None
    code: str
    expires_at: datetime

    @property
    def code_kind(self) -> str:
        """What the code was derived from besides the cart: `verify_coupon(..., kind=this)`."""
        return code_kind(self.kind, self.percent)


@dataclass(frozen=True)
class OfferContext:
    """Everything a policy may look at: the cart row, settings, clock and purchase probability."""

    cart: Mapping[str, Any]
    settings: RetargetSettings
    now: datetime
    propensity: float | None


class OfferPolicy(Protocol):
    """Changes (or keeps) the default offer for one cart."""

    def __call__(self, offer: Offer, context: OfferContext, /) -> Offer:
        """The offer to send instead of `offer`."""
        ...


def default_policy(offer: Offer, context: OfferContext, /) -> Offer:
    """Keep the threshold rule; the purchase probability is ignored."""
    return offer


def choose_offer(
    cart_row: Mapping[str, Any],
    settings: RetargetSettings,
    now: datetime,
    propensity: float | None = None,
    policy: OfferPolicy = default_policy,
) -> Offer:
    """The offer for an abandoned-cart row (ABANDONED_CARTS_SCHEMA), after `policy` had its say."""
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware (UTC)")
    if propensity is not None and not 0.0 <= propensity <= 1.0:
        raise ValueError(f"propensity must be a probability in [0, 1], got {propensity}")
    value = float(cart_row["cart_value"])
    kind: OfferKind = "free_shipping" if value < settings.free_shipping_below else "percent_coupon"
    offer = make_offer(kind, cart_row, settings)
    return policy(offer, OfferContext(cart_row, settings, now, propensity))


def make_offer(
    kind: OfferKind,
    cart_row: Mapping[str, Any],
    settings: RetargetSettings,
    percent: int | None = None,
) -> Offer:
    """An offer of `kind` for this cart, with its code and expiry (policies build theirs here)."""
    if kind not in OFFER_KINDS:
        raise ValueError(f"unknown offer kind {kind!r}; use one of {list(OFFER_KINDS)}")
    expired_at: datetime = cart_row["expired_at"]
    if expired_at.tzinfo is None:
        raise ValueError("cart `expired_at` must be timezone-aware (UTC)")
    expires_at = (expired_at + timedelta(days=settings.coupon_valid_days)).astimezone(UTC)
    if kind == "percent_coupon":
        percent = settings.coupon_percent if percent is None else percent
        if not 1 <= percent <= 100:
            raise ValueError(f"coupon percent must be within 1..100, got {percent}")
    else:
        percent = None
    secret = require_secret(settings)
    session = str(cart_row["user_session"])
    code = coupon_code(secret, session, code_kind(kind, percent), expires_at.date())
    return Offer(kind=kind, percent=percent, code=code, expires_at=expires_at)


def code_kind(kind: OfferKind, percent: int | None) -> str:
    """The `kind` a coupon code is derived from: the percentage too, so each offer has its code."""
    return kind if percent is None else f"{kind}:{percent}"


def in_holdout(user_id: int, share: float, secret: Secret) -> bool:
    """Whether the user belongs to the control group; the same user always gets the same answer."""
    return holdout_position(user_id, secret) < share


def holdout_position(user_id: int, secret: Secret) -> float:
    """The user's fixed, uniformly spread position in [0, 1) used to draw the holdout."""
    digest = hmac.new(derive_key(secret, "holdout"), str(int(user_id)).encode(), hashlib.sha256)
    # 53 bits: exactly what a float holds, so every position is equally likely.
    return (int.from_bytes(digest.digest()[:8], "big") >> 11) / float(1 << 53)
