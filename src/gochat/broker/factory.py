"""Choose the broker adapter from its URL."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from gochat.broker.ephemeral import (
    MemoryPresenceTracker,
    MemoryTypingThrottle,
    RedisPresenceTracker,
    RedisTypingThrottle,
)
from gochat.broker.memory import MemoryBroker
from gochat.broker.redis import RedisBroker, parse_redis_url
from gochat.ports import Broker, PresenceTracker, TypingThrottle


def create_broker(url: str) -> Broker:
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBroker()
    if scheme in ("redis", "rediss"):
        return RedisBroker(url)
    raise ValueError(f"unsupported GOCHAT_BROKER_URL scheme {scheme!r} (use memory:// or redis://)")


@dataclass
class Ephemeral:
    """Presence, typing and rate-limit state: in process, or in Redis when the broker is Redis."""

    presence: PresenceTracker
    typing: TypingThrottle
    rate_limit_storage_url: str | None

    async def aclose(self) -> None:
        await self.presence.aclose()
        await self.typing.aclose()


def create_ephemeral(broker_url: str) -> Ephemeral:
    parts = urlsplit(broker_url)
    if parts.scheme in ("redis", "rediss"):
        plain = parse_redis_url(broker_url)[0]
        return Ephemeral(
            RedisPresenceTracker(broker_url),
            RedisTypingThrottle(broker_url),
            "async+" + plain,
        )
    return Ephemeral(MemoryPresenceTracker(), MemoryTypingThrottle(), None)
