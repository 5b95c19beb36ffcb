"""Chat state through a real `gochat serve` process (embedded SQLite and MariaDB).

Two things only a real process shows: a device that was away - across a server restart -
gets every edit, delete, reaction, read and membership change from the database, once each;
and presence follows real sockets of another process, including one that vanishes without a
close handshake and one that stops answering pings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.integration.state_helpers import (
    Api,
    Json,
    conversation,
    group,
    history,
    last_pos,
    login,
    notifications,
    of_type,
    presence,
    register,
    send,
    ws_open,
)
from tests.support import ServeProcess, serve_process

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

THUMBS = "\N{THUMBS UP SIGN}"
HEART = "\N{HEAVY BLACK HEART}\ufe0f"


@pytest.fixture
def serve_db(db_kind: str, request: pytest.FixtureRequest) -> str | None:
    """None for the embedded SQLite default; a migrated MariaDB database otherwise."""
    if db_kind == "sqlite":
        return None
    url: str = request.getfixturevalue("migrated_db_url")
    return url


async def client_for(proc: ServeProcess) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=proc.base_url, timeout=10) as http:
        yield Api(http, proc.ws_url)


async def sockets_settle(api: Api, count: int) -> None:
    """Wait until the server counts this many open sockets, then a moment for its presence work."""
    deadline = time.monotonic() + 5
    while True:
        text = (await api.http.get("/metrics")).text
        line = next(ln for ln in text.splitlines() if ln.startswith("gochat_ws_connections "))
        if float(line.split()[1]) == count:
            break
        assert time.monotonic() < deadline, line
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)


def by_pos(replay: list[Json], start: int, end: int) -> list[Json]:
    """The persistent events of a replay: positions start+1..end, each exactly once, in order."""
    persistent = [o for o in replay if "pos" in o]
    assert [o["pos"] for o in persistent] == list(range(start + 1, end + 1)), [o["type"] for o in persistent]
    return persistent


async def test_device_away_across_a_restart_replays_every_change_once(
    tmp_path: Path, serve_db: str | None
) -> None:
    with serve_process(tmp_path, db_url=serve_db, GOCHAT_RATE_LIMITS_ENABLED="false") as proc:
        async for api in client_for(proc):
            alice, bob, carol = [await register(api, n) for n in ("alice", "bob", "carol")]
            away = await login(api, "alice")
            conv = await group(api, alice, "replay", bob)
            kept = await send(api, alice, conv, "first draft")
            doomed = await send(api, bob, conv, "regrettable")
            async with ws_open(api, away) as ws:
                _, replay = await ws.sync({conv: 0})
                cursor = by_pos(replay, 0, await last_pos(api, alice, conv))[-1]["pos"]

            # While that device is away, from the other devices:
            async with ws_open(api, alice) as a, ws_open(api, bob) as b:
                await a.ok(
                    {"type": "message.edit", "conversation_id": conv, "seq": kept["seq"], "body": "final"}
                )
                await b.ok({"type": "message.delete", "conversation_id": conv, "seq": doomed["seq"]})
                fresh = await b.ok(
                    {
                        "type": "message.send",
                        "conversation_id": conv,
                        "client_msg_id": "e1",
                        "body": "@alice ping",
                    }
                )
                seq = fresh["message"]["seq"]
                await b.ok(
                    {"type": "reaction.add", "conversation_id": conv, "seq": kept["seq"], "emoji": THUMBS}
                )
                await a.ok({"type": "reaction.add", "conversation_id": conv, "seq": seq, "emoji": HEART})
                await b.ok({"type": "reaction.add", "conversation_id": conv, "seq": seq, "emoji": HEART})
                await b.ok({"type": "reaction.remove", "conversation_id": conv, "seq": seq, "emoji": HEART})
                await b.ok({"type": "read", "conversation_id": conv, "seq": seq})
                r = await api.http.post(
                    f"/api/v1/conversations/{conv}/members",
                    json={"user_ids": [carol.id]},
                    headers=alice.headers,
                )
                assert r.status_code == 200, r.text
                await a.drain()
            end = await last_pos(api, alice, conv)

        # The live path is gone: the replay can only come from the database.
        proc.stop()
        proc.start()
        async for api in client_for(proc):
            async with ws_open(api, away) as ws:
                ack, replay = await ws.sync({conv: cursor})
                assert ack["resync"] == []
                got = by_pos(replay, cursor, end)
                assert [o["type"] for o in got] == [
                    "message.updated",
                    "message.deleted",
                    "message.created",
                    "reaction.changed",
                    "reaction.changed",
                    "reaction.changed",
                    "reaction.changed",
                    "receipt.read",
                    "member.joined",
                ]
                assert got[0]["message"]["body"] == "final" and got[0]["message"]["edited_at"] is not None
                assert (
                    got[1]["message"]["seq"],
                    got[1]["message"]["body"],
                    got[1]["message"]["deleted"],
                ) == (
                    doomed["seq"],
                    None,
                    True,
                )
                created = got[2]["message"]
                assert (created["seq"], created["body"], created["mentions"]) == (
                    seq,
                    "@alice ping",
                    [alice.id],
                )
                # Rendered as things are now: bob took his heart back, alice's stays.
                hearts = [{"emoji": HEART, "count": 1, "user_ids": [alice.id]}]
                assert created["reactions"] == hearts
                assert got[3]["reactions"] == [{"emoji": THUMBS, "count": 1, "user_ids": [bob.id]}]
                assert all(e["seq"] == seq and e["reactions"] == hearts for e in got[4:7])
                assert (got[7]["user_id"], got[7]["seq"]) == (bob.id, seq)
                assert got[8]["user_id"] == carol.id

                # The summary that closes the sync matches REST: one unread message that mentions her.
                note = replay[-1]
                assert (note["type"], note["total_unread"], note["total_mentions"]) == ("notification", 1, 1)
                assert {k: v for k, v in note.items() if k != "type"} == await notifications(api, alice)
                mine = await conversation(api, alice, conv)
                assert (mine["unread_count"], mine["mention_count"], mine["last_pos"]) == (1, 1, end)

                # Applying it and reading: other devices are told, the replay stays exact.
                await ws.ok({"type": "read", "conversation_id": conv, "seq": seq})
                _, again = await ws.sync({conv: end})
                assert [o["type"] for o in again] == ["conversation.read", "notification"]
                assert again[0]["pos"] == end + 1 and again[-1]["total_unread"] == 0
            stored = await history(api, carol, conv)
            assert stored[kept["seq"]]["body"] == "final" and stored[doomed["seq"]]["deleted"] is True


async def test_presence_follows_real_sockets_of_another_process(tmp_path: Path, serve_db: str | None) -> None:
    env = {
        "GOCHAT_RATE_LIMITS_ENABLED": "false",
        "GOCHAT_WS_PING_INTERVAL_S": "0.5",
        "GOCHAT_WS_PING_TIMEOUT_S": "0.5",
    }
    with serve_process(tmp_path, db_url=serve_db, **env) as proc:
        async for api in client_for(proc):
            alice, bob, eve = [await register(api, n) for n in ("alice", "bob", "eve")]
            alice2 = await login(api, "alice")
            conv = await group(api, alice, "pair", bob)
            await group(api, eve, "eve alone", bob)  # eve shares nothing with alice
            async with ws_open(api, bob) as b, ws_open(api, eve) as e:
                await e.drain()  # eve's own connect is fully handled (a ping barrier on her socket)
                assert (await b.event("presence", user_id=eve.id))["status"] == "online"
                await b.drain()
                # First device: online. A second device, and the first one leaving: nothing.
                async with ws_open(api, alice2, ping_interval=None, close_timeout=0.2) as a2:
                    online = await b.event("presence", user_id=alice.id)
                    assert (online["status"], online["last_seen_at"]) == ("online", None)
                    async with ws_open(api, alice) as a1:
                        await a1.drain()
                        await b.none_of("presence")
                    await sockets_settle(api, 3)
                    await b.none_of("presence")
                    assert (await presence(api, bob, alice))[alice.id]["status"] == "online"
                    # The last one vanishes without a close handshake: offline, with last_seen_at.
                    a2.ws.transport.abort()
                    offline = await b.event("presence", user_id=alice.id)
                assert offline["status"] == "offline" and offline["last_seen_at"] is not None
                assert (await presence(api, bob, alice))[alice.id]["last_seen_at"] == offline["last_seen_at"]

                # A socket that stops answering pings is dropped, and its user goes offline.
                async with ws_open(api, alice, ping_interval=None, close_timeout=0.2) as silent:
                    assert (await b.event("presence", user_id=alice.id))["status"] == "online"
                    silent.ws.transport.pause_reading()
                    started = time.monotonic()
                    gone = await b.event("presence", user_id=alice.id, timeout=8)
                    assert gone["status"] == "offline" and time.monotonic() - started < 6
                    silent.ws.transport.abort()
                # eve heard nothing about alice, and may not ask.
                assert of_type(await e.drain(), "presence") == []
                assert alice.id not in await presence(api, eve, alice)
                # Meanwhile the conversation's log was untouched by all of it.
                assert await last_pos(api, bob, conv) == 2
