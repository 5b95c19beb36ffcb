"""Devices, revocation, password change and signing-key rotation, on SQLite and MariaDB.

A revoked session is dead everywhere at once: its access token (REST), its refresh token and
its live sockets (closed 4001 within 5 s). Someone else's session cannot be named (404, the
same bytes as for an id that does not exist). A password change keeps only the session
that made it. After the secret is rotated, old tokens keep working until they expire, new
ones carry the new ``kid``, and a ``kid`` the server does not know is refused.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt

from gochat.ids import new_id
from gochat.security.tokens import signing_key
from tests.integration.chat_helpers import User, WsClient, users, ws_connect
from tests.security.helpers import (
    API,
    PASSWORD,
    auth,
    auth_frame,
    claims_of,
    forge,
    ws_close_code,
)
from tests.support import TEST_SECRET, LiveServer, live_server, make_settings

SECRET_B = "rotated-secret-" + "Mz4kR8wQ" * 5
CLOSE_WITHIN_S = 5.0


async def device(server: LiveServer, name: str, agent: str, password: str = PASSWORD) -> User:
    r = await server.http.post(
        f"{API}/auth/login", json={"username": name, "password": password}, headers={"User-Agent": agent}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    return User(body["user_id"], name, body["access_token"], body["refresh_token"], body["session_id"])


async def sessions_of(server: LiveServer, user: User) -> list[dict[str, object]]:
    r = await server.http.get(f"{API}/sessions", headers=user.headers)
    assert r.status_code == 200, r.text
    found: list[dict[str, object]] = r.json()["sessions"]
    return found


async def closes_4001_promptly(ws: WsClient) -> None:
    started = time.monotonic()
    assert await ws.close_code(timeout=CLOSE_WITHIN_S) == 4001
    assert time.monotonic() - started < CLOSE_WITHIN_S


async def alive(server: LiveServer, user: User, ws: WsClient | None = None) -> bool:
    r = await server.http.get(f"{API}/users/me", headers=user.headers)
    if ws is not None:
        assert (await ws.request({"type": "ping", "id": "alive"}))["type"] == "pong"
    return r.status_code == 200


async def refresh(server: LiveServer, user: User) -> httpx.Response:
    return await server.http.post(f"{API}/auth/refresh", json={"refresh_token": user.refresh_token})


async def test_sessions_list_my_devices_and_flag_the_current_one(server: LiveServer) -> None:
    await users(server, "alice", "bob")
    phone = await device(server, "alice", "GoChat-Phone/1.0")
    laptop = await device(server, "alice", "GoChat-Laptop/2.0")
    listed = await sessions_of(server, laptop)
    ids = {s["id"] for s in listed}
    assert {phone.session_id, laptop.session_id} <= ids and len(ids) == 3  # + the helper's login
    [current] = [s for s in listed if s["current"]]
    assert current["id"] == laptop.session_id and current["device"] == "GoChat-Laptop/2.0"
    assert next(s for s in listed if s["id"] == phone.session_id)["device"] == "GoChat-Phone/1.0"
    for s in listed:
        assert set(s) == {"id", "device", "created_at", "expires_at", "current"}
    bob = await device(server, "bob", "x")
    assert {s["id"] for s in await sessions_of(server, bob)}.isdisjoint(ids)  # only my own


async def test_revoking_a_device_kills_its_tokens_and_sockets(server: LiveServer) -> None:
    [alice, bob] = await users(server, "alice", "bob")
    phone = await device(server, "alice", "phone")
    async with ws_connect(server, phone) as phone_ws, ws_connect(server, alice) as alice_ws:
        r = await server.http.delete(f"{API}/sessions/{phone.session_id}", headers=alice.headers)
        assert r.status_code == 204, r.text
        await closes_4001_promptly(phone_ws)
        assert await alive(server, alice, alice_ws)
    assert not await alive(server, phone)
    r = await refresh(server, phone)
    assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_token")
    assert await ws_close_code(server, auth_frame(phone.token)) == 4001
    assert phone.session_id not in {s["id"] for s in await sessions_of(server, alice)}
    # Gone means gone: revoking it again, or naming another user's session, is "not found",
    # byte for byte the same answer as for an id that never existed. (An id that cannot exist
    # is "not found" too, in other words: the caller knows it sent a malformed id.)
    answers = {
        name: await server.http.delete(f"{API}/sessions/{sid}", headers=alice.headers)
        for name, sid in {
            "revoked": phone.session_id,
            "someone else's": bob.session_id,
            "random": str(new_id()),
        }.items()
    }
    malformed = await server.http.delete(f"{API}/sessions/not-an-id", headers=alice.headers)
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (404, "not_found")
    seen = {name: (r.status_code, r.content) for name, r in answers.items()}
    assert len(set(seen.values())) == 1, seen
    assert answers["random"].status_code == 404 and answers["random"].json()["error"]["code"] == "not_found"
    assert await alive(server, bob) and (await refresh(server, bob)).status_code == 200


async def test_password_change_keeps_only_the_current_session(server: LiveServer) -> None:
    [alice] = await users(server, "alice")
    laptop = await device(server, "alice", "laptop")
    phone = await device(server, "alice", "phone")
    url = f"{API}/auth/password"
    async with ws_connect(server, laptop) as laptop_ws, ws_connect(server, phone) as phone_ws:
        # Wrong current password, or a new one that breaks the rules: nothing changes at all.
        wrong = {"current_password": "not-my-password", "new_password": "brand-new-password"}
        r = await server.http.post(url, json=wrong, headers=laptop.headers)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_credentials")
        weak = {"current_password": PASSWORD, "new_password": "short"}
        r = await server.http.post(url, json=weak, headers=laptop.headers)
        assert r.status_code == 422, r.text
        for user, ws in ((alice, None), (laptop, laptop_ws), (phone, phone_ws)):
            assert await alive(server, user, ws)
        assert len(await sessions_of(server, laptop)) == 3

        change = {"current_password": PASSWORD, "new_password": "brand-new-password"}
        r = await server.http.post(url, json=change, headers=laptop.headers)
        assert r.status_code == 204, r.text
        await closes_4001_promptly(phone_ws)
        assert await alive(server, laptop, laptop_ws)  # the session that changed it stays
    for other in (alice, phone):
        assert not await alive(server, other)
        assert (await refresh(server, other)).status_code == 401
    assert [s["id"] for s in await sessions_of(server, laptop)] == [laptop.session_id]
    assert (await refresh(server, laptop)).status_code == 200
    old = await server.http.post(f"{API}/auth/login", json={"username": "alice", "password": PASSWORD})
    assert old.status_code == 401
    await device(server, "alice", "new", password="brand-new-password")


async def test_signing_keys_rotate_without_logging_anyone_out(db_url: str, tmp_path: Path) -> None:
    """Two instances on one database: the old one (secret A) and the rotated one (B, then A)."""
    old_settings = make_settings(db_url, tmp_path / "a")
    new_settings = make_settings(
        db_url, tmp_path / "b", secret_key=SECRET_B, previous_secret_keys=[TEST_SECRET]
    )
    only_b = make_settings(db_url, tmp_path / "c", secret_key=SECRET_B)
    kid_a, kid_b = signing_key(TEST_SECRET)[0], signing_key(SECRET_B)[0]
    async with live_server(old_settings) as old:
        [alice] = await users(old, "alice")
        assert jwt.get_unverified_header(alice.token)["kid"] == kid_a
        async with live_server(new_settings) as new, live_server(only_b) as strict:
            # A token signed under A verifies on the rotated server: REST, auth frame, header.
            assert await alive(new, alice)
            async with ws_connect(new, alice) as ws, ws_connect(new, alice, header=True) as ws2:
                assert ws.ready["session_id"] == ws2.ready["session_id"] == alice.session_id
            # The refresh token is opaque: it rotates into a B token on the new server.
            r = await refresh(new, alice)
            assert r.status_code == 200, r.text
            renewed = r.json()["access_token"]
            assert jwt.get_unverified_header(renewed)["kid"] == kid_b
            fresh = await device(new, "alice", "new")
            assert jwt.get_unverified_header(fresh.token)["kid"] == kid_b
            assert await alive(new, User(alice.id, "alice", renewed, "", alice.session_id))
            # A kid nobody knows, or a known kid on a token another key signed: refused.
            claims = claims_of(fresh.token)
            unknown_kid = forge(claims, key=signing_key("x" * 40)[1], kid="0123456789abcdef")
            wrong_key = forge(claims, key=signing_key(TEST_SECRET)[1], kid=kid_b)
            for token in (unknown_kid, wrong_key):
                r = await new.http.get(f"{API}/users/me", headers=auth(token))
                assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_token")
                assert await ws_close_code(new, auth_frame(token)) == 4001
                assert await ws_close_code(new, headers=auth(token)) == 4001
            # Once A is dropped from the previous keys, its tokens die; B's live on.
            r = await strict.http.get(f"{API}/users/me", headers=alice.headers)
            assert r.status_code == 401
            assert await ws_close_code(strict, auth_frame(alice.token)) == 4001
            assert await alive(strict, fresh)
            # And the old instance never learns B.
            assert not await alive(old, fresh)
