"""Who may call what: every route needs a credential, except the few listed here.

Deny by default: a route added later is behind the dashboard login until it is listed.
"""

from __future__ import annotations

import hmac
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cartpulse.web.auth import SESSION_COOKIE, DashboardLogin

#: Open to anyone: liveness, the login form and its stylesheet.
PUBLIC_PATHS = frozenset({"/healthz", "/login", "/static/dashboard.css"})
#: Routes that check a credential of their own (the middleware lets them decide).
OWN_CREDENTIAL_PATHS = {
    "/v1/events": "a collector write key (Bearer)",
    "/unsubscribe": "the signed token of the email's link",
    "/v1/query": "the home's admin token (Bearer)",
    "/v1/models/run": "the home's admin token (Bearer)",
}
#: Operations endpoints: the dashboard login or the home's admin token (Bearer).
OPS_PATHS = frozenset({"/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json"})


class AccessControl:
    """ASGI middleware: refuse requests that carry no credential valid for their path."""

    def __init__(self, app: ASGIApp, login: DashboardLogin, admin_token: str) -> None:
        self.app = app
        self.login = login
        self.admin_token = admin_token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 303 (to the login page) or 401."""
        path = scope.get("path", "")
        if scope["type"] != "http" or path in PUBLIC_PATHS or path in OWN_CREDENTIAL_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if self.login.valid(request.cookies.get(SESSION_COOKIE)) or (
            path in OPS_PATHS and self._admin(request)
        ):
            await self.app(scope, receive, send)
            return
        await _refusal(request, path in OPS_PATHS)(scope, receive, send)

    def _admin(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        given = header.removeprefix("Bearer ").strip().encode()
        return bool(given) and hmac.compare_digest(given, self.admin_token)


def _refusal(request: Request, ops: bool) -> Response:
    """Browsers asking for a page go to the login form; everything else gets 401."""
    wants_page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
    if wants_page and not ops:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    detail = (
        "this endpoint needs the dashboard login or the home's admin token "
        "(Authorization: Bearer, from state/admin.token)"
        if ops
        else "log in to the dashboard at /login first"
    )
    return JSONResponse({"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
