"""Accounts, sessions and tokens through the real app, on SQLite and on MariaDB.

Registration, login, refresh rotation with reuse detection, logout, the token matrix on
GET /users/me, profiles and user search.
"""

# Look-alike characters (fullwidth letters, homoglyphs) are the point of these tests.
# ruff: noqa: RUF001

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import func, select

from gochat.clock import FakeClock
from gochat.security.tokens import signing_key
from gochat.storage.tables import sessions, users
from tests.support import TEST_SECRET, LiveServer, live_server, make_settings

API = "/api/v1"
PASSWORD = "password123"
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# -- helpers ---------------------------------------------------------------------------


async def register(
    http: httpx.AsyncClient, name: str, password: str = PASSWORD, **extra: Any
) -> dict[str, Any]:
    r = await http.post(f"{API}/auth/register", json={"username": name, "password": password, **extra})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def login(http: httpx.AsyncClient, name: str, password: str = PASSWORD) -> dict[str, Any]:
    r = await http.post(f"{API}/auth/login", json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def auth(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


async def me(http: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await http.get(f"{API}/users/me", headers=auth(access_token))


async def refresh(http: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await http.post(f"{API}/auth/refresh", json={"refresh_token": refresh_token})


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


async def count_rows(server: LiveServer, table: Any) -> int:
    async with server.app.state.components.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


@dataclass
class Clocked:
    server: LiveServer
    clock: FakeClock


@pytest.fixture
async def clocked(db_url: str, tmp_path: Path) -> AsyncIterator[Clocked]:
    clock = FakeClock(datetime.now(UTC))
    async with live_server(make_settings(db_url, tmp_path), clock=clock) as live:
        yield Clocked(live, clock)


# -- registration and login ----------------------------------------------------------------


async def test_register_login_me_have_the_contract_shapes(server: LiveServer) -> None:
    user = await register(server.http, "Alice", display_name="Alice A.")
    assert set(user) >= {"id", "username", "display_name", "bio", "avatar_url", "created_at"}
    assert isinstance(user["id"], str) and user["id"].isdigit()
    assert user["username"] == "Alice" and user["display_name"] == "Alice A."
    assert user["bio"] == "" and user["avatar_url"] is None
    assert RFC3339_MS.match(user["created_at"])
    assert "password" not in json.dumps(user) and "hash" not in json.dumps(user)

    tokens = await login(server.http, "Alice")
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    assert tokens["user_id"] == user["id"]
    assert tokens["access_token"] != tokens["refresh_token"]

    r = await me(server.http, tokens["access_token"])
    assert r.status_code == 200, r.text
    mine = r.json()
    assert {k: mine[k] for k in user} == user
    assert mine["presence_hidden"] is False


async def test_display_name_defaults_to_the_username(server: LiveServer) -> None:
    assert (await register(server.http, "bob_1"))["display_name"] == "bob_1"


async def test_login_accepts_any_case_and_width_of_the_username(server: LiveServer) -> None:
    user = await register(server.http, "Alice")
    for spelling in ("Alice", "alice", "ALICE", "ａｌｉｃｅ", "ＡＬＩＣＥ"):
        tokens = await login(server.http, spelling)
        assert tokens["user_id"] == user["id"], spelling


async def test_wrong_password_and_unknown_user_are_refused_without_a_session(server: LiveServer) -> None:
    await register(server.http, "alice")
    for name, password in [("alice", "wrong-password"), ("nobody", PASSWORD), ("alice", PASSWORD.upper())]:
        r = await server.http.post(f"{API}/auth/login", json={"username": name, "password": password})
        assert_error(r, 401, "invalid_credentials")
    assert await count_rows(server, sessions) == 0


async def test_concurrent_registrations_of_one_name_create_one_user(server: LiveServer) -> None:
    spellings = ["carol", "Carol", "CAROL", "ｃａｒｏｌ", "carol", "cAROL"]
    results = await asyncio.gather(
        *(
            server.http.post(f"{API}/auth/register", json={"username": s, "password": PASSWORD})
            for s in spellings
        )
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201] + [409] * (len(spellings) - 1), [r.text for r in results]
    for r in results:
        if r.status_code == 409:
            assert_error(r, 409, "username_taken")
    assert await count_rows(server, users) == 1


# -- refresh and logout ----------------------------------------------------------------------


async def test_refresh_rotates_the_pair(server: LiveServer) -> None:
    await register(server.http, "alice")
    first = await login(server.http, "alice")
    r = await refresh(server.http, first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["session_id"] == first["session_id"]
    assert (await me(server.http, second["access_token"])).status_code == 200
    r = await refresh(server.http, second["refresh_token"])
    assert r.status_code == 200, r.text


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_session(server: LiveServer) -> None:
    await register(server.http, "alice")
    first = await login(server.http, "alice")
    other_device = await login(server.http, "alice")
    second = (await refresh(server.http, first["refresh_token"])).json()
    assert (await me(server.http, second["access_token"])).status_code == 200

    # The spent token comes back (stolen, or replayed): refused, and the family is burnt.
    assert_error(await refresh(server.http, first["refresh_token"]), 401, "invalid_token")
    assert_error(await refresh(server.http, second["refresh_token"]), 401, "invalid_token")
    assert_error(await me(server.http, second["access_token"]), 401, "invalid_token")
    assert_error(await me(server.http, first["access_token"]), 401, "invalid_token")

    # Another login of the same user is another session and is untouched.
    assert (await me(server.http, other_device["access_token"])).status_code == 200
    assert (await refresh(server.http, other_device["refresh_token"])).status_code == 200


async def test_concurrent_refreshes_with_one_token_never_fork_the_session(server: LiveServer) -> None:
    await register(server.http, "alice")
    tokens = await login(server.http, "alice")
    results = await asyncio.gather(*(refresh(server.http, tokens["refresh_token"]) for _ in range(5)))
    assert sorted(r.status_code for r in results) == [200] + [401] * 4, [r.text for r in results]


async def test_logout_revokes_that_session_only(server: LiveServer) -> None:
    await register(server.http, "alice")
    phone = await login(server.http, "alice")
    laptop = await login(server.http, "alice")
    r = await server.http.post(f"{API}/auth/logout", json={"refresh_token": phone["refresh_token"]})
    assert r.status_code == 204 and r.content == b""

    assert_error(await me(server.http, phone["access_token"]), 401, "invalid_token")
    assert_error(await refresh(server.http, phone["refresh_token"]), 401, "invalid_token")
    r = await server.http.post(f"{API}/auth/logout", json={"refresh_token": phone["refresh_token"]})
    assert_error(r, 401, "invalid_token")

    assert (await me(server.http, laptop["access_token"])).status_code == 200
    assert (await refresh(server.http, laptop["refresh_token"])).status_code == 200


async def test_unknown_refresh_tokens_are_refused(server: LiveServer) -> None:
    for token in ["never-issued", "Bearer abc", "x" * 512]:
        assert_error(await refresh(server.http, token), 401, "invalid_token")
        r = await server.http.post(f"{API}/auth/logout", json={"refresh_token": token})
        assert_error(r, 401, "invalid_token")
    for token in ["", "x" * 513]:
        assert_error(await refresh(server.http, token), 422, "invalid_request")


async def test_access_tokens_expire_by_the_clock_and_refresh_renews_them(clocked: Clocked) -> None:
    http, clock = clocked.server.http, clocked.clock
    await register(http, "alice")
    tokens = await login(http, "alice")
    clock.advance(899)
    assert (await me(http, tokens["access_token"])).status_code == 200
    clock.advance(1)
    assert_error(await me(http, tokens["access_token"]), 401, "invalid_token")
    # the refresh token outlives the access token and brings a fresh one
    r = await refresh(http, tokens["refresh_token"])
    assert r.status_code == 200, r.text
    assert (await me(http, r.json()["access_token"])).status_code == 200


async def test_sessions_expire_unless_refreshed(clocked: Clocked) -> None:
    http, clock = clocked.server.http, clocked.clock
    await register(http, "alice")
    idle = await login(http, "alice")
    active = await login(http, "alice")
    day = 86_400
    clock.advance(20 * day)
    active = (await refresh(http, active["refresh_token"])).json()
    clock.advance(20 * day)  # 40 days after login: past the 30-day refresh lifetime
    assert_error(await refresh(http, idle["refresh_token"]), 401, "invalid_token")
    r = await refresh(http, active["refresh_token"])  # extended by its refresh 20 days ago
    assert r.status_code == 200, r.text


# -- the token matrix on GET /users/me ---------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(key: bytes | str, kid: str, **claims: Any) -> str:
    body = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(body, key, algorithm="HS256", headers={"kid": kid})


async def test_token_matrix(clocked: Clocked) -> None:
    http, clock = clocked.server.http, clocked.clock
    await register(http, "alice")
    bob = await register(http, "bob")
    tokens = await login(http, "alice")
    good = tokens["access_token"]
    claims = jwt.decode(good, options={"verify_signature": False})
    kid, key = signing_key(TEST_SECRET)
    header, payload, signature = good.split(".")

    def variant(**changes: Any) -> str:
        return forge(key, kid, **{**claims, **changes})

    # The control: a token forged with the server's key and the right claims IS accepted,
    # so every refusal below is about the one thing that case changes.
    assert (await me(http, variant())).status_code == 200
    now = int(clock.now().timestamp())
    unsigned_header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    tampered_payload = b64(json.dumps({**claims, "sub": bob["id"]}).encode())
    cases: dict[str, dict[str, str]] = {
        "no header": {},
        "bare scheme": {"Authorization": "Bearer"},
        "other scheme": {"Authorization": f"Basic {good}"},
        "garbage": auth("garbage"),
        "three dots": auth("a.b.c"),
        "alg none": auth(jwt.encode(claims, None, algorithm="none", headers={"kid": kid})),
        "alg none by hand": auth(f"{unsigned_header}.{payload}."),
        "raw secret as key": auth(forge(TEST_SECRET, kid, **claims)),
        "other key, same kid": auth(forge(hashlib.sha256(b"another server").digest(), kid, **claims)),
        "another server's token": auth(forge(*reversed(signing_key("another-" + TEST_SECRET)), **claims)),
        "no kid": auth(jwt.encode(claims, key, algorithm="HS256")),
        "wrong iss": auth(variant(iss="evil")),
        "wrong aud": auth(variant(aud="evil")),
        "wrong typ": auth(variant(typ="refresh")),
        "missing sid": auth(variant(sid=None)),
        "missing exp": auth(variant(exp=None)),
        "issued in the future": auth(variant(iat=now + 3600, exp=now + 7200)),
        "refresh token as access": auth(tokens["refresh_token"]),
        "tampered payload": auth(f"{header}.{tampered_payload}.{signature}"),
        "other user, my session": auth(variant(sub=bob["id"])),
        "unknown session": auth(variant(sid="12345")),
    }
    failures = []
    for name, headers in cases.items():
        r = await http.get(f"{API}/users/me", headers=headers)
        body = r.json()
        if r.status_code != 401 or body.get("error", {}).get("code") != "invalid_token":
            failures.append(f"{name}: {r.status_code} {r.text}")
        elif r.headers.get("www-authenticate") != "Bearer":
            failures.append(f"{name}: no WWW-Authenticate: Bearer")
    assert not failures, "\n".join(failures)

    # Revocation takes effect at once, long before the access token's own expiry.
    assert (await me(http, good)).status_code == 200
    r = await http.post(f"{API}/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 204
    assert_error(await me(http, good), 401, "invalid_token")
    assert_error(await me(http, variant()), 401, "invalid_token")


async def test_every_private_route_needs_a_token(server: LiveServer) -> None:
    for method, path in [
        ("GET", "/users/me"),
        ("PATCH", "/users/me"),
        ("GET", "/users/1"),
        ("GET", "/users?q=a"),
        ("GET", "/conversations"),
    ]:
        r = await server.http.request(method, f"{API}{path}", json={} if method == "PATCH" else None)
        assert_error(r, 401, "invalid_token")


# -- profiles ---------------------------------------------------------------------------------


async def test_patch_profile_within_limits(server: LiveServer) -> None:
    await register(server.http, "alice")
    token = (await login(server.http, "alice"))["access_token"]
    changes = {"display_name": "D" * 64, "bio": "line 1\nline\t2 " + "b" * 484, "presence_hidden": True}
    r = await server.http.patch(f"{API}/users/me", json=changes, headers=auth(token))
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in changes} == changes
    assert {k: (await me(server.http, token)).json()[k] for k in changes} == changes

    # A partial patch changes only what it names; null means "leave as is".
    r = await server.http.patch(
        f"{API}/users/me", json={"bio": "", "display_name": None}, headers=auth(token)
    )
    assert r.status_code == 200, r.text
    assert r.json()["bio"] == "" and r.json()["display_name"] == "D" * 64 and r.json()["presence_hidden"]

    for too_much in ({"display_name": "D" * 65}, {"bio": "b" * 501}, {"display_name": " "}):
        r = await server.http.patch(f"{API}/users/me", json=too_much, headers=auth(token))
        assert_error(r, 422, "invalid_request")
        assert r.json()["error"]["fields"][0]["field"] in too_much
    mine = (await me(server.http, token)).json()
    assert mine["display_name"] == "D" * 64 and mine["bio"] == ""


async def test_profiles_are_public_but_private_fields_are_not(server: LiveServer) -> None:
    alice = await register(server.http, "alice", display_name="Alice")
    await register(server.http, "bob")
    token = (await login(server.http, "bob"))["access_token"]
    r = await server.http.get(f"{API}/users/{alice['id']}", headers=auth(token))
    assert r.status_code == 200, r.text
    assert r.json() == alice
    assert "presence_hidden" not in r.json()


async def test_unknown_and_malformed_user_ids_are_not_found(server: LiveServer) -> None:
    await register(server.http, "alice")
    token = (await login(server.http, "alice"))["access_token"]
    malformed = ["abc", "-1", "0", "1.5", "1e3", "%20", "１２３", "9" * 30, "9223372036854775808"]
    for user_id in ["1", "999999999999999999", *malformed]:
        r = await server.http.get(f"{API}/users/{user_id}", headers=auth(token))
        assert r.status_code == 404, (user_id, r.text)
        assert_error(r, 404, "not_found")


# -- search -------------------------------------------------------------------------------------


async def test_search_by_prefix(server: LiveServer) -> None:
    for name in ["Alice", "alibaba", "ALIX_1", "bob", "x_y", "xay", "_under"]:
        await register(server.http, name)
    token = (await login(server.http, "bob"))["access_token"]

    async def search(q: str, limit: int | None = None) -> list[str]:
        params: dict[str, Any] = {"q": q} if limit is None else {"q": q, "limit": limit}
        r = await server.http.get(f"{API}/users", params=params, headers=auth(token))
        assert r.status_code == 200, r.text
        return [u["username"] for u in r.json()["users"]]

    assert await search("ali") == ["alibaba", "Alice", "ALIX_1"]  # ordered case-insensitively
    assert await search("ALI") == await search("ali") == await search("ａｌｉ")
    assert await search("alix_") == ["ALIX_1"]
    assert await search("x_") == ["x_y"]  # "_" is not "any character"
    assert await search("_") == ["_under"]
    assert await search("%") == []  # "%" is not "anything"
    assert await search("x%") == []
    assert await search("\\") == []
    assert await search("") == []
    assert await search("zzz") == []
    assert await search("ali", limit=2) == ["alibaba", "Alice"]
    assert len(await search("a", limit=1)) == 1

    for bad in ({"q": "a", "limit": 0}, {"q": "a", "limit": 51}, {"q": "a", "limit": "x"}, {"q": "a" * 65}):
        r = await server.http.get(f"{API}/users", params=bad, headers=auth(token))
        assert_error(r, 422, "invalid_request")
