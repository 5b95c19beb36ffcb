"""The /ws gateway through a real uvicorn server: auth, origin, framing, errors, typing, delivery.

Every test runs on SQLite and on MariaDB (``db_url``). Presence frames (a contact's first
device connecting) arrive asynchronously to the actions under test, so the "exactly these
frames" checks ignore the ``presence`` type and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gochat.clock import FakeClock
from tests.integration.chat_helpers import (
    WAIT,
    Json,
    WsClient,
    create_direct,
    create_group,
    get_conversation,
    history,
    login,
    send_frame,
    send_rest,
    users,
    ws_connect,
)
from tests.support import LiveServer, live_server, make_settings

APP_ORIGIN = "https://app.example"


@pytest.fixture
async def strict_server(db_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    """A short auth timeout and an Origin allowlist."""
    settings = make_settings(db_url, tmp_path, ws_auth_timeout_s=0.5, allowed_origins=[APP_ORIGIN])
    async with live_server(settings) as live:
        yield live


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))


@pytest.fixture
async def clocked_server(db_url: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[LiveServer]:
    async with live_server(make_settings(db_url, tmp_path), clock=clock) as live:
        yield live


def visible(objects: list[Json]) -> list[Json]:
    """What the test is about: everything but presence notices."""
    return [o for o in objects if o.get("type") != "presence"]


async def refused(server: LiveServer, first: str | bytes | None = None, **kwargs: object) -> int | None:
    """Open /ws, optionally send one frame, and return the close code the server sent."""
    async with connect(server.ws_url, open_timeout=WAIT, close_timeout=2, **kwargs) as ws:
        client = WsClient(ws)
        if first is not None:
            with contextlib.suppress(ConnectionClosed):  # the server may close before it reads
                await client.send_raw(first)
        return await client.close_code()


def auth_frame(token: str) -> str:
    return orjson.dumps({"type": "auth", "token": token}).decode()


# --- connection and auth ---------------------------------------------------------------------


async def test_auth_frame_then_ready(server: LiveServer) -> None:
    [alice] = await users(server, "alice")
    async with ws_connect(server, alice) as ws:
        assert ws.ready == {
            "type": "ready",
            "user_id": alice.id,
            "session_id": alice.session_id,
            "heartbeat_s": 20.0,
        }
        assert await ws.request({"type": "ping", "id": "p"}) == {"type": "pong", "id": "p"}


async def test_bearer_header_on_upgrade_then_ready(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    group = await create_group(server, alice, "g", bob)
    async with ws_connect(server, alice, header=True) as ws:
        assert ws.ready["session_id"] == alice.session_id
        frame = send_frame(1, group["id"], "c", "x")
        reply = await ws.request(frame)
        assert reply["type"] == "ack" and reply["message"]["sender_id"] == alice.id
    garbage = {"additional_headers": {"Authorization": "Bearer not-a-token"}}
    assert await refused(server, **garbage) == 4001


async def test_no_auth_within_the_timeout_closes_1008(strict_server: LiveServer) -> None:
    started = time.monotonic()
    assert await refused(strict_server) == 1008
    assert 0.4 <= time.monotonic() - started < 5


NOT_AUTH: list[str | bytes] = [
    '{"type":"ping","id":"1"}',
    '{"type":"message.send","id":"1"}',
    "not json",
    '{"type":"auth","token":12}',
    b'{"type":"auth","token":"x"}',  # binary
]


async def test_first_frame_must_be_auth(strict_server: LiveServer) -> None:
    for first in NOT_AUTH:
        assert await refused(strict_server, first) == 1008, first


async def test_bad_expired_or_revoked_token_closes_4001(clocked_server: LiveServer, clock: FakeClock) -> None:
    server = clocked_server
    alice, bob = await users(server, "alice", "bob")
    assert await refused(server, auth_frame("garbage")) == 4001
    assert await refused(server, auth_frame(alice.token[:-4] + "AAAA")) == 4001  # bad signature
    async with ws_connect(server, alice) as live, ws_connect(server, bob) as other:
        r = await server.http.post("/api/v1/auth/logout", json={"refresh_token": alice.refresh_token})
        assert r.status_code == 204
        assert await live.close_code() == 4001  # logout closes the session's live sockets
        assert await other.request({"type": "ping", "id": 1}) == {"type": "pong", "id": 1}
    assert await refused(server, auth_frame(alice.token)) == 4001  # revoked session
    clock.advance(901)  # past the 900 s access token lifetime
    assert await refused(server, auth_frame(bob.token)) == 4001
    assert await refused(server, additional_headers={"Authorization": f"Bearer {bob.token}"}) == 4001
    fresh = await login(server, "bob")
    async with ws_connect(server, fresh):
        pass


async def test_origin_policy(strict_server: LiveServer) -> None:
    server = strict_server
    [alice] = await users(server, "alice")
    for bad in ("https://evil.example", "null", "http://127.0.0.1:1"):
        assert await refused(server, auth_frame(alice.token), origin=bad) == 1008, bad
    own = server.base_url  # same origin as the Host the client connects to
    for origin in (APP_ORIGIN, own, None):
        async with ws_connect(server, alice, origin=origin) as ws:
            assert (await ws.request({"type": "ping", "id": "o"}))["type"] == "pong"


# --- requests and replies --------------------------------------------------------------------


async def test_every_request_gets_exactly_one_reply_with_its_id(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    fresh = await server.http.post("/api/v1/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert fresh.status_code == 200
    requests: list[Json] = [
        send_frame("send", conv, "m1", "a"),
        send_frame(2**53, conv, "m2", "b"),
        {"type": "read", "id": "read", "conversation_id": conv, "seq": 1},
        {"type": "typing", "id": -5, "conversation_id": conv},
        {"type": "sync", "id": "sync", "cursors": {}},
        {"type": "ping", "id": 0},
        {"type": "auth", "id": "auth", "token": fresh.json()["access_token"]},
        {"type": "message.edit", "id": "edit", "conversation_id": conv, "seq": 1, "body": "a2"},
        {"type": "reaction.add", "id": "r+", "conversation_id": conv, "seq": 2, "emoji": "👍"},
        {"type": "reaction.remove", "id": "r-", "conversation_id": conv, "seq": 2, "emoji": "👍"},
        {"type": "message.delete", "id": "del", "conversation_id": conv, "seq": 2},
        send_frame("x" * 64, "1", "m3", "c"),
    ]
    async with ws_connect(server, alice) as ws:
        for request in requests:  # pipelined: all sent before any reply is read
            await ws.send(request)
        replies = {}
        for request in requests:
            reply = await ws.reply_to(request["id"])
            replies[request["id"]] = reply
        leftovers = [o for o in await ws.drain() if "id" in o]
    assert leftovers == []  # no request was answered twice
    assert replies["send"]["type"] == "ack" and replies["send"]["message"]["seq"] == 1
    assert replies[2**53]["message"]["seq"] == 2 and replies[2**53]["message"]["client_msg_id"] == "m2"
    assert replies["read"] == {"type": "ack", "id": "read", "read_seq": 1}
    assert replies[-5] == {"type": "ack", "id": -5}
    assert replies["sync"] == {"type": "ack", "id": "sync", "resync": []}
    assert replies[0] == {"type": "pong", "id": 0}
    assert replies["auth"]["type"] == "ack" and replies["auth"]["expires_at"] > time.time()
    assert replies["edit"]["type"] == "ack" and replies["edit"]["message"]["body"] == "a2"
    assert replies["r+"]["type"] == "ack" and replies["r+"]["reactions"][0]["emoji"] == "👍"
    assert replies["r-"] == {"type": "ack", "id": "r-", "seq": 2, "reactions": []}
    assert replies["del"]["type"] == "ack" and replies["del"]["message"]["deleted"] is True
    assert replies["x" * 64]["type"] == "error" and replies["x" * 64]["code"] == "not_found"


MALFORMED: list[tuple[str | bytes, str, object]] = [
    ("not json", "invalid_json", None),
    ("[1, 2]", "invalid_json", None),
    ('{"type": "ping", "id": "a"', "invalid_json", None),
    (b'{"type": "ping", "id": "bin"}', "invalid_json", None),
    ('{"type": "nope", "id": "u1"}', "unknown_type", "u1"),
    ('{"id": "u2"}', "unknown_type", "u2"),
    ('{"type": 5, "id": 3}', "unknown_type", 3),
    ('{"type": "ping"}', "invalid_request", None),
    ('{"type": "ping", "id": true}', "invalid_request", None),
    ('{"type": "ping", "id": ""}', "invalid_request", None),
    ('{"type": "message.send", "id": "m1", "conversation_id": "CONV", "body": "x"}', "invalid_request", "m1"),
    (
        '{"type": "message.send", "id": "m2", "conversation_id": "CONV", "client_msg_id": "c", "body": 5}',
        "invalid_request",
        "m2",
    ),
    (
        '{"type": "message.send", "id": "m3", "conversation_id": 1, "client_msg_id": "c", "body": "x"}',
        "invalid_request",
        "m3",
    ),
    (
        '{"type": "message.send", "id": "m4", "conversation_id": "abc", "client_msg_id": "c", "body": "x"}',
        "not_found",
        "m4",
    ),
    (
        '{"type": "message.send", "id": "m5", "conversation_id": "CONV", "client_msg_id": "c"}',
        "invalid_request",
        "m5",
    ),
    ('{"type": "read", "id": "r1", "conversation_id": "CONV", "seq": "1"}', "invalid_request", "r1"),
    ('{"type": "read", "id": "r2", "conversation_id": "CONV", "seq": 1.0}', "invalid_request", "r2"),
    ('{"type": "read", "id": "r3", "conversation_id": "CONV", "seq": 0}', "invalid_request", "r3"),
    ('{"type": "sync", "id": "s1", "cursors": [1]}', "invalid_request", "s1"),
    ('{"type": "sync", "id": "s2", "cursors": {"CONV": -1}}', "invalid_request", "s2"),
    ('{"type": "sync", "id": "s3", "cursors": {"x": 1}}', "not_found", "s3"),
    (
        '{"type": "message.send", "id": "m6", "conversation_id": "CONV", "client_msg_id": "c", "media_ids": '
        + orjson.dumps([str(i) for i in range(1, 12)]).decode()
        + "}",
        "too_large",
        "m6",
    ),
]


async def test_malformed_frames_get_an_error_and_the_socket_keeps_serving(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    async with ws_connect(server, alice) as ws:
        for raw, code, request_id in MALFORMED:
            await ws.send_raw(raw.replace("CONV", conv) if isinstance(raw, str) else raw)
            error = await ws.next()
            assert error["type"] == "error", raw
            assert (error["code"], error["id"]) == (code, request_id), raw
            assert isinstance(error["message"], str) and error["message"]
        send = send_frame("ok", conv, "c", "x")
        assert (await ws.request(send))["message"]["seq"] == 1
    assert [m["body"] for m in await history(server, alice, conv)] == ["x"]


async def test_oversized_frame_closes_1009_and_other_clients_keep_working(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    async with ws_connect(server, alice) as big, ws_connect(server, bob) as other:
        body = "x" * 70_000  # > ws_max_frame_bytes (65,536)
        frame = send_frame("big", conv, "c", body)
        await big.send(frame)
        assert await big.close_code() == 1009
        send = send_frame("s", conv, "c", "hi")
        reply = await other.request(send)
        assert reply["type"] == "ack" and reply["message"]["seq"] == 1
    assert [m["body"] for m in await history(server, bob, conv)] == ["hi"]


async def test_message_body_limit_is_4000_characters(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    before = await get_conversation(server, alice, conv)
    async with ws_connect(server, alice) as ws:
        for body in ("é" * 4001, " \n\t "):
            frame = send_frame("x", conv, "c", body)
            error = await ws.request(frame)
            assert (error["type"], error["code"]) == ("error", "invalid_request")
        after = await get_conversation(server, alice, conv)
        assert (after["last_seq"], after["last_pos"]) == (0, before["last_pos"])
        assert await history(server, alice, conv) == []
        frame = send_frame("y", conv, "c", "é" * 4000)
        reply = await ws.request(frame)
        assert reply["type"] == "ack" and reply["message"]["body"] == "é" * 4000


# --- typing ---------------------------------------------------------------------------------


async def test_typing_reaches_other_members_only(server: LiveServer) -> None:
    alice, bob, carol = await users(server, "alice", "bob", "carol")
    conv = (await create_group(server, alice, "g", bob))["id"]
    await create_group(server, carol, "carol's", alice)  # carol shares another conversation with alice
    async with ws_connect(server, alice) as a, ws_connect(server, bob) as b, ws_connect(server, carol) as c:
        for ws in (a, b, c):
            await ws.drain()
        await a.send({"type": "typing", "conversation_id": conv})
        assert await a.request({"type": "typing", "id": "t", "conversation_id": conv}) == {
            "type": "ack",
            "id": "t",
        }
        got = visible(await b.drain())
        assert got == [{"type": "typing", "conversation_id": conv, "user_id": alice.id, "expires_in_s": 5}]
        assert visible(await a.drain()) == []
        assert visible(await c.drain()) == []


async def test_typing_where_you_are_not_a_member_is_not_found(server: LiveServer) -> None:
    alice, bob, mallory = await users(server, "alice", "bob", "mallory")
    conv = (await create_group(server, alice, "g", bob))["id"]
    async with ws_connect(server, bob) as b, ws_connect(server, mallory) as m:
        await b.drain()
        outsider = await m.request({"type": "typing", "id": "t1", "conversation_id": conv})
        nowhere = await m.request({"type": "typing", "id": "t2", "conversation_id": "123456789"})
        assert outsider == {"type": "error", "id": "t1", "code": "not_found", "message": outsider["message"]}
        # the same answer as for a conversation that does not exist: no existence oracle
        assert (nowhere["code"], nowhere["message"]) == (outsider["code"], outsider["message"])
        await m.send({"type": "typing", "conversation_id": conv})  # no id: still an error, id null
        assert (await m.next())["id"] is None
        assert visible(await b.drain()) == []


# --- re-auth and expiry ------------------------------------------------------------------------


async def test_reauth_extends_the_socket_and_expiry_closes_4001(
    clocked_server: LiveServer, clock: FakeClock
) -> None:
    server = clocked_server
    alice, bob = await users(server, "alice", "bob")  # access tokens valid for 900 s
    clock.advance(896)  # the sockets below get 4 s before their tokens expire
    async with ws_connect(server, alice) as stale, ws_connect(server, bob) as extended:
        r = await server.http.post("/api/v1/auth/refresh", json={"refresh_token": bob.refresh_token})
        fresh_token = r.json()["access_token"]
        ack = await extended.request({"type": "auth", "id": "a", "token": fresh_token})
        assert ack["type"] == "ack" and ack["expires_at"] == int(clock.now().timestamp()) + 900
        # refused re-auths leave the socket and its new deadline alone
        other = await login(server, "bob")  # another session of the same user
        wrong = await extended.request({"type": "auth", "id": "w", "token": other.token})
        assert (wrong["type"], wrong["code"]) == ("error", "invalid_token")
        bad = await extended.request({"type": "auth", "id": "b", "token": "garbage"})
        assert (bad["type"], bad["code"]) == ("error", "invalid_token")
        started = time.monotonic()
        assert await stale.close_code(timeout=8) == 4001
        assert time.monotonic() - started > 1  # at the token's expiry, not at once
        assert await extended.request({"type": "ping", "id": 1}) == {"type": "pong", "id": 1}


# --- delivery --------------------------------------------------------------------------------


def created(objects: list[Json]) -> list[tuple[str, int]]:
    return [(o["message"]["body"], o["message"]["seq"]) for o in objects if o["type"] == "message.created"]


async def test_message_created_reaches_every_socket_of_every_member(server: LiveServer) -> None:
    alice, bob, carol = await users(server, "alice", "bob", "carol")
    alice2, bob2 = await login(server, "alice"), await login(server, "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    async with (
        ws_connect(server, alice) as a1,
        ws_connect(server, alice2) as a2,
        ws_connect(server, bob) as b1,
        ws_connect(server, bob2) as b2,
        ws_connect(server, carol) as c1,
    ):
        sockets = (a1, a2, b1, b2, c1)
        for ws in sockets:
            await ws.drain()
        frame = send_frame("s", conv, "c1", "one")
        ack = await a1.request(frame)
        assert ack["message"]["seq"] == 1
        # acked after the commit: another connection reads it at once
        assert [m["body"] for m in await history(server, bob, conv)] == ["one"]
        await send_rest(server, bob, conv, "c2", "two")
        got = [visible(await ws.drain()) for ws in sockets]
        for member_socket in got[:4]:  # the sender's own socket too
            assert created(member_socket) == [("one", 1), ("two", 2)]
            assert [o["pos"] for o in member_socket] == [ack["message"]["pos"], ack["message"]["pos"] + 1]
        assert got[4] == []  # carol is not a member

        r = await server.http.delete(f"/api/v1/conversations/{conv}/members/{bob.id}", headers=alice.headers)
        assert r.status_code == 204
        await send_rest(server, alice, conv, "c3", "three")
        for ws in (b1, b2):
            left = visible(await ws.drain())
            assert [(o["type"], o["user_id"]) for o in left] == [("member.left", bob.id)]
        for ws in (a1, a2):
            seen = visible(await ws.drain())
            assert [o["type"] for o in seen] == ["member.left", "message.created"]
        after = send_frame("late", conv, "c4", "x")
        assert (await b1.request(after))["code"] == "not_found"

        # a conversation created while connected is followed at once
        r = await create_direct(server, carol, alice)
        assert r.status_code == 201
        direct = r.json()["id"]
        await send_rest(server, carol, direct, "d1", "hello")
        for ws in (a1, a2):
            seen = visible(await ws.drain())
            assert [o["type"] for o in seen] == ["conversation.created", "message.created"]
            assert seen[0]["conversation"]["id"] == direct
        assert visible(await b1.drain()) == []


async def test_sync_reply_frames_are_coalesced_and_clients_must_split(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    for i in range(3):
        await send_rest(server, bob, conv, f"c{i}", f"m{i}")
    async with ws_connect(server, alice) as ws:
        await ws.drain()
        ws.frames.clear()
        await ws.send({"type": "sync", "id": "s", "cursors": {}})
        await ws.reply_to("s")
        objects = [ws.inbox.popleft() for _ in range(len(ws.inbox))]
        assert [o["type"] for o in objects if o["type"] != "notification"][-3:] == ["message.created"] * 3
        # the ack and the replay were queued in one tick: one frame, objects split by "\n"
        first = [json.loads(line)["type"] for line in ws.frames[0].split("\n")]
        assert first[0] == "ack" and first.count("message.created") == 3


async def test_server_shutdown_closes_sockets_with_1001(db_url: str, tmp_path: Path) -> None:
    async with live_server(make_settings(db_url, tmp_path)) as server:
        [alice] = await users(server, "alice")
        async with ws_connect(server, alice) as ws:
            stop = asyncio.create_task(server.stop())
            assert await ws.close_code() == 1001
            await asyncio.wait_for(stop, WAIT * 3)
