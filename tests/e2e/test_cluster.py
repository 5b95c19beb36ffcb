"""The cluster shape, black-box: real `gochat serve` nodes on loopback behind HAProxy, a
shared MariaDB and Redis, public clients on chosen nodes, and processes killed mid-stream.

What they prove is the contract's guarantees across nodes: every member sees every message
in one order whatever node they and the sender are on; presence and typing cross nodes; and
no node crash, SIGTERM, Redis outage or database outage loses an acknowledged message.

Starting three nodes costs seconds of CPU, so the tests that leave the infrastructure
intact share one class-scoped cluster (each with its own users and conversations; a node a
test stopped is started again before the next). The chaos and outage tests get their own
database, a dedicated redis-server, and for the database outage a dedicated mariadbd.
``GOCHAT_CLUSTER_CHAOS_MESSAGES`` scales the node-kill run (default 10,000, as the issue asks).
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from gochat.cluster import LocalCluster, Node
from tests.e2e.cluster_support import (
    ClusterClient,
    Json,
    MariaDBServer,
    RedisServer,
    assert_gapless,
    has_all,
    local_cluster,
    make_user,
    mariadb_server,
    metric,
    node_log_tail,
    readyz,
    redis_server,
    running_cluster,
    shared_mysql_database,
    summary,
    unique,
    until_async,
)
from tests.support import create_mysql_database, drop_mysql_database

pytestmark = [pytest.mark.e2e, pytest.mark.mysql, pytest.mark.redis, pytest.mark.timeout(180)]

CHAOS_MESSAGES = int(os.environ.get("GOCHAT_CLUSTER_CHAOS_MESSAGES", "10000"))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="class")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three nodes on a fresh database and a dedicated Redis, behind HAProxy."""
    work = tmp_path_factory.mktemp("calm-cluster")
    with redis_server(work / "redis") as redis:
        url = asyncio.run(create_mysql_database())
        try:
            with running_cluster(work / "cluster", url, redis.url) as cluster:
                yield cluster
        finally:
            asyncio.run(drop_mysql_database(url))


@pytest.fixture
async def cluster(shared_cluster: LocalCluster) -> AsyncIterator[LocalCluster]:
    """The shared cluster with every node up (a previous test may have stopped one)."""
    for node in shared_cluster.nodes:
        if not node.alive():
            await asyncio.to_thread(shared_cluster.start_node, node, wait=True, timeout=90)
    for node in shared_cluster.nodes:
        await until_async(lambda n=node: ready(n.url), 30, f"{node.name} ready")
    await until_async(lambda: ready(shared_cluster.url), 30, "the balancer to route")
    yield shared_cluster


@pytest.fixture
async def clients() -> AsyncIterator[AsyncExitStack]:
    """Every client a test makes is closed (all its tasks awaited) at the end."""
    async with AsyncExitStack() as stack:
        yield stack


# --------------------------------------------------------------------------- helpers


async def ready(url: str) -> bool:
    return await readyz(url) == 200


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


async def group_of(clients: list[ClusterClient], title: str) -> str:
    """A group of all ``clients`` (the first owns it), every one connected and following it."""
    owner = clients[0]
    group = str((await owner.create_group(title, [c.user_id for c in clients[1:]]))["id"])
    for client in clients:
        if not client.connected:
            await client.connect(timeout=30)
    for client in clients:
        await client.wait_for(lambda c=client: c.cursor(group) is not None, timeout=20)
    return group


