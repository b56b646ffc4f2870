"""Dashboard password hashes and session cookies."""

from __future__ import annotations

import pytest

from cartpulse.web.auth import DashboardLogin, HashFormatError, hash_password, verify_password


def test_a_hash_verifies_its_password_only() -> None:
    encoded = hash_password("correct horse battery")
    assert encoded.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse battery", encoded)
    assert not verify_password("correct horse batterY", encoded)
    assert hash_password("correct horse battery") != encoded  # a fresh salt each time


def test_a_mangled_hash_says_how_to_make_a_new_one() -> None:
    with pytest.raises(HashFormatError, match="hash-password"):
        verify_password("x", "scrypt$16384$8$1$only-five-parts")


def _login(key: bytes = b"k" * 32) -> DashboardLogin:
    return DashboardLogin(password_hash="scrypt$...", signing_key=key, session_s=3600)


def test_cookies_expire_and_cannot_be_forged() -> None:
    login = _login()
    cookie = login.issue(now_s=1_000_000)
    assert login.valid(cookie, now_s=1_000_000 + 3599)
    assert not login.valid(cookie, now_s=1_000_000 + 3600)
    expires, nonce, mac = cookie.split(".")
    assert not login.valid(f"{int(expires) + 10_000}.{nonce}.{mac}", now_s=1_000_000)
    assert not _login(b"j" * 32).valid(cookie, now_s=1_000_000)  # another key (new password)
    for junk in (None, "", "abc", "1.2", "a.b.c.d"):
        assert not login.valid(junk, now_s=0)


def test_form_tokens_are_bound_to_the_session() -> None:
    login = _login()
    one, two = login.issue(), login.issue()
    assert login.token_for(one, "logout") != login.token_for(two, "logout")
    assert login.token_for(one, "logout") == login.token_for(one, "logout")
