"""Publishing after commit: one publish per event to the conversation's channel.

Envelope on the broker: ``<route>\\n<frame>``. The route tells the receiving hub whom on
its node to hand the frame to; the frame is the exact bytes every socket receives.
Routes: ``*`` everyone subscribed, ``-<user>`` everyone but that user's sockets,
``join:<conv>`` / ``leave:<conv>`` (user channel: change subscriptions, then deliver),
``revoke:<session>`` (user channel: close that session's sockets with 4001).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from gochat.ports import Broker

log = structlog.get_logger(__name__)


def conversation_channel(conversation_id: int) -> str:
    return f"c:{conversation_id}"


def user_channel(user_id: int) -> str:
    return f"u:{user_id}"


def _ignore() -> None:
    return None


class Publisher:
    def __init__(
        self,
        broker: Broker,
        on_publish: Callable[[], None] = _ignore,
        on_failure: Callable[[], None] = _ignore,
    ) -> None:
        self._broker = broker
        self._on_publish = on_publish
        self._on_failure = on_failure

    async def to_conversation(
        self, conversation_id: int, frame: bytes, *, except_user: int | None = None
    ) -> None:
        route = b"*" if except_user is None else b"-%d" % except_user
        await self._publish(conversation_channel(conversation_id), route, frame)

    async def to_user(self, user_id: int, frame: bytes, route: str = "*") -> None:
        await self._publish(user_channel(user_id), route.encode(), frame)

    async def _publish(self, channel: str, route: bytes, frame: bytes) -> None:
        # The database already holds the change: a failed publish only delays live delivery
        # until the client syncs, so it is logged and counted, never raised (guarantee 5).
        try:
            await self._broker.publish(channel, route + b"\n" + frame)
            self._on_publish()
        except Exception as exc:
            self._on_failure()
            log.warning("publish_failed", channel=channel, error=repr(exc))