class Flow:
    """Senders sending one message at a time each until stopped; every ack kept with its time."""

    def __init__(self, group: str, senders: list[ClusterClient], send_timeout: float = 120) -> None:
        self.group = group
        self.senders = senders
        self.send_timeout = send_timeout
        self.acked: list[tuple[float, Json]] = []
        self.latency: list[tuple[float, float]] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, stack: AsyncExitStack) -> None:
        self._tasks = [asyncio.create_task(self._run(i, s)) for i, s in enumerate(self.senders)]
        stack.push_async_callback(self.cancel)

    async def cancel(self) -> None:
        """Cleanup on any exit: cancel the senders and collect their outcomes."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, i: int, sender: ClusterClient) -> None:
        k = 0
        while not self._stop.is_set():
            sent = time.monotonic()
            message = await sender.send(
                self.group, f"flow {i} #{k}", client_msg_id=f"f{i}-{k}", timeout=self.send_timeout
            )
            now = time.monotonic()
            self.acked.append((now, message))
            self.latency.append((now, now - sent))
            k += 1
            await asyncio.sleep(0.02)

    def acks_by_sender(self, since: float, until: float) -> list[int]:
        ids = [s.user_id for s in self.senders]
        found = [0] * len(ids)
        for at, message in self.acked:
            if since <= at < until:
                found[ids.index(message["sender_id"])] += 1
        return found

    def slowest_ack(self, since: float) -> float:
        return max((took for at, took in self.latency if at >= since), default=0.0)

    def acks_since(self, since: float) -> int:
        return sum(1 for at, _ in self.acked if at >= since)

    async def wait_acks(self, count: int, since: float, timeout: float, what: str) -> float:
        async def enough() -> bool:
            self._raise_failed()
            return self.acks_since(since) >= count

        return await until_async(enough, timeout, what)

    def _raise_failed(self) -> None:
        for task in self._tasks:
            if task.done() and task.exception() is not None:
                raise AssertionError("a sender failed") from task.exception()

    async def stop(self) -> list[Json]:
        """Let every send in flight finish (bounded), then return all acked messages."""
        self._stop.set()
        async with asyncio.timeout(self.send_timeout + 10):
            await asyncio.gather(*self._tasks)
        return [m for _, m in self.acked]


async def assert_database_holds(reader: ClusterClient, group: str, acked: list[Json]) -> list[Json]:
    """Every acked message is committed exactly once, as acked; the log is gapless."""
    database = await reader.history_all(group)
    assert_gapless(database, len(database))
    by_seq = {m["seq"]: m for m in database}
    for message in acked:
        stored = by_seq.get(message["seq"])
        assert stored is not None, f"acked message {message['client_msg_id']} is not in the database"
        assert (stored["id"], stored["client_msg_id"], stored["body"]) == (
            message["id"],
            message["client_msg_id"],
            message["body"],
        )
    assert len({m["id"] for m in acked}) == len(acked), "one message acked twice under two ids"
    return database


async def assert_everyone_converges(
    clients: list[ClusterClient], group: str, database: list[Json], timeout: float = 60
) -> None:
    last_pos = (await clients[0].conversation(group))["last_pos"]
    for client in clients:
        await client.wait_for(
            lambda c=client: has_all(c, group, len(database)) and (c.cursor(group) or 0) >= last_pos,
            timeout=timeout,
        )
        assert summary(client.messages(group)) == summary(database)


async def metrics_of(nodes: list[Node], name: str, default: float | None = None) -> dict[str, float]:
    return {node.name: await metric(node.url, name, default) for node in nodes}


# ------------------------------------------- one shared cluster: delivery, presence, typing, SIGTERM, HAProxy


class TestOneSharedCluster:
    """Tests that leave the infrastructure as they found it share one cluster (class scope:
    it is stopped before the chaos tests start theirs)."""

    async def test_every_member_gets_every_message_whatever_node_they_are_on(
        self, cluster: LocalCluster, clients: AsyncExitStack
    ) -> None:
        n1, n2, n3 = cluster.nodes
        placement = [n1, n1, n2, n2, n3, None]  # None: through HAProxy
        # A gap repair would hide a missing live delivery: make it far slower than the test.
        members = [
            await make_user(clients, cluster, unique(f"m{i}_"), node, gap_timeout_s=120)
            for i, node in enumerate(placement)
        ]
        group = await group_of(members, "across nodes")
        fanout_before = await metrics_of(cluster.nodes, "gochat_fanout_deliveries")

        per_member = 10
        started = time.monotonic()

        async def send_some(i: int, member: ClusterClient) -> list[Json]:
            return [await member.send(group, f"from {i} #{k}", timeout=20) for k in range(per_member)]

        batches = await asyncio.gather(*(send_some(i, m) for i, m in enumerate(members)))
        acked = [m for batch in batches for m in batch]
        total = per_member * len(members)
        for member in members:
            await member.wait_for(lambda m=member: has_all(m, group, total), timeout=15)
        elapsed = time.monotonic() - started

        database = await assert_database_holds(members[0], group, acked)
        assert len(database) == total
        for member in members:
            assert summary(member.messages(group)) == summary(database)
            assert member.connect_count == 1, "a member reconnected: live delivery was not proven"

        # Every node handed frames to its local sockets; the metrics a dashboard needs are there.
        fanout = await metrics_of(cluster.nodes, "gochat_fanout_deliveries")
        assert all(fanout[n.name] - fanout_before[n.name] >= total for n in (n1, n2, n3)), fanout
        for name in (
            "gochat_broker_publishes",
            "gochat_broker_publish_failures",
            "gochat_ws_slow_closed_total",
        ):
            values = await metrics_of(cluster.nodes, name)
            assert all(v >= 0 for v in values.values())
        publishes = await metrics_of(cluster.nodes, "gochat_broker_publishes")
        assert sum(publishes.values()) >= total
        print(
            f"\n[delivery] {total} messages x {len(members)} members over 3 nodes live in {elapsed:.2f} s; "
            f"fan-out per node {fanout}; publishes {publishes}"
        )

    async def test_presence_and_typing_cross_nodes(
        self, cluster: LocalCluster, clients: AsyncExitStack
    ) -> None:
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

    # --------------------------------------------------------------------------- SIGTERM, HAProxy

    async def test_sigterm_closes_sockets_with_1001_and_they_resume_elsewhere(
        self, cluster: LocalCluster, clients: AsyncExitStack
    ) -> None:
        n1, n2, _n3 = cluster.nodes
        alice = await make_user(clients, cluster, unique("alice_"), n2)
        bob = await make_user(clients, cluster, unique("bob_"), n2)
        carol = await make_user(clients, cluster, unique("carol_"), n1)
        everyone = [alice, bob, carol]
        group = await group_of(everyone, "sigterm")
        flow = Flow(group, everyone)
        flow.start(clients)
        await flow.wait_acks(15, 0, 30, "acks before the SIGTERM")

        await asyncio.to_thread(cluster.stop_node, n2, signal.SIGTERM)
        # uvicorn re-raises the signal after its graceful shutdown (-15); -9 would mean stop_node
        # had to kill a node that did not stop in time.
        assert n2.proc is not None and n2.proc.returncode in (0, -signal.SIGTERM), n2.proc.returncode
        for client in (alice, bob):
            await client.wait_for(lambda c=client: bool(c.close_codes), timeout=10)
            assert client.close_codes[0] == 1001, f"closed with {client.close_codes}, not 1001 (going away)"
        stopped = time.monotonic()
        await flow.wait_acks(15, stopped, 40, "acks after the SIGTERM")
        for client in (alice, bob):
            assert client.connected and client.ws_url == client.fallback_ws_url

        acked = await flow.stop()
        database = await assert_database_holds(carol, group, acked)
        await assert_everyone_converges(everyone, group, database)
        print(f"\n[sigterm] close codes {alice.close_codes} {bob.close_codes}; {len(acked)} acked, 0 lost")

    async def test_haproxy_balances_http_and_websockets_and_takes_a_dead_node_out(
        self, cluster: LocalCluster, clients: AsyncExitStack
    ) -> None:
        n1, n2, n3 = cluster.nodes
        route = 'gochat_http_requests_total{method="GET",route="/users/me",status="200"}'
        users = [await make_user(clients, cluster, unique(f"lb{i}_")) for i in range(6)]  # all via HAProxy
        group = await group_of(users, "balanced")
        sockets = await metrics_of(cluster.nodes, "gochat_ws_connections")
        assert all(v >= 1 for v in sockets.values()), f"WebSockets not spread over the nodes: {sockets}"

        async def me_calls(count: int) -> list[int]:
            return [
                (await users[0].http.get("/api/v1/users/me", headers=auth(users[0]))).status_code
                for _ in range(count)
            ]

        before = await metrics_of(cluster.nodes, route, 0.0)
        assert await me_calls(30) == [200] * 30
        after = await metrics_of(cluster.nodes, route, 0.0)
        assert all(after[n] > before[n] for n in after), (
            f"HTTP not spread over the nodes: {before} -> {after}"
        )

        # Kill node 3. From then on no request through the balancer fails: before the health
        # check marks it down, a refused connection is retried on another node (retries +
        # redispatch); after, it gets no traffic. (A request in flight on the node at the instant
        # it dies can fail, as with any balancer: clients retry, and sends are idempotent.)
        await asyncio.to_thread(cluster.stop_node, n3, signal.SIGKILL)
        statuses: list[int] = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            statuses.extend(await me_calls(1))
        statuses.extend(await me_calls(30))
        assert statuses == [200] * len(statuses)
        for user in users:  # the sockets that were on node 3 came back through the others
            await user.wait_for(lambda u=user: u.connected, timeout=20)
        message = await users[0].send(group, "after the kill", timeout=20)
        for user in users:
            await user.wait_for(lambda u=user: has_all(u, group, message["seq"]), timeout=20)

        await asyncio.to_thread(cluster.start_node, n3, wait=True, timeout=90)
        back = await metrics_of([n3], route, 0.0)

        async def n3_serves() -> bool:
            await me_calls(3)
            return (await metric(n3.url, route, 0.0)) > back["node3"]

        took = await until_async(n3_serves, 20, "the restarted node to get traffic again")
        print(
            f"\n[haproxy] {len(statuses)} requests during/after the kill, all 200; node3 back in {took:.1f} s"
        )
        del n1, n2


def auth(client: ClusterClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.access_token}"}


# --------------------------------------------------------------------------- chaos: node kills


@pytest.mark.timeout(300)  # ~110 s here; a crowded CI machine gets headroom, not a flaky failure
async def test_ten_thousand_messages_survive_two_node_kills(tmp_path: Path, clients: AsyncExitStack) -> None:
    with redis_server(tmp_path / "redis") as redis:
        async with (
            shared_mysql_database() as db,
            local_cluster(tmp_path / "cluster", db, redis.url) as cluster,
        ):
            try:
                async with asyncio.timeout(270):  # before pytest-timeout: a clean, logged failure
                    await run_chaos(cluster, clients)
            except BaseException:
                print(node_log_tail(cluster))
                raise


SENDERS = 10
WINDOW = 10  # sends in flight per sender


async def run_chaos(cluster: LocalCluster, clients: AsyncExitStack) -> None:
    n1, n2, n3 = cluster.nodes
    spots = [n1, n2, n3, None]
    per_sender = CHAOS_MESSAGES // SENDERS
    total = per_sender * SENDERS
    # request_timeout well above the queueing delay of a window, so "retried" means a
    # disconnect or an error, not a slow machine.
    senders = [
        await make_user(
            clients, cluster, unique(f"s{i}_"), spots[i % 4], keep_events=False, request_timeout=30
        )
        for i in range(SENDERS)
    ]
    observers = [
        await make_user(clients, cluster, unique(f"o{i}_"), node, keep_events=False, request_timeout=30)
        for i, node in enumerate([n1, None])
    ]
    everyone = senders + observers
    placed = [spots[i % 4] for i in range(SENDERS)] + [n1, None]
    group = await group_of(everyone, "chaos")

    acked: list[Json] = []
    kills: list[tuple[str, int]] = []

    async def send_all(i: int, sender: ClusterClient) -> None:
        window = asyncio.Semaphore(WINDOW)

        async def one(k: int) -> None:
            async with window:
                acked.append(await sender.send(group, f"s{i} #{k}", client_msg_id=f"s{i}-{k}", timeout=240))

        await asyncio.gather(*(one(k) for k in range(per_sender)))

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

    async def progress() -> None:
        """A timeline in the test's output: where a stalled run stalled."""
        while not done.is_set():
            await asyncio.sleep(10)
            per_sender = [sum(1 for m in acked if m["sender_id"] == c.user_id) for c in senders]
            print(
                f"  [{time.monotonic() - started:5.1f} s] acked {len(acked)} {per_sender} kills {kills} "
                f"connected {[int(c.connected) for c in everyone]} "
                f"reconnects {[c.reconnects for c in everyone]} "
                f"frames {sum(sum(c.send_frames.values()) for c in senders)}",
                flush=True,
            )

    started = time.monotonic()
    chaos_task = asyncio.create_task(chaos())
    progress_task = asyncio.create_task(progress())
    try:
        await asyncio.gather(*(send_all(i, s) for i, s in enumerate(senders)))
    finally:
        done.set()
        await chaos_task  # never cancelled mid-restart: it checks ``done``
        progress_task.cancel()
        await asyncio.gather(progress_task, return_exceptions=True)
    sent_in = time.monotonic() - started

    assert len(acked) == total
    assert [name for name, _ in kills] == ["node1", "node2"], f"the nodes were not killed mid-run: {kills}"
    database = await assert_database_holds(senders[0], group, acked)
    assert len(database) == total
    await assert_everyone_converges(everyone, group, database, timeout=90)
    converged_in = time.monotonic() - started
    on_killed = [c for c, spot in zip(everyone, placed, strict=True) if spot in (n1, n2)]
    for client in on_killed:
        assert client.reconnects >= 1 and client.ws_url == client.fallback_ws_url

    resent = sum(c.resent for c in senders)
    frames = sum(sum(c.send_frames.values()) for c in senders)
    print(
        f"\n[chaos] acked {len(acked)}/{total} from {SENDERS} senders (window {WINDOW}) in {sent_in:.1f} s "
        f"({total / sent_in:.0f} msg/s) with node1 and node2 SIGKILLed at {kills}; "
        f"retried sends {resent} ({frames - total} extra frames); "
        f"'unavailable' replies {sum(c.unavailable_replies for c in senders)}; "
        f"reconnects {sum(c.reconnects for c in everyone)} ({len(on_killed)} clients were on killed nodes); "
        f"{len(everyone)} clients equal to the database after {converged_in:.1f} s; 0 lost, 0 duplicates"
    )


