"""Every route of `serve` refuses requests without a credential (documented exceptions aside)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route

from cartpulse.serve.pipeline import Pipeline
from cartpulse.settings import Settings
from cartpulse.web.access import OPS_PATHS, OWN_CREDENTIAL_PATHS, PUBLIC_PATHS
from cartpulse.web.app import create_app

WRITE_KEY = "collector-key-0123456789"
ADMIN = "admin-token-0123456789"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("access") / "home"
    settings = Settings(
        home=home,
        fsync="never",
        collector={"write_keys": (WRITE_KEY,)},
        retarget={"secret_key": "k7Qm2vX9pL4sT8wZ1nR6yB3cF5hJ0dG2aE9uI4oP"},
    )
    pipeline = Pipeline(settings)  # not started: the routes answer, the engine idles
    try:
        app = create_app(settings, pipeline=pipeline, admin_token=ADMIN)
        app.state.cartpulse_home = str(home)
        with TestClient(app, follow_redirects=False) as c:
            yield c
    finally:
        pipeline.shutdown()


def _routes(client: TestClient) -> list[tuple[str, str]]:
    """(method, concrete path) of every route the app serves, included routers too."""
    found: list[tuple[str, str]] = []
    for route in _walk(client.app.routes):  # type: ignore[attr-defined]
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        found.extend((method, path) for method in sorted(route.methods or ()) if method != "HEAD")
    return found


def _walk(routes: list[Any]) -> Iterator[Route]:
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:  # newer FastAPI keeps included routers as such
            assert route.include_context.prefix == ""
            yield from _walk(inner.routes)
        else:
            assert isinstance(route, APIRoute | Route), f"unexpected route kind {route!r}"
            yield route


def _login(client: TestClient, home: Path) -> None:
    password = (home / "state" / "dashboard.password").read_text().strip()
    form = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    done = client.post(
        "/login", data={"password": password, "csrf": csrf.group(1), "next": "/brands"}
    )
    assert done.status_code == 303 and done.headers["location"] == "/brands"
    cookie = done.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_every_route_refuses_requests_without_a_credential(client: TestClient) -> None:
    client.cookies.clear()
    routes = _routes(client)
    paths = {path for _, path in routes}
    assert {"/live", "/live/stream", "/traffic", "/emails/preview", "/health"} <= paths
    assert {"/metrics", "/readyz", "/docs", "/openapi.json", "/v1/events"} <= paths
    for method, path in routes:
        if path in PUBLIC_PATHS:
            continue
        for headers in ({}, {"Authorization": f"Bearer {WRITE_KEY}"}):
            if path == "/v1/events" and headers:
                continue  # the write key is the collector's credential
            response = client.request(method, path, headers=headers)
            assert response.status_code in (400, 401, 422), (method, path, headers)


def test_the_exceptions_are_the_documented_ones(client: TestClient) -> None:
    assert {"/healthz", "/login", "/static/dashboard.css"} == PUBLIC_PATHS
    assert set(OWN_CREDENTIAL_PATHS) == {
        "/v1/events",
        "/unsubscribe",
        "/v1/query",
        "/v1/models/run",
    }
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/unsubscribe", params={"token": "forged"}).status_code == 400


def test_pages_redirect_browsers_to_the_login_form(client: TestClient) -> None:
    client.cookies.clear()
    page = client.get("/brands?brand=apple", headers={"Accept": "text/html"})
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fbrands%3Fbrand%3Dapple"


def test_the_admin_token_opens_operations_but_not_the_dashboard(client: TestClient) -> None:
    client.cookies.clear()
    admin = {"Authorization": f"Bearer {ADMIN}"}
    for path in sorted(OPS_PATHS - {"/docs/oauth2-redirect"}):
        assert client.get(path, headers=admin).status_code in (200, 503), path
    assert client.get("/live", headers=admin).status_code == 401


def test_login_opens_everything_and_logout_closes_it(client: TestClient) -> None:
    home = Path(client.app.state.cartpulse_home)  # type: ignore[attr-defined]
    client.cookies.clear()
    wrong = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', wrong.text)
    assert csrf is not None
    refused = client.post("/login", data={"password": "guess", "csrf": csrf.group(1)})
    assert refused.status_code == 401 and "Wrong password" in refused.text
    forged = client.post("/login", data={"password": "guess", "csrf": "made-up"})
    assert forged.status_code == 400
    _login(client, home)
    # An empty home: every page renders and says which command fills it.
    hints = {
        "/live": "No purchases yet",
        "/traffic": "cartpulse models run",
        "/categories": "cartpulse models run",
        "/brands": "cartpulse models run",
        "/customers": "cartpulse models train --model clv",
        "/products": "cartpulse models train --model forecast",
        "/emails": "cartpulse customers import",
        "/health": "No models_runs yet",
    }
    for path, hint in hints.items():
        page = client.get(path)
        assert page.status_code == 200 and hint in page.text, path
    for path in ("/metrics", "/docs", "/openapi.json", "/static/plotly.min.js"):
        assert client.get(path).status_code == 200, path
    assert client.post("/logout", data={"token": "wrong"}).status_code == 400
    token = re.search(r'name="token" value="([^"]+)"', client.get("/live").text)
    assert token is not None
    assert client.post("/logout", data={"token": token.group(1)}).status_code == 303
    assert client.get("/live").status_code == 401


def test_login_never_redirects_off_site(client: TestClient) -> None:
    home = Path(client.app.state.cartpulse_home)  # type: ignore[attr-defined]
    client.cookies.clear()
    password = (home / "state" / "dashboard.password").read_text().strip()
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        form = client.get("/login", params={"next": target})
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        done = client.post(
            "/login", data={"password": password, "csrf": csrf.group(1), "next": target}
        )
        assert done.headers["location"] == "/live", target
