"""Chat state and notifications, end to end through a real in-process server (SQLite and MariaDB).

Read receipts and unread counts, typing, presence, edits and deletes, reactions, mentions,
mute and the notification summary, and sync replay of all of it to a device that was away.
Each scenario is seen from two or three users' points of view, one of them on two devices.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from gochat.clock import FakeClock, to_rfc3339
from gochat.storage.tables import events
from tests.integration.state_helpers import (
    Api,
    Json,
    User,
    Ws,
    conversation,
    direct,
    error_code,
    group,
    history,
    last_pos,
    listed,
    login,
    message_url,
    notifications,
    of_type,
    presence,
    reaction_url,
    read_rest,
    register,
    send,
    ws_open,
)
from tests.support import LiveServer, live_server, make_settings

THUMBS = "\N{THUMBS UP SIGN}"
HEART = "\N{HEAVY BLACK HEART}\ufe0f"
FAMILY = "\N{MAN}\u200d\N{WOMAN}\u200d\N{GIRL}"
# 21 distinct single-code-point emoji (one more than a message may carry).
FACES = [chr(c) for c in range(0x1F600, 0x1F615)]


def api_of(server: LiveServer) -> Api:
    return Api(server.http, server.ws_url)


async def event_rows(server: LiveServer) -> int:
    """Rows in the events log (what sync replays), read straight from the database."""
    engine = server.app.state.components.engine
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(events))).scalar_one())


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def sockets_settle(server: LiveServer, count: int) -> None:
    """Wait until the server has detached closed sockets (and so finished their presence work)."""
    hub = server.app.state.components.hub
    await until(lambda: hub.connection_count == count)


# --- 1. read receipts and unread counts -----------------------------------------------------


async def test_read_receipts_reach_others_and_own_devices_and_unread_counts_stay_exact(
    server: LiveServer,
) -> None:
    api = api_of(server)
    alice, bob, carol = [await register(api, n) for n in ("alice", "bob", "carol")]
    alice2 = await login(api, "alice")
    conv = await group(api, bob, "trio", alice, carol)
    for i in range(3):
        await send(api, bob, conv, f"b{i}")
    await send(api, carol, conv, "c")  # seq 4
    mine = (await listed(api, alice))[conv]
    assert (mine["unread_count"], mine["read_seq"], mine["last_seq"]) == (4, 0, 4)
    assert (await listed(api, bob))[conv]["unread_count"] == 1  # only carol's; own messages never count

    async with (
        ws_open(api, alice) as a1,
        ws_open(api, alice2) as a2,
        ws_open(api, bob) as b,
        ws_open(api, carol) as c,
    ):
        pos = await last_pos(api, alice, conv)
        ack = await a1.ok({"type": "read", "conversation_id": conv, "seq": 2})
        assert ack["read_seq"] == 2
        for other in (b, c):
            receipt = await other.event("receipt.read", conversation_id=conv)
            assert receipt == {
                "type": "receipt.read",
                "conversation_id": conv,
                "pos": pos + 1,
                "user_id": alice.id,
                "seq": 2,
            }
        own = await a2.event("conversation.read", conversation_id=conv)
        assert (own["user_id"], own["seq"], own["pos"]) == (alice.id, 2, pos + 1)
        await b.none_of("conversation.read")
        await c.none_of("conversation.read")
        await a2.none_of("receipt.read")
        await a1.none_of("receipt.read")
        for view in ((await listed(api, alice))[conv], await conversation(api, alice, conv)):
            assert (view["read_seq"], view["unread_count"]) == (2, 2)
        assert await notifications(api, alice) == {
            "total_unread": 2,
            "total_mentions": 0,
            "conversations": [
                {"conversation_id": conv, "unread_count": 2, "mention_count": 0, "muted": False}
            ],
        }

        # Never backwards, and a repeat is a no-op: nothing written, nobody told.
        for seq in (1, 2):
            assert (await a1.ok({"type": "read", "conversation_id": conv, "seq": seq}))["read_seq"] == 2
        assert (await read_rest(api, alice2, conv, 0)).status_code == 204
        assert await last_pos(api, alice, conv) == pos + 1
        await b.none_of("receipt.read")
        await a2.none_of("conversation.read")
        assert (await listed(api, alice))[conv]["read_seq"] == 2

        # Over REST from the second device: the first device hears it as its own read.
        assert (await read_rest(api, alice2, conv, 4)).status_code == 204
        assert (await b.event("receipt.read", conversation_id=conv))["seq"] == 4
        assert (await a1.event("conversation.read", conversation_id=conv))["seq"] == 4
        assert (await listed(api, alice))[conv]["unread_count"] == 0

        # Later changes keep the count exact: others' messages add, own don't, deletes subtract.
        m5 = await send(api, bob, conv, "b5")
        await send(api, alice, conv, "mine")
        assert (await listed(api, alice))[conv]["unread_count"] == 1
        assert (await api.http.delete(message_url(conv, m5["seq"]), headers=bob.headers)).status_code == 200
        assert (await listed(api, alice))[conv]["unread_count"] == 0
        # carol: bob's 1-3 and alice's 6 (bob's 5 is deleted, her own 4 never counts)
        assert (await listed(api, carol))[conv]["unread_count"] == 4
        assert (await notifications(api, carol))["total_unread"] == 4


async def test_concurrent_reads_from_several_devices_never_go_backwards(server: LiveServer) -> None:
    api = api_of(server)
    alice, bob = [await register(api, n) for n in ("alice", "bob")]
    devices = [await login(api, "alice") for _ in range(3)]
    conv = await direct(api, alice, bob)
    for i in range(12):
        await send(api, bob, conv, f"m{i}")
    start = await last_pos(api, bob, conv)
    async with ws_open(api, devices[0]) as d0, ws_open(api, devices[1]) as d1, ws_open(api, devices[2]) as d2:
        for base in range(3, 13, 3):
            wanted = (base, base - 1, base - 2)
            acks = await asyncio.gather(
                *(
                    d.ok({"type": "read", "conversation_id": conv, "seq": s})
                    for d, s in zip((d0, d1, d2), wanted, strict=True)
                )
            )
            # Each ack gives the position in force: never below what was asked, never past the newest.
            assert all(s <= a["read_seq"] <= base for a, s in zip(acks, wanted, strict=True)), acks
    assert (await conversation(api, alice, conv))["read_seq"] == 12
    async with ws_open(api, bob) as b:
        _, replay = await b.sync({conv: start})
    receipts = [o["seq"] for o in of_type(replay, "receipt.read")]
    assert receipts == sorted(set(receipts)) and receipts[-1] == 12, receipts  # the log only moves forward
    assert await last_pos(api, bob, conv) == start + len(receipts)


# --- 2. typing ------------------------------------------------------------------------------


async def test_typing_reaches_other_members_only_is_throttled_and_never_stored(server: LiveServer) -> None:
    api = api_of(server)
    alice, bob, carol = [await register(api, n) for n in ("alice", "bob", "carol")]
    alice2 = await login(api, "alice")
    conv = await group(api, alice, "typing", bob)
    elsewhere = await direct(api, alice, carol)  # carol is online and a contact, but not in `conv`
    async with (
        ws_open(api, alice) as a1,
        ws_open(api, alice2) as a2,
        ws_open(api, bob) as b,
        ws_open(api, carol) as c,
    ):
        positions = (await last_pos(api, alice, conv), await last_pos(api, alice, elsewhere))
        rows = await event_rows(server)

        await a1.send({"type": "typing", "conversation_id": conv})
        typing = await b.event("typing", conversation_id=conv)
        assert typing == {"type": "typing", "conversation_id": conv, "user_id": alice.id, "expires_in_s": 5}
        # Throttled per user and conversation (across her devices): more keystrokes within 3 s send
        # nothing (a request with an id still gets its ack).
        await a1.send({"type": "typing", "conversation_id": conv})
        await a1.ok({"type": "typing", "conversation_id": conv})
        await a2.ok({"type": "typing", "conversation_id": conv})
        await b.none_of("typing")
        # Neither the sender's own devices nor non-members hear it.
        for ws in (a1, a2, c):
            await ws.none_of("typing")

        # Another conversation has its own throttle; carol hears alice there.
        await a1.send({"type": "typing", "conversation_id": elsewhere})
        assert (await c.event("typing", conversation_id=elsewhere))["user_id"] == alice.id
        await b.none_of("typing")
        # Both of alice's devices hear bob.
        await b.send({"type": "typing", "conversation_id": conv})
        for ws in (a1, a2):
            assert (await ws.event("typing", conversation_id=conv))["user_id"] == bob.id

        # Typing in a conversation you are not in: a clear error, nothing sent.
        refused = await c.request({"type": "typing", "conversation_id": conv})
        assert (refused["type"], refused["code"]) == ("error", "not_found")
        await a1.none_of("typing")
        await b.none_of("typing")

        # After the throttle interval the next keystroke goes out again.
        await asyncio.sleep(3.1)
        await a1.send({"type": "typing", "conversation_id": conv})
        assert (await b.event("typing", conversation_id=conv))["expires_in_s"] == 5

        # Ephemeral: no position moved and no row was written.
        assert (await last_pos(api, alice, conv), await last_pos(api, alice, elsewhere)) == positions
        assert await event_rows(server) == rows
        _, replay = await b.sync({conv: positions[0]})
        assert of_type(replay, "typing") == [] and [o["type"] for o in replay] == ["notification"]


# --- 3. presence ----------------------------------------------------------------------------


async def test_presence_first_and_last_device_contacts_only(server: LiveServer) -> None:
    api = api_of(server)
    alice, bob, carol = [await register(api, n) for n in ("alice", "bob", "carol")]
    alice2 = await login(api, "alice")
    await direct(api, alice, bob)
    await direct(api, bob, carol)  # carol knows bob, not alice
    async with ws_open(api, bob) as b, ws_open(api, carol) as c:
        seen = await presence(api, bob, alice, carol)
        assert seen[alice.id] == {"user_id": alice.id, "status": "offline", "last_seen_at": None}
        assert seen[carol.id]["status"] == "online"
        assert alice.id not in await presence(api, carol, alice)  # strangers are omitted
        await c.drain()  # carol's connect is fully handled (a ping barrier on her socket)...
        assert (await b.event("presence", user_id=carol.id))["status"] == "online"  # ...bob heard it
        await b.drain()

        async with ws_open(api, alice) as a1:
            online = await b.event("presence", user_id=alice.id)
            assert online == {
                "type": "presence",
                "user_id": alice.id,
                "status": "online",
                "last_seen_at": None,
            }
            assert (await presence(api, bob, alice))[alice.id]["status"] == "online"
            assert (await presence(api, alice, alice, bob))[bob.id]["status"] == "online"
            # A second device connecting, then leaving, changes nothing anyone can see.
            async with ws_open(api, alice2) as a2:
                await a2.drain()
                await b.none_of("presence")
            await sockets_settle(server, 3)
            await b.none_of("presence")
            assert (await presence(api, bob, alice))[alice.id]["status"] == "online"
            await a1.drain()
        await sockets_settle(server, 2)
        offline = await b.event("presence", user_id=alice.id)
        assert offline["status"] == "offline" and offline["last_seen_at"] is not None
        assert (await presence(api, bob, alice))[alice.id] == {
            "user_id": alice.id,
            "status": "offline",
            "last_seen_at": offline["last_seen_at"],
        }
        # carol shares no conversation with alice: she heard nothing and may not ask.
        await c.none_of("presence")
        assert await presence(api, carol, alice, bob) == {
            bob.id: {"user_id": bob.id, "status": "online", "last_seen_at": None}
        }


async def test_hidden_presence_is_never_announced_and_reads_offline(server: LiveServer) -> None:
    api = api_of(server)
    dave, bob = [await register(api, n) for n in ("dave", "bob")]
    await direct(api, dave, bob)
    r = await api.http.patch("/api/v1/users/me", json={"presence_hidden": True}, headers=dave.headers)
    assert r.status_code == 200 and r.json()["presence_hidden"] is True
    async with ws_open(api, bob) as b:
        async with ws_open(api, dave) as d:
            await d.drain()
            await b.none_of("presence")
            assert (await presence(api, bob, dave))[dave.id] == {
                "user_id": dave.id,
                "status": "offline",
                "last_seen_at": None,
            }
        await sockets_settle(server, 1)
        await b.none_of("presence")
        assert (await presence(api, bob, dave))[dave.id] == {
            "user_id": dave.id,
            "status": "offline",
            "last_seen_at": None,
        }
        # Visible again: the next connection is announced.
        r = await api.http.patch("/api/v1/users/me", json={"presence_hidden": False}, headers=dave.headers)
        assert r.json()["presence_hidden"] is False
        async with ws_open(api, dave):
            assert (await b.event("presence", user_id=dave.id))["status"] == "online"


async def test_presence_goes_offline_when_a_socket_stops_answering_pings(db_url: str, tmp_path: Path) -> None:
    settings_ = make_settings(db_url, tmp_path, ws_ping_interval_s=0.5, ws_ping_timeout_s=0.5)
    async with live_server(settings_) as server:
        api = api_of(server)
        alice, bob = [await register(api, n) for n in ("alice", "bob")]
        await direct(api, alice, bob)
        async with ws_open(api, bob) as b:
            # No client-side keepalive; once reading is paused the client never answers a ping.
            async with ws_open(api, alice, ping_interval=None, close_timeout=0.2) as a:
                assert (await b.event("presence", user_id=alice.id))["status"] == "online"
                a.ws.transport.pause_reading()
                started = time.monotonic()
                offline = await b.event("presence", user_id=alice.id, timeout=6)
                assert offline["status"] == "offline" and offline["last_seen_at"] is not None
                assert time.monotonic() - started < 5
                # bob's socket answers its pings and stays up meanwhile.
                assert (await b.request({"type": "ping"}))["type"] == "pong"
                a.ws.transport.abort()
            assert (await presence(api, bob, alice))[alice.id]["status"] == "offline"


# --- 4. edits and deletes -------------------------------------------------------------------


async def test_edits_and_deletes_permissions_tombstones_and_events(server: LiveServer) -> None:
    api = api_of(server)
    owner, admin, mia, ned = [await register(api, n) for n in ("olga", "adam", "mia", "ned")]
    mia2 = await login(api, "mia")
    conv = await group(api, owner, "roles", admin, mia, ned)
    r = await api.http.patch(
        f"/api/v1/conversations/{conv}/members/{admin.id}", json={"role": "admin"}, headers=owner.headers
    )
    assert r.status_code == 204, r.text
    async with (
        ws_open(api, mia) as m1,
        ws_open(api, mia2) as m2,
        ws_open(api, ned) as n,
        ws_open(api, owner) as o,
    ):
        sent = (
            await m1.ok(
                {"type": "message.send", "conversation_id": conv, "client_msg_id": "x1", "body": "helo @ned"}
            )
        )["message"]
        seq = sent["seq"]
        assert sent["mentions"] == [ned.id] and sent["edited_at"] is None

        # The sender edits: ack after commit, every member's sockets (and her own) get message.updated.
        pos = await last_pos(api, mia, conv)
        edited = await m1.ok({"type": "message.edit", "conversation_id": conv, "seq": seq, "body": "hello"})
        assert edited["message"]["body"] == "hello" and edited["message"]["edited_at"] is not None
        for ws in (m2, n, o):
            update = await ws.event("message.updated", conversation_id=conv)
            assert update["pos"] == pos + 1
            assert update["message"]["seq"] == seq and update["message"]["body"] == "hello"
            assert update["message"]["edited_at"] == edited["message"]["edited_at"]
        r = await api.http.patch(message_url(conv, seq), json={"body": "hello!"}, headers=mia2.headers)
        assert r.status_code == 200 and r.json()["body"] == "hello!"
        assert (await n.event("message.updated", conversation_id=conv))["message"]["body"] == "hello!"

        # Nobody else edits it; a plain member does not delete it either. Nothing written.
        pos = await last_pos(api, mia, conv)
        refused = await n.request(
            {"type": "message.edit", "conversation_id": conv, "seq": seq, "body": "mine"}
        )
        assert (refused["type"], refused["code"]) == ("error", "forbidden")
        r = await api.http.patch(message_url(conv, seq), json={"body": "x"}, headers=owner.headers)
        assert (r.status_code, error_code(r)) == (403, "forbidden")
        refused = await n.request({"type": "message.delete", "conversation_id": conv, "seq": seq})
        assert (refused["type"], refused["code"]) == ("error", "forbidden")
        assert await last_pos(api, mia, conv) == pos
        await n.none_of("message.updated", "message.deleted")
        assert (await history(api, ned, conv))[seq]["body"] == "hello!"

        # A reaction, then the owner deletes mia's message: a tombstone that keeps its seq.
        await n.ok({"type": "reaction.add", "conversation_id": conv, "seq": seq, "emoji": THUMBS})
        await n.event("reaction.changed", conversation_id=conv)
        deleted = (await o.ok({"type": "message.delete", "conversation_id": conv, "seq": seq}))["message"]
        for ws in (m1, m2, n):
            tomb = (await ws.event("message.deleted", conversation_id=conv))["message"]
            assert tomb["seq"] == seq and tomb["deleted"] is True
            assert (tomb["body"], tomb["mentions"], tomb["reactions"]) == (None, [], [])
        assert deleted["deleted"] is True and deleted["body"] is None
        stored = (await history(api, mia, conv))[seq]
        assert (
            stored["seq"],
            stored["body"],
            stored["deleted"],
            stored["mentions"],
            stored["reactions"],
        ) == (seq, None, True, [], [])
        assert (await listed(api, ned))[conv]["mention_count"] == 0

        # Deleted: no edit, no reaction, and a second delete writes nothing.
        pos = await last_pos(api, mia, conv)
        r = await api.http.patch(message_url(conv, seq), json={"body": "back"}, headers=mia.headers)
        assert (r.status_code, error_code(r)) == (404, "not_found")  # like reacting to it
        refused = await n.request(
            {"type": "reaction.add", "conversation_id": conv, "seq": seq, "emoji": HEART}
        )
        assert (refused["type"], refused["code"]) == ("error", "not_found")
        r = await api.http.delete(message_url(conv, seq), headers=mia.headers)
        assert r.status_code == 200 and r.json()["deleted"] is True
        assert await last_pos(api, mia, conv) == pos
        await n.none_of("message.deleted", "message.updated", "reaction.changed")

        # Own message: the sender deletes it. The admin deletes anyone's.
        own = await send(api, ned, conv, "oops")
        r = await api.http.delete(message_url(conv, own["seq"]), headers=ned.headers)
        assert r.status_code == 200 and r.json()["deleted"] is True
        assert (await m1.event("message.deleted", conversation_id=conv))["message"]["seq"] == own["seq"]
        other = await send(api, mia, conv, "spam")
        r = await api.http.delete(message_url(conv, other["seq"]), headers=admin.headers)
        assert r.status_code == 200
        gone = await m2.wait_for(
            lambda o: o["type"] == "message.deleted" and o["message"]["seq"] == other["seq"]
        )
        assert gone["message"]["body"] is None
        # An admin ranks below the owner: the owner's messages are not theirs to delete.
        owners = await send(api, owner, conv, "house rules")
        r = await api.http.delete(message_url(conv, owners["seq"]), headers=admin.headers)
        assert (r.status_code, error_code(r)) == (403, "forbidden")
        r = await api.http.delete(message_url(conv, owners["seq"]), headers=owner.headers)
        assert r.status_code == 200 and r.json()["deleted"] is True
        # Unknown seq: not found.
        r = await api.http.delete(message_url(conv, 999), headers=owner.headers)
        assert (r.status_code, error_code(r)) == (404, "not_found")


async def test_direct_chat_lets_each_side_delete_only_their_own(server: LiveServer) -> None:
    api = api_of(server)
    alice, bob = [await register(api, n) for n in ("alice", "bob")]
    conv = await direct(api, alice, bob)
    theirs = await send(api, alice, conv, "hers")
    ours = await send(api, bob, conv, "his @alice")
    assert ours["mentions"] == []  # no mentions in direct chats
    assert (await listed(api, alice))[conv]["mention_count"] == 0
    pos = await last_pos(api, bob, conv)
    r = await api.http.delete(message_url(conv, theirs["seq"]), headers=bob.headers)
    assert (r.status_code, error_code(r)) == (403, "forbidden")
    assert await last_pos(api, bob, conv) == pos
    r = await api.http.delete(message_url(conv, ours["seq"]), headers=bob.headers)
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert (await history(api, alice, conv))[theirs["seq"]]["body"] == "hers"


async def test_edit_window_closes(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock(datetime.now(UTC))
    async with live_server(make_settings(db_url, tmp_path, message_edit_window_s=60), clock=clock) as server:
        api = api_of(server)
        alice, bob = [await register(api, n) for n in ("alice", "bob")]
        conv = await direct(api, alice, bob)
        seq = (await send(api, alice, conv, "v1"))["seq"]
        clock.advance(59)
        r = await api.http.patch(message_url(conv, seq), json={"body": "v2"}, headers=alice.headers)
        assert r.status_code == 200, r.text
        assert r.json()["edited_at"] == to_rfc3339(clock.now())
        clock.advance(2)
        pos = await last_pos(api, alice, conv)
        async with ws_open(api, alice) as a:
            refused = await a.request(
                {"type": "message.edit", "conversation_id": conv, "seq": seq, "body": "v3"}
            )
            assert (refused["type"], refused["code"]) == ("error", "forbidden")
        r = await api.http.patch(message_url(conv, seq), json={"body": "v3"}, headers=alice.headers)
        assert (r.status_code, error_code(r)) == (403, "forbidden")
        assert await last_pos(api, alice, conv) == pos
        assert (await history(api, bob, conv))[seq]["body"] == "v2"


# --- 5. reactions ---------------------------------------------------------------------------


async def test_reactions_add_remove_validate_and_dedupe(server: LiveServer) -> None:
    api = api_of(server)
    alice, bob, carol = [await register(api, n) for n in ("alice", "bob", "carol")]
    alice2 = await login(api, "alice")
    conv = await group(api, alice, "fun", bob, carol)
    seq = (await send(api, alice, conv, "react to me"))["seq"]
    async with ws_open(api, alice) as a1, ws_open(api, alice2) as a2, ws_open(api, bob) as b:
        pos = await last_pos(api, alice, conv)
        ack = await b.ok({"type": "reaction.add", "conversation_id": conv, "seq": seq, "emoji": THUMBS})
        assert ack["seq"] == seq and ack["reactions"] == [{"emoji": THUMBS, "count": 1, "user_ids": [bob.id]}]
        for ws in (a1, a2, b):
            changed = await ws.event("reaction.changed", conversation_id=conv)
            assert changed == {
                "type": "reaction.changed",
                "conversation_id": conv,
                "pos": pos + 1,
                "seq": seq,
                "reactions": ack["reactions"],
            }

        # The same user, the same emoji again: a no-op. No event, nothing written.
        again = await b.ok({"type": "reaction.add", "conversation_id": conv, "seq": seq, "emoji": THUMBS})
        assert again["reactions"] == ack["reactions"]
        r = await api.http.put(reaction_url(conv, seq, THUMBS), headers=bob.headers)
        assert r.status_code == 200 and r.json()["reactions"] == ack["reactions"]
        assert await last_pos(api, alice, conv) == pos + 1
        await a1.none_of("reaction.changed")

        # Another user over REST; a multi-code-point emoji; counts and user ids in the event.
        r = await api.http.put(reaction_url(conv, seq, THUMBS), headers=carol.headers)
        assert r.status_code == 200
        r = await api.http.put(reaction_url(conv, seq, FAMILY), headers=alice2.headers)
        assert r.status_code == 200, r.text
        changed = await a1.event("reaction.changed", conversation_id=conv, pos=pos + 2)
        assert changed["reactions"] == [{"emoji": THUMBS, "count": 2, "user_ids": [bob.id, carol.id]}]
        changed = await b.event("reaction.changed", conversation_id=conv, pos=pos + 3)
        assert changed["reactions"] == [
            {"emoji": THUMBS, "count": 2, "user_ids": [bob.id, carol.id]},
            {"emoji": FAMILY, "count": 1, "user_ids": [alice.id]},
        ]

        # Removing: one event; removing what is not there is a no-op.
        removed = await b.ok(
            {"type": "reaction.remove", "conversation_id": conv, "seq": seq, "emoji": THUMBS}
        )
        assert removed["reactions"][0] == {"emoji": THUMBS, "count": 1, "user_ids": [carol.id]}
        assert (await a2.event("reaction.changed", conversation_id=conv, pos=pos + 4))["reactions"] == (
            removed["reactions"]
        )
        await a2.drain()
        r = await api.http.delete(reaction_url(conv, seq, THUMBS), headers=bob.headers)
        assert r.status_code == 200 and r.json()["reactions"] == removed["reactions"]
        assert await last_pos(api, alice, conv) == pos + 4
        await a2.none_of("reaction.changed")
        assert (await history(api, bob, conv))[seq]["reactions"] == removed["reactions"]

        # Not an emoji: 422 invalid_request over REST, invalid_request over the socket.
        await a1.drain()
        for bad in ("a", "<script>", THUMBS + " ", "ab" + THUMBS, ":)", "1"):
            r = await api.http.put(reaction_url(conv, seq, bad), headers=bob.headers)
            assert (r.status_code, error_code(r)) == (422, "invalid_request"), (bad, r.text)
            refused = await b.request(
                {"type": "reaction.add", "conversation_id": conv, "seq": seq, "emoji": bad}
            )
            assert (refused["type"], refused["code"]) == ("error", "invalid_request"), bad
        assert await last_pos(api, alice, conv) == pos + 4
        await a1.none_of("reaction.changed")


async def test_at_most_twenty_distinct_reactions(server: LiveServer) -> None:
    api = api_of(server)
    alice, bob = [await register(api, n) for n in ("alice", "bob")]
    conv = await direct(api, alice, bob)
    seq = (await send(api, alice, conv, "many"))["seq"]
    for emoji in FACES[:20]:
        r = await api.http.put(reaction_url(conv, seq, emoji), headers=alice.headers)
        assert r.status_code == 200, r.text
    pos = await last_pos(api, alice, conv)
    r = await api.http.put(reaction_url(conv, seq, FACES[20]), headers=bob.headers)
    assert (r.status_code, error_code(r)) == (422, "invalid_request")
    assert await last_pos(api, alice, conv) == pos
    # One of the twenty already there is still fine for another user.
    r = await api.http.put(reaction_url(conv, seq, FACES[0]), headers=bob.headers)
    assert r.status_code == 200
    reactions = (await history(api, bob, conv))[seq]["reactions"]
    assert len(reactions) == 20 and reactions[0] == {
        "emoji": FACES[0],
        "count": 2,
        "user_ids": [alice.id, bob.id],
    }


async def test_concurrent_reactions_never_exceed_twenty_kinds(server: LiveServer) -> None:
    api = api_of(server)
    people = [await register(api, f"fan{i}") for i in range(6)]
    conv = await group(api, people[0], "crowd", *people[1:])
    seq = (await send(api, people[0], conv, "popular"))["seq"]
    for emoji in FACES[:18]:
        assert (
            await api.http.put(reaction_url(conv, seq, emoji), headers=people[0].headers)
        ).status_code == 200
    extra = [chr(0x1F620 + i) for i in range(len(people))]
    replies = await asyncio.gather(
        *(
            api.http.put(reaction_url(conv, seq, e), headers=u.headers)
            for e, u in zip(extra, people, strict=True)
        )
    )
    assert sorted(r.status_code for r in replies) == [200, 200] + [422] * (len(people) - 2)
    assert len((await history(api, people[0], conv))[seq]["reactions"]) == 20


# --- 6. mentions ----------------------------------------------------------------------------


async def test_mentions_mark_members_only_and_count_until_read(server: LiveServer) -> None:
    api = api_of(server)
    olga, alice, bob, carol = [await register(api, n) for n in ("olga", "alice", "bob", "carol")]
    conv = await group(api, olga, "team", alice, bob)
    await direct(api, olga, carol)  # carol exists and knows olga, but is not in the group
    m1 = await send(api, olga, conv, "hi @alice, @carol and @olga, see @nobody_here")
    assert m1["mentions"] == [alice.id]
    m2 = await send(api, bob, conv, "@ALICE again (and me: @bob)")
    assert m2["mentions"] == [alice.id]
    await send(api, bob, conv, "email bob@alice.example is not a mention")
    counts = {u.name: (await listed(api, u))[conv] for u in (olga, alice, bob)}
    assert (counts["alice"]["unread_count"], counts["alice"]["mention_count"]) == (3, 2)
    assert (counts["bob"]["unread_count"], counts["bob"]["mention_count"]) == (1, 0)
    assert counts["olga"]["mention_count"] == 0  # her self-mention does not count
    assert (await notifications(api, alice))["total_mentions"] == 2
    history_ = await history(api, bob, conv)
    assert [history_[s]["mentions"] for s in (1, 2, 3)] == [[alice.id], [alice.id], []]

    # Reading drops mentions read past; a later mention counts again.
    assert (await read_rest(api, alice, conv, 1)).status_code == 204
    assert (await listed(api, alice))[conv]["mention_count"] == 1
    assert (await read_rest(api, alice, conv, 3)).status_code == 204
    assert (await conversation(api, alice, conv))["mention_count"] == 0
    m4 = await send(api, bob, conv, "@alice @olga")
    assert m4["mentions"] == sorted([alice.id, olga.id], key=int)
    assert (await listed(api, olga))[conv]["mention_count"] == 1
    # A deleted mention no longer counts.
    assert (await api.http.delete(message_url(conv, m4["seq"]), headers=bob.headers)).status_code == 200
    assert (await listed(api, alice))[conv]["mention_count"] == 0
    assert (await notifications(api, olga))["total_mentions"] == 0


# --- 7. mute and the notification summary ---------------------------------------------------


async def test_mute_and_notification_summary_after_every_sync(server: LiveServer) -> None:
    api = api_of(server)
    alice, bob = [await register(api, n) for n in ("alice", "bob")]
    alice2 = await login(api, "alice")
    loud = await group(api, bob, "loud", alice)
    quiet = await direct(api, bob, alice)
    await send(api, bob, loud, "@alice look")
    await send(api, bob, loud, "two")
    for i in range(3):
        await send(api, bob, quiet, f"q{i}")
    async with ws_open(api, alice) as a1, ws_open(api, alice2) as a2, ws_open(api, bob) as b:
        r = await api.http.put(
            f"/api/v1/conversations/{quiet}/mute", json={"muted": True}, headers=alice.headers
        )
        assert r.status_code == 204
        for ws in (a1, a2):
            assert await ws.event("conversation.muted", conversation_id=quiet) == {
                "type": "conversation.muted",
                "conversation_id": quiet,
                "muted": True,
            }
        await b.none_of("conversation.muted")
        rows = await listed(api, alice)
        assert (rows[quiet]["muted"], rows[loud]["muted"]) == (True, False)
        assert (await listed(api, bob))[quiet]["muted"] is False  # muting is per member

        expected = {
            "total_unread": 2,  # the muted conversation's 3 do not add up
            "total_mentions": 1,
            "conversations": sorted(
                [
                    {"conversation_id": loud, "unread_count": 2, "mention_count": 1, "muted": False},
                    {"conversation_id": quiet, "unread_count": 3, "mention_count": 0, "muted": True},
                ],
                key=lambda c: c["conversation_id"],
            ),
        }

        def normal(summary: Json) -> Json:
            out = {k: v for k, v in summary.items() if k != "type"}
            out["conversations"] = sorted(out["conversations"], key=lambda c: c["conversation_id"])
            return out

        assert normal(await notifications(api, alice)) == expected
        _, replay = await a1.sync(
            {loud: await last_pos(api, alice, loud), quiet: await last_pos(api, alice, quiet)}
        )
        assert [o["type"] for o in replay] == ["notification"]
        assert normal(replay[-1]) == expected

        # After a change, the next sync's summary follows it (and still matches REST).
        await a2.ok({"type": "read", "conversation_id": loud, "seq": 2})
        _, replay = await a1.sync({loud: 0})
        assert normal(replay[-1]) == normal(await notifications(api, alice))
        assert (replay[-1]["total_unread"], replay[-1]["total_mentions"]) == (0, 0)

        r = await api.http.put(
            f"/api/v1/conversations/{quiet}/mute", json={"muted": False}, headers=alice2.headers
        )
        assert r.status_code == 204
        assert (await a1.event("conversation.muted", conversation_id=quiet))["muted"] is False
        _, replay = await a2.sync({})
        assert replay[-1]["total_unread"] == 3
        assert normal(replay[-1]) == normal(await notifications(api, alice))
        # Muting a conversation you are not in: not found.
        stranger = await register(api, "zed")
        r = await api.http.put(
            f"/api/v1/conversations/{quiet}/mute", json={"muted": True}, headers=stranger.headers
        )
        assert (r.status_code, error_code(r)) == (404, "not_found")


# --- 8. replay to a device that was away ----------------------------------------------------


def check_replay(replay: list[Json], start: int, end: int) -> dict[int, Json]:
    """Each position from start+1 to end exactly once, in order; returned by position."""
    persistent = [o for o in replay if "pos" in o]
    assert [o["pos"] for o in persistent] == list(range(start + 1, end + 1)), [o["type"] for o in persistent]
    return {o["pos"]: o for o in persistent}


async def test_offline_device_gets_every_change_once_after_sync(server: LiveServer) -> None:
    api = api_of(server)
    alice, bob, carol = [await register(api, n) for n in ("alice", "bob", "carol")]
    alice_away = await login(api, "alice")
    conv = await group(api, alice, "replay", bob)
    old = await send(api, alice, conv, "before")  # the away device saw this one
    gone = await send(api, bob, conv, "will vanish")
    async with ws_open(api, alice_away) as away:
        _, replay = await away.sync({conv: 0})
        cursor = check_replay(replay, 0, await last_pos(api, alice, conv))
        cursor_pos = max(cursor)

    async with ws_open(api, alice) as a, ws_open(api, bob) as b:
        # While the second device is away:
        await a.ok({"type": "message.edit", "conversation_id": conv, "seq": old["seq"], "body": "after"})
        await b.ok({"type": "message.delete", "conversation_id": conv, "seq": gone["seq"]})
        new = (
            await b.ok(
                {"type": "message.send", "conversation_id": conv, "client_msg_id": "n1", "body": "hey @alice"}
            )
        )["message"]
        await b.ok({"type": "reaction.add", "conversation_id": conv, "seq": old["seq"], "emoji": THUMBS})
        await a.ok({"type": "reaction.add", "conversation_id": conv, "seq": new["seq"], "emoji": HEART})
        await a.ok({"type": "reaction.add", "conversation_id": conv, "seq": new["seq"], "emoji": THUMBS})
        await a.ok({"type": "reaction.remove", "conversation_id": conv, "seq": new["seq"], "emoji": HEART})
        await a.ok({"type": "read", "conversation_id": conv, "seq": new["seq"]})
        await b.ok({"type": "read", "conversation_id": conv, "seq": new["seq"]})
        r = await api.http.post(
            f"/api/v1/conversations/{conv}/members", json={"user_ids": [carol.id]}, headers=alice.headers
        )
        assert r.status_code == 200
        await a.drain()
    end = await last_pos(api, alice, conv)

    async with ws_open(api, alice_away) as away:
        ack, replay = await away.sync({conv: cursor_pos})
        assert ack["resync"] == []
        by_pos = check_replay(replay, cursor_pos, end)
        kinds = [o["type"] for o in by_pos.values()]
        assert kinds == [
            "message.updated",
            "message.deleted",
            "message.created",
            "reaction.changed",
            "reaction.changed",
            "reaction.changed",
            "reaction.changed",
            "conversation.read",
            "receipt.read",
            "member.joined",
        ]
        events_ = list(by_pos.values())
        # Rendered from the current state: the edit, the tombstone, the reactions as they are now.
        assert events_[0]["message"]["body"] == "after" and events_[0]["message"]["edited_at"] is not None
        tomb = events_[1]["message"]
        assert (tomb["seq"], tomb["body"], tomb["deleted"]) == (gone["seq"], None, True)
        assert events_[2]["message"]["seq"] == new["seq"] and events_[2]["message"]["mentions"] == [alice.id]
        assert events_[3]["seq"] == old["seq"]
        assert events_[3]["reactions"] == [{"emoji": THUMBS, "count": 1, "user_ids": [bob.id]}]
        assert all(
            e["reactions"] == [{"emoji": THUMBS, "count": 1, "user_ids": [alice.id]}] for e in events_[4:7]
        )
        assert (events_[7]["user_id"], events_[7]["seq"]) == (alice.id, new["seq"])
        assert (events_[8]["user_id"], events_[8]["seq"]) == (bob.id, new["seq"])
        assert (events_[9]["user_id"], events_[9]["role"]) == (carol.id, "member")
        note = replay[-1]
        assert note["type"] == "notification" and note["total_unread"] == 0
        assert {k: v for k, v in note.items() if k != "type"} == await notifications(api, alice)

        # Caught up: the same cursor twice replays nothing new; a fresh device replays from the join.
        _, again = await away.sync({conv: end})
        assert [o["type"] for o in again] == ["notification"]
        _, fresh = await away.sync({})
        assert fresh[0]["type"] == "conversation.created" and fresh[0]["conversation"]["id"] == conv
        check_replay(fresh, 0, end)
        # The history agrees with what the replay showed.
        stored = await history(api, alice, conv)
        assert stored[old["seq"]]["body"] == "after" and stored[gone["seq"]]["deleted"] is True


# --- refusals -------------------------------------------------------------------------------


async def test_refusals_are_clear_and_write_nothing(server: LiveServer) -> None:
    api = api_of(server)
    alice, bob, carol = [await register(api, n) for n in ("alice", "bob", "carol")]
    conv = await group(api, alice, "strict", bob, carol)
    theirs = await send(api, alice, conv, "alice's")
    async with ws_open(api, bob) as b, ws_open(api, carol) as c, ws_open(api, alice) as a:
        r = await api.http.delete(f"/api/v1/conversations/{conv}/members/{carol.id}", headers=carol.headers)
        assert r.status_code == 204
        await a.event("member.left", conversation_id=conv)
        pos = await last_pos(api, alice, conv)

        attempts: list[tuple[Ws, Json, str]] = [
            (
                b,
                {"type": "message.edit", "conversation_id": conv, "seq": theirs["seq"], "body": "bob's now"},
                "forbidden",
            ),
            (
                c,
                {"type": "reaction.add", "conversation_id": conv, "seq": theirs["seq"], "emoji": THUMBS},
                "not_found",
            ),
            (b, {"type": "read", "conversation_id": conv, "seq": theirs["seq"] + 1}, "invalid_request"),
            (c, {"type": "typing", "conversation_id": conv}, "not_found"),
            (c, {"type": "read", "conversation_id": conv, "seq": 1}, "not_found"),
            (b, {"type": "message.edit", "conversation_id": conv, "seq": 99, "body": "x"}, "not_found"),
        ]
        for ws, frame, code in attempts:
            reply = await ws.request(frame)
            assert (reply["type"], reply["code"]) == ("error", code), (frame, reply)
            assert reply["message"]

        rest: list[tuple[Callable[[], Awaitable[Any]], int, str]] = [
            (
                lambda: api.http.patch(
                    message_url(conv, theirs["seq"]), json={"body": "b"}, headers=bob.headers
                ),
                403,
                "forbidden",
            ),
            (
                lambda: api.http.put(reaction_url(conv, theirs["seq"], THUMBS), headers=carol.headers),
                404,
                "not_found",
            ),
            (lambda: read_rest(api, bob, conv, theirs["seq"] + 1), 422, "invalid_request"),
            (lambda: read_rest(api, carol, conv, 1), 404, "not_found"),
            (
                lambda: api.http.put(
                    f"/api/v1/conversations/{conv}/mute", json={"muted": True}, headers=carol.headers
                ),
                404,
                "not_found",
            ),
        ]
        for call, status, code in rest:
            r = await call()
            assert (r.status_code, error_code(r)) == (status, code), r.text
        assert await last_pos(api, alice, conv) == pos
        assert (await conversation(api, bob, conv))["read_seq"] == 0
        await a.none_of("message.updated", "reaction.changed", "receipt.read", "typing")
        assert (await history(api, alice, conv))[theirs["seq"]] == theirs


# --- unread counts under concurrency (property) ---------------------------------------------

# One step: (action, user index, a number to pick a seq or a message with)
STEP = st.tuples(
    st.sampled_from(["send", "send", "mention", "read", "delete"]), st.integers(0, 2), st.integers(0, 1000)
)
BATCHES = st.lists(st.lists(STEP, min_size=1, max_size=5), min_size=1, max_size=3)
_users: dict[str, list[User]] = {}
_example = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=BATCHES)
async def test_unread_and_mention_counts_match_a_model_under_concurrent_sends_and_reads(
    server: LiveServer, batches: list[list[tuple[str, int, int]]]
) -> None:
    api = api_of(server)
    if server.base_url not in _users:
        _users[server.base_url] = [await register(api, n) for n in ("uma", "vic", "wes")]
    people = _users[server.base_url]
    conv = await group(api, people[0], f"model {next(_example)}", *people[1:])
    sent: dict[int, tuple[int, frozenset[int]]] = {}  # seq -> (sender index, mentioned indexes)
    deleted: set[int] = set()
    read = [0, 0, 0]

    async def do(action: str, who: int, pick: int, known: int) -> None:
        user = people[who]
        if action in ("send", "mention"):
            target = (who + 1 + pick % 2) % 3
            body = f"@{people[target].name} hi" if action == "mention" else "hi"
            message = await send(api, user, conv, body)
            sent[message["seq"]] = (who, frozenset({target}) if action == "mention" else frozenset())
            assert message["mentions"] == ([people[target].id] if action == "mention" else [])
        elif action == "read":
            seq = pick % (known + 1)
            r = await read_rest(api, user, conv, seq)
            assert r.status_code == 204, r.text
            read[who] = max(read[who], seq)
        else:
            own = sorted(s for s, (sender, _) in sent.items() if sender == who and s not in deleted)
            if own:
                seq = own[pick % len(own)]
                r = await api.http.delete(message_url(conv, seq), headers=user.headers)
                assert r.status_code == 200, r.text
                deleted.add(seq)

    for batch in batches:
        known = max(sent, default=0)  # what everyone has seen before this batch starts
        await asyncio.gather(*(do(action, who, pick, known) for action, who, pick in batch))
        assert sorted(sent) == list(range(1, len(sent) + 1))  # seq stays gapless under concurrency
        for i, user in enumerate(people):
            live = [s for s, (sender, _) in sent.items() if s not in deleted and s > read[i] and sender != i]
            expected_unread = len(live)
            expected_mentions = sum(1 for s in live if i in sent[s][1])
            row = (await listed(api, user))[conv]
            assert (row["read_seq"], row["unread_count"], row["mention_count"]) == (
                read[i],
                expected_unread,
                expected_mentions,
            ), (user.name, batches)
