"""The small interfaces services depend on. Each adapter has a twin and a contract suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol

BrokerHandler = Callable[[str, bytes], None]


class Clock(Protocol):
    def now(self) -> datetime: ...


class Broker(Protocol):
    """Fan-out between nodes: an at-most-once doorbell, never the source of truth.

    ``publish`` delivers ``data`` to every node subscribed to ``channel`` (this one included),
    calling their handler in the event loop, in publish order per channel. A message published
    while a node is disconnected from the broker is lost for that node: clients repair by
    ``sync`` against the database.
    """

    async def start(self, handler: BrokerHandler) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, channel: str, data: bytes) -> None: ...

    async def subscribe(self, channel: str) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def healthy(self) -> bool: ...


class PresenceTracker(Protocol):
    """Counts each user's connected devices; first connect and last disconnect are reported."""

    async def connect(self, user_id: int, device: str) -> bool: ...

    async def disconnect(self, user_id: int, device: str) -> bool: ...

    async def online(self, user_ids: set[int]) -> set[int]: ...

    async def aclose(self) -> None: ...


class TypingThrottle(Protocol):
    """At most one typing notice per user and conversation per interval, across devices and nodes."""

    async def allow(self, conversation_id: int, user_id: int) -> bool: ...

    async def aclose(self) -> None: ...


class MediaStore(Protocol):
    """Where uploaded bytes live, by key: local files or an S3-compatible object store.

    Keys are opaque, random and written once. ``put`` is all or nothing: a reader sees the
    whole object or none of it. ``delete`` is idempotent. ``open`` raises NotFound for a
    missing key and yields the bytes in chunks. ``signed_url`` is a URL anyone holding it can
    GET until it expires (the store checks the signature and the expiry), or None when the
    store cannot serve by itself and the app streams the bytes (``local_path`` then names
    the file). Failures of the store itself raise Unavailable.
    """

    async def put(self, key: str, source: Path | bytes, content_type: str) -> None: ...

    async def open(self, key: str) -> AsyncIterator[bytes]: ...

    async def delete(self, key: str) -> None: ...

    async def exists(self, key: str) -> bool: ...

    async def signed_url(
        self, key: str, expires_in_s: int, *, content_type: str, disposition: str
    ) -> str | None: ...

    def local_path(self, key: str) -> Path | None: ...

    async def close(self) -> None: ...
