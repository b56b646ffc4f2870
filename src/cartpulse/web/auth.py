"""Dashboard credentials: scrypt password hashes and signed, expiring session cookies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from cartpulse.home_secrets import home_secret_file
from cartpulse.settings import Settings

SESSION_COOKIE = "cartpulse_session"
_PASSWORD_FILE = "dashboard.password"
_SECRET_FILE = "dashboard.secret"
# scrypt cost: ~50 ms and 16 MiB per check on a laptop core (RFC 7914's interactive setting).
_N, _R, _P = 2**14, 8, 1


class HashFormatError(ValueError):
    """A stored password hash is not one `hash_password` wrote."""


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash` (base64) for a password, safe to keep in settings."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Does `password` match the hash (constant-time comparison)?"""
    try:
        kind, n, r, p, salt, digest = encoded.split("$")
        if kind != "scrypt":
            raise ValueError(kind)
        expected = _unb64(digest)
        given = hashlib.scrypt(
            password.encode(),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=128 * 1024 * 1024,
        )
    except ValueError as exc:
        raise HashFormatError(
            "the dashboard password hash is not valid; make a new one with "
            "`cartpulse dashboard hash-password`"
        ) from exc
    return hmac.compare_digest(given, expected)


@dataclass(frozen=True)
class DashboardLogin:
    """How `serve` checks dashboard logins: the password hash and the cookie signing key."""

    password_hash: str
    signing_key: bytes
    session_s: float
    password_file: str | None = None
    """Where the generated password is kept, when none is configured (for the banner)."""

    def issue(self, now_s: float | None = None) -> str:
        """A session cookie value that expires after `session_s`."""
        expires = int((now_s if now_s is not None else time.time()) + self.session_s)
        nonce = secrets.token_urlsafe(12)
        payload = f"{expires}.{nonce}"
        return f"{payload}.{self._mac(payload)}"

    def valid(self, cookie: str | None, now_s: float | None = None) -> bool:
        """Is this cookie one we issued, unchanged and not expired?"""
        if not cookie or cookie.count(".") != 2:
            return False
        payload, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return False
        expires = payload.partition(".")[0]
        return expires.isdigit() and int(expires) > (now_s if now_s is not None else time.time())

    def token_for(self, cookie: str, purpose: str) -> str:
        """A form token bound to one session (logout form): forged pages cannot know it."""
        return self._mac(f"{purpose}|{cookie}")

    def _mac(self, payload: str) -> str:
        digest = hmac.new(self.signing_key, payload.encode(), hashlib.sha256).digest()
        return _b64(digest)


def dashboard_login(settings: Settings) -> DashboardLogin:
    """The login of this home: configured hash, or a generated password kept in `state/`."""
    dash = settings.dashboard
    password_file: str | None = None
    if dash.password_hash is not None:
        encoded = dash.password_hash.get_secret_value()
    else:
        path = settings.state_dir / _PASSWORD_FILE
        password, _ = home_secret_file(path, 18)
        encoded = _cached_hash(password)
        password_file = str(path)
    if dash.session_secret is not None:
        secret = dash.session_secret.get_secret_value()
    else:
        secret = home_secret_file(settings.state_dir / _SECRET_FILE)[0]
    # Keyed by the hash too: a new password ends every login made with the old one.
    key = hmac.new(secret.encode(), encoded.encode(), hashlib.sha256).digest()
    return DashboardLogin(encoded, key, dash.session_hours * 3600, password_file)


_HASHES: dict[str, str] = {}


def _cached_hash(password: str) -> str:
    """One hash per generated password per process (hashing is slow on purpose)."""
    if password not in _HASHES:
        _HASHES[password] = hash_password(password)
    return _HASHES[password]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