# --------------------------------------------------------------------------- Redis outage


async def test_redis_outage_keeps_committing_and_recovers_without_restarts(
    tmp_path: Path, clients: AsyncExitStack
) -> None:
    # Rate limits on, as in production (they live in Redis), but far above this test's rates.
    limits = {
        "GOCHAT_RATE_LIMITS_ENABLED": "true",
        "GOCHAT_SEND_USER_LIMIT": "1000/second",
        "GOCHAT_API_USER_LIMIT": "100000/minute",
        "GOCHAT_API_IP_LIMIT": "100000/minute",
        "GOCHAT_LOGIN_LIMIT": "1000/minute",
        "GOCHAT_LOGIN_IP_LIMIT": "1000/minute",
        "GOCHAT_REGISTER_IP_LIMIT": "1000/hour",
        "GOCHAT_WS_FRAME_RATE": "1000",
        "GOCHAT_WS_FRAME_BURST": "1000",
    }
    with redis_server(tmp_path / "redis") as redis:
        async with (
            shared_mysql_database() as db,
            local_cluster(tmp_path / "cluster", db, redis.url, **limits) as cluster,
        ):
            try:
                await run_redis_outage(cluster, redis, clients)
            except BaseException:
                print(node_log_tail(cluster))
                raise


async def run_redis_outage(cluster: LocalCluster, redis: RedisServer, clients: AsyncExitStack) -> None:
    n1, n2, n3 = cluster.nodes
    pids = [n.proc.pid for n in cluster.nodes if n.proc]
    alice = await make_user(clients, cluster, unique("alice_"), n1)
    bob = await make_user(clients, cluster, unique("bob_"), n2)
    dave = await make_user(clients, cluster, unique("dave_"))  # through HAProxy
    # Carol repairs gaps only when told: what she receives on her own is live delivery.
    carol = await make_user(clients, cluster, unique("carol_"), n3, gap_timeout_s=300)
    erin = await make_user(clients, cluster, unique("erin_"), n2, gap_timeout_s=300)  # connects mid-outage
    everyone = [alice, bob, carol, dave]
    group = await group_of(everyone, "redis outage")
    flow = Flow(group, [alice, bob, dave])
    flow.start(clients)
    await flow.wait_acks(15, 0, 30, "acks before the outage")
    failures_before = await metrics_of(cluster.nodes, "gochat_broker_publish_failures")

    await asyncio.to_thread(redis.stop, signal.SIGKILL)
    down = time.monotonic()
    for node in cluster.nodes:
        await until_async(lambda n=node: not_ready(n.url), 10, f"{node.name} /readyz to fail")

    async def every_sender_acked() -> bool:
        return min(flow.acks_by_sender(down, math.inf)) >= 5

    await until_async(every_sender_acked, 40, "acks from every sender (HAProxy's too) while Redis is down")
    # A socket opened while Redis is down works (presence is skipped, not fatal); its node
    # could not subscribe to erin's channel yet.
    await erin.connect(timeout=30)
    assert await erin.ping() < 5
    await asyncio.sleep(max(0.0, down + 6 - time.monotonic()))  # a real outage, not a blip
    # Not being ready did not cut the sockets through the balancer: they still work.
    assert dave.connect_count == 1, dave.close_codes
    # REST through the balancer works too (rate limits fail open without their store).
    assert len(await dave.history(group, limit=5)) == 5
    failures = await metrics_of(cluster.nodes, "gochat_broker_publish_failures")
    assert sum(failures.values()) > sum(failures_before.values()), (failures_before, failures)
    during = flow.acks_by_sender(down, math.inf)
    slowest = flow.slowest_ack(down)

    await asyncio.to_thread(redis.start)
    up = time.monotonic()
    recovered = {}
    for node in cluster.nodes:
        recovered[node.name] = await until_async(lambda n=node: ready(n.url), 20, f"{node.name} ready")
    await flow.wait_acks(10, up, 30, "acks after the outage")

    # Live delivery resumed (the brokers resubscribed): a message from node 1 reaches carol
    # on node 3 without a sync.
    connects_before = carol.connect_count
    probe = await alice.send(group, "after the outage", timeout=20)
    await carol.wait_for(lambda: probe["seq"] in carol.view(group).messages, timeout=20)
    assert carol.connect_count == connects_before
    # ... and the subscription asked for during the outage was made once Redis came back:
    # erin's own channel delivers live (her node never restarted, her socket never moved).
    assert alice.user_id is not None and erin.user_id is not None
    invited = await alice.create_direct(erin.user_id)
    created = await erin.next_event("conversation.created", timeout=20)
    assert created["conversation"]["id"] == invited["id"] and erin.connect_count == 1
    # Presence survives the restart of a Redis that kept nothing: each node re-announces its
    # devices on its next refresh (every TTL/3).
    assert alice.user_id is not None

    async def alice_online() -> bool:
        return await presence_on(n2.url, bob, alice.user_id or "") == "online"

    presence_back = await until_async(alice_online, 30, "alice online again after the Redis restart")

    acked = await flow.stop()
    carol.drop_connection()  # now let her catch up by sync
    database = await assert_database_holds(alice, group, [*acked, probe])
    await assert_everyone_converges(everyone, group, database)
    assert [n.proc.pid for n in cluster.nodes if n.proc] == pids, "a node was restarted"
    print(
        f"\n[redis] down {up - down:.1f} s: acks per sender while down {during} (slowest {slowest:.2f} s); "
        f"publish failures {failures_before} -> {failures}; nodes ready {max(recovered.values()):.1f} s "
        f"after the restart, presence back in {presence_back:.1f} s; {len(acked) + 1} acked, 0 lost; "
        f"reconnects {[c.reconnects for c in everyone]} (close codes {[c.close_codes for c in everyone]})"
    )


