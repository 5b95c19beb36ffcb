"""Ephemeral state - presence and typing - in process (embedded) or in Redis with TTLs (cluster).

Nothing here is ever written to the database. In Redis every entry carries an expiry, so the
devices of a node that dies stop counting within the TTL without anyone cleaning up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from gochat.broker.redis import parse_redis_url
from gochat.errors import Unavailable

log = structlog.get_logger(__name__)
REDIS_DOWN = (RedisError, OSError)
TYPING_THROTTLE_S = 3.0


class MemoryPresenceTracker:
    """Devices online per user, on this node (the embedded shape has exactly one)."""

    def __init__(self) -> None:
        self._devices: dict[int, set[str]] = defaultdict(set)

    async def connect(self, user_id: int, device: str) -> bool:
        """Count a device; True if it is the user's first."""
        devices = self._devices[user_id]
        devices.add(device)
        return len(devices) == 1

    async def disconnect(self, user_id: int, device: str) -> bool:
        """Uncount a device; True if it was the user's last."""
        devices = self._devices.get(user_id)
        if devices is None or device not in devices:
            return False
        devices.discard(device)
        if devices:
            return False
        del self._devices[user_id]
        return True

    async def online(self, user_ids: set[int]) -> set[int]:
        return {u for u in user_ids if self._devices.get(u)}

    async def aclose(self) -> None:
        self._devices.clear()


class MemoryTypingThrottle:
    def __init__(self, interval_s: float = TYPING_THROTTLE_S) -> None:
        self._interval = interval_s
        self._last: dict[tuple[int, int], float] = {}

    async def allow(self, conversation_id: int, user_id: int) -> bool:
        """At most one typing notice per user and conversation per interval, across devices."""
        now = time.monotonic()
        key = (conversation_id, user_id)
        if now - self._last.get(key, -self._interval) < self._interval:
            return False
        self._last[key] = now
        if len(self._last) > 100_000:
            self._last = {k: v for k, v in self._last.items() if now - v < self._interval}
        return True

    async def aclose(self) -> None:
        self._last.clear()


# ZSET per user: member = device, score = expiry (unix seconds). Stale devices are pruned
# before counting, so a dead node's devices vanish after the TTL.
_CONNECT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return redis.call('ZCARD', KEYS[1])
"""
_DISCONNECT = """
local removed = redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return {removed, redis.call('ZCARD', KEYS[1])}
"""


class RedisPresenceTracker:
    """Presence shared by all nodes; each node refreshes its own devices every TTL/3."""

    def __init__(self, url: str, ttl_s: float = 30.0) -> None:
        self._redis = aioredis.Redis.from_url(
            parse_redis_url(url)[0], socket_timeout=2, socket_connect_timeout=2
        )
        self._ttl = ttl_s
        self._local: dict[str, int] = {}
        self._refresher: asyncio.Task[None] | None = None

    @staticmethod
    def _key(user_id: int) -> str:
        return f"gochat:presence:{user_id}"

    async def connect(self, user_id: int, device: str) -> bool:
        """Count a device (Unavailable without Redis: it is still refreshed in once Redis is back)."""
        self._local[device] = user_id
        self._ensure_refresher()
        now = time.time()
        try:
            count = await self._redis.eval(
                _CONNECT, 1, self._key(user_id), now, now + self._ttl, device, int(self._ttl * 2)
            )
        except REDIS_DOWN as exc:
            raise Unavailable("presence is unavailable") from exc
        return int(count) == 1

    async def disconnect(self, user_id: int, device: str) -> bool:
        self._local.pop(device, None)
        try:
            result = await self._redis.eval(_DISCONNECT, 1, self._key(user_id), time.time(), device)
        except REDIS_DOWN as exc:
            raise Unavailable("presence is unavailable") from exc
        removed, remaining = (int(v) for v in result)
        return removed == 1 and remaining == 0

    async def online(self, user_ids: set[int]) -> set[int]:
        ordered = sorted(user_ids)
        now = time.time()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id in ordered:
                    pipe.zcount(self._key(user_id), now, "+inf")
                counts = await pipe.execute()
        except REDIS_DOWN as exc:
            raise Unavailable("presence is unavailable") from exc
        return {u for u, n in zip(ordered, counts, strict=True) if int(n) > 0}

    def _ensure_refresher(self) -> None:
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self._refresh()
            except (RedisError, OSError) as exc:
                log.warning("presence_refresh_failed", error=repr(exc))

    async def _refresh(self) -> None:
        # Re-adds (not only extends) every local device: a Redis that restarted empty, or was
        # down when the device connected, learns it again within TTL/3.
        expiry = time.time() + self._ttl
        devices = list(self._local.items())
        async with self._redis.pipeline(transaction=False) as pipe:
            for device, user_id in devices:
                pipe.zadd(self._key(user_id), {device: expiry})
                pipe.expire(self._key(user_id), int(self._ttl * 2))
            await pipe.execute()
        # A device that disconnected while the pipeline ran must not be left behind by it.
        for device, user_id in devices:
            if device not in self._local:
                await self._redis.zrem(self._key(user_id), device)

    async def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await self._redis.aclose()


class RedisTypingThrottle:
    def __init__(self, url: str, interval_s: float = TYPING_THROTTLE_S) -> None:
        self._redis = aioredis.Redis.from_url(
            parse_redis_url(url)[0], socket_timeout=2, socket_connect_timeout=2
        )
        self._interval_ms = int(interval_s * 1000)

    async def allow(self, conversation_id: int, user_id: int) -> bool:
        key = f"gochat:typing:{conversation_id}:{user_id}"
        try:
            return bool(await self._redis.set(key, b"1", nx=True, px=self._interval_ms))
        except (RedisError, OSError):
            return True  # typing is best effort; without Redis, don't suppress it

    async def aclose(self) -> None:
        await self._redis.aclose()
