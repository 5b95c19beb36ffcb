"""What a malicious web page can do with a logged-in user's browser: nothing.

- Cross-site WebSocket hijacking: a foreign ``Origin`` is closed with 1008 before anything is
  read or served, whatever the credentials; allowlisted and same-origin sockets work.
- CORS is off by default (no ``Access-Control-Allow-Origin`` for anyone) and opt-in through
  ``GOCHAT_CORS_ORIGINS``; "*" never comes with credentials.
- Every HTTP answer (success, every error status, operations, the web client) carries the
  security headers; API answers the locked-down CSP, the web client its own strict one.

On SQLite and MariaDB (the database is irrelevant here, but the fixture costs ~1 s).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gochat.api.web import WEB_DIR
from tests.integration.chat_helpers import users, ws_connect
from tests.security.helpers import API, PASSWORD, auth, auth_frame, ws_close_code
from tests.support import live_server, make_settings

APP_ORIGIN = "https://app.example"
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
BASE_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
FOREIGN_ORIGINS = [
    "https://evil.example",
    "null",  # sandboxed iframes and file:// pages
    "https://app.example.evil.example",  # the allowed origin as a prefix
    "https://evil.example/https://app.example",
    "http://app.example",  # right host, wrong scheme
    "https://app.example:8443",  # right host, wrong port
    "https://APP.EXAMPLE",  # browsers serialise origins in lower case: not the allowed one
    "http://127.0.0.1:1",  # the server's host on another port
]


async def test_cross_site_websocket_hijacking_is_refused_1008(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, allowed_origins=[APP_ORIGIN])
    async with live_server(settings) as server:
        [alice] = await users(server, "alice")
        bearer = {"Authorization": f"Bearer {alice.token}"}
        for origin in FOREIGN_ORIGINS:
            # A valid token does not help: the Origin is checked first, by either auth path.
            assert await ws_close_code(server, auth_frame(alice.token), origin=origin) == 1008, origin
            assert await ws_close_code(server, headers=bearer, origin=origin) == 1008, origin
        for origin in (APP_ORIGIN, server.base_url, None):  # allowlisted, same origin, no browser
            async with ws_connect(server, alice, origin=origin) as ws:
                assert (await ws.request({"type": "ping", "id": "o"}))["type"] == "pong", origin
            async with ws_connect(server, alice, header=True, origin=origin) as ws:
                assert (await ws.request({"type": "ping", "id": "h"}))["type"] == "pong", origin


async def test_without_an_allowlist_only_the_own_origin_is_accepted(db_url: str, tmp_path: Path) -> None:
    async with live_server(make_settings(db_url, tmp_path)) as server:
        [alice] = await users(server, "alice")
        for origin in (APP_ORIGIN, "https://evil.example", "null"):
            assert await ws_close_code(server, auth_frame(alice.token), origin=origin) == 1008, origin
        async with ws_connect(server, alice, origin=server.base_url) as ws:
            assert ws.ready["type"] == "ready"


def preflight(origin: str, path: str = f"{API}/users/me") -> tuple[str, str, dict[str, str]]:
    return (
        "OPTIONS",
        path,
        {
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )


async def test_cors_is_off_by_default(db_url: str, tmp_path: Path) -> None:
    async with live_server(make_settings(db_url, tmp_path)) as server:
        [alice] = await users(server, "alice")
        for origin in (APP_ORIGIN, "https://evil.example", "null"):
            method, path, headers = preflight(origin)
            r = await server.http.request(method, path, headers=headers)
            assert r.status_code >= 400, r.text  # no OPTIONS handler: the browser blocks the call
            got = await server.http.get(f"{API}/users/me", headers={"Origin": origin, **alice.headers})
            login = await server.http.post(
                f"{API}/auth/login",
                json={"username": "alice", "password": PASSWORD},
                headers={"Origin": origin},
            )
            for response in (r, got, login):
                assert not any(h.startswith("access-control-") for h in response.headers), response.headers


async def test_cors_is_configurable(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOCHAT_CORS_ORIGINS", f"{APP_ORIGIN}, https://admin.example")
    async with live_server(make_settings(db_url, tmp_path)) as server:
        [alice] = await users(server, "alice")
        for origin in (APP_ORIGIN, "https://admin.example"):
            method, path, headers = preflight(origin)
            r = await server.http.request(method, path, headers=headers)
            assert r.status_code == 200, r.text
            assert r.headers["access-control-allow-origin"] == origin
            assert "authorization" in r.headers["access-control-allow-headers"].lower()
            got = await server.http.get(f"{API}/users/me", headers={"Origin": origin, **alice.headers})
            assert got.status_code == 200 and got.headers["access-control-allow-origin"] == origin
            assert "origin" in got.headers.get("vary", "").lower()  # caches keep origins apart
        for origin in ("https://evil.example", "null", "https://app.example.evil.example"):
            method, path, headers = preflight(origin)
            r = await server.http.request(method, path, headers=headers)
            got = await server.http.get(f"{API}/users/me", headers={"Origin": origin, **alice.headers})
            for response in (r, got):
                assert "access-control-allow-origin" not in response.headers, (origin, response.headers)
    monkeypatch.setenv("GOCHAT_CORS_ORIGINS", "*")
    async with live_server(make_settings(db_url, tmp_path)) as server:
        method, path, headers = preflight("https://anyone.example")
        r = await server.http.request(method, path, headers=headers)
        assert r.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in r.headers  # never credentials for "*"


def assert_base_headers(r: httpx.Response) -> None:
    for name, value in BASE_HEADERS.items():
        assert r.headers.get(name) == value, (r.request.method, r.url, r.status_code, name, r.headers)


def assert_api_headers(r: httpx.Response) -> None:
    assert_base_headers(r)
    assert r.headers.get("content-security-policy") == API_CSP, (r.url, r.status_code, r.headers)


def assert_web_client_csp(r: httpx.Response) -> None:
    assert_base_headers(r)
    directives = {}
    for directive in r.headers["content-security-policy"].split(";"):
        name, _, value = directive.strip().partition(" ")
        directives[name] = value
    assert directives["script-src"] == "'self'", directives  # no inline, no eval, no CDN
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["default-src"] == "'self'"
    assert "unsafe" not in r.headers["content-security-policy"]


async def test_security_headers_on_every_response(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, rate_limits_enabled=True, api_ip_limit="40/minute")
    async with live_server(settings) as server:
        http = server.http
        [alice] = await users(server, "alice")
        api_responses = [
            await http.get(f"{API}/users/me", headers=alice.headers),  # 200
            await http.post(f"{API}/auth/register", json={"username": "bob", "password": PASSWORD}),  # 201
            await http.post(f"{API}/auth/logout", json={"refresh_token": alice.refresh_token}),  # 204
            await http.get(f"{API}/users/me"),  # 401
            await http.get(f"{API}/users/me", headers=auth("garbage")),  # 401 invalid token
            await http.get(f"{API}/conversations/123"),  # 401 before 404
            await http.get(f"{API}/no-such-route"),  # 404
            await http.put(f"{API}/users/me"),  # 405
            await http.post(f"{API}/auth/login", content=b"{" * 2_000_000),  # 413
            await http.post(f"{API}/auth/login", json={"username": 1}),  # 422
            await http.post(
                f"{API}/auth/login",
                content=b'{"username":"\xff"}',
                headers={"content-type": "application/json"},
            ),  # 400: not UTF-8
            await http.get("/healthz"),
            await http.get("/readyz"),
            await http.get("/metrics"),
            await http.get("/openapi.json"),
        ]
        statuses = {r.status_code for r in api_responses}
        assert {200, 201, 204, 400, 401, 404, 405, 413, 422} <= statuses, statuses
        for r in api_responses:
            assert_api_headers(r)
            if r.status_code >= 400:
                assert r.headers["content-type"] == "application/json", r.headers
        # 429 from the address limit, headers included.
        for _ in range(50):
            limited = await http.get(f"{API}/users/me")
            if limited.status_code == 429:
                break
        assert limited.status_code == 429, limited.text
        assert_api_headers(limited)
        # Swagger UI needs its CDN scripts, so /docs has no CSP, but still the other headers.
        docs = await http.get("/docs")
        assert_base_headers(docs)
        assert "content-security-policy" not in docs.headers

        # The web client at / (when this build serves one) has its own strict CSP.
        if (WEB_DIR / "index.html").is_file():
            asset = next((WEB_DIR / "assets").glob("*.js")).name
            pages = [
                await http.get("/"),
                await http.get("/c/123"),  # a client route: the SPA fallback
                await http.get(f"/assets/{asset}"),
                await http.head("/"),
            ]
            for r in pages:
                assert r.status_code == 200, r.url
                assert_web_client_csp(r)
            assert pages[0].headers["content-type"].startswith("text/html")
            missing = await http.get("/missing.js")
            assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"
            assert_web_client_csp(missing)
