"""The /ws endpoint: authenticate, attach to the hub, and turn frames into service calls.

Sans-I/O parsing lives in gochat.domain.protocol; outbound bytes go through the socket's
Connection (coalesced, never awaited by fan-out). This module only moves data and maps
errors to error frames and close codes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog
from starlette.datastructures import Headers
from starlette.websockets import WebSocket, WebSocketDisconnect

from gochat.domain import protocol as p
from gochat.domain.wire import message_json, notification_json, reactions_json
from gochat.errors import GoChatError, InvalidToken, NotFound
from gochat.observability import Metrics
from gochat.ports import Clock
from gochat.realtime.connection import SLOW_CLOSE_CODE, Connection, Flusher, FrameSink, open_sink
from gochat.realtime.hub import Hub
from gochat.realtime.wsproto import DirectChannel
from gochat.services.accounts import Principal
from gochat.services.registry import Services
from gochat.storage.uow import SqlUnitOfWork

log = structlog.get_logger(__name__)

POLICY = 1008
TOKEN_EXPIRED = 4001
RATE_LIMITED = 4029
TYPING_TTL_S = 5
REPLAY_DRAIN_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    allowed_origins: tuple[str, ...]
    auth_timeout_s: float
    heartbeat_s: float
    frame_rate: float = 30.0
    frame_burst: int = 60
    rate_limits_enabled: bool = True


class TokenBucket:
    """Frames a socket may send: ``burst`` at once, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        hub: Hub,
        flusher: Flusher,
        services: Services,
        uow: Any,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self.config = config
        self.hub = hub
        self.flusher = flusher
        self.services = services
        self._accounts = services.accounts
        self._messages = services.messages
        self._sync = services.sync
        self._uow = uow
        self.clock = clock
        self._metrics = metrics

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        if not origin_allowed(websocket, self.config.allowed_origins):
            await websocket.close(POLICY, "origin not allowed")
            return
        async with open_sink(websocket) as sink:
            principal = await self._authenticate(websocket, sink)
            if principal is not None:
                forget_handshake(websocket, sink)
                await Session(self, websocket, sink, principal).run()

    async def _authenticate(self, websocket: WebSocket, sink: FrameSink) -> Principal | None:
        header = Headers(scope=websocket.scope).get("authorization", "")
        try:
            if header.lower().startswith("bearer "):
                return await self._accounts.authenticate(header[7:].strip())
            return await self._first_frame_auth(websocket)
        except (InvalidToken, AuthRefused) as exc:
            code = TOKEN_EXPIRED if isinstance(exc, InvalidToken) else POLICY
            await _close(websocket, code, str(exc)[:120])
        except (TimeoutError, WebSocketDisconnect):
            await _close(websocket, POLICY, "authentication timed out")
        except GoChatError as exc:
            await _close(websocket, 1011 if exc.status >= 500 else POLICY, exc.message[:120])
        return None

    async def _first_frame_auth(self, websocket: WebSocket) -> Principal:
        message = await asyncio.wait_for(websocket.receive(), self.config.auth_timeout_s)
        text = message.get("text")
        if message["type"] != "websocket.receive" or text is None:
            raise AuthRefused("the first frame must be an auth frame")
        command = p.parse_frame(text)
        if not isinstance(command, p.Auth):
            raise AuthRefused("the first frame must be an auth frame")
        return await self._accounts.authenticate(command.token)

    async def active_conversations(self, user_id: int) -> list[int]:
        uow: SqlUnitOfWork
        async with self._uow() as uow:
            return await uow.members.active_conversation_ids(user_id)

    async def close_all(self, code: int = 1001, reason: str = "server shutting down") -> None:
        for conn in self.hub.all_connections():
            conn.close(code, reason)


class AuthRefused(Exception):
    pass


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    try:
        await websocket.close(code, reason)
    except Exception as exc:  # the peer may already be gone
        log.debug("close_failed", error=repr(exc))


def origin_allowed(websocket: WebSocket, allowed: tuple[str, ...]) -> bool:
    """No Origin (non-browser client), the server's own origin, or one on the allowlist."""
    headers = Headers(scope=websocket.scope)  # not websocket.headers: that one is cached
    origin = headers.get("origin")
    if origin is None:
        return True
    if origin in allowed or "*" in allowed:
        return True
    host = headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower() and bool(host)


