"""Presence trackers and typing throttles: the in-process and Redis adapters obey one contract."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from gochat.broker.ephemeral import (
    MemoryPresenceTracker,
    MemoryTypingThrottle,
    RedisPresenceTracker,
    RedisTypingThrottle,
)
from gochat.ports import PresenceTracker, TypingThrottle
from tests.support import require_redis


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def trackers(request: pytest.FixtureRequest) -> AsyncIterator[tuple[PresenceTracker, PresenceTracker]]:
    """Two nodes' trackers (the in-process one is a single node seen twice)."""
    if request.param == "memory":
        shared = MemoryPresenceTracker()
        yield shared, shared
        return
    url = await require_redis()
    a, b = RedisPresenceTracker(url), RedisPresenceTracker(url)
    yield a, b
    await a.aclose()
    await b.aclose()


def user() -> int:
    return secrets.randbelow(10**12) + 1


async def test_first_and_last_device_across_nodes(trackers: tuple[PresenceTracker, PresenceTracker]) -> None:
    a, b = trackers
    alice = user()
    assert await a.connect(alice, "phone") is True
    assert await b.connect(alice, "laptop") is False
    assert await a.online({alice, user()}) == {alice}
    assert await a.disconnect(alice, "phone") is False
    assert await b.online({alice}) == {alice}
    assert await b.disconnect(alice, "laptop") is True
    assert await a.online({alice}) == set()


async def test_unknown_device_disconnect_is_not_a_last_disconnect(
    trackers: tuple[PresenceTracker, PresenceTracker],
) -> None:
    a, _ = trackers
    bob = user()
    assert await a.disconnect(bob, "never-connected") is False
    await a.connect(bob, "d1")
    assert await a.disconnect(bob, "other") is False
    assert await a.online({bob}) == {bob}


@pytest.mark.redis
async def test_a_dead_nodes_devices_stop_counting_within_the_ttl() -> None:
    url = await require_redis()
    dying = RedisPresenceTracker(url, ttl_s=0.6)
    survivor = RedisPresenceTracker(url, ttl_s=0.6)
    carol = user()
    try:
        assert await dying.connect(carol, "desk") is True
        # The node "dies": its refresher stops and it never says goodbye.
        assert dying._refresher is not None
        dying._refresher.cancel()
        assert await survivor.online({carol}) == {carol}
        await asyncio.sleep(0.9)
        assert await survivor.online({carol}) == set()
        # A live node keeps its devices counted past the TTL by refreshing them.
        assert await survivor.connect(carol, "phone") is True
        await asyncio.sleep(0.9)
        assert await survivor.online({carol}) == {carol}
    finally:
        await dying.aclose()
        await survivor.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def throttles(request: pytest.FixtureRequest) -> AsyncIterator[tuple[TypingThrottle, TypingThrottle]]:
    if request.param == "memory":
        shared = MemoryTypingThrottle(interval_s=0.3)
        yield shared, shared
        return
    url = await require_redis()
    a, b = RedisTypingThrottle(url, interval_s=0.3), RedisTypingThrottle(url, interval_s=0.3)
    yield a, b
    await a.aclose()
    await b.aclose()


async def test_typing_is_throttled_per_user_and_conversation_across_nodes(
    throttles: tuple[TypingThrottle, TypingThrottle],
) -> None:
    a, b = throttles
    conv, dave, erin = user(), user(), user()
    assert await a.allow(conv, dave) is True
    assert await b.allow(conv, dave) is False
    assert await b.allow(conv, erin) is True
    assert await a.allow(conv + 1, dave) is True
    await asyncio.sleep(0.35)
    assert await b.allow(conv, dave) is True
