"""Abuse controls on login and registration, on SQLite and on MariaDB.

Limits per username and per client address (429 rate_limited with Retry-After), and a wrong
username indistinguishable from a wrong password: same status, same body, about the same time
with the real argon2 parameters.
"""

# Look-alike characters (fullwidth letters, homoglyphs) are the point of these tests.
# ruff: noqa: RUF001

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from gochat.security.passwords import PasswordHasher
from gochat.storage.tables import sessions, users
from tests.support import LiveServer, live_server, make_settings

API = "/api/v1"
PASSWORD = "password123"


async def register(http: httpx.AsyncClient, name: str) -> httpx.Response:
    return await http.post(f"{API}/auth/register", json={"username": name, "password": PASSWORD})


async def login(http: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post(f"{API}/auth/login", json={"username": name, "password": password})


def assert_limited(r: httpx.Response, window_s: int = 60) -> None:
    assert r.status_code == 429, r.text
    assert r.json() == {"error": {"code": "rate_limited", "message": r.json()["error"]["message"]}}
    retry_after = r.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit(), r.headers
    assert 1 <= int(retry_after) <= window_s


async def count(server: LiveServer, table: Any) -> int:
    async with server.app.state.components.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


@asynccontextmanager
async def from_address(server: LiveServer, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose connections come from another loopback address (another "client IP")."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=server.base_url, transport=transport, timeout=10) as client:
        yield client


async def test_login_is_limited_per_username(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, rate_limits_enabled=True, login_limit="3/minute")
    async with live_server(settings) as server:
        http = server.http
        for name in ("alice", "bob"):
            assert (await register(http, name)).status_code == 201
        for _ in range(3):
            assert (await login(http, "alice", "wrong-password")).status_code == 401
        # The fourth attempt is refused before the password is even looked at: right or wrong.
        assert_limited(await login(http, "alice"))
        assert_limited(await login(http, "alice", "wrong-password"))
        # The bucket is the account, not the spelling, and not the address.
        assert_limited(await login(http, "ALICE"))
        assert_limited(await login(http, "ａｌｉｃｅ"))
        async with from_address(server, "127.0.0.2") as elsewhere:
            assert_limited(await login(elsewhere, "alice"))
        # Other accounts are unaffected.
        assert (await login(http, "bob")).status_code == 200
        assert await count(server, sessions) == 1


async def test_successful_logins_do_not_use_up_the_username_budget(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, rate_limits_enabled=True, login_limit="3/minute")
    async with live_server(settings) as server:
        assert (await register(server.http, "alice")).status_code == 201
        for _ in range(6):
            assert (await login(server.http, "alice")).status_code == 200


async def test_unknown_usernames_are_limited_like_real_ones(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, rate_limits_enabled=True, login_limit="3/minute")
    async with live_server(settings) as server:
        for _ in range(3):
            assert (await login(server.http, "nobody")).status_code == 401
        assert_limited(await login(server.http, "nobody"))


async def test_login_is_limited_per_client_address(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        db_url, tmp_path, rate_limits_enabled=True, login_limit="100/minute", login_ip_limit="4/minute"
    )
    async with live_server(settings) as server:
        assert (await register(server.http, "alice")).status_code == 201
        # Spraying many usernames from one address trips the address limit.
        for name in ("u1", "u2", "u3", "u4"):
            assert (await login(server.http, name)).status_code == 401
        assert_limited(await login(server.http, "alice"))
        assert_limited(await login(server.http, "u5"))
        # The same account from another address is fine.
        async with from_address(server, "127.0.0.2") as elsewhere:
            assert (await login(elsewhere, "alice")).status_code == 200
        assert await count(server, sessions) == 1


async def test_registration_is_limited_per_client_address(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, rate_limits_enabled=True, register_ip_limit="2/minute")
    async with live_server(settings) as server:
        assert (await register(server.http, "user1")).status_code == 201
        assert (await register(server.http, "user2")).status_code == 201
        assert_limited(await register(server.http, "user3"))
        assert await count(server, users) == 2
        async with from_address(server, "127.0.0.3") as elsewhere:
            assert (await register(elsewhere, "user3")).status_code == 201


async def test_limits_can_be_switched_off(server: LiveServer) -> None:
    # make_settings switches every limit off, as GOCHAT_RATE_LIMITS_ENABLED=false does
    assert (await register(server.http, "alice")).status_code == 201
    for _ in range(30):
        assert (await login(server.http, "alice", "wrong-password")).status_code == 401
    assert (await login(server.http, "alice")).status_code == 200


async def test_wrong_username_and_wrong_password_are_indistinguishable(db_url: str, tmp_path: Path) -> None:
    """Same status, same body, and about the same time: no username oracle.

    A correctness property, not a benchmark: the real argon2 parameters make the hash the
    dominant cost, and skipping it for unknown users would show as a ratio far below 0.5.
    """
    async with live_server(make_settings(db_url, tmp_path), hasher=PasswordHasher()) as server:
        http = server.http
        assert (await register(http, "alice")).status_code == 201
        unknown, wrong = [], []
        bodies, statuses = set(), set()
        await login(http, "warm-up")
        for _ in range(7):  # interleaved, so drift in machine load hits both sides alike
            for name, password, times in (("nobody", PASSWORD, unknown), ("alice", "wrong-pass", wrong)):
                started = time.perf_counter()
                r = await login(http, name, password)
                times.append(time.perf_counter() - started)
                bodies.add(r.content)
                statuses.add(r.status_code)
        assert statuses == {401}
        assert len(bodies) == 1, bodies
        assert (
            next(iter(bodies))
            == b'{"error":{"code":"invalid_credentials","message":"wrong username or password"}}'
        )
        ratio = statistics.median(unknown) / statistics.median(wrong)
        assert 0.5 <= ratio <= 2.0, (ratio, unknown, wrong)
        assert await count(server, sessions) == 0