def forget_handshake(websocket: WebSocket, sink: FrameSink) -> None:
    """Drop the handshake's headers once the socket is authenticated (~5 KiB per idle socket).

    Nothing reads them afterwards: the gateway reads headers only through fresh ``Headers``
    views (never the cached ``websocket.headers``), and uvicorn's protocol needs its handshake
    request and response only until the accept is sent.
    """
    websocket.scope["headers"] = []
    if isinstance(sink, DirectChannel):
        sink.forget_handshake()


class Session:
    """One authenticated socket's life: ready, requests, expiry, detach."""

    def __init__(self, gateway: Gateway, websocket: WebSocket, sink: FrameSink, who: Principal) -> None:
        self.gw = gateway
        self.websocket = websocket
        self.who = who
        self.conn = Connection(who.user_id, who.session_id, sink, gateway.flusher)
        self._expiry: asyncio.TimerHandle | None = None
        self.device = uuid.uuid4().hex
        config = gateway.config
        self._bucket = (
            TokenBucket(config.frame_rate, config.frame_burst) if config.rate_limits_enabled else None
        )

    async def run(self) -> None:
        self.conn.enqueue(
            p.encode_event(
                "ready",
                user_id=str(self.who.user_id),
                session_id=str(self.who.session_id),
                heartbeat_s=self.gw.config.heartbeat_s,
            )
        )
        presence = self.gw.services.presence
        attached = False
        try:
            conversations = await self.gw.active_conversations(self.who.user_id)
            await self.gw.hub.attach(self.conn, conversations)
            attached = True
            await presence.connected(self.who.user_id, self.device, conversations)
            self._arm_expiry(self.who.token_expires_at)
            await self._receive_loop()
        except GoChatError as exc:
            self.conn.close(1011, exc.message[:120])
        finally:
            if self._expiry is not None:
                self._expiry.cancel()
            await self._leave(attached)

    async def _leave(self, attached: bool) -> None:
        following = self.gw.hub.conversations_of(self.conn)
        await self.gw.hub.detach(self.conn)
        if attached:
            try:
                await self.gw.services.presence.disconnected(self.who.user_id, self.device, following)
            except GoChatError as exc:  # the database may be down; presence is best effort
                log.warning("presence_update_failed", error=exc.message)

    def _arm_expiry(self, expires_at: int) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        # The token's expiry was checked against the injected clock; the timer uses the same one.
        delay = max(0.0, expires_at - self.gw.clock.now().timestamp())
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(delay, self.conn.close, TOKEN_EXPIRED, "token expired")

    async def _receive_loop(self) -> None:
        while not self.conn.closed:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            self.gw._metrics.ws_frames.inc()
            if self._bucket is not None and not self._bucket.take():
                self.conn.close(RATE_LIMITED, "too many frames; back off and reconnect")
                return
            text = message.get("text")
            if text is None:
                self.conn.enqueue(p.encode_error(None, "invalid_json", "send JSON in text frames"))
                continue
            await self._handle(p.parse_frame(text))

    async def _handle(self, command: p.Command | p.Rejected) -> None:
        if isinstance(command, p.Rejected):
            self.conn.enqueue(p.encode_error(command.id, command.code, command.message))
            return
        request_id = getattr(command, "id", None)
        try:
            await self._dispatch(command)
        except GoChatError as exc:
            self.conn.enqueue(p.encode_error(request_id, exc.code, exc.message))
        except Exception as exc:  # task boundary: report, keep the socket serving
            log.error("ws_handler_failed", error=repr(exc), exc_info=exc)
            self.conn.enqueue(p.encode_error(request_id, "internal_error", "internal error"))

    async def _dispatch(self, command: p.Command) -> None:
        match command:
            case p.SendMessage():
                await self._send(command)
            case p.Sync():
                await self._do_sync(command)
            case p.MarkRead():
                seq = await self.gw._messages.mark_read(
                    self.who.user_id, command.conversation_id, command.seq
                )
                self.conn.enqueue(p.encode_ack(command.id, read_seq=seq))
            case p.Typing():
                await self._typing(command)
            case p.Ping():
                self.conn.enqueue(p.encode_event("pong", id=command.id))
            case p.Auth():
                await self._reauth(command)
            case p.EditMessage():
                edited = await self.gw.services.chat_state.edit(
                    self.who.user_id, command.conversation_id, command.seq, command.body
                )
                self.conn.enqueue(p.encode_ack(command.id, message=message_json(edited)))
            case p.DeleteMessage():
                deleted = await self.gw.services.chat_state.delete(
                    self.who.user_id, command.conversation_id, command.seq
                )
                self.conn.enqueue(p.encode_ack(command.id, message=message_json(deleted)))
            case p.AddReaction() | p.RemoveReaction():
                await self._react(command)
            case _:
                raise UnsupportedCommand()

    async def _react(self, command: p.AddReaction | p.RemoveReaction) -> None:
        add = isinstance(command, p.AddReaction)
        message = await self.gw.services.chat_state.react(
            self.who.user_id, command.conversation_id, command.seq, command.emoji, add=add
        )
        self.conn.enqueue(p.encode_ack(command.id, seq=message.seq, reactions=reactions_json(message)))

    async def _send(self, command: p.SendMessage) -> None:
        await self.gw.services.limiter.hit("send:user", str(self.who.user_id))
        message, created = await self.gw._messages.send(
            self.who.user_id,
            command.conversation_id,
            command.client_msg_id,
            command.body,
            command.media_ids,
            command.reply_to_seq,
        )
        self.conn.enqueue(p.encode_ack(command.id, message=message_json(message)))
        if created:
            self.gw._metrics.messages_sent.inc()

    async def _do_sync(self, command: p.Sync) -> None:
        result = await self.gw._sync.sync(self.who.user_id, command.cursors)
        self.conn.enqueue(p.encode_ack(command.id, resync=[str(c) for c in result.resync]))
        await self._enqueue_paced(result.frames)
        summary = await self.gw.services.chat_state.summary(self.who.user_id)
        self.conn.enqueue(p.encode_frame(notification_json(summary)))

    async def _enqueue_paced(self, frames: list[bytes]) -> None:
        """Queue a replay in slices of half the send bound, each once the last one drained.

        A replay (up to sync_replay_limit events) can be far bigger than the bound: queued in
        one tick it tripped the slow-reader check and closed a healthy socket with 4008 on
        every reconnect, so the device never caught up.
        """
        budget = max(1, self.gw.flusher.max_buffer_bytes // 2)
        queued = 0
        for frame in frames:
            if queued and queued + len(frame) > budget:
                await self._drained(budget // 2)
                queued = 0
            self.conn.enqueue(frame)
            queued += len(frame)

    async def _drained(self, low_water: int) -> None:
        """Wait until the socket took what was queued; one that never does is too slow (4008)."""
        deadline = time.monotonic() + REPLAY_DRAIN_TIMEOUT_S
        while self.conn.pending_bytes or self.conn.sink.buffered() > low_water:
            if self.conn.closed:
                return
            if time.monotonic() > deadline:
                self.conn.close(SLOW_CLOSE_CODE, "too slow")
                return
            await asyncio.sleep(0.005)

    async def _typing(self, command: p.Typing) -> None:
        conv_id = command.conversation_id
        if not self.gw.hub.follows(self.conn, conv_id):
            raise NotFound("no such conversation")
        frame = p.encode_event(
            "typing", conversation_id=str(conv_id), user_id=str(self.who.user_id), expires_in_s=TYPING_TTL_S
        )
        await self.gw._messages.typing(conv_id, self.who.user_id, frame)
        if command.id is not None:
            self.conn.enqueue(p.encode_ack(command.id))

    async def _reauth(self, command: p.Auth) -> None:
        """A fresh access token for the same session extends the socket's life."""
        fresh = await self.gw._accounts.authenticate(command.token)
        if (fresh.user_id, fresh.session_id) != (self.who.user_id, self.who.session_id):
            raise InvalidToken("the token belongs to another session")
        self.who = fresh
        self._arm_expiry(fresh.token_expires_at)
        if command.id is not None:
            self.conn.enqueue(p.encode_ack(command.id, expires_at=fresh.token_expires_at))


class UnsupportedCommand(GoChatError):
    code = "unsupported"
    status = 400
    default_message = "this server does not support that request yet"
