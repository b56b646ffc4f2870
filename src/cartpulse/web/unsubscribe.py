"""`GET/POST /unsubscribe?token=…`: the one-click unsubscribe link of every email (RFC 8058)."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from contextlib import AbstractContextManager

import duckdb
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import SecretStr

from cartpulse.retarget.customers import unsubscribe
from cartpulse.retarget.tokens import InvalidToken, verify

#: Opens a connection to the warehouse for one request (the app owner decides how).
ConnectionFactory = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto">
<h1>{title}</h1>{body}</body></html>"""


def unsubscribe_router(secret: SecretStr, connect: ConnectionFactory) -> APIRouter:
    """Routes that verify the signed token and unsubscribe its customer."""
    router = APIRouter(tags=["email"])

    @router.get("/unsubscribe", response_class=HTMLResponse)
    def confirm(token: str) -> HTMLResponse:
        """A confirmation page: link scanners that follow GET links unsubscribe nobody."""
        if _user(secret, token) is None:
            return _invalid()
        form = (
            f'<form method="post" action="/unsubscribe?token={html.escape(token, quote=True)}">'
            '<p>Stop receiving these emails?</p><button type="submit">Unsubscribe</button></form>'
        )
        return HTMLResponse(_PAGE.format(title="Unsubscribe", body=form))

    @router.post("/unsubscribe", response_class=HTMLResponse)
    async def one_click(token: str, request: Request) -> HTMLResponse:
        """RFC 8058 one-click (body `List-Unsubscribe=One-Click`) or the confirmation form."""
        await request.body()  # the body carries nothing we need; the token is in the URL
        user_id = _user(secret, token)
        if user_id is None:
            return _invalid()
        with connect() as con:
            unsubscribe(con, user_id, dt.datetime.now(dt.UTC))
        body = "<p>You will not receive these emails any more.</p>"
        return HTMLResponse(_PAGE.format(title="You are unsubscribed", body=body))

    return router


def _user(secret: SecretStr, token: str) -> int | None:
    try:
        payload = verify(secret, "unsubscribe", token, dt.datetime.now(dt.UTC))
    except InvalidToken:
        return None
    user = payload.get("u")
    return user if isinstance(user, int) else None


def _invalid() -> HTMLResponse:
    body = (
        "<p>This unsubscribe link is not valid (it was changed or cut). "
        "Use the link from the email.</p>"
    )
    return HTMLResponse(_PAGE.format(title="Invalid link", body=body), status_code=400)
