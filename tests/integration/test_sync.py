"""Reconnect and ``sync``: every missed change exactly once, in pos order, or resync_required.

A device keeps, per conversation, the ``pos`` of the last event it applied. These tests let a
device go away, change things behind its back over REST, reconnect and sync, and check the
replay frame by frame. The reply to ``sync`` is its ack, the replay, then one ``notification``
(badges); ``presence`` notices from other devices connecting are not part of it and ignored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.integration.chat_helpers import (
    Json,
    WsClient,
    create_direct,
    create_group,
    get_conversation,
    login,
    send_rest,
    users,
    ws_connect,
)
from tests.support import LiveServer, live_server, make_settings

API = "/api/v1/conversations"


async def sync(ws: WsClient, cursors: dict[str, int]) -> tuple[Json, list[Json], Json]:
    """(ack, replayed objects, notification) for one sync request."""
    ack = await ws.request({"type": "sync", "id": "sync", "cursors": cursors})
    assert ack["type"] == "ack", ack
    replay: list[Json] = []
    while True:
        obj = await ws.next()
        if obj["type"] == "notification":
            return ack, replay, obj
        if obj["type"] != "presence":
            replay.append(obj)


async def quiet(ws: WsClient) -> list[Json]:
    """Anything else this socket has been sent (presence aside): should be nothing."""
    return [o for o in await ws.drain() if o["type"] != "presence"]


def summary(objects: list[Json]) -> list[tuple[object, ...]]:
    """(type, the detail that identifies it) per replayed object."""
    out: list[tuple[object, ...]] = []
    for o in objects:
        kind = o["type"]
        if kind in ("message.created", "message.updated", "message.deleted"):
            out.append((kind, o["message"]["seq"], o["message"]["body"]))
        elif kind == "reaction.changed":
            out.append((kind, o["seq"], tuple(r["emoji"] for r in o["reactions"])))
        elif kind in ("member.joined", "member.left", "receipt.read", "conversation.read"):
            out.append((kind, o["user_id"]))
        elif kind == "conversation.updated":
            out.append((kind, o["title"]))
        elif kind == "conversation.created":
            out.append((kind, o["conversation"]["id"]))
        else:
            out.append((kind,))
    return out


async def live_cursor(ws: WsClient, conv: str) -> int:
    """The cursor a client keeps: the pos of the last event it received for the conversation."""
    positions = [o["pos"] for o in await ws.drain() if o.get("conversation_id") == conv and "pos" in o]
    assert positions, "no live event carried a pos"
    return max(positions)


async def test_reconnect_replays_exactly_the_missed_changes_once(server: LiveServer) -> None:
    alice, bob, carol, dave = await users(server, "alice", "bob", "carol", "dave")
    alice_phone = await login(server, "alice")
    conv = (await create_group(server, alice, "team", bob, carol))["id"]
    r = await server.http.patch(
        f"{API}/{conv}/members/{bob.id}", json={"role": "admin"}, headers=alice.headers
    )
    assert r.status_code == 204
    async with ws_connect(server, alice) as ws:
        await ws.drain()
        await send_rest(server, bob, conv, "before", "before")  # seq 1, seen live
        cursor = await live_cursor(ws, conv)
    # --- alice is away --------------------------------------------------------------------
    await send_rest(server, bob, conv, "m1", "m1")  # seq 2
    await send_rest(server, carol, conv, "m2", "m2")  # seq 3
    h = bob.headers
    assert (await server.http.patch(f"{API}/{conv}", json={"title": "renamed"}, headers=h)).status_code == 200
    r = await server.http.post(f"{API}/{conv}/members", json={"user_ids": [dave.id]}, headers=h)
    assert r.status_code == 200
    assert (
        await server.http.post(f"{API}/{conv}/read", json={"seq": 3}, headers=carol.headers)
    ).status_code == 204
    assert (
        await server.http.delete(f"{API}/{conv}/members/{carol.id}", headers=carol.headers)
    ).status_code == 204
    r = await server.http.post(f"{API}/{conv}/read", json={"seq": 3}, headers=alice_phone.headers)
    assert r.status_code == 204
    assert (
        await server.http.patch(f"{API}/{conv}/messages/1", json={"body": "edited"}, headers=h)
    ).status_code == 200
    assert (await server.http.put(f"{API}/{conv}/messages/2/reactions/👍", headers=h)).status_code == 200
    assert (await server.http.delete(f"{API}/{conv}/messages/3", headers=h)).status_code == 200
    last_pos = (await get_conversation(server, bob, conv))["last_pos"]
    # --- alice is back ------------------------------------------------------------------------
    async with ws_connect(server, alice) as ws:
        ack, replay, note = await sync(ws, {conv: cursor})
        assert ack == {"type": "ack", "id": "sync", "resync": []}
        assert summary(replay) == [
            ("message.created", 2, "m1"),
            ("message.created", 3, None),  # deleted since: replayed as a tombstone, never the old text
            ("conversation.updated", "renamed"),
            ("member.joined", dave.id),
            ("receipt.read", carol.id),
            ("member.left", carol.id),
            ("conversation.read", alice.id),  # her phone read it
            ("message.updated", 1, "edited"),
            ("reaction.changed", 2, ("👍",)),
            ("message.deleted", 3, None),
        ]
        assert [o["pos"] for o in replay] == list(range(cursor + 1, last_pos + 1))
        assert all(o["conversation_id"] == conv for o in replay)
        assert replay[0]["message"]["reactions"][0]["user_ids"] == [bob.id]  # rendered as it is now
        assert replay[3]["role"] == "member"
        assert replay[4]["seq"] == replay[6]["seq"] == 3
        assert note["total_unread"] == 0 and note["conversations"] == [
            {"conversation_id": conv, "unread_count": 0, "mention_count": 0, "muted": False}
        ]
        assert await quiet(ws) == []  # nothing twice
        again_ack, again, _ = await sync(ws, {conv: last_pos})
        assert (again_ack["resync"], again) == ([], [])


async def test_sync_at_the_latest_cursor_replays_nothing(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    group = (await create_group(server, alice, "g", bob))["id"]
    direct = (await create_direct(server, bob, alice)).json()["id"]
    await send_rest(server, bob, group, "m", "hello")
    cursors = {c: (await get_conversation(server, alice, c))["last_pos"] for c in (group, direct)}
    async with ws_connect(server, alice) as ws:
        ack, replay, note = await sync(ws, cursors)
        assert (ack["resync"], replay) == ([], [])
        assert note["total_unread"] == 1
        # a cursor from the future (a confused client) is not an error and replays nothing
        _, replay, _ = await sync(ws, {c: pos + 100 for c, pos in cursors.items()})
        assert replay == []
        assert await quiet(ws) == []


async def test_conversations_joined_while_away_are_announced_then_replayed(server: LiveServer) -> None:
    alice, bob, carol = await users(server, "alice", "bob", "carol")
    known = (await create_group(server, alice, "known", bob))["id"]
    cursor = (await get_conversation(server, alice, known))["last_pos"]
    # away: bob starts a group with her, carol adds her to a group with history
    new = (await create_group(server, bob, "new", alice))["id"]
    await send_rest(server, bob, new, "n1", "welcome")
    older = (await create_group(server, carol, "older", bob))["id"]
    await send_rest(server, carol, older, "o1", "before alice")
    r = await server.http.post(f"{API}/{older}/members", json={"user_ids": [alice.id]}, headers=carol.headers)
    assert r.status_code == 200
    await send_rest(server, bob, older, "o2", "after alice")
    async with ws_connect(server, alice) as ws:
        ack, replay, note = await sync(ws, {known: cursor})
        assert ack["resync"] == []
        by_conv: dict[str, list[Json]] = {}
        for o in replay:
            by_conv.setdefault(o.get("conversation_id") or o["conversation"]["id"], []).append(o)
        assert set(by_conv) == {new, older}
        assert summary(by_conv[new]) == [
            ("conversation.created", new),
            ("member.joined", alice.id),
            ("message.created", 1, "welcome"),
        ]
        assert summary(by_conv[older]) == [
            ("conversation.created", older),
            ("member.joined", alice.id),
            ("message.created", 2, "after alice"),
        ]
        announced = by_conv[older][0]["conversation"]
        assert (announced["title"], {m["user_id"] for m in announced["members"]}) == (
            "older",
            {carol.id, bob.id, alice.id},
        )
        for conv in (new, older):
            positions = [o["pos"] for o in by_conv[conv][1:]]
            last = (await get_conversation(server, alice, conv))["last_pos"]
            assert positions == list(range(positions[0], last + 1))
        assert {b["conversation_id"] for b in note["conversations"]} == {known, new, older}
        assert await quiet(ws) == []


async def test_a_member_removed_while_away_gets_events_up_to_its_removal_only(server: LiveServer) -> None:
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    async with ws_connect(server, bob) as ws:
        await ws.drain()
        await send_rest(server, alice, conv, "m0", "seen")
        cursor = await live_cursor(ws, conv)
    await send_rest(server, alice, conv, "m1", "missed")
    r = await server.http.delete(f"{API}/{conv}/members/{bob.id}", headers=alice.headers)
    assert r.status_code == 204
    await send_rest(server, alice, conv, "m2", "after removal")
    assert (
        await server.http.patch(f"{API}/{conv}", json={"title": "secret"}, headers=alice.headers)
    ).status_code == 200
    async with ws_connect(server, bob) as ws:
        ack, replay, note = await sync(ws, {conv: cursor})
        assert ack["resync"] == []
        assert summary(replay) == [("message.created", 2, "missed"), ("member.left", bob.id)]
        left_pos = replay[-1]["pos"]
        assert note["conversations"] == []
        _, replay, _ = await sync(ws, {conv: left_pos})
        assert replay == []
        # a new device that never knew the conversation hears nothing about it
        _, replay, _ = await sync(ws, {})
        assert replay == []
        await send_rest(server, alice, conv, "m3", "later")
        assert await quiet(ws) == []


@pytest.fixture
async def short_replay_server(db_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(make_settings(db_url, tmp_path, sync_replay_limit=5)) as live:
        yield live


async def test_a_gap_beyond_the_replay_limit_asks_for_resync(short_replay_server: LiveServer) -> None:
    server = short_replay_server
    alice, bob, carol = await users(server, "alice", "bob", "carol")
    conv = (await create_group(server, alice, "g", bob))["id"]
    cursor = (await get_conversation(server, alice, conv))["last_pos"]
    for i in range(5):
        await send_rest(server, bob, conv, f"a{i}", f"a{i}")
    async with ws_connect(server, alice) as ws:
        ack, replay, _ = await sync(ws, {conv: cursor})  # exactly the limit: replayed
        assert ack["resync"] == [] and len(replay) == 5
        cursor = replay[-1]["pos"]
    for i in range(6):
        await send_rest(server, bob, conv, f"b{i}", f"b{i}")
    last_pos = (await get_conversation(server, alice, conv))["last_pos"]
    assert last_pos == cursor + 6
    async with ws_connect(server, alice) as ws:
        ack, replay, _ = await sync(ws, {conv: cursor})
        assert ack["resync"] == [conv]
        assert replay == [{"type": "resync_required", "conversation_id": conv, "last_pos": last_pos}]
        # the client reloads over REST and restarts from last_pos
        r = await server.http.get(f"{API}/{conv}/messages", params={"after_seq": 5}, headers=alice.headers)
        assert [m["seq"] for m in r.json()["messages"]] == list(range(6, 12))
        ack, replay, _ = await sync(ws, {conv: last_pos})
        assert (ack["resync"], replay) == ([], [])
    # joined while away with a long history since the join: announced, then resync_required
    r = await server.http.post(f"{API}/{conv}/members", json={"user_ids": [carol.id]}, headers=alice.headers)
    assert r.status_code == 200
    for i in range(6):
        await send_rest(server, bob, conv, f"c{i}", f"c{i}")
    async with ws_connect(server, carol) as ws:
        ack, replay, _ = await sync(ws, {})
        assert ack["resync"] == [conv]
        assert [o["type"] for o in replay] == ["conversation.created", "resync_required"]


async def test_cursors_for_other_peoples_conversations_reveal_nothing(server: LiveServer) -> None:
    alice, bob, carol = await users(server, "alice", "bob", "carol")
    theirs = (await create_direct(server, bob, carol)).json()["id"]
    await send_rest(server, bob, theirs, "s", "private")
    mine = (await create_group(server, alice, "mine", bob))["id"]
    mine_pos = (await get_conversation(server, alice, mine))["last_pos"]
    async with ws_connect(server, alice) as ws:
        for cursors in ({theirs: 0, mine: mine_pos}, {theirs: 1, "123456789": 0, mine: mine_pos}):
            ack, replay, note = await sync(ws, cursors)
            assert (ack["resync"], replay) == ([], [])
            assert [b["conversation_id"] for b in note["conversations"]] == [mine]
        await send_rest(server, bob, theirs, "s2", "still private")
        assert await quiet(ws) == []
    r = await server.http.get(f"{API}/{theirs}/messages", headers=alice.headers)
    assert r.status_code == 404


async def test_history_is_the_fallback_when_the_socket_missed_messages(server: LiveServer) -> None:
    """The database is the truth: what a device misses is always in history and sync."""
    alice, bob = await users(server, "alice", "bob")
    conv = (await create_group(server, alice, "g", bob))["id"]
    sent = [await send_rest(server, bob, conv, f"k{i}", f"m{i}") for i in range(3)]
    async with ws_connect(server, alice) as ws:
        _, replay, _ = await sync(ws, {conv: 0})
        replayed = [o["message"] for o in replay if o["type"] == "message.created"]
        assert replayed == sent
        r: httpx.Response = await server.http.get(f"{API}/{conv}/messages", headers=alice.headers)
        assert r.json()["messages"] == sent
