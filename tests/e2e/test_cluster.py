"""The cluster shape, black-box: real `gochat serve` nodes on loopback behind HAProxy, a
shared MariaDB and Redis, public clients on chosen nodes, and processes killed mid-stream.

Each test gets its own database and a dedicated redis-server; the outage tests also get
their own mariadbd. What they prove is the contract's guarantees across nodes: every member
sees every message in one order whatever node they and the sender are on, and no node
crash, Redis outage or database outage loses an acknowledged message.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from gochat.cluster import LocalCluster
from tests.e2e.cluster_support import (
    ClusterClient,
    Json,
    assert_gapless,
    has_all,
    local_cluster,
    make_user,
    redis_server,
    shared_mysql_database,
    summary,
    unique,
)

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.redis, pytest.mark.timeout(150)]


@pytest.fixture
async def clients() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    """Three nodes on a fresh MariaDB database and a dedicated Redis, behind HAProxy."""
    with redis_server(tmp_path / "redis") as redis:
        async with shared_mysql_database() as db, local_cluster(tmp_path / "cluster", db, redis.url) as local:
            yield local


async def node_get(url: str, path: str, token: str | None, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        return await http.get(path, params=params, headers=headers)


async def presence_on(url: str, viewer: ClusterClient, user_id: str) -> str:
    response = await node_get(url, "/api/v1/presence", viewer.access_token, user_ids=user_id)
    assert response.status_code == 200, response.text
    (entry,) = response.json()["presence"]
    return str(entry["status"])


async def next_from(client: ClusterClient, kind: str, user_id: str, timeout: float = 10) -> Json:
    """The next ``kind`` event about ``user_id`` (others of that kind are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        event = await client.next_event(kind, timeout=max(0.01, deadline - time.monotonic()))
        if event.get("user_id") == user_id:
            return event


# --------------------------------------------------------------------------- delivery


async def test_every_member_gets_every_message_whatever_node_they_are_on(
    cluster: LocalCluster, clients: AsyncExitStack
) -> None:
    n1, n2, n3 = cluster.nodes
    placement = [n1, n1, n2, n2, n3, None]  # None: through HAProxy
    # A gap repair would hide a missing live delivery: make it far slower than the test.
    members = [
        await make_user(clients, cluster, unique(f"m{i}_"), node, gap_timeout_s=120)
        for i, node in enumerate(placement)
    ]
    owner = members[0]
    group = (await owner.create_group("across nodes", [m.user_id for m in members[1:]]))["id"]
    for member in members:
        await member.connect()
        await member.wait_for(lambda m=member: m.cursor(group) is not None, timeout=10)

    per_member = 10
    started = time.monotonic()

    async def send_some(i: int, member: ClusterClient) -> list[Json]:
        return [await member.send(group, f"from {i} #{k}", timeout=20) for k in range(per_member)]

    acked = [m for batch in await asyncio.gather(*(send_some(i, m) for i, m in enumerate(members))) for m in batch]
    total = per_member * len(members)
    for member in members:
        await member.wait_for(lambda m=member: has_all(m, group, total), timeout=15)
    elapsed = time.monotonic() - started

    database = await owner.history_all(group)
    assert_gapless(database, total)
    assert {m["id"] for m in acked} == {m["id"] for m in database}
    for member in members:
        assert summary(member.messages(group)) == summary(database)
        assert member.connect_count == 1, "a member reconnected: live delivery was not proven"
    print(f"\n[delivery] {total} messages x {len(members)} members over 3 nodes live in {elapsed:.2f} s")


async def test_presence_and_typing_cross_nodes(cluster: LocalCluster, clients: AsyncExitStack) -> None:
    n1, _n2, n3 = cluster.nodes
    alice = await make_user(clients, cluster, unique("alice_"), n1)
    bob = await make_user(clients, cluster, unique("bob_"), n3)
    assert alice.user_id and bob.user_id
    conv = (await alice.create_direct(bob.user_id))["id"]
    await bob.connect()
    assert await presence_on(n3.url, bob, alice.user_id) == "offline"

    await alice.connect()  # on node 1; bob is on node 3
    online = await next_from(bob, "presence", alice.user_id)
    assert online["status"] == "online"
    assert await presence_on(n3.url, bob, alice.user_id) == "online"
    assert await presence_on(n1.url, alice, bob.user_id) == "online"

    await alice.typing(conv)
    typing = await next_from(bob, "typing", alice.user_id)
    assert typing["conversation_id"] == conv

    await alice.close()  # the last device leaves: offline everywhere, with last_seen_at
    offline = await next_from(bob, "presence", alice.user_id)
    assert offline["status"] == "offline" and offline["last_seen_at"]
    assert await presence_on(n3.url, bob, alice.user_id) == "offline"


# --------------------------------------------------------------------------- chaos: node kills


async def test_ten_thousand_messages_survive_two_node_kills(tmp_path: Path, clients: AsyncExitStack) -> None:
    with redis_server(tmp_path / "redis") as redis:
        async with shared_mysql_database() as db, local_cluster(tmp_path / "cluster", db, redis.url) as cluster:
            await run_chaos(cluster, clients)


SENDERS = 10
PER_SENDER = 1000
WINDOW = 10  # sends in flight per sender


async def run_chaos(cluster: LocalCluster, clients: AsyncExitStack) -> None:
    n1, n2, n3 = cluster.nodes
    spots = [n1, n2, n3, None]
    senders = [
        await make_user(clients, cluster, unique(f"s{i}_"), spots[i % 4], keep_events=False)
        for i in range(SENDERS)
    ]
    observers = [
        await make_user(clients, cluster, unique(f"o{i}_"), node, keep_events=False) for i, node in enumerate([n1, None])
    ]
    everyone = senders + observers
    group = (await senders[0].create_group("chaos", [c.user_id for c in everyone[1:]]))["id"]
    for client in everyone:
        await client.connect()
    for client in everyone:
        await client.wait_for(lambda c=client: c.cursor(group) is not None, timeout=20)

    acked: list[Json] = []
    kills: list[tuple[str, int]] = []

    async def send_all(i: int, sender: ClusterClient) -> None:
        window = asyncio.Semaphore(WINDOW)

        async def one(k: int) -> None:
            async with window:
                acked.append(await sender.send(group, f"s{i} #{k}", client_msg_id=f"s{i}-{k}", timeout=90))

        await asyncio.gather(*(one(k) for k in range(PER_SENDER)))

    total = SENDERS * PER_SENDER
    done = asyncio.Event()

    async def chaos() -> None:
        for victim, at in ((n1, total * 3 // 10), (n2, total * 65 // 100)):
            while len(acked) < at and not done.is_set():
                await asyncio.sleep(0.01)
            if done.is_set():
                return
            kills.append((victim.name, len(acked)))
            await asyncio.to_thread(cluster.stop_node, victim, signal.SIGKILL)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(cluster.start_node, victim, wait=True, timeout=90)

    started = time.monotonic()
    chaos_task = asyncio.create_task(chaos())
    try:
        await asyncio.gather(*(send_all(i, s) for i, s in enumerate(senders)))
    finally:
        done.set()
        await chaos_task  # never cancelled mid-restart: it checks ``done``
    sent_in = time.monotonic() - started

    assert len(acked) == total
    assert [name for name, _ in kills] == ["node1", "node2"], f"the nodes were not killed mid-run: {kills}"

    database = await senders[0].history_all(group)
    assert_gapless(database, total)
    by_seq = {m["seq"]: m for m in database}
    for message in acked:  # every ack names a committed message, exactly as stored
        stored = by_seq[message["seq"]]
        assert (stored["id"], stored["client_msg_id"], stored["body"]) == (
            message["id"],
            message["client_msg_id"],
            message["body"],
        )
    assert len({m["id"] for m in acked}) == total

    last_pos = (await senders[0].conversation(group))["last_pos"]
    for client in everyone:
        await client.wait_for(
            lambda c=client: has_all(c, group, total) and (c.cursor(group) or 0) >= last_pos, timeout=60
        )
    converged_in = time.monotonic() - started
    expected = summary(database)
    for client in everyone:
        assert summary(client.messages(group)) == expected
    on_killed = [c for c, spot in zip(everyone, [*(spots[i % 4] for i in range(SENDERS)), n1, None], strict=True)
                 if spot in (n1, n2)]
    for client in on_killed:
        assert client.reconnects >= 1 and client.ws_url == client.fallback_ws_url

    resent = sum(c.resent for c in senders)
    frames = sum(sum(c.send_frames.values()) for c in senders)
    reconnects = sum(c.reconnects for c in everyone)
    print(
        f"\n[chaos] acked {len(acked)}/{total} from {SENDERS} senders (window {WINDOW}) in {sent_in:.1f} s "
        f"({total / sent_in:.0f} msg/s); retried sends {resent} ({frames - total} extra frames); "
        f"unavailable replies {sum(c.unavailable_replies for c in senders)}; reconnects {reconnects} "
        f"(clients on killed nodes: {len(on_killed)}); kills {kills}; "
        f"all {len(everyone)} clients equal to the database after {converged_in:.1f} s; "
        f"0 lost, 0 duplicates"
    )
