"""Redis-backed state without Redis: presence and rate limits degrade instead of failing chat.

The cluster tests (tests/e2e/test_cluster.py) stop a real Redis under load; these pin the
adapter behaviour they rely on, quickly and without processes.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest
import redis.asyncio as aioredis

from gochat.broker.ephemeral import RedisPresenceTracker
from gochat.errors import Unavailable
from gochat.security.ratelimit import RateLimiter
from tests.support import free_port, require_redis

pytestmark = pytest.mark.redis


def nowhere() -> str:
    """A Redis URL nothing listens on (connections are refused at once)."""
    return f"redis://127.0.0.1:{free_port()}/0"


def user() -> int:
    return secrets.randbelow(10**12) + 1


async def test_presence_without_redis_is_unavailable_not_a_crash() -> None:
    tracker = RedisPresenceTracker(nowhere())
    try:
        with pytest.raises(Unavailable):
            await tracker.connect(user(), "phone")
        with pytest.raises(Unavailable):
            await tracker.online({user()})
        with pytest.raises(Unavailable):
            await tracker.disconnect(user(), "phone")
    finally:
        await tracker.aclose()


async def test_devices_come_back_after_redis_forgot_them() -> None:
    """A Redis restarted without persistence has no presence keys: the refresh writes them again."""
    url = await require_redis()
    tracker = RedisPresenceTracker(url, ttl_s=0.9)
    other = aioredis.Redis.from_url(url)
    dana = user()
    try:
        assert await tracker.connect(dana, "desk") is True
        await other.delete(f"gochat:presence:{dana}")  # what a restart does to the key
        assert await tracker.online({dana}) == set()
        await asyncio.sleep(0.6)  # one refresh period (ttl/3) and some
        assert await tracker.online({dana}) == {dana}
        # A device that left is not written back by a later refresh.
        assert await tracker.disconnect(dana, "desk") is True
        await asyncio.sleep(0.6)
        assert await tracker.online({dana}) == set()
    finally:
        await tracker.aclose()
        await other.aclose()


async def test_rate_limits_fail_open_without_their_store() -> None:
    limiter = RateLimiter({"send:user": "1/minute"}, storage_url="async+" + nowhere())
    for _ in range(3):  # over the limit, yet allowed: without Redis nothing is counted
        await limiter.hit("send:user", "42")
        await limiter.check("send:user", "42")
