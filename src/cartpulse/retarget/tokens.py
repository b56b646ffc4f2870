"""Signed tokens for email links and HMAC-derived coupon codes, keyed by `retarget.secret_key`.

A token is `base64url(json body) "." base64url(mac)`. The body is the JSON array
`[purpose code, expiry in epoch seconds or 0, payload]` (an array rather than an object keeps
links short); the MAC is HMAC-SHA256 truncated to 128 bits, ample against forgery. Every use
(tokens, coupons, holdout) gets its own key derived from the secret, so a value made for one
use is never valid for another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import UTC, date, datetime
from typing import Any, Final, Literal

from pydantic import SecretStr

from cartpulse.settings import RetargetSettings, SettingsError

Purpose = Literal["unsubscribe", "cart"]
PURPOSES: Final = frozenset({"unsubscribe", "cart"})
_PURPOSE_CODES: Final = {"unsubscribe": "u", "cart": "c"}
_PURPOSE_NAMES: Final = {code: name for name, code in _PURPOSE_CODES.items()}
Reason = Literal["bad_signature", "wrong_purpose", "expired", "malformed"]
Secret = SecretStr | str | bytes

MAC_BYTES = 16
MAX_TOKEN_CHARS = 2_048  # links are far shorter; refuse to decode anything bigger
# 32 symbols without 0/O and 1/I, so a code read aloud or retyped cannot be misread.
COUPON_ALPHABET: Final = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
COUPON_CHARS = 12
COUPON_GROUP = 4


class InvalidToken(Exception):  # noqa: N818 - the name callers expect, like itsdangerous'
    """A token failed verification; `reason` says why (bad_signature, wrong_purpose, ...)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: Reason = reason


def require_secret(settings: RetargetSettings) -> SecretStr:
    """The secret key, or a SettingsError that says how to set one."""
    if settings.secret_key is None:
        raise SettingsError(
            "setting `retarget.secret_key` (env CARTPULSE_RETARGET__SECRET_KEY) is not set; "
            "emails need it to sign links and coupons. Generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return settings.secret_key


def derive_key(secret: Secret, use: str) -> bytes:
    """A key for one use (`token`, `coupon`, `holdout`), derived from the secret."""
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    raw = secret.encode() if isinstance(secret, str) else secret
    if not raw:
        raise ValueError("the secret key is empty")
    return hmac.new(raw, b"cartpulse/v1/" + use.encode(), hashlib.sha256).digest()


def sign(
    secret: Secret, purpose: Purpose, payload: dict[str, Any], expires_at: datetime | None = None
) -> str:
    """A URL-safe token carrying `payload` for `purpose`, valid until `expires_at` (if given)."""
    _check_purpose(purpose)
    expiry = 0 if expires_at is None else int(_aware(expires_at, "expires_at").timestamp())
    body = [_PURPOSE_CODES[purpose], expiry, payload]
    encoded = _b64encode(json.dumps(body, separators=(",", ":")).encode())
    return f"{encoded}.{_b64encode(_mac(secret, encoded))}"


def verify(secret: Secret, purpose: Purpose, token: str, now: datetime) -> dict[str, Any]:
    """The payload of a valid token for `purpose`; raises InvalidToken with the reason otherwise."""
    _check_purpose(purpose)
    _aware(now, "now")
    encoded, mac = _split(token)
    if not hmac.compare_digest(mac, _mac(secret, encoded)):
        raise InvalidToken("bad_signature", "the token was not signed with this key or was altered")
    made_for, expiry, payload = _decode_body(encoded)
    if made_for != purpose:
        raise InvalidToken("wrong_purpose", f"made for {made_for!r}, used for {purpose!r}")
    if expiry and now.timestamp() >= expiry:
        raise InvalidToken(
            "expired", f"expired at {datetime.fromtimestamp(expiry, UTC).isoformat()}"
        )
    return payload


def coupon_code(secret: Secret, user_session: str, kind: str, expires_on: date) -> str:
    """A code unique to this cart and offer, like `ABCD-EFGH-JKLM`; unguessable without the key."""
    message = f"{user_session}|{kind}|{expires_on.isoformat()}".encode()
    digest = hmac.new(derive_key(secret, "coupon"), message, hashlib.sha256).digest()
    # 60 bits, 5 per symbol: two of n carts share a code with probability ≈ n²/2^61
    # (4e-5 for 10 M carts), and verify_coupon checks the cart too, not just the code.
    number = int.from_bytes(digest[:8], "big") >> (64 - 5 * COUPON_CHARS)
    symbols = [COUPON_ALPHABET[(number >> (5 * i)) & 31] for i in reversed(range(COUPON_CHARS))]
    text = "".join(symbols)
    return "-".join(text[i : i + COUPON_GROUP] for i in range(0, COUPON_CHARS, COUPON_GROUP))


def verify_coupon(
    secret: Secret, code: str, user_session: str, kind: str, expires_on: date
) -> bool:
    """Whether `code` (any case, dashes and spaces optional) is this cart's coupon."""
    typed = "".join(code.split()).replace("-", "").upper()
    expected = coupon_code(secret, user_session, kind, expires_on).replace("-", "")
    return hmac.compare_digest(typed.encode(), expected.encode())


def _mac(secret: Secret, encoded: str) -> bytes:
    key = derive_key(secret, "token")
    return hmac.new(key, encoded.encode("ascii"), hashlib.sha256).digest()[:MAC_BYTES]


def _split(token: str) -> tuple[str, bytes]:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise InvalidToken("malformed", "not a cartpulse token")
    encoded, mac_text = token.split(".")
    try:
        encoded.encode("ascii")
        mac = _b64decode(mac_text)
    except (UnicodeError, binascii.Error, ValueError):
        raise InvalidToken("malformed", "not base64url") from None
    if len(mac) != MAC_BYTES:
        raise InvalidToken("malformed", "signature has the wrong length")
    return encoded, mac


def _decode_body(encoded: str) -> tuple[str, int, dict[str, Any]]:
    """(purpose, expiry or 0, payload) of a body whose MAC was already checked."""
    try:
        body = json.loads(_b64decode(encoded))
    except (binascii.Error, ValueError):
        raise InvalidToken("malformed", "body is not base64url JSON") from None
    # Only reachable with a valid MAC, i.e. a token made by other code holding the key.
    if not (
        isinstance(body, list)
        and len(body) == 3
        and body[0] in _PURPOSE_NAMES
        and isinstance(body[1], int)
        and isinstance(body[2], dict)
    ):
        raise InvalidToken("malformed", "body is not [purpose, expiry, payload]")
    return _PURPOSE_NAMES[body[0]], body[1], body[2]


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}; use one of {sorted(PURPOSES)}")


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"`{name}` must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text or any(c not in _B64URL for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
