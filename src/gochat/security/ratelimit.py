"""Rate limits on top of the `limits` library (in-process now, Redis-backed in a cluster)."""

from __future__ import annotations

import math
import time
from typing import cast

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from gochat.errors import RateLimited

log = structlog.get_logger(__name__)


class RateLimiter:
    """Named limits ("login:user" -> "10/minute"); ``hit`` raises RateLimited when over."""

    def __init__(
        self, limits: dict[str, str], *, enabled: bool = True, storage_url: str | None = None
    ) -> None:
        self.enabled = enabled
        self._items: dict[str, RateLimitItem] = {name: parse(spec) for name, spec in limits.items()}
        # Storage failures are wrapped (StorageError) so that the limits fail open below.
        self._storage = (
            cast(
                Storage,
                storage_from_string(
                    storage_url,
                    implementation="redispy",
                    wrap_exceptions=True,
                    socket_connect_timeout=2,
                    socket_timeout=2,
                ),
            )
            if storage_url
            else MemoryStorage()
        )
        self._limiter = MovingWindowRateLimiter(self._storage)

    async def check(self, name: str, key: str) -> None:
        """Raise RateLimited if the limit is already exhausted, without counting a hit."""
        if not self.enabled:
            return
        item = self._items[name]
        try:
            allowed = await self._limiter.test(item, name, key)
        except StorageError as exc:
            allowed = _fail_open(name, exc)
        if not allowed:
            raise RateLimited(await self._retry_after(item, name, key))

    async def hit(self, name: str, key: str) -> None:
        """Count one event; raise RateLimited if it is over the limit."""
        if not self.enabled:
            return
        item = self._items[name]
        try:
            allowed = await self._limiter.hit(item, name, key)
        except StorageError as exc:
            allowed = _fail_open(name, exc)
        if not allowed:
            raise RateLimited(await self._retry_after(item, name, key))

    async def _retry_after(self, item: RateLimitItem, name: str, key: str) -> int:
        try:
            stats = await self._limiter.get_window_stats(item, name, key)
        except StorageError:
            return 1
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def reset(self) -> None:
        await self._storage.reset()


def _fail_open(name: str, exc: StorageError) -> bool:
    """Without its store (Redis down) a limit lets the request through: an outage of the
    limiter must not become an outage of chat (sends must still commit, guarantee 5)."""
    log.warning("rate_limit_store_unavailable", limit=name, error=repr(exc.storage_error))
    return True
