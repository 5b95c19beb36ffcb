"""Messages over REST (and WebSocket where it matters): idempotent send, history, read, gapless seq."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from tests.integration.chat_helpers import (
    Json,
    User,
    WsClient,
    create_group,
    get_conversation,
    history,
    login,
    post_message,
    send_frame,
    send_rest,
    users,
    ws_connect,
)
from tests.support import LiveServer, live_server, make_settings

API = "/api/v1/conversations"
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def error_code(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


async def read(server: LiveServer, user: User, conv: str, seq: int) -> httpx.Response:
    return await server.http.post(f"{API}/{conv}/read", json={"seq": seq}, headers=user.headers)


async def messages_page(server: LiveServer, user: User, conv: str, **params: int) -> httpx.Response:
    return await server.http.get(f"{API}/{conv}/messages", params=params, headers=user.headers)


# --- send ------------------------------------------------------------------------------------


async def test_send_then_retry_returns_the_same_message(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    r = await post_message(server, alice, conv, {"client_msg_id": "k1", "body": "hello"})
    assert r.status_code == 201, r.text
    message = r.json()
    assert message["conversation_id"] == conv and message["sender_id"] == alice.id
    assert (message["seq"], message["body"], message["client_msg_id"], message["reply_to_seq"]) == (
        1,
        "hello",
        "k1",
        None,
    )
    assert (message["deleted"], message["edited_at"], message["media"]) == (False, None, [])
    assert isinstance(message["id"], str) and message["id"].isdigit()
    assert RFC3339_MS.match(message["created_at"])
    for retry_body in ("hello", "a different body"):  # the key decides, not the content
        again = await post_message(server, alice, conv, {"client_msg_id": "k1", "body": retry_body})
        assert (again.status_code, again.json()) == (200, message)
    # the key is per sender: bob may use the same one
    bobs = await post_message(server, bob, conv, {"client_msg_id": "k1", "body": "mine"})
    assert (bobs.status_code, bobs.json()["seq"]) == (201, 2)
    assert [(m["seq"], m["body"]) for m in await history(server, alice, conv)] == [(1, "hello"), (2, "mine")]


async def test_retry_over_websocket_acks_the_first_message(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    async with ws_connect(server, alice) as ws:
        frame = {"type": "message.send", "id": 1, "conversation_id": conv, "client_msg_id": "k", "body": "a"}
        first = await ws.request(frame)
        second = await ws.request({**frame, "id": 2, "body": "b"})
        assert first["message"] == second["message"]
        created = [o for o in await ws.drain() if o["type"] == "message.created"]
        assert len(created) == 1  # a retry publishes nothing
    rest = await post_message(server, alice, conv, {"client_msg_id": "k", "body": "c"})
    assert (rest.status_code, rest.json()["id"]) == (200, first["message"]["id"])


async def test_same_client_msg_id_in_another_conversation_is_a_conflict(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    one = (await create_group(server, alice, "one", bob))["id"]
    two = (await create_group(server, alice, "two", bob))["id"]
    await send_rest(server, alice, one, "k", "first")
    r = await post_message(server, alice, two, {"client_msg_id": "k", "body": "second"})
    assert error_code(r) == (409, "conflict")
    assert await history(server, alice, two) == []
    async with ws_connect(server, alice) as ws:
        frame = {"type": "message.send", "id": "x", "conversation_id": two, "client_msg_id": "k", "body": "w"}
        error = await ws.request(frame)
        assert (error["type"], error["code"]) == ("error", "conflict")


async def test_send_validation_writes_nothing(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    await send_rest(server, alice, conv, "first", "one")
    before = await get_conversation(server, alice, conv)
    cases: list[tuple[Json, tuple[int, str]]] = [
        ({"client_msg_id": "a", "body": "x", "reply_to_seq": 2}, (422, "invalid_request")),  # beyond the last
        ({"client_msg_id": "b", "body": "x", "reply_to_seq": 0}, (422, "invalid_request")),
        ({"client_msg_id": "c", "body": "x" * 4001}, (422, "invalid_request")),
        ({"client_msg_id": "d", "body": "   "}, (422, "invalid_request")),
        ({"client_msg_id": "e", "body": "bidi \u202e override"}, (422, "invalid_request")),
        ({"client_msg_id": "f"}, (422, "invalid_request")),
        ({"body": "no key"}, (422, "invalid_request")),
        ({"client_msg_id": "", "body": "x"}, (422, "invalid_request")),
        ({"client_msg_id": "k" * 65, "body": "x"}, (422, "invalid_request")),
    ]
    for body, expected in cases:
        r = await post_message(server, alice, conv, body)
        assert error_code(r) == expected, (body, r.text)
    after = await get_conversation(server, alice, conv)
    assert (after["last_seq"], after["last_pos"]) == (before["last_seq"], before["last_pos"])
    assert [m["seq"] for m in await history(server, alice, conv)] == [1]
    reply = await post_message(server, alice, conv, {"client_msg_id": "g", "body": "re", "reply_to_seq": 1})
    assert (reply.status_code, reply.json()["reply_to_seq"]) == (201, 1)


async def test_one_key_sent_to_two_conversations_at_once_is_a_conflict(server: LiveServer) -> None:
    """Concurrent sends may share one transaction (group commit); the key rules still hold."""
    alice, bob = await users(server, "alice", "bob")
    devices = [alice, await login(server, "alice"), await login(server, "alice")]
    one = (await create_group(server, alice, "one", bob))["id"]
    two = (await create_group(server, alice, "two", bob))["id"]
    async with AsyncExitStack() as stack:
        busy, w1, w2 = [await stack.enter_async_context(ws_connect(server, d)) for d in devices]
        for trial in range(5):
            # one send keeps the committer busy while the two twins queue behind it
            await busy.send(send_frame(f"busy{trial}", one, f"busy{trial}", "x"))
            await w1.send(send_frame("t1", one, f"k{trial}", "to one"))
            await w2.send(send_frame("t2", two, f"k{trial}", "to two"))
            replies = {two: await w2.reply_to("t2"), one: await w1.reply_to("t1")}
            assert (await busy.reply_to(f"busy{trial}"))["type"] == "ack"
            acked = {conv: r["message"] for conv, r in replies.items() if r["type"] == "ack"}
            refused = [r["code"] for r in replies.values() if r["type"] == "error"]
            assert (len(acked), refused) == (1, ["conflict"]), replies
            [(conv, message)] = acked.items()
            assert message["conversation_id"] == conv  # never a message of the other conversation
    keys_one = {m["client_msg_id"] for m in await history(server, alice, one, limit=200)}
    keys_two = {m["client_msg_id"] for m in await history(server, alice, two, limit=200)}
    assert not keys_one & keys_two
    assert {f"k{t}" for t in range(5)} == (keys_one | keys_two) - {f"busy{t}" for t in range(5)}


# --- history ---------------------------------------------------------------------------------


async def test_history_pages_in_ascending_order(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    for i in range(1, 13):
        await send_rest(server, alice if i % 3 else bob, conv, f"c{i}", f"m{i}")

    async def seqs(**params: int) -> list[int]:
        return [m["seq"] for m in await history(server, bob, conv, **params)]

    assert await seqs() == list(range(1, 13))
    assert await seqs(after_seq=5, limit=3) == [6, 7, 8]
    assert await seqs(after_seq=0, limit=1) == [1]
    assert await seqs(before_seq=5, limit=3) == [2, 3, 4]  # the latest before 5, still ascending
    assert await seqs(before_seq=3) == [1, 2]
    assert await seqs(before_seq=1) == []
    assert await seqs(after_seq=12) == []
    assert await seqs(limit=200) == list(range(1, 13))
    # walking backwards from the end in pages of 5 sees every message once
    walked: list[int] = []
    cursor = 13
    while page := await seqs(before_seq=cursor, limit=5):
        walked = page + walked
        cursor = page[0]
    assert walked == list(range(1, 13))
    for params in ({"after_seq": 1, "before_seq": 5}, {"limit": 0}, {"limit": 201}, {"after_seq": -1}):
        r = await messages_page(server, bob, conv, **params)
        assert error_code(r) == (422, "invalid_request"), params


@pytest.fixture
async def small_page_server(db_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(make_settings(db_url, tmp_path, history_page_max=5)) as live:
        yield live


async def test_history_page_size_is_capped_by_the_server(small_page_server: LiveServer) -> None:
    server = small_page_server
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    for i in range(1, 8):
        await send_rest(server, alice, conv, f"c{i}", f"m{i}")
    assert [m["seq"] for m in await history(server, bob, conv, limit=200)] == [1, 2, 3, 4, 5]
    assert [m["seq"] for m in await history(server, bob, conv, before_seq=8, limit=200)] == [3, 4, 5, 6, 7]


# --- read positions --------------------------------------------------------------------------


async def test_read_position_moves_forward_only_and_unread_is_exact(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    for i in range(5):
        await send_rest(server, bob, conv, f"b{i}", f"m{i}")
    await send_rest(server, alice, conv, "a0", "mine")  # seq 6: alice's own never counts

    async def state(user: User) -> tuple[int, int]:
        c = await get_conversation(server, user, conv)
        return c["read_seq"], c["unread_count"]

    assert await state(alice) == (0, 5)
    assert (await read(server, alice, conv, 3)).status_code == 204
    assert await state(alice) == (3, 2)
    before = (await get_conversation(server, alice, conv))["last_pos"]
    assert (await read(server, alice, conv, 2)).status_code == 204  # never backwards, and no event
    assert (await read(server, alice, conv, 3)).status_code == 204
    assert await state(alice) == (3, 2)
    assert (await get_conversation(server, alice, conv))["last_pos"] == before
    assert error_code(await read(server, alice, conv, 7)) == (422, "invalid_request")  # beyond the last
    assert error_code(await read(server, alice, conv, -1)) == (422, "invalid_request")
    assert await state(alice) == (3, 2)
    assert (await read(server, alice, conv, 6)).status_code == 204
    assert await state(alice) == (6, 0)
    await send_rest(server, bob, conv, "b5", "new")
    assert await state(alice) == (6, 1)
    assert await state(bob) == (0, 1)


async def test_read_receipts_reach_other_members_and_own_devices(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    alice2 = await login(server, "alice")
    conv = (await create_group(server, alice, "g", bob))["id"]
    await send_rest(server, bob, conv, "b", "hi")
    await send_rest(server, bob, conv, "b2", "there")
    async with (
        ws_connect(server, alice) as a1,
        ws_connect(server, alice2) as a2,
        ws_connect(server, bob) as b,
    ):
        for ws in (a1, a2, b):
            await ws.drain()
        ack = await a1.request({"type": "read", "id": "r", "conversation_id": conv, "seq": 2})
        assert ack == {"type": "ack", "id": "r", "read_seq": 2}
        again = await a1.request({"type": "read", "id": "r2", "conversation_id": conv, "seq": 1})
        assert again == {"type": "ack", "id": "r2", "read_seq": 2}  # the position in force
        pos = (await get_conversation(server, alice, conv))["last_pos"]
        own = {"conversation_id": conv, "pos": pos, "user_id": alice.id, "seq": 2}
        for ws in (a1, a2):
            got = [o for o in await ws.drain() if o["type"] != "presence"]
            assert got == [{"type": "conversation.read", **own}]
        got = [o for o in await b.drain() if o["type"] != "presence"]
        assert got == [{"type": "receipt.read", **own}]
        beyond = await a1.request({"type": "read", "id": "r3", "conversation_id": conv, "seq": 3})
        assert (beyond["type"], beyond["code"]) == ("error", "invalid_request")


# --- gapless seq under concurrency -----------------------------------------------------------


async def ws_burst(ws: WsClient, conv: str, tag: str, count: int) -> list[int]:
    """Pipeline ``count`` sends on one socket; the seqs of their acks."""
    frames = [
        {
            "type": "message.send",
            "id": f"{tag}-{i}",
            "conversation_id": conv,
            "client_msg_id": f"{tag}-{i}",
            "body": f"{tag} {i}",
        }
        for i in range(count)
    ]
    for frame in frames:
        await ws.send(frame)
    acks = [await ws.reply_to(frame["id"]) for frame in frames]
    assert all(a["type"] == "ack" for a in acks), acks
    return [a["message"]["seq"] for a in acks]


async def test_fifty_concurrent_sends_get_seqs_1_to_50(server: LiveServer) -> None:
    alice, bob, carol = await users(server, "alice", "bob", "carol")
    conv = (await create_group(server, alice, "g", bob, carol))["id"]
    async with AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(ws_connect(server, u)) for u in (alice, alice, bob, bob)]
        observer = await stack.enter_async_context(ws_connect(server, carol))
        for ws in [*sockets, observer]:
            await ws.drain()
        bursts = [ws_burst(ws, conv, f"ws{n}", 8) for n, ws in enumerate(sockets)]  # 32 over WebSocket
        posts = [send_rest(server, (carol, bob)[i % 2], conv, f"rest-{i}", f"rest {i}") for i in range(18)]
        results = await asyncio.gather(*bursts, *posts)
        seqs = [s for r in results[: len(bursts)] for s in r] + [m["seq"] for m in results[len(bursts) :]]
        assert sorted(seqs) == list(range(1, 51))
        for burst in results[: len(bursts)]:  # one socket's requests are served in order
            assert burst == sorted(burst)
        # every member socket is told about all 50, once each
        await asyncio.sleep(0)
        live = [o["message"]["seq"] for o in await observer.drain() if o["type"] == "message.created"]
        assert sorted(live) == list(range(1, 51))
    stored = await history(server, alice, conv, limit=200)
    assert [m["seq"] for m in stored] == list(range(1, 51))
    assert len({m["client_msg_id"] for m in stored}) == 50
    assert [m["pos"] for m in stored] == sorted(m["pos"] for m in stored)
    assert (await get_conversation(server, alice, conv))["last_seq"] == 50
