"""One contract suite for every Broker adapter: in-process, Redis, and Redis sharded pub/sub."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gochat.broker.memory import MemoryBroker
from gochat.broker.redis import RedisBroker
from gochat.ports import Broker
from tests.support import require_redis


class Inbox:
    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []
        self.changed = asyncio.Event()

    def __call__(self, channel: str, data: bytes) -> None:
        self.items.append((channel, data))
        self.changed.set()

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[str, bytes]]:
        async with asyncio.timeout(timeout):
            while len(self.items) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.items


Pair = tuple[Broker, Broker, "Inbox", "Inbox"]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis), "redis-sharded"])
async def broker_pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    """Two brokers (two 'nodes'; for memory, one node seen twice) with their inboxes."""
    kind = str(request.param)
    inbox_a, inbox_b = Inbox(), Inbox()
    if kind == "memory":
        shared = MemoryBroker()
        await shared.start(lambda c, d: (inbox_a(c, d), inbox_b(c, d)))
        yield shared, shared, inbox_a, inbox_b
        await shared.stop()
        return
    url = await require_redis()
    if kind == "redis-sharded":
        url += "?sharded=true"
    a, b = RedisBroker(url), RedisBroker(url)
    await a.start(inbox_a)
    await b.start(inbox_b)
    yield a, b, inbox_a, inbox_b
    await a.stop()
    await b.stop()


def channel() -> str:
    return f"c:{secrets.randbelow(10**15)}"


async def test_subscribers_receive_each_publish_once_in_order(broker_pair: Pair) -> None:
    a, b, inbox_a, inbox_b = broker_pair
    name = channel()
    await a.subscribe(name)
    await b.subscribe(name)
    await asyncio.sleep(0.05)  # let subscriptions reach the server before publishing
    for i in range(50):
        await a.publish(name, b"m%d" % i)
    expected = [(name, b"m%d" % i) for i in range(50)]
    assert await inbox_a.wait_for(50) == expected
    assert await inbox_b.wait_for(50) == expected


async def test_unsubscribed_channels_are_not_delivered(broker_pair: Pair) -> None:
    a, b, _inbox_a, inbox_b = broker_pair
    wanted, other = channel(), channel()
    await b.subscribe(wanted)
    await asyncio.sleep(0.05)
    await a.publish(other, b"not for you")
    await a.publish(wanted, b"for you")
    items = await inbox_b.wait_for(1)
    assert items == [(wanted, b"for you")]
    await b.unsubscribe(wanted)
    await asyncio.sleep(0.05)
    await a.publish(wanted, b"after unsubscribe")
    marker = channel()
    await b.subscribe(marker)
    await asyncio.sleep(0.05)
    await a.publish(marker, b"marker")
    assert (await inbox_b.wait_for(2))[1:] == [(marker, b"marker")]


async def test_broker_reports_healthy(broker_pair: Pair) -> None:
    a, _b, _ia, _ib = broker_pair
    assert await a.healthy() is True


@pytest.mark.redis
@pytest.mark.parametrize("sharded", [False, True])
async def test_redis_broker_resubscribes_after_its_connection_is_killed(sharded: bool) -> None:
    url = await require_redis()
    broker = RedisBroker(url + ("?sharded=true" if sharded else ""))
    inbox = Inbox()
    await broker.start(inbox)
    name = channel()
    try:
        await broker.subscribe(name)
        await asyncio.sleep(0.05)
        await broker.publish(name, b"before")
        await inbox.wait_for(1)
        admin = aioredis.Redis.from_url(url)
        killed = await admin.client_kill_filter(_type="pubsub")
        await admin.aclose()
        assert killed >= 1
        # The reader reconnects and resubscribes by itself; publish until one gets through.
        async with asyncio.timeout(10):
            while len(inbox.items) < 2:
                await broker.publish(name, b"after")
                await asyncio.sleep(0.1)
        assert inbox.items[1] == (name, b"after")
        assert await broker.healthy()
    finally:
        await broker.stop()


@pytest.mark.redis
async def test_subscribe_while_redis_is_unreachable_is_deferred_not_raised() -> None:
    # Port 1 refuses connections: the hub must not fail a socket because Redis is down; the
    # subscription is remembered (the reader applies it on recovery) and health says so.
    broker = RedisBroker("redis://127.0.0.1:1/0", op_timeout_s=0.2)
    await broker.start(Inbox())
    try:
        await broker.subscribe("c:1")
        assert broker._wanted == {"c:1"}
        assert broker._needs_reconcile is True
        assert await broker.healthy() is False
    finally:
        await broker.stop()
