"""Local fan-out: broker messages in, the same frame bytes queued on every local socket.

The hub keeps, for this node only, which sockets belong to which user and which
conversations each user's sockets follow, and subscribes the broker to exactly the channels
its sockets need (``c:<conversation>`` and ``u:<user>``). Routing never awaits: a socket is
handed the frame with ``enqueue`` and the flusher writes it on its next run. A conversation's
events for everyone (route ``*``) go into one :class:`RoomBatch` per flush window, queued on
each follower once: the next events of the window cost one append, not one per follower.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable

import structlog

from gochat.observability import Metrics
from gochat.ports import Broker
from gochat.realtime.connection import Connection, RoomBatch
from gochat.services.publisher import conversation_channel, user_channel

log = structlog.get_logger(__name__)
TOKEN_EXPIRED = 4001


class Hub:
    def __init__(self, broker: Broker, metrics: Metrics) -> None:
        self._broker = broker
        self._metrics = metrics
        self._by_user: dict[int, set[Connection]] = defaultdict(set)
        self._by_conv: dict[int, set[Connection]] = defaultdict(set)
        self._convs_of: dict[Connection, set[int]] = {}
        self._open: dict[int, RoomBatch] = {}  # per conversation: the batch still taking events
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def connection_count(self) -> int:
        return len(self._convs_of)

    def follows(self, conn: Connection, conversation_id: int) -> bool:
        """Is this socket's user a current member (as far as this node knows)?"""
        return conversation_id in self._convs_of.get(conn, ())

    def conversations_of(self, conn: Connection) -> list[int]:
        return sorted(self._convs_of.get(conn, ()))

    async def attach(self, conn: Connection, conversation_ids: Iterable[int]) -> None:
        self._convs_of[conn] = set()
        self._by_user[conn.user_id].add(conn)
        if len(self._by_user[conn.user_id]) == 1:
            await self._subscribe(user_channel(conn.user_id))
        for conv_id in conversation_ids:
            if self._follow(conn, conv_id):
                await self._subscribe(conversation_channel(conv_id))
        self._metrics.ws_connections.inc()

    async def detach(self, conn: Connection) -> None:
        convs = self._convs_of.get(conn)
        if convs is None:
            return
        self._metrics.ws_connections.dec()
        for conv_id in list(convs):
            if self._unfollow(conn, conv_id):
                await self._unsubscribe(conversation_channel(conv_id))
        del self._convs_of[conn]
        users = self._by_user[conn.user_id]
        users.discard(conn)
        if not users:
            del self._by_user[conn.user_id]
            await self._unsubscribe(user_channel(conn.user_id))

    def _follow(self, conn: Connection, conv_id: int) -> bool:
        """Route the conversation to this socket; True if the node must now subscribe."""
        convs = self._convs_of.get(conn)
        if convs is None or conv_id in convs:
            return False
        convs.add(conv_id)
        self._seal(conv_id)  # the newcomer must not get the batch's later events without its earlier
        followers = self._by_conv[conv_id]
        followers.add(conn)
        return len(followers) == 1

    def _unfollow(self, conn: Connection, conv_id: int) -> bool:
        """Stop routing; True if no local socket needs the channel any more."""
        self._convs_of.get(conn, set()).discard(conv_id)
        followers = self._by_conv.get(conv_id)
        if followers is None or conn not in followers:
            return False
        self._seal(conv_id)  # a batch it still holds must take nothing more for it
        followers.discard(conn)
        if followers:
            return False
        del self._by_conv[conv_id]
        return True

    async def _subscribe(self, channel: str) -> None:
        try:
            await self._broker.subscribe(channel)
        except Exception as exc:  # the broker adapter resubscribes when it recovers
            log.warning("subscribe_failed", channel=channel, error=repr(exc))

    async def _unsubscribe(self, channel: str) -> None:
        try:
            await self._broker.unsubscribe(channel)
        except Exception as exc:
            log.warning("unsubscribe_failed", channel=channel, error=repr(exc))

    # -- broker -> sockets (synchronous: never awaits a socket) --------------------------

    def on_broker_message(self, channel: str, data: bytes) -> None:
        kind, _, raw_id = channel.partition(":")
        route, _, frame = data.partition(b"\n")
        try:
            target = int(raw_id)
        except ValueError:
            return
        if kind == "c":
            self._to_conversation(target, route, frame)
        elif kind == "u":
            self._to_user(target, route.decode(), frame)

    def _to_conversation(self, conv_id: int, route: bytes, frame: bytes) -> None:
        followers = self._by_conv.get(conv_id)
        if not followers:
            return
        if route.startswith(b"-"):  # everyone but one user: per socket
            excluded = int(route[1:])
            delivered = 0
            for conn in followers:
                if conn.user_id != excluded:
                    conn.enqueue(frame)
                    delivered += 1
            self._metrics.fanout.inc(delivered)
            return
        batch = self._open.get(conv_id)
        if batch is None or batch.sealed:
            batch = self._open[conv_id] = RoomBatch()
            for conn in followers:
                conn.enqueue_batch(batch)
        batch.add(frame)
        self._metrics.fanout.inc(len(followers))

    def forget_batches(self) -> None:
        """After a flush every batch was taken (and sealed): drop them with their payloads."""
        self._open.clear()

    def _seal(self, conv_id: int) -> None:
        batch = self._open.pop(conv_id, None)
        if batch is not None:
            batch.sealed = True

    def _to_user(self, user_id: int, route: str, frame: bytes) -> None:
        conns = list(self._by_user.get(user_id, ()))
        action, _, arg = route.partition(":")
        if action == "revoke":
            self._close_session(conns, int(arg), frame)
            return
        if action in ("join", "leave"):
            self._change_follow(conns, int(arg), join=action == "join")
        if frame:
            for conn in conns:
                conn.enqueue(frame)
            self._metrics.fanout.inc(len(conns))

    def _close_session(self, conns: list[Connection], session_id: int, frame: bytes) -> None:
        """Tell the session's sockets why (the frame goes out just before the close), then close."""
        for conn in conns:
            if conn.session_id == session_id:
                if frame:
                    conn.enqueue(frame)
                conn.close(TOKEN_EXPIRED, "session revoked")

    def _change_follow(self, conns: list[Connection], conv_id: int, *, join: bool) -> None:
        """Routing changes now (so the next frame already obeys it); the broker call follows."""
        channel = conversation_channel(conv_id)
        for conn in conns:
            if join and self._follow(conn, conv_id):
                self._spawn(self._subscribe(channel))
            elif not join and self._unfollow(conn, conv_id):
                self._spawn(self._unsubscribe(channel))

    def _spawn(self, coro: object) -> None:
        assert asyncio.iscoroutine(coro)
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def all_connections(self) -> list[Connection]:
        return list(self._convs_of)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
