"""`/login` and `/logout`: the dashboard's password form and its session cookie."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cartpulse.web.auth import SESSION_COOKIE, DashboardLogin, verify_password
from cartpulse.web.pages import render

_CSRF_COOKIE = "cartpulse_login_csrf"
_MAX_FORM_BYTES = 4096


def login_router(login: DashboardLogin) -> APIRouter:
    """The login form, its POST, and logout."""
    router = APIRouter(tags=["dashboard"], include_in_schema=False)

    @router.get("/login", response_class=HTMLResponse)
    def form(request: Request, target: Annotated[str, Query(alias="next")] = "/live") -> Response:
        """The password form (with a fresh anti-forgery token)."""
        return _form(request, _safe_next(target), error=None, status_code=200)

    @router.post("/login")
    async def submit(request: Request) -> Response:
        """Check the password; on success set the session cookie and go to `next`."""
        fields = await _form_fields(request)
        target = _safe_next(fields.get("next", "/live"))
        expected = request.cookies.get(_CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(expected, fields.get("csrf", "")):
            return _form(request, target, "The form expired; please try again.", 400)
        password = fields.get("password", "")
        if not await run_in_threadpool(verify_password, password, login.password_hash):
            return _form(request, target, "Wrong password.", 401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            login.issue(),
            max_age=int(login.session_s),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        response.delete_cookie(_CSRF_COOKIE)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        """End this browser's login (the form carries a token bound to the session)."""
        fields = await _form_fields(request)
        cookie = request.cookies.get(SESSION_COOKIE, "")
        if not hmac.compare_digest(fields.get("token", ""), login.token_for(cookie, "logout")):
            return Response("logout form token missing or wrong", status_code=400)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    return router


def _form(request: Request, target: str, error: str | None, status_code: int) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        "login.html", status_code=status_code, next=target, csrf=token, error=error, token=""
    )
    response.set_cookie(
        _CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


async def _form_fields(request: Request) -> dict[str, str]:
    """An url-encoded form body, first value per field (small bodies only)."""
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        return {}
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


def _safe_next(target: str) -> str:
    """Only paths on this site: `//evil.example` or `https://…` would be an open redirect."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/live"