async def not_ready(url: str) -> bool:
    return await readyz(url) == 503


# --------------------------------------------------------------------------- MariaDB outage


async def test_database_outage_fails_sends_retryably_and_recovers_without_restarts(
    tmp_path: Path, clients: AsyncExitStack
) -> None:
    async with mariadb_server(tmp_path) as maria:
        db = await maria.create_database("gochat")
        with redis_server(tmp_path / "redis") as redis:
            async with local_cluster(tmp_path / "cluster", db, redis.url) as cluster:
                try:
                    await run_database_outage(cluster, maria, clients)
                except BaseException:
                    print(node_log_tail(cluster))
                    raise


async def run_database_outage(cluster: LocalCluster, maria: MariaDBServer, clients: AsyncExitStack) -> None:
    n1, n2, n3 = cluster.nodes
    pids = [n.proc.pid for n in cluster.nodes if n.proc]
    alice = await make_user(clients, cluster, unique("alice_"), n1)
    bob = await make_user(clients, cluster, unique("bob_"), n2)
    carol = await make_user(clients, cluster, unique("carol_"), n3)
    dave = await make_user(clients, cluster, unique("dave_"))  # through HAProxy
    everyone = [alice, bob, carol, dave]
    senders = [alice, bob, carol, dave]
    group = await group_of(everyone, "database outage")
    flow = Flow(group, senders)
    flow.start(clients)
    await flow.wait_acks(20, 0, 30, "acks before the outage")

    await asyncio.to_thread(maria.stop, signal.SIGKILL)
    down = time.monotonic()
    for node in cluster.nodes:
        await until_async(lambda n=node: not_ready(n.url), 15, f"{node.name} /readyz to fail")
    unavailable_before = sum(c.unavailable_replies for c in senders)
    await asyncio.sleep(4)
    unavailable = sum(c.unavailable_replies for c in senders) - unavailable_before
    acks_while_down = flow.acks_since(down + 2.0)  # an ack already on the wire may land just after
    assert unavailable > 0, "no send was refused with 'unavailable' while the database was down"
    assert acks_while_down == 0, f"{acks_while_down} acks while the database was down"

    await asyncio.to_thread(maria.start)
    up = time.monotonic()
    recovered = {}
    for node in cluster.nodes:
        recovered[node.name] = await until_async(lambda n=node: ready(n.url), 30, f"{node.name} ready")
    await flow.wait_acks(20, up, 40, "acks after the database came back")

    acked = await flow.stop()
    database = await assert_database_holds(alice, group, acked)
    assert len(database) == len(acked), "a committed message was never acked"
    await assert_everyone_converges(everyone, group, database)
    assert [n.proc.pid for n in cluster.nodes if n.proc] == pids, "a node was restarted"
    retried = sum(c.resent for c in senders)
    assert retried > 0
    print(
        f"\n[database] killed for {up - down:.1f} s: {unavailable} 'unavailable' replies, 0 acks; "
        f"nodes ready {max(recovered.values()):.1f} s after the restart; {len(acked)} acked, "
        f"{len(database)} in the database, each once; {retried} sends were retried "
        f"({sum(sum(c.send_frames.values()) for c in senders) - len(acked)} extra frames); "
        f"reconnects {[c.reconnects for c in everyone]}"
    )
