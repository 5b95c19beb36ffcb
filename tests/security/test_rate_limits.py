"""Floods are cut off: every named limit, with small limits switched on, on SQLite and MariaDB.

REST per address and per user (429 ``rate_limited`` + ``Retry-After``), WebSocket frames per
socket (a burst, then close 4029), message sends per user (WS error frame ``rate_limited`` and
REST 429, one budget for both), logins and registrations, uploads. A refused request does no
work. ``test_every_named_limit_is_exercised`` fails when a new limit appears untested.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from sqlalchemy import func, select
from websockets.exceptions import ConnectionClosed

from gochat.storage.tables import media
from tests.integration.chat_helpers import (
    User,
    create_group,
    history,
    post_message,
    send_frame,
    users,
    ws_connect,
)
from tests.media_fixtures import image_bytes
from tests.security.helpers import API, PASSWORD
from tests.support import LiveServer, live_server, make_settings

EXERCISED = {"api:ip", "api:user", "send:user", "login:user", "login:ip", "register:ip", "upload:user"}


def assert_limited(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60, r.headers
    assert r.headers["content-type"] == "application/json"


@asynccontextmanager
async def from_address(server: LiveServer, address: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=server.base_url, transport=transport, timeout=10) as client:
        yield client


async def test_every_named_limit_is_exercised(db_url: str, tmp_path: Path) -> None:
    async with live_server(make_settings(db_url, tmp_path)) as server:
        assert set(server.app.state.services.limiter._items) == EXERCISED


async def test_rest_is_limited_per_address(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, rate_limits_enabled=True, api_ip_limit="6/minute")
    async with live_server(settings) as server:
        [alice] = await users(server, "alice")  # register + login: 2 requests from 127.0.0.1
        for _ in range(4):
            assert (await server.http.get(f"{API}/users/me", headers=alice.headers)).status_code == 200
        # Authenticated or not, any route: the address is out of budget.
        assert_limited(await server.http.get(f"{API}/users/me", headers=alice.headers))
        assert_limited(await server.http.get(f"{API}/users/me"))
        assert_limited(
            await server.http.post(f"{API}/auth/login", json={"username": "alice", "password": PASSWORD})
        )
        # Another address, the same user: fine.
        async with from_address(server, "127.0.0.2") as elsewhere:
            assert (await elsewhere.get(f"{API}/users/me", headers=alice.headers)).status_code == 200


async def test_rest_is_limited_per_user(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, rate_limits_enabled=True, api_user_limit="4/minute")
    async with live_server(settings) as server:
        alice, bob = await users(server, "alice", "bob")
        async with from_address(server, "127.0.0.2") as a2, from_address(server, "127.0.0.3") as a3:
            for client in (server.http, a2, a3, server.http):  # spread over addresses: one budget
                assert (await client.get(f"{API}/users/me", headers=alice.headers)).status_code == 200
            for client in (server.http, a2, a3):
                assert_limited(await client.get(f"{API}/conversations", headers=alice.headers))
        assert (await server.http.get(f"{API}/users/me", headers=bob.headers)).status_code == 200


async def test_websocket_frame_flood_closes_4029(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, rate_limits_enabled=True, ws_frame_rate=1.0, ws_frame_burst=5)
    async with live_server(settings) as server:
        [alice] = await users(server, "alice")
        async with ws_connect(server, alice) as flooder, ws_connect(server, alice) as calm:
            started = time.monotonic()
            for i in range(30):
                try:
                    await flooder.send({"type": "ping", "id": i})
                except ConnectionClosed:
                    break
            pongs = 0
            try:
                while True:
                    pongs += (await flooder.next())["type"] == "pong"
            except ConnectionClosed as exc:
                assert exc.rcvd is not None and exc.rcvd.code == 4029, exc
            # The burst (5), plus what refilled at 1/s while we were sending (a loaded machine).
            assert pongs <= 5 + int(time.monotonic() - started) + 1, pongs
            # The bucket is per socket: the same user's other device is unaffected.
            assert (await calm.request({"type": "ping", "id": "calm"}))["type"] == "pong"


async def test_sends_are_limited_per_user_over_websocket_and_rest(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, rate_limits_enabled=True, send_user_limit="3/minute")
    async with live_server(settings) as server:
        alice, bob = await users(server, "alice", "bob")
        conv = (await create_group(server, alice, "g", bob))["id"]
        async with ws_connect(server, alice) as ws:
            for i in range(2):
                assert (await ws.request(send_frame(i, conv, f"w{i}", "hi")))["type"] == "ack"
            r = await post_message(server, alice, conv, {"client_msg_id": "r0", "body": "hi"})
            assert r.status_code == 201, r.text
            error = await ws.request(send_frame("over", conv, "w9", "too many"))
            assert (error["type"], error["id"], error["code"]) == ("error", "over", "rate_limited")
            assert_limited(await post_message(server, alice, conv, {"client_msg_id": "r9", "body": "x"}))
            # The socket stays usable for everything else, and other senders are unaffected.
            assert (await ws.request({"type": "ping", "id": "p"}))["type"] == "pong"
        r = await post_message(server, bob, conv, {"client_msg_id": "b", "body": "mine"})
        assert r.status_code == 201
        assert [m["client_msg_id"] for m in await history(server, bob, conv)] == ["w0", "w1", "r0", "b"]


async def test_login_and_registration_limits(db_url: str, tmp_path: Path) -> None:
    """Compact: tests/integration/test_ratelimit.py has the detailed cases."""
    settings = make_settings(
        db_url, tmp_path, rate_limits_enabled=True,
        login_limit="2/minute", login_ip_limit="5/minute", register_ip_limit="2/minute",
    )  # fmt: skip
    async with live_server(settings) as server:
        http = server.http

        async def register(client: httpx.AsyncClient, name: str) -> httpx.Response:
            return await client.post(f"{API}/auth/register", json={"username": name, "password": PASSWORD})

        async def login(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
            return await client.post(f"{API}/auth/login", json={"username": name, "password": password})

        assert (await register(http, "alice")).status_code == 201
        assert (await register(http, "bob")).status_code == 201
        assert_limited(await register(http, "carol"))
        for _ in range(2):
            assert (await login(http, "alice", "wrong-password")).status_code == 401
        assert_limited(await login(http, "alice"))  # per username: even the right password
        assert (await login(http, "bob")).status_code == 200
        assert (await login(http, "bob")).status_code == 200
        assert_limited(await login(http, "bob"))  # per address: 5 logins from here
        async with from_address(server, "127.0.0.2") as elsewhere:
            assert (await login(elsewhere, "bob")).status_code == 200
            assert (await register(elsewhere, "carol")).status_code == 201


async def upload(server: LiveServer, user: User, name: str) -> httpx.Response:
    files = {"file": (name, image_bytes("PNG"), "image/png")}
    return await server.http.post(f"{API}/media", files=files, headers=user.headers)


async def test_uploads_are_limited_per_user(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, rate_limits_enabled=True, upload_user_limit="2/minute")
    async with live_server(settings) as server:
        alice, bob = await users(server, "alice", "bob")
        for i in range(2):
            assert (await upload(server, alice, f"a{i}.png")).status_code == 201
        assert_limited(await upload(server, alice, "a3.png"))
        assert (await upload(server, bob, "b.png")).status_code == 201
        async with server.app.state.components.engine.connect() as conn:
            stored = (await conn.execute(select(func.count()).select_from(media))).scalar_one()
        assert stored == 3  # the refused upload was not stored
