"""Choose the broker adapter from its URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from gochat.broker.memory import MemoryBroker
from gochat.ports import Broker


def create_broker(url: str) -> Broker:
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBroker()
    raise ValueError(f"unsupported GOCHAT_BROKER_URL scheme {scheme!r} (use memory://)")
