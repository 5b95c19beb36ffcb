"""The in-process broker of the embedded shape: publish calls this node's handler."""

from __future__ import annotations

import asyncio

from gochat.ports import BrokerHandler


class MemoryBroker:
    def __init__(self) -> None:
        self._handler: BrokerHandler | None = None
        self._channels: set[str] = set()

    async def start(self, handler: BrokerHandler) -> None:
        self._handler = handler

    async def stop(self) -> None:
        self._handler = None
        self._channels.clear()

    async def publish(self, channel: str, data: bytes) -> None:
        # Delivered on a later loop turn, like a network broker: a publisher never runs
        # subscribers' code inside its own call (and its transaction is long committed).
        if self._handler is not None and channel in self._channels:
            asyncio.get_running_loop().call_soon(self._handler, channel, data)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def healthy(self) -> bool:
        return True
