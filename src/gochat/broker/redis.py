"""Redis pub/sub broker for the cluster shape (optionally sharded pub/sub for Redis Cluster).

Channels are per conversation (``c:<id>``) and per user (``u:<id>``): a message is published
once, and Redis delivers it only to the nodes that subscribed because they have a member's
socket. Delivery is at most once: while Redis is unreachable messages are lost for the
nodes that miss them, the database still has them, and clients catch up with ``sync``.
One reader task owns the subscription connection; it reconnects with backoff and then
reconciles the subscriptions with the set this node wants.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis.asyncio as aioredis
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gochat.ports import BrokerHandler

log = structlog.get_logger(__name__)
TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)


def parse_redis_url(url: str) -> tuple[str, bool]:
    """The URL for redis-py and whether sharded pub/sub was asked for (``?sharded=true``)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    sharded = query.pop("sharded", ["false"])[0].lower() in ("1", "true", "yes")
    rest = "&".join(f"{k}={v[0]}" for k, v in query.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, "")), sharded


class RedisBroker:
    def __init__(self, url: str, *, op_timeout_s: float = 2.0) -> None:
        clean_url, self.sharded = parse_redis_url(url)
        self._redis = aioredis.Redis.from_url(
            clean_url, socket_connect_timeout=op_timeout_s, socket_timeout=op_timeout_s
        )
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._handler: BrokerHandler | None = None
        self._wanted: set[str] = set()
        self._wake = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._reader_ok = True
        self._needs_reconcile = False

    async def start(self, handler: BrokerHandler) -> None:
        self._handler = handler
        self._reader = asyncio.get_running_loop().create_task(self._read_loop(), name="redis-broker-reader")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(RedisError, OSError):
            await self._redis.aclose()

    async def publish(self, channel: str, data: bytes) -> None:
        if self.sharded:
            await self._redis.spublish(channel, data)
        else:
            await self._redis.publish(channel, data)

    async def subscribe(self, channel: str) -> None:
        self._wanted.add(channel)
        await self._apply(self._subscribe, channel)
        self._wake.set()

    async def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)
        await self._apply(self._unsubscribe, channel)

    async def healthy(self) -> bool:
        try:
            await asyncio.wait_for(self._redis.ping(), 1.0)
        except (*TRANSIENT, RedisError, TimeoutError):
            return False
        return self._reader_ok

    async def _apply(self, operation: object, channel: str) -> None:
        """Subscribe or unsubscribe now; if Redis is down, the reader reconciles later."""
        assert callable(operation)
        try:
            await operation(channel)
        except TRANSIENT as exc:
            self._needs_reconcile = True
            log.warning("redis_subscription_deferred", channel=channel, error=repr(exc))

    async def _subscribe(self, *channels: str) -> None:
        if self.sharded:
            await self._pubsub.ssubscribe(*channels)
        else:
            await self._pubsub.subscribe(*channels)

    async def _unsubscribe(self, *channels: str) -> None:
        if self.sharded:
            await self._pubsub.sunsubscribe(*channels)
        else:
            await self._pubsub.unsubscribe(*channels)

    def _current(self) -> set[str]:
        held = self._pubsub.shard_channels if self.sharded else self._pubsub.channels
        return {c.decode() if isinstance(c, bytes) else str(c) for c in held}

    async def _reconcile(self) -> None:
        current = self._current()
        missing, extra = self._wanted - current, current - self._wanted
        if missing:
            await self._subscribe(*missing)
        if extra:
            await self._unsubscribe(*extra)
        self._needs_reconcile = False

    async def _read_loop(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._read_once()
                backoff = 0.1
            except TRANSIENT as exc:
                if self._reader_ok:
                    log.warning("redis_reader_disconnected", error=repr(exc))
                self._reader_ok = False
                self._needs_reconcile = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _read_once(self) -> None:
        if self._needs_reconcile:
            await self._reconcile()
        if not self._pubsub.subscribed:
            self._reader_ok = True
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            return
        message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        if not self._reader_ok:
            log.info("redis_reader_recovered")
        self._reader_ok = True
        if message is not None and message["type"] in ("message", "smessage"):
            self._deliver(message["channel"], message["data"])

    def _deliver(self, channel: bytes | str, data: bytes) -> None:
        if self._handler is None:
            return
        name = channel.decode() if isinstance(channel, bytes) else channel
        try:
            self._handler(name, data)
        except Exception as exc:  # task boundary: one bad message must not stop the reader
            log.error("broker_handler_failed", channel=name, error=repr(exc), exc_info=exc)
